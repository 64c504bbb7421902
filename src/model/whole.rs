//! Whole numbers given as text (query parameters): plain decimal digits
//! only. Parsing them as floats took `1.5`, `1e3` and `-0` for numbers and
//! rounded values past 2^53 (`9223372036854775807` became 2^63, past
//! i64); one strict parse refuses all of that.

/// `raw` as a whole number within `min..=max`, or the reason it is not,
/// for a message that names the parameter.
pub fn parse_whole(raw: &str, min: u64, max: u64) -> Result<u64, String> {
    // No trimming: `limit=+5` (a space once decoded) is not a number.
    let digits = raw;
    let expected = || format!("expected a whole number from {min} to {max}, got {raw:?}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    match digits.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        // All digits, so only overflow fails to parse: out of range too.
        _ => Err(expected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_plain_digits_in_range() {
        assert_eq!(parse_whole("25", 1, 100), Ok(25));
        assert_eq!(parse_whole("0100", 1, 100), Ok(100));
    }

    #[test]
    fn refuses_what_is_not_a_whole_number() {
        for raw in [
            "1.5", "1e3", "1e1", "-1", "+5", "-0", "", " ", " 7", "7 ", "0x10", "NaN", "inf",
            "10.0",
        ] {
            let e = parse_whole(raw, 0, 100).unwrap_err();
            assert!(e.contains("whole number from 0 to 100"), "{raw}: {e}");
        }
    }

    #[test]
    fn refuses_out_of_range_and_overflow() {
        assert!(parse_whole("0", 1, 100).is_err());
        assert!(parse_whole("101", 1, 100).is_err());
        assert!(parse_whole("9223372036854775807", 0, 1_000_000_000).is_err());
        assert!(parse_whole("99999999999999999999999", 0, u64::MAX).is_err());
        assert_eq!(
            parse_whole("18446744073709551615", 0, u64::MAX),
            Ok(u64::MAX)
        );
    }
}

//! Clock and timestamp formats. Variant timestamps travel as epoch
//! milliseconds, list timestamps and query filters as ISO-8601 (RFC 3339).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const DAY_MS: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Parses an RFC 3339 / ISO-8601 instant into epoch milliseconds.
pub fn parse_iso_ms(raw: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(raw, &Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Formats epoch milliseconds as `2026-06-06T20:00:00.000Z`.
pub fn format_iso_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        let ms = parse_iso_ms("2026-06-01T00:00:00.000Z").unwrap();
        assert_eq!(format_iso_ms(ms), "2026-06-01T00:00:00.000Z");
        assert_eq!(
            parse_iso_ms("2026-06-07T23:59:59.999Z").unwrap() % 1000,
            999
        );
        assert!(parse_iso_ms("yesterday").is_none());
        assert!(parse_iso_ms("2026-13-01T00:00:00Z").is_none());
    }
}

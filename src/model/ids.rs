//! Validated identifiers. Every value a client can put in a path, header or
//! body is parsed into one of these before it reaches the service, so nothing
//! below the HTTP layer ever sees an unchecked string (no path traversal, no
//! oversize keys).

use std::fmt;

/// A raw upstream media ID: 1-32 ASCII digits, kept exactly as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId(String);

impl MediaId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 32 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "invalid media ID {:?}: expected 1-32 ASCII digits",
                truncate_for_message(raw)
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key whose byte order is the numeric order of the IDs (zero-padded),
    /// with the original length appended so that "7" and "007" stay distinct.
    pub fn sort_key(&self) -> String {
        format!("{:0>32}{:02}", self.0, self.0.len())
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A variant label such as `full`, `thumb` or `720p`: `[A-Za-z0-9_]{1,32}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(String);

impl Label {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty()
            || raw.len() > 32
            || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "invalid variant label {:?}: expected 1-32 characters of A-Z, a-z, 0-9 or _",
                truncate_for_message(raw)
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A connection ID (`conn_...` upstream). The reference only requires a
/// non-empty string; we also bound the length and the alphabet so that IDs
/// are safe in logs, URLs and keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(String);

impl ConnectionId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty()
            || raw.len() > 128
            || !raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(format!(
                "invalid connection ID {:?}: expected 1-128 characters of A-Z, a-z, 0-9, _, - or .",
                truncate_for_message(raw)
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organization name as used on the command line (`--org`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty()
            || raw.len() > 64
            || !raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(format!(
                "invalid organization name {:?}: expected 1-64 characters of A-Z, a-z, 0-9, _, - or .",
                truncate_for_message(raw)
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Error messages echo the offending value, but never an unbounded one.
fn truncate_for_message(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_are_digits_only() {
        assert!(MediaId::parse("4492994399").is_ok());
        for bad in ["", "12a", "../1", "1 2", "-1", &"9".repeat(33)] {
            assert!(MediaId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn media_sort_key_is_numeric_order() {
        let k = |s: &str| MediaId::parse(s).unwrap().sort_key();
        assert!(k("9") < k("10"));
        assert!(k("99") < k("100"));
        assert_ne!(k("7"), k("007"));
    }

    #[test]
    fn labels_reject_traversal() {
        assert!(Label::parse("720p").is_ok());
        assert!(Label::parse("square_Preview").is_ok());
        for bad in ["", "..", "a/b", "a.b", "full%2F", &"a".repeat(33)] {
            assert!(Label::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

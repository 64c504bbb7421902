//! Validated identifiers. Every value a client can put in a path, header or
//! body is parsed into one of these before it reaches the service, so nothing
//! below the HTTP layer ever sees an unchecked string (no path traversal, no
//! oversize keys).

use std::borrow::Cow;
use std::fmt;

use serde_json::json;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// The characters an identifier may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// `0-9`
    Digits,
    /// `A-Z a-z 0-9 _`
    Word,
    /// `A-Z a-z 0-9 _ - .`
    Name,
}

impl Alphabet {
    fn allows(self, b: u8) -> bool {
        match self {
            Self::Digits => b.is_ascii_digit(),
            Self::Word => b.is_ascii_alphanumeric() || b == b'_',
            Self::Name => b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'),
        }
    }

    /// The same set as a regular-expression character class.
    fn class(self) -> &'static str {
        match self {
            Self::Digits => "0-9",
            Self::Word => "A-Za-z0-9_",
            Self::Name => "A-Za-z0-9_.-",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Digits => "ASCII digits",
            Self::Word => "characters of A-Z, a-z, 0-9 or _",
            Self::Name => "characters of A-Z, a-z, 0-9, _, - or .",
        }
    }
}

/// What an identifier may look like: 1 to `max_len` characters of its
/// alphabet. The one declaration of each rule: parsing checks it, and the
/// OpenAPI document's pattern and lengths are derived from it.
#[derive(Clone, Copy, Debug)]
pub struct IdShape {
    /// What the identifier is, for error messages ("media ID").
    pub what: &'static str,
    pub max_len: usize,
    pub alphabet: Alphabet,
    /// A typical value, for the document.
    pub example: &'static str,
}

impl IdShape {
    /// Refuses `raw` unless it has this shape, naming the problem.
    pub fn check(&self, raw: &str) -> Result<(), String> {
        if raw.is_empty()
            || raw.len() > self.max_len
            || !raw.bytes().all(|b| self.alphabet.allows(b))
        {
            return Err(format!(
                "invalid {} {:?}: expected 1-{} {}",
                self.what,
                truncate_for_message(raw),
                self.max_len,
                self.alphabet.text()
            ));
        }
        Ok(())
    }

    /// The shape as an ECMA-262 pattern, as JSON Schema takes it.
    pub fn pattern(&self) -> String {
        format!("^[{}]{{1,{}}}$", self.alphabet.class(), self.max_len)
    }

    /// The shape as a JSON Schema string.
    pub fn schema(&self) -> RefOr<Schema> {
        crate::model::schema::schema(json!({
            "type": "string",
            "pattern": self.pattern(),
            "minLength": 1,
            "maxLength": self.max_len,
            "description": format!("A {}: 1-{} {}.", self.what, self.max_len, self.alphabet.text()),
            "example": self.example,
        }))
    }
}

pub const MEDIA_ID: IdShape = IdShape {
    what: "media ID",
    max_len: 32,
    alphabet: Alphabet::Digits,
    example: "4492994399",
};

/// Vault list IDs are numeric strings upstream.
pub const LIST_ID: IdShape = IdShape {
    what: "list ID",
    max_len: 32,
    alphabet: Alphabet::Digits,
    example: "28489180",
};

pub const LABEL: IdShape = IdShape {
    what: "variant label",
    max_len: 32,
    alphabet: Alphabet::Word,
    example: "full",
};

/// The reference only requires a non-empty string; the length and the
/// alphabet are bounded so that IDs are safe in logs, URLs and keys.
pub const CONNECTION_ID: IdShape = IdShape {
    what: "connection ID",
    max_len: 128,
    alphabet: Alphabet::Name,
    example: "conn_v5bsqkzsjfk8cgr7hqbbw09t",
};

pub const ORG_NAME: IdShape = IdShape {
    what: "organization name",
    max_len: 64,
    alphabet: Alphabet::Name,
    example: "default",
};

/// A checked identifier type: its shape, its parse, its schema (named after
/// the type, so the document shows `MediaId` where one is taken).
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $shape:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const SHAPE: IdShape = $shape;

            pub fn parse(raw: &str) -> Result<Self, String> {
                Self::SHAPE.check(raw)?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                Self::SHAPE.schema()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

identifier!(
    /// A raw upstream media ID: 1-32 ASCII digits, kept exactly as given.
    MediaId,
    MEDIA_ID
);

impl MediaId {
    /// A key whose byte order is the numeric order of the IDs (zero-padded),
    /// with the original length appended so that "7" and "007" stay distinct.
    pub fn sort_key(&self) -> String {
        format!("{:0>32}{:02}", self.0, self.0.len())
    }
}

identifier!(
    /// An upstream vault list ID: 1-32 ASCII digits.
    ListId,
    LIST_ID
);

identifier!(
    /// A variant label such as `full`, `thumb` or `720p`: `[A-Za-z0-9_]{1,32}`.
    Label,
    LABEL
);

identifier!(
    /// A connection ID (`conn_...` upstream).
    ConnectionId,
    CONNECTION_ID
);

identifier!(
    /// An organization name as used on the command line (`--org`).
    OrgName,
    ORG_NAME
);

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

    /// The pattern the document declares and the check the parser makes
    /// are two spellings of one alphabet: they must agree on every byte
    /// and every length.
    #[test]
    fn patterns_accept_exactly_what_parsing_accepts() {
        for shape in [MEDIA_ID, LIST_ID, LABEL, CONNECTION_ID, ORG_NAME] {
            let re = regex::Regex::new(&shape.pattern()).unwrap();
            for b in 0..=255u8 {
                let s = char::from(b).to_string();
                assert_eq!(
                    re.is_match(&s),
                    shape.check(&s).is_ok(),
                    "{}: {s:?}",
                    shape.what
                );
            }
            let ok = shape.example.chars().next().unwrap().to_string();
            for n in [0, 1, shape.max_len, shape.max_len + 1] {
                let s = ok.repeat(n);
                assert_eq!(
                    re.is_match(&s),
                    shape.check(&s).is_ok(),
                    "{}: {n}",
                    shape.what
                );
            }
            assert!(shape.check(shape.example).is_ok());
        }
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

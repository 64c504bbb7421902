//! What an API key may do: the permission areas of the OFAuth API.

/// Permission areas of the OFAuth API a key can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyScope {
    Account,
    Access,
    Link,
    DynamicRules,
}

impl KeyScope {
    pub const ALL: [KeyScope; 4] = [Self::Account, Self::Access, Self::Link, Self::DynamicRules];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "ACCOUNT",
            Self::Access => "ACCESS",
            Self::Link => "LINK",
            Self::DynamicRules => "DYNAMIC_RULES",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(raw))
    }
}

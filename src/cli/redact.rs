//! Which option values are secrets, and how `vaultplus config` shows them.

use clap::Arg;

/// Shown in place of a secret.
pub const MASK: &str = "***";

/// An option holding a secret: one whose environment value clap hides from
/// `--help`, or whose name says so (a `...-key`, `...secret...` or
/// `...password...` option; its `-file` twin holds a path, not the secret).
pub fn is_secret(arg: &Arg) -> bool {
    if arg.is_hide_env_values_set() {
        return true;
    }
    let name = arg.get_long().unwrap_or_default();
    !name.ends_with("-file")
        && (name == "key"
            || name.ends_with("-key")
            || name.split('-').any(|w| w == "secret" || w == "password"))
}

/// A secret as shown: a URL with a host keeps everything but its password
/// (`postgres://user:***@host/db`, and any `password` query parameter);
/// anything else is masked whole.
pub fn redact(value: &str) -> String {
    match url::Url::parse(value) {
        // The same rule as every message and log line that names a URL.
        Ok(url) if url.has_host() => crate::stores::redact(value),
        _ => MASK.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_all_but_the_password() {
        assert_eq!(
            redact("postgres://user:pa55@db.example:5432/vp"),
            "postgres://user:***@db.example:5432/vp"
        );
        assert_eq!(
            redact("postgres://user@db/vp?sslmode=require&password=pa55"),
            "postgres://user@db/vp?sslmode=require&password=***"
        );
        assert_eq!(redact("postgres://db/vp"), "postgres://db/vp");
        for whole in [
            "vpk_s3cret",
            "sqlite:///var/lib/vp/catalog.sqlite",
            "user:pa55@db",
            "",
        ] {
            assert_eq!(redact(whole), MASK, "{whole}");
        }
    }

    #[test]
    fn secrets_are_found_by_env_hiding_and_by_name() {
        let secret = |a: Arg| is_secret(&a);
        assert!(secret(Arg::new("d").long("database").hide_env_values(true)));
        assert!(secret(Arg::new("u").long("upstream-key")));
        assert!(secret(Arg::new("s").long("s3-secret-access-key")));
        assert!(secret(Arg::new("p").long("admin-password")));
        assert!(!secret(Arg::new("f").long("upstream-key-file")));
        assert!(!secret(Arg::new("f").long("master-key-file")));
        assert!(!secret(Arg::new("r").long("key-reload-secs")));
        assert!(!secret(Arg::new("i").long("s3-access-key-id")));
    }
}

//! Secrets given on the command line show in `ps` and shell history, and
//! in the environment of every child: each secret option also reads a file
//! (a mounted Docker or Kubernetes secret, a systemd credential).

use std::path::Path;

use anyhow::{Context, bail};

/// One secret option and its `-file` twin, with the names a message shows.
pub struct SecretOption<'a> {
    /// e.g. `--upstream-key (VAULTPLUS_UPSTREAM_KEY)`.
    pub value_name: &'a str,
    /// e.g. `--upstream-key-file (VAULTPLUS_UPSTREAM_KEY_FILE)`.
    pub file_name: &'a str,
}

impl SecretOption<'_> {
    /// The secret from the value or the file; at most one may be given. The
    /// file's content loses one trailing newline (`echo` and most editors
    /// add one); an unreadable or empty file is an error naming the option.
    pub fn resolve(
        &self,
        value: Option<&str>,
        file: Option<&Path>,
    ) -> anyhow::Result<Option<String>> {
        match (value, file) {
            (Some(_), Some(_)) => bail!(
                "give either {} or {}, not both",
                self.value_name,
                self.file_name
            ),
            (Some(v), None) => Ok(Some(v.to_owned())),
            (None, Some(path)) => self.read(path).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn read(&self, path: &Path) -> anyhow::Result<String> {
        let raw = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read {}", self.file_name, path.display()))?;
        let secret = raw
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&raw);
        if secret.is_empty() {
            bail!("{}: {} is empty", self.file_name, path.display());
        }
        Ok(secret.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPT: SecretOption<'static> = SecretOption {
        value_name: "--key (K)",
        file_name: "--key-file (K_FILE)",
    };

    fn file(content: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), content).unwrap();
        f
    }

    #[test]
    fn reads_the_file_without_its_trailing_newline() {
        for (content, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret", "s3cret"),
            (" a b \n\n", " a b \n"),
        ] {
            let f = file(content);
            assert_eq!(
                OPT.resolve(None, Some(f.path())).unwrap().as_deref(),
                Some(want)
            );
        }
        assert_eq!(OPT.resolve(Some("v"), None).unwrap().as_deref(), Some("v"));
        assert_eq!(OPT.resolve(None, None).unwrap(), None);
    }

    #[test]
    fn both_empty_or_unreadable_are_errors_naming_the_option() {
        let f = file("x");
        let e = OPT
            .resolve(Some("v"), Some(f.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--key (K)") && e.contains("--key-file (K_FILE)") && e.contains("not both"),
            "{e}"
        );
        for content in ["", "\n"] {
            let f = file(content);
            let e = format!("{:#}", OPT.resolve(None, Some(f.path())).unwrap_err());
            assert!(e.contains("--key-file") && e.contains("empty"), "{e}");
        }
        let e = format!(
            "{:#}",
            OPT.resolve(None, Some(Path::new("/nonexistent/k")))
                .unwrap_err()
        );
        assert!(e.contains("--key-file") && e.contains("cannot read"), "{e}");
    }
}

//! Which target a migration of a data directory is for, how far it got and
//! what it copied, kept in that directory (`migrate-state.json`): a second
//! run resumes or refreshes it, and a run towards another target is refused
//! (the first one checked that its target was empty; this is how reruns
//! know the data there is their own).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::stores::StoreSpec;

const FILE: &str = "migrate-state.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The target, as described in logs (no credentials).
    target: String,
    /// Every step finished and was verified once.
    pub done: bool,
    /// The source rows as last copied.
    #[serde(default)]
    pub source: Option<String>,
    /// The target rows as that copy left them: a rerun that finds them
    /// otherwise refuses to overwrite them.
    #[serde(default)]
    pub target_rows: Option<String>,
    #[serde(skip)]
    path: PathBuf,
}

impl State {
    /// The state of a migration of `from` into `to`: resumed if one was
    /// begun, else a new one (saved by the caller once it has checked that
    /// the target is empty, so a refused target leaves no state behind).
    pub fn load_or_start(from: &Path, to: &StoreSpec) -> anyhow::Result<Self> {
        let path = from.join(FILE);
        let target = to.describe();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut state: State = serde_json::from_slice(&bytes)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if state.target != target {
                    bail!(
                        "{} records a migration to another target ({}); finish that one, or delete the file to start over with an empty target",
                        path.display(),
                        state.target
                    );
                }
                state.path = path;
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                target,
                done: false,
                source: None,
                target_rows: None,
                path,
            }),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the state durably (temporary file, fsync, rename).
    pub fn save(&self) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(self)?;
        {
            use std::io::Write;
            let mut f = crate::private_files::create_file(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

//! `vaultplus master-key generate FILE`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::private_files;
use crate::service::secret_box::generate_master_key;

#[derive(Subcommand, Debug)]
pub enum MasterKeyCommand {
    /// Write a new master key (32 random bytes, base64) to a new file,
    /// readable by its owner only. Give it to every process through
    /// VAULTPLUS_MASTER_KEY_FILE; losing it loses the signing keys.
    Generate {
        /// The file to create (an existing file is never overwritten).
        file: PathBuf,
    },
}

pub fn run(cmd: MasterKeyCommand) -> anyhow::Result<()> {
    match cmd {
        MasterKeyCommand::Generate { file } => {
            let mut out = private_files::file_options()
                .write(true)
                .create_new(true)
                .open(&file)
                .with_context(|| format!("cannot create {}", file.display()))?;
            out.write_all(generate_master_key().as_bytes())?;
            out.sync_all()?;
            println!("wrote a new master key to {}", file.display());
        }
    }
    Ok(())
}

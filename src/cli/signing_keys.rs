//! `vaultplus signing-keys list|rotate|retire`.

use clap::Subcommand;

use super::StoreArgs;
use crate::model::time::format_iso_ms;
use crate::service::keyring;
use crate::service::secret_box::{self, is_sealed};

#[derive(Subcommand, Debug)]
pub enum SigningKeysCommand {
    /// List the URL signing keys (IDs, ages, whether encrypted at rest;
    /// secrets are not shown). With --master-key-file, checks that it opens
    /// every encrypted one.
    List {
        #[command(flatten)]
        data: StoreArgs,
    },
    /// Add a new signing key: servers sign new URLs with it after their next
    /// key reload (--key-reload-secs, 10 s by default),
    /// URLs signed before keep working until they expire. Keys no unexpired
    /// URL can use any more are dropped. With a master key
    /// (--master-key-file) the new secret is stored encrypted.
    Rotate {
        #[command(flatten)]
        data: StoreArgs,
    },
    /// Drop a key: every URL it signed stops working once servers reload
    /// their keys (a leaked key).
    Retire {
        #[command(flatten)]
        data: StoreArgs,
        id: i64,
    },
}

pub async fn run(cmd: SigningKeysCommand) -> anyhow::Result<()> {
    match cmd {
        SigningKeysCommand::List { data } => {
            let (stores, secrets) = data.open_with_secrets().await?;
            if secrets.has_key() {
                // Says at once whether this master key is the right one.
                secret_box::open_keys(stores.catalog.as_ref(), &secrets).await?;
            }
            let keys = stores.catalog.signing_keys().await?;
            println!("{:<6} {:<10} CREATED", "ID", "AT REST");
            for (i, k) in keys.iter().enumerate() {
                let note = if i + 1 == keys.len() {
                    "  (signs new URLs)"
                } else {
                    ""
                };
                let at_rest = if is_sealed(&k.secret) {
                    "encrypted"
                } else {
                    "plaintext"
                };
                println!(
                    "{:<6} {at_rest:<10} {}{note}",
                    k.id,
                    format_iso_ms(k.created_at)
                );
            }
        }
        SigningKeysCommand::Rotate { data } => {
            let (stores, secrets) = data.open_with_secrets().await?;
            let (id, dropped) = keyring::rotate(stores.catalog.as_ref(), &secrets).await?;
            println!("new signing key {id}; dropped {dropped:?}");
        }
        SigningKeysCommand::Retire { data, id } => {
            let stores = data.open().await?;
            keyring::retire(stores.catalog.as_ref(), id).await?;
            println!("retired signing key {id}");
        }
    }
    Ok(())
}

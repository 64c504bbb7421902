//! `vaultplus keys create|list|revoke`.

use clap::Subcommand;

use super::StoreArgs;
use crate::model::time::format_iso_ms;
use crate::service::admin;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key (and the organization, if new); prints only the key.
    Create {
        #[command(flatten)]
        data: StoreArgs,
        /// Organization name.
        #[arg(long)]
        org: String,
        /// Scope(s): ACCOUNT, ACCESS, LINK, DYNAMIC_RULES. Repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// List keys (IDs and scopes; secrets are never stored).
    List {
        #[command(flatten)]
        data: StoreArgs,
        /// Only this organization's keys.
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a key, given its ID or the whole key.
    Revoke {
        #[command(flatten)]
        data: StoreArgs,
        key: String,
    },
}

pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create { data, org, scopes } => {
            let stores = data.open().await?;
            println!(
                "{}",
                admin::create_key(stores.catalog.as_ref(), &org, &scopes).await?
            );
        }
        KeysCommand::List { data, org } => {
            let stores = data.open().await?;
            println!(
                "{:<18} {:<20} {:<28} {:<26} REVOKED",
                "ID", "ORG", "SCOPES", "CREATED"
            );
            for (k, org) in admin::list_keys(stores.catalog.as_ref(), org.as_deref()).await? {
                let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{:<18} {:<20} {:<28} {:<26} {}",
                    k.id,
                    org,
                    scopes.join(","),
                    format_iso_ms(k.created_at),
                    k.revoked_at
                        .map(format_iso_ms)
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        KeysCommand::Revoke { data, key } => {
            let stores = data.open().await?;
            admin::revoke_key(stores.catalog.as_ref(), &key).await?;
            eprintln!("revoked");
        }
    }
    Ok(())
}

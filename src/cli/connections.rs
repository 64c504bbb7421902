//! `vaultplus connections add|list|remove`.

use clap::Subcommand;

use super::StoreArgs;
use crate::model::time::format_iso_ms;
use crate::service::admin;

#[derive(Subcommand, Debug)]
pub enum ConnectionsCommand {
    /// Register a connection. Vault+ is enabled per the org's
    /// autoEnableForNewConnections unless --enabled/--disabled says otherwise.
    Add {
        #[command(flatten)]
        data: StoreArgs,
        /// Organization name (created if new).
        #[arg(long)]
        org: String,
        /// Enable Vault+ for it regardless of the org default.
        #[arg(long, conflicts_with = "disabled")]
        enabled: bool,
        /// Register it with Vault+ disabled.
        #[arg(long)]
        disabled: bool,
        /// Connection ID, e.g. conn_v5bsqkzsjfk8cgr7hqbbw09t.
        connection_id: String,
    },
    /// List an organization's connections.
    List {
        #[command(flatten)]
        data: StoreArgs,
        #[arg(long)]
        org: String,
    },
    /// Purge a connection's media and remove it.
    Remove {
        #[command(flatten)]
        data: StoreArgs,
        #[arg(long)]
        org: String,
        connection_id: String,
    },
}

pub async fn run(cmd: ConnectionsCommand) -> anyhow::Result<()> {
    match cmd {
        ConnectionsCommand::Add {
            data,
            org,
            enabled,
            disabled,
            connection_id,
        } => {
            let stores = data.open().await?;
            let choice = match (enabled, disabled) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let c = admin::add_connection(stores.catalog.as_ref(), &org, &connection_id, choice)
                .await?;
            println!(
                "{} vaultPlus={}",
                c.id,
                if c.enabled { "enabled" } else { "disabled" }
            );
        }
        ConnectionsCommand::List { data, org } => {
            let stores = data.open().await?;
            println!("{:<40} {:<9} CREATED", "ID", "VAULT+");
            for c in admin::list_connections(stores.catalog.as_ref(), &org).await? {
                println!(
                    "{:<40} {:<9} {}",
                    c.id,
                    if c.enabled { "enabled" } else { "disabled" },
                    format_iso_ms(c.created_at)
                );
            }
        }
        ConnectionsCommand::Remove {
            data,
            org,
            connection_id,
        } => {
            let stores = data.open().await?;
            let p = admin::remove_connection(stores.catalog.as_ref(), &org, &connection_id).await?;
            let receipt = p.receipt.map(|r| r.to_string()).unwrap_or_default();
            println!(
                "removed {connection_id}: purgedCount={} freedBytes={} receipt={receipt} (bytes are reclaimed by the server in the background)",
                p.purged_count, p.freed_bytes
            );
        }
    }
    Ok(())
}

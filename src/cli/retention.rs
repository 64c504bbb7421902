//! `vaultplus retention run [--as-of ISO]`.

use clap::Subcommand;

use super::StoreArgs;
use crate::model::time::{now_ms, parse_iso_ms};
use crate::service::reclaim::reclaim_until_idle;
use crate::service::retention::sweep;

#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Evict what every connection's retentionDays, accessExpiryDays and
    /// storageLimitBytes say must go, then free the bytes.
    Run {
        #[command(flatten)]
        data: StoreArgs,
        /// Judge expiry as of this instant (ISO-8601) instead of now, e.g. to
        /// see what a policy will evict.
        #[arg(long)]
        as_of: Option<String>,
    },
}

pub async fn run(cmd: RetentionCommand) -> anyhow::Result<()> {
    let RetentionCommand::Run { data, as_of } = cmd;
    let now = match as_of {
        Some(raw) => parse_iso_ms(&raw)
            .ok_or_else(|| anyhow::anyhow!("--as-of {raw:?} is not an ISO-8601 date-time"))?,
        None => now_ms(),
    };
    let stores = data.open().await?;
    let report = sweep(stores.catalog.as_ref(), now).await?;
    reclaim_until_idle(stores.catalog.as_ref(), stores.blobs.as_ref()).await?;
    println!(
        "connections={} evicted={} freed_bytes={}",
        report.connections, report.evicted, report.freed_bytes
    );
    Ok(())
}

//! `vaultplus retention run [--as-of ISO]`.

use clap::Subcommand;

use super::StoreArgs;
use super::progress::Bar;
use super::reclaim::reclaimed;
use crate::model::time::{now_ms, parse_iso_ms};
use crate::service::reclaim::reclaim_reporting;
use crate::service::retention::sweep_reporting;

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
    let bar = Bar::spinner();
    let done = async {
        let report = sweep_reporting(stores.catalog.as_ref(), now, &|r| {
            bar.say(format!(
                "sweeping: {} connections, {} variants evicted so far",
                r.connections, r.evicted
            ))
        })
        .await?;
        reclaim_reporting(stores.catalog.as_ref(), stores.blobs.as_ref(), &|r| {
            bar.say(reclaimed(r))
        })
        .await?;
        anyhow::Ok(report)
    }
    .await;
    bar.clear();
    let report = done?;
    println!(
        "connections={} evicted={} freed_bytes={}",
        report.connections, report.evicted, report.freed_bytes
    );
    Ok(())
}

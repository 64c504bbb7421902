//! `vaultplus reclaim status|run`: the background reclaim's backlog, and a
//! way to drain it without a server (e.g. after `connections remove`).

use clap::Subcommand;

use super::StoreArgs;
use super::progress::Bar;
use crate::service::reclaim::{ReclaimReport, reclaim_reporting};

#[derive(Subcommand, Debug)]
pub enum ReclaimCommand {
    /// Show what is waiting to be freed.
    Status {
        #[command(flatten)]
        data: StoreArgs,
    },
    /// Free everything waiting now, then exit.
    Run {
        #[command(flatten)]
        data: StoreArgs,
    },
}

pub async fn run(cmd: ReclaimCommand) -> anyhow::Result<()> {
    match cmd {
        ReclaimCommand::Status { data } => {
            let stores = data.open().await?;
            let b = stores.catalog.reclaim_backlog().await?;
            println!(
                "retired_scopes={} retired_variants={} retired_bytes={} queued_blobs={} \
                 unfinished_receipts={}",
                b.retired_scopes,
                b.retired_variants,
                b.retired_bytes,
                b.queued_blobs,
                b.unfinished_receipts
            );
        }
        ReclaimCommand::Run { data } => {
            let stores = data.open().await?;
            let bar = Bar::spinner();
            let r = reclaim_reporting(stores.catalog.as_ref(), stores.blobs.as_ref(), &|r| {
                bar.say(reclaimed(r))
            })
            .await;
            bar.clear();
            let r = r?;
            println!(
                "records={} blobs={} failed_blobs={}",
                r.records, r.blobs, r.failed_blobs
            );
            if r.failed_blobs > 0 {
                anyhow::bail!(
                    "{} blobs could not be deleted; they stay queued",
                    r.failed_blobs
                );
            }
        }
    }
    Ok(())
}

/// The progress line of a reclaim run.
pub fn reclaimed(r: &ReclaimReport) -> String {
    format!(
        "reclaiming: {} records, {} blobs freed so far",
        r.records, r.blobs
    )
}

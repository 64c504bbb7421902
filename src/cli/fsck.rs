//! `vaultplus fsck [--repair]`.

use clap::Args;

use super::StoreArgs;
use super::progress::Bar;
use crate::service::fsck::fsck;
use crate::service::reclaim::reclaim_until_idle;

#[derive(Args, Debug)]
pub struct FsckArgs {
    #[command(flatten)]
    data: StoreArgs,
    /// Fix what is found: orphan blobs are deleted, variants whose blob is
    /// missing or the wrong size become `removed`, counters are recomputed.
    #[arg(long)]
    repair: bool,
}

/// Fails (exit status 1) when problems were found and not repaired.
pub async fn run(args: FsckArgs) -> anyhow::Result<()> {
    let stores = args.data.open().await?;
    let bar = Bar::spinner();
    let progress = |phase: &str, done: u64, total: u64| {
        if total > 0 {
            bar.say(format!("checking {phase}: {done}/{total}"));
        } else {
            bar.say(format!("checking {phase}: {done}"));
        }
    };
    let report = fsck(
        stores.catalog.as_ref(),
        stores.blobs.as_ref(),
        args.repair,
        &progress,
    )
    .await?;
    bar.clear();
    println!(
        "checked {} stored variants and {} blobs",
        report.variants_checked, report.blobs_checked
    );
    for p in &report.problems {
        println!("problem: {p}");
    }
    for r in report.repairs.iter().filter(|r| !r.is_empty()) {
        println!("repaired: {r}");
    }
    if report.problems.is_empty() {
        println!("consistent");
    } else if args.repair {
        // Free the bytes of what was repaired now rather than at the
        // server's next reclaim tick (both may run at once safely).
        reclaim_until_idle(stores.catalog.as_ref(), stores.blobs.as_ref()).await?;
        println!("{} problems repaired", report.problems.len());
    } else {
        anyhow::bail!(
            "{} problems found (run with --repair to fix them)",
            report.problems.len()
        );
    }
    Ok(())
}

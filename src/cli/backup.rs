//! `vaultplus backup --to DIR` and `vaultplus restore --from DIR --data-dir NEW`.

use std::path::PathBuf;

use clap::Args;

use super::StoreArgs;
use super::progress::Bar;
use crate::backup::{self, files::is_within};
use crate::stores::{self, BlobSpec, CatalogSpec};

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    data: StoreArgs,
    /// Directory to write the backup into; must not exist or be empty. On the data directory's filesystem blobs are hard links (cheap, but no help if that disk is lost: copy DIR elsewhere, e.g. `cp -a`, `rsync -aH`, or `tar`); elsewhere they are copies.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A directory written by `vaultplus backup`.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The data directory to make; must not exist or be empty. Then: `vaultplus serve --data-dir NEW`.
    #[arg(long, value_name = "NEW")]
    data_dir: PathBuf,
}

const CLUSTER: &str = "back up a cluster with its own engines: PostgreSQL's (pg_dump, or \
    pg_basebackup with WAL archiving for point-in-time recovery) and the bucket's versioning or \
    replication (see \"Backup and restore\" in the README)";

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let spec = args.data.spec()?;
    let (CatalogSpec::Sqlite(catalog), BlobSpec::Local(blob_dir)) = (&spec.catalog, &spec.blobs)
    else {
        anyhow::bail!(
            "backup copies an embedded installation (an SQLite catalog and local blobs), and \
             this one is not ({}): {CLUSTER}",
            spec.describe()
        );
    };
    stores::require_catalog(&spec).await?;
    for dir in spec.exclusive_dirs() {
        if is_within(&args.to, dir) {
            anyhow::bail!(
                "--to {} is inside the installation's directory {}: back up elsewhere",
                args.to.display(),
                dir.display()
            );
        }
    }
    let bar = Bar::counting();
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let source = format!(
        "catalog {}, blobs {}",
        absolute(catalog).display(),
        absolute(blob_dir).display()
    );
    let taken = backup::backup(catalog, blob_dir, &args.to, &source, &bar).await;
    bar.clear();
    let taken = taken?;
    let m = &taken.manifest;
    println!(
        "backed up the catalog as of {} and {} stored variants ({} bytes in {} blobs: {} linked, \
         {} copied) into {}",
        m.created_at,
        m.variants,
        m.blob_bytes,
        m.blobs,
        taken.linked,
        taken.copied,
        args.to.display()
    );
    if taken.rounds > 1 {
        println!(
            "the catalog was copied {} times: the server deleted blobs named by the earlier copies",
            taken.rounds
        );
    }
    match &args.data.master_key_file {
        Some(path) => println!(
            "not in the backup: the master key file {} (keep it apart; the restored \
             installation needs the same one)",
            path.display()
        ),
        None => println!(
            "not in the backup: a master key file, if this installation uses one \
             (--master-key-file): the restored installation needs the same one"
        ),
    }
    println!(
        "restore with: vaultplus restore --from {} --data-dir NEW",
        args.to.display()
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let bar = Bar::counting();
    let restored = backup::restore(&args.from, &args.data_dir, &bar).await;
    bar.clear();
    let r = restored?;
    let m = &r.manifest;
    println!(
        "restored the backup of {} taken {}: {} stored variants ({} bytes in {} blobs: {} \
         linked, {} copied), all verified, into {}",
        m.source,
        m.created_at,
        m.variants,
        m.blob_bytes,
        m.blobs,
        r.linked,
        r.copied,
        args.data_dir.display()
    );
    println!(
        "start it with: vaultplus serve --data-dir {} (and the same --master-key-file as the \
         original, if it had one)",
        args.data_dir.display()
    );
    Ok(())
}

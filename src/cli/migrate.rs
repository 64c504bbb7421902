//! `vaultplus migrate --from DATA_DIR --to postgres://... --blobs s3://...`.

use std::path::PathBuf;

use clap::Args;

use super::S3Args;
use super::progress::Bar;
use super::secret::SecretOption;
use crate::migrate;
use crate::service::secret_box::{self, SecretBox};
use crate::stores::{self, OpenOptions, StoreSpec};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Data directory of the embedded installation (its server must be stopped).
    #[arg(long)]
    from: PathBuf,
    /// The cluster's catalog: postgres://user:password@host:port/db (a new, empty database). Holds the password: prefer --to-file.
    #[arg(long, env = "VAULTPLUS_DATABASE_URL", hide_env_values = true)]
    to: Option<String>,
    /// File holding the --to URL (one trailing newline is ignored); not together with --to [default: none].
    #[arg(long, env = "VAULTPLUS_DATABASE_URL_FILE")]
    to_file: Option<PathBuf>,
    /// The cluster's blob store: s3://bucket/prefix (or a local directory).
    #[arg(long, env = "VAULTPLUS_BLOBS")]
    blobs: String,
    #[command(flatten)]
    s3: S3Args,
    /// The master key the URL signing secrets are encrypted with, if they are: the copied secrets are checked to open with it (they are copied as stored, so the cluster needs the same key).
    #[arg(long, env = "VAULTPLUS_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let secret = SecretOption {
        value_name: "--to (VAULTPLUS_DATABASE_URL)",
        file_name: "--to-file (VAULTPLUS_DATABASE_URL_FILE)",
    };
    let Some(url) = secret.resolve(args.to.as_deref(), args.to_file.as_deref())? else {
        anyhow::bail!("give the cluster's catalog: --to-file (or --to)");
    };
    let to = StoreSpec::new(
        args.from.clone(),
        Some(&url),
        Some(&args.blobs),
        args.s3.options()?,
    )?;
    // Read first: a bad master key file fails before anything is copied.
    let secrets = match &args.master_key_file {
        Some(path) => Some(SecretBox::from_file(path)?),
        None => None,
    };
    let bar = Bar::counting();
    let report = migrate::migrate(&args.from, &to, &bar).await?;
    bar.clear();
    if report.already_done {
        println!("this data directory was already migrated; verified again");
    }
    for (table, source, _) in &report.tables {
        println!("verified {table}: {source} rows");
    }
    if let Some(secrets) = secrets {
        let target = stores::open(&to, OpenOptions::COMMAND).await?;
        secret_box::open_keys(target.catalog.as_ref(), &secrets).await?;
        println!("verified: the master key opens every URL signing secret");
    }
    println!(
        "migrated {} into {}; start the cluster nodes with the same --database and --blobs",
        args.from.display(),
        to.describe()
    );
    Ok(())
}

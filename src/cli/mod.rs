//! The command line: `serve`, the admin commands, `migrate`, `backup` and
//! `restore`.

mod backup;
mod config;
mod config_example;
mod config_file;
mod connections;
mod fsck;
mod keys;
mod master_key;
mod migrate;
mod option_keys;
mod progress;
mod reclaim;
mod redact;
mod retention;
mod secret;
mod signing_keys;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{self, ServeOptions};
use crate::blobs::s3::S3Options;
use crate::blobs::s3_ranged::{MAX_PART_BYTES, RangedReads};
use crate::http::server::Timeouts;
use crate::service::pipeline::PipelineConfig;
use crate::service::rate_limit::MAX_RATE;
use crate::service::secret_box::SecretBox;
use crate::service::throttle::RateLimitConfig;
use crate::service::webhooks::WebhookConfig;
use crate::stores::{self, OpenOptions, StoreSpec, Stores};
use secret::SecretOption;

#[derive(Parser, Debug)]
#[command(name = "vaultplus", version, about = "Self-hostable media cache server speaking the OFAuth Vault+ API", long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "VAULTPLUS_LOG_FORMAT")]
    log_format: LogFormat,
    /// Read options from this TOML file: each key is a long option, spelled the same (`listen = "0.0.0.0:8080"`); environment variables and flags win over it. Keys of other commands are ignored, unknown keys refused. See vaultplus.example.toml, and `vaultplus config` for where each value came from.
    #[arg(long, global = true, env = "VAULTPLUS_CONFIG", value_name = "FILE")]
    // Read by config_file before the real parse.
    #[allow(dead_code)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (embedded: a data directory; cluster: --database and --blobs).
    Serve(Box<ServeArgs>),
    /// Print the configuration serve would run with (takes serve's options), as TOML, with where each value came from; secrets redacted.
    Config(Box<config::ConfigArgs>),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Register, list and remove connections.
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// Apply retention policies now (the server also does, periodically).
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Check that the catalog and the bytes held agree (and repair).
    Fsck(fsck::FsckArgs),
    /// List, rotate or retire the keys that sign media URLs.
    #[command(subcommand)]
    SigningKeys(signing_keys::SigningKeysCommand),
    /// Make a master key file (for --master-key-file).
    #[command(subcommand)]
    MasterKey(master_key::MasterKeyCommand),
    /// Run a local stand-in for the upstream Access API (tests, demos).
    DemoUpstream(vaultplus_demo_upstream::DemoArgs),
    /// Inspect or drain the background reclaim of purged bytes.
    #[command(subcommand)]
    Reclaim(reclaim::ReclaimCommand),
    /// Move an embedded installation into a cluster (PostgreSQL + S3); resumable.
    Migrate(migrate::MigrateArgs),
    /// Copy a running embedded installation (catalog and blobs), consistently, into a new directory.
    Backup(backup::BackupArgs),
    /// Make a new data directory from a backup.
    Restore(backup::RestoreArgs),
}

const DATABASE_SECRET: SecretOption<'static> = SecretOption {
    value_name: "--database (VAULTPLUS_DATABASE_URL)",
    file_name: "--database-file (VAULTPLUS_DATABASE_URL_FILE)",
};
const S3_SECRET: SecretOption<'static> = SecretOption {
    value_name: "--s3-secret-access-key (VAULTPLUS_S3_SECRET_ACCESS_KEY)",
    file_name: "--s3-secret-access-key-file (VAULTPLUS_S3_SECRET_ACCESS_KEY_FILE)",
};
const UPSTREAM_SECRET: SecretOption<'static> = SecretOption {
    value_name: "--upstream-key (VAULTPLUS_UPSTREAM_KEY)",
    file_name: "--upstream-key-file (VAULTPLUS_UPSTREAM_KEY_FILE)",
};

/// Where the catalog and the blobs live: by default both in the data
/// directory; `--database` and `--blobs` point at a cluster's instead.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory (catalog.sqlite, blobs/, tmp/ unless --database or --blobs say otherwise).
    #[arg(long, env = "VAULTPLUS_DATA_DIR", default_value = "./vaultplus-data")]
    pub data_dir: PathBuf,
    /// Catalog: postgres://user:password@host:port/db (shared by every node of a cluster) or sqlite://path [default: <data dir>/catalog.sqlite]. Holds the password: prefer --database-file.
    #[arg(long, env = "VAULTPLUS_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// File holding the --database URL (one trailing newline is ignored); not together with --database [default: none].
    #[arg(long, env = "VAULTPLUS_DATABASE_URL_FILE")]
    pub database_file: Option<PathBuf>,
    /// Blob store: s3://bucket/prefix (shared by every node of a cluster) or a local directory [default: the data dir].
    #[arg(long, env = "VAULTPLUS_BLOBS")]
    pub blobs: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// File holding the master key that URL signing secrets are encrypted with at rest (32 random bytes in base64: `openssl rand -base64 32`, or `vaultplus master-key generate FILE`) [default: none: secrets are stored in plaintext].
    #[arg(long, env = "VAULTPLUS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The master key, if one is given.
    pub fn secrets(&self) -> anyhow::Result<SecretBox> {
        match &self.master_key_file {
            Some(path) => SecretBox::from_file(path),
            None => Ok(SecretBox::none()),
        }
    }

    pub fn spec(&self) -> anyhow::Result<StoreSpec> {
        let database =
            DATABASE_SECRET.resolve(self.database.as_deref(), self.database_file.as_deref())?;
        StoreSpec::new(
            self.data_dir.clone(),
            database.as_deref(),
            self.blobs.as_deref(),
            self.s3.options()?,
        )
    }

    /// Opens the stores for a one-shot command. A master key given is read
    /// (and so checked) even by commands that need none, so a broken
    /// `VAULTPLUS_MASTER_KEY_FILE` shows at once.
    pub async fn open(&self) -> anyhow::Result<Stores> {
        Ok(self.open_with_secrets().await?.0)
    }

    /// Opens the stores and reads the master key, if one is given. The
    /// stores must hold an installation already (see
    /// [`stores::require_catalog`]).
    pub async fn open_with_secrets(&self) -> anyhow::Result<(Stores, SecretBox)> {
        let secrets = self.secrets()?;
        let spec = self.spec()?;
        stores::require_catalog(&spec).await?;
        Ok((stores::open(&spec, OpenOptions::COMMAND).await?, secrets))
    }
}

/// How to reach an S3-compatible blob store (`--blobs s3://...`).
#[derive(Args, Debug, Clone)]
pub struct S3Args {
    /// S3 endpoint URL, for S3-compatible servers [default: AWS_ENDPOINT_URL, else AWS].
    #[arg(long, env = "VAULTPLUS_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "VAULTPLUS_S3_REGION")]
    s3_region: Option<String>,
    /// S3 access key ID [default: AWS_ACCESS_KEY_ID].
    #[arg(long, env = "VAULTPLUS_S3_ACCESS_KEY_ID")]
    s3_access_key_id: Option<String>,
    /// S3 secret access key [default: AWS_SECRET_ACCESS_KEY]. Prefer --s3-secret-access-key-file.
    #[arg(long, env = "VAULTPLUS_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
    /// File holding the S3 secret access key (one trailing newline is ignored); not together with --s3-secret-access-key [default: none].
    #[arg(long, env = "VAULTPLUS_S3_SECRET_ACCESS_KEY_FILE")]
    s3_secret_access_key_file: Option<PathBuf>,
    /// Allow a plain-HTTP S3 endpoint [default: AWS_ALLOW_HTTP, else false].
    #[arg(long, env = "VAULTPLUS_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true")]
    s3_allow_http: Option<bool>,
    /// Bytes of each ranged GET a large S3 read is split into; a read of at most this much is one GET.
    #[arg(long, env = "VAULTPLUS_S3_READ_PART_BYTES", default_value_t = RangedReads::default().part_bytes, value_parser = clap::value_parser!(u64).range(64 * 1024..=MAX_PART_BYTES))]
    s3_read_part_bytes: u64,
    /// GETs one large S3 read keeps in flight, served in order; the parts fetched ahead of the client wait in memory, at most this minus one per read and 256 MiB per node in all (beyond it a read fetches each part as it needs it); 1 reads every blob with one GET.
    #[arg(long, env = "VAULTPLUS_S3_READ_PARALLELISM", default_value_t = RangedReads::default().parallelism as u32, value_parser = clap::value_parser!(u32).range(1..=64))]
    s3_read_parallelism: u32,
}

impl S3Args {
    /// The options, without the bucket URL (given by `--blobs`).
    pub fn options(&self) -> anyhow::Result<S3Options> {
        Ok(S3Options {
            url: String::new(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: S3_SECRET.resolve(
                self.s3_secret_access_key.as_deref(),
                self.s3_secret_access_key_file.as_deref(),
            )?,
            allow_http: self.s3_allow_http,
            reads: RangedReads {
                part_bytes: self.s3_read_part_bytes,
                parallelism: self.s3_read_parallelism as usize,
                ..RangedReads::default()
            },
        })
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    stores: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "VAULTPLUS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Address to serve Prometheus metrics on, at /metrics, without an API key: bind it to a private interface (e.g. 127.0.0.1:9090) [default: none, no metrics are recorded].
    #[arg(long, env = "VAULTPLUS_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Base URL that media URLs are built on [default: http://<listen address>].
    #[arg(long, env = "VAULTPLUS_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest upload accepted, in bytes (larger ones get 413).
    #[arg(long, env = "VAULTPLUS_MAX_UPLOAD_BYTES", default_value_t = 5 * 1024 * 1024 * 1024)]
    max_upload_bytes: u64,
    /// Free-space floor of the blob store, in bytes: new stores get 507 when
    /// they would take it below, counting the bytes of uploads and fetches in
    /// progress as used (reads, deletes and purges keep working).
    #[arg(long, env = "VAULTPLUS_MIN_FREE_BYTES", default_value_t = 64 * 1024 * 1024)]
    min_free_bytes: u64,
    /// Uploads one connection (x-connection-id) may have in progress at once; more get 429 RATE_LIMIT_EXCEEDED with Retry-After. Counted per server node.
    #[arg(long, env = "VAULTPLUS_MAX_UPLOADS_PER_CONNECTION", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    max_uploads_per_connection: u32,
    /// Memory for small blobs (up to 256 KiB each) served often, in bytes; 0 turns it off.
    #[arg(long, env = "VAULTPLUS_BLOB_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    blob_cache_bytes: u64,
    /// Seconds between background reclaim runs (purges also wake it at once).
    #[arg(long, env = "VAULTPLUS_RECLAIM_INTERVAL_SECS", default_value_t = 30)]
    reclaim_interval_secs: u64,
    /// Largest share of the time (0.01-1) the background reclaim may work; it rests in between.
    #[arg(long, env = "VAULTPLUS_RECLAIM_SHARE", default_value_t = 0.5)]
    reclaim_share: f64,
    /// Base URL of the upstream Access API that media is fetched from (needs --upstream-key-file or --upstream-key).
    #[arg(long, env = "VAULTPLUS_UPSTREAM_URL")]
    upstream_url: Option<String>,
    /// API key sent to the upstream (`apiKey` header). Prefer --upstream-key-file.
    #[arg(
        long,
        env = "VAULTPLUS_UPSTREAM_KEY",
        requires = "upstream_url",
        hide_env_values = true
    )]
    upstream_key: Option<String>,
    /// File holding the upstream API key (one trailing newline is ignored); not together with --upstream-key [default: none].
    #[arg(long, env = "VAULTPLUS_UPSTREAM_KEY_FILE", requires = "upstream_url")]
    upstream_key_file: Option<PathBuf>,
    /// Upstream fetches running at once (as many thumbnails may be made beside them).
    #[arg(long, env = "VAULTPLUS_FETCH_CONCURRENCY", default_value_t = 8)]
    fetch_concurrency: usize,
    /// Failed attempts before a variant is given up (it stays visible, edge_only, with its error).
    #[arg(long, env = "VAULTPLUS_FETCH_ATTEMPTS", default_value_t = 5)]
    fetch_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt.
    #[arg(long, env = "VAULTPLUS_RETRY_BASE_MS", default_value_t = 500)]
    retry_base_ms: u64,
    /// Longest retry delay in seconds.
    #[arg(long, env = "VAULTPLUS_RETRY_CAP_SECS", default_value_t = 300)]
    retry_cap_secs: u64,
    /// Seconds a claimed job stays a worker's without its heartbeat (then another takes it over).
    #[arg(long, env = "VAULTPLUS_JOB_LEASE_SECS", default_value_t = 60)]
    job_lease_secs: u64,
    /// Seconds between fallback re-reads of the URL signing keys; changes by other processes (`signing-keys rotate|retire`) are signalled and reach the server within a second anyway.
    #[arg(long, env = "VAULTPLUS_KEY_RELOAD_SECS", default_value_t = crate::service::keyring::RELOAD_EVERY.as_secs())]
    key_reload_secs: u64,
    /// Seconds between retention sweeps (retentionDays, accessExpiryDays, storageLimitBytes).
    #[arg(long, env = "VAULTPLUS_SWEEP_INTERVAL_SECS", default_value_t = 300)]
    sweep_interval_secs: u64,
    /// Requests a minute per API key (token bucket; each org can lower it in its settings); 0 turns the limit off.
    #[arg(long, env = "VAULTPLUS_RATE_LIMIT_PER_MINUTE", default_value_t = 600, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RATE)))]
    rate_limit_per_minute: u32,
    /// Requests an API key may make at once, before the per-minute rate applies (the bucket's size); 0 turns the limit off.
    #[arg(long, env = "VAULTPLUS_RATE_LIMIT_BURST", default_value_t = 300, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RATE)))]
    rate_limit_burst: u32,
    /// Requests a minute per client address on media URLs (/v2/media/...), which carry no API key; the burst is the same number; 0 (the default) turns the limit off.
    #[arg(long, env = "VAULTPLUS_MEDIA_RATE_LIMIT_PER_MINUTE", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RATE)))]
    media_rate_limit_per_minute: u32,
    /// Reverse proxy (IP address or CIDR block) whose X-Forwarded-For names the client, for the media rate limit; repeat the option or separate with commas. [default: none, the TCP peer is the client]
    #[arg(long, env = "VAULTPLUS_TRUSTED_PROXY", value_delimiter = ',', value_parser = crate::http::client_ip::parse_trusted)]
    trusted_proxy: Vec<ipnet::IpNet>,
    /// On a cluster (--database postgres://): seconds after which an unfinished upload or fetch is taken for dead and its bytes reclaimed; must exceed the longest upload. (An embedded server reclaims them at its next start.)
    #[arg(long, env = "VAULTPLUS_STALE_UPLOAD_SECS", default_value_t = 6 * 3600)]
    stale_upload_secs: u64,
    /// Seconds a client may take to send a whole request head (also: to send anything on a new connection); then 408 and close.
    #[arg(long, env = "VAULTPLUS_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,
    /// Seconds without a byte of a request body before the upload is cut (any honest speed works: only silence counts).
    #[arg(long, env = "VAULTPLUS_BODY_IDLE_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_idle_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open between requests.
    #[arg(long, env = "VAULTPLUS_KEEP_ALIVE_IDLE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    keep_alive_idle_secs: u64,
    /// Seconds a client may take no byte of a response before the connection is dropped.
    #[arg(long, env = "VAULTPLUS_WRITE_IDLE_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    write_idle_timeout_secs: u64,
    /// Most client connections at once; at the cap the oldest idle one is closed for a new one, or the new one is closed when all are busy [default: from the open-file limit (raised to its hard limit at start): (limit - max(64, limit/8)) / 2, at most 8192].
    #[arg(long, env = "VAULTPLUS_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Accept webhook endpoint URLs whose host is loopback, private, link-local or unspecified (a closed network, tests); by default only public addresses are accepted.
    #[arg(long, env = "VAULTPLUS_ALLOW_PRIVATE_WEBHOOKS", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    allow_private_webhooks: bool,
    /// First retry delay of a failed webhook delivery, in milliseconds; doubles per attempt up to --webhook-retry-cap-secs.
    #[arg(long, env = "VAULTPLUS_WEBHOOK_RETRY_BASE_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_retry_base_ms: u64,
    /// Longest retry delay of a webhook delivery, in seconds.
    #[arg(long, env = "VAULTPLUS_WEBHOOK_RETRY_CAP_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_retry_cap_secs: u64,
    /// Seconds a webhook event is retried (on 5xx or any other non-2xx answer, timeouts and connection errors); then it is dropped, and its endpoint, if it answered no delivery with a 2xx meanwhile, is disabled and says so in its listing.
    #[arg(long, env = "VAULTPLUS_WEBHOOK_RETRY_WINDOW_SECS", default_value_t = 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_retry_window_secs: u64,
    /// Seconds one webhook delivery attempt may take, connecting included.
    #[arg(long, env = "VAULTPLUS_WEBHOOK_TIMEOUT_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=300))]
    webhook_timeout_secs: u64,
    /// Webhook deliveries one node makes at once.
    #[arg(long, env = "VAULTPLUS_WEBHOOK_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    webhook_concurrency: u32,
    /// On SIGTERM or SIGINT: seconds that responses and downloads in progress may take to finish (new connections are refused at once), and then the background workers to end their step; a second signal exits at once (status 130).
    #[arg(long, env = "VAULTPLUS_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    shutdown_grace_secs: u64,
}

pub fn run() -> anyhow::Result<()> {
    let parsed = config_file::parse(std::env::args_os().collect())?;
    let cli = parsed.cli;
    let default_level = match cli.command {
        Command::Serve(_) | Command::DemoUpstream(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(a) => {
                let a = *a;
                let upstream_key = UPSTREAM_SECRET
                    .resolve(a.upstream_key.as_deref(), a.upstream_key_file.as_deref())?;
                let upstream = match (a.upstream_url, upstream_key) {
                    (Some(url), Some(key)) => Some((url, key)),
                    (Some(_), None) => anyhow::bail!(
                        "--upstream-url needs the upstream's API key: give {} (or {})",
                        UPSTREAM_SECRET.file_name,
                        UPSTREAM_SECRET.value_name
                    ),
                    // clap refuses a key without --upstream-url.
                    (None, _) => None,
                };
                app::serve(ServeOptions {
                    secrets: a.stores.secrets()?,
                    stores: a.stores.spec()?,
                    listen: a.listen,
                    metrics_listen: a.metrics_listen,
                    public_url: a.public_url,
                    max_upload_bytes: a.max_upload_bytes,
                    min_free_bytes: a.min_free_bytes,
                    max_uploads_per_connection: a.max_uploads_per_connection as usize,
                    blob_cache_bytes: a.blob_cache_bytes,
                    reclaim_interval: Duration::from_secs(a.reclaim_interval_secs.max(1)),
                    reclaim_share: a.reclaim_share.clamp(0.01, 1.0),
                    upstream,
                    pipeline: PipelineConfig {
                        concurrency: a.fetch_concurrency.max(1),
                        lease: Duration::from_secs(a.job_lease_secs.max(3)),
                        max_attempts: a.fetch_attempts.max(1),
                        backoff_base: Duration::from_millis(a.retry_base_ms.max(1)),
                        backoff_cap: Duration::from_secs(a.retry_cap_secs.max(1)),
                    },
                    key_reload: Duration::from_secs(a.key_reload_secs.max(1)),
                    sweep_interval: Duration::from_secs(a.sweep_interval_secs.max(1)),
                    stale_upload: Duration::from_secs(a.stale_upload_secs.max(1)),
                    timeouts: Timeouts {
                        header: Duration::from_secs(a.header_timeout_secs),
                        body_idle: Duration::from_secs(a.body_idle_timeout_secs),
                        keep_alive_idle: Duration::from_secs(a.keep_alive_idle_secs),
                        write_idle: Duration::from_secs(a.write_idle_timeout_secs),
                    },
                    max_connections: a.max_connections.map(|n| n as usize),
                    shutdown_grace: Duration::from_secs(a.shutdown_grace_secs),
                    webhooks: WebhookConfig {
                        allow_private: a.allow_private_webhooks,
                        retry_base: Duration::from_millis(a.webhook_retry_base_ms),
                        retry_cap: Duration::from_secs(a.webhook_retry_cap_secs),
                        retry_window: Duration::from_secs(a.webhook_retry_window_secs),
                        timeout: Duration::from_secs(a.webhook_timeout_secs),
                        concurrency: a.webhook_concurrency as usize,
                    },
                    rate_limits: RateLimitConfig {
                        per_minute: a.rate_limit_per_minute,
                        burst: a.rate_limit_burst,
                        media_per_minute: a.media_rate_limit_per_minute,
                        trusted_proxies: a.trusted_proxy,
                    },
                })
                .await
            }
            Command::Keys(c) => keys::run(c).await,
            Command::Connections(c) => connections::run(c).await,
            Command::Reclaim(c) => reclaim::run(c).await,
            Command::SigningKeys(c) => signing_keys::run(c).await,
            Command::MasterKey(c) => master_key::run(c),
            Command::Fsck(a) => fsck::run(a).await,
            Command::Retention(c) => retention::run(c).await,
            Command::DemoUpstream(a) => {
                vaultplus_demo_upstream::run(a, crate::app::shutdown_signal()).await
            }
            Command::Migrate(a) => migrate::run(a).await,
            Command::Config(a) => {
                let matches = parsed.matches.subcommand_matches("config");
                config::run(&a, matches.expect("config matched"), parsed.file.as_ref());
                Ok(())
            }
            Command::Backup(a) => backup::backup(a).await,
            Command::Restore(a) => backup::restore(a).await,
        }
    })
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

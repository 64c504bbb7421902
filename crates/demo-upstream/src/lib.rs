//! `vaultplus demo-upstream`: a local stand-in for the upstream Access API
//! (see docs/reference/upstream.md), with deterministic vault lists of
//! real media and injectable faults, for tests, benchmarks and the README's
//! quick start.
//!
//! # Lists
//! Media IDs are `4492994399 + n`. Bytes depend only on media ID, revision
//! and rendition, so checksums match across restarts.
//!
//! | list | name | contents (`n`) |
//! | --- | --- | --- |
//! | 101 | Photos | `n` 0-11: JPEG and PNG photos (full 1200x800, 800x1200 or 640x640; `thumb` ~200 px, `preview` ~600 px, `squarePreview` 300x300, all JPEG) and an animated GIF (`n` 8, `type: gif`). `n` 1, 3, 5, 7, 9 have no `thumb`. |
//! | 102 | Videos | `n` 100-105: MP4 `full` (0.3-4.5 MB), MP4 `preview` (1/8 of it), JPEG `thumb`; durations 5-45 s. |
//! | 103 | Audio | `n` 200-203: MP3 `full` only (128 kbit/s), 12-180 s. |
//! | 104 | Mixed | `n` 0, 1, 5 (shared with 101), 100 (video), 200 (audio), 303 (a PNG of its own), then 300 `canView:false` (files listed and served), 301 `isReady:false` (`files: null`), 302 `hasError:true`. |
//! | 105 | Large | `n` 10000-10999: 1,000 small JPEGs (160x120 / 120x160, `full` only), encoded on request. |
//! | 106 | Huge | `n` 20000: one MP4 of exactly 200 MiB (209715200 bytes), generated while it streams. |
//! | 107 | Bulk | `n` 1000000 on: `--bulk-items` (default 200,000) audio items, each one 427-byte MP3 `full`, made from the ID on request (the list holds only IDs). |
//!
//! # Routes
//! - `GET /v2/access/vault/lists?limit&offset` and `GET
//!   /v2/access/vault/lists/{listId}/media?limit&offset` (limit default 10,
//!   larger than 100 served as 100). Both need `apiKey` (else 401
//!   `UNAUTHORIZED`) and `x-connection-id` (else 401 `SESSION_NOT_PROVIDED`);
//!   unknown list 404 `RESOURCE_NOT_FOUND`.
//! - `GET|HEAD /cdn/{mediaId}/{revision}/{rendition}.{ext}?exp&sig`: no API
//!   key; bad signature or past `exp` 403; a URL of an older revision 404.
//! - `/_demo/` (no auth): `POST lists/{listId}/remove/{mediaId}`, `POST
//!   lists/{listId}/add/{mediaId}` (any known media ID, appended), `POST
//!   media/{mediaId}/change` (revision + 1: URL path, bytes and `size` of
//!   every rendition change), `GET|PUT faults` (camelCase fields of
//!   `faults::FaultSettings` plus `seed`; a PUT changes only the fields it
//!   names, and setting `failFirst` restarts its counts; `holdListFrom: N`
//!   holds list-media pages from offset N until it is set back to 0, for at
//!   most 30 s), `POST reset`
//!   (initial lists and revisions, no faults, seed from `--seed`, counters
//!   zeroed), `GET stats` (`listRequests`, `cdnRequests`, `cdnOk`,
//!   `cdnRejected`, and `cdn: {"{mediaId}/{rendition}": {requests, ok}}`,
//!   GETs only).
//!
//! # Faults
//! Rates draw from one SplitMix64 generator seeded by `--seed`: the same
//! sequence of requests meets the same faults. `--fail-first N` fails the
//! first N GETs of each rendition file (media, revision, rendition) with
//! 500, before any rate applies.

mod admin;
mod api;
mod catalog;
mod cdn;
mod faults;
mod imagegen;
mod render;
mod routes;
mod state;
mod synth;
#[cfg(test)]
mod tests;
mod urls;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use faults::{FaultSettings, check_rate};
use routes::Demo;
use state::World;

/// How long open connections (a slow 200 MiB body, say) get to finish after
/// SIGINT/SIGTERM before the process stops anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Address to listen on (`:0` picks a free port).
    #[arg(long, env = "VAULTPLUS_DEMO_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Base of the CDN URLs handed out [default: http://ADDR, the bound address].
    #[arg(long, env = "VAULTPLUS_DEMO_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The key clients must send in the `apiKey` header.
    #[arg(long, env = "VAULTPLUS_DEMO_API_KEY", default_value = "demo-key")]
    pub api_key: String,
    /// Lifetime of the signed CDN URLs in listings.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub url_ttl_secs: u64,
    /// Seed of the generator that decides rate-based faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of list-API and CDN requests answered 500.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// Delay in ms between 64 KiB chunks of CDN bodies.
    #[arg(long, default_value_t = 0)]
    pub slow_body_ms: u64,
    /// Fraction of CDN bodies closed after half, with the full Content-Length.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub truncate_rate: f64,
    /// Fraction of CDN bodies cut 100 bytes short with a matching Content-Length.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub wrong_length_rate: f64,
    /// Fraction of CDN requests answered 403 as for an expired URL.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub expired_rate: f64,
    /// Fraction of list-API and CDN requests answered 429 with `Retry-After: 1`.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_limit_rate: f64,
    /// The list API answers 401 SESSION_EXPIRED.
    #[arg(long)]
    pub session_expired: bool,
    /// The first N CDN fetches of each rendition answer 500.
    #[arg(long, default_value_t = 0)]
    pub fail_first: u32,
    /// Items of list 107 (tiny synthetic audio, generated on request).
    #[arg(long, default_value_t = catalog::BULK_DEFAULT,
          value_parser = clap::value_parser!(u64).range(0..=catalog::BULK_MAX))]
    pub bulk_items: u64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    check_rate(v)
}

/// Serves until `shutdown` completes (the caller's SIGINT/SIGTERM handler:
/// the binary that embeds this crate owns the process and its signals),
/// then gives open connections [`SHUTDOWN_GRACE`] to finish.
pub async fn run(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // `:0` alone means a free port on loopback, like the other commands.
    let listen = if args.listen.starts_with(':') {
        format!("127.0.0.1{}", args.listen)
    } else {
        args.listen.clone()
    };
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    let faults = FaultSettings {
        error_rate: args.error_rate,
        slow_body_ms: args.slow_body_ms,
        truncate_rate: args.truncate_rate,
        wrong_length_rate: args.wrong_length_rate,
        expired_rate: args.expired_rate,
        rate_limit_rate: args.rate_limit_rate,
        session_expired: args.session_expired,
        fail_first: args.fail_first,
        hold_list_from: 0,
    };
    let demo = Arc::new(Demo::new(
        World::with_bulk(faults.clone(), args.seed, args.bulk_items),
        urls::Signer::random(),
        args.api_key.clone(),
        public_url.clone(),
        args.url_ttl_secs,
        args.seed,
    ));

    // Tests read this exact first line to learn the address.
    println!("demo-upstream listening on http://{addr}");
    print_summary(&args, &public_url, &faults);
    // No warm-up of the image cache: test suites start many of these at
    // once, and most use only some lists; a listing encodes what it lists,
    // on all cores, and each image only once.

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, routes::router(demo)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let deadline = async move {
        let _ = stop_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server.into_future() => served?,
        _ = deadline => tracing::warn!("connections still open; stopping anyway"),
    }
    tracing::info!("demo-upstream stopped");
    Ok(())
}

fn print_summary(args: &DemoArgs, public_url: &str, faults: &FaultSettings) {
    println!(
        "  public URL {public_url}, apiKey {:?}, URL TTL {} s, seed {}",
        args.api_key, args.url_ttl_secs, args.seed
    );
    for l in catalog::initial_lists(args.bulk_items) {
        let first = l.media.first().copied().unwrap_or(0);
        let last = l.media.last().copied().unwrap_or(0);
        println!(
            "  list {} {:<6} {:>6} items ({first}..{last}): {}",
            l.id,
            l.name,
            l.media.len(),
            l.about
        );
    }
    if *faults != FaultSettings::default() {
        match serde_json::to_string(faults) {
            Ok(f) => println!("  faults {f}"),
            Err(e) => tracing::warn!(error = %e, "cannot show faults"),
        }
    }
    println!("  test controls under /_demo/ (faults, stats, reset, list and media changes)");
}

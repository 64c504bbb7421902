//! `--metrics-listen`: the Prometheus text format, read by a real parser
//! (`openmetrics-parser`, which passes the OpenMetrics test cases); each
//! family present, and moving after the traffic that should move it.

use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use reqwest::Method;

pub type Scrape = MetricsExposition<PrometheusType, PrometheusValue>;

use crate::harness::{TestServer, body, bytes};

const METRICS: &[&str] = &["--metrics-listen", "127.0.0.1:0"];
const PUT_ROUTE: &str = "/v2/vault-plus/media/{mediaId}/variants/{label}";

pub async fn scrape(s: &TestServer) -> Scrape {
    let url = s
        .metrics
        .as_deref()
        .expect("the server printed its metrics URL");
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().await.unwrap();
    openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("not the exposition format ({e:?}):\n{text}"))
}

/// The sum over the samples of `name` carrying every label in `labels`
/// (a histogram counts its observations); None when there is none.
pub fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = s
        .families
        .get(name)?
        .iter_samples()
        .filter(|x| {
            let set = x
                .get_labelset()
                .expect("samples of a family have its labels");
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|x| match &x.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            PrometheusValue::Gauge(v) | PrometheusValue::Unknown(v) => v.as_f64(),
            PrometheusValue::Histogram(h) => h.count.unwrap_or(0) as f64,
            PrometheusValue::Summary(_) => f64::NAN,
        })
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let after = value(after, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} missing"));
    after - value(before, name, labels).unwrap_or(0.0)
}

#[tokio::test]
async fn families_are_present_and_move_with_traffic() {
    let s = TestServer::start_with(METRICS).await;
    s.add_connection("default", "conn_a");
    let before = scrape(&s).await;
    let catalog = if s.backend.is_cluster() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(
        value(
            &before,
            "vaultplus_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("catalog", catalog)]
        ),
        Some(1.0)
    );
    assert_eq!(value(&before, "vaultplus_stored_variants", &[]), Some(0.0));

    let stored = s
        .put("conn_a", "1", "full", "image/png", bytes(1, 5000))
        .await;
    let url = stored["url"].as_str().unwrap().to_owned();
    let got = s.http.get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().len(), 5000);
    let missing = s.conn(Method::GET, "/v2/vault-plus/media/77", "conn_a");
    assert_eq!(missing.send().await.unwrap().status(), 404);
    let unknown = s.req(Method::GET, "/no/such/route").send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let mid = scrape(&s).await;
    let put = [("route", PUT_ROUTE), ("method", "PUT"), ("status", "2xx")];
    assert_eq!(
        moved(&before, &mid, "vaultplus_http_requests_total", &put),
        1.0
    );
    let timed = [("route", PUT_ROUTE), ("method", "PUT")];
    assert_eq!(
        moved(
            &before,
            &mid,
            "vaultplus_http_request_duration_seconds",
            &timed
        ),
        1.0
    );
    let media = [("route", "/v2/media/{token}"), ("status", "2xx")];
    assert_eq!(
        moved(&before, &mid, "vaultplus_http_requests_total", &media),
        1.0
    );
    let item = [
        ("route", "/v2/vault-plus/media/{mediaId}"),
        ("status", "4xx"),
    ];
    assert_eq!(
        moved(&before, &mid, "vaultplus_http_requests_total", &item),
        1.0
    );
    let unrouted = [("route", "none"), ("status", "4xx")];
    assert_eq!(
        moved(&before, &mid, "vaultplus_http_requests_total", &unrouted),
        1.0
    );
    assert!(
        moved(
            &before,
            &mid,
            "vaultplus_http_response_body_bytes_total",
            &[]
        ) >= 5000.0
    );
    assert_eq!(value(&mid, "vaultplus_stored_variants", &[]), Some(1.0));
    assert_eq!(value(&mid, "vaultplus_stored_bytes", &[]), Some(5000.0));
    // The last response ends when hyper drops its body, just after the
    // client has read it: wait for that rather than race it.
    let mut in_flight = value(&mid, "vaultplus_http_requests_in_flight", &[]);
    for _ in 0..100 {
        if in_flight == Some(0.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        in_flight = value(&scrape(&s).await, "vaultplus_http_requests_in_flight", &[]);
    }
    assert_eq!(in_flight, Some(0.0));
    assert!(value(&mid, "vaultplus_http_connections_open", &[]).is_some());
    assert!(value(&mid, "vaultplus_blob_store_min_free_bytes", &[]).is_some());
    // Labels are templates: no media ID, connection or token in any.
    for family in mid.families.values() {
        for sample in family.iter_samples() {
            let set = sample.get_labelset().unwrap();
            if let Some(route) = set.get_label_value("route") {
                assert!(route == "none" || route.starts_with('/'), "route {route}");
                assert!(!route.contains("/1"), "raw path {route}");
                assert!(
                    !url.contains(route) || route.contains('{'),
                    "raw path {route}"
                );
            }
        }
    }

    let purge = s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a");
    assert_eq!(purge.send().await.unwrap().status(), 200);
    let after = scrape(&s).await;
    assert_eq!(
        moved(&mid, &after, "vaultplus_purges_total", &[("via", "purge")]),
        1.0
    );
    assert_eq!(
        moved(&mid, &after, "vaultplus_purged_variants_total", &[]),
        1.0
    );
    assert_eq!(
        moved(&mid, &after, "vaultplus_purged_bytes_total", &[]),
        5000.0
    );
    assert_eq!(
        moved(&mid, &after, "vaultplus_purge_duration_seconds", &[]),
        1.0
    );
    assert_eq!(value(&after, "vaultplus_stored_variants", &[]), Some(0.0));
    assert!(value(&after, "vaultplus_reclaim_queued_blobs", &[]).is_some());
}

#[tokio::test]
async fn rate_limited_requests_are_counted() {
    let mut args = METRICS.to_vec();
    args.extend(["--rate-limit-per-minute", "1", "--rate-limit-burst", "1"]);
    let s = TestServer::start_with(&args).await;
    s.add_connection("default", "conn_a");
    let statuses = [
        s.conn(Method::GET, "/v2/vault-plus/status", "conn_a"),
        s.conn(Method::GET, "/v2/vault-plus/status", "conn_a"),
    ];
    let mut got = Vec::new();
    for r in statuses {
        got.push(r.send().await.unwrap().status().as_u16());
    }
    assert_eq!(got, [200, 429]);
    let m = scrape(&s).await;
    let limited = value(
        &m,
        "vaultplus_rate_limited_requests_total",
        &[("limit", "api_key")],
    );
    assert_eq!(limited, Some(1.0));
}

#[tokio::test]
async fn the_api_port_serves_no_metrics() {
    let s = TestServer::start_with(METRICS).await;
    let r = s.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let plain = TestServer::start().await;
    assert!(
        plain.metrics.is_none(),
        "no metrics URL without --metrics-listen"
    );
}

/// The metric families the README's Metrics table lists.
fn documented() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Metrics section");
    families_in(table)
}

fn families_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("vaultplus_"))
        .map(|w| w.trim_end_matches("_bucket").to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn the_readme_and_the_dashboard_name_what_is_served() {
    let s = TestServer::start_with(METRICS).await;
    s.add_connection("default", "conn_a");
    s.put("conn_a", "1", "full", "image/png", bytes(1, 10))
        .await;
    let purge = s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a");
    assert_eq!(purge.send().await.unwrap().status(), 200);
    let served = scrape(&s).await;
    let documented = documented();
    // Recorded only when something happens that this test avoids (a
    // rate limit and a failing store are other tests' traffic).
    let mut quiet = vec![
        "vaultplus_rate_limited_requests_total",
        "vaultplus_metrics_scrape_errors_total",
        // No upstream here, and nothing served (another test's traffic).
        "vaultplus_upstream_requests_total",
        "vaultplus_upstream_request_duration_seconds",
        "vaultplus_storing_attempts_total",
        "vaultplus_media_responses_total",
        "vaultplus_lookup_cache_requests_total",
        "vaultplus_blob_cache_requests_total",
        "vaultplus_blob_cache_bytes",
        "vaultplus_blob_cache_entries",
        // Reclaim runs after the purge, at its own pace.
        "vaultplus_reclaimed_blobs_total",
        "vaultplus_reclaimed_records_total",
        "vaultplus_reclaim_deletion_failures_total",
    ];
    if s.backend.is_cluster() {
        // S3 has no free-space figure.
        quiet.push("vaultplus_blob_store_free_bytes");
    }
    for name in &documented {
        assert!(
            served.families.contains_key(name) || quiet.contains(&name.as_str()),
            "the README lists {name}, which the server does not serve"
        );
    }
    for name in served
        .families
        .keys()
        .filter(|n| n.starts_with("vaultplus_"))
    {
        assert!(
            documented.contains(name),
            "{name} is served but not in the README"
        );
    }
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/grafana-dashboard.json"
    ))
    .unwrap();
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let plotted = families_in(&dashboard);
    for name in &plotted {
        assert!(
            documented.contains(name),
            "the dashboard plots unknown {name}"
        );
    }
    for name in &documented {
        assert!(plotted.contains(name), "the dashboard does not plot {name}");
    }
}

#[tokio::test]
async fn storing_serving_and_reclaim_families_move() {
    use crate::demo::{Demo, PHOTOS, VIDEOS, server_for, status, sync, wait_idle};
    use serde_json::json;

    let demo = Demo::start(&[]);
    let mut flags = METRICS.to_vec();
    flags.extend(["--fetch-attempts", "1"]);
    let s = server_for(&demo, &flags).await;
    let before = scrape(&s).await;
    let (code, answer) = sync(&s, PHOTOS).await;
    assert_eq!(code, 200, "{answer}");
    wait_idle(&s).await;
    let stored = status(&s).await["storedCount"].as_f64().unwrap();
    assert!(stored > 0.0);
    let m = scrape(&s).await;
    let fetched = moved(
        &before,
        &m,
        "vaultplus_upstream_requests_total",
        &[("kind", "fetch"), ("outcome", "ok")],
    );
    let listed = [("kind", "list"), ("outcome", "ok")];
    assert!(moved(&before, &m, "vaultplus_upstream_requests_total", &listed) >= 1.0);
    let fetch_time = [("kind", "fetch")];
    assert_eq!(
        moved(
            &before,
            &m,
            "vaultplus_upstream_request_duration_seconds",
            &fetch_time
        ),
        fetched
    );
    // Each stored variant is one successful attempt (thumbnails are
    // derived, not fetched).
    let attempts = [("outcome", "stored")];
    assert_eq!(
        moved(&before, &m, "vaultplus_storing_attempts_total", &attempts),
        stored
    );
    for state in ["waiting", "running", "failed"] {
        assert_eq!(
            value(&m, "vaultplus_jobs", &[("state", state)]),
            Some(0.0),
            "{state}"
        );
    }
    // Group commit: each stored variant was committed in some transaction
    // of the pipeline, one or more variants each.
    let committed = [("op", "commit_jobs")];
    let commits = moved(
        &before,
        &m,
        "vaultplus_catalog_operation_duration_seconds",
        &committed,
    );
    assert!(
        commits >= 1.0 && commits <= 2.0 * stored,
        "{commits} for {stored}"
    );
    // Each batch committed jointly: none fell back to one at a time (what
    // a joint path broken on one backend would do, slowly but silently).
    let fallback = [("op", "commit_jobs_one_at_a_time")];
    assert_eq!(
        value(
            &m,
            "vaultplus_catalog_operation_duration_seconds",
            &fallback
        ),
        None
    );
    // The pipeline writes in two steps, each timed.
    for op in ["put_unsettled", "settle"] {
        let n = moved(
            &before,
            &m,
            "vaultplus_blob_store_operation_duration_seconds",
            &[("op", op)],
        );
        assert!(n >= stored, "{op}: {n} for {stored}");
    }
    assert_eq!(
        value(&m, "vaultplus_blob_store_reserved_bytes", &[]),
        Some(0.0)
    );
    assert!(value(&m, "vaultplus_catalog_pool_max_connections", &[]).is_some());
    assert!(
        value(
            &m,
            "vaultplus_catalog_pool_connections",
            &[("state", "idle")]
        )
        .is_some()
    );

    // Serving: a small thumbnail twice, and a forged token.
    let page = body(s.conn(Method::GET, "/v2/vault-plus/media?limit=1", "conn_a")).await;
    let thumb = page["items"][0]["media"]["thumb"]["url"]
        .as_str()
        .expect("a thumbnail")
        .to_owned();
    for _ in 0..2 {
        assert_eq!(s.http.get(&thumb).send().await.unwrap().status(), 200);
    }
    let forged = format!("{}x", thumb.trim_end_matches(|c: char| c != '/'));
    assert_eq!(s.http.get(&forged).send().await.unwrap().status(), 403);
    let served = scrape(&s).await;
    let ok = [("status", "200")];
    assert_eq!(
        moved(&m, &served, "vaultplus_media_responses_total", &ok),
        2.0
    );
    let refused = [("status", "403")];
    assert_eq!(
        moved(&m, &served, "vaultplus_media_responses_total", &refused),
        1.0
    );
    let lookups = |r| {
        moved(
            &m,
            &served,
            "vaultplus_lookup_cache_requests_total",
            &[("result", r)],
        )
    };
    // The second may hit (or miss: on SQLite if a commit such as the
    // access-count flush came between, on a cluster node before its first
    // lease is granted).
    let hits = value(
        &served,
        "vaultplus_lookup_cache_requests_total",
        &[("result", "hit")],
    );
    assert_eq!(
        lookups("miss") + hits.unwrap_or(0.0)
            - value(
                &m,
                "vaultplus_lookup_cache_requests_total",
                &[("result", "hit")]
            )
            .unwrap_or(0.0),
        2.0
    );
    let cached = |r| {
        moved(
            &m,
            &served,
            "vaultplus_blob_cache_requests_total",
            &[("result", r)],
        )
    };
    assert_eq!((cached("miss"), cached("hit")), (1.0, 1.0));
    // (Thumbnailing read the full images through the cache too.)
    assert!(value(&served, "vaultplus_blob_cache_entries", &[]).unwrap() >= 1.0);
    assert!(value(&served, "vaultplus_blob_cache_bytes", &[]).unwrap() > 0.0);

    // Upstream refusals: a 429 counted by outcome; a body cut short every
    // time, and the job given up (one attempt allowed).
    demo.faults(json!({"rateLimitRate": 1.0})).await;
    let (code, answer) = sync(&s, VIDEOS).await;
    assert_ne!(code, 200, "{answer}");
    let limited_scrape = scrape(&s).await;
    let limited = [("kind", "list"), ("outcome", "rate_limited")];
    assert!(
        moved(
            &served,
            &limited_scrape,
            "vaultplus_upstream_requests_total",
            &limited
        ) >= 1.0
    );
    demo.faults(json!({"rateLimitRate": 0.0, "truncateRate": 1.0}))
        .await;
    let (code, answer) = sync(&s, VIDEOS).await;
    assert_eq!(code, 200, "{answer}");
    wait_idle(&s).await;
    let faulted = scrape(&s).await;
    let failed = value(&faulted, "vaultplus_jobs", &[("state", "failed")]).unwrap();
    assert!(failed >= 1.0);
    let given_up = [("outcome", "failed")];
    assert_eq!(
        moved(
            &served,
            &faulted,
            "vaultplus_storing_attempts_total",
            &given_up
        ),
        failed
    );

    // Purge, then reclaim deletes what it held.
    demo.no_faults().await;
    let purge = s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a");
    assert_eq!(purge.send().await.unwrap().status(), 200);
    s.wait_reclaimed().await;
    let mut reclaimed = 0.0;
    for _ in 0..200 {
        let now = scrape(&s).await;
        reclaimed = moved(&faulted, &now, "vaultplus_reclaimed_blobs_total", &[]);
        if reclaimed >= stored {
            assert!(moved(&faulted, &now, "vaultplus_reclaimed_records_total", &[]) >= stored);
            assert_eq!(
                moved(
                    &faulted,
                    &now,
                    "vaultplus_purges_total",
                    &[("via", "purge")]
                ),
                1.0
            );
            assert!(value(&now, "vaultplus_reclaim_deletion_failures_total", &[]).is_some());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(reclaimed >= stored, "reclaimed {reclaimed} of {stored}");
}

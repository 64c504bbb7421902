//! `GET /v2/vault-plus/media` (API 4.1; DEC "Query", "Media and
//! variants"): filters, sorts, keyset cursors, bad parameters.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use super::purge::wait_for_removed;
use super::*;
use crate::harness::TestServer;

/// 25 media IDs of mixed lengths, so that string order differs from
/// numeric order.
const IDS: [&str; 25] = [
    "5",
    "40",
    "300",
    "2000",
    "17",
    "9",
    "81",
    "99999999999999999999999999999999",
    "12",
    "7",
    "450",
    "3",
    "1000",
    "64",
    "8",
    "250",
    "33",
    "1",
    "777",
    "20",
    "6",
    "4492994399",
    "4492994400",
    "15",
    "2",
];

const DURATIONS: [&str; 5] = ["30", "10", "45", "30", "10"];

/// Uploads item `i` of the corpus: images (no duration), videos and audio
/// with many duration ties; every fourth item also gets a PNG thumb.
async fn put_item(s: &TestServer, conn: &str, i: usize, id: &str) {
    let dur = DURATIONS[i % DURATIONS.len()];
    match i % 3 {
        0 => create(s, conn, id, "full", "image/jpeg", 20 + i, None).await,
        1 => create(s, conn, id, "full", "video/mp4", 20 + i, Some(dur)).await,
        _ => create(s, conn, id, "full", "audio/mpeg", 20 + i, Some(dur)).await,
    };
    if i.is_multiple_of(4) {
        create(s, conn, id, "thumb", "image/png", 5, None).await;
    }
}

async fn corpus(s: &TestServer, conn: &str) {
    s.add_connection("default", conn);
    for (i, id) in IDS.iter().enumerate() {
        put_item(s, conn, i, id).await;
    }
}

/// What the sort and filter rules look at, read back from the server.
#[derive(Clone, Debug)]
struct Row {
    id: String,
    kind: String,
    /// Item's first-observed time: its earliest variant `createdAt`.
    created: i64,
    /// Item's latest `storedAt` (DEC: `cachedAt`).
    cached: Option<i64>,
    duration: Option<f64>,
    content_types: BTreeSet<String>,
}

fn row(item: &Value) -> Row {
    let media = item["media"].as_object().expect("media map");
    Row {
        id: item["id"].as_str().unwrap().to_owned(),
        kind: item["type"].as_str().unwrap().to_owned(),
        created: media.values().map(|v| int(&v["createdAt"])).min().unwrap(),
        cached: media.values().filter_map(|v| v["storedAt"].as_i64()).max(),
        duration: item["duration"].as_f64(),
        content_types: media
            .values()
            .map(|v| v["contentType"].as_str().unwrap().to_owned())
            .collect(),
    }
}

async fn rows(s: &TestServer, conn: &str) -> Vec<Row> {
    list_all(s, conn, &[("limit", "100")])
        .await
        .iter()
        .map(row)
        .collect()
}

fn by_id(a: &Row, b: &Row) -> Ordering {
    num(&a.id).cmp(&num(&b.id))
}

/// Nulls last in either direction; ties by numeric ID in the sort's
/// direction (DEC "Query").
fn cmp_opt<T: PartialOrd>(a: Option<T>, b: Option<T>, desc: bool) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(&y).unwrap();
            if desc { o.reverse() } else { o }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn expected(rows: &[Row], sort: &str) -> Vec<String> {
    let desc = sort.ends_with("_desc");
    let mut v = rows.to_vec();
    v.sort_by(|a, b| {
        let key = match sort.split('_').next().unwrap() {
            "createdAt" => cmp_opt(Some(a.created), Some(b.created), desc),
            "cachedAt" => cmp_opt(a.cached, b.cached, desc),
            "duration" => cmp_opt(a.duration, b.duration, desc),
            other => panic!("sort {other}"),
        };
        key.then_with(|| if desc { by_id(b, a) } else { by_id(a, b) })
    });
    v.into_iter().map(|r| r.id).collect()
}

/// Query parameters of one case.
type Params<'a> = Vec<(&'a str, &'a str)>;

const SORTS: [&str; 6] = [
    "createdAt_desc",
    "createdAt_asc",
    "cachedAt_desc",
    "cachedAt_asc",
    "duration_desc",
    "duration_asc",
];

#[tokio::test]
async fn every_sort_orders_items_with_numeric_id_ties_and_nulls_last() {
    let s = TestServer::start().await;
    corpus(&s, "conn_a").await;
    let all = rows(&s, "conn_a").await;
    assert_eq!(all.len(), 25);
    let default = ids(get_ok(&s, "conn_a", "/v2/vault-plus/media").await["items"]
        .as_array()
        .unwrap());
    assert_eq!(
        default,
        expected(&all, "createdAt_desc"),
        "default sort is createdAt_desc"
    );
    for sort in SORTS {
        let got = ids(get_ok(
            &s,
            "conn_a",
            &with_query("/v2/vault-plus/media", &[("sort", sort)]),
        )
        .await["items"]
            .as_array()
            .unwrap());
        assert_eq!(got, expected(&all, sort), "sort={sort}");
    }
    // The duration sorts put the nine images (null duration) last both ways.
    for sort in ["duration_asc", "duration_desc"] {
        let order = expected(&all, sort);
        let tail: Vec<&Row> = order[16..]
            .iter()
            .map(|id| all.iter().find(|r| &r.id == id).unwrap())
            .collect();
        assert!(
            tail.iter().all(|r| r.duration.is_none()),
            "{sort}: {order:?}"
        );
    }
}

#[tokio::test]
async fn keyset_pages_of_ten_visit_25_items_once_and_the_last_page_has_no_cursor() {
    let s = TestServer::start().await;
    corpus(&s, "conn_a").await;
    let all = rows(&s, "conn_a").await;
    for sort in SORTS {
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p = vec![("sort", sort), ("limit", "10")];
            if let Some(c) = &cursor {
                p.push(("cursor", c));
            }
            let page = get_ok(&s, "conn_a", &with_query("/v2/vault-plus/media", &p)).await;
            let items = page["items"].as_array().unwrap();
            sizes.push(items.len());
            got.extend(ids(items));
            match page.get("nextCursor") {
                Some(Value::String(c)) => cursor = Some(c.clone()),
                None => break,
                Some(other) => panic!("nextCursor {other}"),
            }
            assert!(sizes.len() < 10, "pagination does not end");
        }
        assert_eq!(sizes, [10, 10, 5], "sort={sort}");
        assert_eq!(got, expected(&all, sort), "sort={sort}");
    }
    // A page that exactly reaches the end also omits nextCursor.
    let page = get_ok(&s, "conn_a", "/v2/vault-plus/media?limit=100").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 25);
    assert!(page.get("nextCursor").is_none(), "{}", page["nextCursor"]);
    let one = get_ok(&s, "conn_a", "/v2/vault-plus/media?limit=1").await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    assert!(one["nextCursor"].is_string());
}

#[tokio::test]
async fn the_default_limit_is_100() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    for i in 1..=101 {
        create(&s, "conn_a", &i.to_string(), "full", "image/jpeg", 4, None).await;
    }
    let page = get_ok(&s, "conn_a", "/v2/vault-plus/media").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 100);
    let cursor = page["nextCursor"]
        .as_str()
        .expect("a cursor after 100 of 101")
        .to_owned();
    let rest = get_ok(
        &s,
        "conn_a",
        &with_query("/v2/vault-plus/media", &[("cursor", &cursor)]),
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest.get("nextCursor").is_none());
}

#[tokio::test]
async fn a_cursor_is_stable_while_items_are_inserted_and_deleted_between_pages() {
    let s = TestServer::start().await;
    corpus(&s, "conn_a").await;
    let mut fresh = 50_000u64;
    for sort in [
        "createdAt_desc",
        "createdAt_asc",
        "duration_asc",
        "cachedAt_desc",
    ] {
        let start: Vec<String> = expected(&rows(&s, "conn_a").await, sort);
        let page = get_ok(
            &s,
            "conn_a",
            &with_query("/v2/vault-plus/media", &[("sort", sort), ("limit", "10")]),
        )
        .await;
        let mut seen = ids(page["items"].as_array().unwrap());
        let mut cursor = page["nextCursor"].as_str().expect("cursor").to_owned();
        // Between pages: delete one seen and one unseen item, insert three
        // (their durations fall on both sides of the cursor).
        let gone_seen = seen[3].clone();
        let gone_unseen = start[15].clone();
        for id in [&gone_seen, &gone_unseen] {
            let r = send(s.conn(
                Method::DELETE,
                &format!("/v2/vault-plus/media/{id}"),
                "conn_a",
            ))
            .await;
            assert_eq!(r.body["success"], json!(true), "{}", r.body);
        }
        for (dur, kind) in [
            ("1", "video/mp4"),
            ("40", "audio/mpeg"),
            ("500", "video/mp4"),
        ] {
            fresh += 1;
            create(&s, "conn_a", &fresh.to_string(), "full", kind, 7, Some(dur)).await;
        }
        loop {
            let page = get_ok(
                &s,
                "conn_a",
                &with_query(
                    "/v2/vault-plus/media",
                    &[("sort", sort), ("limit", "10"), ("cursor", &cursor)],
                ),
            )
            .await;
            seen.extend(ids(page["items"].as_array().unwrap()));
            match page["nextCursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{sort}: an item was repeated: {seen:?}"
        );
        for id in &start {
            if id != &gone_seen && id != &gone_unseen {
                assert!(
                    seen.contains(id),
                    "{sort}: {id} was present throughout but skipped"
                );
            }
        }
        assert!(
            !seen.contains(&gone_unseen),
            "{sort}: a deleted item was served"
        );
        // Among the items present throughout, the order is the sort's.
        let kept: Vec<&String> = seen
            .iter()
            .filter(|id| start.contains(id) && **id != gone_seen)
            .collect();
        let want: Vec<&String> = start
            .iter()
            .filter(|id| **id != gone_seen && **id != gone_unseen)
            .collect();
        assert_eq!(kept, want, "{sort}");
    }
}

#[tokio::test]
async fn each_filter_selects_exactly_the_matching_items_in_sort_order() {
    let s = TestServer::start().await;
    corpus(&s, "conn_a").await;
    let all = rows(&s, "conn_a").await;
    let order = expected(&all, "createdAt_desc");
    let pick = |f: &dyn Fn(&Row) -> bool| -> Vec<String> {
        order
            .iter()
            .filter(|id| f(all.iter().find(|r| &r.id == *id).unwrap()))
            .cloned()
            .collect()
    };
    let mut created: Vec<i64> = all.iter().map(|r| r.created).collect();
    created.sort();
    let mid_created = created[12];
    let mut cached: Vec<i64> = all.iter().filter_map(|r| r.cached).collect();
    cached.sort();
    let mid_cached = cached[12];
    let (c_iso, k_iso) = (iso(mid_created), iso(mid_cached));
    let (lo_iso, hi_iso) = (iso(created[5]), iso(created[19]));

    let cases: Vec<(Params, Vec<String>)> = vec![
        (vec![("type", "image")], pick(&|r| r.kind == "image")),
        (vec![("type", "video")], pick(&|r| r.kind == "video")),
        (vec![("type", "audio")], pick(&|r| r.kind == "audio")),
        (vec![("status", "stored")], order.clone()),
        (vec![("status", "pending")], vec![]),
        (vec![("status", "storing")], vec![]),
        (vec![("status", "edge_only")], vec![]),
        (vec![("status", "removed")], vec![]),
        (
            vec![("contentType", "audio/mpeg")],
            pick(&|r| r.content_types.contains("audio/mpeg")),
        ),
        (
            vec![("contentType", "image/png")],
            pick(&|r| r.content_types.contains("image/png")),
        ),
        (vec![("contentType", "text/plain")], vec![]),
        (
            vec![("durationMin", "30")],
            pick(&|r| r.duration.is_some_and(|d| d >= 30.0)),
        ),
        (
            vec![("durationMax", "10")],
            pick(&|r| r.duration.is_some_and(|d| d <= 10.0)),
        ),
        (
            vec![("durationMin", "10"), ("durationMax", "30")],
            pick(&|r| r.duration.is_some_and(|d| (10.0..=30.0).contains(&d))),
        ),
        (
            vec![("durationMin", "30"), ("durationMax", "30")],
            pick(&|r| r.duration == Some(30.0)),
        ),
        (
            vec![("durationMin", "10.5")],
            pick(&|r| r.duration.is_some_and(|d| d >= 10.5)),
        ),
        (
            vec![("createdAtFrom", &c_iso)],
            pick(&|r| r.created >= mid_created),
        ),
        (
            vec![("createdAtTo", &c_iso)],
            pick(&|r| r.created <= mid_created),
        ),
        (
            vec![("createdAtFrom", &lo_iso), ("createdAtTo", &hi_iso)],
            pick(&|r| (created[5]..=created[19]).contains(&r.created)),
        ),
        (
            vec![("cachedAtFrom", &k_iso)],
            pick(&|r| r.cached.is_some_and(|c| c >= mid_cached)),
        ),
        (
            vec![("cachedAtTo", &k_iso)],
            pick(&|r| r.cached.is_some_and(|c| c <= mid_cached)),
        ),
        (
            vec![("storedAtFrom", &k_iso)],
            pick(&|r| r.cached.is_some_and(|c| c >= mid_cached)),
        ),
        (
            vec![("storedAtTo", &k_iso)],
            pick(&|r| r.cached.is_some_and(|c| c <= mid_cached)),
        ),
        (
            vec![
                ("type", "video"),
                ("durationMin", "30"),
                ("contentType", "image/png"),
            ],
            pick(&|r| {
                r.kind == "video"
                    && r.duration.is_some_and(|d| d >= 30.0)
                    && r.content_types.contains("image/png")
            }),
        ),
        (
            vec![
                ("createdAtFrom", "2000-01-01T00:00:00.000Z"),
                ("createdAtTo", "2000-01-02T00:00:00Z"),
            ],
            vec![],
        ),
    ];
    for (params, want) in cases {
        let one_page = get_ok(&s, "conn_a", &with_query("/v2/vault-plus/media", &params)).await;
        assert_eq!(
            ids(one_page["items"].as_array().unwrap()),
            want,
            "filter {params:?}"
        );
        // Filtered queries page the same way.
        let mut p = params.clone();
        p.push(("limit", "3"));
        assert_eq!(
            ids(&list_all(&s, "conn_a", &p).await),
            want,
            "filter {params:?} in pages of 3"
        );
    }

    // A variant-level filter returns the whole item (all its variants).
    let png = get_ok(&s, "conn_a", "/v2/vault-plus/media?contentType=image%2Fpng").await;
    for item in png["items"].as_array().unwrap() {
        assert_eq!(
            keys_of(&item["media"]),
            key_set(&["full", "thumb"]),
            "{item}"
        );
    }
    // A sorted, filtered query.
    let videos = get_ok(
        &s,
        "conn_a",
        "/v2/vault-plus/media?type=video&sort=duration_desc",
    )
    .await;
    let vrows: Vec<Row> = all.iter().filter(|r| r.kind == "video").cloned().collect();
    assert_eq!(
        ids(videos["items"].as_array().unwrap()),
        expected(&vrows, "duration_desc")
    );
}

#[tokio::test]
async fn bad_query_parameters_are_400_naming_the_parameter_and_change_nothing() {
    let s = TestServer::start().await;
    corpus(&s, "conn_a").await;
    let before = state(&s, "conn_a").await;
    let cases: Vec<(Params, &[&str])> = vec![
        (vec![("status", "bogus")], &["status"]),
        (vec![("status", "STORED")], &["status"]),
        (vec![("status", "cached")], &["status"]),
        (vec![("type", "photo")], &["type"]),
        (vec![("type", "gif")], &["type"]),
        (vec![("type", "document")], &["type"]),
        (vec![("sort", "createdAt")], &["sort"]),
        (vec![("sort", "size_desc")], &["sort"]),
        (vec![("sort", "createdAt_DESC")], &["sort"]),
        (vec![("limit", "0")], &["limit"]),
        (vec![("limit", "101")], &["limit"]),
        (vec![("limit", "-1")], &["limit"]),
        (vec![("limit", "abc")], &["limit"]),
        (vec![("limit", "1.5")], &["limit"]),
        (vec![("durationMin", "abc")], &["durationMin"]),
        (vec![("durationMax", "ten")], &["durationMax"]),
        (vec![("durationMin", "NaN")], &["durationMin"]),
        (
            vec![("durationMin", "60"), ("durationMax", "30")],
            &["durationMin", "durationMax"],
        ),
        (vec![("createdAtFrom", "yesterday")], &["createdAtFrom"]),
        (
            vec![("createdAtFrom", "2026-13-01T00:00:00.000Z")],
            &["createdAtFrom"],
        ),
        (
            vec![("createdAtTo", "2026-02-30T00:00:00.000Z")],
            &["createdAtTo"],
        ),
        (vec![("createdAtTo", "1715800000000")], &["createdAtTo"]),
        (vec![("cachedAtFrom", "2026-06-01 nope")], &["cachedAtFrom"]),
        (vec![("cachedAtTo", "31/12/2026")], &["cachedAtTo"]),
        (
            vec![("storedAtFrom", "soon")],
            &["storedAtFrom", "cachedAtFrom"],
        ),
        (
            vec![("storedAtTo", "2026-06-01T25:00:00Z")],
            &["storedAtTo", "cachedAtTo"],
        ),
        (vec![("cursor", "garbage")], &["cursor"]),
        (vec![("cursor", "100")], &["cursor"]),
        (vec![("cursor", "!!!")], &["cursor"]),
    ];
    let mut soft = Soft::default();
    for (params, names) in cases {
        let r = get(&s, "conn_a", &with_query("/v2/vault-plus/media", &params)).await;
        let what = format!("{params:?}");
        soft.check(&what, || assert_bad_request(&r, names, &what));
    }
    soft.finish();
    assert_eq!(state(&s, "conn_a").await, before);
}

#[tokio::test]
async fn a_cursor_used_with_other_filters_or_sort_is_400() {
    let s = TestServer::start().await;
    corpus(&s, "conn_a").await;
    let page = get_ok(&s, "conn_a", "/v2/vault-plus/media?limit=3&type=video").await;
    let cursor = page["nextCursor"]
        .as_str()
        .expect("8 videos, pages of 3")
        .to_owned();
    // The same query accepts it.
    let same = [
        ("type", "video"),
        ("limit", "3"),
        ("cursor", cursor.as_str()),
    ];
    assert_eq!(
        get(&s, "conn_a", &with_query("/v2/vault-plus/media", &same))
            .await
            .status,
        200
    );

    let others: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("type", "image")],
        vec![("type", "video"), ("status", "stored")],
        vec![("type", "video"), ("sort", "duration_asc")],
        vec![("type", "video"), ("sort", "createdAt_asc")],
        vec![("type", "video"), ("durationMin", "1")],
        vec![("type", "video"), ("contentType", "video/mp4")],
        vec![
            ("type", "video"),
            ("createdAtFrom", "2000-01-01T00:00:00.000Z"),
        ],
    ];
    let mut soft = Soft::default();
    for other in others {
        let mut p = other.clone();
        p.extend([("limit", "3"), ("cursor", cursor.as_str())]);
        let r = get(&s, "conn_a", &with_query("/v2/vault-plus/media", &p)).await;
        let what = format!("cursor with {other:?}");
        soft.check(&what, || assert_bad_request(&r, &["cursor"], &what));
    }
    soft.finish();
}

/// DEC "Query": cursors are bound to the query they came from; the
/// connection is part of that query, so another connection's cursor is
/// rejected rather than read as a position in this one.
#[tokio::test]
async fn a_cursor_from_another_connection_is_400() {
    let s = TestServer::start().await;
    corpus(&s, "conn_a").await;
    s.add_connection("default", "conn_b");
    for id in [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
    ] {
        create(&s, "conn_b", id, "full", "image/jpeg", 3, None).await;
    }
    let page = get_ok(&s, "conn_a", "/v2/vault-plus/media?limit=10").await;
    let cursor = page["nextCursor"].as_str().unwrap();
    let r = get(
        &s,
        "conn_b",
        &with_query(
            "/v2/vault-plus/media",
            &[("limit", "10"), ("cursor", cursor)],
        ),
    )
    .await;
    assert_bad_request(&r, &["cursor"], "conn_a's cursor on conn_b");
}

/// DEC "Media and variants": evicted variants stay as `removed` records
/// with `sizeBytes` 0; queries leave them out unless `status=removed`, and
/// then return the item with all of its variants.
#[tokio::test]
async fn removed_variants_are_left_out_unless_asked_for() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let r = patch_conn_settings(
        &s,
        "conn_a",
        json!({"vaultPlus": {"settings": {"storageLimitBytes": 1500, "storageLimitPurgeStrategy": "purge_oldest"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    create(&s, "conn_a", "1", "full", "image/jpeg", 1000, None).await;
    create(&s, "conn_a", "1", "thumb", "image/jpeg", 100, None).await;
    let r = upload(
        &s,
        "conn_a",
        "2",
        "full",
        "image/jpeg",
        content("2", "full", 1000),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let removed = wait_for_removed(&s, "conn_a", 1).await;

    assert_eq!(ids(&removed), ["1"]);
    let m = &removed[0]["media"];
    assert_eq!(
        keys_of(m),
        key_set(&["full", "thumb"]),
        "status=removed returns all variants: {m}"
    );
    assert_eq!(m["full"]["status"], "removed");
    assert_eq!(m["full"]["sizeBytes"], json!(0));
    assert_eq!(m["thumb"]["status"], "stored");

    for query in ["/v2/vault-plus/media", "/v2/vault-plus/media?status=stored"] {
        let page = get_ok(&s, "conn_a", query).await;
        let items = page["items"].as_array().unwrap();
        let mut got = ids(items);
        got.sort();
        assert_eq!(got, ["1", "2"], "{query}");
        let one = items.iter().find(|i| i["id"] == "1").unwrap();
        assert_eq!(
            keys_of(&one["media"]),
            key_set(&["thumb"]),
            "{query}: removed variant must be left out"
        );
    }
    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 2, "pendingCount": 0, "totalSizeBytes": 1100})
    );
    assert_eq!(stats_of(&s).await["totalMediaCount"], json!(2));
    // An evicted variant's bytes are not served.
    let r = send(s.http.get(m["full"]["url"].as_str().unwrap())).await;
    assert_ne!(
        r.raw,
        content("1", "full", 1000),
        "evicted bytes must not be served"
    );
}

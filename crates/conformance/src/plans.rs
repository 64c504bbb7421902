//! Plan pinning: every media query shape, on a loaded connection, through
//! the database's own EXPLAIN, must read rows bounded by its page (or by
//! what a selective filter's index selects), never scan or sort the
//! connection's rows (docs/query-plans.md). A backend's test loads the rows
//! with [`load_statements`], then checks each of [`shapes`] with
//! [`assert_sqlite_plan`] or [`assert_postgres_plan`].

use vaultplus::catalog::Catalog;
use vaultplus::catalog::query::Keyset;
use vaultplus::catalog::query_plan::{Explained, Plan};
use vaultplus::catalog::{MediaQuery, SortKey, SortValue};
use vaultplus::model::{
    ConnectionId, MediaId, MediaType, OrgName, VariantStatus, VaultPlusSettings,
};

/// The scope of a new connection `conn_plans` of a new organization, to
/// load rows into.
pub async fn connection_scope(c: &dyn Catalog) -> i64 {
    let name = OrgName::parse("plans").unwrap();
    let org = c
        .ensure_org(&name, &VaultPlusSettings::default(), true, LOADED_AT)
        .await
        .unwrap()
        .0;
    let id = ConnectionId::parse(CONNECTION).unwrap();
    c.insert_connection(org.id, &id, true, LOADED_AT)
        .await
        .unwrap();
    c.connection(org.id, &id).await.unwrap().unwrap().scope_id
}

/// The connection [`connection_scope`] makes.
pub const CONNECTION: &str = "conn_plans";

/// The org and ID of the connection [`connection_scope`] made.
pub async fn connection_key(c: &dyn Catalog) -> (i64, ConnectionId) {
    let name = OrgName::parse("plans").unwrap();
    let org = c.org_by_name(&name).await.unwrap().unwrap();
    (org.id, ConnectionId::parse(CONNECTION).unwrap())
}

/// A batch read's IDs: `n` of the `items` loaded, spread over them.
pub fn batch_ids(items: u32, n: u32) -> Vec<MediaId> {
    let step = items / n;
    (0..n)
        .map(|i| MediaId::parse(&(100_000_000 + i * step).to_string()).unwrap())
        .collect()
}

/// SQLite's plan of a look-up by key (single item, batch, status): every
/// table searched by an index, only the bound list of IDs (`json_each`)
/// scanned, nothing sorted.
pub fn assert_sqlite_lookup(name: &str, sql: &str, lines: &[String]) {
    for line in lines {
        let scan = line.starts_with("SCAN ") && !line.starts_with("SCAN json_each");
        let sort = line.contains("TEMP B-TREE");
        assert!(!scan && !sort, "{name}: {sql}\n{}", lines.join("\n"));
    }
}

/// PostgreSQL's plan of a look-up by key: no sequential scan of media or
/// variants (the tables of connections, orgs, keys and scopes have a row
/// or two here, which PostgreSQL rightly reads whole), nothing sorted.
pub fn assert_postgres_lookup(name: &str, sql: &str, lines: &[String]) {
    for line in lines {
        let node = line.trim_start().trim_start_matches("->  ");
        let scan = ["Seq Scan on media", "Seq Scan on variants"]
            .iter()
            .any(|s| node.starts_with(s) || node.starts_with(&format!("Parallel {s}")));
        let sort = node.starts_with("Sort ") || node.starts_with("Incremental Sort");
        assert!(!scan && !sort, "{name}: {sql}\n{}", lines.join("\n"));
    }
}

/// Base of the loaded items' creation times.
pub const LOADED_AT: i64 = 1_800_000_000_000;

/// Statements (valid on SQLite and PostgreSQL alike) that give `scope`
/// `items` media rows with two variants each and set its counters: images,
/// videos with durations and audio; every tenth item pending (no
/// `cached_at`); a content type on one item in a thousand.
pub fn load_statements(scope: i64, items: u32) -> Vec<String> {
    let last = items - 1;
    let series =
        format!("WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last})");
    vec![
        format!(
            "{series} INSERT INTO media (scope_id, media_id, sort_id, media_type, duration, created_at, cached_at, live_count) \
             SELECT {scope}, CAST(100000000 + i AS TEXT), CAST(100000000 + i AS TEXT), \
                    CASE i % 4 WHEN 1 THEN 'video' WHEN 3 THEN 'audio' ELSE 'image' END, \
                    CASE WHEN i % 2 = 1 THEN CAST(i % 600 AS DOUBLE PRECISION) END, \
                    {LOADED_AT} - i, CASE WHEN i % 10 <> 0 THEN {LOADED_AT} - i END, 2 FROM s"
        ),
        format!(
            "{series}, l(label) AS (SELECT 'full' UNION ALL SELECT 'thumb') \
             INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, created_at, \
                                   stored_at, last_accessed_at, blob_key, checksum) \
             SELECT {scope}, CAST(100000000 + i AS TEXT), label, \
                    CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'stored' END, 1024, \
                    CASE WHEN i % 1000 = 7 THEN 'image/gif' \
                         WHEN i % 4 = 1 AND label = 'full' THEN 'video/mp4' \
                         WHEN i % 4 = 3 AND label = 'full' THEN 'audio/mpeg' ELSE 'image/jpeg' END, \
                    {LOADED_AT} - i, CASE WHEN i % 10 <> 0 THEN {LOADED_AT} - i END, {LOADED_AT} - i, NULL, NULL \
             FROM s, l"
        ),
        format!(
            "UPDATE scopes SET live_count = {n}, stored_count = {stored}, stored_bytes = {bytes} WHERE id = {scope}",
            n = 2 * items,
            stored = 2 * (items - items.div_ceil(10)),
            bytes = 2048 * (items - items.div_ceil(10)),
        ),
    ]
}

/// Every query shape the API can ask, named: each filter alone, each sort,
/// combinations, and pages after a cursor (among values and among nulls).
pub fn shapes() -> Vec<(String, MediaQuery)> {
    let q = |f: &dyn Fn(&mut MediaQuery)| {
        let mut q = MediaQuery {
            limit: 50,
            ..MediaQuery::default()
        };
        f(&mut q);
        q
    };
    let mut out: Vec<(String, MediaQuery)> = vec![
        (
            "status=stored".into(),
            q(&|q| q.status = Some(VariantStatus::Stored)),
        ),
        (
            "status=pending".into(),
            q(&|q| q.status = Some(VariantStatus::Pending)),
        ),
        (
            "status=storing (none)".into(),
            q(&|q| q.status = Some(VariantStatus::Storing)),
        ),
        (
            "status=removed (none)".into(),
            q(&|q| q.status = Some(VariantStatus::Removed)),
        ),
        (
            "type=video".into(),
            q(&|q| q.media_type = Some(MediaType::Video)),
        ),
        (
            "type=audio".into(),
            q(&|q| q.media_type = Some(MediaType::Audio)),
        ),
        (
            "contentType=video/mp4".into(),
            q(&|q| q.content_type = Some("video/mp4".into())),
        ),
        (
            "contentType=image/gif (rare)".into(),
            q(&|q| q.content_type = Some("image/gif".into())),
        ),
        (
            "durationMin=300".into(),
            q(&|q| q.duration_min = Some(300.0)),
        ),
        ("durationMax=10".into(), q(&|q| q.duration_max = Some(10.0))),
        (
            "createdAt window".into(),
            q(&|q| {
                q.created_from = Some(LOADED_AT - 3000);
                q.created_to = Some(LOADED_AT - 1000);
            }),
        ),
        (
            "cachedAt window".into(),
            q(&|q| {
                q.cached_from = Some(LOADED_AT - 2000);
                q.cached_to = Some(LOADED_AT - 1000);
            }),
        ),
        (
            "type=video, durationMin=300, sort=duration_desc".into(),
            q(&|q| {
                q.media_type = Some(MediaType::Video);
                q.duration_min = Some(300.0);
                q.sort = SortKey::DurationDesc;
            }),
        ),
        (
            "type=image, sort=duration_desc (all null)".into(),
            q(&|q| {
                q.media_type = Some(MediaType::Image);
                q.sort = SortKey::DurationDesc;
            }),
        ),
        (
            "status=pending, sort=cachedAt_desc".into(),
            q(&|q| {
                q.status = Some(VariantStatus::Pending);
                q.sort = SortKey::CachedAtDesc;
            }),
        ),
        (
            "contentType=image/gif, sort=duration_asc".into(),
            q(&|q| {
                q.content_type = Some("image/gif".into());
                q.sort = SortKey::DurationAsc;
            }),
        ),
        (
            "cachedAt window, sort=duration_desc".into(),
            q(&|q| {
                q.cached_from = Some(LOADED_AT - 2000);
                q.cached_to = Some(LOADED_AT - 1000);
                q.sort = SortKey::DurationDesc;
            }),
        ),
        (
            "status=stored, contentType=image/gif".into(),
            q(&|q| {
                q.status = Some(VariantStatus::Stored);
                q.content_type = Some("image/gif".into());
            }),
        ),
    ];
    for sort in SortKey::ALL {
        out.push((format!("sort={}", sort.as_str()), q(&|q| q.sort = sort)));
        let value = match sort {
            SortKey::DurationDesc | SortKey::DurationAsc => SortValue::Float(100.0),
            _ => SortValue::Int(LOADED_AT - 5000),
        };
        let after = Keyset {
            value,
            sort_id: "100005000".into(),
        };
        out.push((
            format!("sort={}, after a cursor", sort.as_str()),
            q(&|q| {
                q.sort = sort;
                q.after = Some(after.clone());
            }),
        ));
        // A cursor among the items without a value (its extreme).
        let nulls = match sort {
            SortKey::CachedAtDesc => Some(SortValue::Int(i64::MIN)),
            SortKey::CachedAtAsc => Some(SortValue::Int(i64::MAX)),
            SortKey::DurationDesc => Some(SortValue::Float(f64::MIN)),
            SortKey::DurationAsc => Some(SortValue::Float(f64::MAX)),
            _ => None,
        };
        if let Some(value) = nulls {
            let after = Keyset {
                value,
                sort_id: "100005000".into(),
            };
            out.push((
                format!("sort={}, after a cursor among nulls", sort.as_str()),
                q(&|q| {
                    q.sort = sort;
                    q.after = Some(after.clone());
                }),
            ));
        }
    }
    out
}

/// The shapes that a selective filter must drive on the loaded rows
/// (20,000 items: the threshold is about 1,400 rows); every other shape
/// walks its sort's index.
const DRIVEN: [&str; 8] = [
    "status=storing (none)",
    "status=removed (none)",
    "contentType=image/gif (rare)",
    "durationMax=10",
    "cachedAt window",
    "contentType=image/gif, sort=duration_asc",
    "cachedAt window, sort=duration_desc",
    "status=stored, contentType=image/gif",
];

fn expected_plan(name: &str) -> &'static str {
    if DRIVEN.contains(&name) {
        "driven"
    } else {
        "walk"
    }
}

/// A shape's plan and statements, as the assertions print them.
pub fn describe(name: &str, e: &Explained) -> String {
    let mut s = format!("{name}: {:?}\n", e.plan);
    for (sql, lines) in &e.statements {
        s.push_str(&format!("  {sql}\n"));
        for l in lines {
            s.push_str(&format!("    {l}\n"));
        }
    }
    s
}

fn check_plan_kind(name: &str, e: &Explained) {
    let kind = match e.plan {
        Plan::Walk => "walk",
        Plan::Driven(_) => "driven",
    };
    assert_eq!(kind, expected_plan(name), "{}", describe(name, e));
}

/// SQLite's `EXPLAIN QUERY PLAN`: no `SCAN` of a table or index (the
/// sub-query results `d` and `p` aside), every statement searches an
/// index, and a temporary B-tree sorts only what a driver selected.
pub fn assert_sqlite_plan(name: &str, e: &Explained) {
    check_plan_kind(name, e);
    for (_, lines) in &e.statements {
        for line in lines {
            // `d` and `p` are sub-query results: what a driver selected, a
            // probe's bounded count.
            let scan = line.starts_with("SCAN ") && line != "SCAN d" && line != "SCAN p";
            let sort = line.starts_with("USE TEMP B-TREE");
            let allowed_sort =
                line == "USE TEMP B-TREE FOR ORDER BY" && matches!(e.plan, Plan::Driven(_));
            assert!(!scan && (!sort || allowed_sort), "{}", describe(name, e));
        }
        assert!(
            lines.iter().any(|l| l.starts_with("SEARCH ")),
            "{}",
            describe(name, e)
        );
    }
}

/// PostgreSQL's `EXPLAIN`: no sequential scan of media or variants, and a sort only of what a
/// driver selected.
pub fn assert_postgres_plan(name: &str, e: &Explained) {
    check_plan_kind(name, e);
    for (_, lines) in &e.statements {
        for line in lines {
            let node = line.trim_start().trim_start_matches("->  ");
            // The connections table may be scanned: it has a row per
            // connection, not per item (and one row here).
            let scan = ["Seq Scan on media", "Seq Scan on variants"]
                .iter()
                .any(|s| node.starts_with(s) || node.starts_with(&format!("Parallel {s}")));
            let sort = node.starts_with("Sort ") || node.starts_with("Incremental Sort");
            assert!(
                !scan && (!sort || matches!(e.plan, Plan::Driven(_))),
                "{}",
                describe(name, e)
            );
        }
    }
}

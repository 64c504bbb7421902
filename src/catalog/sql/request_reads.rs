//! What one API request reads, each in one statement: the API key with its
//! organization (authentication and the rate limit), then the connection
//! row with its organization, joined to what the request asks of the
//! connection's current scope. On PostgreSQL each statement is a round
//! trip, so the single-item read, the batch read and `status` make two
//! where they made six or five in sequence (key, org; connection, org, then
//! items and variants, or the scope's counters).
//!
//! The connection and org columns are prefixed, so that names the tables
//! share cannot collide; the items come in rows of their own beside the
//! connection's (`UNION ALL`), so that the connection is sent once. The
//! scope's rows are found by the connection's current scope as one value
//! (`CURRENT_SCOPE_OF_CONNECTION`). Tests pin the plans
//! (`explain_request_reads`).

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::Row as _;

use super::SqlCatalog;
use super::dialect;
use super::items::{self, ITEM_NULLS, unique_ids};
use super::rows::{self, CONNECTION_COLUMNS, KEY_COLUMNS, ORG_COLUMNS, Row};
use super::scopes::CURRENT_SCOPE_OF_CONNECTION as CURRENT;
use crate::catalog::{
    ApiKeyRecord, ConnectionRead, MediaRecord, Org, OrgId, RequestReads, Result, ScopeTotals,
};
use crate::model::{ConnectionId, MediaId};

// The statements are built once, from constants only: no request formats
// one (sqlx finds each one's prepared form by its text).

/// The API key `k` (by ID, `$1`) and its org `o`.
static KEY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM api_keys k LEFT JOIN orgs o ON o.id = k.org_id WHERE k.id = $1",
        rows::prefixed("k", KEY_COLUMNS, "k_"),
        rows::prefixed("o", ORG_COLUMNS, "o_"),
    )
});

/// The connection `c` (by org and ID, `$1` and `$2`) and its org `o`, with
/// `more_columns` (if any) from the `joins`.
fn connection_select(more_columns: &str, joins: &str) -> String {
    let more = if more_columns.is_empty() {
        String::new()
    } else {
        format!(", {more_columns}")
    };
    format!(
        "SELECT {}, {}{more} FROM connections c \
         LEFT JOIN orgs o ON o.id = c.org_id{joins} WHERE c.org_id = $1 AND c.id = $2",
        rows::prefixed("c", CONNECTION_COLUMNS, "c_"),
        rows::prefixed("o", ORG_COLUMNS, "o_"),
    )
}

/// The connection and its org alone (every other connection route).
static CONNECTION_SQL: LazyLock<String> = LazyLock::new(|| connection_select("", ""));

/// The items among the list bound as `$3`, in the connection's current
/// scope, with their variants (as `MediaStore::media` reads them): the
/// connection's row, then a row per variant. United rather than joined,
/// so that the connection and org are sent once, not with every variant.
static MEDIA_SQL: LazyLock<String> = LazyLock::new(|| {
    let header = format!(
        "{}, {}",
        rows::nulls(CONNECTION_COLUMNS, "c_"),
        rows::nulls(ORG_COLUMNS, "o_")
    );
    format!(
        "{} UNION ALL {}",
        connection_select(&ITEM_NULLS, ""),
        items::items_select(&header, CURRENT, 3)
    )
});

/// The counters of the connection's current scope (as `scope_totals`).
static TOTALS_SQL: LazyLock<String> = LazyLock::new(|| {
    connection_select(
        "s.live_count AS s_live_count, s.stored_count AS s_stored_count, \
         s.stored_bytes AS s_stored_bytes",
        &format!(" LEFT JOIN scopes s ON s.id = {CURRENT}"),
    )
});

/// The connection and org of a statement's connection row (the one row
/// with a connection); `None` without one (no such connection).
fn read_of<T>(
    rows: &[Row],
    found: impl FnOnce(&Row) -> Result<T>,
) -> Result<Option<ConnectionRead<T>>> {
    let mut header = None;
    for row in rows {
        if row.try_get::<Option<OrgId>, _>("c_org_id")?.is_some() {
            header = Some(row);
            break;
        }
    }
    let Some(row) = header else {
        return Ok(None);
    };
    Ok(Some(ConnectionRead {
        connection: rows::connection_in(row, "c_")?,
        org: org_of(row)?,
        found: found(row)?,
    }))
}

/// The org `o` of a row, if the left join found it.
fn org_of(row: &Row) -> Result<Option<Org>> {
    Ok(match row.try_get::<Option<OrgId>, _>("o_id")? {
        Some(_) => Some(rows::org_in(row, "o_")?),
        None => None,
    })
}

#[async_trait]
impl RequestReads for SqlCatalog {
    async fn api_key_and_org(&self, id: &str) -> Result<Option<(ApiKeyRecord, Option<Org>)>> {
        let row = sqlx::query(KEY_SQL.as_str())
            .bind(id)
            .fetch_optional(self.db.reader())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((rows::api_key_in(&row, "k_")?, org_of(&row)?)))
    }

    async fn connection_with_org(
        &self,
        org: OrgId,
        id: &ConnectionId,
    ) -> Result<Option<ConnectionRead<()>>> {
        let rows = sqlx::query(CONNECTION_SQL.as_str())
            .bind(org)
            .bind(id.as_str())
            .fetch_all(self.db.reader())
            .await?;
        read_of(&rows, |_| Ok(()))
    }

    async fn connection_media(
        &self,
        org: OrgId,
        id: &ConnectionId,
        ids: &[MediaId],
    ) -> Result<Option<ConnectionRead<Vec<MediaRecord>>>> {
        let started = std::time::Instant::now();
        let rows = sqlx::query(MEDIA_SQL.as_str())
            .bind(org)
            .bind(id.as_str())
            .bind(dialect::list(&unique_ids(ids)))
            .fetch_all(self.db.reader())
            .await?;
        let read = read_of(&rows, |_| items::fold(&rows));
        crate::metrics::timer!(crate::metrics::names::CATALOG_DURATION, "connection_media")
            .record(started);
        read
    }

    async fn connection_totals(
        &self,
        org: OrgId,
        id: &ConnectionId,
    ) -> Result<Option<ConnectionRead<ScopeTotals>>> {
        let started = std::time::Instant::now();
        let rows = sqlx::query(TOTALS_SQL.as_str())
            .bind(org)
            .bind(id.as_str())
            .fetch_all(self.db.reader())
            .await?;
        // No scope row: zero, as `scope_totals` answers.
        let read = read_of(&rows, |row| {
            match row.try_get::<Option<i64>, _>("s_live_count")? {
                Some(_) => rows::totals(row, "s_live_count", "s_stored_count", "s_stored_bytes"),
                None => Ok(ScopeTotals::default()),
            }
        });
        crate::metrics::timer!(crate::metrics::names::CATALOG_DURATION, "connection_totals")
            .record(started);
        read
    }
}

impl SqlCatalog {
    /// What the database plans for each request read (for tests): the key
    /// `key`, the items of `ids` with the connection, its counters, and it
    /// alone.
    pub async fn explain_request_reads(
        &self,
        key: &str,
        org: OrgId,
        id: &ConnectionId,
        ids: &[MediaId],
    ) -> Result<Vec<(String, Vec<String>)>> {
        let explain = |sql: &str| sqlx::AssertSqlSafe(format!("{}{sql}", dialect::EXPLAIN));
        let plans = [
            sqlx::query(explain(&KEY_SQL)).bind(key.to_owned()),
            sqlx::query(explain(&MEDIA_SQL))
                .bind(org)
                .bind(id.as_str().to_owned())
                .bind(dialect::list(&unique_ids(ids))),
            sqlx::query(explain(&TOTALS_SQL))
                .bind(org)
                .bind(id.as_str().to_owned()),
            sqlx::query(explain(&CONNECTION_SQL))
                .bind(org)
                .bind(id.as_str().to_owned()),
        ];
        let mut out = Vec::new();
        for (sql, q) in [&*KEY_SQL, &*MEDIA_SQL, &*TOTALS_SQL]
            .into_iter()
            .zip(plans)
        {
            let lines = dialect::explain_lines(q.fetch_all(self.db.reader()).await?)?;
            out.push((sql.clone(), lines));
        }
        Ok(out)
    }
}

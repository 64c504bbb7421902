//! Copies catalog rows from an embedded SQLite file into PostgreSQL. Both
//! schemas have the same tables and columns (the PostgreSQL one is the
//! SQLite one in PostgreSQL types), so the copy is generic: each column is
//! read by its SQLite storage class and written as the target column's type,
//! which the target itself reports.

use std::collections::HashMap;

use anyhow::{Context, bail};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{
    AssertSqlSafe, Column, PgConnection, Postgres, QueryBuilder, Row, SqlitePool, TypeInfo,
    ValueRef,
};

/// One table to copy, in an order that keeps references valid, with the
/// rows worth moving: only current scopes (retired ones are being erased),
/// and no lease survives the move (the source server is stopped).
pub struct Table {
    pub name: &'static str,
    /// SQL condition on the source rows (`1` for all).
    pub filter: &'static str,
    /// Columns written as NULL whatever the source holds.
    pub cleared: &'static [&'static str],
}

const CURRENT: &str = "scope_id IN (SELECT scope_id FROM connections)";

pub const TABLES: &[Table] = &[
    Table {
        name: "orgs",
        filter: "1",
        cleared: &[],
    },
    Table {
        name: "api_keys",
        filter: "1",
        cleared: &[],
    },
    Table {
        name: "signing_keys",
        filter: "1",
        cleared: &[],
    },
    Table {
        name: "scopes",
        filter: "id IN (SELECT scope_id FROM connections)",
        cleared: &[],
    },
    Table {
        name: "connections",
        filter: "1",
        cleared: &[],
    },
    Table {
        name: "media",
        filter: CURRENT,
        cleared: &[],
    },
    Table {
        name: "variants",
        filter: CURRENT,
        cleared: &[],
    },
    Table {
        name: "lists",
        filter: CURRENT,
        cleared: &[],
    },
    Table {
        name: "list_members",
        filter: CURRENT,
        cleared: &[],
    },
    Table {
        name: "jobs",
        filter: CURRENT,
        cleared: &["lease_owner", "lease_until"],
    },
    Table {
        name: "webhook_endpoints",
        filter: "1",
        cleared: &[],
    },
    Table {
        name: "webhook_subscriptions",
        filter: "1",
        cleared: &[],
    },
    // Events not yet delivered are delivered by the cluster.
    Table {
        name: "webhook_deliveries",
        filter: "1",
        cleared: &["lease_owner", "lease_until"],
    },
    // The keys, so that every receipt handed out still verifies.
    Table {
        name: "receipt_keys",
        filter: "1",
        cleared: &[],
    },
    // Every receipt is finished (`migrate` refuses to move an unfinished
    // one: docs/receipts.md).
    Table {
        name: "receipts",
        filter: "1",
        cleared: &[],
    },
];

/// Rows per INSERT: well under PostgreSQL's 65,535 parameters.
const BATCH: usize = 500;

enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

fn read(row: &SqliteRow, i: usize) -> anyhow::Result<Value> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    // The storage class of this very value (SQLite types values, not
    // columns).
    let class = raw.type_info().name().to_owned();
    Ok(match class.as_str() {
        "INTEGER" | "BOOLEAN" => Value::Int(row.try_get_unchecked(i)?),
        "REAL" => Value::Real(row.try_get_unchecked(i)?),
        "BLOB" => Value::Bytes(row.try_get_unchecked(i)?),
        _ => Value::Text(row.try_get_unchecked(i)?),
    })
}

/// Empties every table the copy fills (a rerun starts over; the target was
/// empty when the migration began).
pub async fn clear(tx: &mut PgConnection) -> anyhow::Result<()> {
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    // Table names are the constants above, never input.
    let sql = format!("TRUNCATE {}", names.join(", "));
    sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
    Ok(())
}

/// The target's column types of a table, by column name.
async fn target_columns(
    pg: &mut PgConnection,
    table: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(&mut *pg)
    .await?;
    Ok(rows.into_iter().collect())
}

fn bind(
    b: &mut sqlx::query_builder::Separated<'_, Postgres, &'static str>,
    v: Value,
    ty: &str,
    column: &str,
) -> anyhow::Result<()> {
    match (v, ty) {
        (Value::Null, "bigint" | "integer" | "smallint") => b.push_bind(None::<i64>),
        (Value::Null, "boolean") => b.push_bind(None::<bool>),
        (Value::Null, "double precision" | "real") => b.push_bind(None::<f64>),
        (Value::Null, "bytea") => b.push_bind(None::<Vec<u8>>),
        (Value::Null, "jsonb" | "json") => b.push_bind(None::<serde_json::Value>),
        (Value::Null, _) => b.push_bind(None::<String>),
        (Value::Int(i), "bigint") => b.push_bind(i),
        (Value::Int(i), "integer") => b.push_bind(i32::try_from(i).context(column.to_owned())?),
        (Value::Int(i), "smallint") => b.push_bind(i16::try_from(i).context(column.to_owned())?),
        (Value::Int(i), "boolean") => b.push_bind(i != 0),
        (Value::Int(i), "double precision" | "real") => b.push_bind(i as f64),
        (Value::Real(f), "double precision" | "real") => b.push_bind(f),
        (Value::Text(s), "jsonb" | "json") => {
            b.push_bind(serde_json::from_str::<serde_json::Value>(&s).context(column.to_owned())?)
        }
        (Value::Text(s), "text" | "character varying") => b.push_bind(s),
        (Value::Bytes(v), "bytea") => b.push_bind(v),
        (_, ty) => bail!("cannot move column {column} into a PostgreSQL {ty}"),
    };
    Ok(())
}

/// Copies one table into the (cleared) target. Returns the rows read.
pub async fn copy_table(
    src: &SqlitePool,
    pg: &mut PgConnection,
    table: &Table,
    progress: &dyn Fn(u64),
) -> anyhow::Result<u64> {
    let types = target_columns(&mut *pg, table.name).await?;
    if types.is_empty() {
        bail!("the target catalog has no table {}", table.name);
    }
    // Paged by rowid: every table here has one.
    let mut after = i64::MIN;
    let mut total = 0;
    loop {
        let sql = format!(
            "SELECT rowid AS rowid__, * FROM {} WHERE ({}) AND rowid > ? ORDER BY rowid LIMIT {BATCH}",
            table.name, table.filter
        );
        // Table names and filters are the constants above, never input.
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after)
            .fetch_all(src)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(total);
        };
        after = last.try_get("rowid__")?;
        let columns: Vec<String> = last.columns()[1..]
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        for c in &columns {
            if !types.contains_key(c) {
                bail!("the target table {} has no column {c}", table.name);
            }
        }
        let mut insert = QueryBuilder::<Postgres>::new(format!(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE ",
            table.name,
            columns.join(", ")
        ));
        let mut failed = None;
        insert.push_values(&rows, |mut b, row| {
            for (i, c) in columns.iter().enumerate() {
                let v = if table.cleared.contains(&c.as_str()) {
                    Ok(Value::Null)
                } else {
                    read(row, i + 1)
                };
                let bound = v.and_then(|v| bind(&mut b, v, &types[c], c));
                if let Err(e) = bound {
                    failed.get_or_insert(e);
                    // Keep the statement well formed; it is not run.
                    b.push_bind(None::<String>);
                }
            }
        });
        if let Some(e) = failed {
            return Err(e.context(format!("table {}", table.name)));
        }
        let q: Query<'_, Postgres, PgArguments> = insert.build();
        q.execute(&mut *pg)
            .await
            .with_context(|| format!("cannot write rows of {}", table.name))?;
        total += rows.len() as u64;
        progress(rows.len() as u64);
    }
}

/// Moves every sequence past the IDs copied in, so that new rows made by
/// the cluster never collide with them.
pub async fn advance_sequences(pg: &mut PgConnection) -> anyhow::Result<()> {
    let serials: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() \
           AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')",
    )
    .fetch_all(&mut *pg)
    .await?;
    for (table, column) in serials {
        // Names from the database's own catalog, quoted as identifiers.
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), \
                    GREATEST((SELECT COALESCE(MAX(\"{column}\"), 0) FROM \"{table}\"), 1))"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&table)
            .bind(&column)
            .execute(&mut *pg)
            .await
            .with_context(|| format!("cannot advance the sequence of {table}.{column}"))?;
    }
    Ok(())
}

/// Queues blobs no copied row refers to for the cluster's reclaim.
pub async fn queue_for_reclaim(pg: &mut PgConnection, keys: &[String]) -> anyhow::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let now = crate::model::time::now_ms();
    sqlx::query(
        "INSERT INTO reclaim_blobs (blob_key, queued_at) \
         SELECT k, $2 FROM unnest($1::TEXT[]) AS k ON CONFLICT DO NOTHING",
    )
    .bind(keys)
    .bind(now)
    .execute(&mut *pg)
    .await?;
    Ok(())
}

/// Rows the source holds for a table (for the progress bar).
pub async fn count(src: &SqlitePool, table: &Table) -> anyhow::Result<u64> {
    let sql = format!("SELECT COUNT(*) FROM {} WHERE {}", table.name, table.filter);
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(src)
        .await?;
    Ok(n as u64)
}

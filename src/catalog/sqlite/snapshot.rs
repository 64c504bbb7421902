//! A consistent copy of a live embedded catalog, taken beside its server
//! (`vaultplus backup`): one `VACUUM INTO`, which reads a single snapshot of
//! the database (WAL: the server's writers carry on meanwhile) and writes
//! it, compacted, to a new file. Nothing in the live catalog is changed or
//! locked beyond that read.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};

use crate::private_files;

/// Copies the catalog `live` into the new file `to` (which must not exist)
/// and checks the copy. The copy is a self-contained file (no `-wal`), so
/// it can be hashed, read and copied as one.
pub async fn snapshot(live: &Path, to: &Path) -> anyhow::Result<()> {
    // Made private before SQLite writes into it (it would create it 0644):
    // the catalog holds the URL signing secrets. VACUUM INTO accepts an
    // empty file.
    private_files::file_options()
        .write(true)
        .create_new(true)
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    let Some(target) = to.to_str() else {
        bail!("{}: the backup path must be valid UTF-8", to.display());
    };
    // Read-only, and no migrations: the server owns its schema.
    let mut conn = SqliteConnectOptions::from_str("sqlite://")?
        .filename(live)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("cannot open the catalog at {}", live.display()))?;
    sqlx::query("VACUUM INTO ?1")
        .bind(target)
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot copy the catalog {} into {target}", live.display()))?;
    conn.close().await?;

    // The copy keeps the live file's WAL mode; a rollback journal makes it
    // one file that readers open without creating `-wal`/`-shm` beside it
    // (the server turns WAL back on when it opens a restored copy).
    let mut copy = SqliteConnectOptions::from_str("sqlite://")?
        .filename(to)
        .journal_mode(SqliteJournalMode::Delete)
        .connect()
        .await
        .with_context(|| format!("cannot open the catalog copy {target}"))?;
    check(&mut copy, to).await?;
    copy.close().await?;
    std::fs::File::open(to)?
        .sync_all()
        .with_context(|| format!("cannot sync {target}"))?;
    Ok(())
}

/// Refuses a catalog file SQLite finds damaged.
pub async fn check_file(file: &Path) -> anyhow::Result<()> {
    let mut conn = SqliteConnectOptions::from_str("sqlite://")?
        .filename(file)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("cannot open the catalog {}", file.display()))?;
    check(&mut conn, file).await?;
    conn.close().await?;
    Ok(())
}

async fn check(conn: &mut sqlx::SqliteConnection, file: &Path) -> anyhow::Result<()> {
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("cannot check the catalog {}", file.display()))?;
    if verdict != "ok" {
        bail!("the catalog {} is damaged: {verdict}", file.display());
    }
    Ok(())
}

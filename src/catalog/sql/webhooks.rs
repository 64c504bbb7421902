//! Webhook endpoints, and the claims and outcomes of their deliveries.
//! The deliveries themselves are written by `outbox::emit`, inside the
//! transaction of the change they report.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlCatalog;
use super::dialect::{self, Row as DbRow, SKIP_LOCKED, Tx};
use crate::catalog::{DeliveryEnd, OrgId, Result, WebhookDelivery, WebhookEndpoint, Webhooks};

const ENDPOINT_COLUMNS: &str = "id, org_id, url, description, secret, previous_secret, \
     previous_until, created_at, disabled_at, disabled_reason";

fn endpoint(row: &DbRow) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        events: Vec::new(),
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_until: row.try_get("previous_until")?,
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
        disabled_reason: row.try_get("disabled_reason")?,
    })
}

/// The endpoints' event types, read in one statement and folded back in
/// the order they were given (`position`).
async fn with_events<'e, E>(
    exec: E,
    mut endpoints: Vec<WebhookEndpoint>,
) -> Result<Vec<WebhookEndpoint>>
where
    E: sqlx::Executor<'e, Database = dialect::Db>,
{
    if endpoints.is_empty() {
        return Ok(endpoints);
    }
    let ids: Vec<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
    let sql = format!(
        "SELECT endpoint_id, event_type FROM webhook_subscriptions WHERE {} \
         ORDER BY endpoint_id, position",
        dialect::in_list("endpoint_id", 1)
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dialect::list(&ids))
        .fetch_all(exec)
        .await?;
    for row in rows {
        let id: String = row.try_get("endpoint_id")?;
        if let Some(e) = endpoints.iter_mut().find(|e| e.id == id) {
            e.events.push(row.try_get("event_type")?);
        }
    }
    Ok(endpoints)
}

async fn endpoint_of<'e, E>(exec: E, org: OrgId, id: &str) -> Result<Option<WebhookEndpoint>>
where
    E: sqlx::Executor<'e, Database = dialect::Db>,
{
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_optional(exec)
        .await?
        .as_ref()
        .map(endpoint)
        .transpose()
}

#[async_trait]
impl Webhooks for SqlCatalog {
    async fn insert_webhook_endpoint(&self, e: &WebhookEndpoint) -> Result<()> {
        in_tx!(self, "insert_webhook_endpoint", |tx| async move {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, org_id, url, description, secret, \
                   previous_secret, previous_until, created_at, disabled_at, disabled_reason) \
                 VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, NULL, NULL)",
            )
            .bind(&e.id)
            .bind(e.org_id)
            .bind(&e.url)
            .bind(&e.description)
            .bind(&e.secret)
            .bind(e.created_at)
            .execute(&mut **tx)
            .await?;
            for (position, event_type) in e.events.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO webhook_subscriptions (org_id, event_type, endpoint_id, position) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(e.org_id)
                .bind(event_type)
                .bind(&e.id)
                .bind(position as i64)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        })
    }

    async fn webhook_endpoints(&self, org: OrgId) -> Result<Vec<WebhookEndpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .fetch_all(self.db.reader())
            .await?;
        let endpoints = rows.iter().map(endpoint).collect::<Result<Vec<_>>>()?;
        with_events(self.db.reader(), endpoints).await
    }

    async fn delete_webhook_endpoint(&self, org: OrgId, id: &str) -> Result<bool> {
        // Subscriptions and pending deliveries go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(self.db.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotate_webhook_secret(
        &self,
        org: OrgId,
        id: &str,
        secret: &[u8],
        now: i64,
        previous_until: i64,
    ) -> Result<Option<WebhookEndpoint>> {
        in_tx!(self, "rotate_webhook_secret", |tx| async move {
            // One statement: the secret it replaces is the one stored at that
            // moment, whatever another node rotated meanwhile.
            sqlx::query(
                "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $1, \
                   secret = $2 WHERE org_id = $3 AND id = $4 \
                   AND (previous_until IS NULL OR previous_until <= $5)",
            )
            .bind(previous_until)
            .bind(secret)
            .bind(org)
            .bind(id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            let Some(e) = endpoint_of(&mut **tx, org, id).await? else {
                return Ok(None);
            };
            Ok(with_events(&mut **tx, vec![e]).await?.pop())
        })
    }

    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        limit: u64,
        lease_until: i64,
        now: i64,
    ) -> Result<Vec<WebhookDelivery>> {
        in_tx!(self, "claim_webhook_deliveries", |tx| async move {
            claim(tx, owner, limit, lease_until, now).await
        })
    }

    async fn end_webhook_delivery(
        &self,
        id: i64,
        owner: &str,
        end: &DeliveryEnd,
        now: i64,
    ) -> Result<()> {
        in_tx!(self, "end_webhook_delivery", |tx| async move {
            match end {
                DeliveryEnd::Delivered => {
                    let endpoint: Option<String> = sqlx::query_scalar(
                        "DELETE FROM webhook_deliveries WHERE id = $1 AND lease_owner = $2 \
                         RETURNING endpoint_id",
                    )
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&mut **tx)
                    .await?;
                    sqlx::query("UPDATE webhook_endpoints SET last_success_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(endpoint)
                        .execute(&mut **tx)
                        .await?;
                }
                DeliveryEnd::Retry {
                    next_attempt_at,
                    error,
                } => {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, \
                           next_attempt_at = $1, last_error = $2, lease_owner = NULL, \
                           lease_until = NULL WHERE id = $3 AND lease_owner = $4",
                    )
                    .bind(next_attempt_at)
                    .bind(error)
                    .bind(id)
                    .bind(owner)
                    .execute(&mut **tx)
                    .await?;
                }
                DeliveryEnd::GiveUp { error } => give_up(tx, id, owner, error, now).await?,
            }
            Ok(())
        })
    }

    async fn next_webhook_due(&self) -> Result<Option<i64>> {
        // A leased delivery is due again when its lease runs out (its node
        // died): the delivering loop claims only once this says so.
        let sql = format!(
            "SELECT min({}(d.next_attempt_at, coalesce(d.lease_until, 0))) \
             FROM webhook_deliveries d WHERE EXISTS (SELECT 1 FROM webhook_endpoints e \
               WHERE e.id = d.endpoint_id AND e.disabled_at IS NULL)",
            dialect::GREATEST
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(self.db.reader())
            .await?)
    }

    async fn release_webhook_leases(&self) -> Result<u64> {
        if dialect::SHARED {
            // Other nodes may be delivering what they hold: ending their
            // leases would send those events twice at once.
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner IS NOT NULL",
        )
        .execute(self.db.writer())
        .await?;
        Ok(done.rows_affected())
    }
}

/// Leases due deliveries of enabled endpoints, the way jobs are claimed
/// (`jobs::claim`): an expired lease matches `lease_until < now` again, and
/// on PostgreSQL rows another node is claiming are skipped, so each
/// delivery has one node at a time.
async fn claim(
    tx: &mut Tx,
    owner: &str,
    limit: u64,
    lease_until: i64,
    now: i64,
) -> Result<Vec<WebhookDelivery>> {
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN ( \
           SELECT d.id FROM webhook_deliveries d WHERE d.next_attempt_at <= $3 \
             AND (d.lease_until IS NULL OR d.lease_until < $3) \
             AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id \
               AND e.disabled_at IS NULL) \
           ORDER BY d.next_attempt_at, d.id LIMIT $4{SKIP_LOCKED}) \
         RETURNING id"
    );
    let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(&mut **tx)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT d.id, d.msg_id, d.endpoint_id, e.url, d.payload, d.created_at, d.attempts, \
           e.secret, e.previous_secret, e.previous_until \
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE {} ORDER BY d.next_attempt_at, d.id",
        dialect::in_list("d.id", 1)
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(dialect::list(&ids))
        .fetch_all(&mut **tx)
        .await?)
}

/// The retry window of one delivery is over: it is dropped. Its endpoint
/// is disabled (its listing says so, and what else was pending for it is
/// dropped, as Svix does) only if it answered no delivery with a 2xx since
/// this one was written: failing for the whole window, not refusing one
/// event.
async fn give_up(tx: &mut Tx, id: i64, owner: &str, error: &str, now: i64) -> Result<()> {
    let given_up: Option<(String, i64)> = sqlx::query_as(
        "DELETE FROM webhook_deliveries WHERE id = $1 AND lease_owner = $2 \
         RETURNING endpoint_id, created_at",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((endpoint, since)) = given_up else {
        return Ok(());
    };
    let disabled = sqlx::query(
        "UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2 \
         WHERE id = $3 AND disabled_at IS NULL \
           AND (last_success_at IS NULL OR last_success_at < $4)",
    )
    .bind(now)
    .bind(format!(
        "deliveries failed for the whole retry window; last error: {error}"
    ))
    .bind(&endpoint)
    .bind(since)
    .execute(&mut **tx)
    .await?;
    if disabled.rows_affected() == 1 {
        sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(&endpoint)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

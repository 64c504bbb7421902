//! The webhook outbox: an event is written inside the transaction of the
//! change it reports, one delivery row for each of the org's enabled
//! endpoints subscribed to its type. A change that rolls back takes its
//! deliveries with it, and a committed one cannot lose them; an org with no
//! such endpoint writes nothing (one indexed look-up).

use super::dialect::Tx;
use crate::catalog::{OrgId, ReceiptId, Result, ScopeId, VariantRecord};
use crate::model::list_plan::ListCounts;
use crate::model::settings::StorageLimit;
use crate::model::webhook::{
    LIST_SYNCED, MEDIA_FAILED, MEDIA_STORED, MESSAGE_PREFIX, STORAGE_LIMIT_REACHED, WebhookEvent,
    new_id,
};

pub(super) async fn emit(tx: &mut Tx, org: OrgId, event: &WebhookEvent, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (msg_id, endpoint_id, payload, created_at, next_attempt_at) \
         SELECT $1, s.endpoint_id, $2, $3, $3 FROM webhook_subscriptions s \
           JOIN webhook_endpoints e ON e.id = s.endpoint_id \
         WHERE s.org_id = $4 AND s.event_type = $5 AND e.disabled_at IS NULL",
    )
    .bind(new_id(MESSAGE_PREFIX))
    .bind(event.body())
    .bind(now)
    .bind(org)
    .bind(event.event_type)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `vault_plus.media.stored` for a variant just made `stored`.
pub(super) async fn media_stored(
    tx: &mut Tx,
    org: OrgId,
    connection_id: &str,
    media_id: &str,
    v: &VariantRecord,
    now: i64,
) -> Result<()> {
    let event = WebhookEvent::media_stored(
        connection_id,
        media_id,
        &v.label,
        v.size_bytes,
        &v.content_type,
        v.checksum.as_deref(),
    );
    emit(tx, org, &event, now).await
}

/// [`media_stored`] where only the scope is known (an upload): its org and
/// connection are read only when the org has a subscriber of the type.
pub(super) async fn media_stored_in_scope(
    tx: &mut Tx,
    scope: ScopeId,
    media_id: &str,
    v: &VariantRecord,
    now: i64,
) -> Result<()> {
    media_stored_all(tx, scope, &[(media_id, v)], now).await
}

/// [`media_stored_in_scope`] for several variants of one scope (a group
/// commit's): one look-up for all, and nothing more when the org has no
/// subscriber of the type.
pub(super) async fn media_stored_all(
    tx: &mut Tx,
    scope: ScopeId,
    stored: &[(&str, &VariantRecord)],
    now: i64,
) -> Result<()> {
    if stored.is_empty() {
        return Ok(());
    }
    if let Some((org, connection)) = subscribed(tx, scope, MEDIA_STORED).await? {
        for (media_id, v) in stored {
            media_stored(tx, org, &connection, media_id, v, now).await?;
        }
    }
    Ok(())
}

/// `vault_plus.media.failed` for a variant given up.
pub(super) async fn media_failed(
    tx: &mut Tx,
    scope: ScopeId,
    media_id: &str,
    label: &str,
    error: &str,
    now: i64,
) -> Result<()> {
    if let Some((org, connection)) = subscribed(tx, scope, MEDIA_FAILED).await? {
        let event = WebhookEvent::media_failed(&connection, media_id, label, error);
        emit(tx, org, &event, now).await?;
    }
    Ok(())
}

/// `vault_plus.list.synced` with a whole sync's counts.
pub(super) async fn list_synced(
    tx: &mut Tx,
    scope: ScopeId,
    list_id: &str,
    counts: &ListCounts,
    now: i64,
) -> Result<()> {
    if let Some((org, connection)) = subscribed(tx, scope, LIST_SYNCED).await? {
        let event = WebhookEvent::list_synced(&connection, list_id, counts);
        emit(tx, org, &event, now).await?;
    }
    Ok(())
}

/// `vault_plus.storage.limit_reached` after `limit` evicted variants.
pub(super) async fn storage_limit_reached(
    tx: &mut Tx,
    scope: ScopeId,
    limit: &StorageLimit,
    (evicted_count, freed_bytes): (u64, u64),
    receipt: &ReceiptId,
    now: i64,
) -> Result<()> {
    if let Some((org, connection)) = subscribed(tx, scope, STORAGE_LIMIT_REACHED).await? {
        let event = WebhookEvent::storage_limit_reached(
            &connection,
            limit,
            evicted_count,
            freed_bytes,
            &receipt.to_string(),
        );
        emit(tx, org, &event, now).await?;
    }
    Ok(())
}

/// The org and connection of a scope, when the org has a subscriber of
/// `event_type` (else nothing is to be built or written).
async fn subscribed(
    tx: &mut Tx,
    scope: ScopeId,
    event_type: &str,
) -> Result<Option<(OrgId, String)>> {
    Ok(sqlx::query_as(
        "SELECT sc.org_id, sc.connection_id FROM scopes sc WHERE sc.id = $1 \
         AND EXISTS (SELECT 1 FROM webhook_subscriptions s \
                     WHERE s.org_id = sc.org_id AND s.event_type = $2)",
    )
    .bind(scope)
    .bind(event_type)
    .fetch_optional(&mut **tx)
    .await?)
}

//! The Vault+ rules. Everything here speaks in domain terms: no SQL, no HTTP.
//! Handlers and background workers call into [`VaultService`]; it calls the
//! catalog and the blob store.

pub mod access;
pub mod admin;
pub mod background;
mod cursor;
pub mod delivery;
pub mod error;
pub mod fsck;
mod group_commit;
pub mod health;
pub mod keyring;
pub mod keys;
mod list_runs;
mod lists;
mod media;
mod paging;
pub mod pipeline;
mod purge;
pub mod rate_limit;
pub mod receipts;
pub mod reclaim;
pub mod retention;
pub mod secret_box;
pub mod settings;
pub mod signal;
pub mod signing;
pub mod space;
mod storing_loop;
pub mod throttle;
pub mod thumbnail;
mod upload;
pub mod upload_slots;
mod views;
pub mod webhook_delivery;
pub mod webhooks;

use std::sync::Arc;

pub use error::{ServiceError, ServiceResult};
pub use lists::JOB_FILTERS;
pub use media::{MAX_BATCH, MediaQueryParams};
pub use paging::PageParams;
pub use settings::{
    ConnectionSettingsPatch, MAX_CONNECTION_OFFSET, OrgSettingsPatch, rate_schema_with_max,
};
pub use upload::UploadRequest;

use crate::blobs::BlobStore;
use crate::catalog::{Catalog, Connection, ConnectionRead, Org, OrgId, OrgRateLimit};
use crate::model::KeyScope;
use crate::model::{ConnectionId, VaultPlusSettings};
use crate::upstream::UpstreamClient;
use access::AccessRecorder;
use secret_box::SecretBox;
use signal::Signal;
use signing::UrlSigner;
use space::SpaceLedger;
use upload_slots::UploadSlots;

/// Options that shape answers and limits.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Base of the media URLs handed out, e.g. `https://media.example.com`.
    pub public_url: String,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// New stores are refused while the blob store has less free space
    /// (bytes of writes in progress counted as used: [`space`]).
    pub min_free_bytes: u64,
    pub rate_limits: throttle::RateLimitConfig,
    /// Uploads one connection may have in progress at once.
    pub max_uploads_per_connection: usize,
    /// Seals and opens the URL signing secrets kept in the catalog (and the
    /// webhook endpoints' secrets).
    pub secrets: SecretBox,
    /// Webhook registration rules and delivery timing.
    pub webhooks: webhooks::WebhookConfig,
}

/// The authenticated caller: an API key of one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub org_id: OrgId,
    pub key_id: String,
}

/// A connection of the caller's org, with its effective settings.
#[derive(Clone, Debug)]
pub struct ConnectionContext {
    pub connection: Connection,
    pub settings: VaultPlusSettings,
}

/// The Vault+ rules over a catalog and a blob store. Cloned for every
/// request (axum state), so it is one shared pointer.
#[derive(Clone)]
pub struct VaultService {
    inner: Arc<Inner>,
}

pub struct Inner {
    catalog: Arc<dyn Catalog>,
    blobs: Arc<dyn BlobStore>,
    signer: UrlSigner,
    access: AccessRecorder,
    reclaim_signal: Signal,
    pipeline_signal: Signal,
    upstream: Option<UpstreamClient>,
    /// Free space held by writes in progress (uploads and fetches).
    space: SpaceLedger,
    uploads: UploadSlots,
    config: ServiceConfig,
    limiters: throttle::Limiters,
    /// List adds and syncs in flight here (`status` shows them).
    list_runs: list_runs::ListRuns,
    /// Opened on first use (the first receipt read makes the first key).
    receipt_signer: tokio::sync::OnceCell<receipts::ReceiptSigner>,
}

impl std::ops::Deref for VaultService {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl VaultService {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        blobs: Arc<dyn BlobStore>,
        signer: UrlSigner,
        config: ServiceConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                space: SpaceLedger::new(blobs.clone(), config.min_free_bytes),
                uploads: UploadSlots::new(config.max_uploads_per_connection),
                catalog,
                blobs,
                signer,
                access: AccessRecorder::default(),
                reclaim_signal: Signal::default(),
                pipeline_signal: Signal::default(),
                upstream: None,
                config,
                limiters: throttle::Limiters::default(),
                list_runs: Default::default(),
                receipt_signer: Default::default(),
            }),
        }
    }

    /// Media is fetched from this upstream (lists, proxy, storing jobs).
    /// Called while wiring, before the service is shared.
    pub fn with_upstream(mut self, upstream: UpstreamClient) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_upstream is called before the service is cloned")
            .upstream = Some(upstream);
        self
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    pub fn access(&self) -> &AccessRecorder {
        &self.access
    }

    /// Bytes reserved by uploads and fetches in progress and not written
    /// yet (metrics).
    pub fn reserved_bytes(&self) -> u64 {
        self.space.outstanding()
    }

    /// Checks an `apiKey` header value. Every Vault+ and Account route needs
    /// the ACCOUNT scope; anything else is the same 401, so a caller cannot
    /// tell an unknown key from a revoked or under-scoped one.
    pub async fn authenticate(&self, presented: Option<&str>) -> ServiceResult<Principal> {
        Ok(self.authenticate_key(presented).await?.0)
    }

    /// [`Self::authenticate`], with the rate limit of the key's org, read
    /// with the key (one statement) for the key's admission.
    pub async fn authenticate_key(
        &self,
        presented: Option<&str>,
    ) -> ServiceResult<(Principal, OrgRateLimit)> {
        let (id, secret) = presented
            .and_then(keys::split)
            .ok_or(ServiceError::Unauthorized)?;
        let (record, org) = self
            .catalog
            .api_key_and_org(id)
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        let valid = keys::secret_matches(&record, secret)
            && record.revoked_at.is_none()
            && record.scopes.contains(&KeyScope::Account);
        if !valid {
            return Err(ServiceError::Unauthorized);
        }
        // A key whose org is gone can do nothing (its connections are gone
        // too): the same answer its admission gave when it read the org.
        let org = org.ok_or(ServiceError::Unauthorized)?;
        let who = Principal {
            org_id: record.org_id,
            key_id: record.id,
        };
        Ok((who, org.rate_limit))
    }

    /// Finds the `x-connection-id` connection within the caller's org.
    /// Unknown and foreign connections get the same answer (no tenant can
    /// learn of another's connections).
    pub async fn connection(
        &self,
        who: &Principal,
        raw_id: &str,
    ) -> ServiceResult<ConnectionContext> {
        let id = connection_id(raw_id)?;
        let read = self.catalog.connection_with_org(who.org_id, &id).await?;
        Ok(connection_and(read)?.0)
    }
}

/// A connection ID that cannot be one names no connection (the same answer
/// as an unknown one).
pub(super) fn connection_id(raw: &str) -> ServiceResult<ConnectionId> {
    ConnectionId::parse(raw).map_err(|_| ServiceError::ConnectionNotFound)
}

/// A connection with its effective settings: the org's defaults with the
/// connection's overrides. An org that is gone is a key that no longer
/// authenticates.
fn context(connection: Connection, org: Option<Org>) -> ServiceResult<ConnectionContext> {
    let org = org.ok_or(ServiceError::Unauthorized)?;
    let settings = match &connection.overrides {
        Some(o) => org.default_settings.with(o),
        None => org.default_settings,
    };
    Ok(ConnectionContext {
        connection,
        settings,
    })
}

/// A connection with its effective settings, and what else the request
/// read of it, from one catalog read (`RequestReads`, one statement).
pub(super) fn connection_and<T>(
    read: Option<ConnectionRead<T>>,
) -> ServiceResult<(ConnectionContext, T)> {
    let r = read.ok_or(ServiceError::ConnectionNotFound)?;
    Ok((context(r.connection, r.org)?, r.found))
}

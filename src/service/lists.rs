//! Vault lists: add (non-destructive), sync (authoritative), and reading
//! what the cache holds of them. Listing talks to the upstream; the catalog
//! applies it a page at a time (list_runs.rs).

use crate::catalog::{JobKey, ListMember, MemberKey, PageRequest};
use crate::model::admission::admit;
use crate::model::list_plan::ListMode;
use crate::model::time::format_iso_ms;
use crate::model::views::{
    JOB_STATES, JobView, JobsView, LegacyStoreListResponse, ListAddResponse, ListMediaItemView,
    ListMediaView, ListSummaryView, ListSyncResponse, ListsView,
};
use crate::model::{ListId, MediaId, VariantStatus};
use crate::upstream::{UpstreamClient, UpstreamError};

use super::{
    ConnectionContext, PageParams, Principal, ServiceError, ServiceResult, VaultService, cursor,
    paging,
};

/// Values of the jobs route's `state` filter: every job, or those given up.
pub const JOB_FILTERS: [&str; 2] = ["all", "failed"];

fn list_id(raw: &str) -> ServiceResult<String> {
    ListId::parse(raw)
        .map(|id| id.as_str().to_owned())
        .map_err(ServiceError::bad_request)
}

impl From<UpstreamError> for ServiceError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::SessionExpired => ServiceError::UpstreamSession {
                kind: "SESSION_EXPIRED",
                message: e.to_string(),
            },
            UpstreamError::SessionNotProvided => ServiceError::UpstreamSession {
                kind: "SESSION_NOT_PROVIDED",
                message: e.to_string(),
            },
            UpstreamError::ListNotFound => ServiceError::NotFound("List not found upstream".into()),
            UpstreamError::RateLimited | UpstreamError::Unavailable(_) => {
                ServiceError::Upstream(e.to_string())
            }
        }
    }
}

/// Best status among an item's variants.
fn best_status(statuses: impl Iterator<Item = VariantStatus>) -> VariantStatus {
    let rank = |s: VariantStatus| match s {
        VariantStatus::Stored => 4,
        VariantStatus::Storing => 3,
        VariantStatus::Pending => 2,
        VariantStatus::EdgeOnly => 1,
        VariantStatus::Removed => 0,
    };
    statuses
        .max_by_key(|s| rank(*s))
        .unwrap_or(VariantStatus::Removed)
}

impl VaultService {
    pub(super) fn upstream(&self) -> ServiceResult<&UpstreamClient> {
        self.upstream.as_ref().ok_or_else(|| {
            ServiceError::Upstream("no upstream is configured (--upstream-url)".into())
        })
    }

    async fn writable(
        &self,
        who: &Principal,
        connection: &str,
    ) -> ServiceResult<ConnectionContext> {
        let ctx = self.connection(who, connection).await?;
        if !ctx.connection.enabled {
            return Err(ServiceError::vault_disabled());
        }
        Ok(ctx)
    }

    async fn apply(
        &self,
        who: &Principal,
        connection: &str,
        raw_list: &str,
        mode: ListMode,
    ) -> ServiceResult<(String, crate::catalog::ListOutcome)> {
        let list = list_id(raw_list)?;
        let ctx = self.writable(who, connection).await?;
        let outcome = self.run_list(&ctx, &list, mode).await?;
        self.reclaim_soon();
        tracing::info!(list = %list, ?mode, counts = ?outcome.counts, queued = outcome.queued, "list applied");
        Ok((list, outcome))
    }

    pub async fn add_list(
        &self,
        who: &Principal,
        connection: &str,
        raw_list: &str,
    ) -> ServiceResult<ListAddResponse> {
        let (list_id, o) = self.apply(who, connection, raw_list, ListMode::Add).await?;
        Ok(ListAddResponse {
            added: true,
            list_id,
            seen: o.counts.seen,
            added_items: o.counts.added,
            adopted_items: o.counts.adopted,
            unchanged_items: o.counts.unchanged,
        })
    }

    pub async fn sync_list(
        &self,
        who: &Principal,
        connection: &str,
        raw_list: &str,
    ) -> ServiceResult<ListSyncResponse> {
        let (list_id, o) = self
            .apply(who, connection, raw_list, ListMode::Sync)
            .await?;
        Ok(ListSyncResponse {
            synced: true,
            list_id,
            seen: o.counts.seen,
            added_items: o.counts.added,
            updated_items: o.counts.updated,
            removed_items: o.counts.removed,
            unchanged_items: o.counts.unchanged,
            adopted_items: o.counts.adopted,
        })
    }

    /// The older SDK's "store a list": an add, answered in its shape.
    pub async fn legacy_store_list(
        &self,
        who: &Principal,
        connection: &str,
        raw_list: &str,
    ) -> ServiceResult<LegacyStoreListResponse> {
        let (list_id, o) = self.apply(who, connection, raw_list, ListMode::Add).await?;
        Ok(LegacyStoreListResponse {
            queued: true,
            list_id,
            estimated_items: o.counts.added + o.counts.adopted + o.counts.unchanged,
        })
    }

    pub async fn lists(&self, who: &Principal, connection: &str) -> ServiceResult<ListsView> {
        let ctx = self.connection(who, connection).await?;
        let items = self
            .catalog
            .lists(ctx.connection.scope_id)
            .await?
            .into_iter()
            .map(|l| ListSummaryView {
                list_id: l.list_id,
                media_count: l.media_count,
                stored_count: l.stored_count,
                total_size_bytes: l.total_size_bytes,
                has_baseline: l.has_baseline,
                first_added_at: format_iso_ms(l.first_added_at),
                last_added_at: format_iso_ms(l.last_added_at),
                last_synced_at: l.last_synced_at.map(format_iso_ms),
            })
            .collect();
        Ok(ListsView { items })
    }

    /// One page of the list's cached members, oldest membership first.
    pub async fn list_media(
        &self,
        who: &Principal,
        connection: &str,
        raw_list: &str,
        params: &PageParams,
    ) -> ServiceResult<ListMediaView> {
        let list = list_id(raw_list)?;
        let limit = paging::limit(params.limit.as_deref())?;
        let ctx = self.connection(who, connection).await?;
        let shape = cursor::list_media_shape(&ctx.connection.id, &list);
        let after: Option<MemberKey> = paging::after(params.cursor.as_deref(), &shape)?;
        if let Some(k) = &after
            && MediaId::parse(&k.media_id).is_err()
        {
            return Err(ServiceError::bad_request(
                "invalid query parameter cursor: cursor is malformed",
            ));
        }
        let scope = ctx.connection.scope_id;
        let page = self
            .catalog
            .list_members(scope, &list, &PageRequest { limit, after })
            .await?;
        let items = page
            .items
            .into_iter()
            .map(|m: ListMember| {
                let status = best_status(
                    m.media
                        .iter()
                        .flat_map(|r| r.variants.iter().map(|v| v.status)),
                );
                let (media_type, duration, media) = match m.media {
                    Some(record) => {
                        let view = self.item_view(scope, &ctx.settings, record);
                        (Some(view.media_type), view.duration, Some(view.media))
                    }
                    None => (None, None, None),
                };
                ListMediaItemView {
                    of_media_id: m.media_id.clone(),
                    media_id: m.media_id,
                    status,
                    media_type,
                    duration,
                    first_added_at: format_iso_ms(m.first_added_at),
                    last_added_at: format_iso_ms(m.last_added_at),
                    last_seen_at: format_iso_ms(m.last_seen_at),
                    last_synced_at: m.last_synced_at.map(format_iso_ms),
                    media,
                }
            })
            .collect();
        Ok(ListMediaView {
            items,
            next_cursor: paging::next_cursor(page.next, &shape),
        })
    }

    /// One page of the connection's storing jobs (`failed` ones only, or
    /// all), oldest first.
    pub async fn jobs(
        &self,
        who: &Principal,
        connection: &str,
        state: Option<&str>,
        params: &PageParams,
    ) -> ServiceResult<JobsView> {
        let failed_only = match state {
            None => false,
            Some(s) if s == JOB_FILTERS[0] => false,
            Some(s) if s == JOB_FILTERS[1] => true,
            Some(other) => {
                return Err(ServiceError::bad_request(format!(
                    "invalid query parameter state: expected {} or {}, got {other:?}",
                    JOB_FILTERS[0], JOB_FILTERS[1]
                )));
            }
        };
        let limit = paging::limit(params.limit.as_deref())?;
        let ctx = self.connection(who, connection).await?;
        let shape = cursor::jobs_shape(&ctx.connection.id, failed_only);
        let after: Option<JobKey> = paging::after(params.cursor.as_deref(), &shape)?;
        let page = self
            .catalog
            .jobs(
                ctx.connection.scope_id,
                failed_only,
                &PageRequest { limit, after },
            )
            .await?;
        let items = page
            .items
            .into_iter()
            .map(|j| JobView {
                state: if j.failed_at.is_some() {
                    JOB_STATES[2]
                } else if j.leased {
                    JOB_STATES[1]
                } else {
                    JOB_STATES[0]
                }
                .into(),
                next_attempt_at: j.failed_at.is_none().then_some(j.run_after),
                media_id: j.media_id,
                label: j.label,
                attempts: j.attempts,
                failed_at: j.failed_at,
                last_error: j.last_error,
            })
            .collect();
        Ok(JobsView {
            items,
            next_cursor: paging::next_cursor(page.next, &shape),
        })
    }

    /// Lists `list` again and stores the fresh rendition URLs (used when a
    /// URL expired mid-flight).
    pub(super) async fn refresh_urls(
        &self,
        ctx: &ConnectionContext,
        list: &str,
    ) -> ServiceResult<()> {
        let upstream = self.upstream()?;
        let mut offset = Some(0);
        while let Some(at) = offset {
            let page = upstream.list_page(&ctx.connection.id, list, at).await?;
            let observed: Vec<_> = page.items.iter().map(|m| admit(&ctx.settings, m)).collect();
            self.catalog
                .refresh_upstream_urls(ctx.connection.scope_id, &observed)
                .await?;
            offset = page.next;
        }
        Ok(())
    }

    pub(super) fn media_id_of(raw: &str) -> ServiceResult<MediaId> {
        MediaId::parse(raw).map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))
    }
}

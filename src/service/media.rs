//! Reading and deleting media: single item, batch, query, status, stats.

use super::receipts::Receipted;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::catalog::{MediaQuery, SortKey};
use crate::model::schema::{self, schema_type};
use crate::model::time::parse_iso_ms;
use crate::model::views::{
    ConnectionStatusView, DeleteMediaResponse, LegacyConnectionStatusView, MediaItemView,
    MediaItems, MediaPage, OrgStatsView,
};
use crate::model::{MediaId, MediaType, VariantStatus};

use super::{
    ConnectionContext, Principal, ServiceError, ServiceResult, VaultService, connection_and,
    connection_id, cursor, paging,
};

pub const MAX_BATCH: usize = 100;

/// Query parameters of `GET /v2/vault-plus/media` and the older `/list`,
/// as they arrived, before validation. The one declaration of what they
/// take: the HTTP layer parses the query string into it by these names
/// (serde), the OpenAPI document lists them from it, and the unknown-
/// parameter check reads them from that document, so a parameter cannot
/// be documented without being parsed, or parsed without being accepted.
/// Every field is the raw text (`value_type` is what the document shows),
/// so [`MediaQueryParams::parse`] names the parameter a bad value is in.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MediaQueryParams {
    /// Variant cache status: edge_only, pending, storing, stored, removed.
    #[param(value_type = Option<StatusParam>, inline)]
    pub status: Option<String>,
    /// Media type: image, video, audio.
    #[serde(rename = "type")]
    #[param(value_type = Option<MediaTypeParam>, inline)]
    pub media_type: Option<String>,
    /// Exact MIME type of a variant, e.g. image/jpeg.
    #[param(value_type = Option<ContentTypeParam>, inline)]
    pub content_type: Option<String>,
    /// Minimum duration in seconds (at most durationMax).
    #[param(value_type = Option<SecondsParam>, inline)]
    pub duration_min: Option<String>,
    /// Maximum duration in seconds.
    #[param(value_type = Option<SecondsParam>, inline)]
    pub duration_max: Option<String>,
    /// Media first observed at or after (ISO-8601).
    #[param(value_type = Option<InstantParam>, inline)]
    pub created_at_from: Option<String>,
    /// Media first observed at or before (ISO-8601).
    #[param(value_type = Option<InstantParam>, inline)]
    pub created_at_to: Option<String>,
    /// Media stored at or after (ISO-8601); alias storedAtFrom (given
    /// both, they must be the same instant).
    #[param(value_type = Option<InstantParam>, inline)]
    pub cached_at_from: Option<String>,
    /// Media stored at or before (ISO-8601); alias storedAtTo (given
    /// both, they must be the same instant).
    #[param(value_type = Option<InstantParam>, inline)]
    pub cached_at_to: Option<String>,
    /// Alias of cachedAtFrom.
    #[param(value_type = Option<InstantParam>, inline)]
    pub stored_at_from: Option<String>,
    /// Alias of cachedAtTo.
    #[param(value_type = Option<InstantParam>, inline)]
    pub stored_at_to: Option<String>,
    /// Older SDKs: vault, messages, posts or stories; checked, then ignored
    /// (vaultplus keeps no source per variant).
    #[param(value_type = Option<SourceParam>, inline)]
    pub source: Option<String>,
    /// createdAt_desc (default), createdAt_asc, cachedAt_desc, cachedAt_asc, duration_desc, duration_asc.
    #[param(value_type = Option<SortParam>, inline)]
    pub sort: Option<String>,
    /// Page size, 1-100 (default 100).
    #[param(value_type = Option<paging::LimitParam>, inline)]
    pub limit: Option<String>,
    /// The previous page's nextCursor (only valid for the same route,
    /// connection and filters).
    #[param(value_type = Option<paging::CursorParam>, inline)]
    pub cursor: Option<String>,
}

/// Values of `source` (the older SDKs' filter).
pub const SOURCES: [&str; 4] = ["vault", "messages", "posts", "stories"];
/// Longest `contentType` filter: a MIME type is at most 255 characters.
pub const MAX_CONTENT_TYPE_LEN: usize = 255;

schema_type!(StatusParam => schema::one_of(&VariantStatus::ALL.map(VariantStatus::as_str)));
schema_type!(MediaTypeParam => schema::one_of(&MediaType::ALL.map(MediaType::as_str)));
schema_type!(ContentTypeParam => schema::text(1, MAX_CONTENT_TYPE_LEN));
schema_type!(
    /// Any finite number of seconds from 0 (the largest is f64's).
    SecondsParam => schema::number(0.0, f64::MAX)
);
schema_type!(InstantParam => schema::date_time());
schema_type!(SourceParam => schema::one_of(&SOURCES));
schema_type!(SortParam => schema::one_of(&SortKey::ALL.map(SortKey::as_str)));

fn bad(name: &str, why: impl std::fmt::Display) -> ServiceError {
    ServiceError::BadRequest(format!("invalid query parameter {name}: {why}"))
}

fn seconds(name: &str, raw: &Option<String>) -> ServiceResult<Option<f64>> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(bad(
            name,
            format!("expected a number of seconds >= 0, got {raw:?}"),
        )),
    }
}

fn instant(name: &str, raw: &Option<String>) -> ServiceResult<Option<i64>> {
    let Some(raw) = raw else { return Ok(None) };
    parse_iso_ms(raw).map(Some).ok_or_else(|| {
        bad(
            name,
            format!("expected an ISO-8601 date-time such as 2026-06-01T00:00:00.000Z, got {raw:?}"),
        )
    })
}

/// `cachedAtFrom` and its alias `storedAtFrom` mean the same; giving both
/// with different values is ambiguous.
fn aliased(a: (&str, &Option<String>), b: (&str, &Option<String>)) -> ServiceResult<Option<i64>> {
    let x = instant(a.0, a.1)?;
    let y = instant(b.0, b.1)?;
    match (x, y) {
        (Some(x), Some(y)) if x != y => Err(bad(
            a.0,
            format!("{} and {} are aliases and disagree", a.0, b.0),
        )),
        (x, y) => Ok(x.or(y)),
    }
}

impl MediaQueryParams {
    pub fn parse(&self) -> ServiceResult<(MediaQuery, Option<String>)> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                VariantStatus::parse(s).ok_or_else(|| {
                    bad(
                        "status",
                        format!(
                            "expected one of {}, got {s:?}",
                            VariantStatus::ALL.map(VariantStatus::as_str).join(", ")
                        ),
                    )
                })
            })
            .transpose()?;
        let media_type = self
            .media_type
            .as_deref()
            .map(|s| {
                MediaType::parse(s).ok_or_else(|| {
                    bad(
                        "type",
                        format!(
                            "expected one of {}, got {s:?}",
                            MediaType::ALL.map(MediaType::as_str).join(", ")
                        ),
                    )
                })
            })
            .transpose()?;
        if let Some(ct) = &self.content_type
            && (ct.is_empty() || ct.chars().count() > MAX_CONTENT_TYPE_LEN)
        {
            return Err(bad(
                "contentType",
                format!("expected a MIME type of 1-{MAX_CONTENT_TYPE_LEN} characters"),
            ));
        }
        if let Some(s) = &self.source
            && !SOURCES.contains(&s.as_str())
        {
            return Err(bad(
                "source",
                format!("expected one of {}, got {s:?}", SOURCES.join(", ")),
            ));
        }
        let duration_min = seconds("durationMin", &self.duration_min)?;
        let duration_max = seconds("durationMax", &self.duration_max)?;
        if let (Some(lo), Some(hi)) = (duration_min, duration_max)
            && lo > hi
        {
            return Err(bad(
                "durationMin",
                format!("{lo} is greater than durationMax {hi}"),
            ));
        }
        let sort = match &self.sort {
            None => SortKey::default(),
            Some(s) => SortKey::parse(s).ok_or_else(|| {
                bad(
                    "sort",
                    format!(
                        "expected one of {}, got {s:?}",
                        SortKey::ALL.map(SortKey::as_str).join(", ")
                    ),
                )
            })?,
        };
        let limit = paging::limit(self.limit.as_deref())?;
        let query = MediaQuery {
            status,
            media_type,
            content_type: self.content_type.clone(),
            duration_min,
            duration_max,
            created_from: instant("createdAtFrom", &self.created_at_from)?,
            created_to: instant("createdAtTo", &self.created_at_to)?,
            cached_from: aliased(
                ("cachedAtFrom", &self.cached_at_from),
                ("storedAtFrom", &self.stored_at_from),
            )?,
            cached_to: aliased(
                ("cachedAtTo", &self.cached_at_to),
                ("storedAtTo", &self.stored_at_to),
            )?,
            sort,
            limit,
            after: None,
        };
        Ok((query, self.cursor.clone()))
    }
}

impl VaultService {
    pub async fn get_media(
        &self,
        who: &Principal,
        connection: &str,
        media_id: &MediaId,
    ) -> ServiceResult<MediaItemView> {
        let id = connection_id(connection)?;
        let read = self
            .catalog
            .connection_media(who.org_id, &id, std::slice::from_ref(media_id))
            .await?;
        let (ctx, mut found) = connection_and(read)?;
        if !ctx.connection.enabled {
            return Err(ServiceError::NotFound("Media not found".into()));
        }
        let scope = ctx.connection.scope_id;
        let found = found
            .pop()
            .ok_or_else(|| ServiceError::NotFound("Media not found".into()))?;
        Ok(self.item_view(scope, &ctx.settings, found))
    }

    /// Items for up to 100 IDs, in request order, duplicates folded, misses
    /// left out.
    pub async fn batch_media(
        &self,
        who: &Principal,
        connection: &str,
        ids: &[MediaId],
    ) -> ServiceResult<MediaItems> {
        if ids.is_empty() || ids.len() > MAX_BATCH {
            return Err(ServiceError::bad_request(format!(
                "mediaIds must hold 1 to {MAX_BATCH} media IDs, got {}",
                ids.len()
            )));
        }
        let mut unique: Vec<MediaId> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        let id = connection_id(connection)?;
        let read = self
            .catalog
            .connection_media(who.org_id, &id, &unique)
            .await?;
        let (ctx, mut found) = connection_and(read)?;
        if !ctx.connection.enabled {
            return Ok(MediaItems { items: Vec::new() });
        }
        let scope = ctx.connection.scope_id;
        let mut items = Vec::with_capacity(found.len());
        for id in &unique {
            if let Some(pos) = found.iter().position(|m| m.media_id == id.as_str()) {
                items.push(self.item_view(scope, &ctx.settings, found.swap_remove(pos)));
            }
        }
        Ok(MediaItems { items })
    }

    pub async fn query_media(
        &self,
        who: &Principal,
        connection: &str,
        params: &MediaQueryParams,
    ) -> ServiceResult<MediaPage> {
        let (mut query, raw_cursor) = params.parse()?;
        let ctx = self.connection(who, connection).await?;
        let binding = ctx.connection.id.clone();
        if let Some(raw) = raw_cursor {
            query.after =
                Some(cursor::decode(&raw, &binding, &query).map_err(|e| bad("cursor", e))?);
        }
        if !ctx.connection.enabled {
            return Ok(MediaPage {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let scope = ctx.connection.scope_id;
        let page = self.catalog.query_media(scope, &query).await?;
        Ok(MediaPage {
            next_cursor: page.next.map(|k| cursor::encode(&binding, &query, k)),
            items: page
                .items
                .into_iter()
                .map(|m| self.item_view(scope, &ctx.settings, m))
                .collect(),
        })
    }

    pub async fn delete_media(
        &self,
        who: &Principal,
        connection: &str,
        media_id: &MediaId,
    ) -> ServiceResult<Receipted<DeleteMediaResponse>> {
        let ctx = self.connection(who, connection).await?;
        let outcome = self
            .catalog
            .delete_media(ctx.connection.scope_id, media_id)
            .await?;
        if outcome.removed_count > 0 {
            self.reclaim_soon();
        }
        Ok(Receipted {
            body: DeleteMediaResponse {
                success: outcome.removed_count > 0,
                media_id: media_id.to_string(),
                freed_bytes: outcome.freed_bytes,
            },
            receipt: outcome.receipt,
        })
    }

    pub async fn status(
        &self,
        who: &Principal,
        connection: &str,
    ) -> ServiceResult<LegacyConnectionStatusView> {
        Ok(self.status_of(who, connection).await?.1)
    }

    /// The connection and its status, from one catalog read. A connection
    /// without Vault+ shows nothing stored.
    pub(super) async fn status_of(
        &self,
        who: &Principal,
        connection: &str,
    ) -> ServiceResult<(ConnectionContext, LegacyConnectionStatusView)> {
        let id = connection_id(connection)?;
        let read = self.catalog.connection_totals(who.org_id, &id).await?;
        let (ctx, totals) = connection_and(read)?;
        let t = if ctx.connection.enabled {
            totals
        } else {
            Default::default()
        };
        let view = LegacyConnectionStatusView {
            connection_id: ctx.connection.id.clone(),
            total_media: t.live_count,
            stored_count: t.stored_count,
            pending_count: t.live_count - t.stored_count,
            total_size_bytes: t.stored_bytes,
        };
        Ok((ctx, view))
    }

    pub async fn org_stats(&self, who: &Principal) -> ServiceResult<OrgStatsView> {
        let t = self.catalog.org_totals(who.org_id).await?;
        Ok(OrgStatsView {
            total_connections: t.connections,
            connections_with_vault_plus: t.enabled_connections,
            total_storage_bytes: t.stored_bytes,
            total_media_count: t.live_count,
        })
    }
}

impl From<LegacyConnectionStatusView> for ConnectionStatusView {
    fn from(v: LegacyConnectionStatusView) -> Self {
        Self {
            connection_id: v.connection_id,
            stored_count: v.stored_count,
            pending_count: v.pending_count,
            total_size_bytes: v.total_size_bytes,
            syncs: Vec::new(),
        }
    }
}

//! Account routes: connection and organization settings, the connection
//! list, and disconnecting a connection.

use super::receipts::Receipted;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use crate::catalog::{Connection, ConnectionChange, OrgRateLimit};
use crate::model::time::{format_iso_ms, now_ms};
use crate::model::views::{
    BroadcastResult, CONNECTION_STATUSES, ConnectionListView, ConnectionSettingsPatchResponse,
    ConnectionSettingsView, ConnectionStatsView, ConnectionVaultPlusFlag, ConnectionVaultPlusView,
    ConnectionView, DeleteConnectionResponse, OrgSettingsPatchResponse, OrgSettingsView,
    OrgVaultPlusView, PurgeResult,
};
use crate::model::{ConnectionId, SettingsPatch, schema};

use super::rate_limit::MAX_RATE;
use super::{Principal, ServiceError, ServiceResult, VaultService, retention, throttle};

/// Body of `PATCH /v2/account/connections/{id}/settings`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionSettingsPatch {
    #[serde(default, deserialize_with = "object")]
    pub vault_plus: Option<ConnectionVaultPlusPatch>,
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionVaultPlusPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Partial overrides of the org defaults; `null` resets to the defaults.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<SettingsPatch>)]
    pub settings: Option<Option<SettingsPatch>>,
}

/// Body of `PATCH /v2/account/settings`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgSettingsPatch {
    #[serde(default, deserialize_with = "object")]
    pub vault_plus: Option<OrgVaultPlusPatch>,
    /// Requests a minute per API key of this org (1 up to the server's
    /// `--rate-limit-per-minute`); `null` takes the server's limit again.
    #[serde(default, deserialize_with = "nullable_rate")]
    #[schema(schema_with = rate_schema)]
    pub rate_limit_per_minute: Option<Option<u32>>,
    /// Requests an API key of this org may make at once (1 up to the
    /// server's `--rate-limit-burst`); `null` takes the server's value again.
    #[serde(default, deserialize_with = "nullable_rate")]
    #[schema(schema_with = rate_schema)]
    pub rate_limit_burst: Option<Option<u32>>,
}

/// A rate an org may set, or null; the document a server serves lowers the
/// maximum to that server's own limit ([`VaultService::org_rate_limit_max`]).
pub fn rate_schema_with_max(max: u32) -> RefOr<Schema> {
    schema::schema(schema::nullable(schema::whole(1, u64::from(max))))
}

fn rate_schema() -> RefOr<Schema> {
    rate_schema_with_max(MAX_RATE)
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgVaultPlusPatch {
    #[serde(default)]
    pub auto_enable_for_new_connections: Option<bool>,
    /// Push the changed defaults to every existing connection: the fields
    /// set in `defaultSettings` stop being overridden per connection.
    #[serde(default)]
    pub apply_to_existing_connections: Option<bool>,
    #[serde(default, deserialize_with = "object")]
    pub default_settings: Option<SettingsPatch>,
}

/// A rate given as a whole number (`600`, or `600.0` as the official SDK,
/// which types every count as a float, sends it), or `null` (Some(None));
/// None when left out. Its range is checked with the server's limits.
fn nullable_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    let n = crate::model::settings::opt_whole(d)?;
    n.map(|n| {
        u32::try_from(n).map_err(|_| {
            de::Error::custom(format!(
                "expected a whole number from 1 to {MAX_RATE}, got {n}"
            ))
        })
    })
    .transpose()
    .map(Some)
}

/// Tells a field given as `null` (Some(None)) from one left out (None);
/// a present value must be a JSON object.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    object::<D, T>(d).map(Some)
}

/// An optional nested object. serde's derived structs also accept JSON
/// arrays (as tuples); a settings body never means that, so only a map (or
/// null) is accepted. Going through the map visitor keeps the field path
/// for error messages.
fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOrNull<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOrNull<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    d.deserialize_option(ObjectOrNull(PhantomData))
}

/// The largest `offset` of `GET /v2/account/connections`: far beyond any
/// organization's connection count, and small enough that every catalog
/// takes it as the same 64-bit integer.
pub const MAX_CONNECTION_OFFSET: u64 = 1_000_000_000;

fn path_connection(raw: &str) -> ServiceResult<ConnectionId> {
    ConnectionId::parse(raw).map_err(|_| connection_missing())
}

fn connection_missing() -> ServiceError {
    ServiceError::NotFound("Connection not found".into())
}

impl VaultService {
    async fn settings_view(&self, c: &Connection) -> ServiceResult<ConnectionSettingsView> {
        let org = self
            .catalog
            .org(c.org_id)
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        let effective = match &c.overrides {
            Some(o) => org.default_settings.with(o),
            None => org.default_settings,
        };
        let t = self.catalog.scope_totals(c.scope_id).await?;
        let limit = effective.storage_limit_bytes;
        Ok(ConnectionSettingsView {
            connection_id: c.id.clone(),
            vault_plus: ConnectionVaultPlusView {
                enabled: c.enabled,
                settings_overrides: c.overrides.clone(),
                stats: ConnectionStatsView {
                    vault_plus_enabled: c.enabled,
                    total_storage_bytes: t.stored_bytes,
                    storage_limit_bytes: limit,
                    media_count: t.live_count,
                    stored_count: t.stored_count,
                    storage_usage_percent: if limit > 0 {
                        (t.stored_bytes as f64 * 10_000.0 / limit as f64).round() / 100.0
                    } else {
                        0.0
                    },
                },
            },
        })
    }

    pub async fn connection_settings(
        &self,
        who: &Principal,
        raw_id: &str,
    ) -> ServiceResult<ConnectionSettingsView> {
        let id = path_connection(raw_id)?;
        let c = self
            .catalog
            .connection(who.org_id, &id)
            .await?
            .ok_or_else(connection_missing)?;
        self.settings_view(&c).await
    }

    pub async fn patch_connection_settings(
        &self,
        who: &Principal,
        raw_id: &str,
        patch: ConnectionSettingsPatch,
    ) -> ServiceResult<Receipted<ConnectionSettingsPatchResponse>> {
        let id = path_connection(raw_id)?;
        let vp = patch.vault_plus.unwrap_or_default();
        if let Some(Some(s)) = &vp.settings {
            s.validate()
                .map_err(|e| ServiceError::bad_request(format!("vaultPlus.settings: {e}")))?;
        }
        let change = ConnectionChange {
            enabled: vp.enabled,
            overrides: vp.settings,
            // Disabling Vault+ removes the connection's media
            // (docs/reference/DECISIONS.md).
            purge: vp.enabled == Some(false),
        };
        let started = std::time::Instant::now();
        let (after, purged) = self
            .catalog
            .update_connection(who.org_id, &id, &change, now_ms())
            .await?
            .ok_or_else(connection_missing)?;
        if let Some(p) = &purged {
            super::purge::purged("disable", p, started);
        }
        let receipt = purged.and_then(|p| p.receipt);
        let mut purge_result = purged.map(|p| PurgeResult {
            purged_count: p.purged_count,
            freed_bytes: p.freed_bytes,
        });
        // New overrides take effect now: a shorter retention or a lower
        // storage limit evicts at once, and the answer says what went.
        if after.enabled && change.overrides.is_some() {
            let ctx = self.connection(who, &after.id).await?;
            let (n, bytes) = retention::sweep_scope(
                self.catalog.as_ref(),
                after.scope_id,
                &ctx.settings,
                now_ms(),
            )
            .await?;
            if n > 0 {
                purge_result = Some(PurgeResult {
                    purged_count: n,
                    freed_bytes: bytes,
                });
            }
        }
        if purge_result.is_some() {
            self.reclaim_soon();
        }
        Ok(Receipted {
            body: ConnectionSettingsPatchResponse {
                settings: self.settings_view(&after).await?,
                purge_result,
            },
            receipt,
        })
    }

    pub async fn org_settings(&self, who: &Principal) -> ServiceResult<OrgSettingsView> {
        let org = self
            .catalog
            .org(who.org_id)
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        Ok(OrgSettingsView {
            vault_plus: OrgVaultPlusView {
                auto_enable_for_new_connections: org.auto_enable,
                default_settings: org.default_settings,
            },
            rate_limit_per_minute: org.rate_limit.per_minute,
            rate_limit_burst: org.rate_limit.burst,
        })
    }

    pub async fn patch_org_settings(
        &self,
        who: &Principal,
        patch: OrgSettingsPatch,
    ) -> ServiceResult<OrgSettingsPatchResponse> {
        let vp = patch.vault_plus.unwrap_or_default();
        let defaults_patch = vp.default_settings.unwrap_or_default();
        defaults_patch
            .validate()
            .map_err(|e| ServiceError::bad_request(format!("vaultPlus.defaultSettings: {e}")))?;
        let org = self
            .catalog
            .org(who.org_id)
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        let rate_limit = OrgRateLimit {
            per_minute: patch
                .rate_limit_per_minute
                .unwrap_or(org.rate_limit.per_minute),
            burst: patch.rate_limit_burst.unwrap_or(org.rate_limit.burst),
        };
        // Only the values this PATCH gives are checked: one stored under an
        // earlier, higher server limit must not make every later PATCH fail
        // (it is clamped where it applies).
        let patched = OrgRateLimit {
            per_minute: patch.rate_limit_per_minute.flatten(),
            burst: patch.rate_limit_burst.flatten(),
        };
        throttle::check_org_override(&self.config.rate_limits, &patched)
            .map_err(ServiceError::bad_request)?;
        if rate_limit != org.rate_limit {
            self.catalog
                .set_org_rate_limit(who.org_id, &rate_limit)
                .await?;
        }
        let defaults = org.default_settings.with(&defaults_patch);
        let auto_enable = vp
            .auto_enable_for_new_connections
            .unwrap_or(org.auto_enable);
        let push = vp.apply_to_existing_connections == Some(true);
        let affected = self
            .catalog
            .update_org_settings(
                who.org_id,
                auto_enable,
                &defaults,
                push.then_some(&defaults_patch),
                now_ms(),
            )
            .await?;
        Ok(OrgSettingsPatchResponse {
            settings: self.org_settings(who).await?,
            broadcast_result: push.then(|| BroadcastResult {
                affected_connections: affected,
                // No setting takes media away yet; eviction by settings
                // comes with retention and limits.
                purge_results: Vec::new(),
            }),
        })
    }

    /// `status` filters by connection state; vaultplus keeps no upstream
    /// session, so every connection is `active`. `offset` is at most
    /// [`MAX_CONNECTION_OFFSET`], and no `nextOffset` past it is handed out
    /// (a client following it would be refused, or loop).
    pub async fn list_connections(
        &self,
        who: &Principal,
        status: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> ServiceResult<ConnectionListView> {
        if let Some(s) = status
            && !CONNECTION_STATUSES.contains(&s)
        {
            return Err(ServiceError::bad_request(format!(
                "invalid query parameter status: expected one of {}, got {s:?}",
                CONNECTION_STATUSES.join(", ")
            )));
        }
        if status.is_some_and(|s| s != CONNECTION_STATUSES[0]) {
            return Ok(ConnectionListView {
                list: Vec::new(),
                has_more: false,
                next_offset: None,
            });
        }
        let mut rows = self
            .catalog
            .list_connections(who.org_id, offset, limit + 1)
            .await?;
        let has_more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let count = rows.len() as u64;
        Ok(ConnectionListView {
            list: rows
                .into_iter()
                .map(|c| ConnectionView {
                    id: c.id,
                    status: CONNECTION_STATUSES[0].into(),
                    created_at: format_iso_ms(c.created_at),
                    updated_at: format_iso_ms(c.updated_at),
                    imported: false,
                    permissions: Vec::new(),
                    vault_plus: ConnectionVaultPlusFlag { enabled: c.enabled },
                })
                .collect(),
            has_more,
            next_offset: has_more
                .then_some(offset + count)
                .filter(|next| *next <= MAX_CONNECTION_OFFSET),
        })
    }

    /// Disconnects a connection: its media is purged first, atomically.
    pub async fn delete_connection(
        &self,
        who: &Principal,
        raw_id: &str,
    ) -> ServiceResult<Receipted<DeleteConnectionResponse>> {
        let id = path_connection(raw_id)?;
        let started = std::time::Instant::now();
        let outcome = self
            .catalog
            .remove_connection(who.org_id, &id, now_ms())
            .await?
            .ok_or_else(connection_missing)?;
        super::purge::purged("remove", &outcome, started);
        self.reclaim_soon();
        Ok(Receipted {
            body: DeleteConnectionResponse {
                success: true,
                connection_id: id.to_string(),
                purge_result: PurgeResult {
                    purged_count: outcome.purged_count,
                    freed_bytes: outcome.freed_bytes,
                },
            },
            receipt: outcome.receipt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rates are whole numbers as every other count: `600.0` (the official
    /// SDK's floats) is 600, null resets, left out keeps.
    #[test]
    fn rates_take_integral_floats_and_null() {
        let p: OrgSettingsPatch =
            serde_json::from_str(r#"{"rateLimitPerMinute": 600.0, "rateLimitBurst": null}"#)
                .unwrap();
        assert_eq!(p.rate_limit_per_minute, Some(Some(600)));
        assert_eq!(p.rate_limit_burst, Some(None));
        let p: OrgSettingsPatch = serde_json::from_str("{}").unwrap();
        assert_eq!(p.rate_limit_per_minute, None);
        for bad in [
            r#"{"rateLimitBurst": 1.5}"#,
            r#"{"rateLimitBurst": -1}"#,
            r#"{"rateLimitBurst": 4294967296}"#,
            r#"{"rateLimitBurst": "5"}"#,
        ] {
            assert!(
                serde_json::from_str::<OrgSettingsPatch>(bad).is_err(),
                "{bad}"
            );
        }
    }
}

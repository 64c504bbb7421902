//! Vault+ settings: the organization's defaults, a connection's partial
//! overrides, and the effective settings that result from both.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use super::schema;

pub const IMAGE_QUALITIES: [&str; 3] = ["thumb", "preview", "full"];
pub const VIDEO_QUALITIES: [&str; 4] = ["preview", "720p", "1080p", "source"];
pub const PURGE_STRATEGIES: [&str; 4] = [
    "purge_oldest",
    "purge_largest",
    "purge_smallest",
    "block_new",
];
/// Signed URLs live at least a minute (shorter would expire in flight) and at
/// most a week (longer defeats revocation by expiry).
pub const MIN_URL_TTL_SECONDS: u64 = 60;
pub const MAX_URL_TTL_SECONDS: u64 = 7 * 86_400;
/// Longest `retentionDays` and `accessExpiryDays`: a hundred years.
pub const MAX_DAYS: u64 = 36_500;

/// The schema of each bounded setting, from the constants
/// [`SettingsPatch::validate`] checks: as the settings carry it, and as a
/// patch may give it (or `null`, which leaves it as it is).
macro_rules! setting_schemas {
    ($($name:ident, $patch:ident => $v:expr;)*) => {
        $(
            fn $name() -> RefOr<Schema> {
                schema::schema($v)
            }
            fn $patch() -> RefOr<Schema> {
                schema::schema(schema::nullable($v))
            }
        )*
    };
}

fn qualities(allowed: &[&str]) -> serde_json::Value {
    serde_json::json!({"type": "array", "items": schema::one_of(allowed), "uniqueItems": true})
}

setting_schemas! {
    count_schema, count_patch_schema => schema::whole(0, MAX_WHOLE);
    days_schema, days_patch_schema => schema::described(
        schema::whole(0, MAX_DAYS), "Days; 0 means never.");
    ttl_schema, ttl_patch_schema => schema::described(
        schema::whole(MIN_URL_TTL_SECONDS, MAX_URL_TTL_SECONDS),
        "Lifetime of media URLs in seconds, 60 to 604800 (7 days).");
    image_qualities_schema, image_qualities_patch_schema => qualities(&IMAGE_QUALITIES);
    video_qualities_schema, video_qualities_patch_schema => qualities(&VIDEO_QUALITIES);
    strategy_schema, strategy_patch_schema => schema::one_of(&PURGE_STRATEGIES);
}

/// All 18 settings, as the organization's `defaultSettings` carry them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultPlusSettings {
    pub auto_cache_vault: bool,
    pub auto_cache_messages: bool,
    pub auto_cache_posts: bool,
    pub auto_cache_stories: bool,
    #[schema(schema_with = count_schema)]
    pub min_access_count_vault: u64,
    #[schema(schema_with = count_schema)]
    pub min_access_count_messages: u64,
    #[schema(schema_with = count_schema)]
    pub min_access_count_posts: u64,
    #[schema(schema_with = count_schema)]
    pub min_access_count_stories: u64,
    pub cache_images: bool,
    pub cache_videos: bool,
    pub cache_audio: bool,
    #[schema(schema_with = image_qualities_schema)]
    pub image_qualities: Vec<String>,
    #[schema(schema_with = video_qualities_schema)]
    pub video_qualities: Vec<String>,
    #[schema(schema_with = days_schema)]
    pub retention_days: u64,
    #[schema(schema_with = days_schema)]
    pub access_expiry_days: u64,
    /// Lifetime of media URLs in seconds, 60 to 604800 (7 days).
    #[schema(schema_with = ttl_schema)]
    pub presigned_url_ttl_seconds: u64,
    #[schema(schema_with = count_schema)]
    pub storage_limit_bytes: u64,
    #[schema(schema_with = strategy_schema)]
    pub storage_limit_purge_strategy: String,
}

impl Default for VaultPlusSettings {
    /// The defaults of docs/reference/DECISIONS.md for a new organization.
    fn default() -> Self {
        Self {
            auto_cache_vault: true,
            auto_cache_messages: false,
            auto_cache_posts: false,
            auto_cache_stories: false,
            min_access_count_vault: 1,
            min_access_count_messages: 1,
            min_access_count_posts: 1,
            min_access_count_stories: 1,
            cache_images: true,
            cache_videos: true,
            cache_audio: true,
            image_qualities: vec!["thumb".into(), "full".into()],
            video_qualities: vec!["preview".into(), "source".into()],
            retention_days: 0,
            access_expiry_days: 0,
            presigned_url_ttl_seconds: 3600,
            storage_limit_bytes: 0,
            storage_limit_purge_strategy: "purge_oldest".into(),
        }
    }
}

/// A partial settings object: PATCH bodies and per-connection overrides.
/// Unknown fields are refused so a typo never silently does nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_cache_vault: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_cache_messages: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_cache_posts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_cache_stories: Option<bool>,
    #[serde(
        default,
        deserialize_with = "opt_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = count_patch_schema)]
    pub min_access_count_vault: Option<u64>,
    #[serde(
        default,
        deserialize_with = "opt_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = count_patch_schema)]
    pub min_access_count_messages: Option<u64>,
    #[serde(
        default,
        deserialize_with = "opt_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = count_patch_schema)]
    pub min_access_count_posts: Option<u64>,
    #[serde(
        default,
        deserialize_with = "opt_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = count_patch_schema)]
    pub min_access_count_stories: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_images: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_videos: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_audio: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = image_qualities_patch_schema)]
    pub image_qualities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = video_qualities_patch_schema)]
    pub video_qualities: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "opt_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = days_patch_schema)]
    pub retention_days: Option<u64>,
    #[serde(
        default,
        deserialize_with = "opt_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = days_patch_schema)]
    pub access_expiry_days: Option<u64>,
    #[serde(
        default,
        deserialize_with = "opt_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = ttl_patch_schema)]
    pub presigned_url_ttl_seconds: Option<u64>,
    #[serde(
        default,
        deserialize_with = "opt_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = count_patch_schema)]
    pub storage_limit_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = strategy_patch_schema)]
    pub storage_limit_purge_strategy: Option<String>,
}

/// Largest whole number a setting takes: the catalogs store settings as
/// signed 64-bit integers. Fields with a smaller documented maximum check
/// it in [`SettingsPatch::validate`].
pub const MAX_WHOLE: u64 = i64::MAX as u64;
/// Floats are exact integers only up to 2^53; past it `9007199254740993.0`
/// would silently become another number.
const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

/// Accepts a JSON integer or an integral float (the official SDK types every
/// count as `float`, so `3600.0` must mean 3600); refuses negatives,
/// fractions, floats too large to be exact, and anything past [`MAX_WHOLE`].
pub fn opt_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    let Some(n) = n else { return Ok(None) };
    let whole = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Some(u),
        (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f <= MAX_EXACT_FLOAT => Some(f as u64),
        _ => None,
    };
    match whole {
        Some(u) if u <= MAX_WHOLE => Ok(Some(u)),
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number from 0 to {MAX_WHOLE}, got {n}"
        ))),
    }
}

macro_rules! apply_fields {
    ($target:expr, $patch:expr, $($f:ident),*) => {
        $( if let Some(v) = &$patch.$f { $target.$f = v.clone(); } )*
    };
}

macro_rules! merge_fields {
    ($target:expr, $patch:expr, $($f:ident),*) => {
        $( if $patch.$f.is_some() { $target.$f = $patch.$f.clone(); } )*
    };
}

macro_rules! clear_fields {
    ($target:expr, $patch:expr, $($f:ident),*) => {
        $( if $patch.$f.is_some() { $target.$f = None; } )*
    };
}

/// Builds both structs from exactly the fields it is given, no `..`: a
/// setting added to either struct but not to [`all_fields!`] (which the
/// patch operations below run over) fails to compile ("missing field"),
/// instead of being silently never applied, merged or cleared; so does a
/// patch field whose type is not `Option` of the setting's.
macro_rules! listed_exactly {
    ($settings:ident, $patch:ident, $($f:ident),*) => {
        #[allow(dead_code)] // never called: it exists to be type-checked
        fn every_setting_is_listed(s: $settings) -> ($settings, $patch) {
            let p = $patch { $($f: Some(s.$f.clone())),* };
            ($settings { $($f: s.$f),* }, p)
        }
    };
}

/// Every setting, once: the one list the patch operations run over,
/// checked against both structs by [`listed_exactly!`].
macro_rules! all_fields {
    ($m:ident, $a:tt, $b:tt) => {
        $m! {
            $a,
            $b,
            auto_cache_vault,
            auto_cache_messages,
            auto_cache_posts,
            auto_cache_stories,
            min_access_count_vault,
            min_access_count_messages,
            min_access_count_posts,
            min_access_count_stories,
            cache_images,
            cache_videos,
            cache_audio,
            image_qualities,
            video_qualities,
            retention_days,
            access_expiry_days,
            presigned_url_ttl_seconds,
            storage_limit_bytes,
            storage_limit_purge_strategy
        }
    };
}

all_fields!(listed_exactly, VaultPlusSettings, SettingsPatch);

/// What happens when a store would take a connection over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitStrategy {
    PurgeOldest,
    PurgeLargest,
    PurgeSmallest,
    BlockNew,
}

/// A connection's storage limit, when it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageLimit {
    pub bytes: u64,
    pub strategy: LimitStrategy,
}

impl VaultPlusSettings {
    /// The storage limit in force (`storageLimitBytes` 0 means none).
    pub fn storage_limit(&self) -> Option<StorageLimit> {
        let strategy = match self.storage_limit_purge_strategy.as_str() {
            "purge_largest" => LimitStrategy::PurgeLargest,
            "purge_smallest" => LimitStrategy::PurgeSmallest,
            "block_new" => LimitStrategy::BlockNew,
            _ => LimitStrategy::PurgeOldest,
        };
        (self.storage_limit_bytes > 0).then_some(StorageLimit {
            bytes: self.storage_limit_bytes,
            strategy,
        })
    }

    /// These settings with a patch applied on top.
    pub fn with(&self, patch: &SettingsPatch) -> Self {
        let mut out = self.clone();
        all_fields!(apply_fields, out, patch);
        out
    }
}

impl SettingsPatch {
    /// Checks every present field against its allowed values and names the
    /// first one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        check_qualities("imageQualities", &self.image_qualities, &IMAGE_QUALITIES)?;
        check_qualities("videoQualities", &self.video_qualities, &VIDEO_QUALITIES)?;
        if let Some(ttl) = self.presigned_url_ttl_seconds
            && !(MIN_URL_TTL_SECONDS..=MAX_URL_TTL_SECONDS).contains(&ttl)
        {
            return Err(format!(
                "presignedUrlTtlSeconds must be between {MIN_URL_TTL_SECONDS} and {MAX_URL_TTL_SECONDS}, got {ttl}"
            ));
        }
        if let Some(s) = &self.storage_limit_purge_strategy
            && !PURGE_STRATEGIES.contains(&s.as_str())
        {
            return Err(format!(
                "storageLimitPurgeStrategy must be one of {}, got {s:?}",
                PURGE_STRATEGIES.join(", ")
            ));
        }
        for (name, v) in [
            ("retentionDays", self.retention_days),
            ("accessExpiryDays", self.access_expiry_days),
        ] {
            if v.is_some_and(|d| d > MAX_DAYS) {
                return Err(format!("{name} must be at most {MAX_DAYS} days"));
            }
        }
        Ok(())
    }

    /// Overlays `other` on this patch (fields present in `other` win).
    pub fn merged(&self, other: &SettingsPatch) -> SettingsPatch {
        let mut out = self.clone();
        all_fields!(merge_fields, out, other);
        out
    }

    /// Removes the fields that `other` sets (used when org defaults are pushed
    /// to existing connections: the pushed fields stop being overridden).
    pub fn without_fields_of(&self, other: &SettingsPatch) -> SettingsPatch {
        let mut out = self.clone();
        all_fields!(clear_fields, out, other);
        out
    }

    pub fn is_empty(&self) -> bool {
        self == &SettingsPatch::default()
    }
}

fn check_qualities(
    name: &str,
    value: &Option<Vec<String>>,
    allowed: &[&str],
) -> Result<(), String> {
    let Some(list) = value else { return Ok(()) };
    for (i, q) in list.iter().enumerate() {
        if !allowed.contains(&q.as_str()) {
            return Err(format!(
                "{name}[{i}] must be one of {}, got {q:?}",
                allowed.join(", ")
            ));
        }
        if list[..i].contains(q) {
            return Err(format!("{name} lists {q:?} twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_overlays_defaults() {
        let patch: SettingsPatch =
            serde_json::from_str(r#"{"retentionDays":30,"cacheVideos":false}"#).unwrap();
        let eff = VaultPlusSettings::default().with(&patch);
        assert_eq!(eff.retention_days, 30);
        assert!(!eff.cache_videos);
        assert_eq!(eff.presigned_url_ttl_seconds, 3600);
    }

    #[test]
    fn integral_floats_are_whole_numbers() {
        let p: SettingsPatch =
            serde_json::from_str(r#"{"presignedUrlTtlSeconds":3600.0}"#).unwrap();
        assert_eq!(p.presigned_url_ttl_seconds, Some(3600));
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"retentionDays":1.5}"#).is_err());
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"retentionDays":-1}"#).is_err());
    }

    #[test]
    fn whole_numbers_past_i64_or_inexact_floats_are_refused() {
        for body in [
            r#"{"storageLimitBytes":9223372036854775808}"#,
            r#"{"storageLimitBytes":18446744073709551616}"#,
            r#"{"storageLimitBytes":1e300}"#,
            r#"{"storageLimitBytes":9007199254740994.0}"#,
            r#"{"minAccessCountVault":-0.5}"#,
        ] {
            let e = serde_json::from_str::<SettingsPatch>(body).unwrap_err();
            assert!(e.to_string().contains("whole number"), "{body}: {e}");
        }
        let p: SettingsPatch =
            serde_json::from_str(r#"{"storageLimitBytes":9223372036854775807}"#).unwrap();
        assert_eq!(p.storage_limit_bytes, Some(MAX_WHOLE));
    }

    #[test]
    fn validation_names_the_field() {
        let p: SettingsPatch = serde_json::from_str(r#"{"imageQualities":["huge"]}"#).unwrap();
        assert!(p.validate().unwrap_err().contains("imageQualities[0]"));
        let p: SettingsPatch =
            serde_json::from_str(r#"{"storageLimitPurgeStrategy":"random"}"#).unwrap();
        assert!(
            p.validate()
                .unwrap_err()
                .contains("storageLimitPurgeStrategy")
        );
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"retentionDayz":1}"#).is_err());
    }

    /// The compiler checks the two structs have the same fields; this checks
    /// they have the same JSON names, so every setting can be patched.
    #[test]
    fn every_setting_has_a_patch_field_of_the_same_name() {
        let all = serde_json::to_value(VaultPlusSettings::default()).unwrap();
        let patch: SettingsPatch = serde_json::from_value(all.clone()).unwrap();
        assert_eq!(serde_json::to_value(&patch).unwrap(), all);
    }

    #[test]
    fn without_fields_of_clears_pushed_fields() {
        let overrides: SettingsPatch =
            serde_json::from_str(r#"{"retentionDays":3,"cacheAudio":false}"#).unwrap();
        let pushed: SettingsPatch = serde_json::from_str(r#"{"retentionDays":9}"#).unwrap();
        let left = overrides.without_fields_of(&pushed);
        assert_eq!(left.retention_days, None);
        assert_eq!(left.cache_audio, Some(false));
    }
}

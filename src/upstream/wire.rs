//! The upstream's JSON, read leniently: fields that do not matter to a
//! cache are ignored, and a malformed item is skipped rather than failing
//! the whole listing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::MediaId;
use crate::model::MediaType;
use crate::model::admission::{Rendition, UpstreamMedia};

#[derive(Deserialize)]
pub struct ListPage {
    #[serde(default)]
    pub list: Vec<serde_json::Value>,
    #[serde(default, rename = "hasMore")]
    pub has_more: bool,
    #[serde(default, rename = "nextOffset")]
    pub next_offset: Option<u64>,
}

#[derive(Deserialize)]
struct Item {
    id: serde_json::Value,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default = "yes", rename = "canView")]
    can_view: bool,
    #[serde(default = "yes", rename = "isReady")]
    is_ready: bool,
    #[serde(default, rename = "hasError")]
    has_error: bool,
    #[serde(default)]
    files: Option<BTreeMap<String, Option<File>>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    size: Option<f64>,
}

/// Maps one listed item, or None when a cache must skip it (not viewable,
/// not ready, broken, unknown type, no usable `full` rendition).
pub fn item(raw: &serde_json::Value) -> Option<UpstreamMedia> {
    let it: Item = serde_json::from_value(raw.clone()).ok()?;
    if !it.can_view || !it.is_ready || it.has_error {
        return None;
    }
    let id = match &it.id {
        serde_json::Value::Number(n) => n.as_u64()?.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    let media_type = match it.kind.as_str() {
        "photo" | "gif" => MediaType::Image,
        "video" => MediaType::Video,
        "audio" => MediaType::Audio,
        _ => return None,
    };
    let renditions: Vec<Rendition> = it
        .files
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, f)| {
            let f = f?;
            let url = f
                .url
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))?;
            crate::model::Label::parse(&key).ok()?;
            Some(Rendition {
                key,
                url,
                size: f
                    .size
                    .filter(|s| *s >= 0.0 && s.fract() == 0.0)
                    .map(|s| s as u64),
            })
        })
        .collect();
    if !renditions.iter().any(|r| r.key == "full") {
        return None;
    }
    Some(UpstreamMedia {
        media_id: MediaId::parse(&id).ok()?,
        media_type,
        duration: it.duration.filter(|d| d.is_finite() && *d >= 0.0),
        renditions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_what_a_cache_cannot_store() {
        let ok = serde_json::json!({"id": 4492994399u64, "type": "photo", "canView": true, "isReady": true,
            "hasError": false, "files": {"full": {"url": "https://cdn/x.jpg", "size": 10}, "thumb": null}});
        let m = item(&ok).unwrap();
        assert_eq!(m.media_id.as_str(), "4492994399");
        assert_eq!(m.renditions.len(), 1);
        for patch in [("canView", false), ("isReady", false), ("hasError", true)] {
            let mut bad = ok.clone();
            bad[patch.0] = serde_json::Value::Bool(patch.1);
            assert!(item(&bad).is_none(), "{patch:?}");
        }
        let mut no_full = ok.clone();
        no_full["files"] = serde_json::json!({"thumb": {"url": "https://cdn/t.jpg"}});
        assert!(item(&no_full).is_none());
    }
}

//! Which upstream renditions a connection stores, by its settings.
//!
//! - `cacheImages` / `cacheVideos` / `cacheAudio` off: the item is seen but
//!   not cached at all.
//! - Images (`photo`, `gif`): rendition `thumb`, `preview` and `full` are
//!   stored when `imageQualities` names them. An item that lacks a `thumb`
//!   the settings ask for gets one derived from `full`.
//! - Videos: `full` is the `source` quality and `preview` the `preview`
//!   quality of `videoQualities` (the upstream offers no `720p`/`1080p`
//!   renditions); their `thumb` poster is an image and follows
//!   `imageQualities`.
//! - Audio: `full` only.
//! - Renditions not stored are still recorded as `edge_only`, so their URLs
//!   work through the proxy and auto-caching can store them later.

use super::observed::{ObservedMedia, ObservedVariant, Origin};
use super::{MediaId, MediaType, VaultPlusSettings};

/// One rendition as the upstream lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendition {
    pub key: String,
    pub url: String,
    pub size: Option<u64>,
}

/// An upstream item, before settings are applied.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamMedia {
    pub media_id: MediaId,
    pub media_type: MediaType,
    pub duration: Option<f64>,
    pub renditions: Vec<Rendition>,
}

fn wanted(s: &VaultPlusSettings, t: MediaType, key: &str) -> bool {
    let has = |list: &Vec<String>, q: &str| list.iter().any(|x| x == q);
    match (t, key) {
        (MediaType::Image, "thumb" | "preview" | "full") => has(&s.image_qualities, key),
        (MediaType::Video, "full") => has(&s.video_qualities, "source"),
        (MediaType::Video, "preview") => has(&s.video_qualities, "preview"),
        (MediaType::Video, "thumb") => has(&s.image_qualities, "thumb"),
        (MediaType::Audio, "full") => true,
        _ => false,
    }
}

/// Guesses a content type from the URL's extension, else from the type;
/// the fetched response's own header replaces it.
pub fn guess_content_type(t: MediaType, key: &str, url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let by_ext = match ext.as_str() {
        "jpg" | "jpeg" => Some("image/jpeg"),
        "png" => Some("image/png"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "mp4" | "m4v" => Some("video/mp4"),
        "mov" => Some("video/quicktime"),
        "webm" => Some("video/webm"),
        "mp3" => Some("audio/mpeg"),
        "m4a" => Some("audio/mp4"),
        "ogg" => Some("audio/ogg"),
        "wav" => Some("audio/wav"),
        _ => None,
    };
    by_ext
        .unwrap_or(match (t, key) {
            (MediaType::Video, "thumb" | "squarePreview") | (MediaType::Image, _) => "image/jpeg",
            (MediaType::Video, _) => "video/mp4",
            (MediaType::Audio, _) => "audio/mpeg",
        })
        .to_owned()
}

/// The fingerprint of docs/reference/DECISIONS.md: `full` size plus URL path.
pub fn fingerprint(renditions: &[Rendition]) -> String {
    let full = renditions.iter().find(|r| r.key == "full");
    match full {
        Some(r) => {
            let path = r.url.split(['?', '#']).next().unwrap_or(&r.url);
            let path = path
                .split_once("://")
                .map_or(path, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
            format!("{}:{}", r.size.map_or(-1, |s| s as i64), path)
        }
        None => String::new(),
    }
}

pub fn admit(s: &VaultPlusSettings, m: &UpstreamMedia) -> ObservedMedia {
    let admitted = match m.media_type {
        MediaType::Image => s.cache_images,
        MediaType::Video => s.cache_videos,
        MediaType::Audio => s.cache_audio,
    };
    let mut variants: Vec<ObservedVariant> = if admitted {
        m.renditions
            .iter()
            .map(|r| ObservedVariant {
                label: r.key.clone(),
                origin: Origin::Upstream,
                url: Some(r.url.clone()),
                size: r.size,
                content_type: guess_content_type(m.media_type, &r.key, &r.url),
                store: wanted(s, m.media_type, &r.key),
            })
            .collect()
    } else {
        Vec::new()
    };
    let wants_thumb = m.media_type == MediaType::Image && wanted(s, MediaType::Image, "thumb");
    let has_full = m.renditions.iter().any(|r| r.key == "full");
    if admitted && wants_thumb && has_full && !m.renditions.iter().any(|r| r.key == "thumb") {
        variants.push(ObservedVariant {
            label: "thumb".into(),
            origin: Origin::Derived,
            url: None,
            size: None,
            content_type: "image/jpeg".into(),
            store: true,
        });
    }
    ObservedMedia {
        media_id: m.media_id.clone(),
        media_type: m.media_type,
        duration: m.duration,
        fingerprint: fingerprint(&m.renditions),
        admitted,
        variants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(t: MediaType, keys: &[&str]) -> UpstreamMedia {
        UpstreamMedia {
            media_id: MediaId::parse("1").unwrap(),
            media_type: t,
            duration: None,
            renditions: keys
                .iter()
                .map(|k| Rendition {
                    key: (*k).into(),
                    url: format!("http://cdn/x/{k}.jpg?sig=1"),
                    size: Some(10),
                })
                .collect(),
        }
    }

    #[test]
    fn image_qualities_choose_what_is_stored() {
        let s = VaultPlusSettings::default();
        let o = admit(&s, &item(MediaType::Image, &["full", "thumb", "preview"]));
        let stored: Vec<_> = o
            .variants
            .iter()
            .filter(|v| v.store)
            .map(|v| v.label.as_str())
            .collect();
        assert_eq!(stored, ["full", "thumb"]);
        assert!(o.variants.iter().any(|v| v.label == "preview" && !v.store));
    }

    #[test]
    fn a_missing_thumb_is_derived() {
        let o = admit(
            &VaultPlusSettings::default(),
            &item(MediaType::Image, &["full"]),
        );
        let thumb = o.variants.iter().find(|v| v.label == "thumb").unwrap();
        assert_eq!((thumb.origin, thumb.store), (Origin::Derived, true));
    }

    #[test]
    fn excluded_types_are_not_admitted() {
        let s = VaultPlusSettings {
            cache_videos: false,
            ..VaultPlusSettings::default()
        };
        let o = admit(&s, &item(MediaType::Video, &["full"]));
        assert!(!o.admitted && o.variants.is_empty());
    }

    #[test]
    fn fingerprint_ignores_query_and_host() {
        let a = vec![Rendition {
            key: "full".into(),
            url: "http://a/cdn/1/2/full.jpg?exp=1&sig=x".into(),
            size: Some(5),
        }];
        let b = vec![Rendition {
            key: "full".into(),
            url: "http://b/cdn/1/2/full.jpg?exp=9&sig=y".into(),
            size: Some(5),
        }];
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), "5:/cdn/1/2/full.jpg");
    }
}

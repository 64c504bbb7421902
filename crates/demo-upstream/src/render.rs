//! The bytes behind each rendition at each revision. Images are encoded on
//! first use and kept in a bounded cache (the listing needs their exact
//! length, and a fetch usually follows); video and audio are synthetic and
//! never held in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

use super::catalog::{MediaSpec, Rendition};
use super::imagegen;
use super::synth::{Synth, mix};

/// Encoded images kept at most; past it the cache starts over (simple, and
/// re-encoding is only a few milliseconds per image in a release build).
const CACHE_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// What a rendition's body is made of.
#[derive(Clone, Debug)]
pub enum Body {
    Whole(Bytes),
    Synth(Synth),
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Whole(b) => b.len() as u64,
            Body::Synth(s) => s.len,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    media: u64,
    revision: u32,
    label: &'static str,
}

/// One image, encoded once: whoever asks while it is being encoded waits
/// for that encode instead of starting another (the warm-up and a first
/// listing often want the same images at the same time).
type Slot = Arc<OnceLock<Result<Bytes, String>>>;

#[derive(Default)]
pub struct Renderer {
    images: Mutex<ImageCache>,
    /// Lengths of images already encoded once: a few bytes each, so even the
    /// 1,000-item list costs nothing to keep.
    sizes: Mutex<HashMap<Key, u64>>,
}

#[derive(Default)]
struct ImageCache {
    map: HashMap<Key, Slot>,
    total: usize,
}

/// The seed every byte of a rendition derives from.
pub fn seed(media: u64, revision: u32, label: &str) -> u64 {
    let label_hash = label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    mix(mix(media) ^ mix(u64::from(revision).wrapping_add(0x5eed)) ^ label_hash)
}

impl Renderer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The body of `r` of `spec` at `revision`. May encode an image: call
    /// from a blocking context.
    pub fn body(&self, spec: &MediaSpec, r: &Rendition, revision: u32) -> anyhow::Result<Body> {
        let seed = seed(spec.id, revision, r.label);
        if !r.encoding.is_image() {
            let synth = Synth::new(r.encoding, seed, r.synth_len, revision);
            return Ok(Body::Synth(synth));
        }
        let key = Key {
            media: spec.id,
            revision,
            label: r.label,
        };
        let encode = || {
            let (w, h) = (r.width.unwrap_or(1), r.height.unwrap_or(1));
            let bytes = imagegen::render(r.encoding, w, h, seed, revision)?;
            self.lock_sizes().insert(key.clone(), bytes.len() as u64);
            anyhow::Ok(Bytes::from(bytes))
        };
        if spec.bulk {
            return Ok(Body::Whole(encode()?));
        }
        let slot = self
            .lock_images()
            .map
            .entry(key.clone())
            .or_default()
            .clone();
        let bytes = slot.get_or_init(|| {
            let bytes = encode().map_err(|e| format!("{e:#}"))?;
            let mut cache = self.lock_images();
            cache.total += bytes.len();
            if cache.total > CACHE_LIMIT_BYTES {
                // Slots still held by waiters finish regardless.
                cache.map.clear();
                cache.total = 0;
            }
            Ok(bytes)
        });
        match bytes {
            Ok(b) => Ok(Body::Whole(b.clone())),
            Err(e) => {
                // Let a later request try again rather than keep the error.
                self.lock_images().map.remove(&key);
                Err(anyhow::anyhow!("{e}"))
            }
        }
    }

    /// The exact length `body` would have. Blocking, like [`Self::body`].
    pub fn size(&self, spec: &MediaSpec, r: &Rendition, revision: u32) -> anyhow::Result<u64> {
        let key = Key {
            media: spec.id,
            revision,
            label: r.label,
        };
        if let Some(&n) = self.lock_sizes().get(&key) {
            return Ok(n);
        }
        Ok(self.body(spec, r, revision)?.len())
    }

    /// Works out the sizes of every (media, rendition, revision) in `jobs`
    /// on all cores, so one listing or the warm-up does not encode a dozen
    /// images one after another. Errors are left for the caller's own
    /// `size` call to report.
    pub fn prefetch(&self, jobs: &[(MediaSpec, Rendition, u32)]) {
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(jobs.len());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while let Some((spec, r, rev)) = jobs.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        let _ = self.size(spec, r, *rev);
                    }
                });
            }
        });
    }

    // A panic while holding these locks cannot leave the maps inconsistent
    // (each update is a single insert, remove or clear), so poisoning is
    // ignored.
    fn lock_images(&self) -> MutexGuard<'_, ImageCache> {
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_sizes(&self) -> MutexGuard<'_, HashMap<Key, u64>> {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog::{self, Encoding};
    use super::*;

    fn all_bytes(body: &Body) -> Vec<u8> {
        match body {
            Body::Whole(b) => b.to_vec(),
            Body::Synth(s) => (0..s.chunk_count()).flat_map(|i| s.chunk(i)).collect(),
        }
    }

    #[test]
    fn every_image_of_the_photos_list_decodes_at_its_listed_size() {
        let r = Renderer::new();
        for list in catalog::initial_lists(0) {
            if list.id != catalog::LIST_PHOTOS && list.id != catalog::LIST_MIXED {
                continue;
            }
            for id in list.media {
                let spec = catalog::media(id).expect("known media");
                for rend in spec.files.iter().flatten() {
                    let body = r.body(&spec, rend, 0).expect("body");
                    assert_eq!(body.len(), r.size(&spec, rend, 0).expect("size"));
                    if let Body::Whole(b) = &body {
                        let img = image::load_from_memory(b).expect("decodes");
                        assert_eq!(Some(img.width()), rend.width, "{id} {}", rend.label);
                        assert_eq!(Some(img.height()), rend.height, "{id} {}", rend.label);
                    }
                }
            }
        }
    }

    #[test]
    fn bytes_are_the_same_from_a_fresh_renderer_and_change_with_revision() {
        let spec = catalog::media(catalog::MEDIA_BASE + 2).expect("photo");
        let full = spec.rendition("full").expect("full").clone();
        let a = all_bytes(&Renderer::new().body(&spec, &full, 0).expect("a"));
        let b = all_bytes(&Renderer::new().body(&spec, &full, 0).expect("b"));
        let c = all_bytes(&Renderer::new().body(&spec, &full, 1).expect("c"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a.len(), c.len());
    }

    #[test]
    fn video_and_audio_are_synthetic_with_declared_lengths() {
        let r = Renderer::new();
        let video = catalog::media(catalog::MEDIA_BASE + 100).expect("video");
        let full = video.rendition("full").expect("full");
        assert_eq!(full.encoding, Encoding::Mp4);
        assert_eq!(r.size(&video, full, 0).expect("size"), full.synth_len);
        let huge = catalog::media(catalog::MEDIA_BASE + 20_000).expect("huge");
        let huge_full = huge.rendition("full").expect("full");
        assert_eq!(
            r.size(&huge, huge_full, 0).expect("size"),
            catalog::HUGE_LEN
        );
    }
}

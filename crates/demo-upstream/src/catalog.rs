//! The fixed, deterministic catalog: which media exist, what renditions each
//! has, and which lists they start in. Everything here is computed from the
//! media ID, so the 1,000-item list costs nothing until it is asked for.

/// Media IDs are `MEDIA_BASE + n`, large like real upstream IDs.
pub const MEDIA_BASE: u64 = 4_492_994_399;

pub const LIST_PHOTOS: u64 = 101;
pub const LIST_VIDEOS: u64 = 102;
pub const LIST_AUDIO: u64 = 103;
pub const LIST_MIXED: u64 = 104;
pub const LIST_LARGE: u64 = 105;
pub const LIST_HUGE: u64 = 106;
pub const LIST_BULK: u64 = 107;

/// Offsets (from [`MEDIA_BASE`]) of each group of media.
const PHOTOS_AT: u64 = 0;
const VIDEOS_AT: u64 = 100;
const AUDIO_AT: u64 = 200;
const SPECIAL_AT: u64 = 300;
const LARGE_AT: u64 = 10_000;
pub const LARGE_COUNT: u64 = 1_000;
const HUGE_AT: u64 = 20_000;
/// 200 MiB: big enough that buffering it would show in memory use.
pub const HUGE_LEN: u64 = 200 * 1024 * 1024;
/// The bulk list's items: tiny synthetic MP3s, made from their ID on
/// request, so a list of any length costs only its IDs.
const BULK_AT: u64 = 1_000_000;
/// Bulk media IDs known at most (whatever `--bulk-items` says).
pub const BULK_MAX: u64 = 9_000_000;
/// Items of the bulk list unless `--bulk-items` says otherwise.
pub const BULK_DEFAULT: u64 = 200_000;

/// 2024-01-15T10:00:00Z; each media ID is a little later than the previous.
const CREATED_BASE: i64 = 1_705_312_800;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Photo,
    Video,
    Gif,
    Audio,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Photo => "photo",
            Kind::Video => "video",
            Kind::Gif => "gif",
            Kind::Audio => "audio",
        }
    }
}

/// How a rendition's bytes are made.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Jpeg,
    Png,
    Gif,
    /// Synthetic MP4: an `ftyp` box, then one `mdat` of pattern bytes.
    Mp4,
    /// Synthetic MP3: an ID3 header, then 128 kbit/s frames of pattern bytes.
    Mp3,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Jpeg => "image/jpeg",
            Encoding::Png => "image/png",
            Encoding::Gif => "image/gif",
            Encoding::Mp4 => "video/mp4",
            Encoding::Mp3 => "audio/mpeg",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Encoding::Jpeg => "jpg",
            Encoding::Png => "png",
            Encoding::Gif => "gif",
            Encoding::Mp4 => "mp4",
            Encoding::Mp3 => "mp3",
        }
    }

    pub fn is_image(self) -> bool {
        matches!(self, Encoding::Jpeg | Encoding::Png | Encoding::Gif)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendition {
    /// `full`, `thumb`, `preview` or `squarePreview`.
    pub label: &'static str,
    pub encoding: Encoding,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Byte length at revision 0 for synthetic (video/audio) bodies; images
    /// are as long as their encoding turns out.
    pub synth_len: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSpec {
    pub id: u64,
    pub kind: Kind,
    /// Unix seconds.
    pub created_at: i64,
    pub duration: Option<u32>,
    pub can_view: bool,
    pub is_ready: bool,
    pub has_error: bool,
    /// `None` while upstream is still processing (`isReady: false`).
    pub files: Option<Vec<Rendition>>,
    /// Part of the 1,000-item list: its bytes are re-encoded on every fetch
    /// rather than cached, so the list never sits in memory.
    pub bulk: bool,
}

impl MediaSpec {
    pub fn rendition(&self, label: &str) -> Option<&Rendition> {
        self.files.as_ref()?.iter().find(|r| r.label == label)
    }
}

/// A list as it is at start (and after `/_demo/reset`).
pub struct ListSpec {
    pub id: u64,
    pub name: &'static str,
    pub about: &'static str,
    pub media: Vec<u64>,
}

/// The lists at start; the bulk list holds `bulk` items.
pub fn initial_lists(bulk: u64) -> Vec<ListSpec> {
    let at = |n: u64| MEDIA_BASE + n;
    vec![
        ListSpec {
            id: LIST_PHOTOS,
            name: "Photos",
            about: "JPEG and PNG photos and a GIF; 5 photos have no thumb",
            media: (0..PHOTOS.len() as u64)
                .map(|n| at(PHOTOS_AT + n))
                .collect(),
        },
        ListSpec {
            id: LIST_VIDEOS,
            name: "Videos",
            about: "MP4 videos with full, preview and a JPEG thumb",
            media: (0..VIDEOS.len() as u64)
                .map(|n| at(VIDEOS_AT + n))
                .collect(),
        },
        ListSpec {
            id: LIST_AUDIO,
            name: "Audio",
            about: "MP3 audio, full only",
            media: (0..AUDIO.len() as u64).map(|n| at(AUDIO_AT + n)).collect(),
        },
        ListSpec {
            id: LIST_MIXED,
            name: "Mixed",
            about: "3 photos shared with list 101, a video, an audio, a PNG of its own, \
                    then canView:false, isReady:false (files null), hasError:true",
            media: [0, 1, 5, 100, 200, 303, 300, 301, 302]
                .into_iter()
                .map(at)
                .collect(),
        },
        ListSpec {
            id: LIST_LARGE,
            name: "Large",
            about: "1,000 small JPEG photos (full only), for ingest benchmarks",
            media: (0..LARGE_COUNT).map(|n| at(LARGE_AT + n)).collect(),
        },
        ListSpec {
            id: LIST_HUGE,
            name: "Huge",
            about: "one 200 MiB MP4 video, generated while it streams",
            media: vec![at(HUGE_AT)],
        },
        ListSpec {
            id: LIST_BULK,
            name: "Bulk",
            about: "--bulk-items tiny MP3s (427 bytes, full only), for big-sync tests",
            media: (0..bulk.min(BULK_MAX)).map(|n| at(BULK_AT + n)).collect(),
        },
    ]
}

/// (encoding, width, height, thumb, preview, squarePreview)
type PhotoRow = (Encoding, u32, u32, bool, bool, bool);
const PHOTOS: [PhotoRow; 12] = [
    (Encoding::Jpeg, 1200, 800, true, true, true),
    (Encoding::Jpeg, 800, 1200, false, true, false),
    (Encoding::Jpeg, 640, 640, true, false, false),
    (Encoding::Png, 1200, 800, false, false, false),
    (Encoding::Png, 640, 640, true, false, true),
    (Encoding::Jpeg, 1200, 800, false, false, false),
    (Encoding::Jpeg, 800, 1200, true, true, true),
    (Encoding::Png, 800, 1200, false, true, false),
    (Encoding::Gif, 320, 240, true, false, false),
    (Encoding::Jpeg, 640, 640, false, false, false),
    (Encoding::Png, 1200, 800, true, true, false),
    (Encoding::Jpeg, 1200, 800, true, false, false),
];

/// (width, height, seconds, full bytes)
const VIDEOS: [(u32, u32, u32, u64); 6] = [
    (1920, 1080, 12, 1_200_000),
    (1080, 1920, 30, 3_100_000),
    (1280, 720, 7, 640_000),
    (1920, 1080, 45, 4_500_000),
    (720, 1280, 20, 1_800_000),
    (640, 640, 5, 300_000),
];

/// Seconds of each audio item.
const AUDIO: [u32; 4] = [30, 95, 180, 12];

/// Every media ID the demo knows (what `/_demo/.../add` accepts).
pub fn media(id: u64) -> Option<MediaSpec> {
    let n = id.checked_sub(MEDIA_BASE)?;
    let mut spec = match n {
        _ if (PHOTOS_AT..PHOTOS_AT + PHOTOS.len() as u64).contains(&n) => {
            photo(PHOTOS[(n - PHOTOS_AT) as usize])
        }
        _ if (VIDEOS_AT..VIDEOS_AT + VIDEOS.len() as u64).contains(&n) => {
            let (w, h, secs, len) = VIDEOS[(n - VIDEOS_AT) as usize];
            video(w, h, secs, len, true)
        }
        _ if (AUDIO_AT..AUDIO_AT + AUDIO.len() as u64).contains(&n) => {
            audio(AUDIO[(n - AUDIO_AT) as usize])
        }
        _ if (SPECIAL_AT..SPECIAL_AT + 4).contains(&n) => special(n - SPECIAL_AT),
        _ if (LARGE_AT..LARGE_AT + LARGE_COUNT).contains(&n) => {
            // Alternate orientation so the benchmark is not one size only.
            let (w, h) = if n % 2 == 0 { (160, 120) } else { (120, 160) };
            let mut s = photo((Encoding::Jpeg, w, h, false, false, false));
            s.bulk = true;
            s
        }
        HUGE_AT => video(1920, 1080, 1800, HUGE_LEN, false),
        _ if (BULK_AT..BULK_AT + BULK_MAX).contains(&n) => {
            let mut s = audio(1);
            // One frame: a body the size of a listing entry.
            for r in s.files.iter_mut().flatten() {
                r.synth_len = MP3_HEADER_LEN + MP3_FRAME_LEN;
            }
            s
        }
        _ => return None,
    };
    spec.id = id;
    spec.created_at = CREATED_BASE + n as i64 * 3_607;
    Some(spec)
}

fn base(kind: Kind, duration: Option<u32>, files: Vec<Rendition>) -> MediaSpec {
    MediaSpec {
        id: 0,
        kind,
        created_at: 0,
        duration,
        can_view: true,
        is_ready: true,
        has_error: false,
        files: Some(files),
        bulk: false,
    }
}

fn image(label: &'static str, encoding: Encoding, w: u32, h: u32) -> Rendition {
    Rendition {
        label,
        encoding,
        width: Some(w),
        height: Some(h),
        synth_len: 0,
    }
}

/// Scales (w, h) so the longer side is `longest`, keeping the aspect ratio.
fn fit(w: u32, h: u32, longest: u32) -> (u32, u32) {
    let scale = |a: u32| (u64::from(a) * u64::from(longest) / u64::from(w.max(h))).max(1) as u32;
    (scale(w), scale(h))
}

fn photo((encoding, w, h, thumb, preview, square): PhotoRow) -> MediaSpec {
    let kind = if encoding == Encoding::Gif {
        Kind::Gif
    } else {
        Kind::Photo
    };
    let mut files = vec![image("full", encoding, w, h)];
    // Derived renditions are JPEG whatever the original, as upstream does.
    if thumb {
        let (tw, th) = fit(w, h, 200);
        files.push(image("thumb", Encoding::Jpeg, tw, th));
    }
    if preview {
        let (pw, ph) = fit(w, h, 600);
        files.push(image("preview", Encoding::Jpeg, pw, ph));
    }
    if square {
        files.push(image("squarePreview", Encoding::Jpeg, 300, 300));
    }
    base(kind, None, files)
}

fn video(w: u32, h: u32, secs: u32, len: u64, extras: bool) -> MediaSpec {
    let mut files = vec![Rendition {
        label: "full",
        encoding: Encoding::Mp4,
        width: Some(w),
        height: Some(h),
        synth_len: len,
    }];
    if extras {
        let (pw, ph) = fit(w, h, 640);
        files.push(Rendition {
            label: "preview",
            encoding: Encoding::Mp4,
            width: Some(pw),
            height: Some(ph),
            synth_len: len / 8,
        });
        let (tw, th) = fit(w, h, 320);
        files.push(image("thumb", Encoding::Jpeg, tw, th));
    }
    base(Kind::Video, Some(secs), files)
}

/// MP3 at 128 kbit/s, 44.1 kHz: 1,152 samples in each 417-byte frame.
pub const MP3_FRAME_LEN: u64 = 417;
pub const MP3_HEADER_LEN: u64 = 10;

fn audio(secs: u32) -> MediaSpec {
    let frames = (u64::from(secs) * 44_100).div_ceil(1_152);
    let files = vec![Rendition {
        label: "full",
        encoding: Encoding::Mp3,
        width: None,
        height: None,
        synth_len: MP3_HEADER_LEN + frames * MP3_FRAME_LEN,
    }];
    base(Kind::Audio, Some(secs), files)
}

/// The mixed list's own items: three that a cache must skip, one it keeps.
fn special(n: u64) -> MediaSpec {
    let mut s = photo((Encoding::Jpeg, 1200, 800, true, false, false));
    match n {
        // Files stay listed (and served) so a test can see a cache that
        // fetched them anyway in `/_demo/stats`.
        0 => s.can_view = false,
        1 => {
            s.is_ready = false;
            s.files = None;
        }
        2 => s.has_error = true,
        _ => s = photo((Encoding::Png, 640, 640, true, true, true)),
    }
    s
}

//! Real, decodable JPEG, PNG and GIF images drawn from a seed. The same seed
//! always gives the same bytes, and each revision's file length differs from
//! the previous one (see [`render`]), so a changed media is visible from the
//! listing's `size` alone.

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{Delay, Frame, ImageEncoder, RgbImage, RgbaImage};

use super::catalog::Encoding;
use super::synth::mix;

const GIF_FRAMES: u32 = 6;

/// Encodes a `w`x`h` image of `encoding` for `seed`, then pads a comment into
/// it so the length modulo 8 equals `revision` modulo 8: consecutive
/// revisions can then never have the same size by accident.
pub fn render(
    encoding: Encoding,
    w: u32,
    h: u32,
    seed: u64,
    revision: u32,
) -> anyhow::Result<Vec<u8>> {
    let raw = match encoding {
        Encoding::Jpeg => jpeg(&pattern(w, h, seed, 0))?,
        Encoding::Png => png(&pattern(w, h, seed, 0))?,
        Encoding::Gif => gif(w, h, seed)?,
        Encoding::Mp4 | Encoding::Mp3 => anyhow::bail!("{encoding:?} is not an image"),
    };
    let note = format!("vaultplus demo-upstream seed {seed:016x} revision {revision}");
    let overhead = comment_overhead(encoding) + note.len();
    let pad = (u64::from(revision % 8) + 64 - ((raw.len() + overhead) % 8) as u64) % 8;
    let text = format!("{note}{}", " ".repeat(pad as usize));
    Ok(insert_comment(encoding, raw, text.as_bytes()))
}

/// A diagonal two-colour gradient with rings and fine noise: cheap to draw,
/// plausible as a photo, and not so smooth that encoders shrink it to nothing.
/// Integer arithmetic and one pass over a flat buffer keep it quick even in
/// a debug build, where the listing of a fresh process waits on it.
fn pattern(w: u32, h: u32, seed: u64, frame: u32) -> RgbImage {
    let c0 = colour(seed).map(i64::from);
    let c1 = colour(seed.rotate_left(23)).map(i64::from);
    let (wi, hi) = (i64::from(w.max(1)), i64::from(h.max(1)));
    // Ring centre and density relative to the image size, so the renditions
    // of one media look like scaled copies of each other.
    let cx = (mix(seed ^ 1) % 1000) as i64 * wi / 1000;
    let cy = (mix(seed ^ 2) % 1000) as i64 * hi / 1000;
    let rings = 24 + (mix(seed ^ 3) % 24) as i64;
    let norm = (wi.max(hi) * wi.max(hi)).max(1);
    let span = (wi + hi).max(1);
    let mut noise = (mix(seed ^ 4) as u32) | 1;
    let mut buf = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..hi {
        let dy2 = (y - cy) * (y - cy);
        for x in 0..wi {
            let t = (x + y) * 256 / span;
            let d2 = (x - cx) * (x - cx) + dy2;
            let ring = if (d2 * rings / norm + i64::from(frame)) % 2 == 0 {
                24
            } else {
                0
            };
            // xorshift32: a fresh small number per pixel, no hashing.
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let n = i64::from(noise % 17) - 8;
            for c in 0..3 {
                let v = (c0[c] * (256 - t) + c1[c] * t) / 256 + ring + n;
                buf.push(v.clamp(0, 255) as u8);
            }
        }
    }
    RgbImage::from_raw(w, h, buf).unwrap_or_else(|| RgbImage::new(w, h))
}

fn colour(seed: u64) -> [u8; 3] {
    let m = mix(seed);
    [
        (m & 0xff) as u8,
        ((m >> 8) & 0xff) as u8,
        ((m >> 16) & 0xff) as u8,
    ]
}

fn jpeg(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85).encode_image(img)?;
    Ok(out)
}

fn png(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    // Fast compression: debug builds list photos quickly, files stay MB-sized.
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )?;
    Ok(out)
}

/// An animated GIF whose rings move from frame to frame.
fn gif(w: u32, h: u32, seed: u64) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        // Speed 30 is the quickest quantizer; quality does not matter here.
        let mut enc = GifEncoder::new_with_speed(&mut out, 30);
        enc.set_repeat(Repeat::Infinite)?;
        for f in 0..GIF_FRAMES {
            let rgb = pattern(w, h, seed, f);
            let raw = rgb.as_raw().chunks_exact(3);
            let raw = raw.flat_map(|p| [p[0], p[1], p[2], 255]).collect();
            let rgba = RgbaImage::from_raw(w, h, raw)
                .ok_or_else(|| anyhow::anyhow!("GIF frame buffer has the wrong size"))?;
            let delay = Delay::from_numer_denom_ms(120, 1);
            enc.encode_frame(Frame::from_parts(rgba, 0, 0, delay))?;
        }
        // The encoder writes the GIF trailer when it is dropped here.
    }
    Ok(out)
}

/// Bytes a comment of an empty text adds to each format.
fn comment_overhead(encoding: Encoding) -> usize {
    match encoding {
        // FF FE, 2-byte length.
        Encoding::Jpeg => 4,
        // length, "tEXt", "Comment\0", CRC.
        Encoding::Png => 4 + 4 + 8 + 4,
        // 21 FE, one sub-block length byte, block terminator.
        Encoding::Gif => 4,
        Encoding::Mp4 | Encoding::Mp3 => 0,
    }
}

/// Inserts `text` as a comment where every decoder accepts one: right after
/// the JPEG SOI marker, before the PNG IEND chunk, before the GIF trailer.
/// `text` is always well under the 255 bytes of one GIF sub-block.
fn insert_comment(encoding: Encoding, mut raw: Vec<u8>, text: &[u8]) -> Vec<u8> {
    match encoding {
        Encoding::Jpeg => {
            let len = (text.len() + 2) as u16;
            let mut seg = vec![0xFF, 0xFE];
            seg.extend_from_slice(&len.to_be_bytes());
            seg.extend_from_slice(text);
            raw.splice(2..2, seg);
        }
        Encoding::Png => {
            let mut data = b"Comment\0".to_vec();
            data.extend_from_slice(text);
            let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
            let mut typed = b"tEXt".to_vec();
            typed.extend_from_slice(&data);
            chunk.extend_from_slice(&typed);
            chunk.extend_from_slice(&crc32(&typed).to_be_bytes());
            let at = raw.len().saturating_sub(12);
            raw.splice(at..at, chunk);
        }
        Encoding::Gif => {
            let mut ext = vec![0x21, 0xFE, text.len() as u8];
            ext.extend_from_slice(text);
            ext.push(0);
            let at = raw.len().saturating_sub(1);
            raw.splice(at..at, ext);
        }
        Encoding::Mp4 | Encoding::Mp3 => {}
    }
    raw
}

/// CRC-32 (IEEE) as PNG chunks need it; bitwise is fast enough for a comment.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn every_format_decodes_at_its_size() {
        for enc in [Encoding::Jpeg, Encoding::Png, Encoding::Gif] {
            let bytes = render(enc, 120, 80, 42, 3).expect("render");
            let img = image::load_from_memory(&bytes).expect("decodable");
            assert_eq!((img.width(), img.height()), (120, 80), "{enc:?}");
            assert_eq!(bytes.len() % 8, 3, "{enc:?} padded to the revision");
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = render(Encoding::Jpeg, 64, 48, 7, 0).expect("render");
        let b = render(Encoding::Jpeg, 64, 48, 7, 0).expect("render");
        let c = render(Encoding::Jpeg, 64, 48, 8, 0).expect("render");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn consecutive_revisions_differ_in_length() {
        for rev in 0..10u32 {
            let a = render(Encoding::Png, 50, 50, 9, rev).expect("render");
            let b = render(Encoding::Png, 50, 50, 9, rev + 1).expect("render");
            assert_ne!(a.len(), b.len());
        }
    }
}

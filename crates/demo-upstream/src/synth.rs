//! Synthetic video and audio bodies, generated chunk by chunk: any 64 KiB
//! chunk can be made on its own from (seed, chunk index), so a 200 MiB body
//! streams in constant memory and is byte-identical on every run.

use bytes::Bytes;

use super::catalog::{Encoding, MP3_FRAME_LEN, MP3_HEADER_LEN};

/// Bodies are produced, and slowed down by the slow-body fault, in chunks of
/// this many bytes.
pub const CHUNK: u64 = 64 * 1024;

/// The SplitMix64 finalizer: a cheap, well-mixed hash of one word.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator (SplitMix64). Own code rather than a
/// `rand` generator so sequences never change with a dependency upgrade.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0.wrapping_sub(0x9E37_79B9_7F4A_7C15))
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A synthetic MP4 or MP3 body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synth {
    pub encoding: Encoding,
    pub seed: u64,
    pub len: u64,
}

impl Synth {
    /// The body of a rendition whose revision-0 length is `base_len`. Each
    /// revision makes it a little longer, so its `size` changes too.
    pub fn new(encoding: Encoding, seed: u64, base_len: u64, revision: u32) -> Self {
        let step = match encoding {
            // Whole frames, so the file stays a clean run of MP3 frames.
            Encoding::Mp3 => MP3_FRAME_LEN,
            _ => 1_031,
        };
        Self {
            encoding,
            seed,
            len: base_len + step * u64::from(revision),
        }
    }

    #[cfg(test)]
    pub fn chunk_count(&self) -> u64 {
        self.len.div_ceil(CHUNK)
    }

    /// Chunk `index` (bytes `index * CHUNK ..`), shorter at the end.
    pub fn chunk(&self, index: u64) -> Bytes {
        let start = index.saturating_mul(CHUNK);
        let end = start.saturating_add(CHUNK).min(self.len);
        if start >= end {
            return Bytes::new();
        }
        let mut buf = vec![0u8; (end - start) as usize];
        let mut rng = SplitMix::new(mix(self.seed ^ mix(index)));
        for word in buf.chunks_mut(8) {
            let v = rng.next_u64().to_le_bytes();
            word.copy_from_slice(&v[..word.len()]);
        }
        match self.encoding {
            Encoding::Mp3 => self.overlay_mp3(start, &mut buf),
            _ => self.overlay_mp4(start, &mut buf),
        }
        Bytes::from(buf)
    }

    /// `ftyp` (isom) then one `mdat` box spanning the rest of the file.
    fn overlay_mp4(&self, start: u64, buf: &mut [u8]) {
        let mut head = Vec::with_capacity(40);
        head.extend_from_slice(&24u32.to_be_bytes());
        head.extend_from_slice(b"ftypisom");
        head.extend_from_slice(&0x200u32.to_be_bytes());
        head.extend_from_slice(b"isommp41");
        let mdat = self.len.saturating_sub(24);
        if let Ok(small) = u32::try_from(mdat) {
            head.extend_from_slice(&small.to_be_bytes());
            head.extend_from_slice(b"mdat");
        } else {
            // A 64-bit box size, as MP4 does for large files.
            head.extend_from_slice(&1u32.to_be_bytes());
            head.extend_from_slice(b"mdat");
            head.extend_from_slice(&mdat.to_be_bytes());
        }
        write_at(buf, start, 0, &head);
    }

    /// An ID3v2.4 header, then a 4-byte frame header every 417 bytes
    /// (MPEG-1 layer III, 128 kbit/s, 44.1 kHz, joint stereo).
    fn overlay_mp3(&self, start: u64, buf: &mut [u8]) {
        write_at(buf, start, 0, b"ID3\x04\x00\x00\x00\x00\x00\x00");
        const FRAME_HEADER: [u8; 4] = [0xFF, 0xFB, 0x90, 0x64];
        let end = start + buf.len() as u64;
        // First frame whose header could reach into this chunk.
        let first = start.saturating_sub(MP3_HEADER_LEN + 3) / MP3_FRAME_LEN;
        let mut at = MP3_HEADER_LEN + first * MP3_FRAME_LEN;
        while at < end {
            write_at(buf, start, at, &FRAME_HEADER);
            at += MP3_FRAME_LEN;
        }
    }
}

/// Writes the part of `data` (placed at file offset `at`) that falls inside
/// `buf` (which holds file bytes from offset `start`).
fn write_at(buf: &mut [u8], start: u64, at: u64, data: &[u8]) {
    let end = start + buf.len() as u64;
    for (i, &b) in data.iter().enumerate() {
        let pos = at + i as u64;
        if pos >= start && pos < end {
            buf[(pos - start) as usize] = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(s: &Synth) -> Vec<u8> {
        (0..s.chunk_count()).flat_map(|i| s.chunk(i)).collect()
    }

    #[test]
    fn mp4_starts_with_ftyp_and_is_exactly_len() {
        let s = Synth::new(Encoding::Mp4, 5, 200_000, 0);
        let b = whole(&s);
        assert_eq!(b.len() as u64, s.len);
        assert_eq!(&b[4..12], b"ftypisom");
        assert_eq!(&b[28..32], b"mdat");
        assert_eq!(
            u32::from_be_bytes([b[24], b[25], b[26], b[27]]),
            200_000 - 24
        );
    }

    #[test]
    fn mp3_frames_line_up_across_chunks() {
        let s = Synth::new(Encoding::Mp3, 5, MP3_HEADER_LEN + 400 * MP3_FRAME_LEN, 1);
        let b = whole(&s);
        assert_eq!(b.len() as u64, MP3_HEADER_LEN + 401 * MP3_FRAME_LEN);
        assert_eq!(&b[..3], b"ID3");
        for f in 0..401 {
            let at = (MP3_HEADER_LEN + f * MP3_FRAME_LEN) as usize;
            assert_eq!(&b[at..at + 2], &[0xFF, 0xFB], "frame {f}");
        }
    }

    #[test]
    fn chunks_are_deterministic_and_seed_dependent() {
        let a = Synth::new(Encoding::Mp4, 1, 3 * CHUNK + 5, 0);
        let b = Synth::new(Encoding::Mp4, 2, 3 * CHUNK + 5, 0);
        assert_eq!(a.chunk(2), a.chunk(2));
        assert_ne!(a.chunk(2), b.chunk(2));
        assert_eq!(a.chunk(3).len(), 5);
        assert!(a.chunk(4).is_empty());
    }

    #[test]
    fn revision_changes_length() {
        let a = Synth::new(Encoding::Mp4, 1, 1000, 0);
        let b = Synth::new(Encoding::Mp4, 1, 1000, 1);
        assert_ne!(a.len, b.len);
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = SplitMix::new(1);
        let mut b = SplitMix::new(1);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
        }
    }
}

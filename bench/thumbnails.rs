//! Thumbnail making, per image: `make_thumbnail` (decode, scale to the
//! 320 box, encode with `jpeg-encoder`) beside the previous build's
//! encoder (`image`'s own `JpegEncoder`, the same decode and scaling),
//! alternating in one run. Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo bench --bench thumbnails`

use std::io::Cursor;
use std::time::Instant;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, RgbImage};
use vaultplus::service::thumbnail::{THUMB_MAX_SIDE, make_thumbnail};

/// The previous build's thumbnail, for comparison.
fn with_image_encoder(bytes: &[u8], max_side: u32) -> Vec<u8> {
    let img = image::load_from_memory(bytes).unwrap();
    let thumb = if img.width() <= max_side && img.height() <= max_side {
        img.to_rgb8()
    } else {
        img.thumbnail(max_side, max_side).to_rgb8()
    };
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 82)
        .encode_image(&thumb)
        .unwrap();
    out
}

/// A photo-like source: smooth gradients with some texture.
fn source(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        let t = ((x * 31 + y * 17) % 23) as u8;
        image::Rgb([
            (x * 255 / w) as u8 ^ t,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), format)
        .unwrap();
    out
}

fn per_image_us(n: u32, f: impl Fn() -> usize) -> (f64, usize) {
    let started = Instant::now();
    let mut size = 0;
    for _ in 0..n {
        size = f();
    }
    (started.elapsed().as_secs_f64() * 1e6 / f64::from(n), size)
}

fn main() {
    // Only `cargo bench` (which passes `--bench`) measures: test runners
    // that run every target (`cargo nextest run --all-targets` lists a
    // target's tests with `--list`) find no tests here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds = 3;
    println!(
        "| source | this build (µs, bytes) | previous encoder (µs, bytes) | this / previous |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for (w, h, format, n) in [
        (160, 120, ImageFormat::Jpeg, 500),
        (160, 120, ImageFormat::Png, 500),
        (1200, 900, ImageFormat::Jpeg, 40),
        (4000, 3000, ImageFormat::Jpeg, 5),
    ] {
        let src = source(w, h, format);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut our_size, mut their_size) = (0, 0);
        for _ in 0..rounds {
            let (us, size) =
                per_image_us(n, || make_thumbnail(&src, THUMB_MAX_SIDE).unwrap().len());
            ours.push(us);
            our_size = size;
            let (us, size) = per_image_us(n, || with_image_encoder(&src, THUMB_MAX_SIDE).len());
            theirs.push(us);
            their_size = size;
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, b) = (median(&mut ours), median(&mut theirs));
        println!(
            "| {w}x{h} {format:?} | {a:.0} ({our_size}) | {b:.0} ({their_size}) | {:.2}x |",
            a / b
        );
    }
}

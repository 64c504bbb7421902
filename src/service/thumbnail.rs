//! Thumbnails for images whose upstream offers none: decoded with bounded
//! memory, scaled to fit a box keeping the aspect ratio, encoded as JPEG.

use std::io::Cursor;

use image::{ImageReader, Limits};
use jpeg_encoder::{ColorType, Encoder};

/// Longest side of a generated thumbnail, in pixels.
pub const THUMB_MAX_SIDE: u32 = 320;
/// Decoding a larger image is refused rather than allowed to take the
/// memory of the whole server.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
const MAX_DIMENSION: u32 = 20_000;

pub fn make_thumbnail(bytes: &[u8], max_side: u32) -> Result<Vec<u8>, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| format!("cannot decode the image: {e}"))?;
    // Scale down to fit the box; an image that already fits keeps its size
    // (a thumbnail is never larger than its source).
    let thumb = if img.width() <= max_side && img.height() <= max_side {
        img.to_rgb8()
    } else {
        img.thumbnail(max_side, max_side).to_rgb8()
    };
    // Both sides fit in u16: at most `max_side`, or the source's own size
    // when it already fits the box.
    let side = |n: u32| u16::try_from(n).map_err(|_| format!("a side of {n} pixels is too large"));
    let (w, h) = (side(thumb.width())?, side(thumb.height())?);
    let mut out = Vec::new();
    Encoder::new(&mut out, 82)
        .encode(thumb.as_raw(), w, h, ColorType::Rgb)
        .map_err(|e| format!("cannot encode the thumbnail: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_aspect_and_fits_the_box() {
        let img = image::RgbImage::from_fn(1200, 600, |x, y| {
            image::Rgb([(x % 255) as u8, (y % 255) as u8, 90])
        });
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let jpeg = make_thumbnail(&png, 320).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (320, 160));
        assert!(make_thumbnail(b"not an image", 320).is_err());
        let small = image::RgbImage::from_pixel(160, 120, image::Rgb([1, 2, 3]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(small)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let back = image::load_from_memory(&make_thumbnail(&png, 320).unwrap()).unwrap();
        assert_eq!((back.width(), back.height()), (160, 120), "never upscaled");
    }
}

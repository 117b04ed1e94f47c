//! What an uploaded file is, decided from its bytes alone: the client's name and type are
//! never trusted. Images are decoded (under limits, so a small file cannot claim a huge
//! canvas) to learn their size and to draw a thumbnail.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// Largest image decoded, in pixels per side and in bytes of decoded memory.
pub const MAX_DECODED_SIDE: u32 = 12_000;
pub const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

/// A file's type as sniffed, and for images their size and a thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub mime_type: &'static str,
    pub image: Option<Picture>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    /// The thumbnail's encoded bytes and their type (JPEG, or PNG when the image has
    /// transparency).
    pub thumbnail: Vec<u8>,
    pub thumbnail_type: &'static str,
}

/// Why an upload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "files of this type cannot be sent ({0}); send images (PNG, JPEG, GIF, WebP), PDF, text or ZIP"
    )]
    Type(String),
    #[error("the image cannot be read: {0}")]
    BrokenImage(String),
    #[error("the file is empty")]
    Empty,
}

/// The types people may send, by what their bytes say. No type a browser would run
/// (HTML, SVG, JavaScript) is among them; downloads are still served as inert.
const IMAGES: [(&str, ImageFormat); 4] = [
    ("image/png", ImageFormat::Png),
    ("image/jpeg", ImageFormat::Jpeg),
    ("image/gif", ImageFormat::Gif),
    ("image/webp", ImageFormat::WebP),
];
const DOCUMENTS: [&str; 2] = ["application/pdf", "application/zip"];

/// Sniffs `bytes`; CPU-bound for images (call it off the async runtime).
pub fn inspect(bytes: &[u8]) -> Result<Inspected, Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    let sniffed = infer::get(bytes).map(|kind| kind.mime_type());
    if let Some((mime_type, format)) = IMAGES.iter().find(|(mime, _)| Some(*mime) == sniffed) {
        let image = decode(bytes, *format)?;
        return Ok(Inspected { mime_type, image: Some(picture(&image)?) });
    }
    if let Some(mime_type) = DOCUMENTS.iter().find(|mime| Some(**mime) == sniffed) {
        return Ok(Inspected { mime_type, image: None });
    }
    match sniffed {
        None if is_plain_text(bytes) => Ok(Inspected { mime_type: "text/plain", image: None }),
        None => Err(Refusal::Type("unrecognized bytes".into())),
        Some(other) => Err(Refusal::Type(other.into())),
    }
}

/// Text people can read: UTF-8 without control characters other than whitespace, and
/// nothing a browser would sniff as markup (served as `text/plain` with `nosniff` anyway).
fn is_plain_text(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    let readable = text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    let head = text.trim_start().get(..5).unwrap_or_default().to_ascii_lowercase();
    readable && !head.starts_with('<')
}

fn decode(bytes: &[u8], format: ImageFormat) -> Result<DynamicImage, Refusal> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    reader.decode().map_err(|error| Refusal::BrokenImage(error.to_string()))
}

fn picture(image: &DynamicImage) -> Result<Picture, Refusal> {
    let (width, height) = (image.width(), image.height());
    let small = if width.max(height) > THUMBNAIL_SIDE {
        image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    } else {
        image.clone()
    };
    let mut thumbnail = Cursor::new(Vec::new());
    let (thumbnail_type, written) = if small.color().has_alpha() {
        ("image/png", small.write_to(&mut thumbnail, ImageFormat::Png))
    } else {
        ("image/jpeg", small.to_rgb8().write_to(&mut thumbnail, ImageFormat::Jpeg))
    };
    written.map_err(|error| Refusal::BrokenImage(error.to_string()))?;
    Ok(Picture { width, height, thumbnail: thumbnail.into_inner(), thumbnail_type })
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn images_are_measured_and_thumbnailed_whatever_they_are_called() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_pixel(1200, 800, Rgb([200, 30, 30])));
        let found = inspect(&encoded(&photo, ImageFormat::Jpeg)).unwrap();
        assert_eq!(found.mime_type, "image/jpeg");
        let picture = found.image.unwrap();
        assert_eq!((picture.width, picture.height), (1200, 800));
        assert_eq!(picture.thumbnail_type, "image/jpeg");
        let thumbnail = image::load_from_memory(&picture.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (320, 213));

        let icon = DynamicImage::ImageRgba8(RgbaImage::from_pixel(40, 30, Rgba([0, 0, 0, 10])));
        let found = inspect(&encoded(&icon, ImageFormat::Png)).unwrap();
        assert_eq!(found.mime_type, "image/png");
        let picture = found.image.unwrap();
        assert_eq!((picture.width, picture.height, picture.thumbnail_type), (40, 30, "image/png"));
    }

    #[test]
    fn what_a_browser_would_run_or_cannot_show_is_refused() {
        for refused in [
            &b"<html><script>alert(1)</script></html>"[..],
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
            b"  <!doctype html>",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00",
            b"\x7fELF\x02\x01\x01\x00",
            b"binary \x00\x01\x02",
        ] {
            assert!(matches!(inspect(refused), Err(Refusal::Type(_))), "{refused:?}");
        }
        assert_eq!(inspect(b""), Err(Refusal::Empty));
        assert_eq!(inspect(b"meeting notes\n- item").unwrap().mime_type, "text/plain");
        assert_eq!(inspect(b"%PDF-1.7\n%\xe2\xe3").unwrap().mime_type, "application/pdf");
    }

    #[test]
    fn a_broken_or_oversized_image_is_refused_not_decoded() {
        let mut png = encoded(
            &DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 16, Rgb([1, 2, 3]))),
            ImageFormat::Png,
        );
        png.truncate(40);
        assert!(matches!(inspect(&png), Err(Refusal::BrokenImage(_))));
        // A PNG header claiming 100,000 x 100,000 pixels: refused before any allocation.
        let mut bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
        bomb.extend_from_slice(&100_000_u32.to_be_bytes());
        bomb.extend_from_slice(&100_000_u32.to_be_bytes());
        bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(inspect(&bomb), Err(Refusal::BrokenImage(_))));
    }
}

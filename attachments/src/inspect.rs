//! What an uploaded file is, decided from its bytes alone: the client's name and type are
//! never trusted. Images are measured from their header, and previewed (decoded, to draw a
//! thumbnail) only when the decode is small enough for a chat: a small file can claim a huge
//! canvas, so what a decode will cost is known before it starts (the caller reserves it from
//! the process's [`Budget`](crate::budget::Budget)), and the decoder is held to that figure.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::strip::Container;

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// Largest image previewed: 25 megapixels covers what phones save by default (12 to 24 MP)
/// and most cameras; a larger image is kept and sent as a file, without a preview.
pub const MAX_PREVIEW_PIXELS: u64 = 25_000_000;
/// Longest side previewed (panoramas), whatever the pixel count.
pub const MAX_PREVIEW_SIDE: u32 = 12_000;
/// Longest side taken at all.
const MAX_SIDE: u32 = 65_535;
/// Progressive JPEGs with more scans than this are not previewed: each scan is a pass over
/// the whole image, so a small file of thousands of scans costs minutes of CPU. Encoders
/// write about ten.
const MAX_JPEG_SCANS: usize = 100;

/// What a file is, by its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Image { mime_type: &'static str, container: Container, format: ImageFormat },
    Document { mime_type: &'static str },
}

impl Sniffed {
    pub fn mime_type(&self) -> &'static str {
        match self {
            Self::Image { mime_type, .. } | Self::Document { mime_type } => mime_type,
        }
    }
}

/// What an image's header says: its size as shown (after its orientation) and what
/// decoding it would take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    /// Bytes of memory a preview may use, decoder and thumbnail included; `None` when the
    /// image is too large to be previewed at all.
    pub preview_cost: Option<u64>,
}

/// A thumbnail's encoded bytes and their type (JPEG, or PNG when the image has
/// transparency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub mime_type: &'static str,
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
const IMAGES: [(&str, Container, ImageFormat); 4] = [
    ("image/png", Container::Png, ImageFormat::Png),
    ("image/jpeg", Container::Jpeg, ImageFormat::Jpeg),
    ("image/gif", Container::Gif, ImageFormat::Gif),
    ("image/webp", Container::WebP, ImageFormat::WebP),
];
const DOCUMENTS: [&str; 2] = ["application/pdf", "application/zip"];

/// What `bytes` are; cheap (a look at their first bytes, and a UTF-8 check for text).
pub fn sniff(bytes: &[u8]) -> Result<Sniffed, Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    let sniffed = infer::get(bytes).map(|kind| kind.mime_type());
    if let Some((mime_type, container, format)) =
        IMAGES.iter().find(|(mime, ..)| Some(*mime) == sniffed)
    {
        return Ok(Sniffed::Image { mime_type, container: *container, format: *format });
    }
    if let Some(mime_type) = DOCUMENTS.iter().find(|mime| Some(**mime) == sniffed) {
        return Ok(Sniffed::Document { mime_type });
    }
    match sniffed {
        None if is_plain_text(bytes) => Ok(Sniffed::Document { mime_type: "text/plain" }),
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

/// Reads an image's header (never its pixels). `bytes` should be stripped of metadata
/// first ([`crate::strip`]): a PNG's compressed profile or text is then never inflated.
pub fn header(bytes: &[u8], format: ImageFormat) -> Result<Header, Refusal> {
    let mut decoder = decoder(bytes, format, None)?;
    let (width, height) = decoder.dimensions();
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let pixels = u64::from(width) * u64::from(height);
    let previewable = pixels <= MAX_PREVIEW_PIXELS
        && width.max(height) <= MAX_PREVIEW_SIDE
        && (format != ImageFormat::Jpeg || jpeg_scans(bytes) <= MAX_JPEG_SCANS);
    // The decoded image, and as much again for what decoders hold beside it (a GIF's frame
    // buffer, a lossy WebP's YUV planes), plus the thumbnail's own few hundred KiB.
    let preview_cost =
        previewable.then(|| decoder.total_bytes().saturating_mul(2).saturating_add(1 << 20));
    let (width, height) = if turned(orientation) { (height, width) } else { (width, height) };
    Ok(Header { width, height, preview_cost })
}

/// Decodes an image whose [`Header`] allowed a preview, allocating at most `cost` bytes, and
/// draws its thumbnail, turned as the image says it should be shown. CPU-bound: call it off
/// the async runtime.
pub fn thumbnail(bytes: &[u8], format: ImageFormat, cost: u64) -> Result<Thumbnail, Refusal> {
    let mut decoder = decoder(bytes, format, Some(cost))?;
    // The decoders hold their own allocations to `cost`; the image they fill is ours.
    if decoder.total_bytes() > cost {
        return Err(Refusal::BrokenImage(format!(
            "decoding needs more than the {cost} bytes reserved for it"
        )));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(|error| broken(&error))?;
    let mut small = if image.width().max(image.height()) > THUMBNAIL_SIDE {
        image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    } else {
        image
    };
    small.apply_orientation(orientation);
    let mut encoded = Cursor::new(Vec::new());
    let (mime_type, written) = if small.color().has_alpha() {
        ("image/png", small.write_to(&mut encoded, ImageFormat::Png))
    } else {
        ("image/jpeg", small.to_rgb8().write_to(&mut encoded, ImageFormat::Jpeg))
    };
    written.map_err(|error| broken(&error))?;
    Ok(Thumbnail { bytes: encoded.into_inner(), mime_type })
}

fn decoder(
    bytes: &[u8],
    format: ImageFormat,
    max_alloc: Option<u64>,
) -> Result<impl ImageDecoder + '_, Refusal> {
    let mut limits = Limits::default();
    // JPEG's and WebP's own limit; a PNG or GIF claiming more is not a picture anyone took.
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(max_alloc.unwrap_or(16 << 20));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    reader.into_decoder().map_err(|error| broken(&error))
}

fn broken(error: &image::ImageError) -> Refusal {
    Refusal::BrokenImage(error.to_string())
}

/// Whether an orientation swaps width and height.
fn turned(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Start-of-scan markers in a JPEG, an upper bound of its scans: entropy-coded data never
/// holds `FF DA` (a data byte `FF` is always followed by `00`), other segments rarely do.
fn jpeg_scans(bytes: &[u8]) -> usize {
    bytes.windows(2).filter(|pair| pair == &[0xFF, 0xDA]).count()
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

    fn previewed(bytes: &[u8]) -> (Header, Thumbnail) {
        let Ok(Sniffed::Image { format, .. }) = sniff(bytes) else { panic!("not an image") };
        let header = header(bytes, format).unwrap();
        let thumbnail = thumbnail(bytes, format, header.preview_cost.unwrap()).unwrap();
        (header, thumbnail)
    }

    #[test]
    fn images_are_measured_and_thumbnailed_whatever_they_are_called() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_pixel(1200, 800, Rgb([200, 30, 30])));
        let jpeg = encoded(&photo, ImageFormat::Jpeg);
        assert_eq!(sniff(&jpeg).unwrap().mime_type(), "image/jpeg");
        let (header, thumbnail) = previewed(&jpeg);
        assert_eq!((header.width, header.height), (1200, 800));
        assert_eq!(thumbnail.mime_type, "image/jpeg");
        let small = image::load_from_memory(&thumbnail.bytes).unwrap();
        assert_eq!((small.width(), small.height()), (320, 213));

        let icon = DynamicImage::ImageRgba8(RgbaImage::from_pixel(40, 30, Rgba([0, 0, 0, 10])));
        let (header, thumbnail) = previewed(&encoded(&icon, ImageFormat::Png));
        assert_eq!((header.width, header.height, thumbnail.mime_type), (40, 30, "image/png"));
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
            assert!(matches!(sniff(refused), Err(Refusal::Type(_))), "{refused:?}");
        }
        assert_eq!(sniff(b""), Err(Refusal::Empty));
        assert_eq!(sniff(b"meeting notes\n- item").unwrap().mime_type(), "text/plain");
        assert_eq!(sniff(b"%PDF-1.7\n%\xe2\xe3").unwrap().mime_type(), "application/pdf");
    }

    /// A PNG claiming `width` x `height` (8-bit RGB) that holds no pixels: all a header
    /// read needs.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&width.to_be_bytes());
        chunk.extend_from_slice(&height.to_be_bytes());
        chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        // The header, then pixel data that is an empty zlib stream: read up to, not into.
        for chunk in [chunk, b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01".to_vec(), b"IEND".to_vec()] {
            png.extend_from_slice(&u32::try_from(chunk.len() - 4).unwrap().to_be_bytes());
            png.extend_from_slice(&chunk);
            png.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
        }
        png
    }

    #[test]
    fn a_huge_canvas_is_measured_but_never_previewed_and_an_absurd_one_is_refused() {
        // 7,000 x 7,000 pixels: 49 MP, over the preview limit; read from the header alone.
        let header = header(&png_header(7_000, 7_000), ImageFormat::Png).unwrap();
        assert_eq!((header.width, header.height, header.preview_cost), (7_000, 7_000, None));
        let panorama = super::header(&png_header(13_000, 1_000), ImageFormat::Png).unwrap();
        assert_eq!(panorama.preview_cost, None, "a side over the limit");
        let within = super::header(&png_header(5_000, 5_000), ImageFormat::Png).unwrap();
        assert_eq!(within.preview_cost, Some(2 * 5_000 * 5_000 * 3 + (1 << 20)));
        assert!(matches!(
            super::header(&png_header(100_000, 100_000), ImageFormat::Png),
            Err(Refusal::BrokenImage(_))
        ));
    }

    #[test]
    fn a_broken_image_is_refused_and_a_decode_is_held_to_its_cost() {
        let mut png = encoded(
            &DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 16, Rgb([1, 2, 3]))),
            ImageFormat::Png,
        );
        png.truncate(40);
        assert!(matches!(thumbnail(&png, ImageFormat::Png, 1 << 20), Err(Refusal::BrokenImage(_))));
        let photo = encoded(
            &DynamicImage::ImageRgb8(RgbImage::from_pixel(1000, 1000, Rgb([1, 2, 3]))),
            ImageFormat::Png,
        );
        assert!(
            matches!(thumbnail(&photo, ImageFormat::Png, 1 << 20), Err(Refusal::BrokenImage(_))),
            "3 MB of pixels cannot be decoded in 1 MiB"
        );
    }

    #[test]
    fn progressive_jpegs_of_too_many_scans_are_not_previewed() {
        let photo = encoded(
            &DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, Rgb([1, 2, 3]))),
            ImageFormat::Jpeg,
        );
        assert!(header(&photo, ImageFormat::Jpeg).unwrap().preview_cost.is_some());
        let mut padded = photo;
        // A comment segment full of start-of-scan markers stands in for a file of many scans.
        let comment: Vec<u8> = std::iter::repeat_n([0xFF, 0xDA], 150).flatten().collect();
        let length = u16::try_from(comment.len() + 2).unwrap().to_be_bytes();
        padded.splice(2..2, [0xFF, 0xFE, length[0], length[1]].into_iter().chain(comment));
        assert_eq!(header(&padded, ImageFormat::Jpeg).unwrap().preview_cost, None);
    }
}

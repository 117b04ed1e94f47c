use super::jpeg::{APP0, APP1, APP2, ByteOrder, COM};
use super::*;
use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage, RgbaImage};

const APP13: u8 = 0xED;
const GPS_TEXT: &[u8] = b"GPS 48.8584N";
const CAMERA: &[u8] = b"SecretCam SN-4711";
const XMP: &[u8] = b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"ns.adobe.com/xap\">\
    <exif:GPSLatitude>48,51.5N</exif:GPSLatitude></x:xmpmeta>";
const XMP_NAMESPACE: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const COMMENT: &[u8] = b"taken at home by Alice";
const IPTC: &[u8] = b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x0Ciptc: Paris";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn assert_has_no_metadata(stripped: &[u8]) {
    for secret in [GPS_TEXT, CAMERA, b"xmpmeta", b"Photoshop 3.0", COMMENT, b"XMP DataXMP"] {
        assert!(!contains(stripped, secret), "{:?} survived", String::from_utf8_lossy(secret));
    }
}

fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| Rgb([(x * 15) as u8, (y * 15) as u8, 128]))
}

fn pixels(file: &[u8]) -> RgbaImage {
    image::load_from_memory(file).expect("the file decodes").to_rgba8()
}

// ---- JPEG ----

fn encoded_jpeg() -> Vec<u8> {
    let picture = gradient(16, 16);
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&picture).unwrap();
    jpeg
}

fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let length = u16::try_from(payload.len() + 2).unwrap();
    [&[0xFF, marker][..], &length.to_be_bytes(), payload].concat()
}

/// Where the encoder's JFIF APP0 ends: metadata goes right after it, as cameras put it.
fn app0_end(jpeg: &[u8]) -> usize {
    assert_eq!(jpeg[2..4], [0xFF, APP0]);
    4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]))
}

fn insert(file: &[u8], at: usize, parts: &[&[u8]]) -> Vec<u8> {
    [&[&file[..at]], parts, &[&file[at..]]].concat().concat()
}

/// The segments before the first scan, as (marker, payload).
fn segments(jpeg: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut found = Vec::new();
    let mut at = 2;
    loop {
        assert_eq!(jpeg[at], 0xFF);
        let marker = jpeg[at + 1];
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            found.push((marker, Vec::new()));
            at += 2;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        if marker == 0xDA {
            return found;
        }
        found.push((marker, jpeg[at + 4..at + 2 + length].to_vec()));
        at += 2 + length;
    }
}

/// A TIFF as cameras write it: IFD0 with Make, Orientation (when given) and a pointer to
/// a GPS IFD holding a latitude reference and a processing method.
fn tiff(order: ByteOrder, orientation: Option<u16>) -> Vec<u8> {
    let u16_bytes = |value: u16| match order {
        ByteOrder::Little => value.to_le_bytes(),
        ByteOrder::Big => value.to_be_bytes(),
    };
    let u32_bytes = |value: u32| match order {
        ByteOrder::Little => value.to_le_bytes(),
        ByteOrder::Big => value.to_be_bytes(),
    };
    let short = |value: u16| [u16_bytes(value), [0, 0]].concat();
    let entry = |tag: u16, kind: u16, count: usize, value: &[u8]| {
        [&u16_bytes(tag)[..], &u16_bytes(kind), &u32_bytes(count as u32), value].concat()
    };
    let ifd0_entries = if orientation.is_some() { 3 } else { 2 };
    let gps_at = 8 + 2 + 12 * ifd0_entries + 4;
    let make_at = gps_at + 2 + 12 * 2 + 4;
    let method_at = make_at + CAMERA.len();

    let mut ifd0 = vec![entry(0x010F, 2, CAMERA.len(), &u32_bytes(make_at as u32))];
    if let Some(orientation) = orientation {
        ifd0.push(entry(0x0112, 3, 1, &short(orientation)));
    }
    ifd0.push(entry(0x8825, 4, 1, &u32_bytes(gps_at as u32)));
    let gps = [entry(0x0001, 2, 2, b"N\0\0\0"), entry(0x001B, 7, 12, &u32_bytes(method_at as u32))];
    let header: &[u8] = match order {
        ByteOrder::Little => b"II*\0",
        ByteOrder::Big => b"MM\0*",
    };
    let tiff = [
        header,
        &u32_bytes(8),
        &u16_bytes(ifd0.len() as u16),
        &ifd0.concat(),
        &[0; 4],
        &u16_bytes(2),
        &gps.concat(),
        &[0; 4],
        CAMERA,
        GPS_TEXT,
    ]
    .concat();
    assert_eq!(tiff.len(), method_at + GPS_TEXT.len());
    tiff
}

fn exif_app1(order: ByteOrder, orientation: Option<u16>) -> Vec<u8> {
    segment(APP1, &[&b"Exif\0\0"[..], &tiff(order, orientation)].concat())
}

fn icc_app2() -> Vec<u8> {
    segment(APP2, b"ICC_PROFILE\0\x01\x01Display P3 profile bytes")
}

/// A JPEG as a phone writes it: JFIF, Exif with GPS and orientation 6, XMP, a comment,
/// IPTC and an ICC profile.
fn phone_jpeg() -> Vec<u8> {
    let jpeg = encoded_jpeg();
    insert(
        &jpeg,
        app0_end(&jpeg),
        &[
            &exif_app1(ByteOrder::Big, Some(6)),
            &segment(APP1, &[XMP_NAMESPACE, XMP].concat()),
            &segment(COM, COMMENT),
            &segment(APP13, IPTC),
            &icc_app2(),
        ],
    )
}

#[test]
fn jpeg_loses_exif_xmp_iptc_and_comments_but_keeps_orientation_colour_and_pixels() {
    let original = phone_jpeg();
    assert!(contains(&original, GPS_TEXT) && contains(&original, CAMERA));

    let stripped = strip(Container::Jpeg, &original).unwrap();

    assert_has_no_metadata(&stripped);
    let kept = segments(&stripped);
    let app1: Vec<_> = kept.iter().filter(|(marker, _)| *marker == APP1).collect();
    assert_eq!(app1.len(), 1, "one APP1, for the orientation");
    assert_eq!(jpeg::exif_orientation(&app1[0].1), Some(6));
    let only_orientation =
        b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0";
    assert_eq!(app1[0].1, only_orientation);
    assert_eq!(kept[0].0, APP0);
    assert!(kept[0].1.starts_with(b"JFIF\0"));
    assert!(kept.contains(&(APP2, icc_app2()[4..].to_vec())));
    assert!(!kept.iter().any(|(marker, _)| [COM, APP13].contains(marker)));
    assert_eq!(pixels(&stripped), pixels(&original));
}

#[test]
fn jpeg_orientation_is_read_in_either_byte_order_and_only_kept_when_it_turns() {
    let cases = [
        (ByteOrder::Little, Some(3), Some(3)),
        (ByteOrder::Big, Some(8), Some(8)),
        (ByteOrder::Little, Some(1), None),
        (ByteOrder::Big, None, None),
        (ByteOrder::Little, Some(9), None),
    ];
    let jpeg = encoded_jpeg();
    for (order, orientation, expected) in cases {
        let original = insert(&jpeg, app0_end(&jpeg), &[&exif_app1(order, orientation)]);
        let stripped = strip(Container::Jpeg, &original).unwrap();
        let app1: Vec<_> =
            segments(&stripped).into_iter().filter(|(marker, _)| *marker == APP1).collect();
        match expected {
            Some(expected) => {
                assert_eq!(app1.len(), 1);
                assert_eq!(jpeg::exif_orientation(&app1[0].1), Some(expected));
            }
            None => assert!(app1.is_empty(), "{order:?} {orientation:?} left an APP1"),
        }
        assert_has_no_metadata(&stripped);
    }
}

#[test]
fn jpeg_exif_that_lies_means_no_orientation() {
    let mut lying = [&b"Exif\0\0"[..], &tiff(ByteOrder::Little, Some(6))].concat();
    lying[6 + 4..6 + 8].copy_from_slice(&u32::MAX.to_le_bytes()); // IFD0 past the end
    assert_eq!(jpeg::exif_orientation(&lying), None);
    let mut many_entries = [&b"Exif\0\0"[..], &tiff(ByteOrder::Big, Some(6))].concat();
    many_entries[6 + 8..6 + 10].copy_from_slice(&[0xFF, 0xFF]);
    assert_eq!(jpeg::exif_orientation(&many_entries), Some(6), "entries that exist are read");
    assert_eq!(jpeg::exif_orientation(b"Exif\0\0MM\0*"), None);
    assert_eq!(jpeg::exif_orientation(b"Exif\0\0XX\0*\0\0\0\x08"), None);
}

#[test]
fn jpeg_keeps_jfif_without_its_thumbnail_and_drops_jfxx() {
    let jpeg = encoded_jpeg();
    let end = app0_end(&jpeg);
    let jfif_with_thumbnail = segment(APP0, b"JFIF\0\x01\x02\0\0\x48\0\x48\x01\x01uncropped");
    let jfxx = segment(APP0, b"JFXX\0\x13\x01\x01uncropped");
    let original = [&jpeg[..2], &jfif_with_thumbnail, &jfxx, &jpeg[end..]].concat();

    let stripped = strip(Container::Jpeg, &original).unwrap();

    assert!(!contains(&stripped, b"uncropped"));
    let app0: Vec<_> = segments(&stripped).into_iter().filter(|(m, _)| *m == APP0).collect();
    assert_eq!(app0, [(APP0, b"JFIF\0\x01\x02\0\0\x48\0\x48\0\0".to_vec())]);
    assert_eq!(pixels(&stripped), pixels(&original));
}

#[test]
fn jpeg_fill_bytes_and_what_follows_the_scan() {
    let jpeg = encoded_jpeg();
    let eoi = jpeg.len() - 2;
    assert_eq!(jpeg[eoi..], [0xFF, 0xD9]);
    let noisy = [
        &jpeg[..app0_end(&jpeg)],
        &[0xFF, 0xFF, 0xFF],
        &exif_app1(ByteOrder::Little, Some(6)),
        &[0xFF, 0xFF],
        &jpeg[app0_end(&jpeg)..eoi],
        &segment(COM, COMMENT),
        &[0xFF, 0xD9],
        b"motion photo video: ",
        GPS_TEXT,
    ]
    .concat();
    let clean = insert(&jpeg, app0_end(&jpeg), &[&exif_app1(ByteOrder::Little, Some(6))]);

    let stripped = strip(Container::Jpeg, &noisy).unwrap();

    assert_has_no_metadata(&stripped);
    assert!(stripped.ends_with(&[0xFF, 0xD9]));
    assert_eq!(stripped, strip(Container::Jpeg, &clean).unwrap());
    assert_eq!(pixels(&stripped), pixels(&jpeg));
}

#[test]
fn jpeg_scan_runs_past_stuffed_bytes_and_restart_markers_to_the_next_marker() {
    assert_eq!(jpeg::scan_length(&[1, 2, 0xFF, 0x00, 3, 0xFF, 0xD3, 4, 0xFF, 0xFF, 0xD9]), 8);
    assert_eq!(jpeg::scan_length(&[1, 0xFF, 0xFF, 0x00, 2]), 5, "fill before a stuffed byte");
    assert_eq!(jpeg::scan_length(&[1, 2, 0xFF]), 3);
    assert_eq!(jpeg::scan_length(&[0xFF, 0xC4]), 0);

    let scan = [9, 0xFF, 0x00, 8, 0xFF, 0xD0, 7, 0xFF, 0xD7, 6];
    let minimal = [
        &[0xFF, 0xD8][..],
        &segment(0xDD, &[0, 4]), // DRI
        &[0xFF, 0x01],           // TEM
        &segment(0xDA, &[1, 1, 0, 0, 63, 0]),
        &scan,
        &segment(COM, COMMENT),
        &[0xFF, 0xD9],
    ]
    .concat();
    let expected = [&minimal[..minimal.len() - 2 - 4 - COMMENT.len()], &[0xFF, 0xD9]].concat();
    assert_eq!(strip(Container::Jpeg, &minimal).unwrap(), expected);
    let without_eoi = &expected[..expected.len() - 2];
    assert_eq!(strip(Container::Jpeg, without_eoi).unwrap(), without_eoi);
}

#[test]
fn jpeg_with_broken_segments_is_malformed() {
    let jpeg = encoded_jpeg();
    let too_short = insert(&jpeg, 2, &[&[0xFF, APP1, 0, 1]]);
    assert!(strip(Container::Jpeg, &too_short).is_err());
    let past_the_end = [&[0xFF, 0xD8, 0xFF, APP1, 0x40, 0][..], b"Exif\0\0"].concat();
    assert!(strip(Container::Jpeg, &past_the_end).is_err());
    assert!(strip(Container::Jpeg, &jpeg[1..]).is_err());
    assert!(strip(Container::Jpeg, &insert(&jpeg, 2, &[b"junk"])).is_err());
    assert!(strip(Container::Jpeg, &insert(&jpeg, 2, &[&[0xFF, 0xD8]])).is_err());
}

// ---- PNG ----

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// zlib holding `data` in one stored block: valid for any decoder, no compressor needed.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    [&[0x78, 0x01, 0x01][..], &len.to_le_bytes(), &(!len).to_le_bytes(), data]
        .concat()
        .into_iter()
        .chain(adler32(data).to_be_bytes())
        .collect()
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(&[&kind[..], data].concat());
    [&u32::try_from(data.len()).unwrap().to_be_bytes()[..], kind, data, &crc.to_be_bytes()].concat()
}

/// The chunks of a palette image with transparency, made by hand: `image` cannot
/// write indexed PNGs.
fn palette_png_chunks() -> [Vec<u8>; 5] {
    let (width, height) = (5u32, 4u32);
    let ihdr = [&width.to_be_bytes()[..], &height.to_be_bytes(), &[8, 3, 0, 0, 0]].concat();
    let palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 250];
    let alpha = [0, 128, 255];
    let rows: Vec<u8> = (0..height)
        .flat_map(|y| std::iter::once(0).chain((0..width).map(move |x| ((x + y) % 4) as u8)))
        .collect();
    [
        png_chunk(b"IHDR", &ihdr),
        png_chunk(b"PLTE", &palette),
        png_chunk(b"tRNS", &alpha),
        png_chunk(b"IDAT", &zlib_stored(&rows)),
        png_chunk(b"IEND", &[]),
    ]
}

fn metadata_png() -> Vec<u8> {
    let [ihdr, plte, trns, idat, iend] = palette_png_chunks();
    [
        &png::SIGNATURE[..],
        &ihdr,
        &png_chunk(b"tIME", &[0x07, 0xE8, 6, 1, 12, 0, 0]),
        &png_chunk(b"iCCP", &[&b"Phone P3\0\0"[..], &zlib_stored(b"profile")].concat()),
        &plte,
        &trns,
        &png_chunk(b"tEXt", &[&b"Author\0"[..], CAMERA].concat()),
        &png_chunk(b"zTXt", &[&b"Comment\0\0"[..], &zlib_stored(COMMENT)].concat()),
        &idat,
        &png_chunk(b"iTXt", &[&b"XML:com.adobe.xmp\0\0\0\0\0"[..], XMP].concat()),
        &png_chunk(b"eXIf", &tiff(ByteOrder::Big, Some(6))),
        &png_chunk(b"prVt", GPS_TEXT),
        &iend,
    ]
    .concat()
}

#[test]
fn png_keeps_only_the_picture_chunks_byte_for_byte() {
    let original = metadata_png();
    assert!(contains(&original, GPS_TEXT) && contains(&original, b"tIME"));

    let stripped = strip(Container::Png, &original).unwrap();

    let [ihdr, plte, trns, idat, iend] = palette_png_chunks();
    let expected = [&png::SIGNATURE[..], &ihdr, &plte, &trns, &idat, &iend].concat();
    assert_eq!(stripped, expected);
    assert_has_no_metadata(&stripped);
    for kind in [b"tIME", b"iCCP", b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"prVt"] {
        assert!(!contains(&stripped, kind));
    }
    assert_eq!(pixels(&stripped), pixels(&original));
    assert_eq!(pixels(&stripped).get_pixel(0, 0).0, [255, 0, 0, 0], "tRNS still applies");
}

#[test]
fn png_from_image_with_trailing_bytes_decodes_the_same() {
    let mut encoded = Vec::new();
    image::codecs::png::PngEncoder::new(&mut encoded)
        .write_image(gradient(7, 3).as_raw(), 7, 3, ExtendedColorType::Rgb8)
        .unwrap();
    let with_trailer = [&encoded[..], GPS_TEXT].concat();
    let stripped = strip(Container::Png, &with_trailer).unwrap();
    assert!(!contains(&stripped, GPS_TEXT));
    assert_eq!(pixels(&stripped), pixels(&encoded));
}

#[test]
fn png_with_broken_structure_is_malformed() {
    let [ihdr, plte, trns, idat, iend] = palette_png_chunks();
    let build = |chunks: &[&[u8]]| [&[&png::SIGNATURE[..]], chunks].concat().concat();
    let unknown_critical = png_chunk(b"ZZZZ", b"?");
    assert!(strip(Container::Png, &build(&[&ihdr, &plte, &idat, &iend])).is_ok());
    assert!(strip(Container::Png, &build(&[&plte, &ihdr, &idat, &iend])).is_err());
    assert!(strip(Container::Png, &build(&[&ihdr, &plte, &trns, &idat])).is_err());
    assert!(strip(Container::Png, &build(&[&ihdr, &unknown_critical, &idat, &iend])).is_err());
    assert!(strip(Container::Png, &build(&[&ihdr, &idat[..idat.len() - 1]])).is_err());
    assert!(strip(Container::Png, &build(&[&ihdr, &[0, 0, 0, 0, 1, 2, 3, 4]])).is_err());
}

// ---- WebP ----

fn webp_chunk(fourcc: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let pad: &[u8] = if data.len() % 2 == 1 { &[0] } else { &[] };
    [&fourcc[..], &u32::try_from(data.len()).unwrap().to_le_bytes(), data, pad].concat()
}

fn riff(chunks: &[&[u8]]) -> Vec<u8> {
    let body = chunks.concat();
    let size = u32::try_from(body.len() + 4).unwrap();
    [&b"RIFF"[..], &size.to_le_bytes(), b"WEBP", &body].concat()
}

/// A RIFF file's chunks as (FourCC, data).
fn webp_chunks(file: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut found = Vec::new();
    let mut at = 12;
    while at < file.len() {
        let size = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        found.push((file[at..at + 4].try_into().unwrap(), file[at + 8..at + 8 + size].to_vec()));
        at += 8 + size + size % 2;
    }
    found
}

fn lossless_webp(picture: &RgbImage) -> Vec<u8> {
    let mut encoded = Vec::new();
    WebPEncoder::new_lossless(&mut encoded)
        .encode(picture.as_raw(), picture.width(), picture.height(), ExtendedColorType::Rgb8)
        .unwrap();
    encoded
}

const VP8X_ICC: u8 = 0x20;

/// A lossless WebP rewrapped as extended WebP with an ICC profile, Exif (of odd length,
/// so it is padded), XMP and a chunk no reader knows.
fn metadata_webp() -> Vec<u8> {
    let picture = gradient(9, 6);
    let simple = webp_chunks(&lossless_webp(&picture));
    let (fourcc, bitstream) = &simple[0];
    assert_eq!(fourcc, b"VP8L");
    let flags = VP8X_ICC | webp::VP8X_EXIF | webp::VP8X_XMP;
    let canvas = [8, 0, 0, 5, 0, 0]; // width - 1 and height - 1, 24-bit little-endian
    let vp8x = [&[flags, 0, 0, 0][..], &canvas].concat();
    let exif = tiff(ByteOrder::Little, Some(6));
    assert_eq!(exif.len() % 2, 1);
    riff(&[
        &webp_chunk(b"VP8X", &vp8x),
        &webp_chunk(b"ICCP", b"Display P3 profile bytes"),
        &webp_chunk(b"VP8L", bitstream),
        &webp_chunk(b"EXIF", &exif),
        &webp_chunk(b"XMP ", XMP),
        &webp_chunk(b"NEW!", b"odd"),
    ])
}

#[test]
fn webp_loses_exif_and_xmp_and_their_flags() {
    let original = metadata_webp();
    assert!(contains(&original, GPS_TEXT));

    let stripped = strip(Container::WebP, &original).unwrap();

    assert_has_no_metadata(&stripped);
    let chunks = webp_chunks(&stripped);
    let fourccs: Vec<_> = chunks.iter().map(|(fourcc, _)| fourcc).collect();
    assert_eq!(fourccs, [b"VP8X", b"ICCP", b"VP8L", b"NEW!"]);
    assert_eq!(chunks[0].1[0], VP8X_ICC, "only the ICC flag is left");
    let riff_size = u32::from_le_bytes(stripped[4..8].try_into().unwrap());
    assert_eq!(riff_size as usize, stripped.len() - 8);
    assert_eq!(pixels(&stripped), pixels(&original));
}

#[test]
fn webp_exif_written_by_image_is_dropped() {
    let picture = gradient(4, 4);
    let mut encoded = Vec::new();
    let mut encoder = WebPEncoder::new_lossless(&mut encoded);
    encoder.set_exif_metadata(tiff(ByteOrder::Big, Some(3))).unwrap();
    encoder.write_image(picture.as_raw(), 4, 4, ExtendedColorType::Rgb8).unwrap();
    assert!(contains(&encoded, GPS_TEXT));

    let stripped = strip(Container::WebP, &encoded).unwrap();

    assert_has_no_metadata(&stripped);
    let chunks = webp_chunks(&stripped);
    assert_eq!(chunks[0].0, *b"VP8X");
    assert_eq!(chunks[0].1[0] & (webp::VP8X_EXIF | webp::VP8X_XMP), 0);
    assert_eq!(pixels(&stripped), pixels(&encoded));
}

#[test]
fn webp_with_broken_structure_is_malformed() {
    let original = metadata_webp();
    let mut longer_than_file = original.clone();
    longer_than_file[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(strip(Container::WebP, &longer_than_file).is_err());
    let mut chunk_past_riff = original;
    chunk_past_riff[16..20].copy_from_slice(&1000u32.to_le_bytes());
    assert!(strip(Container::WebP, &chunk_past_riff).is_err());
    assert!(strip(Container::WebP, &riff(&[&webp_chunk(b"VP8X", &[])])).is_err());
    assert!(strip(Container::WebP, &[&b"RIFF\x04\0\0\0WAVE"[..]].concat()).is_err());
}

// ---- GIF ----

fn looping_gif() -> Vec<u8> {
    let picture =
        RgbaImage::from_fn(6, 5, |x, y| image::Rgba([x as u8 * 40, y as u8 * 50, 9, 255]));
    let mut encoded = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut encoded);
        encoder.set_repeat(Repeat::Infinite).unwrap();
        encoder.encode(picture.as_raw(), 6, 5, ExtendedColorType::Rgba8).unwrap();
    }
    encoded
}

/// Where the first block after the header and global colour table starts.
fn gif_first_block(gif: &[u8]) -> usize {
    let flags = gif[10];
    13 + if flags & 0x80 == 0 { 0 } else { 3 << ((flags & 0x07) + 1) }
}

/// XMP as the XMP specification puts it in a GIF: the packet's raw bytes, read by GIF
/// readers as sub-blocks, then a 258-byte "magic trailer" that lands any such reading on
/// the terminator.
fn xmp_application_extension() -> Vec<u8> {
    let magic_trailer: Vec<u8> =
        std::iter::once(1).chain((0..=255u8).rev()).chain(std::iter::once(0)).collect();
    [&[0x21, 0xFF, 0x0B][..], b"XMP DataXMP", XMP, &magic_trailer].concat()
}

fn comment_extension() -> Vec<u8> {
    [&[0x21, 0xFE, COMMENT.len() as u8][..], COMMENT, &[0]].concat()
}

fn metadata_gif() -> Vec<u8> {
    let gif = looping_gif();
    insert(&gif, gif_first_block(&gif), &[&comment_extension(), &xmp_application_extension()])
}

#[test]
fn gif_loses_comments_and_xmp_but_keeps_the_loop() {
    let original = metadata_gif();
    assert!(contains(&original, b"XMP DataXMP") && contains(&original, COMMENT));

    let stripped = strip(Container::Gif, &original).unwrap();

    assert_eq!(stripped, looping_gif(), "everything but the two insertions is kept");
    assert!(contains(&stripped, b"NETSCAPE2.0"));
    assert_has_no_metadata(&stripped);
    assert_eq!(pixels(&stripped), pixels(&original));
}

#[test]
fn gif_truncated_or_unknown_blocks_are_malformed() {
    let gif = looping_gif();
    assert!(strip(Container::Gif, &gif[..gif.len() - 1]).is_err());
    assert!(strip(Container::Gif, &insert(&gif, gif_first_block(&gif), &[&[0x42]])).is_err());
    assert!(strip(Container::Gif, b"GIF90a").is_err());
}

// ---- any input ----

fn samples() -> Vec<(Container, Vec<u8>)> {
    vec![
        (Container::Jpeg, phone_jpeg()),
        (Container::Png, metadata_png()),
        (Container::WebP, metadata_webp()),
        (Container::Gif, metadata_gif()),
    ]
}

/// What holds for any input: no panic, no growth past the slack allocated up front, and
/// a stripped file has nothing left to strip.
fn check_any_input(container: Container, bytes: &[u8]) {
    let Ok(stripped) = strip(container, bytes) else { return };
    assert!(stripped.capacity() <= bytes.len() + SLACK, "{container:?} grew its output");
    assert_eq!(strip(container, &stripped).as_ref(), Ok(&stripped), "{container:?} not stable");
}

#[test]
fn every_prefix_is_refused_or_cleaned_without_panicking() {
    for (container, file) in samples() {
        assert!(strip(container, &file).is_ok());
        for len in 0..file.len() {
            check_any_input(container, &file[..len]);
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let samples = samples();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut random = move |bound: usize| {
        // xorshift64: deterministic, so a failure reproduces.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    for _ in 0..4000 {
        let (container, file) = &samples[random(samples.len())];
        let mut mutated = file.clone();
        for _ in 0..=random(4) {
            let at = random(mutated.len());
            mutated[at] = random(256) as u8;
        }
        for any_container in [Container::Jpeg, Container::Png, Container::Gif, Container::WebP] {
            check_any_input(any_container, &mutated);
        }
        check_any_input(*container, &mutated);
    }
}

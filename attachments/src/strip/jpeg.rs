//! JPEG: marker segments around entropy-coded scans. Exif (with GPS), XMP, IPTC and
//! comments each live in a segment of their own, so dropping segments is enough; only the
//! Orientation tag is carried over, because without it a phone photo shows sideways.
//! Segments between scans follow the same rules, and nothing after EOI is kept.

use super::{Cursor, Malformed, malformed, output_for};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;
const RST_FIRST: u8 = 0xD0;
const RST_LAST: u8 = 0xD7;
pub(super) const APP0: u8 = 0xE0;
pub(super) const APP1: u8 = 0xE1;
pub(super) const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;
const APP15: u8 = 0xEF;
pub(super) const COM: u8 = 0xFE;

const EXIF_HEADER: &[u8] = b"Exif\0\0";
const JFIF_HEADER: &[u8] = b"JFIF\0";
const ICC_HEADER: &[u8] = b"ICC_PROFILE\0";
const ADOBE_HEADER: &[u8] = b"Adobe";
/// JFIF's identifier, version, units and densities: everything but the thumbnail.
const JFIF_FIXED_LEN: usize = 12;
const ORIENTATION_TAG: u16 = 0x0112;
const TIFF_SHORT: u16 = 3;
const IFD_ENTRY_LEN: usize = 12;

pub(super) fn strip(bytes: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut cursor = Cursor::new(bytes);
    if cursor.array("the file is too short for a JPEG")? != [0xFF, SOI] {
        return Err(malformed("the JPEG does not start with SOI"));
    }
    let mut output = Output { bytes: output_for(bytes), has_orientation: false };
    output.marker(SOI);
    let mut in_scan = false;
    let mut after_first_scan = false;
    loop {
        if in_scan {
            let scan = cursor.take(scan_length(cursor.rest), "the JPEG scan ends early")?;
            output.bytes.extend_from_slice(scan);
        }
        // Pixels that arrived are shown by decoders even when the end did not.
        if after_first_scan && cursor.is_at_end() {
            return Ok(output.bytes);
        }
        match next_marker(&mut cursor)? {
            // What follows the end of the image is not the image: phones append
            // gain maps and videos there, with their own metadata.
            EOI => {
                output.marker(EOI);
                return Ok(output.bytes);
            }
            marker @ (TEM | RST_FIRST..=RST_LAST) => output.marker(marker),
            SOI => return Err(malformed("the JPEG has a second SOI")),
            marker => {
                let payload = segment_payload(&mut cursor)?;
                output.segment_if_kept(marker, payload);
                in_scan = marker == SOS;
                after_first_scan |= in_scan;
            }
        }
    }
}

/// The cleaned file as it is written.
struct Output {
    bytes: Vec<u8>,
    /// Only the first Exif segment that has an orientation gives one.
    has_orientation: bool,
}

impl Output {
    fn marker(&mut self, marker: u8) {
        self.bytes.extend_from_slice(&[0xFF, marker]);
    }

    /// A segment whose payload is `parts` one after the other.
    fn segment(&mut self, marker: u8, parts: &[&[u8]]) {
        let payload_len: usize = parts.iter().map(|part| part.len()).sum();
        // Every payload is at most one read from a segment, whose length fit.
        debug_assert!(payload_len <= usize::from(u16::MAX) - 2);
        let length = u16::try_from(payload_len + 2).unwrap_or(u16::MAX);
        self.marker(marker);
        self.bytes.extend_from_slice(&length.to_be_bytes());
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
    }

    /// Keeps the tables, the frame and the scans, plus the three APPn that change how
    /// the pixels look: JFIF, the ICC profile (Display-P3 phone photos) and Adobe's
    /// colour transform. Every other APPn and every comment is dropped.
    fn segment_if_kept(&mut self, marker: u8, payload: &[u8]) {
        match marker {
            APP0 => self.jfif_without_thumbnail(payload),
            APP1 => self.orientation_of(payload),
            APP2 if payload.starts_with(ICC_HEADER) => self.segment(marker, &[payload]),
            APP14 if payload.starts_with(ADOBE_HEADER) => self.segment(marker, &[payload]),
            APP0..=APP15 | COM => {}
            _ => self.segment(marker, &[payload]),
        }
    }

    /// JFIF's header, with its thumbnail cut: a thumbnail is a second copy of the
    /// picture, possibly from before it was cropped. JFXX (only ever a thumbnail) and
    /// other APP0 are dropped.
    fn jfif_without_thumbnail(&mut self, payload: &[u8]) {
        if !payload.starts_with(JFIF_HEADER) {
            return;
        }
        if let Some(fixed) = payload.get(..JFIF_FIXED_LEN) {
            self.segment(APP0, &[fixed, &[0, 0]]);
        }
    }

    /// Exif and XMP are dropped whole; an Exif orientation is written back as the
    /// smallest Exif that still turns the picture upright: a big-endian TIFF whose
    /// first IFD holds Orientation alone.
    fn orientation_of(&mut self, payload: &[u8]) {
        if self.has_orientation {
            return;
        }
        let Some(orientation) = exif_orientation(payload) else { return };
        self.has_orientation = true;
        self.segment(
            APP1,
            &[
                EXIF_HEADER,
                b"MM\0*",
                &8u32.to_be_bytes(), // IFD0 right after this header
                &1u16.to_be_bytes(), // one entry
                &ORIENTATION_TAG.to_be_bytes(),
                &TIFF_SHORT.to_be_bytes(),
                &1u32.to_be_bytes(), // one value, held in the entry itself
                &orientation.to_be_bytes(),
                &[0, 0],
                &0u32.to_be_bytes(), // no next IFD
            ],
        );
    }
}

/// The next marker's code, past any 0xFF fill bytes before it.
fn next_marker(cursor: &mut Cursor<'_>) -> Result<u8, Malformed> {
    const ENDED: &str = "the JPEG ends where a marker should be";
    const NOT_A_MARKER: &str = "the JPEG has bytes where a marker should be";
    if cursor.byte(ENDED)? != 0xFF {
        return Err(malformed(NOT_A_MARKER));
    }
    loop {
        match cursor.byte(ENDED)? {
            0xFF => {}
            0x00 => return Err(malformed(NOT_A_MARKER)),
            marker => return Ok(marker),
        }
    }
}

/// A segment's payload; its length field counts itself.
fn segment_payload<'a>(cursor: &mut Cursor<'a>) -> Result<&'a [u8], Malformed> {
    let length = u16::from_be_bytes(cursor.array("the JPEG ends inside a segment length")?);
    let payload_len = usize::from(length)
        .checked_sub(2)
        .ok_or_else(|| malformed("a JPEG segment length is shorter than itself"))?;
    cursor.take(payload_len, "the JPEG ends inside a segment")
}

/// How many bytes of entropy-coded data start `data`. A scan has no length field: it
/// runs to the first marker, that is 0xFF (after any fill) followed by anything but
/// 0x00 (a stuffed 0xFF data byte) or a restart marker, which both belong to the scan.
pub(super) fn scan_length(data: &[u8]) -> usize {
    let mut index = 0;
    loop {
        let Some(marker_start) = position_from(data, index, |byte| byte == 0xFF) else {
            return data.len();
        };
        let Some(code_at) = position_from(data, marker_start, |byte| byte != 0xFF) else {
            return data.len();
        };
        match data.get(code_at) {
            Some(0x00 | RST_FIRST..=RST_LAST) => index = code_at + 1,
            _ => return marker_start,
        }
    }
}

fn position_from(data: &[u8], from: usize, wanted: impl Fn(u8) -> bool) -> Option<usize> {
    let offset = data.get(from..)?.iter().position(|&byte| wanted(byte))?;
    Some(from + offset)
}

/// The Orientation of an Exif segment's first IFD when it turns or mirrors the picture
/// (2..=8). A broken Exif only means no orientation: the segment is dropped either way.
pub(super) fn exif_orientation(payload: &[u8]) -> Option<u16> {
    let tiff = payload.strip_prefix(EXIF_HEADER)?;
    let order = match array_at::<4>(tiff, 0)? {
        [b'I', b'I', 42, 0] => ByteOrder::Little,
        [b'M', b'M', 0, 42] => ByteOrder::Big,
        _ => return None,
    };
    let ifd0 = super::length(order.u32(array_at(tiff, 4)?));
    let (count, entries) = tiff.get(ifd0..)?.split_first_chunk::<2>()?;
    let entry = entries
        .chunks_exact(IFD_ENTRY_LEN)
        .take(usize::from(order.u16(*count)))
        .filter_map(|entry| entry.first_chunk::<IFD_ENTRY_LEN>())
        .find(|entry| order.u16([entry[0], entry[1]]) == ORIENTATION_TAG)?;
    let [_, _, kind_0, kind_1, count_0, count_1, count_2, count_3, value_0, value_1, _, _] = *entry;
    let is_one_short = order.u16([kind_0, kind_1]) == TIFF_SHORT
        && order.u32([count_0, count_1, count_2, count_3]) == 1;
    let orientation = order.u16([value_0, value_1]);
    (is_one_short && (2..=8).contains(&orientation)).then_some(orientation)
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..)?.first_chunk().copied()
}

/// A TIFF's byte order, named by its first two bytes (`II` or `MM`).
#[derive(Debug, Clone, Copy)]
pub(super) enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn u16(self, bytes: [u8; 2]) -> u16 {
        match self {
            Self::Little => u16::from_le_bytes(bytes),
            Self::Big => u16::from_be_bytes(bytes),
        }
    }

    fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Self::Little => u32::from_le_bytes(bytes),
            Self::Big => u32::from_be_bytes(bytes),
        }
    }
}

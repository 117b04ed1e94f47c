//! WebP: a RIFF file of chunks. Exif and XMP have chunks of their own; the VP8X header
//! announces them with flags, which must then be cleared so readers do not look for them.

use super::{Cursor, Malformed, length, malformed, output_for};

pub(super) const VP8X_EXIF: u8 = 0x08;
pub(super) const VP8X_XMP: u8 = 0x04;
const ENDS_INSIDE_CHUNK: &str = "the WebP ends inside a chunk";

pub(super) fn strip(bytes: &[u8]) -> Result<Vec<u8>, Malformed> {
    const TOO_SHORT: &str = "the file is too short for a WebP";
    let mut cursor = Cursor::new(bytes);
    if &cursor.array(TOO_SHORT)? != b"RIFF" {
        return Err(malformed("the WebP does not start with RIFF"));
    }
    let riff_len = length(u32::from_le_bytes(cursor.array(TOO_SHORT)?));
    // Bytes after the RIFF size are no part of the file.
    let mut chunks = Cursor::new(cursor.take(riff_len, "the WebP is shorter than its RIFF size")?);
    if &chunks.array(TOO_SHORT)? != b"WEBP" {
        return Err(malformed("the RIFF file is not a WebP"));
    }
    let mut output = output_for(bytes);
    output.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    while !chunks.is_at_end() {
        let (fourcc, data) = next_chunk(&mut chunks)?;
        copy_chunk_if_kept(&mut output, fourcc, data)?;
    }
    // Stripping only shortens, so the new size fits where the old one did.
    debug_assert!(output.len() <= riff_len.saturating_add(8));
    let riff_size = u32::try_from(output.len() - 8).unwrap_or(u32::MAX);
    if let Some(size_field) = output.get_mut(4..8) {
        size_field.copy_from_slice(&riff_size.to_le_bytes());
    }
    Ok(output)
}

/// The next chunk's FourCC and data, past its padding to an even length.
fn next_chunk<'a>(cursor: &mut Cursor<'a>) -> Result<([u8; 4], &'a [u8]), Malformed> {
    let fourcc = cursor.array(ENDS_INSIDE_CHUNK)?;
    let data_len = length(u32::from_le_bytes(cursor.array(ENDS_INSIDE_CHUNK)?));
    let data = cursor.take(data_len, ENDS_INSIDE_CHUNK)?;
    cursor.take(data_len % 2, ENDS_INSIDE_CHUNK)?;
    Ok((fourcc, data))
}

/// Drops Exif and XMP; everything else (ICC profile, animation, alpha, the bitstreams,
/// chunks a newer writer added) is copied, since it is part of how the picture looks.
fn copy_chunk_if_kept(output: &mut Vec<u8>, fourcc: [u8; 4], data: &[u8]) -> Result<(), Malformed> {
    match &fourcc {
        b"EXIF" | b"XMP " => {}
        b"VP8X" => {
            let (flags, rest) =
                data.split_first().ok_or_else(|| malformed("the WebP VP8X chunk is empty"))?;
            push_chunk(output, fourcc, &[&[flags & !(VP8X_EXIF | VP8X_XMP)], rest]);
        }
        _ => push_chunk(output, fourcc, &[data]),
    }
    Ok(())
}

/// A chunk whose data is `parts` one after the other, padded with a zero byte.
fn push_chunk(output: &mut Vec<u8>, fourcc: [u8; 4], parts: &[&[u8]]) {
    let data_len: usize = parts.iter().map(|part| part.len()).sum();
    output.extend_from_slice(&fourcc);
    output.extend_from_slice(&u32::try_from(data_len).unwrap_or(u32::MAX).to_le_bytes());
    for part in parts {
        output.extend_from_slice(part);
    }
    if data_len % 2 == 1 {
        output.push(0);
    }
}

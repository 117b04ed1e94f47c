//! PNG: a list of chunks. Metadata has chunks of its own, so the picture is the chunks on
//! an allow-list, each copied byte for byte with its CRC.

use super::{Cursor, Malformed, length, malformed, output_for};

pub(super) const SIGNATURE: [u8; 8] = *b"\x89PNG\r\n\x1a\n";
/// The chunks that make up the picture: the critical ones, transparency, how to read
/// the colours, the physical size, and APNG's animation. `iCCP` is not among them: it
/// is compressed (a possible zlib bomb) and `sRGB`/`cICP`/`cHRM` cover the common cases.
const KEPT: [&[u8; 4]; 14] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs",
    b"cICP", b"acTL", b"fcTL", b"fdAT",
];
const ENDS_INSIDE_CHUNK: &str = "the PNG ends inside a chunk";

pub(super) fn strip(bytes: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut cursor = Cursor::new(bytes);
    if cursor.array("the file is too short for a PNG")? != SIGNATURE {
        return Err(malformed("the PNG signature is wrong"));
    }
    let mut output = output_for(bytes);
    output.extend_from_slice(&SIGNATURE);
    let mut is_first = true;
    loop {
        if cursor.is_at_end() {
            return Err(malformed("the PNG ends before IEND"));
        }
        let (kind, chunk) = next_chunk(&mut cursor)?;
        if is_first && &kind != b"IHDR" {
            return Err(malformed("the PNG does not start with IHDR"));
        }
        is_first = false;
        if KEPT.contains(&&kind) {
            output.extend_from_slice(chunk);
        } else if is_critical(kind) {
            // A decoder must not skip it, so neither may we.
            return Err(malformed("the PNG has a critical chunk no decoder knows"));
        }
        // Bytes after IEND are no part of the picture.
        if &kind == b"IEND" {
            return Ok(output);
        }
    }
}

/// The next chunk's type and all of its bytes: length, type, data and CRC.
fn next_chunk<'a>(cursor: &mut Cursor<'a>) -> Result<([u8; 4], &'a [u8]), Malformed> {
    let start = *cursor;
    let data_len = length(u32::from_be_bytes(cursor.array(ENDS_INSIDE_CHUNK)?));
    let kind: [u8; 4] = cursor.array(ENDS_INSIDE_CHUNK)?;
    if !kind.iter().all(u8::is_ascii_alphabetic) {
        return Err(malformed("a PNG chunk type is not four letters"));
    }
    cursor.take(data_len, ENDS_INSIDE_CHUNK)?;
    cursor.array::<4>(ENDS_INSIDE_CHUNK)?;
    Ok((kind, cursor.read_since(start)))
}

/// Critical chunks are named with an uppercase first letter.
fn is_critical([first, ..]: [u8; 4]) -> bool {
    first.is_ascii_uppercase()
}

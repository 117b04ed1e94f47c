//! GIF: a header, then blocks up to the trailer. Comments and XMP are extension blocks,
//! dropped whole; images and the extensions that shape the animation are copied.

use super::{Cursor, Malformed, malformed, output_for};

const TRAILER: u8 = 0x3B;
const IMAGE: u8 = 0x2C;
const EXTENSION: u8 = 0x21;
const GRAPHIC_CONTROL: u8 = 0xF9;
const PLAIN_TEXT: u8 = 0x01;
const APPLICATION: u8 = 0xFF;
/// Application extensions that only say how often the animation loops: the size of
/// the identifier's sub-block, then the identifier.
const LOOP_APPLICATIONS: [&[u8]; 2] = [b"\x0BNETSCAPE2.0", b"\x0BANIMEXTS1.0"];
const ENDS_INSIDE_BLOCK: &str = "the GIF ends inside a block";

pub(super) fn strip(bytes: &[u8]) -> Result<Vec<u8>, Malformed> {
    let start = Cursor::new(bytes);
    let mut cursor = start;
    skip_header(&mut cursor)?;
    let mut output = output_for(bytes);
    output.extend_from_slice(cursor.read_since(start));
    loop {
        let block_start = cursor;
        match cursor.byte("the GIF ends before its trailer")? {
            // Bytes after the trailer are no part of the picture.
            TRAILER => {
                output.push(TRAILER);
                return Ok(output);
            }
            IMAGE => {
                skip_image(&mut cursor)?;
                output.extend_from_slice(cursor.read_since(block_start));
            }
            EXTENSION => {
                let label = cursor.byte(ENDS_INSIDE_BLOCK)?;
                let sub_blocks = skip_sub_blocks(&mut cursor)?;
                if is_kept_extension(label, sub_blocks) {
                    output.extend_from_slice(cursor.read_since(block_start));
                }
            }
            _ => return Err(malformed("the GIF has a block of unknown type")),
        }
    }
}

/// Signature, logical screen descriptor and global colour table.
fn skip_header(cursor: &mut Cursor<'_>) -> Result<(), Malformed> {
    const TOO_SHORT: &str = "the file is too short for a GIF";
    let signature: [u8; 6] = cursor.array(TOO_SHORT)?;
    if &signature != b"GIF87a" && &signature != b"GIF89a" {
        return Err(malformed("the GIF signature is wrong"));
    }
    let [_screen_size @ .., flags, _background, _aspect] = cursor.array::<7>(TOO_SHORT)?;
    cursor.take(colour_table_len(flags), "the GIF ends inside its colour table")?;
    Ok(())
}

/// Image descriptor, local colour table, LZW code size and the image data.
fn skip_image(cursor: &mut Cursor<'_>) -> Result<(), Malformed> {
    let [_position_and_size @ .., flags] = cursor.array::<9>(ENDS_INSIDE_BLOCK)?;
    cursor.take(colour_table_len(flags), "the GIF ends inside a colour table")?;
    let _lzw_code_size = cursor.byte(ENDS_INSIDE_BLOCK)?;
    skip_sub_blocks(cursor)?;
    Ok(())
}

/// The bytes of a colour table a descriptor's flags announce.
fn colour_table_len(flags: u8) -> usize {
    if flags & 0x80 == 0 { 0 } else { 3 << ((flags & 0x07) + 1) }
}

/// Data sub-blocks (a size byte, then that many bytes) up to and including the empty
/// one that ends them.
fn skip_sub_blocks<'a>(cursor: &mut Cursor<'a>) -> Result<&'a [u8], Malformed> {
    let start = *cursor;
    loop {
        let size = cursor.byte(ENDS_INSIDE_BLOCK)?;
        if size == 0 {
            return Ok(cursor.read_since(start));
        }
        cursor.take(usize::from(size), ENDS_INSIDE_BLOCK)?;
    }
}

/// Frame timing and transparency, drawn text and the loop count shape the picture;
/// comments and other applications' data (XMP lives in `XMP DataXMP`) do not.
fn is_kept_extension(label: u8, sub_blocks: &[u8]) -> bool {
    match label {
        GRAPHIC_CONTROL | PLAIN_TEXT => true,
        APPLICATION => LOOP_APPLICATIONS.iter().any(|id| sub_blocks.starts_with(id)),
        _ => false,
    }
}

//! Image metadata removed at the container level, without decoding pixels.
//!
//! Participants download each other's images, and a phone photo carries where it was taken
//! (Exif GPS), the camera's serial number, when, and what an editor wrote (XMP, IPTC, text
//! chunks). [`strip`] walks the file's container and copies only the parts that make up the
//! picture, so what is stored and served is the same picture without the private data.
//! Working on the container keeps this lossless (the compressed pixel data is copied byte
//! for byte), cheap (one pass, no decompression) and bounded (the output is never longer
//! than the input plus one small Exif segment). The thumbnail is decoded from the stripped
//! bytes, so the decoder never inflates a metadata chunk either: a PNG `iCCP` or `zTXt`
//! chunk can be a zlib bomb.
//!
//! Every length read from a file is checked against the bytes actually there: a file that
//! lies about its structure is [`Malformed`], never a panic or a large allocation.

mod gif;
mod jpeg;
mod png;
#[cfg(test)]
mod tests;
mod webp;

/// The image containers the stripper understands: the image types people may send, each
/// with its own notion of where metadata lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Jpeg,
    Png,
    Gif,
    WebP,
}

/// Why a file could not be cleaned: its structure is broken.
///
/// A broken file is refused rather than passed through: whatever follows the break is
/// exactly what the stripper could not look at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// The image without metadata: what participants download and what the thumbnail is decoded from.
///
/// Only the container is read, never the pixels, so this costs one pass over `bytes`, may
/// run on untrusted input, and gives back the same picture.
pub fn strip(container: Container, bytes: &[u8]) -> Result<Vec<u8>, Malformed> {
    match container {
        Container::Jpeg => jpeg::strip(bytes),
        Container::Png => png::strip(bytes),
        Container::Gif => gif::strip(bytes),
        Container::WebP => webp::strip(bytes),
    }
}

/// Room for what the stripper may write that the input did not hold: the minimal Exif
/// segment that keeps a JPEG's orientation can be a few bytes longer than the original.
const SLACK: usize = 64;

/// The output buffer, allocated once: stripping only removes, so it never grows past this.
fn output_for(bytes: &[u8]) -> Vec<u8> {
    Vec::with_capacity(bytes.len().saturating_add(SLACK))
}

fn malformed(reason: &str) -> Malformed {
    Malformed(reason.to_owned())
}

/// A length field as a `usize`. One too large for this machine cannot fit in the input
/// either, so it saturates and fails the bounds check that follows.
fn length(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The unread rest of a file. Reads are checked against its end so that a length field
/// pointing past it becomes [`Malformed`], with `broken` saying where the file stopped
/// making sense.
#[derive(Debug, Clone, Copy)]
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn is_at_end(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, len: usize, broken: &str) -> Result<&'a [u8], Malformed> {
        let (taken, rest) = self.rest.split_at_checked(len).ok_or_else(|| malformed(broken))?;
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, broken: &str) -> Result<[u8; N], Malformed> {
        let (taken, rest) = self.rest.split_first_chunk::<N>().ok_or_else(|| malformed(broken))?;
        self.rest = rest;
        Ok(*taken)
    }

    fn byte(&mut self, broken: &str) -> Result<u8, Malformed> {
        let [byte] = self.array(broken)?;
        Ok(byte)
    }

    /// What was read since the cursor stood at `start`: a structure whose length is only
    /// known once walked (GIF sub-blocks, a PNG chunk) is then copied as one slice.
    fn read_since(&self, start: Cursor<'a>) -> &'a [u8] {
        let read = start.rest.len().saturating_sub(self.rest.len());
        start.rest.get(..read).unwrap_or_default()
    }
}

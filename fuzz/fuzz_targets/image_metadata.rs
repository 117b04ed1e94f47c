//! Uploaded images as the metadata stripper reads them, before any decoder: the first byte
//! picks the container, the rest is the file. Stripping never panics, never grows a file by
//! more than one small Exif segment, and stripping what it made changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The module alone, not the `attachments` crate: its object-store and image dependencies
// would put an S3 client under the sanitizers for nothing.
#[path = "../../attachments/src/strip/mod.rs"]
mod strip;

use strip::{Container, strip};

fuzz_target!(|data: &[u8]| {
    let Some((selector, file)) = data.split_first() else { return };
    let container = [Container::Jpeg, Container::Png, Container::Gif, Container::WebP]
        [usize::from(*selector % 4)];
    let Ok(stripped) = strip(container, file) else { return };
    assert!(stripped.len() <= file.len() + 64, "grew from {} to {}", file.len(), stripped.len());
    let again = strip(container, &stripped).expect("what the stripper made, it reads");
    assert_eq!(again, stripped, "stripping twice changes more than once");
});

//! The name a file is shown and saved under. The uploader chooses it, so it may lie: a
//! right-to-left override (U+202E) between `invoice` and `fdp.bat` makes the name read
//! "invoicetab.pdf", and a text file
//! called `notes.hta` runs when the person who saved it opens it. Names here lose every
//! invisible and direction-changing character, and end in the extension of the type the
//! bytes were sniffed as.

/// Characters that change how a name reads without being seen: direction controls and
/// isolates, zero-width characters, soft hyphens, fillers, variation selectors and tags.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    ) || c.is_control()
}

/// The extensions a type may be saved under; the first is the one added.
fn extensions(mime_type: &str) -> &'static [&'static str] {
    match mime_type {
        "image/png" => &["png"],
        "image/jpeg" => &["jpg", "jpeg"],
        "image/gif" => &["gif"],
        "image/webp" => &["webp"],
        "application/pdf" => &["pdf"],
        "application/zip" => &["zip"],
        _ => &["txt"],
    }
}

/// `given` without invisible characters, ending in an extension of `mime_type`: a name
/// whose extension is not one of the type's gets the type's instead (`notes.html` of text
/// becomes `notes.txt`, `photo` of a PNG `photo.png`).
pub(crate) fn for_download(given: &str, mime_type: &str) -> String {
    let visible: String = given.chars().filter(|c| !invisible(*c)).collect();
    let visible = visible.trim();
    let allowed = extensions(mime_type);
    let (stem, extension) = match visible.rsplit_once('.') {
        Some((stem, extension)) if !stem.trim().is_empty() => (stem.trim_end(), Some(extension)),
        _ => (visible, None),
    };
    if extension.is_some_and(|extension| allowed.contains(&extension.to_lowercase().as_str())) {
        return visible.to_owned();
    }
    let stem = if stem.is_empty() { "file" } else { stem };
    format!("{stem}.{}", allowed[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_hide_their_type() {
        assert_eq!(for_download("invoice\u{202E}fdp.bat", "application/pdf"), "invoicefdp.pdf");
        assert_eq!(for_download("notes.html", "text/plain"), "notes.txt");
        assert_eq!(for_download("notes.HTA", "text/plain"), "notes.txt");
        assert_eq!(for_download("photo.html", "image/png"), "photo.png");
        assert_eq!(for_download("photo", "image/png"), "photo.png");
        assert_eq!(for_download("IMG_1.JPEG", "image/jpeg"), "IMG_1.JPEG");
        assert_eq!(for_download("a\u{200B}b\u{2066}c.pdf", "application/pdf"), "abc.pdf");
        assert_eq!(for_download(".bashrc", "text/plain"), ".bashrc.txt");
        assert_eq!(for_download("\u{202E}", "image/gif"), "file.gif");
        assert_eq!(for_download("report.v2.zip", "application/zip"), "report.v2.zip");
    }
}

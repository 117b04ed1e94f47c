//! Secrets read from files: a password kept in a Kubernetes Secret mount is a file, never a
//! flag or a variable (which `ps`, `/proc/<pid>/environ` and crash reports show).

use std::fmt;

/// A secret value. Its `Debug` and `Display` print `<redacted>`, so it cannot reach a log
/// line, an error or `chat config check`'s output by accident; [`Secret::expose`] is the
/// one way to the text, for the client library that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret a file holds: its text without the line end an editor or `echo` leaves at
    /// the end. Empty (or only a line end) is refused: an empty password is a mounting
    /// mistake, never a credential.
    pub fn from_file_text(text: &str) -> Result<Self, String> {
        let value = text.strip_suffix('\n').unwrap_or(text);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err("the file is empty".to_owned());
        }
        if value.contains('\n') {
            return Err("the file holds more than one line".to_owned());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret in the file at `path` (a Secret mount): the one place this crate reads a
    /// file, since a setting whose value is a file is checked by reading it. The error says
    /// which file and why, never what it holds.
    pub fn read_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        Self::from_file_text(&text).map_err(|error| format!("{}: {error}", path.display()))
    }
}

/// Whether the file a setting names can be read (a certificate, a key), before a client
/// library that would only say "error" tries it.
pub fn readable(path: &std::path::Path) -> Result<(), String> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_file_gives_its_one_line_without_the_line_end() {
        assert_eq!(
            Secret::from_file_text("s3cret\n").map(|s| s.expose().to_owned()),
            Ok("s3cret".into())
        );
        assert_eq!(
            Secret::from_file_text("s3cret\r\n").map(|s| s.expose().to_owned()),
            Ok("s3cret".into())
        );
        assert_eq!(
            Secret::from_file_text(" spaced ").map(|s| s.expose().to_owned()),
            Ok(" spaced ".into())
        );
        assert!(Secret::from_file_text("").is_err());
        assert!(Secret::from_file_text("\n").is_err());
        assert!(Secret::from_file_text("one\ntwo\n").is_err());
    }

    #[test]
    fn it_never_prints_itself() -> Result<(), String> {
        let secret = Secret::from_file_text("hunter2")?;
        assert_eq!(
            format!("{secret} {secret:?} {:?}", Some(&secret)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        Ok(())
    }
}

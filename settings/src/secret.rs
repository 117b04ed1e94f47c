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

//! Secrets in the config: `${env:NAME}` and `${file:PATH}` references, and a value type that
//! never prints itself.
//!
//! References are resolved once, at load time; a missing variable or unreadable file is a config
//! error naming the reference, never its value (a warning under `check --offline`, see
//! [`SecretError::is_missing`]). A file's content loses one trailing newline.

use std::fmt;

/// A secret value. `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a resolved value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself.
    ///
    /// Security: never log or format the returned value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a reference could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `${env:NAME}` names a variable that is not set.
    #[error("environment variable `{0}` is not set")]
    Unset(String),
    /// `${file:PATH}` names a file that cannot be read.
    #[error("cannot read secret file `{path}`: {reason}")]
    Unreadable {
        /// The file, as written.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The reference itself is malformed or of an unknown kind.
    #[error("{0}")]
    Malformed(String),
}

impl SecretError {
    /// Whether the text is fine and only the environment lacks the value (a variable unset,
    /// a file unreadable): what `check --offline` reports as a warning.
    pub fn is_missing(&self) -> bool {
        !matches!(self, SecretError::Malformed(_))
    }
}

/// Whether `raw` holds a `${...}` reference rather than only literal text.
pub fn is_reference(raw: &str) -> bool {
    raw.contains("${")
}

/// Replaces every `${env:NAME}` and `${file:PATH}` in `raw`. Text outside references is kept.
pub fn resolve(raw: &str) -> Result<Secret, SecretError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| SecretError::Malformed("unterminated `${` reference".to_string()))?;
        out.push_str(&lookup(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Secret(out))
}

fn lookup(reference: &str) -> Result<String, SecretError> {
    if let Some(name) = reference.strip_prefix("env:") {
        std::env::var(name).map_err(|_| SecretError::Unset(name.to_string()))
    } else if let Some(path) = reference.strip_prefix("file:") {
        let mut text = std::fs::read_to_string(path).map_err(|e| SecretError::Unreadable {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Ok(text)
    } else {
        Err(SecretError::Malformed(format!(
            "unknown reference `${{{reference}}}`: use ${{env:NAME}} or ${{file:PATH}}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_text_is_kept() {
        assert_eq!(resolve("plain").map(|s| s.0), Ok("plain".to_string()));
    }

    #[test]
    fn file_references_lose_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("portcullis-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").expect("temp file is writable");
        let got = resolve(&format!("a-${{file:{}}}-b", dir.display())).map(|s| s.0);
        std::fs::remove_file(&dir).ok();
        assert_eq!(got, Ok("a-s3cret-b".to_string()));
    }

    #[test]
    fn missing_variable_is_named() {
        let err = resolve("${env:PORTCULLIS_SURELY_UNSET_1234}").expect_err("must fail");
        assert!(err.is_missing());
        assert!(
            err.to_string().contains("PORTCULLIS_SURELY_UNSET_1234"),
            "{err}"
        );
        let err = resolve("${file:/nonexistent/portcullis/secret}").expect_err("must fail");
        assert!(err.is_missing(), "{err}");
    }

    #[test]
    fn bad_references_are_errors() {
        for bad in ["${vault:x}", "${env:X"] {
            let err = resolve(bad).expect_err("must fail");
            assert!(!err.is_missing(), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("x".into())), "[redacted]");
    }
}

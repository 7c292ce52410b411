//! Path normalisation: the one place a request path is interpreted.
//!
//! The normalised path is what routes match *and* what the upstream receives, so the gateway and
//! the backend can never disagree about which resource was asked for. Normalisation decodes
//! percent-escapes of unreserved characters (RFC 3986 §2.3), upper-cases the hex of the others,
//! removes dot segments (§5.2.4) and collapses repeated slashes.
//!
//! Encodings that backends resolve differently are refused rather than guessed at:
//! an encoded `/` or `\`, an encoded dot forming a `.`/`..` segment, NUL and control characters,
//! a raw `\`, malformed escapes, non-ASCII bytes, and dot segments carrying `;` parameters
//! (`..;/`, which Tomcat-style backends read as `..`). Whether `;` is allowed at all is decided
//! per route by the caller, from [`NormalPath::has_params`].

use std::borrow::Cow;

/// Why a path was refused. Each is answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The target is not an absolute path (`*`, empty, or relative).
    #[error("request target is not an absolute path")]
    NotAbsolute,
    /// `%2F` or `%5C` or a raw `\`: a separator some backends honour and others do not.
    #[error("encoded or backslash path separator")]
    EncodedSeparator,
    /// An encoded dot that makes a `.` or `..` segment.
    #[error("encoded dot segment")]
    EncodedDotSegment,
    /// A `.` or `..` segment with `;` parameters.
    #[error("dot segment with parameters")]
    DotSegmentParams,
    /// `%00`, a control character or a byte outside ASCII.
    #[error("forbidden character in path")]
    ForbiddenChar,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-encoding")]
    BadEscape,
    /// A double-encoded dot, separator, `%` or control character (`%252e`, `%252f`...): a
    /// backend that decodes twice would see what this check refused.
    #[error("double percent-encoding")]
    DoubleEncoding,
    /// Escapes that decode to bytes that are not UTF-8 (overlong forms like `%c0%ae`).
    #[error("percent-encoding that is not UTF-8")]
    InvalidUtf8,
}

/// A normalised path.
#[derive(Debug, PartialEq, Eq)]
pub struct NormalPath<'a> {
    /// The normalised path; borrowed when the input already was normal.
    pub path: Cow<'a, str>,
    /// Whether a segment carries `;` parameters.
    pub has_params: bool,
}

/// Normalises an origin-form path (without query). See the module doc for the rules.
pub fn normalise(raw: &str) -> Result<NormalPath<'_>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut simple = true;
    let mut has_params = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' => simple = false,
            b';' => {
                has_params = true;
                simple = false;
            }
            b'\\' => return Err(PathError::EncodedSeparator),
            0..=0x20 | 0x7f.. | b'#' => return Err(PathError::ForbiddenChar),
            b'/' if bytes.get(i + 1) == Some(&b'/') => simple = false,
            b'.' if bytes[i - 1] == b'/' && is_dot_segment(&bytes[i..]) => simple = false,
            _ => {}
        }
    }
    if simple {
        return Ok(NormalPath {
            path: Cow::Borrowed(raw),
            has_params: false,
        });
    }
    Ok(NormalPath {
        path: Cow::Owned(rebuild(raw)?),
        has_params,
    })
}

/// Whether `rest` (starting at a segment) begins with a `.` or `..` segment.
fn is_dot_segment(rest: &[u8]) -> bool {
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    matches!(&rest[..end], b"." | b"..")
}

fn rebuild(raw: &str) -> Result<String, PathError> {
    let mut segments: Vec<String> = Vec::new();
    let raw_segments: Vec<&str> = raw[1..].split('/').collect();
    let last = raw_segments.len() - 1;
    let mut trailing_slash = false;
    for (i, raw_seg) in raw_segments.iter().enumerate() {
        let (seg, encoded_dot) = decode_segment(raw_seg)?;
        let bare = seg.split(';').next().unwrap_or("");
        let is_dot = bare == "." || bare == "..";
        if is_dot && encoded_dot {
            return Err(PathError::EncodedDotSegment);
        }
        if is_dot && seg.len() != bare.len() {
            return Err(PathError::DotSegmentParams);
        }
        match seg.as_str() {
            "" => trailing_slash = i == last,
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop();
                trailing_slash = i == last;
            }
            _ => {
                segments.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(raw.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Decodes unreserved escapes of one segment; reports whether an encoded dot was decoded.
fn decode_segment(seg: &str) -> Result<(String, bool), PathError> {
    let bytes = seg.as_bytes();
    let mut out = String::with_capacity(seg.len());
    let mut encoded_dot = false;
    // Every byte the segment decodes to, to check that escapes above 0x7f form UTF-8.
    let mut decoded = Vec::with_capacity(seg.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b as char);
            decoded.push(b);
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).and_then(|c| hex(*c));
        let lo = bytes.get(i + 2).and_then(|c| hex(*c));
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(PathError::BadEscape);
        };
        let v = hi << 4 | lo;
        decoded.push(v);
        match v {
            b'/' | b'\\' => return Err(PathError::EncodedSeparator),
            0..=0x1f | 0x7f => return Err(PathError::ForbiddenChar),
            b'.' => {
                encoded_dot = true;
                out.push('.');
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(v as char),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(hi)] as char);
                out.push(HEX[usize::from(lo)] as char);
            }
        }
        i += 3;
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    // On the decoded form, so that `%25%32%65` (which decodes to `%2e`) is caught as well.
    let out_bytes = out.as_bytes();
    for (at, _) in out.match_indices("%25") {
        let twice = out_bytes
            .get(at + 3)
            .and_then(|c| hex(*c))
            .zip(out_bytes.get(at + 4).and_then(|c| hex(*c)))
            .map(|(h, l)| h << 4 | l);
        if twice.is_some_and(|w| matches!(w, b'.' | b'/' | b'\\' | b'%' | 0..=0x1f | 0x7f)) {
            return Err(PathError::DoubleEncoding);
        }
    }
    Ok((out, encoded_dot))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        for p in ["/", "/a", "/a/b/", "/a.b/c..d", "/.well-known/x"] {
            let n = normalise(p).expect(p);
            assert!(matches!(n.path, Cow::Borrowed(_)), "{p}");
            assert_eq!(n.path, p);
        }
    }

    #[test]
    fn paths_normalise_as_the_contract_says() {
        let cases = [
            ("/a/../admin", "/admin"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/a/./b", "/a/b"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/", "/a/"),
            ("/%61dmin", "/admin"),
            ("/%7e%2D%5f", "/~-_"),
            ("/x%20y", "/x%20y"),
            ("/x%3ay", "/x%3Ay"),
            ("/file%2etxt", "/file.txt"),
            ("/a;b=c/d", "/a;b=c/d"),
            ("/...", "/..."),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalise(raw).map(|n| n.path.into_owned()),
                Ok(want.to_string()),
                "{raw}"
            );
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases = [
            ("/%2e%2e/admin", PathError::EncodedDotSegment),
            ("/.%2E/admin", PathError::EncodedDotSegment),
            ("/a/%2e/b", PathError::EncodedDotSegment),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::EncodedSeparator),
            ("/a%00", PathError::ForbiddenChar),
            ("/a\u{1}", PathError::ForbiddenChar),
            ("/a b", PathError::ForbiddenChar),
            ("/é", PathError::ForbiddenChar),
            ("/a%zz", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/assets/%252e%252e/admin", PathError::DoubleEncoding),
            ("/assets/..%252fadmin", PathError::DoubleEncoding),
            ("/a%2525", PathError::DoubleEncoding),
            ("/a%2500", PathError::DoubleEncoding),
            ("/assets/%c0%ae%c0%ae/admin", PathError::InvalidUtf8),
            ("/assets/..%c0%afadmin", PathError::InvalidUtf8),
            ("/a%ff", PathError::InvalidUtf8),
            ("/assets/..;/admin", PathError::DotSegmentParams),
            ("/assets/.;x/admin", PathError::DotSegmentParams),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("admin", PathError::NotAbsolute),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalise(raw).map(|n| n.path.into_owned()),
                Err(want),
                "{raw}"
            );
        }
    }

    #[test]
    fn parameters_are_flagged() {
        assert!(normalise("/admin;jsessionid=1").expect("valid").has_params);
        assert!(!normalise("/admin/x").expect("valid").has_params);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for raw in ["/a/../b//c/./d%7e", "/%41%42/x%3a/", "/a;b/../c"] {
            let once = normalise(raw).expect(raw).path.into_owned();
            let twice = normalise(&once).expect(raw).path.into_owned();
            assert_eq!(once, twice, "{raw}");
        }
    }
}

#[cfg(test)]
mod utf8_tests {
    use super::*;

    #[test]
    fn encoded_utf8_is_kept_and_single_encoded_percent_is_fine() {
        let n = normalise("/caf%C3%A9/%25/100%25x").expect("valid");
        assert_eq!(n.path, "/caf%C3%A9/%25/100%25x");
    }
}

//! A route's path rewrite: what the upstream is asked for, derived from the path it matched.
//!
//! Applied once, after matching, to the one normalised path (see [`super::path`]); the query
//! string is not touched. Matching, `allow` path templates and the access log keep seeing the
//! normalised path as the client sent it; only the request line sent upstream changes.
//!
//! Invariants (checked by config validation, relied on here): both prefixes are normalised
//! absolute paths without a trailing slash and other than `/`, and `strip_prefix` covers every
//! path the route takes on a segment boundary. So the result always starts with `/`, and it
//! introduces no `//` and no dot segment: the kept tail starts at a segment boundary of a
//! normalised path, and `add_prefix` ends without a slash.

use std::borrow::Cow;

/// `routes[].rewrite`: strip a leading prefix, then add one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// Removed from the front of the path (on a segment boundary).
    pub strip_prefix: Option<Box<str>>,
    /// Put in front of what is left.
    pub add_prefix: Option<Box<str>>,
}

impl Rewrite {
    /// The path to send upstream for the normalised, matched `path`. A path that does not
    /// start with `strip_prefix` on a segment boundary (which validation rules out) keeps its
    /// whole length rather than being cut mid-segment.
    pub fn apply<'a>(&self, path: &'a str) -> Cow<'a, str> {
        let rest = match self.strip_prefix.as_deref() {
            Some(strip) if on_boundary(strip, path) => &path[strip.len()..],
            _ => path,
        };
        match (self.add_prefix.as_deref(), rest) {
            (None, "") => Cow::Borrowed("/"),
            (None, rest) => Cow::Borrowed(rest),
            (Some(add), rest) => Cow::Owned(format!("{add}{rest}")),
        }
    }
}

/// Whether `path` is `prefix` or continues it with `/`.
fn on_boundary(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(strip: Option<&str>, add: Option<&str>) -> Rewrite {
        Rewrite {
            strip_prefix: strip.map(Into::into),
            add_prefix: add.map(Into::into),
        }
    }

    #[test]
    fn prefixes_are_stripped_and_added_on_segment_boundaries() {
        let cases = [
            (Some("/api"), None, "/api/users", "/users"),
            (Some("/api"), None, "/api", "/"),
            (Some("/api"), None, "/api/", "/"),
            (Some("/api"), Some("/v2"), "/api/users/7", "/v2/users/7"),
            (Some("/api"), Some("/v2"), "/api", "/v2"),
            (Some("/api"), Some("/v2"), "/api/", "/v2/"),
            (None, Some("/v2"), "/users", "/v2/users"),
            (None, Some("/v2"), "/", "/v2/"),
            (Some("/a/b"), Some("/c"), "/a/b/x.y", "/c/x.y"),
            // Never cut mid-segment.
            (Some("/api"), Some("/v2"), "/apix", "/v2/apix"),
        ];
        for (strip, add, path, want) in cases {
            assert_eq!(
                rewrite(strip, add).apply(path),
                want,
                "{strip:?} {add:?} {path}"
            );
        }
    }

    #[test]
    fn the_result_is_a_normal_path() {
        let r = rewrite(Some("/api"), Some("/v2"));
        for path in ["/api", "/api/", "/api/a/b/", "/api/a.b/..c"] {
            let out = r.apply(path);
            let normal = super::super::normalise(&out).expect("normal");
            assert_eq!(normal.path, out, "{path} -> {out}");
        }
    }

    #[test]
    fn stripping_alone_borrows() {
        assert!(matches!(
            rewrite(Some("/api"), None).apply("/api/x"),
            Cow::Borrowed("/x")
        ));
    }
}

//! Path templates of `allow[].path`: `/regions/{region}/**`.
//!
//! A template is `/` followed by segments separated by `/`. Each segment is exactly one of:
//! - a literal, compared byte for byte with the request's segment;
//! - `{name}`: any one non-empty segment, bound to `name` for `claims` values `"{name}"`;
//! - `*`: any one non-empty segment, not bound;
//! - `**`, only as the last segment: the rest of the path, zero or more segments, so
//!   `/regions/**` takes `/regions`, `/regions/` and `/regions/eu/x`.
//!
//! Templates match the *normalised* request path (see [`crate::routing::normalise`]), so literals
//! must already be in normalised form: no `.`/`..` segments, no empty segment before the last
//! (`//`), no escapes that normalisation decodes. A trailing `/` is a literal empty last segment:
//! `/a/` takes only `/a/`, and `/` only the root. Without `**` a template takes paths of exactly
//! its number of segments: `/regions/{region}` does not take `/regions/eu/`.
//!
//! Invariants: matching never allocates; bindings hold at most [`MAX_VARS`] variables, each
//! bound once; a variable is bound only to a non-empty segment.

use crate::routing::{PathMatch, normalise};

/// Most variables one template may bind; keeps [`Bindings`] a fixed array on the stack.
pub(crate) const MAX_VARS: usize = 8;

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Exactly this text (may be empty only as the last segment).
    Literal(Box<str>),
    /// Any non-empty segment, bound to variable `index`.
    Var(usize),
    /// Any non-empty segment.
    One,
}

/// A compiled path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathTemplate {
    /// The template as written, for messages and `explain`.
    raw: Box<str>,
    /// Segments before any `**`.
    segments: Box<[Segment]>,
    /// Whether the template ends in `**`.
    rest: bool,
    /// Variable names, by index.
    vars: Box<[Box<str>]>,
}

/// Segments bound by a template match, by variable index; borrowed from the request path.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Bindings<'r> {
    values: [Option<&'r str>; MAX_VARS],
}

impl<'r> Bindings<'r> {
    /// The segment bound to variable `index`, if the template matched and bound it.
    pub(crate) fn get(&self, index: usize) -> Option<&'r str> {
        self.values.get(index).copied().flatten()
    }
}

/// Whether `name` may name a variable: ASCII letters, digits and `_`, not empty.
pub(crate) fn valid_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl PathTemplate {
    /// Compiles `raw`. Errors name the first problem found (see the module doc for the grammar).
    pub(crate) fn parse(raw: &str) -> Result<PathTemplate, String> {
        let Some(body) = raw.strip_prefix('/') else {
            return Err(format!("`{raw}` does not start with `/`"));
        };
        let parts: Vec<&str> = body.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        let mut vars: Vec<Box<str>> = Vec::new();
        let mut rest = false;
        for (i, part) in parts.into_iter().enumerate() {
            let segment = match part {
                "" if i == last => Segment::Literal("".into()),
                "" => {
                    return Err(format!(
                        "`{raw}` has an empty segment (`//`), which a normalised path never has"
                    ));
                }
                "**" if i == last => {
                    rest = true;
                    continue;
                }
                "**" => return Err(format!("`{raw}`: `**` may only be the last segment")),
                "*" => Segment::One,
                _ => {
                    if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                        Segment::Var(Self::add_var(raw, name, &mut vars)?)
                    } else {
                        Segment::Literal(Self::literal(raw, part)?.into())
                    }
                }
            };
            segments.push(segment);
        }
        Ok(PathTemplate {
            raw: raw.into(),
            segments: segments.into(),
            rest,
            vars: vars.into(),
        })
    }

    fn add_var(raw: &str, name: &str, vars: &mut Vec<Box<str>>) -> Result<usize, String> {
        if name.is_empty() {
            return Err(format!("`{raw}`: `{{}}` has no variable name"));
        }
        if !valid_var_name(name) {
            return Err(format!(
                "`{raw}`: variable `{name}` may have only letters, digits and `_`"
            ));
        }
        if vars.iter().any(|v| **v == *name) {
            return Err(format!("`{raw}`: variable `{name}` is bound twice"));
        }
        if vars.len() == MAX_VARS {
            return Err(format!("`{raw}`: at most {MAX_VARS} variables"));
        }
        vars.push(name.into());
        Ok(vars.len() - 1)
    }

    fn literal<'p>(raw: &str, part: &'p str) -> Result<&'p str, String> {
        if part.contains(['{', '}', '*']) {
            return Err(format!(
                "`{raw}`: segment `{part}` mixes text with `{{}}` or `*`; a segment is a literal, \
                 `*`, `**` or a whole `{{name}}`"
            ));
        }
        if part == "." || part == ".." {
            return Err(format!(
                "`{raw}`: a `{part}` segment never appears in a normalised path"
            ));
        }
        if part.contains(['?', '#']) {
            return Err(format!(
                "`{raw}`: segment `{part}` has `?` or `#`, which are never part of a path"
            ));
        }
        let slashed = format!("/{part}");
        match normalise(&slashed) {
            Ok(normal) if normal.path == slashed.as_str() => Ok(part),
            Ok(normal) => Err(format!(
                "`{raw}`: segment `{part}` is not in normalised form; write `{}`",
                normal.path.trim_start_matches('/')
            )),
            Err(e) => Err(format!(
                "`{raw}`: segment `{part}` can never match a request path ({e})"
            )),
        }
    }

    /// The template as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// The index of variable `name`, if the template binds it.
    pub(crate) fn var_index(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|v| **v == *name)
    }

    /// Whether the normalised `path` matches; on a match, `bindings` holds every variable.
    /// Allocation-free.
    pub(crate) fn matches<'r>(&self, path: &'r str, bindings: &mut Bindings<'r>) -> bool {
        let Some(body) = path.strip_prefix('/') else {
            return false;
        };
        let mut request = body.split('/');
        for segment in &*self.segments {
            let Some(got) = request.next() else {
                return false;
            };
            match segment {
                Segment::Literal(want) => {
                    if **want != *got {
                        return false;
                    }
                }
                Segment::Var(index) => {
                    let Some(slot) = bindings.values.get_mut(*index) else {
                        return false;
                    };
                    if got.is_empty() {
                        return false;
                    }
                    *slot = Some(got);
                }
                Segment::One => {
                    if got.is_empty() {
                        return false;
                    }
                }
            }
        }
        self.rest || request.next().is_none()
    }

    /// Whether some path the route takes could match. Conservative: `false` only when clearly
    /// impossible, judged from the route's literal segments. An exact route path is simply
    /// matched; for a prefix, each of its segments is compared with the template's segment at
    /// the same place, and a template without `**` must not be shorter than every path the
    /// prefix takes.
    pub(crate) fn can_match(&self, route: &PathMatch) -> bool {
        match route {
            PathMatch::Any => true,
            PathMatch::Exact(path) => self.matches(path, &mut Bindings::default()),
            PathMatch::Prefix(prefix) => self.can_match_prefix(prefix),
        }
    }

    fn can_match_prefix(&self, prefix: &str) -> bool {
        let body = prefix.strip_prefix('/').unwrap_or(prefix);
        // `/assets/` takes `/assets/` and `/assets/x`, never `/assets`: one more segment.
        let (body, extra) = match body.strip_suffix('/') {
            Some(b) => (b, 1),
            None => (body, 0),
        };
        if body.is_empty() {
            return true;
        }
        let mut count = 0;
        for (i, route_segment) in body.split('/').enumerate() {
            count += 1;
            match self.segments.get(i) {
                None => return self.rest,
                Some(Segment::Literal(want)) if **want != *route_segment => return false,
                Some(_) => {}
            }
        }
        self.rest || self.segments.len() >= count + extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(raw: &str) -> PathTemplate {
        PathTemplate::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn templates_match_normalised_paths() {
        let cases = [
            ("/regions/{region}/**", "/regions/eu/x", true),
            ("/regions/{region}/**", "/regions/eu", true),
            ("/regions/{region}/**", "/regions/eu/", true),
            ("/regions/{region}/**", "/regions/eu/x/y/z", true),
            ("/regions/{region}/**", "/regions/", false),
            ("/regions/{region}/**", "/regions", false),
            ("/regions/{region}/**", "/regionsx/eu", false),
            ("/regions/{region}", "/regions/eu", true),
            ("/regions/{region}", "/regions/eu/", false),
            ("/regions/{region}", "/regions/eu/x", false),
            ("/a/*/c", "/a/b/c", true),
            ("/a/*/c", "/a//c", false),
            ("/a/*/c", "/a/b/d", false),
            ("/**", "/", true),
            ("/**", "/anything/at/all", true),
            ("/", "/", true),
            ("/", "/a", false),
            ("/a/", "/a/", true),
            ("/a/", "/a", false),
            ("/a/**", "/a", true),
            ("/a/**", "/ab", false),
            ("/A", "/a", false),
            ("/a", "a", false),
        ];
        for (raw, path, expected) in cases {
            let mut bindings = Bindings::default();
            assert_eq!(
                template(raw).matches(path, &mut bindings),
                expected,
                "{raw} vs {path}"
            );
        }
    }

    #[test]
    fn variables_bind_their_segment() {
        let t = template("/t/{tenant}/*/{item}/**");
        let mut bindings = Bindings::default();
        assert!(t.matches("/t/acme/x/42/more", &mut bindings));
        let tenant = t.var_index("tenant").expect("bound");
        let item = t.var_index("item").expect("bound");
        assert_eq!(bindings.get(tenant), Some("acme"));
        assert_eq!(bindings.get(item), Some("42"));
        assert_eq!(t.var_index("other"), None);
        assert_eq!(Bindings::default().get(tenant), None);
    }

    #[test]
    fn malformed_templates_are_refused() {
        let cases = [
            ("regions/**", "does not start with `/`"),
            ("", "does not start with `/`"),
            ("/a/{}/b", "no variable name"),
            ("/a/**/b", "`**` may only be the last segment"),
            ("/{x}/{x}", "bound twice"),
            ("/a/x{id}", "mixes text"),
            ("/a/{id}x", "mixes text"),
            ("/a/{id", "mixes text"),
            ("/a/b*", "mixes text"),
            ("/a/{re-gion}", "letters, digits"),
            ("/a//b", "empty segment"),
            ("/a/../b", "normalised path"),
            ("/a/./b", "normalised path"),
            ("/a/%7e", "not in normalised form; write `~`"),
            ("/a/%2f", "can never match"),
            ("/a/b c", "can never match"),
            ("/a?x=1", "`?` or `#`"),
            (
                "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
                "at most 8 variables",
            ),
        ];
        for (raw, want) in cases {
            match PathTemplate::parse(raw) {
                Ok(_) => panic!("{raw} was accepted"),
                Err(e) => assert!(e.contains(want), "{raw}: {e}"),
            }
        }
    }

    #[test]
    fn route_compatibility_is_judged_on_literal_segments() {
        let prefix = |p: &str| PathMatch::Prefix(p.into());
        let exact = |p: &str| PathMatch::Exact(p.into());
        let cases = [
            ("/regions/**", PathMatch::Any, true),
            ("/regions/**", prefix("/"), true),
            ("/regions/**", prefix("/orders"), false),
            ("/orders/**", prefix("/orders"), true),
            ("/orders/{id}", prefix("/orders"), true),
            ("/orders", prefix("/orders"), true),
            ("/*/x", prefix("/orders"), true),
            ("/orders/{id}", prefix("/orders/eu"), true),
            ("/orders/us", prefix("/orders/eu"), false),
            ("/orders", prefix("/orders/eu"), false),
            ("/**", prefix("/orders/eu"), true),
            ("/orders/**", prefix("/orders/eu"), true),
            ("/assets", prefix("/assets/"), false),
            ("/assets/*", prefix("/assets/"), true),
            ("/assets/", prefix("/assets/"), true),
            ("/orders/{id}", exact("/orders/7"), true),
            ("/orders/{id}", exact("/orders"), false),
            ("/regions/**", exact("/orders/7"), false),
        ];
        for (raw, route, expected) in cases {
            assert_eq!(
                template(raw).can_match(&route),
                expected,
                "{raw} in {route:?}"
            );
        }
    }
}

//! One route: what it matches and what it does with a request.

use std::sync::Arc;

use http::Method;

/// How a route authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPolicy {
    /// Anyone may pass.
    Public,
    /// A browser session is required.
    Session,
    /// A bearer token is required.
    Bearer,
    /// A session, else a bearer token.
    SessionOrBearer,
}

/// Which hosts a route takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Every host.
    Any,
    /// Exactly this (lower-case) host.
    Exact(Box<str>),
    /// Any host ending in `.suffix` (any depth), not `suffix` itself. Stored without the dot.
    Suffix(Box<str>),
}

impl HostMatch {
    /// Whether every host matched by `other` is matched by `self`.
    pub fn covers(&self, other: &HostMatch) -> bool {
        match (self, other) {
            (HostMatch::Any, _) => true,
            (_, HostMatch::Any) => false,
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Exact(_), HostMatch::Suffix(_)) => false,
            (HostMatch::Suffix(s), HostMatch::Exact(h)) => suffix_of(h, s),
            (HostMatch::Suffix(s), HostMatch::Suffix(t)) => s == t || suffix_of(t, s),
        }
    }
}

/// Whether `host` lies under `.suffix`.
fn suffix_of(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len()
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// Which paths a route takes (normalised paths only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// Exactly this path.
    Exact(Box<str>),
    /// This prefix, on a segment boundary.
    Prefix(Box<str>),
}

impl PathMatch {
    /// Whether `path` is taken.
    #[inline]
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == &**p,
            PathMatch::Prefix(p) => prefix_matches(p, path),
        }
    }

    /// Whether every path taken by `other` is taken by `self`.
    pub fn covers(&self, other: &PathMatch) -> bool {
        match (self, other) {
            (PathMatch::Any, _) => true,
            (_, PathMatch::Any) => false,
            (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
            (PathMatch::Exact(_), PathMatch::Prefix(_)) => false,
            (PathMatch::Prefix(p), PathMatch::Exact(e) | PathMatch::Prefix(e)) => {
                prefix_matches(p, e)
            }
        }
    }
}

#[inline]
fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes()[prefix.len()] == b'/')
}

/// A set of methods as a bit mask; all bits set means every method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSet(u16);

const KNOWN: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

impl MethodSet {
    /// Every method, including extension methods.
    pub const ALL: MethodSet = MethodSet(u16::MAX);

    /// The set of these methods; `None` when one is not a standard method.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut bits = 0u16;
        for name in names {
            let idx = KNOWN
                .iter()
                .position(|m| m.as_str() == name)
                .ok_or_else(|| format!("unknown method `{name}`"))?;
            bits |= 1 << idx;
        }
        Ok(MethodSet(bits))
    }

    /// Whether `method` is in the set. Extension methods are only in [`MethodSet::ALL`].
    #[inline]
    pub fn contains(&self, method: &Method) -> bool {
        if self.0 == u16::MAX {
            return true;
        }
        KNOWN
            .iter()
            .position(|m| m == method)
            .is_some_and(|idx| self.0 & (1 << idx) != 0)
    }

    /// Whether some method is in both sets.
    pub fn intersects(&self, other: &MethodSet) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether every method of `other` is in `self`.
    pub fn covers(&self, other: &MethodSet) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique name, used in metrics and logs.
    pub name: Arc<str>,
    /// Hosts taken.
    pub host: HostMatch,
    /// Paths taken.
    pub path: PathMatch,
    /// Methods taken.
    pub methods: MethodSet,
    /// Index of the upstream in the compiled upstream list.
    pub upstream: usize,
    /// How requests are authenticated.
    pub auth: AuthPolicy,
    /// Index of the provider (in `Config::providers` order) for protected routes.
    pub provider: Option<usize>,
    /// Header carrying the access token upstream, if the route passes it on.
    pub access_token: Option<http::HeaderName>,
    /// Who may pass, once authenticated.
    pub policy: Arc<crate::policy::Policy>,
    /// How an unauthenticated request is answered, when the route forces it (`mode`);
    /// `None`: by navigation detection.
    pub mode: Option<RouteMode>,
    /// Origins (`scheme://host[:port]`, lower-case) allowed to read refusals cross-origin.
    pub cors_origins: Arc<[String]>,
    /// `Strict-Transport-Security` for answers to requests that came over TLS.
    pub hsts: Option<http::HeaderValue>,
    /// How the path sent upstream differs from the matched one (`rewrite`); `None`: it does not.
    pub rewrite: Option<super::Rewrite>,
}

/// A route's forced answer to unauthenticated requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    /// Always 401 JSON.
    Api,
    /// Always a redirect to sign-in (GET/HEAD; other methods still get 401).
    Browser,
}

impl Route {
    /// The path sent upstream for the normalised `path` this route matched: `path` itself,
    /// or as `rewrite` makes it.
    pub fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.rewrite {
            Some(r) => r.apply(path),
            None => std::borrow::Cow::Borrowed(path),
        }
    }

    /// Whether this route takes every request `later` takes (so `later` can never match).
    pub fn shadows(&self, later: &Route) -> bool {
        self.host.covers(&later.host)
            && self.path.covers(&later.path)
            && self.methods.covers(&later.methods)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let p = PathMatch::Prefix("/api".into());
        assert!(p.matches("/api"));
        assert!(p.matches("/api/x"));
        assert!(!p.matches("/apix"));
        let slash = PathMatch::Prefix("/assets/".into());
        assert!(slash.matches("/assets/a.css"));
        assert!(!slash.matches("/assets"));
        assert!(PathMatch::Prefix("/".into()).matches("/anything"));
    }

    #[test]
    fn coverage_is_judged_per_dimension() {
        let any = HostMatch::Any;
        let wild = HostMatch::Suffix("example.com".into());
        let exact = HostMatch::Exact("a.example.com".into());
        assert!(any.covers(&wild) && wild.covers(&exact) && !exact.covers(&wild));
        assert!(!wild.covers(&HostMatch::Exact("example.com".into())));
        assert!(!wild.covers(&HostMatch::Exact("badexample.com".into())));
        let root = PathMatch::Prefix("/".into());
        let api = PathMatch::Prefix("/api".into());
        assert!(root.covers(&api) && !api.covers(&root));
        assert!(api.covers(&PathMatch::Exact("/api/x".into())));
        assert!(!api.covers(&PathMatch::Prefix("/apix".into())));
    }

    #[test]
    fn method_sets() {
        let get = MethodSet::from_names(["GET"]).expect("known");
        let get_post = MethodSet::from_names(["GET", "POST"]).expect("known");
        assert!(get.contains(&Method::GET) && !get.contains(&Method::POST));
        assert!(get_post.covers(&get) && !get.covers(&get_post));
        assert!(MethodSet::ALL.covers(&get_post));
        let ext = Method::from_bytes(b"PROPFIND").expect("valid");
        assert!(MethodSet::ALL.contains(&ext) && !get_post.contains(&ext));
        assert!(MethodSet::from_names(["FETCH"]).is_err());
    }
}

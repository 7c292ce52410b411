//! Route resolution: which route takes a request.
//!
//! Routes are compiled once per config load into per-host candidate lists, so resolving a request
//! is a hash lookup per host label plus a scan of the few routes left, with no allocation unless
//! the host has upper-case letters. The first matching route in file order wins; a request no
//! route takes gets `None` and is denied by the caller.

pub mod path;
pub mod request;
pub mod rewrite;
pub mod route;

use std::collections::HashMap;

use http::Method;

pub use path::{NormalPath, PathError, normalise};
pub use request::{Admission, Refusal, admit, endpoint, host_of, over_limits};
pub use rewrite::Rewrite;
pub use route::{AuthPolicy, HostMatch, MethodSet, PathMatch, Route, RouteMode};

/// The compiled route table.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// Routes with an exact host, by host, in file order.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// Routes with a wildcard host, by suffix (without the dot), in file order.
    suffix: HashMap<Box<str>, Vec<u32>>,
    /// Routes for every host, in file order.
    any: Vec<u32>,
}

impl Router {
    /// Compiles `routes`, kept in this order.
    pub fn new(routes: Vec<Route>) -> Self {
        let mut router = Router {
            routes,
            ..Router::default()
        };
        for (i, route) in router.routes.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            match &route.host {
                HostMatch::Any => router.any.push(i),
                HostMatch::Exact(h) => router.exact.entry(h.clone()).or_default().push(i),
                HostMatch::Suffix(s) => router.suffix.entry(s.clone()).or_default().push(i),
            }
        }
        router
    }

    /// All routes, in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route taking `method`, `host` (as from [`normalise_host`]) and the normalised `path`.
    pub fn resolve(&self, method: &Method, host: &str, path: &str) -> Option<&Route> {
        self.resolve_index(method, host, path)
            .map(|i| &self.routes[i])
    }

    /// Like [`Router::resolve`], giving the route's index.
    pub fn resolve_index(&self, method: &Method, host: &str, path: &str) -> Option<usize> {
        let mut best = u32::MAX;
        if let Some(list) = self.exact.get(host) {
            best = self.first_in(list, best, method, path);
        }
        if !self.suffix.is_empty() {
            let mut rest = host;
            while let Some(dot) = rest.find('.') {
                rest = &rest[dot + 1..];
                if let Some(list) = self.suffix.get(rest) {
                    best = self.first_in(list, best, method, path);
                }
            }
        }
        best = self.first_in(&self.any, best, method, path);
        (best != u32::MAX).then_some(best as usize)
    }

    /// The first index in `list`, below `best`, whose route matches.
    #[inline]
    fn first_in(&self, list: &[u32], best: u32, method: &Method, path: &str) -> u32 {
        for &i in list {
            if i >= best {
                break;
            }
            let route = &self.routes[i as usize];
            if route.path.matches(path) && route.methods.contains(method) {
                return i;
            }
        }
        best
    }
}

/// The host to match routes on: lower-case, without port or trailing dot. Borrowed unless the
/// host had upper-case letters. IPv6 literals keep their brackets.
pub fn normalise_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let without_port = if raw.starts_with('[') {
        raw.find(']').map_or(raw, |end| &raw[..=end])
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let host = without_port.strip_suffix('.').unwrap_or(without_port);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn route(name: &str, host: HostMatch, path: PathMatch, methods: MethodSet) -> Route {
        Route {
            name: Arc::from(name),
            host,
            path,
            methods,
            upstream: 0,
            auth: AuthPolicy::Public,
            provider: None,
            access_token: None,
            mode: None,
            cors_origins: Arc::from(Vec::new()),
            hsts: None,
            rewrite: None,
            policy: Arc::new(crate::policy::Policy::any_authenticated()),
        }
    }

    fn table() -> Router {
        let get = MethodSet::from_names(["GET"]).expect("known");
        Router::new(vec![
            route(
                "exact",
                HostMatch::Exact("app.test".into()),
                PathMatch::Prefix("/admin".into()),
                get,
            ),
            route(
                "wild",
                HostMatch::Suffix("example.com".into()),
                PathMatch::Any,
                MethodSet::ALL,
            ),
            route(
                "login",
                HostMatch::Any,
                PathMatch::Exact("/login".into()),
                MethodSet::ALL,
            ),
            route(
                "app",
                HostMatch::Exact("app.test".into()),
                PathMatch::Any,
                MethodSet::ALL,
            ),
            route(
                "assets",
                HostMatch::Any,
                PathMatch::Prefix("/assets/".into()),
                MethodSet::ALL,
            ),
        ])
    }

    #[test]
    fn first_match_wins_across_host_kinds() {
        let r = table();
        let cases = [
            ("GET", "app.test", "/admin/x", Some("exact")),
            ("POST", "app.test", "/admin/x", Some("app")),
            ("GET", "app.test", "/login", Some("login")),
            ("GET", "app.test", "/adminx", Some("app")),
            ("GET", "a.example.com", "/login", Some("wild")),
            ("GET", "a.b.example.com", "/x", Some("wild")),
            ("GET", "example.com", "/login", Some("login")),
            ("GET", "badexample.com", "/x", None),
            ("GET", "other.test", "/assets/a.css", Some("assets")),
            ("GET", "other.test", "/assets", None),
        ];
        for (method, host, path, want) in cases {
            let method = Method::from_bytes(method.as_bytes()).expect("valid");
            let got = r.resolve(&method, host, path).map(|r| &*r.name);
            assert_eq!(got, want, "{method} {host}{path}");
        }
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normalise_host("App.Test:8080"), "app.test");
        assert_eq!(normalise_host("app.test."), "app.test");
        assert_eq!(normalise_host("[::1]:80"), "[::1]");
        assert!(matches!(
            normalise_host("app.test"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

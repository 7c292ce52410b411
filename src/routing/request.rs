//! Admission: from a request's head to the route that takes it, or a refusal.
//!
//! Everything a request is judged on is read here, once: the host (from the absolute-form target,
//! else `Host`; the two must agree), the normalised path, the method and whether it asks for a
//! WebSocket upgrade. The query string and fragment are never looked at.

use std::borrow::Cow;

use http::{HeaderMap, Method, header, request::Parts};

use super::{AuthPolicy, Router, normalise, normalise_host};

/// Why a request was refused before reaching any route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable error code for the JSON body.
    pub code: &'static str,
    /// Human-readable message for the JSON body; never echoes the request.
    pub message: &'static str,
    /// Bounded metrics/log label.
    pub reason: &'static str,
}

const fn bad_request(message: &'static str, reason: &'static str) -> Refusal {
    Refusal {
        status: 400,
        code: "bad_request",
        message,
        reason,
    }
}

/// No route takes the request.
pub const NO_ROUTE: Refusal = Refusal {
    status: 404,
    code: "not_found",
    message: "no route matches this request",
    reason: "no_route",
};

/// A path under `auth_prefix` that the gateway does not serve (yet).
pub const NO_ENDPOINT: Refusal = Refusal {
    status: 404,
    code: "not_found",
    message: "no such gateway endpoint",
    reason: "no_endpoint",
};

/// What admission decided.
#[derive(Debug, PartialEq, Eq)]
pub struct Admission<'a> {
    /// Index of the route in [`Router::routes`].
    pub route: usize,
    /// The normalised path, when it differs from the request's.
    pub rewritten_path: Option<String>,
    /// The host routes were matched on.
    pub host: Cow<'a, str>,
    /// A WebSocket upgrade (HTTP/1.1 GET with `Upgrade: websocket` and `Connection: upgrade`).
    pub websocket: bool,
    /// The `Host` header to send upstream when the request had none but named its authority
    /// in the target (absolute form, HTTP/2 `:authority`).
    pub missing_host: Option<String>,
}

/// Admits `req` to a route of `router`, or refuses it. `raw_target` is the request target as
/// received (pingora keeps an absolute-form target there and only its path in `req.uri`).
pub fn admit<'a>(
    router: &Router,
    auth_prefix: &str,
    req: &'a Parts,
    raw_target: &'a [u8],
) -> Result<Admission<'a>, Refusal> {
    let authority = target_authority(req, raw_target)?;
    let host = request_host(req, authority)?;
    let missing_host = match authority {
        Some(a) if !req.headers.contains_key(header::HOST) => Some(a.to_owned()),
        _ => None,
    };
    let raw_path = req.uri.path();
    let normal =
        normalise(raw_path).map_err(|_| bad_request("ambiguous or malformed path", "bad_path"))?;
    let path = &*normal.path;
    if under(path, auth_prefix) {
        return Err(NO_ENDPOINT);
    }
    let index = router
        .resolve_index(&req.method, &host, path)
        .ok_or(NO_ROUTE)?;
    let route = &router.routes()[index];
    if normal.has_params && route.auth != AuthPolicy::Public {
        return Err(bad_request(
            "path parameters (`;`) are not allowed on a protected route",
            "path_params",
        ));
    }
    let rewritten_path = match normal.path {
        Cow::Borrowed(_) => None,
        Cow::Owned(p) => Some(p),
    };
    Ok(Admission {
        route: index,
        rewritten_path,
        host,
        websocket: is_websocket(&req.method, &req.headers),
        missing_host,
    })
}

/// Checks a request's head against `server.limits`: the refusal when one is exceeded.
pub fn over_limits(
    limits: &crate::config::Limits,
    req: &Parts,
    raw_target: &[u8],
) -> Option<Refusal> {
    const fn refusal(status: u16, message: &'static str, reason: &'static str) -> Refusal {
        Refusal {
            status,
            code: if status == 414 {
                "uri_too_long"
            } else {
                "request_header_fields_too_large"
            },
            message,
            reason,
        }
    }
    if raw_target.len() > limits.max_uri_bytes {
        return Some(refusal(
            414,
            "the request target is too long",
            "uri_too_long",
        ));
    }
    if req.headers.len() > limits.max_headers {
        return Some(refusal(431, "too many request headers", "too_many_headers"));
    }
    let mut head = req.method.as_str().len() + raw_target.len() + 12;
    let mut cookies = 0;
    for (name, value) in &req.headers {
        head += name.as_str().len() + value.len() + 4;
        if name == header::COOKIE {
            cookies += value.len() + 2;
        }
    }
    if head > limits.max_header_bytes {
        return Some(refusal(
            431,
            "the request headers are too large",
            "headers_too_large",
        ));
    }
    if cookies > limits.max_cookie_bytes {
        return Some(refusal(
            431,
            "the cookies are too large",
            "cookies_too_large",
        ));
    }
    None
}

/// The host of a request (normalised), with the same checks as [`admit`]: absolute-form target
/// and `Host` must agree, no user information, one `Host` header.
pub fn host_of<'a>(req: &'a Parts, raw_target: &'a [u8]) -> Result<Cow<'a, str>, Refusal> {
    let authority = target_authority(req, raw_target)?;
    request_host(req, authority)
}

/// The gateway endpoint a request asks for: its normalised path after `auth_prefix` (`/start`,
/// `/callback`, …), or `None` when the path is not under the prefix (or is malformed, which
/// [`admit`] then refuses).
pub fn endpoint(auth_prefix: &str, req: &Parts) -> Option<String> {
    let normal = normalise(req.uri.path()).ok()?;
    under(&normal.path, auth_prefix).then(|| normal.path[auth_prefix.len()..].to_owned())
}

/// Whether `path` is `prefix` or lies under it.
fn under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// The host of the request, normalised. The absolute-form authority (HTTP/2 `:authority`)
/// wins, and a `Host` header that disagrees with it is refused, so the backend — which reads
/// `Host` — can never be addressed as another host than the one routed on.
fn request_host<'a>(req: &'a Parts, authority: Option<&'a str>) -> Result<Cow<'a, str>, Refusal> {
    let mut values = req.headers.get_all(header::HOST).iter();
    let header_host = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            v.to_str()
                .map_err(|_| bad_request("malformed Host header", "bad_host"))?,
        ),
        (Some(_), Some(_)) => return Err(bad_request("more than one Host header", "bad_host")),
    };
    if authority.is_some_and(|a| a.contains('@')) || header_host.is_some_and(|h| h.contains('@')) {
        return Err(bad_request("user information in the host", "bad_host"));
    }
    if !authority.is_none_or(valid_authority) || !header_host.is_none_or(valid_authority) {
        return Err(bad_request("malformed Host header", "bad_host"));
    }
    match (authority, header_host) {
        (Some(a), Some(h)) if normalise_host(a) != normalise_host(h) => Err(bad_request(
            "the Host header does not match the request target",
            "host_mismatch",
        )),
        (Some(a), _) => Ok(normalise_host(a)),
        (None, Some(h)) => Ok(normalise_host(h)),
        (None, None) => Ok(Cow::Borrowed("")),
    }
}

/// Whether `value` is `host[:port]` as RFC 9110 allows it: a name of letters, digits, `-`, `_`
/// and `.`, or a bracketed IPv6 literal, and a port of digits only. Anything else (`/`, `#`,
/// `?`, `\`, `%`, spaces, a second `:`) could make the backend read another host than the one
/// routed on.
pub fn valid_authority(value: &str) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after.strip_prefix(':') {
            Some(port) => ("", Some(port)),
            None if after.is_empty() => ("", None),
            None => return false,
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    let name_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

/// The authority named by the request target: from the URI (HTTP/2, or a URI built with one),
/// else parsed from an absolute-form raw target.
fn target_authority<'a>(req: &'a Parts, raw_target: &'a [u8]) -> Result<Option<&'a str>, Refusal> {
    if let Some(a) = req.uri.authority() {
        return Ok(Some(a.as_str()));
    }
    if raw_target.first() == Some(&b'/') || raw_target == b"*" || raw_target.is_empty() {
        return Ok(None);
    }
    let target = std::str::from_utf8(raw_target)
        .map_err(|_| bad_request("malformed request target", "bad_target"))?;
    let rest = target
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or(bad_request("malformed request target", "bad_target"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Ok(Some(&rest[..end]))
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn is_websocket(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && has_token(headers, header::UPGRADE, "websocket")
        && has_token(headers, header::CONNECTION, "upgrade")
}

#[cfg(test)]
mod authority_tests {
    use super::valid_authority;

    #[test]
    fn hosts_are_names_or_ipv6_literals_with_a_numeric_port() {
        for ok in [
            "app.test",
            "app.test:8080",
            "APP.test.",
            "[::1]",
            "[::1]:443",
            "",
            "my_host",
        ] {
            assert!(valid_authority(ok), "{ok}");
        }
        for bad in [
            "evil.test/.corp.test",
            "evil#.corp.test",
            "evil?.corp.test",
            "evil\\.corp.test",
            "evil%2f.corp.test",
            "evil .corp.test",
            "app.test:admin.test",
            "app.test:",
            "app.test:123456",
            "[::1",
            "[::1]x",
            "é.test",
        ] {
            assert!(!valid_authority(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::config::Limits;
    use std::time::Duration;

    #[test]
    fn limits_refuse_long_targets_many_or_large_headers_and_cookies() {
        let limits = Limits {
            max_header_bytes: 2_000,
            max_headers: 10,
            max_uri_bytes: 300,
            max_cookie_bytes: 1_100,
            client_body_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            max_connections: 1,
        };
        let build = |target: &str, headers: &[(&str, String)]| {
            let mut b = http::Request::builder().uri(target);
            for (n, v) in headers {
                b = b.header(*n, v.as_str());
            }
            b.body(()).expect("a request").into_parts().0
        };
        let check = |target: &str, headers: &[(&str, String)]| {
            let parts = build(target, headers);
            over_limits(&limits, &parts, target.as_bytes()).map(|r| (r.status, r.reason))
        };
        assert_eq!(check("/ok", &[("x-a", "1".into())]), None);
        assert_eq!(
            check(&format!("/{}", "a".repeat(300)), &[]),
            Some((414, "uri_too_long"))
        );
        let many: Vec<(&str, String)> = (0..11).map(|_| ("x-many", "1".to_string())).collect();
        assert_eq!(check("/", &many), Some((431, "too_many_headers")));
        assert_eq!(
            check("/", &[("x-big", "b".repeat(2_000))]),
            Some((431, "headers_too_large"))
        );
        assert_eq!(
            check(
                "/",
                &[("cookie", "c".repeat(600)), ("cookie", "d".repeat(600))]
            ),
            Some((431, "cookies_too_large"))
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::Request;

    use super::*;
    use crate::routing::{HostMatch, MethodSet, PathMatch, Route};

    fn router() -> Router {
        let route = |name: &str, host: HostMatch| Route {
            name: Arc::from(name),
            host,
            path: PathMatch::Any,
            methods: MethodSet::ALL,
            upstream: 0,
            auth: AuthPolicy::Public,
            provider: None,
            access_token: None,
            mode: None,
            cors_origins: Arc::from(Vec::new()),
            hsts: None,
            rewrite: None,
            policy: Arc::new(crate::policy::Policy::any_authenticated()),
        };
        Router::new(vec![
            route("app", HostMatch::Exact("app.test".into())),
            route("other", HostMatch::Exact("other.test".into())),
        ])
    }

    fn parts(target: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::get(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("valid request").into_parts().0
    }

    fn admitted(target: &str, raw: &str, headers: &[(&str, &str)]) -> Result<usize, &'static str> {
        let r = router();
        let p = parts(target, headers);
        admit(&r, "/oauth2", &p, raw.as_bytes())
            .map(|a| a.route)
            .map_err(|e| e.reason)
    }

    #[test]
    fn host_sources_are_read_and_must_agree() {
        let cases = [
            ("/x", "/x", vec![("host", "app.test")], Ok(0)),
            ("/x", "/x", vec![("host", "OTHER.test.:80")], Ok(1)),
            ("/x", "http://other.test/x", vec![], Ok(1)),
            (
                "/x",
                "http://other.test/x",
                vec![("host", "app.test")],
                Err("host_mismatch"),
            ),
            (
                "http://app.test/x",
                "http://app.test/x",
                vec![("host", "app.test:8080")],
                Ok(0),
            ),
            (
                "/x",
                "/x",
                vec![("host", "app.test"), ("host", "other.test")],
                Err("bad_host"),
            ),
            ("/x", "/x", vec![("host", "u@app.test")], Err("bad_host")),
            ("/x", "/x", vec![], Err("no_route")),
            (
                "/oauth2/start",
                "/oauth2/start",
                vec![("host", "app.test")],
                Err("no_endpoint"),
            ),
            ("/oauth2x", "/oauth2x", vec![("host", "app.test")], Ok(0)),
            (
                "/a%2fb",
                "/a%2fb",
                vec![("host", "app.test")],
                Err("bad_path"),
            ),
        ];
        for (target, raw, headers, want) in cases {
            assert_eq!(
                admitted(target, raw, &headers),
                want,
                "{target} {raw} {headers:?}"
            );
        }
    }

    #[test]
    fn a_missing_host_is_taken_from_the_target() {
        let r = router();
        let p = parts("/x", &[]);
        let a = admit(&r, "/oauth2", &p, b"http://app.test:81/x?q").expect("admitted");
        assert_eq!(a.missing_host.as_deref(), Some("app.test:81"));
    }

    #[test]
    fn websocket_needs_get_upgrade_and_connection() {
        let r = router();
        let ws = [
            ("host", "app.test"),
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
        ];
        let p = parts("/ws", &ws);
        assert!(
            admit(&r, "/oauth2", &p, b"/ws")
                .expect("admitted")
                .websocket
        );
        let h2c = [
            ("host", "app.test"),
            ("upgrade", "h2c"),
            ("connection", "upgrade"),
        ];
        let p = parts("/ws", &h2c);
        assert!(
            !admit(&r, "/oauth2", &p, b"/ws")
                .expect("admitted")
                .websocket
        );
    }
}

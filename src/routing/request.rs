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
}

/// Admits `req` to a route of `router`, or refuses it.
pub fn admit<'a>(
    router: &Router,
    auth_prefix: &str,
    req: &'a Parts,
) -> Result<Admission<'a>, Refusal> {
    let host = request_host(req)?;
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
    })
}

/// Whether `path` is `prefix` or lies under it.
fn under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// The host of the request, normalised. The absolute-form authority (HTTP/2 `:authority`)
/// wins, and a `Host` header that disagrees with it is refused, so the backend — which reads
/// `Host` — can never be addressed as another host than the one routed on.
fn request_host(req: &Parts) -> Result<Cow<'_, str>, Refusal> {
    let mut values = req.headers.get_all(header::HOST).iter();
    let header_host = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            v.to_str()
                .map_err(|_| bad_request("malformed Host header", "bad_host"))?,
        ),
        (Some(_), Some(_)) => return Err(bad_request("more than one Host header", "bad_host")),
    };
    let authority = req.uri.authority().map(|a| a.as_str());
    if authority.is_some_and(|a| a.contains('@')) || header_host.is_some_and(|h| h.contains('@')) {
        return Err(bad_request("user information in the host", "bad_host"));
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

//! The request the backend would receive: its request line (after the route's `rewrite`), the
//! headers removed from the client's and the headers the gateway adds, in the order
//! `proxy::upstream_request` applies them (hygiene, identity, WebSocket, forwarding, target).

use http::{header, request::Parts};
use serde::Serialize;

use portcullis::identity::claims::{ClaimNames, identity_headers};
use portcullis::identity::{CookieAction, StripReason};
use portcullis::routing::{Admission, AuthPolicy, Route};
use portcullis::snapshot::Snapshot;

use super::auth::Identity;

/// What the backend would receive.
#[derive(Debug, Serialize)]
pub struct UpstreamRequest {
    /// `GET /v2/users?q=1 HTTP/1.1`.
    pub request_line: String,
    /// Client headers that never reach the backend, with why.
    pub removed: Vec<Header>,
    /// Headers the gateway sets, with their value (secrets described, never shown).
    pub added: Vec<Header>,
}

/// One header and why it is there (or not).
#[derive(Debug, Serialize)]
pub struct Header {
    /// The header name, lower-case.
    pub name: String,
    /// Its value, when the gateway sets it (or a description in angle brackets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why.
    pub why: String,
}

impl UpstreamRequest {
    /// Prints the request as `line(label, text)` lines.
    pub fn print(&self, line: impl Fn(&str, &str)) {
        line("backend", &self.request_line);
        for h in &self.removed {
            line("removed", &format!("{} ({})", h.name, h.why));
        }
        for h in &self.added {
            let value = h.value.as_deref().unwrap_or_default();
            line("added", &format!("{}: {value} ({})", h.name, h.why));
        }
    }
}

fn header(name: impl Into<String>, value: Option<String>, why: &str) -> Header {
    Header {
        name: name.into(),
        value,
        why: why.to_string(),
    }
}

/// The upstream request for `parts`, admitted to `route` with normalised `path`, sent by a
/// client outside `trusted_proxies` (explain has no peer address).
pub fn plan(
    snap: &Snapshot,
    route: &Route,
    parts: &Parts,
    admitted: &Admission<'_>,
    path: &str,
    identity: Option<&Identity>,
) -> UpstreamRequest {
    let target = route.upstream_path(path);
    let request_line = match parts.uri.query() {
        Some(q) => format!("{} {target}?{q} HTTP/1.1", parts.method),
        None => format!("{} {target} HTTP/1.1", parts.method),
    };
    let mut removed = Vec::new();
    let plan = snap.hygiene_for(route.upstream).plan(&parts.headers, false);
    for (name, reason) in &plan.remove {
        let why = match reason {
            StripReason::HopByHop => "hop-by-hop, or named in Connection",
            StripReason::Identity => "an identity header only the gateway sets",
            StripReason::Forwarding => "a forwarding header from a peer outside trusted_proxies",
        };
        removed.push(header(name.as_str(), None, why));
    }
    match plan.cookie {
        CookieAction::Keep => {}
        CookieAction::Remove => removed.push(header(
            "cookie",
            None,
            "only the gateway's own cookies in it",
        )),
        CookieAction::Replace(_) => removed.push(header(
            "cookie",
            None,
            "the gateway's own cookies taken out; the others kept",
        )),
    }
    if route.auth != AuthPolicy::Public && parts.headers.contains_key(header::AUTHORIZATION) {
        removed.push(header(
            "authorization",
            None,
            "the credential was for the gateway",
        ));
    }
    let mut added = Vec::new();
    if let Some(identity) = identity {
        identity_added(snap, route, identity, &mut added);
    }
    if admitted.websocket {
        added.push(header("connection", Some("upgrade".into()), "WebSocket"));
        added.push(header("upgrade", Some("websocket".into()), "WebSocket"));
    }
    forwarding_added(snap, parts, admitted, &mut added);
    UpstreamRequest {
        request_line,
        removed,
        added,
    }
}

/// The identity headers the gateway sets for `identity` on `route` (values of secrets
/// described, never shown).
pub fn identity_added(
    snap: &Snapshot,
    route: &Route,
    identity: &Identity,
    added: &mut Vec<Header>,
) {
    let provider = route
        .provider
        .and_then(|i| snap.config.providers.values().nth(i));
    let names = ClaimNames {
        user: provider.map_or("sub", |p| p.user_claim.as_str()),
        groups: provider.map_or("groups", |p| p.groups_claim.as_str()),
    };
    for (name, value) in identity_headers(&snap.config.identity, names, &identity.claims) {
        let value = value.to_str().unwrap_or("<not text>").to_string();
        added.push(header(
            name.as_str(),
            Some(value),
            "identity, from the claims",
        ));
    }
    if let Some(name) = &route.access_token
        && identity.has_access_token
    {
        added.push(header(
            name.as_str(),
            Some("<the access token>".into()),
            "access_token",
        ));
    }
    if let (Some(name), Some(_)) = (&snap.config.identity.assertion, &snap.assertion) {
        added.push(header(
            name.as_str(),
            Some("<a short-lived JWT signed by the gateway>".into()),
            "identity.assertion",
        ));
    }
}

fn forwarding_added(
    snap: &Snapshot,
    parts: &Parts,
    admitted: &Admission<'_>,
    added: &mut Vec<Header>,
) {
    let tls = parts.uri.scheme_str() == Some("https");
    let default_port = if tls { 443 } else { 80 };
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| admitted.missing_host.clone());
    let port = authority
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .filter(|(h, _)| !h.is_empty() && (!h.contains(':') || h.ends_with(']')))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(default_port);
    if let Some(host) = &admitted.missing_host {
        added.push(header(
            "host",
            Some(host.clone()),
            "from the URL: the request had no Host header",
        ));
    }
    added.push(header(
        "x-forwarded-for",
        Some("<the client's address>".into()),
        "forwarding",
    ));
    added.push(header(
        "x-forwarded-proto",
        Some(if tls { "https" } else { "http" }.into()),
        "forwarding",
    ));
    if !admitted.host.is_empty() {
        let value = if port == default_port {
            admitted.host.to_string()
        } else {
            format!("{}:{port}", admitted.host)
        };
        added.push(header("x-forwarded-host", Some(value), "forwarding"));
    }
    added.push(header(
        "x-forwarded-port",
        Some(port.to_string()),
        "forwarding",
    ));
    added.push(header(
        snap.config.server.request_id_header.as_str(),
        Some("<a fresh 128-bit id>".into()),
        "request id; a trusted proxy's is kept",
    ));
}

//! Per-request state shared by the proxy phases.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::snapshot::Snapshot;
use crate::token::Verified;

/// One request's state. Written by `request_filter` and `upstream_peer`, read by later phases.
#[derive(Debug)]
pub struct RequestCtx {
    /// When the request header had been read.
    pub start: Instant,
    /// The config this request is served under, taken once at its start.
    pub snapshot: Option<Arc<Snapshot>>,
    /// Index of the matched route in the snapshot's router.
    pub route: Option<usize>,
    /// The host routes were matched on.
    pub host: String,
    /// The normalised path, when it differs from the request's.
    pub rewritten_path: Option<String>,
    /// The request is a WebSocket upgrade.
    pub websocket: bool,
    /// A `Host` header to add upstream (the request named its authority only in the target).
    pub missing_host: Option<String>,
    /// The client's IP.
    pub client_ip: Option<IpAddr>,
    /// The client is in `trusted_proxies`.
    pub trusted: bool,
    /// The target address in use.
    pub target: Option<std::net::SocketAddr>,
    /// Bit set of target indexes already tried by this request.
    pub tried: u64,
    /// Why the gateway answered itself, if it did.
    pub refusal: Option<&'static str>,
    /// The authenticated identity (protected routes).
    pub identity: Option<Arc<Verified>>,
    /// The raw access token, kept only when the route passes it upstream.
    pub access_token: Option<String>,
    /// The session's ID token, kept only when `identity.id_token` sends it upstream.
    pub id_token: Option<String>,
    /// When the upstream request began (the first target's pooled pick or connect).
    pub upstream_started: Option<Instant>,
    /// From `upstream_started` to the upstream's (final) response head.
    pub upstream_head: Option<std::time::Duration>,
    /// The gateway endpoint served (`start`, `callback`, …), for metrics and logs.
    pub endpoint: Option<&'static str>,
    /// `Set-Cookie` values to add to the response (a refreshed or touched session).
    pub set_cookies: Vec<String>,
    /// The session id, when a session authenticated the request.
    pub sid: Option<String>,
    /// The request came over a TLS listener.
    pub tls: bool,
    /// The request id (kept from a trusted proxy, or made here).
    pub request_id: Option<http::HeaderValue>,
}

impl RequestCtx {
    /// A fresh context.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            snapshot: None,
            route: None,
            host: String::new(),
            rewritten_path: None,
            websocket: false,
            missing_host: None,
            request_id: None,
            client_ip: None,
            trusted: false,
            target: None,
            tried: 0,
            refusal: None,
            identity: None,
            access_token: None,
            id_token: None,
            upstream_started: None,
            upstream_head: None,
            endpoint: None,
            set_cookies: Vec::new(),
            sid: None,
            tls: false,
        }
    }

    /// The matched route's name, or `none`.
    pub fn route_name(&self) -> &str {
        if let Some(endpoint) = self.endpoint {
            return endpoint;
        }
        match (&self.snapshot, self.route) {
            (Some(s), Some(i)) => s.router.routes().get(i).map_or("none", |r| &r.name),
            _ => "none",
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

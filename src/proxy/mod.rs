//! The request loop, on pingora-core: each step is a few lines that call the modules doing the
//! work.
//!
//! ```text
//! connection (pingora-core: listener, TLS, HTTP/1.1 keep-alive or HTTP/2 streams)
//!   └─ per request: read the head ──► front: limits, HTTPS redirect, gateway endpoints,
//!        routing::admit (host, normalised path, route), authentication ──► answered?
//!      └─ forward: target (round robin, passive health), pooled upstream connection, head
//!         (hygiene, identity, X-Forwarded-*, path), both bodies, response head (cookies,
//!         HSTS) ──► failure: respond::json_error (502/504/400/408)
//!      └─ metrics + access log ──► next request on the connection
//! ```
//! Only this module (and `main`) speak pingora.

pub mod admin;
pub mod auth;
pub mod browser;
pub mod connections;
pub mod ctx;
pub mod dns;
pub mod drain;
pub mod endpoints;
pub mod exclusive;
mod forward;
mod frames;
mod http2;
pub mod keys;
mod pool;
pub mod ready;
pub mod reload;
pub mod respond;

use std::sync::Arc;

use http::{HeaderName, HeaderValue, header};
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::{ReusableHttpStream, ServerSession};
use pingora::server::ShutdownWatch;

use crate::access_log;
use crate::identity::claims::{ClaimNames, identity_headers};
use crate::identity::{CookieAction, StripReason};
use crate::metrics;
use crate::routing::{AuthPolicy, Route, admit, endpoint, host_of, normalise_host, over_limits};
use crate::signin::refresh::Refreshes;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::token::{Verified, unix_now};
use browser::Answer;
pub use ctx::RequestCtx;

/// The gateway: one per proxy shard, serving every connection of its listeners.
pub struct Gateway {
    state: SharedSnapshot,
    refreshes: Arc<Refreshes>,
    /// Makes upstream connections (TCP, TLS with the upstream's settings); idle ones are kept in
    /// the shard's [`pool`].
    connector: TransportConnector,
    /// Accept HTTP/2 with prior knowledge on plain listeners.
    h2c: bool,
}

impl Gateway {
    /// A gateway serving whatever snapshot `state` holds at each request; `refreshes` is shared
    /// by every shard, so a session is refreshed once per process. `h2c`: accept HTTP/2 with
    /// prior knowledge on plain listeners.
    pub fn new(state: SharedSnapshot, refreshes: Arc<Refreshes>, h2c: bool) -> Self {
        Self {
            state,
            refreshes,
            connector: TransportConnector::new(None),
            h2c,
        }
    }

    /// Authenticates a request to a protected route; `Some` is the answer to send instead of
    /// proxying. Fails closed: without a snapshot and a route (never the case after admission)
    /// it refuses.
    async fn authenticate(&self, req: &RequestHeader, ctx: &mut RequestCtx) -> Option<Answer> {
        let held = ctx.snapshot.clone();
        let (Some(snap), Some(index)) = (held.as_deref(), ctx.route) else {
            return Some(Answer::internal());
        };
        let Some(route) = snap.router.routes().get(index) else {
            return Some(Answer::internal());
        };
        let path = ctx.rewritten_path.as_deref().unwrap_or(req.uri.path());
        let outcome = match route.auth {
            AuthPolicy::Public => return None,
            AuthPolicy::Bearer => browser::bearer(snap, route, req, path, None).await,
            AuthPolicy::Session | AuthPolicy::SessionOrBearer => {
                let base = browser::base_url(snap, req, ctx.trusted);
                browser::authenticate(
                    &self.refreshes,
                    snap,
                    route,
                    req,
                    path,
                    base.as_deref(),
                    true,
                    unix_now(),
                )
                .await
            }
        };
        match (&outcome, snap.route_metrics.get(index)) {
            (Ok(_), Some(m)) => m.allowed(),
            _ => auth::count(
                &route.name,
                outcome.as_ref().map(|_| ()).map_err(Answer::reason),
            ),
        }
        match outcome {
            Ok(passed) => {
                ctx.access_token = passed.access_token;
                ctx.id_token = passed.id_token;
                ctx.identity = Some(passed.identity);
                ctx.set_cookies = passed.cookies;
                ctx.sid = passed.sid;
                None
            }
            Err(answer) => {
                answer.log_refusal(route);
                Some(answer)
            }
        }
    }

    /// Everything before the upstream: limits, the HTTPS redirect, the gateway's endpoints,
    /// admission and authentication. `Ok(true)` when the gateway answered itself.
    async fn front(&self, session: &mut ServerSession, ctx: &mut RequestCtx) -> Result<bool> {
        let snap = self.state.load_full();
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if ctx.tls {
            // Read by the cookie and redirect-URI code; absent means plain HTTP, so plain
            // requests pay for no extension map.
            session
                .req_header_mut()
                .extensions_mut()
                .insert(crate::snapshot::Arrival { tls: true });
        }
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.trusted = ctx.client_ip.is_some_and(|ip| {
            snap.config
                .server
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&ip))
        });
        // The request id: a trusted proxy's, else a fresh one (added to the head, for the
        // upstream, after the limits judged what the client sent).
        let id_header = &snap.config.server.request_id_header;
        let id = match session.req_header().headers.get(id_header) {
            Some(v) if ctx.trusted && respond::usable_request_id(v) => v.clone(),
            _ => respond::fresh_request_id(),
        };
        respond::set_request_id(id_header.clone(), id.clone());
        ctx.request_id = Some(id.clone());
        let limits = snap.config.server.limits;
        let req = session.req_header();
        if let Some(r) = over_limits(&limits, req, req.raw_path()) {
            ctx.refusal = Some(r.reason);
            ctx.snapshot = Some(snap);
            metrics::REFUSED
                .with_label_values(&[ctx.route_name(), r.reason])
                .inc();
            // The connection is not reused after a refused head.
            session.set_keepalive(None);
            respond::json_error(session, r.status, r.code, r.message).await?;
            return Ok(true);
        }
        session
            .req_header_mut()
            .insert_header(id_header.clone(), id)?;
        session.set_read_timeout(Some(limits.client_body_timeout));
        // A client that leaves the answer unread: the HTTP/1.1 connection is closed, the
        // HTTP/2 stream reset (its flow-control wait is bounded the same way).
        session.set_write_timeout(Some(limits.write_timeout));
        if !ctx.tls
            && let Some(port) = https_redirect(&snap, session)
        {
            ctx.snapshot = Some(snap);
            ctx.refusal = Some("https_redirect");
            return redirect_to_https(session, port).await.map(|()| true);
        }
        if let Some(name) = endpoint(&snap.config.server.auth_prefix, session.req_header()) {
            let req = session.req_header();
            if let Err(r) = host_of(req, req.raw_path()) {
                ctx.refusal = Some(r.reason);
                ctx.snapshot = Some(snap);
                respond::json_error(session, r.status, r.code, r.message).await?;
                return Ok(true);
            }
            if let Some(h) = req.headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
                ctx.host = normalise_host(h).chars().take(255).collect();
            }
            ctx.snapshot = Some(snap.clone());
            // Boxed, like authentication below: these futures (provider calls, Redis) are large,
            // and inline they would make every request's future as large, copied per request.
            Box::pin(endpoints::serve(
                &self.refreshes,
                session,
                ctx,
                &snap,
                &name,
            ))
            .await?;
            return Ok(true);
        }
        let req = session.req_header();
        let refusal = match admit(
            &snap.router,
            &snap.config.server.auth_prefix,
            req,
            req.raw_path(),
        ) {
            Ok(a) => {
                ctx.route = Some(a.route);
                ctx.host = a.host.into_owned();
                ctx.rewritten_path = a.rewritten_path;
                ctx.websocket = a.websocket;
                ctx.missing_host = a.missing_host;
                None
            }
            Err(r) => {
                // For the access log only; never matched on.
                if let Some(h) = req.headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
                    ctx.host = normalise_host(h).chars().take(255).collect();
                }
                Some(r)
            }
        };
        ctx.snapshot = Some(snap);
        if let Some(r) = refusal {
            ctx.refusal = Some(r.reason);
            metrics::REFUSED
                .with_label_values(&[ctx.route_name(), r.reason])
                .inc();
            respond::json_error(session, r.status, r.code, r.message).await?;
            return Ok(true);
        }
        let public = ctx
            .route
            .and_then(|i| ctx.snapshot.as_ref()?.router.routes().get(i))
            .is_some_and(|r| r.auth == AuthPolicy::Public);
        if !public
            && let Some(answer) = Box::pin(self.authenticate(session.req_header(), ctx)).await
        {
            ctx.refusal = Some(answer.reason());
            Box::pin(endpoints::write(session, answer)).await?;
            return Ok(true);
        }
        if !ctx.websocket && session.req_header().headers.contains_key(header::UPGRADE) {
            // Only WebSocket upgrades are proxied: `h2c` and kin are never switched to.
            session.req_header_mut().remove_header(&header::UPGRADE);
        }
        Ok(false)
    }

    /// Serves one request: `Ok(true)` when the connection may carry another.
    async fn handle(&self, session: &mut ServerSession, ctx: &mut RequestCtx) -> Result<bool> {
        if self.front(session, ctx).await? {
            return Ok(true);
        }
        forward::proxy(&self.connector, session, ctx).await
    }

    /// Answers a request that failed before its response head was written (502, 504, 400, 408,
    /// 500); returns the status (0: nothing could be sent).
    async fn fail(&self, session: &mut ServerSession, e: &Error) -> u16 {
        let code = match e.etype() {
            HTTPStatus(code) => *code,
            etype => match e.esource() {
                ErrorSource::Upstream => {
                    if is_timeout(etype) {
                        504
                    } else {
                        502
                    }
                }
                ErrorSource::Downstream => match etype {
                    WriteError | ReadError | ConnectionClosed | H2Error => 0,
                    // A client that left the answer unread past `limits.write_timeout`: the
                    // HTTP/1.1 connection is closed, the HTTP/2 stream reset (dropped unended).
                    WriteTimedout => {
                        metrics::DEADLINES.with_label_values(&["write"]).inc();
                        0
                    }
                    // A client slower than `limits.client_body_timeout`.
                    ReadTimedout => 408,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 && session.response_written().is_none() {
            // The connection is not reused after a failure: say so rather than close unannounced.
            session.set_keepalive(None);
            let (error, message) = respond::failure_body(code);
            if let Err(write_err) = respond::json_error(session, code, error, message).await {
                tracing::debug!(error = %write_err, "could not send the error response");
            }
        }
        code
    }

    /// Metrics and the access log line of a finished request.
    fn log(&self, session: &ServerSession, e: Option<&Error>, ctx: &RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.elapsed();
        let req = session.req_header();
        let route = ctx.route_name();
        let per_route = ctx
            .endpoint
            .is_none()
            .then(|| ctx.snapshot.as_ref().zip(ctx.route))
            .flatten()
            .and_then(|(s, i)| s.route_metrics.get(i));
        match per_route {
            Some(m) => m.observe(&req.method, status, elapsed.as_secs_f64()),
            None => metrics::observe_request(route, &req.method, status, elapsed.as_secs_f64()),
        }
        if let Some(e) = e {
            tracing::debug!(route, error = %e, "request failed");
        }
        let Some(snap) = &ctx.snapshot else { return };
        if !snap.config.server.access_log {
            return;
        }
        let target = ctx.target.map(|a| a.to_string());
        let route_ref = ctx.route.and_then(|i| snap.router.routes().get(i));
        let user = route_ref
            .zip(ctx.identity.as_deref())
            .and_then(|(r, id)| crate::logging::user_of(&id.claims, user_claim(snap, r)));
        let head = session.response_written().map_or(0, head_bytes);
        access_log::write(&access_log::Entry {
            ts: access_log::now_rfc3339(),
            route,
            method: req.method.as_str(),
            host: &ctx.host,
            path: ctx.rewritten_path.as_deref().unwrap_or(req.uri.path()),
            status,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            upstream_ms: ctx.upstream_head.map(|d| d.as_secs_f64() * 1000.0),
            bytes_sent: (head + session.body_bytes_sent()) as u64,
            upstream: target,
            client: ctx.client_ip.map(|ip| ip.to_string()),
            reason: ctx.refusal,
            request_id: ctx.request_id.as_ref().and_then(|v| v.to_str().ok()),
            user: user.as_deref(),
            user_agent: req
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| access_log::bounded(v, access_log::MAX_USER_AGENT)),
        });
    }
}

impl Gateway {
    /// The limits of the config serving now.
    pub(crate) fn limits(&self) -> crate::config::Limits {
        self.state.load().config.server.limits
    }

    /// Whether HTTP/2 with prior knowledge is accepted on plain listeners.
    pub(crate) fn h2c(&self) -> bool {
        self.h2c
    }

    /// Answers a head that could not be read (400 malformed, 408 too slow) and closes the
    /// connection without losing the answer.
    async fn refuse_head(&self, mut session: ServerSession, status: u16) {
        session.set_keepalive(None);
        let id_header = &self.state.load().config.server.request_id_header;
        if let Err(e) = respond::headless(&mut session, status, id_header).await {
            tracing::debug!(error = %e, status, "could not answer an unreadable request head");
        }
        connections::lingering_close(session).await;
    }

    /// Serves one request of `session` (HTTP/1.1, or an HTTP/2 stream): the connection, when
    /// it may carry another request, with any pipelined bytes already read.
    pub(crate) async fn serve(
        &self,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusableHttpStream> {
        // RFC 9112 §9.3.2: a client may send its next request before this one's answer; the
        // bytes are kept for the next round instead of failing this one.
        session.set_pipelining_enabled(true);
        let limits = self.limits();
        let mut watch = shutdown.clone();
        let read = tokio::select! {
            biased;
            read = tokio::time::timeout(limits.header_timeout, session.read_request()) => read,
            // A connection waiting for its next request is closed when the server stops.
            _ = watch.changed() => return None,
        };
        match read {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return None,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "reading a request head failed");
                if matches!(e.etype(), InvalidHTTPHeader) {
                    self.refuse_head(session, 400).await;
                }
                return None;
            }
            Err(_) => {
                // Slow loris: the head did not arrive whole within `limits.header_timeout`.
                metrics::DEADLINES.with_label_values(&["header"]).inc();
                self.refuse_head(session, 408).await;
                return None;
            }
        }
        let _in_flight = drain::InFlight::begin();
        if *shutdown.borrow() {
            session.set_keepalive(None);
        }
        let mut ctx = RequestCtx::new();
        let reuse = {
            let serve = std::pin::pin!(async {
                let outcome = self.handle(&mut session, &mut ctx).await;
                let reuse = match &outcome {
                    Ok(reuse) => *reuse,
                    Err(e) => {
                        self.fail(&mut session, e).await;
                        false
                    }
                };
                self.log(&session, outcome.as_ref().err().map(|e| &**e), &ctx);
                reuse
            });
            respond::RequestIdScope::new(serve).await
        };
        if !reuse {
            return None;
        }
        match session.finish().await {
            Ok(reusable) => reusable,
            Err(e) => {
                tracing::debug!(error = %e, "the connection cannot serve another request");
                None
            }
        }
    }
}

/// The head sent upstream: the hygiene plan applied, the identity headers, WebSocket's own
/// upgrade headers, `X-Forwarded-*`, the normalised target and `Host`.
/// `count`: count the stripped headers (once per request, not again for a retry's head).
fn upstream_request(
    snap: &Snapshot,
    req: &mut RequestHeader,
    ctx: &mut RequestCtx,
    count: bool,
) -> Result<()> {
    let upstream = ctx
        .route
        .and_then(|i| snap.router.routes().get(i))
        .map(|r| r.upstream);
    let hygiene = upstream.map_or(&snap.hygiene, |u| snap.hygiene_for(u));
    let plan = hygiene.plan(&req.headers, ctx.trusted);
    for (name, reason) in &plan.remove {
        req.remove_header(name);
        if count {
            metrics::STRIPPED_BY_REASON[reason_index(*reason)].inc();
        }
    }
    match plan.cookie {
        CookieAction::Keep => {}
        CookieAction::Remove => {
            req.remove_header(&header::COOKIE);
        }
        CookieAction::Replace(v) => req.insert_header(header::COOKIE, v)?,
    }
    set_identity(req, ctx)?;
    if ctx.websocket {
        req.insert_header(header::CONNECTION, "upgrade")?;
        req.insert_header(header::UPGRADE, "websocket")?;
    }
    set_forwarding(req, ctx)?;
    set_target(snap, req, ctx)
}

/// The response head as the client gets it: the backend never sets (or clears) the gateway's
/// own cookies; a refreshed session's cookies and the route's HSTS are added.
fn response_filter(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    if let (Some(snap), Some(id)) = (&ctx.snapshot, &ctx.request_id) {
        resp.insert_header(snap.config.server.request_id_header.clone(), id.clone())?;
    }
    if let Some(snap) = &ctx.snapshot
        && resp.headers.contains_key(header::SET_COOKIE)
    {
        let kept: Vec<HeaderValue> = resp
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter(|v| {
                let name = v
                    .to_str()
                    .ok()
                    .and_then(|v| v.split_once('='))
                    .map_or("", |(n, _)| n);
                !snap.hygiene.is_gateway_cookie(name)
            })
            .cloned()
            .collect();
        resp.remove_header(&header::SET_COOKIE);
        for v in kept {
            resp.append_header(header::SET_COOKIE, v)?;
        }
    }
    if !ctx.set_cookies.is_empty() {
        // One user's session cookie must never be stored by a shared cache and replayed to
        // others, whatever the backend said about caching its answer.
        let cache = private_cache_control(&resp.headers);
        resp.insert_header(header::CACHE_CONTROL, cache)?;
    }
    for cookie in ctx.set_cookies.drain(..) {
        resp.append_header(header::SET_COOKIE, cookie)?;
    }
    if ctx.tls
        && let Some(hsts) = ctx
            .snapshot
            .as_ref()
            .zip(ctx.route)
            .and_then(|(s, i)| s.router.routes().get(i))
            .and_then(|r| r.hsts.clone())
    {
        resp.insert_header(header::STRICT_TRANSPORT_SECURITY, hsts)?;
    }
    Ok(())
}

/// `Cache-Control` for a response that carries the gateway's `Set-Cookie`: the backend's
/// directives without `public` and `s-maxage`, plus `private` (unless `no-store` already forbids
/// storing it) and `no-cache="Set-Cookie"`.
fn private_cache_control(headers: &http::HeaderMap) -> String {
    let mut kept: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let name = d.split('=').next().unwrap_or("").trim();
            !name.eq_ignore_ascii_case("public")
                && !name.eq_ignore_ascii_case("s-maxage")
                && !name.eq_ignore_ascii_case("private")
                && !d.eq_ignore_ascii_case("no-cache=\"set-cookie\"")
        })
        .map(str::to_owned)
        .collect();
    if !kept.iter().any(|d| d.eq_ignore_ascii_case("no-store")) {
        kept.insert(0, "private".to_owned());
    }
    kept.push("no-cache=\"Set-Cookie\"".to_owned());
    kept.join(", ")
}

/// The peer for target `addr` of upstream `upstream`: its timeouts, and TLS when it has any.
fn peer(
    pool: &crate::upstream::UpstreamPool,
    upstream: usize,
    addr: std::net::SocketAddr,
) -> HttpPeer {
    let mut peer = match &pool.config.tls {
        None => HttpPeer::new(addr, false, String::new()),
        Some(tls) => upstream_tls_peer(addr, upstream, tls),
    };
    peer.options.connection_timeout = Some(pool.config.connect_timeout);
    peer.options.read_timeout = Some(pool.config.read_timeout);
    peer.options.write_timeout = Some(pool.config.write_timeout);
    peer
}

/// On protected routes: the client's credentials go, the identity headers (and the access
/// token, when the route passes it on) come.
fn set_identity(req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
    let route = ctx
        .snapshot
        .as_ref()
        .zip(ctx.route)
        .and_then(|(s, i)| s.router.routes().get(i));
    let (Some(snap), Some(route)) = (&ctx.snapshot, route) else {
        return Error::e_explain(InternalError, "proxying without a route");
    };
    if route.auth == AuthPolicy::Public {
        return Ok(());
    }
    req.remove_header(&header::AUTHORIZATION);
    let Some(identity) = &ctx.identity else {
        return Error::e_explain(InternalError, "protected route without identity");
    };
    let tokens = Tokens {
        access: ctx.access_token.as_deref(),
        id: ctx.id_token.as_deref(),
    };
    for (name, value) in identity_headers_for(snap, route, identity, tokens, ctx.sid.as_deref())? {
        req.insert_header(name, value)?;
    }
    Ok(())
}

/// The raw tokens a request's identity came with, for the routes that pass them on.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tokens<'a> {
    /// The access token (kept only when the route passes it on).
    pub access: Option<&'a str>,
    /// The session's ID token (kept only when `identity.id_token` is set).
    pub id: Option<&'a str>,
}

/// `token` as the value of header `name`: `Bearer <token>` in `Authorization`, else as is.
fn token_value(name: &HeaderName, token: &str, what: &'static str) -> Result<HeaderValue> {
    let value = if *name == header::AUTHORIZATION {
        format!("Bearer {token}")
    } else {
        token.to_owned()
    };
    HeaderValue::from_str(&value).or_err(InternalError, what)
}

/// The identity headers of `identity` on `route`: claims, the access token when the route
/// passes it on, the session's ID token when `identity.id_token` asks for it, and the signed
/// assertion when configured.
pub(crate) fn identity_headers_for(
    snap: &Snapshot,
    route: &Route,
    identity: &Verified,
    tokens: Tokens<'_>,
    sid: Option<&str>,
) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let provider = route
        .provider
        .and_then(|i| snap.config.providers.values().nth(i));
    let names = ClaimNames {
        user: user_claim(snap, route),
        groups: provider.map_or("groups", |p| p.groups_claim.as_str()),
    };
    let mut out = identity_headers(&snap.config.identity, names, &identity.claims);
    if let (Some(name), Some(token)) = (&route.access_token, tokens.access) {
        out.push((
            name.clone(),
            token_value(name, token, "token as a header value")?,
        ));
    }
    if let (Some(name), Some(token)) = (&snap.config.identity.id_token, tokens.id) {
        out.push((
            name.clone(),
            token_value(name, token, "ID token as a header value")?,
        ));
    }
    if let (Some(name), Some(signer)) = (&snap.config.identity.assertion, &snap.assertion) {
        let audience = snap
            .pools
            .get(route.upstream)
            .map_or("", |p| &*p.config.name);
        let claims = assertion_claims(&identity.claims, names);
        let key = sid.unwrap_or("").as_bytes();
        match signer.sign_cached(key, audience, &claims, unix_now()) {
            Ok(token) => {
                let value = HeaderValue::from_str(&token)
                    .or_err(InternalError, "assertion as a header value")?;
                out.push((name.clone(), value));
            }
            Err(e) => return Error::e_explain(InternalError, format!("assertion: {e}")),
        }
    }
    Ok(out)
}

/// The name of the claim that says who the user of `route` is (`sub` unless its provider says).
pub(crate) fn user_claim<'s>(snap: &'s Snapshot, route: &Route) -> &'s str {
    route
        .provider
        .and_then(|i| snap.config.providers.values().nth(i))
        .map_or("sub", |p| p.user_claim.as_str())
}

/// The size of `resp` as an HTTP/1.1 head: status line, header lines, blank line (what pingora
/// writes on an HTTP/1.1 connection, with the headers it added itself).
fn head_bytes(resp: &ResponseHeader) -> usize {
    let reason = resp.get_reason_phrase().map_or(0, str::len);
    let lines: usize = resp
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    "HTTP/1.1 200 \r\n".len() + reason + lines + 2
}

/// The identity claims an assertion carries: the user (as `sub`), email, names and groups.
fn assertion_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    names: ClaimNames<'_>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if let Some(user) = crate::policy::lookup_claim(claims, names.user) {
        out.insert("sub".into(), user.clone());
    }
    for name in ["email", "email_verified", "name", "preferred_username"] {
        if let Some(v) = claims.get(name) {
            out.insert(name.into(), v.clone());
        }
    }
    if let Some(groups) = crate::policy::lookup_claim(claims, names.groups) {
        out.insert("groups".into(), groups.clone());
    }
    out
}

/// Sets `X-Forwarded-For/-Proto/-Host`: the client's values are kept only from trusted proxies
/// (hygiene removed them otherwise).
fn set_forwarding(req: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    // Names and values made once: `&str` names are parsed (and custom ones allocated) per call.
    const FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    const PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    const PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
    const HTTPS: HeaderValue = HeaderValue::from_static("https");
    const HTTP: HeaderValue = HeaderValue::from_static("http");
    let peer = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let xff = match req.headers.get(&FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if ctx.trusted && !prior.trim().is_empty() => format!("{prior}, {peer}"),
        _ => peer,
    };
    req.insert_header(FOR, xff)?;
    if ctx.tls {
        // Believed only from a trusted proxy, and never over what arrived on our TLS listener.
        req.insert_header(PROTO, HTTPS)?;
    } else if !(ctx.trusted && req.headers.contains_key(&PROTO)) {
        req.insert_header(PROTO, HTTP)?;
    }
    // The authority the client asked for: `Host`, else the HTTP/2 `:authority` (or an
    // absolute-form target). Its port, as sent, stays on `X-Forwarded-Host` unless it is the
    // scheme's default, and is `X-Forwarded-Port` (the default port when none was sent).
    let default_port = if ctx.tls { 443 } else { 80 };
    let port = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(ctx.missing_host.as_deref())
        .and_then(authority_port)
        .unwrap_or(default_port);
    let keep_host = ctx.trusted && req.headers.contains_key(&HOST);
    if !keep_host && !ctx.host.is_empty() {
        if port == default_port {
            req.insert_header(HOST, ctx.host.as_str())?;
        } else {
            req.insert_header(HOST, format!("{}:{port}", ctx.host))?;
        }
    }
    if !(ctx.trusted && req.headers.contains_key(&PORT)) {
        req.insert_header(PORT, port_value(port))?;
    }
    Ok(())
}

/// The port of an authority (`host:port`, `[v6]:port`), if it names one.
fn authority_port(authority: &str) -> Option<u16> {
    let (host, port) = authority.rsplit_once(':')?;
    if host.is_empty() || (host.contains(':') && !host.ends_with(']')) {
        return None;
    }
    port.parse().ok()
}

/// A port as a header value; the two defaults made once.
fn port_value(port: u16) -> HeaderValue {
    match port {
        80 => HeaderValue::from_static("80"),
        443 => HeaderValue::from_static("443"),
        p => HeaderValue::from(p),
    }
}

/// Sends the normalised path, as the route's `rewrite` makes it, (plus the untouched query) in
/// origin form, with a `Host` header.
fn set_target(snap: &Snapshot, req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
    if let Some(authority) = &ctx.missing_host {
        let value = HeaderValue::from_str(authority).or_err(InternalError, "authority as Host")?;
        req.insert_header(header::HOST, value)?;
    }
    let route = ctx.route.and_then(|i| snap.router.routes().get(i));
    let rewrites = route.is_some_and(|r| r.rewrite.is_some());
    // pingora keeps an absolute-form target verbatim and would send it as received.
    let origin_form = req.raw_path().first() == Some(&b'/');
    if ctx.rewritten_path.is_none() && origin_form && !rewrites {
        return Ok(());
    }
    let normal = ctx.rewritten_path.as_deref().unwrap_or(req.uri.path());
    let path = route.map_or(std::borrow::Cow::Borrowed(normal), |r| {
        r.upstream_path(normal)
    });
    let target = match req.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.into_owned(),
    };
    let uri = target
        .parse()
        .or_err(InternalError, "normalised path is a valid URI")?;
    req.set_uri(uri);
    Ok(())
}

/// A TLS peer for a target of upstream `upstream`: SNI and verification by `tls.sni`, its CAs
/// and client certificate. The pool key includes the upstream, so connections made under one
/// upstream's TLS settings are never reused for another's.
fn upstream_tls_peer(
    addr: std::net::SocketAddr,
    upstream: usize,
    tls: &crate::config::UpstreamTls,
) -> HttpPeer {
    use pingora::utils::tls::{CertKey, WrappedX509, parse_x509};
    let mut peer = HttpPeer::new(addr, true, tls.sni.clone());
    peer.options.verify_cert = tls.verify;
    peer.options.verify_hostname = tls.verify;
    if let Some(ca) = &tls.ca {
        let certs: Vec<WrappedX509> = ca
            .iter()
            .map(|der| WrappedX509::new(der.clone(), parse_x509))
            .collect();
        peer.options.ca = Some(Arc::from(certs.into_boxed_slice()));
    }
    if let Some((chain, key)) = &tls.client {
        peer.client_cert_key = Some(Arc::new(CertKey::new(chain.clone(), key.clone())));
    }
    peer.group_key = upstream as u64 + 1;
    peer
}

/// The HTTPS port to redirect to, when the request came in on a plain listener that redirects.
fn https_redirect(snap: &Snapshot, session: &ServerSession) -> Option<u16> {
    let redirects = &snap.config.server.https_redirects;
    if redirects.is_empty() {
        return None;
    }
    let local = session.server_addr()?.as_inet()?;
    redirects
        .iter()
        .find(|(addr, _)| {
            addr.port() == local.port() && (addr.ip().is_unspecified() || addr.ip() == local.ip())
        })
        .map(|(_, port)| *port)
}

/// Answers `308` to the same host, path and query over HTTPS on `port`.
async fn redirect_to_https(session: &mut ServerSession, port: u16) -> Result<()> {
    let req = session.req_header();
    let host = host_of(req, req.raw_path())
        .ok()
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        })
        .map(|h| h.into_owned());
    let Some(host) = host else {
        return respond::json_error(
            session,
            400,
            "bad_request",
            "a Host is needed to redirect to HTTPS",
        )
        .await;
    };
    let target = req
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let location = if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    let mut resp = ResponseHeader::build(308, Some(3))?;
    resp.insert_header(header::LOCATION, location)?;
    resp.insert_header(header::CONTENT_LENGTH, "0")?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    respond::send(session, resp, bytes::Bytes::new()).await
}

fn is_timeout(etype: &ErrorType) -> bool {
    matches!(etype, ConnectTimedout | ReadTimedout | WriteTimedout)
}

fn error_kind(etype: &ErrorType) -> &'static str {
    match etype {
        ConnectRefused => "connect_refused",
        ConnectTimedout => "connect_timeout",
        ReadTimedout => "read_timeout",
        WriteTimedout => "write_timeout",
        ConnectionClosed | ReadError | WriteError => "reset",
        _ => "other",
    }
}

fn reason_index(reason: StripReason) -> usize {
    match reason {
        StripReason::HopByHop => 0,
        StripReason::Identity => 1,
        StripReason::Forwarding => 2,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn authority_ports() {
        use super::authority_port;
        assert_eq!(authority_port("app.test:8080"), Some(8080));
        assert_eq!(authority_port("[::1]:8443"), Some(8443));
        assert_eq!(authority_port("app.test"), None);
        assert_eq!(authority_port("[::1]"), None);
        assert_eq!(authority_port("::1"), None);
        assert_eq!(authority_port("app.test:x"), None);
    }

    use super::private_cache_control;
    use http::{HeaderMap, HeaderValue, header};

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::CACHE_CONTROL,
                HeaderValue::from_str(v).expect("valid"),
            );
        }
        h
    }

    #[test]
    fn a_response_with_the_gateway_cookie_is_never_shared_cacheable() {
        let cases = [
            (
                vec!["public, max-age=600"],
                "private, max-age=600, no-cache=\"Set-Cookie\"",
            ),
            (
                vec!["public", "s-maxage=60, max-age=10"],
                "private, max-age=10, no-cache=\"Set-Cookie\"",
            ),
            (vec![], "private, no-cache=\"Set-Cookie\""),
            (vec!["no-store"], "no-store, no-cache=\"Set-Cookie\""),
            (
                vec!["Private, max-age=5"],
                "private, max-age=5, no-cache=\"Set-Cookie\"",
            ),
        ];
        for (given, want) in cases {
            assert_eq!(private_cache_control(&with(&given)), want, "{given:?}");
        }
    }
}

//! The upstream half of a proxied request: pick a target, take a pooled connection (or connect),
//! write the head, stream both bodies with back-pressure, write the response head, and give the
//! connection back only when both bodies are complete.
//!
//! ```text
//! select target ─► pooled connection? ─► connect (TLS) ─► write head ─┐
//!      ▲  connect failed: mark down, retry idempotent on another     │
//!      └─ a reused connection died before any byte came back: again  │
//!                                                                     ▼
//!          ┌──────── request body (client → upstream), or watch the client ────────┐
//!          └──────── response head, then body (upstream → client) ─────────────────┘
//!                    both complete ─► connection back to the shard's pool
//! ```
//! One task per request does all of it: a `select!` over the two directions, each write
//! awaited before the next read in its direction, so a slow reader on either side slows the
//! other down instead of filling a buffer.

use bytes::Bytes;
use http::{HeaderName, Version, header};
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::HttpTask;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;

use super::RequestCtx;
use super::pool;
use crate::metrics;
use crate::upstream::UpstreamPool;

/// Proxies the admitted, authenticated request in `ctx`. `Ok(true)` when the client connection
/// may serve another request. An `Err` before the response head was written is answered by
/// the caller (502/504/…); after it, the client connection is closed.
pub(super) async fn proxy(
    connector: &TransportConnector,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    let Some(snap) = ctx.snapshot.clone() else {
        return Error::e_explain(InternalError, "proxying without a snapshot");
    };
    let Some((upstream, pool)) = ctx
        .route
        .and_then(|i| snap.router.routes().get(i))
        .and_then(|r| Some((r.upstream, snap.pools.get(r.upstream)?)))
    else {
        return Error::e_explain(InternalError, "route without an upstream pool");
    };
    // The addresses now (names resolved in the background): one set for every attempt.
    let targets = pool.targets();
    if targets.is_empty() {
        // Only a name that never resolved leaves an upstream without an address.
        metrics::UPSTREAM_ERRORS
            .with_label_values(&[&pool.config.name, "no_address"])
            .inc();
        return Error::e_explain(HTTPStatus(503), "upstream has no address yet");
    }
    let mut head = Some(upstream_head(session, &snap, ctx, true)?);
    let idempotent = session.req_header().method.is_idempotent();
    let mut fresh_only = false;
    ctx.upstream_started = Some(std::time::Instant::now());
    loop {
        let Some((target, addr)) = pool.select(&targets, ctx.tried) else {
            return Error::e_explain(HTTPStatus(502), "upstream has no targets");
        };
        if target < 64 {
            ctx.tried |= 1 << target;
        }
        ctx.target = Some(addr);
        let key = pool::Key {
            upstream,
            addr,
            generation: snap.generation,
        };
        let pooled = if fresh_only { None } else { pool::take(&key) };
        let reused = pooled.is_some();
        let stream = match pooled {
            Some(s) => s,
            None => {
                let peer = super::peer(pool, upstream, addr);
                match connector.new_stream(&peer).await {
                    Ok(s) => s,
                    Err(mut e) => {
                        pool.mark_down(&targets, target);
                        count_error(pool, e.etype());
                        let untried = targets.len() > ctx.tried.count_ones() as usize;
                        if untried && idempotent {
                            tracing::debug!(upstream = %pool.config.name, %addr, error = %e, "connect failed; trying another target");
                            continue;
                        }
                        e.as_up();
                        return Err(e);
                    }
                }
            }
        };
        let mut client = UpstreamSession::new(stream);
        client.read_timeout = Some(pool.config.read_timeout);
        client.write_timeout = Some(pool.config.write_timeout);
        // A reused connection may have died since the pool checked it: then the request goes
        // once more on a new connection, if nothing of it or of an answer has moved yet (its
        // head is then built again: the first one went with the failed attempt).
        let retry_possible = reused && !fresh_only;
        let head = match head.take() {
            Some(h) => h,
            None => upstream_head(session, &snap, ctx, false)?,
        };
        match exchange(session, &mut client, head, ctx).await {
            Ok(done) => {
                if done.upstream_reusable {
                    client.respect_keepalive();
                    if let Some(stream) = client.reuse().await {
                        pool::put(key, stream);
                    }
                }
                return Ok(done.downstream_reusable);
            }
            Err(failed) if failed.untouched && retry_possible && (idempotent || failed.at_head) => {
                tracing::debug!(upstream = %pool.config.name, %addr, error = %failed.error, "reused connection failed; retrying on a new one");
                if target < 64 {
                    ctx.tried &= !(1 << target);
                }
                fresh_only = true;
            }
            Err(failed) => {
                let mut e = failed.error;
                if e.esource() == &ErrorSource::Upstream {
                    count_error(pool, e.etype());
                } else if e.esource() == &ErrorSource::Unset {
                    e.as_up();
                    count_error(pool, e.etype());
                }
                return Err(e);
            }
        }
    }
}

/// The head to send upstream, from the client's: see `upstream_request`; an HTTP/2 body without
/// a length goes chunked.
fn upstream_head(
    session: &mut ServerSession,
    snap: &crate::snapshot::Snapshot,
    ctx: &mut RequestCtx,
    count: bool,
) -> Result<Box<RequestHeader>> {
    let mut req = Box::new(session.req_header().clone());
    super::upstream_request(snap, &mut req, ctx, count)?;
    req.set_version(Version::HTTP_11);
    if !session.is_body_empty()
        && !req.headers.contains_key(header::CONTENT_LENGTH)
        && !req.headers.contains_key(header::TRANSFER_ENCODING)
    {
        req.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(req)
}

fn count_error(pool: &UpstreamPool, etype: &ErrorType) {
    metrics::UPSTREAM_ERRORS
        .with_label_values(&[&pool.config.name, super::error_kind(etype)])
        .inc();
}

/// How an exchange ended well.
struct Done {
    upstream_reusable: bool,
    downstream_reusable: bool,
}

/// How an exchange failed.
struct Failed {
    error: Box<Error>,
    /// Nothing was read from the client's body and nothing came back from upstream.
    untouched: bool,
    /// It failed writing the request head.
    at_head: bool,
}

impl Failed {
    fn up(mut error: Box<Error>, untouched: bool) -> Self {
        error.as_up();
        Self {
            error,
            untouched,
            at_head: false,
        }
    }

    fn down(mut error: Box<Error>) -> Self {
        error.as_down();
        Self {
            error,
            untouched: false,
            at_head: false,
        }
    }
}

/// One request and its response over `client`.
async fn exchange(
    session: &mut ServerSession,
    client: &mut UpstreamSession,
    head: Box<RequestHeader>,
    ctx: &mut RequestCtx,
) -> std::result::Result<Done, Failed> {
    let expects_continue = head
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if let Err(e) = client.write_request_header(head).await {
        let mut failed = Failed::up(e, true);
        failed.at_head = true;
        return Err(failed);
    }
    let h1_downstream = !session.is_http2();
    let mut request_done = session.is_body_done();
    // Only a request with a body reads the clock for its deadline.
    let body_deadline = (!request_done).then(|| {
        let limit = ctx
            .snapshot
            .as_ref()
            .map_or(std::time::Duration::from_secs(300), |s| {
                s.config.server.limits.body_timeout
            });
        tokio::time::Instant::now() + limit
    });
    let mut response_done = false;
    let mut response_started = false;
    let mut body_started = false;
    let mut upgraded = false;
    while !response_done {
        tokio::select! {
            biased;
            task = client.read_response_task() => {
                let task = task.map_err(|e| Failed::up(e, !body_started && !response_started))?;
                response_done = task.is_end();
                match task {
                    HttpTask::Header(mut resp, end) => {
                        if resp.status.is_informational() && resp.status != 101 {
                            // `100 Continue` is passed on to an HTTP/1.1 client that asked for it
                            // and is still to send its body; other interim answers are dropped.
                            response_done = false;
                            if resp.status == 100 && expects_continue && h1_downstream && !request_done {
                                session.write_response_header(resp).await.map_err(Failed::down)?;
                            }
                            continue;
                        }
                        response_started = true;
                        ctx.upstream_head = ctx.upstream_started.map(|t| t.elapsed());
                        strip_hop_by_hop(&mut resp);
                        if h1_downstream {
                            frame_for_h1(&mut resp, &session.req_header().method, end);
                        }
                        super::response_filter(&mut resp, ctx).map_err(|e| Failed::up(e, false))?;
                        session.write_response_header(resp).await.map_err(Failed::down)?;
                        if client.was_upgraded() {
                            upgraded = true;
                            request_done = false;
                        }
                        if end {
                            session.write_response_body(Bytes::new(), true).await.map_err(Failed::down)?;
                        }
                    }
                    HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                        let data = data.unwrap_or_default();
                        session.write_response_body(data, end).await.map_err(Failed::down)?;
                    }
                    HttpTask::Trailer(trailers) => {
                        if let Some(t) = trailers {
                            session.write_response_trailers(*t).await.map_err(Failed::down)?;
                        }
                        session.write_response_body(Bytes::new(), true).await.map_err(Failed::down)?;
                    }
                    HttpTask::Done => {
                        session.write_response_body(Bytes::new(), true).await.map_err(Failed::down)?;
                    }
                    HttpTask::Failed(e) => return Err(Failed::up(e, false)),
                }
            }
            body = async {
                match body_deadline {
                    Some(deadline) if !request_done && !upgraded => {
                        tokio::time::timeout_at(deadline, session.read_body_or_idle(false)).await
                    }
                    _ => Ok(session.read_body_or_idle(request_done).await),
                }
            } => {
                // With the body done this only watches the client: a close means nobody waits
                // for the answer any more.
                let Ok(body) = body else {
                    // A body trickled slower than `limits.body_timeout` allows: it holds this
                    // upstream connection no longer (dropped, never reused); 408 if no answer
                    // has started.
                    metrics::DEADLINES.with_label_values(&["body"]).inc();
                    return Err(Failed::down(Error::explain(
                        ReadTimedout,
                        "the request body did not arrive within limits.body_timeout",
                    )));
                };
                match body.map_err(Failed::down)? {
                    Some(data) => {
                        body_started = true;
                        if upgraded {
                            client.maybe_upgrade_body_writer();
                        }
                        client
                            .write_body(&data)
                            .await
                            .map_err(|e| Failed::up(e, false))?;
                        if !upgraded && session.is_body_done() {
                            request_done = true;
                            client.finish_body().await.map_err(|e| Failed::up(e, false))?;
                        }
                    }
                    None => {
                        request_done = true;
                        client.finish_body().await.map_err(|e| Failed::up(e, false))?;
                        if upgraded {
                            // Either side closing ends an upgraded exchange.
                            session.write_response_body(Bytes::new(), true).await.map_err(Failed::down)?;
                            response_done = true;
                        }
                    }
                }
            }
        }
    }
    Ok(Done {
        upstream_reusable: !upgraded && request_done && client.is_body_done(),
        downstream_reusable: !upgraded,
    })
}

/// Hop-by-hop headers of a response, and those its `Connection` names, never reach the client
/// (the client connection's own `Connection` is set by the server session). `Upgrade` stays on
/// a `101`.
fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    let hop_by_hop = |n: &HeaderName| {
        [
            &header::CONNECTION,
            &KEEP_ALIVE,
            &PROXY_CONNECTION,
            &header::TE,
            &header::TRAILER,
            &header::UPGRADE,
        ]
        .contains(&n)
    };
    // One pass over the (few) headers instead of a hashed removal per name, in the common case
    // of a response that has none of them.
    if resp.status != 101 && !resp.headers.keys().any(hop_by_hop) {
        return;
    }
    if let Some(named) = resp.headers.get(header::CONNECTION).cloned()
        && let Ok(named) = named.to_str()
    {
        for name in named.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            // Framing is decided by the message, never removed through `Connection`.
            if name != header::CONTENT_LENGTH
                && name != header::TRANSFER_ENCODING
                && name != header::UPGRADE
            {
                resp.remove_header(&name);
            }
        }
    }
    resp.remove_header(&header::CONNECTION);
    resp.remove_header(&KEEP_ALIVE);
    resp.remove_header(&PROXY_CONNECTION);
    resp.remove_header(&header::TE);
    resp.remove_header(&header::TRAILER);
    if resp.status == 101 {
        // The switch itself is announced on the client connection.
        let _ = resp.insert_header(header::CONNECTION, "upgrade");
    } else {
        resp.remove_header(&header::UPGRADE);
    }
}

/// A response without a length (an HTTP/1.0-style, close-delimited one) goes to an HTTP/1.1
/// client chunked, so its connection can serve the next request.
fn frame_for_h1(resp: &mut ResponseHeader, method: &http::Method, end: bool) {
    resp.set_version(Version::HTTP_11);
    let no_body = *method == http::Method::HEAD
        || matches!(resp.status.as_u16(), 101 | 204 | 304)
        || resp.status.is_informational();
    if !no_body
        && !end
        && !resp.headers.contains_key(header::TRANSFER_ENCODING)
        && !resp.headers.contains_key(header::CONTENT_LENGTH)
    {
        // Infallible for a static name and value.
        let _ = resp.insert_header(header::TRANSFER_ENCODING, "chunked");
    }
}

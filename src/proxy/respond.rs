//! The only place the gateway writes responses of its own: JSON errors and documents, redirects
//! and small HTML pages.
//!
//! Bodies name a fixed error code and message; they never echo request data, upstream
//! addresses or internal error text (those go to the log). Every answer is `no-store` except the
//! assertion key set, which apps may cache for minutes.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;

type IdHeader = Option<(HeaderName, HeaderValue)>;

thread_local! {
    /// The request id header and value of the request whose task is being polled on this
    /// thread, for the answers the gateway makes itself (set once the request's config is
    /// known). [`RequestIdScope`] swaps each request's own in and out around every poll: a
    /// task-local would own (and so move, ~20 KB a request) the future it wraps.
    static REQUEST_ID: RefCell<IdHeader> = const { RefCell::new(None) };
}

/// One request's place for its request id, around the future serving it (pinned where it
/// lies, never moved).
pub(crate) struct RequestIdScope<'a, F> {
    own: IdHeader,
    serve: Pin<&'a mut F>,
}

impl<'a, F: Future> RequestIdScope<'a, F> {
    /// `serve` (one request), with a place for its request id.
    pub(crate) fn new(serve: Pin<&'a mut F>) -> Self {
        Self { own: None, serve }
    }
}

impl<F: Future> Future for RequestIdScope<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let outer = REQUEST_ID.with(|id| id.replace(this.own.take()));
        let polled = this.serve.as_mut().poll(cx);
        this.own = REQUEST_ID.with(|id| id.replace(outer));
        polled
    }
}

/// Records the request id of the request being served.
pub(crate) fn set_request_id(name: HeaderName, value: HeaderValue) {
    REQUEST_ID.with(|id| *id.borrow_mut() = Some((name, value)));
}

fn request_id() -> IdHeader {
    REQUEST_ID.with(|id| id.borrow().clone())
}

thread_local! {
    /// Request ids come from a per-thread generator seeded once from the system's: they must
    /// not collide, not be secret, and aws-lc's DRBG (re-keyed on every call) cost ~0.4 µs a
    /// request.
    static IDS: RefCell<fastrand::Rng> = RefCell::new(fastrand::Rng::with_seed(seed()));
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system's generator failed: the clock still tells threads and processes apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return nanos as u64 ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(bytes)
}

/// A fresh request id: 128 random bits, hex.
pub(crate) fn fresh_request_id() -> HeaderValue {
    let bits = IDS.with(|rng| rng.borrow_mut().u128(..));
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (i, b) in bits.to_be_bytes().iter().enumerate() {
        text[2 * i] = HEX[usize::from(b >> 4)];
        text[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
}

/// Whether a request id from a trusted proxy is kept: 1 to 200 visible ASCII characters.
pub(crate) fn usable_request_id(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    !b.is_empty() && b.len() <= 200 && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

/// The JSON error body, with the request id when there is one.
fn error_body(code: &str, message: &str, id: Option<&HeaderValue>) -> Bytes {
    let body = match id.and_then(|v| v.to_str().ok()) {
        Some(id) => serde_json::json!({"error": code, "message": message, "request_id": id}),
        None => serde_json::json!({"error": code, "message": message}),
    };
    Bytes::from(body.to_string())
}

/// A response head of `status` with `content-type` and `content-length` for `body`, and
/// `cache-control: no-store`.
fn head(status: u16, content_type: &str, body: &Bytes) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(8))?;
    resp.insert_header("content-type", content_type)?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    if let Some((name, value)) = request_id() {
        resp.insert_header(name, value)?;
    }
    Ok(resp)
}

/// Writes `resp` and `body`, ending the response (a `HEAD` request gets the head only).
pub async fn send(session: &mut ServerSession, resp: ResponseHeader, body: Bytes) -> Result<()> {
    let body = if session.req_header().method == http::Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    session.write_response_header(Box::new(resp)).await?;
    session.write_response_body(body, true).await
}

/// Answers a request whose head could not be read whole (400: malformed; 408: too slow):
/// there is no request to look at.
/// `id_header` carries a fresh request id (there is no request to take one from).
pub async fn headless(
    session: &mut ServerSession,
    status: u16,
    id_header: &HeaderName,
) -> Result<()> {
    let (code, message) = failure_body(status);
    let id = fresh_request_id();
    let body = error_body(code, message, Some(&id));
    let mut resp = head(status, "application/json", &body)?;
    resp.insert_header(id_header.clone(), id)?;
    session.write_response_header(Box::new(resp)).await?;
    session.write_response_body(body, true).await
}

/// Writes a JSON error response and ends it.
pub async fn json_error(
    session: &mut ServerSession,
    status: u16,
    code: &str,
    message: &str,
) -> Result<()> {
    let id = request_id();
    let body = error_body(code, message, id.as_ref().map(|(_, v)| v));
    let resp = head(status, "application/json", &body)?;
    send(session, resp, body).await
}

/// What goes with a refusal besides its body.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extras<'a> {
    /// `Set-Cookie` values.
    pub cookies: &'a [String],
    /// The request's `Origin`, when the route allows it to read the answer (CORS).
    pub cors_origin: Option<&'a str>,
}

fn add_extras(resp: &mut ResponseHeader, extras: Extras<'_>) -> Result<()> {
    for cookie in extras.cookies {
        resp.append_header("set-cookie", cookie.as_str())?;
    }
    if let Some(origin) = extras.cors_origin {
        resp.insert_header("access-control-allow-origin", origin)?;
        resp.insert_header("access-control-allow-credentials", "true")?;
        resp.insert_header("access-control-expose-headers", "www-authenticate")?;
        resp.insert_header("vary", "Origin")?;
    }
    Ok(())
}

/// Writes a refusal of a protected route: JSON, with `WWW-Authenticate` when it has one.
pub async fn auth_error(
    session: &mut ServerSession,
    denied: &super::auth::Denied,
    extras: Extras<'_>,
) -> Result<()> {
    let id = request_id();
    let body = error_body(denied.code, denied.description, id.as_ref().map(|(_, v)| v));
    let mut resp = head(denied.status, "application/json", &body)?;
    if let Some(challenge) = &denied.challenge {
        resp.insert_header("www-authenticate", challenge.as_str())?;
    }
    add_extras(&mut resp, extras)?;
    send(session, resp, body).await
}

/// Writes a JSON document already serialised, cacheable for `max_age` seconds (`/jwks.json`).
pub async fn json_bytes(session: &mut ServerSession, body: Bytes, max_age: u32) -> Result<()> {
    let mut resp = head(200, "application/json", &body)?;
    resp.insert_header("cache-control", format!("public, max-age={max_age}"))?;
    send(session, resp, body).await
}

/// Writes a JSON document (the gateway's own endpoints).
pub async fn json(
    session: &mut ServerSession,
    status: u16,
    value: &serde_json::Value,
    extras: Extras<'_>,
) -> Result<()> {
    let body = Bytes::from(value.to_string());
    let mut resp = head(status, "application/json", &body)?;
    add_extras(&mut resp, extras)?;
    send(session, resp, body).await
}

/// Writes a `302 Found` to `location` with `Set-Cookie` values.
pub async fn redirect(
    session: &mut ServerSession,
    location: &str,
    cookies: &[String],
) -> Result<()> {
    let mut resp = ResponseHeader::build(302, Some(4 + cookies.len()))?;
    resp.insert_header("location", location)?;
    resp.insert_header("content-length", "0")?;
    resp.insert_header("cache-control", "no-store")?;
    add_extras(
        &mut resp,
        Extras {
            cookies,
            cors_origin: None,
        },
    )?;
    send(session, resp, Bytes::new()).await
}

/// Writes a small HTML page: `title`, a `message` and, optionally, a form or link (`extra`, HTML
/// already escaped). Everything in `title` and `message` is escaped here.
pub async fn html(
    session: &mut ServerSession,
    status: u16,
    title: &str,
    message: &str,
    extra: &str,
    cookies: &[String],
) -> Result<()> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title></head>\n<body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem\"><h1>{t}</h1><p>{m}</p>{extra}</body></html>\n",
        t = escape_html(title),
        m = escape_html(message),
    );
    let body = Bytes::from(page);
    let mut resp = head(status, "text/html; charset=utf-8", &body)?;
    resp.insert_header("x-frame-options", "DENY")?;
    resp.insert_header(
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    )?;
    add_extras(
        &mut resp,
        Extras {
            cookies,
            cors_origin: None,
        },
    )?;
    send(session, resp, body).await
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The JSON error for a status the proxy chose after an upstream or protocol failure.
pub fn failure_body(status: u16) -> (&'static str, &'static str) {
    match status {
        502 => ("bad_gateway", "upstream unavailable"),
        503 => ("service_unavailable", "service unavailable"),
        504 => ("gateway_timeout", "upstream timed out"),
        400 => ("bad_request", "malformed request"),
        408 => ("request_timeout", "the request did not arrive in time"),
        _ => ("internal_error", "internal error"),
    }
}

//! Request smuggling over raw TCP: every framing ambiguity a published desync used, each with a
//! request for `/internal/secret` hidden where one hop might read it as a second request. No route
//! takes `/internal/`, so the gateway itself can only answer it 404: if any backend ever sees that
//! path, it was smuggled past the router. Requests that do reach a backend carry a marker in the
//! raw bytes (`RawBackend`) or the echo's log, which is checked too; no case may end in a 5xx.
//!
//! Outcomes per case (status codes, whether the connection was closed) are printed to stderr.

use std::time::Duration;

use super::{RawBackend, Verdicts, shown};
use crate::support::raw::raw_exchange;
use crate::support::{EchoBackend, Gateway};

/// The hidden request. Its path is under no route.
const SMUGGLED: &str = "GET /internal/secret HTTP/1.1\r\nHost: app.test\r\n\r\n";

/// What the raw backend answers: it refuses everything, including upgrades.
const REFUSE: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";

fn config(echo: &EchoBackend, raw: &RawBackend) -> String {
    format!(
        "upstreams:
  app: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 3s}}
  raw: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 3s}}
routes:
  - name: public
    match: {{path_prefix: /public}}
    upstream: app
    auth: public
  - name: raw
    match: {{path_prefix: /raw}}
    upstream: raw
    auth: public
",
        echo.addr(),
        raw.addr()
    )
}

struct Case {
    name: &'static str,
    source: &'static str,
    bytes: Vec<u8>,
    /// A marker that must not appear in what the raw backend received (besides `/internal/`).
    forbidden_upstream: Option<&'static str>,
}

fn case(name: &'static str, source: &'static str, text: String) -> Case {
    Case {
        name,
        source,
        bytes: text.into_bytes(),
        forbidden_upstream: None,
    }
}

fn cases() -> Vec<Case> {
    let n = SMUGGLED.len();
    let chunk = format!("{n:x}\r\n{SMUGGLED}\r\n0\r\n\r\n");
    let lf_smuggled = SMUGGLED.replace("\r\n", "\n");
    let cr_smuggled = SMUGGLED.replace("\r\n", "\r");
    let ws = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let mut trailer = case(
        "chunked body with a trailer section naming an identity header",
        "RFC 9110 §6.5.1 (trailers are not headers); header smuggling class of oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484",
        format!(
            "POST /raw/trailer HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Forwarded-User\r\n\r\n3\r\nabc\r\n0\r\nX-Forwarded-User: smuggled-trailer-user\r\n\r\n{SMUGGLED}"
        ),
    );
    trailer.forbidden_upstream = Some("smuggled-trailer-user");
    vec![
        case(
            "CL.TE: Content-Length and chunked, request after the last chunk",
            "PortSwigger research 'HTTP Desync Attacks: Request Smuggling Reborn' (Kettle, 2019); RFC 9112 §6.3",
            format!(
                "POST /public/cl-te HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "TE.CL: chunked and a short Content-Length, request inside the chunk",
            "PortSwigger research 'HTTP Desync Attacks: Request Smuggling Reborn' (Kettle, 2019); RFC 9112 §6.3",
            format!(
                "POST /public/te-cl HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunk}"
            ),
        ),
        case(
            "two different Content-Length headers",
            "RFC 9112 §6.3 item 5; PortSwigger research 'HTTP Desync Attacks' (duplicate Content-Length)",
            format!(
                "POST /public/dup-cl HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nContent-Length: {n}\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "Content-Length list with different values",
            "RFC 9110 §8.6 (a list of differing values is invalid)",
            format!(
                "POST /public/cl-list HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0, {n}\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "Content-Length with an inner space (1 2 read as 12)",
            "Node.js CVE-2018-7159 (spaces inside Content-Length ignored)",
            format!(
                "POST /public/cl-space HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0 {n}\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "Content-Length with a sign",
            "RFC 9110 §8.6 (Content-Length = 1*DIGIT)",
            format!(
                "POST /public/cl-sign HTTP/1.1\r\nHost: app.test\r\nContent-Length: +{n}\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "obs-fold continuing a header into Transfer-Encoding",
            "Node.js CVE-2022-32215 (multi-line Transfer-Encoding)",
            format!(
                "POST /public/fold HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "obs-fold Transfer-Encoding value",
            "Node.js CVE-2022-32215 (multi-line Transfer-Encoding)",
            format!(
                "POST /public/fold2 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "bare LF line endings, smuggled request as the framed body",
            "Node.js CVE-2022-32214 (CRLF not required as delimiter)",
            format!(
                "POST /public/lf HTTP/1.1\nHost: app.test\nContent-Length: {}\n\n{lf_smuggled}",
                lf_smuggled.len()
            ),
        ),
        case(
            "bare LF before Transfer-Encoding inside a CRLF request",
            "Node.js CVE-2022-32214 (CRLF not required as delimiter)",
            format!(
                "POST /public/lf-te HTTP/1.1\r\nHost: app.test\r\nX-Pad: x\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "bare CR as a header delimiter",
            "Node.js CVE-2023-30589 (CR without LF delimits header fields)",
            format!(
                "POST /public/cr HTTP/1.1\r\nHost: app.test\r\nX-Pad: a\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "bare CR line endings in the smuggled body",
            "Node.js CVE-2023-30589 (CR without LF delimits header fields)",
            format!(
                "POST /public/cr-body HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n{cr_smuggled}",
                cr_smuggled.len()
            ),
        ),
        case(
            "Transfer-Encoding on an HTTP/1.0 request",
            "pingora CVE-2026-2835 (HTTP/1.0 bodies and ambiguous Transfer-Encoding)",
            format!(
                "POST /public/te-10 HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "HTTP/1.0 request with Content-Length and keep-alive",
            "pingora CVE-2026-2835 (HTTP/1.0 request bodies)",
            format!(
                "POST /public/cl-10 HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\nContent-Length: {n}\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "Transfer-Encoding whose last coding is not chunked",
            "Node.js CVE-2022-32213 (Transfer-Encoding not validated); RFC 9112 §6.3 item 4",
            format!(
                "POST /public/te-identity HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "Transfer-Encoding with another coding before chunked",
            "Node.js CVE-2022-32213 (Transfer-Encoding not validated)",
            format!(
                "POST /public/te-gzip HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "Transfer-Encoding: xchunked",
            "PortSwigger research 'HTTP Desync Attacks' (TE obfuscation); RFC 9112 §6.1",
            format!(
                "POST /public/te-x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "two Transfer-Encoding headers, chunked and identity",
            "Gunicorn CVE-2024-1135 (conflicting Transfer-Encoding headers)",
            format!(
                "POST /public/te-two HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "Transfer-Encoding with a vertical tab before chunked",
            "PortSwigger research 'HTTP Desync Attacks' (whitespace obfuscation of TE)",
            format!(
                "POST /public/te-vt HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "whitespace before the colon of Transfer-Encoding",
            "Netty CVE-2019-16869 ('Transfer-Encoding : chunked')",
            format!(
                "POST /public/te-space HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "chunk size overflowing 64 bits",
            "nginx CVE-2013-2028 (chunked size overflow)",
            format!(
                "POST /public/chunk-overflow HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nabcde\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "chunk size with a 0x prefix",
            "PortSwigger research 'HTTP Desync Attacks'; RFC 9112 §7.1 (chunk-size = 1*HEXDIG)",
            format!(
                "POST /public/chunk-0x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "GET with a body holding a request (CL.0)",
            "PortSwigger research 'Browser-Powered Desync Attacks' (Kettle, 2022): CL.0",
            format!(
                "GET /public/cl0 HTTP/1.1\r\nHost: app.test\r\nContent-Length: {n}\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "pipelined second request (must be routed by the gateway, not passed through)",
            "RFC 9112 §9.3.2 (pipelining); baseline for the desync cases",
            format!("GET /public/first HTTP/1.1\r\nHost: app.test\r\n\r\n{SMUGGLED}"),
        ),
        case(
            "WebSocket upgrade the backend refuses, request right behind it",
            "pingora CVE-2026-2833 (bytes after an Upgrade request passed through before the backend accepted)",
            format!("GET /raw/ws HTTP/1.1\r\nHost: app.test\r\n{ws}\r\n{SMUGGLED}"),
        ),
        case(
            "h2c upgrade with a request right behind it",
            "Bishop Fox research 'h2c Smuggling: Request Smuggling Via HTTP/2 Cleartext' (2020)",
            format!(
                "GET /raw/h2c HTTP/1.1\r\nHost: app.test\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "CL.TE towards the raw backend: what goes over the wire",
            "PortSwigger research 'HTTP Desync Attacks: Request Smuggling Reborn' (Kettle, 2019)",
            format!(
                "POST /raw/cl-te HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        trailer,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_framing_ambiguity_smuggles_a_request_past_the_router() {
    let echo = EchoBackend::start("app").await;
    let raw = RawBackend::start(REFUSE).await;
    let gateway = Gateway::start(&config(&echo, &raw)).await;
    let mut verdicts = Verdicts::new("smuggling");
    for case in cases() {
        let echo_before = echo.seen().len();
        let raw_before = raw.received().len();
        // Long enough for a smuggled request to be proxied right after the first one.
        let exchange = raw_exchange(gateway.addr(), &case.bytes, Duration::from_millis(1200)).await;
        // The raw backend answers after a 150 ms pause: let it log what it got.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let echoed = echo.seen().split_off(echo_before);
        let upstream = raw.received().split_off(raw_before);
        let statuses: Vec<u16> = exchange.responses.iter().map(|r| r.status).collect();
        eprintln!(
            "smuggling: {:<75} -> statuses {statuses:?}, closed {}, echo saw {:?}, raw saw {:?}",
            case.name,
            exchange.closed,
            echoed.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            upstream
        );
        let mut problems = Vec::new();
        if let Some(s) = echoed.iter().find(|s| s.path.contains("/internal")) {
            problems.push(format!(
                "the echo backend saw the smuggled request {}",
                s.path
            ));
        }
        if upstream.contains("/internal") {
            problems.push(format!(
                "the raw backend received the smuggled request: {}",
                shown(&upstream)
            ));
        }
        if let Some(marker) = case.forbidden_upstream
            && (upstream.contains(marker)
                || echoed
                    .iter()
                    .any(|s| s.headers.iter().any(|(_, v)| v.contains(marker))))
        {
            problems.push(format!(
                "{marker:?} reached a backend: {}",
                shown(&upstream)
            ));
        }
        if statuses.iter().any(|s| *s >= 500) {
            problems.push(format!("a 5xx answer: {statuses:?}"));
        }
        let verdict = if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}\n    sent {}\n    got {}",
                problems.join("; "),
                shown(&String::from_utf8_lossy(&case.bytes)),
                shown(&String::from_utf8_lossy(&exchange.raw))
            ))
        };
        verdicts.record(case.name, case.source, verdict);
    }
    verdicts.finish();
}

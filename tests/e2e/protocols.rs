//! Protocols: WebSocket through the gateway, HTTP/2 with prior knowledge, and HTTP/1.1 request
//! smuggling regressions written as raw bytes.
//!
//! What pingora 0.9.1 does with the smuggling cases (read from its source, `pingora-core`
//! `protocols/http/v1/server.rs` and `common.rs`, and asserted below):
//! - `Content-Length` and `Transfer-Encoding: chunked` together: the request is framed by the
//!   chunked encoding, `Content-Length` is removed before proxying and keep-alive is disabled, so
//!   bytes after the last chunk are never read as a next request.
//! - two different `Content-Length` values (two lines or a comma list): 400, connection closed.
//! - obs-fold (a header line starting with a space): httparse refuses it in requests: 400.
//! - bare LF line endings: accepted (RFC 9112 §2.2 allows it) and parsed with the same framing
//!   the gateway re-serialises upstream with CRLF, so the backend and the gateway agree.
//! - two `Host` headers, whitespace before a header's colon, `Transfer-Encoding` on HTTP/1.0, a
//!   `Transfer-Encoding` whose last coding is not `chunked`, a signed `Content-Length`: 400.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::echo::Echoed;
use crate::support::raw::raw_exchange;
use crate::support::{EchoBackend, Gateway, RawExchange, Seen};

fn config(backend: &EchoBackend) -> String {
    format!(
        "upstreams:
  app: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}
routes:
  - name: h2-host
    match: {{host: h2.test}}
    upstream: app
    auth: public
  - name: all
    upstream: app
    auth: public
",
        backend.addr()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_gateway() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&config(&backend)).await;

    let mut request = format!("ws://{}/ws?room=1", gateway.addr())
        .into_client_request()
        .expect("a ws:// URL is a valid client request");
    request.headers_mut().insert(
        "x-forwarded-user",
        "evil".parse().expect("a valid header value"),
    );
    let (mut ws, response) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("the WebSocket handshake must finish within 10s")
    .expect("the WebSocket handshake through the gateway must succeed");
    assert_eq!(response.status(), 101, "handshake status");

    for message in [
        Message::text("hello through the gateway"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text("second"),
    ] {
        ws.send(message.clone())
            .await
            .expect("sending a WebSocket message");
        let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the echo must arrive within 10s")
            .expect("the stream must not end")
            .expect("reading the echo");
        assert_eq!(echoed, message, "WebSocket echo");
    }
    ws.close(None).await.expect("closing the WebSocket");

    let seen = backend.seen();
    let handshake = seen
        .iter()
        .find(|s| s.path.starts_with("/ws"))
        .expect("the backend saw the handshake");
    assert_eq!(handshake.path, "/ws?room=1", "handshake path");
    assert_eq!(
        handshake
            .values("upgrade")
            .iter()
            .map(|v| v.to_ascii_lowercase())
            .collect::<Vec<_>>(),
        vec!["websocket".to_string()],
        "Upgrade is kept for a WebSocket"
    );
    assert!(
        handshake.values("x-forwarded-user").is_empty(),
        "identity header reached the backend on a WebSocket handshake: {:?}",
        handshake.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&config(&backend)).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .http2_prior_knowledge()
        .resolve("h2.test", gateway.addr())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("building an h2c client");

    // By `:authority`, to the host route; and by IP to the catch-all.
    let port = gateway.addr().port();
    for (url, case) in [
        (format!("http://h2.test:{port}/h2/x?q=1"), "h2 by authority"),
        (format!("http://{}/h2/y", gateway.addr()), "h2 by IP"),
    ] {
        let response = client
            .get(&url)
            .header("x-forwarded-user", "evil")
            .header("x-portcullis-anything", "evil")
            .header("x-forwarded-for", "203.0.113.7")
            .header("cookie", "a=1; portcullis_session=secret")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: h2c request failed: {e}"));
        assert_eq!(response.status(), 200, "{case}: status");
        assert_eq!(
            response.version(),
            reqwest::Version::HTTP_2,
            "{case}: response version"
        );
        let body = response.bytes().await.expect("reading the body");
        let echoed = Echoed::parse(&body, case);
        let path = url
            .split_once(&format!("{port}"))
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        assert_eq!(echoed.path, path, "{case}: backend path");
        for name in ["x-forwarded-user", "x-portcullis-anything"] {
            assert!(
                echoed.spellings_of(name).is_empty(),
                "{case}: backend saw {name}: {:?}",
                echoed.headers
            );
        }
        assert_eq!(
            echoed.values("x-forwarded-for"),
            vec!["127.0.0.1".to_string()],
            "{case}: X-Forwarded-For"
        );
        assert_eq!(
            echoed.values("cookie"),
            vec!["a=1".to_string()],
            "{case}: Cookie"
        );
    }
    let authority_host = backend
        .seen()
        .iter()
        .find(|s| s.path.starts_with("/h2/x"))
        .map(|s| s.values("x-forwarded-host"))
        .expect("the backend saw the :authority request");
    assert_eq!(
        authority_host,
        vec![format!("h2.test:{port}")],
        "X-Forwarded-Host from :authority"
    );
}

/// What a smuggling case may end as. Every case also requires that the backend never sees
/// `/smuggled`.
#[derive(Debug, Clone, Copy)]
enum Safe {
    /// 400, no backend request, connection closed.
    Rejected,
    /// Either rejected, or exactly one response (2xx) for exactly one backend request to `path`
    /// with the given body length and no `Content-Length` + `Transfer-Encoding` pair, after which
    /// the gateway closes the connection.
    ForwardedOnceThenClosed { path: &'static str, body_len: usize },
    /// Either rejected, or exactly one backend request to `path` with `body_len` body bytes.
    ForwardedOnce { path: &'static str, body_len: usize },
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";

fn smuggling_cases() -> Vec<(&'static str, Vec<u8>, Safe)> {
    let chunk = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let lf_smuggled = "GET /smuggled HTTP/1.1\nHost: app.test\n\n";
    vec![
        (
            "CL.TE: Content-Length and chunked, smuggled after the last chunk",
            format!(
                "POST /cl-te HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            )
            .into_bytes(),
            Safe::ForwardedOnceThenClosed {
                path: "/cl-te",
                body_len: 0,
            },
        ),
        (
            "TE.CL: chunked and a short Content-Length, smuggled inside the chunk",
            format!(
                "POST /te-cl HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunk}"
            )
            .into_bytes(),
            Safe::ForwardedOnceThenClosed {
                path: "/te-cl",
                body_len: SMUGGLED.len(),
            },
        ),
        (
            "two different Content-Length headers",
            format!(
                "POST /dup-cl HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            )
            .into_bytes(),
            Safe::Rejected,
        ),
        (
            "Content-Length list with different values",
            format!(
                "POST /cl-list HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0, {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            )
            .into_bytes(),
            Safe::Rejected,
        ),
        (
            "obs-fold hiding Transfer-Encoding",
            format!(
                "POST /fold HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            )
            .into_bytes(),
            Safe::Rejected,
        ),
        (
            "obs-fold on a plain header",
            b"GET /fold2 HTTP/1.1\r\nHost: app.test\r\nX-Folded: a\r\n b\r\n\r\n".to_vec(),
            Safe::Rejected,
        ),
        (
            "bare LF line endings, smuggled request as the framed body",
            format!(
                "POST /lf HTTP/1.1\nHost: app.test\nContent-Length: {}\n\n{lf_smuggled}",
                lf_smuggled.len()
            )
            .into_bytes(),
            Safe::ForwardedOnce {
                path: "/lf",
                body_len: lf_smuggled.len(),
            },
        ),
        (
            "bare LF before Content-Length inside a CRLF request",
            format!(
                "POST /lf-mixed HTTP/1.1\r\nHost: app.test\r\nX-Pad: x\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            )
            .into_bytes(),
            Safe::ForwardedOnce {
                path: "/lf-mixed",
                body_len: SMUGGLED.len(),
            },
        ),
        (
            "two Host headers",
            b"GET /two-hosts HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n".to_vec(),
            Safe::Rejected,
        ),
        (
            "whitespace before the colon of Transfer-Encoding",
            format!(
                "POST /te-space HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            )
            .into_bytes(),
            Safe::Rejected,
        ),
        (
            "Transfer-Encoding on an HTTP/1.0 request",
            format!(
                "POST /te-10 HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            )
            .into_bytes(),
            Safe::Rejected,
        ),
        (
            "Content-Length with a sign",
            format!(
                "POST /cl-sign HTTP/1.1\r\nHost: app.test\r\nContent-Length: +{}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            )
            .into_bytes(),
            Safe::Rejected,
        ),
        (
            "Transfer-Encoding not ending in chunked",
            format!(
                "POST /te-gzip HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{SMUGGLED}"
            )
            .into_bytes(),
            Safe::Rejected,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_regressions() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&config(&backend)).await;
    let mut failures = Vec::new();
    for (name, bytes, safe) in smuggling_cases() {
        let before = backend.seen().len();
        // Reads until the gateway closes the connection, or 3 s: a smuggled second request
        // would be proxied right after the first, well within that.
        let exchange = raw_exchange(gateway.addr(), &bytes, Duration::from_secs(3)).await;
        let seen = backend.seen().split_off(before);
        if let Err(why) = judge_smuggling(&seen, &exchange, safe) {
            failures.push(format!(
                "case {name:?}: {why}\n  sent {:?}\n  got {:?}\n  backend saw {:?}",
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(&exchange.raw),
                seen.iter()
                    .map(|s| (s.method.clone(), s.path.clone(), s.body_len))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} smuggling case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn judge_smuggling(seen: &[Seen], exchange: &RawExchange, safe: Safe) -> Result<(), String> {
    if seen.iter().any(|s| s.path.contains("smuggled")) {
        return Err("the backend saw the smuggled request".to_string());
    }
    let statuses: Vec<u16> = exchange.responses.iter().map(|r| r.status).collect();
    let rejected = statuses == [400] && seen.is_empty();
    let (path, body_len, must_close) = match safe {
        Safe::Rejected => {
            if !rejected {
                return Err(format!(
                    "want one 400 and no backend request, got responses {statuses:?} and {} backend request(s)",
                    seen.len()
                ));
            }
            if !exchange.closed {
                return Err("the connection stayed open after a 400".to_string());
            }
            return Ok(());
        }
        Safe::ForwardedOnceThenClosed { path, body_len } => (path, body_len, true),
        Safe::ForwardedOnce { path, body_len } => (path, body_len, false),
    };
    if rejected {
        return Ok(());
    }
    if statuses.len() != 1 || !(200..300).contains(&statuses[0]) {
        return Err(format!("want exactly one 2xx (or a 400), got {statuses:?}"));
    }
    if seen.len() != 1 {
        return Err(format!(
            "want exactly one backend request, got {}",
            seen.len()
        ));
    }
    let request = &seen[0];
    if request.path != path || request.body_len != body_len {
        return Err(format!(
            "backend saw {} {} with {} body bytes, want {path} with {body_len}",
            request.method, request.path, request.body_len
        ));
    }
    if !request.values("content-length").is_empty()
        && !request.values("transfer-encoding").is_empty()
    {
        return Err(format!(
            "backend got both Content-Length and Transfer-Encoding: {:?}",
            request.headers
        ));
    }
    if must_close && !exchange.closed {
        return Err("the connection stayed open after an ambiguously framed request".to_string());
    }
    Ok(())
}

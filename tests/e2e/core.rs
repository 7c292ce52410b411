//! What the request loop does itself: pipelined requests, an answer before the request body
//! was read, an upstream closing mid-body, a client closing mid-upload, and which of the
//! gateway's own error answers keep the client connection (and that the next request on a kept
//! one is served).
//!
//! A scripted backend (raw TCP, one behaviour per test) shows what the upstream side saw:
//! connections accepted and request heads read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::raw::raw_exchange;
use crate::support::{EchoBackend, Gateway, closed_addr};

/// What the scripted backend does after reading a request head.
#[derive(Clone, Copy)]
enum Script {
    /// Answers `200` with body `ok` at once, without reading the request body, then keeps
    /// reading (and discarding) whatever comes.
    AnswerEarly,
    /// Announces 100,000 bytes, sends 1,000 and closes.
    CloseMidBody,
    /// Reads the head and the body it announces, then answers `200 ok` (keep-alive).
    Echo,
    /// Answers `100 Continue` to a head with `Expect: 100-continue`, then reads the body and
    /// answers `200 ok`.
    Continue,
    /// Answers HTTP/1.0-style: no length, the body ends when the connection closes.
    CloseDelimited,
}

/// A raw TCP backend that counts the connections and request heads it got.
struct ScriptedBackend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<AtomicUsize>,
    /// Connections closed by the gateway in the middle of a request body (`Echo`).
    aborted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ScriptedBackend {
    async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("bound");
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(AtomicUsize::new(0));
        let aborted = Arc::new(AtomicUsize::new(0));
        let (c, h, a) = (connections.clone(), heads.clone(), aborted.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, script, h.clone(), a.clone()));
            }
        });
        Self {
            addr,
            connections,
            heads,
            aborted,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn heads(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }

    fn aborted(&self) -> usize {
        self.aborted.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads up to the end of a request head; `None` on EOF. Returns the head and whatever of the
/// body came with it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            buf.clear();
            return Some((head, rest));
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn serve(
    mut stream: TcpStream,
    script: Script,
    heads: Arc<AtomicUsize>,
    aborted: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    while let Some((head, mut body)) = read_head(&mut stream, &mut buf).await {
        heads.fetch_add(1, Ordering::SeqCst);
        match script {
            Script::AnswerEarly => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let mut sink = [0u8; 8192];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Script::CloseMidBody => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    .await;
                let _ = stream.write_all(&[b'x'; 1000]).await;
                return;
            }
            Script::CloseDelimited => {
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, world")
                    .await;
                return;
            }
            Script::Continue | Script::Echo => {
                if matches!(script, Script::Continue)
                    && head.to_ascii_lowercase().contains("expect: 100-continue")
                    && stream
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .await
                        .is_err()
                {
                    return;
                }
                let want = content_length(&head);
                let mut chunk = [0u8; 8192];
                while body.len() < want {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            aborted.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                    }
                }
                buf = body.split_off(want);
                if stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn public_to(addr: SocketAddr) -> String {
    format!(
        "upstreams:\n  app: {{targets: [\"{addr}\"], connect_timeout: 1s, read_timeout: 2s}}\nroutes:\n  - {{name: app, upstream: app, auth: public}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&public_to(backend.addr())).await;
    let three = b"GET /one HTTP/1.1\r\nHost: app.test\r\n\r\nGET /two HTTP/1.1\r\nHost: app.test\r\n\r\nPOST /three HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello";
    let exchange = raw_exchange(gateway.addr(), three, Duration::from_secs(3)).await;
    let paths: Vec<String> = exchange
        .responses
        .iter()
        .map(|r| {
            r.json("pipelined")["path"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        paths,
        ["/one", "/two", "/three"],
        "three pipelined requests, three answers in order; raw:\n{}",
        String::from_utf8_lossy(&exchange.raw)
    );
    assert!(
        !exchange.closed,
        "the connection stays open after pipelined requests"
    );
    assert_eq!(backend.count(), 3);
    assert_eq!(backend.seen()[2].body_len, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_request_body_is_passed_on_and_nothing_is_reused() {
    let backend = ScriptedBackend::start(Script::AnswerEarly).await;
    let gateway = Gateway::start(&public_to(backend.addr)).await;
    // Announces 1 MB, sends 10 KB, then waits for the answer.
    let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .expect("writes");
    stream.write_all(&[b'a'; 10_000]).await.expect("writes");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
            if got.ends_with(b"\r\n\r\nok") {
                return;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(answered.is_ok(), "no answer within 5 s; got {text:?}");
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "the early answer: {text:?}"
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "a connection whose request body was not read to its end is not kept: {text:?}"
    );
    // The upstream connection still owes a request body: the next request needs a new one.
    let next = raw_exchange(
        gateway.addr(),
        b"GET /next HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(next.responses.first().map(|r| r.status), Some(200));
    assert_eq!(backend.heads(), 2);
    assert_eq!(
        backend.connections(),
        2,
        "an upstream connection with an unfinished request body was reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_mid_body_cuts_the_client_short_and_is_not_reused() {
    let backend = ScriptedBackend::start(Script::CloseMidBody).await;
    let gateway = Gateway::start(&public_to(backend.addr)).await;
    for i in 0..2 {
        let exchange = raw_exchange(
            gateway.addr(),
            b"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        let raw = String::from_utf8_lossy(&exchange.raw).into_owned();
        assert!(raw.starts_with("HTTP/1.1 200"), "request {i}: {raw:.200}");
        assert!(
            exchange.closed,
            "request {i}: a body cut short upstream must close the client connection"
        );
        assert!(
            exchange.responses.is_empty(),
            "request {i}: the client must not see a complete response"
        );
    }
    assert_eq!(
        backend.connections(),
        2,
        "a broken upstream connection was reused"
    );
    // And the gateway is fine.
    let metrics = gateway.metrics().await;
    assert!(metrics.contains("portcullis_requests_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_closing_mid_upload_leaves_no_upstream_connection_behind() {
    let backend = ScriptedBackend::start(Script::Echo).await;
    let gateway = Gateway::start(&public_to(backend.addr)).await;
    {
        let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
        stream
            .write_all(
                b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000000\r\n\r\n",
            )
            .await
            .expect("writes");
        stream.write_all(&[b'a'; 10_000]).await.expect("writes");
        tokio::time::sleep(Duration::from_millis(300)).await;
    } // Closed mid-upload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let next = raw_exchange(
            gateway.addr(),
            b"POST /next HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            next.responses.first().map(|r| r.status),
            Some(200),
            "{}",
            String::from_utf8_lossy(&next.raw)
        );
    }
    assert_eq!(backend.heads(), 4);
    // The half-sent upload's upstream connection was closed, never handed to a later request
    // (whose head the backend would then read as the rest of the body: no 200 above).
    assert_eq!(backend.aborted(), 1, "upstream connections closed mid-body");
}

/// For each error the gateway answers itself: the answer says whether the connection is kept,
/// and a kept connection serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_keeps_or_closes_the_connection_as_it_says() {
    let backend = EchoBackend::start("app").await;
    let silent = crate::support::SilentBackend::start().await;
    let down = closed_addr();
    let gateway = Gateway::start(&format!(
        "upstreams:
  app: {{targets: [\"{app}\"]}}
  down: {{targets: [\"{down}\"], connect_timeout: 1s}}
  slow: {{targets: [\"{slow}\"], read_timeout: 1s}}
routes:
  - {{name: down, match: {{path: /down}}, upstream: down, auth: public}}
  - {{name: slow, match: {{path: /slow}}, upstream: slow, auth: public}}
  - {{name: app, match: {{host: app.test}}, upstream: app, auth: public}}
",
        app = backend.addr(),
        slow = silent.addr(),
    ))
    .await;
    let cases: &[(&str, &str, u16)] = &[
        (
            "no route",
            "GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n",
            404,
        ),
        (
            "ambiguous path",
            "GET /a/%2e%2e/b HTTP/1.1\r\nHost: app.test\r\n\r\n",
            400,
        ),
        (
            "no endpoint",
            "GET /oauth2/nothing HTTP/1.1\r\nHost: app.test\r\n\r\n",
            404,
        ),
        (
            "endpoint method",
            "DELETE /oauth2/jwks.json HTTP/1.1\r\nHost: app.test\r\n\r\n",
            405,
        ),
        (
            "dead upstream",
            "GET /down HTTP/1.1\r\nHost: app.test\r\n\r\n",
            502,
        ),
        (
            "silent upstream",
            "GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n",
            504,
        ),
        (
            "target too long",
            &format!(
                "GET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n",
                "a".repeat(9000)
            ),
            414,
        ),
        (
            "malformed head",
            "GET / HTTP/1.1\r\nHost: app.test\r\nBad Header: x\r\n\r\n",
            400,
        ),
    ];
    for (what, request, status) in cases {
        let two = format!("{request}GET /after HTTP/1.1\r\nHost: app.test\r\n\r\n");
        let exchange = raw_exchange(gateway.addr(), two.as_bytes(), Duration::from_secs(2)).await;
        let raw = String::from_utf8_lossy(&exchange.raw).into_owned();
        let first = exchange
            .responses
            .first()
            .unwrap_or_else(|| panic!("{what}: no answer; raw:\n{raw}"));
        assert_eq!(first.status, *status, "{what}; raw:\n{raw}");
        let closes = first
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closes {
            assert_eq!(
                exchange.responses.len(),
                1,
                "{what}: answered after `Connection: close`"
            );
            assert!(
                exchange.closed,
                "{what}: `Connection: close` but the connection stayed open"
            );
        } else {
            let statuses: Vec<u16> = exchange.responses.iter().map(|r| r.status).collect();
            assert_eq!(
                statuses,
                [*status, 200],
                "{what}: a kept connection must serve the next request; raw:\n{raw}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_reaches_the_client_before_it_sends_the_body() {
    let backend = ScriptedBackend::start(Script::Continue).await;
    let gateway = Gateway::start(&public_to(backend.addr)).await;
    let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .expect("writes");
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let interim = tokio::time::timeout(Duration::from_millis(900), async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        interim.is_ok() && text.starts_with("HTTP/1.1 100"),
        "the backend's 100 Continue, before the body is sent: {text:?}"
    );
    stream.write_all(b"hello").await.expect("writes the body");
    let (rest, _) = read_response(&mut stream).await;
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest:?}");
    assert!(rest.ends_with("ok"), "{rest:?}");
}

/// Reads one response with a `Content-Length` or a chunked body from `stream`.
async fn read_response(stream: &mut TcpStream) -> (String, bool) {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut closed = false;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let body = &text[end + 4..];
                let done = if text.contains("transfer-encoding: chunked") {
                    body.ends_with("0\r\n\r\n")
                } else {
                    text.lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .is_some_and(|len| body.len() >= len)
                };
                if done {
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    closed = true;
                    return;
                }
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_delimited_answer_reaches_the_client_chunked_on_a_kept_connection() {
    let backend = ScriptedBackend::start(Script::CloseDelimited).await;
    let gateway = Gateway::start(&public_to(backend.addr)).await;
    let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
    for i in 0..2 {
        stream
            .write_all(b"GET /old HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .expect("writes");
        let (text, closed) = read_response(&mut stream).await;
        assert!(text.starts_with("HTTP/1.1 200"), "request {i}: {text:?}");
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains("transfer-encoding: chunked") && lower.contains("hello, world"),
            "request {i}: re-framed chunked: {text:?}"
        );
        assert!(!closed, "request {i}: the client connection stays open");
    }
    assert_eq!(
        backend.connections(),
        2,
        "a close-delimited upstream connection is never reused"
    );
}

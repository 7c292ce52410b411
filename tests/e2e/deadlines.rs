//! Connection deadlines against hostile clients: a silent connection and an idle keep-alive one
//! are closed after `limits.idle_timeout` (so silent sockets cannot hold `max_connections`), a
//! head trickled byte by byte gets 408 after `limits.header_timeout` (slow loris), and an HTTP/2
//! connection without streams is closed like an idle one, and a body trickled slower than
//! `limits.body_timeout` gets 408. Each failed on the pingora-proxy core, which bounded only each
//! single read.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{EchoBackend, Gateway, ServerOptions, metric_sum};

fn gateway_options(extra: &str) -> ServerOptions {
    ServerOptions {
        extra_server: format!("  limits: {{idle_timeout: 1s, header_timeout: 1s{extra}}}\n"),
        ..ServerOptions::default()
    }
}

async fn start(backend: &EchoBackend, extra: &str, h2c: bool) -> Gateway {
    let mut options = gateway_options(extra);
    if h2c {
        options.extra_server.push_str("  h2c: true\n");
    }
    Gateway::start_with(
        options,
        &format!(
            "upstreams:\n  app: {{targets: [\"{}\"]}}\nroutes:\n  - {{name: app, upstream: app, auth: public}}\n",
            backend.addr()
        ),
    )
    .await
}

/// Reads until the gateway closes `stream` or `limit` passes; returns what was read and when
/// the connection ended (`None`: still open at the limit).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => return (got, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let backend = EchoBackend::start("app").await;
    for h2c in [false, true] {
        let gateway = start(&backend, "", h2c).await;
        // A connection that never sends a byte.
        let mut silent = TcpStream::connect(gateway.addr()).await.expect("connects");
        let (got, closed) = read_until_closed(&mut silent, Duration::from_secs(6)).await;
        assert!(got.is_empty(), "h2c {h2c}: a silent connection got {got:?}");
        let closed =
            closed.unwrap_or_else(|| panic!("h2c {h2c}: a silent connection stayed open 6 s"));
        assert!(
            closed >= Duration::from_millis(800),
            "h2c {h2c}: closed too early: {closed:?}"
        );

        // A kept-alive connection after one answer.
        let mut kept = TcpStream::connect(gateway.addr()).await.expect("connects");
        kept.write_all(b"GET /one HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .expect("writes");
        let (got, closed) = read_until_closed(&mut kept, Duration::from_secs(6)).await;
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "h2c {h2c}: {text:.200}");
        assert!(
            closed.is_some(),
            "h2c {h2c}: an idle keep-alive connection stayed open 6 s"
        );
        let metrics = gateway.metrics().await;
        assert!(
            metric_sum(
                &metrics,
                "portcullis_deadline_closes_total",
                &["kind=\"idle\""]
            ) >= 2.0,
            "h2c {h2c}: idle closes are counted:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_cannot_hold_every_connection_slot() {
    let backend = EchoBackend::start("app").await;
    let gateway = start(&backend, ", max_connections: 4", false).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(gateway.addr()).await.expect("connects"));
    }
    // Every slot is taken now; after the idle timeout they are free again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = gateway
        .client()
        .get(gateway.url("/after"))
        .send()
        .await
        .expect("a new client is served once the silent sockets are closed");
    assert_eq!(response.status(), 200);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_byte_by_byte_gets_408_after_the_header_timeout() {
    let backend = EchoBackend::start("app").await;
    let gateway = start(&backend, "", false).await;
    let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
    let head =
        b"GET /slow HTTP/1.1\r\nHost: app.test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    // One byte every 200 ms: each read is quick, the whole head would take 15 s.
    for byte in head.iter() {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut chunk)).await
        {
            answer.extend_from_slice(&chunk[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still reading a trickled head after 5 s"
        );
    }
    let (rest, _) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    answer.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "a slow head: {text:?}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "the connection is closed after a 408: {text:?}"
    );
    assert_eq!(backend.count(), 0, "the backend saw a request");
    let metrics = gateway.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "portcullis_deadline_closes_total",
            &["kind=\"header\""]
        ) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_without_streams_is_closed_after_the_idle_timeout() {
    let backend = EchoBackend::start("app").await;
    let gateway = start(&backend, "", true).await;
    let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
    // The preface and an empty SETTINGS frame, then nothing.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("writes");
    let (got, closed) = read_until_closed(&mut stream, Duration::from_secs(8)).await;
    assert!(!got.is_empty(), "the server's SETTINGS frame");
    assert!(
        closed.is_some(),
        "an HTTP/2 connection without streams stayed open 8 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_past_the_body_timeout_gets_408_and_frees_the_backend_connection() {
    let backend = EchoBackend::start("app").await;
    let gateway = start(&backend, ", body_timeout: 1s", false).await;
    let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n")
        .await
        .expect("writes");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    // One byte every 300 ms: each read is quick (client_body_timeout is 30 s), the body would
    // take 30 s.
    for _ in 0..100 {
        if stream.write_all(b"x").await.is_err() {
            break;
        }
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk)).await
        {
            answer.extend_from_slice(&chunk[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still reading a trickled body after 5 s"
        );
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "a slow body: {text:?}");
    let metrics = gateway.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "portcullis_deadline_closes_total",
            &["kind=\"body\""]
        ) >= 1.0,
        "{metrics}"
    );
    // The next request is served (the trickled one's backend connection was not kept).
    let response = gateway
        .client()
        .get(gateway.url("/after"))
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 200);
}

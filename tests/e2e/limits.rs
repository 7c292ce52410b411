//! `server.limits`: oversized targets, headers and cookies are answered by the gateway (414,
//! 431) without reaching the backend; a client too slow with its body gets 408; connections
//! beyond `max_connections` are closed at once.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{raw_request, request};
use crate::support::{EchoBackend, Gateway, ServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_limits_are_refused_before_the_backend() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start_with(
        ServerOptions {
            extra_server: "  limits: {max_header_bytes: 4096, max_headers: 20, max_uri_bytes: 1024, max_cookie_bytes: 2048, client_body_timeout: 1s, max_connections: 6}\n".into(),
            ..ServerOptions::default()
        },
        &format!(
            "upstreams:\n  app: {{targets: [\"{}\"]}}\nroutes:\n  - {{name: app, upstream: app, auth: public}}\n",
            backend.addr()
        ),
    )
    .await;
    let long_target = format!("/{}", "a".repeat(1_100));
    let big = "b".repeat(4_100);
    let cookie = "c".repeat(2_100);
    let many: Vec<(&str, &str)> = (0..25).map(|_| ("X-Many", "1")).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "long target",
            request("GET", &long_target, Some("app.test"), &[]),
            414,
            "uri_too_long",
        ),
        (
            "many headers",
            request("GET", "/", Some("app.test"), &many),
            431,
            "request_header_fields_too_large",
        ),
        (
            "large header",
            request("GET", "/", Some("app.test"), &[("X-Big", &big)]),
            431,
            "request_header_fields_too_large",
        ),
        (
            "large cookie",
            request("GET", "/", Some("app.test"), &[("Cookie", &cookie)]),
            431,
            "request_header_fields_too_large",
        ),
    ];
    for (case, raw, status, code) in cases {
        let r = raw_request(gateway.addr(), &raw).await;
        assert_eq!(r.status, status, "{case}: {}", r.text());
        assert_eq!(r.json(case)["error"], code, "{case}");
    }
    assert_eq!(
        backend.count(),
        0,
        "nothing over a limit reached the backend"
    );
    let ok = raw_request(
        gateway.addr(),
        &request("GET", "/fine", Some("app.test"), &[("X-A", "1")]),
    )
    .await;
    assert_eq!(ok.status, 200);
    // Exactly at max_headers (Host and 19 more): the request id the gateway adds for the
    // upstream does not count against what the client sent.
    let at_limit: Vec<(&str, &str)> = (0..19).map(|_| ("X-Many", "1")).collect();
    let ok = raw_request(
        gateway.addr(),
        &request("GET", "/fine", Some("app.test"), &at_limit),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let metrics = gateway.metrics().await;
    for reason in [
        "uri_too_long",
        "too_many_headers",
        "headers_too_large",
        "cookies_too_large",
    ] {
        assert!(
            metrics.contains(&format!("reason=\"{reason}\"")),
            "{reason}: {metrics}"
        );
    }

    // A body that stalls: 408 after client_body_timeout, not a hang.
    let mut slow = TcpStream::connect(gateway.addr()).await.expect("connects");
    slow.write_all(
        b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\nonly-a-little",
    )
    .await
    .expect("writes");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Connections beyond max_connections are closed at once; those already open go on.
    let mut open = Vec::new();
    for _ in 0..6 {
        open.push(TcpStream::connect(gateway.addr()).await.expect("connects"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect(gateway.addr())
        .await
        .expect("accepted by the kernel");
    let _ = extra
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed without an answer: {buf:?}"
    );
    assert!(
        gateway
            .metrics()
            .await
            .contains("portcullis_connections_refused_total 1")
            || gateway
                .metrics()
                .await
                .contains("portcullis_connections_refused_total 2")
    );
    drop(open);
}

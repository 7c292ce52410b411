//! Fault injection: a provider that goes away mid sign-in, a key set that hangs or answers
//! garbage, a Redis that stops answering (a black hole on its port), an upstream that resets
//! mid-body. Every case ends with a precise answer within its timeout, never a hang, a panic or a
//! request let through.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::session::{APP_ROUTE, FETCH, Jar, NAVIGATION, Stack};
use crate::support::idp::IdpOptions;
use crate::support::raw::{raw_request, request};
use crate::support::redis::RedisServer;
use crate::support::{EchoBackend, Gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_going_away_mid_sign_in_gets_a_clear_page() {
    let mut stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let mut jar = Jar::default();
    let start = stack.get(&mut jar, "/x", NAVIGATION).await;
    let back = stack
        .idp
        .sign_in(start.header("location").expect("Location"), "alice")
        .await;
    stack.idp.stop();
    let started = Instant::now();
    let r = stack.get(&mut jar, &back, NAVIGATION).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("cannot be reached"), "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the provider client's timeout: {:?}",
        started.elapsed()
    );
    assert!(jar.get("__Host-portcullis").is_none());
    assert_eq!(stack.backend.count(), 0);
}

/// A provider whose discovery works and whose key set hangs (`slow`) or is garbage.
async fn bad_provider(slow: bool) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let doc =
        serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}).to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let doc = doc.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = if head.starts_with("GET /.well-known/openid-configuration") {
                    doc
                } else if slow {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                } else {
                    "{\"keys\": \"garbage\"".to_string()
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (issuer, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_garbage_key_set_means_503_not_a_hang() {
    let backend = EchoBackend::start("api").await;
    for slow in [true, false] {
        let (issuer, task) = bad_provider(slow).await;
        let gateway = Gateway::spawn(&format!(
            "upstreams:\n  api: {{targets: [\"{}\"]}}\nproviders:\n  bad:\n    issuer: \"{issuer}\"\n    audiences: [api]\nroutes:\n  - {{name: api, upstream: api, auth: bearer, provider: bad}}\n",
            backend.addr()
        ));
        // Wait for the listener (the gateway is not ready: it has no keys).
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(gateway.addr())
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the gateway did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let token = crate::bearer::mint("rsa-1", &crate::bearer::claims(&issuer, "alice"));
        let auth = format!("Bearer {token}");
        let started = Instant::now();
        let r = raw_request(
            gateway.addr(),
            &request("GET", "/x", Some("app.test"), &[("Authorization", &auth)]),
        )
        .await;
        assert_eq!(r.status, 503, "slow={slow}: {}", r.text());
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "slow={slow}: {:?}",
            started.elapsed()
        );
        let ready = reqwest::get(gateway.admin_url("/readyz"))
            .await
            .expect("admin");
        assert_eq!(ready.status(), 503);
        task.abort();
    }
    assert_eq!(backend.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_means_503_within_the_timeout() {
    let mut redis = RedisServer::start().await;
    let sessions = format!(
        "  store: redis\n  redis:\n    url: \"{}\"\n    timeout: 300ms\n",
        redis.url()
    );
    let stack = Stack::start(IdpOptions::default(), &sessions, APP_ROUTE).await;
    let (mut jar, _) = stack.sign_in("alice", "/").await;
    assert_eq!(stack.get(&mut jar, "/", FETCH).await.status, 200);
    // A black hole where Redis was: connections are accepted, nothing is ever answered.
    let port = redis.port();
    redis.stop();
    let hole = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the port is free again");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            open.push(s);
        }
    });
    for _ in 0..3 {
        let started = Instant::now();
        let r = stack.get(&mut jar, "/", FETCH).await;
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "bounded by the store's timeout: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        stack.backend.count(),
        1,
        "only the request before the fault"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_resetting_mid_body_does_not_take_the_gateway_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nonly part of it")
                .await;
            let _ = s.shutdown().await;
        }
    });
    let healthy = EchoBackend::start("healthy").await;
    let gateway = Gateway::start(&format!(
        "upstreams:\n  broken: {{targets: [\"{addr}\"]}}\n  healthy: {{targets: [\"{}\"]}}\nroutes:\n  - {{name: broken, match: {{path_prefix: /broken}}, upstream: broken, auth: public}}\n  - {{name: healthy, upstream: healthy, auth: public}}\n",
        healthy.addr()
    ))
    .await;
    for _ in 0..5 {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            reqwest::get(gateway.url("/broken")),
        )
        .await
        .expect("no hang");
        if let Ok(r) = r {
            // The head arrived; the body cannot be complete.
            let body = tokio::time::timeout(Duration::from_secs(10), r.bytes())
                .await
                .expect("no hang");
            assert!(body.is_err() || body.is_ok_and(|b| b.len() < 100_000));
        }
        let ok = reqwest::get(gateway.url("/fine"))
            .await
            .expect("the gateway still serves");
        assert_eq!(ok.status(), 200);
    }
    task.abort();
}

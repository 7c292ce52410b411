//! One process per address: a second instance on an address the first serves (public, admin or
//! TLS listener) exits at once with `address in use: ADDR`, and the first keeps answering every
//! request with its own config. Regression tests for a start that used to share the shards'
//! SO_REUSEPORT sockets with the running instance (half its requests answered by the other
//! config) and to retry a busy admin address forever.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::certs::TestCa;
use crate::support::echo::Echoed;
use crate::support::{EchoBackend, Gateway, ServerOptions, free_port};

/// How long a refused start may take.
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

fn public_to(backend: &EchoBackend) -> String {
    format!(
        "upstreams:\n  app: {{targets: [\"{}\"]}}\nroutes:\n  - {{name: app, upstream: app, auth: public}}\n",
        backend.addr()
    )
}

/// The second instance exits with status 1 within [`REFUSED_WITHIN`], naming `addr`.
async fn assert_refused(second: &mut Gateway, addr: SocketAddr) {
    let status = second
        .exited_within(REFUSED_WITHIN)
        .await
        .unwrap_or_else(|| {
            panic!(
                "a second instance on {addr} was still running after {REFUSED_WITHIN:?}; stderr:\n{}",
                second.stderr()
            )
        });
    assert_eq!(
        status.code(),
        Some(1),
        "exit status; stderr:\n{}",
        second.stderr()
    );
    let needle = format!("address in use: {addr}");
    assert!(
        second.stderr().contains(&needle),
        "stderr should say {needle:?}:\n{}",
        second.stderr()
    );
}

/// `n` requests, each on a new connection, to `url` through `client`: every one is answered by
/// backend `name`.
async fn assert_all_answered_by(client: &reqwest::Client, url: &str, name: &str, n: usize) {
    for i in 0..n {
        let response = client
            .get(url)
            .header("connection", "close")
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} to {url} failed: {e}"));
        assert_eq!(response.status(), 200, "request {i} to {url}");
        let body = response.bytes().await.expect("a body");
        let echoed = Echoed::parse(&body, url);
        assert_eq!(
            echoed.backend, name,
            "request {i} to {url} was answered by the other config"
        );
    }
}

fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_public_address_exits_and_the_first_keeps_serving() {
    let first_app = EchoBackend::start("first").await;
    let second_app = EchoBackend::start("second").await;
    let first = Gateway::start(&public_to(&first_app)).await;
    let client = fresh_connections();
    assert_all_answered_by(&client, &first.url("/"), "first", 5).await;

    let mut second = Gateway::spawn_with(
        ServerOptions {
            listen: Some(first.addr()),
            ..ServerOptions::default()
        },
        &public_to(&second_app),
    );
    assert_refused(&mut second, first.addr()).await;
    assert_all_answered_by(&client, &first.url("/"), "first", 40).await;
    assert_eq!(
        second_app.count(),
        0,
        "the second config's backend saw requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_admin_address_exits_at_once() {
    let first_app = EchoBackend::start("first").await;
    let first = Gateway::start(&public_to(&first_app)).await;
    let mut second = Gateway::spawn_with(
        ServerOptions {
            admin: Some(first.admin_addr()),
            ..ServerOptions::default()
        },
        &public_to(&first_app),
    );
    assert_refused(&mut second, first.admin_addr()).await;
    let client = fresh_connections();
    for _ in 0..10 {
        let ready = client
            .get(first.admin_url("/readyz"))
            .send()
            .await
            .expect("the first instance's admin listener answers");
        assert_eq!(ready.status(), 200);
    }
    assert_all_answered_by(&client, &first.url("/"), "first", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_tls_listener_exits_and_the_first_keeps_serving() {
    let ca = TestCa::new("portcullis-instances-ca");
    let leaf = ca.issue("app", &["app.test"], 1, false);
    let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listener = format!(
        "    - {{address: \"{tls}\", cert: {:?}, key: {:?}}}\n",
        leaf.cert.display().to_string(),
        leaf.key.display().to_string()
    );
    let first_app = EchoBackend::start("first").await;
    let second_app = EchoBackend::start("second").await;
    // Kept running (and answering) for the whole test.
    let _first = Gateway::start_with(
        ServerOptions {
            extra_listeners: listener.clone(),
            ..ServerOptions::default()
        },
        &public_to(&first_app),
    )
    .await;
    let ca_pem = std::fs::read(ca.cert()).expect("the CA");
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).expect("a PEM"))
        .resolve("app.test", tls)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let url = format!("https://app.test:{}/", tls.port());
    assert_all_answered_by(&client, &url, "first", 5).await;

    // Another plain listener and admin address: only the TLS listener is shared.
    let mut second = Gateway::spawn_with(
        ServerOptions {
            extra_listeners: listener,
            ..ServerOptions::default()
        },
        &public_to(&second_app),
    );
    assert_refused(&mut second, tls).await;
    assert_all_answered_by(&client, &url, "first", 40).await;
    assert_eq!(
        second_app.count(),
        0,
        "the second config's backend saw requests"
    );
}

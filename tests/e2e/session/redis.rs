//! The Redis session store with real Redis servers (single, cluster, sentinel) and two gateway
//! instances sharing it: sign in through one, continue through the other; one stops, the other
//! serves; Redis restarts under traffic; refresh once across instances; back-channel logout
//! from the real provider ends the session everywhere.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::{APP_ROUTE, FETCH, Jar, NAVIGATION, config};
use crate::support::echo::Echoed;
use crate::support::idp::{Idp, IdpBrowser, IdpOptions};
use crate::support::raw::{raw_request, request};
use crate::support::redis::{PASSWORD, RedisCluster, RedisSentinel, RedisServer};
use crate::support::{EchoBackend, Gateway, RawResponse, ServerOptions, free_port};

/// A public route and a bearer route beside the session route.
const ROUTES: &str = "  - name: health
    match: {path: /health}
    upstream: app
    auth: public
  - name: api
    match: {path_prefix: /api}
    upstream: app
    auth: bearer
    provider: corp
";

/// Two gateways with the same config in front of one backend, one provider.
struct Pair {
    idp: Idp,
    backend: EchoBackend,
    a: Gateway,
    b: Gateway,
}

impl Pair {
    async fn start(mut options: IdpOptions, sessions_extra: &str, routes: &str) -> Self {
        let a = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let b = SocketAddr::from(([127, 0, 0, 1], free_port()));
        for addr in [a, b] {
            options
                .redirect_uris
                .push(format!("http://{addr}/oauth2/callback"));
            options
                .post_logout_redirect_uris
                .push(format!("http://{addr}/"));
        }
        options.backchannel_logout_uri = Some(format!("http://{a}/oauth2/backchannel_logout"));
        let idp = Idp::start(options).await;
        let backend = EchoBackend::start("app").await;
        let rest = config(idp.issuer(), &backend, 7, sessions_extra, routes);
        let start = |listen| {
            Gateway::start_with(
                ServerOptions {
                    listen: Some(listen),
                    ..ServerOptions::default()
                },
                &rest,
            )
        };
        let (a, b) = (start(a).await, start(b).await);
        Self { idp, backend, a, b }
    }

    /// A request to `gateway` with `jar`'s cookies (Host: the gateway itself).
    async fn get(
        gateway: &Gateway,
        jar: &mut Jar,
        target: &str,
        headers: &[(&str, &str)],
    ) -> RawResponse {
        let path = target
            .strip_prefix(&format!("http://{}", gateway.addr()))
            .unwrap_or(target);
        let cookie = jar.header();
        let mut all = headers.to_vec();
        if !cookie.is_empty() {
            all.push(("Cookie", &cookie));
        }
        let host = gateway.addr().to_string();
        let response = raw_request(gateway.addr(), &request("GET", path, Some(&host), &all)).await;
        jar.update(&response);
        response
    }

    /// Signs alice in through A and checks that B knows her session; her cookies.
    async fn sign_in_on_a_continue_on_b(&self) -> Jar {
        let mut jar = self
            .sign_in(&self.a, &mut IdpBrowser::default(), "alice")
            .await;
        assert_eq!(
            user(&Self::get(&self.b, &mut jar, "/", FETCH).await),
            vec!["alice"]
        );
        jar
    }

    /// Signs `login` in through `gateway`, keeping the provider's session in `browser`.
    async fn sign_in(&self, gateway: &Gateway, browser: &mut IdpBrowser, login: &str) -> Jar {
        let mut jar = Jar::default();
        let start = Self::get(gateway, &mut jar, "/", NAVIGATION).await;
        assert_eq!(start.status, 302, "{}", start.text());
        let back = self
            .idp
            .sign_in_with(browser, start.header("location").expect("Location"), login)
            .await;
        let done = Self::get(gateway, &mut jar, &back, NAVIGATION).await;
        assert_eq!(done.status, 302, "{}", done.text());
        jar
    }
}

fn redis_sessions(url: &str, password: bool) -> String {
    let password = if password {
        format!("    password: {PASSWORD}\n")
    } else {
        String::new()
    };
    format!("  store: redis\n  redis:\n    url: \"{url}\"\n{password}    timeout: 300ms\n")
}

fn user(response: &RawResponse) -> Vec<String> {
    assert_eq!(response.status, 200, "{}", response.text());
    Echoed::parse(&response.body, "app").values("x-forwarded-user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_sessions_and_survive_each_other_and_redis() {
    let mut redis = RedisServer::start_with_password().await;
    let routes = format!("{ROUTES}{APP_ROUTE}");
    let mut pair = Pair::start(
        IdpOptions::default(),
        &redis_sessions(&redis.url(), true),
        &routes,
    )
    .await;
    let mut jar = pair
        .sign_in(&pair.a, &mut IdpBrowser::default(), "alice")
        .await;

    // The cookie is a small ticket; Redis holds the session, encrypted.
    let cookie = jar.get("__Host-portcullis").expect("a ticket").to_string();
    assert!(cookie.len() < 200, "{cookie}");
    let keys = redis.keys("portcullis:s:*").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let stored = redis.command(&["GET", &keys[0]]).await.unwrap_or_default();
    assert!(stored.len() > 200);
    for secret in ["alice", "corp.example", "access", "eyJ"] {
        assert!(
            !stored.contains(secret),
            "{secret} is readable in Redis: {stored}"
        );
    }
    let ttl: u64 = redis
        .command(&["TTL", &keys[0]])
        .await
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("a TTL");
    assert!(
        ttl > 0 && ttl <= 3600,
        "the idle timeout bounds the entry: {ttl}"
    );

    // Continue through B.
    assert_eq!(
        user(&Pair::get(&pair.b, &mut jar, "/b", FETCH).await),
        vec!["alice"]
    );
    // A stops; B keeps serving the session.
    pair.a.terminate(Duration::from_secs(5)).await;
    assert_eq!(
        user(&Pair::get(&pair.b, &mut jar, "/b", FETCH).await),
        vec!["alice"]
    );

    // Redis goes away: session routes answer 503 quickly; public and bearer routes do not care.
    redis.stop();
    let started = Instant::now();
    let down = Pair::get(&pair.b, &mut jar, "/b", FETCH).await;
    assert_eq!(down.status, 503, "{}", down.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let nav = Pair::get(&pair.b, &mut jar.clone(), "/b", NAVIGATION).await;
    assert_eq!(nav.status, 503);
    assert!(
        jar.get("__Host-portcullis").is_some(),
        "the ticket is kept for later"
    );
    let public = Pair::get(&pair.b, &mut Jar::default(), "/health", &[]).await;
    assert_eq!(public.status, 200);
    let api = Pair::get(&pair.b, &mut Jar::default(), "/api/x", &[]).await;
    assert_eq!(api.status, 401, "bearer routes answer as usual");
    let ready = reqwest::get(pair.b.admin_url("/readyz"))
        .await
        .expect("admin");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ready_status = ready.status().as_u16();
    while ready_status != 503 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ready_status = reqwest::get(pair.b.admin_url("/readyz"))
            .await
            .expect("admin")
            .status()
            .as_u16();
    }
    assert_eq!(ready_status, 503, "/readyz follows the store");
    let metrics = pair.b.metrics().await;
    assert!(
        metrics.contains("portcullis_session_store_up 0"),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_session_store_errors_total"));

    // Redis comes back (with its data): recovery is automatic.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = Pair::get(&pair.b, &mut jar, "/b", FETCH).await;
        if r.status == 200 {
            assert_eq!(user(&r), vec!["alice"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        pair.b
            .metrics()
            .await
            .contains("portcullis_session_store_up 1")
    );

    // Sign-out through B deletes the session in Redis.
    let mut out = jar.clone();
    let r = pair_post(&pair.b, &mut out, "/oauth2/sign_out").await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert!(redis.keys("portcullis:s:*").await.is_empty());
    let r = Pair::get(&pair.b, &mut jar, "/b", FETCH).await;
    assert_eq!(
        r.status, 401,
        "a copied ticket is worth nothing after sign-out"
    );
    drop(pair.backend);
}

async fn pair_post(gateway: &Gateway, jar: &mut Jar, path: &str) -> RawResponse {
    let cookie = jar.header();
    let host = gateway.addr().to_string();
    let mut raw = request(
        "GET",
        path,
        Some(&host),
        &[
            ("Cookie", &cookie),
            ("Sec-Fetch-Site", "same-origin"),
            ("Content-Length", "0"),
        ],
    );
    raw.splice(..3, *b"POST");
    let response = raw_request(gateway.addr(), &raw).await;
    jar.update(&response);
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_both_instances_and_a_refresh_happens_once() {
    let cluster = RedisCluster::start().await;
    let nodes = cluster
        .urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sessions = format!(
        "  store: redis\n  refresh_before: 4s\n  redis:\n    cluster: {{nodes: [{nodes}]}}\n    timeout: 500ms\n"
    );
    let options = IdpOptions {
        access_token_ttl: Duration::from_secs(6),
        ..IdpOptions::default()
    };
    let routes = format!("{APP_ROUTE}    access_token: X-Access-Token\n");
    let pair = Pair::start(options, &sessions, &routes).await;
    let jar = pair
        .sign_in(&pair.a, &mut IdpBrowser::default(), "alice")
        .await;
    assert_eq!(cluster.keys("portcullis:s:*").await.len(), 1);
    let first = Pair::get(&pair.b, &mut jar.clone(), "/", FETCH).await;
    let old = Echoed::parse(&first.body, "b").values("x-access-token");

    // Due for refresh: 6 requests at once, half through A, half through B.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let requests = (0..6).map(|i| {
        let gateway = if i % 2 == 0 { &pair.a } else { &pair.b };
        let mut jar = jar.clone();
        async move { Pair::get(gateway, &mut jar, "/", FETCH).await }
    });
    let tokens: Vec<Vec<String>> = join_all(requests)
        .await
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text());
            Echoed::parse(&r.body, "concurrent").values("x-access-token")
        })
        .collect();
    let refreshes = pair
        .idp
        .logs()
        .lines()
        .filter(|l| l.contains("POST /token "))
        .count()
        - 1;
    assert_eq!(
        refreshes,
        1,
        "one refresh across both instances:\n{}",
        pair.idp.logs()
    );
    for t in &tokens {
        assert_ne!(*t, old);
        assert_eq!(*t, tokens[0], "every request got the same renewed token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_from_the_provider_ends_the_session_everywhere() {
    let redis = RedisServer::start().await;
    let pair = Pair::start(
        IdpOptions::default(),
        &redis_sessions(&redis.url(), false),
        APP_ROUTE,
    )
    .await;
    let mut provider = IdpBrowser::default();
    let mut jar = pair.sign_in(&pair.b, &mut provider, "alice").await;
    assert_eq!(
        user(&Pair::get(&pair.a, &mut jar, "/", FETCH).await),
        vec!["alice"]
    );
    // Another user's session is not touched.
    let mut bob = pair
        .sign_in(&pair.a, &mut IdpBrowser::default(), "bob")
        .await;

    // alice signs out at the provider itself; it tells gateway A over the back channel.
    pair.idp.end_session(&mut provider, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pair
        .a
        .metrics()
        .await
        .contains(r#"portcullis_backchannel_logouts_total{result="success"} 1"#)
    {
        assert!(
            Instant::now() < deadline,
            "no back-channel logout reached the gateway:\n{}",
            pair.idp.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for gateway in [&pair.a, &pair.b] {
        let r = Pair::get(gateway, &mut jar.clone(), "/", FETCH).await;
        assert_eq!(r.status, 401, "ended on every instance: {}", r.text());
        assert_eq!(
            user(&Pair::get(gateway, &mut bob, "/", FETCH).await),
            vec!["bob"]
        );
    }

    // Forged or replayed-elsewhere logout tokens are refused.
    for token in ["garbage", "a.b.c"] {
        let body = format!("logout_token={token}");
        let mut raw = request(
            "GET",
            "/oauth2/backchannel_logout",
            Some("app.test"),
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Content-Length", &body.len().to_string()),
            ],
        );
        raw.splice(..3, *b"POST");
        raw.extend_from_slice(body.as_bytes());
        let r = raw_request(pair.a.addr(), &raw).await;
        assert_eq!(r.status, 400, "{token}: {}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_finds_the_master() {
    let master = RedisServer::start_with_password().await;
    let sentinel = RedisSentinel::start(master.port(), Some(PASSWORD)).await;
    let sessions = format!(
        "  store: redis\n  redis:\n    sentinel: {{master: mymaster, nodes: [\"{}\"]}}\n    password: {PASSWORD}\n",
        sentinel.url()
    );
    let pair = Pair::start(IdpOptions::default(), &sessions, APP_ROUTE).await;
    pair.sign_in_on_a_continue_on_b().await;
    assert_eq!(master.keys("portcullis:s:*").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_redis_verifies_the_server_certificate() {
    let redis = RedisServer::start_tls().await;
    let ca = redis.ca_file().expect("a CA file");
    let trusted = format!(
        "  store: redis\n  redis:\n    url: \"{}\"\n    ca_file: \"{ca}\"\n",
        redis.url()
    );
    let pair = Pair::start(IdpOptions::default(), &trusted, APP_ROUTE).await;
    let mut jar = pair.sign_in_on_a_continue_on_b().await;
    assert_eq!(redis.keys("portcullis:s:*").await.len(), 1);

    // Without the CA (the system's roots), the server's certificate is not trusted: 503, and
    // /readyz says why.
    let untrusted = format!("  store: redis\n  redis:\n    url: \"{}\"\n", redis.url());
    let idp = &pair.idp;
    let gateway = Gateway::spawn(&config(
        idp.issuer(),
        &pair.backend,
        7,
        &untrusted,
        APP_ROUTE,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = reqwest::get(gateway.admin_url("/readyz")).await {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            if status == 503 && body.contains("Redis") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never reported the store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = Pair::get(&gateway, &mut jar, "/", FETCH).await;
    assert_eq!(r.status, 503, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sign_in_ends_the_session_the_browser_held_before() {
    let redis = RedisServer::start().await;
    let pair = Pair::start(
        IdpOptions::default(),
        &redis_sessions(&redis.url(), false),
        APP_ROUTE,
    )
    .await;
    let first = pair
        .sign_in(&pair.a, &mut IdpBrowser::default(), "alice")
        .await;
    // The same browser signs in again (as another user) while holding the first ticket.
    let mut second_jar = first.clone();
    let begun = Pair::get(&pair.a, &mut second_jar, "/oauth2/start?rd=/", NAVIGATION).await;
    let back = pair
        .idp
        .sign_in(begun.header("location").expect("Location"), "bob")
        .await;
    let done = Pair::get(&pair.a, &mut second_jar, &back, NAVIGATION).await;
    assert_eq!(done.status, 302, "{}", done.text());
    assert_eq!(
        user(&Pair::get(&pair.a, &mut second_jar, "/", FETCH).await),
        vec!["bob"]
    );
    // The first ticket is worth nothing now, and Redis holds one session.
    let old = Pair::get(&pair.b, &mut first.clone(), "/", FETCH).await;
    assert_eq!(old.status, 401, "{}", old.text());
    assert_eq!(redis.keys("portcullis:s:*").await.len(), 1);
}

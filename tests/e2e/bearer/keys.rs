//! The provider's keys over time: rotation picked up on an unknown `kid` without restarting the
//! gateway, cached keys serving while the provider is down, and a gateway started before its
//! provider (not ready, 503) becoming ready once the provider is up.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::idp::{Idp, IdpOptions, READER, READER_SECRET, RESOURCE, jwt_parts, key_file};
use crate::support::{EchoBackend, Gateway, RawResponse, http_client, metric_sum, wait_until};

use super::{API_ROUTE, Stack, assert_allowed, assert_invalid_token, claims, compact, mint};

const UNKNOWN_KEY: &str = "the token's signing key is unknown";

/// `GET url` (an admin `/readyz`): the status, or `None` when the admin listener does not answer.
async fn readyz(client: &reqwest::Client, url: &str) -> Option<u16> {
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_on_its_unknown_kid_without_restarting_the_gateway() {
    let mut stack = Stack::start(IdpOptions::default(), "", API_ROUTE).await;
    let old = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    assert_eq!(jwt_parts(&old).0["kid"], "rsa-1");
    assert_allowed(
        "rsa-1 token before the rotation",
        &stack.get_with("/api/x", &old).await,
    );

    stack.idp.restart_with_keys(key_file("rotated.json")).await;
    let new = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    assert_eq!(
        jwt_parts(&new).0["kid"],
        "rsa-2",
        "the rotated provider signs with rsa-2"
    );

    // The unknown kid triggers a re-fetch, at most once per 5 s: poll until it is accepted; every
    // answer before that must be the unknown-key refusal.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let response = stack.get_with("/api/x", &new).await;
        if response.status == 200 {
            let seen = assert_allowed("rsa-2 token after the rotation", &response);
            assert_eq!(seen.values("x-forwarded-user"), vec![READER]);
            break;
        }
        assert_invalid_token(
            &format!("rsa-2 token after the rotation, attempt {attempts}, before the re-fetch"),
            &response,
            UNKNOWN_KEY,
        );
        assert!(
            Instant::now() < deadline,
            "the rsa-2 token was not accepted within 20 s ({attempts} attempts); gateway stderr:\n{}",
            stack.gateway.stderr()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let metrics = stack.gateway.metrics().await;
    let successes = metric_sum(
        &metrics,
        "portcullis_jwks_refreshes_total",
        &[r#"provider="idp""#, r#"result="success""#],
    );
    assert!(
        successes >= 2.0,
        "at least the first fetch and the re-fetch succeeded: {successes}\n{metrics}"
    );
    assert_eq!(
        super::jwks_state(&metrics),
        Some(2.0),
        "portcullis_jwks_state{{provider=\"idp\"}} is fresh after the re-fetch"
    );

    // rsa-1 is gone from the rotated key set: a new token signed by it (not in any cache) is
    // refused as signed by an unknown key.
    let forged = mint("rsa-1", &claims(stack.idp.issuer(), "rsa-1-after-rotation"));
    assert_invalid_token(
        "a fresh rsa-1 token after rsa-1 left the key set",
        &stack.get_with("/api/x", &forged).await,
        UNKNOWN_KEY,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_provider_down_cached_keys_keep_serving_and_the_state_turns_stale() {
    let mut stack = Stack::start(IdpOptions::default(), "", API_ROUTE).await;
    let token = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    assert_allowed(
        "provider token while the provider is up",
        &stack.get_with("/api/x", &token).await,
    );
    let issuer = stack.idp.issuer().to_string();
    stack.idp.stop();

    let fresh = mint("rsa-1", &claims(&issuer, "minted-while-down"));
    let seen = stack
        .allowed(
            "a new rsa-1 token while the provider is down",
            "/api/x",
            &fresh,
        )
        .await;
    assert_eq!(seen.values("x-forwarded-user"), vec!["minted-while-down"]);
    let client = http_client();
    let ready_url = stack.gateway.admin_url("/readyz");
    assert_eq!(
        readyz(&client, &ready_url).await,
        Some(200),
        "/readyz while the provider is down"
    );

    // A refresh attempt while the provider is down (the background one is due only minutes
    // later; an unknown kid triggers one, at most every 5 s) fails and marks the keys stale. The
    // unknown kid itself is refused as unknown, never as unavailable: keys are there.
    let (key, alg) = super::signing_key("rsa-1");
    let unknown = compact(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "not-published"}),
        &claims(&issuer, "unknown-kid"),
        &key,
        alg,
    );
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        assert_invalid_token(
            "unknown kid while the provider is down",
            &stack.get_with("/api/x", &unknown).await,
            UNKNOWN_KEY,
        );
        let metrics = stack.gateway.metrics().await;
        if super::jwks_state(&metrics) == Some(1.0) {
            let failures = metric_sum(
                &metrics,
                "portcullis_jwks_refreshes_total",
                &[r#"provider="idp""#, r#"result="failure""#],
            );
            assert!(failures >= 1.0, "a failed refresh is counted: {metrics}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "portcullis_jwks_state{{provider=\"idp\"}} did not become 1 (stale) within 25 s:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Stale keys still serve, and the gateway stays ready.
    let again = mint("rsa-1", &claims(&issuer, "minted-while-stale"));
    stack
        .allowed("a new rsa-1 token with stale keys", "/api/x", &again)
        .await;
    assert_allowed(
        "the provider's own token, cached, with stale keys",
        &stack.get_with("/api/x", &token).await,
    );
    assert_eq!(
        readyz(&client, &ready_url).await,
        Some(200),
        "/readyz with stale keys"
    );
}

/// A GET over a fresh raw connection.
async fn raw_get(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    crate::support::raw::raw_request(
        gateway.addr(),
        &crate::support::raw::request("GET", path, Some(super::HOST), headers),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_before_its_provider_is_unready_then_ready() {
    // Learn a port the provider can come back on, then take it down.
    let mut idp = Idp::start(IdpOptions::default()).await;
    let issuer = idp.issuer().to_string();
    idp.stop();

    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::spawn(&super::config(&issuer, &backend, "", API_ROUTE));
    let client = http_client();
    let ready_url = gateway.admin_url("/readyz");
    wait_until(
        "the admin listener to answer",
        Duration::from_secs(20),
        || async { readyz(&client, &ready_url).await.is_some() },
    )
    .await;
    assert_eq!(
        readyz(&client, &ready_url).await,
        Some(503),
        "/readyz without the provider's keys; stderr:\n{}",
        gateway.stderr()
    );
    wait_until(
        "the public listener to accept",
        Duration::from_secs(20),
        || async { tokio::net::TcpStream::connect(gateway.addr()).await.is_ok() },
    )
    .await;

    let token = mint("rsa-1", &claims(&issuer, "early-bird"));
    let auth = format!("Bearer {token}");
    let response = raw_get(&gateway, "/api/x", &[("Authorization", &auth)]).await;
    assert_eq!(
        response.status,
        503,
        "a bearer request before any key was fetched: body {:?}",
        response.text()
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json("503 before any key");
    assert_eq!(
        body["error"], "temporarily_unavailable",
        "JSON error in {body}"
    );
    assert!(body["message"].is_string(), "JSON message in {body}");
    assert_eq!(backend.count(), 0, "nothing reached the backend");

    // The provider comes up on the same issuer: the background retry (every 15 s after a
    // failure) or a request's re-fetch finds the keys.
    idp.restart().await;
    assert_eq!(
        idp.issuer(),
        issuer,
        "the provider is back on the same issuer"
    );
    wait_until(
        "/readyz to turn 200 after the provider started",
        Duration::from_secs(40),
        || async { readyz(&client, &ready_url).await == Some(200) },
    )
    .await;
    let response = raw_get(&gateway, "/api/x", &[("Authorization", &auth)]).await;
    let seen = assert_allowed("the same token once the keys are there", &response);
    assert_eq!(seen.values("x-forwarded-user"), vec!["early-bird"]);
    let provider_token = idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let auth = format!("Bearer {provider_token}");
    assert_allowed(
        "a provider token once the keys are there",
        &raw_get(&gateway, "/api/x", &[("Authorization", &auth)]).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_unknown_kids_costs_the_provider_at_most_one_key_fetch() {
    let stack = Stack::start(IdpOptions::default(), "", API_ROUTE).await;
    let metrics = stack.gateway.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "portcullis_jwks_keys", &[r#"provider="idp""#]),
        3.0,
        "rsa-1, ec-1 and ed-1 are usable\n{metrics}"
    );
    let jwks_fetches = || stack.idp.logs().matches("GET /jwks ").count();
    let before = jwks_fetches();
    let (key, alg) = super::signing_key("rsa-1");
    let started = Instant::now();
    for i in 0..20 {
        let token = compact(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("unknown-{i}")}),
            &claims(stack.idp.issuer(), "prober"),
            &key,
            alg,
        );
        assert_invalid_token(
            &format!("unknown kid #{i}"),
            &stack.get_with("/api/x", &token).await,
            UNKNOWN_KEY,
        );
    }
    let burst = started.elapsed();
    let fetched = jwks_fetches() - before;
    // The re-fetch is rate-limited to one per 5 s: a burst shorter than that fetches once at most.
    if burst < Duration::from_secs(5) {
        assert!(
            fetched <= 1,
            "20 unknown kids within {burst:?} made the gateway fetch the key set {fetched} times; IdP log:\n{}",
            stack.idp.logs()
        );
    } else {
        let allowed = burst.as_secs() / 5 + 1;
        assert!(
            fetched as u64 <= allowed,
            "20 unknown kids within {burst:?} made {fetched} key-set fetches (at most {allowed})"
        );
    }
    assert_eq!(stack.backend.count(), 0, "refusals never reach the backend");
}

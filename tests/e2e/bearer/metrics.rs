//! Metrics of bearer routes: one decision per request, by route, result and reason; the
//! verified-token cache's hits and misses.

use crate::support::idp::{IdpOptions, READER, READER_SECRET, RESOURCE};
use crate::support::{metric_samples, metric_sum};

use super::{API_ROUTE, Stack, assert_allowed, claims, mint, now, with};

const DECISIONS: &str = "portcullis_auth_decisions_total";
const CACHE: &str = "portcullis_token_cache_total";

/// The `reason` label of a series line.
fn reason_of(series: &str) -> String {
    series
        .split("reason=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_counted_with_reasons_and_repeated_tokens_hit_the_cache() {
    let stack = Stack::start(IdpOptions::default(), "", API_ROUTE).await;
    let token = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let route = r#"route="api""#;

    let metrics = stack.gateway.metrics().await;
    let hits_before = metric_sum(&metrics, CACHE, &[r#"result="hit""#]);
    let misses_before = metric_sum(&metrics, CACHE, &[r#"result="miss""#]);

    // Three allowed requests with the same token: one miss, then hits.
    for i in 1..=3 {
        assert_allowed(
            &format!("allowed request {i}"),
            &stack.get_with("/api/x", &token).await,
        );
    }
    // Three denied ones, for two different reasons.
    let now = now();
    let expired = mint(
        "rsa-1",
        &with(
            claims(stack.idp.issuer(), "late"),
            serde_json::json!({"iat": now - 7200, "exp": now - 3600}),
        ),
    );
    for (case, response) in [
        ("no token", stack.get("/api/x", &[]).await),
        ("expired token", stack.get_with("/api/x", &expired).await),
        (
            "expired token again",
            stack.get_with("/api/x", &expired).await,
        ),
    ] {
        assert_eq!(response.status, 401, "{case}: {:?}", response.text());
    }

    let metrics = stack.gateway.metrics().await;
    let allow = metric_samples(&metrics, DECISIONS, &[route, r#"result="allow""#]);
    let deny = metric_samples(&metrics, DECISIONS, &[route, r#"result="deny""#]);
    let allowed: f64 = allow.iter().map(|(_, v)| v).sum();
    let denied: f64 = deny.iter().map(|(_, v)| v).sum();
    assert_eq!(
        allowed, 3.0,
        "allow decisions of route api: {allow:?}\n{metrics}"
    );
    assert_eq!(
        denied, 3.0,
        "deny decisions of route api: {deny:?}\n{metrics}"
    );
    for (series, _) in allow.iter().chain(deny.iter()) {
        assert!(
            !reason_of(series).is_empty(),
            "every decision has a reason: {series}"
        );
    }
    let mut reasons: Vec<String> = deny.iter().map(|(s, _)| reason_of(s)).collect();
    reasons.sort();
    reasons.dedup();
    assert_eq!(
        reasons.len(),
        2,
        "the two deny causes (no token, expired) have their own reasons: {deny:?}"
    );
    let expired_series = deny
        .iter()
        .find(|(_, v)| *v == 2.0)
        .unwrap_or_else(|| panic!("the expired token's reason counts 2: {deny:?}"));
    assert!(
        reason_of(&expired_series.0).contains("expired"),
        "the expired token's reason names it: {expired_series:?}"
    );

    let hits = metric_sum(&metrics, CACHE, &[r#"result="hit""#]) - hits_before;
    let misses = metric_sum(&metrics, CACHE, &[r#"result="miss""#]) - misses_before;
    assert!(
        hits >= 2.0,
        "the 2nd and 3rd use of the token hit the cache: +{hits} hits\n{metrics}"
    );
    assert!(
        misses >= 1.0,
        "the first use missed: +{misses} misses\n{metrics}"
    );

    // More uses of the same token: more hits, no more misses for it.
    for i in 4..=6 {
        assert_allowed(
            &format!("allowed request {i}"),
            &stack.get_with("/api/x", &token).await,
        );
    }
    let metrics = stack.gateway.metrics().await;
    let more_hits = metric_sum(&metrics, CACHE, &[r#"result="hit""#]) - hits_before;
    assert!(
        more_hits >= hits + 3.0,
        "three more hits: {hits} -> {more_hits}\n{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, DECISIONS, &[route, r#"result="allow""#]),
        6.0,
        "six allow decisions\n{metrics}"
    );
}

//! `allow` rules of bearer routes: scopes (403 `insufficient_scope` naming the scope), claims
//! bound to path segments (403 `forbidden`), and a token accepted on one route never opening a
//! stricter one (the verified-token cache is per token, the rules per route).

use crate::support::RawResponse;
use crate::support::idp::{
    IdpOptions, READER, READER_SECRET, RESOURCE, RESOURCE_ES256, WRITER, WRITER_SECRET,
};

use super::{Stack, assert_allowed, assert_invalid_token, assert_refused};

const ROUTES: &str = "  - name: writes
    match: {path_prefix: /write}
    upstream: app
    auth: bearer
    provider: idp
    allow:
      - {scopes: [orders.write]}
  - name: regions
    match: {path_prefix: /api/regions}
    upstream: app
    auth: bearer
    provider: idp
    allow:
      - {path: \"/api/regions/{region}/**\", claims: {region: \"{region}\"}}
  - name: strict
    match: {path_prefix: /strict}
    upstream: app
    auth: bearer
    provider: strict
  - name: api
    match: {path_prefix: /api}
    upstream: app
    auth: bearer
    provider: idp
";

/// A second provider, same issuer, accepting only the ES256 resource's audience. Inserted after
/// `idp`'s settings, at the indentation of a provider name.
fn strict_provider(issuer: &str) -> String {
    format!("  strict:\n    issuer: \"{issuer}\"\n    audiences: [\"{RESOURCE_ES256}\"]\n")
}

async fn stack() -> Stack {
    // The provider's issuer is needed for the second provider's config: start the provider
    // first, then the gateway.
    let idp = crate::support::idp::Idp::start(IdpOptions::default()).await;
    let backend = crate::support::EchoBackend::start("app").await;
    let yaml = super::config(
        idp.issuer(),
        &backend,
        &strict_provider(idp.issuer()),
        ROUTES,
    );
    let gateway = crate::support::Gateway::start(&yaml).await;
    Stack {
        idp,
        backend,
        gateway,
    }
}

fn assert_insufficient_scope(case: &str, response: &RawResponse, scope: &str) {
    let challenge = format!(
        r#"Bearer realm="portcullis", error="insufficient_scope", error_description="the token lacks a required scope", scope="{scope}""#
    );
    assert_eq!(
        response.status,
        403,
        "{case}: status (body {:?})",
        response.text()
    );
    assert_eq!(
        response.header("www-authenticate"),
        Some(challenge.as_str()),
        "{case}: WWW-Authenticate"
    );
    let body = response.json(case);
    assert_eq!(
        body["error"], "insufficient_scope",
        "{case}: JSON error in {body}"
    );
    assert_eq!(
        body["message"], "the token lacks a required scope",
        "{case}: JSON message in {body}"
    );
}

fn assert_forbidden(case: &str, response: &RawResponse) {
    assert_eq!(
        response.status,
        403,
        "{case}: status (body {:?})",
        response.text()
    );
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{case}: content-type"
    );
    let body = response.json(case);
    assert_eq!(body["error"], "forbidden", "{case}: JSON error in {body}");
    assert!(
        body["message"].is_string(),
        "{case}: JSON message in {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_rule_refuses_the_reader_with_insufficient_scope_and_admits_the_writer() {
    let stack = stack().await;
    let reader = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let writer = stack
        .idp
        .client_credentials(
            WRITER,
            WRITER_SECRET,
            "orders.read orders.write",
            Some(RESOURCE),
        )
        .await;

    let before = stack.backend.count();
    let response = stack.get_with("/write/orders", &reader).await;
    assert_insufficient_scope(
        "api-reader on the orders.write route",
        &response,
        "orders.write",
    );
    assert_eq!(
        stack.backend.count(),
        before,
        "a refused request never reaches the backend"
    );

    let seen = stack
        .allowed(
            "api-writer on the orders.write route",
            "/write/orders",
            &writer,
        )
        .await;
    assert_eq!(seen.values("x-forwarded-user"), vec![WRITER]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_bound_to_a_path_segment_admits_only_the_own_region() {
    let stack = stack().await;
    let reader = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let writer = stack
        .idp
        .client_credentials(WRITER, WRITER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    for (who, token, own, other) in [
        ("api-reader (region eu)", &reader, "eu", "us"),
        ("api-writer (region us)", &writer, "us", "eu"),
    ] {
        let case = format!("{who} on /api/regions/{own}/x");
        let seen = stack
            .allowed(&case, &format!("/api/regions/{own}/x"), token)
            .await;
        assert_eq!(seen.path, format!("/api/regions/{own}/x"), "{case}");

        let case = format!("{who} on /api/regions/{other}/x");
        let before = stack.backend.count();
        let response = stack
            .get_with(&format!("/api/regions/{other}/x"), token)
            .await;
        assert_forbidden(&case, &response);
        assert_eq!(stack.backend.count(), before, "{case}: backend not reached");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_accepted_on_one_route_does_not_open_a_stricter_one() {
    let stack = stack().await;
    let reader = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    // Twice each way round: the second time the token comes from the verified-token cache.
    for round in 1..=2 {
        assert_allowed(
            &format!("round {round}: reader token on the open route"),
            &stack.get_with("/api/x", &reader).await,
        );
        let before = stack.backend.count();
        assert_insufficient_scope(
            &format!("round {round}: the same token on the orders.write route"),
            &stack.get_with("/write/x", &reader).await,
            "orders.write",
        );
        assert_invalid_token(
            &format!(
                "round {round}: the same token on a route whose provider wants another audience"
            ),
            &stack.get_with("/strict/x", &reader).await,
            "the token is not meant for this audience",
        );
        assert_forbidden(
            &format!("round {round}: the same token on another region"),
            &stack.get_with("/api/regions/us/x", &reader).await,
        );
        assert_eq!(
            stack.backend.count(),
            before,
            "round {round}: no refused request reached the backend"
        );
    }
    // A token for the strict provider's audience opens its route, and still lacks the scope of
    // the orders.write route.
    let es256 = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE_ES256))
        .await;
    assert_allowed(
        "ES256 token on the strict route",
        &stack.get_with("/strict/x", &es256).await,
    );
    assert_refused(
        "ES256 token on the orders.write route (lacks the scope)",
        &stack.get_with("/write/x", &es256).await,
        403,
        Some(
            r#"Bearer realm="portcullis", error="insufficient_scope", error_description="the token lacks a required scope", scope="orders.write""#,
        ),
        "insufficient_scope",
        "the token lacks a required scope",
    );
}

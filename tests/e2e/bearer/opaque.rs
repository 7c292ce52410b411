//! Opaque tokens, checked by RFC 7662 introspection at the provider as the `gateway` client.
//!
//! What oidc-provider answers for an opaque client_credentials token (checked by hand and by the
//! assertions below): `active`, `client_id`, `scope`, `iss`, `iat`, `exp`, `token_type` and the
//! client's extra claims — and **no `sub`** (a client token has no end user). `aud` is there only
//! when the token was issued for a resource indicator whose format is `opaque`; a token issued
//! without a resource has no `aud`, so the gateway refuses it as not meant for its audience. The
//! provider here gets such a resource (`urn:portcullis:api-opaque`), and the gateway names the
//! user by `client_id` (`user_claim: client_id`).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::idp::{
    GATEWAY, GATEWAY_SECRET, Idp, IdpOptions, READER, READER_SECRET, RESOURCE, RESOURCE_EDDSA,
    RESOURCE_ES256,
};
use crate::support::{EchoBackend, Gateway};

use super::{API_ROUTE, Stack, assert_allowed, assert_invalid_token};

const OPAQUE_RESOURCE: &str = "urn:portcullis:api-opaque";
const INACTIVE: &str = "the token is not active";

async fn stack() -> Stack {
    let idp = Idp::start(IdpOptions {
        resources: Some(json!({
            RESOURCE: {"alg": "RS256"},
            RESOURCE_ES256: {"alg": "ES256"},
            RESOURCE_EDDSA: {"alg": "EdDSA"},
            OPAQUE_RESOURCE: {"format": "opaque"},
        })),
        ..IdpOptions::default()
    })
    .await;
    let backend = EchoBackend::start("app").await;
    let provider_extra = format!(
        "    opaque_tokens: true
    client_id: {GATEWAY}
    client_secret: \"{GATEWAY_SECRET}\"
    introspection_cache: 1s
    user_claim: client_id
"
    );
    let yaml = super::config_with_audiences(
        idp.issuer(),
        &backend,
        &[RESOURCE, OPAQUE_RESOURCE],
        &provider_extra,
        API_ROUTE,
    );
    let gateway = Gateway::start(&yaml).await;
    Stack {
        idp,
        backend,
        gateway,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_opaque_token_passes_until_revoked() {
    let stack = stack().await;
    let token = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(OPAQUE_RESOURCE))
        .await;
    assert!(!token.contains('.'), "an opaque token: {token}");
    let answer = stack.idp.introspect(&token).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(
        answer["aud"], OPAQUE_RESOURCE,
        "introspection names the resource: {answer}"
    );
    assert!(
        answer.get("sub").is_none(),
        "no sub for a client token: {answer}"
    );

    for round in 1..=2 {
        let seen = stack
            .allowed(
                &format!("active opaque token, request {round}"),
                "/api/x",
                &token,
            )
            .await;
        assert_eq!(
            seen.values("x-forwarded-user"),
            vec![READER],
            "user from client_id"
        );
        assert_eq!(
            seen.values("x-forwarded-email"),
            vec!["api-reader@svc.corp.example"]
        );
        assert_eq!(seen.values("x-forwarded-groups"), vec!["orders-readers"]);
        assert_eq!(seen.values("x-region"), vec!["eu"]);
        assert!(
            seen.values_any_spelling("authorization").is_empty(),
            "no Authorization upstream: {:?}",
            seen.headers
        );
    }

    stack.idp.revoke(&token).await;
    let revoked_at = Instant::now();
    let before = stack.backend.count();
    // The answer is cached for introspection_cache (1 s): poll until the revocation shows.
    let deadline = revoked_at + Duration::from_secs(10);
    let response = loop {
        let response = stack.get_with("/api/x", &token).await;
        if response.status != 200 {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked token was still accepted 10 s after revocation (introspection_cache: 1s)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = revoked_at.elapsed();
    assert_invalid_token("the revoked opaque token", &response, INACTIVE);
    assert!(
        took < Duration::from_secs(4),
        "the revocation showed only after {took:?}, with introspection_cache: 1s"
    );
    let after = stack.backend.count();
    // Requests while the cached answer lived reached the backend; the refusal did not.
    assert!(after >= before);
    let response = stack.get_with("/api/x", &token).await;
    assert_invalid_token("the revoked opaque token, again", &response, INACTIVE);
    assert_eq!(
        stack.backend.count(),
        after,
        "refusals never reach the backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_the_provider_does_not_know_or_without_audience_are_refused() {
    let stack = stack().await;
    let before = stack.backend.count();

    let made_up = "q7Yy0cN1bJYx2dQ4r8FzKk3mW5pTtS9vLhGeUaXoBiZ";
    assert_invalid_token(
        "an opaque token the provider never issued",
        &stack.get_with("/api/x", made_up).await,
        INACTIVE,
    );

    // Issued without a resource: introspection has no `aud`.
    let no_resource = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", None)
        .await;
    let answer = stack.idp.introspect(&no_resource).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert!(
        answer.get("aud").is_none(),
        "no aud without a resource: {answer}"
    );
    assert_invalid_token(
        "an active opaque token without aud",
        &stack.get_with("/api/x", &no_resource).await,
        "the token is not meant for this audience",
    );
    assert_eq!(
        stack.backend.count(),
        before,
        "refusals never reach the backend"
    );

    // JWTs still go by signature on a provider that also accepts opaque tokens.
    let jwt = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let seen = assert_allowed(
        "a JWT on the opaque-enabled provider",
        &stack.get_with("/api/x", &jwt).await,
    );
    assert_eq!(seen.values("x-forwarded-user"), vec![READER]);
}

/// An unsecured JWT (`alg: none`, empty signature part) on a provider that also accepts opaque
/// tokens: still a JWT whose algorithm is refused, never a token to introspect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsecured_jwt_is_refused_for_its_algorithm_even_where_opaque_tokens_are_accepted() {
    let stack = stack().await;
    let issuer = stack.idp.issuer().to_string();
    let introspections = || {
        stack
            .idp
            .logs()
            .matches("POST /token/introspection")
            .count()
    };
    let before = introspections();
    for (case, token) in [
        (
            "alg none, empty signature",
            format!(
                "{}.",
                super::signing_input(&json!({"alg": "none"}), &super::claims(&issuer, "nobody"))
            ),
        ),
        (
            "alg none, a signature",
            format!(
                "{}.{}",
                super::signing_input(&json!({"alg": "none"}), &super::claims(&issuer, "nobody")),
                super::b64(b"not a signature")
            ),
        ),
    ] {
        let response = stack.get_with("/api/x", &token).await;
        assert_invalid_token(
            &format!(
                "{case} on an opaque-enabled provider (introspection calls so far: {})",
                introspections() - before
            ),
            &response,
            "the token's signature algorithm is not accepted",
        );
    }
    assert_eq!(stack.backend.count(), 0, "refusals never reach the backend");
}

//! Valid tokens from the provider (RS256, ES256, EdDSA): the request reaches the backend with the
//! identity headers taken from the claims, without the client's Authorization header, and
//! without anything the client spoofed; `access_token:` routes pass the token on.

use crate::support::idp::{
    IdpOptions, READER, READER_SECRET, RESOURCE, RESOURCE_EDDSA, RESOURCE_ES256, WRITER,
    WRITER_SECRET, jwt_parts,
};

use super::{API_ROUTE, Stack, assert_allowed};

fn routes() -> String {
    format!(
        "{API_ROUTE}  - name: passthrough
    match: {{path_prefix: /passthrough}}
    upstream: app
    auth: bearer
    provider: idp
    access_token: X-Access-Token
  - name: authorization
    match: {{path_prefix: /authorization}}
    upstream: app
    auth: bearer
    provider: idp
    access_token: Authorization
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_of_every_algorithm_reach_the_backend_with_identity_headers() {
    let stack = Stack::start(IdpOptions::default(), "", &routes()).await;
    for (resource, alg) in [
        (RESOURCE, "RS256"),
        (RESOURCE_ES256, "ES256"),
        (RESOURCE_EDDSA, "EdDSA"),
    ] {
        let token = stack
            .idp
            .client_credentials(READER, READER_SECRET, "orders.read", Some(resource))
            .await;
        assert_eq!(
            jwt_parts(&token).0["alg"],
            alg,
            "the provider signs {resource} with {alg}"
        );
        let case = format!("{alg} token for {resource}");
        let before = stack.backend.count();
        let seen = stack.allowed(&case, "/api/orders?page=2", &token).await;
        assert_eq!(
            stack.backend.count(),
            before + 1,
            "{case}: one backend request"
        );
        assert_eq!(
            seen.path, "/api/orders?page=2",
            "{case}: path and query forwarded"
        );
        assert_eq!(
            seen.values("x-forwarded-user"),
            vec![READER],
            "{case}: X-Forwarded-User = sub"
        );
        assert_eq!(
            seen.values("x-forwarded-email"),
            vec!["api-reader@svc.corp.example"],
            "{case}: X-Forwarded-Email"
        );
        assert_eq!(
            seen.values("x-forwarded-groups"),
            vec!["orders-readers"],
            "{case}: X-Forwarded-Groups"
        );
        assert_eq!(
            seen.values("x-region"),
            vec!["eu"],
            "{case}: extra claim X-Region"
        );
        assert!(
            seen.values_any_spelling("authorization").is_empty(),
            "{case}: the client's Authorization header must not reach the backend: {:?}",
            seen.headers
        );
        assert!(
            seen.values_any_spelling("x-access-token").is_empty(),
            "{case}: no access-token header on a route without access_token: {:?}",
            seen.headers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheme_is_case_insensitive_and_groups_are_joined() {
    let stack = Stack::start(IdpOptions::default(), "", &routes()).await;
    let token = stack
        .idp
        .client_credentials(
            WRITER,
            WRITER_SECRET,
            "orders.read orders.write",
            Some(RESOURCE),
        )
        .await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let case = format!("scheme {scheme:?}");
        let auth = format!("{scheme} {token}");
        let response = stack.get("/api/x", &[("Authorization", &auth)]).await;
        let seen = assert_allowed(&case, &response);
        assert_eq!(seen.values("x-forwarded-user"), vec![WRITER], "{case}");
        assert_eq!(seen.values("x-region"), vec!["us"], "{case}");
    }

    // Several groups are joined by ",".
    let minted = super::mint("rsa-1", &super::claims(stack.idp.issuer(), "multi-group"));
    let seen = stack
        .allowed("minted token with two groups", "/api/x", &minted)
        .await;
    assert_eq!(
        seen.values("x-forwarded-groups"),
        vec!["minted,testers"],
        "groups joined by a comma"
    );
    assert_eq!(seen.values("x-forwarded-user"), vec!["multi-group"]);
    assert_eq!(
        seen.values("x-forwarded-email"),
        vec!["multi-group@svc.corp.example"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_routes_pass_the_token_and_spoofed_identity_never_arrives() {
    let stack = Stack::start(IdpOptions::default(), "", &routes()).await;
    let token = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let auth = format!("Bearer {token}");
    let spoofed: &[(&str, &str)] = &[
        ("Authorization", &auth),
        ("X-Forwarded-User", "admin"),
        ("X_Forwarded_User", "admin"),
        ("x-forwarded-email", "admin@corp.example"),
        ("X-Forwarded-Groups", "admins"),
        ("X-Region", "us"),
        ("X-Access-Token", "forged-token"),
    ];

    let case = "route with access_token: X-Access-Token";
    let response = stack.get("/passthrough/x", spoofed).await;
    let seen = assert_allowed(case, &response);
    assert_eq!(
        seen.values_any_spelling("x-access-token"),
        vec![token.clone()],
        "{case}: the raw token, once (the client's X-Access-Token dropped)"
    );
    assert!(
        seen.values_any_spelling("authorization").is_empty(),
        "{case}: no Authorization upstream: {:?}",
        seen.headers
    );
    for (header, want) in [
        ("x-forwarded-user", READER),
        ("x-forwarded-email", "api-reader@svc.corp.example"),
        ("x-forwarded-groups", "orders-readers"),
        ("x-region", "eu"),
    ] {
        assert_eq!(
            seen.values_any_spelling(header),
            vec![want.to_string()],
            "{case}: {header} is the gateway's only (spoofed values stripped): {:?}",
            seen.headers
        );
    }

    let case = "route with access_token: Authorization";
    let response = stack.get("/authorization/x", spoofed).await;
    let seen = assert_allowed(case, &response);
    assert_eq!(
        seen.values_any_spelling("authorization"),
        vec![format!("Bearer {token}")],
        "{case}: Authorization: Bearer <token>"
    );
    assert_eq!(
        seen.values_any_spelling("x-forwarded-user"),
        vec![READER],
        "{case}"
    );

    let case = "plain route";
    let response = stack.get("/api/x", spoofed).await;
    let seen = assert_allowed(case, &response);
    assert_eq!(
        seen.values_any_spelling("x-forwarded-user"),
        vec![READER],
        "{case}"
    );
    assert_eq!(seen.values_any_spelling("x-region"), vec!["eu"], "{case}");
    assert!(
        seen.values_any_spelling("authorization").is_empty(),
        "{case}: no Authorization upstream: {:?}",
        seen.headers
    );
}

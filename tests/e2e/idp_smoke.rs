//! The test OpenID Provider harness itself (`tests/idp`, `support::idp`): discovery, keys, what
//! each kind of token carries, introspection and revocation, sign-in through the provider's own
//! pages, and key rotation by restart. Later suites rely on exactly these facts.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::idp::{
    GATEWAY, Idp, IdpBrowser, IdpOptions, READER, READER_SECRET, RESOURCE, RESOURCE_EDDSA,
    RESOURCE_ES256, WRITER, WRITER_SECRET, code_of, jwt_parts, key_file, query_param,
};

fn kids(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .expect("a JWKS has a keys array")
        .iter()
        .map(|key| {
            key["kid"]
                .as_str()
                .expect("every key has a kid")
                .to_string()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_every_endpoint_on_loopback_http() {
    let idp = Idp::start(IdpOptions::default()).await;
    let issuer = idp.issuer().to_string();
    assert_eq!(issuer, format!("http://127.0.0.1:{}", idp.port()));

    let doc = idp.discovery().await;
    assert_eq!(doc["issuer"], json!(issuer));
    for (key, path) in [
        ("authorization_endpoint", "/auth"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("userinfo_endpoint", "/me"),
        ("introspection_endpoint", "/token/introspection"),
        ("revocation_endpoint", "/token/revocation"),
        ("end_session_endpoint", "/session/end"),
    ] {
        assert_eq!(doc[key], json!(idp.url(path)), "{key} in {doc}");
    }
    assert_eq!(doc["backchannel_logout_supported"], json!(true), "{doc}");
    let grants = strings(&doc["grant_types_supported"]);
    for grant in ["authorization_code", "refresh_token", "client_credentials"] {
        assert!(grants.contains(grant), "{grant} not in {grants:?}");
    }
    let scopes = strings(&doc["scopes_supported"]);
    for scope in ["openid", "email", "profile", "orders.read", "orders.write"] {
        assert!(scopes.contains(scope), "{scope} not in {scopes:?}");
    }
    let claims = strings(&doc["claims_supported"]);
    for claim in ["email", "email_verified", "groups", "department", "region"] {
        assert!(claims.contains(claim), "{claim} not in {claims:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_publishes_the_three_public_keys_only() {
    let idp = Idp::start(IdpOptions::default()).await;
    let jwks = idp.jwks().await;
    assert_eq!(kids(&jwks), set(&["rsa-1", "ec-1", "ed-1"]));
    for key in jwks["keys"].as_array().expect("keys") {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "private {private} in {key}");
        }
        assert_eq!(key["use"], json!("sig"), "{key}");
        let want = match key["kid"].as_str() {
            Some("rsa-1") => json!({"kty": "RSA", "alg": "RS256"}),
            Some("ec-1") => json!({"kty": "EC", "alg": "ES256", "crv": "P-256"}),
            _ => json!({"kty": "OKP", "alg": "EdDSA", "crv": "Ed25519"}),
        };
        for (field, value) in want.as_object().expect("object") {
            assert_eq!(&key[field], value, "{field} of {key}");
        }
    }
    // The RSA key is 2048 bits: 256 bytes of modulus.
    let rsa = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == "rsa-1")
        .expect("rsa-1");
    let n = rsa["n"].as_str().expect("n");
    assert_eq!(n.len(), 342, "2048-bit modulus in base64url: {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_for_the_resource_is_an_rs256_jwt_with_the_callers_claims() {
    let idp = Idp::start(IdpOptions::default()).await;
    let token = idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    assert_eq!(token.split('.').count(), 3, "a compact JWS: {token}");
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["alg"], json!("RS256"), "{header}");
    assert_eq!(header["kid"], json!("rsa-1"), "{header}");
    assert_eq!(header["typ"], json!("at+jwt"), "{header}");
    assert_eq!(claims["iss"], json!(idp.issuer()), "{claims}");
    assert_eq!(claims["aud"], json!(RESOURCE), "{claims}");
    assert_eq!(claims["scope"], json!("orders.read"), "{claims}");
    assert_eq!(claims["sub"], json!(READER), "{claims}");
    assert_eq!(claims["client_id"], json!(READER), "{claims}");
    assert!(claims["jti"].is_string(), "{claims}");
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(exp - iat, 300, "the default access-token TTL: {claims}");
    // The client's `token_claims`.
    assert_eq!(claims["groups"], json!(["orders-readers"]), "{claims}");
    assert_eq!(claims["email"], json!("api-reader@svc.corp.example"));
    assert_eq!(claims["region"], json!("eu"), "{claims}");

    // Scope is limited to what the client may have.
    let (status, body) = idp
        .token_request(
            READER,
            READER_SECRET,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders.write"),
                ("resource", RESOURCE),
            ],
        )
        .await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_scope")));
    // An unknown resource is refused.
    let (status, body) = idp
        .token_request(
            READER,
            READER_SECRET,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders.read"),
                ("resource", "urn:portcullis:unknown"),
            ],
        )
        .await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_target")));

    // The writer's token carries both scopes and its own claims.
    let token = idp
        .client_credentials(
            WRITER,
            WRITER_SECRET,
            "orders.read orders.write",
            Some(RESOURCE),
        )
        .await;
    let (_, claims) = jwt_parts(&token);
    assert_eq!(claims["scope"], json!("orders.read orders.write"));
    assert_eq!(claims["groups"], json!(["orders-writers"]), "{claims}");
    assert_eq!(claims["region"], json!("us"), "{claims}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_resources_sign_with_es256_and_eddsa() {
    let idp = Idp::start(IdpOptions::default()).await;
    for (resource, alg, kid) in [
        (RESOURCE_ES256, "ES256", "ec-1"),
        (RESOURCE_EDDSA, "EdDSA", "ed-1"),
    ] {
        let token = idp
            .client_credentials(READER, READER_SECRET, "orders.read", Some(resource))
            .await;
        let (header, claims) = jwt_parts(&token);
        assert_eq!(header["alg"], json!(alg), "{header}");
        assert_eq!(header["kid"], json!(kid), "{header}");
        assert_eq!(claims["aud"], json!(resource), "{claims}");
        assert_eq!(claims["iss"], json!(idp.issuer()), "{claims}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_token_introspects_active_until_revoked() {
    let idp = Idp::start(IdpOptions::default()).await;
    let token = idp
        .client_credentials(READER, READER_SECRET, "orders.read", None)
        .await;
    assert!(!token.contains('.'), "no resource, opaque token: {token}");

    let answer = idp.introspect(&token).await;
    assert_eq!(answer["active"], json!(true), "{answer}");
    assert_eq!(answer["client_id"], json!(READER), "{answer}");
    assert_eq!(answer["scope"], json!("orders.read"), "{answer}");
    assert_eq!(answer["iss"], json!(idp.issuer()), "{answer}");
    assert_eq!(answer["token_type"], json!("Bearer"), "{answer}");
    assert_eq!(answer["groups"], json!(["orders-readers"]), "{answer}");
    assert!(answer["exp"].as_i64().is_some(), "{answer}");

    idp.revoke(&token).await;
    assert_eq!(idp.introspect(&token).await, json!({"active": false}));
    assert_eq!(
        idp.introspect("not-a-token-at-all").await,
        json!({"active": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_set_ttls_extra_clients_and_accounts() {
    let idp = Idp::start(IdpOptions {
        access_token_ttl: Duration::from_secs(7),
        extra_clients: vec![json!({
            "client_id": "api-auditor",
            "client_secret": "auditor-secret",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "scope": "orders.read",
            "token_claims": {"groups": ["audit"], "department": "compliance"},
        })],
        accounts: json!({"alice": {"groups": ["admins", "staff"]}})
            .as_object()
            .expect("object")
            .clone(),
        ..IdpOptions::default()
    })
    .await;
    let token = idp
        .client_credentials(
            "api-auditor",
            "auditor-secret",
            "orders.read",
            Some(RESOURCE),
        )
        .await;
    let (_, claims) = jwt_parts(&token);
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        7
    );
    assert_eq!(claims["groups"], json!(["audit"]), "{claims}");
    assert_eq!(claims["department"], json!("compliance"), "{claims}");
    assert!(claims.get("email").is_none(), "{claims}");

    let redirect = idp
        .sign_in(
            &idp.authorize_url(
                crate::support::idp::DEFAULT_REDIRECT_URI,
                &[("scope", "openid profile"), ("state", "s")],
            ),
            "alice",
        )
        .await;
    let tokens = idp
        .exchange_code(
            &code_of(&redirect),
            crate::support::idp::DEFAULT_REDIRECT_URI,
        )
        .await;
    let (_, id) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id["groups"], json!(["admins", "staff"]), "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_the_providers_pages_gives_a_code_for_user_tokens() {
    let redirect_uri = "http://127.0.0.1:1/oauth2/callback";
    let idp = Idp::start(IdpOptions {
        redirect_uris: vec![redirect_uri.to_string()],
        ..IdpOptions::default()
    })
    .await;
    let authorize = idp.authorize_url(
        redirect_uri,
        &[
            ("scope", "openid email profile orders.read"),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("resource", RESOURCE),
        ],
    );
    let redirect = idp.sign_in(&authorize, "alice").await;
    assert!(redirect.starts_with(redirect_uri), "{redirect}");
    assert_eq!(query_param(&redirect, "state").as_deref(), Some("st-1"));
    assert_eq!(query_param(&redirect, "iss").as_deref(), Some(idp.issuer()));
    let tokens = idp.exchange_code(&code_of(&redirect), redirect_uri).await;
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    let (header, id) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(header["kid"], json!("rsa-1"), "{header}");
    assert_eq!(id["iss"], json!(idp.issuer()), "{id}");
    assert_eq!(id["aud"], json!(GATEWAY), "{id}");
    assert_eq!(id["sub"], json!("alice"), "{id}");
    assert_eq!(id["nonce"], json!("n-1"), "{id}");
    assert_eq!(id["email"], json!("alice@corp.example"), "{id}");
    assert_eq!(id["email_verified"], json!(true), "{id}");
    assert_eq!(id["groups"], json!(["staff"]), "{id}");
    assert_eq!(id["department"], json!("eng"), "{id}");
    assert_eq!(id["region"], json!("eu"), "{id}");

    let (_, at) = jwt_parts(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(at["aud"], json!(RESOURCE), "{at}");
    assert_eq!(at["sub"], json!("alice"), "{at}");
    assert_eq!(at["client_id"], json!(GATEWAY), "{at}");
    assert_eq!(at["scope"], json!("orders.read"), "{at}");
    assert_eq!(at["email"], json!("alice@corp.example"), "{at}");
    assert_eq!(at["groups"], json!(["staff"]), "{at}");

    // The refresh token works; mallory's email is not verified; without a resource the access
    // token is opaque and introspects with the user's claims.
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let (status, refreshed) = idp
        .token_request(
            GATEWAY,
            crate::support::idp::GATEWAY_SECRET,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed["access_token"].is_string(), "{refreshed}");

    let authorize = idp.authorize_url(redirect_uri, &[("scope", "openid email")]);
    let redirect = idp.sign_in(&authorize, "mallory").await;
    let tokens = idp.exchange_code(&code_of(&redirect), redirect_uri).await;
    let (_, id) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id["email_verified"], json!(false), "{id}");
    let opaque = tokens["access_token"].as_str().expect("access_token");
    assert!(!opaque.contains('.'), "{opaque}");
    let answer = idp.introspect(opaque).await;
    assert_eq!(answer["active"], json!(true), "{answer}");
    assert_eq!(answer["sub"], json!("mallory"), "{answer}");
    assert_eq!(answer["email_verified"], json!(false), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_rotated_keys_serves_rsa_2_on_the_same_port() {
    let mut idp = Idp::start(IdpOptions::default()).await;
    let port = idp.port();
    let before = idp
        .client_credentials(READER, READER_SECRET, "orders.read", None)
        .await;

    idp.restart_with_keys(key_file("rotated.json")).await;
    assert!(idp.is_running());
    assert_eq!(idp.port(), port);
    assert_eq!(kids(&idp.jwks().await), set(&["rsa-2", "ec-1", "ed-1"]));
    let token = idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let (header, _) = jwt_parts(&token);
    assert_eq!(header["kid"], json!("rsa-2"), "{header}");
    // State is in memory: the restart forgot every token.
    assert_eq!(idp.introspect(&before).await, json!({"active": false}));

    // Overlap: rsa-2 signs, rsa-1 is still published.
    idp.restart_with_keys(key_file("overlap.json")).await;
    assert_eq!(
        kids(&idp.jwks().await),
        set(&["rsa-2", "rsa-1", "ec-1", "ed-1"])
    );
    let token = idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    assert_eq!(jwt_parts(&token).0["kid"], json!("rsa-2"));
    assert!(idp.options().keys.ends_with("overlap.json"));

    // Stopped: the port refuses connections; the logs show what it served.
    idp.stop();
    assert!(!idp.is_running());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
    assert!(idp.logs().contains("POST /token 200"), "{}", idp.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_keys_are_published_but_never_sign() {
    let idp = Idp::start(IdpOptions {
        keys: key_file("weak.json"),
        ..IdpOptions::default()
    })
    .await;
    let jwks = idp.jwks().await;
    assert_eq!(kids(&jwks), set(&["rsa-1", "ec-1", "ed-1", "rsa-weak"]));
    let weak = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == "rsa-weak")
        .expect("rsa-weak");
    assert_eq!(
        weak["n"].as_str().expect("n").len(),
        171,
        "1024 bits: {weak}"
    );
    let token = idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    assert_eq!(jwt_parts(&token).0["kid"], json!("rsa-1"));
    for pem in [
        "rsa-1.pem",
        "rsa-2.pem",
        "rsa-weak.pem",
        "ec-1.pem",
        "ed-1.pem",
    ] {
        let text = std::fs::read_to_string(key_file(pem)).expect("the PEM file exists");
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_then_logout_sends_a_back_channel_logout_token() {
    let rp = crate::support::EchoBackend::start("rp").await;
    let redirect_uri = format!("http://{}/callback", rp.addr());
    let after_logout = format!("http://{}/signed-out", rp.addr());
    let idp = Idp::start(IdpOptions {
        redirect_uris: vec![redirect_uri.clone()],
        post_logout_redirect_uris: vec![after_logout.clone()],
        backchannel_logout_uri: Some(format!("http://{}/backchannel", rp.addr())),
        ..IdpOptions::default()
    })
    .await;
    let mut browser = IdpBrowser::default();
    let authorize = idp.authorize_url(&redirect_uri, &[("scope", "openid email")]);
    let redirect = idp.sign_in_with(&mut browser, &authorize, "bob").await;
    assert!(browser.has_cookie("_session"));
    let tokens = idp.exchange_code(&code_of(&redirect), &redirect_uri).await;
    let id_token = tokens["id_token"].as_str().expect("id_token").to_string();
    let (_, id) = jwt_parts(&id_token);
    assert!(
        id["sid"].is_string(),
        "a back-channel client gets sid: {id}"
    );

    // Signed in already: straight back with a code, no login page.
    let again = idp.sign_in_with(&mut browser, &authorize, "ignored").await;
    assert!(again.starts_with(&redirect_uri), "{again}");
    let tokens = idp.exchange_code(&code_of(&again), &redirect_uri).await;
    let (_, id) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id["sub"], json!("bob"), "{id}");

    let landed = idp
        .end_session(
            &mut browser,
            &[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", &after_logout),
                ("state", "bye"),
            ],
        )
        .await;
    assert_eq!(landed, format!("{after_logout}?state=bye"));
    assert!(!browser.has_cookie("_session"));
    let seen = rp.seen();
    let logout = seen
        .iter()
        .find(|s| s.path == "/backchannel")
        .unwrap_or_else(|| {
            panic!(
                "no back-channel logout request; the RP saw {seen:?}; IdP log:\n{}",
                idp.logs()
            )
        });
    assert_eq!(logout.method, "POST");
    assert_eq!(
        logout.values("content-type"),
        vec!["application/x-www-form-urlencoded".to_string()]
    );
    assert!(logout.body_len > 100, "a logout_token: {logout:?}");

    // Signed out: the next authorization request shows the login page again.
    let fresh = idp.sign_in_with(&mut browser, &authorize, "carol").await;
    let tokens = idp.exchange_code(&code_of(&fresh), &redirect_uri).await;
    let (_, id) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id["sub"], json!("carol"), "{id}");
}

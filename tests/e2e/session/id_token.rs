//! `identity.id_token`: the session's ID token goes upstream (the provider's own token: its
//! signature, `iss`, `aud`, `sub`), a client's copy in any spelling never does, and a signed-in
//! run logs who signed in and out and where — with no token or cookie anywhere in the logs.

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};

use super::{NAVIGATION, Stack, config};
use crate::logs::{access_lines, json_lines, with_message};
use crate::support::echo::Echoed;
use crate::support::idp::{GATEWAY, IdpOptions};
use crate::support::{ServerOptions, wait_until};

const ROUTES: &str = "  - name: public
    match: {path_prefix: /public}
    upstream: app
    auth: public
  - name: app
    match: {path_prefix: /}
    upstream: app
    auth: session
    provider: corp
    access_token: X-Access-Token
";

const SPOOFED: &[(&str, &str)] = &[
    ("X-Id-Token", "forged"),
    ("X_Id_Token", "forged-underscore"),
    ("x-id-token", "forged-lower"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_token_goes_upstream_and_no_secret_reaches_the_logs() {
    let server = ServerOptions {
        extra_server: "  log_format: json\n".into(),
        ..ServerOptions::default()
    };
    let stack = Stack::start_with_config(IdpOptions::default(), server, |issuer, backend| {
        config(issuer, backend, 7, "", ROUTES).replacen(
            "identity:\n",
            "identity:\n  id_token: X-Id-Token\n",
            1,
        )
    })
    .await;
    let (mut jar, done) = stack.sign_in("alice", "/orders").await;
    assert_eq!(done.status, 302, "{}", done.text());
    let cookie = jar
        .get("__Host-portcullis")
        .expect("the session cookie")
        .to_string();

    let mut headers = NAVIGATION.to_vec();
    headers.extend_from_slice(SPOOFED);
    let app = stack.get(&mut jar, "/orders", &headers).await;
    assert_eq!(app.status, 200, "{}", app.text());
    let seen = Echoed::parse(&app.body, "app");
    let id_tokens = seen.values_any_spelling("x-id-token");
    assert_eq!(
        id_tokens.len(),
        1,
        "one ID token, no client copy: {id_tokens:?}"
    );
    let id_token = id_tokens[0].clone();
    assert!(!id_token.starts_with("forged"), "{id_token}");

    // The provider's token: its signature, issuer, audience and subject.
    let set: JwkSet = serde_json::from_value(stack.idp.jwks().await).expect("a JWKS");
    let header = jsonwebtoken::decode_header(&id_token).expect("a JWT");
    let jwk = set
        .find(header.kid.as_deref().expect("a kid"))
        .expect("a published key");
    let key = DecodingKey::from_jwk(jwk).expect("a key");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[GATEWAY]);
    validation.set_issuer(&[stack.idp.issuer()]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&id_token, &key, &validation)
        .expect("the ID token verifies with the provider's key")
        .claims;
    assert_eq!(claims["sub"], "alice");
    assert!(
        claims["nonce"].is_string(),
        "an ID token from this sign-in: {claims}"
    );
    let access_token = seen
        .values("x-access-token")
        .first()
        .cloned()
        .expect("the access token");
    assert_ne!(access_token, id_token);

    // A public route: the client's copies are stripped too.
    let public = stack.get(&mut jar, "/public/page", SPOOFED).await;
    assert_eq!(public.status, 200, "{}", public.text());
    let seen = Echoed::parse(&public.body, "public");
    assert!(
        seen.values_any_spelling("x-id-token").is_empty(),
        "{:?}",
        seen.values_any_spelling("x-id-token")
    );

    let out = stack.sign_out(&mut jar).await;
    assert_eq!(out.status, 302, "{}", out.text());

    let gateway = &stack.gateway;
    wait_until(
        "the access-log lines of the app and public requests",
        std::time::Duration::from_secs(10),
        || async {
            let lines = access_lines(&gateway.stdout());
            lines.iter().any(|l| l["path"] == "/public/page")
        },
    )
    .await;
    let stdout = gateway.stdout();
    let lines = access_lines(&stdout);
    let orders: Vec<_> = lines
        .iter()
        .filter(|l| l["path"] == "/orders" && l["route"] == "app")
        .collect();
    assert_eq!(
        orders.last().map(|l| &l["user"]),
        Some(&"alice".into()),
        "{stdout}"
    );
    let public: Vec<_> = lines
        .iter()
        .filter(|l| l["path"] == "/public/page")
        .collect();
    assert!(public.iter().all(|l| l.get("user").is_none()), "{stdout}");

    let stderr = gateway.stderr();
    let ops = json_lines(&stderr);
    let signed_in = with_message(&ops, "signed in");
    assert_eq!(signed_in.len(), 1, "{stderr}");
    assert_eq!(signed_in[0]["user"], "alice");
    assert_eq!(signed_in[0]["route"], "app");
    assert_eq!(signed_in[0]["provider"], "corp");
    let signed_out = with_message(&ops, "signed out");
    assert_eq!(signed_out.len(), 1, "{stderr}");
    assert_eq!(signed_out[0]["user"], "alice");
    assert_eq!(signed_out[0]["route"], "app");

    let signature = |token: &str| token.rsplit('.').next().unwrap_or_default().to_string();
    for (what, secret) in [
        ("ID token", id_token.clone()),
        ("ID token signature", signature(&id_token)),
        ("access token", access_token.clone()),
        ("session cookie", cookie.clone()),
    ] {
        assert!(!stdout.contains(&secret), "the access log holds the {what}");
        assert!(
            !stderr.contains(&secret),
            "the operational log holds the {what}"
        );
    }
}

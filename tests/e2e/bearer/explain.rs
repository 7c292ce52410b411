//! `portcullis explain` on a bearer route: it fetches the provider's keys, judges the token and
//! the rules, and exits 0 when the request would pass, 1 when refused.

use serde_json::json;

use crate::support::EchoBackend;
use crate::support::free_port;
use crate::support::idp::{Idp, IdpOptions, READER, READER_SECRET, RESOURCE};

use super::{API_ROUTE, claims, mint, now, with};

/// `portcullis explain` with `Authorization: Bearer <token>`.
fn explain(config: &std::path::Path, url: &str, token: &str) -> (i32, String) {
    crate::support::gateway::explain(config, url, &format!("Authorization: Bearer {token}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_judges_a_valid_and_an_expired_token() {
    let idp = Idp::start(IdpOptions::default()).await;
    // explain never connects to the backend nor binds the listeners: any addresses do.
    let backend = EchoBackend::start("app").await;
    let dir = tempfile::tempdir().expect("creating a temporary directory must work");
    let config = dir.path().join("portcullis.yaml");
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{}\"]\n  admin: \"127.0.0.1:{}\"\n{}",
        free_port(),
        free_port(),
        super::config(idp.issuer(), &backend, "", API_ROUTE)
    );
    std::fs::write(&config, &yaml).expect("writing the config must work");

    let valid = idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let (code, out) = explain(&config, "http://app.test/api/x", &valid);
    assert_eq!(code, 0, "explain with a valid token exits 0:\n{out}");
    assert!(
        out.contains("valid"),
        "explain says the token is valid:\n{out}"
    );
    assert!(
        !out.contains("invalid"),
        "explain does not call it invalid:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("route") && l.contains("api")),
        "explain names the route:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("token:") && l.contains("Z (in ")),
        "the expiry is RFC 3339 and relative:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("added:") && l.starts_with("added:     x-forwarded-user: ")),
        "the identity header the backend would get is listed:\n{out}"
    );

    let now = now();
    let expired = mint(
        "rsa-1",
        &with(
            claims(idp.issuer(), "late"),
            json!({"iat": now - 7200, "exp": now - 3600}),
        ),
    );
    let (code, out) = explain(&config, "http://app.test/api/x", &expired);
    assert_eq!(code, 1, "explain with an expired token exits 1:\n{out}");
    assert!(
        out.contains("the token has expired"),
        "explain says why:\n{out}"
    );
    assert_eq!(backend.count(), 0, "explain never sends the request");
}

//! A plain OAuth 2.0 provider (GitHub-style: no discovery, no ID token checked), where identity
//! comes from the userinfo endpoint through `claim_mapping`. The test provider plays that role
//! through its raw endpoints.

use std::net::SocketAddr;

use serde_json::json;

use super::{GATEWAY, GATEWAY_SECRET, secret};
use crate::support::echo::Echoed;
use crate::support::idp::{Idp, IdpOptions};
use crate::support::{EchoBackend, Gateway, ServerOptions, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_from_userinfo_with_a_claim_mapping() {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut accounts = serde_json::Map::new();
    accounts.insert("octocat".into(), json!({"region": 4242}));
    let idp = Idp::start(IdpOptions {
        redirect_uris: vec![format!("http://{listen}/oauth2/callback")],
        accounts,
        ..IdpOptions::default()
    })
    .await;
    let backend = EchoBackend::start("app").await;
    let issuer = idp.issuer();
    let config = format!(
        "upstreams:
  app: {{targets: [\"{backend}\"]}}
providers:
  hub:
    authorization_endpoint: \"{issuer}/auth\"
    token_endpoint: \"{issuer}/token\"
    userinfo_endpoint: \"{issuer}/me\"
    client_id: {GATEWAY}
    client_secret: {GATEWAY_SECRET}
    token_endpoint_auth: client_secret_post
    scopes: [openid, profile]
    user_claim: login
    claim_mapping: {{login: preferred_username, region_code: region}}
sessions:
  secret: \"{secret}\"
identity:
  extra_claims: {{X-Region-Code: region_code}}
routes:
  - name: app
    match: {{path_prefix: /}}
    upstream: app
    auth: session
    provider: hub
",
        backend = backend.addr(),
        secret = secret(3),
    );
    let gateway = Gateway::start_with(
        ServerOptions {
            listen: Some(listen),
            ..ServerOptions::default()
        },
        &config,
    )
    .await;
    let stack = super::Stack {
        idp,
        backend,
        gateway,
    };
    let (mut jar, done) = stack.sign_in("octocat", "/repos").await;
    assert_eq!(done.status, 302, "{}", done.text());
    assert_eq!(done.header("location"), Some("/repos"));
    let app = stack.get(&mut jar, "/repos", &[]).await;
    assert_eq!(app.status, 200, "{}", app.text());
    let seen = Echoed::parse(&app.body, "app");
    assert_eq!(seen.values("x-forwarded-user"), vec!["octocat"]);
    assert_eq!(
        seen.values("x-region-code"),
        vec!["4242"],
        "numbers become strings"
    );
}

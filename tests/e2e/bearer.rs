//! Bearer-token routes (`auth: bearer`), end to end: a real OpenID Provider (`support::idp`,
//! panva's oidc-provider) issues and introspects tokens, the gateway validates them, the echo
//! backend shows what reached it. The contract is the "Bearer routes" section of
//! `.run/CONTRACT.md`.
//!
//! Tokens the provider would never issue (expired, forged headers, wrong audience...) are minted
//! here with the provider's own test keys (`tests/idp/keys/*.pem`), so only the claim or header
//! under test is wrong.

mod explain;
mod identity;
mod keys;
mod metrics;
mod opaque;
mod refusals;
mod rules;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::support::echo::Echoed;
use crate::support::idp::{
    Idp, IdpOptions, RESOURCE, RESOURCE_EDDSA, RESOURCE_ES256, idp_dir, key_file,
};
use crate::support::raw::{raw_request, request};
use crate::support::{EchoBackend, Gateway, RawResponse};

/// The host every request names (routes match any host).
pub const HOST: &str = "app.test";

/// The realm-only challenge of a request without credentials.
pub const CHALLENGE_NO_TOKEN: &str = r#"Bearer realm="portcullis""#;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A value no other minted token has, for `jti`: two tokens minted in the same second with the
/// same claims would otherwise be the same token (and share a cache entry).
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .subsec_nanos();
    format!("jti-{}-{nanos}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PEM file `tests/idp/keys/<name>` as bytes.
pub fn pem(name: &str) -> Vec<u8> {
    std::fs::read(key_file(name)).unwrap_or_else(|e| panic!("reading key file {name}: {e}"))
}

/// The signing key and algorithm of the provider's key `kid` (`rsa-1`, `rsa-2`, `ec-1`, `ed-1`).
pub fn signing_key(kid: &str) -> (EncodingKey, Algorithm) {
    let bytes = pem(&format!("{kid}.pem"));
    if kid.starts_with("rsa") {
        (
            EncodingKey::from_rsa_pem(&bytes).expect("an RSA PKCS#8 PEM"),
            Algorithm::RS256,
        )
    } else if kid.starts_with("ec") {
        (
            EncodingKey::from_ec_pem(&bytes).expect("an EC PKCS#8 PEM"),
            Algorithm::ES256,
        )
    } else {
        (
            EncodingKey::from_ed_pem(&bytes).expect("an Ed25519 PKCS#8 PEM"),
            Algorithm::EdDSA,
        )
    }
}

/// `b64(header).b64(claims)`: the JWS signing input.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A compact JWS of exactly `header` and `claims`, signed with `key` under `alg` (which need not
/// be the header's `alg`: forgeries).
pub fn compact(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = signing_input(header, claims);
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("signing a test token");
    format!("{input}.{signature}")
}

/// A token signed by the provider's key `kid` with the header `{alg, typ: at+jwt, kid}`.
pub fn mint(kid: &str, claims: &Value) -> String {
    let (key, alg) = signing_key(kid);
    let alg_name = match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        _ => "EdDSA",
    };
    let header = json!({"alg": alg_name, "typ": "at+jwt", "kid": kid});
    compact(&header, claims, &key, alg)
}

/// An RS256 signature by the 1024-bit `rsa-weak.pem` (aws-lc refuses to sign with keys that
/// small, so Node.js does it).
pub fn sign_with_weak_rsa(input: &str) -> String {
    let script = "const c=require('crypto');const fs=require('fs');\
        process.stdout.write(c.sign('sha256',Buffer.from(process.argv[1]),\
        fs.readFileSync(process.argv[2])).toString('base64url'))";
    let output = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(input)
        .arg(key_file("rsa-weak.pem"))
        .current_dir(idp_dir())
        .output()
        .expect("running node to sign with rsa-weak");
    assert!(
        output.status.success(),
        "node could not sign with rsa-weak: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("base64url is ASCII")
}

/// Claims the provider would put in an access token for `sub` (a client_credentials caller) for
/// [`RESOURCE`], valid for five minutes.
pub fn claims(issuer: &str, sub: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": RESOURCE,
        "sub": sub,
        "client_id": sub,
        "scope": "orders.read",
        "email": format!("{sub}@svc.corp.example"),
        "groups": ["minted", "testers"],
        "region": "eu",
        "iat": now,
        "exp": now + 300,
        "jti": unique(),
    })
}

/// `claims` with `changes` applied: `null` removes a claim.
pub fn with(mut claims: Value, changes: Value) -> Value {
    let map = claims.as_object_mut().expect("claims are an object");
    for (name, value) in changes.as_object().expect("changes are an object") {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
    claims
}

/// The gateway config after `server:`: upstream `app` at `backend`, provider `idp` at `issuer`
/// accepting the three resources' audiences plus `provider_extra` (lines indented by four spaces),
/// identity with `X-Region: region`, and `routes` (the YAML list items).
pub fn config(issuer: &str, backend: &EchoBackend, provider_extra: &str, routes: &str) -> String {
    config_with_audiences(
        issuer,
        backend,
        &[RESOURCE, RESOURCE_ES256, RESOURCE_EDDSA],
        provider_extra,
        routes,
    )
}

/// [`config`] with provider `idp` accepting `audiences`.
pub fn config_with_audiences(
    issuer: &str,
    backend: &EchoBackend,
    audiences: &[&str],
    provider_extra: &str,
    routes: &str,
) -> String {
    let audiences = audiences
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "upstreams:
  app: {{targets: [\"{backend}\"], connect_timeout: 1s, read_timeout: 5s}}
providers:
  idp:
    issuer: \"{issuer}\"
    audiences: [{audiences}]
{provider_extra}identity:
  extra_claims: {{X-Region: region}}
routes:
{routes}",
        backend = backend.addr(),
    )
}

/// The plain bearer route `api` on `/api`.
pub const API_ROUTE: &str = "  - name: api
    match: {path_prefix: /api}
    upstream: app
    auth: bearer
    provider: idp
";

/// A provider, a backend and a gateway in front of it.
pub struct Stack {
    /// The provider (dropped last: the gateway may still talk to it).
    pub idp: Idp,
    /// The echo backend.
    pub backend: EchoBackend,
    /// The gateway.
    pub gateway: Gateway,
}

impl Stack {
    /// Starts a provider with `options`, a backend, and a gateway with [`config`].
    pub async fn start(options: IdpOptions, provider_extra: &str, routes: &str) -> Self {
        let idp = Idp::start(options).await;
        let backend = EchoBackend::start("app").await;
        let gateway = Gateway::start(&config(idp.issuer(), &backend, provider_extra, routes)).await;
        Self {
            idp,
            backend,
            gateway,
        }
    }

    /// `GET path` with `Host: app.test` and `headers`, written raw.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        get(&self.gateway, path, headers).await
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub async fn get_with(&self, path: &str, token: &str) -> RawResponse {
        let auth = format!("Bearer {token}");
        self.get(path, &[("Authorization", &auth)]).await
    }

    /// [`Stack::get_with`], asserting 200 from the backend; what the backend received.
    pub async fn allowed(&self, case: &str, path: &str, token: &str) -> Echoed {
        let response = self.get_with(path, token).await;
        assert_allowed(case, &response)
    }
}

/// `GET path` on `gateway` with `Host: app.test` and `headers`, written raw.
pub async fn get(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    raw_request(gateway.addr(), &request("GET", path, Some(HOST), headers)).await
}

/// Asserts a 200 from the echo backend; what it received.
pub fn assert_allowed(case: &str, response: &RawResponse) -> Echoed {
    assert_eq!(
        response.status,
        200,
        "{case}: expected 200, got {} {:?} (WWW-Authenticate {:?})",
        response.status,
        response.text(),
        response.header("www-authenticate")
    );
    Echoed::parse(&response.body, case)
}

/// The `WWW-Authenticate` of an `invalid_token` refusal with `description`.
pub fn invalid_token_challenge(description: &str) -> String {
    format!(
        r#"Bearer realm="portcullis", error="invalid_token", error_description="{description}""#
    )
}

/// Asserts a gateway refusal: `status`, `WWW-Authenticate` exactly `challenge` (`None`: absent),
/// JSON `{"error": error, "message": message}`.
pub fn assert_refused(
    case: &str,
    response: &RawResponse,
    status: u16,
    challenge: Option<&str>,
    error: &str,
    message: &str,
) {
    assert_eq!(
        response.status,
        status,
        "{case}: status (body {:?}, WWW-Authenticate {:?})",
        response.text(),
        response.header("www-authenticate")
    );
    assert_eq!(
        response.header("www-authenticate"),
        challenge,
        "{case}: WWW-Authenticate (body {:?})",
        response.text()
    );
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{case}: content-type"
    );
    let mut body = response.json(case);
    let id = body.as_object_mut().and_then(|o| o.remove("request_id"));
    assert_eq!(
        id.as_ref().and_then(|v| v.as_str()),
        response.header("x-request-id"),
        "{case}: the body's request id is the header's"
    );
    assert_eq!(
        body,
        json!({"error": error, "message": message}),
        "{case}: JSON body"
    );
}

/// Asserts a 401 `invalid_token` refusal with `description` in both the challenge and the body.
pub fn assert_invalid_token(case: &str, response: &RawResponse, description: &str) {
    assert_refused(
        case,
        response,
        401,
        Some(&invalid_token_challenge(description)),
        "invalid_token",
        description,
    );
}

/// The value of `portcullis_jwks_state{provider="idp"}`, if the series exists.
pub fn jwks_state(metrics: &str) -> Option<f64> {
    crate::support::metric_samples(metrics, "portcullis_jwks_state", &[r#"provider="idp""#])
        .first()
        .map(|(_, v)| *v)
}

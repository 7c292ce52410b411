//! Every way a bearer request is refused: status, `WWW-Authenticate`, the JSON body, and the
//! backend never reached. Forged tokens are minted with the provider's own keys, so only the
//! property under test is wrong.

use serde_json::{Value, json};

use crate::support::idp::{
    IdpOptions, READER, READER_SECRET, RESOURCE, RESOURCE_EDDSA, RESOURCE_ES256, key_file,
};

use super::{
    API_ROUTE, CHALLENGE_NO_TOKEN, Stack, assert_allowed, assert_refused, b64, claims, compact,
    invalid_token_challenge, mint, now, sign_with_weak_rsa, signing_input, signing_key, with,
};

/// What a case expects.
enum Want {
    /// 401 without an error attribute: no bearer credentials.
    NoToken,
    /// 400 `invalid_request`, with some description.
    InvalidRequest,
    /// 401 `invalid_token` with this description.
    InvalidToken(&'static str),
}

struct Case {
    name: &'static str,
    /// The request target.
    target: String,
    /// Header lines after `Host`.
    headers: Vec<(String, String)>,
    want: Want,
}

fn bearer(name: &'static str, token: String, want: Want) -> Case {
    Case {
        name,
        target: "/api/x".to_string(),
        headers: vec![("Authorization".to_string(), format!("Bearer {token}"))],
        want,
    }
}

/// The public JWK (`kty`, `n`, `e`) of `rsa-2`, from the rotated private key set.
fn rsa2_public_jwk() -> Value {
    let text = std::fs::read_to_string(key_file("rotated.json")).expect("reading rotated.json");
    let set: Value = serde_json::from_str(&text).expect("rotated.json is JSON");
    let key = set["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .find(|k| k["kid"] == "rsa-2")
        .expect("rsa-2 in rotated.json");
    json!({"kty": "RSA", "n": key["n"], "e": key["e"], "kid": "rsa-2"})
}

/// `token` with one byte of its signature flipped.
fn flip_signature(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("a compact JWS");
    let mut bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .expect("a base64url signature");
    bytes[10] ^= 0x01;
    format!("{input}.{}", b64(&bytes))
}

const MALFORMED: &str = "the token is malformed";
const TOO_LARGE: &str = "the token is too large";
const ALGORITHM: &str = "the token's signature algorithm is not accepted";
const CRIT: &str = "the token has critical header parameters";
const TYPE: &str = "the token type is not accepted";
const UNKNOWN_KEY: &str = "the token's signing key is unknown";
const BAD_SIGNATURE: &str = "the token's signature is invalid";
const EXPIRED: &str = "the token has expired";
const NOT_YET: &str = "the token is not valid yet";
const TIME_CLAIMS: &str = "the token's time claims are missing or malformed";
const ISSUER: &str = "the token was issued by another issuer";
const AUDIENCE: &str = "the token is not meant for this audience";

fn cases(issuer: &str, valid: &str) -> Vec<Case> {
    let good = || claims(issuer, "forger");
    let now = now();
    let (rsa1, rs256) = signing_key("rsa-1");
    let (rsa2, _) = signing_key("rsa-2");
    let rs256_header = |extra: Value| {
        with(
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "rsa-1"}),
            extra,
        )
    };

    let alg_none_empty = format!("{}.", signing_input(&json!({"alg": "none"}), &good()));
    let alg_none_signed = format!(
        "{}.{}",
        signing_input(&json!({"alg": "none"}), &good()),
        b64(b"not a signature")
    );
    let hs256_confusion = compact(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}),
        &good(),
        &jsonwebtoken::EncodingKey::from_secret(&super::pem("rsa-1.pub.pem")),
        jsonwebtoken::Algorithm::HS256,
    );
    let weak_input = signing_input(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "rsa-weak"}),
        &good(),
    );
    let weak = format!("{weak_input}.{}", sign_with_weak_rsa(&weak_input));
    let attacker_jwk = rsa2_public_jwk();

    vec![
        Case {
            name: "no Authorization header",
            target: "/api/x".into(),
            headers: vec![],
            want: Want::NoToken,
        },
        Case {
            name: "Basic scheme",
            target: "/api/x".into(),
            headers: vec![("Authorization".into(), "Basic YWxpY2U6c2VjcmV0".into())],
            want: Want::NoToken,
        },
        Case {
            name: "two Authorization headers",
            target: "/api/x".into(),
            headers: vec![
                ("Authorization".into(), format!("Bearer {valid}")),
                ("Authorization".into(), format!("Bearer {valid}")),
            ],
            want: Want::InvalidRequest,
        },
        Case {
            name: "token in the query string only",
            target: format!("/api/x?access_token={valid}"),
            headers: vec![],
            want: Want::InvalidRequest,
        },
        Case {
            name: "token in the query string and a valid header",
            target: format!("/api/x?a=1&access_token={valid}"),
            headers: vec![("Authorization".into(), format!("Bearer {valid}"))],
            want: Want::InvalidRequest,
        },
        Case {
            name: "Bearer without a token",
            target: "/api/x".into(),
            headers: vec![("Authorization".into(), "Bearer".into())],
            want: Want::InvalidRequest,
        },
        Case {
            name: "Bearer with characters outside b64token",
            target: "/api/x".into(),
            headers: vec![("Authorization".into(), "Bearer abc\"def".into())],
            want: Want::InvalidRequest,
        },
        bearer(
            "garbage token",
            "garbage".into(),
            Want::InvalidToken(MALFORMED),
        ),
        bearer(
            "garbage in three parts",
            "garbage.garbage.garbage".into(),
            Want::InvalidToken(MALFORMED),
        ),
        // Over the 16 KiB token limit, under `server.limits.max_header_bytes` (a 64 KB header is
        // refused earlier, 431: tests/e2e/limits.rs).
        bearer(
            "20 KB token",
            "a".repeat(20 * 1024),
            Want::InvalidToken(TOO_LARGE),
        ),
        bearer(
            "expired (exp an hour ago)",
            mint(
                "rsa-1",
                &with(good(), json!({"iat": now - 7200, "exp": now - 3600})),
            ),
            Want::InvalidToken(EXPIRED),
        ),
        bearer(
            "nbf an hour ahead",
            mint(
                "rsa-1",
                &with(good(), json!({"nbf": now + 3600, "exp": now + 7200})),
            ),
            Want::InvalidToken(NOT_YET),
        ),
        bearer(
            "exp as a string",
            mint(
                "rsa-1",
                &with(good(), json!({"exp": (now + 300).to_string()})),
            ),
            Want::InvalidToken(TIME_CLAIMS),
        ),
        bearer(
            "exp missing",
            mint("rsa-1", &with(good(), json!({"exp": null}))),
            Want::InvalidToken(TIME_CLAIMS),
        ),
        bearer(
            "wrong iss",
            mint("rsa-1", &with(good(), json!({"iss": "http://127.0.0.1:1"}))),
            Want::InvalidToken(ISSUER),
        ),
        bearer(
            "wrong aud",
            mint("rsa-1", &with(good(), json!({"aud": "urn:someone:else"}))),
            Want::InvalidToken(AUDIENCE),
        ),
        bearer(
            "aud array without ours",
            mint("rsa-1", &with(good(), json!({"aud": ["urn:a", "urn:b"]}))),
            Want::InvalidToken(AUDIENCE),
        ),
        bearer(
            "bad signature (one byte flipped)",
            flip_signature(valid),
            Want::InvalidToken(BAD_SIGNATURE),
        ),
        bearer(
            "unknown kid",
            compact(
                &rs256_header(json!({"kid": "no-such-key"})),
                &good(),
                &rsa1,
                rs256,
            ),
            Want::InvalidToken(UNKNOWN_KEY),
        ),
        bearer(
            "alg none, empty signature",
            alg_none_empty,
            Want::InvalidToken(ALGORITHM),
        ),
        bearer(
            "alg none, some signature",
            alg_none_signed,
            Want::InvalidToken(ALGORITHM),
        ),
        bearer(
            "HS256 keyed with the RSA public key (key confusion)",
            hs256_confusion,
            Want::InvalidToken(ALGORITHM),
        ),
        bearer(
            "signed by the published 1024-bit rsa-weak",
            weak,
            Want::InvalidToken(UNKNOWN_KEY),
        ),
        bearer(
            "crit header",
            compact(
                &rs256_header(json!({"crit": ["urn:example:ext"], "urn:example:ext": true})),
                &good(),
                &rsa1,
                rs256,
            ),
            Want::InvalidToken(CRIT),
        ),
        bearer(
            "typ JWE",
            compact(&rs256_header(json!({"typ": "JWE"})), &good(), &rsa1, rs256),
            Want::InvalidToken(TYPE),
        ),
        bearer(
            "kid rsa-1 with jku, x5u and an embedded jwk of the attacker's key (rsa-2)",
            compact(
                &rs256_header(json!({
                    "jku": "http://127.0.0.1:1/attacker-jwks",
                    "x5u": "http://127.0.0.1:1/attacker.pem",
                    "jwk": attacker_jwk.clone(),
                })),
                &good(),
                &rsa2,
                rs256,
            ),
            Want::InvalidToken(BAD_SIGNATURE),
        ),
        bearer(
            "no kid, embedded jwk of the attacker's key (rsa-2)",
            compact(
                &json!({"alg": "RS256", "typ": "at+jwt", "jwk": attacker_jwk}),
                &good(),
                &rsa2,
                rs256,
            ),
            Want::InvalidToken(BAD_SIGNATURE),
        ),
        bearer(
            "RS256 token naming the EC key ec-1",
            compact(&rs256_header(json!({"kid": "ec-1"})), &good(), &rsa1, rs256),
            Want::InvalidToken(ALGORITHM),
        ),
    ]
}

/// The provider serves `weak.json` (`rsa-1`, `ec-1`, `ed-1` and the 1024-bit `rsa-weak`), so the
/// weak-key case needs no second provider; every other case is the same as with `primary.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_challenge_and_body_and_never_reaches_the_backend() {
    let stack = Stack::start(
        IdpOptions {
            keys: key_file("weak.json"),
            ..IdpOptions::default()
        },
        "",
        API_ROUTE,
    )
    .await;
    let valid = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    // The valid token works: the refusals below are about what each case changed.
    assert_allowed("the valid token", &stack.get_with("/api/x", &valid).await);
    // The 1024-bit key is published but unusable: three keys count.
    let metrics = stack.gateway.metrics().await;
    assert_eq!(
        crate::support::metric_sum(&metrics, "portcullis_jwks_keys", &[r#"provider="idp""#]),
        3.0,
        "rsa-weak is not a usable key\n{metrics}"
    );

    let mut failures = Vec::new();
    for case in cases(stack.idp.issuer(), &valid) {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let before = stack.backend.count();
        let response = stack.get(&case.target, &headers).await;
        // Collect every failing case rather than stop at the first.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match case.want {
                Want::NoToken => assert_refused(
                    case.name,
                    &response,
                    401,
                    Some(CHALLENGE_NO_TOKEN),
                    "invalid_token",
                    "a bearer token is required",
                ),
                Want::InvalidRequest => {
                    let challenge = response.header("www-authenticate").unwrap_or_default();
                    let prefix = r#"Bearer realm="portcullis", error="invalid_request", error_description=""#;
                    let description = challenge
                        .strip_prefix(prefix)
                        .and_then(|rest| rest.strip_suffix('"'))
                        .unwrap_or_else(|| {
                            panic!(
                                "{}: WWW-Authenticate {challenge:?} is not an invalid_request challenge (status {}, body {:?})",
                                case.name,
                                response.status,
                                response.text()
                            )
                        });
                    assert!(
                        !description.is_empty(),
                        "{}: empty error_description",
                        case.name
                    );
                    assert_refused(
                        case.name,
                        &response,
                        400,
                        Some(challenge),
                        "invalid_request",
                        description,
                    );
                }
                Want::InvalidToken(description) => assert_refused(
                    case.name,
                    &response,
                    401,
                    Some(&invalid_token_challenge(description)),
                    "invalid_token",
                    description,
                ),
            }
            assert_eq!(
                stack.backend.count(),
                before,
                "{}: the backend must not be reached",
                case.name
            );
        }));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            failures.push(message);
        }
    }
    assert!(
        failures.is_empty(),
        "{} refusal case(s) failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aud_array_naming_our_audience_is_accepted() {
    let stack = Stack::start(IdpOptions::default(), "", API_ROUTE).await;
    let token = mint(
        "rsa-1",
        &with(
            claims(stack.idp.issuer(), "multi-aud"),
            json!({"aud": ["urn:someone:else", RESOURCE]}),
        ),
    );
    let seen = stack
        .allowed("aud array containing ours", "/api/x", &token)
        .await;
    assert_eq!(seen.values("x-forwarded-user"), vec!["multi-aud"]);

    // A token within the leeway (expired 10 s ago, default leeway 30 s) is still accepted.
    let now = now();
    let token = mint(
        "rsa-1",
        &with(
            claims(stack.idp.issuer(), "in-leeway"),
            json!({"iat": now - 300, "exp": now - 10}),
        ),
    );
    stack
        .allowed("exp 10 s ago, within the 30 s leeway", "/api/x", &token)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_algorithm_list_refuses_the_others() {
    let stack = Stack::start(
        IdpOptions::default(),
        "    algorithms: [ES256]\n",
        API_ROUTE,
    )
    .await;
    let es256 = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE_ES256))
        .await;
    assert_allowed(
        "ES256 token, ES256 allowed",
        &stack.get_with("/api/x", &es256).await,
    );
    for resource in [RESOURCE, RESOURCE_EDDSA] {
        let token = stack
            .idp
            .client_credentials(READER, READER_SECRET, "orders.read", Some(resource))
            .await;
        crate::bearer::assert_invalid_token(
            &format!("token for {resource} when only ES256 is allowed"),
            &stack.get_with("/api/x", &token).await,
            ALGORITHM,
        );
    }
    assert_eq!(
        stack.backend.count(),
        1,
        "only the ES256 request reached the backend"
    );
}

//! What does checking a bearer token cost on the API hot path?
//!
//! RS256, ES256 and EdDSA tokens signed with the test provider's keys (`tests/idp/keys`) are
//! validated against a warm key set: "cold" misses the verified-token cache every time (full
//! signature and claims check), "cached" hits it (the product target is at most 2 µs).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis::oidc::http::Client;
use portcullis::token::cache::TokenCache;
use portcullis::token::keys::KeySet;
use portcullis::token::source::{SourceId, unix_now};
use portcullis::token::{KeySource, TokenProvider, TokenSettings, algorithms};

const ISSUER: &str = "http://127.0.0.1:1/issuer";
const AUDIENCE: &str = "urn:portcullis:api";

fn keys_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp/keys")
}

fn provider() -> TokenProvider {
    let jwks = std::fs::read_to_string(keys_dir().join("primary.json")).expect("test JWKS");
    let (set, _) = KeySet::parse(&serde_json::from_str(&jwks).expect("JSON"));
    let id = SourceId {
        name: "bench".into(),
        issuer: None,
        jwks_uri: None,
        introspection_endpoint: None,
    };
    TokenProvider::new(TokenSettings {
        name: Arc::from("bench"),
        source: Arc::new(KeySource::with_keys(
            id,
            Client::new(Duration::from_secs(1)),
            set,
        )),
        algorithms: algorithms::DEFAULT.to_vec(),
        issuer: Some(ISSUER.into()),
        audiences: vec![AUDIENCE.into()],
        leeway: 30,
        opaque: false,
        client: None,
        introspection_ttl: Duration::from_secs(60),
    })
}

fn token(alg: Algorithm, kid: &str, pem: &str) -> String {
    let pem = std::fs::read(keys_dir().join(pem)).expect("test key");
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .expect("valid PEM");
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    header.typ = Some("at+jwt".into());
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "client-1", "scope": "orders.read orders.write",
        "exp": unix_now() + 3600, "iat": unix_now(), "jti": "bench",
    });
    encode(&header, &claims, &key).expect("signed")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let provider = provider();
    let mut group = c.benchmark_group("bearer");
    for (name, alg, kid, pem) in [
        ("rs256", Algorithm::RS256, "rsa-1", "rsa-1.pem"),
        ("es256", Algorithm::ES256, "ec-1", "ec-1.pem"),
        ("eddsa", Algorithm::EdDSA, "ed-1", "ed-1.pem"),
    ] {
        let t = token(alg, kid, pem);
        let disabled = TokenCache::new(0);
        assert!(
            rt.block_on(provider.validate(&t, &disabled)).is_ok(),
            "{name} token validates"
        );
        group.bench_function(format!("{name}_cold"), |b| {
            b.iter(|| rt.block_on(provider.validate(black_box(&t), &disabled)))
        });
        let cache = TokenCache::new(1024);
        group.bench_function(format!("{name}_cached"), |b| {
            b.iter(|| rt.block_on(provider.validate(black_box(&t), &cache)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

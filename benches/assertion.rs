//! What does the signed identity assertion cost on the proxied-request path?
//!
//! "sign" signs a fresh Ed25519 assertion every time (claims serialisation, base64url, one
//! signature); "cached" is `sign_cached` hitting its cache (claims serialisation, one SHA-256,
//! a shard lock), which is what most requests of a session pay; "jwks" renders the key set.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::assertion::{AssertionSettings, AssertionSigner};
use serde_json::{Map, Value, json};

const SECRET: &[u8] = b"bench secret: at least thirty-two bytes long";
const NOW: u64 = 1_750_000_000;

fn claims() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "sub": "248289761001",
        "email": "jane.doe@example.com",
        "name": "Jane Doe",
        "groups": ["engineering", "on-call", "admins"],
    }) else {
        unreachable!("an object literal")
    };
    map
}

fn bench(c: &mut Criterion) {
    let signer = AssertionSigner::new(
        Some(SECRET),
        AssertionSettings::new("https://gate.example.com"),
    );
    let claims = claims();
    let mut group = c.benchmark_group("assertion");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("sign", |b| {
        b.iter(|| signer.sign(black_box("app"), black_box(&claims), NOW))
    });
    signer
        .sign_cached(b"session", "app", &claims, NOW)
        .expect("signed");
    group.bench_function("cached", |b| {
        b.iter(|| signer.sign_cached(black_box(b"session"), black_box("app"), &claims, NOW))
    });
    group.bench_function("jwks", |b| b.iter(|| signer.jwks(black_box(NOW))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

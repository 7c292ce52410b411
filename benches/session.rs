//! What does reading the session cookie cost on a `session` route's request path?
//!
//! The session is what a sign-in with an OpenID Provider leaves in the cookie store: the ID
//! token's identity claims, a JWT access token (~900 bytes), an opaque refresh token and the ID
//! token itself (~1 KB), sealed with AES-256-GCM into one `__Host-portcullis` cookie of ~3 KB.
//!
//! - "read": `Cookies::read` on a browser's `Cookie` header (a few unrelated cookies, then the
//!   session's): header split, base64 decode, AES-GCM open, JSON parse into `SessionData`.
//!   Every request of a signed-in browser pays this.
//! - "write": `Cookies::write` (JSON, seal, chunking, `Set-Cookie` values): paid at sign-in,
//!   refresh, and once per idle_timeout / 8 ("touch").
//! - the rest split "read" into its parts, to show where its time goes: "open" (the cookie
//!   crate's private jar, as `Cookies::read` uses it: base64 decode + AES-256-GCM open, with a
//!   fresh `CookieJar` and two `String` copies), "parse" (`serde_json` into `SessionData`) and
//!   "claims_clone" (the per-request copy of the claims map the route's policy is evaluated on).
//! - "cached_sketch": NOT the gateway's code — a sketch of the proposed cache of opened sessions,
//!   to size what a hit would cost: find the session cookie in the header, look its sealed value
//!   up in a map keyed by its last 32 characters (the base64 of the AES-GCM tag), compare the
//!   whole value with the entry's (so a hit is exactly what opening that value gives), under a
//!   mutex, and clone an `Arc` of the opened session.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, CookieJar, Key};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header};
use portcullis::config::{SessionStore, SessionsConfig};
use portcullis::session::{Cookies, SessionData, request_cookies};
use serde_json::{Map, Value, json};

const NOW: u64 = 1_750_000_000;

fn config() -> SessionsConfig {
    SessionsConfig {
        store: SessionStore::Cookie,
        keys: vec![b"bench session secret: 32 bytes!!".to_vec()],
        lifetime: Duration::from_secs(12 * 3600),
        idle_timeout: Duration::from_secs(3600),
        cookie_name: "portcullis".into(),
        redis: None,
        allowed_redirect_hosts: Vec::new(),
        max_pending_sign_ins: 5,
        refresh_before: Duration::from_secs(60),
        secure_cookies: true,
        cookie_domain: None,
    }
}

/// A base64url string of `len` characters standing in for a JWT segment (its content does not
/// matter to the session: only its size does).
fn segment(len: usize, seed: u8) -> String {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    let mut s = URL_SAFE_NO_PAD.encode(bytes);
    s.truncate(len);
    s
}

/// A JWT-shaped token of about `len` characters.
fn jwt(len: usize, seed: u8) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"at+jwt","kid":"rsa-1"}"#);
    let signature = segment(342, seed); // RS256 with a 2048-bit key
    let payload = segment(len.saturating_sub(header.len() + signature.len() + 2), seed);
    format!("{header}.{payload}.{signature}")
}

/// The session a sign-in leaves: what `SignInProvider::complete` keeps of an ID token's claims
/// (token claims such as `aud`, `exp`, `nonce` removed, `scope` added), and the three tokens.
fn session() -> SessionData {
    let Value::Object(claims) = json!({
        "iss": "https://idp.corp.example",
        "sub": "248289761001",
        "sid": "Z1ha4xXf0y2l8Vq3nUo7cW",
        "auth_time": NOW - 30,
        "email": "jane.doe@corp.example",
        "email_verified": true,
        "name": "Jane Doe",
        "preferred_username": "jane.doe",
        "groups": ["staff", "engineering", "on-call"],
        "department": "eng",
        "region": "eu",
        "scope": "openid email profile",
    }) else {
        unreachable!("an object literal")
    };
    let mut s = SessionData::new("corp", claims, NOW);
    s.access_token = Some(jwt(900, 1));
    s.access_expires = Some(NOW + 3600);
    s.refresh_token = Some(segment(43, 2));
    s.id_token = Some(jwt(1_050, 3));
    s
}

/// The `Cookie` header a browser sends: a few unrelated cookies, then the session's chunks.
fn browser(set_cookies: &[String]) -> HeaderMap {
    let mut pairs = vec!["_ga=GA1.1.1234567890.1750000000", "theme=dark", "lang=en"];
    pairs.extend(
        set_cookies
            .iter()
            .filter_map(|c| c.split(';').next())
            .collect::<Vec<_>>(),
    );
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        HeaderValue::from_str(&pairs.join("; ")).expect("a valid header"),
    );
    h
}

/// The sketched cache: opened sessions by the tail of their sealed value (the base64 of the
/// AES-GCM tag, different for every seal), each entry holding the whole value, compared on a hit.
type Cache = Mutex<HashMap<[u8; 32], (Box<str>, Arc<SessionData>)>>;

fn tail(sealed: &str) -> Option<[u8; 32]> {
    let b = sealed.as_bytes();
    b.get(b.len().checked_sub(32)?..)?.try_into().ok()
}

/// A hit of the sketched cache for the request's session cookie.
fn cached(cache: &Cache, name: &str, headers: &HeaderMap) -> Option<Arc<SessionData>> {
    let (_, value) = request_cookies(headers).find(|(n, _)| *n == name)?;
    let key = tail(value)?;
    let map = cache.lock().ok()?;
    let (sealed, session) = map.get(&key)?;
    (**sealed == *value).then(|| session.clone())
}

fn bench(c: &mut Criterion) {
    let cookies = Cookies::new(&config());
    let session = session();
    let set = cookies.write(&session, 0, NOW).expect("fits");
    assert_eq!(set.len(), 1, "the realistic session fits one cookie");
    let headers = browser(&set);
    let read = cookies.read(&headers);
    assert_eq!(read.session.as_ref(), Some(&session));
    let cookie_len = headers
        .get(header::COOKIE)
        .map_or(0, |v| v.as_bytes().len());
    let json = serde_json::to_string(&session).expect("serialises");
    eprintln!(
        "session: {} bytes of JSON, {} bytes of Cookie header",
        json.len(),
        cookie_len
    );

    let mut group = c.benchmark_group("session");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(cookie_len as u64));
    group.bench_function("read", |b| b.iter(|| cookies.read(black_box(&headers))));
    group.bench_function("write", |b| {
        b.iter(|| cookies.write(black_box(&session), 0, NOW))
    });

    // The parts of "read".
    let key = Key::derive_from(&config().keys[0]);
    let sealed = set[0]
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .and_then(|(_, value)| value.split_once('.'))
        .map(|(_, data)| data.to_owned())
        .expect("a sealed value");
    group.bench_function("open", |b| {
        b.iter(|| {
            let jar = CookieJar::new();
            jar.private(&key)
                .decrypt(Cookie::new("__Host-portcullis", black_box(sealed.clone())))
                .map(|c| c.value().to_owned())
        })
    });
    group.bench_function("parse", |b| {
        b.iter(|| serde_json::from_str::<SessionData>(black_box(&json)))
    });
    let claims: Map<String, Value> = session.claims.clone();
    group.bench_function("claims_clone", |b| b.iter(|| black_box(&claims).clone()));

    // The sketch of a cache hit, with the map holding 10,000 other sessions.
    let value = set[0]
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .expect("a cookie value");
    let cache: Cache = Mutex::new(HashMap::new());
    {
        let mut map = cache.lock().expect("not poisoned");
        for _ in 0..10_000 {
            let other = cookies.write(&session, 0, NOW).expect("fits");
            let v = other[0]
                .split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .map(|(_, value)| value.to_owned())
                .expect("a cookie value");
            map.insert(
                tail(&v).expect("long"),
                (v.into(), Arc::new(session.clone())),
            );
        }
        map.insert(
            tail(&value).expect("long"),
            (value.into(), Arc::new(session.clone())),
        );
    }
    assert!(cached(&cache, cookies.name(), &headers).is_some());
    group.bench_function("cached_sketch", |b| {
        b.iter(|| cached(&cache, cookies.name(), black_box(&headers)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

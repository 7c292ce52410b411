//! The signed identity assertion: a short-lived JWT the gateway adds upstream so an app can
//! verify who is calling instead of trusting bare `X-Forwarded-*` headers.
//!
//! Why Ed25519 with *derived* keys: every instance of the gateway that shares the same secret
//! must sign with, and publish at `{auth_prefix}/jwks.json`, the same keys without talking to
//! the others. The key pair for epoch `e` (`e = unix_time / rotation`) is therefore a pure
//! function of the secret: its Ed25519 seed is
//! `HKDF-SHA256(ikm = secret, salt = "portcullis assertion",
//! info = "portcullis assertion key v1" || e as u64 big-endian)`, 32 bytes. Changing this
//! derivation changes every published key, so it is pinned by a test.
//!
//! Keys and rotation:
//! - tokens are signed with the current epoch's key;
//! - the key set publishes epochs `e`, `e - 1` and `e + 1` (in that order, the signing key
//!   first): a token signed just before a rotation still verifies after it (the rotation is never
//!   shorter than the token lifetime), an instance whose clock is slightly ahead signs with a key
//!   the others already publish, and an app that cached the key set during the previous epoch
//!   already holds the current key;
//! - `kid` is base64url of the first 12 bytes of SHA-256 of the public key: stable for a key,
//!   identical on every instance.
//!
//! Without a secret (or with one shorter than [`MIN_SECRET_LEN`]) the signer draws 32 random
//! bytes at start: every instance then has its own keys, and an app must fetch the key set of
//! the very instance that signed — fine for one instance, wrong behind a load balancer.
//!
//! Claims: the gateway owns `iss`, `aud`, `iat` and `exp` (`exp = iat + lifetime`); same-named
//! entries among the identity claims — and `nbf` and `jti` — are dropped, so the token never
//! carries two values for one name. There is no `jti`: [`AssertionSigner::sign_cached`] hands
//! the same token to many requests, so an id would not be unique per request, and an app using
//! `jti` for replay detection would refuse legitimate traffic. The assertion proves identity on
//! the gateway-to-app hop; it is not a one-time token.
//!
//! Cost: an Ed25519 signature is tens of microseconds and the assertion is added to every
//! proxied request, so [`AssertionSigner::sign_cached`] reuses a token while more than half its
//! lifetime is left, in a bounded sharded cache. Key pairs are derived once per epoch, never per
//! request.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use aws_lc_rs::{digest, hkdf, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde_json::{Map, Value, json};

/// Default token lifetime.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// Default key rotation period.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Default bound on the number of tokens kept by [`AssertionSigner::sign_cached`].
pub const DEFAULT_CACHE_ENTRIES: usize = 8192;

/// The shortest secret used as key material; a shorter one is ignored (random keys instead).
pub const MIN_SECRET_LEN: usize = 32;

/// HKDF salt: separates the assertion keys from every other use of the gateway secret.
const HKDF_SALT: &[u8] = b"portcullis assertion";

/// HKDF info prefix; the epoch (u64 big-endian) follows.
const HKDF_INFO: &[u8] = b"portcullis assertion key v1";

/// Claims the gateway sets itself (or, for `nbf` and `jti`, deliberately leaves out).
const RESERVED: [&str; 6] = ["iss", "aud", "iat", "exp", "nbf", "jti"];

/// Derived key pairs kept: the three published, plus slack for a clock that steps.
const KEPT_EPOCHS: usize = 6;

/// Cache shards (a shard is chosen by the first byte of the entry's digest).
const SHARDS: usize = 16;

/// What the gateway puts in its assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionSettings {
    /// `iss` of every assertion (e.g. the gateway's public base URL).
    pub issuer: String,
    /// How long an assertion is valid (`exp - iat`), in whole seconds, at least 1s.
    pub lifetime: Duration,
    /// How long a signing key is current, in whole seconds; raised to `lifetime` if shorter,
    /// so a token always verifies against the key set for as long as it lives.
    pub rotation: Duration,
}

impl AssertionSettings {
    /// Settings for `issuer` with the default lifetime (60s) and rotation (24h).
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            lifetime: DEFAULT_LIFETIME,
            rotation: DEFAULT_ROTATION,
        }
    }
}

/// Why an assertion could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// No secret was given and the system random generator failed at start.
    #[error("no assertion key material: the system random generator failed at start")]
    NoKeyMaterial,
    /// Deriving or using the key pair of an epoch failed.
    #[error("the assertion key for epoch {0} could not be derived or used")]
    Key(u64),
    /// The claims could not be written as JSON.
    #[error("the assertion claims could not be serialised")]
    Encoding,
}

/// One epoch's key pair and what is precomputed from it.
struct EpochKey {
    epoch: u64,
    pair: Ed25519KeyPair,
    kid: String,
    /// base64url of the JOSE header, ready to be the first part of a token.
    header: String,
    /// base64url of the public key (JWK `x`).
    x: String,
}

/// Signs identity assertions and publishes their key set. `Send + Sync`; share it in an `Arc`.
pub struct AssertionSigner {
    /// HKDF pseudorandom key from the secret (or random bytes); `None` if randomness failed.
    prk: Option<hkdf::Prk>,
    /// Whether the keys come from a configured secret (shared by every instance).
    shared: bool,
    issuer: String,
    /// `issuer` as a JSON string, quotes included.
    issuer_json: String,
    lifetime: u64,
    rotation: u64,
    keys: ArcSwap<Vec<Arc<EpochKey>>>,
    cache: TokenCache,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .field("rotation", &self.rotation)
            .field("shared_keys", &self.shared)
            .field("cached_tokens", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// A signer whose keys derive from `secret` (the gateway secret's bytes), or from 32 random
    /// bytes drawn now when `secret` is `None` or shorter than [`MIN_SECRET_LEN`] — then this
    /// instance's keys are its own. Holds at most [`DEFAULT_CACHE_ENTRIES`] cached tokens.
    pub fn new(secret: Option<&[u8]>, settings: AssertionSettings) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT);
        let (prk, shared) = match secret {
            Some(s) if s.len() >= MIN_SECRET_LEN => (Some(salt.extract(s)), true),
            short => {
                if short.is_some() {
                    tracing::warn!(
                        "the assertion secret is shorter than {MIN_SECRET_LEN} bytes; \
                         using random per-instance keys instead"
                    );
                }
                let mut ikm = [0u8; 32];
                let prk = rand::fill(&mut ikm).ok().map(|()| salt.extract(&ikm));
                ikm.fill(0);
                std::hint::black_box(&ikm);
                (prk, false)
            }
        };
        let lifetime = settings.lifetime.as_secs().max(1);
        let rotation = settings.rotation.as_secs().max(lifetime);
        let issuer_json = Value::from(settings.issuer.as_str()).to_string();
        Self {
            prk,
            shared,
            issuer: settings.issuer,
            issuer_json,
            lifetime,
            rotation,
            keys: ArcSwap::from_pointee(Vec::new()),
            cache: TokenCache::new(DEFAULT_CACHE_ENTRIES),
        }
    }

    /// The same signer with a cache of about `entries` tokens (0 disables caching).
    pub fn with_cache_capacity(mut self, entries: usize) -> Self {
        self.cache = TokenCache::new(entries);
        self
    }

    /// Whether the keys derive from a configured secret, i.e. are the same on every instance.
    pub fn shared_keys(&self) -> bool {
        self.shared
    }

    /// Signs an assertion for `audience` carrying `claims` (the identity: `sub`, `email`,
    /// `groups`, `name`… as given), with `iss`, `aud`, `iat = now_unix` and
    /// `exp = now_unix + lifetime`; the header is `{"alg":"EdDSA","typ":"JWT","kid":…}`.
    /// Given claims named `iss`, `aud`, `iat`, `exp`, `nbf` or `jti` are dropped.
    pub fn sign(
        &self,
        audience: &str,
        claims: &Map<String, Value>,
        now_unix: u64,
    ) -> Result<String, AssertionError> {
        let identity = identity_json(claims)?;
        self.sign_identity(audience, &identity, now_unix)
    }

    /// Like [`sign`](Self::sign), but hands back the token signed earlier for the same
    /// `cache_key` (e.g. the session), `audience` and claims while more than half its lifetime
    /// is left. The claims are part of the cache key, so a changed identity is never served a
    /// stale token. Identical concurrent misses may each sign; both results are valid.
    pub fn sign_cached(
        &self,
        cache_key: &[u8],
        audience: &str,
        claims: &Map<String, Value>,
        now_unix: u64,
    ) -> Result<Arc<str>, AssertionError> {
        let identity = identity_json(claims)?;
        let digest = cache_digest(cache_key, audience, &identity);
        if let Some(token) = self.cache.get(&digest, now_unix, self.lifetime) {
            return Ok(token);
        }
        let token: Arc<str> = Arc::from(self.sign_identity(audience, &identity, now_unix)?);
        self.cache.put(
            digest,
            CachedToken {
                token: Arc::clone(&token),
                iat: now_unix,
                exp: now_unix.saturating_add(self.lifetime),
            },
        );
        Ok(token)
    }

    /// The key set (JWKS, RFC 7517) to publish at `now_unix`, as JSON:
    /// `{"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"},…]}`
    /// with the keys of the current, previous and next epochs, the signing key first. A key that
    /// cannot be derived is left out (none can, if randomness failed at start).
    pub fn jwks(&self, now_unix: u64) -> Bytes {
        let epoch = now_unix / self.rotation;
        let keys: Vec<Value> = [Some(epoch), epoch.checked_sub(1), epoch.checked_add(1)]
            .into_iter()
            .flatten()
            .filter_map(|e| self.key(e).ok())
            .map(|k| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": k.x,
                    "kid": k.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        let doc = json!({ "keys": keys });
        Bytes::from(doc.to_string())
    }

    /// Signs a token whose identity claims are the pre-serialised `identity` fragment.
    fn sign_identity(
        &self,
        audience: &str,
        identity: &[u8],
        now: u64,
    ) -> Result<String, AssertionError> {
        let key = self.key(now / self.rotation)?;
        let exp = now.saturating_add(self.lifetime);
        let mut payload =
            Vec::with_capacity(64 + self.issuer_json.len() + audience.len() + identity.len());
        payload.extend_from_slice(b"{\"iss\":");
        payload.extend_from_slice(self.issuer_json.as_bytes());
        payload.extend_from_slice(b",\"aud\":");
        serde_json::to_writer(&mut payload, audience).map_err(|_| AssertionError::Encoding)?;
        write!(payload, ",\"iat\":{now},\"exp\":{exp}").map_err(|_| AssertionError::Encoding)?;
        payload.extend_from_slice(identity);
        payload.push(b'}');

        let mut token = String::with_capacity(key.header.len() + payload.len() * 4 / 3 + 90);
        token.push_str(&key.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = key
            .pair
            .try_sign(token.as_bytes())
            .map_err(|_| AssertionError::Key(key.epoch))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// The key pair of `epoch`, derived on first use and kept.
    fn key(&self, epoch: u64) -> Result<Arc<EpochKey>, AssertionError> {
        if let Some(k) = self.keys.load().iter().find(|k| k.epoch == epoch) {
            return Ok(Arc::clone(k));
        }
        let key = Arc::new(self.derive(epoch)?);
        self.keys.rcu(|current| {
            let mut next: Vec<Arc<EpochKey>> = current
                .iter()
                .filter(|k| k.epoch != epoch)
                .cloned()
                .collect();
            next.push(Arc::clone(&key));
            if next.len() > KEPT_EPOCHS {
                next.sort_by_key(|k| k.epoch.abs_diff(epoch));
                next.truncate(KEPT_EPOCHS);
            }
            next
        });
        Ok(key)
    }

    /// Derives the key pair of `epoch` (see the module documentation).
    fn derive(&self, epoch: u64) -> Result<EpochKey, AssertionError> {
        let prk = self.prk.as_ref().ok_or(AssertionError::NoKeyMaterial)?;
        let mut seed = derive_seed(prk, epoch).ok_or(AssertionError::Key(epoch))?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed);
        seed.fill(0);
        std::hint::black_box(&seed);
        let pair = pair.map_err(|_| AssertionError::Key(epoch))?;
        let public = pair.public_key().as_ref();
        let kid = kid_of(public);
        let header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#));
        let x = URL_SAFE_NO_PAD.encode(public);
        Ok(EpochKey {
            epoch,
            pair,
            kid,
            header,
            x,
        })
    }
}

/// The Ed25519 seed of `epoch`: HKDF-Expand(prk, info = [`HKDF_INFO`] || epoch BE, 32).
fn derive_seed(prk: &hkdf::Prk, epoch: u64) -> Option<[u8; 32]> {
    let epoch = epoch.to_be_bytes();
    let info: [&[u8]; 2] = [HKDF_INFO, &epoch];
    let mut seed = [0u8; 32];
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut seed))
        .ok()?;
    Some(seed)
}

/// base64url of the first 12 bytes of SHA-256 of the public key.
fn kid_of(public: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, public);
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..12])
}

/// The identity claims as a JSON fragment `,"name":value…` (empty for no claims), without the
/// names the gateway owns.
fn identity_json(claims: &Map<String, Value>) -> Result<Vec<u8>, AssertionError> {
    let mut out = Vec::with_capacity(claims.len() * 32);
    for (name, value) in claims {
        if RESERVED.contains(&name.as_str()) {
            continue;
        }
        out.push(b',');
        serde_json::to_writer(&mut out, name).map_err(|_| AssertionError::Encoding)?;
        out.push(b':');
        serde_json::to_writer(&mut out, value).map_err(|_| AssertionError::Encoding)?;
    }
    Ok(out)
}

/// The cache key: SHA-256 over the length-prefixed caller key and audience, then the claims.
fn cache_digest(cache_key: &[u8], audience: &str, identity: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(cache_key.len() as u64).to_be_bytes());
    ctx.update(cache_key);
    ctx.update(&(audience.len() as u64).to_be_bytes());
    ctx.update(audience.as_bytes());
    ctx.update(identity);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A signed token and its times.
struct CachedToken {
    token: Arc<str>,
    iat: u64,
    exp: u64,
}

/// Recently signed tokens: sharded, bounded; a full shard is emptied wholesale (its tokens are
/// at most half a lifetime from being re-signed anyway).
struct TokenCache {
    shards: Vec<Mutex<HashMap<[u8; 32], CachedToken>>>,
    per_shard: usize,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> Option<&Mutex<HashMap<[u8; 32], CachedToken>>> {
        self.shards.get(usize::from(key[0]) % SHARDS)
    }

    /// The token for `key` if it was issued no later than `now` and more than half of
    /// `lifetime` is left.
    fn get(&self, key: &[u8; 32], now: u64, lifetime: u64) -> Option<Arc<str>> {
        let shard = self.shard(key)?.lock().ok()?;
        let entry = shard.get(key)?;
        let reusable =
            entry.iat <= now && entry.exp > now && (entry.exp - now).saturating_mul(2) > lifetime;
        reusable.then(|| Arc::clone(&entry.token))
    }

    fn put(&self, key: [u8; 32], entry: CachedToken) {
        if self.per_shard == 0 {
            return;
        }
        let Some(Ok(mut shard)) = self.shard(&key).map(Mutex::lock) else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.clear();
        }
        shard.insert(key, entry);
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
    const ISSUER: &str = "https://gate.example.com";
    const DAY: u64 = 24 * 60 * 60;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs()
    }

    fn signer(secret: Option<&[u8]>) -> AssertionSigner {
        AssertionSigner::new(secret, AssertionSettings::new(ISSUER))
    }

    fn claims() -> Map<String, Value> {
        let Value::Object(map) = json!({
            "sub": "user-1",
            "email": "ada@example.com",
            "groups": ["admins", "dev"],
            "name": "Ada \"Countess\" Lovelace",
        }) else {
            unreachable!("an object literal")
        };
        map
    }

    fn jwk_set(signer: &AssertionSigner, now: u64) -> JwkSet {
        serde_json::from_slice(&signer.jwks(now)).expect("the JWKS parses as a JwkSet")
    }

    fn kid(token: &str) -> String {
        jsonwebtoken::decode_header(token)
            .expect("a JOSE header")
            .kid
            .expect("a kid")
    }

    /// Verifies `token` the way an app would: key by `kid` from the published JWKS.
    fn verify(
        token: &str,
        jwks: &JwkSet,
        audience: &str,
    ) -> jsonwebtoken::errors::Result<Map<String, Value>> {
        let jwk = jwks
            .find(&kid(token))
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
        let key = DecodingKey::from_jwk(jwk)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map(|d| d.claims)
    }

    fn payload(token: &str) -> String {
        let part = token.split('.').nth(1).expect("a payload part");
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("UTF-8")
    }

    #[test]
    fn a_signed_token_verifies_against_the_published_key_set() {
        let s = signer(Some(SECRET));
        let t = now();
        let token = s.sign("app", &claims(), t).expect("signed");
        let got = verify(&token, &jwk_set(&s, t), "app").expect("verifies");
        assert_eq!(got["iss"], ISSUER);
        assert_eq!(got["aud"], "app");
        assert_eq!(got["iat"], t);
        assert_eq!(got["exp"], t + 60);
        assert_eq!(got["sub"], "user-1");
        assert_eq!(got["groups"], json!(["admins", "dev"]));
        assert_eq!(got["name"], "Ada \"Countess\" Lovelace");
        assert!(!got.contains_key("jti"));

        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn the_wrong_audience_is_refused() {
        let s = signer(Some(SECRET));
        let t = now();
        let token = s.sign("app", &claims(), t).expect("signed");
        assert!(verify(&token, &jwk_set(&s, t), "other").is_err());
    }

    #[test]
    fn the_lifetime_sets_exp() {
        let mut settings = AssertionSettings::new(ISSUER);
        settings.lifetime = Duration::from_secs(300);
        let s = AssertionSigner::new(Some(SECRET), settings);
        let token = s.sign("app", &claims(), 1_000).expect("signed");
        let p: Value = serde_json::from_str(&payload(&token)).expect("JSON");
        assert_eq!(p["exp"], 1_300);
    }

    #[test]
    fn an_expired_token_is_refused_by_a_verifier() {
        let s = signer(Some(SECRET));
        let t = now() - 3600;
        let token = s.sign("app", &claims(), t).expect("signed");
        let err = verify(&token, &jwk_set(&s, t), "app").expect_err("expired");
        assert_eq!(
            err.kind(),
            &jsonwebtoken::errors::ErrorKind::ExpiredSignature
        );
    }

    #[test]
    fn gateway_claims_cannot_be_overridden_or_duplicated() {
        let s = signer(Some(SECRET));
        let mut c = claims();
        c.insert("iss".into(), json!("https://evil"));
        c.insert("aud".into(), json!("everyone"));
        c.insert("exp".into(), json!(u64::MAX));
        c.insert("iat".into(), json!(0));
        c.insert("nbf".into(), json!(0));
        c.insert("jti".into(), json!("fixed"));
        let token = s.sign("app", &c, 5_000).expect("signed");
        let raw = payload(&token);
        for name in RESERVED {
            let quoted = format!("\"{name}\":");
            let expected = usize::from(!matches!(name, "nbf" | "jti"));
            assert_eq!(raw.matches(&quoted).count(), expected, "{name} in {raw}");
        }
        let p: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(p["iss"], ISSUER);
        assert_eq!(p["aud"], "app");
        assert_eq!(p["iat"], 5_000);
        assert_eq!(p["exp"], 5_060);
    }

    #[test]
    fn an_empty_identity_still_makes_valid_json() {
        let s = signer(Some(SECRET));
        let token = s.sign("app", &Map::new(), 7).expect("signed");
        let p: Value = serde_json::from_str(&payload(&token)).expect("JSON");
        assert_eq!(p, json!({"iss": ISSUER, "aud": "app", "iat": 7, "exp": 67}));
    }

    #[test]
    fn a_token_signed_in_one_epoch_verifies_against_the_next_epochs_key_set() {
        let s = signer(Some(SECRET));
        let t = now();
        let token = s.sign("app", &claims(), t).expect("signed");
        let next = jwk_set(&s, t + DAY);
        assert!(verify(&token, &next, "app").is_ok());
        // ...and against the previous epoch's set (a verifier whose clock is behind).
        let previous = jwk_set(&s, t - DAY);
        assert!(verify(&token, &previous, "app").is_ok());
        // Two epochs on, the key is no longer published.
        let later = jwk_set(&s, t + 2 * DAY);
        assert!(later.find(&kid(&token)).is_none());
    }

    #[test]
    fn the_key_rotates_with_the_epoch() {
        let s = signer(Some(SECRET));
        let a = s.sign("app", &claims(), 10 * DAY).expect("signed");
        let b = s
            .sign("app", &claims(), 10 * DAY + DAY - 1)
            .expect("signed");
        let c = s.sign("app", &claims(), 11 * DAY).expect("signed");
        assert_eq!(kid(&a), kid(&b));
        assert_ne!(kid(&a), kid(&c));
    }

    #[test]
    fn the_key_set_holds_previous_current_and_next_keys_signing_key_first() {
        let s = signer(Some(SECRET));
        let t = 10 * DAY + 5;
        let set = jwk_set(&s, t);
        let kids: Vec<String> = set
            .keys
            .iter()
            .map(|k| k.common.key_id.clone().expect("kid"))
            .collect();
        let signing = kid(&s.sign("a", &Map::new(), t).expect("signed"));
        let previous = kid(&s.sign("a", &Map::new(), t - DAY).expect("signed"));
        let next = kid(&s.sign("a", &Map::new(), t + DAY).expect("signed"));
        assert_eq!(kids, vec![signing, previous, next]);

        let raw: Value = serde_json::from_slice(&s.jwks(t)).expect("JSON");
        for key in raw["keys"].as_array().expect("keys") {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert_eq!(key["alg"], "EdDSA");
            assert_eq!(key["use"], "sig");
            let x = URL_SAFE_NO_PAD
                .decode(key["x"].as_str().expect("x"))
                .expect("base64url");
            assert_eq!(x.len(), 32);
            assert_eq!(key["kid"], kid_of(&x));
            assert!(key.get("d").is_none(), "no private part");
        }
    }

    #[test]
    fn the_first_epoch_has_no_previous_key() {
        let s = signer(Some(SECRET));
        assert_eq!(jwk_set(&s, 0).keys.len(), 2);
    }

    #[test]
    fn the_gateways_own_token_module_accepts_the_key_set() {
        let s = signer(Some(SECRET));
        let t = 10 * DAY + 100;
        let doc: Value = serde_json::from_slice(&s.jwks(t)).expect("JSON");
        let (set, dropped) = crate::token::keys::KeySet::parse(&doc);
        assert_eq!(set.len(), 3, "dropped: {dropped:?}");
        let token = s.sign("app", &claims(), t).expect("signed");
        assert!(set.get(&kid(&token)).is_some());
    }

    #[test]
    fn signers_sharing_a_secret_publish_and_sign_with_the_same_keys() {
        let a = signer(Some(SECRET));
        let b = signer(Some(SECRET));
        let t = now();
        assert_eq!(a.jwks(t), b.jwks(t));
        assert!(a.shared_keys());
        // A token from one instance verifies against the other's key set.
        let token = a.sign("app", &claims(), t).expect("signed");
        assert!(verify(&token, &jwk_set(&b, t), "app").is_ok());
        // Ed25519 is deterministic: same input, same token.
        assert_eq!(token, b.sign("app", &claims(), t).expect("signed"));
    }

    #[test]
    fn different_secrets_give_different_keys() {
        let a = signer(Some(SECRET));
        let b = signer(Some(b"another secret, also 32 bytes or more!"));
        let t = now();
        assert_ne!(a.jwks(t), b.jwks(t));
        let token = a.sign("app", &claims(), t).expect("signed");
        assert!(verify(&token, &jwk_set(&b, t), "app").is_err());
    }

    #[test]
    fn without_a_secret_each_signer_has_its_own_keys() {
        let a = signer(None);
        let b = signer(None);
        assert!(!a.shared_keys());
        let t = now();
        assert_ne!(a.jwks(t), b.jwks(t));
        let token = a.sign("app", &claims(), t).expect("signed");
        assert!(verify(&token, &jwk_set(&a, t), "app").is_ok());
    }

    #[test]
    fn a_short_secret_is_not_used_as_key_material() {
        let short = signer(Some(b"too short"));
        let again = signer(Some(b"too short"));
        assert!(!short.shared_keys());
        assert_ne!(short.jwks(0), again.jwks(0));
    }

    #[test]
    fn a_tampered_token_fails() {
        let s = signer(Some(SECRET));
        let t = now();
        let token = s.sign("app", &claims(), t).expect("signed");
        let jwks = jwk_set(&s, t);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();

        // Another subject, re-encoded: the signature no longer matches.
        let forged = payload(&token).replace("user-1", "user-2");
        parts[1] = URL_SAFE_NO_PAD.encode(forged);
        assert!(verify(&parts.join("."), &jwks, "app").is_err());

        // One flipped signature bit.
        let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).expect("base64url");
        sig[0] ^= 1;
        let mut tampered: Vec<String> = token.split('.').map(str::to_owned).collect();
        tampered[2] = URL_SAFE_NO_PAD.encode(sig);
        assert!(verify(&tampered.join("."), &jwks, "app").is_err());
    }

    #[test]
    fn sign_cached_reuses_a_token_for_half_its_lifetime() {
        let s = signer(Some(SECRET));
        let t = 1_000_000;
        let first = s
            .sign_cached(b"session-1", "app", &claims(), t)
            .expect("signed");
        let again = s
            .sign_cached(b"session-1", "app", &claims(), t + 29)
            .expect("signed");
        assert!(Arc::ptr_eq(&first, &again), "reused within half-life");
        // 30s left of 60 is not more than half: a fresh token.
        let fresh = s
            .sign_cached(b"session-1", "app", &claims(), t + 30)
            .expect("signed");
        assert_ne!(first, fresh);
        assert!(payload(&fresh).contains(&format!("\"iat\":{}", t + 30)));
        // And the fresh one is reused from then on.
        let later = s
            .sign_cached(b"session-1", "app", &claims(), t + 59)
            .expect("signed");
        assert!(Arc::ptr_eq(&fresh, &later));
    }

    #[test]
    fn sign_cached_is_keyed_by_caller_key_audience_and_claims() {
        let s = signer(Some(SECRET));
        let t = 1_000_000;
        let base = s.sign_cached(b"s1", "app", &claims(), t).expect("signed");
        let other_key = s.sign_cached(b"s2", "app", &claims(), t).expect("signed");
        let other_aud = s.sign_cached(b"s1", "api", &claims(), t).expect("signed");
        let mut changed = claims();
        changed.insert("email".into(), json!("new@example.com"));
        let other_claims = s.sign_cached(b"s1", "app", &changed, t).expect("signed");
        assert!(!Arc::ptr_eq(&base, &other_key));
        assert!(payload(&other_aud).contains("\"aud\":\"api\""));
        assert!(payload(&other_claims).contains("new@example.com"));
        // Length prefixes: ("ab", "c") and ("a", "bc") are different keys.
        assert_ne!(cache_digest(b"ab", "c", b""), cache_digest(b"a", "bc", b""));
    }

    #[test]
    fn sign_cached_does_not_reuse_a_token_from_the_future() {
        let s = signer(Some(SECRET));
        let first = s
            .sign_cached(b"k", "app", &claims(), 1_000)
            .expect("signed");
        // The clock stepped back: a token with a later iat is not handed out.
        let back = s.sign_cached(b"k", "app", &claims(), 990).expect("signed");
        assert_ne!(first, back);
        assert!(payload(&back).contains("\"iat\":990"));
    }

    #[test]
    fn a_cached_token_still_verifies() {
        let s = signer(Some(SECRET));
        let t = now();
        let token = s.sign_cached(b"k", "app", &claims(), t).expect("signed");
        assert!(verify(&token, &jwk_set(&s, t), "app").is_ok());
    }

    #[test]
    fn the_cache_is_bounded() {
        let s = signer(Some(SECRET)).with_cache_capacity(64);
        for i in 0..1_000u32 {
            s.sign_cached(&i.to_be_bytes(), "app", &claims(), 100)
                .expect("signed");
            assert!(s.cache.len() <= 64, "{} entries", s.cache.len());
        }
        assert!(s.cache.len() > 0);
    }

    #[test]
    fn a_zero_capacity_cache_never_reuses() {
        let s = signer(Some(SECRET)).with_cache_capacity(0);
        let a = s.sign_cached(b"k", "app", &claims(), 100).expect("signed");
        let b = s.sign_cached(b"k", "app", &claims(), 100).expect("signed");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(s.cache.len(), 0);
    }

    #[test]
    fn derived_keys_are_kept_and_bounded() {
        let s = signer(Some(SECRET));
        for day in 0..20 {
            s.sign("app", &Map::new(), day * DAY).expect("signed");
            let _ = s.jwks(day * DAY);
            assert!(s.keys.load().len() <= KEPT_EPOCHS);
        }
        let before = Arc::clone(
            s.keys
                .load()
                .iter()
                .find(|k| k.epoch == 19)
                .expect("current epoch kept"),
        );
        let again = s.key(19).expect("kept");
        assert!(Arc::ptr_eq(&before, &again), "not derived twice");
    }

    #[test]
    fn rotation_and_lifetime_are_clamped() {
        let settings = AssertionSettings {
            issuer: ISSUER.into(),
            lifetime: Duration::ZERO,
            rotation: Duration::ZERO,
        };
        let s = AssertionSigner::new(Some(SECRET), settings);
        let token = s.sign("app", &Map::new(), 50).expect("no division by zero");
        assert!(payload(&token).contains("\"exp\":51"));

        let settings = AssertionSettings {
            issuer: ISSUER.into(),
            lifetime: Duration::from_secs(600),
            rotation: Duration::from_secs(60),
        };
        let s = AssertionSigner::new(Some(SECRET), settings);
        assert_eq!(s.rotation, 600, "a key outlives the tokens it signs");
    }

    /// The derivation is HKDF-SHA256 exactly as documented, computed here from HMAC-SHA256
    /// (RFC 5869), so another implementation can reproduce the keys.
    #[test]
    fn the_seed_is_hkdf_sha256_as_documented() {
        use aws_lc_rs::hmac;
        let epoch: u64 = 20_000;
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, HKDF_SALT), SECRET);
        let mut info = HKDF_INFO.to_vec();
        info.extend_from_slice(&epoch.to_be_bytes());
        info.push(1);
        let t1 = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &info);

        let s = signer(Some(SECRET));
        let seed = derive_seed(s.prk.as_ref().expect("keyed"), epoch).expect("derived");
        assert_eq!(seed.as_slice(), t1.as_ref());

        let pair = Ed25519KeyPair::from_seed_unchecked(t1.as_ref()).expect("seed");
        assert_eq!(
            s.key(epoch).expect("derived").x,
            URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())
        );
    }

    /// Pins the derivation: instances of different versions sharing a secret must keep
    /// publishing the same keys. If this changes, the change breaks mixed-version fleets.
    /// The expected values were computed independently (Python `hmac` + `cryptography`).
    #[test]
    fn the_derivation_is_stable_across_versions() {
        let s = signer(Some(&[7u8; 32]));
        let key = s.key(0).expect("derived");
        assert_eq!(key.kid, "n0dfUejTvTgU5nRX");
        assert_eq!(key.x, "52yjUkkG-zuMiTzQL1TUFiS1iAEvrDWSCSBadpkfSFE");
    }

    #[test]
    fn the_signer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AssertionSigner>();
        check::<Arc<AssertionSigner>>();
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let s = signer(Some(SECRET));
        let _ = s.jwks(0);
        let shown = format!("{s:?}");
        assert!(shown.contains(ISSUER));
        assert!(!shown.contains("prk") && !shown.contains("seed"));
    }

    /// A rough cost figure (run with `--release -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing, not a check"]
    fn cost() {
        let s = signer(Some(SECRET));
        let c = claims();
        let n = 2_000u32;
        let start = std::time::Instant::now();
        for i in 0..n {
            std::hint::black_box(
                s.sign("app", &c, 1_000 + u64::from(i % 10))
                    .expect("signed"),
            );
        }
        let sign = start.elapsed() / n;
        let _ = s.sign_cached(b"k", "app", &c, 1_000).expect("signed");
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(s.sign_cached(b"k", "app", &c, 1_000).expect("signed"));
        }
        let cached = start.elapsed() / n;
        println!("sign: {sign:?}/token, sign_cached hit: {cached:?}/token");
    }
}

//! Bearer tokens (RFC 6750): extraction, JWT verification against a provider's keys, RFC 7662
//! introspection of opaque tokens, and the verified-token cache.
//!
//! [`TokenProvider::validate`] answers one question — *is this token valid, and what does it
//! say?* — and never which route it may open: audience, scopes and `allow` rules are checked
//! per route by the caller on every request, cached or not.
//!
//! JWT checks, in order: size; compact three-part form; the JOSE header ([`header`]): an allowed
//! asymmetric `alg`, no `crit`, `typ` JWT or at+jwt; the key by `kid` from the provider's key
//! set ([`keys`]), whose own type and `alg` must fit the token's; the signature; `exp` required,
//! `exp`/`nbf`/`iat` numeric and within the leeway; `iss` exact; `aud` one of the configured.

pub mod algorithms;
pub mod cache;
pub mod header;
pub mod keys;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, header::AUTHORIZATION};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

use crate::config::Secret;
use crate::oidc::http::FetchError;
use cache::{Cached, TokenCache};
pub use source::{KeyRegistry, KeySource, KeyState, SourceId, unix_now};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// How long an introspection refusal is remembered.
const REFUSAL_TTL: u64 = 5;

/// Why a token was refused. Each has a fixed RFC 6750 `error_description` and a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token the gateway can read.
    Malformed,
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLarge,
    /// `alg` is `none`, HMAC, or not in the provider's allow-list.
    AlgorithmNotAllowed,
    /// A `crit` header names extensions the gateway does not understand.
    CriticalHeader,
    /// `typ` is neither JWT nor at+jwt.
    WrongType,
    /// No key of the provider has the token's `kid` (or fits its algorithm).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is past.
    Expired,
    /// `nbf` (or `iat`) is in the future.
    NotYetValid,
    /// `exp` is missing, or a time claim is not a number.
    BadTimeClaims,
    /// `iss` is not the provider's.
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    WrongAudience,
    /// Introspection says the token is not active.
    Inactive,
    /// The provider's keys or introspection endpoint are unavailable.
    Unavailable,
}

impl TokenError {
    /// The fixed RFC 6750 `error_description`: no request data, no key material.
    pub fn description(self) -> &'static str {
        match self {
            TokenError::Malformed => "the token is malformed",
            TokenError::TooLarge => "the token is too large",
            TokenError::AlgorithmNotAllowed => "the token's signature algorithm is not accepted",
            TokenError::CriticalHeader => "the token has critical header parameters",
            TokenError::WrongType => "the token type is not accepted",
            TokenError::UnknownKey => "the token's signing key is unknown",
            TokenError::BadSignature => "the token's signature is invalid",
            TokenError::Expired => "the token has expired",
            TokenError::NotYetValid => "the token is not valid yet",
            TokenError::BadTimeClaims => "the token's time claims are missing or malformed",
            TokenError::WrongIssuer => "the token was issued by another issuer",
            TokenError::WrongAudience => "the token is not meant for this audience",
            TokenError::Inactive => "the token is not active",
            TokenError::Unavailable => "the token cannot be checked right now",
        }
    }

    /// A bounded label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::TooLarge => "too_large",
            TokenError::AlgorithmNotAllowed => "algorithm",
            TokenError::CriticalHeader => "crit",
            TokenError::WrongType => "typ",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::BadTimeClaims => "time_claims",
            TokenError::WrongIssuer => "issuer",
            TokenError::WrongAudience => "audience",
            TokenError::Inactive => "inactive",
            TokenError::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for TokenError {}

/// What a valid token says.
#[derive(Debug)]
pub struct Verified {
    /// Its claims (JWT payload, or the introspection answer).
    pub claims: Arc<Map<String, Value>>,
    /// Unix time after which it is invalid.
    pub expires_at: u64,
    /// It was checked by introspection rather than signature.
    pub introspected: bool,
}

/// Why no bearer token could be taken from a request (RFC 6750 §2, §3.1 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    Duplicate,
    /// A token in the query string (`access_token=`), which RFC 6750 §2.3 discourages and the
    /// gateway refuses: URLs end up in logs.
    #[error("tokens are not accepted in the query string")]
    InQuery,
    /// `Authorization: Bearer` with no token, or a token with characters outside RFC 6750's b64token.
    #[error("malformed Authorization header")]
    Malformed,
}

/// The bearer token of a request: `Authorization: Bearer <token>` only (scheme case-insensitive).
/// `Ok(None)` when the request carries no bearer credentials at all (or another scheme).
pub fn extract_bearer<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<Option<&'a str>, ExtractError> {
    if query.is_some_and(|q| {
        q.split('&')
            .any(|p| p.split('=').next() == Some("access_token"))
    }) {
        return Err(ExtractError::InQuery);
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(_), Some(_)) => return Err(ExtractError::Duplicate),
        (Some(v), None) => v.to_str().map_err(|_| ExtractError::Malformed)?,
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if token.is_empty() || !token.bytes().all(b64token) {
        return Err(ExtractError::Malformed);
    }
    Ok(Some(token))
}

/// One provider's token rules, compiled per config load.
pub struct TokenProvider {
    /// What it was built from.
    pub settings: TokenSettings,
    validations: Vec<(Algorithm, Validation)>,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("name", &self.settings.name)
            .field("issuer", &self.settings.issuer)
            .field("audiences", &self.settings.audiences)
            .finish_non_exhaustive()
    }
}

/// The settings [`TokenProvider::new`] needs.
pub struct TokenSettings {
    /// Provider name.
    pub name: Arc<str>,
    /// Its key source.
    pub source: Arc<KeySource>,
    /// Accepted algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Expected `iss`.
    pub issuer: Option<String>,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Leeway, seconds.
    pub leeway: u64,
    /// Accept opaque tokens.
    pub opaque: bool,
    /// Introspection credentials.
    pub client: Option<(String, Secret)>,
    /// Introspection cache lifetime.
    pub introspection_ttl: Duration,
}

impl TokenProvider {
    /// Compiles the per-algorithm validations once.
    pub fn new(s: TokenSettings) -> Self {
        let validations = s
            .algorithms
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.leeway = s.leeway;
                v.validate_nbf = true;
                v.set_audience(&s.audiences);
                if let Some(iss) = &s.issuer {
                    v.set_issuer(&[iss]);
                }
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                (*alg, v)
            })
            .collect();
        Self {
            settings: s,
            validations,
        }
    }

    /// Validates `token`, through `cache`.
    pub async fn validate(
        &self,
        token: &str,
        cache: &TokenCache,
    ) -> Result<Arc<Verified>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let now = unix_now();
        let key = cache::key(&self.settings.name, token);
        match cache.get(&key, now) {
            Some(Cached::Valid(v)) => {
                crate::metrics::TOKEN_CACHE
                    .with_label_values(&["hit"])
                    .inc();
                return Ok(v);
            }
            Some(Cached::Refused(e)) => {
                crate::metrics::TOKEN_CACHE
                    .with_label_values(&["hit"])
                    .inc();
                return Err(e);
            }
            None => crate::metrics::TOKEN_CACHE
                .with_label_values(&["miss"])
                .inc(),
        }
        let outcome = if header::looks_like_jwt(token) {
            self.verify_jwt(token, now).await
        } else if self.settings.opaque {
            self.introspect(token, now).await
        } else {
            Err(TokenError::Malformed)
        };
        match &outcome {
            Ok(v) => {
                let until = if v.introspected {
                    v.expires_at
                        .min(now + self.settings.introspection_ttl.as_secs())
                } else {
                    v.expires_at
                };
                cache.put(key, Cached::Valid(v.clone()), until, now);
            }
            Err(TokenError::Inactive) => cache.put(
                key,
                Cached::Refused(TokenError::Inactive),
                now + REFUSAL_TTL,
                now,
            ),
            Err(_) => {}
        }
        outcome
    }

    /// Verifies a JWT now, without the cache: for ID tokens, each seen once at sign-in.
    pub async fn verify_once(&self, token: &str) -> Result<Arc<Verified>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        if !header::looks_like_jwt(token) {
            return Err(TokenError::Malformed);
        }
        self.verify_jwt(token, unix_now()).await
    }

    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<keys::Key>, TokenError> {
        let lookup = |set: &keys::KeySet| match kid {
            Some(k) => set.get(k).cloned(),
            None => set.sole_key_for(alg).cloned(),
        };
        let found = lookup(&self.settings.source.keys());
        let key = match found {
            Some(k) => k,
            None => {
                // An unknown kid may be a rotation: re-fetch, at a bounded rate.
                self.settings
                    .source
                    .refresh(source::KID_REFRESH_INTERVAL)
                    .await;
                let keys = self.settings.source.keys();
                if keys.is_empty() {
                    return Err(TokenError::Unavailable);
                }
                lookup(&keys).ok_or(TokenError::UnknownKey)?
            }
        };
        if key.accepts(alg) {
            Ok(key)
        } else {
            // The key's own type or algorithm does not fit: key confusion (e.g. HS256 signed
            // with an RSA public key never gets here; RS256 against an EC key does).
            Err(TokenError::AlgorithmNotAllowed)
        }
    }

    async fn verify_jwt(&self, token: &str, now: u64) -> Result<Arc<Verified>, TokenError> {
        self.verify_typed(token, now, header::TOKEN_TYPES).await
    }

    /// Verifies a back-channel logout token (`typ` absent, `JWT` or `logout+jwt`), uncached:
    /// signature by the provider's keys, `iss`, `aud` (the client id), `exp`. The caller checks
    /// the logout-specific claims.
    pub async fn verify_logout_token(&self, token: &str) -> Result<Arc<Verified>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        if !header::looks_like_jwt(token) {
            return Err(TokenError::Malformed);
        }
        self.verify_typed(token, unix_now(), header::LOGOUT_TYPES)
            .await
    }

    async fn verify_typed(
        &self,
        token: &str,
        now: u64,
        types: &[&str],
    ) -> Result<Arc<Verified>, TokenError> {
        let head = header::read(token, &self.settings.algorithms, types)?;
        if !header::is_compact_jws(token) {
            return Err(TokenError::Malformed);
        }
        let key = self.key_for(head.kid.as_deref(), head.alg).await?;
        let validation = self
            .validations
            .iter()
            .find(|(a, _)| *a == head.alg)
            .map(|(_, v)| v)
            .ok_or(TokenError::AlgorithmNotAllowed)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        let expires_at = check_times(&data.claims, now, self.settings.leeway)?;
        Ok(Arc::new(Verified {
            claims: Arc::new(data.claims),
            expires_at,
            introspected: false,
        }))
    }

    async fn introspect(&self, token: &str, now: u64) -> Result<Arc<Verified>, TokenError> {
        let endpoint = self
            .settings
            .source
            .metadata()
            .introspection_endpoint
            .clone();
        let (Some(endpoint), Some((id, secret))) = (endpoint, &self.settings.client) else {
            return Err(TokenError::Unavailable);
        };
        let form = [("token", token), ("token_type_hint", "access_token")];
        let answer = self
            .settings
            .source
            .client()
            .post_form(&endpoint, Some((id, secret.expose())), &form)
            .await
            .map_err(|e| match e {
                // The provider would not judge this token (RFC 7662 §2.3: invalid_request).
                FetchError::Status { status: 400, .. } => TokenError::Inactive,
                e => {
                    tracing::warn!(provider = %self.settings.name, error = %e, "introspection failed");
                    TokenError::Unavailable
                }
            })?;
        let Value::Object(claims) = answer.json else {
            return Err(TokenError::Unavailable);
        };
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenError::Inactive);
        }
        if let (Some(expected), Some(iss)) = (&self.settings.issuer, claims.get("iss"))
            && iss.as_str() != Some(expected)
        {
            return Err(TokenError::WrongIssuer);
        }
        if !audience_matches(claims.get("aud"), &self.settings.audiences) {
            return Err(TokenError::WrongAudience);
        }
        let expires_at = match claims.get("exp") {
            None => now + self.settings.introspection_ttl.as_secs(),
            Some(_) => check_times(&claims, now, self.settings.leeway)?,
        };
        Ok(Arc::new(Verified {
            claims: Arc::new(claims),
            expires_at,
            introspected: true,
        }))
    }
}

/// Whether `aud` (a string or an array of strings) names one of `audiences`.
fn audience_matches(aud: Option<&Value>, audiences: &[String]) -> bool {
    match aud {
        Some(Value::String(a)) => audiences.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x == a)),
        _ => false,
    }
}

fn map_jwt_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::AlgorithmNotAllowed
        }
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => TokenError::BadTimeClaims,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
        _ => TokenError::Malformed,
    }
}

/// Type-checks the time claims (numbers only; `exp` required) and returns `exp`. `nbf` and `iat`
/// in the future beyond the leeway are refused.
fn check_times(claims: &Map<String, Value>, now: u64, leeway: u64) -> Result<u64, TokenError> {
    let time = |name: &str| -> Result<Option<u64>, TokenError> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .map(Some)
                .ok_or(TokenError::BadTimeClaims),
            Some(_) => Err(TokenError::BadTimeClaims),
        }
    };
    let exp = time("exp")?.ok_or(TokenError::BadTimeClaims)?;
    if exp + leeway <= now {
        return Err(TokenError::Expired);
    }
    for name in ["nbf", "iat"] {
        if time(name)?.is_some_and(|t| t > now + leeway) {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).expect("valid"));
        }
        h
    }

    #[test]
    fn bearer_extraction() {
        type Case<'a> = (
            &'a [&'a str],
            Option<&'a str>,
            Result<Option<&'a str>, ExtractError>,
        );
        let ok: &[Case] = &[
            (&["Bearer abc.def.ghi"], None, Ok(Some("abc.def.ghi"))),
            (&["bearer abc"], None, Ok(Some("abc"))),
            (&["BEARER abc="], None, Ok(Some("abc="))),
            (&["Basic dXNlcjpwYXNz"], None, Ok(None)),
            (&[], None, Ok(None)),
            (
                &["Bearer a", "Bearer b"],
                None,
                Err(ExtractError::Duplicate),
            ),
            (&["Bearer"], None, Err(ExtractError::Malformed)),
            (&["Bearer a b"], None, Err(ExtractError::Malformed)),
            (&["Bearer a\"b"], None, Err(ExtractError::Malformed)),
            (
                &[],
                Some("x=1&access_token=abc"),
                Err(ExtractError::InQuery),
            ),
            (
                &["Bearer a"],
                Some("access_token=abc"),
                Err(ExtractError::InQuery),
            ),
            (&["Bearer a"], Some("my_access_token=1"), Ok(Some("a"))),
        ];
        for (values, query, want) in ok {
            assert_eq!(
                extract_bearer(&headers(values), *query),
                *want,
                "{values:?} {query:?}"
            );
        }
    }

    #[test]
    fn time_claims_are_type_checked() {
        let now = 1_000_000;
        let cases = [
            (json!({"exp": now + 60}), Ok(now + 60)),
            (json!({"exp": (now + 60) as f64 + 0.5}), Ok(now + 60)),
            (json!({}), Err(TokenError::BadTimeClaims)),
            (json!({"exp": "9999999999"}), Err(TokenError::BadTimeClaims)),
            (json!({"exp": -1}), Err(TokenError::BadTimeClaims)),
            (json!({"exp": now - 100}), Err(TokenError::Expired)),
            (json!({"exp": now - 10}), Ok(now - 10)),
            (
                json!({"exp": now + 60, "nbf": now + 100}),
                Err(TokenError::NotYetValid),
            ),
            (
                json!({"exp": now + 60, "nbf": "soon"}),
                Err(TokenError::BadTimeClaims),
            ),
            (
                json!({"exp": now + 60, "iat": [1]}),
                Err(TokenError::BadTimeClaims),
            ),
            (
                json!({"exp": now + 60, "iat": now + 100}),
                Err(TokenError::NotYetValid),
            ),
        ];
        for (claims, want) in cases {
            let map = claims.as_object().expect("an object").clone();
            assert_eq!(check_times(&map, now, 30), want, "{claims}");
        }
    }

    #[test]
    fn audiences_match_strings_and_arrays() {
        let aud = vec!["api".to_string()];
        assert!(audience_matches(Some(&json!("api")), &aud));
        assert!(audience_matches(Some(&json!(["x", "api"])), &aud));
        assert!(!audience_matches(Some(&json!(["x"])), &aud));
        assert!(!audience_matches(None, &aud));
        assert!(!audience_matches(Some(&json!(1)), &aud));
    }
}

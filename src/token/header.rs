//! The JOSE header of a compact JWS, read strictly before any key is touched.
//!
//! Only the compact serialisation with three non-empty base64url parts is accepted. `alg` must be
//! an allowed asymmetric algorithm (never `none`, never HMAC); a `crit` header is refused, since
//! no extension is understood; `typ`, when present, must be `JWT` or `at+jwt` (RFC 9068). Key
//! hints that would let a token choose its own key — `jwk`, `jku`, `x5u`, `x5c` — are ignored:
//! keys come only from the provider's key set.

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::TokenError;
use super::algorithms;

/// What the gateway reads from a token header.
#[derive(Debug, PartialEq, Eq)]
pub struct JoseHeader {
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The key id.
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<serde_json::Value>,
    kid: Option<serde_json::Value>,
    typ: Option<serde_json::Value>,
    crit: Option<serde_json::Value>,
}

/// Whether `token` is meant as a JWT: exactly three dot-separated parts. Such a token is judged
/// as a JWT (never sent to introspection), so `header.payload.` with an empty signature is
/// refused for its `alg`, not passed to the provider.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Whether `token` has the shape of a compact JWS: three non-empty base64url parts.
pub fn is_compact_jws(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        parts += 1;
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    parts == 3
}

/// The `typ` values of access and ID tokens (RFC 9068: `at+jwt`).
pub const TOKEN_TYPES: &[&str] = &["jwt", "at+jwt"];

/// The `typ` values of back-channel logout tokens (OIDC Back-Channel Logout 1.0 §2.4).
pub const LOGOUT_TYPES: &[&str] = &["jwt", "logout+jwt"];

/// Reads the header of a compact JWS and checks it against `allowed` algorithms and `types`
/// (lower-case, without `application/`; an absent `typ` is accepted).
pub fn read(token: &str, allowed: &[Algorithm], types: &[&str]) -> Result<JoseHeader, TokenError> {
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Malformed)?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if raw.crit.is_some() {
        return Err(TokenError::CriticalHeader);
    }
    if let Some(typ) = raw.typ {
        let typ = typ
            .as_str()
            .ok_or(TokenError::Malformed)?
            .to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if !types.contains(&typ) {
            return Err(TokenError::WrongType);
        }
    }
    let name = raw
        .alg
        .as_ref()
        .and_then(|v| v.as_str())
        .ok_or(TokenError::Malformed)?;
    let alg = algorithms::parse(name)
        .filter(|a| allowed.contains(a))
        .ok_or(TokenError::AlgorithmNotAllowed)?;
    let kid = match raw.kid {
        None => None,
        Some(serde_json::Value::String(k)) if k.len() <= 256 => Some(k),
        Some(_) => return Err(TokenError::Malformed),
    };
    Ok(JoseHeader { alg, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> String {
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
        format!("{h}.e30.c2ln")
    }

    #[test]
    fn jwt_shape_is_three_parts_even_when_empty() {
        assert!(looks_like_jwt("a.b.c") && looks_like_jwt("a.b.") && looks_like_jwt(".."));
        assert!(!looks_like_jwt("opaque-token") && !looks_like_jwt("a.b.c.d"));
    }

    #[test]
    fn compact_shape() {
        assert!(is_compact_jws("a.b.c"));
        for bad in [
            "a.b",
            "a.b.c.d",
            "a..c",
            "a.b.c=",
            "a.b+.c",
            "",
            "a.b.c.d.e",
        ] {
            assert!(!is_compact_jws(bad), "{bad}");
        }
    }

    #[test]
    fn headers_are_judged_strictly() {
        let all = algorithms::DEFAULT;
        let cases: &[(&str, Result<JoseHeader, TokenError>)] = &[
            (
                r#"{"alg":"RS256","kid":"k"}"#,
                Ok(JoseHeader {
                    alg: Algorithm::RS256,
                    kid: Some("k".into()),
                }),
            ),
            (
                r#"{"alg":"ES256","typ":"at+jwt"}"#,
                Ok(JoseHeader {
                    alg: Algorithm::ES256,
                    kid: None,
                }),
            ),
            (
                r#"{"alg":"EdDSA","typ":"application/at+jwt"}"#,
                Ok(JoseHeader {
                    alg: Algorithm::EdDSA,
                    kid: None,
                }),
            ),
            (
                r#"{"alg":"RS256","jku":"https://evil/keys","x5u":"https://evil/x","jwk":{"kty":"RSA"}}"#,
                Ok(JoseHeader {
                    alg: Algorithm::RS256,
                    kid: None,
                }),
            ),
            (r#"{"alg":"none"}"#, Err(TokenError::AlgorithmNotAllowed)),
            (r#"{"alg":"HS256"}"#, Err(TokenError::AlgorithmNotAllowed)),
            (
                r#"{"alg":"RS256","crit":["exp"]}"#,
                Err(TokenError::CriticalHeader),
            ),
            (r#"{"alg":"RS256","typ":"JWE"}"#, Err(TokenError::WrongType)),
            (r#"{"kid":"k"}"#, Err(TokenError::Malformed)),
            (r#"{"alg":["RS256"]}"#, Err(TokenError::Malformed)),
            (r#"{"alg":"RS256","kid":7}"#, Err(TokenError::Malformed)),
            ("not json", Err(TokenError::Malformed)),
        ];
        for (header, want) in cases {
            assert_eq!(&read(&token(header), &all, TOKEN_TYPES), want, "{header}");
        }
        let only_es = [Algorithm::ES256];
        assert_eq!(
            read(&token(r#"{"alg":"RS256"}"#), &only_es, TOKEN_TYPES),
            Err(TokenError::AlgorithmNotAllowed)
        );
    }
}

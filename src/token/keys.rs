//! A provider's key set (JWKS, RFC 7517), parsed into verification keys.
//!
//! Invariants: a key's algorithm is fixed by the key itself — its `kty` (and curve), and its
//! `alg` when present — never by a token; keys for encryption (`use: enc`), RSA keys under 2048
//! bits, symmetric keys (`kty: oct`) and keys of unknown types are dropped at parse time, so a
//! token can only ever be checked against a strong public signing key.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The smallest RSA modulus accepted.
pub const MIN_RSA_BITS: usize = 2048;

/// The algorithm families a key can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA: RS256/384/512 and PS256/384/512.
    Rsa,
    /// EC P-256: ES256.
    P256,
    /// EC P-384: ES384.
    P384,
    /// OKP Ed25519: EdDSA.
    Ed25519,
}

impl KeyKind {
    /// Whether a token signed with `alg` can be verified by a key of this kind.
    pub fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    /// Its id (`kid`), if it had one.
    pub kid: Option<String>,
    /// Its type.
    pub kind: KeyKind,
    /// The algorithm the key declares, if it does: then only that algorithm is accepted.
    pub alg: Option<Algorithm>,
    /// The key material.
    pub decoding: DecodingKey,
}

impl Key {
    /// Whether this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one key set.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    /// Every key, including those without a `kid`.
    all: Vec<Arc<Key>>,
}

impl KeySet {
    /// Parses a JWKS document. Unusable keys are skipped and listed in the second value (for logs).
    pub fn parse(doc: &Value) -> (KeySet, Vec<String>) {
        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
            skipped.push("no `keys` array".to_string());
            return (set, skipped);
        };
        for (i, jwk) in keys.iter().enumerate() {
            match parse_key(jwk) {
                Ok(key) => {
                    let key = Arc::new(key);
                    if let Some(kid) = &key.kid {
                        if set.by_kid.contains_key(kid) {
                            skipped.push(format!("keys[{i}]: duplicate kid `{kid}`"));
                            continue;
                        }
                        set.by_kid.insert(kid.clone(), key.clone());
                    }
                    set.all.push(key);
                }
                Err(why) => skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        (set, skipped)
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&Arc<Key>> {
        self.by_kid.get(kid)
    }

    /// For a token without `kid`: the only key that accepts `alg`, if exactly one does.
    pub fn sole_key_for(&self, alg: Algorithm) -> Option<&Arc<Key>> {
        let mut fitting = self.all.iter().filter(|k| k.accepts(alg));
        match (fitting.next(), fitting.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

fn text<'a>(jwk: &'a Value, field: &str) -> Option<&'a str> {
    jwk.get(field).and_then(Value::as_str)
}

fn parse_key(jwk: &Value) -> Result<Key, String> {
    if let Some(usage) = text(jwk, "use")
        && usage != "sig"
    {
        return Err(format!("`use: {usage}` is not a signing key"));
    }
    if let Some(ops) = jwk.get("key_ops").and_then(Value::as_array)
        && !ops.iter().any(|o| o.as_str() == Some("verify"))
    {
        return Err("`key_ops` does not include verify".into());
    }
    let alg = match text(jwk, "alg") {
        None => None,
        Some(name) => Some(
            super::algorithms::parse(name).ok_or_else(|| format!("unsupported `alg: {name}`"))?,
        ),
    };
    let kid = text(jwk, "kid").map(str::to_string);
    let kty = text(jwk, "kty").ok_or("missing `kty`")?;
    let (kind, decoding) = match kty {
        "RSA" => {
            let n = text(jwk, "n").ok_or("missing `n`")?;
            let e = text(jwk, "e").ok_or("missing `e`")?;
            let bits = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(n)
                .map_err(|_| "invalid `n`")?
                .iter()
                .skip_while(|b| **b == 0)
                .count()
                * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of about {bits} bits is under {MIN_RSA_BITS}"
                ));
            }
            let key = DecodingKey::from_rsa_components(n, e)
                .map_err(|e| format!("invalid RSA key: {e}"))?;
            (KeyKind::Rsa, key)
        }
        "EC" => {
            let kind = match text(jwk, "crv") {
                Some("P-256") => KeyKind::P256,
                Some("P-384") => KeyKind::P384,
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            let x = text(jwk, "x").ok_or("missing `x`")?;
            let y = text(jwk, "y").ok_or("missing `y`")?;
            let key = DecodingKey::from_ec_components(x, y)
                .map_err(|e| format!("invalid EC key: {e}"))?;
            (kind, key)
        }
        "OKP" => {
            if text(jwk, "crv") != Some("Ed25519") {
                return Err("unsupported OKP curve".into());
            }
            let x = text(jwk, "x").ok_or("missing `x`")?;
            let key = DecodingKey::from_ed_components(x)
                .map_err(|e| format!("invalid Ed25519 key: {e}"))?;
            (KeyKind::Ed25519, key)
        }
        other => return Err(format!("key type `{other}` is not accepted")),
    };
    if let Some(a) = alg
        && !kind.fits(a)
    {
        return Err(format!("`alg: {a:?}` does not fit key type `{kty}`"));
    }
    Ok(Key {
        kid,
        kind,
        alg,
        decoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A 2048-bit modulus (from a throwaway key) and a 1024-bit one.
    fn modulus(bytes: usize) -> String {
        let mut n = vec![0xc5u8; bytes];
        n[bytes - 1] = 0x01;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n)
    }

    #[test]
    fn weak_encryption_symmetric_and_unknown_keys_are_dropped() {
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "ok", "n": modulus(256), "e": "AQAB", "alg": "RS256", "use": "sig"},
            {"kty": "RSA", "kid": "weak", "n": modulus(128), "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "n": modulus(256), "e": "AQAB", "use": "enc"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "mismatch", "n": modulus(256), "e": "AQAB", "alg": "ES256"},
            {"kty": "RSA", "kid": "hs", "n": modulus(256), "e": "AQAB", "alg": "HS256"},
            {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"},
        ]});
        let (set, skipped) = KeySet::parse(&doc);
        assert_eq!(set.len(), 1, "{skipped:?}");
        assert!(set.get("ok").is_some());
        assert_eq!(skipped.len(), 6, "{skipped:?}");
    }

    #[test]
    fn a_key_fixes_its_algorithm() {
        let doc = json!({"keys": [{"kty": "RSA", "kid": "a", "n": modulus(256), "e": "AQAB", "alg": "PS256"}]});
        let (set, _) = KeySet::parse(&doc);
        let key = set.get("a").expect("parsed");
        assert!(key.accepts(Algorithm::PS256));
        assert!(!key.accepts(Algorithm::RS256));
        assert!(!key.accepts(Algorithm::HS256));
        assert!(!key.accepts(Algorithm::ES256));
    }

    #[test]
    fn a_token_without_kid_needs_exactly_one_fitting_key() {
        let one = json!({"keys": [{"kty": "RSA", "n": modulus(256), "e": "AQAB"}]});
        assert!(
            KeySet::parse(&one)
                .0
                .sole_key_for(Algorithm::RS256)
                .is_some()
        );
        let two = json!({"keys": [
            {"kty": "RSA", "n": modulus(256), "e": "AQAB"},
            {"kty": "RSA", "n": modulus(256), "e": "AQAB"}]});
        assert!(
            KeySet::parse(&two)
                .0
                .sole_key_for(Algorithm::RS256)
                .is_none()
        );
    }
}

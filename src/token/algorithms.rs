//! Signature algorithm names and the default allow-list.

use jsonwebtoken::Algorithm;

/// The asymmetric algorithms accepted unless a provider narrows them.
pub const DEFAULT: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The algorithm named `name` (JWA spelling), if it is an accepted asymmetric one. HMAC
/// algorithms and `none` are never returned: a token can only be verified with a public key.
pub fn parse(name: &str) -> Option<Algorithm> {
    DEFAULT.iter().copied().find(|a| name == jwa_name(*a))
}

/// The JWA name of `alg`.
pub fn jwa_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_algorithms_parse() {
        for name in ["RS256", "PS512", "ES256", "ES384", "EdDSA"] {
            assert!(parse(name).is_some(), "{name}");
        }
        for name in ["HS256", "none", "None", "rs256", "ES512", ""] {
            assert!(parse(name).is_none(), "{name}");
        }
    }
}

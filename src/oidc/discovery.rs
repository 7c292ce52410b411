//! OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`.
//!
//! Only the fields the gateway uses are read. The document's `issuer` must equal the configured
//! one exactly (OpenID Connect Discovery 1.0 §4.3), or the document is refused: a provider can
//! never make the gateway trust another issuer's keys.

use url::Url;

use super::http::{Client, FetchError};

/// Endpoints of a provider, from discovery or the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The issuer.
    pub issuer: Option<String>,
    /// Key set.
    pub jwks_uri: Option<Url>,
    /// Authorization endpoint.
    pub authorization_endpoint: Option<Url>,
    /// Token endpoint.
    pub token_endpoint: Option<Url>,
    /// Userinfo endpoint.
    pub userinfo_endpoint: Option<Url>,
    /// RFC 7662 introspection endpoint.
    pub introspection_endpoint: Option<Url>,
    /// RP-initiated logout endpoint.
    pub end_session_endpoint: Option<Url>,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The document could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document names another issuer.
    #[error("discovery document names issuer `{found}`, not the configured `{expected}`")]
    IssuerMismatch {
        /// Configured issuer.
        expected: String,
        /// Issuer in the document.
        found: String,
    },
}

/// The discovery URL of `issuer`.
pub fn discovery_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url
}

/// Fetches and checks the discovery document of `issuer`.
pub async fn discover(client: &Client, issuer: &Url) -> Result<Metadata, DiscoveryError> {
    let fetched = client.get_json(&discovery_url(issuer)).await?;
    let doc = fetched.json;
    let found = doc
        .get("issuer")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let expected = issuer_string(issuer);
    if found != expected {
        return Err(DiscoveryError::IssuerMismatch {
            expected,
            found: found.chars().take(200).collect(),
        });
    }
    let url = |key: &str| {
        doc.get(key)
            .and_then(|v| v.as_str())
            .and_then(|s| Url::parse(s).ok())
            .filter(|u| matches!(u.scheme(), "https" | "http"))
    };
    Ok(Metadata {
        issuer: Some(expected),
        jwks_uri: url("jwks_uri"),
        authorization_endpoint: url("authorization_endpoint"),
        token_endpoint: url("token_endpoint"),
        userinfo_endpoint: url("userinfo_endpoint"),
        introspection_endpoint: url("introspection_endpoint"),
        end_session_endpoint: url("end_session_endpoint"),
    })
}

/// The issuer as tokens carry it: the configured URL without a trailing slash added by parsing.
pub fn issuer_string(issuer: &Url) -> String {
    let s = issuer.as_str();
    if issuer.path() == "/" && s.ends_with('/') {
        s[..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls() {
        let u = |s: &str| Url::parse(s).expect("valid");
        assert_eq!(
            discovery_url(&u("https://idp.test/realms/corp")).as_str(),
            "https://idp.test/realms/corp/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url(&u("https://idp.test/")).as_str(),
            "https://idp.test/.well-known/openid-configuration"
        );
        assert_eq!(issuer_string(&u("https://idp.test")), "https://idp.test");
        assert_eq!(
            issuer_string(&u("https://idp.test/a/")),
            "https://idp.test/a/"
        );
    }
}

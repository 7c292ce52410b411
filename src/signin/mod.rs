//! The gateway as an OAuth 2.0 client / OpenID Connect relying party: the authorization-code
//! flow with PKCE (S256), `state` and `nonce`; the ID token checked by the same validator as
//! bearer tokens (signature by the provider's keys, `iss`, `aud` = our client id, `exp`) plus
//! `nonce` and `azp`; userinfo; refresh; RP-initiated logout.
//!
//! Nothing here speaks pingora: `proxy::browser` turns these results into redirects and cookies.
//! Endpoints come from the config when given, else from discovery (kept fresh by the provider's
//! [`KeySource`]).

pub mod refresh;

use std::sync::Arc;

use base64::Engine;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use url::Url;

use crate::config::{ProviderConfig, Secret, TokenEndpointAuth};
use crate::oidc::http::FetchError;
use crate::policy::lookup_claim;
use crate::session::{PendingSignIn, SessionData, random_token};
use crate::token::{KeySource, TokenError, TokenProvider, TokenSettings};

/// ID-token claims that describe the token, not the user: not kept in the session.
const TOKEN_CLAIMS: &[&str] = &[
    "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "s_hash", "jti", "azp",
];

/// Why a sign-in (or refresh) failed. Messages never carry tokens or provider bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The provider could not be reached, or answered 5xx.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused (token endpoint 4xx: an invalid, used or expired code or refresh
    /// token).
    #[error("the provider refused: {0}")]
    Refused(String),
    /// The provider's endpoints are not known (discovery has not succeeded yet).
    #[error("the provider's endpoints are not known yet")]
    NoEndpoints,
    /// The token response is not what RFC 6749 §5.1 says.
    #[error("malformed token response: {0}")]
    BadResponse(&'static str),
    /// The ID token is invalid.
    #[error("invalid ID token: {0}")]
    IdToken(TokenError),
    /// The ID token's `nonce` is not the one sent.
    #[error("the ID token's nonce does not match")]
    Nonce,
    /// The ID token's `azp` is not our client id.
    #[error("the ID token's authorized party is another client")]
    AuthorizedParty,
    /// Userinfo names another subject than the ID token.
    #[error("userinfo names another subject than the ID token")]
    SubjectMismatch,
    /// No user identity (`sub`) could be established.
    #[error("the provider gave no user identity (sub)")]
    NoIdentity,
}

impl FlowError {
    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FlowError::Unavailable(_) | FlowError::NoEndpoints => "provider_unavailable",
            FlowError::Refused(_) => "provider_refused",
            FlowError::BadResponse(_) => "bad_token_response",
            FlowError::IdToken(_) => "bad_id_token",
            FlowError::Nonce => "nonce",
            FlowError::AuthorizedParty => "azp",
            FlowError::SubjectMismatch => "subject_mismatch",
            FlowError::NoIdentity => "no_identity",
        }
    }
}

fn fetch_error(what: &str, e: FetchError) -> FlowError {
    match e {
        FetchError::Status { status, .. } if (400..500).contains(&status) => {
            FlowError::Refused(format!("{what} answered {status}"))
        }
        e => FlowError::Unavailable(format!("{what}: {e}")),
    }
}

/// A provider's endpoints for browsers.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorization: Option<Url>,
    /// Token endpoint.
    pub token: Option<Url>,
    /// Userinfo endpoint.
    pub userinfo: Option<Url>,
    /// RP-initiated logout endpoint.
    pub end_session: Option<Url>,
}

/// One provider, as browsers sign in with it. Built per config load.
pub struct SignInProvider {
    /// Provider name (stored in sessions).
    pub name: Arc<str>,
    client_id: String,
    client_secret: Option<Secret>,
    auth: TokenEndpointAuth,
    scope: String,
    source: Arc<KeySource>,
    configured: Endpoints,
    /// ID-token rules (`aud` = our client id); `None` for plain OAuth 2.0 providers.
    id_tokens: Option<TokenProvider>,
    userinfo: bool,
    claim_mapping: Vec<(String, String)>,
}

impl std::fmt::Debug for SignInProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInProvider")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What a token endpoint answered.
#[derive(Debug)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
}

fn token_response(json: &Value) -> Result<TokenResponse, FlowError> {
    let obj = json
        .as_object()
        .ok_or(FlowError::BadResponse("not a JSON object"))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let access_token = text("access_token")
        .filter(|t| !t.is_empty())
        .ok_or(FlowError::BadResponse("no access_token"))?;
    if let Some(kind) = obj.get("token_type")
        && !kind
            .as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case("bearer"))
    {
        return Err(FlowError::BadResponse("token_type is not Bearer"));
    }
    let expires_in = match obj.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or(FlowError::BadResponse("expires_in is not a number"))?,
        ),
    };
    Ok(TokenResponse {
        access_token,
        expires_in,
        refresh_token: text("refresh_token").filter(|t| !t.is_empty()),
        id_token: text("id_token").filter(|t| !t.is_empty()),
        scope: text("scope"),
    })
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl SignInProvider {
    /// The sign-in side of provider `name`; `source` is its shared key source.
    pub fn new(name: &str, p: &ProviderConfig, source: Arc<KeySource>) -> Self {
        let id_tokens = p.is_oidc().then(|| {
            TokenProvider::new(TokenSettings {
                name: Arc::from(format!("{name}#id_token")),
                source: source.clone(),
                algorithms: p.algorithms.clone(),
                issuer: p.issuer_id.clone(),
                audiences: p.client_id.iter().cloned().collect(),
                leeway: p.leeway.as_secs(),
                opaque: false,
                client: None,
                introspection_ttl: p.introspection_cache,
            })
        });
        Self {
            name: Arc::from(name),
            client_id: p.client_id.clone().unwrap_or_default(),
            client_secret: p.client_secret.clone(),
            auth: p.token_endpoint_auth,
            scope: p.scopes.join(" "),
            source,
            configured: Endpoints {
                authorization: p.authorization_endpoint.clone(),
                token: p.token_endpoint.clone(),
                userinfo: p.userinfo_endpoint.clone(),
                end_session: None,
            },
            id_tokens,
            userinfo: p.userinfo,
            claim_mapping: p.claim_mapping.clone(),
        }
    }

    /// The issuer the provider names itself by (OpenID Connect providers only).
    pub fn issuer(&self) -> Option<String> {
        self.id_tokens.as_ref()?;
        self.source.metadata().issuer.clone()
    }

    /// The endpoints in use: configured ones, else discovered ones.
    pub fn endpoints(&self) -> Endpoints {
        let found = self.source.metadata();
        Endpoints {
            authorization: self
                .configured
                .authorization
                .clone()
                .or_else(|| found.authorization_endpoint.clone()),
            token: self
                .configured
                .token
                .clone()
                .or_else(|| found.token_endpoint.clone()),
            userinfo: self
                .configured
                .userinfo
                .clone()
                .or_else(|| found.userinfo_endpoint.clone()),
            end_session: found.end_session_endpoint.clone(),
        }
    }

    /// A new sign-in towards `rd` (already checked).
    pub fn begin(&self, rd: String, now: u64) -> PendingSignIn {
        PendingSignIn {
            state: random_token(32),
            verifier: random_token(32),
            nonce: random_token(24),
            rd,
            provider: self.name.to_string(),
            created: now,
        }
    }

    /// The authorization request URL for `pending`.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        pending: &PendingSignIn,
    ) -> Result<Url, FlowError> {
        let mut url = self
            .endpoints()
            .authorization
            .ok_or(FlowError::NoEndpoints)?;
        let challenge = pkce_challenge(&pending.verifier);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", &pending.state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if !self.scope.is_empty() {
                q.append_pair("scope", &self.scope);
            }
            if self.id_tokens.is_some() {
                q.append_pair("nonce", &pending.nonce);
            }
        }
        Ok(url)
    }

    async fn token_call<'a>(
        &'a self,
        form: &mut Vec<(&'a str, &'a str)>,
    ) -> Result<TokenResponse, FlowError> {
        let endpoint = self.endpoints().token.ok_or(FlowError::NoEndpoints)?;
        let secret = self.client_secret.as_ref().map(|s| s.expose());
        let basic = match (self.auth, secret) {
            (TokenEndpointAuth::ClientSecretBasic, Some(secret)) => {
                Some((self.client_id.as_str(), secret))
            }
            (TokenEndpointAuth::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret));
                None
            }
            (_, None) => {
                form.push(("client_id", &self.client_id));
                None
            }
        };
        let answer = self
            .source
            .client()
            .post_form(&endpoint, basic, form)
            .await
            .map_err(|e| fetch_error("token endpoint", e))?;
        token_response(&answer.json)
    }

    /// Completes a sign-in: exchanges `code`, checks the ID token, reads userinfo, and
    /// returns the new session (with a fresh session id).
    pub async fn complete(
        &self,
        code: &str,
        redirect_uri: &str,
        pending: &PendingSignIn,
        now: u64,
    ) -> Result<SessionData, FlowError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let tokens = self.token_call(&mut form).await?;
        let mut claims = match (&self.id_tokens, &tokens.id_token) {
            (Some(rules), Some(id_token)) => {
                let claims = self.check_id_token(rules, id_token).await?;
                let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
                if !bool::from(nonce.as_bytes().ct_eq(pending.nonce.as_bytes())) {
                    return Err(FlowError::Nonce);
                }
                claims
            }
            (Some(_), None) => return Err(FlowError::BadResponse("no id_token")),
            (None, _) => Map::new(),
        };
        if self.userinfo {
            self.merge_userinfo(&mut claims, &tokens.access_token)
                .await?;
        }
        for name in TOKEN_CLAIMS {
            claims.remove(*name);
        }
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(FlowError::NoIdentity);
        }
        // RFC 6749 §5.1: no (or an empty) `scope` means the requested scopes were granted.
        let granted = tokens
            .scope
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| self.scope.clone());
        claims.insert("scope".into(), Value::String(granted));
        let mut session = SessionData::new(&self.name, claims, now);
        session.access_expires = tokens.expires_in.map(|s| now + s);
        session.access_token = Some(tokens.access_token);
        session.refresh_token = tokens.refresh_token;
        session.id_token = tokens.id_token;
        Ok(session)
    }

    /// Verifies an ID token: signature, `iss`, `aud`, `exp` (the bearer validator, with our
    /// client id as the audience), then `azp`.
    async fn check_id_token(
        &self,
        rules: &TokenProvider,
        id_token: &str,
    ) -> Result<Map<String, Value>, FlowError> {
        let verified = rules
            .verify_once(id_token)
            .await
            .map_err(FlowError::IdToken)?;
        let claims = (*verified.claims).clone();
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != self.client_id => return Err(FlowError::AuthorizedParty),
            None if several_audiences => return Err(FlowError::AuthorizedParty),
            _ => {}
        }
        Ok(claims)
    }

    /// Verifies a back-channel logout token with this provider's ID-token rules; its claims.
    pub async fn verify_logout_token(&self, token: &str) -> Result<Map<String, Value>, FlowError> {
        let rules = self.id_tokens.as_ref().ok_or(FlowError::NoEndpoints)?;
        let verified = rules
            .verify_logout_token(token)
            .await
            .map_err(FlowError::IdToken)?;
        Ok((*verified.claims).clone())
    }

    /// Reads userinfo with `access_token` and merges it into `claims` (mapped fields first).
    async fn merge_userinfo(
        &self,
        claims: &mut Map<String, Value>,
        access_token: &str,
    ) -> Result<(), FlowError> {
        let Some(endpoint) = self.endpoints().userinfo else {
            return Err(FlowError::NoEndpoints);
        };
        let answer = self
            .source
            .client()
            .get_json_bearer(&endpoint, access_token)
            .await
            .map_err(|e| fetch_error("userinfo endpoint", e))?;
        let Value::Object(info) = answer.json else {
            return Err(FlowError::BadResponse("userinfo is not a JSON object"));
        };
        let mut mapped = info.clone();
        for (claim, field) in &self.claim_mapping {
            match lookup_claim(&info, field) {
                Some(Value::Number(n)) => {
                    mapped.insert(claim.clone(), Value::String(n.to_string()));
                }
                Some(v) => {
                    mapped.insert(claim.clone(), v.clone());
                }
                None => {
                    mapped.remove(claim);
                }
            }
        }
        if let Some(sub) = claims.get("sub")
            && mapped.get("sub") != Some(sub)
        {
            return Err(FlowError::SubjectMismatch);
        }
        for (k, v) in mapped {
            if k != "iss" {
                claims.insert(k, v);
            }
        }
        Ok(())
    }

    /// Renews `session`'s tokens with its refresh token.
    pub async fn refresh(&self, session: &SessionData, now: u64) -> Result<SessionData, FlowError> {
        let Some(refresh_token) = session.refresh_token.as_deref() else {
            return Err(FlowError::Refused("no refresh token".into()));
        };
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let tokens = self.token_call(&mut form).await?;
        let mut next = session.clone();
        if let (Some(rules), Some(id_token)) = (&self.id_tokens, &tokens.id_token) {
            let mut claims = self.check_id_token(rules, id_token).await?;
            if claims.get("sub") != session.claims.get("sub") {
                return Err(FlowError::SubjectMismatch);
            }
            for name in TOKEN_CLAIMS {
                claims.remove(*name);
            }
            for (k, v) in claims {
                next.claims.insert(k, v);
            }
            next.id_token = Some(id_token.clone());
        }
        if let Some(scope) = tokens.scope.filter(|s| !s.trim().is_empty()) {
            next.claims.insert("scope".into(), Value::String(scope));
        }
        next.access_expires = tokens.expires_in.map(|s| now + s);
        next.access_token = Some(tokens.access_token);
        if tokens.refresh_token.is_some() {
            next.refresh_token = tokens.refresh_token;
        }
        next.seen = now;
        Ok(next)
    }

    /// Where to send the browser to end its session at the provider, when it supports
    /// RP-initiated logout.
    pub fn end_session_url(&self, session: &SessionData, post_logout: &str) -> Option<Url> {
        let mut url = self.endpoints().end_session?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = &session.id_token {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", &self.client_id)
                .append_pair("post_logout_redirect_uri", post_logout);
        }
        Some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn token_responses_are_checked() {
        let ok = token_response(&json!({
            "access_token": "a", "token_type": "Bearer", "expires_in": 300,
            "refresh_token": "r", "id_token": "i", "scope": "openid email"
        }))
        .expect("valid");
        assert_eq!(ok.expires_in, Some(300));
        assert_eq!(ok.refresh_token.as_deref(), Some("r"));
        assert!(token_response(&json!({"access_token": "a", "token_type": "bearer"})).is_ok());
        for bad in [
            json!({"token_type": "Bearer"}),
            json!({"access_token": "", "token_type": "Bearer"}),
            json!({"access_token": "a", "token_type": "DPoP"}),
            json!({"access_token": "a", "expires_in": "soon"}),
            json!(["access_token"]),
        ] {
            assert!(token_response(&bad).is_err(), "{bad}");
        }
    }
}

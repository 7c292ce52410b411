//! Authentication of protected routes, as the proxy runs it: take the credentials, validate
//! them, apply the route's `allow` rules. Decides only; `proxy` writes the answer.

use std::sync::Arc;

use http::request::Parts;

use crate::metrics;
use crate::policy::{DenyReason, RequestFacts, Verdict};
use crate::routing::Route;
use crate::snapshot::Snapshot;
use crate::token::{ExtractError, TokenError, Verified, extract_bearer};

/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "portcullis";

/// A refusal, ready to be written (RFC 6750 §3 for bearer routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// HTTP status: 400, 401, 403 or 503.
    pub status: u16,
    /// Error code: RFC 6750's (`invalid_request`, `invalid_token`, `insufficient_scope`), or
    /// `forbidden` / `temporarily_unavailable`.
    pub code: &'static str,
    /// Human-readable description; fixed text, never request data or key material.
    pub description: &'static str,
    /// `WWW-Authenticate` value, when the answer has one.
    pub challenge: Option<String>,
    /// Bounded metrics/log label.
    pub reason: &'static str,
}

impl Denied {
    /// The refusal for a request the gateway cannot judge (an internal inconsistency).
    pub fn internal() -> Self {
        Denied {
            status: 500,
            code: "internal_error",
            description: "internal error",
            challenge: None,
            reason: "internal",
        }
    }
}

fn challenge(code: Option<&str>, description: &str, scope: Option<&str>) -> String {
    let mut out = format!("Bearer realm=\"{REALM}\"");
    if let Some(code) = code {
        out.push_str(&format!(
            ", error=\"{code}\", error_description=\"{description}\""
        ));
    }
    if let Some(scope) = scope {
        out.push_str(&format!(", scope=\"{scope}\""));
    }
    out
}

fn invalid_request(e: ExtractError) -> Denied {
    let description = match e {
        ExtractError::Duplicate => "more than one Authorization header",
        ExtractError::InQuery => "tokens are not accepted in the query string",
        ExtractError::Malformed => "malformed Authorization header",
    };
    Denied {
        status: 400,
        code: "invalid_request",
        description,
        challenge: Some(challenge(Some("invalid_request"), description, None)),
        reason: "invalid_request",
    }
}

fn invalid_token(e: TokenError) -> Denied {
    let description = e.description();
    if e == TokenError::Unavailable {
        return Denied {
            status: 503,
            code: "temporarily_unavailable",
            description,
            challenge: None,
            reason: e.reason(),
        };
    }
    Denied {
        status: 401,
        code: "invalid_token",
        description,
        challenge: Some(challenge(Some("invalid_token"), description, None)),
        reason: e.reason(),
    }
}

/// Authenticates a request to a `bearer` route and applies its rules. `path` is the normalised
/// path. On success, the verified token and the raw token (for pass-through).
pub async fn bearer<'r>(
    snap: &Snapshot,
    route: &Route,
    req: &'r Parts,
    path: &str,
) -> Result<(Arc<Verified>, &'r str), Denied> {
    let token = match extract_bearer(&req.headers, req.uri.query()) {
        Err(e) => return Err(invalid_request(e)),
        Ok(None) => {
            return Err(Denied {
                status: 401,
                code: "invalid_token",
                description: "a bearer token is required",
                challenge: Some(challenge(None, "", None)),
                reason: "missing",
            });
        }
        Ok(Some(t)) => t,
    };
    let provider = route
        .provider
        .and_then(|i| snap.tokens.get(i))
        .ok_or_else(|| invalid_token(TokenError::Unavailable))?;
    let verified = provider
        .validate(token, &snap.token_cache)
        .await
        .map_err(invalid_token)?;
    let facts = RequestFacts {
        method: &req.method,
        path,
    };
    let verdict = route.policy.evaluate(&facts, &verified.claims);
    if let Verdict::Deny(denial) = &verdict {
        refused(snap, route, &verified.claims, denial.reason.as_str());
    }
    match verdict {
        Verdict::Allow { .. } => Ok((verified, token)),
        Verdict::Deny(denial) if denial.reason == DenyReason::InsufficientScope => {
            let scope = denial.missing_scopes.join(" ");
            Err(Denied {
                status: 403,
                code: "insufficient_scope",
                description: "the token lacks a required scope",
                challenge: Some(challenge(
                    Some("insufficient_scope"),
                    "the token lacks a required scope",
                    Some(&scope),
                )),
                reason: DenyReason::InsufficientScope.as_str(),
            })
        }
        Verdict::Deny(denial) => Err(Denied {
            status: 403,
            code: "forbidden",
            description: "access to this resource is not allowed",
            challenge: None,
            reason: denial.reason.as_str(),
        }),
    }
}

/// Logs a request the route's rules refused (403): who, where, why.
pub fn refused(
    snap: &Snapshot,
    route: &Route,
    claims: &serde_json::Map<String, serde_json::Value>,
    reason: &str,
) {
    let user = crate::logging::user_of(claims, super::user_claim(snap, route));
    tracing::info!(
        route = %route.name,
        user = %crate::logging::LoggedUser(user),
        reason,
        status = 403,
        "request refused"
    );
}

/// Counts one decision.
pub fn count(route: &str, result: Result<(), &str>) {
    let (outcome, reason) = match result {
        Ok(()) => ("allow", "ok"),
        Err(reason) => ("deny", reason),
    };
    metrics::AUTH_DECISIONS
        .with_label_values(&[route, outcome, reason])
        .inc();
}

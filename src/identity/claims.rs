//! Identity headers from claims: the headers a backend reads to know who is calling.
//!
//! Claim values become header text: strings as they are, numbers and booleans in JSON form,
//! arrays of those joined with `,`. Objects, nulls, values over [`MAX_VALUE`] bytes and values
//! with characters a header cannot carry (control characters, CR/LF) are left out — the header is
//! then absent, never truncated or escaped into something else.

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::config::IdentityConfig;
use crate::policy::lookup_claim;

/// Longest identity header value sent.
pub const MAX_VALUE: usize = 4096;

/// Which claims feed the standard headers.
#[derive(Debug, Clone, Copy)]
pub struct ClaimNames<'a> {
    /// The user claim (`sub` by default).
    pub user: &'a str,
    /// The groups claim (`groups` by default).
    pub groups: &'a str,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|i| match i {
                    Value::Array(_) | Value::Object(_) | Value::Null => None,
                    other => text(other),
                })
                .collect();
            Some(parts?.join(","))
        }
        Value::Object(_) | Value::Null => None,
    }
}

fn header_value(value: &Value) -> Option<HeaderValue> {
    let text = text(value)?;
    if text.is_empty() || text.len() > MAX_VALUE {
        return None;
    }
    HeaderValue::from_str(&text).ok()
}

/// The `iss` claim of a compact JWS, read without verifying it: only to choose which
/// provider's keys will verify the token.
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// The identity headers for `claims` under `config`.
pub fn identity_headers(
    config: &IdentityConfig,
    names: ClaimNames<'_>,
    claims: &Map<String, Value>,
) -> Vec<(HeaderName, HeaderValue)> {
    let wanted = [
        (&config.user, names.user),
        (&config.email, "email"),
        (&config.groups, names.groups),
    ];
    wanted
        .into_iter()
        .chain(config.extra_claims.iter().map(|(h, c)| (h, c.as_str())))
        .filter_map(|(header, claim)| {
            let value = header_value(lookup_claim(claims, claim)?)?;
            Some((header.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> IdentityConfig {
        IdentityConfig {
            user: HeaderName::from_static("x-forwarded-user"),
            email: HeaderName::from_static("x-forwarded-email"),
            groups: HeaderName::from_static("x-forwarded-groups"),
            extra_claims: vec![
                (HeaderName::from_static("x-dept"), "department".into()),
                (
                    HeaderName::from_static("x-roles"),
                    "realm_access.roles".into(),
                ),
                (HeaderName::from_static("x-level"), "level".into()),
            ],
            access_token: None,
            assertion: None,
            id_token: None,
        }
    }

    #[test]
    fn claims_become_headers() {
        let claims = json!({
            "sub": "alice", "email": "alice@corp.example", "groups": ["staff", "admins"],
            "department": "eng", "realm_access": {"roles": ["a", "b"]}, "level": 3
        });
        let got = identity_headers(
            &config(),
            ClaimNames {
                user: "sub",
                groups: "groups",
            },
            claims.as_object().expect("object"),
        );
        let pairs: Vec<(String, String)> = got
            .iter()
            .map(|(h, v)| (h.to_string(), v.to_str().expect("ascii").to_string()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("x-forwarded-user".into(), "alice".into()),
                ("x-forwarded-email".into(), "alice@corp.example".into()),
                ("x-forwarded-groups".into(), "staff,admins".into()),
                ("x-dept".into(), "eng".into()),
                ("x-roles".into(), "a,b".into()),
                ("x-level".into(), "3".into()),
            ]
        );
    }

    #[test]
    fn unsendable_values_are_left_out() {
        let claims = json!({
            "sub": "evil\r\nX-Forwarded-User: admin", "email": {"nested": true},
            "groups": [["x"]], "department": null, "level": "x".repeat(MAX_VALUE + 1)
        });
        let got = identity_headers(
            &config(),
            ClaimNames {
                user: "sub",
                groups: "groups",
            },
            claims.as_object().expect("object"),
        );
        assert!(got.is_empty(), "{got:?}");
    }
}

//! Authentication and `allow` rules for `explain`: the bearer token (validated live against the
//! provider's keys) or the session cookie (opened with the configured secrets, read from Redis
//! when the store is there), then each `allow` entry.

use std::sync::Arc;

use http::{Method, request::Parts};
use serde_json::{Map, Value};

use portcullis::policy::{ConditionReport, RequestFacts, Verdict};
use portcullis::routing::{AuthPolicy, Route, RouteMode};
use portcullis::snapshot::Snapshot;
use portcullis::token::{KeyState, extract_bearer, unix_now};

use super::{Report, when};

/// Who passed, for the identity headers.
pub struct Identity {
    /// The token's or the session's claims.
    pub claims: Arc<Map<String, Value>>,
    /// The access token is at hand (a bearer token, or one the session holds).
    pub has_access_token: bool,
}

/// How authentication ended.
pub enum Outcome {
    /// Authenticated and allowed.
    Passed(Identity),
    /// Answered by the gateway with this status.
    Refused(u16),
}

/// Authenticates `parts` on the protected `route`, stepping into `report`.
pub fn authenticate(
    snap: &Snapshot,
    route: &Route,
    parts: &Parts,
    path: &str,
    report: &mut Report,
) -> Outcome {
    let bearer = route.auth == AuthPolicy::Bearer
        || (route.auth == AuthPolicy::SessionOrBearer
            && !matches!(extract_bearer(&parts.headers, parts.uri.query()), Ok(None)));
    if bearer {
        explain_bearer(snap, route, parts, path, report)
    } else {
        explain_session(snap, route, parts, path, report)
    }
}

/// A runtime for the one network step (keys, introspection, Redis).
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            None
        }
    }
}

fn explain_bearer(
    snap: &Snapshot,
    route: &Route,
    parts: &Parts,
    path: &str,
    report: &mut Report,
) -> Outcome {
    let token = match extract_bearer(&parts.headers, parts.uri.query()) {
        Ok(Some(t)) => t,
        Ok(None) => {
            report.step(
                "token",
                "none: 401 with WWW-Authenticate (a bearer token is required)",
            );
            return Outcome::Refused(401);
        }
        Err(e) => {
            report.step("token", format!("refused: 400 invalid_request ({e})"));
            return Outcome::Refused(400);
        }
    };
    let Some(provider) = route.provider.and_then(|i| snap.tokens.get(i)) else {
        report.step("token", "the route has no provider: 500");
        return Outcome::Refused(500);
    };
    let Some(runtime) = runtime() else {
        return Outcome::Refused(500);
    };
    let source = &provider.settings.source;
    let verified = runtime.block_on(async {
        source.refresh(std::time::Duration::ZERO).await;
        provider.validate(token, &snap.token_cache).await
    });
    let state = match source.state() {
        KeyState::Fresh => "fetched now",
        KeyState::Stale => "the fetch failed; older keys serve",
        KeyState::Missing => "could not be fetched",
    };
    let count = source.keys().len();
    let plural = if count == 1 { "" } else { "s" };
    report.step(
        "keys",
        format!(
            "provider `{}`: {count} usable key{plural} ({state})",
            provider.settings.name
        ),
    );
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            report.step(
                "token",
                format!("invalid: 401 {} ({})", e.reason(), e.description()),
            );
            return Outcome::Refused(401);
        }
    };
    let via = if verified.introspected {
        "by introspection"
    } else {
        "by signature"
    };
    report.step(
        "token",
        format!(
            "valid ({via}), expires {}",
            when(verified.expires_at, unix_now())
        ),
    );
    match explain_rules(route, parts, path, &verified.claims, report) {
        Ok(()) => Outcome::Passed(Identity {
            claims: verified.claims.clone(),
            has_access_token: true,
        }),
        Err(status) => Outcome::Refused(status),
    }
}

/// How the gateway answers a request to `route` that has no usable session, as
/// `proxy::browser` does: for navigations (or `mode: browser`) the sign-in is started for real
/// (up to the redirect to the provider), else 401.
fn sign_in(snap: &Snapshot, route: &Route, parts: &Parts) -> (u16, String) {
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    let redirect = match route.mode {
        Some(RouteMode::Api) => false,
        Some(RouteMode::Browser) => get,
        None => portcullis::web::navigation::is_navigation(&parts.method, &parts.headers),
    };
    let provider = route.provider.and_then(|i| snap.sign_in(i));
    let base = portcullis::proxy::browser::base_url(snap, parts, false);
    if let (true, Some(provider), Some(base), Some(sessions)) =
        (redirect, provider, base, &snap.config.sessions)
    {
        let rd = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        let rd = portcullis::proxy::browser::checked_return(sessions, Some(&rd));
        if let Some(rt) = runtime() {
            rt.block_on(snap.prefetch_keys());
        }
        let answer = portcullis::proxy::browser::begin_sign_in(
            snap,
            provider,
            parts,
            &base,
            rd.clone(),
            Vec::new(),
            unix_now(),
        );
        let (status, text) = super::endpoints::summary(&answer);
        return (status, format!("sign-in: {text}, back to {rd} afterwards"));
    }
    (
        401,
        "401 JSON unauthorized: sign-in required (not a browser navigation)".into(),
    )
}

fn explain_session(
    snap: &Snapshot,
    route: &Route,
    parts: &Parts,
    path: &str,
    report: &mut Report,
) -> Outcome {
    let (Some(store), Some(sessions)) = (snap.cookies(parts), &snap.config.sessions) else {
        report.step("session", "no `sessions:` configured: 500");
        return Outcome::Refused(500);
    };
    let mut read = store.read(&parts.headers);
    if let (Some(ticket), Some(redis)) = (&read.ticket, snap.store.as_ref().and_then(|s| s.redis()))
    {
        let Some(runtime) = runtime() else {
            return Outcome::Refused(500);
        };
        match runtime.block_on(redis.get(ticket)) {
            Ok(Some(s)) => {
                report.step(
                    "store",
                    "the cookie holds a ticket; the session is in Redis",
                );
                read.session = Some(s);
            }
            Ok(None) => {
                let (status, answer) = sign_in(snap, route, parts);
                report.step(
                    "session",
                    format!("the ticket's session has ended in Redis: {answer}"),
                );
                return Outcome::Refused(status);
            }
            Err(e) => {
                report.step("session", format!("{e}: 503"));
                return Outcome::Refused(503);
            }
        }
    }
    let Some(session) = read.session else {
        let (status, answer) = sign_in(snap, route, parts);
        match read.problem {
            Some(problem) => report.step(
                "session",
                format!("the cookie does not open ({problem}): {answer}"),
            ),
            None => report.step(
                "session",
                format!("none (no `{}` cookie): {answer}", store.name()),
            ),
        }
        return Outcome::Refused(status);
    };
    let now = unix_now();
    let expires = session.created + sessions.lifetime.as_secs();
    let idle_until = session.seen + sessions.idle_timeout.as_secs();
    let user = match session.claims.get("sub") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "unknown".into(),
    };
    report.step(
        "session",
        format!("provider `{}`, user {user}", session.provider),
    );
    report.step("signed in", when(session.created, now));
    report.step("ends", format!("{} (lifetime)", when(expires, now)));
    report.step("idle ends", when(idle_until, now));
    let access = match (&session.access_token, session.access_expires) {
        (None, _) => "access token: none".to_string(),
        (Some(_), None) => "access token: held".to_string(),
        (Some(_), Some(exp)) => format!("access token: held, expires {}", when(exp, now)),
    };
    let refresh = if session.refresh_token.is_some() {
        "refresh token: held"
    } else {
        "refresh token: none"
    };
    report.step("tokens", format!("{access}; {refresh}"));
    let provider = route
        .provider
        .and_then(|i| snap.config.providers.keys().nth(i));
    if provider.map(String::as_str) != Some(session.provider.as_str()) {
        let (status, answer) = sign_in(snap, route, parts);
        report.step(
            "session",
            format!("made by another provider than the route's: {answer}"),
        );
        return Outcome::Refused(status);
    }
    if expires <= now || idle_until <= now {
        let (status, answer) = sign_in(snap, route, parts);
        report.step(
            "session",
            format!("over (lifetime or idle timeout): {answer}"),
        );
        return Outcome::Refused(status);
    }
    match explain_rules(route, parts, path, &session.claims, report) {
        Ok(()) => Outcome::Passed(Identity {
            has_access_token: session.access_token.is_some(),
            claims: Arc::new(session.claims),
        }),
        Err(status) => Outcome::Refused(status),
    }
}

/// Steps each `allow` entry; `Err` with the status when the rules deny.
fn explain_rules(
    route: &Route,
    parts: &Parts,
    path: &str,
    claims: &Map<String, Value>,
    report: &mut Report,
) -> Result<(), u16> {
    let facts = RequestFacts {
        method: &parts.method,
        path,
    };
    for (i, entry) in route.policy.explain(&facts, claims).iter().enumerate() {
        let conditions: Vec<String> = entry.conditions.iter().map(condition).collect();
        let verdict = if entry.held { "holds" } else { "fails" };
        report.step(
            format!("allow[{i}]"),
            format!("{verdict}: {}", conditions.join("; ")),
        );
    }
    match route.policy.evaluate(&facts, claims) {
        Verdict::Allow { entry: Some(i) } => {
            report.step("rules", format!("allowed by allow[{i}]"));
            Ok(())
        }
        Verdict::Allow { entry: None } => {
            report.step(
                "rules",
                "allowed: no `allow` rules, any signed-in user passes",
            );
            Ok(())
        }
        Verdict::Deny(d) => {
            let mut text = format!(
                "denied: 403 ({}, from allow[{}])",
                d.reason.as_str(),
                d.entry
            );
            if !d.missing_scopes.is_empty() {
                text.push_str(&format!(", missing scopes {}", d.missing_scopes.join(" ")));
            }
            report.step("rules", text);
            Err(403)
        }
    }
}

/// `scopes [orders.read] held`, `email_domain example.com failed (other domain)`.
fn condition(c: &ConditionReport) -> String {
    let mut text = format!("{} {}", c.key, c.rule);
    if c.held {
        text.push_str(" ✓");
    } else {
        text.push_str(" ✗");
        if let Some(why) = &c.detail {
            text.push_str(&format!(" ({why})"));
        }
    }
    text
}

//! The gateway's own endpoints under `auth_prefix`, explained as `proxy::endpoints::serve`
//! answers them: the same endpoint names and methods, the same sign-in start (run for real, up
//! to the redirect), the same session lookup for `/userinfo` and `/sign_out`, the same route
//! judgement for forward-auth. What cannot be done without side effects (redeeming a code,
//! ending a session, reading a logout token) is described, not done.

use http::{Method, header, request::Parts};
use serde_json::Value;

use portcullis::proxy::browser::{Answer, base_url, begin_sign_in, checked_return};
use portcullis::proxy::endpoints::{original_request, start_provider};
use portcullis::routing::{AuthPolicy, host_of, normalise, normalise_host};
use portcullis::session::store::live;
use portcullis::snapshot::Snapshot;
use portcullis::token::unix_now;

use super::{Report, auth};

/// The endpoints and the methods each takes, as `proxy::endpoints::serve` lists them.
const ENDPOINTS: &[(&str, &[Method])] = &[
    ("/start", &[Method::GET, Method::HEAD]),
    ("/callback", &[Method::GET]),
    ("/sign_out", &[Method::GET, Method::POST]),
    ("/userinfo", &[Method::GET, Method::HEAD]),
    ("/auth", &[Method::GET, Method::HEAD]),
    ("/jwks.json", &[Method::GET, Method::HEAD]),
    ("/backchannel_logout", &[Method::POST]),
];

/// Explains the request for endpoint `name` (the path after `auth_prefix`).
pub fn explain(snap: &Snapshot, parts: &Parts, name: &str, report: &mut Report) {
    let prefix = &snap.config.server.auth_prefix;
    report.endpoint = Some(name.to_string());
    report.step(
        "endpoint",
        format!("{prefix}{name}: the gateway's own, on every host (server.auth_prefix)"),
    );
    if let Err(r) = host_of(parts, parts.uri.to_string().as_bytes()) {
        return report.answer(r.status, format!("{} {}", r.status, r.message));
    }
    let Some((_, allowed)) = ENDPOINTS.iter().find(|(n, _)| *n == name) else {
        let known: Vec<String> = ENDPOINTS
            .iter()
            .map(|(n, _)| format!("{prefix}{n}"))
            .collect();
        return report.answer(
            404,
            format!(
                "404 no such gateway endpoint (there are {})",
                known.join(", ")
            ),
        );
    };
    if !allowed.contains(&parts.method) {
        let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        return report.answer(405, format!("405, Allow: {}", allow.join(", ")));
    }
    if name == "/jwks.json" {
        let keys = serde_json::from_slice::<Value>(&snap.jwks(unix_now()))
            .ok()
            .and_then(|v| v["keys"].as_array().map(Vec::len))
            .unwrap_or(0);
        return report.answer(
            200,
            format!(
                "200 the identity assertion's public keys (a JWK set with {keys} key{}), cacheable for 5 min",
                if keys == 1 { "" } else { "s" }
            ),
        );
    }
    if snap.cookies(parts).is_none() || snap.config.sessions.is_none() {
        return report.answer(404, "404 sessions are not configured on this gateway");
    }
    match name {
        "/start" => start(snap, parts, report),
        "/callback" => callback(snap, parts, report),
        "/sign_out" => sign_out(snap, parts, report),
        "/userinfo" => userinfo(snap, parts, report),
        "/auth" => forward_auth(snap, parts, report),
        _ => report.answer(
            400,
            "400 JSON invalid_request: no logout_token (explain sends no body; a form whose logout_token verifies — the provider's keys, iss, aud = client_id, exp, the logout event, sid or sub, no nonce — gets 200 {} and ends those sessions)",
        ),
    }
}

fn query_param(parts: &Parts, name: &str) -> Option<String> {
    url::form_urlencoded::parse(parts.uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
}

/// The status and a line for people of an [`Answer`].
pub fn summary(answer: &Answer) -> (u16, String) {
    match answer {
        Answer::Json { denied, .. } => (
            denied.status,
            format!(
                "{} JSON {}: {}",
                denied.status, denied.code, denied.description
            ),
        ),
        Answer::Redirect { location, cookies } => {
            let shown = location.split('?').next().unwrap_or(location);
            let params: Vec<String> = location
                .split_once('?')
                .map(|(_, q)| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .map(|(k, _)| k.into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let mut text = format!("302 to {shown}");
            if !params.is_empty() {
                text.push_str(&format!(" (with {})", params.join(", ")));
            }
            if !cookies.is_empty() {
                text.push_str(&format!(", setting {} cookie(s)", cookies.len()));
            }
            (302, text)
        }
        Answer::Document { body } => {
            let keys: Vec<&str> = body
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            (200, format!("200 JSON with {}", keys.join(", ")))
        }
        Answer::Allowed { headers, .. } => {
            let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            (200, format!("200 with {}", names.join(", ")))
        }
        Answer::Html {
            status,
            title,
            message,
            ..
        } => (*status, format!("{status} page \"{title}\": {message}")),
    }
}

/// `/start?rd=URL[&provider=NAME]`: the sign-in start, run as the gateway runs it.
fn start(snap: &Snapshot, parts: &Parts, report: &mut Report) {
    let Some(sessions) = &snap.config.sessions else {
        return;
    };
    let Some(base) = base_url(snap, parts, false) else {
        return report.answer(400, "400 page: the request's Host header is not usable");
    };
    let rd = checked_return(sessions, query_param(parts, "rd").as_deref());
    report.step(
        "return to",
        format!("{rd} (rd, when relative or an allowed host; else /)"),
    );
    let Some(provider) = start_provider(snap, parts, &rd).and_then(|i| snap.sign_in(i)) else {
        return report.answer(404, "404 page: no provider is configured to sign in with");
    };
    report.step("provider", format!("`{}`", provider.name));
    if let Some(rt) = runtime() {
        rt.block_on(snap.prefetch_keys());
    }
    let answer = begin_sign_in(snap, provider, parts, &base, rd, Vec::new(), unix_now());
    let (status, text) = summary(&answer);
    report.answer(status, text);
}

/// `/callback`: state and the pending sign-in are checked as the gateway does; the code is
/// not redeemed (it works once).
fn callback(snap: &Snapshot, parts: &Parts, report: &mut Report) {
    let Some(store) = snap.cookies(parts) else {
        return;
    };
    let Some(state) = query_param(parts, "state").filter(|s| !s.is_empty() && s.len() <= 512)
    else {
        return report.answer(
            400,
            "400 page: this sign-in response is incomplete (no state)",
        );
    };
    let (pending, _) = store.take_pending(&parts.headers, &state, unix_now());
    let Some(pending) = pending else {
        return report.answer(
            400,
            "400 page: this sign-in was not started in this browser, was already used, or has expired",
        );
    };
    report.step(
        "sign-in",
        format!(
            "pending at provider `{}`, back to {}",
            pending.provider, pending.rd
        ),
    );
    if query_param(parts, "error").is_some() {
        return report.answer(403, "403 page: the sign-in service refused");
    }
    if query_param(parts, "code").is_none() {
        return report.answer(
            400,
            "400 page: this sign-in response is incomplete (no code)",
        );
    }
    report.answer(
        302,
        format!("302 to {} with a new session, once the provider accepts the code (explain does not redeem it: a code works once); else a 400/502 page", pending.rd),
    );
}

/// The request's live session, as `proxy::endpoints` looks it up (Redis included).
fn live_session(
    snap: &Snapshot,
    parts: &Parts,
) -> Result<Option<portcullis::session::SessionData>, String> {
    let (Some(cookies), Some(store), Some(sessions)) =
        (snap.cookies(parts), &snap.store, &snap.config.sessions)
    else {
        return Ok(None);
    };
    let rt = runtime().ok_or("cannot start a runtime")?;
    let loaded = rt
        .block_on(store.load(cookies, &parts.headers))
        .map_err(|e| e.to_string())?;
    Ok(loaded
        .session
        .filter(|s| live(s, sessions, unix_now()) && snap.provider_index(&s.provider).is_some()))
}

fn sign_out(snap: &Snapshot, parts: &Parts, report: &mut Report) {
    let Some(sessions) = &snap.config.sessions else {
        return;
    };
    let rd = checked_return(sessions, query_param(parts, "rd").as_deref());
    let session = match live_session(snap, parts) {
        Ok(s) => s,
        Err(e) => {
            return report.answer(503, format!("503: the session store is unavailable ({e})"));
        }
    };
    let Some(session) = session else {
        return report.answer(
            302,
            format!("302 to {rd}, clearing any session cookies (no live session)"),
        );
    };
    report.step("session", format!("live, provider `{}`", session.provider));
    if parts.method == Method::POST {
        report.answer(
            302,
            format!("302 to {rd} (through the provider's end_session endpoint when it has one), the session ended — if the request is same-origin (Sec-Fetch-Site, Origin, or the form's csrf token); else a 403 page"),
        )
    } else {
        report.answer(
            200,
            "200 page \"Sign out\": a confirmation form that POSTs with a CSRF token",
        )
    }
}

fn userinfo(snap: &Snapshot, parts: &Parts, report: &mut Report) {
    match live_session(snap, parts) {
        Err(e) => report.answer(503, format!("503: the session store is unavailable ({e})")),
        Ok(None) => report.answer(401, "401 JSON unauthorized: sign-in required"),
        Ok(Some(session)) => {
            let mut keys: Vec<&str> = session.claims.keys().map(String::as_str).collect();
            keys.extend(["provider", "session_expires_at"]);
            if session.access_expires.is_some() {
                keys.push("access_token_expires_at");
            }
            report.answer(200, format!("200 JSON with {}", keys.join(", ")));
        }
    }
}

/// `/auth` (forward-auth): the original request named by `X-Original-URI`/`X-Forwarded-Uri`,
/// judged like a proxied one, answered 200 with the identity headers or 401/403.
fn forward_auth(snap: &Snapshot, parts: &Parts, report: &mut Report) {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(uri) = header("x-original-uri").or_else(|| header("x-forwarded-uri")) else {
        return report.answer(
            400,
            "400 JSON: forward-auth needs X-Original-URI or X-Forwarded-Uri from a trusted proxy",
        );
    };
    report.step(
        "trust",
        "assumed to come from a peer in trusted_proxies (from any other: 400)",
    );
    let Some(original) = original_request(parts, uri) else {
        return report.answer(400, "400 JSON: malformed original URI");
    };
    let Ok(normal) = normalise(original.uri.path()) else {
        return report.answer(400, "400 JSON: ambiguous or malformed path");
    };
    let path = normal.path.into_owned();
    let host = original
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| normalise_host(h).into_owned())
        .unwrap_or_default();
    report.step("original", format!("{} {host}{path}", original.method));
    let Some(index) = snap.router.resolve_index(&original.method, &host, &path) else {
        return report.answer(403, "403 JSON: no route takes this request");
    };
    let route = &snap.router.routes()[index];
    report.step(
        "route",
        format!(
            "routes[{index}] `{}`, auth {}",
            route.name,
            super::auth_name(route.auth)
        ),
    );
    if route.auth == AuthPolicy::Public {
        return report.answer(200, "200 without identity headers (a public route)");
    }
    match auth::authenticate(snap, route, &original, &path, report) {
        auth::Outcome::Refused(status) => {
            report.verdict = "refused";
            report.status = Some(status);
        }
        auth::Outcome::Passed(identity) => {
            let mut added = Vec::new();
            super::upstream::identity_added(snap, route, &identity, &mut added);
            let names: Vec<String> = added.iter().map(|h| h.name.clone()).collect();
            report.answer(200, format!("200 with {}", names.join(", ")));
        }
    }
}

//! The gateway's own endpoints under `auth_prefix`: `/start`, `/callback`, `/sign_out`,
//! `/userinfo`, `/auth` (forward-auth) and `/jwks.json`.

use std::sync::Arc;

use bytes::BytesMut;
use http::request::Parts;
use http::{Method, header};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

use super::browser::{self, Answer, base_url, begin_sign_in, checked_return, redirect_uri};
use super::respond::{self, Extras, escape_html};
use super::{RequestCtx, auth};
use crate::logging::{LoggedUser, user_of};
use crate::metrics;
use crate::policy::lookup_claim;
use crate::routing::{AuthPolicy, normalise, normalise_host};
use crate::session::redis::{StoreError, index_entry};
use crate::session::revoked;
use crate::session::store::{Loaded, live};
use crate::session::{Cookies, SessionData};
use crate::signin::refresh::Refreshes;
use crate::snapshot::Snapshot;
use crate::token::unix_now;

/// Largest form body read by `/sign_out`.
const MAX_FORM: usize = 8 * 1024;

/// Serves endpoint `name` (the path after `auth_prefix`).
pub async fn serve(
    refreshes: &Refreshes,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    snap: &Arc<Snapshot>,
    name: &str,
) -> Result<()> {
    let method = session.req_header().method.clone();
    let (label, allowed): (&'static str, &[Method]) = match name {
        "/start" => ("start", &[Method::GET, Method::HEAD]),
        "/callback" => ("callback", &[Method::GET]),
        "/sign_out" => ("sign_out", &[Method::GET, Method::POST]),
        "/userinfo" => ("userinfo", &[Method::GET, Method::HEAD]),
        "/auth" => ("auth", &[Method::GET, Method::HEAD]),
        "/jwks.json" => ("jwks", &[Method::GET, Method::HEAD]),
        "/backchannel_logout" => ("backchannel_logout", &[Method::POST]),
        _ => {
            ctx.refusal = Some("no_endpoint");
            return respond::json_error(session, 404, "not_found", "no such gateway endpoint")
                .await;
        }
    };
    ctx.endpoint = Some(label);
    if !allowed.contains(&method) {
        ctx.refusal = Some("method");
        let mut resp = ResponseHeader::build(405, Some(4))?;
        let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        resp.insert_header("allow", allow.join(", "))?;
        resp.insert_header("content-length", "0")?;
        return respond::send(session, resp, bytes::Bytes::new()).await;
    }
    if label == "jwks" {
        // Apps may cache the key set for five minutes: the next key is published a whole
        // rotation period before it signs.
        return respond::json_bytes(session, snap.jwks(unix_now()), 300).await;
    }
    let (Some(_), Some(_)) = (snap.cookies(session.req_header()), &snap.config.sessions) else {
        ctx.refusal = Some("no_sessions");
        return respond::json_error(
            session,
            404,
            "not_found",
            "sessions are not configured on this gateway",
        )
        .await;
    };
    let req: Parts = session.req_header().as_ref().clone();
    let now = unix_now();
    let answer = match label {
        "start" => start(snap, &req, ctx.trusted, now),
        "callback" => callback(snap, &req, ctx.trusted, now).await,
        "sign_out" | "backchannel_logout" => {
            let form = if method == Method::POST {
                match read_form(session).await {
                    Some(f) => f,
                    None => {
                        ctx.refusal = Some("form");
                        return respond::json_error(
                            session,
                            413,
                            "payload_too_large",
                            "the form is too large",
                        )
                        .await;
                    }
                }
            } else {
                Vec::new()
            };
            if label == "sign_out" {
                sign_out(snap, &req, ctx.trusted, &form).await
            } else {
                backchannel_logout(snap, &form, now).await
            }
        }
        "userinfo" => userinfo(snap, &req, now).await,
        _ => forward_auth(refreshes, snap, &req, ctx, now).await,
    };
    ctx.refusal = Some(answer.reason());
    write(session, answer).await
}

/// Writes `answer`.
pub async fn write(session: &mut ServerSession, answer: Answer) -> Result<()> {
    match answer {
        Answer::Json {
            denied,
            cookies,
            cors,
        } => {
            respond::auth_error(
                session,
                &denied,
                Extras {
                    cookies: &cookies,
                    cors_origin: cors.as_deref(),
                },
            )
            .await
        }
        Answer::Redirect { location, cookies } => {
            respond::redirect(session, &location, &cookies).await
        }
        Answer::Html {
            status,
            title,
            message,
            extra,
            cookies,
            ..
        } => respond::html(session, status, title, &message, &extra, &cookies).await,
        Answer::Document { body } => respond::json(session, 200, &body, Extras::default()).await,
        Answer::Allowed { headers, cookies } => {
            let mut resp = ResponseHeader::build(200, Some(headers.len() + cookies.len() + 2))?;
            for (name, value) in headers {
                resp.insert_header(name, value)?;
            }
            for cookie in &cookies {
                resp.append_header("set-cookie", cookie.as_str())?;
            }
            resp.insert_header("content-length", "0")?;
            resp.insert_header("cache-control", "no-store")?;
            respond::send(session, resp, bytes::Bytes::new()).await
        }
    }
}

fn query_param(req: &Parts, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn bad_request(message: &str) -> Answer {
    Answer::Html {
        status: 400,
        title: "Sign-in failed",
        message: message.into(),
        extra: String::new(),
        cookies: Vec::new(),
        reason: "bad_request",
    }
}

/// `/start?rd=URL[&provider=NAME]`: begins a sign-in.
/// The provider `/start` signs in with: the one `?provider=` names, else that of the session
/// route the return URL `rd` leads to, else that of the first session route.
pub fn start_provider(snap: &Snapshot, req: &Parts, rd: &str) -> Option<usize> {
    let named = query_param(req, "provider").and_then(|n| snap.provider_index(&n));
    let by_route = || {
        let path = normalise(rd.split(['?', '#']).next()?).ok()?;
        let host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(normalise_host)
            .unwrap_or_default();
        let route = snap
            .router
            .resolve_index(&Method::GET, &host, &path.path)
            .and_then(|i| snap.router.routes().get(i))?;
        matches!(
            route.auth,
            AuthPolicy::Session | AuthPolicy::SessionOrBearer
        )
        .then_some(route.provider)?
    };
    let first_session_route = || {
        snap.router
            .routes()
            .iter()
            .find(|r| matches!(r.auth, AuthPolicy::Session | AuthPolicy::SessionOrBearer))
            .and_then(|r| r.provider)
    };
    named.or_else(by_route).or_else(first_session_route)
}

fn start(snap: &Snapshot, req: &Parts, trusted: bool, now: u64) -> Answer {
    let Some(sessions) = &snap.config.sessions else {
        return Answer::internal();
    };
    let Some(base) = base_url(snap, req, trusted) else {
        return bad_request("The request's Host header is not usable.");
    };
    let rd = checked_return(sessions, query_param(req, "rd").as_deref());
    let provider = start_provider(snap, req, &rd).and_then(|i| snap.sign_in(i));
    let Some(provider) = provider else {
        return Answer::Html {
            status: 404,
            title: "No sign-in here",
            message: "No provider is configured to sign in with.".into(),
            extra: String::new(),
            cookies: Vec::new(),
            reason: "no_provider",
        };
    };
    begin_sign_in(snap, provider, req, &base, rd, Vec::new(), now)
}

/// `/callback?code=…&state=…`: completes a sign-in.
async fn callback(snap: &Snapshot, req: &Parts, trusted: bool, now: u64) -> Answer {
    let (Some(store), Some(sessions)) = (snap.cookies(req), &snap.config.sessions) else {
        return Answer::internal();
    };
    let Some(base) = base_url(snap, req, trusted) else {
        return bad_request("The request's Host header is not usable.");
    };
    let retry = |rd: &str, text: &str| {
        let href = format!(
            "{}/start?rd={}",
            snap.config.server.auth_prefix,
            url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        );
        format!("<p><a href=\"{}\">{text}</a></p>", escape_html(&href))
    };
    let Some(state) = query_param(req, "state").filter(|s| !s.is_empty() && s.len() <= 512) else {
        return bad_request("This sign-in response is incomplete (no state).");
    };
    let (pending, cookie) = store.take_pending(&req.headers, &state, now);
    let mut cookies: Vec<String> = cookie.iter().map(|n| store.clear_named(n)).collect();
    let Some(pending) = pending else {
        count_sign_in("unknown", "state");
        return Answer::Html {
            status: 400,
            title: "Sign-in failed",
            message:
                "This sign-in was not started in this browser, was already used, or has expired."
                    .into(),
            extra: retry("/", "Sign in again"),
            cookies,
            reason: "state",
        };
    };
    let Some(provider) = snap
        .provider_index(&pending.provider)
        .and_then(|i| snap.sign_in(i))
    else {
        return Answer::Html {
            status: 400,
            title: "Sign-in failed",
            message: "The provider of this sign-in is no longer configured.".into(),
            extra: retry(&pending.rd, "Sign in again"),
            cookies,
            reason: "provider",
        };
    };
    if let Some(error) = query_param(req, "error") {
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        count_sign_in(&provider.name, "provider_error");
        return Answer::Html {
            status: 403,
            title: "Sign-in refused",
            message: format!("The sign-in service answered: {code}."),
            extra: retry(&pending.rd, "Try again"),
            cookies,
            reason: "provider_error",
        };
    }
    // RFC 9207: when the provider names itself, it must be the one the sign-in went to.
    if let (Some(iss), Some(expected)) = (query_param(req, "iss"), provider.issuer())
        && iss != expected
    {
        count_sign_in(&provider.name, "issuer");
        return Answer::Html {
            status: 400,
            title: "Sign-in failed",
            message: "The sign-in response came from another issuer.".into(),
            extra: retry(&pending.rd, "Sign in again"),
            cookies,
            reason: "issuer",
        };
    }
    let Some(code) = query_param(req, "code").filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return bad_request("This sign-in response is incomplete (no code).");
    };
    match provider
        .complete(&code, &redirect_uri(snap, &base), &pending, now)
        .await
    {
        Ok(mut session) => {
            let Some(sessions_store) = &snap.store else {
                return Answer::internal();
            };
            let before = store.read(&req.headers);
            let present = before.present;
            // A session the browser held before this sign-in ends with it.
            if let Err(e) = sessions_store
                .end(
                    before.session.as_ref(),
                    before.ticket.as_ref(),
                    sessions,
                    now,
                )
                .await
            {
                tracing::warn!(error = %e, "the previous session could not be deleted");
            }
            // A new session always gets a new ticket (Redis) or new cookies: whatever the
            // browser held before is replaced, never reused.
            match sessions_store
                .save(store, sessions, &mut session, None, present, now)
                .await
            {
                Ok(set) => cookies.extend(set),
                Err(e) => {
                    count_sign_in(&provider.name, "store_unavailable");
                    tracing::warn!(error = %e, "sign-in could not be stored");
                    return Answer::Html {
                        status: 503,
                        title: "Sign-in failed",
                        message:
                            "Sessions cannot be stored right now. Please try again in a moment."
                                .into(),
                        extra: retry(&pending.rd, "Sign in again"),
                        cookies,
                        reason: "store_unavailable",
                    };
                }
            }
            count_sign_in(&provider.name, "success");
            tracing::info!(
                provider = %provider.name,
                user = %session_user(snap, &session),
                route = route_of(snap, req, &pending.rd),
                "signed in"
            );
            Answer::Redirect {
                location: pending.rd,
                cookies,
            }
        }
        Err(e) => {
            count_sign_in(&provider.name, e.reason());
            tracing::warn!(provider = %provider.name, error = %e, "sign-in failed");
            let (status, message) = match &e {
                crate::signin::FlowError::Unavailable(_)
                | crate::signin::FlowError::NoEndpoints => (
                    502,
                    "The sign-in service cannot be reached right now. Please try again in a moment.",
                ),
                _ => (
                    400,
                    "The sign-in could not be completed. Please sign in again.",
                ),
            };
            Answer::Html {
                status,
                title: "Sign-in failed",
                message: message.into(),
                extra: retry(&pending.rd, "Sign in again"),
                cookies,
                reason: e.reason(),
            }
        }
    }
}

/// The user of `session` for logs: its provider's user claim.
fn session_user<'s>(snap: &Snapshot, session: &'s SessionData) -> LoggedUser<'s> {
    let claim = snap
        .config
        .providers
        .get(&session.provider)
        .map_or("sub", |p| p.user_claim.as_str());
    LoggedUser(user_of(&session.claims, claim))
}

/// The name of the route a return URL (a path on the request's host, or an absolute URL)
/// leads to, for logs; `none` when no route takes it.
fn route_of<'s>(snap: &'s Snapshot, req: &Parts, rd: &str) -> &'s str {
    let (host, path) = match url::Url::parse(rd) {
        Ok(url) => (url.host_str().map(str::to_owned), url.path().to_owned()),
        Err(_) => (
            req.headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned),
            rd.split(['?', '#']).next().unwrap_or("/").to_owned(),
        ),
    };
    let host = normalise_host(host.as_deref().unwrap_or(""));
    let index = normalise(&path)
        .ok()
        .and_then(|p| snap.router.resolve_index(&Method::GET, &host, &p.path));
    index
        .and_then(|i| snap.router.routes().get(i))
        .map_or("none", |r| &r.name)
}

fn count_sign_in(provider: &str, result: &str) {
    metrics::SIGN_INS
        .with_label_values(&[provider, result])
        .inc();
}

/// The live session of the request, whatever its provider.
async fn live_session(snap: &Snapshot, req: &Parts, now: u64) -> Result<Loaded, StoreError> {
    let (Some(cookies), Some(store), Some(sessions)) =
        (snap.cookies(req), &snap.store, &snap.config.sessions)
    else {
        return Ok(Loaded::default());
    };
    let mut loaded = store.load(cookies, &req.headers).await?;
    loaded.session = loaded
        .session
        .filter(|s| live(s, sessions, now) && snap.provider_index(&s.provider).is_some());
    Ok(loaded)
}

/// Whether a sign-out POST comes from the gateway's own pages: fetch metadata or `Origin` say
/// same-origin, or the form carries the session's anti-CSRF token.
fn same_origin(
    req: &Parts,
    base: Option<&str>,
    store: &Cookies,
    sid: &str,
    form: &[(String, String)],
) -> bool {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    if let (Some(origin), Some(base)) = (header("origin"), base) {
        return origin.eq_ignore_ascii_case(base);
    }
    form.iter()
        .find(|(k, _)| k == "csrf")
        .is_some_and(|(_, token)| store.csrf_valid(sid, token))
}

/// `/sign_out?rd=URL`: GET shows a confirmation form, POST ends the session (here, and at the
/// provider when it supports RP-initiated logout).
async fn sign_out(
    snap: &Snapshot,
    req: &Parts,
    trusted: bool,
    form: &[(String, String)],
) -> Answer {
    let (Some(store), Some(sessions)) = (snap.cookies(req), &snap.config.sessions) else {
        return Answer::internal();
    };
    let now = unix_now();
    let rd_raw = form
        .iter()
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.clone())
        .or_else(|| query_param(req, "rd"));
    let rd = checked_return(sessions, rd_raw.as_deref());
    let Ok(loaded) = live_session(snap, req, now).await else {
        return Answer::store_down();
    };
    let present = loaded.present;
    let base = base_url(snap, req, trusted);
    let session = loaded.session;
    let Some(session) = session else {
        // Nothing to protect: clear whatever is left and go on.
        return Answer::Redirect {
            location: rd,
            cookies: store.clear(present),
        };
    };
    if req.method != Method::POST {
        let form = format!(
            "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"rd\" value=\"{rd}\"><button type=\"submit\" id=\"sign-out\">Sign out</button></form>",
            action = escape_html(&format!("{}/sign_out", snap.config.server.auth_prefix)),
            csrf = escape_html(&store.csrf_token(&session.sid)),
            rd = escape_html(&rd),
        );
        return Answer::Html {
            status: 200,
            title: "Sign out",
            message: "Do you want to sign out?".into(),
            extra: form,
            cookies: Vec::new(),
            reason: "sign_out_confirm",
        };
    }
    if !same_origin(req, base.as_deref(), store, &session.sid, form) {
        return Answer::Html {
            status: 403,
            title: "Sign-out refused",
            message: "This sign-out request did not come from this site.".into(),
            extra: String::new(),
            cookies: Vec::new(),
            reason: "csrf",
        };
    }
    let cookies = store.clear(present | 1);
    if let Some(sessions_store) = &snap.store
        && let Err(e) = sessions_store
            .end(Some(&session), loaded.ticket.as_ref(), sessions, now)
            .await
    {
        tracing::warn!(error = %e, "sign-out: the stored session could not be deleted");
        return Answer::store_down();
    }
    tracing::info!(
        provider = %session.provider,
        user = %session_user(snap, &session),
        route = route_of(snap, req, &rd),
        "signed out"
    );
    let provider = snap
        .provider_index(&session.provider)
        .and_then(|i| snap.sign_in(i));
    let absolute_rd = if rd.starts_with('/') {
        base.map(|b| format!("{b}{rd}"))
    } else {
        Some(rd.clone())
    };
    let location = provider
        .zip(absolute_rd)
        .and_then(|(p, after)| p.end_session_url(&session, &after))
        .map_or(rd, String::from);
    Answer::Redirect { location, cookies }
}

/// `/userinfo`: the signed-in identity as JSON.
async fn userinfo(snap: &Snapshot, req: &Parts, now: u64) -> Answer {
    let Ok(loaded) = live_session(snap, req, now).await else {
        return Answer::store_down();
    };
    let (Some(sessions), Some(session)) = (&snap.config.sessions, loaded.session) else {
        return Answer::Json {
            denied: auth::Denied {
                status: 401,
                code: "unauthorized",
                description: "sign-in required",
                challenge: None,
                reason: "no_session",
            },
            cookies: Vec::new(),
            cors: None,
        };
    };
    let mut claims = session.claims.clone();
    claims.insert("provider".into(), Value::String(session.provider.clone()));
    claims.insert(
        "session_expires_at".into(),
        json!(session.created + sessions.lifetime.as_secs()),
    );
    if let Some(exp) = session.access_expires {
        claims.insert("access_token_expires_at".into(), json!(exp));
    }
    Answer::Document {
        body: Value::Object(claims),
    }
}

/// `/auth`: forward-auth for nginx `auth_request`, Traefik `forwardAuth` and kin. The original
/// request is named by `X-Original-URI` / `X-Forwarded-Uri`, `X-Forwarded-Host` and
/// `X-Forwarded-Method` (or `X-Original-Method`), believed only from `trusted_proxies`. The route
/// it matches decides: 200 with the identity headers, or 401/403.
/// The request a forward-auth call (`/auth`) is about: `req` with the method of
/// `X-Forwarded-Method`/`X-Original-Method` (else GET), the target `uri` and the host of
/// `X-Forwarded-Host` (else `req`'s). `None` when `uri` is not a request target.
pub fn original_request(req: &Parts, uri: &str) -> Option<Parts> {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let method = header("x-forwarded-method")
        .or_else(|| header("x-original-method"))
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .unwrap_or(Method::GET);
    let uri = uri.parse::<http::Uri>().ok()?;
    let mut original = req.clone();
    original.method = method;
    original.uri = uri;
    if let Some(host) = header("x-forwarded-host")
        && let Ok(value) = http::HeaderValue::from_str(host)
    {
        original.headers.insert(header::HOST, value);
    }
    Some(original)
}

async fn forward_auth(
    refreshes: &Refreshes,
    snap: &Snapshot,
    req: &Parts,
    ctx: &mut RequestCtx,
    now: u64,
) -> Answer {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let uri = header("x-original-uri").or_else(|| header("x-forwarded-uri"));
    let refuse =
        |status: u16, code: &'static str, description: &'static str, reason| Answer::Json {
            denied: auth::Denied {
                status,
                code,
                description,
                challenge: None,
                reason,
            },
            cookies: Vec::new(),
            cors: None,
        };
    let (true, Some(uri)) = (ctx.trusted, uri) else {
        return refuse(
            400,
            "bad_request",
            "forward-auth needs X-Original-URI or X-Forwarded-Uri from a trusted proxy",
            "forward_auth_untrusted",
        );
    };
    let Some(original) = original_request(req, uri) else {
        return refuse(400, "bad_request", "malformed original URI", "bad_target");
    };
    let Ok(normal) = normalise(original.uri.path()) else {
        return refuse(
            400,
            "bad_request",
            "ambiguous or malformed path",
            "bad_path",
        );
    };
    let path = normal.path.into_owned();
    let host = original
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| normalise_host(h).into_owned())
        .unwrap_or_default();
    let Some(index) = snap.router.resolve_index(&original.method, &host, &path) else {
        return refuse(403, "forbidden", "no route takes this request", "no_route");
    };
    let Some(route) = snap.router.routes().get(index) else {
        return Answer::internal();
    };
    ctx.route = Some(index);
    let passed = match route.auth {
        AuthPolicy::Public => {
            return Answer::Allowed {
                headers: Vec::new(),
                cookies: Vec::new(),
            };
        }
        AuthPolicy::Bearer => match browser::bearer(snap, route, &original, &path, None).await {
            Ok(p) => p,
            Err(answer) => {
                answer.log_refusal(route);
                return answer;
            }
        },
        AuthPolicy::Session | AuthPolicy::SessionOrBearer => {
            match browser::authenticate(refreshes, snap, route, &original, &path, None, false, now)
                .await
            {
                Ok(p) => p,
                Err(answer) => {
                    answer.log_refusal(route);
                    return answer;
                }
            }
        }
    };
    auth::count(&route.name, Ok(()));
    let tokens = super::Tokens {
        access: passed.access_token.as_deref(),
        id: passed.id_token.as_deref(),
    };
    match super::identity_headers_for(snap, route, &passed.identity, tokens, passed.sid.as_deref())
    {
        Ok(headers) => Answer::Allowed {
            headers,
            cookies: passed.cookies,
        },
        Err(_) => Answer::internal(),
    }
}

/// The OIDC Back-Channel Logout 1.0 event.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// `POST /backchannel_logout` (OIDC Back-Channel Logout 1.0): a provider ends the sessions of a
/// `sid` or a `sub`. The logout token is verified like an ID token (the provider's keys, `iss`,
/// `aud` = our client id, `exp`), must carry the logout event and `sid` or `sub`, and no `nonce`.
/// Redis store: the sessions are deleted, on every instance at once. Cookie store: they are
/// refused by this instance from now on.
async fn backchannel_logout(snap: &Snapshot, form: &[(String, String)], now: u64) -> Answer {
    let refuse = |reason: &'static str, description: &'static str| {
        metrics::BACKCHANNEL_LOGOUTS
            .with_label_values(&[reason])
            .inc();
        tracing::info!(
            reason,
            route = "backchannel_logout",
            "back-channel logout refused"
        );
        Answer::Json {
            denied: auth::Denied {
                status: 400,
                code: "invalid_request",
                description,
                challenge: None,
                reason,
            },
            cookies: Vec::new(),
            cors: None,
        }
    };
    let Some(token) = form
        .iter()
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.as_str())
    else {
        return refuse("missing", "no logout_token");
    };
    // The provider is the one whose issuer the token names; its signature decides.
    let issuer = crate::identity::claims::unverified_issuer(token);
    let provider = snap
        .sign_in
        .iter()
        .flatten()
        .find(|p| p.issuer().is_some() && p.issuer() == issuer);
    let Some(provider) = provider else {
        return refuse(
            "issuer",
            "the logout token's issuer is not a configured provider",
        );
    };
    let claims = match provider.verify_logout_token(token).await {
        Ok(c) => c,
        Err(_) => return refuse("invalid_token", "the logout token is invalid"),
    };
    let has_event = claims
        .get("events")
        .and_then(|e| e.as_object())
        .is_some_and(|e| e.contains_key(LOGOUT_EVENT));
    if !has_event || claims.contains_key("nonce") {
        return refuse("not_logout", "not a logout token");
    }
    let sid = claims.get("sid").and_then(|v| v.as_str());
    let sub = claims.get("sub").and_then(|v| v.as_str());
    if sid.is_none() && sub.is_none() {
        return refuse("no_subject", "the logout token names no sid or sub");
    }
    let Some(sessions) = &snap.config.sessions else {
        return Answer::internal();
    };
    let name = provider.name.to_string();
    // The provider's user claim, when the logout token carries it (usually only `sub` does).
    let claim = snap
        .config
        .providers
        .get(&name)
        .map(|p| p.user_claim.as_str())
        .filter(|c| lookup_claim(&claims, c).is_some())
        .unwrap_or("sub");
    let user = LoggedUser(user_of(&claims, claim));
    let entries: Vec<(&str, &str)> = [("sid", sid), ("sub", sub)]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    match snap.store.as_ref().and_then(|s| s.redis()) {
        Some(redis) => {
            // A `sid` names one provider session; a `sub` without `sid` every session of the user.
            let (kind, value) = entries[0];
            match redis.end_indexed(&index_entry(&name, kind, value)).await {
                Ok(n) => tracing::info!(
                    provider = %name,
                    user = %user,
                    route = "backchannel_logout",
                    sessions = n,
                    "back-channel logout"
                ),
                Err(e) => {
                    metrics::BACKCHANNEL_LOGOUTS
                        .with_label_values(&["store_unavailable"])
                        .inc();
                    tracing::warn!(error = %e, "back-channel logout: store unavailable");
                    return Answer::store_down();
                }
            }
        }
        None => {
            let (kind, value) = entries[0];
            revoked::revoke(&name, kind, value, now, now + sessions.lifetime.as_secs());
            tracing::info!(
                provider = %name,
                user = %user,
                route = "backchannel_logout",
                "back-channel logout (this instance)"
            );
        }
    }
    metrics::BACKCHANNEL_LOGOUTS
        .with_label_values(&["success"])
        .inc();
    Answer::Document { body: json!({}) }
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM`] bytes; `None` when
/// larger.
async fn read_form(session: &mut ServerSession) -> Option<Vec<(String, String)>> {
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_FORM {
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Some(Vec::new()),
        }
    }
    Some(
        url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

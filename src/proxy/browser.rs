//! Session routes as the proxy runs them: read the session cookie, refresh it when its access
//! token is about to expire, apply the route's `allow` rules — or answer an unauthenticated
//! request with a redirect to sign-in (browser navigation) or a 401 (everything else).
//!
//! Decides only; `proxy` writes the answers through `respond`.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{Method, header};
use serde_json::Value;

use super::auth::{self, Denied};
use crate::config::SessionsConfig;
use crate::metrics;
use crate::policy::{RequestFacts, Verdict};
use crate::routing::{AuthPolicy, Route, RouteMode};
use crate::session::redis::StoreError;
use crate::session::store::{Store, live, remaining};
use crate::session::{SessionData, Ticket};
use crate::signin::refresh::Refreshes;
use crate::signin::{FlowError, SignInProvider};
use crate::snapshot::Snapshot;
use crate::token::{Verified, extract_bearer};
use crate::web::navigation::is_navigation;
use crate::web::return_to::{HostRule, safe_return_url};

/// How the gateway answers instead of proxying.
#[derive(Debug)]
pub enum Answer {
    /// A JSON refusal (401/403/503), readable cross-origin by `cors` when set.
    Json {
        /// The refusal.
        denied: Denied,
        /// `Set-Cookie` values (clearing a dead session).
        cookies: Vec<String>,
        /// The allowed origin to echo.
        cors: Option<String>,
    },
    /// A redirect (to the provider's sign-in page, or back to the app).
    Redirect {
        /// `Location`.
        location: String,
        /// `Set-Cookie` values.
        cookies: Vec<String>,
    },
    /// A JSON document (`/userinfo`).
    Document {
        /// The document.
        body: Value,
    },
    /// Forward-auth's yes: 200 with the identity headers.
    Allowed {
        /// Identity headers.
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
        /// `Set-Cookie` values (a refreshed session).
        cookies: Vec<String>,
    },
    /// An HTML page for a person.
    Html {
        /// Status.
        status: u16,
        /// Page title.
        title: &'static str,
        /// Text.
        message: String,
        /// Extra HTML (a link or form), already escaped.
        extra: String,
        /// `Set-Cookie` values.
        cookies: Vec<String>,
        /// Bounded label for metrics and logs.
        reason: &'static str,
    },
}

impl Answer {
    /// The bounded reason label.
    pub fn reason(&self) -> &'static str {
        match self {
            Answer::Json { denied, .. } => denied.reason,
            Answer::Redirect { .. } => "sign_in",
            Answer::Document { .. } | Answer::Allowed { .. } => "ok",
            Answer::Html { reason, .. } => reason,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Json { denied, .. } => denied.status,
            Answer::Redirect { .. } => 302,
            Answer::Document { .. } | Answer::Allowed { .. } => 200,
            Answer::Html { status, .. } => *status,
        }
    }

    /// Logs this answer as a refusal of a request to `route`, unless it is a 403: those (the
    /// route's rules said no) are logged where they were decided, with the user.
    pub fn log_refusal(&self, route: &Route) {
        let status = self.status();
        if status != 403 {
            let reason = self.reason();
            tracing::info!(route = %route.name, reason, status, "request refused");
        }
    }

    /// The session store cannot be reached: 503.
    pub fn store_down() -> Self {
        Answer::Json {
            denied: Denied {
                status: 503,
                code: "temporarily_unavailable",
                description: "the session store is unavailable",
                challenge: None,
                reason: "store_unavailable",
            },
            cookies: Vec::new(),
            cors: None,
        }
    }

    /// An internal inconsistency, answered 500.
    pub fn internal() -> Self {
        Answer::Json {
            denied: Denied::internal(),
            cookies: Vec::new(),
            cors: None,
        }
    }
}

/// A request that passed.
#[derive(Debug)]
pub struct Passed {
    /// Who.
    pub identity: Arc<Verified>,
    /// The access token, for routes that pass it on.
    pub access_token: Option<String>,
    /// The session's ID token, when `identity.id_token` sends it on (never for a bearer token).
    pub id_token: Option<String>,
    /// `Set-Cookie` values for the response (a refreshed or touched session).
    pub cookies: Vec<String>,
    /// The session id, when a session authenticated the request.
    pub sid: Option<String>,
}

/// The origin the browser used to reach the gateway (`scheme://host[:port]`): `public_url`'s
/// when configured, else from the request's `Host` (and `X-Forwarded-Proto` from a trusted
/// proxy).
pub fn base_url(snap: &Snapshot, req: &Parts, trusted: bool) -> Option<String> {
    if let Some(public) = &snap.config.server.public_url {
        return Some(public.origin().ascii_serialization());
    }
    let host = req
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))?;
    if host.is_empty() || host.len() > 255 || !crate::routing::request::valid_authority(host) {
        return None;
    }
    let tls = req
        .extensions
        .get::<crate::snapshot::Arrival>()
        .is_some_and(|a| a.tls);
    let scheme = if tls {
        "https"
    } else {
        trusted
            .then(|| req.headers.get("x-forwarded-proto"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .filter(|p| *p == "https" || *p == "http")
            .unwrap_or("http")
    };
    Some(format!("{scheme}://{host}"))
}

/// The callback URL registered at providers.
pub fn redirect_uri(snap: &Snapshot, base: &str) -> String {
    format!("{base}{}/callback", snap.config.server.auth_prefix)
}

/// The allowlist of return hosts.
pub fn host_rules(sessions: &SessionsConfig) -> Vec<HostRule> {
    sessions
        .allowed_redirect_hosts
        .iter()
        .map(|(h, suffix)| {
            if *suffix {
                HostRule::Suffix(h.clone())
            } else {
                HostRule::Exact(h.clone())
            }
        })
        .collect()
}

/// `rd` if it is a safe return URL, else `/`.
pub fn checked_return(sessions: &SessionsConfig, rd: Option<&str>) -> String {
    rd.and_then(|rd| safe_return_url(rd, &host_rules(sessions)))
        .unwrap_or_else(|| "/".into())
}

/// The request's `Origin` if `route` lets it read refusals.
fn cors_origin(route: &Route, req: &Parts) -> Option<String> {
    let origin = req.headers.get(header::ORIGIN)?.to_str().ok()?;
    let lower = origin.to_ascii_lowercase();
    route
        .cors_origins
        .contains(&lower)
        .then(|| origin.to_owned())
}

/// Whether an unauthenticated request to `route` should be sent to sign in.
fn wants_redirect(route: &Route, req: &Parts) -> bool {
    match route.mode {
        Some(RouteMode::Api) => false,
        Some(RouteMode::Browser) => req.method == Method::GET || req.method == Method::HEAD,
        None => is_navigation(&req.method, &req.headers),
    }
}

/// How stale `seen` may get before the cookie is rewritten: an eighth of the idle timeout, so
/// the idle timeout is enforced within 12.5% without a `Set-Cookie` on every response.
fn touch_interval(cfg: &SessionsConfig) -> u64 {
    (cfg.idle_timeout / 8).max(Duration::from_secs(1)).as_secs()
}

/// Starts a sign-in with `provider` towards `rd`: the pending sign-in's cookie (dropping the
/// oldest beyond `max_pending_sign_ins`) and the redirect to the provider.
pub fn begin_sign_in(
    snap: &Snapshot,
    provider: &SignInProvider,
    req: &Parts,
    base: &str,
    rd: String,
    mut cookies: Vec<String>,
    now: u64,
) -> Answer {
    let (Some(store), Some(sessions)) = (snap.cookies(req), &snap.config.sessions) else {
        return Answer::internal();
    };
    let mut pending = store.pending(&req.headers);
    pending.sort_by_key(|(_, p)| p.as_ref().map_or(0, |p| p.created));
    let keep = sessions.max_pending_sign_ins.saturating_sub(1);
    let unreadable = pending.iter().filter(|(_, p)| p.is_none()).count();
    let excess = pending.len().saturating_sub(keep).max(unreadable);
    for (name, _) in pending.iter().take(excess) {
        cookies.push(store.clear_named(name));
    }
    let sign_in = provider.begin(rd, now);
    let url = match provider.authorize_url(&redirect_uri(snap, base), &sign_in) {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(provider = %provider.name, error = %e, "cannot start a sign-in");
            return Answer::Html {
                status: 503,
                title: "Sign-in unavailable",
                message:
                    "The sign-in service cannot be reached right now. Please try again in a moment."
                        .into(),
                extra: String::new(),
                cookies,
                reason: "provider_unavailable",
            };
        }
    };
    match store.write_pending(&sign_in) {
        Some(c) => cookies.push(c),
        None => return Answer::internal(),
    }
    Answer::Redirect {
        location: url.into(),
        cookies,
    }
}

/// The answer to an unauthenticated request to `route`.
fn unauthenticated(
    snap: &Snapshot,
    route: &Route,
    req: &Parts,
    base: Option<&str>,
    cookies: Vec<String>,
    now: u64,
) -> Answer {
    let provider = route.provider.and_then(|i| snap.sign_in(i));
    if let (true, Some(provider), Some(base)) = (wants_redirect(route, req), provider, base) {
        let rd = match req.uri.path_and_query() {
            Some(pq) => pq.as_str().to_owned(),
            None => "/".to_owned(),
        };
        let rd = snap
            .config
            .sessions
            .as_ref()
            .map_or_else(|| "/".into(), |s| checked_return(s, Some(&rd)));
        return begin_sign_in(snap, provider, req, base, rd, cookies, now);
    }
    let challenge = (route.auth == AuthPolicy::SessionOrBearer)
        .then(|| format!("Bearer realm=\"{}\"", auth::REALM));
    Answer::Json {
        denied: Denied {
            status: 401,
            code: "unauthorized",
            description: "sign-in required",
            challenge,
            reason: "no_session",
        },
        cookies,
        cors: cors_origin(route, req),
    }
}

/// Authenticates a request by its bearer token (a `bearer` route, or a `session_or_bearer` route
/// that was sent one); refusals readable by `cors`.
pub async fn bearer(
    snap: &Snapshot,
    route: &Route,
    req: &Parts,
    path: &str,
    cors: Option<String>,
) -> Result<Passed, Answer> {
    match auth::bearer(snap, route, req, path).await {
        Ok((identity, token)) => Ok(Passed {
            identity,
            access_token: route.access_token.is_some().then(|| token.to_owned()),
            id_token: None,
            cookies: Vec::new(),
            sid: None,
        }),
        Err(denied) => Err(Answer::Json {
            denied,
            cookies: Vec::new(),
            cors,
        }),
    }
}

/// Authenticates a request to a `session` or `session_or_bearer` route. `path` is the normalised
/// path; `base` the browser-facing origin (for redirects); `redirects` false for forward-auth,
/// which answers 401 where a navigation would be redirected.
#[allow(clippy::too_many_arguments)]
pub async fn authenticate(
    refreshes: &Refreshes,
    snap: &Snapshot,
    route: &Route,
    req: &Parts,
    path: &str,
    base: Option<&str>,
    redirects: bool,
    now: u64,
) -> Result<Passed, Answer> {
    if route.auth == AuthPolicy::SessionOrBearer
        && !matches!(extract_bearer(&req.headers, req.uri.query()), Ok(None))
    {
        return bearer(snap, route, req, path, cors_origin(route, req)).await;
    }
    let (Some(cookies), Some(store), Some(sessions), Some(index)) = (
        snap.cookies(req),
        &snap.store,
        &snap.config.sessions,
        route.provider,
    ) else {
        return Err(Answer::internal());
    };
    let Some(provider) = snap.sign_in(index) else {
        return Err(Answer::internal());
    };
    let unauthenticated = |set_cookies: Vec<String>| {
        if redirects {
            unauthenticated(snap, route, req, base, set_cookies, now)
        } else {
            let mut answer = unauthenticated(snap, route, req, None, set_cookies, now);
            if let Answer::Json { cors, .. } = &mut answer {
                *cors = None;
            }
            answer
        }
    };
    let loaded = store
        .load(cookies, &req.headers)
        .await
        .map_err(|e| store_unavailable(route, req, redirects, &e))?;
    let live = loaded
        .session
        .filter(|s| s.provider == *provider.name && live(s, sessions, now));
    let Some(mut session) = live else {
        if let Some(problem) = loaded.problem {
            tracing::info!(route = %route.name, problem, "session cookie refused");
        }
        return Err(unauthenticated(cookies.clear(loaded.present)));
    };
    let ticket = loaded.ticket;
    let mut dirty = false;
    let refresh_due = session.refresh_token.is_some()
        && session
            .access_expires
            .is_some_and(|exp| exp <= now + sessions.refresh_before.as_secs());
    if refresh_due {
        let refresh = refresh_once(store, ticket.as_ref(), provider, &session, sessions, now);
        match refreshes.run(&session, refresh).await {
            Ok(renewed) => {
                session = (*renewed).clone();
                // A refresh through Redis is already stored.
                dirty = ticket.is_none();
            }
            Err(e @ (FlowError::Unavailable(_) | FlowError::NoEndpoints)) => {
                // Provider down: the session goes on with what it has (the contract's "existing
                // sessions keep working"); a later request tries again.
                tracing::warn!(route = %route.name, error = %e, "session refresh failed; keeping the session");
            }
            Err(e) => {
                tracing::info!(route = %route.name, error = %e, "session refresh refused; signing out");
                if let Err(e) = store
                    .end(Some(&session), ticket.as_ref(), sessions, now)
                    .await
                {
                    tracing::warn!(error = %e, "could not delete the ended session");
                }
                return Err(unauthenticated(cookies.clear(loaded.present)));
            }
        }
    }
    if now.saturating_sub(session.seen) >= touch_interval(sessions) {
        session.seen = now;
        dirty = true;
    }
    let set_cookies = if dirty {
        store
            .save(
                cookies,
                sessions,
                &mut session,
                ticket.as_ref(),
                loaded.present,
                now,
            )
            .await
            .map_err(|e| store_unavailable(route, req, redirects, &e))?
    } else {
        Vec::new()
    };
    let claims = Arc::new(std::mem::take(&mut session.claims));
    let facts = RequestFacts {
        method: &req.method,
        path,
    };
    if let Verdict::Deny(denial) = route.policy.evaluate(&facts, &claims) {
        let reason = denial.reason.as_str();
        auth::refused(snap, route, &claims, reason);
        if redirects && is_navigation(&req.method, &req.headers) {
            return Err(Answer::Html {
                status: 403,
                title: "Access denied",
                message: "You are signed in, but not allowed to open this page.".into(),
                extra: String::new(),
                cookies: set_cookies,
                reason,
            });
        }
        return Err(Answer::Json {
            denied: Denied {
                status: 403,
                code: "forbidden",
                description: "access to this resource is not allowed",
                challenge: None,
                reason,
            },
            cookies: set_cookies,
            cors: cors_origin(route, req),
        });
    }
    let expires_at = session
        .access_expires
        .unwrap_or(session.created + sessions.lifetime.as_secs());
    Ok(Passed {
        identity: Arc::new(Verified {
            claims,
            expires_at,
            introspected: false,
        }),
        access_token: if route.access_token.is_some() {
            session.access_token.take()
        } else {
            None
        },
        id_token: if snap.config.identity.id_token.is_some() {
            session.id_token.take()
        } else {
            None
        },
        cookies: set_cookies,
        sid: Some(session.sid),
    })
}

/// The answer when the session store cannot be reached: 503, quickly (every Redis call is
/// bounded by its timeout).
pub fn store_unavailable(route: &Route, req: &Parts, redirects: bool, e: &StoreError) -> Answer {
    tracing::warn!(route = %route.name, error = %e, "session store unavailable");
    if redirects && is_navigation(&req.method, &req.headers) {
        return Answer::Html {
            status: 503,
            title: "Temporarily unavailable",
            message: "Sessions cannot be read right now. Please try again in a moment.".into(),
            extra: String::new(),
            cookies: Vec::new(),
            reason: "store_unavailable",
        };
    }
    let mut answer = Answer::store_down();
    if let Answer::Json { cors, .. } = &mut answer {
        *cors = cors_origin(route, req);
    }
    answer
}

/// One refresh of `session` at the provider, counted once. With the Redis store it is also
/// coordinated across instances: the instance that takes the session's lock refreshes and
/// stores the result; the others wait for it (at most the lock's lifetime) and use it, so a
/// refresh token is never spent twice.
async fn refresh_once(
    store: &Store,
    ticket: Option<&Ticket>,
    provider: &SignInProvider,
    session: &SessionData,
    sessions: &SessionsConfig,
    now: u64,
) -> Result<SessionData, FlowError> {
    let at_provider = || async {
        let outcome = provider.refresh(session, now).await;
        let result = outcome
            .as_ref()
            .map_or_else(FlowError::reason, |_| "success");
        metrics::SESSION_REFRESHES
            .with_label_values(&[&provider.name, result])
            .inc();
        outcome
    };
    let (Some(redis), Some(ticket)) = (store.redis(), ticket) else {
        return at_provider().await;
    };
    let unavailable = |e: StoreError| FlowError::Unavailable(e.to_string());
    let token = crate::session::random_token(16);
    if redis.lock(&ticket.id, &token).await.map_err(unavailable)? {
        // Another instance may have refreshed between our read and the lock.
        let current = redis.get(ticket).await.map_err(unavailable)?;
        let outcome = match current {
            Some(stored) if stored.access_expires != session.access_expires => Ok(stored),
            Some(_) => match at_provider().await {
                Ok(renewed) => redis
                    .put(ticket, &renewed, remaining(&renewed, sessions, now))
                    .await
                    .map(|()| renewed)
                    .map_err(unavailable),
                Err(e) => Err(e),
            },
            None => Err(FlowError::Refused("the session ended".into())),
        };
        if let Err(e) = redis.unlock(&ticket.id, &token).await {
            tracing::debug!(error = %e, "refresh lock not released; it expires by itself");
        }
        return outcome;
    }
    // Another instance holds the lock: wait for its result.
    let deadline = std::time::Instant::now() + crate::session::redis::LOCK_TTL;
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match redis.get(ticket).await.map_err(unavailable)? {
            Some(stored) if stored.access_expires != session.access_expires => return Ok(stored),
            Some(_) => {}
            None => return Err(FlowError::Refused("the session ended".into())),
        }
    }
    Err(FlowError::Unavailable(
        "another instance's refresh did not finish".into(),
    ))
}

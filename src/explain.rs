//! `portcullis explain`: what the gateway would do with one request, step by step.

use std::process::ExitCode;

use http::{HeaderName, HeaderValue, Method, Request};

use portcullis::identity::CookieAction;
use portcullis::policy::{RequestFacts, Verdict};
use portcullis::routing::{AuthPolicy, Route, admit};
use portcullis::snapshot::Snapshot;
use portcullis::token::extract_bearer;

/// Prints the decision for `method url` with `headers` under `snap`. Exit 0 when the request
/// would be proxied, 1 when refused, 2 when the request itself cannot be built.
pub fn explain(snap: Snapshot, method: &str, url: &str, headers: &[String]) -> ExitCode {
    let mut builder = Request::builder();
    let Ok(m) = Method::from_bytes(method.as_bytes()) else {
        eprintln!("`{method}` is not a method");
        return ExitCode::from(2);
    };
    builder = builder.method(m).uri(url);
    for raw in headers {
        let Some((name, value)) = raw.split_once(':') else {
            eprintln!("header `{raw}` is not `Name: value`");
            return ExitCode::from(2);
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            eprintln!("header `{raw}` is not valid");
            return ExitCode::from(2);
        };
        builder = builder.header(name, value);
    }
    let request = match builder.body(()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot build the request: {e}");
            return ExitCode::from(2);
        }
    };
    let (parts, ()) = request.into_parts();
    match admit(
        &snap.router,
        &snap.config.server.auth_prefix,
        &parts,
        url.as_bytes(),
    ) {
        Err(r) => {
            println!("refused: {} {} ({})", r.status, r.message, r.reason);
            ExitCode::FAILURE
        }
        Ok(a) => {
            let route = &snap.router.routes()[a.route];
            let upstream = &snap.config.upstreams[route.upstream];
            println!("host:      {}", a.host);
            println!(
                "path:      {}",
                a.rewritten_path.as_deref().unwrap_or(parts.uri.path())
            );
            println!("route:     routes[{}] `{}`", a.route, route.name);
            println!("auth:      {:?}", route.auth);
            if route.auth != AuthPolicy::Public {
                let path = a.rewritten_path.as_deref().unwrap_or(parts.uri.path());
                let bearer = route.auth == AuthPolicy::Bearer
                    || (route.auth == AuthPolicy::SessionOrBearer
                        && !matches!(extract_bearer(&parts.headers, parts.uri.query()), Ok(None)));
                let passed = if bearer {
                    explain_bearer(&snap, route, &parts, path)
                } else {
                    explain_session(&snap, route, &parts, path)
                };
                if !passed {
                    println!("verdict:   refused");
                    return ExitCode::FAILURE;
                }
            }
            let targets: Vec<String> = upstream.targets.iter().map(ToString::to_string).collect();
            println!("upstream:  `{}` [{}]", upstream.name, targets.join(", "));
            let plan = snap.hygiene.plan(&parts.headers, false);
            for (name, reason) in &plan.remove {
                println!("strip:     {name} ({reason:?})");
            }
            if !matches!(plan.cookie, CookieAction::Keep) {
                println!("strip:     the gateway's cookies from Cookie");
            }
            println!("verdict:   proxied");
            ExitCode::SUCCESS
        }
    }
}

/// Validates the request's bearer token (fetching the provider's keys live) and prints each
/// step and each `allow` entry. Returns whether the request would pass.
fn explain_bearer(
    snap: &Snapshot,
    route: &Route,
    parts: &http::request::Parts,
    path: &str,
) -> bool {
    let token = match extract_bearer(&parts.headers, parts.uri.query()) {
        Ok(Some(t)) => t,
        Ok(None) => {
            println!("token:     none (401: a bearer token is required)");
            return false;
        }
        Err(e) => {
            println!("token:     refused (400 invalid_request: {e})");
            return false;
        }
    };
    let Some(provider) = route.provider.and_then(|i| snap.tokens.get(i)) else {
        println!("token:     the route has no provider");
        return false;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return false;
        }
    };
    let verified = runtime.block_on(async {
        provider
            .settings
            .source
            .refresh(std::time::Duration::ZERO)
            .await;
        println!(
            "keys:      provider `{}`: {} usable key(s), {:?}",
            provider.settings.name,
            provider.settings.source.keys().len(),
            provider.settings.source.state()
        );
        provider.validate(token, &snap.token_cache).await
    });
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            println!("token:     invalid ({}: {})", e.reason(), e.description());
            return false;
        }
    };
    let via = if verified.introspected {
        "introspection"
    } else {
        "signature"
    };
    println!(
        "token:     valid ({via}), expires at {}",
        verified.expires_at
    );
    explain_rules(route, parts, path, &verified.claims)
}

/// Opens the request's session cookie with the configured secrets and prints what it holds
/// (never its tokens), then each `allow` entry. Returns whether the request would pass.
fn explain_session(
    snap: &Snapshot,
    route: &Route,
    parts: &http::request::Parts,
    path: &str,
) -> bool {
    let (Some(store), Some(sessions)) = (snap.cookies(parts), &snap.config.sessions) else {
        println!("session:   no `sessions:` configured");
        return false;
    };
    let mut read = store.read(&parts.headers);
    if let (Some(ticket), Some(redis)) = (&read.ticket, snap.store.as_ref().and_then(|s| s.redis()))
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let found = match runtime {
            Ok(r) => r.block_on(redis.get(ticket)),
            Err(e) => {
                eprintln!("cannot start a runtime: {e}");
                return false;
            }
        };
        match found {
            Ok(Some(s)) => {
                println!("store:     the cookie holds a ticket; the session is in Redis");
                read.session = Some(s);
            }
            Ok(None) => {
                println!("session:   the ticket's session has ended in Redis: sign-in again");
                return false;
            }
            Err(e) => {
                println!("session:   {e} (503)");
                return false;
            }
        }
    }
    let Some(session) = read.session else {
        match read.problem {
            Some(problem) => {
                println!("session:   the cookie does not open ({problem}): sign-in again")
            }
            None => println!(
                "session:   none (`{}` cookie absent): sign-in",
                store.name()
            ),
        }
        return false;
    };
    let now = portcullis::token::unix_now();
    let expires = session.created + sessions.lifetime.as_secs();
    let idle_until = session.seen + sessions.idle_timeout.as_secs();
    println!(
        "session:   provider `{}`, user {}, signed in at {}, ends at {} (idle limit {})",
        session.provider,
        session
            .claims
            .get("sub")
            .map_or_else(|| "?".to_string(), |v| v.to_string()),
        session.created,
        expires,
        idle_until
    );
    println!(
        "tokens:    access token {} (expires {:?}), refresh token {}",
        if session.access_token.is_some() {
            "held"
        } else {
            "none"
        },
        session.access_expires,
        if session.refresh_token.is_some() {
            "held"
        } else {
            "none"
        },
    );
    let provider = route
        .provider
        .and_then(|i| snap.config.providers.keys().nth(i));
    if provider.map(String::as_str) != Some(session.provider.as_str()) {
        println!("session:   made by another provider than the route's: sign-in again");
        return false;
    }
    if expires <= now || idle_until <= now {
        println!("session:   over (lifetime or idle timeout): sign-in again");
        return false;
    }
    explain_rules(route, parts, path, &session.claims)
}

/// Prints each `allow` entry's verdict and returns whether the rules allow the request.
fn explain_rules(
    route: &Route,
    parts: &http::request::Parts,
    path: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    let facts = RequestFacts {
        method: &parts.method,
        path,
    };
    for report in route.policy.explain(&facts, claims) {
        println!("allow:     {report:?}");
    }
    match route.policy.evaluate(&facts, claims) {
        Verdict::Allow { entry } => {
            println!("rules:     allowed (entry {entry:?})");
            true
        }
        Verdict::Deny(d) => {
            println!(
                "rules:     denied ({}), missing scopes {:?}",
                d.reason.as_str(),
                d.missing_scopes
            );
            false
        }
    }
}

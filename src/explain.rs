//! `portcullis explain`: what the gateway would do with one request, step by step.

use std::process::ExitCode;

use http::{HeaderName, HeaderValue, Method, Request};

use portcullis::identity::CookieAction;
use portcullis::routing::admit;
use portcullis::snapshot::Snapshot;

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
            println!("upstream:  `{}` {:?}", upstream.name, upstream.targets);
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

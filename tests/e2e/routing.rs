//! Route matching: host (exact, wildcard, port, trailing dot, case), path (exact, prefix on a
//! segment boundary), methods, first match wins, no match → 404, query never matched, and the
//! path the backend receives.

use std::collections::HashMap;

use serde_json::json;

use crate::support::echo::Echoed;
use crate::support::raw::{raw_request, request};
use crate::support::{EchoBackend, Gateway};

/// Route name, match and upstream (and echo backend), in file order.
#[rustfmt::skip]
const ROUTES: &[(&str, &str, &str)] = &[
    ("first", "{host: first.test, path_prefix: /api}", "first"),
    ("second", "{path_prefix: /api/v1}", "second"),
    ("exact-path", "{host: paths.test, path: /exact}", "exactpath"),
    ("prefix", "{host: paths.test, path_prefix: /admin}", "prefix"),
    (
        "slash-prefix",
        "{host: paths.test, path_prefix: /assets/}",
        "slashprefix",
    ),
    ("methods", "{host: methods.test, methods: [GET, POST]}", "methods"),
    ("wildcard", "{host: \"*.example.com\"}", "wildcard"),
    ("exact-host", "{host: app.test}", "exacthost"),
];

#[derive(Debug, Clone, Copy)]
enum Want {
    /// Answered by this backend, which received this path (and query).
    Route(&'static str, &'static str),
    /// 404 JSON from the gateway, no backend reached.
    NotFound,
    /// Either a 400 (pingora rejects a Host that differs from an absolute-form target) or the
    /// given route: never the route of the `Host` header.
    RouteOr400(&'static str, &'static str),
}

struct Case {
    name: &'static str,
    method: &'static str,
    /// The request target as written on the request line.
    target: &'static str,
    /// The `Host` header; `None` sends none.
    host: Option<&'static str>,
    want: Want,
}

const fn case(
    name: &'static str,
    method: &'static str,
    host: &'static str,
    target: &'static str,
    want: Want,
) -> Case {
    Case {
        name,
        method,
        target,
        host: Some(host),
        want,
    }
}

use Want::{NotFound, Route, RouteOr400};

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Exact host, normalised: case, port, trailing dot.
    case("exact host", "GET", "app.test", "/anything", Route("exacthost", "/anything")),
    case("exact host upper case", "GET", "APP.Test", "/x", Route("exacthost", "/x")),
    case("exact host with port", "GET", "app.test:8080", "/x", Route("exacthost", "/x")),
    case("exact host trailing dot", "GET", "app.test.", "/x", Route("exacthost", "/x")),
    case("exact host trailing dot and port", "GET", "App.Test.:80", "/x", Route("exacthost", "/x")),
    case("unknown host", "GET", "other.test", "/anything", NotFound),
    case("exact host is not a suffix match", "GET", "xapp.test", "/x", NotFound),
    case("exact host does not cover subdomains", "GET", "a.app.test", "/x", NotFound),
    // Wildcard host.
    case("wildcard one label", "GET", "a.example.com", "/w", Route("wildcard", "/w")),
    case("wildcard upper case with port", "GET", "A.EXAMPLE.COM:443", "/w", Route("wildcard", "/w")),
    case("wildcard deeper label", "GET", "x.y.example.com", "/w", Route("wildcard", "/w")),
    case("wildcard trailing dot", "GET", "a.example.com.", "/w", Route("wildcard", "/w")),
    case("wildcard does not match the apex", "GET", "example.com", "/w", NotFound),
    case("wildcard is on a label boundary", "GET", "badexample.com", "/w", NotFound),
    case("wildcard suffix must end the host", "GET", "a.example.com.evil.test", "/w", NotFound),
    // Exact path and prefix on a segment boundary.
    case("exact path", "GET", "paths.test", "/exact", Route("exactpath", "/exact")),
    case("exact path with query", "GET", "paths.test", "/exact?x=1&y=%zz", Route("exactpath", "/exact?x=1&y=%zz")),
    case("exact path with trailing slash", "GET", "paths.test", "/exact/", NotFound),
    case("exact path longer", "GET", "paths.test", "/exactly", NotFound),
    case("exact path below", "GET", "paths.test", "/exact/sub", NotFound),
    case("prefix itself", "GET", "paths.test", "/admin", Route("prefix", "/admin")),
    case("prefix with slash", "GET", "paths.test", "/admin/", Route("prefix", "/admin/")),
    case("prefix below", "GET", "paths.test", "/admin/users?id=7", Route("prefix", "/admin/users?id=7")),
    case("prefix not on a segment boundary", "GET", "paths.test", "/adminx", NotFound),
    case("prefix with an extension", "GET", "paths.test", "/admin.html", NotFound),
    case("prefix ending in slash", "GET", "paths.test", "/assets/app.css", Route("slashprefix", "/assets/app.css")),
    case("prefix ending in slash, not a boundary", "GET", "paths.test", "/assetsx/app.css", NotFound),
    // The query string is never matched.
    case("query naming a prefix", "GET", "paths.test", "/nothing?/admin", NotFound),
    case("query naming an exact path", "GET", "paths.test", "/?p=/exact", NotFound),
    case("query on a matching path", "GET", "paths.test", "/admin?/nothing", Route("prefix", "/admin?/nothing")),
    // Methods.
    case("allowed method GET", "GET", "methods.test", "/m", Route("methods", "/m")),
    case("allowed method POST", "POST", "methods.test", "/m", Route("methods", "/m")),
    case("disallowed method DELETE", "DELETE", "methods.test", "/m", NotFound),
    case("disallowed method PUT", "PUT", "methods.test", "/m", NotFound),
    // First match wins, in file order.
    case("first of two matching routes", "GET", "first.test", "/api/v1/users", Route("first", "/api/v1/users")),
    case("second route when the first does not match", "GET", "other.test", "/api/v1/users", Route("second", "/api/v1/users")),
    case("earlier route beats a later host route", "GET", "app.test", "/api/v1/users", Route("second", "/api/v1/users")),
    case("later host route for other paths", "GET", "app.test", "/api/v2", Route("exacthost", "/api/v2")),
    case("first route prefix itself", "GET", "first.test", "/api", Route("first", "/api")),
    case("first route, not a boundary", "GET", "first.test", "/apix", NotFound),
    case("no route for the path", "GET", "first.test", "/other", NotFound),
    // Host from an absolute-form target.
    Case {
        name: "absolute-form target without Host",
        method: "GET",
        target: "http://app.test/abs?q=1",
        host: None,
        want: Route("exacthost", "/abs?q=1"),
    },
    Case {
        name: "absolute-form target with the same Host",
        method: "GET",
        target: "http://app.test/abs",
        host: Some("app.test"),
        want: Route("exacthost", "/abs"),
    },
    Case {
        name: "absolute-form target wins over Host",
        method: "GET",
        target: "http://app.test/abs",
        host: Some("a.example.com"),
        want: RouteOr400("exacthost", "/abs"),
    },
    Case {
        name: "absolute-form target for an unknown host",
        method: "GET",
        target: "http://other.test/admin",
        host: None,
        want: NotFound,
    },
];

fn config(backends: &HashMap<&str, EchoBackend>) -> String {
    let mut yaml = String::from("upstreams:\n");
    for (_, _, upstream) in ROUTES {
        yaml.push_str(&format!(
            "  {upstream}: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}\n",
            backends[upstream].addr()
        ));
    }
    yaml.push_str("routes:\n");
    for (name, matcher, upstream) in ROUTES {
        yaml.push_str(&format!(
            "  - name: {name}\n    match: {matcher}\n    upstream: {upstream}\n    auth: public\n"
        ));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_table() {
    let mut backends = HashMap::new();
    for (_, _, upstream) in ROUTES {
        backends.insert(*upstream, EchoBackend::start(upstream).await);
    }
    let gateway = Gateway::start(&config(&backends)).await;

    let mut failures = Vec::new();
    for case in CASES {
        let before: usize = backends.values().map(EchoBackend::count).sum();
        let bytes = request(case.method, case.target, case.host, &[]);
        let response = raw_request(gateway.addr(), &bytes).await;
        let after: usize = backends.values().map(EchoBackend::count).sum();
        if let Err(why) = judge(case, &response, after - before) {
            failures.push(format!(
                "case {:?} ({} {} Host: {:?}): {why}",
                case.name, case.method, case.target, case.host
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} routing case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn judge(
    case: &Case,
    response: &crate::support::RawResponse,
    reached: usize,
) -> Result<(), String> {
    let routed = |backend: &str, path: &str| -> Result<(), String> {
        if response.status != 200 {
            return Err(format!(
                "want 200 from backend {backend}, got {} {}",
                response.status,
                response.text()
            ));
        }
        let echoed = Echoed::parse(&response.body, case.name);
        if echoed.backend != backend {
            return Err(format!("want backend {backend}, got {}", echoed.backend));
        }
        if echoed.path != path {
            return Err(format!("backend got path {:?}, want {path:?}", echoed.path));
        }
        Ok(())
    };
    match case.want {
        Want::Route(backend, path) => routed(backend, path),
        Want::RouteOr400(backend, path) => {
            if response.status == 400 && reached == 0 {
                Ok(())
            } else {
                routed(backend, path)
            }
        }
        Want::NotFound => {
            if response.status != 404 {
                return Err(format!(
                    "want 404, got {} {}",
                    response.status,
                    response.text()
                ));
            }
            if reached != 0 {
                return Err(format!("a 404 reached {reached} backend(s)"));
            }
            let content_type = response.header("content-type").unwrap_or_default();
            if !content_type.starts_with("application/json") {
                return Err(format!("404 content-type {content_type:?}"));
            }
            let mut body = response.json(case.name);
            let id = body.as_object_mut().and_then(|o| o.remove("request_id"));
            if id.as_ref().and_then(|v| v.as_str()) != response.header("x-request-id") {
                return Err(format!("404 request id {id:?} differs from the header's"));
            }
            let want = json!({"error": "not_found", "message": "no route matches this request"});
            if body != want {
                return Err(format!("404 body {body}, want {want}"));
            }
            Ok(())
        }
    }
}

//! Path rewrite (`routes[].rewrite`): applied once, after matching, to the normalised path; the
//! backend sees the rewritten path and the untouched query; a rewrite that could not always
//! apply is a config error naming its line and key.
//!
//! Requests are written raw: an HTTP client would normalise the paths itself.

use crate::support::echo::Echoed;
use crate::support::raw::{raw_request, request};
use crate::support::{EchoBackend, Gateway, check, line_of};

fn config(rewritten: &EchoBackend, plain: &EchoBackend) -> String {
    format!(
        "upstreams:
  rewritten: {{targets: [\"{r}\"], connect_timeout: 1s, read_timeout: 5s}}
  plain: {{targets: [\"{p}\"], connect_timeout: 1s, read_timeout: 5s}}
routes:
  - name: api
    match: {{host: app.test, path_prefix: /api}}
    upstream: rewritten
    auth: public
    rewrite: {{strip_prefix: /api, add_prefix: /v2}}
  - name: old
    match: {{host: app.test, path_prefix: /old/}}
    upstream: rewritten
    auth: public
    rewrite: {{strip_prefix: /old}}
  - name: legacy
    match: {{host: app.test, path_prefix: /legacy}}
    upstream: rewritten
    auth: public
    rewrite: {{add_prefix: /app}}
  - name: again
    match: {{host: app.test, path_prefix: /t}}
    upstream: rewritten
    auth: public
    rewrite: {{strip_prefix: /t, add_prefix: /t/t}}
  - name: rest
    match: {{host: app.test}}
    upstream: plain
    auth: public
",
        r = rewritten.addr(),
        p = plain.addr()
    )
}

/// The backend and the path and query it must see; `None`: 400.
type Want = Option<(&'static str, &'static str)>;

/// (what, request target, want).
#[rustfmt::skip]
const CASES: &[(&str, &str, Want)] = &[
    ("strip and add", "/api/users/7", Some(("rewritten", "/v2/users/7"))),
    ("the query is kept verbatim", "/api/x?r=/api/y&z=%zz", Some(("rewritten", "/v2/x?r=/api/y&z=%zz"))),
    ("the prefix alone", "/api", Some(("rewritten", "/v2"))),
    ("the prefix with a slash", "/api/", Some(("rewritten", "/v2/"))),
    ("normalised first, then rewritten", "/x/../api//a/./b", Some(("rewritten", "/v2/a/b"))),
    ("an escape decoded before matching", "/%61pi/x", Some(("rewritten", "/v2/x"))),
    ("absolute-form target", "http://app.test/api/x?q=1", Some(("rewritten", "/v2/x?q=1"))),
    ("not on a segment boundary: no match", "/apix", Some(("plain", "/apix"))),
    ("strip only", "/old/a.css", Some(("rewritten", "/a.css"))),
    ("strip everything leaves /", "/old/", Some(("rewritten", "/"))),
    ("dot-dot out of the prefix is matched where it lands", "/old/../api/z", Some(("rewritten", "/v2/z"))),
    ("add only", "/legacy/page?x", Some(("rewritten", "/app/legacy/page?x"))),
    ("applied once", "/t/x", Some(("rewritten", "/t/t/x"))),
    ("a route without rewrite forwards as is", "/other/y?z", Some(("plain", "/other/y?z"))),
    ("ambiguous paths are still refused", "/api/%2e%2e/admin", None),
    ("encoded slashes are still refused", "/api/a%2fb", None),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_sees_the_rewritten_path_and_the_query() {
    let rewritten = EchoBackend::start("rewritten").await;
    let plain = EchoBackend::start("plain").await;
    let gateway = Gateway::start(&config(&rewritten, &plain)).await;

    let mut failures = Vec::new();
    for (what, target, want) in CASES {
        let before = rewritten.count() + plain.count();
        let response = raw_request(
            gateway.addr(),
            &request("GET", target, Some("app.test"), &[]),
        )
        .await;
        let reached = rewritten.count() + plain.count() - before;
        let verdict = match want {
            Some((backend, path)) if response.status == 200 => {
                let echoed = Echoed::parse(&response.body, what);
                (echoed.backend == *backend && echoed.path == *path)
                    .then_some(())
                    .ok_or(format!(
                        "want {backend} {path:?}, got {} {:?}",
                        echoed.backend, echoed.path
                    ))
            }
            Some((_, path)) => Err(format!(
                "want 200 with {path:?}, got {} {}",
                response.status,
                response.text()
            )),
            None if response.status == 400 && reached == 0 => Ok(()),
            None => Err(format!(
                "want 400 without reaching a backend, got {} ({reached} reached)",
                response.status
            )),
        };
        if let Err(why) = verdict {
            failures.push(format!("{what} ({target}): {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rewrite case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rewrites_that_could_not_always_apply_are_config_errors() {
    let head = "server:\n  listen: [\"127.0.0.1:18080\"]\n  admin: \"127.0.0.1:18081\"\nupstreams:\n  app: {targets: [\"127.0.0.1:18082\"]}\nroutes:\n";
    let cases = [
        (
            "  - name: all\n    upstream: app\n    auth: public\n    rewrite: {strip_prefix: /api}\n",
            "routes[0].rewrite.strip_prefix",
            "the route takes every path",
        ),
        (
            "  - name: web\n    match: {path_prefix: /web}\n    upstream: app\n    auth: public\n    rewrite: {strip_prefix: /api}\n",
            "routes[0].rewrite.strip_prefix",
            "is not a prefix (on a segment boundary) of every path",
        ),
        (
            "  - name: web\n    match: {path_prefix: /apix}\n    upstream: app\n    auth: public\n    rewrite: {strip_prefix: /api}\n",
            "routes[0].rewrite.strip_prefix",
            "is not a prefix (on a segment boundary) of every path",
        ),
        (
            "  - name: one\n    match: {path: /login}\n    upstream: app\n    auth: public\n    rewrite: {strip_prefix: /api}\n",
            "routes[0].rewrite.strip_prefix",
            "would never apply",
        ),
        (
            "  - name: web\n    match: {path_prefix: /api}\n    upstream: app\n    auth: public\n    rewrite: {strip_prefix: api}\n",
            "routes[0].rewrite.strip_prefix",
            "must start with /",
        ),
        (
            "  - name: web\n    match: {path_prefix: /api}\n    upstream: app\n    auth: public\n    rewrite: {add_prefix: /v2/../admin}\n",
            "routes[0].rewrite.add_prefix",
            "must be a normalised path",
        ),
        (
            "  - name: web\n    match: {path_prefix: /api}\n    upstream: app\n    auth: public\n    rewrite: {add_prefix: /v2/}\n",
            "routes[0].rewrite.add_prefix",
            "must not end with /",
        ),
        (
            "  - name: web\n    match: {path_prefix: /api}\n    upstream: app\n    auth: public\n    rewrite: {}\n",
            "routes[0].rewrite",
            "give `strip_prefix`, `add_prefix` or both",
        ),
    ];
    for (route, key, phrase) in cases {
        let yaml = format!("{head}{route}");
        let (code, out) = check(&yaml);
        let line = line_of(&yaml, "rewrite:");
        assert_eq!(code, 1, "{route}: {out}");
        assert!(
            out.lines().any(|l| l.starts_with(&format!("FILE:{line}:"))
                && l.contains(&format!(": {key}: "))
                && l.contains(phrase)),
            "want `FILE:{line}:..: {key}: ...{phrase}...` for\n{route}got:\n{out}"
        );
    }
    let ok = format!(
        "{head}  - name: web\n    match: {{path_prefix: /api/}}\n    upstream: app\n    auth: public\n    rewrite: {{strip_prefix: /api, add_prefix: /v2}}\n"
    );
    let (code, out) = check(&ok);
    assert_eq!(code, 0, "{out}");
}

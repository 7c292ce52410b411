//! `portcullis explain` tells the truth: for the gateway's own endpoints and for proxied routes
//! (with a path rewrite), what it says matches what the running gateway answers to the same
//! request, and `--json` prints the same as one object.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::echo::Echoed;
use crate::support::raw::{raw_request, request};
use crate::support::{EchoBackend, Gateway};

/// Runs `portcullis explain --config config METHOD url [-H h]... --json`: exit code and the
/// parsed object.
fn explain_json(config: &Path, method: &str, url: &str, headers: &[&str]) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.arg("explain")
        .arg("--config")
        .arg(config)
        .args([method, url, "--json"]);
    for h in headers {
        cmd.args(["--header", h]);
    }
    let output = cmd
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running portcullis explain");
    let text = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "explain --json is not one JSON object ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), value)
}

/// The same, for people.
fn explain_text(config: &Path, method: &str, url: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args([method, url])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running portcullis explain");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn config(backend: &EchoBackend) -> String {
    format!(
        "upstreams:
  app: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}
providers:
  hub:
    authorization_endpoint: \"https://hub.test/authorize\"
    token_endpoint: \"https://hub.test/token\"
    userinfo_endpoint: \"https://hub.test/user\"
    client_id: portcullis
sessions:
  secret: \"q0H3oK7tZ1rN9dLxW2vB5yC8eF4gJ6hM0sT3uV7wX1Y=\"
  dev_insecure_cookies: true
routes:
  - name: api
    match: {{host: app.test, path_prefix: /api}}
    upstream: app
    auth: public
    rewrite: {{strip_prefix: /api, add_prefix: /v2}}
  - name: app
    match: {{host: app.test}}
    upstream: app
    auth: session
    provider: hub
",
        backend.addr()
    )
}

/// A case: method, target, extra headers, the status both must give, explain's exit code.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    u16,
    i32,
);

/// Exit 0 when the gateway answers with success, 1 when it refuses (a sign-in redirect too).
#[rustfmt::skip]
const ENDPOINTS: &[Case] = &[
    ("GET", "/oauth2/start?rd=/orders", &[], 302, 0),
    ("GET", "/oauth2/jwks.json", &[], 200, 0),
    ("POST", "/oauth2/userinfo", &[], 405, 1),
    ("GET", "/oauth2/userinfo", &[], 401, 1),
    ("GET", "/oauth2/nope", &[], 404, 1),
    ("GET", "/oauth2/callback", &[], 400, 1),
    ("GET", "/oauth2/callback?state=abc&code=xyz", &[], 400, 1),
    ("GET", "/oauth2/sign_out?rd=/bye", &[], 302, 0),
    ("POST", "/oauth2/backchannel_logout", &[], 400, 1),
    ("GET", "/oauth2/auth", &[], 400, 1),
    ("GET", "/orders", &[("accept", "text/html"), ("sec-fetch-mode", "navigate")], 302, 1),
    ("GET", "/orders", &[("accept", "application/json")], 401, 1),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_matches_what_the_gateway_answers() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&config(&backend)).await;
    let path = gateway.config_path();
    let mut failures = Vec::new();
    for (method, target, headers, want, want_code) in ENDPOINTS {
        let raw = raw_request(
            gateway.addr(),
            &request(method, target, Some("app.test"), headers),
        )
        .await;
        let header_args: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let header_args: Vec<&str> = header_args.iter().map(String::as_str).collect();
        let url = format!("http://app.test{target}");
        let (code, said) = explain_json(&path, method, &url, &header_args);
        let status = said["status"].as_u64();
        let verdict = said["verdict"].as_str().unwrap_or_default();
        if raw.status != *want || status != Some(u64::from(*want)) || code != *want_code {
            failures.push(format!(
                "{method} {target}: gateway {}, explain {status:?} ({verdict}, exit {code}), want {want}: {said:#}",
                raw.status
            ));
        }
        if let Some(location) = raw.header("location") {
            let base = location.split('?').next().unwrap_or(location);
            let text = said["steps"].to_string();
            if !text.contains(&format!("302 to {base}")) {
                failures.push(format!(
                    "{method} {target}: the gateway redirects to {base}, explain says {text}"
                ));
            }
        }
    }
    // The gateway endpoints never reach the backend.
    assert_eq!(
        backend.count(),
        0,
        "an endpoint request reached the backend"
    );
    assert!(
        failures.is_empty(),
        "{} case(s) where explain and the gateway disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_request_line_and_headers_the_backend_gets() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&config(&backend)).await;
    let path = gateway.config_path();
    let target = "/x/../api//users?q=1";
    let headers = [
        ("x-forwarded-user", "mallory"),
        ("connection", "x-debug"),
        ("x-debug", "1"),
    ];
    let response = raw_request(
        gateway.addr(),
        &request("GET", target, Some("app.test"), &headers),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let echoed = Echoed::parse(&response.body, "rewritten request");

    let args: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, said) = explain_json(&path, "GET", &format!("http://app.test{target}"), &args);
    assert_eq!(code, 0, "{said:#}");
    assert_eq!(said["verdict"], "proxied", "{said:#}");
    assert_eq!(said["route"]["name"], "api", "{said:#}");
    let line = said["upstream_request"]["request_line"]
        .as_str()
        .unwrap_or_else(|| panic!("no request line: {said:#}"));
    assert_eq!(
        line,
        format!("GET {} HTTP/1.1", echoed.path),
        "explain's request line is what the backend received"
    );
    let removed: Vec<&str> = said["upstream_request"]["removed"]
        .as_array()
        .map(|a| a.iter().filter_map(|h| h["name"].as_str()).collect())
        .unwrap_or_default();
    for name in ["x-forwarded-user", "x-debug", "connection"] {
        assert!(
            removed.contains(&name),
            "{name} not listed as removed: {said:#}"
        );
        assert!(
            echoed.values(name).is_empty() || name == "connection",
            "the backend got {name}"
        );
    }
    let added: Vec<&str> = said["upstream_request"]["added"]
        .as_array()
        .map(|a| a.iter().filter_map(|h| h["name"].as_str()).collect())
        .unwrap_or_default();
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
    ] {
        assert!(
            added.contains(&name),
            "{name} not listed as added: {said:#}"
        );
        assert!(
            !echoed.values(name).is_empty(),
            "the backend did not get {name}"
        );
    }

    // For people: the same facts, one `label: text` per line, no Rust Debug shapes.
    let (code, text) = explain_text(&path, "GET", &format!("http://app.test{target}"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("backend:   {line}")), "{text}");
    assert!(
        text.contains("route:     routes[0] `api`, auth public"),
        "{text}"
    );
    assert!(
        text.contains("path:      /api/users (normalised from /x/../api//users)"),
        "{text}"
    );
    for debug_shape in ["Public", "Some(", "[127.0.0.1", "Fresh", "{ "] {
        assert!(
            !text.contains(debug_shape),
            "a Debug shape {debug_shape:?} in:\n{text}"
        );
    }
}

//! The logs, end to end with the real provider: access-log lines say who (`user` on a bearer
//! route, none on a public one), what was sent (`bytes_sent` = the bytes the client read),
//! how long the upstream took (`upstream_ms` ≤ `duration_ms`, both to the microsecond);
//! `server.log_format: json` makes every operational line a JSON object, with one "provider keys
//! loaded" and one "gateway ready" line and refusals naming the user; the key refresh warning
//! names the URL that failed.

use std::time::Duration;

use serde_json::Value;

use crate::bearer::{self, HOST};
use crate::support::idp::{Idp, IdpOptions, READER, READER_SECRET, RESOURCE};
use crate::support::raw::{raw_exchange, request};
use crate::support::{EchoBackend, Gateway, ServerOptions, closed_addr, wait_until};

const ROUTES: &str = "  - name: api
    match: {path_prefix: /api}
    upstream: app
    auth: bearer
    provider: idp
  - name: admin
    match: {path_prefix: /admin}
    upstream: app
    auth: bearer
    provider: idp
    allow:
      - {groups: [admins]}
  - name: open
    match: {path_prefix: /open}
    upstream: app
    auth: public
";

/// The JSON access-log lines of `stdout`.
pub fn access_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The operational log of a `log_format: json` gateway: every line parsed, each checked to be
/// an object with `level` and `message`.
pub fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"));
            assert!(v["level"].is_string(), "no level: {l}");
            assert!(v["message"].is_string(), "no message: {l}");
            v
        })
        .collect()
}

/// The lines whose message is `message`.
pub fn with_message<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

/// The number literal of `key` in a raw JSON line, as written.
fn literal<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

/// `GET path` with `headers` on a connection the gateway closes after it; every byte read.
async fn get_all(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    let exchange = raw_exchange(
        gateway.addr(),
        &request("GET", path, Some(HOST), &all),
        Duration::from_secs(10),
    )
    .await;
    assert!(
        exchange.closed,
        "the gateway closes after Connection: close"
    );
    assert_eq!(exchange.responses.len(), 1, "one response to {path}");
    exchange.raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_says_who_what_was_sent_and_how_long_the_upstream_took() {
    let idp = Idp::start(IdpOptions::default()).await;
    let backend = EchoBackend::start("app").await;
    let options = ServerOptions {
        extra_server: "  log_format: json\n".into(),
        ..ServerOptions::default()
    };
    let gateway =
        Gateway::start_with(options, &bearer::config(idp.issuer(), &backend, "", ROUTES)).await;
    let token = idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let auth = format!("Bearer {token}");

    let public = get_all(
        &gateway,
        "/open/page",
        &[("User-Agent", "probe/1.0 (logs)")],
    )
    .await;
    let bearer = get_all(
        &gateway,
        "/api/orders",
        &[("Authorization", &auth), ("User-Agent", "probe/2.0")],
    )
    .await;
    let refused = get_all(&gateway, "/admin/panel", &[("Authorization", &auth)]).await;
    assert!(
        refused.starts_with(b"HTTP/1.1 403"),
        "{}",
        String::from_utf8_lossy(&refused)
    );

    wait_until(
        "three access-log lines",
        Duration::from_secs(10),
        || async { access_lines(&gateway.stdout()).len() >= 3 },
    )
    .await;
    let stdout = gateway.stdout();
    let raw: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let lines = access_lines(&stdout);
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, entry, received, route) in [
        (raw[0], &lines[0], &public, "open"),
        (raw[1], &lines[1], &bearer, "api"),
        (raw[2], &lines[2], &refused, "admin"),
    ] {
        assert_eq!(entry["route"], route, "{line}");
        assert_eq!(
            entry["bytes_sent"].as_u64(),
            Some(received.len() as u64),
            "bytes_sent is what the client read: {line}\n{}",
            String::from_utf8_lossy(received)
        );
        let duration = entry["duration_ms"].as_f64().expect("duration_ms");
        for key in ["duration_ms", "upstream_ms"] {
            if entry.get(key).is_none() {
                continue;
            }
            let written = literal(line, key);
            let decimals = written.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(
                decimals <= 3,
                "{key} {written} is rounded to the µs: {line}"
            );
        }
        let id = String::from_utf8_lossy(received)
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(": ")?;
                name.eq_ignore_ascii_case("x-request-id")
                    .then(|| value.to_owned())
            })
            .unwrap_or_else(|| panic!("no request id header in the response to {route}"));
        assert_eq!(entry["request_id"], id.trim(), "{line}");
        if route == "admin" {
            assert!(
                entry.get("upstream_ms").is_none(),
                "no upstream on a refusal: {line}"
            );
        } else {
            let upstream = entry["upstream_ms"]
                .as_f64()
                .expect("upstream_ms when proxied");
            assert!(
                upstream > 0.0 && upstream <= duration,
                "0 < upstream_ms {upstream} <= duration_ms {duration}: {line}"
            );
        }
    }
    assert!(
        lines[0].get("user").is_none(),
        "no user on a public route: {}",
        raw[0]
    );
    assert_eq!(lines[0]["user_agent"], "probe/1.0 (logs)");
    assert_eq!(lines[1]["user"], READER, "the token's sub: {}", raw[1]);
    assert_eq!(lines[1]["user_agent"], "probe/2.0");
    assert!(!stdout.contains(&token), "the token is never logged");

    // The operational log: JSON objects, one keys-loaded and one ready line, and the refusal
    // naming who was refused where.
    let stderr = gateway.stderr();
    assert!(!stderr.contains(&token), "the token is never logged");
    let ops = json_lines(&stderr);
    let loaded = with_message(&ops, "provider keys loaded");
    assert_eq!(loaded.len(), 1, "{stderr}");
    assert_eq!(loaded[0]["level"], "INFO");
    assert_eq!(loaded[0]["provider"], "idp");
    assert_eq!(loaded[0]["issuer"], idp.issuer());
    let published = idp.jwks().await["keys"].as_array().map_or(0, Vec::len);
    assert_eq!(
        loaded[0]["keys"].as_u64(),
        Some(published as u64),
        "{stderr}"
    );
    let ready = with_message(&ops, "gateway ready");
    assert_eq!(ready.len(), 1, "{stderr}");
    assert_eq!(ready[0]["listen"], format!("[{}]", gateway.addr()));
    assert_eq!(ready[0]["admin"], gateway.admin_addr().to_string());
    let refusals = with_message(&ops, "request refused");
    assert_eq!(refusals.len(), 1, "{stderr}");
    assert_eq!(refusals[0]["user"], READER);
    assert_eq!(refusals[0]["route"], "admin");
    assert_eq!(refusals[0]["status"], 403);
    assert!(
        !ops.iter().any(|l| l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("pingora"))
            && l["level"] == "INFO"),
        "pingora's INFO chatter stays out: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_refresh_warnings_name_the_url_and_what_is_kept() {
    // A provider that never answered: "no keys yet", naming its discovery URL.
    let dead = format!("http://{}", closed_addr());
    let backend = EchoBackend::start("app").await;
    let never = Gateway::spawn(&bearer::config(&dead, &backend, "", ROUTES));
    never
        .wait_for_stderr("key refresh failed", Duration::from_secs(15))
        .await;
    let line = never
        .stderr()
        .lines()
        .find(|l| l.contains("key refresh failed"))
        .map(str::to_owned)
        .expect("the warning");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("no keys yet"), "{line}");
    assert!(
        line.contains(&format!("{dead}/.well-known/openid-configuration")),
        "names the URL: {line}"
    );
    drop(never);

    // A provider that answered, then went away: "keeping N cached keys", naming the URL of the
    // fetch that failed. An unknown kid asks for a re-fetch at once.
    let mut idp = Idp::start(IdpOptions::default()).await;
    let published = idp.jwks().await["keys"].as_array().map_or(0, Vec::len);
    let gateway = Gateway::start(&bearer::config(idp.issuer(), &backend, "", ROUTES)).await;
    idp.stop();
    let claims = bearer::claims(idp.issuer(), READER);
    let (key, alg) = bearer::signing_key("rsa-1");
    let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "not-published"});
    let token = bearer::compact(&header, &claims, &key, alg);
    let bearer_header = format!("Bearer {token}");
    wait_until(
        "the re-fetch for an unknown kid to fail",
        Duration::from_secs(20),
        || async {
            // At most one re-fetch per 5 s: ask until one was due.
            bearer::get(&gateway, "/api/x", &[("Authorization", &bearer_header)]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            gateway.stderr().contains("key refresh failed")
        },
    )
    .await;
    let stderr = gateway.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("key refresh failed"))
        .expect("the warning");
    assert!(
        line.contains(&format!("keeping {published} cached keys")),
        "{line}"
    );
    assert!(line.contains(&format!("cached={published}")), "{line}");
    assert!(line.contains(idp.issuer()), "names the URL: {line}");
    assert!(!line.contains("no keys yet"), "{line}");
    assert_eq!(
        stderr.matches("provider keys loaded").count(),
        1,
        "keys load once: {stderr}"
    );
}

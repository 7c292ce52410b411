//! Host tricks: requests that try to be routed as one host while the backend reads another, or
//! that name a host no syntax allows. Three host routes, each to its own backend: `app.test`,
//! `admin.test` and `*.corp.test`; there is no catch-all.
//!
//! Safe outcomes: refused (400, 404 or 431) with no backend reached; or routed to a backend whose
//! `Host` is a syntactically valid host (`reg-name [":" port]`) that names that backend's route —
//! so a backend reading `Host` can never be addressed as another host than the one routed on.

use std::collections::HashMap;
use std::time::Duration;

use super::Verdicts;
use crate::support::echo::Echoed;
use crate::support::raw::{raw_exchange, raw_request};
use crate::support::{EchoBackend, Gateway, RawResponse};

const ROUTES: &[(&str, &str)] = &[
    ("app", "app.test"),
    ("admin", "admin.test"),
    ("corp", "\"*.corp.test\""),
];

fn config(backends: &HashMap<&str, EchoBackend>) -> String {
    let mut yaml = String::from("upstreams:\n");
    for (name, _) in ROUTES {
        yaml.push_str(&format!(
            "  {name}: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}\n",
            backends[name].addr()
        ));
    }
    yaml.push_str("routes:\n");
    for (name, host) in ROUTES {
        yaml.push_str(&format!(
            "  - name: {name}\n    match: {{host: {host}}}\n    upstream: {name}\n    auth: public\n"
        ));
    }
    yaml
}

/// The host of a `Host` value if it is `reg-name [":" port]` (letters, digits, `-`, `.`; an
/// optional trailing dot), lower-cased and without the trailing dot; `None` for anything else.
fn strict_host(value: &str) -> Option<String> {
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then(|| host.to_ascii_lowercase())
}

/// Whether the route of `backend` takes `host` (lower-case).
fn route_takes(backend: &str, host: &str) -> bool {
    match backend {
        "app" => host == "app.test",
        "admin" => host == "admin.test",
        "corp" => host.len() > ".corp.test".len() && host.ends_with(".corp.test"),
        _ => false,
    }
}

fn judge(response: &RawResponse, reached: usize) -> Result<(), String> {
    match response.status {
        400 | 404 | 431 => {
            if reached == 0 {
                Ok(())
            } else {
                Err(format!(
                    "refused with {} but {reached} backend(s) reached",
                    response.status
                ))
            }
        }
        200 => {
            let seen = Echoed::parse(&response.body, "host");
            let hosts = seen.values("host");
            let [host] = hosts.as_slice() else {
                return Err(format!("the backend got Host {hosts:?}"));
            };
            let Some(name) = strict_host(host) else {
                return Err(format!(
                    "routed to {} with an invalid Host {host:?}: a backend may read another host",
                    seen.backend
                ));
            };
            if !route_takes(&seen.backend, &name) {
                return Err(format!(
                    "routed to {} but its Host {host:?} names another route",
                    seen.backend
                ));
            }
            let forwarded = seen.values("x-forwarded-host");
            if forwarded
                .iter()
                .any(|f| strict_host(f) != Some(name.clone()))
            {
                return Err(format!(
                    "X-Forwarded-Host {forwarded:?} disagrees with Host {host:?}"
                ));
            }
            Ok(())
        }
        other => Err(format!("unexpected status {other}: {}", response.text())),
    }
}

/// (case, request target, header lines (Host lines included as given), source)
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const KETTLE: &str = "PortSwigger research 'Cracking the Lens: Targeting HTTP's Hidden Attack Surface' (Kettle, 2017); RFC 9112 §3.2.2";
const ORANGE: &str = "Orange Tsai, 'A New Era of SSRF: Exploiting URL Parsers' (Black Hat USA 2017): userinfo and special characters read differently by parsers";
const CASE_SOURCE: &str = "Istio GHSA-7774-7vr3-cc8j (case-sensitive host comparison); Caddy CVE-2026-27588; heimdall GHSA-72h4-mxfc-jx37";
const SUFFIX: &str = "oauth2-proxy GHSA-4mf2-f3wh-gvf2 / CVE-2021-21291 (domain suffix matched without a label boundary)";

#[rustfmt::skip]
const CASES: &[Case] = &[
    ("absolute-form admin.test, Host app.test", "http://admin.test/x", &[("Host", "app.test")], KETTLE),
    ("absolute-form app.test, Host admin.test", "http://app.test/x", &[("Host", "admin.test")], KETTLE),
    ("absolute-form without Host", "http://admin.test/x", &[], KETTLE),
    ("absolute-form https scheme on a plain listener", "https://admin.test/x", &[("Host", "admin.test")], KETTLE),
    ("absolute-form port differs from Host's", "http://admin.test:9999/x", &[("Host", "admin.test")], "RFC 9110 §7.2 (the port is not part of the route)"),
    ("absolute-form without a host", "http:///x", &[("Host", "app.test")], KETTLE),
    ("absolute-form with userinfo naming another host", "http://admin.test@app.test/x", &[("Host", "app.test")], ORANGE),
    ("Host with userinfo admin@app", "/x", &[("Host", "admin.test@app.test")], ORANGE),
    ("Host with userinfo app@admin", "/x", &[("Host", "app.test@admin.test")], ORANGE),
    ("two different Host headers", "/x", &[("Host", "app.test"), ("Host", "admin.test")], "RFC 9112 §3.2 (more than one Host: 400)"),
    ("two identical Host headers", "/x", &[("Host", "admin.test"), ("Host", "admin.test")], "RFC 9112 §3.2 (more than one Host: 400)"),
    ("Host list in one header", "/x", &[("Host", "app.test, admin.test")], "RFC 9112 §3.2 (Host is a single value)"),
    ("Host with a port, target without", "http://app.test/x", &[("Host", "app.test:8080")], "RFC 9110 §7.2"),
    ("Host with a trailing dot", "/x", &[("Host", "admin.test.")], "RFC 1034 §3.1 (absolute domain names)"),
    ("upper-case Host", "/x", &[("Host", "ADMIN.TEST")], CASE_SOURCE),
    ("mixed-case Host with port", "/x", &[("Host", "Admin.Test:80")], CASE_SOURCE),
    ("upper-case wildcard host", "/x", &[("Host", "X.CORP.TEST")], CASE_SOURCE),
    ("suffix without a label boundary", "/x", &[("Host", "badcorp.test")], SUFFIX),
    ("the wildcard's own domain", "/x", &[("Host", "corp.test")], SUFFIX),
    ("slash before the wildcard suffix", "/x", &[("Host", "evil.test/.corp.test")], ORANGE),
    ("hash before the wildcard suffix", "/x", &[("Host", "evil.test#.corp.test")], ORANGE),
    ("question mark before the wildcard suffix", "/x", &[("Host", "evil.test?.corp.test")], ORANGE),
    ("backslash before the wildcard suffix", "/x", &[("Host", "evil.test\\.corp.test")], ORANGE),
    ("percent-encoded slash before the wildcard suffix", "/x", &[("Host", "evil.test%2f.corp.test")], ORANGE),
    ("at-sign before the wildcard suffix", "/x", &[("Host", "evil.test@x.corp.test")], ORANGE),
    ("space inside the Host value", "/x", &[("Host", "evil.test .corp.test")], ORANGE),
    ("non-numeric port naming another host", "/x", &[("Host", "app.test:admin.test")], ORANGE),
    ("two ports", "/x", &[("Host", "admin.test:80:80")], "RFC 9110 §7.2 (uri-host [\":\" port])"),
    ("empty Host", "/x", &[("Host", "")], "RFC 9112 §3.2 (an empty Host is allowed only without an authority)"),
    ("no Host on HTTP/1.1", "/x", &[("X-Request", "1")], "RFC 9112 §3.2 (Host is required in HTTP/1.1)"),
    ("IPv6 literal", "/x", &[("Host", "[::1]:80")], "RFC 3986 §3.2.2"),
    ("non-ASCII Host", "/x", &[("Host", "\u{e4}dmin.test")], "UTS #46 / IDNA (look-alike hosts must not match ASCII routes)"),
    ("10 KB Host", "/x", &[("Host", "(10 KB, set below)")], "RFC 9110 §5.4 (field size limits)"),
    ("spoofed X-Forwarded-Host on app.test", "/x", &[("Host", "app.test"), ("X-Forwarded-Host", "admin.test")], "oauth2-proxy GHSA-7x63-xv5r-3p2x (forwarded headers from untrusted peers)"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_host_trick_reaches_another_hosts_route() {
    let mut backends = HashMap::new();
    for (name, _) in ROUTES {
        backends.insert(*name, EchoBackend::start(name).await);
    }
    let gateway = Gateway::start(&config(&backends)).await;
    let long_host = format!("{}.corp.test", "a".repeat(10_000));
    let mut verdicts = Verdicts::new("host_tricks");
    for (name, target, headers, source) in CASES {
        let mut text = format!("GET {target} HTTP/1.1\r\n");
        for (n, v) in *headers {
            let v = if *name == "10 KB Host" {
                &long_host
            } else {
                *v
            };
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("\r\n");
        let before: usize = backends.values().map(EchoBackend::count).sum();
        let response = raw_request(gateway.addr(), text.as_bytes()).await;
        let reached = backends.values().map(EchoBackend::count).sum::<usize>() - before;
        eprintln!(
            "host_tricks: {name:<50} -> {} {}",
            response.status,
            if response.status == 200 {
                Echoed::parse(&response.body, name).backend
            } else {
                String::new()
            }
        );
        verdicts.record(
            name,
            source,
            judge(&response, reached).map_err(|why| {
                format!(
                    "GET {target} with {}: {why}",
                    super::shown(&format!("{headers:?}"))
                )
            }),
        );
    }
    // A request with no header line at all: pingora never answers it (the connection is held
    // until the client gives up), which routes nothing — safe, if impolite.
    let before: usize = backends.values().map(EchoBackend::count).sum();
    let exchange = raw_exchange(
        gateway.addr(),
        b"GET /x HTTP/1.1\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    let reached = backends.values().map(EchoBackend::count).sum::<usize>() - before;
    let statuses: Vec<u16> = exchange.responses.iter().map(|r| r.status).collect();
    eprintln!(
        "host_tricks: no header line at all -> statuses {statuses:?}, closed {}",
        exchange.closed
    );
    verdicts.record(
        "no header line at all",
        "RFC 9112 §3.2 (Host is required in HTTP/1.1)",
        if reached == 0 && statuses.iter().all(|s| *s >= 400 && *s < 500) {
            Ok(())
        } else {
            Err(format!(
                "statuses {statuses:?}, {reached} backend(s) reached"
            ))
        },
    );
    verdicts.finish();
}

#[test]
fn the_strict_host_reading_is_strict() {
    assert_eq!(strict_host("App.Test.:80").as_deref(), Some("app.test"));
    for bad in ["a/b", "a#b", "a b", "a:b", "a:", "", "a..b", "a@b", "a%2fb"] {
        assert_eq!(strict_host(bad), None, "{bad}");
    }
}

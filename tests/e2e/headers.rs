//! Header hygiene: hop-by-hop headers, identity headers in every spelling, forwarded headers from
//! untrusted and trusted peers, the gateway's cookies, `Upgrade: h2c`.
//!
//! Requests are written raw so every header spelling reaches the gateway exactly as written.

use crate::support::echo::Echoed;
use crate::support::raw::{raw_request, request};
use std::time::Duration;

use crate::support::{EchoBackend, Gateway, ServerOptions, wait_until};

struct Case {
    name: &'static str,
    /// Request headers (a `Host: app.test` line is always sent first).
    headers: &'static [(&'static str, &'static str)],
    /// Header names the backend must not see, in any spelling (case, `_` for `-`).
    absent: &'static [&'static str],
    /// Headers whose complete list of values the backend must see.
    present: &'static [(&'static str, &'static [&'static str])],
}

fn config(backend: &EchoBackend) -> String {
    format!(
        "upstreams:
  app: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}
identity:
  user: X-App-User
  extra_claims: {{X-Forwarded-Department: department}}
  assertion: X-App-Assertion
routes:
  - name: all
    upstream: app
    auth: public
",
        backend.addr()
    )
}

/// Forwarded-style headers a client may send; from an untrusted peer all of them are dropped.
const SPOOFED: &[(&str, &str)] = &[
    ("X-Forwarded-For", "203.0.113.7"),
    ("X_Forwarded_For", "203.0.113.8"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.test"),
    ("X-Forwarded-Port", "8443"),
    ("X-Forwarded-Prefix", "/evil"),
    ("X-Forwarded-Server", "evil"),
    ("X-Forwarded-Uri", "/admin"),
    ("X-Forwarded-Ssl", "on"),
    ("X-Forwarded-Scheme", "https"),
    ("Forwarded", "for=203.0.113.7;proto=https"),
    ("X-Original-URL", "/admin"),
    ("X-Original-URI", "/admin"),
    ("X-Original-Host", "evil.test"),
    ("X-Rewrite-URL", "/admin"),
    ("X-Real-IP", "203.0.113.7"),
    ("X-Client-IP", "203.0.113.7"),
    ("True-Client-IP", "203.0.113.7"),
    ("X-Cluster-Client-IP", "203.0.113.7"),
    ("X-Host", "evil.test"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("x_real_ip", "203.0.113.7"),
];

#[rustfmt::skip]
const UNTRUSTED: &[Case] = &[
    Case { name: "X-Forwarded-User", headers: &[("X-Forwarded-User", "evil")], absent: &["x-forwarded-user"], present: &[] },
    Case { name: "x-forwarded-user lower case", headers: &[("x-forwarded-user", "evil")], absent: &["x-forwarded-user"], present: &[] },
    Case { name: "X_Forwarded_User underscores", headers: &[("X_Forwarded_User", "evil")], absent: &["x-forwarded-user"], present: &[] },
    Case { name: "X-FORWARDED_USER mixed", headers: &[("X-FORWARDED_USER", "evil")], absent: &["x-forwarded-user"], present: &[] },
    Case { name: "configured user header", headers: &[("X-App-User", "evil"), ("x_app_USER", "evil")], absent: &["x-app-user"], present: &[] },
    Case { name: "configured extra claim header", headers: &[("X-Forwarded-Department", "eng"), ("X_FORWARDED_DEPARTMENT", "eng")], absent: &["x-forwarded-department"], present: &[] },
    Case { name: "configured assertion header", headers: &[("X-App-Assertion", "e30.e30.x")], absent: &["x-app-assertion"], present: &[] },
    Case { name: "X-Portcullis-Anything", headers: &[("X-Portcullis-Anything", "evil"), ("x_portcullis_other", "evil"), ("X-Portcullis-Assertion", "e30.e30.x")], absent: &["x-portcullis-anything", "x-portcullis-other", "x-portcullis-assertion"], present: &[] },
    Case {
        name: "built-in identity headers",
        headers: &[
            ("X-Forwarded-Email", "evil@example.com"), ("X-Forwarded-Groups", "admins"),
            ("X-Forwarded-Preferred-Username", "evil"), ("X-Forwarded-Access-Token", "t"),
            ("X-Auth-Request-User", "evil"), ("X-Auth-Request-Email", "evil@example.com"),
            ("X-Auth-Request-Groups", "admins"), ("X-Auth-Request-Preferred-Username", "evil"),
            ("X-Auth-Request-Access-Token", "t"), ("X-Remote-User", "evil"), ("Remote-User", "evil"),
            ("remote_user", "evil"), ("X_AUTH_REQUEST_USER", "evil"),
        ],
        absent: &[
            "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username",
            "x-forwarded-access-token", "x-auth-request-user", "x-auth-request-email",
            "x-auth-request-groups", "x-auth-request-preferred-username",
            "x-auth-request-access-token", "x-remote-user", "remote-user",
        ],
        present: &[],
    },
    Case {
        name: "Connection naming X-Forwarded-User",
        headers: &[("Connection", "X-Forwarded-User"), ("X-Forwarded-User", "evil")],
        absent: &["connection", "x-forwarded-user"],
        present: &[],
    },
    Case {
        name: "Connection: close, X-Custom",
        headers: &[("Connection", "close, X-Custom"), ("X-Custom", "1"), ("X-Kept", "yes")],
        absent: &["connection", "x-custom"],
        present: &[("x-kept", &["yes"])],
    },
    Case {
        name: "hop-by-hop headers",
        headers: &[
            ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("TE", "trailers"),
            ("Trailer", "X-Checksum"), ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("Proxy-Authenticate", "Basic"),
        ],
        absent: &["keep-alive", "proxy-connection", "te", "trailer", "proxy-authorization", "proxy-authenticate"],
        present: &[],
    },
    Case {
        name: "Upgrade: h2c is not forwarded",
        headers: &[("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")],
        absent: &["upgrade", "connection", "http2-settings"],
        present: &[],
    },
    Case {
        name: "forwarded headers from an untrusted peer",
        headers: SPOOFED,
        absent: &[
            "x-forwarded-prefix", "x-forwarded-server", "x-forwarded-uri",
            "x-forwarded-ssl", "x-forwarded-scheme", "forwarded", "x-original-url", "x-original-uri",
            "x-original-host", "x-rewrite-url", "x-real-ip", "x-client-ip", "true-client-ip",
            "x-cluster-client-ip", "x-host", "x-http-method-override", "x-http-method",
            "x-method-override",
        ],
        present: &[
            ("x-forwarded-for", &["127.0.0.1"]),
            ("x-forwarded-proto", &["http"]),
            ("x-forwarded-host", &["app.test"]),
            ("x-forwarded-port", &["80"]),
        ],
    },
    Case {
        name: "forwarded headers set without client ones",
        headers: &[],
        absent: &[],
        present: &[
            ("x-forwarded-for", &["127.0.0.1"]),
            ("x-forwarded-proto", &["http"]),
            ("x-forwarded-host", &["app.test"]),
        ],
    },
    Case {
        name: "gateway cookies stripped, others kept",
        headers: &[("Cookie", "a=1; portcullis=s; portcullis_csrf=t; __Host-portcullis-x=u; __Secure-Portcullis_y=v; PORTCULLIS=w; portcullisx=2; b=3")],
        absent: &[],
        present: &[("cookie", &["a=1; portcullisx=2; b=3"])],
    },
    Case {
        name: "only gateway cookies: Cookie removed",
        headers: &[("Cookie", "portcullis=s; __Secure-portcullis-csrf=t")],
        absent: &["cookie"],
        present: &[],
    },
    Case {
        name: "other headers kept, duplicates too",
        headers: &[("X-Dup", "1"), ("X-Dup", "2"), ("Authorization-Hint", "x")],
        absent: &[],
        present: &[("x-dup", &["1", "2"]), ("authorization-hint", &["x"])],
    },
];

#[rustfmt::skip]
const TRUSTED: &[Case] = &[
    Case {
        name: "trusted X-Forwarded-For gets the peer appended",
        headers: &[("X-Forwarded-For", "203.0.113.7")],
        absent: &[],
        present: &[("x-forwarded-for", &["203.0.113.7, 127.0.0.1"])],
    },
    Case {
        name: "trusted X-Forwarded-For chain",
        headers: &[("X-Forwarded-For", "203.0.113.7, 198.51.100.2")],
        absent: &[],
        present: &[("x-forwarded-for", &["203.0.113.7, 198.51.100.2, 127.0.0.1"])],
    },
    Case {
        name: "trusted peer without X-Forwarded-For",
        headers: &[],
        absent: &[],
        present: &[
            ("x-forwarded-for", &["127.0.0.1"]),
            ("x-forwarded-proto", &["http"]),
            ("x-forwarded-host", &["app.test"]),
        ],
    },
    Case {
        name: "trusted X-Forwarded-Proto and X-Forwarded-Host kept",
        headers: &[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "public.example")],
        absent: &[],
        present: &[("x-forwarded-proto", &["https"]), ("x-forwarded-host", &["public.example"])],
    },
    Case {
        name: "trusted X-Real-IP kept",
        headers: &[("X-Real-IP", "203.0.113.7")],
        absent: &[],
        present: &[("x-real-ip", &["203.0.113.7"])],
    },
    Case {
        name: "identity headers dropped even from a trusted peer",
        headers: &[("X-Forwarded-User", "evil"), ("X_Forwarded_User", "evil"), ("X-Portcullis-Anything", "evil")],
        absent: &["x-forwarded-user", "x-portcullis-anything"],
        present: &[],
    },
];

async fn run_table(gateway: &Gateway, table: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in table {
        let mut headers = vec![];
        headers.extend_from_slice(case.headers);
        let bytes = request("GET", "/headers", Some("app.test"), &headers);
        let response = raw_request(gateway.addr(), &bytes).await;
        if response.status != 200 {
            failures.push(format!(
                "case {:?}: status {} {}",
                case.name,
                response.status,
                response.text()
            ));
            continue;
        }
        let echoed = Echoed::parse(&response.body, case.name);
        for name in case.absent {
            let seen = echoed.spellings_of(name);
            if !seen.is_empty() {
                failures.push(format!(
                    "case {:?}: backend saw {name} as {seen:?}",
                    case.name
                ));
            }
        }
        for (name, values) in case.present {
            let mut got = echoed.values_any_spelling(name);
            let mut want: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            if *name == "cookie" {
                got = got.iter().map(|v| normalise_cookie(v)).collect();
                want = want.iter().map(|v| normalise_cookie(v)).collect();
            }
            if got != want {
                failures.push(format!(
                    "case {:?}: backend saw {name} (any spelling): {got:?}, want {want:?}",
                    case.name
                ));
            }
        }
    }
    failures
}

/// `a=1;b=2` and `a=1; b=2` are the same cookie list.
fn normalise_cookie(value: &str) -> String {
    value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_hygiene_untrusted_peer() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&config(&backend)).await;
    let failures = run_table(&gateway, UNTRUSTED).await;
    assert!(
        failures.is_empty(),
        "{} header check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_hygiene_trusted_peer() {
    let backend = EchoBackend::start("app").await;
    let options = ServerOptions {
        trusted_proxies: vec!["127.0.0.0/8".to_string()],
        ..ServerOptions::default()
    };
    let gateway = Gateway::start_with(options, &config(&backend)).await;
    let failures = run_table(&gateway, TRUSTED).await;
    assert!(
        failures.is_empty(),
        "{} header check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_passed_unchanged() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&config(&backend)).await;
    for host in ["app.test", "APP.Test:8080", "app.test."] {
        let response = raw_request(gateway.addr(), &request("GET", "/h", Some(host), &[])).await;
        assert_eq!(response.status, 200, "Host {host:?}: {}", response.text());
        let echoed = Echoed::parse(&response.body, host);
        assert_eq!(
            echoed.values("host"),
            vec![host.to_string()],
            "Host {host:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_host_keeps_a_non_default_port_and_forwarded_port_is_set() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&config(&backend)).await;
    let cases = [
        ("app.test", "app.test", "80"),
        ("APP.Test:8080", "app.test:8080", "8080"),
        ("app.test:80", "app.test", "80"),
        ("localhost:8080", "localhost:8080", "8080"),
    ];
    for (host, forwarded_host, forwarded_port) in cases {
        let spoofed = [("X-Forwarded-Port", "1234")];
        let response =
            raw_request(gateway.addr(), &request("GET", "/h", Some(host), &spoofed)).await;
        assert_eq!(response.status, 200, "Host {host:?}: {}", response.text());
        let echoed = Echoed::parse(&response.body, host);
        assert_eq!(
            echoed.values_any_spelling("x-forwarded-host"),
            vec![forwarded_host.to_string()],
            "Host {host:?}"
        );
        assert_eq!(
            echoed.values_any_spelling("x-forwarded-port"),
            vec![forwarded_port.to_string()],
            "Host {host:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_made_or_kept_from_a_trusted_proxy_and_go_everywhere() {
    let backend = EchoBackend::start("app").await;
    for trusted in [false, true] {
        let options = ServerOptions {
            trusted_proxies: if trusted {
                vec!["127.0.0.0/8".to_string()]
            } else {
                vec![]
            },
            ..ServerOptions::default()
        };
        let gateway = Gateway::start_with(options, &config(&backend)).await;
        // Proxied: the same id upstream and back.
        let sent = [("X-Request-Id", "edge-42")];
        let response = raw_request(
            gateway.addr(),
            &request("GET", "/h", Some("app.test"), &sent),
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.text());
        let echoed = Echoed::parse(&response.body, "request id");
        let upstream = echoed.values_any_spelling("x-request-id");
        let back = response.header("x-request-id").map(str::to_string);
        assert_eq!(upstream.len(), 1, "trusted {trusted}: {upstream:?}");
        assert_eq!(
            back.as_deref(),
            Some(upstream[0].as_str()),
            "trusted {trusted}"
        );
        if trusted {
            assert_eq!(upstream[0], "edge-42", "a trusted proxy's id is kept");
        } else {
            assert_ne!(upstream[0], "edge-42", "a client's id is replaced");
            assert_eq!(upstream[0].len(), 32, "{upstream:?}");
            assert!(upstream[0].bytes().all(|b| b.is_ascii_hexdigit()));
        }
        // A fresh id per request.
        let again = raw_request(gateway.addr(), &request("GET", "/h", Some("app.test"), &[])).await;
        assert_ne!(
            again.header("x-request-id"),
            response.header("x-request-id")
        );
        // The gateway's own error answers carry it, in the header and the JSON body.
        let refused = raw_request(
            gateway.addr(),
            &request("GET", "/%2e%2e/x", Some("app.test"), &sent),
        )
        .await;
        assert_eq!(refused.status, 400, "{}", refused.text());
        let id = refused
            .header("x-request-id")
            .expect("an id on the error")
            .to_string();
        let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("JSON");
        assert_eq!(body["request_id"], id.as_str(), "{body}");
        // And the access log line.
        wait_until(
            "the access log names the id",
            Duration::from_secs(5),
            || async {
                gateway
                    .stdout()
                    .contains(&format!("\"request_id\":\"{id}\""))
            },
        )
        .await;
    }
}

/// A route's own `access_token:` header is an identity header of its app: a client must not be
/// able to send it to any route to the same upstream, in any spelling (before, only `identity:`
/// names were removed, so a public route passed a forged `X-Route-Token` on to the app that
/// trusts it). Another upstream's routes pass it: it means nothing to that app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_access_token_header_is_stripped_from_every_route() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&format!(
        "upstreams:
  app: {{targets: [\"{0}\"]}}
  other: {{targets: [\"{0}\"]}}
providers:
  hub:
    authorization_endpoint: \"https://hub.test/authorize\"
    token_endpoint: \"https://hub.test/token\"
    userinfo_endpoint: \"https://hub.test/user\"
    client_id: portcullis
sessions:
  secret: \"{1}\"
routes:
  - name: app
    match: {{path_prefix: /app}}
    upstream: app
    auth: session
    provider: hub
    access_token: X-Route-Token
  - name: other
    match: {{path_prefix: /other}}
    upstream: other
    auth: public
  - name: pub
    upstream: app
    auth: public
",
        backend.addr(),
        crate::session::secret(4)
    ))
    .await;
    for spelling in [
        "X-Route-Token",
        "x-route-token",
        "X_Route_Token",
        "x-ROUTE_token",
    ] {
        let response = raw_request(
            gateway.addr(),
            &request("GET", "/pub", Some("app.test"), &[(spelling, "forged")]),
        )
        .await;
        assert_eq!(response.status, 200, "{spelling}: {}", response.text());
        let echoed = Echoed::parse(&response.body, spelling);
        assert!(
            echoed.values_any_spelling("x-route-token").is_empty(),
            "{spelling}: the forged token reached the app: {:?}",
            echoed.headers
        );
        let response = raw_request(
            gateway.addr(),
            &request("GET", "/other", Some("app.test"), &[(spelling, "forged")]),
        )
        .await;
        assert_eq!(response.status, 200, "{spelling}: {}", response.text());
        let echoed = Echoed::parse(&response.body, spelling);
        assert_eq!(
            echoed.values_any_spelling("x-route-token"),
            vec!["forged"],
            "{spelling}: another upstream's route passes it"
        );
    }
}

//! Identity-header spoofing: a client sends the headers a backend trusts for identity (or for
//! the client's address, path and method), in every spelling a backend could fold into the same
//! name, on a public route, a bearer route (with a valid token) and a session route (signed in).
//! Every spoofed value contains `spoof`: the backend must never see it, in any header, and on the
//! protected routes it must see exactly the gateway's identity.
//!
//! Then the spoofs that try to change what the gateway judges rather than what the backend
//! reads: a spoofed `X-Forwarded-Uri`, health-check user agents, the forward-auth endpoint asked
//! by an untrusted client.

use std::time::Duration;

use super::{Verdicts, session_stack};
use crate::session::{Jar, NAVIGATION};
use crate::support::RawResponse;
use crate::support::echo::Echoed;
use crate::support::idp::{IdpOptions, READER, READER_SECRET, RESOURCE};

/// Where a spoof is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Public,
    Bearer,
    Session,
}

const ALL: &[Kind] = &[Kind::Public, Kind::Bearer, Kind::Session];

const ROUTES: &str = "  - name: public
    match: {path_prefix: /public}
    upstream: app
    auth: public
  - name: api
    match: {path_prefix: /api}
    upstream: app
    auth: bearer
    provider: corp
  - name: app
    match: {path_prefix: /}
    upstream: app
    auth: session
    provider: corp
";

/// (case, header lines, route kinds, source)
type Spoof = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [Kind],
    &'static str,
);

#[rustfmt::skip]
const SPOOFS: &[Spoof] = &[
    ("canonical X-Forwarded-User", &[("X-Forwarded-User", "spoof-admin")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484"),
    ("lower-case x-forwarded-user", &[("x-forwarded-user", "spoof-admin")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484 (capitalisation variants)"),
    ("upper-case X-FORWARDED-USER", &[("X-FORWARDED-USER", "spoof-admin")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484 (capitalisation variants)"),
    ("underscores X_Forwarded_User", &[("X_Forwarded_User", "spoof-admin")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484 (underscore variants)"),
    ("mixed x-Forwarded_uSER", &[("x-Forwarded_uSER", "spoof-admin")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484"),
    ("duplicated X-Forwarded-User", &[("X-Forwarded-User", "spoof-1"), ("X-Forwarded-User", "spoof-2")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484 (backend sees two values)"),
    ("dash and underscore spellings together", &[("X-Forwarded-User", "spoof-1"), ("X_FORWARDED_USER", "spoof-2")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484"),
    ("Connection nominating X-Forwarded-User", &[("Connection", "X-Forwarded-User"), ("X-Forwarded-User", "spoof-admin")], ALL, "Fabio CVE-2025-48865; pingora CVE-2026-105299 (client-nominated Connection headers)"),
    ("Connection nominating the gateway's own headers", &[("Connection", "close, X-Forwarded-For, X-Forwarded-User, X-Forwarded-Email, Authorization")], ALL, "Fabio CVE-2025-48865; pingora CVE-2026-105299"),
    ("Connection nominating the underscore spelling", &[("Connection", "x_forwarded_user"), ("x_forwarded_user", "spoof-admin")], ALL, "Fabio CVE-2025-48865; oauth2-proxy CVE-2025-64484"),
    ("X-Forwarded-Email in two spellings", &[("X-Forwarded-Email", "spoof@evil.example"), ("x_forwarded_email", "spoof2@evil.example")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484"),
    ("X-Forwarded-Groups", &[("X-Forwarded-Groups", "spoof-admins"), ("X_Forwarded_Groups", "spoof-admins")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484"),
    ("X-Forwarded-Preferred-Username", &[("X-Forwarded-Preferred-Username", "spoof-admin")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 (X-Forwarded-* identity headers)"),
    ("X-Forwarded-Access-Token", &[("X-Forwarded-Access-Token", "spoof-token")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 (X-Forwarded-* identity headers)"),
    ("X-Auth-Request-* family", &[("X-Auth-Request-User", "spoof-admin"), ("X-Auth-Request-Email", "spoof@evil.example"), ("X-Auth-Request-Groups", "spoof"), ("X-Auth-Request-Preferred-Username", "spoof"), ("X-Auth-Request-Access-Token", "spoof"), ("x_auth_request_user", "spoof")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 (auth_request headers)"),
    ("Remote-User and X-Remote-User", &[("Remote-User", "spoof-admin"), ("X-Remote-User", "spoof-admin"), ("remote_user", "spoof-admin")], ALL, "httpoxy CVE-2016-5387 class (CGI maps headers to HTTP_* variables, - and _ alike)"),
    ("configured extra-claim header", &[("X-Forwarded-Department", "spoof-finance"), ("x_forwarded_department", "spoof-finance")], ALL, "oauth2-proxy GHSA-vjrc-mh2v-45x6 (any header the backend trusts)"),
    ("X-Portcullis-* (the gateway's own)", &[("X-Portcullis-Assertion", "spoof.assertion.x"), ("x_portcullis_user", "spoof")], ALL, "Pomerium security model (X-Pomerium-Jwt-Assertion is only ever set by the proxy)"),
    ("spoofed client address", &[("X-Forwarded-For", "10.0.0.1, spoof"), ("X-Real-IP", "spoof"), ("True-Client-IP", "spoof"), ("Forwarded", "for=spoof;proto=https"), ("X_Forwarded_For", "spoof")], ALL, "oauth2-proxy GHSA-7x63-xv5r-3p2x / CVE-2026-40575 (forwarded headers believed from anyone)"),
    ("path-overriding headers", &[("X-Original-URL", "/spoof/admin"), ("X-Rewrite-URL", "/spoof/admin"), ("X-Forwarded-Uri", "/spoof/admin"), ("X-Forwarded-Prefix", "/spoof")], ALL, "Symfony CVE-2018-14773 (X-Original-URL / X-Rewrite-URL override the path)"),
    ("host-overriding headers", &[("X-Forwarded-Host", "spoof.evil.example"), ("X-Host", "spoof.evil.example"), ("X-Original-Host", "spoof.evil.example")], ALL, "oauth2-proxy GHSA-7x63-xv5r-3p2x (forwarded headers from untrusted peers)"),
    ("httpoxy Proxy header", &[("Proxy", "http://spoof.evil.example:3128")], ALL, "httpoxy CVE-2016-5387 / CVE-2016-5385 (Proxy header becomes HTTP_PROXY)"),
    ("client Authorization on a session route", &[("Authorization", "Basic spoof-credentials")], &[Kind::Session], "Pomerium GO-2024-2965 class (credentials must not leak to the upstream); README: the client's Authorization is removed on protected routes"),
];

/// (case, request target, header lines, the statuses that are safe, source)
type Judged = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [u16],
    &'static str,
);

fn no_spoof_reached(kind: Kind, real_user: Option<&str>, seen: &Echoed) -> Result<(), String> {
    let leaked: Vec<&(String, String)> = seen
        .headers
        .iter()
        .filter(|(n, v)| v.contains("spoof") || n.contains("spoof"))
        .collect();
    if !leaked.is_empty() {
        return Err(format!("spoofed values reached the backend: {leaked:?}"));
    }
    let users = seen.values_any_spelling("x-forwarded-user");
    match (kind, real_user) {
        (Kind::Public, _) if !users.is_empty() => {
            return Err(format!("a user header on a public route: {users:?}"));
        }
        (_, Some(user)) if users != [user.to_string()] => {
            return Err(format!(
                "the backend's user header is {users:?}, want [{user:?}] (spellings {:?})",
                seen.spellings_of("x-forwarded-user")
            ));
        }
        _ => {}
    }
    let xff = seen.values_any_spelling("x-forwarded-for");
    if xff != ["127.0.0.1"] {
        return Err(format!("X-Forwarded-For at the backend: {xff:?}"));
    }
    Ok(())
}

fn allowed(response: &RawResponse) -> Result<Echoed, String> {
    if response.status != 200 {
        return Err(format!(
            "want 200, got {} {}",
            response.status,
            response.text()
        ));
    }
    Ok(Echoed::parse(&response.body, "app"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_never_sees_a_spoofed_identity() {
    let stack = session_stack(IdpOptions::default(), "", ROUTES, |c| c).await;
    let token = stack
        .idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let bearer = format!("Bearer {token}");
    let (signed_in, _) = stack.sign_in("alice", "/").await;

    let mut verdicts = Verdicts::new("header_spoofing");
    for (name, headers, kinds, source) in SPOOFS {
        for kind in *kinds {
            let mut jar = Jar::default();
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            let (target, user) = match kind {
                Kind::Public => ("/public/page", None),
                Kind::Bearer => {
                    all.push(("Authorization", &bearer));
                    ("/api/orders", Some(READER))
                }
                Kind::Session => {
                    jar = signed_in.clone();
                    ("/orders", Some("alice"))
                }
            };
            let before = stack.backend.count();
            let response = stack.get(&mut jar, target, &all).await;
            // Refusing the request outright is safe too (pingora answers 400 when `Connection`
            // nominates a header the proxy itself sets), provided nothing reached the backend.
            let verdict = if response.status == 400 && stack.backend.count() == before {
                eprintln!("header_spoofing: {name} on the {kind:?} route: refused with 400");
                Ok(())
            } else {
                allowed(&response).and_then(|seen| no_spoof_reached(*kind, user, &seen))
            };
            verdicts.record(&format!("{name} on the {kind:?} route"), source, verdict);
        }
    }

    // The gateway's session cookies never reach a backend, not even a public route's.
    let mut jar = signed_in.clone();
    jar.set("theme", "dark");
    let response = stack.get(&mut jar, "/public/page", &[]).await;
    verdicts.record(
        "session cookies on a public route",
        "Pomerium security model (its _pomerium cookie is stripped before the upstream)",
        allowed(&response).and_then(|seen| {
            let cookies = seen.values("cookie");
            if cookies == ["theme=dark"] {
                Ok(())
            } else {
                Err(format!("cookies at the backend: {cookies:?}"))
            }
        }),
    );

    // Spoofs that try to change what the gateway judges.
    let before = stack.backend.count();
    let cases: &[Judged] = &[
        (
            "X-Forwarded-Uri naming a public path, protected path requested",
            "/api/orders",
            &[
                ("X-Forwarded-Uri", "/public/x"),
                ("X-Original-URI", "/public/x"),
                ("X-Original-URL", "/public/x"),
            ],
            &[401],
            "oauth2-proxy GHSA-7x63-xv5r-3p2x / CVE-2026-40575 (X-Forwarded-Uri spoofing), oauth2-proxy issue #3506 (incomplete fix)",
        ),
        (
            "X-Forwarded-Uri naming a public path, session route requested",
            "/orders",
            &[
                ("X-Forwarded-Uri", "/public/x"),
                ("Accept", "application/json"),
            ],
            &[401],
            "oauth2-proxy GHSA-7x63-xv5r-3p2x / CVE-2026-40575",
        ),
        (
            "kube-probe user agent on a protected route",
            "/api/orders",
            &[("User-Agent", "kube-probe/1.30")],
            &[401],
            "oauth2-proxy GHSA-5hvv-m4w4-gf6v / CVE-2026-34457 (health-check User-Agent bypass)",
        ),
        (
            "GoogleHC user agent on a session route",
            "/orders",
            &[
                ("User-Agent", "GoogleHC/1.0"),
                ("Accept", "application/json"),
            ],
            &[401],
            "oauth2-proxy GHSA-5hvv-m4w4-gf6v / CVE-2026-34457 (--gcp-healthchecks)",
        ),
        (
            "forward-auth asked by an untrusted client about a public path",
            "/oauth2/auth",
            &[
                ("X-Original-URI", "/public/x"),
                ("X-Forwarded-Host", "app.test"),
                ("X-Forwarded-Method", "GET"),
            ],
            &[400],
            "oauth2-proxy GHSA-7x63-xv5r-3p2x / CVE-2026-40575 (forward-auth trusting X-Forwarded-Uri from anyone)",
        ),
        (
            "forward-auth with a health-check agent",
            "/oauth2/auth",
            &[
                ("User-Agent", "kube-probe/1.30"),
                ("X-Forwarded-Uri", "/orders"),
            ],
            &[400, 401],
            "oauth2-proxy GHSA-5hvv-m4w4-gf6v / CVE-2026-34457 (auth_request integration)",
        ),
        (
            "header name with whitespace before the colon",
            "/api/orders",
            &[
                ("X-Forwarded-User ", "spoof-admin"),
                ("Authorization", "Bearer x.y.z"),
            ],
            &[400, 401],
            "Netty CVE-2019-16869 (whitespace before the colon)",
        ),
    ];
    for (name, target, headers, statuses, source) in cases {
        let mut jar = Jar::default();
        let response = stack.get(&mut jar, target, headers).await;
        let verdict = if statuses.contains(&response.status) {
            Ok(())
        } else {
            Err(format!(
                "want one of {statuses:?}, got {} {}",
                response.status,
                response.text()
            ))
        };
        verdicts.record(name, source, verdict);
    }
    // A navigation is still sent to sign in, whatever X-Forwarded-Uri says.
    let response = stack
        .get(
            &mut Jar::default(),
            "/orders",
            &[NAVIGATION, &[("X-Forwarded-Uri", "/public/x")]].concat(),
        )
        .await;
    verdicts.record(
        "X-Forwarded-Uri on a navigation",
        "oauth2-proxy GHSA-7x63-xv5r-3p2x / CVE-2026-40575",
        if response.status == 302 {
            Ok(())
        } else {
            Err(format!("want 302 to sign in, got {}", response.status))
        },
    );
    // A POST is never redirected to sign in, whatever override it names.
    let response = stack
        .send(
            &mut Jar::default(),
            "POST",
            "/orders",
            &[NAVIGATION, &[("X-HTTP-Method-Override", "GET")]].concat(),
            "a=1",
        )
        .await;
    verdicts.record(
        "X-HTTP-Method-Override: GET on a POST navigation",
        "Symfony CVE-2018-14773 class (request-overriding headers believed from clients)",
        if response.status == 401 {
            Ok(())
        } else {
            Err(format!("want 401, got {}", response.status))
        },
    );
    let reached = stack.backend.count() - before;
    verdicts.record(
        "none of the refused spoofs reached the backend",
        "every source above",
        if reached == 0 {
            Ok(())
        } else {
            Err(format!("{reached} request(s) reached the backend"))
        },
    );

    // The same spoofs over HTTP/2 (h2c), on the bearer route.
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an h2c client");
    let response = client
        .get(stack.gateway.url("/api/h2"))
        .header("authorization", &bearer)
        .header("x-forwarded-user", "spoof-admin")
        .header("x_forwarded_user", "spoof-admin")
        .header("x-auth-request-user", "spoof-admin")
        .header("x-forwarded-for", "spoof")
        .send()
        .await
        .expect("an h2c request");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("an h2c body");
    let verdict = if status == 200 {
        no_spoof_reached(Kind::Bearer, Some(READER), &Echoed::parse(&body, "h2"))
    } else {
        Err(format!("want 200, got {status}"))
    };
    verdicts.record(
        "identity spoofs over HTTP/2 on the bearer route",
        "oauth2-proxy GHSA-vjrc-mh2v-45x6 / CVE-2025-64484; pingora CVE-2026-105299",
        verdict,
    );
    verdicts.finish();
}

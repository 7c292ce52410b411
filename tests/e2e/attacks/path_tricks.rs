//! Path tricks: reaching a protected route (`/admin`, bearer) through a public one (`/assets/`,
//! `/public`) by a path the gateway and a backend could read differently. Two backends, so a
//! request that slips through is caught whichever route it took: `admin` behind the protected
//! route, `public` behind the public ones. There is no catch-all route.
//!
//! Safe outcomes: refused (400, or 401 because the path is the protected route's — it was
//! normalised to `/admin` and judged there — or 404, or 414/431 for sizes), with neither backend
//! reached; or, for a few tricks that normalise to a harmless public path, that exact path at the
//! public backend.

use super::Verdicts;
use crate::support::echo::Echoed;
use crate::support::idp::{Idp, IdpOptions, READER, READER_SECRET, RESOURCE};
use crate::support::raw::{raw_request, request};
use crate::support::{EchoBackend, Gateway, RawResponse};

#[derive(Debug, Clone, Copy)]
enum Want {
    /// 400/401/404/414/431, no backend reached.
    Refused,
    /// 200 from the public backend, which received exactly this path.
    PublicAt(&'static str),
}

use Want::{PublicAt, Refused};

/// (case, request target, safe outcome, source)
#[rustfmt::skip]
const CASES: &[(&str, &str, Want, &str)] = &[
    ("dot-dot out of a public prefix", "/assets/../admin", Refused, "Envoy CVE-2019-9901 (paths not normalised before matching)"),
    ("dot-dot out of a public prefix, deeper", "/assets/css/../../admin/users", Refused, "Envoy CVE-2019-9901"),
    ("dot-dot out of an exact public path", "/public/../admin", Refused, "Envoy CVE-2019-9901"),
    ("leading double slash then dot-dot", "//assets/../admin", Refused, "Istio CVE-2021-31920 (multiple slashes)"),
    ("empty segment then dot-dot", "/assets//../admin", Refused, "Istio CVE-2021-31920 (multiple slashes)"),
    ("encoded slash after dot-dot", "/assets/..%2fadmin", Refused, "Envoy CVE-2021-29492 (escaped slashes)"),
    ("encoded slash after dot-dot, upper case", "/assets/..%2Fadmin", Refused, "Envoy CVE-2021-29492 (escaped slashes)"),
    ("encoded dot-dot segment", "/assets/%2e%2e/admin", Refused, "heimdall GHSA-3q34-rx83-r6mq (path normalisation mismatch, /user/%2e%2e/admin)"),
    ("encoded dot-dot segment, upper case", "/assets/%2E%2E/admin", Refused, "heimdall GHSA-3q34-rx83-r6mq"),
    ("half-encoded dot-dot", "/assets/.%2e/admin", Refused, "heimdall GHSA-3q34-rx83-r6mq"),
    ("other half encoded", "/assets/%2e./admin", Refused, "heimdall GHSA-3q34-rx83-r6mq"),
    ("encoded dot-dot and slash", "/assets/%2e%2e%2fadmin", Refused, "heimdall GHSA-3q34-rx83-r6mq"),
    ("encoded dot segment then dot-dot", "/assets/%2e/../admin", Refused, "heimdall GHSA-3q34-rx83-r6mq"),
    ("dot-dot with an empty parameter (Tomcat ..;)", "/assets/..;/admin", Refused, "Apache Shiro CVE-2020-1957 (/xxx/..;/admin/)"),
    ("dot-dot with a session parameter", "/assets/..;jsessionid=x/admin", Refused, "Apache Shiro CVE-2020-1957"),
    ("parameter-only segment then dot-dot", "/assets/;/../admin", PublicAt("/assets/admin"), "Apache Shiro CVE-2023-46749 (path rewriting with ;)"),
    ("parameter on the protected route", "/admin;jsessionid=1", Refused, "Apache Shiro CVE-2023-46749 (blockSemicolon)"),
    ("parameter segment on the protected route", "/admin;/x", Refused, "Apache Shiro CVE-2023-46749 (blockSemicolon)"),
    ("raw backslashes", "/assets\\..\\admin", Refused, "Istio CVE-2021-31920 (backslash read as slash by Envoy's normalisation)"),
    ("raw backslash after dot-dot", "/assets/..\\admin", Refused, "Istio CVE-2021-31920"),
    ("encoded backslash after dot-dot", "/assets/..%5cadmin", Refused, "Istio CVE-2021-31920; mod_auth_openidc CVE-2021-32786 (backslash)"),
    ("encoded backslash after dot-dot, upper case", "/assets/..%5Cadmin", Refused, "Istio CVE-2021-31920"),
    ("upper-case protected path (routes are case-sensitive)", "/ADMIN", Refused, "AppWeb CVE-2004-2214 (mixed-case URI bypass)"),
    ("mixed-case protected path", "/Admin/users", Refused, "Caddy CVE-2026-27587 (GHSA-g7pc-pc7g-h8jh, case normalisation skipped)"),
    ("encoded letter in the protected path", "/%61dmin/users", Refused, "Caddy CVE-2026-27587 (%xx branch skipped normalisation)"),
    ("encoded upper-case letter", "/%41DMIN", Refused, "Caddy CVE-2026-27587"),
    ("trailing encoded space", "/admin%20", Refused, "Spring CVE-2016-5007 (whitespace trimmed by the app, not the security rules)"),
    ("encoded newline", "/admin%0a", Refused, "Spring Security CVE-2022-22978 (newline in path bypasses the matcher)"),
    ("encoded carriage return", "/admin%0d/x", Refused, "Spring Security CVE-2022-22978"),
    ("double-encoded dot-dot", "/assets/%252e%252e/admin", Refused, "Microsoft IIS CVE-2001-0333 (superfluous second decoding)"),
    ("double-encoded dot-dot and slash", "/assets/%252e%252e%252fadmin", Refused, "Microsoft IIS CVE-2001-0333"),
    ("double-encoded slash", "/assets/..%252fadmin", Refused, "Microsoft IIS CVE-2001-0333"),
    ("overlong UTF-8 dots", "/assets/%c0%ae%c0%ae/admin", Refused, "Apache Tomcat CVE-2008-2938 (%c0%ae read as a dot)"),
    ("overlong UTF-8 slash", "/assets/..%c0%afadmin", Refused, "Microsoft IIS CVE-2000-0884 (%c0%af read as a slash)"),
    ("IIS %u encoding", "/assets/%u002e%u002e/admin", Refused, "RFC 3986 §2.1 (malformed escape; IIS's non-standard %uXXXX)"),
    ("raw fragment before dot-dot (the fragment is dropped: gateway and backend both see /assets/)", "/assets/#/../admin", PublicAt("/assets/"), "Envoy CVE-2021-32779 via Pomerium CVE-2021-39206; oauth2-proxy GHSA-pxq7-h93f-9jrg"),
    ("encoded fragment segment then dot-dot", "/assets/%23/../admin", PublicAt("/assets/admin"), "Envoy CVE-2021-32779 via Pomerium CVE-2021-39206"),
    ("encoded NUL", "/assets/x%00/../../admin", Refused, "nginx CVE-2013-4547 (NUL and space in the URI)"),
    ("raw tab", "/assets/x\t/../../admin", Refused, "nginx CVE-2013-4547"),
    ("absolute-form target with dot-dot", "http://app.test/assets/../admin", Refused, "Envoy CVE-2019-9901"),
    ("relative target", "assets/../admin", Refused, "RFC 9112 §3.2 (origin-form starts with /)"),
    ("asterisk target on GET", "*", Refused, "RFC 9112 §3.2.4 (asterisk-form only for OPTIONS)"),
];

fn config(issuer: &str, public: &EchoBackend, admin: &EchoBackend) -> String {
    format!(
        "upstreams:
  public: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}
  admin: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}
providers:
  idp:
    issuer: \"{issuer}\"
    audiences: [\"{RESOURCE}\"]
routes:
  - name: admin
    match: {{host: app.test, path_prefix: /admin}}
    upstream: admin
    auth: bearer
    provider: idp
  - name: assets
    match: {{host: app.test, path_prefix: /assets/}}
    upstream: public
    auth: public
  - name: public
    match: {{host: app.test, path_prefix: /public}}
    upstream: public
    auth: public
",
        public.addr(),
        admin.addr()
    )
}

fn judge(want: Want, response: &RawResponse, public: usize, admin: usize) -> Result<(), String> {
    if admin != 0 {
        return Err(format!(
            "the protected route's backend was reached (status {})",
            response.status
        ));
    }
    match want {
        Refused => {
            if ![400, 401, 404, 414, 431].contains(&response.status) {
                return Err(format!(
                    "want a refusal, got {} {}",
                    response.status,
                    response.text()
                ));
            }
            if public != 0 {
                return Err(format!(
                    "refused with {} but the public backend was reached",
                    response.status
                ));
            }
            Ok(())
        }
        PublicAt(path) => {
            if response.status != 200 || public != 1 {
                return Err(format!(
                    "want 200 from the public backend, got {} {}",
                    response.status,
                    response.text()
                ));
            }
            let echoed = Echoed::parse(&response.body, "public");
            if echoed.path != path {
                return Err(format!(
                    "the public backend got {:?}, want {path:?}",
                    echoed.path
                ));
            }
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_reaches_the_protected_route_through_a_public_one() {
    let idp = Idp::start(IdpOptions::default()).await;
    let public = EchoBackend::start("public").await;
    let admin = EchoBackend::start("admin").await;
    let gateway = Gateway::start(&config(idp.issuer(), &public, &admin)).await;
    let addr = gateway.addr();
    let get = |target: &str, headers: &[(&str, &str)]| {
        let bytes = request("GET", target, Some("app.test"), headers);
        async move { raw_request(addr, &bytes).await }
    };

    // The controls: the public routes serve, the protected one opens to a valid token only.
    let token = idp
        .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
        .await;
    let bearer = format!("Bearer {token}");
    assert_eq!(get("/assets/app.css", &[]).await.status, 200);
    assert_eq!(get("/admin/users", &[]).await.status, 401);
    let opened = get("/admin/users", &[("Authorization", &bearer)]).await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    assert_eq!(Echoed::parse(&opened.body, "admin").backend, "admin");
    // Still refused with the valid token: the path, not the token, is the trick.
    let with_token = get("/assets/..;/admin", &[("Authorization", &bearer)]).await;
    assert_eq!(with_token.status, 400, "{}", with_token.text());

    let mut verdicts = Verdicts::new("path_tricks");
    let long = format!("/assets/{}admin", "../".repeat(20_000));
    let mut cases: Vec<(&str, String, Want, &str)> = CASES
        .iter()
        .map(|(name, target, want, source)| (*name, (*target).to_string(), *want, *source))
        .collect();
    cases.push((
        "60 KB of dot-dot segments",
        long,
        Refused,
        "nginx CVE-2009-2629 (long paths of ../ in URI normalisation)",
    ));
    for (name, target, want, source) in cases {
        let (public_before, admin_before) = (public.count(), admin.count());
        let response = get(&target, &[]).await;
        let reached = (public.count() - public_before, admin.count() - admin_before);
        verdicts.record(
            name,
            source,
            judge(want, &response, reached.0, reached.1)
                .map_err(|why| format!("GET {}: {why}", super::shown(&target))),
        );
    }
    verdicts.finish();
}

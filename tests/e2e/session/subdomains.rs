//! `sessions.cookie_domain`: one sign-in shared by the hosts under a domain, in a real Chromium
//! (the two host names mapped to loopback by its host-resolver rules, over TLS so that the
//! `Secure` cookies are kept).

use std::net::SocketAddr;
use std::time::Duration;

use super::config;
use crate::support::browser::{Browser, BrowserOptions};
use crate::support::certs::TestCa;
use crate::support::check;
use crate::support::idp::{Idp, IdpOptions};
use crate::support::{EchoBackend, Gateway, ServerOptions, free_port};

const WAIT: Duration = Duration::from_secs(15);

const ROUTE: &str = "  - name: app
    match: {host: \"*.example.test\", path_prefix: /}
    upstream: app
    auth: session
    provider: corp
";

/// The user the app was told of on the page the browser shows (the echo backend's JSON).
async fn user(browser: &Browser) -> Option<String> {
    let text = browser
        .execute(
            "const pre = document.querySelector('pre'); return pre ? pre.innerText : document.body.innerText;",
            vec![],
        )
        .await;
    let seen: serde_json::Value = serde_json::from_str(text.as_str().unwrap_or_default()).ok()?;
    seen["headers"].as_array()?.iter().find_map(|pair| {
        let pair = pair.as_array()?;
        (pair.first()?.as_str()? == "x-forwarded-user")
            .then(|| pair.get(1)?.as_str().map(str::to_owned))
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sign_in_serves_every_host_under_the_cookie_domain_and_sign_out_ends_it_on_all() {
    let ca = TestCa::new("subdomain-ca");
    let leaf = ca.issue("app", &["a.example.test", "b.example.test"], 1, false);
    let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = tls.port();
    let a = |path: &str| format!("https://a.example.test:{port}{path}");
    let b = |path: &str| format!("https://b.example.test:{port}{path}");
    let idp = Idp::start(IdpOptions {
        redirect_uris: vec![a("/oauth2/callback"), b("/oauth2/callback")],
        post_logout_redirect_uris: vec![a("/"), b("/")],
        ..IdpOptions::default()
    })
    .await;
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start_with(
        ServerOptions {
            extra_listeners: format!(
                "    - {{address: \"{tls}\", cert: {:?}, key: {:?}}}\n",
                leaf.cert.display().to_string(),
                leaf.key.display().to_string()
            ),
            ..ServerOptions::default()
        },
        &config(
            idp.issuer(),
            &backend,
            9,
            "  cookie_domain: example.test\n",
            ROUTE,
        ),
    )
    .await;
    let browser = Browser::start_with(BrowserOptions {
        map_hosts: vec![
            ("a.example.test".into(), "127.0.0.1".into()),
            ("b.example.test".into(), "127.0.0.1".into()),
        ],
        accept_insecure_certs: true,
        ..BrowserOptions::default()
    })
    .await;

    // Sign in on a.
    browser.goto(&a("/first")).await;
    let at = browser.current_url().await;
    assert!(
        at.starts_with(idp.issuer()),
        "to the provider first, not {at}"
    );
    browser.submit_idp_login("alice").await;
    browser.wait_for_url_prefix(&a("/first"), WAIT).await;
    assert_eq!(user(&browser).await.as_deref(), Some("alice"));
    let session: Vec<_> = browser
        .cookies()
        .await
        .into_iter()
        .filter(|c| c.name.contains("portcullis") && !c.name.contains("_s_"))
        .collect();
    assert_eq!(session.len(), 1, "{session:?}");
    let c = &session[0];
    assert_eq!(c.name, "__Secure-portcullis");
    assert_eq!(c.domain, ".example.test", "a Domain cookie: {c:?}");
    assert!(c.secure && c.http_only, "{c:?}");

    // b, never visited: straight to the app, the same person, no second sign-in.
    browser.goto(&b("/second")).await;
    assert_eq!(
        browser.current_url().await,
        b("/second"),
        "no detour to the provider"
    );
    assert_eq!(user(&browser).await.as_deref(), Some("alice"));
    let metrics = gateway.metrics().await;
    let sign_ins = metrics
        .lines()
        .find(|l| l.starts_with(r#"portcullis_sign_ins_total{provider="corp",result="success"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert_eq!(sign_ins, Some(1), "one sign-in for both hosts");

    // Sign out on b (the gateway's confirmation, then the provider's): a is signed out too.
    browser.goto(&b("/oauth2/sign_out")).await;
    browser.click("#sign-out").await;
    browser
        .wait_for_url_prefix(&idp.url("/session/end"), WAIT)
        .await;
    assert!(
        !browser
            .cookies()
            .await
            .iter()
            .any(|c| c.name.starts_with("__Secure-portcullis") && !c.name.contains("_s_")),
        "the shared session cookie is gone"
    );
    browser.click("button[name=logout][value=yes]").await;
    browser
        .wait_for_url("a new sign-in at the provider", WAIT, |u| {
            u.contains("/interaction/")
        })
        .await;
    browser.goto(&a("/after")).await;
    let at = browser
        .wait_for_url("a's sign-in at the provider", WAIT, |u| {
            u.contains("/interaction/")
        })
        .await;
    assert!(at.starts_with(idp.issuer()), "a needs a new sign-in: {at}");
    assert!(browser.exists("form input[name=login]").await);
    browser.close().await;
}

#[test]
fn check_refuses_a_cookie_domain_that_does_not_cover_the_session_hosts() {
    let config = |public_url: &str, domain: &str, routes: &str| {
        format!(
            "server:
  listen: [\"127.0.0.1:18080\"]
  admin: \"127.0.0.1:18081\"
{public_url}providers:
  hub:
    authorization_endpoint: \"https://hub.test/authorize\"
    token_endpoint: \"https://hub.test/token\"
    userinfo_endpoint: \"https://hub.test/user\"
    client_id: portcullis
sessions:
  secret: \"{}\"
  cookie_domain: {domain}
upstreams:
  app: {{targets: [\"127.0.0.1:18082\"]}}
routes:
{routes}",
            super::secret(3)
        )
    };
    let route = |name: &str, host: Option<&str>, auth: &str| {
        let host = host.map_or(String::new(), |h| format!("host: \"{h}\", "));
        let provider = if auth == "public" {
            ""
        } else {
            "    provider: hub\n"
        };
        format!(
            "  - name: {name}\n    match: {{{host}path_prefix: /{name}}}\n    upstream: app\n    auth: {auth}\n{provider}"
        )
    };
    // Covered: exact hosts and wildcards under the domain, the domain itself, and a public
    // route anywhere.
    let good = config(
        "  public_url: \"https://login.example.test\"\n",
        "example.test",
        &[
            route("a", Some("a.example.test"), "session"),
            route("w", Some("*.apps.example.test"), "session"),
            route("d", Some("example.test"), "session"),
            route("p", None, "public"),
        ]
        .concat(),
    );
    let (code, out) = check(&good);
    assert_eq!(code, 0, "{out}");
    for (public_url, domain, routes, key, phrase) in [
        (
            "",
            "example.test",
            route("x", Some("x.other.test"), "session"),
            "routes[0].match.host",
            "`x.other.test` is not under sessions.cookie_domain `example.test`",
        ),
        (
            "",
            "example.test",
            route("x", Some("badexample.test"), "session"),
            "routes[0].match.host",
            "is not under sessions.cookie_domain",
        ),
        (
            "",
            "example.test",
            route("x", None, "session"),
            "routes[0].match.host",
            "a session route must name its host",
        ),
        (
            "  public_url: \"https://login.other.test\"\n",
            "example.test",
            route("x", Some("x.example.test"), "session"),
            "server.public_url",
            "`login.other.test` is not under",
        ),
        (
            "",
            ".example.test",
            route("x", Some("x.example.test"), "session"),
            "sessions.cookie_domain",
            "without the leading dot",
        ),
        (
            "",
            "test",
            route("x", Some("x.test"), "session"),
            "sessions.cookie_domain",
            "top-level domain",
        ),
        (
            "",
            "\"10.0.0.1\"",
            route("x", Some("x.example.test"), "session"),
            "sessions.cookie_domain",
            "an IP address",
        ),
    ] {
        let yaml = config(public_url, domain, &routes);
        let (code, out) = check(&yaml);
        assert_eq!(code, 1, "{key}: {out}");
        let line = out
            .lines()
            .find(|l| l.contains(key) && l.contains(phrase))
            .unwrap_or_else(|| panic!("no `{key}: …{phrase}` in:\n{out}"));
        assert!(line.starts_with("FILE:"), "positioned: {line}");
    }
}

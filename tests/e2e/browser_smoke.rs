//! The browser harness itself (`support::browser`): a real headless Chromium signs in through the
//! test provider's own HTML pages and lands on the client's redirect URI; reads, writes and
//! deletes cookies and fetches with them; and what Chromium does with `Secure` and `__Host-`
//! cookies over plain HTTP, which the gateway's cookie design relies on:
//!
//! - `http://127.0.0.1`, `http://localhost` and `http://<name>.localhost` are trustworthy origins
//!   for cookies: Chromium stores `Secure`, `__Secure-` and `__Host-` cookies they set (by
//!   `Set-Cookie` or `document.cookie`) and sends them back over plain HTTP;
//! - any other name (`app.test`, resolved to 127.0.0.1) is not: those cookies are dropped;
//! - cookies are per host, not per port: every server on 127.0.0.1 shares one cookie jar (the
//!   provider's `_session` reaches the client's redirect URI on another port).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::EchoBackend;
use crate::support::browser::{Browser, BrowserOptions, CookieInfo, FetchRequest};
use crate::support::echo::Echoed;
use crate::support::idp::{Idp, IdpOptions, code_of, jwt_parts, query_param};

/// The provider with the standard `gateway` client redirecting to `<echo>/cb`; `skip_consent`
/// as given.
async fn provider_redirecting_to(echo: &EchoBackend, skip_consent: bool) -> (Idp, String) {
    let redirect_uri = format!("http://127.0.0.1:{}/cb", echo.addr().port());
    let mut extra_config = Map::new();
    extra_config.insert("skip_consent".to_string(), json!(skip_consent));
    let idp = Idp::start(IdpOptions {
        redirect_uris: vec![redirect_uri.clone()],
        extra_config,
        ..IdpOptions::default()
    })
    .await;
    (idp, redirect_uri)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_in_through_the_provider_pages_and_lands_on_the_redirect_uri() {
    let echo = EchoBackend::start("rp").await;
    let (idp, redirect_uri) = provider_redirecting_to(&echo, true).await;
    let browser = Browser::start().await;

    browser
        .goto(&idp.authorize_url(
            &redirect_uri,
            &[("scope", "openid email"), ("state", "st-browser-1")],
        ))
        .await;
    let login_page = browser.current_url().await;
    assert!(
        login_page.starts_with(&idp.url("/interaction/")),
        "the provider shows its sign-in page: {login_page}"
    );
    assert!(browser.page_text().await.contains("Sign-in"));

    let left_at = browser.submit_idp_login("alice").await;
    let landed = browser
        .wait_for_url_prefix(&format!("{redirect_uri}?"), Duration::from_secs(10))
        .await;
    assert_eq!(left_at, landed);
    assert_eq!(
        query_param(&landed, "state").as_deref(),
        Some("st-browser-1")
    );
    assert_eq!(query_param(&landed, "iss").as_deref(), Some(idp.issuer()));
    let code = code_of(&landed);
    assert!(!code.is_empty(), "{landed}");

    // The echo backend really served the browser: its page is the request it received.
    let echoed = Echoed::parse(browser.page_text().await.as_bytes(), "the redirect page");
    assert!(echoed.path.starts_with("/cb?code="), "{}", echoed.path);
    let user_agent = echoed.values("user-agent").join(" ");
    assert!(user_agent.contains("Chrome/"), "{user_agent}");

    // The code is alice's: the login name typed into the form became the subject.
    let tokens = idp.exchange_code(&code, &redirect_uri).await;
    let (_, id) = jwt_parts(tokens["id_token"].as_str().expect("an id_token"));
    assert_eq!(id["sub"], json!("alice"), "{id}");
    assert_eq!(id["email"], json!("alice@corp.example"), "{id}");

    // Cookies are per host, not per port: the provider's session cookie (127.0.0.1, another
    // port) is visible here and reached the redirect URI.
    let session = browser
        .cookie("_session")
        .await
        .expect("the provider's _session cookie is in the browser");
    assert_eq!(session.domain, "127.0.0.1");
    assert!(session.http_only, "{session:?}");
    let sent = echoed.values("cookie").join("; ");
    assert!(
        sent.contains(&format!("_session={}", session.value)),
        "{sent}"
    );

    // Single sign-on: a second authorization goes straight back to the client.
    browser
        .goto(&idp.authorize_url(
            &redirect_uri,
            &[("scope", "openid"), ("state", "st-browser-2")],
        ))
        .await;
    let again = browser.current_url().await;
    assert!(again.starts_with(&redirect_uri), "{again}");
    assert_eq!(
        query_param(&again, "state").as_deref(),
        Some("st-browser-2")
    );

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_the_consent_page_when_the_provider_asks() {
    let echo = EchoBackend::start("rp").await;
    let (idp, redirect_uri) = provider_redirecting_to(&echo, false).await;
    let browser = Browser::start().await;
    browser
        .goto(&idp.authorize_url(
            &redirect_uri,
            &[("scope", "openid email"), ("state", "st-consent")],
        ))
        .await;
    browser.submit_idp_login("bob").await;
    let landed = browser
        .wait_for_url_prefix(&format!("{redirect_uri}?"), Duration::from_secs(10))
        .await;
    assert_eq!(query_param(&landed, "state").as_deref(), Some("st-consent"));
    let tokens = idp.exchange_code(&code_of(&landed), &redirect_uri).await;
    let (_, id) = jwt_parts(tokens["id_token"].as_str().expect("an id_token"));
    assert_eq!(id["sub"], json!("bob"), "{id}");
}

/// A server answering `/set` with the cookies of [`SET_COOKIES`], `/x-test` with the `X-Test`
/// header it received, `/redirect` with a redirect to `/show`, and anything else with the `Cookie` header it received (`-`: none), as
/// `text/plain`.
struct CookieServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

const SET_COOKIES: [&str; 5] = [
    "__Host-t1=v1; Path=/; Secure; HttpOnly; SameSite=Lax",
    "__Secure-t2=v2; Path=/; Secure; HttpOnly; SameSite=Lax",
    "secure3=v3; Path=/; Secure; HttpOnly; SameSite=Lax",
    "plain4=v4; Path=/; HttpOnly; SameSite=Lax",
    "script5=v5; Path=/; SameSite=Lax",
];

impl CookieServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 must work");
        let addr = listener
            .local_addr()
            .expect("a bound socket has a local address");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service_fn(answer))
                        .await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for CookieServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::builder().header("content-type", "text/plain");
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    let body = if req.uri().path() == "/set" {
        for cookie in SET_COOKIES {
            response = response.header("set-cookie", cookie);
        }
        "set".to_string()
    } else if req.uri().path() == "/x-test" {
        header("x-test")
    } else if req.uri().path() == "/redirect" {
        response = response.status(302).header("location", "/show");
        String::new()
    } else {
        header("cookie")
    };
    Ok(response
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response"))
}

/// The cookie names of `cookies`, sorted.
fn names(cookies: &[CookieInfo]) -> Vec<String> {
    let mut names: Vec<String> = cookies.iter().map(|c| c.name.clone()).collect();
    names.sort();
    names
}

/// The `name=value` pairs of a `Cookie` header (`-`: none), sorted.
fn pairs(header: &str) -> Vec<String> {
    let mut pairs: Vec<String> = header
        .split("; ")
        .filter(|p| !p.is_empty() && *p != "-")
        .map(str::to_string)
        .collect();
    pairs.sort();
    pairs
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_keeps_secure_and_host_prefixed_cookies_from_loopback_http_only() {
    let server = CookieServer::start().await;
    let port = server.addr.port();
    let browser = Browser::start_with(BrowserOptions {
        map_hosts: vec![("app.test".to_string(), "127.0.0.1".to_string())],
        ..BrowserOptions::default()
    })
    .await;

    let all = strings(&["__Host-t1", "__Secure-t2", "plain4", "script5", "secure3"]);
    for host in ["127.0.0.1", "localhost", "app.localhost"] {
        let origin = format!("http://{host}:{port}");
        // Each host name is its own cookie jar: nothing from the previous one.
        browser.goto(&format!("{origin}/show")).await;
        assert_eq!(browser.page_text().await, "-", "{host}: a fresh jar");

        browser.goto(&format!("{origin}/set")).await;
        assert_eq!(names(&browser.cookies().await), all, "{host}: stored");
        let host_cookie = browser
            .cookie("__Host-t1")
            .await
            .unwrap_or_else(|| panic!("{host}: __Host-t1 is stored"));
        assert_eq!(
            host_cookie,
            CookieInfo {
                name: "__Host-t1".to_string(),
                value: "v1".to_string(),
                domain: host.to_string(),
                path: "/".to_string(),
                secure: true,
                http_only: true,
                same_site: Some("Lax".to_string()),
                expiry: None,
            }
        );

        // ...and sent back over plain HTTP.
        browser.goto(&format!("{origin}/show")).await;
        assert_eq!(
            pairs(&browser.page_text().await),
            strings(&[
                "__Host-t1=v1",
                "__Secure-t2=v2",
                "plain4=v4",
                "script5=v5",
                "secure3=v3"
            ]),
            "{host}: sent"
        );

        // Scripts see only the cookies without HttpOnly, and may set __Host- ones too.
        let seen = browser
            .execute(
                "document.cookie = '__Host-js6=v6; Path=/; Secure'; return document.cookie;",
                Vec::new(),
            )
            .await;
        assert_eq!(
            pairs(seen.as_str().unwrap_or_default()),
            strings(&["__Host-js6=v6", "script5=v5"]),
            "{host}: document.cookie"
        );
    }

    // A name that is not loopback's own: plain HTTP there is not secure, Secure cookies dropped.
    let origin = format!("http://app.test:{port}");
    browser.goto(&format!("{origin}/set")).await;
    assert_eq!(
        names(&browser.cookies().await),
        strings(&["plain4", "script5"]),
        "app.test: stored"
    );
    browser.goto(&format!("{origin}/show")).await;
    assert_eq!(
        pairs(&browser.page_text().await),
        strings(&["plain4=v4", "script5=v5"])
    );
    let seen = browser
        .execute(
            "document.cookie = '__Host-js6=v6; Path=/; Secure'; return document.cookie;",
            Vec::new(),
        )
        .await;
    assert_eq!(seen, json!("script5=v5"), "app.test: document.cookie");

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_deletes_cookies_and_fetches_with_them() {
    let server = CookieServer::start().await;
    let origin = format!("http://127.0.0.1:{}", server.addr.port());
    let browser = Browser::start().await;
    browser.goto(&format!("{origin}/show")).await;
    assert_eq!(browser.text_of("pre").await, "-");
    assert!(
        browser.page_source().await.contains("<pre"),
        "a text/plain page"
    );

    browser.add_cookie("added", "a1", "/", true, true).await;
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
        + 3600;
    browser
        .set_cookie(&CookieInfo {
            name: "lasting".to_string(),
            value: "l1".to_string(),
            path: "/show".to_string(),
            same_site: Some("Strict".to_string()),
            expiry: Some(expiry),
            ..CookieInfo::default()
        })
        .await;
    let added = browser.cookie("added").await.expect("the added cookie");
    assert!(added.secure && added.http_only, "{added:?}");
    assert_eq!(added.same_site.as_deref(), Some("Lax"));
    assert_eq!(added.expiry, None);
    let lasting = browser.cookie("lasting").await.expect("the lasting cookie");
    assert_eq!(lasting.path, "/show");
    assert_eq!(lasting.same_site.as_deref(), Some("Strict"));
    assert_eq!(lasting.expiry, Some(expiry));
    assert!(!lasting.secure && !lasting.http_only, "{lasting:?}");

    // fetch from the page: same-origin requests carry the cookies (HttpOnly too) and headers.
    let answer = browser.fetch("GET", "/show", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.url, format!("{origin}/show"));
    assert_eq!(answer.kind, "basic");
    assert_eq!(answer.header("content-type"), Some("text/plain"));
    assert_eq!(pairs(&answer.body), strings(&["added=a1", "lasting=l1"]));
    let answer = browser
        .fetch("POST", "/x-test", &[("x-test", "from-the-page")])
        .await;
    assert_eq!(answer.body, "from-the-page");
    let answer = browser.fetch("GET", "/redirect", &[]).await;
    assert!(answer.redirected, "{answer:?}");
    assert_eq!(answer.url, format!("{origin}/show"));
    let mut request = FetchRequest::new("GET", "/redirect");
    request.redirect = "manual".to_string();
    let answer = browser
        .fetch_with(&request)
        .await
        .expect("a manual redirect");
    assert_eq!((answer.status, answer.kind.as_str()), (0, "opaqueredirect"));
    let mut request = FetchRequest::new("GET", "/show");
    request.credentials = "omit".to_string();
    let answer = browser
        .fetch_with(&request)
        .await
        .expect("a same-origin fetch");
    assert_eq!(answer.body, "-");
    // Cross-origin without CORS headers: the script gets an error, not the answer.
    let other = format!("http://localhost:{}/show", server.addr.port());
    let refused = browser.fetch_with(&FetchRequest::new("GET", &other)).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("Failed to fetch")),
        "{refused:?}"
    );

    browser.delete_cookie("added").await;
    assert_eq!(names(&browser.cookies().await), strings(&["lasting"]));
    browser.delete_all_cookies().await;
    assert!(browser.cookies().await.is_empty());
    browser.goto(&format!("{origin}/show")).await;
    assert_eq!(browser.page_text().await, "-");
    assert!(browser.log_path().is_file(), "chromedriver logs to a file");
}

//! The browser flows in a real headless Chromium (driven by chromedriver): a person signs in on
//! the provider's own login form and lands on the app, which shows the identity headers it got.

use std::time::Duration;

use serde_json::{Value, json};

use super::{APP_ROUTE, Jar, NAVIGATION, Stack};
use crate::support::browser::{Browser, CookieInfo};
use crate::support::idp::IdpOptions;

const WAIT: Duration = Duration::from_secs(15);

/// The echo backend's view of the request, from the page the browser shows.
async fn seen(browser: &Browser) -> Value {
    // Chromium shows a JSON document in a <pre> (with a pretty-print control beside it).
    let text = browser
        .execute(
            "const pre = document.querySelector('pre'); return pre ? pre.innerText : document.body.innerText;",
            vec![],
        )
        .await;
    let text = text.as_str().unwrap_or_default().to_string();
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the app page is not the echo ({e}): {text}"))
}

fn header(seen: &Value, name: &str) -> Option<String> {
    seen["headers"].as_array()?.iter().find_map(|pair| {
        let pair = pair.as_array()?;
        (pair.first()?.as_str()?.eq_ignore_ascii_case(name))
            .then(|| pair.get(1)?.as_str().map(str::to_owned))
            .flatten()
    })
}

async fn session_cookies(browser: &Browser) -> Vec<CookieInfo> {
    let mut cookies: Vec<CookieInfo> = browser
        .cookies()
        .await
        .into_iter()
        .filter(|c| c.name.starts_with("__Host-portcullis") && !c.name.contains("_s_"))
        .collect();
    cookies.sort_by(|a, b| a.name.cmp(&b.name));
    cookies
}

/// Successful sign-ins so far (the gateway's metric).
async fn sign_ins(stack: &Stack) -> u64 {
    let metrics = stack.gateway.metrics().await;
    metrics
        .lines()
        .find(|l| l.starts_with(r#"portcullis_sign_ins_total{provider="corp",result="success"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Signs in as `login` from a navigation to `path`; returns the URL landed on.
async fn sign_in(stack: &Stack, browser: &Browser, path: &str, login: &str) -> String {
    browser.goto(&stack.browser_url(path)).await;
    let at = browser.current_url().await;
    assert!(
        at.starts_with(stack.idp.issuer()),
        "the navigation goes to the provider's sign-in page, not {at}"
    );
    browser.submit_idp_login(login).await;
    browser
        .wait_for_url_prefix(&stack.browser_url(path), WAIT)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_and_the_app_shows_who_they_are() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let browser = Browser::start().await;
    let landed = sign_in(&stack, &browser, "/orders/7?tab=lines", "alice").await;
    assert_eq!(
        landed,
        stack.browser_url("/orders/7?tab=lines"),
        "deep link kept"
    );
    let page = seen(&browser).await;
    assert_eq!(page["path"], "/orders/7?tab=lines");
    assert_eq!(header(&page, "x-forwarded-user").as_deref(), Some("alice"));
    assert_eq!(
        header(&page, "x-forwarded-email").as_deref(),
        Some("alice@corp.example")
    );
    assert_eq!(
        header(&page, "x-forwarded-groups").as_deref(),
        Some("staff")
    );
    assert!(
        header(&page, "cookie").is_none_or(|c| !c.contains("portcullis")),
        "the gateway's cookies never reach the app"
    );
    let cookies = session_cookies(&browser).await;
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let c = &cookies[0];
    assert!(c.secure && c.http_only, "{c:?}");
    assert_eq!(c.same_site.as_deref(), Some("Lax"));
    assert_eq!(c.path, "/");
    assert!(
        !browser
            .cookies()
            .await
            .iter()
            .any(|c| c.name.contains("_s_")),
        "the pending sign-in cookie is gone"
    );

    // The next visit reuses the session: straight to the app.
    browser.goto(&stack.browser_url("/second")).await;
    assert_eq!(browser.current_url().await, stack.browser_url("/second"));
    assert_eq!(
        header(&seen(&browser).await, "x-forwarded-user").as_deref(),
        Some("alice")
    );
    // A script on the page can read the identity at /oauth2/userinfo, not the session cookie.
    let info = browser
        .fetch("GET", &stack.browser_url("/oauth2/userinfo"), &[])
        .await;
    assert_eq!(info.status, 200);
    let info: Value = serde_json::from_str(&info.body).expect("JSON");
    assert_eq!(info["sub"], "alice");
    let visible = browser.execute("return document.cookie", vec![]).await;
    assert!(
        !visible.as_str().unwrap_or_default().contains("portcullis"),
        "HttpOnly: {visible}"
    );
    // A script's fetch() without a session gets the 401, not a redirect to the provider.
    browser.delete_all_cookies().await;
    let api = browser
        .fetch(
            "GET",
            &stack.browser_url("/api/data"),
            &[("Accept", "application/json")],
        )
        .await;
    assert_eq!(api.status, 401, "{}", api.body);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_session_cookies_send_the_browser_to_sign_in_again() {
    // Many groups: the session does not fit one cookie.
    let groups: Vec<String> = (0..150).map(|i| format!("team-{i:04}-readers")).collect();
    let mut accounts = serde_json::Map::new();
    accounts.insert("bigcorp".into(), json!({ "groups": groups }));
    let options = IdpOptions {
        accounts,
        ..IdpOptions::default()
    };
    let stack = Stack::start(options, "", APP_ROUTE).await;
    let browser = Browser::start().await;
    sign_in(&stack, &browser, "/", "bigcorp").await;
    // Re-planted as host-only cookies, as `__Host-` requires.
    let cookies: Vec<CookieInfo> = session_cookies(&browser)
        .await
        .into_iter()
        .map(|mut c| {
            c.domain = String::new();
            c
        })
        .collect();
    assert!(cookies.len() >= 2, "a chunked session: {cookies:?}");
    let (first, second) = (cookies[0].clone(), cookies[1].clone());
    let (count, sealed) = first.value.split_once('.').expect("count.sealed");
    let mut flipped = sealed.as_bytes().to_vec();
    flipped[30] = if flipped[30] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let foreign = {
        // A session sealed by another gateway (another secret) for the same user.
        let other = Stack::start_with_secret(IdpOptions::default(), 9, "", APP_ROUTE).await;
        let (jar, _) = other.sign_in("alice", "/").await;
        jar.get("__Host-portcullis").expect("a session").to_string()
    };
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "tampered",
            vec![(first.name.clone(), format!("{count}.{flipped}"))],
        ),
        (
            "truncated",
            vec![(
                second.name.clone(),
                second.value[..second.value.len() / 2].to_string(),
            )],
        ),
        (
            "re-ordered chunks",
            vec![
                (first.name.clone(), format!("{count}.{}", second.value)),
                (second.name.clone(), sealed.to_string()),
            ],
        ),
        ("foreign key", vec![(first.name.clone(), foreign)]),
    ];
    for (case, changes) in cases {
        // On the gateway's origin (a public endpoint), re-plant the signed-in cookies, then
        // damage them.
        browser.goto(&stack.browser_url("/oauth2/jwks.json")).await;
        browser.delete_all_cookies().await;
        for c in &cookies {
            browser.set_cookie(c).await;
        }
        for (name, value) in &changes {
            let mut c = cookies
                .iter()
                .find(|c| c.name == *name)
                .expect("a known cookie")
                .clone();
            c.value = value.clone();
            browser.set_cookie(&c).await;
            assert_eq!(
                browser.cookie(name).await.map(|c| c.value),
                Some(value.clone()),
                "{case}: the damaged cookie is in place"
            );
        }
        // The browser still holds the provider's session, so "sign in again" is a round trip
        // through the provider (single sign-on) that ends on the page with a new session.
        let before = sign_ins(&stack).await;
        browser.goto(&stack.browser_url("/private")).await;
        browser
            .wait_for_url_prefix(&stack.browser_url("/private"), WAIT)
            .await;
        assert_eq!(
            sign_ins(&stack).await,
            before + 1,
            "{case}: the damaged session was refused and a new sign-in made"
        );
        assert_eq!(
            header(&seen(&browser).await, "x-forwarded-user").as_deref(),
            Some("bigcorp"),
            "{case}"
        );
    }
    // And with the cookies intact, the session still works, without a new sign-in.
    let before = sign_ins(&stack).await;
    browser.delete_all_cookies().await;
    browser.goto(&stack.browser_url("/oauth2/jwks.json")).await;
    for c in &cookies {
        browser.set_cookie(c).await;
    }
    browser.goto(&stack.browser_url("/private")).await;
    assert_eq!(
        header(&seen(&browser).await, "x-forwarded-user").as_deref(),
        Some("bigcorp")
    );
    assert_eq!(sign_ins(&stack).await, before);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_refresh_and_sign_out_ends_both_sessions() {
    let options = IdpOptions {
        access_token_ttl: Duration::from_secs(6),
        ..IdpOptions::default()
    };
    let routes = format!("{APP_ROUTE}    access_token: X-Access-Token\n");
    let stack = Stack::start(options, "  refresh_before: 4s\n", &routes).await;
    let browser = Browser::start().await;
    sign_in(&stack, &browser, "/", "alice").await;
    let before = header(&seen(&browser).await, "x-access-token").expect("a token");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    browser.goto(&stack.browser_url("/again")).await;
    assert_eq!(browser.current_url().await, stack.browser_url("/again"));
    let after = header(&seen(&browser).await, "x-access-token").expect("a token");
    assert_ne!(before, after, "refreshed before forwarding");
    browser.goto(&stack.browser_url("/third")).await;
    assert_eq!(
        header(&seen(&browser).await, "x-access-token").as_deref(),
        Some(after.as_str()),
        "the browser keeps the renewed session"
    );

    // Sign out: the gateway's confirmation, then the provider's.
    browser.goto(&stack.browser_url("/oauth2/sign_out")).await;
    browser.click("#sign-out").await;
    // The form's POST and the redirect may still be in flight when the click returns.
    let at = browser
        .wait_for_url_prefix(&stack.idp.url("/session/end"), WAIT)
        .await;
    assert!(at.starts_with(&stack.idp.url("/session/end")), "{at}");
    assert!(
        session_cookies(&browser).await.is_empty(),
        "signed out here"
    );
    browser.click("button[name=logout][value=yes]").await;
    // The provider sends the browser back to the app (post_logout_redirect_uri), which — signed
    // out here and at the provider — starts a new sign-in: the login form, not single sign-on.
    let at = browser
        .wait_for_url("a new sign-in at the provider", WAIT, |u| {
            u.contains("/interaction/")
        })
        .await;
    assert!(at.starts_with(stack.idp.issuer()), "{at}");
    assert!(browser.exists("form input[name=login]").await);
    let logs = stack.idp.logs();
    assert!(
        logs.contains("POST /session/end/confirm 303")
            || logs.contains("POST /session/end/confirm 302"),
        "{logs}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_from_another_browser_and_open_redirects_are_refused() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    // An attacker starts a sign-in and gets a valid callback URL for their own account...
    let mut attacker = Jar::default();
    let start = stack.get(&mut attacker, "/", NAVIGATION).await;
    let planted = stack
        .idp
        .sign_in(start.header("location").expect("Location"), "mallory")
        .await
        .replacen("127.0.0.1", "app.localhost", 1);
    // ...and makes the victim's browser open it: refused, no session for the victim.
    let browser = Browser::start().await;
    browser.goto(&planted).await;
    assert!(
        browser
            .page_text()
            .await
            .contains("not started in this browser")
    );
    assert!(session_cookies(&browser).await.is_empty());

    // Return URLs: whatever `rd` says, the browser ends on the gateway's own origin.
    sign_in(&stack, &browser, "/", "alice").await;
    for rd in [
        "//evil.example/",
        "/\\evil.example/",
        "/%2F%2Fevil.example/",
        "https:evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        browser
            .goto(&stack.browser_url(&format!("/oauth2/start?rd={encoded}")))
            .await;
        // Single sign-on at the provider: straight back through the callback.
        let landed = browser
            .wait_for_url("back from the provider", WAIT, |u| {
                !u.contains("/oauth2/") && !u.starts_with("http://127.0.0.1")
            })
            .await;
        assert_eq!(landed, stack.browser_url("/"), "rd={rd}");
    }
    browser.close().await;
}

//! A session's life after sign-in: refresh (once under concurrency), refresh refused, idle
//! timeout, sign-out here and at the provider, rules re-applied on reload, the signed identity
//! assertion, and the return-URL checks.

use std::time::Duration;

use futures_util::future::join_all;
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};

use super::{APP_ROUTE, FETCH, Jar, NAVIGATION, Stack, config};
use crate::support::echo::Echoed;
use crate::support::idp::{IdpBrowser, IdpOptions, query_param};

fn token_calls(stack: &Stack) -> usize {
    stack
        .idp
        .logs()
        .lines()
        .filter(|l| l.contains("POST /token "))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_refresh_once_under_concurrency_and_end_when_refused() {
    let options = IdpOptions {
        access_token_ttl: Duration::from_secs(6),
        ..IdpOptions::default()
    };
    let routes = format!("{APP_ROUTE}    access_token: X-Access-Token\n");
    let mut stack = Stack::start(options, "  refresh_before: 4s\n", &routes).await;
    let (jar, _) = stack.sign_in("alice", "/").await;
    assert_eq!(token_calls(&stack), 1, "the code exchange");
    let first = stack.get(&mut jar.clone(), "/", FETCH).await;
    let old_token = Echoed::parse(&first.body, "first").values("x-access-token");
    assert_eq!(old_token.len(), 1);

    // Within refresh_before of expiry: 8 concurrent requests with the same cookie.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let requests = (0..8).map(|_| {
        let mut jar = jar.clone();
        let stack = &stack;
        async move { stack.get(&mut jar, "/", FETCH).await }
    });
    let responses = join_all(requests).await;
    let mut renewed = None;
    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.text());
        let token = Echoed::parse(&r.body, "concurrent").values("x-access-token");
        assert_ne!(token, old_token, "the refreshed token is forwarded");
        if r.header("set-cookie").is_some() {
            renewed = Some(r);
        }
    }
    assert_eq!(
        token_calls(&stack),
        2,
        "one refresh for 8 requests:\n{}",
        stack.idp.logs()
    );
    let metrics = stack.gateway.metrics().await;
    assert!(
        metrics
            .contains(r#"portcullis_session_refreshes_total{provider="corp",result="success"} 1"#),
        "{metrics}"
    );
    let mut renewed_jar = jar.clone();
    renewed_jar.update(renewed.expect("a response carries the renewed session"));
    let later = stack.get(&mut renewed_jar, "/", FETCH).await;
    assert_eq!(later.status, 200);

    // The provider forgets every grant (restart, in-memory storage): the next refresh is refused,
    // and the session ends — a navigation signs in again, an API call gets 401.
    stack.idp.restart().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let api = stack.get(&mut renewed_jar.clone(), "/", FETCH).await;
    assert_eq!(api.status, 401, "{}", api.text());
    let nav = stack.get(&mut renewed_jar.clone(), "/", NAVIGATION).await;
    assert_eq!(nav.status, 302);
    assert!(
        nav.header("location")
            .is_some_and(|l| l.starts_with(stack.idp.issuer()))
    );
}

/// A response that carries the gateway's session cookie is never left cacheable by shared
/// caches (one user's Set-Cookie replayed to others), whatever the backend said; one without
/// keeps the backend's caching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_session_cookie_is_never_on_a_shared_cacheable_response() {
    let stack = Stack::start(IdpOptions::default(), "  idle_timeout: 4s\n", APP_ROUTE).await;
    let (mut jar, _) = stack.sign_in("alice", "/").await;
    let mut with_cookie = 0;
    let mut without_cookie = 0;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = stack.get(&mut jar, "/page?cache=public", FETCH).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let cache = r.header("cache-control").unwrap_or_default().to_owned();
        if r.header("set-cookie").is_some() {
            with_cookie += 1;
            assert!(
                cache.starts_with("private")
                    && cache.contains("no-cache=\"Set-Cookie\"")
                    && !cache.contains("public")
                    && !cache.contains("s-maxage"),
                "a touched session's response must be private: {cache:?}"
            );
        } else {
            without_cookie += 1;
            assert_eq!(
                cache, "public, max-age=600, s-maxage=600",
                "untouched answers keep it"
            );
        }
    }
    assert!(
        with_cookie > 0 && without_cookie > 0,
        "{with_cookie} touched, {without_cookie} not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end() {
    let stack = Stack::start(IdpOptions::default(), "  idle_timeout: 4s\n", APP_ROUTE).await;
    let (mut jar, _) = stack.sign_in("alice", "/").await;
    // Used every second: stays alive past the idle timeout (the cookie is touched).
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let r = stack.get(&mut jar, "/", FETCH).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let r = stack.get(&mut jar, "/", FETCH).await;
    assert_eq!(r.status, 401, "idle for longer than idle_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_ends_the_session_here_and_at_the_provider() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let mut provider = IdpBrowser::default();
    let (mut jar, _) = stack.sign_in_with(&mut provider, "alice", "/").await;
    assert!(provider.has_cookie("_session"));

    // GET never signs out: it shows a form.
    let page = stack
        .get(&mut jar, "/oauth2/sign_out?rd=/bye", NAVIGATION)
        .await;
    assert_eq!(page.status, 200);
    let html = page.text();
    let csrf = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a csrf field")
        .to_string();
    assert!(jar.get("__Host-portcullis").is_some());

    // A cross-site POST is refused, with or without a guessed token.
    for (headers, body) in [
        (vec![("Sec-Fetch-Site", "cross-site")], "rd=/".to_string()),
        (vec![("Origin", "https://evil.example")], "rd=/".to_string()),
        (vec![], "rd=/&csrf=forged".to_string()),
    ] {
        let r = stack
            .send(&mut jar, "POST", "/oauth2/sign_out", &headers, &body)
            .await;
        assert_eq!(r.status, 403, "{headers:?} {body}: {}", r.text());
        assert!(jar.get("__Host-portcullis").is_some());
    }

    // The form's own POST (no fetch metadata, the token): signed out, sent to the provider.
    let r = stack
        .send(
            &mut jar,
            "POST",
            "/oauth2/sign_out",
            &[],
            &format!("rd=%2F&csrf={csrf}"),
        )
        .await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert!(jar.get("__Host-portcullis").is_none(), "{:?}", jar.names());
    let location = r.header("location").expect("Location").to_string();
    assert!(
        location.starts_with(&stack.idp.url("/session/end")),
        "{location}"
    );
    let after = format!("http://{}/", stack.gateway.addr());
    assert_eq!(
        query_param(&location, "post_logout_redirect_uri").as_deref(),
        Some(after.as_str())
    );
    let hint = query_param(&location, "id_token_hint").expect("id_token_hint");
    let client_id = query_param(&location, "client_id").expect("client_id");
    let landed = stack
        .idp
        .end_session(
            &mut provider,
            &[
                ("id_token_hint", &hint),
                ("client_id", &client_id),
                ("post_logout_redirect_uri", &after),
            ],
        )
        .await;
    assert_eq!(landed, after, "the provider sends the browser back");
    assert!(
        !provider.has_cookie("_session"),
        "the provider's session ended"
    );

    // Signed out: the app is closed again.
    let r = stack.get(&mut jar, "/", FETCH).await;
    assert_eq!(r.status, 401);
    // Sign-out with Sec-Fetch-Site: same-origin works too (a fetch() from the app's page).
    let (mut jar, _) = stack.sign_in("alice", "/").await;
    let r = stack.sign_out(&mut jar).await;
    assert_eq!(r.status, 302);
    assert!(jar.get("__Host-portcullis").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_apply_to_sessions_and_a_reload_applies_at_once() {
    let route = |group: &str| {
        format!(
            "  - name: admin
    match: {{path_prefix: /admin}}
    upstream: app
    auth: session
    provider: corp
    allow:
      - {{groups: [{group}]}}
{APP_ROUTE}"
        )
    };
    let stack = Stack::start(IdpOptions::default(), "", &route("admins")).await;
    let (mut jar, _) = stack.sign_in("alice", "/").await;
    let page = stack.get(&mut jar, "/admin", NAVIGATION).await;
    assert_eq!(page.status, 403);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    let api = stack.get(&mut jar, "/admin", FETCH).await;
    assert_eq!(api.status, 403);
    assert_eq!(api.json("403")["error"], "forbidden");
    assert_eq!(stack.backend.count(), 0);

    // alice is in `staff`: a reload that admits staff opens /admin to her existing session.
    let rest = config(stack.idp.issuer(), &stack.backend, 7, "", &route("staff"));
    stack.gateway.rewrite_config(&rest);
    stack.gateway.reload();
    let mut opened = false;
    for _ in 0..50 {
        if stack.get(&mut jar, "/admin", FETCH).await.status == 200 {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(opened, "the reload admits the session");
    // And a reload that removes her group closes it again, without signing out.
    stack.gateway.rewrite_config(&config(
        stack.idp.issuer(),
        &stack.backend,
        7,
        "",
        &route("admins"),
    ));
    stack.gateway.reload();
    let mut closed = false;
    for _ in 0..50 {
        if stack.get(&mut jar, "/admin", FETCH).await.status == 403 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed);
    assert_eq!(stack.get(&mut jar, "/", FETCH).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_assertion_verifies_against_the_published_keys() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let rest = config(stack.idp.issuer(), &stack.backend, 7, "", APP_ROUTE).replace(
        "identity:\n",
        "identity:\n  assertion: X-Portcullis-Assertion\n",
    );
    stack.gateway.rewrite_config(&rest);
    stack.gateway.reload();
    let (mut jar, _) = stack.sign_in("alice", "/").await;
    let mut assertion = None;
    for _ in 0..50 {
        let r = stack
            .get(&mut jar, "/", &[("X-Portcullis-Assertion", "forged")])
            .await;
        assert_eq!(r.status, 200);
        let values = Echoed::parse(&r.body, "app").values_any_spelling("x-portcullis-assertion");
        if values.first().is_some_and(|v| v != "forged") {
            assertion = values.first().cloned();
            break;
        }
        assert!(
            values.is_empty(),
            "a spoofed assertion never passes: {values:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let assertion = assertion.expect("the reload turns assertions on");
    let jwks = stack
        .get(&mut Jar::default(), "/oauth2/jwks.json", &[])
        .await;
    assert_eq!(jwks.status, 200);
    let set: JwkSet = serde_json::from_slice(&jwks.body).expect("a JWKS");
    let header = jsonwebtoken::decode_header(&assertion).expect("a JWT");
    let jwk = set
        .find(header.kid.as_deref().expect("kid"))
        .expect("published");
    let key = DecodingKey::from_jwk(jwk).expect("a key");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["app"]);
    validation.set_issuer(&["portcullis"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&assertion, &key, &validation)
        .expect("the assertion verifies");
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims["email"], "alice@corp.example");
    assert_eq!(data.claims["groups"], serde_json::json!(["staff"]));
    let exp = data.claims["exp"].as_u64().expect("exp");
    let iat = data.claims["iat"].as_u64().expect("iat");
    assert!(exp - iat <= 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_urls_never_leave_for_another_site() {
    let stack = Stack::start(
        IdpOptions::default(),
        "  allowed_redirect_hosts: [\"*.corp.example\"]\n",
        APP_ROUTE,
    )
    .await;
    let cases = [
        ("/orders?x=1", "/orders?x=1"),
        ("https://app.corp.example/x", "https://app.corp.example/x"),
        ("//evil.example", "/"),
        ("///evil.example", "/"),
        ("/\\evil.example", "/"),
        ("\\/evil.example", "/"),
        ("/%2F%2Fevil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("https:evil.example", "/"),
        ("https://evil.example", "/"),
        ("https://corp.example.evil.example/", "/"),
        ("https://app.corp.example@evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/%09/evil.example", "/"),
        ("evil.example", "/"),
    ];
    for (rd, expected) in cases {
        let mut jar = Jar::default();
        let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let start = stack
            .get(&mut jar, &format!("/oauth2/start?rd={encoded}"), NAVIGATION)
            .await;
        assert_eq!(start.status, 302, "{rd}: {}", start.text());
        let back = stack
            .idp
            .sign_in(start.header("location").expect("Location"), "alice")
            .await;
        let done = stack.get(&mut jar, &back, NAVIGATION).await;
        assert_eq!(done.status, 302, "{rd}: {}", done.text());
        assert_eq!(done.header("location"), Some(expected), "rd={rd}");
    }
    // The same checks on sign-out.
    let r = stack
        .get(
            &mut Jar::default(),
            "/oauth2/sign_out?rd=//evil.example",
            NAVIGATION,
        )
        .await;
    assert_eq!(r.header("location"), Some("/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_ends_cookie_sessions_on_this_instance() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let mut provider = IdpBrowser::default();
    let (mut jar, _) = stack.sign_in_with(&mut provider, "alice", "/").await;
    assert_eq!(stack.get(&mut jar, "/", FETCH).await.status, 200);
    let (mut other, _) = stack.sign_in("bob", "/").await;
    // alice ends her session at the provider, which tells the gateway.
    stack.idp.end_session(&mut provider, &[]).await;
    let mut ended = false;
    for _ in 0..50 {
        if stack.get(&mut jar.clone(), "/", FETCH).await.status == 401 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ended,
        "the session survived the back-channel logout:\n{}",
        stack.idp.logs()
    );
    assert_eq!(
        stack.get(&mut other, "/", FETCH).await.status,
        200,
        "bob is not touched"
    );
    // The event names who was signed out, and by which endpoint.
    let stderr = stack.gateway.stderr();
    let event = stderr
        .lines()
        .find(|l| l.contains("back-channel logout (this instance)"))
        .unwrap_or_else(|| panic!("no back-channel logout line:\n{stderr}"));
    assert!(event.contains("user=alice"), "{event}");
    assert!(event.contains("route=\"backchannel_logout\""), "{event}");
    // alice may sign in again.
    let (mut again, _) = stack.sign_in("alice", "/").await;
    assert_eq!(stack.get(&mut again, "/", FETCH).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_copied_before_sign_out_is_refused_after_it() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let (mut jar, _) = stack.sign_in("alice", "/").await;
    let copy = jar.clone();
    let r = stack.sign_out(&mut jar).await;
    assert_eq!(r.status, 302);
    let replayed = stack.get(&mut copy.clone(), "/", FETCH).await;
    assert_eq!(replayed.status, 401, "{}", replayed.text());
}

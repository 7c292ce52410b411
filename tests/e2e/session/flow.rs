//! The authorization-code flow and the session cookie, played over HTTP against the real
//! provider (its own login form) — every assertion about what went over the wire.

use std::time::Duration;

use super::{APP_ROUTE, FETCH, Jar, NAVIGATION, Stack};
use crate::support::echo::Echoed;
use crate::support::idp::{IdpOptions, query_param};

fn attributes_of<'a>(response: &'a crate::support::RawResponse, prefix: &str) -> Vec<&'a str> {
    response
        .headers
        .iter()
        .filter(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with(prefix))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_lands_on_the_deep_link_with_identity_headers() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let mut jar = Jar::default();
    let start = stack
        .get(&mut jar, "/orders/42?tab=items", NAVIGATION)
        .await;
    assert_eq!(start.status, 302, "{}", start.text());
    assert_eq!(stack.backend.count(), 0, "nothing reaches the app unsigned");
    let location = start.header("location").expect("Location").to_string();
    let url = |name: &str| query_param(&location, name);
    assert_eq!(url("response_type").as_deref(), Some("code"));
    assert_eq!(url("client_id").as_deref(), Some("gateway"));
    assert_eq!(url("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(url("code_challenge").map(|c| c.len()), Some(43));
    assert!(url("nonce").is_some_and(|n| n.len() >= 32));
    let state = url("state").expect("a state");
    assert!(state.len() >= 43, "state {state}");
    assert_eq!(
        url("redirect_uri"),
        Some(format!("http://{}/oauth2/callback", stack.gateway.addr()))
    );
    let pending = attributes_of(&start, "__Host-portcullis_s_");
    assert_eq!(pending.len(), 1, "{:?}", start.headers);
    assert!(
        pending[0].ends_with("; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax"),
        "{}",
        pending[0]
    );

    let back = stack.idp.sign_in(&location, "alice").await;
    assert!(back.starts_with(&format!("http://{}/oauth2/callback?", stack.gateway.addr())));
    let done = stack.get(&mut jar, &back, NAVIGATION).await;
    assert_eq!(done.status, 302, "{}", done.text());
    assert_eq!(done.header("location"), Some("/orders/42?tab=items"));
    let session = attributes_of(&done, "__Host-portcullis=");
    assert_eq!(session.len(), 1, "{:?}", done.headers);
    assert!(session[0].contains("; Path=/; Max-Age="), "{}", session[0]);
    assert!(session[0].ends_with("; Secure; HttpOnly; SameSite=Lax"));
    assert_eq!(
        jar.names(),
        vec!["__Host-portcullis".to_string()],
        "the pending sign-in is cleared, the session set"
    );

    let app = stack
        .get(
            &mut jar,
            "/orders/42?tab=items",
            &[
                ("X-Forwarded-User", "mallory"),
                ("X_Forwarded_Email", "mallory@evil.example"),
            ],
        )
        .await;
    assert_eq!(app.status, 200, "{}", app.text());
    let seen = Echoed::parse(&app.body, "app");
    assert_eq!(seen.path, "/orders/42?tab=items");
    assert_eq!(seen.values_any_spelling("x-forwarded-user"), vec!["alice"]);
    assert_eq!(
        seen.values_any_spelling("x-forwarded-email"),
        vec!["alice@corp.example"]
    );
    assert_eq!(seen.values("x-forwarded-groups"), vec!["staff"]);
    assert_eq!(seen.values("x-forwarded-department"), vec!["eng"]);
    assert!(
        seen.values("cookie").is_empty(),
        "the gateway's cookies never reach the app: {:?}",
        seen.values("cookie")
    );
    assert!(seen.values("authorization").is_empty());

    // The session is reused: no new sign-in, no new cookie.
    let again = stack.get(&mut jar, "/", NAVIGATION).await;
    assert_eq!(again.status, 200);
    assert!(attributes_of(&again, "__Host-portcullis").is_empty());

    // The callback cannot be replayed: its pending sign-in is gone.
    let replay = stack.get(&mut jar, &back, NAVIGATION).await;
    assert_eq!(replay.status, 400, "{}", replay.text());
    assert!(replay.text().contains("not started in this browser"));

    // /userinfo shows who is signed in.
    let info = stack.get(&mut jar, "/oauth2/userinfo", FETCH).await;
    assert_eq!(info.status, 200, "{}", info.text());
    let info = info.json("userinfo");
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["email"], "alice@corp.example");
    assert_eq!(info["provider"], "corp");
    assert!(info.get("nonce").is_none() && info.get("aud").is_none());
    assert!(info.to_string().len() < 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_bound_to_the_browser_that_started_them() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    // Two tabs of one browser sign in at once, and finish in the other order.
    let mut jar = Jar::default();
    let first = stack.get(&mut jar, "/first", NAVIGATION).await;
    let second = stack.get(&mut jar, "/second", NAVIGATION).await;
    assert_eq!(jar.names().len(), 2, "{:?}", jar.names());
    let back_second = stack
        .idp
        .sign_in(second.header("location").expect("Location"), "alice")
        .await;
    let back_first = stack
        .idp
        .sign_in(first.header("location").expect("Location"), "alice")
        .await;
    let mut tab_two = jar.clone();
    let done = stack.get(&mut tab_two, &back_second, NAVIGATION).await;
    assert_eq!(done.header("location"), Some("/second"), "{}", done.text());
    let done = stack.get(&mut jar, &back_first, NAVIGATION).await;
    assert_eq!(done.header("location"), Some("/first"), "{}", done.text());

    // A callback carried to another browser (an attacker's code and state planted in a
    // victim's browser) is refused: that browser never started the sign-in.
    let mut attacker = Jar::default();
    let started = stack.get(&mut attacker, "/", NAVIGATION).await;
    let planted = stack
        .idp
        .sign_in(started.header("location").expect("Location"), "mallory")
        .await;
    let mut victim = Jar::default();
    let refused = stack.get(&mut victim, &planted, NAVIGATION).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(victim.get("__Host-portcullis").is_none());

    // A pending sign-in cookie with another state's tag does not open either.
    let mut forger = attacker.clone();
    let name = forger.names().remove(0);
    let value = forger.get(&name).expect("value").to_string();
    forger.remove(&name);
    forger.set("__Host-portcullis_s_AAAAAAAAAAAA", &value);
    let refused = stack.get(&mut forger, &planted, NAVIGATION).await;
    assert_eq!(refused.status, 400, "{}", refused.text());

    // The provider's refusal comes back as a page, not a session.
    let state = query_param(started.header("location").expect("Location"), "state").expect("state");
    let denied = stack
        .get(
            &mut attacker,
            &format!("/oauth2/callback?error=access_denied&state={state}"),
            NAVIGATION,
        )
        .await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    assert!(attacker.get("__Host-portcullis").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_sign_ins_are_bounded() {
    let stack = Stack::start(
        IdpOptions::default(),
        "  max_pending_sign_ins: 3\n",
        APP_ROUTE,
    )
    .await;
    let mut jar = Jar::default();
    let mut starts = Vec::new();
    for i in 0..6 {
        starts.push(stack.get(&mut jar, &format!("/tab{i}"), NAVIGATION).await);
        assert!(jar.names().len() <= 3, "{:?}", jar.names());
        // Pending sign-ins are ordered by their start second.
        if i % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(1_100)).await;
        }
    }
    assert_eq!(jar.names().len(), 3);
    // The newest still completes.
    let last = starts.pop().expect("a start");
    let back = stack
        .idp
        .sign_in(last.header("location").expect("Location"), "alice")
        .await;
    let done = stack.get(&mut jar, &back, NAVIGATION).await;
    assert_eq!(done.header("location"), Some("/tab5"), "{}", done.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_get_a_redirect_or_a_401() {
    let routes = format!(
        "{APP_ROUTE_API}{APP_ROUTE}",
        APP_ROUTE_API = "  - name: spa-api
    match: {path_prefix: /api}
    upstream: app
    auth: session_or_bearer
    provider: corp
    cors_origins: [\"https://spa.example.com\"]
  - name: forced
    match: {path_prefix: /forced}
    upstream: app
    auth: session
    provider: corp
    mode: browser
"
    );
    let stack = Stack::start(IdpOptions::default(), "", &routes).await;
    let mut jar = Jar::default();
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16);
    let cases: &[Case] = &[
        ("navigation", "/page", NAVIGATION, 302),
        ("fetch", "/page", FETCH, 401),
        ("curl", "/page", &[("Accept", "*/*")], 401),
        ("no accept", "/page", &[], 401),
        (
            "xhr",
            "/page",
            &[
                ("Accept", "text/html"),
                ("X-Requested-With", "XMLHttpRequest"),
            ],
            401,
        ),
        (
            "iframe",
            "/page",
            &[
                ("Accept", "text/html"),
                ("Sec-Fetch-Mode", "navigate"),
                ("Sec-Fetch-Dest", "iframe"),
            ],
            401,
        ),
        (
            "forced browser mode",
            "/forced/x",
            &[("Accept", "*/*")],
            302,
        ),
        ("api navigation", "/api/x", NAVIGATION, 302),
    ];
    for (case, path, headers, status) in cases {
        let response = stack.get(&mut jar, path, headers).await;
        assert_eq!(response.status, *status, "{case}: {}", response.text());
        if *status == 401 {
            let body = response.json(case);
            assert_eq!(body["error"], "unauthorized", "{case}");
            assert_eq!(response.header("content-type"), Some("application/json"));
        }
    }
    // A POST is never redirected (its body would be lost).
    let post = stack
        .send(&mut jar, "POST", "/page", NAVIGATION, "a=1")
        .await;
    assert_eq!(post.status, 401);

    // CORS: an allowed origin can read the 401; another cannot.
    let spa = stack
        .get(
            &mut jar,
            "/api/items",
            &[
                ("Origin", "https://spa.example.com"),
                ("Accept", "application/json"),
            ],
        )
        .await;
    assert_eq!(spa.status, 401);
    assert_eq!(
        spa.header("access-control-allow-origin"),
        Some("https://spa.example.com")
    );
    assert_eq!(spa.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        spa.header("www-authenticate"),
        Some(r#"Bearer realm="portcullis""#)
    );
    let evil = stack
        .get(
            &mut jar,
            "/api/items",
            &[
                ("Origin", "https://evil.example.com"),
                ("Accept", "application/json"),
            ],
        )
        .await;
    assert_eq!(evil.status, 401);
    assert_eq!(evil.header("access-control-allow-origin"), None);
    // session_or_bearer: a bearer token is judged as on a bearer route.
    let bad = stack
        .get(
            &mut jar,
            "/api/items",
            &[("Authorization", "Bearer not-a-token")],
        )
        .await;
    assert_eq!(bad.status, 401);
    assert!(
        bad.header("www-authenticate")
            .is_some_and(|c| c.contains("invalid_token"))
    );
    assert_eq!(stack.backend.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_cookies_mean_sign_in_again_never_an_error() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let (jar, _) = stack.sign_in("alice", "/").await;
    let value = jar.get("__Host-portcullis").expect("a session").to_string();
    let (count, sealed) = value.split_once('.').expect("count.sealed");
    let mut flipped = sealed.as_bytes().to_vec();
    flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let damaged = [
        ("tampered", format!("{count}.{flipped}")),
        (
            "truncated",
            format!("{count}.{}", &sealed[..sealed.len() / 2]),
        ),
        ("more chunks claimed", format!("3.{sealed}")),
        ("bad count", format!("x.{sealed}")),
        ("no count", sealed.to_string()),
        ("empty", String::new()),
        ("binary", "%00%ff".to_string()),
    ];
    for (case, value) in damaged {
        let mut broken = jar.clone();
        broken.set("__Host-portcullis", &value);
        let nav = stack.get(&mut broken, "/", NAVIGATION).await;
        assert_eq!(nav.status, 302, "{case}: {}", nav.text());
        assert!(
            attributes_of(&nav, "__Host-portcullis=")
                .iter()
                .any(|c| c.contains("Max-Age=0")),
            "{case}: the broken session cookie is cleared: {:?}",
            nav.headers
        );
        let api = stack.get(&mut broken, "/", FETCH).await;
        assert_eq!(api.status, 401, "{case}");
    }
    // Another gateway's secret: the cookie does not open there.
    let foreign = Stack::start_with_secret(IdpOptions::default(), 9, "", APP_ROUTE).await;
    let mut carried = Jar::default();
    carried.set("__Host-portcullis", &value);
    let refused = foreign.get(&mut carried, "/", FETCH).await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    // A gateway whose secret was rotated (the old one listed in `old_secrets`) still opens it.
    let old = super::secret(7);
    let rotated = Stack::start_with_secret(
        IdpOptions::default(),
        9,
        &format!("  old_secrets: [\"{old}\"]\n"),
        APP_ROUTE,
    )
    .await;
    let mut carried = Jar::default();
    carried.set("__Host-portcullis", &value);
    let opened = rotated.get(&mut carried, "/", FETCH).await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    assert_eq!(stack.backend.count(), 0);
}

/// `portcullis explain` with the request's `Cookie`.
fn explain(config: &std::path::Path, url: &str, cookie: &str) -> (i32, String) {
    crate::support::gateway::explain(config, url, &format!("Cookie: {cookie}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_opens_the_session_cookie_without_showing_its_tokens() {
    let stack = Stack::start(IdpOptions::default(), "", APP_ROUTE).await;
    let (jar, _) = stack.sign_in("alice", "/").await;
    let config = stack.gateway.config_path();
    let (code, out) = explain(&config, "http://app.test/orders", &jar.header());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("provider `corp`, user alice"), "{out}");
    assert!(out.contains("verdict:   proxied"), "{out}");
    // Times for people: RFC 3339 plus how far away.
    let line = |label: &str| {
        out.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} line:\n{out}"))
            .to_string()
    };
    let signed_in = line("signed in:");
    assert!(
        signed_in.contains("Z (") && (signed_in.ends_with(" ago)") || signed_in.ends_with("(now)")),
        "{signed_in}"
    );
    assert!(line("ends:").contains("Z (in 1"), "{out}");
    assert!(line("idle ends:").contains("Z (in "), "{out}");
    assert!(
        !out.contains("Some(") && !out.contains("Session"),
        "no Debug shapes:\n{out}"
    );
    let session = jar.get("__Host-portcullis").expect("a session");
    assert!(
        !out.contains(&session[2..40]),
        "the cookie is not echoed: {out}"
    );
    let mut damaged = jar.clone();
    damaged.set("__Host-portcullis", "1.garbage");
    let (code, out) = explain(&config, "http://app.test/orders", &damaged.header());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not open"), "{out}");
}

//! Replays on the sign-in flow: the callback replayed, carried to another browser, its state
//! tampered with; an authorization code spent twice; the nonce and the PKCE challenge changed at
//! the provider (so the ID token or the code no longer belongs to this browser's sign-in); a
//! planted session surviving sign-in; and, with the Redis store, a captured session cookie used
//! after sign-out.
//!
//! Safe outcome: no session is created (no session cookie set, the backend not reached) and the
//! answer is a 4xx page (or the provider-unreachable 502), never a 500.

use super::{Verdicts, session_stack};
use crate::session::{APP_ROUTE, FETCH, Jar, NAVIGATION, Stack};
use crate::support::RawResponse;
use crate::support::echo::Echoed;
use crate::support::idp::{IdpBrowser, IdpOptions, query_param};
use crate::support::redis::RedisServer;

const SESSION: &str = "__Host-portcullis";
const BCP_CODE: &str = "RFC 9700 §4.5 (authorization code injection and replay)";
const BCP_CSRF: &str = "RFC 9700 §4.7 (CSRF on the redirect URI: state bound to the browser)";

/// `url` with query parameter `name` replaced by `value` (removed when `None`).
fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut parsed = url::Url::parse(url).expect("an absolute URL");
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(n, _)| n != name)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (n, v) in &pairs {
            query.append_pair(n, v);
        }
        if let Some(v) = value {
            query.append_pair(name, v);
        }
    }
    parsed.to_string()
}

/// The gateway-relative form of a callback URL.
fn relative(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("an absolute URL");
    format!("{}?{}", parsed.path(), parsed.query().unwrap_or_default())
}

/// A refused completion: 4xx (or 502), no session cookie set.
fn refused(response: &RawResponse, jar: &Jar) -> Result<(), String> {
    let set_session = response.headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("set-cookie")
            && v.starts_with(&format!("{SESSION}="))
            && !v.contains("Max-Age=0")
    });
    if set_session || jar.get(SESSION).is_some() {
        return Err(format!(
            "a session was set: {} {:?}",
            response.status, response.headers
        ));
    }
    if !(400..500).contains(&response.status) && response.status != 502 {
        return Err(format!(
            "want a 4xx page, got {} {}",
            response.status,
            response.text()
        ));
    }
    Ok(())
}

/// Starts a sign-in in `jar`: the provider URL the gateway redirected to.
async fn start(stack: &Stack, jar: &mut Jar, path: &str) -> String {
    let r = stack.get(jar, path, NAVIGATION).await;
    assert_eq!(r.status, 302, "{}", r.text());
    r.header("location").expect("a Location").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_codes_states_and_nonces_cannot_be_replayed() {
    let stack = session_stack(IdpOptions::default(), "", APP_ROUTE, |c| c).await;
    let mut provider = IdpBrowser::default();
    let mut verdicts = Verdicts::new("replay");
    let before = stack.backend.count();

    // A completed sign-in, its callback replayed in the same browser.
    let mut victim = Jar::default();
    let to_provider = start(&stack, &mut victim, "/first").await;
    let callback = stack
        .idp
        .sign_in_with(&mut provider, &to_provider, "alice")
        .await;
    let done = stack.get(&mut victim, &callback, NAVIGATION).await;
    assert_eq!(done.status, 302, "{}", done.text());
    assert!(victim.get(SESSION).is_some());
    let mut replayed = victim.clone();
    replayed.remove(SESSION);
    let r = stack.get(&mut replayed, &callback, NAVIGATION).await;
    verdicts.record(
        "callback replayed in the same browser",
        BCP_CODE,
        refused(&r, &replayed),
    );

    // The same callback in a browser that never started a sign-in.
    let mut other = Jar::default();
    let r = stack.get(&mut other, &callback, NAVIGATION).await;
    verdicts.record(
        "callback carried to another browser",
        BCP_CSRF,
        refused(&r, &other),
    );

    // Another browser's pending sign-in with this browser's callback (states differ).
    let mut attacker = Jar::default();
    let attacker_start = start(&stack, &mut attacker, "/").await;
    let attacker_callback = stack
        .idp
        .sign_in_with(&mut IdpBrowser::default(), &attacker_start, "mallory")
        .await;
    let mut pending_victim = Jar::default();
    let _ = start(&stack, &mut pending_victim, "/orders").await;
    let r = stack
        .get(&mut pending_victim.clone(), &attacker_callback, NAVIGATION)
        .await;
    verdicts.record(
        "attacker's callback in a victim browser with its own pending sign-in",
        "RFC 6749 §10.12 (login CSRF); RFC 9700 §4.7",
        refused(&r, &pending_victim),
    );

    // The right browser, but the state tampered with, missing, or the code missing.
    let mut jar = Jar::default();
    let to_provider = start(&stack, &mut jar, "/second").await;
    let callback = stack
        .idp
        .sign_in_with(&mut provider, &to_provider, "alice")
        .await;
    let state = query_param(&callback, "state").expect("a state");
    let mut flipped = state.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for (name, url, source) in [
        (
            "state tampered with",
            with_param(&callback, "state", Some(&flipped)),
            BCP_CSRF,
        ),
        (
            "state missing",
            with_param(&callback, "state", None),
            BCP_CSRF,
        ),
        (
            "state of 10 KB",
            with_param(&callback, "state", Some(&"A".repeat(10_000))),
            BCP_CSRF,
        ),
        (
            "code missing",
            with_param(&callback, "code", None),
            BCP_CODE,
        ),
        (
            "iss naming another issuer",
            with_param(&callback, "iss", Some("https://evil.example")),
            "RFC 9207 (iss in the authorization response); RFC 9700 §4.4 (mix-up attacks)",
        ),
    ] {
        let mut copy = jar.clone();
        let r = stack.get(&mut copy, &relative(&url), NAVIGATION).await;
        verdicts.record(name, source, refused(&r, &copy));
    }
    // The untouched callback still completes: the refusals above were about what changed.
    let r = stack.get(&mut jar.clone(), &callback, NAVIGATION).await;
    assert_eq!(r.status, 302, "the control callback: {}", r.text());

    // An authorization code spent once, presented again with a fresh state of this browser.
    let code = query_param(&callback, "code").expect("a code");
    let mut jar = Jar::default();
    let to_provider = start(&stack, &mut jar, "/third").await;
    let fresh = stack
        .idp
        .sign_in_with(&mut provider, &to_provider, "alice")
        .await;
    let reused = with_param(&fresh, "code", Some(&code));
    let r = stack.get(&mut jar, &relative(&reused), NAVIGATION).await;
    verdicts.record(
        "authorization code replayed under a fresh state",
        BCP_CODE,
        refused(&r, &jar),
    );

    // The nonce changed at the provider: the ID token answers another sign-in.
    for (name, nonce, source) in [
        (
            "ID token with another nonce",
            Some("attacker-chosen-nonce-0123456789abcdef"),
            "OpenID Connect Core 1.0 §3.1.3.7 step 11, §15.5.2 (nonce binds the ID token to the browser's sign-in)",
        ),
        (
            "ID token without a nonce",
            None,
            "OpenID Connect Core 1.0 §3.1.3.7 step 11 (the nonce must be present and match)",
        ),
    ] {
        let mut jar = Jar::default();
        let to_provider = start(&stack, &mut jar, "/nonce").await;
        let altered = with_param(&to_provider, "nonce", nonce);
        let back = stack
            .idp
            .sign_in_with(&mut provider, &altered, "alice")
            .await;
        let r = stack.get(&mut jar, &back, NAVIGATION).await;
        verdicts.record(name, source, refused(&r, &jar));
    }

    // The PKCE challenge changed at the provider: the code is bound to the attacker's verifier.
    let mut jar = Jar::default();
    let to_provider = start(&stack, &mut jar, "/pkce").await;
    let altered = with_param(
        &to_provider,
        "code_challenge",
        Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
    );
    let back = stack
        .idp
        .sign_in_with(&mut provider, &altered, "alice")
        .await;
    let r = stack.get(&mut jar, &back, NAVIGATION).await;
    verdicts.record(
        "code bound to another PKCE challenge",
        "RFC 7636 §1 (code interception); RFC 9700 §4.5.3.1 (PKCE against code injection)",
        refused(&r, &jar),
    );

    let reached = stack.backend.count() - before;
    verdicts.record(
        "no refused sign-in reached the backend",
        "every source above",
        if reached == 0 {
            Ok(())
        } else {
            Err(format!("{reached} request(s) reached the backend"))
        },
    );

    // Session fixation: a session planted in the victim's browser (mallory's) does not survive
    // the victim's own sign-in (through /oauth2/start, as a sign-in link would), and the victim
    // is not signed in as mallory afterwards.
    let (planted, _) = stack.sign_in("mallory", "/").await;
    let mut victim = planted.clone();
    let to_provider = start(&stack, &mut victim, "/oauth2/start?rd=%2Ffixation").await;
    let back = stack
        .idp
        .sign_in_with(&mut IdpBrowser::default(), &to_provider, "alice")
        .await;
    let done = stack.get(&mut victim, &back, NAVIGATION).await;
    let verdict = if done.status != 302 {
        Err(format!("the victim's sign-in failed: {}", done.status))
    } else if victim.get(SESSION) == planted.get(SESSION) {
        Err("the planted session cookie survived the sign-in".to_string())
    } else {
        let r = stack.get(&mut victim, "/whoami", FETCH).await;
        let users = if r.status == 200 {
            Echoed::parse(&r.body, "app").values("x-forwarded-user")
        } else {
            Vec::new()
        };
        if users == ["alice"] {
            Ok(())
        } else {
            Err(format!(
                "after sign-in the victim is {users:?} ({})",
                r.status
            ))
        }
    };
    verdicts.record(
        "a planted session does not survive sign-in",
        "CWE-384 (session fixation); OWASP Session Management Cheat Sheet (renew the session at sign-in)",
        verdict,
    );
    // Why each sign-in ended as it did, by the gateway's own count.
    let metrics = stack.gateway.metrics().await;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("portcullis_sign_ins_total"))
    {
        eprintln!("replay: {line}");
    }
    verdicts.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_session_cookie_is_dead_after_sign_out_with_redis() {
    let redis = RedisServer::start().await;
    let sessions = format!(
        "  store: redis\n  redis:\n    url: \"{}\"\n    timeout: 500ms\n",
        redis.url()
    );
    let stack = session_stack(IdpOptions::default(), &sessions, APP_ROUTE, |c| c).await;
    let mut verdicts = Verdicts::new("replay (redis)");
    let (mut jar, _) = stack.sign_in("alice", "/").await;
    let captured = jar.clone();
    assert_eq!(stack.get(&mut jar.clone(), "/", FETCH).await.status, 200);
    let out = stack.sign_out(&mut jar).await;
    assert_eq!(out.status, 302, "{}", out.text());
    let before = stack.backend.count();
    let r = stack.get(&mut captured.clone(), "/", FETCH).await;
    verdicts.record(
        "session cookie captured before sign-out, replayed after",
        "oauth2-proxy GHSA-f24x-5g9q-753f / CVE-2026-34454 (a signed-out session still usable)",
        if r.status == 401 && stack.backend.count() == before {
            Ok(())
        } else {
            Err(format!("want 401, got {} {}", r.status, r.text()))
        },
    );
    // A ticket cookie forged from the captured one (one byte changed) opens nothing either.
    let value = captured.get(SESSION).expect("a ticket cookie").to_string();
    let mut bytes = value.into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let mut forged = Jar::default();
    forged.set(SESSION, &String::from_utf8(bytes).expect("ascii"));
    let r = stack.get(&mut forged, "/", FETCH).await;
    verdicts.record(
        "forged ticket cookie",
        "mod_auth_openidc CVE-2021-32785 (server-side session keys from crafted cookies)",
        if r.status == 401 {
            Ok(())
        } else {
            Err(format!("want 401, got {} {}", r.status, r.text()))
        },
    );
    verdicts.finish();
}

//! Tampering with the sealed session cookies: chunks of a large session swapped, truncated,
//! dropped, duplicated, multiplied, mixed with another user's, renamed; counts that lie; floods
//! of cookies. Two users with sessions too large for one cookie (`bigcorp`, `bigmallory`) and one
//! small (`alice`).
//!
//! Safe outcome: "signed out" — 401 for an API call, a redirect to sign in (with the dead session
//! cookie cleared) for a navigation — never a 5xx and never another user's identity. Where the
//! damage leaves the owner's session intact (an ignored extra cookie), the owner's identity is
//! safe too.

use serde_json::json;

use super::{Verdicts, session_stack};
use crate::session::{APP_ROUTE, FETCH, Jar, NAVIGATION, Stack};
use crate::support::RawResponse;
use crate::support::echo::Echoed;
use crate::support::idp::IdpOptions;

const NAME: &str = "__Host-portcullis";

const SPLITTING: &str =
    "oauth2-proxy issue #482 'Proposal: Deprecation of cookie splitting' (split session cookies)";
const MIXING: &str =
    "mod_auth_openidc CVE-2021-32791 (static IV and AAD: sealed values interchangeable)";
const CRASH: &str = "mod_auth_openidc CVE-2021-32785 (crash on crafted session/cache input)";
const BOMB: &str =
    "Egor Homakov, 'Cookie Bomb or let's break the Internet' (2014): oversized cookies";
const PREFIX: &str = "RFC 6265bis §4.1.3.2 (__Host- prefix against cookie tossing from subdomains)";

#[derive(Debug, Clone, Copy)]
enum Want {
    /// Signed out: 401 (API), redirect to sign in (navigation).
    SignedOut,
    /// Either signed out, or the owner's own identity.
    OwnerOrSignedOut(&'static str),
}

/// The chunk cookies of a signed-in jar, in order.
fn chunks(jar: &Jar) -> Vec<(String, String)> {
    let mut names: Vec<String> = jar
        .names()
        .into_iter()
        .filter(|n| n == NAME || n.starts_with(&format!("{NAME}_")))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let v = jar.get(&n).expect("a cookie the jar named").to_string();
            (n, v)
        })
        .collect()
}

fn header(cookies: &[(String, String)]) -> String {
    cookies
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn judge(
    want: Want,
    api: &RawResponse,
    navigation: &RawResponse,
    sent_first: bool,
) -> Result<(), String> {
    for (kind, r) in [("API call", api), ("navigation", navigation)] {
        if r.status >= 500 {
            return Err(format!("{kind}: {} {}", r.status, r.text()));
        }
    }
    let user = |r: &RawResponse| {
        (r.status == 200).then(|| {
            Echoed::parse(&r.body, "app")
                .values_any_spelling("x-forwarded-user")
                .join(",")
        })
    };
    match want {
        Want::OwnerOrSignedOut(owner) => {
            for (kind, r) in [("API call", api), ("navigation", navigation)] {
                if let Some(u) = user(r)
                    && u != owner
                {
                    return Err(format!(
                        "{kind}: signed in as {u:?}, want {owner:?} or none"
                    ));
                }
            }
            if api.status != 200 && api.status != 401 && api.status != 400 && api.status != 431 {
                return Err(format!("API call: {} {}", api.status, api.text()));
            }
            Ok(())
        }
        Want::SignedOut => {
            // Oversized headers may be refused before any session is read (400/431): signed out.
            if ![401, 400, 431].contains(&api.status) {
                return Err(format!(
                    "API call: want 401, got {} {}",
                    api.status,
                    api.text()
                ));
            }
            if ![302, 400, 431].contains(&navigation.status) {
                return Err(format!(
                    "navigation: want a redirect to sign in, got {} {}",
                    navigation.status,
                    navigation.text()
                ));
            }
            let cleared = navigation.headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("set-cookie")
                    && v.starts_with(&format!("{NAME}="))
                    && v.contains("Max-Age=0")
            });
            if navigation.status == 302 && sent_first && !cleared {
                return Err(format!(
                    "the dead session cookie is not cleared: {:?}",
                    navigation.headers
                ));
            }
            Ok(())
        }
    }
}

async fn send(stack: &Stack, cookie: &str, headers: &[(&str, &str)]) -> RawResponse {
    let all = [headers, &[("Cookie", cookie)]].concat();
    stack.get(&mut Jar::default(), "/orders", &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_session_cookies_sign_out_never_crash_never_impersonate() {
    let mut accounts = serde_json::Map::new();
    for (user, team) in [("bigcorp", "readers"), ("bigmallory", "writers")] {
        let groups: Vec<String> = (0..150).map(|i| format!("team-{i:04}-{team}")).collect();
        accounts.insert(user.into(), json!({ "groups": groups }));
    }
    let stack = session_stack(
        IdpOptions {
            accounts,
            ..IdpOptions::default()
        },
        "",
        APP_ROUTE,
        |c| c,
    )
    .await;
    let (a, _) = stack.sign_in("bigcorp", "/").await;
    let (b, _) = stack.sign_in("bigmallory", "/").await;
    let (c, _) = stack.sign_in("alice", "/").await;
    let (a, b, c) = (chunks(&a), chunks(&b), chunks(&c));
    assert!(
        a.len() >= 2 && b.len() >= 2,
        "chunked sessions: {a:?} / {b:?}"
    );
    assert_eq!(c.len(), 1, "a one-cookie session: {c:?}");
    // The controls: each session opens as its owner.
    for (cookies, owner) in [(&a, "bigcorp"), (&b, "bigmallory"), (&c, "alice")] {
        let r = send(&stack, &header(cookies), FETCH).await;
        assert_eq!(r.status, 200, "{owner}: {}", r.text());
        assert_eq!(
            Echoed::parse(&r.body, owner).values("x-forwarded-user"),
            vec![owner.to_string()]
        );
    }

    let (count, data0) = a[0].1.split_once('.').expect("count.sealed");
    let named = |name: &str, value: &str| (name.to_string(), value.to_string());
    let first = |value: String| vec![(NAME.to_string(), value)];
    let with_rest = |mut v: Vec<(String, String)>, rest: &[(String, String)]| {
        v.extend_from_slice(rest);
        v
    };
    let junk_pending: Vec<(String, String)> = (0..300)
        .map(|i| named(&format!("{NAME}_s_junk{i:04}"), "x"))
        .collect();

    type Case = (&'static str, Vec<(String, String)>, Want, &'static str);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("chunks swapped", with_rest(first(format!("{count}.{}", a[1].1)), &[named(&a[1].0, data0)]), Want::SignedOut, SPLITTING),
        ("second chunk truncated", with_rest(vec![a[0].clone()], &[named(&a[1].0, &a[1].1[..a[1].1.len() / 2])]), Want::SignedOut, SPLITTING),
        ("first chunk truncated", with_rest(first(a[0].1[..a[0].1.len() / 2].to_string()), &a[1..]), Want::SignedOut, SPLITTING),
        ("second chunk missing", vec![a[0].clone()], Want::SignedOut, SPLITTING),
        ("first chunk missing", a[1..].to_vec(), Want::SignedOut, SPLITTING),
        ("first chunk sent twice", with_rest(vec![a[0].clone(), a[0].clone()], &a[1..]), Want::SignedOut, SPLITTING),
        ("second chunk twice, two users' values", with_rest(a.clone(), &[b[1].clone()]), Want::SignedOut, MIXING),
        ("bigcorp's first chunk with bigmallory's others", with_rest(vec![a[0].clone()], &b[1..]), Want::SignedOut, MIXING),
        ("bigmallory's first chunk with bigcorp's others", with_rest(vec![b[0].clone()], &a[1..]), Want::SignedOut, MIXING),
        ("count claims one chunk more than sent", with_rest(first(format!("{}.{data0}", a.len() + 1)), &a[1..]), Want::SignedOut, SPLITTING),
        ("count claims one chunk less than sent", with_rest(first(format!("{}.{data0}", a.len() - 1)), &a[1..]), Want::SignedOut, SPLITTING),
        ("count claims 5 (more than allowed)", with_rest(first(format!("5.{data0}")), &a[1..]), Want::SignedOut, SPLITTING),
        ("count overflowing 64 bits", with_rest(first(format!("99999999999999999999999.{data0}")), &a[1..]), Want::SignedOut, CRASH),
        ("count 0", with_rest(first(format!("0.{data0}")), &a[1..]), Want::SignedOut, CRASH),
        ("count -1", with_rest(first(format!("-1.{data0}")), &a[1..]), Want::SignedOut, CRASH),
        ("count 1 with chunks present", with_rest(first(format!("1.{data0}")), &a[1..]), Want::SignedOut, SPLITTING),
        ("a chunk's value moved to the first cookie name", first(format!("1.{}", a[1].1)), Want::SignedOut, MIXING),
        ("a pending sign-in value as the session", first("1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string()), Want::SignedOut, MIXING),
        ("binary garbage", first("%00%ff%fe\u{7f}".to_string()), Want::SignedOut, CRASH),
        ("quoted value", with_rest(first(format!("\"{}\"", a[0].1)), &a[1..]), Want::OwnerOrSignedOut("bigcorp"), "RFC 6265 §4.1.1 (DQUOTE-wrapped cookie-value)"),
        ("20 KB value", first(format!("1.{}", "A".repeat(20_000))), Want::SignedOut, BOMB),
        ("300 junk pending sign-in cookies with a valid session", with_rest(a.clone(), &junk_pending), Want::OwnerOrSignedOut("bigcorp"), BOMB),
        ("an extra chunk index beyond the maximum", with_rest(a.clone(), &[named(&format!("{NAME}_9"), "junk")]), Want::OwnerOrSignedOut("bigcorp"), SPLITTING),
        ("a zero-padded chunk name", with_rest(vec![a[0].clone()], &[named(&format!("{NAME}_01"), &a[1].1)]), Want::SignedOut, SPLITTING),
        ("a stale foreign chunk next to a one-cookie session", with_rest(c.clone(), &b[1..]), Want::OwnerOrSignedOut("alice"), SPLITTING),
        ("chunks merged into one cookie", first(format!("1.{data0}{}", a[1..].iter().map(|(_, v)| v.as_str()).collect::<String>())), Want::OwnerOrSignedOut("bigcorp"), SPLITTING),
        ("the session under a name without the __Host- prefix", vec![named("portcullis", &a[0].1), named("portcullis_1", &a[1].1)], Want::SignedOut, PREFIX),
        ("the session under a lower-case prefix", vec![named("__host-portcullis", &a[0].1), named("__host-portcullis_1", &a[1].1)], Want::SignedOut, PREFIX),
    ];

    let mut verdicts = Verdicts::new("cookie_tampering");
    let before = stack.backend.count();
    let mut reached_ok = 0;
    for (name, cookies, want, source) in cases {
        let cookie = header(&cookies);
        let api = send(&stack, &cookie, FETCH).await;
        let navigation = send(&stack, &cookie, NAVIGATION).await;
        reached_ok += [&api, &navigation]
            .iter()
            .filter(|r| r.status == 200)
            .count();
        eprintln!(
            "cookie_tampering: {name:<60} -> API {} navigation {}",
            api.status, navigation.status
        );
        let sent_first = cookies.iter().any(|(n, _)| n == NAME);
        verdicts.record(name, source, judge(want, &api, &navigation, sent_first));
    }
    verdicts.record(
        "only the owner's intact sessions reached the backend",
        "every source above",
        if stack.backend.count() - before == reached_ok {
            Ok(())
        } else {
            Err(format!(
                "{} backend request(s), {reached_ok} answered 200",
                stack.backend.count() - before
            ))
        },
    );

    // The session split across two Cookie header lines (HTTP/2 sends cookies that way).
    let (head, tail) = (header(&a[..1]), header(&a[1..]));
    let split = [
        FETCH,
        &[("Cookie", head.as_str()), ("Cookie", tail.as_str())],
    ]
    .concat();
    let r = stack.get(&mut Jar::default(), "/orders", &split).await;
    verdicts.record(
        "chunks split across two Cookie headers",
        "RFC 9113 §8.2.3 (cookie crumbs)",
        judge(Want::OwnerOrSignedOut("bigcorp"), &r, &r, true),
    );

    // /oauth2/userinfo: damaged cookies are "signed out", an intact one shows claims, never tokens.
    let damaged = header(&with_rest(first(format!("{count}.{}", a[1].1)), &a[1..]));
    let r = send_to(&stack, "/oauth2/userinfo", &damaged).await;
    verdicts.record(
        "userinfo with damaged chunks",
        CRASH,
        if r.status == 401 {
            Ok(())
        } else {
            Err(format!("want 401, got {} {}", r.status, r.text()))
        },
    );
    let r = send_to(&stack, "/oauth2/userinfo", &header(&a)).await;
    let text = r.text();
    verdicts.record(
        "userinfo never shows tokens",
        "Pomerium GO-2024-2965 (OAuth2 access and ID tokens exposed in the user info endpoint)",
        if r.status != 200 {
            Err(format!("want 200, got {} {text}", r.status))
        } else if [
            "\"access_token\"",
            "\"id_token\"",
            "\"refresh_token\"",
            "\"eyJ",
        ]
        .iter()
        .any(|t| text.contains(t))
        {
            Err(format!("userinfo shows a token: {text}"))
        } else {
            Ok(())
        },
    );
    verdicts.finish();
}

async fn send_to(stack: &Stack, path: &str, cookie: &str) -> RawResponse {
    let all = [FETCH, &[("Cookie", cookie)]].concat();
    stack.get(&mut Jar::default(), path, &all).await
}

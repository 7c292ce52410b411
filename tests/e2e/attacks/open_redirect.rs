//! Open redirects through the return URL: `rd` on `/oauth2/start` (followed through a real
//! sign-in at the provider, so the assertion is on the Location the browser is finally sent to)
//! and on `/oauth2/sign_out` (GET without a session, the confirmation form, and the POST that
//! sends the browser to the provider's logout with a `post_logout_redirect_uri`).
//!
//! Safe outcome: the final Location is a path on the gateway (usually `/`) or a URL on
//! `allowed_redirect_hosts` (`*.corp.example`); it never carries the authorization code, a state
//! or a token; and a sign-out never names another site as the post-logout destination.

use super::{Verdicts, session_stack};
use crate::session::{APP_ROUTE, Jar, NAVIGATION, Stack};
use crate::support::RawResponse;
use crate::support::idp::{IdpBrowser, IdpOptions, query_param};

const OAUTH2_PROXY_5233: &str =
    "oauth2-proxy CVE-2020-5233 (GHSA-qqxw-m5fj-f7gv, /\\ open redirect)";
const OAUTH2_PROXY_11053: &str =
    "oauth2-proxy CVE-2020-11053 (GHSA-j7px-6hwj-hpjg, whitespace between slashes)";
const OAUTH2_PROXY_4037: &str =
    "oauth2-proxy CVE-2020-4037 (GHSA-5m6c-jp6f-2vcv, open redirect via crafted rd)";
const OAUTH2_PROXY_21291: &str =
    "oauth2-proxy CVE-2021-21291 (GHSA-4mf2-f3wh-gvf2, whitelist-domain subdomain check)";
const MOD_23527: &str =
    "mod_auth_openidc CVE-2022-23527 (GHSA-q6f2-285m-gr53, open redirect in the default setup)";
const MOD_32786: &str =
    "mod_auth_openidc CVE-2021-32786 (logout redirect parsed unlike browsers: backslashes)";
const ORANGE: &str =
    "Orange Tsai, 'A New Era of SSRF: Exploiting URL Parsers' (Black Hat USA 2017)";

/// (case, the raw `rd` query value as sent, the final Locations that are safe, source)
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
);

#[rustfmt::skip]
const START_CASES: &[Case] = &[
    ("control: a path with a query", "%2Forders%3Fx%3D1", &["/orders?x=1"], "control"),
    ("control: an allowed host", "https%3A%2F%2Fapp.corp.example%2Fx", &["https://app.corp.example/x"], "control"),
    ("scheme-relative //host", "%2F%2Fevil.example", &["/"], "bitly/oauth2_proxy PR #359 (rd of the form //domain.com)"),
    ("scheme-relative //host, unencoded", "//evil.example/x", &["/"], "bitly/oauth2_proxy issue #228 ('//foo.com/foo' is a valid url)"),
    ("three slashes", "%2F%2F%2Fevil.example", &["/"], "mod_auth_openidc CVE-2019-14857 (redirects with repeated slashes); slashify CVE-2021-3189"),
    ("slash backslash", "%2F%5Cevil.example", &["/"], OAUTH2_PROXY_5233),
    ("slash backslash, unencoded", "/\\evil.example", &["/"], "mod_auth_openidc CVE-2019-20479 (slash and backslash)"),
    ("backslash slash", "%5C%2Fevil.example", &["/"], MOD_32786),
    ("two backslashes", "%5C%5Cevil.example", &["/"], "pac4j CVE-2026-82464 (backslash-prefixed logout targets)"),
    ("slash tab slash", "%2F%09%2Fevil.example", &["/"], OAUTH2_PROXY_11053),
    ("slash CR LF slash", "%2F%0D%0A%2Fevil.example", &["/"], OAUTH2_PROXY_11053),
    ("slash space slash", "%2F%20%2Fevil.example", &["/", "/%20/evil.example"], OAUTH2_PROXY_4037),
    ("slash, encoded tab, slash (decoded again by an app)", "%2F%2509%2Fevil.example", &["/"], OAUTH2_PROXY_11053),
    ("header splitting in rd", "%2Fx%0D%0ASet-Cookie%3A%20pwned%3D1", &["/"], "mod_auth_openidc CVE-2019-20479 patch ('validate the URL to prevent HTTP header splitting')"),
    ("absolute URL to another site", "https%3A%2F%2Fevil.example%2F", &["/"], OAUTH2_PROXY_5233),
    ("https: without slashes", "https%3Aevil.example", &["/"], OAUTH2_PROXY_4037),
    ("https with one slash", "https%3A%2Fevil.example", &["/"], OAUTH2_PROXY_4037),
    ("https with backslashes", "https%3A%5C%5Cevil.example", &["/"], MOD_32786),
    ("allowed domain as a prefix of the attacker's", "https%3A%2F%2Fapp.corp.example.evil.example%2F", &["/"], OAUTH2_PROXY_21291),
    ("suffix without a label boundary", "https%3A%2F%2Fevilcorp.example%2F", &["/"], OAUTH2_PROXY_21291),
    ("the allowed domain itself (only subdomains are)", "https%3A%2F%2Fcorp.example%2F", &["/"], OAUTH2_PROXY_21291),
    ("userinfo naming the allowed host", "https%3A%2F%2Fapp.corp.example%40evil.example%2F", &["/"], ORANGE),
    ("backslash before the userinfo", "https%3A%2F%2Fevil.example%5C%40app.corp.example%2F", &["/"], ORANGE),
    ("hash before the allowed suffix", "https%3A%2F%2Fevil.example%23.corp.example%2F", &["/"], ORANGE),
    ("question mark before the allowed suffix", "https%3A%2F%2Fevil.example%3F.corp.example%2F", &["/"], ORANGE),
    ("encoded dot in the host", "https%3A%2F%2Fapp%252Ecorp.example%2F", &["/"], ORANGE),
    ("trailing dot on the allowed host", "https%3A%2F%2Fapp.corp.example.%2F", &["/"], "README: return URL hosts without a trailing dot"),
    ("javascript: URL", "javascript%3Aalert(document.domain)", &["/"], "mod_auth_openidc CVE-2021-39191 (GHSA-2pgf-8h6h-gqg2, target_link_uri not validated)"),
    ("data: URL", "data%3Atext%2Fhtml%2C%3Cscript%3Ealert(1)%3C%2Fscript%3E", &["/"], "mod_auth_openidc CVE-2021-39191 (GHSA-2pgf-8h6h-gqg2)"),
    ("encoded slashes in a path", "%2F%252F%252Fevil.example", &["/"], MOD_23527),
    ("encoded backslash in a path", "%2F%255Cevil.example", &["/"], MOD_23527),
    ("double-encoded slashes", "%2F%25252F%25252Fevil.example", &["/"], MOD_23527),
    ("dot segment then two slashes", "%2F.%2F%2Fevil.example", &["/"], MOD_23527),
    ("dot-dot segment then two slashes", "%2F..%2F%2Fevil.example", &["/"], MOD_23527),
    ("encoded dot-dot then two slashes", "%2F%252e%252e%2F%2Fevil.example", &["/"], MOD_23527),
    ("NUL before two slashes", "%2F%00%2F%2Fevil.example", &["/"], OAUTH2_PROXY_11053),
    ("fullwidth solidus look-alike", "%2F%EF%BC%8Fevil.example", &["/"], "Jonathan Birch, 'Host/Split: Exploitable Antipatterns in Unicode Normalization' (Black Hat USA 2019)"),
    ("ideographic full stop in the host", "https%3A%2F%2Fevil%E3%80%82example%2F", &["/"], "Jonathan Birch, 'Host/Split' (Black Hat USA 2019)"),
    ("3 KB return URL", "", &["/"], "README: return URLs longer than 2048 bytes become /"),
];

/// Where a `/oauth2/start?<query>` sign-in as alice finally sends the browser.
async fn final_location(
    stack: &Stack,
    provider: &mut IdpBrowser,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<String, String> {
    let mut jar = Jar::default();
    let all = [NAVIGATION, headers].concat();
    let start = stack
        .get(&mut jar, &format!("/oauth2/start?{query}"), &all)
        .await;
    follow(stack, provider, &mut jar, start).await
}

/// From a gateway answer that sends the browser to the provider, through the sign-in, to the
/// Location of the callback's answer.
async fn follow(
    stack: &Stack,
    provider: &mut IdpBrowser,
    jar: &mut Jar,
    start: RawResponse,
) -> Result<String, String> {
    let to_provider = start.header("location").unwrap_or_default().to_string();
    if start.status != 302 || !to_provider.starts_with(stack.idp.issuer()) {
        return Err(format!(
            "the sign-in did not start: {} {:?} {}",
            start.status,
            to_provider,
            start.text()
        ));
    }
    let back = stack
        .idp
        .sign_in_with(provider, &to_provider, "alice")
        .await;
    let done = stack.get(jar, &back, NAVIGATION).await;
    if done.status != 302 {
        return Err(format!(
            "the callback answered {} {}",
            done.status,
            done.text()
        ));
    }
    if done
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.contains("pwned"))
    {
        return Err(format!("a header was injected: {:?}", done.headers));
    }
    Ok(done.header("location").unwrap_or_default().to_string())
}

fn judge_location(location: &str, safe: &[&str]) -> Result<(), String> {
    let lower = location.to_ascii_lowercase();
    for secret in ["code=", "state=", "token", "id_token_hint"] {
        if lower.contains(secret) {
            return Err(format!("the Location {location:?} carries {secret}"));
        }
    }
    if safe.contains(&location) {
        Ok(())
    } else {
        Err(format!("final Location {location:?}, safe: {safe:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_urls_never_send_the_browser_to_another_site() {
    let stack = session_stack(
        IdpOptions::default(),
        "  allowed_redirect_hosts: [\"*.corp.example\"]\n",
        APP_ROUTE,
        |c| c,
    )
    .await;
    // One provider browser: after the first sign-in the provider answers at once (SSO).
    let mut provider = IdpBrowser::default();
    let mut verdicts = Verdicts::new("open_redirect");
    let long = format!("%2F{}", "a".repeat(3000));

    for (name, rd, safe, source) in START_CASES {
        let rd = if rd.is_empty() { long.as_str() } else { *rd };
        let verdict = final_location(&stack, &mut provider, &format!("rd={rd}"), &[])
            .await
            .and_then(|location| judge_location(&location, safe));
        verdicts.record(name, source, verdict);
    }

    // rd given twice: whichever is used must be safe.
    let verdict = final_location(&stack, &mut provider, "rd=%2Fok&rd=%2F%2Fevil.example", &[])
        .await
        .and_then(|location| judge_location(&location, &["/ok", "/"]));
    verdicts.record(
        "rd given twice, the second hostile",
        "OWASP 'Testing for HTTP Parameter Pollution' (WSTG-INPV-04)",
        verdict,
    );
    // oauth2-proxy also reads the return URL from a header; the gateway must not.
    let verdict = final_location(
        &stack,
        &mut provider,
        "provider=corp",
        &[("X-Auth-Request-Redirect", "https://evil.example/")],
    )
    .await
    .and_then(|location| judge_location(&location, &["/"]));
    verdicts.record(
        "return URL in X-Auth-Request-Redirect",
        "oauth2-proxy PR #405 / ploxiln/oauth2_proxy PR #37 (rd also taken from X-Auth-Request-Redirect)",
        verdict,
    );
    // A deep link whose path starts with two slashes comes back as a path on the gateway (its
    // normalised path, or `/`).
    let mut jar = Jar::default();
    let start = stack
        .get(&mut jar, "//evil.example/x?y=1", NAVIGATION)
        .await;
    let verdict = follow(&stack, &mut provider, &mut jar, start)
        .await
        .and_then(|location| judge_location(&location, &["/evil.example/x?y=1", "/"]));
    verdicts.record(
        "deep link //evil.example/x as the page to return to",
        "trailing-slash CVE-2021-23387 (GHSA-rfhr-62xp-2fp2, https://example.com//attacker.example/)",
        verdict,
    );

    // Sign-out without a session: straight to the checked rd.
    const SIGN_OUT_CASES: &[(&str, &str)] = &[
        ("%2F%2Fevil.example", OAUTH2_PROXY_5233),
        ("%2F%5Cevil.example", MOD_32786),
        ("https%3A%2F%2Fevil.example%2F", MOD_32786),
        (
            "https%3A%2F%2Fapp.corp.example.evil.example%2F",
            OAUTH2_PROXY_21291,
        ),
        ("%2F%09%2Fevil.example", OAUTH2_PROXY_11053),
        ("%2F%252F%252Fevil.example", MOD_23527),
    ];
    for (rd, source) in SIGN_OUT_CASES {
        let response = stack
            .get(
                &mut Jar::default(),
                &format!("/oauth2/sign_out?rd={rd}"),
                NAVIGATION,
            )
            .await;
        let verdict = if response.status == 302 {
            judge_location(response.header("location").unwrap_or_default(), &["/"])
        } else {
            Err(format!(
                "want 302, got {} {}",
                response.status,
                response.text()
            ))
        };
        verdicts.record(
            &format!("sign-out without a session, rd={rd}"),
            source,
            verdict,
        );
    }

    // Signed in: the confirmation form carries only a safe rd, and the POST names the gateway's
    // own origin as the post-logout destination, whatever rd the form or the query says.
    let own_origin = format!("http://{}/", stack.gateway.addr());
    for (rd, source) in SIGN_OUT_CASES {
        let (mut jar, _) = stack.sign_in("alice", "/").await;
        let page = stack
            .get(&mut jar, &format!("/oauth2/sign_out?rd={rd}"), NAVIGATION)
            .await;
        let html = page.text();
        let csrf = html
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string();
        let form_rd = html
            .split(r#"name="rd" value=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string();
        let mut verdict = if page.status == 200 && form_rd == "/" {
            Ok(())
        } else {
            Err(format!(
                "confirmation page {} with rd {form_rd:?}",
                page.status
            ))
        };
        if verdict.is_ok() {
            let body = format!("rd={rd}&csrf={csrf}");
            let done = stack
                .send(&mut jar, "POST", "/oauth2/sign_out", &[], &body)
                .await;
            let location = done.header("location").unwrap_or_default().to_string();
            verdict = if done.status != 302 {
                Err(format!(
                    "sign-out POST answered {} {}",
                    done.status,
                    done.text()
                ))
            } else if location.starts_with(stack.idp.issuer()) {
                let after = query_param(&location, "post_logout_redirect_uri");
                if after.as_deref() == Some(own_origin.as_str()) {
                    Ok(())
                } else {
                    Err(format!("post_logout_redirect_uri {after:?}"))
                }
            } else {
                judge_location(&location, &["/"])
            };
        }
        verdicts.record(&format!("sign-out POST, rd={rd}"), source, verdict);
    }
    verdicts.finish();
}

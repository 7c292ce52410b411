//! Is an unauthenticated request a browser navigation (answer 302 to sign-in) or an API call
//! (answer 401 JSON)?
//!
//! A redirect to an identity provider only helps a person looking at a page; a script, `fetch()`
//! or `curl` needs a 401 it can act on. The request says which it is through headers, and
//! `Sec-Fetch-*` (fetch metadata) is the strongest signal: browsers set it and scripts cannot.
//!
//! A request is a navigation when all of these hold:
//! 1. the method is `GET` or `HEAD` (a form `POST` is answered 401: replaying it after sign-in
//!    would lose its body);
//! 2. it is not a script's request: no `X-Requested-With: XMLHttpRequest`; any other
//!    `X-Requested-With` value also counts as a script's request, unless the browser declares a
//!    navigation (`Sec-Fetch-Mode: navigate`, which a script cannot set) — Android WebView adds
//!    `X-Requested-With: <app package>` to its own page loads;
//! 3. `Sec-Fetch-Mode`, if present, is `navigate`, and `Sec-Fetch-Dest`, if present, is
//!    `document`: frames, images, `fetch()` and `no-cors` loads get the 401;
//! 4. `Accept` admits HTML: `text/html` or `application/xhtml+xml` listed with `q > 0`.
//!
//! The `*/*` rule: a range that admits HTML only by wildcard (`*/*`, `text/*`,
//! `application/*`) counts **only when the browser declares the navigation**
//! (`Sec-Fetch-Mode: navigate`). Every browser lists `text/html` explicitly on a page load,
//! while `curl`, `wget`, HTTP libraries and `fetch()` send `*/*` alone: without fetch metadata,
//! `*/*` is an API client. A missing `Accept` is never a navigation, and a client that refuses
//! `text/html` explicitly (`text/html;q=0`) is never sent to a sign-in page, whatever else it
//! accepts.
//!
//! A route's `mode: api` / `mode: browser` overrides this function; the caller applies it.

use http::{HeaderMap, Method, header};

/// Whether an unauthenticated request with `method` and `headers` is a browser navigation
/// (redirect to sign-in) rather than an API call (401). See the module documentation.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let mode = fetch_metadata(headers, "sec-fetch-mode", "navigate");
    let declared_navigation = mode == Some(true);
    if mode == Some(false) || fetch_metadata(headers, "sec-fetch-dest", "document") == Some(false) {
        return false;
    }
    if is_script_request(headers, declared_navigation) {
        return false;
    }
    match html_acceptance(headers) {
        Html::Listed => true,
        Html::Wildcard => declared_navigation,
        Html::Refused => false,
    }
}

/// `None` if the fetch metadata header `name` is absent, else whether every value is `expected`.
fn fetch_metadata(headers: &HeaderMap, name: &str, expected: &str) -> Option<bool> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    Some(values.all(|v| {
        v.to_str()
            .is_ok_and(|s| s.trim().eq_ignore_ascii_case(expected))
    }))
}

/// Whether `X-Requested-With` marks the request as a script's.
fn is_script_request(headers: &HeaderMap, declared_navigation: bool) -> bool {
    let mut values = headers.get_all("x-requested-with").iter().peekable();
    if values.peek().is_none() {
        return false;
    }
    let xhr = values.any(|v| {
        v.to_str()
            .is_ok_and(|s| s.trim().eq_ignore_ascii_case("XMLHttpRequest"))
    });
    xhr || !declared_navigation
}

/// How `Accept` treats HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Html {
    /// `text/html` or `application/xhtml+xml` is listed with `q > 0`.
    Listed,
    /// Only a wildcard range admits HTML.
    Wildcard,
    /// No `Accept`, or nothing admits HTML, or `text/html` is refused explicitly.
    Refused,
}

/// The HTML media types, as (type, subtype).
const HTML_TYPES: [(&str, &str); 2] = [("text", "html"), ("application", "xhtml+xml")];

/// What `Accept` (all its header lines) says about HTML. For each HTML type the most specific
/// matching range decides (`text/html` over `text/*` over `*/*`, RFC 9110 §12.5.1); among
/// equally specific ranges, the highest `q`.
fn html_acceptance(headers: &HeaderMap) -> Html {
    // Per HTML type: (specificity, q in thousandths) of the best range so far.
    let mut best: [Option<(u8, u16)>; 2] = [None, None];
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for range in value.split(',') {
            let Some((kind, subtype, q)) = parse_range(range) else {
                continue;
            };
            for (slot, (t, s)) in best.iter_mut().zip(HTML_TYPES) {
                let specificity = if kind == "*" && subtype == "*" {
                    0
                } else if kind.eq_ignore_ascii_case(t) && subtype == "*" {
                    1
                } else if kind.eq_ignore_ascii_case(t) && subtype.eq_ignore_ascii_case(s) {
                    2
                } else {
                    continue;
                };
                *slot = match *slot {
                    Some((sp, _)) if sp > specificity => *slot,
                    Some((sp, bq)) if sp == specificity => Some((sp, bq.max(q))),
                    _ => Some((specificity, q)),
                };
            }
        }
    }
    if matches!(best[0], Some((2, 0))) {
        return Html::Refused;
    }
    if best.iter().any(|b| matches!(b, Some((2, q)) if *q > 0)) {
        Html::Listed
    } else if best.iter().any(|b| matches!(b, Some((_, q)) if *q > 0)) {
        Html::Wildcard
    } else {
        Html::Refused
    }
}

/// One media range: (type, subtype, q in thousandths). A bare `*` is read as `*/*`; a range
/// with an unreadable `q` counts as `q=0`.
fn parse_range(range: &str) -> Option<(&str, &str, u16)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim();
    if media.is_empty() {
        return None;
    }
    let (kind, subtype) = if media == "*" {
        ("*", "*")
    } else {
        let (k, s) = media.split_once('/')?;
        (k.trim(), s.trim())
    };
    let mut q = 1000;
    for param in parts {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            q = parse_q(value.trim()).unwrap_or(0);
        }
    }
    Some((kind, subtype, q))
}

/// A quality value in thousandths: `0`, `0.8`, `1.000`, and leniently `.5`. `None` if out of
/// range or not a number.
fn parse_q(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.len() > 1 || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u16 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut thousandths = 0u16;
    for (i, digit) in fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .enumerate()
    {
        let scale = [100, 10, 1][i];
        thousandths += u16::from(digit - b'0') * scale;
    }
    let q = whole * 1000 + thousandths;
    let exact_beyond = fraction.bytes().skip(3).all(|b| b == b'0');
    (q <= 1000 && (q < 1000 || exact_beyond)).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const CHROME_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,\
        image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
    const FIREFOX_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,\
        image/avif,image/webp,*/*;q=0.8";
    const SAFARI_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    /// (case, method, headers, is a navigation)
    type Case = (
        &'static str,
        Method,
        Vec<(&'static str, &'static str)>,
        bool,
    );

    fn cases() -> Vec<Case> {
        vec![
            (
                "Chrome: typed URL / link click",
                Method::GET,
                vec![
                    ("accept", CHROME_ACCEPT),
                    ("sec-fetch-dest", "document"),
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-site", "none"),
                    ("sec-fetch-user", "?1"),
                    ("upgrade-insecure-requests", "1"),
                ],
                true,
            ),
            (
                "Chrome: fetch('/api') (default Accept)",
                Method::GET,
                vec![
                    ("accept", "*/*"),
                    ("sec-fetch-dest", "empty"),
                    ("sec-fetch-mode", "cors"),
                    ("sec-fetch-site", "same-origin"),
                ],
                false,
            ),
            (
                "Chrome: fetch() asking for HTML (htmx-style)",
                Method::GET,
                vec![
                    ("accept", "text/html"),
                    ("hx-request", "true"),
                    ("sec-fetch-dest", "empty"),
                    ("sec-fetch-mode", "cors"),
                    ("sec-fetch-site", "same-origin"),
                ],
                false,
            ),
            (
                "Firefox: navigation",
                Method::GET,
                vec![
                    ("accept", FIREFOX_ACCEPT),
                    ("sec-fetch-dest", "document"),
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-site", "cross-site"),
                    ("sec-fetch-user", "?1"),
                ],
                true,
            ),
            (
                "Safari before fetch metadata: navigation",
                Method::GET,
                vec![("accept", SAFARI_ACCEPT)],
                true,
            ),
            (
                "Chrome: HEAD navigation",
                Method::HEAD,
                vec![
                    ("accept", CHROME_ACCEPT),
                    ("sec-fetch-dest", "document"),
                    ("sec-fetch-mode", "navigate"),
                ],
                true,
            ),
            (
                "curl",
                Method::GET,
                vec![("accept", "*/*"), ("user-agent", "curl/8.5.0")],
                false,
            ),
            (
                "Go net/http: no Accept",
                Method::GET,
                vec![("user-agent", "Go-http-client/1.1")],
                false,
            ),
            (
                "jQuery XHR",
                Method::GET,
                vec![
                    ("accept", "application/json, text/javascript, */*; q=0.01"),
                    ("x-requested-with", "XMLHttpRequest"),
                    ("sec-fetch-dest", "empty"),
                    ("sec-fetch-mode", "cors"),
                ],
                false,
            ),
            (
                "XHR asking for HTML, no fetch metadata",
                Method::GET,
                vec![
                    ("accept", "text/html, */*; q=0.01"),
                    ("x-requested-with", "XMLHttpRequest"),
                ],
                false,
            ),
            (
                "Android WebView page load (X-Requested-With: app package)",
                Method::GET,
                vec![
                    ("accept", CHROME_ACCEPT),
                    ("x-requested-with", "com.example.app"),
                    ("sec-fetch-dest", "document"),
                    ("sec-fetch-mode", "navigate"),
                ],
                true,
            ),
            (
                "X-Requested-With other value, no fetch metadata",
                Method::GET,
                vec![("accept", "text/html"), ("x-requested-with", "Fetch")],
                false,
            ),
            (
                "XMLHttpRequest even alongside navigate",
                Method::GET,
                vec![
                    ("accept", CHROME_ACCEPT),
                    ("x-requested-with", "xmlhttprequest"),
                    ("sec-fetch-mode", "navigate"),
                ],
                false,
            ),
            (
                "Chrome: iframe",
                Method::GET,
                vec![
                    ("accept", CHROME_ACCEPT),
                    ("sec-fetch-dest", "iframe"),
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-site", "cross-site"),
                ],
                false,
            ),
            (
                "Chrome: image",
                Method::GET,
                vec![
                    (
                        "accept",
                        "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
                    ),
                    ("sec-fetch-dest", "image"),
                    ("sec-fetch-mode", "no-cors"),
                ],
                false,
            ),
            (
                "Chrome: form POST",
                Method::POST,
                vec![
                    ("accept", CHROME_ACCEPT),
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("sec-fetch-dest", "document"),
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-user", "?1"),
                ],
                false,
            ),
            (
                "navigate with a missing Accept",
                Method::GET,
                vec![
                    ("sec-fetch-dest", "document"),
                    ("sec-fetch-mode", "navigate"),
                ],
                false,
            ),
            (
                "navigate with */* only: declared by the browser",
                Method::GET,
                vec![
                    ("accept", "*/*"),
                    ("sec-fetch-dest", "document"),
                    ("sec-fetch-mode", "navigate"),
                ],
                true,
            ),
            (
                "text/* only, no fetch metadata",
                Method::GET,
                vec![("accept", "text/*")],
                false,
            ),
            (
                "text/* with navigate",
                Method::GET,
                vec![("accept", "text/*"), ("sec-fetch-mode", "navigate")],
                true,
            ),
            (
                "text/html;q=0",
                Method::GET,
                vec![("accept", "text/html;q=0")],
                false,
            ),
            (
                "text/html;q=0 refuses HTML even with */* and navigate",
                Method::GET,
                vec![
                    ("accept", "text/html;q=0, */*"),
                    ("sec-fetch-mode", "navigate"),
                ],
                false,
            ),
            (
                "xhtml listed, text/html not",
                Method::GET,
                vec![("accept", "application/xhtml+xml")],
                true,
            ),
            (
                "*/*;q=0 with navigate",
                Method::GET,
                vec![("accept", "*/*;q=0"), ("sec-fetch-mode", "navigate")],
                false,
            ),
            (
                "text/html;q=0.000 then text/* (more specific wins)",
                Method::GET,
                vec![
                    ("accept", "text/*, text/html;q=0.000"),
                    ("sec-fetch-mode", "navigate"),
                ],
                false,
            ),
            (
                "JSON API client",
                Method::GET,
                vec![("accept", "application/json")],
                false,
            ),
            (
                "Accept split over two lines",
                Method::GET,
                vec![
                    ("accept", "application/json"),
                    ("accept", "text/html;q=0.5"),
                ],
                true,
            ),
            (
                "case-insensitive media types and metadata",
                Method::GET,
                vec![
                    ("accept", "Text/HTML"),
                    ("sec-fetch-mode", "Navigate"),
                    ("sec-fetch-dest", "Document"),
                ],
                true,
            ),
            (
                "an unreadable q counts as 0",
                Method::GET,
                vec![("accept", "text/html;q=high")],
                false,
            ),
            (
                "Java HttpURLConnection default Accept lists text/html",
                Method::GET,
                vec![(
                    "accept",
                    "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
                )],
                true,
            ),
            (
                "two Sec-Fetch-Mode values, one not navigate",
                Method::GET,
                vec![
                    ("accept", CHROME_ACCEPT),
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-mode", "cors"),
                ],
                false,
            ),
            (
                "DELETE",
                Method::DELETE,
                vec![("accept", CHROME_ACCEPT)],
                false,
            ),
        ]
    }

    #[test]
    fn real_header_sets() {
        for (case, method, pairs, expected) in cases() {
            assert_eq!(is_navigation(&method, &headers(&pairs)), expected, "{case}");
        }
    }

    #[test]
    fn q_values() {
        for (raw, q) in [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.0", Some(0)),
            ("0.000", Some(0)),
            ("0.001", Some(1)),
            ("0.8", Some(800)),
            ("0.85", Some(850)),
            (".2", Some(200)),
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("2", None),
            ("", None),
            (".", None),
            ("-1", None),
            ("0.5x", None),
            ("10", None),
        ] {
            assert_eq!(parse_q(raw), q, "{raw:?}");
        }
    }

    #[test]
    fn non_ascii_header_values_do_not_count() {
        let mut map = HeaderMap::new();
        map.insert(
            "accept",
            HeaderValue::from_bytes(b"text/html\xff").expect("opaque bytes are a valid value"),
        );
        assert!(!is_navigation(&Method::GET, &map));
    }
}

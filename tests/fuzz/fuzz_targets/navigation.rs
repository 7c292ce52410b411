//! Navigation detection: `web::navigation::is_navigation` on arbitrary methods and headers never
//! panics, and never calls a request a navigation that the rules exclude: a method other than
//! GET/HEAD, `X-Requested-With: XMLHttpRequest`, no `Accept`, a `Sec-Fetch-Mode` other than
//! `navigate`, or a `Sec-Fetch-Dest` other than `document`.
//!
//! Input: a method line, then `name: value` lines.

#![no_main]

mod common;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use portcullis::web::navigation::is_navigation;

fn all_are(headers: &HeaderMap, name: &str, want: &str) -> bool {
    headers.get_all(name).iter().all(|v| {
        v.to_str()
            .is_ok_and(|s| s.trim().eq_ignore_ascii_case(want))
    })
}

fuzz_target!(|data: &[u8]| {
    let (method, rest) = common::split(data, b'\n');
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n').take(32) {
        let (name, value) = common::split(line, b':');
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    if !is_navigation(&method, &headers) {
        return;
    }
    assert!(
        method == Method::GET || method == Method::HEAD,
        "{method} is a navigation"
    );
    assert!(
        headers.contains_key("accept"),
        "no Accept, yet a navigation"
    );
    assert!(
        !headers.get_all("x-requested-with").iter().any(|v| v
            .to_str()
            .is_ok_and(|s| s.trim().eq_ignore_ascii_case("XMLHttpRequest"))),
        "an XMLHttpRequest is a navigation"
    );
    assert!(
        all_are(&headers, "sec-fetch-mode", "navigate"),
        "Sec-Fetch-Mode {:?}",
        headers.get_all("sec-fetch-mode")
    );
    assert!(
        all_are(&headers, "sec-fetch-dest", "document"),
        "Sec-Fetch-Dest {:?}",
        headers.get_all("sec-fetch-dest")
    );
});

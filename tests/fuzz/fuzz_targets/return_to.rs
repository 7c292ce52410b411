//! Return URLs: `web::return_to::safe_return_url` on arbitrary `rd` values never panics, and what
//! it accepts cannot send the browser elsewhere: a relative result never starts with `//` or
//! `/\` (raw or after up to three rounds of percent-decoding) and resolves on this origin; an
//! absolute one is http(s) on an allowed host without userinfo; none contains a backslash, a
//! control character, a space or a non-ASCII byte; and accepting it again gives it back unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::web::return_to::{HostRule, MAX_LEN, safe_return_url};

fn rules() -> Vec<HostRule> {
    vec![
        HostRule::parse("*.corp.example"),
        HostRule::parse("app.example.com"),
    ]
}

/// One round of percent-decoding (bytes; malformed escapes kept).
fn decode(input: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(rd) = std::str::from_utf8(data) else {
        return;
    };
    let allowed = rules();
    let Some(out) = safe_return_url(rd, &allowed) else {
        return;
    };
    assert!(
        !out.is_empty() && out.len() <= MAX_LEN,
        "{rd:?} -> {out:?}: length"
    );
    assert!(
        out.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'),
        "{rd:?} -> {out:?}: a control character, space, backslash or non-ASCII byte"
    );
    if out.starts_with('/') {
        let mut form = out.as_bytes().to_vec();
        for _ in 0..4 {
            assert!(
                !form.starts_with(b"//") && !form.starts_with(b"/\\"),
                "{rd:?} -> {out:?}: leads to another host ({:?})",
                String::from_utf8_lossy(&form)
            );
            form = decode(&form);
        }
        let base = url::Url::parse("https://gateway.invalid/").expect("a base URL");
        let resolved = base.join(&out).expect("a relative result resolves");
        assert_eq!(
            resolved.host_str(),
            Some("gateway.invalid"),
            "{rd:?} -> {out:?}: resolves to {resolved}"
        );
    } else {
        let url = url::Url::parse(&out).expect("an absolute result parses");
        assert!(
            matches!(url.scheme(), "http" | "https"),
            "{rd:?} -> {out:?}: scheme"
        );
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "{rd:?} -> {out:?}: userinfo"
        );
        let host = url.host_str().unwrap_or_default();
        assert!(
            allowed.iter().any(|r| r.matches(host)),
            "{rd:?} -> {out:?}: host {host:?} not allowed"
        );
    }
    assert_eq!(
        safe_return_url(&out, &allowed).as_deref(),
        Some(out.as_str()),
        "{rd:?} -> {out:?}: not accepted unchanged the second time"
    );
});

//! Regressions from the fuzz targets in `tests/fuzz`: the same functions, called in-process with
//! the same properties, on inputs the fuzzers found interesting (and on every input that once
//! crashed one, listed with the target that found it). Each runs in microseconds.

use portcullis::routing::{normalise, normalise_host};
use portcullis::web::return_to::{HostRule, safe_return_url};

/// Inputs `normalise` must either refuse or turn into a normal path (the `normalise` target's
/// properties). Seeds of the target and the path-trick cases of this suite.
const PATHS: &[&str] = &[
    "/a/../admin",
    "//x/./y/",
    "/%2e%2e/admin",
    "/assets/..;/admin",
    "/a;b/../c",
    "/x%41%7e%3a",
    "/assets/;/../admin",
    "/assets/%23/../admin",
    "/.%2e/",
    "/..",
    "/../../",
    "/a/b/../../../../c/./d//e/",
    "/%2E",
    "/a/.;/b",
    "/...;x/../y",
    "/%25%32%65%25%32%65/x",
];

#[test]
fn normalised_paths_are_normal_and_stable() {
    for raw in PATHS {
        let Ok(once) = normalise(raw) else {
            continue;
        };
        let path = once.path.as_ref();
        assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
        for bad in ["//", "/./", "/../"] {
            assert!(!path.contains(bad), "{raw:?} -> {path:?} contains {bad}");
        }
        assert!(
            !path.ends_with("/.") && !path.ends_with("/.."),
            "{raw:?} -> {path:?}"
        );
        let twice = normalise(path).unwrap_or_else(|e| panic!("{raw:?} -> {path:?} -> {e}"));
        assert_eq!(twice.path.as_ref(), path, "{raw:?}: not idempotent");
    }
}

/// `rd` values the `return_to` target starts from, and the open-redirect cases of this suite.
const RETURN_URLS: &[&str] = &[
    "/orders?x=1",
    "//evil.example",
    "/\\evil",
    "https://app.corp.example/x",
    "/%2F%2Fevil",
    "https:evil.example",
    "/.//x",
    "/..//evil.example",
    "/%252e%252e//evil.example",
    "/%09/evil.example",
    "/#//evil.example",
    "/?//evil.example",
    "https://app.corp.example./",
    "https://evil.example#.corp.example/",
    "HTTPS://APP.CORP.EXAMPLE/X",
    "https://app.example.com:443/",
    "/%E3%80%82evil.example",
];

#[test]
fn accepted_return_urls_stay_on_the_gateway_or_allowed_hosts() {
    let allowed = [
        HostRule::parse("*.corp.example"),
        HostRule::parse("app.example.com"),
    ];
    for rd in RETURN_URLS {
        let Some(out) = safe_return_url(rd, &allowed) else {
            continue;
        };
        assert!(
            out.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'),
            "{rd:?} -> {out:?}"
        );
        if out.starts_with('/') {
            assert!(
                !out.starts_with("//") && !out.starts_with("/\\"),
                "{rd:?} -> {out:?}"
            );
        } else {
            let url = url::Url::parse(&out).expect("an absolute result parses");
            let host = url.host_str().unwrap_or_default();
            assert!(allowed.iter().any(|r| r.matches(host)), "{rd:?} -> {out:?}");
        }
        assert_eq!(
            safe_return_url(&out, &allowed).as_deref(),
            Some(out.as_str()),
            "{rd:?} -> {out:?} is not accepted unchanged again"
        );
    }
}

#[test]
fn hosts_normalise_without_panicking() {
    for host in [
        "",
        ":",
        "[",
        "[::1",
        "]",
        "a:b:c",
        "A.B.",
        ".",
        "..",
        "[::1]:80",
        "\u{e4}.test",
    ] {
        let _ = normalise_host(host);
    }
}

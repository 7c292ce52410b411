//! Route matching: `Router::resolve_index` on a fixed router (every host and path kind, from the
//! gateway's own config loader) with arbitrary method, host and path never panics, and agrees
//! with the rule as written: the first route, in file order, whose host, path and methods take
//! the request.
//!
//! Input: `method \n host \n path`.

#![no_main]

mod common;

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use portcullis::routing::{HostMatch, Route, Router, normalise_host};

static ROUTER: LazyLock<Router> = LazyLock::new(|| Router::new(common::FIXED.routes.clone()));

fn host_takes(rule: &HostMatch, host: &str) -> bool {
    match rule {
        HostMatch::Any => true,
        HostMatch::Exact(h) => host == &**h,
        HostMatch::Suffix(s) => {
            host.len() > s.len()
                && host.ends_with(&**s)
                && host.as_bytes()[host.len() - s.len() - 1] == b'.'
        }
    }
}

fn takes(route: &Route, method: &Method, host: &str, path: &str) -> bool {
    host_takes(&route.host, host) && route.path.matches(path) && route.methods.contains(method)
}

fuzz_target!(|data: &[u8]| {
    let (method, rest) = common::split(data, b'\n');
    let (host, path) = common::split(rest, b'\n');
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let (Ok(host), Ok(path)) = (std::str::from_utf8(host), std::str::from_utf8(path)) else {
        return;
    };
    let host = normalise_host(host);
    let routes = ROUTER.routes();
    let expected = routes.iter().position(|r| takes(r, &method, &host, path));
    let got = ROUTER.resolve_index(&method, &host, path);
    assert_eq!(
        got, expected,
        "{method} {host:?} {path:?}: router says {got:?}, the rule says {expected:?}"
    );
});

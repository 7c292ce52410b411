//! Config parsing: `config::load_str` on arbitrary text never panics; a config that loads
//! compiles into a router that resolves requests without panicking.
//!
//! Texts with `${` are skipped: `${env:…}`/`${file:…}` read the process environment and files
//! (the operator's input, trusted), and `${file:/dev/zero}` would never return.

#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use portcullis::config;
use portcullis::routing::{Router, normalise_host};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("${") {
        return;
    }
    if let Ok(cfg) = config::load_str(text, "fuzz") {
        let n = cfg.routes.len();
        let router = Router::new(cfg.routes);
        for (method, host, path) in [
            (Method::GET, "app.test", "/"),
            (Method::POST, "a.example.com", "/admin/x"),
            (Method::DELETE, "", "/login"),
        ] {
            if let Some(i) = router.resolve_index(&method, &normalise_host(host), path) {
                assert!(i < n, "route index {i} out of {n}");
            }
        }
    }
});

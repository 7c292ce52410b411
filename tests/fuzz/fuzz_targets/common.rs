//! What several targets share: one fixed config (routes of every kind, a sessions block), loaded
//! once through the same `config::load_str` the gateway uses.

#![allow(dead_code)]

use std::sync::LazyLock;

use portcullis::config::{self, Config};

/// Routes of every host and path kind, in an order where first-match matters; a sessions block.
pub const CONFIG: &str = r#"server:
  listen: ["127.0.0.1:8080"]
  admin: "127.0.0.1:9090"
sessions:
  secret: "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
  allowed_redirect_hosts: ["*.corp.example", "app.example.com"]
upstreams:
  app: {targets: ["127.0.0.1:9001"]}
routes:
  - name: admin
    match: {host: app.test, path_prefix: /admin, methods: [GET, POST]}
    upstream: app
    auth: public
  - name: wild
    match: {host: "*.example.com"}
    upstream: app
    auth: public
  - name: deep-wild
    match: {host: "*.a.example.org", path: /x}
    upstream: app
    auth: public
  - name: login
    match: {path: /login}
    upstream: app
    auth: public
  - name: app
    match: {host: app.test}
    upstream: app
    auth: public
  - name: assets
    match: {path_prefix: /assets/, methods: [GET, HEAD]}
    upstream: app
    auth: public
"#;

/// The fixed config, loaded once.
pub static FIXED: LazyLock<Config> = LazyLock::new(|| match config::load_str(CONFIG, "fuzz") {
    Ok(c) => c,
    Err(e) => panic!("the fuzz targets' fixed config does not load: {e}"),
});

/// `data` split at the first `sep`: (before, after); all of it and nothing without one.
pub fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

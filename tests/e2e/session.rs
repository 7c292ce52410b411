//! Session routes (`auth: session`, `session_or_bearer`), end to end with the real OpenID
//! Provider: the gateway redirects to the provider, the provider's own login pages are played
//! (`Idp::sign_in`), the callback sets the sealed session cookies, the backend gets the
//! identity headers. The same flows in a real browser are in `session::browser`.

mod browser;
mod flow;
mod forward_auth;
mod id_token;
mod lifecycle;
mod plain_oauth;
mod redis;
mod subdomains;

use std::net::SocketAddr;

use base64::Engine;

use crate::support::idp::{GATEWAY, GATEWAY_SECRET, Idp, IdpBrowser, IdpOptions};
use crate::support::raw::{raw_request, request};
use crate::support::{EchoBackend, Gateway, RawResponse, ServerOptions, free_port};

/// The gateway's host name in browser tests (Chromium resolves `*.localhost` to loopback and
/// keeps `Secure` cookies over plain HTTP there).
pub const BROWSER_HOST: &str = "app.localhost";

/// Headers of a browser's top-level navigation.
pub const NAVIGATION: &[(&str, &str)] = &[
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Site", "none"),
];

/// Headers of a script's `fetch()`.
pub const FETCH: &[(&str, &str)] = &[
    ("Accept", "application/json"),
    ("Sec-Fetch-Mode", "cors"),
    ("Sec-Fetch-Dest", "empty"),
    ("Sec-Fetch-Site", "same-origin"),
];

/// A session secret for tests (32 bytes, base64).
pub fn secret(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// The cookies a browser keeps for the gateway's origin (names are unique; paths are all `/`).
#[derive(Debug, Clone, Default)]
pub struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    /// Applies a response's `Set-Cookie` headers.
    pub fn update(&mut self, response: &RawResponse) {
        for (name, value) in &response.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let mut parts = value.split(';');
            let Some((n, v)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.cookies.retain(|(k, _)| k != n.trim());
            if !expired {
                self.cookies
                    .push((n.trim().to_string(), v.trim().to_string()));
            }
        }
    }

    /// The `Cookie` header value.
    pub fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Names of the cookies held.
    pub fn names(&self) -> Vec<String> {
        self.cookies.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The value of cookie `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets cookie `name` (a test forging or altering one).
    pub fn set(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(n, _)| n != name);
        self.cookies.push((name.to_string(), value.to_string()));
    }

    /// Drops cookie `name`.
    pub fn remove(&mut self, name: &str) {
        self.cookies.retain(|(n, _)| n != name);
    }
}

/// A provider, a backend and a gateway with session routes.
pub struct Stack {
    /// The provider.
    pub idp: Idp,
    /// The echo backend.
    pub backend: EchoBackend,
    /// The gateway.
    pub gateway: Gateway,
}

/// The gateway config after `server:` for `issuer`, `backend`, extra `sessions` lines and
/// `routes`.
pub fn config(
    issuer: &str,
    backend: &EchoBackend,
    secret_byte: u8,
    sessions_extra: &str,
    routes: &str,
) -> String {
    format!(
        "upstreams:
  app: {{targets: [\"{backend}\"], connect_timeout: 1s, read_timeout: 5s}}
providers:
  corp:
    issuer: \"{issuer}\"
    client_id: {GATEWAY}
    client_secret: {GATEWAY_SECRET}
    scopes: [openid, email, profile]
    audiences: [urn:portcullis:api]
sessions:
  secret: \"{secret}\"
{sessions_extra}identity:
  extra_claims: {{X-Forwarded-Department: department}}
routes:
{routes}",
        backend = backend.addr(),
        secret = secret(secret_byte),
    )
}

/// The session route `app` taking every path.
pub const APP_ROUTE: &str = "  - name: app
    match: {path_prefix: /}
    upstream: app
    auth: session
    provider: corp
";

impl Stack {
    /// Starts a provider that knows the gateway's callback, a backend, and a gateway.
    pub async fn start(options: IdpOptions, sessions_extra: &str, routes: &str) -> Self {
        Self::start_with_secret(options, 7, sessions_extra, routes).await
    }

    /// [`Stack::start`] with the session secret `[secret_byte; 32]`.
    pub async fn start_with_secret(
        options: IdpOptions,
        secret_byte: u8,
        sessions_extra: &str,
        routes: &str,
    ) -> Self {
        Self::start_with_config(options, ServerOptions::default(), |issuer, backend| {
            config(issuer, backend, secret_byte, sessions_extra, routes)
        })
        .await
    }

    /// [`Stack::start`] with `server` options and the config after `server:` made by
    /// `make_config(issuer, backend)`.
    pub async fn start_with_config(
        mut options: IdpOptions,
        server: ServerOptions,
        make_config: impl FnOnce(&str, &EchoBackend) -> String,
    ) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        // 127.0.0.1 for HTTP-level tests; app.localhost for the browser, so that its cookies
        // for the gateway and for the provider (on 127.0.0.1) are kept apart.
        let port = listen.port();
        options.redirect_uris.extend([
            format!("http://{listen}/oauth2/callback"),
            format!("http://{BROWSER_HOST}:{port}/oauth2/callback"),
        ]);
        options
            .backchannel_logout_uri
            .get_or_insert_with(|| format!("http://{listen}/oauth2/backchannel_logout"));
        options.post_logout_redirect_uris.extend([
            format!("http://{listen}/"),
            format!("http://{BROWSER_HOST}:{port}/"),
        ]);
        let idp = Idp::start(options).await;
        let backend = EchoBackend::start("app").await;
        let gateway = Gateway::start_with(
            ServerOptions {
                listen: Some(listen),
                ..server
            },
            &make_config(idp.issuer(), &backend),
        )
        .await;
        Self {
            idp,
            backend,
            gateway,
        }
    }

    /// `http://app.localhost:<port><path>`: the gateway as the browser tests reach it.
    pub fn browser_url(&self, path: &str) -> String {
        format!("http://{BROWSER_HOST}:{}{path}", self.gateway.addr().port())
    }

    /// `GET target` (path or absolute URL on the gateway) with `jar`'s cookies and `headers`;
    /// the jar takes the response's cookies.
    pub async fn get(&self, jar: &mut Jar, target: &str, headers: &[(&str, &str)]) -> RawResponse {
        self.send(jar, "GET", target, headers, "").await
    }

    /// A request with `jar`'s cookies, `headers` and a form `body` (POST).
    pub async fn send(
        &self,
        jar: &mut Jar,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> RawResponse {
        let path = target
            .strip_prefix(&format!("http://{}", self.gateway.addr()))
            .unwrap_or(target);
        let cookie = jar.header();
        let length = body.len().to_string();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !cookie.is_empty() {
            all.push(("Cookie", &cookie));
        }
        if method == "POST" {
            all.push(("Content-Type", "application/x-www-form-urlencoded"));
            all.push(("Content-Length", &length));
        }
        let host = self.gateway.addr().to_string();
        // `request` adds `Content-Length: 0` to a POST; this one carries a body.
        let mut raw = request("GET", path, Some(&host), &all);
        raw.splice(..3, method.bytes());
        raw.extend_from_slice(body.as_bytes());
        let response = raw_request(self.gateway.addr(), &raw).await;
        jar.update(&response);
        response
    }

    /// Signs out as the app's own page would (`POST /oauth2/sign_out`, same-origin fetch
    /// metadata); the response (a redirect).
    pub async fn sign_out(&self, jar: &mut Jar) -> RawResponse {
        self.send(
            jar,
            "POST",
            "/oauth2/sign_out",
            &[("Sec-Fetch-Site", "same-origin")],
            "",
        )
        .await
    }

    /// Signs `login` in through the provider from a navigation to `path`: returns the jar with
    /// the session and the callback's response (a redirect back to `path`).
    pub async fn sign_in(&self, login: &str, path: &str) -> (Jar, RawResponse) {
        self.sign_in_with(&mut IdpBrowser::default(), login, path)
            .await
    }

    /// [`Stack::sign_in`] keeping the provider's own session in `provider_browser`.
    pub async fn sign_in_with(
        &self,
        provider_browser: &mut IdpBrowser,
        login: &str,
        path: &str,
    ) -> (Jar, RawResponse) {
        let mut jar = Jar::default();
        let start = self.get(&mut jar, path, NAVIGATION).await;
        assert_eq!(start.status, 302, "navigation to {path}: {}", start.text());
        let to_provider = start.header("location").expect("a Location").to_string();
        assert!(
            to_provider.starts_with(self.idp.issuer()),
            "redirected to {to_provider}"
        );
        let back = self
            .idp
            .sign_in_with(provider_browser, &to_provider, login)
            .await;
        let done = self.get(&mut jar, &back, NAVIGATION).await;
        (jar, done)
    }
}

//! A real, independent OpenID Provider for the tests: panva's `oidc-provider` (npm) run by
//! `tests/idp/server.mjs` as a child process on 127.0.0.1, plain HTTP, in-memory state.
//!
//! `bash tests/setup.sh` installs its npm dependencies. What the provider puts in each token, and
//! every config key, is described in `tests/idp/README.md`.
//!
//! ```ignore
//! let idp = Idp::start(IdpOptions::default()).await;
//! let jwt = idp
//!     .client_credentials(READER, READER_SECRET, "orders.read", Some(RESOURCE))
//!     .await;
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

use super::http_client;

/// The resource whose access tokens are RS256 JWTs (`aud` = this).
pub const RESOURCE: &str = "urn:portcullis:api";
/// The resource whose access tokens are ES256 JWTs (kid `ec-1`).
pub const RESOURCE_ES256: &str = "urn:portcullis:api-es256";
/// The resource whose access tokens are EdDSA (Ed25519) JWTs (kid `ed-1`).
pub const RESOURCE_EDDSA: &str = "urn:portcullis:api-eddsa";

/// The gateway's own client: `client_secret_basic`; authorization_code, refresh_token and
/// client_credentials; used for introspection and revocation.
pub const GATEWAY: &str = "gateway";
/// [`GATEWAY`]'s secret.
pub const GATEWAY_SECRET: &str = "gateway-secret-for-tests-only";
/// A machine caller allowed `orders.read` (client_credentials only).
pub const READER: &str = "api-reader";
/// [`READER`]'s secret.
pub const READER_SECRET: &str = "api-reader-secret-for-tests-only";
/// A machine caller allowed `orders.read orders.write` (client_credentials only).
pub const WRITER: &str = "api-writer";
/// [`WRITER`]'s secret.
pub const WRITER_SECRET: &str = "api-writer-secret-for-tests-only";

/// The redirect URI registered for [`GATEWAY`] when the test gives none (nothing listens there).
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:1/callback";

/// How long the provider may take to print `READY`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

const FORM: &str = "application/x-www-form-urlencoded";

/// `tests/idp` in this repository.
pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// A file of `tests/idp/keys`: the JWKS files `primary.json`, `rotated.json`, `overlap.json`,
/// `weak.json`, and the PEM keys `<kid>.pem` (PKCS#8 private) / `<kid>.pub.pem` (SPKI public) for
/// kids `rsa-1`, `rsa-2`, `rsa-weak` (RSA 1024), `ec-1`, `ed-1`.
pub fn key_file(name: &str) -> PathBuf {
    idp_dir().join("keys").join(name)
}

/// What a test may choose about the provider. `Default` gives the three standard clients, the
/// three standard resources, `primary.json` keys and 300 s / 300 s / 3600 s TTLs.
#[derive(Debug, Clone)]
pub struct IdpOptions {
    /// The private JWKS file (see [`key_file`]).
    pub keys: PathBuf,
    /// Lifetime of access tokens of every grant (unless a resource sets its own).
    pub access_token_ttl: Duration,
    /// Lifetime of ID tokens.
    pub id_token_ttl: Duration,
    /// Lifetime of refresh tokens (and of the provider's sign-in sessions and grants).
    pub refresh_token_ttl: Duration,
    /// `redirect_uris` of [`GATEWAY`]; empty means [`DEFAULT_REDIRECT_URI`].
    pub redirect_uris: Vec<String>,
    /// `post_logout_redirect_uris` of [`GATEWAY`].
    pub post_logout_redirect_uris: Vec<String>,
    /// `backchannel_logout_uri` of [`GATEWAY`] (with `backchannel_logout_session_required`).
    pub backchannel_logout_uri: Option<String>,
    /// More clients (oidc-provider client metadata). One with the `client_id` of a standard
    /// client replaces it.
    pub extra_clients: Vec<Value>,
    /// Replaces the standard resources: `{"<indicator>": {"alg", "scope", "format",
    /// "access_token_ttl", "audience", "kid"}}`.
    pub resources: Option<Value>,
    /// The resource used when a token request names none (`None`: opaque tokens).
    pub default_resource: Option<String>,
    /// Claim overrides per subject: `{"alice": {"groups": ["admin"]}}`.
    pub accounts: Map<String, Value>,
    /// Any other key of the server's config file (`skip_consent`, `pkce_required`, ...), set
    /// last.
    pub extra_config: Map<String, Value>,
}

impl Default for IdpOptions {
    fn default() -> Self {
        Self {
            keys: key_file("primary.json"),
            access_token_ttl: Duration::from_secs(300),
            id_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(3600),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            extra_clients: Vec::new(),
            resources: None,
            default_resource: None,
            accounts: Map::new(),
            extra_config: Map::new(),
        }
    }
}

impl IdpOptions {
    fn clients(&self) -> Vec<Value> {
        let redirect_uris = if self.redirect_uris.is_empty() {
            vec![DEFAULT_REDIRECT_URI.to_string()]
        } else {
            self.redirect_uris.clone()
        };
        let mut gateway = json!({
            "client_id": GATEWAY,
            "client_secret": GATEWAY_SECRET,
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "response_types": ["code"],
            "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
        });
        if let Some(uri) = &self.backchannel_logout_uri {
            gateway["backchannel_logout_uri"] = json!(uri);
            gateway["backchannel_logout_session_required"] = json!(true);
        }
        let machine = |id: &str, secret: &str, scope: &str, claims: Value| {
            json!({
                "client_id": id,
                "client_secret": secret,
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "redirect_uris": [],
                "scope": scope,
                "token_claims": claims,
            })
        };
        let mut clients = vec![
            gateway,
            machine(
                READER,
                READER_SECRET,
                "orders.read",
                json!({"groups": ["orders-readers"], "email": "api-reader@svc.corp.example", "region": "eu"}),
            ),
            machine(
                WRITER,
                WRITER_SECRET,
                "orders.read orders.write",
                json!({"groups": ["orders-writers"], "email": "api-writer@svc.corp.example", "region": "us"}),
            ),
        ];
        for extra in &self.extra_clients {
            clients.retain(|c| c["client_id"] != extra["client_id"]);
            clients.push(extra.clone());
        }
        clients
    }

    fn config(&self, port: u16) -> Value {
        let mut config = json!({
            "port": port,
            "keys": self.keys.display().to_string(),
            "access_token_ttl": self.access_token_ttl.as_secs(),
            "id_token_ttl": self.id_token_ttl.as_secs(),
            "refresh_token_ttl": self.refresh_token_ttl.as_secs(),
            "clients": self.clients(),
            "default_resource": self.default_resource,
            "accounts": self.accounts,
            "exit_with_stdin": true,
        });
        if let Some(resources) = &self.resources {
            config["resources"] = resources.clone();
        }
        for (key, value) in &self.extra_config {
            config[key.as_str()] = value.clone();
        }
        config
    }
}

/// A running provider; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Idp {
    options: IdpOptions,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    dir: TempDir,
    port: u16,
    issuer: String,
    client: reqwest::Client,
}

impl Idp {
    /// Starts a provider on a port of its choosing and waits until it serves.
    pub async fn start(options: IdpOptions) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory must work");
        let mut idp = Self {
            options,
            child: None,
            stdin: None,
            dir,
            port: 0,
            issuer: String::new(),
            client: http_client(),
        };
        idp.spawn(0).await;
        idp
    }

    async fn spawn(&mut self, port: u16) {
        let server = idp_dir().join("server.mjs");
        assert!(
            idp_dir().join("node_modules/oidc-provider").is_dir(),
            "the test IdP's npm dependencies are missing: run `bash tests/setup.sh`"
        );
        let config_path = self.dir.path().join("idp.json");
        let config = serde_json::to_string_pretty(&self.options.config(port))
            .expect("the IdP config serialises");
        std::fs::write(&config_path, config).expect("writing the IdP config must work");
        let stdout_path = self.dir.path().join("stdout.log");
        let stdout = File::create(&stdout_path).expect("creating stdout.log");
        let mut stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .expect("opening stderr.log");
        writeln!(stderr, "--- starting the IdP (port {port}) ---").expect("writing stderr.log");
        let mut child = Command::new("node")
            .arg(&server)
            .arg(&config_path)
            .current_dir(idp_dir())
            .env_remove("DEBUG")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawning `node tests/idp/server.mjs` must work (is Node.js installed?)");
        // Held open: the server exits when it closes, so a killed test leaves no provider behind.
        self.stdin = child.stdin.take();
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
            if let Some(issuer) = out
                .lines()
                .find_map(|line| line.strip_prefix("READY "))
                .map(str::trim)
            {
                self.issuer = issuer.to_string();
                self.port = issuer
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("the IdP printed a strange issuer: {issuer:?}"));
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "the IdP exited before becoming ready ({status}); stderr:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the IdP was not ready within {READY_TIMEOUT:?}; stderr:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where it listens (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `<issuer><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The options it runs with.
    pub fn options(&self) -> &IdpOptions {
        &self.options
    }

    /// What the provider wrote to stderr so far (one line per request, warnings, errors), across
    /// restarts.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// GETs `<issuer><path>` and parses the JSON answer; panics unless 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the IdP failed: {e}"));
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("reading the IdP's answer");
        assert_eq!(
            status,
            200,
            "GET {path} on the IdP: {}",
            String::from_utf8_lossy(&body)
        );
        parse_json(&body, path)
    }

    /// `/.well-known/openid-configuration`.
    pub async fn discovery(&self) -> Value {
        self.get_json("/.well-known/openid-configuration").await
    }

    /// The public JWKS (`/jwks`).
    pub async fn jwks(&self) -> Value {
        self.get_json("/jwks").await
    }

    /// POSTs a form to `<issuer><path>` authenticating as `client_id` (HTTP Basic); the status
    /// and the JSON answer (`Value::Null` when the body is empty or not JSON).
    pub async fn post_form(
        &self,
        path: &str,
        client_id: &str,
        secret: &str,
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .basic_auth(client_id, Some(secret))
            .header(CONTENT_TYPE, FORM)
            .body(form_body(params))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} on the IdP failed: {e}"));
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("reading the IdP's answer");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A token request (`/token`) as `client_id`: status and JSON answer, for tests of failures.
    pub async fn token_request(
        &self,
        client_id: &str,
        secret: &str,
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        self.post_form("/token", client_id, secret, params).await
    }

    /// An access token from the client_credentials grant; a JWT for a `resource`, opaque without
    /// one. Panics when the provider refuses.
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        scope: &str,
        resource: Option<&str>,
    ) -> String {
        let mut params = vec![("grant_type", "client_credentials"), ("scope", scope)];
        if let Some(resource) = resource {
            params.push(("resource", resource));
        }
        let (status, body) = self.token_request(client_id, secret, &params).await;
        assert_eq!(
            status, 200,
            "client_credentials for {client_id} refused: {body}"
        );
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {body}"))
            .to_string()
    }

    /// Exchanges an authorization code for [`GATEWAY`]; the whole token response.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Value {
        let (status, body) = self
            .token_request(
                GATEWAY,
                GATEWAY_SECRET,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                ],
            )
            .await;
        assert_eq!(status, 200, "the code exchange was refused: {body}");
        body
    }

    /// Introspects `token` as [`GATEWAY`]; the JSON answer (`{"active": false}` for dead ones).
    pub async fn introspect(&self, token: &str) -> Value {
        let (status, body) = self
            .post_form(
                "/token/introspection",
                GATEWAY,
                GATEWAY_SECRET,
                &[("token", token)],
            )
            .await;
        assert_eq!(status, 200, "introspection failed: {body}");
        body
    }

    /// Revokes `token` as [`GATEWAY`] (any client's token).
    pub async fn revoke(&self, token: &str) {
        let (status, body) = self
            .post_form(
                "/token/revocation",
                GATEWAY,
                GATEWAY_SECRET,
                &[("token", token)],
            )
            .await;
        assert_eq!(status, 200, "revocation failed: {body}");
    }

    /// `/auth?...` for [`GATEWAY`] with `response_type=code` and these extra parameters
    /// (`scope`, `state`, `nonce`, `resource`, `code_challenge`, ...).
    pub fn authorize_url(&self, redirect_uri: &str, params: &[(&str, &str)]) -> String {
        let mut all = vec![
            ("client_id", GATEWAY),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
        ];
        all.extend_from_slice(params);
        format!("{}?{}", self.url("/auth"), form_body(&all))
    }

    /// Plays a browser through the provider's own sign-in pages: GETs `authorize_url` (the
    /// provider's `/auth?...`, as a relying party redirects to it), signs in as `login` (any
    /// password is accepted), confirms consent if asked, and returns the URL the provider finally
    /// redirects to (the client's `redirect_uri?code=...&state=...&iss=...`, or its error
    /// redirect). A fresh browser each call: no single sign-on, no session kept.
    pub async fn sign_in(&self, authorize_url: &str, login: &str) -> String {
        self.sign_in_with(&mut IdpBrowser::default(), authorize_url, login)
            .await
    }

    /// [`Idp::sign_in`] with `browser`'s cookies: the provider's session is kept in it, so a
    /// second sign-in with the same browser goes straight back to the client (single sign-on)
    /// and [`Idp::end_session`] can end it.
    pub async fn sign_in_with(
        &self,
        browser: &mut IdpBrowser,
        authorize_url: &str,
        login: &str,
    ) -> String {
        let mut url = authorize_url.to_string();
        let mut form: Option<String> = None;
        for _ in 0..12 {
            let (status, location, body) = self.browse(browser, &url, form.take()).await;
            if let Some(next) = location {
                if !self.is_own(&next) {
                    return next;
                }
                url = next;
            } else if status == 200 && body.contains(r#"name="prompt" value="login""#) {
                form = Some(form_body(&[
                    ("prompt", "login"),
                    ("login", login),
                    ("password", "any password"),
                ]));
            } else if status == 200 && body.contains(r#"name="prompt" value="consent""#) {
                form = Some(form_body(&[("prompt", "consent")]));
            } else {
                panic!("sign-in: unexpected {status} from {url}:\n{body}");
            }
        }
        panic!("sign-in: too many steps, last at {url}");
    }

    /// RP-initiated logout in `browser`: GETs `/session/end` with `params` (`id_token_hint`,
    /// `post_logout_redirect_uri`, `state`, `client_id`...), confirms "Yes, sign me out", and
    /// returns where the provider finally sends the browser (the `post_logout_redirect_uri`, or
    /// its own success page). Clients with a `backchannel_logout_uri` get their logout token
    /// before this returns.
    pub async fn end_session(&self, browser: &mut IdpBrowser, params: &[(&str, &str)]) -> String {
        let mut url = self.url("/session/end");
        if !params.is_empty() {
            url = format!("{url}?{}", form_body(params));
        }
        let (status, location, body) = self.browse(browser, &url, None).await;
        assert!(
            status == 200 && location.is_none(),
            "end_session: {status} {location:?} from {url}:\n{body}"
        );
        let xsrf = body
            .split(r#"name="xsrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("end_session: no xsrf in the logout page:\n{body}"))
            .to_string();
        let mut url = self.url("/session/end/confirm");
        let mut form = Some(form_body(&[("xsrf", &xsrf), ("logout", "yes")]));
        for _ in 0..6 {
            let (status, location, body) = self.browse(browser, &url, form.take()).await;
            match location {
                Some(next) if self.is_own(&next) => url = next,
                Some(next) => return next,
                None if status == 200 => return url,
                None => panic!("end_session: unexpected {status} from {url}:\n{body}"),
            }
        }
        panic!("end_session: too many steps, last at {url}");
    }

    /// One browser request: GET, or POST of a form; the status, the absolute `Location` of a
    /// redirect, and the body.
    async fn browse(
        &self,
        browser: &mut IdpBrowser,
        url: &str,
        form: Option<String>,
    ) -> (u16, Option<String>, String) {
        let mut request = match form {
            Some(body) => self.client.post(url).header(CONTENT_TYPE, FORM).body(body),
            None => self.client.get(url),
        };
        if !browser.cookies.is_empty() {
            request = request.header(COOKIE, browser.cookie_header());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("browser: {url} failed: {e}"));
        browser.update(response.headers());
        let status = response.status();
        let location = if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("browser: {status} without Location from {url}"));
            let next = url::Url::parse(url)
                .and_then(|base| base.join(location))
                .unwrap_or_else(|e| panic!("browser: bad Location {location:?}: {e}"));
            Some(next.to_string())
        } else {
            None
        };
        let body = response.text().await.unwrap_or_default();
        (status.as_u16(), location, body)
    }

    /// Whether `url` is on the provider's origin.
    fn is_own(&self, url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|u| {
            u.scheme() == "http"
                && u.host_str() == Some("127.0.0.1")
                && u.port_or_known_default() == Some(self.port)
        })
    }

    /// Stops the provider (SIGTERM, SIGKILL after 3 s) and waits for it; its port is free after.
    pub fn stop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            super::gateway::stop_child(&mut child);
        }
    }

    /// Whether the provider process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Stops it and starts it again on the same port with the same options. Everything the
    /// provider stored (tokens, sessions, grants) is forgotten.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn(port).await;
        assert_eq!(self.port, port, "the IdP came back on another port");
    }

    /// [`Idp::restart`] with another private JWKS file (see [`key_file`]): key rotation.
    pub async fn restart_with_keys(&mut self, keys_file: impl Into<PathBuf>) {
        self.options.keys = keys_file.into();
        self.restart().await;
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The header and the payload of a compact JWS, decoded (the signature is not checked).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token:?}");
    let decode = |part: &str, what: &str| -> Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .unwrap_or_else(|e| panic!("the JWT {what} is not base64url ({e}): {token:?}"));
        parse_json(&bytes, what)
    };
    (decode(parts[0], "header"), decode(parts[1], "payload"))
}

/// The `code` parameter of a redirect URL the provider sent to the client.
pub fn code_of(redirect: &str) -> String {
    query_param(redirect, "code").unwrap_or_else(|| panic!("no code in {redirect}"))
}

/// A query parameter of `url`, decoded.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).unwrap_or_else(|e| panic!("not a URL {url:?}: {e}"));
    url.query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// `application/x-www-form-urlencoded` of `params`.
pub fn form_body(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn parse_json(body: &[u8], context: &str) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{context}: not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })
}

/// The provider's cookies, as a browser keeps them (one origin, so paths are ignored).
#[derive(Debug, Clone, Default)]
pub struct IdpBrowser {
    cookies: Vec<(String, String)>,
}

impl IdpBrowser {
    /// Whether it holds a cookie named `name` (the provider's session is `_session`).
    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.iter().any(|(n, _)| n == name)
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Applies the `Set-Cookie` headers of a response: adds or replaces by name, drops expired
    /// ones.
    fn update(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let mut attributes = value.split(';');
            let Some((name, cookie)) = attributes.next().and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            let name = name.trim().to_string();
            let expired = attributes.any(|attribute| {
                let attribute = attribute.trim().to_ascii_lowercase();
                attribute == "max-age=0" || attribute.starts_with("expires=thu, 01 jan 1970")
            });
            self.cookies.retain(|(n, _)| *n != name);
            if !expired {
                self.cookies.push((name, cookie.trim().to_string()));
            }
        }
    }
}

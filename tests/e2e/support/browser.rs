//! A real browser for the end-to-end tests: headless Chromium driven through chromedriver over the
//! W3C WebDriver protocol (the `fantoccini` client).
//!
//! Every [`Browser`] is its own chromedriver process on a free port and its own Chromium with a
//! fresh profile in a temporary directory: its own cookies, no state shared with other tests.
//! Both processes are stopped when the `Browser` is dropped (or [`Browser::close`]d). Every wait
//! is bounded; failures panic with what was expected. When a test panics while a browser is open,
//! the end of chromedriver's log (which names every WebDriver command and answer) is printed and
//! the whole log is kept in the browser's temporary directory.
//!
//! Chromium resolves no host name but `localhost` (and `*.localhost`): everything else fails at
//! once, so no page of a test reaches the network (the provider's pages `@import` a web font) and
//! nothing waits on DNS. [`BrowserOptions::map_hosts`] points more names at loopback.
//!
//! `chromium` and `chromedriver` are looked up on `PATH` (Debian's `chromium` and
//! `chromium-driver` packages; `bash tests/setup.sh` installs them).
//!
//! ```ignore
//! let browser = Browser::start().await;
//! browser.goto(&idp.authorize_url(&redirect_uri, &[("scope", "openid")])).await;
//! browser.submit_idp_login("alice").await;
//! let landed = browser.wait_for_url_prefix(&redirect_uri, Duration::from_secs(10)).await;
//! ```

use std::fmt::Display;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, Value, json};
use tempfile::TempDir;

use super::{free_port, http_client};

/// How long chromedriver may take to answer `/status` with `ready: true`.
const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long creating a session (starting Chromium) may take.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Chromium's own limits: page loads and scripts (`execute`, `fetch`).
const PAGE_LOAD_TIMEOUT: Duration = Duration::from_secs(20);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Any one WebDriver command, on top of the limits above.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Browser::fill`], [`Browser::click`] and friends wait for their element to appear.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Browser::submit_idp_login`] waits for the provider to let the browser go.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How many lines of chromedriver's log a panic shows.
const LOG_TAIL_LINES: usize = 40;

/// What a test may choose about its browser. `Default`: nothing more than the standard set-up.
#[derive(Debug, Clone, Default)]
pub struct BrowserOptions {
    /// Host names Chromium resolves to an address (`("app.test", "127.0.0.1")`), besides
    /// `localhost`; the port stays the URL's. Every other name fails to resolve.
    pub map_hosts: Vec<(String, String)>,
    /// More Chromium command-line switches (`--lang=de`, ...), after the standard ones.
    pub args: Vec<String>,
    /// Whether TLS certificates Chromium cannot verify (self-signed ones) are accepted.
    pub accept_insecure_certs: bool,
}

/// A cookie as the browser holds it (WebDriver's cookie object), or one to give it
/// ([`Browser::set_cookie`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieInfo {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
    /// The domain it is sent to: for a host-only cookie, the host (`127.0.0.1`); with a leading
    /// dot for a `Domain` cookie. Empty in [`Browser::set_cookie`]: host-only on the current page.
    pub domain: String,
    /// Its path; empty in [`Browser::set_cookie`]: `/`.
    pub path: String,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite`: `Some("Lax" | "Strict" | "None")`. Chromium reports `Lax` for a cookie set
    /// without the attribute. In [`Browser::set_cookie`], `None` means `Lax`.
    pub same_site: Option<String>,
    /// Expiry, seconds since the Unix epoch; `None` for a session cookie.
    pub expiry: Option<u64>,
}

/// What [`Browser::fetch_with`] sends: `window.fetch(url, {method, headers, body, redirect,
/// credentials})` from the current page.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute, or relative to the current page.
    pub url: String,
    /// Request headers (the browser adds its own; forbidden ones like `Cookie` are ignored).
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Option<String>,
    /// `"follow"` (the default), `"manual"` (a redirect answers status 0, type
    /// `opaqueredirect`) or `"error"`.
    pub redirect: String,
    /// `"same-origin"` (the default), `"include"` or `"omit"`.
    pub credentials: String,
}

impl FetchRequest {
    /// A `method` request of `url` with the defaults: no headers, no body, redirects followed,
    /// cookies sent to the page's own origin only.
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            redirect: "follow".to_string(),
            credentials: "same-origin".to_string(),
        }
    }
}

/// The answer to a fetch, as the page's script sees it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `response.status` (0 for an opaque or opaque-redirect answer).
    pub status: u16,
    /// `response.url`: where it ended after redirects.
    pub url: String,
    /// `response.redirected`.
    pub redirected: bool,
    /// `response.type`: `basic`, `cors`, `opaque`, `opaqueredirect`.
    pub kind: String,
    /// The headers the script may read (never `Set-Cookie`), names lowercase.
    pub headers: Vec<(String, String)>,
    /// `await response.text()`.
    pub body: String,
}

impl Fetched {
    /// The first value of header `name` (lowercase), if the script may read it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A headless Chromium driven through its own chromedriver; both stop when it is dropped.
pub struct Browser {
    client: Option<Client>,
    driver: Option<Child>,
    session_id: String,
    port: u16,
    /// chromedriver's log and output, Chromium's profile (`profile/`) and temporary files
    /// (`tmp/`). Kept, less the profile, when a test panics.
    dir: Option<TempDir>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start() -> Self {
        Self::start_with(BrowserOptions::default()).await
    }

    /// [`Browser::start`] with `options`.
    pub async fn start_with(options: BrowserOptions) -> Self {
        let chromium = find_on_path(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| {
                panic!(
                    "no `chromium` on PATH: the browser tests need Chromium and chromedriver \
                     (run `bash tests/setup.sh`, which installs Debian's chromium and \
                     chromium-driver)"
                )
            });
        let chromedriver = find_on_path(&["chromedriver"]).unwrap_or_else(|| {
            panic!(
                "no `chromedriver` on PATH: run `bash tests/setup.sh` (installs Debian's \
                 chromium-driver)"
            )
        });
        let dir = tempfile::tempdir().expect("creating a temporary directory must work");
        std::fs::create_dir(dir.path().join("tmp")).expect("creating tmp/ in the browser dir");

        // A free port can be taken between `free_port` and chromedriver's bind: try a few.
        let mut attempt = 0;
        let (driver, port) = loop {
            attempt += 1;
            let port = free_port();
            let mut driver = spawn_driver(&chromedriver, port, dir.path());
            match wait_driver_ready(&mut driver, port, dir.path()).await {
                Ok(()) => break (driver, port),
                Err(why) if attempt < 3 => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    eprintln!("browser: chromedriver on port {port} did not start ({why}); again");
                }
                Err(why) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    panic!(
                        "browser: chromedriver did not start ({why}); its log ({}):\n{}",
                        dir.path().join("chromedriver.log").display(),
                        log_tail(dir.path())
                    );
                }
            }
        };

        let mut browser = Self {
            client: None,
            driver: Some(driver),
            session_id: String::new(),
            port,
            dir: Some(dir),
        };
        let capabilities = browser.capabilities(&chromium, &options);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let webdriver = format!("http://127.0.0.1:{port}");
        let connect = builder.connect(&webdriver);
        let client = match tokio::time::timeout(SESSION_TIMEOUT, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => browser.fail(format!("creating a Chromium session failed: {e}")),
            Err(_) => browser.fail(format!(
                "creating a Chromium session took longer than {SESSION_TIMEOUT:?}"
            )),
        };
        browser.session_id = browser
            .run("reading the session id", client.session_id())
            .await
            .unwrap_or_default();
        browser.client = Some(client);
        browser
    }

    /// The session's capabilities: headless Chromium, quiet and deterministic, with its profile
    /// and temporary files in this browser's directory.
    fn capabilities(&self, chromium: &Path, options: &BrowserOptions) -> Map<String, Value> {
        let profile = self.dir().join("profile");
        let mut rules: Vec<String> = options
            .map_hosts
            .iter()
            .map(|(host, to)| format!("MAP {host} {to}"))
            .collect();
        rules.push(
            "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE *.localhost, EXCLUDE 127.0.0.1, \
             EXCLUDE [::1]"
                .to_string(),
        );
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-extensions",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-sync",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-breakpad",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--disable-renderer-backgrounding",
            "--disable-hang-monitor",
            "--disable-prompt-on-repost",
            "--disable-features=Translate,OptimizationHints,MediaRouter,HttpsUpgrades,\
             HttpsFirstBalancedModeAutoEnable,AutofillServerCommunication,PasswordLeakDetection",
            "--no-first-run",
            "--no-default-browser-check",
            "--no-proxy-server",
            "--password-store=basic",
            "--metrics-recording-only",
            "--mute-audio",
            "--lang=en-US",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        args.push(format!("--host-resolver-rules={}", rules.join(", ")));
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(options.args.iter().cloned());
        let value = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": options.accept_insecure_certs,
            "pageLoadStrategy": "normal",
            "timeouts": {
                "implicit": 0,
                "pageLoad": PAGE_LOAD_TIMEOUT.as_millis(),
                "script": SCRIPT_TIMEOUT.as_millis(),
            },
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": args,
                "prefs": {
                    "credentials_enable_service": false,
                    "profile.password_manager_enabled": false,
                    "profile.password_manager_leak_detection": false,
                    "intl.accept_languages": "en-US",
                },
            },
        });
        match value {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object literal is an object"),
        }
    }

    fn dir(&self) -> &Path {
        match &self.dir {
            Some(dir) => dir.path(),
            None => unreachable!("the directory is only taken when the browser is dropped"),
        }
    }

    fn client(&self) -> &Client {
        match &self.client {
            Some(client) => client,
            None => self.fail("the browser is closed"),
        }
    }

    /// Panics with `message`, naming chromedriver's log (its tail is printed by `Drop`).
    fn fail(&self, message: impl Display) -> ! {
        panic!(
            "browser: {message} (chromedriver log: {})",
            self.log_path().display()
        )
    }

    /// Runs one WebDriver command with a bound; panics naming `what` when it fails.
    async fn run<T>(&self, what: &str, command: impl Future<Output = Result<T, CmdError>>) -> T {
        match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => self.fail(format!("{what}: {e}")),
            Err(_) => self.fail(format!(
                "{what}: chromedriver did not answer within {COMMAND_TIMEOUT:?}"
            )),
        }
    }

    /// A WebDriver command of this session that fantoccini has no faithful method for.
    async fn raw(
        &self,
        what: &str,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let command = RawCommand {
            method,
            path: path.to_string(),
            body,
        };
        self.run(what, self.client().issue_cmd(command)).await
    }

    /// chromedriver's log file (one line per WebDriver command and answer).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("chromedriver.log")
    }

    /// Navigates to `url` and waits for the page to load (redirects followed).
    pub async fn goto(&self, url: &str) {
        self.run(&format!("navigating to {url}"), self.client().goto(url))
            .await;
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> String {
        self.run("reading the current URL", self.client().current_url())
            .await
            .to_string()
    }

    /// `document.body.innerText` of the current page (empty without a body).
    pub async fn page_text(&self) -> String {
        let value = self
            .execute(
                "return document.body ? document.body.innerText : '';",
                Vec::new(),
            )
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The current page's HTML, as the browser serialises its DOM.
    pub async fn page_source(&self) -> String {
        self.run("reading the page source", self.client().source())
            .await
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the current page; what it
    /// returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.run("running a script", self.client().execute(script, args))
            .await
    }

    /// Runs asynchronous `script` in the current page: its last argument is the callback to call
    /// with the result. Bounded by the session's script timeout (20 s).
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.run(
            "running an asynchronous script",
            self.client().execute_async(script, args),
        )
        .await
    }

    /// Whether an element matches `css` on the current page now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        !self
            .run(
                &format!("looking for {css:?}"),
                self.client().find_all(Locator::Css(css)),
            )
            .await
            .is_empty()
    }

    /// The first element matching `css`, waiting up to 10 s for it to appear.
    async fn element(&self, css: &str) -> Element {
        let wait = self
            .client()
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css));
        match tokio::time::timeout(COMMAND_TIMEOUT, wait).await {
            Ok(Ok(element)) => element,
            Ok(Err(CmdError::WaitTimeout)) | Err(_) => {
                let url = self.current_url().await;
                let text = self.page_text().await;
                self.fail(format!(
                    "no element matches {css:?} within {ELEMENT_TIMEOUT:?} on {url}; the page \
                     says:\n{}",
                    shorten(&text, 2000)
                ))
            }
            Ok(Err(e)) => self.fail(format!("looking for {css:?}: {e}")),
        }
    }

    /// The visible text of the first element matching `css` (waits for it as [`Browser::fill`]).
    pub async fn text_of(&self, css: &str) -> String {
        let element = self.element(css).await;
        self.run(&format!("reading the text of {css:?}"), element.text())
            .await
    }

    /// Types `value` into the first element matching `css`, after clearing it; waits up to 10 s
    /// for the element to appear.
    pub async fn fill(&self, css: &str, value: &str) {
        let element = self.element(css).await;
        self.run(&format!("clearing {css:?}"), element.clear())
            .await;
        self.run(&format!("typing into {css:?}"), element.send_keys(value))
            .await;
    }

    /// Clicks the first element matching `css` (waits up to 10 s for it to appear); a navigation
    /// it starts has loaded when this returns.
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.run(&format!("clicking {css:?}"), element.click())
            .await;
    }

    /// Signs in on the test provider's login page (oidc-provider's devInteractions: a form with
    /// `login` and `password`, any password accepted) as `login`, and confirms the consent page
    /// if one follows. Returns the URL the browser is at once it left the provider's interaction
    /// pages (the client's redirect URI, usually). Panics when the current page is not the login
    /// page, or when the browser is still on the provider's pages after 15 s.
    pub async fn submit_idp_login(&self, login: &str) -> String {
        self.fill("form input[name=login]", login).await;
        self.fill("form input[name=password]", "any password").await;
        self.click("form button[type=submit]").await;
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        let mut consented = false;
        loop {
            let url = self.current_url().await;
            let on_consent = self.exists("form input[name=prompt][value=consent]").await;
            if on_consent && !consented {
                self.click("form button[type=submit]").await;
                consented = true;
                continue;
            }
            let on_login = self.exists("form input[name=prompt][value=login]").await;
            // Between two pages the form is gone but the URL is still the provider's
            // interaction: only a URL off the interaction pages means the sign-in is done.
            if !on_login && !on_consent && !url.contains("/interaction/") {
                return url;
            }
            if Instant::now() >= deadline {
                let page = if on_login { "login" } else { "consent" };
                let text = self.page_text().await;
                self.fail(format!(
                    "still on the provider's {page} page {LOGIN_TIMEOUT:?} after signing in as \
                     {login:?}, at {url}; the page says:\n{}",
                    shorten(&text, 2000)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the current URL every 50 ms until `accept` holds for it; returns it. Panics after
    /// `timeout` naming `what`, the last URL and the page's text.
    pub async fn wait_for_url(
        &self,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self.current_url().await;
            if accept(&url) {
                return url;
            }
            if Instant::now() >= deadline {
                let text = self.page_text().await;
                self.fail(format!(
                    "timed out after {timeout:?} waiting for the URL to be {what}; it is {url} \
                     and the page says:\n{}",
                    shorten(&text, 2000)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`Browser::wait_for_url`] for a URL starting with `prefix`.
    pub async fn wait_for_url_prefix(&self, prefix: &str, timeout: Duration) -> String {
        self.wait_for_url(&format!("under {prefix}"), timeout, |url| {
            url.starts_with(prefix)
        })
        .await
    }

    /// Every cookie the browser would send to the current page's URL (HttpOnly ones too).
    pub async fn cookies(&self) -> Vec<CookieInfo> {
        let value = self
            .raw("reading the cookies", http::Method::GET, "cookie", None)
            .await;
        let list = value
            .as_array()
            .unwrap_or_else(|| self.fail(format!("the cookie list is not an array: {value}")));
        list.iter().map(cookie_from_json).collect()
    }

    /// The cookie named `name` of [`Browser::cookies`], if there is one.
    pub async fn cookie(&self, name: &str) -> Option<CookieInfo> {
        self.cookies().await.into_iter().find(|c| c.name == name)
    }

    /// Gives the browser `cookie` for the current page's site (WebDriver "Add Cookie": the page
    /// must be on the cookie's domain). Panics when the browser refuses it.
    pub async fn set_cookie(&self, cookie: &CookieInfo) {
        let mut object = json!({
            "name": cookie.name,
            "value": cookie.value,
            "path": if cookie.path.is_empty() { "/" } else { cookie.path.as_str() },
            "secure": cookie.secure,
            "httpOnly": cookie.http_only,
            "sameSite": cookie.same_site.as_deref().unwrap_or("Lax"),
        });
        if !cookie.domain.is_empty() {
            object["domain"] = json!(cookie.domain);
        }
        if let Some(expiry) = cookie.expiry {
            object["expiry"] = json!(expiry);
        }
        self.raw(
            &format!("adding cookie {:?}", cookie.name),
            http::Method::POST,
            "cookie",
            Some(json!({ "cookie": object })),
        )
        .await;
    }

    /// [`Browser::set_cookie`] of a host-only session cookie with `SameSite=Lax`.
    pub async fn add_cookie(
        &self,
        name: &str,
        value: &str,
        path: &str,
        secure: bool,
        http_only: bool,
    ) {
        self.set_cookie(&CookieInfo {
            name: name.to_string(),
            value: value.to_string(),
            path: path.to_string(),
            secure,
            http_only,
            ..CookieInfo::default()
        })
        .await;
    }

    /// Deletes the current page's cookie `name` (nothing when there is none).
    pub async fn delete_cookie(&self, name: &str) {
        let path = format!("cookie/{}", url_path_segment(name));
        self.raw(
            &format!("deleting cookie {name:?}"),
            http::Method::DELETE,
            &path,
            None,
        )
        .await;
    }

    /// Deletes every cookie visible to the current page.
    pub async fn delete_all_cookies(&self) {
        self.raw("deleting the cookies", http::Method::DELETE, "cookie", None)
            .await;
    }

    /// `window.fetch(url, {method, headers})` from the current page, with the browser's cookies
    /// for the page's origin; redirects followed. Panics when the fetch fails (network error,
    /// refused by CORS).
    pub async fn fetch(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Fetched {
        let mut request = FetchRequest::new(method, url);
        request.headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        self.fetch_with(&request)
            .await
            .unwrap_or_else(|e| self.fail(format!("fetch {method} {url} failed: {e}")))
    }

    /// `window.fetch` of `request` from the current page: the answer, or the error the script
    /// got (`TypeError: Failed to fetch` for a network error, a CORS refusal, a redirect with
    /// `redirect: "error"`).
    pub async fn fetch_with(&self, request: &FetchRequest) -> Result<Fetched, String> {
        const SCRIPT: &str = r#"
            const [method, url, headers, body, redirect, credentials, done] = arguments;
            const init = { method, headers, redirect, credentials };
            if (body !== null) { init.body = body; }
            fetch(url, init)
              .then(async (r) => done({
                ok: true,
                status: r.status,
                url: r.url,
                redirected: r.redirected,
                type: r.type,
                headers: Array.from(r.headers.entries()),
                body: await r.text(),
              }))
              .catch((e) => done({ ok: false, error: String(e) }));
        "#;
        let args = vec![
            json!(request.method),
            json!(request.url),
            json!(request.headers),
            json!(request.body),
            json!(request.redirect),
            json!(request.credentials),
        ];
        let value = self.execute_async(SCRIPT, args).await;
        if value["ok"] != json!(true) {
            return Err(value["error"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string));
        }
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
        let headers = value["headers"]
            .as_array()
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|pair| {
                        (
                            pair[0].as_str().unwrap_or_default().to_string(),
                            pair[1].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Fetched {
            status: value["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or_default(),
            url: text("url"),
            redirected: value["redirected"].as_bool().unwrap_or_default(),
            kind: text("type"),
            headers,
            body: text("body"),
        })
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, client.close()).await;
        }
        if let Some(mut driver) = self.driver.take() {
            super::gateway::stop_child(&mut driver);
        }
        self.kill_browser();
    }

    /// Ends the session without the async client: `DELETE /session/<id>` over a plain socket,
    /// bounded. Chromium exits before chromedriver answers.
    fn delete_session_blocking(&self) {
        if self.session_id.is_empty() {
            return;
        }
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.session_id, self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        // chromedriver keeps the connection open: read the answer's head and body, no more.
        let mut answer = Vec::new();
        let mut chunk = [0_u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
            if http_answer_complete(&answer) {
                break;
            }
        }
    }

    /// Kills what is left of this browser's Chromium: every process started with its profile
    /// directory (the browser process, whose renderers and helpers exit with it), found in
    /// `/proc`. Nothing after a clean end of the session; the fallback when it did not end, or
    /// when it was never created (no pid known).
    fn kill_browser(&self) {
        let profile = format!("--user-data-dir={}", self.dir().join("profile").display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut killed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let ours = cmdline
                .split(|byte| *byte == 0)
                .any(|arg| arg == profile.as_bytes());
            if ours {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
                killed.push(pid);
            }
        }
        // Gone (or a zombie) before the profile directory is removed under it.
        let deadline = Instant::now() + Duration::from_secs(3);
        while killed.iter().any(|pid| is_running(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.client.is_some() {
            self.delete_session_blocking();
        }
        self.kill_browser();
        if let Some(mut driver) = self.driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            let _ = std::fs::remove_dir_all(kept.join("profile"));
            let _ = std::fs::remove_dir_all(kept.join("tmp"));
            eprintln!(
                "--- browser: the end of chromedriver's log (all of it is kept in {}) ---\n{}",
                kept.display(),
                log_tail(&kept)
            );
        }
    }
}

/// A command of the current session: `<method> /session/<id>/<path>` with a JSON body.
#[derive(Debug)]
struct RawCommand {
    method: http::Method,
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for RawCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/{}", self.path))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = match (&self.body, &self.method) {
            (Some(body), _) => Some(body.to_string()),
            // WebDriver wants a JSON body on every POST.
            (None, &http::Method::POST) => Some("{}".to_string()),
            (None, _) => None,
        };
        (self.method.clone(), body)
    }
}

fn cookie_from_json(value: &Value) -> CookieInfo {
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
    CookieInfo {
        name: text("name"),
        value: text("value"),
        domain: text("domain"),
        path: text("path"),
        secure: value["secure"].as_bool().unwrap_or_default(),
        http_only: value["httpOnly"].as_bool().unwrap_or_default(),
        same_site: value["sameSite"].as_str().map(str::to_string),
        expiry: value["expiry"]
            .as_u64()
            .or_else(|| value["expiry"].as_f64().map(|f| f as u64)),
    }
}

/// Whether process `pid` exists and is not a zombie.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) state ...`; comm may hold spaces and parentheses.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Whether `answer` holds a whole HTTP/1.1 response with a `Content-Length` body.
fn http_answer_complete(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    answer.len() >= end + 4 + length
}

/// `name` percent-encoded for one URL path segment.
fn url_path_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The first executable named one of `names` in a directory of `PATH`.
fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Starts chromedriver on `port`, logging to `<dir>/chromedriver.log` (its output and Chromium's
/// to `<dir>/chromedriver.out`), with `TMPDIR` in `dir` so that Chromium's temporary files go
/// away with it.
fn spawn_driver(chromedriver: &Path, port: u16, dir: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("chromedriver.out"))
        .expect("opening chromedriver.out");
    let err = out.try_clone().expect("cloning a file handle");
    Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!(
            "--log-path={}",
            dir.join("chromedriver.log").display()
        ))
        .arg("--append-log")
        .arg("--readable-timestamp")
        .env("TMPDIR", dir.join("tmp"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {} failed: {e}", chromedriver.display()))
}

/// Polls chromedriver's `/status` until it is ready; an error when it exits or takes too long.
async fn wait_driver_ready(driver: &mut Child, port: u16, dir: &Path) -> Result<(), String> {
    let client = http_client();
    let url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + DRIVER_READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!(
                "it exited ({status}): {}",
                std::fs::read_to_string(dir.join("chromedriver.out")).unwrap_or_default()
            ));
        }
        if let Ok(response) = client.get(&url).send().await
            && let Ok(body) = response.bytes().await
            && let Ok(status) = serde_json::from_slice::<Value>(&body)
            && status["value"]["ready"] == json!(true)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready within {DRIVER_READY_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of chromedriver's log and output, each cut to a readable length.
fn log_tail(dir: &Path) -> String {
    let mut tail = String::new();
    for file in ["chromedriver.log", "chromedriver.out"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        tail.push_str(&format!("[{file}]\n"));
        for line in &lines[start..] {
            tail.push_str(&shorten(line, 400));
            tail.push('\n');
        }
    }
    tail
}

/// `text` cut to at most `max` characters, marked when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}... [cut]")
}

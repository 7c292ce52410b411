//! Configuration: the YAML file → a validated, typed [`Config`].
//!
//! Pipeline: text → [`file::FileConfig`] (serde, unknown keys refused) → [`validate`] (every
//! semantic problem collected) → [`Config`]. Each error carries `file:line:column` and the key path
//! (`routes[2].upstream`). serde stops at the first structural error, so when it does,
//! [`structure`] walks the document against the schema to report every unknown key and type
//! error at once; semantic errors are all reported together. Problems that do not stop a config
//! from loading (a secret written in the file, a session secret that does not look random) are
//! warnings. Loading does no network I/O.

mod cookie_domain;
pub mod file;
mod locate;
pub mod secret;
mod structure;
mod target;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use url::Url;

use crate::routing::Route;
pub use locate::Position;
pub use secret::Secret;
pub use target::Target;

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// `server:`
    pub server: ServerConfig,
    /// `providers:` by name (used by later capabilities).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `sessions:` (used by later capabilities).
    pub sessions: Option<SessionsConfig>,
    /// `upstreams:`, in name order; routes refer to them by index.
    pub upstreams: Vec<UpstreamConfig>,
    /// `identity:`
    pub identity: IdentityConfig,
    /// `routes:`, compiled, in file order.
    pub routes: Vec<Route>,
}

/// A TLS listener.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// Where.
    pub address: SocketAddr,
    /// Its certificates; the first is the default.
    pub certs: Vec<Arc<crate::tls::LoadedCert>>,
}

/// `server:`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Plain-HTTP public listeners.
    pub listen: Vec<SocketAddr>,
    /// TLS public listeners.
    pub tls_listen: Vec<TlsListener>,
    /// Plain listeners that redirect every request to HTTPS on this port.
    pub https_redirects: Vec<(SocketAddr, u16)>,
    /// Admin listener.
    pub admin: SocketAddr,
    /// External URL, for redirect URIs.
    pub public_url: Option<Url>,
    /// Prefix of the gateway's own endpoints, e.g. `/oauth2`.
    pub auth_prefix: String,
    /// The request id header (lowercase).
    pub request_id_header: http::HeaderName,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Proxy worker threads.
    pub threads: usize,
    /// How long SIGTERM waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Accept HTTP/2 with prior knowledge on plain listeners.
    pub h2c: bool,
    /// Write one JSON access-log line per request to stdout.
    pub access_log: bool,
    /// The operational log's format (read by `main` before the config is loaded).
    pub log_format: LogFormat,
    /// pingora's pid file.
    pub pid_file: String,
    /// pingora's graceful-upgrade socket.
    pub upgrade_sock: String,
    /// Limits on what clients send.
    pub limits: Limits,
    /// How upstream target names are resolved.
    pub dns: DnsConfig,
}

/// `server.dns:`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers asked for upstream target names; empty: the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
}

/// `server.log_format:`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// `server.limits:`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line and headers, bytes.
    pub max_header_bytes: usize,
    /// Header count.
    pub max_headers: usize,
    /// Request target, bytes.
    pub max_uri_bytes: usize,
    /// `Cookie` headers, bytes.
    pub max_cookie_bytes: usize,
    /// Per-read client body timeout.
    pub client_body_timeout: Duration,
    /// Longest wait for the first byte of a request head, on a new or a kept-alive connection
    /// (and for an HTTP/2 connection without open streams).
    pub idle_timeout: Duration,
    /// Longest time for a whole request head, from its first byte.
    pub header_timeout: Duration,
    /// Longest time for a whole proxied request body, from its head.
    pub body_timeout: Duration,
    /// Longest a client may leave an answer unread (a stalled write or HTTP/2 window).
    pub write_timeout: Duration,
    /// Open client connections per process.
    pub max_connections: usize,
}

/// `providers.<name>:`
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Issuer, for discovery.
    pub issuer: Option<Url>,
    /// The issuer exactly as configured: what `iss` must equal.
    pub issuer_id: Option<String>,
    /// Accepted token signature algorithms.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Clock skew allowed for time claims.
    pub leeway: Duration,
    /// Accept opaque tokens by introspection.
    pub opaque_tokens: bool,
    /// How long an introspection answer is trusted.
    pub introspection_cache: Duration,
    /// The claim naming the user.
    pub user_claim: String,
    /// The claim listing groups.
    pub groups_claim: String,
    /// The gateway's client id.
    pub client_id: Option<String>,
    /// The gateway's client secret.
    pub client_secret: Option<Secret>,
    /// Sign-in scopes.
    pub scopes: Vec<String>,
    /// Accepted bearer-token audiences.
    pub audiences: Vec<String>,
    /// Explicit key set URL.
    pub jwks_uri: Option<Url>,
    /// Explicit authorization endpoint.
    pub authorization_endpoint: Option<Url>,
    /// Explicit token endpoint.
    pub token_endpoint: Option<Url>,
    /// Explicit userinfo endpoint.
    pub userinfo_endpoint: Option<Url>,
    /// Explicit introspection endpoint.
    pub introspection_endpoint: Option<Url>,
    /// Client authentication at the token endpoint.
    pub token_endpoint_auth: TokenEndpointAuth,
    /// Read the userinfo endpoint after sign-in.
    pub userinfo: bool,
    /// Session claims from userinfo fields: (claim, dotted field).
    pub claim_mapping: Vec<(String, String)>,
}

impl ProviderConfig {
    /// Whether this is an OpenID Connect provider (an issuer, ID tokens), rather than a plain
    /// OAuth 2.0 server whose identity comes from userinfo.
    pub fn is_oidc(&self) -> bool {
        self.issuer.is_some() && self.scopes.iter().any(|s| s == "openid")
    }
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpointAuth {
    /// HTTP Basic.
    ClientSecretBasic,
    /// In the form body.
    ClientSecretPost,
}

/// Session store kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    /// Sealed in the cookie.
    Cookie,
    /// In Redis.
    Redis,
}

/// `sessions:`
#[derive(Clone)]
pub struct SessionsConfig {
    /// Store kind.
    pub store: SessionStore,
    /// Decoded secrets: the current one first, then old ones.
    pub keys: Vec<Vec<u8>>,
    /// Absolute lifetime.
    pub lifetime: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Base cookie name.
    pub cookie_name: String,
    /// The Redis store, for `store: redis`.
    pub redis: Option<RedisConfig>,
    /// Hosts a return URL may name: (`*.`-less lower-case name, is a suffix rule).
    pub allowed_redirect_hosts: Vec<(String, bool)>,
    /// Most sign-ins in flight per browser.
    pub max_pending_sign_ins: usize,
    /// Refresh this long before the access token expires.
    pub refresh_before: Duration,
    /// Cookies carry `Secure` and the `__Host-` prefix (off only by the dev setting).
    pub secure_cookies: bool,
    /// `Domain=` of every gateway cookie (`__Secure-` instead of `__Host-`), lower case.
    pub cookie_domain: Option<String>,
}

impl fmt::Debug for SessionsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsConfig")
            .field("store", &self.store)
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("lifetime", &self.lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .field("cookie_name", &self.cookie_name)
            .field("redis", &self.redis)
            .field("allowed_redirect_hosts", &self.allowed_redirect_hosts)
            .field("max_pending_sign_ins", &self.max_pending_sign_ins)
            .field("refresh_before", &self.refresh_before)
            .field("secure_cookies", &self.secure_cookies)
            .field("cookie_domain", &self.cookie_domain)
            .finish()
    }
}

/// Where the Redis store is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RedisTopology {
    /// One server.
    Standalone(Secret),
    /// Sentinel: master name and sentinel URLs.
    Sentinel {
        /// Master name.
        master: String,
        /// Sentinel URLs.
        nodes: Vec<Secret>,
    },
    /// Cluster node URLs.
    Cluster(Vec<Secret>),
}

/// `sessions.redis:`
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedisConfig {
    /// Servers.
    pub topology: RedisTopology,
    /// ACL user.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Limit of every call.
    pub timeout: Duration,
    /// Key prefix.
    pub key_prefix: String,
    /// Trusted CA certificates for `rediss://` (PEM), instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Whether the URLs ask for TLS (`rediss://`).
    pub tls: bool,
}

/// `upstreams.<name>:`
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Name, for metrics and logs.
    pub name: Arc<str>,
    /// Backends, in file order: addresses, and names resolved in the background.
    pub targets: Vec<Target>,
    /// Connection set-up limit.
    pub connect_timeout: Duration,
    /// Per-read limit.
    pub read_timeout: Duration,
    /// Per-write limit.
    pub write_timeout: Duration,
    /// How long a failed target is skipped.
    pub fail_timeout: Duration,
    /// TLS towards the targets.
    pub tls: Option<Arc<UpstreamTls>>,
}

/// TLS towards an upstream.
pub struct UpstreamTls {
    /// SNI and the name verified.
    pub sni: String,
    /// Trusted CAs (DER); `None`: the system's roots.
    pub ca: Option<Vec<Vec<u8>>>,
    /// Client certificate chain and key (DER), for mTLS.
    pub client: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    /// Verify the certificate and the name (off only by `tls_insecure_skip_verify`).
    pub verify: bool,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.sni)
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .field("client", &self.client.is_some())
            .field("verify", &self.verify)
            .finish()
    }
}

/// `identity:`
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Subject header.
    pub user: HeaderName,
    /// Email header.
    pub email: HeaderName,
    /// Groups header.
    pub groups: HeaderName,
    /// Claim-derived headers: (header, claim).
    pub extra_claims: Vec<(HeaderName, String)>,
    /// Access-token pass-through header.
    pub access_token: Option<HeaderName>,
    /// Signed identity assertion header.
    pub assertion: Option<HeaderName>,
    /// The session's ID token header.
    pub id_token: Option<HeaderName>,
}

impl IdentityConfig {
    /// Every header name the gateway may set as identity.
    pub fn header_names(&self) -> impl Iterator<Item = &HeaderName> {
        [&self.user, &self.email, &self.groups]
            .into_iter()
            .chain(self.extra_claims.iter().map(|(h, _)| h))
            .chain(self.access_token.iter())
            .chain(self.assertion.iter())
            .chain(self.id_token.iter())
    }
}

/// One config problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub file: String,
    /// Where in it.
    pub position: Position,
    /// The key path, e.g. `routes[1].upstream`; empty for the whole document.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// A known name close to a mistyped one (`connect_timeout` for `conect_timeout`).
    pub suggestion: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Position { line, column } = self.position;
        // Line 0: the problem is the file as a whole (it cannot be read), not a place in it.
        if line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{line}:{column}: ", self.file)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        Ok(())
    }
}

/// Every problem of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// How [`check`] judges a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// An unset `${env:}` variable or an unreadable `${file:}` secret is a warning, not an
    /// error: for pipelines that check a config without its secrets.
    pub offline: bool,
}

/// Everything [`check`] found in one file.
#[derive(Debug)]
pub struct Report {
    /// The config, when there is no error.
    pub config: Option<Config>,
    /// Problems that stop the config from loading.
    pub errors: Vec<ConfigError>,
    /// Problems that do not.
    pub warnings: Vec<ConfigError>,
}

/// Reads and validates the file at `path`. Warnings are logged.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    into_result(check(path, CheckOptions::default()))
}

/// Validates `text`; `name` is used in error messages. Warnings are logged.
pub fn load_str(text: &str, name: &str) -> Result<Config, ConfigErrors> {
    into_result(check_str(text, name, CheckOptions::default()))
}

fn into_result(report: Report) -> Result<Config, ConfigErrors> {
    match report.config {
        Some(config) if report.errors.is_empty() => {
            for w in &report.warnings {
                tracing::warn!(key = %w.key, line = w.position.line, "config: {}", w.message);
            }
            Ok(config)
        }
        _ => Err(ConfigErrors(report.errors)),
    }
}

/// Reads and judges the file at `path`: the config, or every error; and every warning.
pub fn check(path: &Path, options: CheckOptions) -> Report {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => check_str(&text, &name, options),
        Err(e) => Report {
            config: None,
            errors: vec![ConfigError {
                file: name,
                position: Position { line: 0, column: 0 },
                key: String::new(),
                message: format!("cannot read: {e}"),
                suggestion: None,
            }],
            warnings: Vec::new(),
        },
    }
}

/// Judges `text`; `name` is used in messages.
pub fn check_str(text: &str, name: &str, options: CheckOptions) -> Report {
    let locations = locate::Locations::index(text);
    let located = |(key, message): (String, String)| ConfigError {
        file: name.to_string(),
        position: locations.find(&key),
        key,
        message,
        suggestion: None,
    };
    let failed = |errors| Report {
        config: None,
        errors,
        warnings: Vec::new(),
    };
    if !locations.duplicates.is_empty() {
        let errors = locations
            .duplicates
            .iter()
            .map(|(key, pos)| ConfigError {
                file: name.to_string(),
                position: *pos,
                key: key.clone(),
                message: "duplicate key in the same mapping".into(),
                suggestion: None,
            })
            .collect();
        return failed(errors);
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let parsed: Result<file::FileConfig, _> = serde_path_to_error::deserialize(deserializer);
    let file = match parsed {
        Ok(f) => f,
        Err(e) => {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let position = inner.location().map_or_else(
                || locations.find(&key),
                |l| Position {
                    line: l.line(),
                    column: l.column(),
                },
            );
            let key = if key == "." { String::new() } else { key };
            let first = ConfigError {
                file: name.to_string(),
                position,
                message: without_path(&strip_location(&inner.to_string()), &key),
                key,
                suggestion: None,
            };
            let mut errors: Vec<ConfigError> = structure::check(text)
                .into_iter()
                .map(|f| ConfigError {
                    suggestion: f.suggestion,
                    ..located((f.key, f.message))
                })
                .collect();
            // serde's own error, unless the walk found the same problem (a key at or under
            // serde's path): the walk may not know every rule serde applies.
            if !errors.iter().any(|e| e.key.starts_with(&first.key)) || errors.is_empty() {
                errors.insert(0, first);
            }
            errors.sort_by_key(|e| (e.position.line, e.position.column));
            return failed(errors);
        }
    };
    let (result, warnings) = validate::validate(file, options.offline);
    let warnings = warnings.into_iter().map(located).collect();
    match result {
        Ok(config) => Report {
            config: Some(config),
            errors: Vec::new(),
            warnings,
        },
        Err(problems) => Report {
            config: None,
            errors: problems.into_iter().map(located).collect(),
            warnings,
        },
    }
}

/// serde_yaml_ng starts messages with its own path (`server.listen: invalid type…`), which
/// the error's key already says.
fn without_path(message: &str, key: &str) -> String {
    match message.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && !head.contains(' ') && key.starts_with(head) => {
            rest.to_string()
        }
        _ => message.to_string(),
    }
}

/// serde_yaml_ng appends " at line L column C" to messages; the prefix already says it.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message.to_string(),
    }
}

/// The JSON Schema of the config file, derived from [`file::FileConfig`].
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(file::FileConfig)).unwrap_or_default()
}

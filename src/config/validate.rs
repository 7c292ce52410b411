//! File types → the typed [`Config`]. Every problem is collected, none stops the others.
//!
//! Validation does no network I/O: provider and Redis reachability are checked at start-up.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::HeaderName;
use ipnet::IpNet;
use url::Url;

use super::file::{self, FileConfig};
use super::secret::{self, Secret};
use super::{
    Config, DnsConfig, IdentityConfig, ProviderConfig, RedisConfig, RedisTopology, ServerConfig,
    SessionStore, SessionsConfig, Target, TlsListener, TokenEndpointAuth, UpstreamConfig,
    UpstreamTls,
};
use crate::routing::{AuthPolicy, HostMatch, MethodSet, PathMatch, Route, RouteMode, normalise};

/// A problem at a key path; positions are added by the caller.
pub(super) type Problem = (String, String);

/// Validates `file`, returning the config or every problem found, and the warnings (which do
/// not stop the config from loading). `offline`: an unset `${env:}` variable or unreadable
/// `${file:}` secret is a warning, not an error (`check --offline`, for pipelines without the
/// secrets; such a config is never run).
pub(super) fn validate(
    file: FileConfig,
    offline: bool,
) -> (Result<Config, Vec<Problem>>, Vec<Problem>) {
    let mut v = Validator {
        offline,
        ..Validator::default()
    };
    let result = build(file, &mut v);
    (result, v.warnings)
}

fn build(file: FileConfig, v: &mut Validator) -> Result<Config, Vec<Problem>> {
    let server = v.server(&file.server);
    let providers = v.providers(&file.providers);
    let sessions = file.sessions.as_ref().and_then(|s| v.sessions(s));
    let upstreams = v.upstreams(&file.upstreams);
    let identity = v.identity(&file.identity);
    let upstream_index: HashMap<&str, usize> = upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| (&*u.name, i))
        .collect();
    let routes = v.routes(&file, &upstream_index, server.as_ref(), identity.as_ref());
    if let Some(domain) = sessions.as_ref().and_then(|s| s.cookie_domain.as_deref()) {
        v.cookie_domain_covers(domain, &file, server.as_ref(), &routes);
    }
    if !v.problems.is_empty() {
        return Err(std::mem::take(&mut v.problems));
    }
    match (server, identity) {
        (Some(server), Some(identity)) => Ok(Config {
            server,
            providers,
            sessions,
            upstreams,
            identity,
            routes,
        }),
        _ => Err(vec![(String::new(), "invalid configuration".into())]),
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Missing secret values are warnings (`check --offline`).
    offline: bool,
}

/// Route names that are already values of the `route` label of the gateway's metrics: `none`
/// (requests no route took) and its own endpoints' (see `proxy::endpoints::serve`). A route
/// with one of these names could not be told apart from them on a dashboard.
const RESERVED_ROUTE_NAMES: &[&str] = &[
    "none",
    "start",
    "callback",
    "sign_out",
    "userinfo",
    "auth",
    "jwks",
    "backchannel_logout",
];

const DEFAULT_AUTH_PREFIX: &str = "/oauth2";

/// Headers that cannot carry the request id: framing, hop-by-hop, credentials.
const RESERVED_REQUEST_ID_NAMES: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
];

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push((path.into(), message.into()));
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push((path.into(), message.into()));
    }

    /// Warns when the secret at `path` is written in the file itself.
    fn literal_secret(&mut self, path: &str, raw: &str) {
        if !raw.is_empty() && !secret::is_reference(raw) {
            self.warn(
                path,
                "a secret written in the file itself (anyone who can read the file has it); use ${env:NAME} or ${file:PATH}",
            );
        }
    }

    fn duration(&mut self, path: &str, raw: Option<&str>, default: Duration) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.err(path, "invalid duration: must be above zero");
                default
            }
            Err(e) => {
                self.err(
                    path,
                    format!("invalid duration `{raw}`: {e} (examples: 500ms, 2s, 1h)"),
                );
                default
            }
        }
    }

    fn socket(&mut self, path: &str, raw: &str) -> Option<SocketAddr> {
        match raw.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.err(
                    path,
                    format!("`{raw}` is not an IP:port (host names are not resolved)"),
                );
                None
            }
        }
    }

    fn url(&mut self, path: &str, raw: Option<&str>) -> Option<Url> {
        let raw = raw?;
        match Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.err(path, format!("`{raw}` is not an http(s) URL"));
                None
            }
            Err(e) => {
                self.err(path, format!("`{raw}` is not a URL: {e}"));
                None
            }
        }
    }

    fn header(&mut self, path: &str, raw: &str) -> Option<HeaderName> {
        match HeaderName::from_bytes(raw.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.err(path, format!("`{raw}` is not a valid header name"));
                None
            }
        }
    }

    fn secret(&mut self, path: &str, raw: &str) -> Option<Secret> {
        match secret::resolve(raw) {
            Ok(s) => Some(s),
            Err(e) if self.offline && e.is_missing() => {
                self.warn(path, format!("{e} (offline: not checked further)"));
                None
            }
            Err(e) => {
                self.err(path, e.to_string());
                None
            }
        }
    }

    fn server(&mut self, s: &file::ServerFile) -> Option<ServerConfig> {
        let mut listen = Vec::new();
        if s.listen.is_empty() {
            self.err("server.listen", "at least one listener is needed");
        }
        let mut tls_listen = Vec::new();
        let mut https_redirects = Vec::new();
        let now = crate::token::unix_now() as i64;
        for (i, l) in s.listen.iter().enumerate() {
            let path = format!("server.listen[{i}]");
            match l {
                file::ListenFile::Plain(addr) => listen.extend(self.socket(&path, addr)),
                file::ListenFile::Detailed(d) => {
                    let Some(address) = self.socket(&format!("{path}.address"), &d.address) else {
                        continue;
                    };
                    match (&d.cert, &d.key, d.redirect_to_https) {
                        (None, None, redirect) => {
                            if !d.certificates.is_empty() {
                                self.err(
                                    format!("{path}.certificates"),
                                    "SNI certificates need a default `cert` and `key`",
                                );
                            }
                            listen.push(address);
                            if let Some(port) = redirect {
                                if port == 0 {
                                    self.err(format!("{path}.redirect_to_https"), "must be a port");
                                }
                                https_redirects.push((address, port));
                            }
                        }
                        (Some(cert), Some(key), None) => {
                            let mut certs = Vec::new();
                            let pairs = std::iter::once((
                                cert.as_str(),
                                key.as_str(),
                                format!("{path}.cert"),
                            ))
                            .chain(
                                d.certificates.iter().enumerate().map(|(j, c)| {
                                    (
                                        c.cert.as_str(),
                                        c.key.as_str(),
                                        format!("{path}.certificates[{j}].cert"),
                                    )
                                }),
                            );
                            for (cert, key, at) in pairs {
                                match crate::tls::load_pair(cert, key, now) {
                                    Ok(c) => certs.push(Arc::new(c)),
                                    Err(e) => self.err(at, e),
                                }
                            }
                            if certs.len() == d.certificates.len() + 1 {
                                tls_listen.push(TlsListener { address, certs });
                            }
                        }
                        (Some(_), Some(_), Some(_)) => self.err(
                            format!("{path}.redirect_to_https"),
                            "a TLS listener serves HTTPS itself; redirect from a plain one",
                        ),
                        _ => self.err(path.clone(), "a TLS listener needs both `cert` and `key`"),
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for addr in listen.iter().chain(tls_listen.iter().map(|t| &t.address)) {
            if !seen.insert(*addr) {
                self.err("server.listen", format!("`{addr}` is listed twice"));
            }
        }
        let admin = self.socket("server.admin", &s.admin);
        if let Some(admin) = admin
            && (listen.contains(&admin) || tls_listen.iter().any(|t| t.address == admin))
        {
            self.err(
                "server.admin",
                "the admin listener must not be a public listener",
            );
        }
        let public_url = self.url("server.public_url", s.public_url.as_deref());
        let auth_prefix = s
            .auth_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_AUTH_PREFIX.into());
        if !auth_prefix.starts_with('/')
            || auth_prefix.len() < 2
            || auth_prefix.ends_with('/')
            || normalise(&auth_prefix)
                .map(|n| n.path != auth_prefix)
                .unwrap_or(true)
        {
            self.err(
                "server.auth_prefix",
                format!("`{auth_prefix}` must be a normalised path like /oauth2, without a trailing slash"),
            );
        }
        let request_id_header = match s.request_id_header.as_deref() {
            None => http::HeaderName::from_static("x-request-id"),
            Some(name) => match http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) if !RESERVED_REQUEST_ID_NAMES.contains(&h.as_str()) => h,
                Ok(_) => {
                    self.err(
                        "server.request_id_header",
                        format!("`{name}` is a header HTTP or the gateway already gives a meaning"),
                    );
                    http::HeaderName::from_static("x-request-id")
                }
                Err(_) => {
                    self.err(
                        "server.request_id_header",
                        format!("`{name}` is not a valid header name"),
                    );
                    http::HeaderName::from_static("x-request-id")
                }
            },
        };
        let mut trusted_proxies = Vec::new();
        for (i, cidr) in s.trusted_proxies.iter().enumerate() {
            let parsed = cidr
                .parse::<IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net),
                Err(_) => self.err(
                    format!("server.trusted_proxies[{i}]"),
                    format!("`{cidr}` is not a CIDR or IP address"),
                ),
            }
        }
        let threads = match s.threads {
            Some(0) => {
                self.err("server.threads", "must be at least 1");
                1
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let drain_timeout = self.duration(
            "server.drain_timeout",
            s.drain_timeout.as_deref(),
            Duration::from_secs(10),
        );
        let l = &s.limits;
        let mut bounded = |key: &str, v: Option<usize>, default: usize, min: usize, max: usize| {
            let v = v.unwrap_or(default);
            if !(min..=max).contains(&v) {
                self.err(
                    format!("server.limits.{key}"),
                    format!("must be between {min} and {max}"),
                );
            }
            v
        };
        let max_header_bytes = bounded(
            "max_header_bytes",
            l.max_header_bytes,
            32_768,
            1_024,
            1_048_575,
        );
        let max_headers = bounded("max_headers", l.max_headers, 100, 8, 256);
        let max_uri_bytes = bounded("max_uri_bytes", l.max_uri_bytes, 8_192, 256, 1_048_575);
        let max_cookie_bytes = bounded(
            "max_cookie_bytes",
            l.max_cookie_bytes,
            16_384,
            1_024,
            1_048_575,
        );
        let max_connections = bounded("max_connections", l.max_connections, 10_000, 1, 10_000_000);
        let client_body_timeout = self.duration(
            "server.limits.client_body_timeout",
            l.client_body_timeout.as_deref(),
            Duration::from_secs(30),
        );
        let idle_timeout = self.duration(
            "server.limits.idle_timeout",
            l.idle_timeout.as_deref(),
            Duration::from_secs(60),
        );
        let header_timeout = self.duration(
            "server.limits.header_timeout",
            l.header_timeout.as_deref(),
            Duration::from_secs(10),
        );
        let body_timeout = self.duration(
            "server.limits.body_timeout",
            l.body_timeout.as_deref(),
            Duration::from_secs(300),
        );
        let write_timeout = self.duration(
            "server.limits.write_timeout",
            l.write_timeout.as_deref(),
            Duration::from_secs(60),
        );
        let limits = super::Limits {
            max_header_bytes,
            max_headers,
            max_uri_bytes,
            max_cookie_bytes,
            client_body_timeout,
            idle_timeout,
            header_timeout,
            body_timeout,
            write_timeout,
            max_connections,
        };
        let dns = self.dns(s.dns.as_ref());
        let admin = admin?;
        let port = admin.port();
        Some(ServerConfig {
            listen,
            tls_listen,
            https_redirects,
            admin,
            public_url,
            auth_prefix,
            request_id_header,
            trusted_proxies,
            threads,
            drain_timeout,
            h2c: s.h2c.unwrap_or(true),
            access_log: s.access_log != Some(file::AccessLogFile::Off),
            log_format: match s.log_format {
                Some(file::LogFormatFile::Json) => super::LogFormat::Json,
                None | Some(file::LogFormatFile::Text) => super::LogFormat::Text,
            },
            pid_file: s
                .pid_file
                .clone()
                .unwrap_or_else(|| format!("/tmp/portcullis-{port}.pid")),
            upgrade_sock: s
                .upgrade_sock
                .clone()
                .unwrap_or_else(|| format!("/tmp/portcullis-{port}.sock")),
            limits,
            dns,
        })
    }

    fn providers(
        &mut self,
        providers: &BTreeMap<String, file::ProviderFile>,
    ) -> BTreeMap<String, ProviderConfig> {
        let mut out = BTreeMap::new();
        for (name, p) in providers {
            let base = format!("providers.{name}");
            let at = |key: &str| format!("{base}.{key}");
            let issuer = self.url(&at("issuer"), p.issuer.as_deref());
            let authorization_endpoint = self.url(
                &at("authorization_endpoint"),
                p.authorization_endpoint.as_deref(),
            );
            let token_endpoint = self.url(&at("token_endpoint"), p.token_endpoint.as_deref());
            if p.issuer.is_none()
                && (p.authorization_endpoint.is_none() || p.token_endpoint.is_none())
                && p.introspection_endpoint.is_none()
            {
                self.err(
                    base.clone(),
                    "give `issuer` (OpenID Connect discovery), both `authorization_endpoint` and `token_endpoint`, or an `introspection_endpoint`",
                );
            }
            let algorithms = match &p.algorithms {
                None => crate::token::algorithms::DEFAULT.to_vec(),
                Some(list) if list.is_empty() => {
                    self.err(at("algorithms"), "an empty list accepts no token; omit it for the default");
                    Vec::new()
                }
                Some(list) => list
                    .iter()
                    .filter_map(|name| {
                        let alg = crate::token::algorithms::parse(name);
                        if alg.is_none() {
                            self.err(
                                at("algorithms"),
                                format!("`{name}` is not accepted: use RS256/384/512, PS256/384/512, ES256, ES384 or EdDSA (HMAC and none never)"),
                            );
                        }
                        alg
                    })
                    .collect(),
            };
            let leeway = self.duration(&at("leeway"), p.leeway.as_deref(), Duration::from_secs(30));
            if leeway > Duration::from_secs(300) {
                self.err(
                    at("leeway"),
                    "at most 5m: a larger clock skew would keep expired tokens alive",
                );
            }
            let introspection_cache = self.duration(
                &at("introspection_cache"),
                p.introspection_cache.as_deref(),
                Duration::from_secs(60),
            );
            if p.client_secret.is_some() && p.client_id.is_none() {
                self.err(at("client_secret"), "a client secret needs a `client_id`");
            }
            if let Some(raw) = p.client_secret.as_deref() {
                self.literal_secret(&at("client_secret"), raw);
            }
            let client_secret = p
                .client_secret
                .as_deref()
                .and_then(|raw| self.secret(&at("client_secret"), raw));
            let scopes = p.scopes.clone().unwrap_or_else(|| {
                if p.issuer.is_some() {
                    vec!["openid".into(), "email".into(), "profile".into()]
                } else {
                    Vec::new()
                }
            });
            for (i, scope) in scopes.iter().enumerate() {
                if scope.is_empty()
                    || !scope
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                {
                    self.err(
                        format!("{base}.scopes[{i}]"),
                        format!("`{scope}` is not a valid scope (RFC 6749 §3.3)"),
                    );
                }
            }
            let token_endpoint_auth = match p.token_endpoint_auth {
                None | Some(file::TokenEndpointAuthFile::ClientSecretBasic) => {
                    TokenEndpointAuth::ClientSecretBasic
                }
                Some(file::TokenEndpointAuthFile::ClientSecretPost) => {
                    TokenEndpointAuth::ClientSecretPost
                }
            };
            if p.token_endpoint_auth.is_some() && p.client_secret.is_none() {
                self.err(
                    at("token_endpoint_auth"),
                    "client authentication needs a `client_secret` (without one the gateway is a public client)",
                );
            }
            let userinfo = p.userinfo.unwrap_or(p.issuer.is_none());
            if p.userinfo == Some(false) && p.issuer.is_none() && p.authorization_endpoint.is_some()
            {
                self.err(
                    at("userinfo"),
                    "a provider without `issuer` has no ID token: its identity can only come from userinfo",
                );
            }
            let mut claim_mapping = Vec::new();
            for (claim, field) in &p.claim_mapping {
                if claim.is_empty() || field.is_empty() || field.split('.').any(str::is_empty) {
                    self.err(
                        format!("{base}.claim_mapping.{claim}"),
                        "claim and field names must not be empty (dotted fields: `a.b`)",
                    );
                } else {
                    claim_mapping.push((claim.clone(), field.clone()));
                }
            }
            out.insert(
                name.clone(),
                ProviderConfig {
                    issuer_id: p.issuer.clone(),
                    issuer,
                    algorithms,
                    leeway,
                    opaque_tokens: p.opaque_tokens,
                    introspection_cache,
                    user_claim: p.user_claim.clone().unwrap_or_else(|| "sub".into()),
                    groups_claim: p.groups_claim.clone().unwrap_or_else(|| "groups".into()),
                    client_id: p.client_id.clone(),
                    client_secret,
                    scopes,
                    audiences: p.audiences.clone(),
                    jwks_uri: self.url(&at("jwks_uri"), p.jwks_uri.as_deref()),
                    authorization_endpoint,
                    token_endpoint,
                    userinfo_endpoint: self
                        .url(&at("userinfo_endpoint"), p.userinfo_endpoint.as_deref()),
                    introspection_endpoint: self.url(
                        &at("introspection_endpoint"),
                        p.introspection_endpoint.as_deref(),
                    ),
                    token_endpoint_auth,
                    userinfo,
                    claim_mapping,
                },
            );
        }
        out
    }

    fn session_key(&mut self, path: &str, raw: &str) -> Option<Vec<u8>> {
        self.literal_secret(path, raw);
        let secret = self.secret(path, raw)?;
        let engine = base64::engine::general_purpose::STANDARD;
        let url_engine = base64::engine::general_purpose::URL_SAFE;
        let bytes = engine
            .decode(secret.expose().trim())
            .or_else(|_| url_engine.decode(secret.expose().trim()));
        match bytes {
            Ok(b) if b.len() >= 32 => {
                if let Some(why) = not_random(&b) {
                    self.warn(
                        path,
                        format!("the secret {why}: it does not look random; make one with `openssl rand -base64 32`"),
                    );
                }
                Some(b)
            }
            Ok(b) => {
                self.err(
                    path,
                    format!("the secret decodes to {} bytes; it must be at least 32 bytes of randomness (`openssl rand -base64 32`)", b.len()),
                );
                None
            }
            Err(_) => {
                self.err(
                    path,
                    "the secret must be base64 of at least 32 bytes (`openssl rand -base64 32`)",
                );
                None
            }
        }
    }

    fn sessions(&mut self, s: &file::SessionsFile) -> Option<SessionsConfig> {
        let mut keys = Vec::new();
        keys.extend(self.session_key("sessions.secret", &s.secret));
        for (i, old) in s.old_secrets.iter().enumerate() {
            keys.extend(self.session_key(&format!("sessions.old_secrets[{i}]"), old));
        }
        let store = match s.store.unwrap_or(file::SessionStoreFile::Cookie) {
            file::SessionStoreFile::Cookie => SessionStore::Cookie,
            file::SessionStoreFile::Redis => SessionStore::Redis,
        };
        let redis = match (&s.redis, store) {
            (Some(r), _) => self.redis(r),
            (None, SessionStore::Redis) => {
                self.err(
                    "sessions.redis",
                    "`store: redis` needs `redis: {url: ...}` (or `sentinel:` / `cluster:`)",
                );
                None
            }
            (None, SessionStore::Cookie) => None,
        };
        let cookie_name = s.cookie_name.clone().unwrap_or_else(|| "portcullis".into());
        if cookie_name.is_empty()
            || !cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.err(
                "sessions.cookie_name",
                "use letters, digits, `_` and `-` only",
            );
        }
        let lifetime = self.duration(
            "sessions.lifetime",
            s.lifetime.as_deref(),
            Duration::from_secs(12 * 3600),
        );
        let idle_timeout = self.duration(
            "sessions.idle_timeout",
            s.idle_timeout.as_deref(),
            Duration::from_secs(3600),
        );
        if idle_timeout > lifetime {
            self.err("sessions.idle_timeout", "must not exceed `lifetime`");
        }
        let mut allowed_redirect_hosts = Vec::new();
        for (i, raw) in s.allowed_redirect_hosts.iter().enumerate() {
            let path = format!("sessions.allowed_redirect_hosts[{i}]");
            match self.host_match(&path, Some(raw)) {
                Some(HostMatch::Exact(h)) => allowed_redirect_hosts.push((h.into(), false)),
                Some(HostMatch::Suffix(h)) => allowed_redirect_hosts.push((h.into(), true)),
                _ => {}
            }
        }
        let max_pending_sign_ins = match s.max_pending_sign_ins {
            None => 5,
            Some(n) if (1..=10).contains(&n) => n,
            Some(_) => {
                self.err(
                    "sessions.max_pending_sign_ins",
                    "must be between 1 and 10 (each pending sign-in is a cookie)",
                );
                5
            }
        };
        let refresh_before = self.duration(
            "sessions.refresh_before",
            s.refresh_before.as_deref(),
            Duration::from_secs(60),
        );
        let cookie_domain = s.cookie_domain.as_deref().and_then(|raw| {
            super::cookie_domain::parse(raw)
                .map_err(|e| self.err("sessions.cookie_domain", e))
                .ok()
        });
        if s.dev_insecure_cookies {
            tracing::warn!(
                "sessions.dev_insecure_cookies: cookies are sent without `Secure`; never use this in production"
            );
        }
        Some(SessionsConfig {
            store,
            keys,
            lifetime,
            idle_timeout,
            cookie_name,
            redis,
            allowed_redirect_hosts,
            max_pending_sign_ins,
            refresh_before,
            secure_cookies: !s.dev_insecure_cookies,
            cookie_domain,
        })
    }

    fn redis_url(&mut self, path: &str, raw: &str) -> Option<Secret> {
        if Url::parse(raw).is_ok_and(|u| u.password().is_some()) {
            self.literal_secret(path, raw);
        }
        let url = self.secret(path, raw)?;
        match Url::parse(url.expose()) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host().is_some() => Some(url),
            _ => {
                self.err(
                    path,
                    "must be a redis://host:port or rediss://host:port URL",
                );
                None
            }
        }
    }

    fn redis(&mut self, r: &file::RedisFile) -> Option<RedisConfig> {
        let base = "sessions.redis";
        let given = [r.url.is_some(), r.sentinel.is_some(), r.cluster.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            self.err(base, "give exactly one of `url`, `sentinel` or `cluster`");
            return None;
        }
        let topology = if let Some(url) = &r.url {
            RedisTopology::Standalone(self.redis_url(&format!("{base}.url"), url)?)
        } else if let Some(s) = &r.sentinel {
            if s.master.is_empty() {
                self.err(format!("{base}.sentinel.master"), "must not be empty");
            }
            if s.nodes.is_empty() {
                self.err(
                    format!("{base}.sentinel.nodes"),
                    "at least one sentinel is needed",
                );
            }
            let nodes: Vec<Secret> = s
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| self.redis_url(&format!("{base}.sentinel.nodes[{i}]"), n))
                .collect();
            RedisTopology::Sentinel {
                master: s.master.clone(),
                nodes,
            }
        } else {
            let c = r.cluster.as_ref()?;
            if c.nodes.is_empty() {
                self.err(
                    format!("{base}.cluster.nodes"),
                    "at least one node is needed",
                );
            }
            RedisTopology::Cluster(
                c.nodes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| self.redis_url(&format!("{base}.cluster.nodes[{i}]"), n))
                    .collect(),
            )
        };
        if let Some(raw) = r.password.as_deref() {
            self.literal_secret(&format!("{base}.password"), raw);
        }
        let password = r
            .password
            .as_deref()
            .and_then(|p| self.secret(&format!("{base}.password"), p));
        let timeout = self.duration(
            &format!("{base}.timeout"),
            r.timeout.as_deref(),
            Duration::from_millis(500),
        );
        if timeout > Duration::from_secs(10) {
            self.err(
                format!("{base}.timeout"),
                "at most 10s: session routes wait this long when Redis is down",
            );
        }
        let key_prefix = r.key_prefix.clone().unwrap_or_else(|| "portcullis:".into());
        if key_prefix.is_empty() || key_prefix.contains(['{', '}', ' ']) {
            self.err(
                format!("{base}.key_prefix"),
                "must not be empty or contain `{`, `}` or spaces",
            );
        }
        let urls: Vec<&str> = match &topology {
            RedisTopology::Standalone(u) => vec![u.expose()],
            RedisTopology::Sentinel { nodes, .. } | RedisTopology::Cluster(nodes) => {
                nodes.iter().map(Secret::expose).collect()
            }
        };
        let tls = urls.iter().any(|u| u.starts_with("rediss://"));
        if tls && urls.iter().any(|u| u.starts_with("redis://")) {
            self.err(base, "use `rediss://` for every node or for none");
        }
        let ca_pem = match &r.ca_file {
            None => None,
            Some(_) if !tls => {
                self.err(
                    format!("{base}.ca_file"),
                    "a CA file needs `rediss://` URLs (TLS)",
                );
                None
            }
            Some(path) => match std::fs::read(path) {
                Ok(pem)
                    if String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") =>
                {
                    Some(pem)
                }
                Ok(_) => {
                    self.err(
                        format!("{base}.ca_file"),
                        format!("`{path}` holds no PEM certificate"),
                    );
                    None
                }
                Err(e) => {
                    self.err(
                        format!("{base}.ca_file"),
                        format!("cannot read `{path}`: {e}"),
                    );
                    None
                }
            },
        };
        Some(RedisConfig {
            topology,
            username: r.username.clone(),
            password,
            timeout,
            key_prefix,
            ca_pem,
            tls,
        })
    }

    fn upstreams(
        &mut self,
        upstreams: &BTreeMap<String, file::UpstreamFile>,
    ) -> Vec<UpstreamConfig> {
        let mut out = Vec::new();
        for (name, u) in upstreams {
            let base = format!("upstreams.{name}");
            if u.targets.is_empty() {
                self.err(format!("{base}.targets"), "at least one target is needed");
            }
            let targets: Vec<Target> = u
                .targets
                .iter()
                .enumerate()
                .filter_map(|(i, t)| match super::target::parse(t) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        self.err(format!("{base}.targets[{i}]"), e);
                        None
                    }
                })
                .collect();
            let tls = self.upstream_tls(&base, u);
            let d = |v: &mut Self, key: &str, raw: &Option<String>, secs: u64| {
                v.duration(
                    &format!("{base}.{key}"),
                    raw.as_deref(),
                    Duration::from_secs(secs),
                )
            };
            let connect_timeout = d(self, "connect_timeout", &u.connect_timeout, 2);
            let read_timeout = d(self, "read_timeout", &u.read_timeout, 60);
            let write_timeout = d(self, "write_timeout", &u.write_timeout, 60);
            let fail_timeout = d(self, "fail_timeout", &u.fail_timeout, 10);
            out.push(UpstreamConfig {
                name: Arc::from(name.as_str()),
                targets,
                connect_timeout,
                read_timeout,
                write_timeout,
                fail_timeout,
                tls,
            });
        }
        out
    }

    /// `server.dns`: absent, the system resolver; else at least one `IP:port` server.
    fn dns(&mut self, d: Option<&file::DnsFile>) -> DnsConfig {
        let Some(d) = d else {
            return DnsConfig::default();
        };
        if d.servers.is_empty() {
            self.err(
                "server.dns.servers",
                "at least one server is needed (leave `dns` out for the system resolver)",
            );
        }
        let servers = d
            .servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.socket(&format!("server.dns.servers[{i}]"), s))
            .collect();
        DnsConfig { servers }
    }

    fn upstream_tls(&mut self, base: &str, u: &file::UpstreamFile) -> Option<Arc<UpstreamTls>> {
        let at = |key: &str| format!("{base}.{key}");
        if !u.tls {
            for (key, given) in [
                ("sni", u.sni.is_some()),
                ("ca_file", u.ca_file.is_some()),
                ("client_cert", u.client_cert.is_some()),
                ("client_key", u.client_key.is_some()),
                ("tls_insecure_skip_verify", u.tls_insecure_skip_verify),
            ] {
                if given {
                    self.err(at(key), format!("`{key}` needs `tls: true`"));
                }
            }
            return None;
        }
        let sni = match &u.sni {
            Some(name)
                if self
                    .host_match(&at("sni"), Some(name))
                    .is_some_and(|h| matches!(h, HostMatch::Exact(_))) =>
            {
                name.to_ascii_lowercase()
            }
            Some(_) => {
                self.err(
                    at("sni"),
                    "must be a host name (the name the upstream's certificate is for)",
                );
                return None;
            }
            None => {
                self.err(
                    at("sni"),
                    "`tls: true` needs `sni`: the name sent to the upstream and verified in its certificate",
                );
                return None;
            }
        };
        let ca = match &u.ca_file {
            None => None,
            Some(path) => match crate::tls::load_ca(path) {
                Ok(ca) => Some(ca),
                Err(e) => {
                    self.err(at("ca_file"), e);
                    None
                }
            },
        };
        let client = match (&u.client_cert, &u.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => match crate::tls::load_client(cert, key) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.err(at("client_cert"), e);
                    None
                }
            },
            _ => {
                self.err(
                    at("client_cert"),
                    "give both `client_cert` and `client_key`",
                );
                None
            }
        };
        if u.tls_insecure_skip_verify {
            tracing::warn!(
                upstream = base,
                "tls_insecure_skip_verify: the upstream's certificate and name are NOT verified"
            );
        }
        Some(Arc::new(UpstreamTls {
            sni,
            ca,
            client,
            verify: !u.tls_insecure_skip_verify,
        }))
    }

    fn identity(&mut self, i: &file::IdentityFile) -> Option<IdentityConfig> {
        let named = |v: &mut Self, key: &str, raw: &Option<String>, default: &str| {
            v.header(
                &format!("identity.{key}"),
                raw.as_deref().unwrap_or(default),
            )
        };
        let user = named(self, "user", &i.user, "X-Forwarded-User");
        let email = named(self, "email", &i.email, "X-Forwarded-Email");
        let groups = named(self, "groups", &i.groups, "X-Forwarded-Groups");
        let mut extra_claims = Vec::new();
        for (header, claim) in &i.extra_claims {
            if let Some(h) = self.header(&format!("identity.extra_claims.{header}"), header) {
                extra_claims.push((h, claim.clone()));
            }
        }
        let access_token = match i.access_token.as_deref() {
            None | Some("none") => None,
            Some(h) => self.header("identity.access_token", h),
        };
        let assertion = i
            .assertion
            .as_deref()
            .and_then(|h| self.header("identity.assertion", h));
        let id_token = match i.id_token.as_deref() {
            None | Some("none") => None,
            Some(h) => self.header("identity.id_token", h),
        };
        let clash = id_token.as_ref().filter(|h| {
            [&user, &email, &groups, &access_token, &assertion]
                .into_iter()
                .flatten()
                .chain(extra_claims.iter().map(|(n, _)| n))
                .any(|other| other == *h)
        });
        if let Some(h) = clash {
            self.err(
                "identity.id_token",
                format!("`{h}` already carries another identity header"),
            );
        }
        Some(IdentityConfig {
            user: user?,
            email: email?,
            groups: groups?,
            extra_claims,
            access_token,
            assertion,
            id_token,
        })
    }

    fn routes(
        &mut self,
        file: &FileConfig,
        upstreams: &HashMap<&str, usize>,
        server: Option<&ServerConfig>,
        identity: Option<&IdentityConfig>,
    ) -> Vec<Route> {
        let auth_prefix = server.map_or(DEFAULT_AUTH_PREFIX, |s| s.auth_prefix.as_str());
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut compiled: Vec<(usize, Route)> = Vec::new();
        for (i, r) in file.routes.iter().enumerate() {
            let base = format!("routes[{i}]");
            if r.name.is_empty() {
                self.err(format!("{base}.name"), "must not be empty");
            }
            if RESERVED_ROUTE_NAMES.contains(&r.name.as_str()) {
                self.err(
                    format!("{base}.name"),
                    format!(
                        "`{}` is a `route` label value of the gateway's own metrics (its endpoints, and `none` for requests no route took); pick another name",
                        r.name
                    ),
                );
            }
            if let Some(first) = names.insert(&r.name, i) {
                self.err(
                    format!("{base}.name"),
                    format!(
                        "duplicate route name `{}` (first used by routes[{first}])",
                        r.name
                    ),
                );
            }
            if let Some(route) = self.route(&base, r, file, upstreams, auth_prefix, identity) {
                compiled.push((i, route));
            }
        }
        for (later_pos, (j, later)) in compiled.iter().enumerate() {
            if let Some((i, earlier)) = compiled[..later_pos].iter().find(|(_, e)| e.shadows(later))
            {
                self.err(
                    format!("routes[{j}]"),
                    format!(
                        "route `{}` is shadowed by routes[{i}] (`{}`), which takes every request it would: it can never match",
                        later.name, earlier.name
                    ),
                );
            }
        }
        compiled.into_iter().map(|(_, r)| r).collect()
    }

    fn route(
        &mut self,
        base: &str,
        r: &file::RouteFile,
        file: &FileConfig,
        upstreams: &HashMap<&str, usize>,
        auth_prefix: &str,
        identity: Option<&IdentityConfig>,
    ) -> Option<Route> {
        let at = |key: &str| format!("{base}.{key}");
        let upstream = upstreams.get(r.upstream.as_str()).copied();
        if upstream.is_none() {
            self.err(at("upstream"), format!("unknown upstream `{}`", r.upstream));
        }
        if let Some(p) = &r.provider
            && !file.providers.contains_key(p)
        {
            self.err(at("provider"), format!("unknown provider `{p}`"));
        }
        let auth = match r.auth {
            file::AuthFile::Public => AuthPolicy::Public,
            file::AuthFile::Bearer => AuthPolicy::Bearer,
            file::AuthFile::Session => AuthPolicy::Session,
            file::AuthFile::SessionOrBearer => AuthPolicy::SessionOrBearer,
        };
        if matches!(auth, AuthPolicy::Session | AuthPolicy::SessionOrBearer)
            && file.sessions.is_none()
        {
            self.err(
                at("auth"),
                "session routes need a `sessions:` section (at least `secret`)",
            );
        }
        let mut provider = None;
        if auth == AuthPolicy::Public {
            for (key, present) in [
                ("provider", r.provider.is_some()),
                ("allow", r.allow.is_some()),
                ("mode", r.mode.is_some()),
                ("access_token", r.access_token.is_some()),
                ("cors_origins", !r.cors_origins.is_empty()),
            ] {
                if present {
                    self.err(
                        at(key),
                        format!("`{key}` has no effect on an `auth: public` route"),
                    );
                }
            }
        } else {
            provider = self.route_provider(base, r, file, auth);
            if auth == AuthPolicy::Bearer && r.mode.is_some() {
                self.err(
                    at("mode"),
                    "`mode` has no effect on a `bearer` route (it always answers like an API)",
                );
            }
        }
        let access_token = match r.access_token.as_deref() {
            None => identity.and_then(|i| i.access_token.clone()),
            Some("none") => None,
            Some(h) => self.header(&at("access_token"), h),
        };
        let host = self.host_match(&at("match.host"), r.matcher.host.as_deref());
        let path = self.path_match(base, &r.matcher, auth_prefix);
        let methods = match &r.matcher.methods {
            None => Some(MethodSet::ALL),
            Some(list) if list.is_empty() => {
                self.err(
                    at("match.methods"),
                    "an empty list matches nothing; omit it to match every method",
                );
                None
            }
            Some(list) => match MethodSet::from_names(list.iter().map(String::as_str)) {
                Ok(set) => Some(set),
                Err(e) => {
                    self.err(at("match.methods"), e);
                    None
                }
            },
        };
        let path = path?;
        let methods = methods?;
        let rewrite = match &r.rewrite {
            Some(rw) => Some(self.rewrite(base, rw, &path)?),
            None => None,
        };
        let policy = match (&r.allow, auth) {
            (
                Some(entries),
                AuthPolicy::Bearer | AuthPolicy::Session | AuthPolicy::SessionOrBearer,
            ) => {
                let groups_claim = provider
                    .and_then(|i| file.providers.values().nth(i))
                    .and_then(|p| p.groups_claim.as_deref())
                    .unwrap_or("groups");
                let ctx = crate::policy::PolicyContext {
                    route_path: &path,
                    route_methods: methods,
                    groups_claim,
                };
                match crate::policy::Policy::compile(entries, &ctx) {
                    Ok(p) => p,
                    Err(problems) => {
                        for (key, message) in problems {
                            self.err(format!("{base}.{key}"), message);
                        }
                        return None;
                    }
                }
            }
            _ => crate::policy::Policy::any_authenticated(),
        };
        let mut cors_origins = Vec::new();
        for (i, origin) in r.cors_origins.iter().enumerate() {
            match Url::parse(origin) {
                Ok(u)
                    if matches!(u.scheme(), "https" | "http")
                        && u.host().is_some()
                        && u.path() == "/"
                        && !origin.ends_with('/')
                        && u.query().is_none()
                        && u.username().is_empty() =>
                {
                    cors_origins.push(u.origin().ascii_serialization())
                }
                _ => self.err(
                    format!("{base}.cors_origins[{i}]"),
                    format!("`{origin}` is not an origin like https://app.example.com (scheme, host, optional port; no path)"),
                ),
            }
        }
        let hsts = r.hsts.as_ref().and_then(|h| {
            let max_age = self.duration(&at("hsts.max_age"), Some(&h.max_age), Duration::ZERO);
            let mut value = format!("max-age={}", max_age.as_secs());
            if h.include_subdomains {
                value.push_str("; includeSubDomains");
            }
            if h.preload {
                if max_age < Duration::from_secs(31_536_000) || !h.include_subdomains {
                    self.err(
                        at("hsts.preload"),
                        "`preload` needs `max_age` of at least 365d and `include_subdomains: true`",
                    );
                }
                value.push_str("; preload");
            }
            http::HeaderValue::from_str(&value).ok()
        });
        let mode = r.mode.map(|m| match m {
            file::ModeFile::Api => RouteMode::Api,
            file::ModeFile::Browser => RouteMode::Browser,
        });
        Some(Route {
            hsts,
            mode,
            rewrite,
            cors_origins: Arc::from(cors_origins),
            name: Arc::from(r.name.as_str()),
            host: host?,
            path,
            methods,
            upstream: upstream?,
            auth,
            provider,
            access_token,
            policy: Arc::new(policy),
        })
    }

    /// The provider of a protected route, checked for what the route's auth needs.
    fn route_provider(
        &mut self,
        base: &str,
        r: &file::RouteFile,
        file: &FileConfig,
        auth: AuthPolicy,
    ) -> Option<usize> {
        let at = |key: &str| format!("{base}.{key}");
        let Some(name) = &r.provider else {
            self.err(at("provider"), "a protected route needs `provider`");
            return None;
        };
        let index = file.providers.keys().position(|k| k == name)?;
        let p = file.providers.values().nth(index)?;
        if matches!(auth, AuthPolicy::Session | AuthPolicy::SessionOrBearer) {
            self.sign_in_provider(&at("provider"), name, p);
        }
        if auth == AuthPolicy::Session {
            return Some(index);
        }
        if p.audiences.is_empty() {
            self.err(
                at("provider"),
                format!("provider `{name}` has no `audiences`: bearer routes need them, so a token meant for another API never passes"),
            );
        }
        if p.issuer.is_none() && !p.opaque_tokens {
            self.err(
                at("provider"),
                format!("provider `{name}` has no `issuer` to check JWT bearer tokens against (or set `opaque_tokens: true` to introspect)"),
            );
        }
        if p.opaque_tokens {
            if p.client_id.is_none() || p.client_secret.is_none() {
                self.err(
                    format!("providers.{name}.opaque_tokens"),
                    "introspection needs `client_id` and `client_secret`",
                );
            }
            if p.introspection_endpoint.is_none() && p.issuer.is_none() {
                self.err(
                    format!("providers.{name}.opaque_tokens"),
                    "introspection needs `introspection_endpoint` or an `issuer` to discover it",
                );
            }
        }
        Some(index)
    }

    /// Checks that provider `name` can sign browsers in.
    fn sign_in_provider(&mut self, at: &str, name: &str, p: &file::ProviderFile) {
        if p.client_id.is_none() {
            self.err(
                at,
                format!(
                    "provider `{name}` has no `client_id`: session routes sign browsers in with it"
                ),
            );
        }
        if p.issuer.is_none() {
            if p.authorization_endpoint.is_none() || p.token_endpoint.is_none() {
                self.err(
                    at,
                    format!("provider `{name}` needs `issuer` (discovery) or both `authorization_endpoint` and `token_endpoint` to sign browsers in"),
                );
            }
            if p.userinfo_endpoint.is_none() {
                self.err(
                    at,
                    format!("provider `{name}` has no `issuer`, so identity comes from userinfo: give `userinfo_endpoint`"),
                );
            }
        } else if let Some(scopes) = &p.scopes
            && !scopes.iter().any(|s| s == "openid")
        {
            self.err(
                format!("providers.{name}.scopes"),
                "an OpenID Connect provider (`issuer`) needs the `openid` scope to sign browsers in",
            );
        }
    }

    /// With `sessions.cookie_domain`: `server.public_url` and every session route's hosts are
    /// under it (a browser ignores a cookie whose domain does not cover the host setting it).
    fn cookie_domain_covers(
        &mut self,
        domain: &str,
        file: &FileConfig,
        server: Option<&ServerConfig>,
        routes: &[Route],
    ) {
        use super::cookie_domain::{covers, under};
        if let Some(host) = server
            .and_then(|s| s.public_url.as_ref())
            .and_then(|u| u.host_str())
            && !under(domain, host)
        {
            self.err(
                "server.public_url",
                format!("`{host}` is not under sessions.cookie_domain `{domain}`"),
            );
        }
        for (i, r) in file.routes.iter().enumerate() {
            let Some(route) = routes.iter().find(|c| *c.name == *r.name) else {
                continue;
            };
            if !matches!(
                route.auth,
                AuthPolicy::Session | AuthPolicy::SessionOrBearer
            ) || covers(domain, &route.host)
            {
                continue;
            }
            let message = match r.matcher.host.as_deref() {
                None => format!(
                    "sessions.cookie_domain is set: a session route must name its host, one under `{domain}`"
                ),
                Some(h) => format!("`{h}` is not under sessions.cookie_domain `{domain}`"),
            };
            self.err(format!("routes[{i}].match.host"), message);
        }
    }

    /// `routes[].rewrite`, for a route taking `taken`: each prefix a normalised path without a
    /// trailing slash, and `strip_prefix` covering every path the route takes, so that the
    /// rewrite always applies and always yields a normalised path.
    fn rewrite(
        &mut self,
        base: &str,
        rw: &file::RewriteFile,
        taken: &PathMatch,
    ) -> Option<crate::routing::Rewrite> {
        let at = |key: &str| format!("{base}.rewrite.{key}");
        if rw.strip_prefix.is_none() && rw.add_prefix.is_none() {
            self.err(
                format!("{base}.rewrite"),
                "give `strip_prefix`, `add_prefix` or both",
            );
            return None;
        }
        let mut ok = true;
        for (key, raw) in [
            ("strip_prefix", &rw.strip_prefix),
            ("add_prefix", &rw.add_prefix),
        ] {
            let Some(raw) = raw else { continue };
            let problem = if !raw.starts_with('/') {
                Some("must start with /")
            } else if raw == "/" {
                Some("`/` changes nothing; omit it")
            } else if raw.ends_with('/') {
                Some("must not end with / (the rest of the path starts with one)")
            } else if !normalise(raw).is_ok_and(|n| n.path == raw.as_str() && !n.has_params) {
                Some("must be a normalised path (no `..`, `//`, `;` or needless escapes)")
            } else {
                None
            };
            if let Some(problem) = problem {
                self.err(at(key), format!("`{raw}` {problem}"));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        if let Some(strip) = &rw.strip_prefix
            && !PathMatch::Prefix(strip.as_str().into()).covers(taken)
        {
            let message = match taken {
                PathMatch::Any => format!(
                    "the route takes every path (no `match.path` or `match.path_prefix`), so `{strip}` cannot be stripped from all of them; match `path_prefix: {strip}`"
                ),
                PathMatch::Exact(p) => format!(
                    "`{strip}` is not a prefix (on a segment boundary) of the route's `match.path: {p}`, so it would never apply"
                ),
                PathMatch::Prefix(p) => format!(
                    "`{strip}` is not a prefix (on a segment boundary) of every path under the route's `match.path_prefix: {p}`"
                ),
            };
            self.err(at("strip_prefix"), message);
            return None;
        }
        Some(crate::routing::Rewrite {
            strip_prefix: rw.strip_prefix.as_deref().map(Into::into),
            add_prefix: rw.add_prefix.as_deref().map(Into::into),
        })
    }

    fn host_match(&mut self, path: &str, raw: Option<&str>) -> Option<HostMatch> {
        let Some(raw) = raw else {
            return Some(HostMatch::Any);
        };
        let lower = raw.to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            self.err(
                path,
                format!("`{raw}` is not a host name or `*.suffix` wildcard (no port, no scheme)"),
            );
            return None;
        }
        Some(if wild {
            HostMatch::Suffix(name.into())
        } else {
            HostMatch::Exact(name.into())
        })
    }

    fn path_match(
        &mut self,
        base: &str,
        m: &file::MatchFile,
        auth_prefix: &str,
    ) -> Option<PathMatch> {
        let (key, raw, exact) = match (&m.path, &m.path_prefix) {
            (Some(_), Some(_)) => {
                self.err(
                    format!("{base}.match"),
                    "give `path` or `path_prefix`, not both",
                );
                return None;
            }
            (Some(p), None) => ("path", p, true),
            (None, Some(p)) => ("path_prefix", p, false),
            (None, None) => return Some(PathMatch::Any),
        };
        let at = format!("{base}.match.{key}");
        if !raw.starts_with('/') {
            self.err(at, format!("`{raw}` must start with /"));
            return None;
        }
        match normalise(raw) {
            Ok(n) if n.path == raw.as_str() && !n.has_params => {}
            _ => {
                self.err(at, format!("`{raw}` must be a normalised absolute path (no `..`, `//`, `;` or needless escapes)"));
                return None;
            }
        }
        let reserved = PathMatch::Prefix(auth_prefix.into());
        let candidate = if exact {
            PathMatch::Exact(raw.as_str().into())
        } else {
            PathMatch::Prefix(raw.as_str().into())
        };
        if reserved.covers(&candidate) {
            self.err(
                at,
                format!("`{raw}` lies under `{auth_prefix}`, which the gateway answers itself (server.auth_prefix)"),
            );
            return None;
        }
        Some(candidate)
    }
}

/// Why decoded session key bytes do not look random, if they do not: few distinct byte values
/// (32 zero bytes, a repeated pattern) or printable text only (a passphrase). 32 random bytes
/// have about 30 distinct values, and are all printable with a chance of about 1e-14.
fn not_random(key: &[u8]) -> Option<String> {
    let mut seen = [false; 256];
    for &b in key {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < 16 {
        let s = if distinct == 1 { "" } else { "s" };
        return Some(format!("has only {distinct} distinct byte value{s}"));
    }
    if key.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Some("is printable text (a passphrase?), not random bytes".into());
    }
    None
}

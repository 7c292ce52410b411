//! The YAML file, mirrored 1:1 by serde types.
//!
//! No logic lives here: every struct denies unknown fields, defaults are documented on the field
//! and applied in [`super::validate`], which turns these types into the typed [`super::Config`].
//! The JSON Schema printed by `portcullis schema` is derived from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listeners, the admin endpoint and process settings.
    pub server: ServerFile,
    /// Authorization servers, by name. Used by `session` and `bearer` routes.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    /// Where browser sessions are kept. Needed by `session` routes.
    #[serde(default)]
    pub sessions: Option<SessionsFile>,
    /// Backends, by name.
    pub upstreams: BTreeMap<String, UpstreamFile>,
    /// The identity headers sent upstream; all of them are stripped from client requests.
    #[serde(default)]
    pub identity: IdentityFile,
    /// Route rules; the first match wins, in file order. A request no route matches gets 404.
    pub routes: Vec<RouteFile>,
}

/// `server:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Public listeners: `"IP:port"` for plain HTTP (HTTP/1.1 and, unless `h2c: false`, HTTP/2 with
    /// prior knowledge), or `{address, cert, key}` for TLS.
    pub listen: Vec<ListenFile>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`), `"IP:port"`. Never one of `listen`.
    pub admin: String,
    /// The gateway's external URL, used to build redirect URIs. Optional.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Path prefix of the gateway's own endpoints, on every host. Defaults to `/oauth2`.
    #[serde(default)]
    pub auth_prefix: Option<String>,
    /// The request id header: kept from a trusted proxy, else made fresh; sent upstream, in
    /// the response, the access log and error bodies. Defaults to `X-Request-Id`.
    #[serde(default)]
    pub request_id_header: Option<String>,
    /// CIDRs whose `X-Forwarded-*`/`Forwarded` headers are believed. Defaults to nobody.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Worker threads for the proxy. Defaults to the number of CPUs.
    #[serde(default)]
    pub threads: Option<usize>,
    /// On SIGTERM, how long in-flight requests may take to finish. Defaults to `10s`.
    #[serde(default)]
    pub drain_timeout: Option<String>,
    /// Accept HTTP/2 with prior knowledge on plain listeners. Defaults to `true`.
    #[serde(default)]
    pub h2c: Option<bool>,
    /// The access log: `stdout` (one JSON line per request) or `off`. Defaults to `stdout`.
    #[serde(default)]
    pub access_log: Option<AccessLogFile>,
    /// The operational log on standard error: `text` (one line per event) or `json` (one JSON
    /// object per event). Read at start-up; a reload keeps the format. Defaults to `text`.
    #[serde(default)]
    pub log_format: Option<LogFormatFile>,
    /// pingora's pid file. Defaults to `/tmp/portcullis-<admin port>.pid`.
    #[serde(default)]
    pub pid_file: Option<String>,
    /// pingora's graceful-upgrade socket. Defaults to `/tmp/portcullis-<admin port>.sock`.
    #[serde(default)]
    pub upgrade_sock: Option<String>,
    /// Limits on what clients send. Every field has a safe default.
    #[serde(default)]
    pub limits: LimitsFile,
    /// How upstream target names are resolved. Defaults to the system resolver
    /// (`/etc/resolv.conf` and `/etc/hosts`).
    #[serde(default)]
    pub dns: Option<DnsFile>,
}

/// `server.dns:` the resolver of upstream target names (looked up in the background, never on
/// the request path; re-resolved at the answer's TTL, within 1s and 5m).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsFile {
    /// Name servers, `"IP:port"`, asked over UDP (TCP for long answers) instead of the
    /// system's; `/etc/hosts` is then not read.
    pub servers: Vec<String>,
}

/// `server.limits:` over a limit, the request is answered by the gateway (431, 414, 408) and
/// counted in `portcullis_refused_requests_total` by reason.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Most bytes of request line and headers together. Defaults to `32768`; over it: 431.
    #[serde(default)]
    pub max_header_bytes: Option<usize>,
    /// Most request headers. Defaults to `100`; over it: 431.
    #[serde(default)]
    pub max_headers: Option<usize>,
    /// Longest request target (path and query). Defaults to `8192`; over it: 414.
    #[serde(default)]
    pub max_uri_bytes: Option<usize>,
    /// Most bytes of `Cookie` headers together. Defaults to `16384` (room for a four-chunk
    /// session); over it: 431.
    #[serde(default)]
    pub max_cookie_bytes: Option<usize>,
    /// Longest wait for each read of a request body from the client. Defaults to `30s`.
    #[serde(default)]
    pub client_body_timeout: Option<String>,
    /// Longest wait for the first byte of a request head on a new or kept-alive connection
    /// (and for an HTTP/2 connection without open streams); then the connection is closed.
    /// Defaults to `60s`.
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// Longest time for a whole request head from its first byte; then 408 and close.
    /// Defaults to `10s`.
    #[serde(default)]
    pub header_timeout: Option<String>,
    /// Longest time for a whole request body (from its head) sent to a backend; then 408 (or
    /// the connection closed, when the answer has begun) and the backend connection dropped.
    /// Defaults to `300s`.
    #[serde(default)]
    pub body_timeout: Option<String>,
    /// Longest a client may leave the gateway's answer unread: an HTTP/1.1 write making no
    /// progress, or an HTTP/2 stream waiting for the client's flow-control window; then the
    /// connection is closed (HTTP/1.1) or the stream reset (HTTP/2). Defaults to `60s`.
    #[serde(default)]
    pub write_timeout: Option<String>,
    /// Most open client connections per process; more are closed at once. Defaults to `10000`.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// One public listener.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ListenFile {
    /// Plain HTTP on `"IP:port"`.
    Plain(String),
    /// A listener with settings: TLS (`cert` and `key`), or plain HTTP redirecting to HTTPS.
    Detailed(ListenerFile),
}

/// A listener with settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// `"IP:port"`.
    pub address: String,
    /// TLS: the default certificate chain, PEM (leaf first). With `key`.
    #[serde(default)]
    pub cert: Option<String>,
    /// TLS: the default certificate's private key, PEM.
    #[serde(default)]
    pub key: Option<String>,
    /// TLS: more certificates, each chosen by SNI for the DNS names it holds (exact and
    /// wildcard); the default certificate answers every other name.
    #[serde(default)]
    pub certificates: Vec<CertificateFile>,
    /// Plain HTTP only: answer every request with a `308` redirect to `https://<host>:<port>`
    /// (the port of a TLS listener; 443 is left out of the URL).
    #[serde(default)]
    pub redirect_to_https: Option<u16>,
}

/// A certificate and its key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// Certificate chain, PEM (leaf first).
    pub cert: String,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// Where the access log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFile {
    /// One JSON object per request on standard output.
    Stdout,
    /// No access log.
    Off,
}

/// `server.log_format:`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatFile {
    /// Human-readable lines.
    Text,
    /// One JSON object per event: `timestamp`, `level`, `message`, the event's fields, `target`.
    Json,
}

/// `providers.<name>:` an OpenID Connect provider (by discovery from `issuer`) or a plain OAuth 2.0
/// server (endpoints given).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    /// The issuer URL; discovery reads `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// OAuth client id of the gateway at this provider.
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth client secret; `${env:NAME}` or `${file:PATH}` recommended.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes asked for at sign-in. Defaults to `[openid, email, profile]` for OIDC providers.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Accepted `aud` values of bearer tokens.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Key set URL; defaults to the discovered `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Authorization endpoint, for providers without discovery.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Token endpoint, for providers without discovery.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Userinfo endpoint, for providers without discovery or ID tokens.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// RFC 7662 introspection endpoint, for opaque bearer tokens. Defaults to the discovered one.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// Accept opaque (non-JWT) bearer tokens by introspection. Defaults to `false`.
    #[serde(default)]
    pub opaque_tokens: bool,
    /// Signature algorithms accepted for tokens. Defaults to
    /// `[RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA]`; HMAC and `none` are
    /// never accepted.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Clock skew allowed for `exp`/`nbf`/`iat`. Defaults to `30s`, at most `5m`.
    #[serde(default)]
    pub leeway: Option<String>,
    /// How long an introspection answer is trusted (never past the token's `exp`). Defaults to `60s`.
    #[serde(default)]
    pub introspection_cache: Option<String>,
    /// The claim naming the user. Defaults to `sub`.
    #[serde(default)]
    pub user_claim: Option<String>,
    /// The claim listing groups. Defaults to `groups`.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// How the gateway authenticates at the token endpoint: `client_secret_basic` (the default)
    /// or `client_secret_post`. A provider without `client_secret` is a public client (PKCE
    /// only).
    #[serde(default)]
    pub token_endpoint_auth: Option<TokenEndpointAuthFile>,
    /// After sign-in, also read the userinfo endpoint and merge its claims into the session.
    /// Defaults to `true` for providers without an `issuer` (plain OAuth 2.0: userinfo is the
    /// only source of identity) and `false` otherwise (the ID token's claims are used).
    #[serde(default)]
    pub userinfo: Option<bool>,
    /// Session claims taken from other userinfo fields, `{claim: field}`: for plain OAuth 2.0
    /// providers whose userinfo is not OpenID Connect's (GitHub: `{sub: id, preferred_username:
    /// login}`). Dotted fields reach into objects. Numbers are turned into strings.
    #[serde(default)]
    pub claim_mapping: BTreeMap<String, String>,
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthFile {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
}

/// `sessions:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionsFile {
    /// `cookie` (the whole session sealed in the cookie, the default) or `redis`.
    #[serde(default)]
    pub store: Option<SessionStoreFile>,
    /// At least 32 random bytes, base64. `${env:NAME}` or `${file:PATH}` recommended.
    pub secret: String,
    /// Previous secrets, still accepted for decryption during a rotation.
    #[serde(default)]
    pub old_secrets: Vec<String>,
    /// Absolute session lifetime. Defaults to `12h`.
    #[serde(default)]
    pub lifetime: Option<String>,
    /// A session unused this long ends. Defaults to `1h`.
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// Base name of the gateway's cookies. Defaults to `portcullis`.
    #[serde(default)]
    pub cookie_name: Option<String>,
    /// Redis connection, for `store: redis`.
    #[serde(default)]
    pub redis: Option<RedisFile>,
    /// Hosts (exact, or `*.suffix`) that a return URL (`rd`) may name after sign-in or
    /// sign-out. Relative paths are always allowed; other absolute URLs never.
    #[serde(default)]
    pub allowed_redirect_hosts: Vec<String>,
    /// Most sign-ins a browser may have in flight at once (one short-lived cookie each, so
    /// several tabs can sign in together). Older ones are dropped. Defaults to `5`, at most `10`.
    #[serde(default)]
    pub max_pending_sign_ins: Option<usize>,
    /// How long before the access token expires the session is refreshed (when the provider
    /// gave a refresh token). Defaults to `60s`.
    #[serde(default)]
    pub refresh_before: Option<String>,
    /// Share one sign-in across the hosts under this domain (`example.com`: `a.example.com`
    /// and `b.example.com` too): the gateway's cookies then carry `Domain=` and the `__Secure-`
    /// prefix instead of `__Host-`. Every session route must name hosts under it, and so must
    /// `server.public_url`. Defaults to none: cookies are for the host that set them.
    #[serde(default)]
    pub cookie_domain: Option<String>,
    /// DEVELOPMENT ONLY: send cookies without `Secure` (and so without the `__Host-` prefix),
    /// for plain-HTTP set-ups on hosts other than localhost. Defaults to `false`.
    #[serde(default)]
    pub dev_insecure_cookies: bool,
}

/// Session store kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStoreFile {
    /// Sealed inside the browser's cookie.
    Cookie,
    /// In Redis; the cookie holds only a ticket.
    Redis,
}

/// `sessions.redis:` one of `url` (a single server), `sentinel` or `cluster`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// A single server: `redis://host:port[/db]`, or `rediss://` for TLS. A password in it may use
    /// `${env:NAME}`; prefer `password`.
    #[serde(default)]
    pub url: Option<String>,
    /// Redis Sentinel: the master's name and the sentinels' URLs.
    #[serde(default)]
    pub sentinel: Option<SentinelFile>,
    /// Redis Cluster: some of the nodes' URLs (the rest is discovered).
    #[serde(default)]
    pub cluster: Option<ClusterFile>,
    /// ACL user name (`AUTH user password`). Optional.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (`AUTH`); `${env:NAME}` or `${file:PATH}` recommended.
    #[serde(default)]
    pub password: Option<String>,
    /// Limit of every Redis call, connection included. Defaults to `500ms`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Prefix of every key the gateway writes. Defaults to `portcullis:`.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// CA certificate(s), PEM, that `rediss://` servers' certificates must chain to. Defaults to
    /// the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// `sessions.redis.sentinel:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentinelFile {
    /// The monitored master's name.
    pub master: String,
    /// Sentinel URLs, `redis://host:26379` (`rediss://` for TLS).
    pub nodes: Vec<String>,
}

/// `sessions.redis.cluster:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Node URLs, `redis://host:6379` (`rediss://` for TLS).
    pub nodes: Vec<String>,
}

/// `upstreams.<name>:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// Backends, balanced round robin: `"IP:port"`, or `"name:port"` for a DNS name whose every
    /// address (A and AAAA) is a target; names are resolved in the background (see `server.dns`).
    pub targets: Vec<String>,
    /// Connect over TLS. Defaults to `false`.
    #[serde(default)]
    pub tls: bool,
    /// TLS: the name sent as SNI and verified against the upstream's certificate. Required with
    /// `tls: true`.
    #[serde(default)]
    pub sni: Option<String>,
    /// TLS: CA certificates (PEM) the upstream's certificate must chain to. Defaults to the
    /// system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// TLS: a client certificate chain (PEM) presented to the upstream (mTLS). With `client_key`.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// TLS: the client certificate's private key (PEM).
    #[serde(default)]
    pub client_key: Option<String>,
    /// TLS: DANGEROUS — accept any certificate for any name from this upstream. Defaults to
    /// `false`; logged as a warning at every load.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// Connection set-up limit. Defaults to `2s`.
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// Longest wait for each read from the backend. Defaults to `60s`.
    #[serde(default)]
    pub read_timeout: Option<String>,
    /// Longest wait for each write to the backend. Defaults to `60s`.
    #[serde(default)]
    pub write_timeout: Option<String>,
    /// How long a target that failed to connect is skipped. Defaults to `10s`.
    #[serde(default)]
    pub fail_timeout: Option<String>,
}

/// `identity:` names of the headers the gateway sets upstream.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    /// The user's subject. Defaults to `X-Forwarded-User`.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's email. Defaults to `X-Forwarded-Email`.
    #[serde(default)]
    pub email: Option<String>,
    /// The user's groups, comma-separated. Defaults to `X-Forwarded-Groups`.
    #[serde(default)]
    pub groups: Option<String>,
    /// More headers, each from one claim: `{X-Forwarded-Department: department}`.
    #[serde(default)]
    pub extra_claims: BTreeMap<String, String>,
    /// `none` or the header carrying the access token. Defaults to `none`.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Header carrying a short-lived JWT signed by the gateway. Optional.
    #[serde(default)]
    pub assertion: Option<String>,
    /// `none` or the header carrying the session's ID token (`Authorization` sends it as
    /// `Bearer <token>`), on requests a session authenticated. Defaults to `none`.
    #[serde(default)]
    pub id_token: Option<String>,
}

/// One entry of `routes:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Unique name; used in metrics and logs.
    pub name: String,
    /// What requests this route takes. Omitted fields match anything.
    #[serde(rename = "match", default)]
    pub matcher: MatchFile,
    /// The upstream (by name) that serves the route.
    pub upstream: String,
    /// `public`, `session`, `bearer` or `session_or_bearer`. Required: nothing is public by default.
    pub auth: AuthFile,
    /// The provider (by name) for `session`/`bearer` routes.
    #[serde(default)]
    pub provider: Option<String>,
    /// Who may pass: any-of entries, each all-of its conditions. Omitted: any signed-in user.
    #[serde(default)]
    pub allow: Option<Vec<AllowFile>>,
    /// `api` or `browser`: overrides the navigation detection for unauthenticated requests.
    #[serde(default)]
    pub mode: Option<ModeFile>,
    /// Per-route override of `identity.access_token`.
    #[serde(default)]
    pub access_token: Option<String>,
    /// `Strict-Transport-Security` on this route's answers to requests that came over TLS.
    /// Optional.
    #[serde(default)]
    pub hsts: Option<HstsFile>,
    /// Origins (`https://spa.example.com`) allowed to read this route's 401/403 answers
    /// cross-origin (CORS, with credentials). Defaults to none.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Rewrites the path sent upstream, once, after matching: `{strip_prefix: /api, add_prefix:
    /// /v2}` sends `/api/users?q=1` as `/v2/users?q=1`. Optional.
    #[serde(default)]
    pub rewrite: Option<RewriteFile>,
}

/// `routes[].rewrite:` applied to the normalised path after matching; the query is kept.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteFile {
    /// Removed from the front of the path; must cover every path the route takes (`match.path`
    /// or `match.path_prefix` on a segment boundary). Stripping the whole path leaves `/`.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Put in front of the (stripped) path.
    #[serde(default)]
    pub add_prefix: Option<String>,
}

/// `routes[].hsts:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HstsFile {
    /// `max-age`, as a duration (`365d`). Required.
    pub max_age: String,
    /// Add `includeSubDomains`. Defaults to `false`.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Add `preload`. Defaults to `false`.
    #[serde(default)]
    pub preload: bool,
}

/// `routes[].match:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    /// Exact host (`app.example.com`) or a wildcard (`*.example.com`, any depth, not the apex).
    #[serde(default)]
    pub host: Option<String>,
    /// Exact path.
    #[serde(default)]
    pub path: Option<String>,
    /// Path prefix, matched on a segment boundary: `/api` matches `/api` and `/api/x`, not `/apix`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Allowed methods. Omitted: every method.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

/// How a route authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthFile {
    /// No authentication.
    Public,
    /// A browser session (OIDC sign-in).
    Session,
    /// An OAuth 2.0 bearer token.
    Bearer,
    /// A session cookie, or else a bearer token.
    SessionOrBearer,
}

/// Unauthenticated-request handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModeFile {
    /// Always 401 JSON.
    Api,
    /// Always redirect to sign-in.
    Browser,
}

/// One `allow` entry: every condition given must hold.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowFile {
    /// Required scopes (all of them).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Required groups (any of them).
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Required email domain (label-boundary match).
    #[serde(default)]
    pub email_domain: Option<String>,
    /// Claim conditions: claim name to a value, a list (one-of) or a glob.
    #[serde(default)]
    pub claims: Option<BTreeMap<String, ClaimValueFile>>,
    /// Path template, `{name}` binding a segment, `**` the rest.
    #[serde(default)]
    pub path: Option<String>,
    /// Allowed methods.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Let `email_domain` accept an address whose `email_verified` claim is `false`. Defaults to
    /// `false`: an unverified address never satisfies an email rule.
    #[serde(default)]
    pub allow_unverified_email: bool,
}

/// A claim condition's value.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ClaimValueFile {
    /// Equality or glob.
    One(String),
    /// One of these.
    Any(Vec<String>),
}

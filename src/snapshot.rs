//! Everything compiled from one config load, swapped atomically on reload.
//!
//! A request takes one [`Snapshot`] at its start and keeps it to its end, so a reload never
//! mixes two configs within one request. Building a snapshot happens away from the request path
//! (at start-up and in the reload service).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::assertion::{AssertionSettings, AssertionSigner};
use crate::config::Config;
use crate::identity::Hygiene;
use crate::routing::Router;
use crate::session::Cookies;
use crate::session::store::Store;
use crate::signin::SignInProvider;
use crate::token::cache::TokenCache;
use crate::token::{KeyRegistry, SourceId, TokenProvider, TokenSettings};
use crate::upstream::UpstreamPool;

/// Entries of the verified-token cache (per snapshot: a reload that changes a provider's
/// audiences or algorithms must not be answered from tokens checked under the old rules).
pub const TOKEN_CACHE_ENTRIES: usize = 65_536;

/// A compiled config.
#[derive(Debug)]
pub struct Snapshot {
    /// The config it was built from.
    pub config: Config,
    /// Compiled routes.
    pub router: Router,
    /// Upstream pools, indexed like `config.upstreams`.
    pub pools: Vec<UpstreamPool>,
    /// Each route's request metrics, indexed like the router's routes.
    pub route_metrics: Vec<crate::metrics::RouteMetrics>,
    /// Header hygiene rules: the `identity:` headers and the gateway's cookies.
    pub hygiene: Hygiene,
    /// The rules for requests to each upstream (indexed like `config.upstreams`): also the
    /// `access_token:` headers of every route to it.
    pub upstream_hygiene: Vec<Hygiene>,
    /// Token rules per provider, indexed like `config.providers` (in name order).
    pub tokens: Vec<TokenProvider>,
    /// Verified tokens.
    pub token_cache: TokenCache,
    /// Sign-in rules per provider, indexed like `tokens`; `None` for providers without a
    /// client id (bearer only).
    pub sign_in: Vec<Option<SignInProvider>>,
    /// The session cookies, when `sessions:` is configured (with `dev_insecure_cookies`, for
    /// plain-HTTP requests).
    cookies: Option<Cookies>,
    /// With `dev_insecure_cookies`: the `Secure`, `__Host-` cookies of requests that came over TLS.
    tls_cookies: Option<Cookies>,
    /// Where sessions live, when `sessions:` is configured.
    pub store: Option<Store>,
    /// The identity assertion signer, when `identity.assertion` is configured.
    pub assertion: Option<AssertionSigner>,
    /// A number no other snapshot of this process has: idle upstream connections are kept per
    /// generation, so none made under one config's TLS settings serves another's.
    pub generation: u64,
}

/// The last generation handed out.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Snapshot {
    /// The header hygiene of requests to upstream `upstream`.
    pub fn hygiene_for(&self, upstream: usize) -> &Hygiene {
        self.upstream_hygiene.get(upstream).unwrap_or(&self.hygiene)
    }

    /// Compiles `config`; key sources come from (and are kept in) `keys`.
    pub fn build(config: Config, keys: &KeyRegistry) -> Self {
        let mut live = Vec::new();
        let mut sign_in = Vec::new();
        let tokens = config
            .providers
            .iter()
            .map(|(name, p)| {
                let id = SourceId {
                    name: name.clone(),
                    issuer: p.issuer.clone(),
                    jwks_uri: p.jwks_uri.clone(),
                    introspection_endpoint: p.introspection_endpoint.clone(),
                };
                live.push(id.clone());
                let source = keys.source(id);
                sign_in.push(
                    p.client_id
                        .is_some()
                        .then(|| SignInProvider::new(name, p, source.clone())),
                );
                TokenProvider::new(TokenSettings {
                    name: Arc::from(name.as_str()),
                    source,
                    algorithms: p.algorithms.clone(),
                    issuer: p.issuer_id.clone(),
                    audiences: p.audiences.clone(),
                    leeway: p.leeway.as_secs(),
                    opaque: p.opaque_tokens,
                    client: p.client_id.clone().zip(p.client_secret.clone()),
                    introspection_ttl: p.introspection_cache,
                })
            })
            .collect();
        keys.retain(&live);
        let router = Router::new(config.routes.clone());
        let pools = config
            .upstreams
            .iter()
            .cloned()
            .map(UpstreamPool::new)
            .collect();
        let cookie_base = config
            .sessions
            .as_ref()
            .map_or("portcullis", |s| s.cookie_name.as_str());
        let hygiene = Hygiene::new(config.identity.header_names(), cookie_base);
        // Per upstream, also each of its routes' own `access_token:` header: the app behind
        // the upstream trusts it on every route that reaches it, not only the one that sets it.
        let upstream_hygiene = (0..config.upstreams.len())
            .map(|u| {
                let tokens = config
                    .routes
                    .iter()
                    .filter(|r| r.upstream == u)
                    .filter_map(|r| r.access_token.as_ref());
                Hygiene::new(config.identity.header_names().chain(tokens), cookie_base)
            })
            .collect();
        let cookies = config.sessions.as_ref().map(Cookies::new);
        let tls_cookies = config
            .sessions
            .as_ref()
            .filter(|s| !s.secure_cookies)
            .map(|s| {
                let mut secure = s.clone();
                secure.secure_cookies = true;
                Cookies::new(&secure)
            });
        let store = config.sessions.as_ref().map(Store::for_config);
        // Keys derived from the session secret: every instance sharing it signs and publishes
        // the same keys. Without sessions, each process has its own random keys.
        let assertion = config.identity.assertion.as_ref().map(|_| {
            let issuer = config.server.public_url.as_ref().map_or_else(
                || "portcullis".to_owned(),
                |u| u.origin().ascii_serialization(),
            );
            let secret = config
                .sessions
                .as_ref()
                .and_then(|s| s.keys.first())
                .map(Vec::as_slice);
            AssertionSigner::new(secret, AssertionSettings::new(issuer))
        });
        let route_metrics = router
            .routes()
            .iter()
            .map(|r| crate::metrics::RouteMetrics::new(&r.name))
            .collect();
        Self {
            router,
            pools,
            route_metrics,
            hygiene,
            upstream_hygiene,
            tokens,
            token_cache: TokenCache::new(TOKEN_CACHE_ENTRIES),
            sign_in,
            cookies,
            tls_cookies,
            store,
            assertion,
            config,
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
        }
    }

    /// The session cookies for `req`: `Secure` and `__Host-` whenever it came over TLS (see
    /// [`Arrival`]), whatever `dev_insecure_cookies` says.
    pub fn cookies(&self, req: &http::request::Parts) -> Option<&Cookies> {
        let tls = req.extensions.get::<Arrival>().is_some_and(|a| a.tls);
        match (&self.tls_cookies, tls) {
            (Some(secure), true) => Some(secure),
            _ => self.cookies.as_ref(),
        }
    }

    /// The public keys of the identity assertion, as a JWKS document (no keys when assertions
    /// are not configured).
    pub fn jwks(&self, now: u64) -> bytes::Bytes {
        match &self.assertion {
            Some(signer) => signer.jwks(now),
            None => bytes::Bytes::from_static(br#"{"keys":[]}"#),
        }
    }

    /// The sign-in rules of provider `index`.
    pub fn sign_in(&self, index: usize) -> Option<&SignInProvider> {
        self.sign_in.get(index).and_then(Option::as_ref)
    }

    /// The index of the provider named `name`.
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.config.providers.keys().position(|k| k == name)
    }

    /// The token rules of the providers that protected routes use.
    pub fn used_providers(&self) -> impl Iterator<Item = &TokenProvider> {
        let mut used: Vec<usize> = self
            .router
            .routes()
            .iter()
            .filter_map(|r| r.provider)
            .collect();
        used.sort_unstable();
        used.dedup();
        used.into_iter().filter_map(|i| self.tokens.get(i))
    }

    /// Fetches the keys of every used provider that has none yet (start-up and reload), each
    /// bounded by the HTTP client's timeout.
    pub async fn prefetch_keys(&self) {
        for p in self.used_providers() {
            if p.settings.source.state() == crate::token::KeyState::Missing {
                p.settings.source.refresh(std::time::Duration::ZERO).await;
            }
        }
    }
}

/// How a request reached the gateway, attached to it (as an extension) by the proxy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arrival {
    /// Over a TLS listener.
    pub tls: bool,
}

/// The live snapshot, shared by the proxy, the admin service and the reloader.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

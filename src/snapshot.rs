//! Everything compiled from one config load, swapped atomically on reload.
//!
//! A request takes one [`Snapshot`] at its start and keeps it to its end, so a reload never
//! mixes two configs within one request. Building a snapshot happens away from the request path
//! (at start-up and in the reload service).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::identity::Hygiene;
use crate::routing::Router;
use crate::upstream::UpstreamPool;

/// A compiled config.
#[derive(Debug)]
pub struct Snapshot {
    /// The config it was built from.
    pub config: Config,
    /// Compiled routes.
    pub router: Router,
    /// Upstream pools, indexed like `config.upstreams`.
    pub pools: Vec<UpstreamPool>,
    /// Header hygiene rules.
    pub hygiene: Hygiene,
}

impl Snapshot {
    /// Compiles `config`.
    pub fn build(config: Config) -> Self {
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
        Self {
            router,
            pools,
            hygiene,
            config,
        }
    }
}

/// The live snapshot, shared by the proxy, the admin service and the reloader.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

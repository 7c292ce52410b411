//! The background service that keeps upstream target names resolved (see `upstream::dns`).

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::snapshot::SharedSnapshot;

/// Runs `upstream::dns::run` with the name servers of whatever config serves now.
pub struct NameResolver {
    state: SharedSnapshot,
}

impl NameResolver {
    /// A resolver for the names of `state`'s upstreams.
    pub fn new(state: SharedSnapshot) -> Self {
        Self { state }
    }
}

#[async_trait]
impl BackgroundService for NameResolver {
    async fn start(&self, shutdown: ShutdownWatch) {
        let servers = || self.state.load().config.server.dns.servers.clone();
        crate::upstream::dns::run(servers, shutdown).await;
    }
}

//! The background service that keeps every provider's keys fresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::token::KeyRegistry;

/// How often sources are checked for being due.
const TICK: Duration = Duration::from_secs(1);

/// Refreshes each key source when it is due (see `token::source`).
pub struct KeyRefresher {
    registry: Arc<KeyRegistry>,
}

impl KeyRefresher {
    /// A refresher of `registry`.
    pub fn new(registry: Arc<KeyRegistry>) -> Self {
        Self { registry }
    }
}

#[async_trait]
impl BackgroundService for KeyRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    let now = Instant::now();
                    for source in self.registry.all() {
                        if source.due(now) {
                            source.refresh(Duration::ZERO).await;
                        }
                    }
                }
            }
        }
    }
}

/// How often the Redis session store is pinged.
const STORE_TICK: Duration = Duration::from_secs(1);

/// Pings the Redis session store every second, so `/readyz` and `portcullis_session_store_up`
/// follow it (and a connection is made before the first request needs one).
pub struct StoreHealth {
    state: crate::snapshot::SharedSnapshot,
}

impl StoreHealth {
    /// A checker of the store of whatever snapshot `state` holds.
    pub fn new(state: crate::snapshot::SharedSnapshot) -> Self {
        Self { state }
    }
}

#[async_trait]
impl BackgroundService for StoreHealth {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(STORE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    let redis = self.state.load().store.as_ref().and_then(|s| s.redis()).cloned();
                    if let Some(redis) = redis
                        && let Err(e) = redis.ping().await
                    {
                        tracing::debug!(error = %e, "session store health check failed");
                    }
                }
            }
        }
    }
}

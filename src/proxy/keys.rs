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

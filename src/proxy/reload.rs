//! SIGHUP reload: the config file is read and compiled off the request path, then swapped in
//! atomically. An invalid config is logged with every error and the old one keeps serving.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{SignalKind, signal};

use crate::config;
use crate::metrics;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::token::KeyRegistry;

/// Longest a reload waits for the first lookups of new upstream names before swapping in.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for SIGHUP and reloads `path` into `state`.
pub struct Reloader {
    path: PathBuf,
    state: SharedSnapshot,
    keys: Arc<KeyRegistry>,
}

impl Reloader {
    /// A reloader of `path` into `state`, with key sources from `keys`.
    pub fn new(path: PathBuf, state: SharedSnapshot, keys: Arc<KeyRegistry>) -> Self {
        Self { path, state, keys }
    }

    /// Loads, compiles and swaps in the file once. Returns whether it was accepted.
    pub async fn reload(&self) -> bool {
        let path = self.path.clone();
        let keys = self.keys.clone();
        let built = tokio::task::spawn_blocking(move || {
            config::load(&path).map(|c| Snapshot::build(c, &keys))
        })
        .await;
        match built {
            Ok(Ok(snapshot)) => {
                // A new provider's keys are fetched before the swap, so no request meets a
                // provider without keys (each fetch is bounded by the client's timeout).
                snapshot.prefetch_keys().await;
                // Likewise a new upstream name gets its first answer (or fails) first.
                crate::upstream::dns::settle(&snapshot.pools, SETTLE_LIMIT).await;
                let old = self.state.load();
                if old.config.server.listen != snapshot.config.server.listen
                    || old.config.server.admin != snapshot.config.server.admin
                    || old.config.server.threads != snapshot.config.server.threads
                    || old.config.server.limits.max_connections
                        != snapshot.config.server.limits.max_connections
                {
                    tracing::warn!(
                        "listener, thread and max_connections changes take effect only after a restart or upgrade"
                    );
                }
                let tls_addresses = |s: &Snapshot| -> Vec<std::net::SocketAddr> {
                    s.config
                        .server
                        .tls_listen
                        .iter()
                        .map(|t| t.address)
                        .collect()
                };
                let (old_tls, new_tls) = (tls_addresses(&old), tls_addresses(&snapshot));
                if old_tls != new_tls {
                    tracing::warn!(
                        "TLS listener changes take effect only after a restart or upgrade"
                    );
                }
                // New certificates for the listeners that exist: the next handshakes use them.
                for listener in &snapshot.config.server.tls_listen {
                    if old_tls.contains(&listener.address) {
                        crate::tls::resolver(listener.address, &listener.certs);
                    }
                }
                let routes = snapshot.router.routes().len();
                self.state.store(Arc::new(snapshot));
                metrics::RELOADS.with_label_values(&["success"]).inc();
                tracing::info!(routes, "config reloaded");
                true
            }
            Ok(Err(errors)) => {
                metrics::RELOADS.with_label_values(&["failure"]).inc();
                for e in &errors.0 {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    errors = errors.0.len(),
                    "config reload rejected; the previous config keeps serving"
                );
                false
            }
            Err(join) => {
                metrics::RELOADS.with_label_values(&["failure"]).inc();
                tracing::error!(error = %join, "config reload rejected; the previous config keeps serving");
                false
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload is disabled");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = hup.recv() => {
                    if got.is_none() { return; }
                    self.reload().await;
                }
            }
        }
    }
}

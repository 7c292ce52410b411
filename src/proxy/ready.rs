//! The one INFO line that says the gateway is ready: the first moment `/readyz` would answer
//! 200 (see [`admin::not_ready`]) and every public listener accepts connections.
//!
//! pingora tells a service nothing once its sockets are bound, so the listeners are probed
//! with a TCP connect (closed at once, before any request), as a load balancer's check would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::admin;
use crate::snapshot::SharedSnapshot;

/// How often readiness is looked at until it comes.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for one probe connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Logs `gateway ready` once, then idles until shutdown.
pub struct ReadyLog {
    state: SharedSnapshot,
}

impl ReadyLog {
    /// Watches whatever snapshot `state` holds.
    pub fn new(state: SharedSnapshot) -> Self {
        Self { state }
    }

    async fn ready(&self) -> bool {
        let snap = self.state.load_full();
        if admin::not_ready(&snap).is_some() {
            return false;
        }
        let server = &snap.config.server;
        let addrs = server
            .listen
            .iter()
            .chain(server.tls_listen.iter().map(|t| &t.address));
        for addr in addrs {
            let probe = tokio::time::timeout(
                PROBE_TIMEOUT,
                tokio::net::TcpStream::connect(reachable(*addr)),
            );
            if !matches!(probe.await, Ok(Ok(_))) {
                return false;
            }
        }
        true
    }
}

/// Where a listener on `addr` is reached from this host: a wildcard address by loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

#[async_trait]
impl BackgroundService for ReadyLog {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(POLL) => {
                    if self.ready().await {
                        break;
                    }
                }
            }
        }
        let snap = self.state.load();
        let server = &snap.config.server;
        let tls: Vec<SocketAddr> = server.tls_listen.iter().map(|t| t.address).collect();
        tracing::info!(
            listen = ?server.listen,
            tls = ?tls,
            admin = %server.admin,
            routes = snap.router.routes().len(),
            "gateway ready"
        );
        let _ = shutdown.changed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::reachable;

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        let cases = [
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("[::]:8443", "[::1]:8443"),
            ("10.1.2.3:80", "10.1.2.3:80"),
        ];
        for (given, want) in cases {
            let given: std::net::SocketAddr = given.parse().expect("valid");
            assert_eq!(reachable(given).to_string(), want);
        }
    }
}

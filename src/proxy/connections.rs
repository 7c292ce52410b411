//! Counts open client connections around any pingora server app.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::metrics::OPEN_CONNECTIONS;

/// Wraps a server app; `portcullis_open_connections` counts the connections inside it.
/// pingora's HTTP apps serve a whole connection (every keep-alive request, or the whole HTTP/2
/// session) in one `process_new` call, so the gauge follows connections, not requests.
/// Beyond `max`, new connections are closed at once (counted in
/// `portcullis_connections_refused_total`).
pub struct Counted<A>(pub Arc<A>, pub usize);

struct Open;

impl Open {
    fn new() -> Self {
        OPEN_CONNECTIONS.inc();
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Counted<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _open = Open::new();
        if OPEN_CONNECTIONS.get() > self.1 as i64 {
            crate::metrics::CONNECTIONS_REFUSED.inc();
            return None;
        }
        self.0.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.0.cleanup().await
    }
}

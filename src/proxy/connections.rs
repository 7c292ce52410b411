//! One client connection: counted and limited, then served as HTTP/2 (pingora-core's stream
//! multiplexing) or as HTTP/1.1 requests one after another, each within its deadlines.
//!
//! ```text
//! accepted ─► over max_connections? close ─► TLS listener: handshake within header_timeout
//!    └─► TLS ALPN h2, or h2c preface? ─► HTTP/2 (see `http2`)
//!    └─► loop: first byte within idle_timeout (or pipelined bytes already here), else close
//!              whole head within header_timeout of it, else 408 and close
//!              the request (front, forward) ─► reusable? next round : close
//! ```
//! pingora's own HTTP/1.1 loop waits for a head with a timeout per read only, so a silent
//! connection or one trickling a byte every few seconds was never closed.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Gateway;
use crate::metrics::{CONNECTIONS_REFUSED, DEADLINES, OPEN_CONNECTIONS};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first read of a request head: pingora's own initial head buffer size, so the parser
/// takes this buffer over instead of allocating its own.
const FIRST_READ: usize = 4096;

/// Serves the connections of one proxy shard. `portcullis_open_connections` counts them;
/// beyond `max`, new ones are closed at once (`portcullis_connections_refused_total`).
pub struct Connections {
    gateway: Arc<Gateway>,
    max: usize,
    /// The TLS listeners' addresses and their handshakes.
    tls: Vec<(SocketAddr, Arc<Acceptor>)>,
}

impl Connections {
    /// The connections of `gateway`, at most `max` open at once in the process; those accepted
    /// on an address of `tls` begin with that listener's TLS handshake.
    pub fn new(gateway: Gateway, max: usize, tls: Vec<(SocketAddr, Arc<Acceptor>)>) -> Self {
        Self {
            gateway: Arc::new(gateway),
            max,
            tls,
        }
    }

    /// The TLS handshake of the listener `stream` was accepted on, if it is a TLS listener.
    fn acceptor(&self, stream: &Stream) -> Option<&Acceptor> {
        if self.tls.is_empty() {
            return None;
        }
        let local = stream
            .get_socket_digest()?
            .local_addr()?
            .as_inet()
            .copied()?;
        let exact = self.tls.iter().find(|(a, _)| *a == local);
        let any = || {
            self.tls
                .iter()
                .find(|(a, _)| a.port() == local.port() && a.ip().is_unspecified())
        };
        exact.or_else(any).map(|(_, acceptor)| &**acceptor)
    }

    /// HTTP/1.1: one request after another on `stream`, each within its deadlines.
    async fn http1(&self, mut stream: Stream, shutdown: &ShutdownWatch, mut prefix: BytesMut) {
        loop {
            let limits = self.gateway.limits();
            if prefix.is_empty() {
                // Waiting for a request: the idle deadline, or the server stopping.
                let mut watch = shutdown.clone();
                if *watch.borrow() {
                    return;
                }
                prefix.reserve(FIRST_READ);
                let read = tokio::select! {
                    biased;
                    read = tokio::time::timeout(limits.idle_timeout, stream.read_buf(&mut prefix)) => read,
                    _ = watch.changed() => return,
                };
                match read {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(_)) => {}
                    Err(_) => {
                        DEADLINES.with_label_values(&["idle"]).inc();
                        return;
                    }
                }
            }
            let mut session = ServerSession::new_http1(stream);
            session.set_pipelined_prefix(prefix);
            let keepalive = (!*shutdown.borrow()).then_some(limits.idle_timeout.as_secs().max(1));
            session.set_keepalive(keepalive);
            // Not boxed, though an idle connection then holds the space of a request in
            // progress (~20 KB): moving that future into a box per request cost ~0.8 µs (memcpy).
            let Some(reusable) = self.gateway.serve(session, shutdown).await else {
                return;
            };
            let (next, pipelined) = reusable.into_parts();
            stream = next;
            prefix = pipelined.unwrap_or_default();
        }
    }
}

/// How long a closing connection's late bytes are read and dropped, and how many at most.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;

/// Closes `session`'s connection after its last answer without losing that answer: the write
/// side is shut (FIN), then what the client still sends is read and dropped for a moment
/// ([`LINGER`], [`LINGER_BYTES`]), so the kernel does not reset the connection over unread bytes
/// — a reset would discard the answer before the client read it.
pub(crate) async fn lingering_close(session: ServerSession) {
    let ServerSession::H1(http1) = session else {
        return;
    };
    let mut stream = http1.into_inner();
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => dropped += n,
            _ => return,
        }
    }
}

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
impl ServerApp for Connections {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _open = Open::new();
        if OPEN_CONNECTIONS.get() > self.max as i64 {
            CONNECTIONS_REFUSED.inc();
            return None;
        }
        if let Some(acceptor) = self.acceptor(&stream) {
            // The whole handshake within the head deadline, as nginx's client_header_timeout.
            let limit = self.gateway.limits().header_timeout;
            let Ok(l4) = stream.into_any().downcast::<L4Stream>() else {
                return None;
            };
            let handshake = Box::pin(acceptor.tls_handshake(*l4));
            stream = match tokio::time::timeout(limit, handshake).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return None;
                }
                Err(_) => {
                    DEADLINES.with_label_values(&["handshake"]).inc();
                    return None;
                }
            };
        }
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            Box::pin(super::http2::serve(&self.gateway, stream, shutdown)).await;
            return None;
        }
        if self.gateway.h2c() && stream.get_ssl_digest().is_none() {
            // HTTP/2 with prior knowledge, or HTTP/1.1? The first byte (within the idle
            // deadline) says whether it can be the preface; only then the rest of it (within the
            // head deadline). A peek puts the bytes back for whoever reads next.
            let limits = self.gateway.limits();
            let mut first = [0u8; 1];
            match tokio::time::timeout(limits.idle_timeout, stream.try_peek(&mut first)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return None,
                Err(_) => {
                    DEADLINES.with_label_values(&["idle"]).inc();
                    return None;
                }
            }
            if first[0] == H2_PREFACE[0] {
                let mut head = [0u8; H2_PREFACE.len()];
                match tokio::time::timeout(limits.header_timeout, stream.try_peek(&mut head)).await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return None,
                    Err(_) => {
                        DEADLINES.with_label_values(&["header"]).inc();
                        return None;
                    }
                }
                if head == H2_PREFACE {
                    Box::pin(super::http2::serve(&self.gateway, stream, shutdown)).await;
                    return None;
                }
            }
        }
        self.http1(stream, shutdown, BytesMut::new()).await;
        None
    }

    async fn cleanup(&self) {}
}

//! One HTTP/2 connection (TLS with ALPN `h2`, or h2c with prior knowledge): pingora-core's h2
//! codec under the gateway's own accept loop, so that every limit has a deadline and every
//! buffer a bound.
//!
//! ```text
//! stream ─► frames::Guarded (control-frame budget, yield) ─► h2 handshake within header_timeout
//!    └─► loop: next stream ─► its own task (Gateway::serve, limits.write_timeout per write)
//!              no stream open for idle_timeout ─► close
//!              server stopping ─► GOAWAY, finish the open streams
//!              32 malformed streams ─► close
//! ```
//! Back-pressure: a stream hands the h2 codec one upstream chunk at a time and only within the
//! client's flow-control window, the codec queues at most [`STREAM_SEND_BUFFER`] per stream,
//! and the upstream is not read meanwhile; a stream whose client leaves it unread longer than
//! `limits.write_timeout` is reset (`portcullis_deadline_closes_total{kind="write"}`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pingora::protocols::Digest;
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::{
    H2Accept, H2Options, HttpSession, default_h2_options, handshake,
};
use pingora::server::ShutdownWatch;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Gateway;
use super::frames::Guarded;
use crate::metrics::DEADLINES;

/// Concurrent streams a client may open on one connection.
pub(super) const MAX_STREAMS: u32 = 100;
/// Response bytes the h2 codec queues per stream beyond what the socket took (the h2 crate's
/// default is 400 KiB, which a client that never reads pins per stream).
pub(super) const STREAM_SEND_BUFFER: usize = 16 * 1024;
/// Streams refused during acceptance (malformed heads) before the connection is closed.
const MAX_MALFORMED: usize = 32;

fn options() -> H2Options {
    let mut options = default_h2_options();
    options
        .max_concurrent_streams(MAX_STREAMS)
        .max_send_buffer_size(STREAM_SEND_BUFFER);
    options
}

/// The streams in progress on one connection, and when the last one ended.
struct Active {
    count: AtomicUsize,
    /// Milliseconds from `start` to when the count last dropped to zero.
    idle_since_ms: AtomicU64,
    start: Instant,
    /// Told when the count drops to zero.
    idle: Notify,
}

/// Held by a stream's task for its lifetime.
struct InFlight(Arc<Active>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let active = &self.0;
        if active.count.fetch_sub(1, Ordering::Relaxed) == 1 {
            let ms = active.start.elapsed().as_millis() as u64;
            active.idle_since_ms.store(ms, Ordering::Relaxed);
            active.idle.notify_one();
        }
    }
}

impl Active {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.count.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Returns once no stream has been open for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            if self.count.load(Ordering::Relaxed) > 0 {
                self.idle.notified().await;
                continue;
            }
            let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
            let deadline = self.start + since + limit;
            if deadline <= Instant::now() {
                return;
            }
            // A stream may begin and end meanwhile: looked at again when the sleep ends.
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Serves one HTTP/2 connection until the client closes it, it idles out, it misbehaves, or
/// the server stops (then open streams are finished after a GOAWAY).
pub(super) async fn serve(gateway: &Arc<Gateway>, stream: Stream, shutdown: &ShutdownWatch) {
    let limits = gateway.limits();
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let stream: Stream = Box::new(Guarded::new(stream));
    let mut conn =
        match tokio::time::timeout(limits.header_timeout, handshake(stream, Some(options()))).await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "HTTP/2 handshake failed");
                return;
            }
            Err(_) => {
                DEADLINES.with_label_values(&["header"]).inc();
                return;
            }
        };
    let active = Arc::new(Active {
        count: AtomicUsize::new(0),
        idle_since_ms: AtomicU64::new(0),
        start: Instant::now(),
        idle: Notify::new(),
    });
    let mut watch = shutdown.clone();
    let mut stopping = *watch.borrow();
    if stopping {
        conn.graceful_shutdown();
    }
    let mut malformed = 0;
    loop {
        let idle_timeout = gateway.limits().idle_timeout;
        let accepted = tokio::select! {
            biased;
            _ = watch.changed(), if !stopping => {
                conn.graceful_shutdown();
                stopping = true;
                continue;
            }
            accepted = HttpSession::from_h2_conn(&mut conn, digest.clone()) => accepted,
            () = active.idle_for(idle_timeout), if !stopping => {
                DEADLINES.with_label_values(&["idle"]).inc();
                return;
            }
        };
        match accepted {
            Ok(Some(H2Accept::Session(session))) => {
                let gateway = gateway.clone();
                let shutdown = shutdown.clone();
                let in_flight = active.begin();
                tokio::spawn(async move {
                    let _in_flight = in_flight;
                    gateway
                        .serve(ServerSession::new_http2(session), &shutdown)
                        .await;
                });
            }
            Ok(Some(H2Accept::Rejected)) => {
                malformed += 1;
                if malformed >= MAX_MALFORMED {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "HTTP/2 connection ended");
                return;
            }
        }
    }
}

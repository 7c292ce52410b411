//! Prompt shutdown: after SIGTERM (or a graceful upgrade) the process exits as soon as no
//! request is in flight, instead of sleeping the whole `server.drain_timeout`.
//!
//! pingora stops accepting, tells every connection (idle HTTP/1.1 ones close at once, HTTP/2
//! ones get a GOAWAY) and then sleeps its grace period; `drain_timeout` stays the upper bound,
//! as that grace period.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Requests between a complete head and the end of their answer, in the whole process.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Held for one request in flight.
pub(crate) struct InFlight(());

impl InFlight {
    pub(crate) fn begin() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How often the count is looked at while draining.
const POLL: Duration = Duration::from_millis(20);
/// How long the count must stay at zero: requests whose head was being read when the signal
/// came, and the access-log writer's next flush (every 50 ms).
const SETTLE: Duration = Duration::from_millis(150);

/// Exits the process once a shutdown has begun and no request is in flight.
#[derive(Default)]
pub struct Drain;

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let mut idle_for = Duration::ZERO;
        while idle_for < SETTLE {
            tokio::time::sleep(POLL).await;
            if IN_FLIGHT.load(Ordering::Relaxed) == 0 {
                idle_for += POLL;
            } else {
                idle_for = Duration::ZERO;
            }
        }
        tracing::info!("no request in flight: exiting");
        std::process::exit(0);
    }
}

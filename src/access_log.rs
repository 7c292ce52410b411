//! The access log: one JSON object per request on standard output.
//!
//! Lines are handed to a writer thread through a bounded channel so a slow stdout never stalls
//! the proxy; the writer drains it every 50 ms; when the channel is full the line is dropped and counted
//! (`portcullis_access_log_dropped_total`). Entries carry the normalised path without its query
//! string, and never a header value: no token, cookie or code can reach the log.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};

use serde::Serialize;

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 time the request finished.
    pub ts: String,
    /// Route name, or `none`.
    pub route: &'a str,
    /// Method.
    pub method: &'a str,
    /// Host matched on.
    pub host: &'a str,
    /// Normalised path, without query.
    pub path: &'a str,
    /// Status sent (0: none could be sent).
    pub status: u16,
    /// Milliseconds from request headers to the end of the response.
    pub duration_ms: f64,
    /// Upstream target, when one was used.
    pub upstream: Option<String>,
    /// Client IP.
    pub client: Option<String>,
    /// Why the gateway answered itself, when it did.
    pub reason: Option<&'a str>,
    /// The request id (as sent upstream and back).
    pub request_id: Option<&'a str>,
}

static SINK: OnceLock<SyncSender<Vec<u8>>> = OnceLock::new();

/// Starts the writer thread. Without it, [`write`] does nothing.
pub fn init() {
    let (tx, rx) = sync_channel::<Vec<u8>>(16 * 1024);
    if SINK.set(tx).is_ok() {
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || drain(rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the access-log writer");
        }
    }
}

/// How often the writer wakes to drain the queue. Polling, rather than blocking on the channel,
/// keeps senders from waking the writer thread on every request (a futex call per line).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

fn drain(rx: Receiver<Vec<u8>>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    loop {
        std::thread::sleep(FLUSH_EVERY);
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    let _ = out.write_all(&line);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
    }
}

/// Queues `entry` for writing.
pub fn write(entry: &Entry<'_>) {
    let Some(tx) = SINK.get() else { return };
    let mut line = match serde_json::to_vec(entry) {
        Ok(l) => l,
        Err(_) => return,
    };
    line.push(b'\n');
    if let Err(TrySendError::Full(_)) = tx.try_send(line) {
        crate::metrics::ACCESS_LOG_DROPPED.inc();
    }
}

/// The current time in RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

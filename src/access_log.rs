//! The access log: one JSON object per request on standard output.
//!
//! Lines are handed to a writer thread through a bounded channel so a slow stdout never stalls
//! the proxy; the writer drains it every 50 ms; when the channel is full the line is dropped and counted
//! (`portcullis_access_log_dropped_total`). Entries carry the normalised path without its query
//! string, and of the request's headers only `User-Agent` (bounded): no token, cookie or code can
//! reach the log. `user` is the identity's user claim (escaped and bounded, see
//! [`crate::logging::user_label`]), never a credential.

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
    /// Milliseconds from request headers to the end of the response, to the microsecond.
    #[serde(serialize_with = "micros")]
    pub duration_ms: f64,
    /// Milliseconds from starting the upstream request (a pooled connection taken, or the
    /// connect begun) to the upstream's response head, to the microsecond; absent when no
    /// upstream answered.
    #[serde(serialize_with = "micros_opt", skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    /// Bytes of the response sent to the client: the head as HTTP/1.1 spells it plus the body
    /// (without chunked framing).
    pub bytes_sent: u64,
    /// Upstream target, when one was used.
    pub upstream: Option<String>,
    /// Client IP.
    pub client: Option<String>,
    /// Why the gateway answered itself, when it did.
    pub reason: Option<&'a str>,
    /// The request id (as sent upstream and back).
    pub request_id: Option<&'a str>,
    /// Who: the identity's user claim, on protected routes; absent on public ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    /// The client's `User-Agent`, at most [`MAX_USER_AGENT`] bytes.
    pub user_agent: Option<&'a str>,
}

/// Longest `User-Agent` logged, bytes (cut at a character boundary).
pub const MAX_USER_AGENT: usize = 512;

/// `value` cut to at most `max` bytes, at a character boundary.
pub fn bounded(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Milliseconds rounded to the microsecond.
fn round_micros(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn micros<S: serde::Serializer>(ms: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_micros(*ms))
}

fn micros_opt<S: serde::Serializer>(ms: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_f64(round_micros(*ms)),
        None => s.serialize_none(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_rounded_to_the_microsecond() {
        for (given, want) in [
            (47.121142, 47.121),
            (0.0004, 0.0),
            (0.0005, 0.001),
            (1.9999, 2.0),
            (12.3456789, 12.346),
        ] {
            assert_eq!(round_micros(given), want, "{given}");
        }
    }

    #[test]
    fn entries_serialise_every_field() {
        let entry = Entry {
            ts: "t".into(),
            route: "r",
            method: "GET",
            host: "h",
            path: "/",
            status: 200,
            duration_ms: 1.23456,
            upstream_ms: Some(0.98765),
            bytes_sent: 321,
            upstream: Some("127.0.0.1:1".into()),
            client: None,
            reason: None,
            request_id: Some("id"),
            user: Some("alice"),
            user_agent: Some("curl/8"),
        };
        let json: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&entry).expect("serialises"))
                .expect("parses");
        assert_eq!(json["duration_ms"], 1.235);
        assert_eq!(json["upstream_ms"], 0.988);
        assert_eq!(json["bytes_sent"], 321);
        assert_eq!(json["user"], "alice");
        assert_eq!(json["user_agent"], "curl/8");
        let anonymous = Entry {
            user: None,
            upstream_ms: None,
            ..entry
        };
        let json = serde_json::to_value(&anonymous).expect("serialises");
        assert!(
            json.get("user").is_none() && json.get("upstream_ms").is_none(),
            "{json}"
        );
    }

    #[test]
    fn bounded_cuts_at_a_character_boundary() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc");
        assert_eq!(bounded("aé", 2), "a");
    }
}

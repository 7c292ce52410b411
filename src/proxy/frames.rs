//! A frame-counting layer under an HTTP/2 connection: the h2 codec reads and writes through it.
//!
//! It reads nothing itself; it looks at the 9-byte frame headers going by in both directions
//! and keeps three promises the h2 crate does not make:
//!
//! - **Frames that carry no request are rate-limited** (CVE-2019-9512/9513/9515/9518 class:
//!   PING, SETTINGS, PRIORITY, WINDOW_UPDATE, RST_STREAM, empty DATA/HEADERS/CONTINUATION,
//!   unknown types). Each costs a token from a per-connection bucket: a new connection has
//!   [`INITIAL`] (browsers send a handful of such frames when they connect), which grow with
//!   the connection's life ([`REFILL_PER_SEC`] back per second) and real work — [`PER_REQUEST`]
//!   for each request head received and [`PER_DATA_SENT`] for each DATA frame sent (the
//!   client's WINDOW_UPDATEs answer those) — up to [`BURST`]. A connection out of tokens gets
//!   `GOAWAY ENHANCE_YOUR_CALM` and is closed (`portcullis_http2_flood_closes_total`). A
//!   flooder that reconnects at once thus costs a small, fixed amount of work per connection.
//! - **No connection monopolises its shard's thread**: after [`YIELD_BYTES`] read without the
//!   socket ever running dry, the read returns `Pending` once (waking itself at once), so the
//!   other connections' tasks run in between.
//! - The `GOAWAY` is written only at a frame boundary of what the codec writes, so it never
//!   lands in the middle of another frame.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics;

/// Tokens a connection starts with: what a flooder gets through before the GOAWAY. A quarter of
/// [`BURST`]: the h2 codec's work per frame was half of what a reconnecting flooder cost.
pub(super) const INITIAL: i64 = 256;
/// The most tokens a connection can bank.
pub(super) const BURST: i64 = 1024;
/// Tokens given back per second of the connection's life.
pub(super) const REFILL_PER_SEC: i64 = 128;
/// Tokens earned by a request head (HEADERS opening a stream).
pub(super) const PER_REQUEST: i64 = 16;
/// Tokens earned by each DATA frame the gateway sends.
pub(super) const PER_DATA_SENT: i64 = 2;
/// Bytes read in a row before the connection's task yields its thread once.
pub(super) const YIELD_BYTES: usize = 64 * 1024;

/// The client's connection preface (RFC 9113 §3.4), which the codec reads through this layer.
const PREFACE_LEN: usize = 24;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame header seen going by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    len: u32,
    kind: u8,
    flags: u8,
    stream: u32,
}

/// Follows the frame boundaries of one direction of a connection, byte run by byte run.
#[derive(Debug, Default)]
struct Boundaries {
    /// Bytes still to pass before the next header (payload, or the preface).
    skip: usize,
    /// A header split across runs.
    header: [u8; 9],
    filled: usize,
}

impl Boundaries {
    /// Whether the next byte starts a frame.
    fn at_boundary(&self) -> bool {
        self.skip == 0 && self.filled == 0
    }

    /// Walks `bytes`, calling `seen` for each complete frame header.
    fn walk(&mut self, mut bytes: &[u8], mut seen: impl FnMut(Frame)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == 9 {
                let h = self.header;
                let frame = Frame {
                    len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                };
                self.filled = 0;
                self.skip = frame.len as usize;
                seen(frame);
            }
        }
    }
}

/// Whether a frame from the client carries no request work.
fn is_control(f: Frame) -> bool {
    match f.kind {
        PRIORITY | RST_STREAM | SETTINGS | PING | WINDOW_UPDATE => true,
        DATA | HEADERS => f.len == 0 && f.flags & END_STREAM == 0,
        CONTINUATION => f.len == 0,
        GOAWAY => false,
        _ => true,
    }
}

/// The per-connection budget of frames that carry no request.
#[derive(Debug)]
struct Bucket {
    tokens: i64,
    refilled: Instant,
}

impl Bucket {
    fn new() -> Self {
        Self {
            tokens: INITIAL,
            refilled: Instant::now(),
        }
    }

    fn earn(&mut self, n: i64) {
        self.tokens = (self.tokens + n).min(BURST);
    }

    /// Spends a token; `false` when none is left even after the time-based refill. The clock
    /// is read only when the tokens run out.
    fn spend(&mut self) -> bool {
        self.tokens -= 1;
        if self.tokens >= 0 {
            return true;
        }
        let now = Instant::now();
        let elapsed_ms = now.duration_since(self.refilled).as_millis() as i64;
        let back = elapsed_ms * REFILL_PER_SEC / 1000;
        if back > 0 {
            self.refilled = now;
            self.earn(back);
        }
        self.tokens >= 0
    }
}

/// The connection's IO with the frame accounting on it. See the module documentation.
#[derive(Debug)]
pub(super) struct Guarded {
    inner: Stream,
    read: Boundaries,
    write: Boundaries,
    bucket: Bucket,
    /// The highest stream the client opened, for the GOAWAY.
    last_stream: u32,
    /// Bytes read since the socket last ran dry or the task last yielded.
    since_yield: usize,
    /// The GOAWAY being written, and how much of it is out; the connection is closing.
    calm: Option<([u8; 17], usize)>,
}

impl Guarded {
    /// `inner` before the client's preface was read from it (peeked bytes are read again).
    pub(super) fn new(inner: Stream) -> Self {
        Self {
            inner,
            read: Boundaries {
                skip: PREFACE_LEN,
                ..Boundaries::default()
            },
            write: Boundaries::default(),
            bucket: Bucket::new(),
            last_stream: 0,
            since_yield: 0,
            calm: None,
        }
    }

    /// Accounts the bytes the codec just read; `false` when the client is out of tokens.
    fn account_read(&mut self, bytes: &[u8]) -> bool {
        let (bucket, last_stream) = (&mut self.bucket, &mut self.last_stream);
        let mut calm = true;
        self.read.walk(bytes, |f| {
            if f.kind == HEADERS && f.stream > *last_stream {
                *last_stream = f.stream;
                bucket.earn(PER_REQUEST);
            }
            if is_control(f) && !bucket.spend() {
                calm = false;
            }
        });
        calm
    }

    /// Starts the GOAWAY: written now if the write side is between frames, else not at all.
    fn begin_calm(&mut self) {
        metrics::HTTP2_FLOOD_CLOSES.inc();
        let mut frame = [0u8; 17];
        frame[2] = 8;
        frame[3] = GOAWAY;
        frame[9..13].copy_from_slice(&self.last_stream.to_be_bytes());
        frame[13..17].copy_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        // Not between frames: the codec's half-written frame cannot be interrupted.
        let written = if self.write.at_boundary() { 0 } else { 17 };
        self.calm = Some((frame, written));
    }

    /// Pushes out what is left of the GOAWAY, as far as the socket takes it without waiting.
    fn flush_calm(&mut self, cx: &mut Context<'_>) {
        let Some((frame, mut written)) = self.calm else {
            return;
        };
        while written < frame.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &frame[written..]) {
                Poll::Ready(Ok(n)) if n > 0 => written += n,
                _ => break,
            }
        }
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
        self.calm = Some((frame, frame.len()));
    }
}

fn calm_error() -> io::Error {
    io::Error::other("HTTP/2 control-frame flood: GOAWAY ENHANCE_YOUR_CALM")
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.calm.is_some() {
            return Poll::Ready(Err(calm_error()));
        }
        if this.since_yield >= YIELD_BYTES {
            this.since_yield = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                this.since_yield += fresh.len();
                if !this.account_read(fresh) {
                    this.begin_calm();
                    this.flush_calm(cx);
                    return Poll::Ready(Err(calm_error()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.since_yield = 0;
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.calm.is_some() {
            return Poll::Ready(Err(calm_error()));
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            let bucket = &mut this.bucket;
            this.write.walk(&buf[..n], |f| {
                if f.kind == DATA {
                    bucket.earn(PER_DATA_SENT);
                }
            });
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

impl Peek for Guarded {}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
        let mut h = len.to_be_bytes()[1..].to_vec();
        h.push(kind);
        h.push(flags);
        h.extend_from_slice(&stream.to_be_bytes());
        h
    }

    #[test]
    fn boundaries_follow_frames_split_anywhere() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(header(6, SETTINGS, 0, 0));
        bytes.extend([0; 6]);
        bytes.extend(header(4, WINDOW_UPDATE, 0, 0));
        bytes.extend([0, 1, 0, 0]);
        bytes.extend(header(3, HEADERS, 0x5, 1));
        bytes.extend([0x82, 0x86, 0x84]);
        for split in 0..bytes.len() {
            let mut b = Boundaries {
                skip: PREFACE_LEN,
                ..Boundaries::default()
            };
            let mut seen = Vec::new();
            b.walk(&bytes[..split], |f| seen.push(f));
            b.walk(&bytes[split..], |f| seen.push(f));
            let kinds: Vec<_> = seen.iter().map(|f| (f.kind, f.len, f.stream)).collect();
            assert_eq!(
                kinds,
                [(SETTINGS, 6, 0), (WINDOW_UPDATE, 4, 0), (HEADERS, 3, 1)],
                "split at {split}"
            );
            assert!(b.at_boundary());
        }
    }

    #[test]
    fn control_frames_are_those_without_request_work() {
        let f = |kind, len, flags| Frame {
            len,
            kind,
            flags,
            stream: 1,
        };
        for c in [
            f(PING, 8, 0),
            f(PRIORITY, 5, 0),
            f(WINDOW_UPDATE, 4, 0),
            f(SETTINGS, 0, 1),
            f(RST_STREAM, 4, 0),
            f(DATA, 0, 0),
            f(HEADERS, 0, 0),
            f(CONTINUATION, 0, 0),
            f(0x20, 3, 0),
        ] {
            assert!(is_control(c), "{c:?}");
        }
        for w in [
            f(DATA, 10, 0),
            f(DATA, 0, END_STREAM),
            f(HEADERS, 12, 0x4),
            f(GOAWAY, 8, 0),
        ] {
            assert!(!is_control(w), "{w:?}");
        }
    }

    #[test]
    fn a_bucket_runs_dry_after_its_burst_and_earns_with_work() {
        let mut b = Bucket::new();
        // No time-based refill during the test, however slow the machine.
        b.refilled = Instant::now() + std::time::Duration::from_secs(3600);
        for _ in 0..INITIAL {
            assert!(b.spend());
        }
        assert!(
            !b.spend(),
            "a burst past a new connection's tokens is refused"
        );
        b.earn(PER_REQUEST);
        // The refused frame's debt is paid first.
        for _ in 0..PER_REQUEST - 1 {
            assert!(b.spend());
        }
        assert!(!b.spend());
        b.earn(10 * BURST);
        assert_eq!(b.tokens, BURST, "the bank is capped");
    }
}

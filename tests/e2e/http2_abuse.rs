//! HTTP/2 clients that abuse the protocol, and TLS clients that never finish a handshake:
//!
//! - readers that stall (windows never opened, or opened wide and the socket never read) pin a
//!   bounded amount of the gateway's memory, and their streams are reset after
//!   `limits.write_timeout` (CVE-2019-9517 class);
//! - floods of frames that carry no request (WINDOW_UPDATE, PING, PRIORITY, SETTINGS) get
//!   `GOAWAY ENHANCE_YOUR_CALM` and a closed connection (CVE-2019-9512/9513/9515/9518 class),
//!   while a real client's large download, which sends WINDOW_UPDATEs all along, is not cut;
//! - a TLS connection that sends nothing, or half a ClientHello, is closed after
//!   `limits.header_timeout`.
//!
//! The clients are the `h2` crate (the stalled readers) and raw frames written by hand (the
//! floods). Each failed on the previous core: the buffers grew by ~470 KiB per stalled stream
//! and were never released, the floods ran unanswered, and pingora gave a handshake 60 s.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::support::certs::TestCa;
use crate::support::{EchoBackend, Gateway, ServerOptions, free_port, metric_sum, wait_until};

/// A backend answering every request with `Content-Length: BIG` bytes, written as fast as the
/// gateway reads them (one request per connection).
const BIG: usize = 16 * 1024 * 1024;

async fn big_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("has an address");
    tokio::spawn(async move {
        static CHUNK: [u8; 65536] = [b'x'; 65536];
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let mut left = BIG;
                while left > 0 {
                    let n = left.min(CHUNK.len());
                    if stream.write_all(&CHUNK[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}

async fn h2c_gateway(upstream: std::net::SocketAddr, limits: &str) -> Gateway {
    Gateway::start_with(
        ServerOptions {
            extra_server: format!("  h2c: true\n  limits: {{{limits}}}\n"),
            ..ServerOptions::default()
        },
        &format!(
            "upstreams:\n  app: {{targets: [\"{upstream}\"]}}\nroutes:\n  - {{name: app, upstream: app, auth: public}}\n"
        ),
    )
    .await
}

/// A socket whose reads stop for good once `paused` is set: a client that stops reading.
struct Pausable {
    inner: TcpStream,
    paused: Arc<AtomicBool>,
}

impl AsyncRead for Pausable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.paused.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pausable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One stalled client connection: `streams` requests for a big answer, whose bodies are never
/// released (the windows stay as the client first set them). `wide`: windows of 1 GiB, and
/// the socket no longer read once the answers began.
struct Stalled {
    bodies: Vec<h2::RecvStream>,
    paused: Arc<AtomicBool>,
    _conn: tokio::task::JoinHandle<()>,
}

async fn stall(gateway: &Gateway, streams: usize, wide: bool) -> Stalled {
    let tcp = TcpStream::connect(gateway.addr()).await.expect("connects");
    let paused = Arc::new(AtomicBool::new(false));
    let io = Pausable {
        inner: tcp,
        paused: paused.clone(),
    };
    let mut builder = h2::client::Builder::new();
    if wide {
        builder
            .initial_window_size(1 << 30)
            .initial_connection_window_size(1 << 30);
    }
    let (mut send, conn) = builder
        .handshake::<_, Bytes>(io)
        .await
        .expect("HTTP/2 handshake");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut pending = Vec::new();
    for i in 0..streams {
        send = send.ready().await.expect("a stream slot");
        let req = http::Request::get(format!("http://app.test/big/{i}"))
            .body(())
            .expect("a valid request");
        let (resp, _) = send.send_request(req, true).expect("sends a request");
        pending.push(resp);
    }
    let mut bodies = Vec::new();
    for resp in pending {
        let resp = tokio::time::timeout(Duration::from_secs(10), resp)
            .await
            .expect("an answer head within 10 s")
            .expect("an answer head");
        assert_eq!(resp.status(), 200);
        bodies.push(resp.into_body());
    }
    if wide {
        paused.store(true, Ordering::Relaxed);
    }
    Stalled {
        bodies,
        paused,
        _conn: conn,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http2_readers_pin_bounded_memory_and_are_reset_after_the_write_timeout() {
    let upstream = big_backend().await;
    for wide in [false, true] {
        let gateway = h2c_gateway(upstream, "write_timeout: 3s").await;
        // Warm the process up (allocator arenas, the upstream pool) before the baseline.
        let warm = stall(&gateway, 4, false).await;
        drop(warm);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = gateway.rss_kib();
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(stall(&gateway, 100, wide).await);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let grown = gateway.rss_kib().saturating_sub(before);
        eprintln!("wide {wide}: 500 stalled streams grew the gateway by {grown} KiB");
        // 500 stalled streams: on the previous core ~230 MiB (windows closed) and ~500 MiB
        // (windows open, socket unread). Now a stream holds at most one upstream chunk
        // (64 KiB), 16 KiB queued in the codec and its upstream answer's body buffer
        // (pingora's 64 KiB): about 40-100 MiB here.
        assert!(
            grown < 128 * 1024,
            "wide {wide}: 500 stalled streams grew the gateway by {grown} KiB"
        );

        // Past the write timeout every stalled stream is reset (windows closed), or the whole
        // connection is given up (socket unread: the resets cannot even be written).
        let started = Instant::now();
        if !wide {
            for client in &mut clients {
                for body in &mut client.bodies {
                    let ended = tokio::time::timeout(Duration::from_secs(10), async {
                        loop {
                            match body.data().await {
                                Some(Ok(_)) => continue,
                                Some(Err(e)) => return Some(e),
                                None => return None,
                            }
                        }
                    })
                    .await
                    .expect("a stalled stream ends within 10 s");
                    let e = ended.expect("a stalled stream ends in a reset, never complete");
                    assert!(
                        e.reason().is_some() || e.is_io(),
                        "wide {wide}: the stream ended with {e:?}"
                    );
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the streams were reset within the write timeout and some slack"
            );
        } else {
            for client in &clients {
                client.paused.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let metrics = gateway.metrics().await;
        let resets = metric_sum(
            &metrics,
            "portcullis_deadline_closes_total",
            &["kind=\"write\""],
        );
        assert!(
            resets >= 500.0,
            "wide {wide}: {resets} write deadlines counted for 500 stalled streams"
        );
        // The gateway still serves.
        let ok = gateway
            .client()
            .get(gateway.url("/small"))
            .send()
            .await
            .expect("the gateway answers after the stall");
        assert_eq!(ok.status(), 200);
        drop(clients);
    }
}

/// A frame header: length, type, flags, stream.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads frames until a GOAWAY (its error code) or the connection closes (`None`).
async fn goaway_code<R: AsyncRead + Unpin>(stream: &mut R) -> Option<u32> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == 0x7 && len >= 8 {
                return Some(u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]));
            }
            buf.drain(..9 + len);
        }
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_frame_floods_get_goaway_enhance_your_calm() {
    let backend = EchoBackend::start("app").await;
    let gateway = h2c_gateway(backend.addr(), "idle_timeout: 30s").await;
    let floods: [(&str, Vec<u8>); 4] = [
        ("WINDOW_UPDATE", frame(0x8, 0, 0, &1u32.to_be_bytes())),
        ("PING", frame(0x6, 0, 0, &[7; 8])),
        ("PRIORITY", frame(0x2, 0, 3, &[0, 0, 0, 0, 16])),
        ("SETTINGS", frame(0x4, 0, 0, &[])),
    ];
    for (i, (name, one)) in floods.iter().enumerate() {
        let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
        let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        flood.extend(frame(0x4, 0, 0, &[]));
        // 20,000 frames at once: far past the 1,024 a connection may ever bank.
        for _ in 0..20_000 {
            flood.extend_from_slice(one);
        }
        let (mut read, mut write) = stream.split();
        let (_, code) = tokio::join!(write.write_all(&flood), goaway_code(&mut read));
        assert_eq!(code, Some(0xb), "{name}: GOAWAY ENHANCE_YOUR_CALM");
        drop(stream);
        let closes = metric_sum(
            &gateway.metrics().await,
            "portcullis_http2_flood_closes_total",
            &[],
        );
        assert_eq!(closes, (i + 1) as f64, "{name}: counted");
    }
    // A client that sends a few of each, as browsers do, is served.
    let mut stream = TcpStream::connect(gateway.addr()).await.expect("connects");
    let mut polite = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    polite.extend(frame(0x4, 0, 0, &[]));
    for (_, one) in &floods {
        for _ in 0..50 {
            polite.extend_from_slice(one);
        }
    }
    stream.write_all(&polite).await.expect("writes");
    let mut pong = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut pong))
        .await
        .expect("the gateway answers")
        .expect("reads");
    assert!(n > 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), goaway_code(&mut stream))
            .await
            .is_err(),
        "a polite client gets no GOAWAY"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_http2_download_is_not_taken_for_a_flood() {
    let upstream = big_backend().await;
    let gateway = h2c_gateway(upstream, "").await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("a client");
    // Four downloads of 16 MiB over one connection: thousands of DATA frames answered by
    // WINDOW_UPDATEs, far past the bucket's 1,024.
    let mut downloads = Vec::new();
    for i in 0..4 {
        let client = client.clone();
        let url = gateway.url(&format!("/big/{i}"));
        downloads.push(tokio::spawn(async move {
            let resp = client.get(url).send().await.expect("answers");
            assert_eq!(resp.version(), http::Version::HTTP_2);
            resp.bytes().await.expect("the whole body").len()
        }));
    }
    for d in downloads {
        assert_eq!(d.await.expect("the download task"), BIG);
    }
    let closes = metric_sum(
        &gateway.metrics().await,
        "portcullis_http2_flood_closes_total",
        &[],
    );
    assert_eq!(closes, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_not_done_within_the_header_timeout_are_closed() {
    let ca = TestCa::new("portcullis-handshake-ca");
    let leaf = ca.issue("app", &["app.test"], 1, false);
    let backend = EchoBackend::start("app").await;
    let tls = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gateway = Gateway::start_with(
        ServerOptions {
            extra_listeners: format!(
                "    - {{address: \"{tls}\", cert: {:?}, key: {:?}}}\n",
                leaf.cert.display().to_string(),
                leaf.key.display().to_string()
            ),
            extra_server: "  limits: {header_timeout: 1s, idle_timeout: 30s}\n".to_string(),
            ..ServerOptions::default()
        },
        &format!(
            "upstreams:\n  app: {{targets: [\"{}\"]}}\nroutes:\n  - {{name: app, upstream: app, auth: public}}\n",
            backend.addr()
        ),
    )
    .await;
    // Nothing at all, and the first bytes of a ClientHello record.
    let openings: [&[u8]; 2] = [b"", &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]];
    for opening in openings {
        let mut stream = TcpStream::connect(tls).await.expect("connects");
        stream.write_all(opening).await.expect("writes");
        let started = Instant::now();
        let mut sink = [0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(8), async {
            loop {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a handshake opened with {opening:?} stayed open 8 s"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "closed before the deadline: {:?}",
            started.elapsed()
        );
    }
    // Counted just after the socket is dropped: waited for, not raced.
    wait_until(
        "both handshake deadlines counted",
        Duration::from_secs(5),
        || async {
            let metrics = gateway.metrics().await;
            metric_sum(
                &metrics,
                "portcullis_deadline_closes_total",
                &["kind=\"handshake\""],
            ) == 2.0
        },
    )
    .await;
    // A real client still completes its handshake.
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca.cert()).expect("the CA file"))
                .expect("a PEM CA"),
        )
        .resolve("app.test", tls)
        .build()
        .expect("a client");
    let resp = client
        .get(format!("https://app.test:{}/", tls.port()))
        .send()
        .await
        .expect("a TLS request");
    assert_eq!(resp.status(), 200);
}

//! The attack suite: published attacks on authentication proxies, OpenID Connect relying parties
//! and JWT libraries, replayed against the real gateway binary. One file per family; every case
//! names the advisory (or, where none has a number, the project and the advisory's title) it
//! comes from, and asserts the SAFE outcome — where a request must not pass, also that no backend
//! saw it.
//!
//! Families share one gateway (and, where needed, one OpenID Provider) per test, and run their
//! cases as tables: every failing case is collected and reported with its source, so one run shows
//! all of them.
//!
//! - `open_redirect`: `rd` on `/oauth2/start` and `/oauth2/sign_out`, after a real sign-in.
//! - `header_spoofing`: identity and forwarding headers in every spelling, on public, bearer and
//!   session routes; spoofed paths and health-check agents.
//! - `path_tricks`: reaching a protected route through a public one.
//! - `smuggling`: HTTP/1.1 framing ambiguities over raw TCP.
//! - `host_tricks`: absolute-form targets, `Host` spellings and invalid hosts.
//! - `cookie_tampering`: the sealed, chunked session cookies damaged, mixed and multiplied.
//! - `jwt_header`: forged JOSE headers and signatures on bearer routes.
//! - `replay`: callbacks, states, codes and nonces replayed or carried to another browser.
//! - `fuzz_regressions`: inputs found by the fuzz targets in `tests/fuzz`.

mod cookie_tampering;
mod fuzz_regressions;
mod header_spoofing;
mod host_tricks;
mod jwt_header;
mod open_redirect;
mod path_tricks;
mod replay;
mod smuggling;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The outcomes of one family's table: every case is judged, the failures are reported together
/// at the end with the advisory each case comes from.
#[derive(Debug, Default)]
pub struct Verdicts {
    family: &'static str,
    cases: usize,
    failures: Vec<String>,
}

impl Verdicts {
    /// An empty table for `family`.
    pub fn new(family: &'static str) -> Self {
        Self {
            family,
            ..Self::default()
        }
    }

    /// Records the verdict on `case` (from `source`): `Err(why)` is a failure.
    pub fn record(&mut self, case: &str, source: &str, verdict: Result<(), String>) {
        self.cases += 1;
        if let Err(why) = verdict {
            self.failures
                .push(format!("[{case}] (source: {source})\n    {why}"));
        }
    }

    /// Panics listing every failed case, if any.
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} case(s) did not end safely:\n{}",
            self.family,
            self.failures.len(),
            self.cases,
            self.failures.join("\n")
        );
        eprintln!("{}: {} case(s), all safe", self.family, self.cases);
    }
}

/// A TCP backend that records every byte the gateway sends it and answers each burst of request
/// bytes with a fixed response: it shows exactly what went over the wire upstream (framing,
/// trailers, smuggled bytes) where an HTTP server would have parsed it away.
pub struct RawBackend {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl RawBackend {
    /// Binds 127.0.0.1:0; answers every burst of bytes (a pause of 150 ms ends one) with
    /// `response`.
    pub async fn start(response: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 must work");
        let addr = listener
            .local_addr()
            .expect("a bound socket has a local address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 16 * 1024];
                    let mut pending = false;
                    loop {
                        match tokio::time::timeout(
                            Duration::from_millis(150),
                            stream.read(&mut buf),
                        )
                        .await
                        {
                            Ok(Ok(0)) | Ok(Err(_)) => break,
                            Ok(Ok(n)) => {
                                log.lock()
                                    .expect("the raw log lock is never poisoned")
                                    .extend_from_slice(&buf[..n]);
                                pending = true;
                            }
                            Err(_) if pending => {
                                pending = false;
                                if stream.write_all(response).await.is_err() {
                                    break;
                                }
                            }
                            Err(_) => {}
                        }
                    }
                });
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every byte received so far, as text (lossy).
    pub fn received(&self) -> String {
        String::from_utf8_lossy(
            &self
                .received
                .lock()
                .expect("the raw log lock is never poisoned"),
        )
        .into_owned()
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `text` with control characters escaped, for failure messages about raw requests.
pub fn shown(text: &str) -> String {
    text.escape_debug().to_string()
}

/// A provider, a backend and a gateway with session routes, like [`crate::session::Stack`], with
/// `tweak` applied to the config after `server:` (to add identity headers, say).
pub async fn session_stack(
    mut options: crate::support::idp::IdpOptions,
    sessions_extra: &str,
    routes: &str,
    tweak: impl Fn(String) -> String,
) -> crate::session::Stack {
    use crate::session::{BROWSER_HOST, config};
    use crate::support::idp::Idp;
    use crate::support::{EchoBackend, Gateway, ServerOptions, free_port};

    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = listen.port();
    options.redirect_uris.extend([
        format!("http://{listen}/oauth2/callback"),
        format!("http://{BROWSER_HOST}:{port}/oauth2/callback"),
    ]);
    options.post_logout_redirect_uris.extend([
        format!("http://{listen}/"),
        format!("http://{BROWSER_HOST}:{port}/"),
    ]);
    let idp = Idp::start(options).await;
    let backend = EchoBackend::start("app").await;
    let rest = tweak(config(idp.issuer(), &backend, 7, sessions_extra, routes));
    let gateway = Gateway::start_with(
        ServerOptions {
            listen: Some(listen),
            ..ServerOptions::default()
        },
        &rest,
    )
    .await;
    crate::session::Stack {
        idp,
        backend,
        gateway,
    }
}

//! A real HTTP backend that answers every request with what it received.
//!
//! HTTP/1.1 and HTTP/2 with prior knowledge (hyper-util's auto builder). The answer is JSON:
//! `{"backend", "method", "path", "uri", "version", "headers": [[name, value], ...], "body_len"}`
//! where `path` is the request target's path and query as received, and `headers` lists every
//! header in order, duplicates kept, names lowercase. A request carrying `Upgrade: websocket`
//! becomes a WebSocket echo; `/slow?ms=N` sleeps N ms before answering; a target containing
//! `cache=public` is answered with `Cache-Control: public, max-age=600, s-maxage=600`. Every request is counted
//! and logged, so tests can assert what the backend never saw.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// Path and query of the request target, as received.
    pub path: String,
    /// The whole request target as hyper parsed it (absolute for HTTP/2).
    pub uri: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub version: String,
    /// Every header, in order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Bytes of request body read.
    pub body_len: usize,
}

impl Seen {
    /// Every value of header `name` (compared exactly, lowercase).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[derive(Default)]
struct State {
    count: AtomicUsize,
    log: Mutex<Vec<Seen>>,
}

/// An echo backend bound to 127.0.0.1 on a free port; stops when dropped.
pub struct EchoBackend {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl EchoBackend {
    /// Starts a backend; `name` is echoed as `"backend"` so tests can tell backends apart.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 must work");
        let addr = listener
            .local_addr()
            .expect("a bound socket has a local address");
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, name.to_string(), state.clone()));
        Self { addr, state, task }
    }

    /// Starts a backend on `addr` (say another loopback address, with the port of a backend
    /// on 127.0.0.1), or says why it cannot bind there.
    pub async fn start_on(name: &str, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, name.to_string(), state.clone()));
        Ok(Self { addr, state, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests reached it (counted when their header arrives).
    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Every request it received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .log
            .lock()
            .expect("the echo log lock is never poisoned")
            .clone()
    }
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, name: String, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let name = name.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, name.clone(), state.clone()));
            // Errors are the peer's business (the gateway closing a connection, a timeout).
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    mut req: Request<Incoming>,
    name: String,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.count.fetch_add(1, Ordering::SeqCst);
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    let uri = req.uri().to_string();
    let version = format!("{:?}", req.version());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();

    let is_websocket = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_websocket {
        let key = req
            .headers()
            .get(hyper::header::SEC_WEBSOCKET_KEY)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        state
            .log
            .lock()
            .expect("the echo log lock is never poisoned")
            .push(Seen {
                method,
                path,
                uri,
                version,
                headers,
                body_len: 0,
            });
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        });
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(hyper::header::UPGRADE, "websocket")
            .header(hyper::header::CONNECTION, "Upgrade")
            .header(hyper::header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(&key))
            .body(Full::new(Bytes::new()))
            .expect("a 101 response is valid");
        return Ok(response);
    }

    let slow_ms = slow_millis(&path);
    let body_len = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes().len(),
        Err(_) => 0,
    };
    let seen = Seen {
        method,
        path,
        uri,
        version,
        headers,
        body_len,
    };
    state
        .log
        .lock()
        .expect("the echo log lock is never poisoned")
        .push(seen.clone());
    if let Some(ms) = slow_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let body = json!({
        "backend": name,
        "method": seen.method,
        "path": seen.path,
        "uri": seen.uri,
        "version": seen.version,
        "headers": seen.headers.iter().map(|(n, v)| vec![n.clone(), v.clone()]).collect::<Vec<_>>(),
        "body_len": seen.body_len,
    });
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if seen.path.contains("cache=public") {
        // A backend that lets shared caches keep its answer.
        response = response.header(
            hyper::header::CACHE_CONTROL,
            "public, max-age=600, s-maxage=600",
        );
    }
    let response = response
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a 200 response is valid");
    Ok(response)
}

/// `N` of `/slow?ms=N` (any path whose last segment is `slow`: `/v1/slow?ms=N` too).
fn slow_millis(path_and_query: &str) -> Option<u64> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    if !path.ends_with("/slow") {
        return None;
    }
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|ms| ms.parse().ok())
}

/// A parsed echo answer.
#[derive(Debug, Clone)]
pub struct Echoed {
    /// `"backend"`.
    pub backend: String,
    /// `"path"`: path and query as the backend received them.
    pub path: String,
    /// `"headers"`, names lowercase.
    pub headers: Vec<(String, String)>,
}

impl Echoed {
    /// Parses an echo body; panics naming `context` when it is not one.
    pub fn parse(body: &[u8], context: &str) -> Self {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{context}: the body is not the echo backend's JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
        let text = |key: &str| {
            value[key]
                .as_str()
                .unwrap_or_else(|| panic!("{context}: echo JSON has no string {key:?}: {value}"))
                .to_string()
        };
        let headers = value["headers"]
            .as_array()
            .unwrap_or_else(|| panic!("{context}: echo JSON has no headers array: {value}"))
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap_or_default().to_string(),
                    pair[1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        Self {
            backend: text("backend"),
            path: text("path"),
            headers,
        }
    }

    /// Every value of header `name` (lowercase).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every value of every header that is `name` in some spelling (case-insensitive, `_` same as
    /// `-`).
    pub fn values_any_spelling(&self, name: &str) -> Vec<String> {
        let want = normalise_header_name(name);
        self.headers
            .iter()
            .filter(|(n, _)| normalise_header_name(n) == want)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Header names that are `name` in some spelling: case-insensitive, `_` same as `-`.
    pub fn spellings_of(&self, name: &str) -> Vec<String> {
        let want = normalise_header_name(name);
        self.headers
            .iter()
            .filter(|(n, _)| normalise_header_name(n) == want)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Lowercase, `_` as `-`.
pub fn normalise_header_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

//! The admin listener: `/healthz`, `/readyz` and `/metrics`. Never served on a public listener.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics;
use crate::snapshot::SharedSnapshot;

/// Answers the admin endpoints.
pub struct Admin {
    state: SharedSnapshot,
}

impl Admin {
    /// An admin app reporting on `state`.
    pub fn new(state: SharedSnapshot) -> Self {
        Self { state }
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let text = "text/plain; charset=utf-8";
        match session.req_header().uri.path() {
            // Alive: the process answers.
            "/healthz" => reply(200, text, b"ok\n".to_vec()),
            // Ready: a valid config is loaded and compiled. Later capabilities add key and store
            // state here.
            "/readyz" => {
                // Holding a snapshot means a valid config is compiled and serving.
                let _ = self.state.load();
                reply(200, text, b"ready\n".to_vec())
            }
            "/metrics" => reply(200, "text/plain; version=0.0.4", metrics::render()),
            _ => reply(404, text, b"not found\n".to_vec()),
        }
    }
}

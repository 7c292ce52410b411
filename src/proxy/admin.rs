//! The admin listener: `/healthz`, `/readyz` and `/metrics`. Never served on a public listener.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::token::KeyState;

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

/// Why `snap` cannot serve yet (`None`: ready). Ready: a valid config is compiled and serving
/// (holding a snapshot means that), every provider a protected route uses has keys — stale ones
/// count: they serve —, the Redis session store, when used, answers, and no upstream still waits
/// for its first DNS answer.
pub fn not_ready(snap: &Snapshot) -> Option<String> {
    let store_down = snap
        .store
        .as_ref()
        .and_then(|s| s.redis())
        .is_some_and(|r| !r.is_up());
    if store_down {
        return Some("the Redis session store does not answer".into());
    }
    // An upstream with no address while a name of it waits for its first answer (start-up):
    // not ready. One whose first lookup failed does not hold readiness back: every instance
    // would fail it alike, and its routes answer 503.
    let awaiting: Vec<&str> = snap
        .pools
        .iter()
        .filter(|p| p.awaiting_dns())
        .map(|p| &*p.config.name)
        .collect();
    if !awaiting.is_empty() {
        return Some(format!(
            "no address yet for upstream(s) {}",
            awaiting.join(", ")
        ));
    }
    let missing: Vec<&str> = snap
        .used_providers()
        .filter(|p| p.settings.source.state() == KeyState::Missing)
        .map(|p| &*p.settings.name)
        .collect();
    (!missing.is_empty()).then(|| format!("no keys yet for provider(s) {}", missing.join(", ")))
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let text = "text/plain; charset=utf-8";
        match session.req_header().uri.path() {
            // Alive: the process answers.
            "/healthz" => reply(200, text, b"ok\n".to_vec()),
            // Ready: see `not_ready`.
            "/readyz" => match not_ready(&self.state.load()) {
                None => reply(200, text, b"ready\n".to_vec()),
                Some(why) => reply(503, text, format!("not ready: {why}\n").into_bytes()),
            },
            "/metrics" => {
                crate::tls::update_expiry_metrics(crate::token::unix_now() as i64);
                metrics::READY.set(i64::from(not_ready(&self.state.load()).is_none()));
                for pool in &self.state.load().pools {
                    let addresses = i64::try_from(pool.targets().len()).unwrap_or(i64::MAX);
                    metrics::UPSTREAM_ADDRESSES
                        .with_label_values(&[&pool.config.name])
                        .set(addresses);
                }
                reply(200, "text/plain; version=0.0.4", metrics::render())
            }
            _ => reply(404, text, b"not found\n".to_vec()),
        }
    }
}

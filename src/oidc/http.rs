//! The gateway's HTTP client towards providers: discovery, key sets, introspection.
//!
//! Every call has a timeout, follows no redirect (a redirect is an error: a key set must come
//! from where the config or discovery says) and reads at most [`MAX_BODY`] bytes.

use std::time::Duration;

use bytes::BytesMut;
use url::Url;

/// Largest response body read from a provider.
pub const MAX_BODY: usize = 1024 * 1024;

/// Default time limit of one provider call.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a provider call failed. Messages never include response bodies or credentials.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, TLS or timeout failure.
    #[error("request to {host} failed: {kind}")]
    Transport {
        /// Host of the URL.
        host: String,
        /// Short description.
        kind: &'static str,
    },
    /// A non-2xx answer (including redirects, which are not followed).
    #[error("{host} answered {status}")]
    Status {
        /// Host of the URL.
        host: String,
        /// HTTP status.
        status: u16,
    },
    /// The body exceeded [`MAX_BODY`].
    #[error("{host} answered more than {MAX_BODY} bytes")]
    TooLarge {
        /// Host of the URL.
        host: String,
    },
    /// The body is not the JSON expected.
    #[error("{host} answered invalid JSON: {reason}")]
    BadJson {
        /// Host of the URL.
        host: String,
        /// What was wrong.
        reason: String,
    },
}

/// An HTTP response, fully read.
pub struct Fetched {
    /// The JSON body.
    pub json: serde_json::Value,
    /// `Cache-Control: max-age`, if given.
    pub max_age: Option<Duration>,
}

/// A shared client.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
}

impl Client {
    /// A client with the given per-call timeout. Called at start-up (and by `explain`).
    pub fn new(timeout: Duration) -> Self {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            // Built once at start-up. Falling back to a default client would silently drop the
            // timeout and the no-redirect policy, so a failure here stops the process instead.
            .expect("the provider HTTP client (rustls) can be built");
        Self { inner }
    }

    /// GETs `url` and parses its JSON body.
    pub async fn get_json(&self, url: &Url) -> Result<Fetched, FetchError> {
        let req = self
            .inner
            .get(url.clone())
            .header("accept", "application/json");
        self.send(url, req).await
    }

    /// GETs `url` with `Authorization: Bearer <token>` (userinfo) and parses its JSON body.
    pub async fn get_json_bearer(&self, url: &Url, token: &str) -> Result<Fetched, FetchError> {
        let req = self
            .inner
            .get(url.clone())
            .header("accept", "application/json")
            .bearer_auth(token);
        self.send(url, req).await
    }

    /// POSTs a form with HTTP basic client authentication and parses the JSON answer.
    pub async fn post_form(
        &self,
        url: &Url,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Result<Fetched, FetchError> {
        let mut req = self
            .inner
            .post(url.clone())
            .header("accept", "application/json")
            .form(form);
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(id), Some(enc(secret)));
        }
        self.send(url, req).await
    }

    async fn send(&self, url: &Url, req: reqwest::RequestBuilder) -> Result<Fetched, FetchError> {
        let host = url.host_str().unwrap_or("provider").to_string();
        let mut resp = req.send().await.map_err(|e| FetchError::Transport {
            host: host.clone(),
            kind: if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            },
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                host,
                status: status.as_u16(),
            });
        }
        let max_age = resp
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(FetchError::TooLarge { host });
        }
        let mut body = BytesMut::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(FetchError::TooLarge { host });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(FetchError::Transport {
                        host,
                        kind: if e.is_timeout() { "timeout" } else { "body" },
                    });
                }
            }
        }
        let json = serde_json::from_slice(&body).map_err(|e| FetchError::BadJson {
            host,
            reason: e.to_string(),
        })?;
        Ok(Fetched { json, max_age })
    }
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0).
fn max_age(value: &str) -> Option<Duration> {
    let mut out = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            out = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("private"), None);
        assert_eq!(max_age("max-age=x"), None);
    }
}

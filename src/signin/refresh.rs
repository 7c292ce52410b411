//! One refresh per session, however many requests need it at once.
//!
//! A browser often fires several requests together (a page and its assets, an app's parallel
//! API calls), all carrying the same session cookie with the same nearly-expired access token.
//! The first request to need a refresh performs it; the others wait for its outcome. The outcome
//! is kept for [`KEEP`], so requests still carrying the old cookie (sent before the browser
//! stored the new one) get the renewed session rather than presenting a refresh token the
//! provider may already have rotated away. Keyed by session id and the old token's expiry, so the
//! next refresh of the same session is a new one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::FlowError;
use crate::session::SessionData;

/// How long a refresh outcome is reused for requests carrying the pre-refresh cookie.
pub const KEEP: Duration = Duration::from_secs(60);

/// Most outcomes remembered at once; beyond it, expired ones are dropped first.
const MAX_ENTRIES: usize = 100_000;

type Outcome = Result<Arc<SessionData>, FlowError>;

/// A refresh, in flight or done, and when it started.
type Entry = (Instant, Arc<OnceCell<Outcome>>);

/// Refreshes in flight and recently done.
#[derive(Default)]
pub struct Refreshes {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Refreshes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshes").finish_non_exhaustive()
    }
}

impl Refreshes {
    /// Runs `refresh` for `session` unless one for the same session and token generation is
    /// running or was done within [`KEEP`]; returns that one's outcome then.
    pub async fn run<F>(&self, session: &SessionData, refresh: F) -> Outcome
    where
        F: Future<Output = Result<SessionData, FlowError>>,
    {
        let key = format!(
            "{}/{}",
            session.sid,
            session.access_expires.unwrap_or_default()
        );
        let cell = {
            let now = Instant::now();
            let Ok(mut entries) = self.entries.lock() else {
                return refresh.await.map(Arc::new);
            };
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, (at, _)| now.duration_since(*at) < KEEP);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            let entry = entries
                .entry(key)
                .or_insert_with(|| (now, Arc::new(OnceCell::new())));
            if now.duration_since(entry.0) >= KEEP {
                *entry = (now, Arc::new(OnceCell::new()));
            }
            entry.1.clone()
        };
        cell.get_or_init(|| async { refresh.await.map(Arc::new) })
            .await
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_refresh() {
        let refreshes = Arc::new(Refreshes::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let session = SessionData::new("corp", serde_json::Map::new(), 1);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (refreshes, calls, session) = (refreshes.clone(), calls.clone(), session.clone());
            tasks.push(tokio::spawn(async move {
                refreshes
                    .run(&session, async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let mut next = session.clone();
                        next.access_expires = Some(99);
                        Ok(next)
                    })
                    .await
            }));
        }
        for t in tasks {
            let outcome = t.await.expect("task").expect("refreshed");
            assert_eq!(outcome.access_expires, Some(99));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The renewed session's own refresh is a new one.
        let mut renewed = session.clone();
        renewed.access_expires = Some(99);
        let again = refreshes
            .run(&renewed, async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(FlowError::Refused("invalid_grant".into()))
            })
            .await;
        assert!(again.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

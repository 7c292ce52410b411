//! Where a provider's keys come from, and how they stay fresh.
//!
//! A [`KeySource`] is one provider's metadata (discovery) and key set. It outlives config
//! reloads: the [`KeyRegistry`] hands the same source to every snapshot whose provider has the
//! same issuer and key set URL, so a reload never drops keys. Keys are refreshed in the
//! background (at the provider's `Cache-Control: max-age`, within [`MIN_REFRESH`] and
//! [`MAX_REFRESH`]), on demand when a token names an unknown `kid` (at most once per
//! [`KID_REFRESH_INTERVAL`]), and kept — stale — while the provider is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use url::Url;

use super::keys::KeySet;
use crate::metrics;
use crate::oidc::discovery::{self, Metadata};
use crate::oidc::http::Client;

/// Shortest background refresh interval, whatever the provider's `Cache-Control` says.
pub const MIN_REFRESH: Duration = Duration::from_secs(60);
/// Longest background refresh interval.
pub const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// Refresh interval when the provider sends no `max-age`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
/// Retry interval after a failed refresh.
pub const RETRY: Duration = Duration::from_secs(15);
/// An unknown `kid` triggers at most one re-fetch per this interval.
pub const KID_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// What identifies a key source across reloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceId {
    /// Provider name.
    pub name: String,
    /// Issuer URL, for discovery.
    pub issuer: Option<Url>,
    /// Configured key set URL.
    pub jwks_uri: Option<Url>,
    /// Configured introspection endpoint.
    pub introspection_endpoint: Option<Url>,
}

#[derive(Debug, Default)]
struct Schedule {
    last_attempt: Option<Instant>,
    next_due: Option<Instant>,
}

/// Key state for `/readyz` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Never fetched successfully.
    Missing,
    /// Fetched; the last refresh succeeded.
    Fresh,
    /// Fetched before; the last refresh failed, the old keys serve.
    Stale,
}

/// One provider's metadata and keys.
pub struct KeySource {
    /// Identity of the source.
    pub id: SourceId,
    client: Client,
    metadata: ArcSwap<Metadata>,
    keys: ArcSwap<KeySet>,
    schedule: Mutex<Schedule>,
    state: Mutex<KeyState>,
    /// Serialises fetches: concurrent unknown-kid misses wait for one fetch.
    fetching: tokio::sync::Mutex<()>,
    /// Set when a reload dropped this source: a refresh still in flight (or asked for by a
    /// request holding an old snapshot) no longer writes the provider's metrics, which now
    /// belong to its successor or to nobody. Held while metrics are written.
    retired: Mutex<bool>,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySource")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl KeySource {
    /// A source with no keys yet.
    pub fn new(id: SourceId, client: Client) -> Self {
        let metadata = Metadata {
            issuer: id.issuer.as_ref().map(discovery::issuer_string),
            jwks_uri: id.jwks_uri.clone(),
            introspection_endpoint: id.introspection_endpoint.clone(),
            ..Metadata::default()
        };
        Self {
            id,
            client,
            metadata: ArcSwap::from_pointee(metadata),
            keys: ArcSwap::from_pointee(KeySet::default()),
            schedule: Mutex::new(Schedule::default()),
            state: Mutex::new(KeyState::Missing),
            fetching: tokio::sync::Mutex::new(()),
            retired: Mutex::new(false),
        }
    }

    /// A source holding `keys` from the start, marked fresh: for tests and benchmarks that
    /// verify tokens without a provider. It still refreshes like any other when asked.
    pub fn with_keys(id: SourceId, client: Client, keys: KeySet) -> Self {
        let source = Self::new(id, client);
        source.keys.store(Arc::new(keys));
        if let Ok(mut state) = source.state.lock() {
            *state = KeyState::Fresh;
        }
        source
    }

    /// The current keys.
    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// The current metadata.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata.load_full()
    }

    /// The key state.
    pub fn state(&self) -> KeyState {
        self.state.lock().map_or(KeyState::Missing, |s| *s)
    }

    /// The shared HTTP client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the background refresher should fetch now.
    pub fn due(&self, now: Instant) -> bool {
        self.schedule
            .lock()
            .map_or(true, |s| s.next_due.is_none_or(|due| due <= now))
    }

    /// Fetches keys now unless one was attempted within `min_gap`. Returns whether keys changed.
    pub async fn refresh(&self, min_gap: Duration) -> bool {
        let _one_at_a_time = self.fetching.lock().await;
        let now = Instant::now();
        if let Ok(s) = self.schedule.lock()
            && s.last_attempt
                .is_some_and(|t| now.duration_since(t) < min_gap)
        {
            return false;
        }
        if let Ok(mut s) = self.schedule.lock() {
            s.last_attempt = Some(now);
        }
        let outcome = self.fetch().await;
        let name = self.id.name.as_str();
        let before = self.state();
        let (next, count) = match outcome {
            Ok((count, max_age)) => {
                if before == KeyState::Missing {
                    let issuer = self.metadata.load().issuer.clone();
                    tracing::info!(
                        provider = name,
                        issuer = issuer.as_deref().unwrap_or("-"),
                        keys = count,
                        "provider keys loaded"
                    );
                }
                let every = max_age
                    .unwrap_or(DEFAULT_REFRESH)
                    .clamp(MIN_REFRESH, MAX_REFRESH);
                (every, Some(count))
            }
            Err(failed) => {
                let url = failed.url.as_ref().map_or("-", Url::as_str);
                let error = failed.error.as_str();
                match (before, self.keys.load().len()) {
                    (KeyState::Missing, _) | (_, 0) => tracing::warn!(
                        provider = name,
                        url,
                        error,
                        "key refresh failed; no keys yet"
                    ),
                    (_, cached) => tracing::warn!(
                        provider = name,
                        url,
                        error,
                        cached,
                        "key refresh failed; keeping {cached} cached keys"
                    ),
                }
                (RETRY, None)
            }
        };
        let ok = count.is_some();
        let state = match self.state.lock() {
            Ok(mut state) => {
                *state = match (ok, *state) {
                    (true, _) => KeyState::Fresh,
                    (false, KeyState::Missing) => KeyState::Missing,
                    (false, _) => KeyState::Stale,
                };
                *state
            }
            Err(_) => KeyState::Missing,
        };
        self.publish(count, state);
        if let Ok(mut s) = self.schedule.lock() {
            s.next_due = Some(Instant::now() + next);
        }
        ok
    }

    /// Writes the outcome of a refresh (`count` keys, or `None` for a failure) to the
    /// provider's metrics, unless a reload retired this source.
    fn publish(&self, count: Option<usize>, state: KeyState) {
        let Ok(retired) = self.retired.lock() else {
            return;
        };
        if *retired {
            return;
        }
        let name = self.id.name.as_str();
        if let Some(count) = count {
            metrics::JWKS_KEYS
                .with_label_values(&[name])
                .set(count as i64);
            metrics::JWKS_UPDATED
                .with_label_values(&[name])
                .set(unix_now() as i64);
        }
        let result = if count.is_some() {
            "success"
        } else {
            "failure"
        };
        metrics::JWKS_REFRESHES
            .with_label_values(&[name, result])
            .inc();
        metrics::JWKS_STATE
            .with_label_values(&[name])
            .set(match state {
                KeyState::Missing => 0,
                KeyState::Stale => 1,
                KeyState::Fresh => 2,
            });
    }

    /// Stops this source writing metrics; with `forget`, also removes the provider's key
    /// series (the provider is gone, not replaced by a source of the same name).
    fn retire(&self, forget: bool) {
        if let Ok(mut retired) = self.retired.lock() {
            *retired = true;
            if forget {
                metrics::provider_removed(&self.id.name);
            }
        }
    }

    async fn fetch(&self) -> Result<(usize, Option<Duration>), FetchError> {
        let mut metadata = (*self.metadata.load_full()).clone();
        if let Some(issuer) = &self.id.issuer {
            let found = discovery::discover(&self.client, issuer)
                .await
                .map_err(|e| FetchError::at(Some(discovery::discovery_url(issuer)), e))?;
            metadata.issuer = found.issuer.clone();
            metadata = Metadata {
                jwks_uri: self.id.jwks_uri.clone().or(found.jwks_uri),
                introspection_endpoint: self
                    .id
                    .introspection_endpoint
                    .clone()
                    .or(found.introspection_endpoint),
                ..found
            };
            self.metadata.store(Arc::new(metadata.clone()));
        }
        let Some(jwks_uri) = metadata.jwks_uri.clone() else {
            // Introspection-only and plain OAuth 2.0 providers have no key set.
            return if metadata.introspection_endpoint.is_some() || self.id.issuer.is_none() {
                Ok((0, None))
            } else {
                Err(FetchError::at(
                    self.id.issuer.as_ref().map(discovery::discovery_url),
                    "no jwks_uri configured or discovered",
                ))
            };
        };
        let fetched = self
            .client
            .get_json(&jwks_uri)
            .await
            .map_err(|e| FetchError::at(Some(jwks_uri.clone()), e))?;
        let (set, skipped) = KeySet::parse(&fetched.json);
        for why in &skipped {
            tracing::info!(provider = %self.id.name, "key skipped: {why}");
        }
        if set.is_empty() {
            return Err(FetchError::at(
                Some(jwks_uri),
                "the key set has no usable signing key",
            ));
        }
        let count = set.len();
        self.keys.store(Arc::new(set));
        Ok((count, fetched.max_age))
    }
}

/// Why a fetch failed, and the URL it failed at (discovery document or key set).
struct FetchError {
    url: Option<Url>,
    error: String,
}

impl FetchError {
    fn at(url: Option<Url>, error: impl std::fmt::Display) -> Self {
        Self {
            url,
            error: error.to_string(),
        }
    }
}

/// Key sources by identity, shared by every snapshot.
pub struct KeyRegistry {
    sources: Mutex<HashMap<SourceId, Arc<KeySource>>>,
    client: Client,
}

impl Default for KeyRegistry {
    fn default() -> Self {
        Self {
            sources: Mutex::new(HashMap::new()),
            client: Client::new(crate::oidc::http::TIMEOUT),
        }
    }
}

impl KeyRegistry {
    /// The source for `id`, created if new. A new source's key series are published at 0
    /// (see [`metrics::provider_configured`]) until its first refresh.
    pub fn source(&self, id: SourceId) -> Arc<KeySource> {
        let client = self.client.clone();
        let Ok(mut sources) = self.sources.lock() else {
            return Arc::new(KeySource::new(id, client));
        };
        sources
            .entry(id.clone())
            .or_insert_with(|| {
                metrics::provider_configured(&id.name);
                Arc::new(KeySource::new(id, client))
            })
            .clone()
    }

    /// Keeps only the sources in `live` (called after a reload). A dropped source stops
    /// writing metrics; its provider's key series go too unless a live source has its name.
    pub fn retain(&self, live: &[SourceId]) {
        if let Ok(mut sources) = self.sources.lock() {
            sources.retain(|id, source| {
                let keep = live.contains(id);
                if !keep {
                    source.retire(!live.iter().any(|l| l.name == id.name));
                }
                keep
            });
        }
    }

    /// Every source.
    pub fn all(&self) -> Vec<Arc<KeySource>> {
        self.sources
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `metric{provider="name"}` (summed over other labels), if any series exists.
    fn sample(metric: &str, name: &str) -> Option<f64> {
        let text = String::from_utf8(metrics::render()).unwrap_or_default();
        let needle = format!("provider=\"{name}\"");
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// A source with neither issuer nor key set URL: its refresh succeeds with no keys and no
    /// network.
    fn id(name: &str, jwks: Option<&str>) -> SourceId {
        SourceId {
            name: name.to_owned(),
            issuer: None,
            jwks_uri: jwks.and_then(|u| Url::parse(u).ok()),
            introspection_endpoint: None,
        }
    }

    #[test]
    fn a_configured_provider_has_key_series_at_zero_until_its_first_refresh() {
        let registry = KeyRegistry::default();
        assert_eq!(sample("portcullis_jwks_keys", "unit-new"), None);
        registry.source(id("unit-new", None));
        assert_eq!(sample("portcullis_jwks_keys", "unit-new"), Some(0.0));
        assert_eq!(sample("portcullis_jwks_state", "unit-new"), Some(0.0));
        assert_eq!(
            sample("portcullis_jwks_refreshes_total", "unit-new"),
            Some(0.0)
        );
        assert_eq!(
            sample("portcullis_jwks_last_success_timestamp_seconds", "unit-new"),
            None,
            "no success yet: no timestamp"
        );
    }

    #[tokio::test]
    async fn a_reload_that_drops_a_provider_removes_its_series_and_silences_its_source() {
        let registry = KeyRegistry::default();
        let old = registry.source(id("unit-gone", None));
        assert!(old.refresh(Duration::ZERO).await);
        assert_eq!(sample("portcullis_jwks_state", "unit-gone"), Some(2.0));
        registry.retain(&[]);
        for metric in [
            "portcullis_jwks_keys",
            "portcullis_jwks_state",
            "portcullis_jwks_last_success_timestamp_seconds",
            "portcullis_jwks_refreshes_total",
        ] {
            assert_eq!(sample(metric, "unit-gone"), None, "{metric} after removal");
        }
        // A refresh of the dropped source (a request still holding the old snapshot) does not
        // bring the series back.
        old.refresh(Duration::ZERO).await;
        assert_eq!(sample("portcullis_jwks_state", "unit-gone"), None);
    }

    #[tokio::test]
    async fn a_provider_whose_source_changes_keeps_its_series_for_the_new_source() {
        let registry = KeyRegistry::default();
        let old = registry.source(id("unit-moved", None));
        assert!(old.refresh(Duration::ZERO).await);
        assert_eq!(sample("portcullis_jwks_state", "unit-moved"), Some(2.0));
        // The same provider name with another key set URL: a new source, starting at 0.
        let new_id = id("unit-moved", Some("http://127.0.0.1:9/jwks"));
        registry.source(new_id.clone());
        registry.retain(&[new_id]);
        assert_eq!(sample("portcullis_jwks_state", "unit-moved"), Some(0.0));
        assert_eq!(sample("portcullis_jwks_keys", "unit-moved"), Some(0.0));
        // The old source's late refresh does not overwrite the new source's state.
        old.refresh(Duration::ZERO).await;
        assert_eq!(sample("portcullis_jwks_state", "unit-moved"), Some(0.0));
    }
}

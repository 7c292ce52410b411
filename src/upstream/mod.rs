//! Upstream target selection: round robin with passive health.
//!
//! A target that fails to connect is skipped for the upstream's `fail_timeout`; when every
//! target is marked down, selection falls back to plain round robin rather than refusing, so a
//! recovered backend is found again without waiting. Health is kept per target address for the
//! life of the process, so a config reload does not send requests to a target known to be down;
//! the request path reads it lock-free.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::config::UpstreamConfig;

/// One upstream's targets and their health.
#[derive(Debug)]
pub struct UpstreamPool {
    /// The configuration it was built from.
    pub config: UpstreamConfig,
    next: AtomicUsize,
    /// Per target: milliseconds since [`EPOCH`] until which it is skipped (0 = healthy); shared
    /// with every pool (of every config load) that has the same target address.
    down_until: Vec<Arc<AtomicU64>>,
}

/// The origin of every pool's health clock.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Health slots by target address, for the life of the process.
static HEALTH: LazyLock<Mutex<HashMap<SocketAddr, Arc<AtomicU64>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The health slot of `target` (a fresh one if the registry cannot be read).
fn health_of(target: SocketAddr) -> Arc<AtomicU64> {
    match HEALTH.lock() {
        Ok(mut all) => all
            .entry(target)
            .or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .clone(),
        Err(_) => Arc::new(AtomicU64::new(0)),
    }
}

impl UpstreamPool {
    /// A pool over `config`'s targets, with the health they already have.
    pub fn new(config: UpstreamConfig) -> Self {
        let down_until = config.targets.iter().map(|t| health_of(*t)).collect();
        Self {
            config,
            next: AtomicUsize::new(0),
            down_until,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next target to try, skipping those marked down and those in `tried` (a bit set of
    /// target indexes already used by this request). `None` only when there are no targets.
    pub fn select(&self, tried: u64) -> Option<(usize, SocketAddr)> {
        let n = self.config.targets.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let pick = |healthy_only: bool| {
            (0..n).map(|k| (start + k) % n).find(|&i| {
                let fresh = i >= 64 || tried & (1 << i) == 0;
                fresh && (!healthy_only || self.down_until[i].load(Ordering::Relaxed) <= now)
            })
        };
        let i = pick(true).or_else(|| pick(false)).unwrap_or(start % n);
        Some((i, self.config.targets[i]))
    }

    /// Marks target `i` down for `fail_timeout`.
    pub fn mark_down(&self, i: usize) {
        if let Some(slot) = self.down_until.get(i) {
            let until = self.now_ms() + duration_ms(self.config.fail_timeout);
            slot.store(until, Ordering::Relaxed);
        }
    }

    /// How many targets there are.
    pub fn len(&self) -> usize {
        self.config.targets.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.config.targets.is_empty()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A pool of `n` targets on 127.0.0.`host` (health is per address, so each test has its own).
    fn pool_at(host: u8, n: u16) -> UpstreamPool {
        UpstreamPool::new(UpstreamConfig {
            name: Arc::from("u"),
            targets: (0..n)
                .map(|i| SocketAddr::from(([127, 0, 0, host], 1000 + i)))
                .collect(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            fail_timeout: Duration::from_secs(60),
            tls: None,
        })
    }

    #[test]
    fn round_robin_visits_every_target() {
        let p = pool_at(11, 3);
        let picks: Vec<usize> = (0..6).filter_map(|_| p.select(0).map(|(i, _)| i)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_down_target_is_skipped_until_all_are_down() {
        let p = pool_at(12, 2);
        p.mark_down(0);
        assert!((0..4).all(|_| p.select(0).map(|(i, _)| i) == Some(1)));
        p.mark_down(1);
        assert!(p.select(0).is_some(), "all down falls back to round robin");
    }

    #[test]
    fn health_outlives_a_config_reload() {
        let old = pool_at(14, 2);
        old.mark_down(0);
        // The pool a reload builds for the same targets knows target 0 is down.
        let reloaded = pool_at(14, 2);
        assert!((0..4).all(|_| reloaded.select(0).map(|(i, _)| i) == Some(1)));
    }

    #[test]
    fn retries_avoid_targets_already_tried() {
        let p = pool_at(13, 2);
        for _ in 0..4 {
            assert_eq!(p.select(0b01).map(|(i, _)| i), Some(1));
        }
    }
}

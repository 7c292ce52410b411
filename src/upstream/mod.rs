//! Upstream target selection: round robin with passive health, over an address set that DNS
//! names may change at any time.
//!
//! An upstream's targets are `IP:port`s and `name:port`s; each address a name resolves to is a
//! target of its own (see [`names`] for how the set follows the answers, [`dns`] for the
//! background resolver). The request path only loads the current [`TargetSet`]: it never
//! resolves, locks or waits.
//!
//! A target that fails to connect is skipped for the upstream's `fail_timeout`; when every
//! target is marked down, selection falls back to plain round robin rather than refusing, so a
//! recovered backend is found again without waiting. Health is kept per target address for the
//! life of the process (while some pool holds the address or it is marked down), so neither a
//! config reload nor a re-resolution sends requests to a target known to be down.

pub mod dns;
mod names;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::config::UpstreamConfig;
use names::Live;

/// One upstream's targets and their health.
#[derive(Debug)]
pub struct UpstreamPool {
    /// The configuration it was built from.
    pub config: UpstreamConfig,
    next: AtomicUsize,
    /// The addresses now, following the names' answers.
    live: Arc<Live>,
}

/// The addresses an upstream balances over at one moment, each with its health slot.
#[derive(Debug, Default)]
pub struct TargetSet {
    addrs: Vec<SocketAddr>,
    /// Per address: milliseconds since [`EPOCH`] until which it is skipped (0 = healthy);
    /// shared with every set (of every pool and config load) that has the same address.
    down_until: Vec<Arc<AtomicU64>>,
}

/// The origin of every pool's health clock.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Health slots by target address.
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

/// Forgets the health of addresses no set holds any more and that are not marked down (a
/// fresh slot says the same), so addresses that DNS rotates through do not pile up.
fn prune_health() {
    let now = now_ms();
    if let Ok(mut all) = HEALTH.lock() {
        all.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.load(Ordering::Relaxed) > now);
    }
}

fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl TargetSet {
    /// A set of `addrs`, with the health they already have.
    fn new(addrs: Vec<SocketAddr>) -> Self {
        let down_until = addrs.iter().map(|a| health_of(*a)).collect();
        Self { addrs, down_until }
    }

    /// The addresses, in order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// How many addresses there are.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether there is no address (a name not resolved yet).
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

impl UpstreamPool {
    /// A pool over `config`'s targets: its addresses, the names' last answers, and the health
    /// they already have.
    pub fn new(config: UpstreamConfig) -> Self {
        let live = Live::new(&config);
        Self {
            config,
            next: AtomicUsize::new(0),
            live,
        }
    }

    /// The addresses now: a request loads them once and selects among them.
    pub fn targets(&self) -> Arc<TargetSet> {
        self.live.current()
    }

    /// The next target of `set` to try, skipping those marked down and those in `tried` (a bit
    /// set of target indexes already used by this request). `None` only when `set` is empty.
    pub fn select(&self, set: &TargetSet, tried: u64) -> Option<(usize, SocketAddr)> {
        let n = set.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let pick = |healthy_only: bool| {
            (0..n).map(|k| (start + k) % n).find(|&i| {
                let fresh = i >= 64 || tried & (1 << i) == 0;
                fresh && (!healthy_only || set.down_until[i].load(Ordering::Relaxed) <= now)
            })
        };
        let i = pick(true).or_else(|| pick(false)).unwrap_or(start % n);
        Some((i, set.addrs[i]))
    }

    /// Marks target `i` of `set` down for `fail_timeout`.
    pub fn mark_down(&self, set: &TargetSet, i: usize) {
        if let Some(slot) = set.down_until.get(i) {
            let until = now_ms() + duration_ms(self.config.fail_timeout);
            slot.store(until, Ordering::Relaxed);
        }
    }

    /// Whether the pool has no address yet while one of its names still waits for its first
    /// answer (`/readyz` says not ready meanwhile).
    pub fn awaiting_dns(&self) -> bool {
        self.targets().is_empty() && self.live.awaiting_first_answer()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;
    use std::sync::Arc;

    /// A pool of `n` targets on 127.0.0.`host` (health is per address, so each test has its own).
    fn pool_at(host: u8, n: u16) -> UpstreamPool {
        UpstreamPool::new(UpstreamConfig {
            name: Arc::from("u"),
            targets: (0..n)
                .map(|i| Target::Addr(SocketAddr::from(([127, 0, 0, host], 1000 + i))))
                .collect(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            fail_timeout: Duration::from_secs(60),
            tls: None,
        })
    }

    fn pick(p: &UpstreamPool, tried: u64) -> Option<usize> {
        p.select(&p.targets(), tried).map(|(i, _)| i)
    }

    #[test]
    fn round_robin_visits_every_target() {
        let p = pool_at(11, 3);
        let picks: Vec<usize> = (0..6).filter_map(|_| pick(&p, 0)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_down_target_is_skipped_until_all_are_down() {
        let p = pool_at(12, 2);
        let set = p.targets();
        p.mark_down(&set, 0);
        assert!((0..4).all(|_| pick(&p, 0) == Some(1)));
        p.mark_down(&set, 1);
        assert!(pick(&p, 0).is_some(), "all down falls back to round robin");
    }

    #[test]
    fn health_outlives_a_config_reload() {
        let old = pool_at(14, 2);
        old.mark_down(&old.targets(), 0);
        // The pool a reload builds for the same targets knows target 0 is down.
        let reloaded = pool_at(14, 2);
        assert!((0..4).all(|_| pick(&reloaded, 0) == Some(1)));
    }

    #[test]
    fn retries_avoid_targets_already_tried() {
        let p = pool_at(13, 2);
        for _ in 0..4 {
            assert_eq!(pick(&p, 0b01), Some(1));
        }
    }

    #[test]
    fn forgotten_health_is_only_that_of_unused_healthy_addresses() {
        let kept = pool_at(15, 2);
        let set = kept.targets();
        kept.mark_down(&set, 1);
        let gone = pool_at(16, 1);
        let gone_addr = gone.targets().addrs()[0];
        drop(gone);
        let down = pool_at(17, 1);
        down.mark_down(&down.targets(), 0);
        let down_addr = down.targets().addrs()[0];
        drop(down);
        prune_health();
        let known = |a: &SocketAddr| HEALTH.lock().map(|h| h.contains_key(a)).unwrap_or(false);
        assert!(
            set.addrs().iter().all(known),
            "addresses in use keep their slot"
        );
        assert!(!known(&gone_addr), "an unused healthy address is forgotten");
        assert!(
            known(&down_addr),
            "an unused address marked down is remembered"
        );
    }
}

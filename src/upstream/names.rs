//! The DNS names upstream targets use, and each pool's live address set.
//!
//! A [`Name`] is process-wide: every pool (of every config load) whose targets name the same
//! host shares it, so a reload starts from the last good answer instead of from nothing. The
//! background resolver ([`super::dns`]) publishes answers into it; each publication rebuilds
//! the address set of every pool subscribed to the name, which the request path then loads
//! (an `ArcSwap`). A failed lookup leaves the answer as it was.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::{TargetSet, prune_health};
use crate::config::{Target, UpstreamConfig};
use crate::metrics;

/// Most addresses taken from one answer (a headless service of many pods); the rest are
/// ignored, with a warning.
pub const MAX_ADDRESSES_PER_NAME: usize = 256;

/// One DNS name and its last good answer.
#[derive(Debug)]
pub struct Name {
    /// The name, lowercase, as configured.
    pub host: Arc<str>,
    /// The last good answer, sorted; `None` before the first.
    answer: ArcSwapOption<Vec<IpAddr>>,
    /// A first lookup has finished (answered or failed).
    settled: AtomicBool,
    /// The pools whose targets use the name.
    subscribers: Mutex<Vec<Weak<Live>>>,
}

/// Every name in use, by host.
static NAMES: LazyLock<Mutex<HashMap<Arc<str>, Arc<Name>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The shared [`Name`] for `host` (made, unresolved, when new).
fn name(host: &Arc<str>) -> Arc<Name> {
    let fresh = || {
        Arc::new(Name {
            host: host.clone(),
            answer: ArcSwapOption::empty(),
            settled: AtomicBool::new(false),
            subscribers: Mutex::new(Vec::new()),
        })
    };
    match NAMES.lock() {
        Ok(mut all) => all.entry(host.clone()).or_insert_with(fresh).clone(),
        Err(_) => fresh(),
    }
}

/// Every name some pool still uses; those no pool holds any more are forgotten.
pub fn in_use() -> Vec<Arc<Name>> {
    match NAMES.lock() {
        Ok(mut all) => {
            all.retain(|_, n| Arc::strong_count(n) > 1);
            all.values().cloned().collect()
        }
        Err(_) => Vec::new(),
    }
}

impl Name {
    /// The last good answer, if there was one.
    pub fn answer(&self) -> Option<Arc<Vec<IpAddr>>> {
        self.answer.load_full()
    }

    /// Whether a first lookup has finished, well or not.
    pub fn settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// A good answer: kept (sorted, without duplicates, at most
    /// [`MAX_ADDRESSES_PER_NAME`]), and every pool using the name follows it. Returns whether
    /// it differs from the last one.
    pub fn publish(&self, addrs: impl IntoIterator<Item = IpAddr>) -> bool {
        let sorted: BTreeSet<IpAddr> = addrs.into_iter().collect();
        if sorted.len() > MAX_ADDRESSES_PER_NAME {
            tracing::warn!(
                host = %self.host,
                addresses = sorted.len(),
                kept = MAX_ADDRESSES_PER_NAME,
                "a DNS answer has more addresses than are used"
            );
        }
        let addrs: Vec<IpAddr> = sorted.into_iter().take(MAX_ADDRESSES_PER_NAME).collect();
        let changed = self.answer().is_none_or(|old| *old != addrs);
        if changed {
            self.answer.store(Some(Arc::new(addrs)));
        }
        self.settled.store(true, Ordering::Release);
        if changed {
            for live in self.subscribers() {
                live.rebuild();
            }
        }
        changed
    }

    /// A failed lookup: the last good answer stays; counted once per upstream using the name.
    pub fn fail(&self) {
        self.settled.store(true, Ordering::Release);
        let upstreams: BTreeSet<Arc<str>> = self
            .subscribers()
            .iter()
            .map(|l| l.upstream.clone())
            .collect();
        for upstream in upstreams {
            metrics::DNS_FAILURES.with_label_values(&[&upstream]).inc();
        }
    }

    /// The upstream names of the pools using the name, sorted, once each (for logs).
    pub fn upstreams(&self) -> Vec<Arc<str>> {
        let names: BTreeSet<Arc<str>> = self
            .subscribers()
            .iter()
            .map(|l| l.upstream.clone())
            .collect();
        names.into_iter().collect()
    }

    /// The live pools using the name (dead ones are dropped from the list).
    fn subscribers(&self) -> Vec<Arc<Live>> {
        match self.subscribers.lock() {
            Ok(mut subs) => {
                subs.retain(|w| w.strong_count() > 0);
                subs.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    fn subscribe(&self, live: &Arc<Live>) {
        if let Ok(mut subs) = self.subscribers.lock() {
            // Pools of configs reloaded away go here too, not only when the answer changes.
            subs.retain(|w| w.strong_count() > 0);
            subs.push(Arc::downgrade(live));
        }
    }
}

/// Where one configured target's addresses come from.
#[derive(Debug)]
enum Source {
    Addr(SocketAddr),
    Name(Arc<Name>, u16),
}

/// One pool's address set, rebuilt whenever one of its names gets a new answer.
#[derive(Debug)]
pub(super) struct Live {
    /// The upstream's name, for metrics.
    upstream: Arc<str>,
    /// The configured targets, in order.
    sources: Vec<Source>,
    /// The addresses now.
    set: ArcSwap<TargetSet>,
    /// Serialises rebuilds, so that of two answers published at once the later read wins.
    rebuilding: Mutex<()>,
}

impl Live {
    /// The live set of `config`'s targets, from the names' last answers, subscribed to them.
    pub(super) fn new(config: &UpstreamConfig) -> Arc<Self> {
        let sources = config
            .targets
            .iter()
            .map(|t| match t {
                Target::Addr(a) => Source::Addr(*a),
                Target::Name { host, port } => Source::Name(name(host), *port),
            })
            .collect();
        let live = Arc::new(Self {
            upstream: config.name.clone(),
            sources,
            set: ArcSwap::from_pointee(TargetSet::default()),
            rebuilding: Mutex::new(()),
        });
        // Subscribed first, then filled: an answer published in between rebuilds it too.
        for source in &live.sources {
            if let Source::Name(name, _) = source {
                name.subscribe(&live);
            }
        }
        live.refresh(false);
        live
    }

    /// The addresses now.
    pub(super) fn current(&self) -> Arc<TargetSet> {
        self.set.load_full()
    }

    /// Whether some name of the pool has not finished its first lookup.
    pub(super) fn awaiting_first_answer(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s, Source::Name(n, _) if !n.settled()))
    }

    /// Every address of the targets, in configured order (a name's in its sorted answer),
    /// each once.
    fn addresses(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let mut push = |a: SocketAddr| {
            if !out.contains(&a) {
                out.push(a);
            }
        };
        for source in &self.sources {
            match source {
                Source::Addr(a) => push(*a),
                Source::Name(name, port) => {
                    for ip in name.answer().iter().flat_map(|a| a.iter()) {
                        push(SocketAddr::new(*ip, *port));
                    }
                }
            }
        }
        out
    }

    /// Takes the names' current answers into a new set, when they changed it.
    fn rebuild(&self) {
        self.refresh(true);
    }

    /// [`Live::rebuild`], logging the change when `log`.
    fn refresh(&self, log: bool) {
        let _one_at_a_time = self.rebuilding.lock();
        let addrs = self.addresses();
        if self.set.load().addrs() == addrs.as_slice() {
            return;
        }
        if log {
            tracing::info!(upstream = %self.upstream, addresses = ?addrs, "upstream addresses changed");
        }
        self.set.store(Arc::new(TargetSet::new(addrs)));
        prune_health();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::UpstreamPool;

    fn pool(upstream: &str, targets: Vec<Target>) -> UpstreamPool {
        UpstreamPool::new(UpstreamConfig {
            name: Arc::from(upstream),
            targets,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            fail_timeout: Duration::from_secs(60),
            tls: None,
        })
    }

    fn named(host: &str, port: u16) -> Target {
        Target::Name {
            host: Arc::from(host),
            port,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn every_address_of_an_answer_is_a_target_and_follows_the_next_answer() {
        let fixed = SocketAddr::from(([10, 9, 9, 9], 8080));
        let p = pool(
            "follow",
            vec![named("follow.test", 9001), Target::Addr(fixed)],
        );
        assert_eq!(p.targets().addrs(), &[fixed], "no answer yet: only the IP");
        assert!(!p.awaiting_dns(), "it has an address");
        let name = name(&Arc::from("follow.test"));
        assert!(name.publish([ip("10.1.0.2"), ip("10.1.0.1"), ip("10.1.0.2")]));
        let want = |ips: &[&str]| {
            let mut v: Vec<SocketAddr> = ips.iter().map(|s| SocketAddr::new(ip(s), 9001)).collect();
            v.push(fixed);
            v
        };
        assert_eq!(p.targets().addrs(), want(&["10.1.0.1", "10.1.0.2"]));
        assert!(
            !name.publish([ip("10.1.0.1"), ip("10.1.0.2")]),
            "same answer"
        );
        name.publish([ip("10.1.0.3")]);
        assert_eq!(p.targets().addrs(), want(&["10.1.0.3"]));
        name.fail();
        assert_eq!(
            p.targets().addrs(),
            want(&["10.1.0.3"]),
            "a failure keeps the last good answer"
        );
    }

    #[test]
    fn a_reloaded_pool_starts_from_the_last_answer_and_keeps_health() {
        let old = pool("reload", vec![named("reload.test", 80)]);
        assert!(old.targets().is_empty());
        assert!(old.awaiting_dns(), "no address and no answer yet");
        name(&Arc::from("reload.test")).publish([ip("10.2.0.1"), ip("10.2.0.2")]);
        let set = old.targets();
        assert_eq!(set.len(), 2);
        old.mark_down(&set, 0);
        let reloaded = pool("reload", vec![named("reload.test", 80)]);
        assert_eq!(reloaded.targets().addrs(), set.addrs());
        for _ in 0..4 {
            let (i, _) = reloaded
                .select(&reloaded.targets(), 0)
                .expect("has targets");
            assert_eq!(
                i, 1,
                "the address marked down under the old config is skipped"
            );
        }
    }

    #[test]
    fn a_name_that_failed_first_is_settled_without_addresses() {
        let p = pool("never", vec![named("never.test", 80)]);
        assert!(p.awaiting_dns());
        name(&Arc::from("never.test")).fail();
        assert!(p.targets().is_empty());
        assert!(
            !p.awaiting_dns(),
            "the first lookup failed: not waiting any more"
        );
    }

    #[test]
    fn names_no_pool_uses_are_forgotten() {
        let p = pool("gone", vec![named("gone.test", 80)]);
        assert!(in_use().iter().any(|n| &*n.host == "gone.test"));
        drop(p);
        assert!(!in_use().iter().any(|n| &*n.host == "gone.test"));
    }

    #[test]
    fn an_answer_is_bounded() {
        let p = pool("many", vec![named("many.test", 80)]);
        let many = (0..=u16::try_from(MAX_ADDRESSES_PER_NAME).unwrap_or(u16::MAX))
            .map(|i| IpAddr::from([10, 3, (i >> 8) as u8, i as u8]));
        name(&Arc::from("many.test")).publish(many);
        assert_eq!(p.targets().len(), MAX_ADDRESSES_PER_NAME);
    }
}

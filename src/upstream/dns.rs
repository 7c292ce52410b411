//! The background resolver of upstream target names.
//!
//! [`run`] looks every name in use up (A and AAAA), off the request path, and again when its
//! answer's TTL runs out, clamped to [`MIN_TTL`]..[`MAX_TTL`]. A good answer is published to
//! the [`Name`](super::names::Name), and the pools using it follow; a failed one (no answer,
//! an error, or no reply within [`LOOKUP_DEADLINE`]) keeps the last good answer, is counted
//! in `portcullis_dns_failures_total{upstream}` and is retried after [`MIN_RETRY`], doubling
//! to [`MAX_RETRY`]. Names are looked up concurrently, so one slow name delays no other.
//!
//! The name servers are `server.dns.servers` when given (then `/etc/hosts` is not read), else
//! the system's: `/etc/resolv.conf` (its `search`, `ndots`, `timeout` and `attempts` too) and
//! `/etc/hosts`. The resolver's own cache is off: this loop re-resolves at the TTL itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::UpstreamPool;
use super::names::{self, Name};

/// Shortest time an answer is used before it is asked again (a TTL of 0 included).
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest time an answer is used before it is asked again, whatever its TTL.
pub const MAX_TTL: Duration = Duration::from_secs(300);
/// First retry after a failed lookup.
pub const MIN_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between retries of a name that keeps failing.
pub const MAX_RETRY: Duration = Duration::from_secs(30);
/// The whole of one lookup (every server, every attempt, A and AAAA) ends by then.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(10);
/// Per query, per server: the resolver's own timeout (two attempts).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Even with nothing due, names a reload added are looked for this often.
const TICK: Duration = Duration::from_secs(1);

/// Wakes [`run`] at once (a reload made new names).
static WAKE: Notify = Notify::const_new();

/// How long an answer with `ttl` is used.
pub fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.clamp(MIN_TTL, MAX_TTL)
}

/// The wait before retrying after `failures` failed lookups in a row (at least one).
pub fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    MIN_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// A lookup's addresses and how long they may be used, or why there are none.
type Answer = Result<(Vec<IpAddr>, Duration), String>;

/// A resolver over `servers` (empty: the system's).
#[derive(Clone)]
struct Resolver {
    servers: Vec<SocketAddr>,
    inner: Result<TokioResolver, String>,
}

impl Resolver {
    fn new(servers: &[SocketAddr]) -> Self {
        Self {
            servers: servers.to_vec(),
            inner: build(servers),
        }
    }

    /// The addresses of `host` and how long they may be used, or why there are none.
    async fn lookup(&self, host: &str) -> Answer {
        let resolver = self.inner.as_ref().map_err(Clone::clone)?;
        let answer = tokio::time::timeout(LOOKUP_DEADLINE, resolver.lookup_ip(host))
            .await
            .map_err(|_| format!("no answer within {LOOKUP_DEADLINE:?}"))?
            .map_err(|e| e.to_string())?;
        let addrs: Vec<IpAddr> = answer
            .iter()
            .filter(|ip| !ip.is_unspecified() && !ip.is_multicast())
            .collect();
        if addrs.is_empty() {
            return Err("the answer has no usable address".into());
        }
        // The lowest TTL of the records (of both families), from now.
        let ttl = answer
            .valid_until()
            .saturating_duration_since(std::time::Instant::now());
        Ok((addrs, ttl))
    }
}

fn build(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut builder = if servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("the system resolver: {e}"))?
    } else {
        let name_servers = servers
            .iter()
            .map(|s| {
                let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                for c in &mut ns.connections {
                    c.port = s.port();
                }
                ns
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let mut b = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        b.options_mut().use_hosts_file = ResolveHosts::Never;
        b
    };
    let options = builder.options_mut();
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.cache_size = 0;
    if !servers.is_empty() {
        options.timeout = QUERY_TIMEOUT;
        options.attempts = 2;
    }
    builder.build().map_err(|e| e.to_string())
}

/// When a name is next looked up.
struct Schedule {
    due: Instant,
    failures: u32,
    /// When the lookup under way started (one that outlived its deadline twice over, its task
    /// lost, no longer holds the name back).
    in_flight: Option<Instant>,
}

/// Keeps every name in use resolved until `shutdown` says stop; `servers` gives the name
/// servers of the config serving now (empty: the system's), read before each round.
pub async fn run<F>(servers: F, mut shutdown: watch::Receiver<bool>)
where
    F: Fn() -> Vec<SocketAddr>,
{
    let mut resolver: Option<Resolver> = None;
    let mut schedule: HashMap<Arc<str>, Schedule> = HashMap::new();
    let mut lookups: JoinSet<(Arc<Name>, Answer)> = JoinSet::new();
    loop {
        let names = names::in_use();
        let now = Instant::now();
        if !names.is_empty() {
            let wanted = servers();
            if resolver.as_ref().is_none_or(|r| r.servers != wanted) {
                let fresh = Resolver::new(&wanted);
                if let Err(e) = &fresh.inner {
                    tracing::error!(error = %e, "no DNS resolver: upstream names stay unresolved");
                }
                resolver = Some(fresh);
                // Other servers may answer otherwise: every name is asked again.
                schedule.values_mut().for_each(|s| s.due = now);
            }
        }
        schedule.retain(|host, _| names.iter().any(|n| n.host == *host));
        let mut next = now + TICK;
        for name in &names {
            let s = schedule.entry(name.host.clone()).or_insert(Schedule {
                due: now,
                failures: 0,
                in_flight: None,
            });
            if s.in_flight.is_some_and(|t| now < t + 2 * LOOKUP_DEADLINE) {
                continue;
            }
            if s.due > now {
                next = next.min(s.due);
                continue;
            }
            let Some(resolver) = resolver.clone() else {
                continue;
            };
            s.in_flight = Some(now);
            let name = name.clone();
            lookups.spawn(async move {
                let result = resolver.lookup(&name.host).await;
                (name, result)
            });
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            Some(done) = lookups.join_next() => {
                if let Ok((name, result)) = done {
                    apply(&name, result, schedule.get_mut(&name.host));
                }
            }
            () = tokio::time::sleep_until(next) => {}
            () = WAKE.notified() => {}
        }
    }
}

/// Takes one lookup's result into `name` and its schedule.
fn apply(name: &Name, result: Answer, s: Option<&mut Schedule>) {
    let now = Instant::now();
    match result {
        Ok((addrs, ttl)) => {
            let count = addrs.len();
            let first = name.answer().is_none();
            if name.publish(addrs) {
                let what = if first {
                    "DNS answer"
                } else {
                    "DNS answer changed"
                };
                tracing::info!(host = %name.host, addresses = count, ttl = ?ttl, "{what}");
            }
            if let Some(s) = s {
                s.failures = 0;
                s.in_flight = None;
                s.due = now + clamp_ttl(ttl);
            }
        }
        Err(error) => {
            name.fail();
            let kept = name.answer().map_or(0, |a| a.len());
            let upstreams = name.upstreams();
            if let Some(s) = s {
                s.failures = s.failures.saturating_add(1);
                s.in_flight = None;
                s.due = now + retry_after(s.failures);
                if s.failures == 1 {
                    tracing::warn!(host = %name.host, ?upstreams, %error, kept, "DNS lookup failed; the last good answer stays");
                } else {
                    tracing::debug!(host = %name.host, %error, failures = s.failures, "DNS lookup failed again");
                }
            }
        }
    }
}

/// Waits, at most `limit`, until every name of `pools` has had a first lookup (answered or
/// failed), so that a reload swaps in a new upstream with its addresses rather than 503s.
/// Returns at once when there is none to wait for.
pub async fn settle(pools: &[UpstreamPool], limit: Duration) {
    let waiting = || pools.iter().any(UpstreamPool::awaiting_dns);
    if !waiting() {
        return;
    }
    WAKE.notify_one();
    let deadline = Instant::now() + limit;
    while waiting() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_clamped_to_one_second_and_five_minutes() {
        let s = Duration::from_secs;
        for (ttl, used) in [
            (Duration::ZERO, s(1)),
            (Duration::from_millis(300), s(1)),
            (s(1), s(1)),
            (s(30), s(30)),
            (s(300), s(300)),
            (s(301), s(300)),
            (s(86_400), s(300)),
        ] {
            assert_eq!(clamp_ttl(ttl), used, "ttl {ttl:?}");
        }
    }

    #[test]
    fn retries_back_off_from_one_second_to_thirty() {
        let waits: Vec<u64> = (1..=8).map(|f| retry_after(f).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
        assert_eq!(retry_after(0), MIN_RETRY);
    }
}

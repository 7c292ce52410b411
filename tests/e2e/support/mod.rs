//! Shared machinery of the end-to-end tests: an echo backend, the gateway process, a raw HTTP/1.1
//! client for requests an HTTP library would rewrite, and small polling helpers.

pub mod browser;
pub mod certs;
pub mod echo;
pub mod gateway;
pub mod idp;
pub mod nginx;
pub mod raw;
pub mod redis;

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use echo::{EchoBackend, Seen};
pub use gateway::{Gateway, ServerOptions, check, check_with};
pub use raw::{RawExchange, RawResponse};

/// A port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral range.
///
/// A port from the ephemeral range (what binding port 0 hands out) can be taken in the meantime
/// by any outgoing connection of a parallel test, and the gateway refuses to start on a port in
/// use. So: random ports under the range, checked by binding them.
pub fn free_port() -> u16 {
    free_port_with(0)
}

/// A free port `p` such that `p + offset` is free too, both below the ephemeral range (a Redis
/// cluster node also listens on its port + 10000 for the cluster bus).
pub fn free_port_with(offset: u16) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.max(12_000 + offset) - offset);
    // Ports handed out before in this process are not free, bound yet or not: a gateway's
    // listen and admin ports are picked before it binds either (two picks once came out equal).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for attempt in 0u32..1000 {
        let random = RandomState::new().hash_one((attempt, std::process::id()));
        let port = from + (random % u64::from(to - from)) as u16;
        let taken = |p: u16| given.contains(&p);
        let free = |p: u16| !taken(p) && StdTcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && (offset == 0 || free(port + offset)) {
            given.push(port);
            if offset != 0 {
                given.push(port + offset);
            }
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {from} and {to} (with +{offset} free too)");
}

/// An address where nothing listens: connecting to it is refused.
pub fn closed_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A TCP server that accepts connections and never reads from them nor answers: requests to it
/// run into the gateway's read timeout.
pub struct SilentBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentBackend {
    /// Binds 127.0.0.1:0 and starts accepting.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 must work");
        let addr = listener
            .local_addr()
            .expect("a bound socket has a local address");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                // Keep the connection open, never answer.
                held.push(stream);
            }
        });
        Self { addr, task }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SilentBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `probe` every 50 ms until it returns true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reqwest client for the gateway: no proxy from the environment, no redirects followed.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("building a reqwest client must work")
}

/// The values of a Prometheus sample: every line of `metrics` for `name` whose labels contain all
/// of `labels` (each like `route="app"`), with its value.
pub fn metric_samples(metrics: &str, name: &str, labels: &[&str]) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            if !(rest.is_empty() || rest.starts_with('{')) {
                return None;
            }
            if !labels.iter().all(|label| rest.contains(label)) {
                return None;
            }
            Some((series.to_string(), value.parse::<f64>().ok()?))
        })
        .collect()
}

/// The sum of the samples [`metric_samples`] finds.
pub fn metric_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metric_samples(metrics, name, labels)
        .iter()
        .map(|(_, value)| value)
        .sum()
}

/// The 1-based number of the first line of `text` that contains `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .map(|index| index + 1)
        .unwrap_or_else(|| panic!("test bug: {needle:?} is not in the YAML"))
}

/// The 1-based number of the `nth` (0-based) line of `text` that contains `needle`.
pub fn nth_line_of(text: &str, needle: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains(needle))
        .nth(nth)
        .map(|(index, _)| index + 1)
        .unwrap_or_else(|| panic!("test bug: {needle:?} is not {} times in the YAML", nth + 1))
}

//! Every metric the gateway exports, in the default Prometheus registry.
//!
//! Labels are bounded: route and upstream names come from the config, methods are folded to the
//! standard nine plus `other`, statuses to their class. Never a user, token or raw path.

use std::sync::LazyLock;

use http::Method;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The registry served at `/metrics`.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    // A name clash is a programming error caught by the first test run.
    if let Err(e) = REGISTRY.register(Box::new(metric.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    metric
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition"))
}

/// Requests answered, by route, method and status class.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_requests_total",
        "Requests answered, by route, method and status class.",
        &["route", "method", "status_class"],
    )
});

/// Request latency, by route.
pub static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "portcullis_request_duration_seconds",
        "Time from request headers read to response finished, by route.",
    )
    .buckets(vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]);
    register(HistogramVec::new(opts, &["route"]).expect("static metric definition"))
});

/// Upstream failures, by upstream and kind.
pub static UPSTREAM_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_upstream_errors_total",
        "Upstream failures, by upstream and kind (connect_refused, connect_timeout, read_timeout, reset, no_address, other).",
        &["upstream", "kind"],
    )
});

/// Failed lookups of upstream target names, by upstream.
pub static DNS_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_dns_failures_total",
        "Failed DNS lookups of upstream target names, by upstream (the last good answer keeps serving).",
        &["upstream"],
    )
});

/// Addresses each upstream balances over now.
pub static UPSTREAM_ADDRESSES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "portcullis_upstream_addresses",
        "Addresses each upstream balances over now (its IP targets and its names' last answers).",
        &["upstream"],
    )
});

/// Open downstream connections.
pub static OPEN_CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "portcullis_open_connections",
            "Client connections currently open.",
        )
        .expect("static metric definition"),
    )
});

/// Config reloads, by result.
pub static RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_config_reloads_total",
        "Config reloads, by result (success, failure).",
        &["result"],
    )
});

/// Client headers stripped, by reason.
pub static STRIPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_stripped_headers_total",
        "Client request headers removed before proxying, by reason (hop_by_hop, identity, forwarding).",
        &["reason"],
    )
});

/// The children of [`STRIPPED`] for hop-by-hop, identity and forwarding headers, resolved once:
/// a browser's `Connection: keep-alive` alone is stripped on nearly every request.
pub static STRIPPED_BY_REASON: LazyLock<[IntCounter; 3]> = LazyLock::new(|| {
    ["hop_by_hop", "identity", "forwarding"].map(|r| STRIPPED.with_label_values(&[r]))
});

/// Requests refused before routing, by reason.
pub static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_refused_requests_total",
        "Requests the gateway answered itself with an error, by route and reason.",
        &["route", "reason"],
    )
});

/// Access-log lines dropped because the writer fell behind.
pub static ACCESS_LOG_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "portcullis_access_log_dropped_total",
            "Access-log lines dropped because the log writer fell behind.",
        )
        .expect("static metric definition"),
    )
});

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition"))
}

/// Authentication and authorization decisions, by route, result and reason.
pub static AUTH_DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_auth_decisions_total",
        "Authentication and authorization decisions on protected routes, by route, result (allow, deny) and reason.",
        &["route", "result", "reason"],
    )
});

/// Verified-token cache lookups.
pub static TOKEN_CACHE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_token_cache_total",
        "Verified-token cache lookups, by result (hit, miss).",
        &["result"],
    )
});

/// Usable keys per provider.
pub static JWKS_KEYS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "portcullis_jwks_keys",
        "Usable signing keys in each provider's key set.",
        &["provider"],
    )
});

/// Key state per provider.
pub static JWKS_STATE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "portcullis_jwks_state",
        "Key state per provider: 0 missing, 1 stale (last refresh failed), 2 fresh.",
        &["provider"],
    )
});

/// Last successful key refresh per provider.
pub static JWKS_UPDATED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "portcullis_jwks_last_success_timestamp_seconds",
        "Unix time of each provider's last successful key refresh.",
        &["provider"],
    )
});

/// Key refreshes per provider and result.
pub static JWKS_REFRESHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_jwks_refreshes_total",
        "Key set fetches per provider, by result (success, failure).",
        &["provider", "result"],
    )
});

/// Browser sign-ins completed at the callback, by provider and result.
pub static SIGN_INS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_sign_ins_total",
        "Browser sign-ins finished at the callback, by provider and result (success or the failure reason).",
        &["provider", "result"],
    )
});

/// Session refreshes with the provider, by provider and result.
pub static SESSION_REFRESHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_session_refreshes_total",
        "Session token refreshes at the provider, by provider and result (success or the failure reason).",
        &["provider", "result"],
    )
});

/// Whether the Redis session store answers (1) or not (0); absent with the cookie store.
pub static STORE_UP: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "portcullis_session_store_up",
            "Whether the Redis session store answered the last call (1) or not (0).",
        )
        .expect("static metric definition"),
    )
});

/// Redis session store call latency, by operation.
pub static STORE_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "portcullis_session_store_latency_seconds",
        "Redis session store call latency, by operation (get, put, delete, index, lock, ping).",
    )
    .buckets(vec![
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    ]);
    register(HistogramVec::new(opts, &["op"]).expect("static metric definition"))
});

/// Redis session store failures, by operation and kind.
pub static STORE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_session_store_errors_total",
        "Redis session store failures, by operation and kind (connection, timeout, server).",
        &["op", "kind"],
    )
});

/// Back-channel logout requests, by result.
pub static BACKCHANNEL_LOGOUTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_backchannel_logouts_total",
        "OIDC back-channel logout requests, by result (success or the refusal reason).",
        &["result"],
    )
});

/// Days until each listener certificate expires (computed at each scrape).
pub static TLS_EXPIRY: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    register(
        prometheus::GaugeVec::new(
            Opts::new(
                "portcullis_tls_certificate_expiry_days",
                "Days until each TLS listener certificate expires (negative: expired), by listener and first DNS name.",
            ),
            &["listener", "name"],
        )
        .expect("static metric definition"),
    )
});

/// Client connections closed for a deadline, by kind: `idle` (no request head began within
/// `limits.idle_timeout`), `header` (a head not whole within `limits.header_timeout`: 408),
/// `body` (a proxied body not whole within `limits.body_timeout`), `handshake` (a TLS
/// handshake not done within `limits.header_timeout`), `write` (an answer left unread longer
/// than `limits.write_timeout`: the HTTP/1.1 connection closed, or the HTTP/2 stream reset).
pub static DEADLINES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "portcullis_deadline_closes_total",
        "Client connections (or HTTP/2 streams) closed for a deadline, by kind (idle, header, body, handshake, write).",
        &["kind"],
    )
});

/// The deadline kinds of [`DEADLINES`].
pub const DEADLINE_KINDS: [&str; 5] = ["idle", "header", "body", "handshake", "write"];

/// HTTP/2 connections sent `GOAWAY ENHANCE_YOUR_CALM` and closed for a flood of frames that
/// carry no request (PING, SETTINGS, PRIORITY, WINDOW_UPDATE, RST_STREAM, empty frames).
pub static HTTP2_FLOOD_CLOSES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "portcullis_http2_flood_closes_total",
            "HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM for a flood of frames that carry no request.",
        )
        .expect("static metric definition"),
    )
});

/// Client connections closed at once because `server.limits.max_connections` were open.
pub static CONNECTIONS_REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "portcullis_connections_refused_total",
            "Client connections closed at once because server.limits.max_connections were open.",
        )
        .expect("static metric definition"),
    )
});

/// The build: always 1, labelled with the crate version and the commit it was built from
/// (`PORTCULLIS_COMMIT` in the build's environment, e.g. set by the Docker build; `unknown`
/// otherwise: a build from a source tarball has no git to ask).
pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "portcullis_build_info",
        "Always 1; labelled with the version and the source commit of this build.",
        &["version", "commit"],
    )
});

/// Whether `/readyz` would answer 200 (computed at each scrape).
pub static READY: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "portcullis_ready",
            "Whether the gateway is ready (1) as /readyz says, or not (0): a provider a route uses has no keys, or the Redis store does not answer.",
        )
        .expect("static metric definition"),
    )
});

/// Publishes a newly configured provider's key series at 0 (no keys, state missing), with
/// its refresh counters at 0, so they exist from start-up and alerts on them fire.
pub fn provider_configured(name: &str) {
    JWKS_KEYS.with_label_values(&[name]).set(0);
    JWKS_STATE.with_label_values(&[name]).set(0);
    for result in ["success", "failure"] {
        JWKS_REFRESHES.with_label_values(&[name, result]);
    }
}

/// Removes the key series of a provider a reload dropped (its sign-in and session-refresh
/// counters stay: they are history, not state).
pub fn provider_removed(name: &str) {
    for gauge in [&*JWKS_KEYS, &*JWKS_STATE, &*JWKS_UPDATED] {
        // Absent series (e.g. no successful refresh yet) are not an error here.
        let _ = gauge.remove_label_values(&[name]);
    }
    for result in ["success", "failure"] {
        let _ = JWKS_REFRESHES.remove_label_values(&[name, result]);
    }
}

/// Registers every metric, so `/metrics` lists them before the first request.
pub fn init() {
    BUILD_INFO
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            option_env!("PORTCULLIS_COMMIT").unwrap_or("unknown"),
        ])
        .set(1);
    LazyLock::force(&READY);
    // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ... (Linux).
    #[cfg(target_os = "linux")]
    if let Err(e) = REGISTRY.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        tracing::error!(error = %e, "process metrics registration failed");
    }
    LazyLock::force(&REQUESTS);
    LazyLock::force(&DURATION);
    LazyLock::force(&UPSTREAM_ERRORS);
    LazyLock::force(&DNS_FAILURES);
    LazyLock::force(&UPSTREAM_ADDRESSES);
    LazyLock::force(&OPEN_CONNECTIONS);
    LazyLock::force(&RELOADS);
    LazyLock::force(&STRIPPED);
    LazyLock::force(&REFUSED);
    LazyLock::force(&ACCESS_LOG_DROPPED);
    LazyLock::force(&AUTH_DECISIONS);
    LazyLock::force(&TOKEN_CACHE);
    LazyLock::force(&JWKS_KEYS);
    LazyLock::force(&JWKS_STATE);
    LazyLock::force(&JWKS_UPDATED);
    LazyLock::force(&JWKS_REFRESHES);
    LazyLock::force(&SIGN_INS);
    LazyLock::force(&SESSION_REFRESHES);
    LazyLock::force(&BACKCHANNEL_LOGOUTS);
    LazyLock::force(&TLS_EXPIRY);
    LazyLock::force(&CONNECTIONS_REFUSED);
    LazyLock::force(&HTTP2_FLOOD_CLOSES);
    for kind in DEADLINE_KINDS {
        DEADLINES.with_label_values(&[kind]);
    }
    for result in ["success", "failure"] {
        RELOADS.with_label_values(&[result]);
    }
}

/// The method label: one of the standard methods, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    METHODS[method_index(method)]
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::CONNECT => 8,
        _ => 9,
    }
}

/// The status-class label.
pub fn status_class(status: u16) -> &'static str {
    CLASSES[class_index(status)]
}

fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "other",
];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// One route's request metrics, resolved once per config load: recording a request is an
/// array index and an atomic add, with no label hashing and no lock (`with_label_values`
/// hashes every label and takes the vector's lock on each call).
#[derive(Debug)]
pub struct RouteMetrics {
    route: String,
    duration: prometheus::Histogram,
    /// By method (as [`method_label`] folds it), then status class; made on first use, so
    /// only the combinations that happen are exported.
    requests: [[std::sync::OnceLock<IntCounter>; CLASSES.len()]; METHODS.len()],
    allowed: std::sync::OnceLock<IntCounter>,
}

impl RouteMetrics {
    /// The metrics of route `route`.
    pub fn new(route: &str) -> Self {
        Self {
            route: route.to_owned(),
            duration: DURATION.with_label_values(&[route]),
            requests: Default::default(),
            allowed: std::sync::OnceLock::new(),
        }
    }

    /// Records one finished request.
    pub fn observe(&self, method: &Method, status: u16, seconds: f64) {
        let (m, c) = (method_index(method), class_index(status));
        if let Some(counter) = self.requests.get(m).and_then(|row| row.get(c)) {
            counter
                .get_or_init(|| REQUESTS.with_label_values(&[&self.route, METHODS[m], CLASSES[c]]))
                .inc();
        }
        self.duration.observe(seconds);
    }

    /// Counts one request this route's authentication let through.
    pub fn allowed(&self) {
        self.allowed
            .get_or_init(|| AUTH_DECISIONS.with_label_values(&[&self.route, "allow", "ok"]))
            .inc();
    }
}

/// Records one finished request.
pub fn observe_request(route: &str, method: &Method, status: u16, seconds: f64) {
    REQUESTS
        .with_label_values(&[route, method_label(method), status_class(status)])
        .inc();
    DURATION.with_label_values(&[route]).observe(seconds);
}

/// The text exposition of every metric.
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = prometheus::Encoder::encode(&encoder, &REGISTRY.gather(), &mut out) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    out
}

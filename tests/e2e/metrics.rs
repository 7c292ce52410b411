//! What `/metrics` says before any request: the build, the process, readiness, and every
//! configured provider's key series — at 0 while its provider cannot be reached, with the real
//! count once its keys load, and gone once a reload drops the provider.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bearer::API_ROUTE;
use crate::support::idp::{Idp, IdpOptions, RESOURCE};
use crate::support::{EchoBackend, Gateway, metric_samples, wait_until};

/// The one value of `name{labels...}`; panics, showing the exposition, when there is not
/// exactly one series.
fn one(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    let samples = metric_samples(metrics, name, labels);
    match samples.as_slice() {
        [(_, value)] => *value,
        _ => panic!("expected one series {name}{labels:?}, found {samples:?}\n{metrics}"),
    }
}

/// Whether any series of `name` has the label `provider="<provider>"`.
fn has_provider(metrics: &str, name: &str, provider: &str) -> bool {
    !metric_samples(metrics, name, &[&format!("provider=\"{provider}\"")]).is_empty()
}

/// Upstream `app` at `backend`; providers `idp` (used by route `api`) and, with `spare`, the
/// unused `spare`, both at `issuer`.
fn config(issuer: &str, backend: &EchoBackend, spare: bool) -> String {
    let spare = if spare {
        format!("  spare:\n    issuer: \"{issuer}\"\n    audiences: [\"urn:portcullis:spare\"]\n")
    } else {
        String::new()
    };
    format!(
        "upstreams:
  app: {{targets: [\"{backend}\"], connect_timeout: 1s, read_timeout: 5s}}
providers:
  idp:
    issuer: \"{issuer}\"
    audiences: [\"{RESOURCE}\"]
{spare}routes:
{API_ROUTE}",
        backend = backend.addr(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_process_and_per_provider_key_metrics_exist_before_the_keys_load() {
    // A provider that is down when the gateway starts (its port known, for coming back later).
    let mut idp = Idp::start(IdpOptions::default()).await;
    let issuer = idp.issuer().to_string();
    idp.stop();
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::spawn(&config(&issuer, &backend, true));
    let client = gateway.client().clone();
    let metrics_url = gateway.admin_url("/metrics");
    wait_until(
        "the admin listener to answer /metrics",
        Duration::from_secs(20),
        || async { client.get(&metrics_url).send().await.is_ok() },
    )
    .await;
    let metrics = gateway.metrics().await;

    // The build.
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        one(&metrics, "portcullis_build_info", &[&version, "commit=\""]),
        1.0,
        "portcullis_build_info"
    );
    // The process (Linux): real values, not placeholders.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64();
    let started = one(&metrics, "process_start_time_seconds", &[]);
    assert!(
        started <= now + 1.0 && started > now - 120.0,
        "process_start_time_seconds {started} is the gateway's start (now {now})"
    );
    assert!(one(&metrics, "process_resident_memory_bytes", &[]) > 1_000_000.0);
    assert!(one(&metrics, "process_virtual_memory_bytes", &[]) > 1_000_000.0);
    let open = one(&metrics, "process_open_fds", &[]);
    let max = one(&metrics, "process_max_fds", &[]);
    assert!(open >= 3.0 && open < max, "process_open_fds {open} / {max}");
    assert!(one(&metrics, "process_cpu_seconds_total", &[]) >= 0.0);

    // Every configured provider, used or not, is there at 0 before any key loads.
    for provider in ["idp", "spare"] {
        let label = format!("provider=\"{provider}\"");
        assert_eq!(
            one(&metrics, "portcullis_jwks_keys", &[&label]),
            0.0,
            "portcullis_jwks_keys{{{label}}} before the provider answers"
        );
        assert_eq!(
            one(&metrics, "portcullis_jwks_state", &[&label]),
            0.0,
            "portcullis_jwks_state{{{label}}} (missing) before the provider answers"
        );
        assert!(
            has_provider(&metrics, "portcullis_jwks_refreshes_total", provider),
            "the refresh counters of {provider} exist from start-up\n{metrics}"
        );
    }
    assert_eq!(
        one(&metrics, "portcullis_ready", &[]),
        0.0,
        "not ready without the keys of the provider route api uses"
    );

    // The provider comes up: the retry after the failed first fetch (15 s) loads the keys.
    idp.restart().await;
    wait_until(
        "both providers' keys to load",
        Duration::from_secs(40),
        || async {
            let metrics = gateway.metrics().await;
            ["idp", "spare"].iter().all(|p| {
                metric_samples(
                    &metrics,
                    "portcullis_jwks_keys",
                    &[&format!("provider=\"{p}\"")],
                )
                .first()
                .is_some_and(|(_, v)| *v > 0.0)
            })
        },
    )
    .await;
    let metrics = gateway.metrics().await;
    for provider in ["idp", "spare"] {
        let label = format!("provider=\"{provider}\"");
        assert_eq!(
            one(&metrics, "portcullis_jwks_keys", &[&label]),
            3.0,
            "rsa-1, ec-1 and ed-1 of {provider}"
        );
        assert_eq!(one(&metrics, "portcullis_jwks_state", &[&label]), 2.0);
        let updated = one(
            &metrics,
            "portcullis_jwks_last_success_timestamp_seconds",
            &[&label],
        );
        assert!(
            (now - 5.0..now + 120.0).contains(&updated),
            "last success {updated}"
        );
    }
    assert_eq!(one(&metrics, "portcullis_ready", &[]), 1.0, "ready");

    // A reload that drops `spare`: its key series go; `idp`'s stay.
    gateway.rewrite_config(&config(&issuer, &backend, false));
    gateway.reload();
    wait_until(
        "the spare provider's key series to go after the reload",
        Duration::from_secs(20),
        || async {
            let metrics = gateway.metrics().await;
            !has_provider(&metrics, "portcullis_jwks_keys", "spare")
        },
    )
    .await;
    let metrics = gateway.metrics().await;
    for name in [
        "portcullis_jwks_state",
        "portcullis_jwks_last_success_timestamp_seconds",
        "portcullis_jwks_refreshes_total",
    ] {
        assert!(
            !has_provider(&metrics, name, "spare"),
            "{name} of the dropped provider\n{metrics}"
        );
    }
    assert_eq!(
        one(&metrics, "portcullis_jwks_keys", &[r#"provider="idp""#]),
        3.0,
        "the provider that stays keeps its keys"
    );
    assert_eq!(
        one(
            &metrics,
            "portcullis_config_reloads_total",
            &[r#"result="success""#]
        ),
        1.0
    );
}

//! Upstream failures (502, 504), retry past a dead target, metrics, and the access log.

use std::time::Duration;

use serde_json::json;

use crate::support::raw::raw_exchange;
use crate::support::{
    EchoBackend, Gateway, SilentBackend, closed_addr, metric_samples, metric_sum, wait_until,
};

/// A client that opens a new connection per request, so each request's outcome stands alone
/// (connection reuse after an error response is checked on its own, in
/// `error_responses_close_or_keep_the_connection`).
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("building a reqwest client must work")
}

/// GETs `path` with `Host: app.test` on a new connection; returns status, content-type and body.
async fn get(gateway: &Gateway, path: &str) -> (u16, String, String) {
    let response = fresh_client()
        .get(gateway.url(path))
        .header("host", "app.test")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} failed: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.text().await.expect("reading the body");
    (status, content_type, body)
}

fn assert_json_error(
    case: &str,
    got: &(u16, String, String),
    status: u16,
    body: serde_json::Value,
) {
    assert_eq!(got.0, status, "{case}: status; body {}", got.2);
    assert!(
        got.1.starts_with("application/json"),
        "{case}: content-type {:?}",
        got.1
    );
    let mut parsed: serde_json::Value = serde_json::from_str(&got.2)
        .unwrap_or_else(|e| panic!("{case}: body is not JSON ({e}): {}", got.2));
    let id = parsed.as_object_mut().and_then(|o| o.remove("request_id"));
    assert!(
        id.as_ref()
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.len() == 32),
        "{case}: request id {id:?}"
    );
    assert_eq!(parsed, body, "{case}: body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_502_and_504() {
    let slow = EchoBackend::start("slow").await;
    let silent = SilentBackend::start().await;
    let down = closed_addr();
    let gateway = Gateway::start(&format!(
        "upstreams:
  down: {{targets: [\"{down}\"], connect_timeout: 1s, read_timeout: 2s, fail_timeout: 10s}}
  slow: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 500ms}}
  silent: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 500ms}}
routes:
  - name: down
    match: {{path_prefix: /down}}
    upstream: down
    auth: public
  - name: slow
    match: {{path_prefix: /slow}}
    upstream: slow
    auth: public
  - name: silent
    match: {{path_prefix: /silent}}
    upstream: silent
    auth: public
",
        slow.addr(),
        silent.addr()
    ))
    .await;

    let bad_gateway = json!({"error": "bad_gateway", "message": "upstream unavailable"});
    let timed_out = json!({"error": "gateway_timeout", "message": "upstream timed out"});
    assert_json_error(
        "backend down (connect refused)",
        &get(&gateway, "/down/x").await,
        502,
        bad_gateway.clone(),
    );
    assert_json_error(
        "backend down, second request",
        &get(&gateway, "/down/y").await,
        502,
        bad_gateway,
    );
    assert_json_error(
        "backend slower than read_timeout",
        &get(&gateway, "/slow?ms=3000").await,
        504,
        timed_out.clone(),
    );
    assert_json_error(
        "backend that never answers",
        &get(&gateway, "/silent").await,
        504,
        timed_out,
    );
    // Within the read timeout the slow backend is fine.
    let quick = get(&gateway, "/slow?ms=10").await;
    assert_eq!(
        quick.0, 200,
        "slow backend within read_timeout: {}",
        quick.2
    );

    // The failures are counted per upstream.
    wait_until(
        "upstream error metrics",
        Duration::from_secs(10),
        || async {
            let metrics = gateway.metrics().await;
            metric_sum(
                &metrics,
                "portcullis_upstream_errors_total",
                &["upstream=\"down\""],
            ) >= 2.0
                && metric_sum(
                    &metrics,
                    "portcullis_upstream_errors_total",
                    &["upstream=\"slow\""],
                ) >= 1.0
                && metric_sum(
                    &metrics,
                    "portcullis_upstream_errors_total",
                    &["upstream=\"silent\""],
                ) >= 1.0
        },
    )
    .await;
    let metrics = gateway.metrics().await;
    for (series, _) in metric_samples(&metrics, "portcullis_upstream_errors_total", &[]) {
        assert!(
            series.contains("kind=\""),
            "upstream error series without a kind label: {series}"
        );
    }
}

/// After a 502 the gateway either serves the next request on the same connection, or says
/// `Connection: close` on the 502. Answering `Connection: keep-alive` and then closing makes
/// keep-alive clients fail their next request on that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_responses_close_or_keep_the_connection() {
    let down = closed_addr();
    let gateway = Gateway::start(&format!(
        "upstreams:
  down: {{targets: [\"{down}\"], connect_timeout: 1s, read_timeout: 2s}}
routes:
  - name: down
    upstream: down
    auth: public
"
    ))
    .await;
    let two = b"GET /down/x HTTP/1.1\r\nHost: app.test\r\n\r\nGET /down/y HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let exchange = raw_exchange(gateway.addr(), two, Duration::from_secs(5)).await;
    let statuses: Vec<u16> = exchange.responses.iter().map(|r| r.status).collect();
    let first_closes = exchange.responses.first().is_some_and(|r| {
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    });
    assert!(
        statuses == [502, 502] || (statuses == [502] && first_closes && exchange.closed),
        "two requests on one connection to a dead upstream: want two 502s, or one 502 with \
         `Connection: close`; got {statuses:?}, closed: {}, raw:\n{}",
        exchange.closed,
        String::from_utf8_lossy(&exchange.raw)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_target_is_skipped_and_retried() {
    let live = EchoBackend::start("live").await;
    let dead = closed_addr();
    let gateway = Gateway::start(&format!(
        "upstreams:
  app: {{targets: [\"{dead}\", \"{}\"], connect_timeout: 1s, read_timeout: 5s, fail_timeout: 10s}}
routes:
  - name: app
    upstream: app
    auth: public
",
        live.addr()
    ))
    .await;

    let mut failures = Vec::new();
    for i in 0..20 {
        let (status, _, body) = get(&gateway, &format!("/rr/{i}")).await;
        if status != 200 {
            failures.push(format!("request {i}: {status} {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "requests failed with one dead target:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        live.count(),
        20,
        "every request reached the live target once"
    );

    // A reload keeps what the gateway learnt: the dead target is not tried again before its
    // fail_timeout, so no new connection error is counted.
    let refused = |m: &str| {
        crate::support::metric_sum(
            m,
            "portcullis_upstream_errors_total",
            &["upstream=\"app\"", "kind=\"connect_refused\""],
        )
    };
    let before = refused(&gateway.metrics().await);
    assert!(before >= 1.0, "the dead target was tried once");
    gateway.reload();
    crate::support::wait_until("the reload", Duration::from_secs(10), || async {
        gateway
            .metrics()
            .await
            .contains("portcullis_config_reloads_total{result=\"success\"} 1")
    })
    .await;
    for i in 0..20 {
        let (status, _, _) = get(&gateway, &format!("/after/{i}")).await;
        assert_eq!(status, 200);
    }
    assert_eq!(live.count(), 40);
    assert_eq!(
        refused(&gateway.metrics().await),
        before,
        "no request tried the dead target after the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_per_route() {
    let backend = EchoBackend::start("app").await;
    let down = closed_addr();
    let gateway = Gateway::start(&format!(
        "upstreams:
  app: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}
  down: {{targets: [\"{down}\"], connect_timeout: 1s, read_timeout: 5s}}
routes:
  - name: broken
    match: {{host: app.test, path_prefix: /broken}}
    upstream: down
    auth: public
  - name: web
    match: {{host: app.test}}
    upstream: app
    auth: public
",
        backend.addr()
    ))
    .await;

    for i in 0..3 {
        assert_eq!(
            get(&gateway, &format!("/page/{i}")).await.0,
            200,
            "GET /page/{i}"
        );
    }
    let no_route = gateway
        .client()
        .get(gateway.url("/x"))
        .header("host", "nothing.test")
        .send()
        .await
        .expect("GET with an unknown host");
    assert_eq!(no_route.status(), 404, "unknown host");
    assert_eq!(get(&gateway, "/broken").await.0, 502, "GET /broken");

    wait_until("request metrics", Duration::from_secs(10), || async {
        let metrics = gateway.metrics().await;
        metric_sum(&metrics, "portcullis_requests_total", &["route=\"web\""]) >= 3.0
            && metric_sum(&metrics, "portcullis_requests_total", &["route=\"none\""]) >= 1.0
            && metric_sum(&metrics, "portcullis_requests_total", &["route=\"broken\""]) >= 1.0
            && metric_sum(
                &metrics,
                "portcullis_upstream_errors_total",
                &["upstream=\"down\""],
            ) >= 1.0
    })
    .await;
    let metrics = gateway.metrics().await;
    let web = metric_samples(&metrics, "portcullis_requests_total", &["route=\"web\""]);
    assert_eq!(
        web.iter().map(|(_, v)| v).sum::<f64>(),
        3.0,
        "portcullis_requests_total for route web: {web:?}"
    );
    for (series, _) in &web {
        assert!(
            series.contains("method=\"GET\"") && series.contains("status_class=\""),
            "requests_total labels: {series}"
        );
    }
    assert!(
        !metric_samples(
            &metrics,
            "portcullis_request_duration_seconds_bucket",
            &["route=\"web\""]
        )
        .is_empty(),
        "no request duration histogram for route web:\n{metrics}"
    );
    assert!(
        !metric_samples(&metrics, "portcullis_open_connections", &[]).is_empty(),
        "no portcullis_open_connections gauge:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_one_json_line_per_request() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&format!(
        "upstreams:
  app: {{targets: [\"{}\"], connect_timeout: 1s, read_timeout: 5s}}
routes:
  - name: logged
    match: {{host: app.test, path_prefix: /logged}}
    upstream: app
    auth: public
",
        backend.addr()
    ))
    .await;

    let paths = ["/logged/a", "/logged/b", "/nowhere"];
    for path in paths {
        let response = gateway
            .client()
            .get(gateway.url(&format!("{path}?token=SECRETQUERY&x=1")))
            .header("host", "app.test")
            .header("cookie", "sid=SECRETCOOKIE; portcullis=SECRETSESSION")
            .header("authorization", "Bearer SECRETTOKEN")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        response.bytes().await.expect("reading the body");
    }

    let logged = |stdout: &str| -> Vec<serde_json::Value> {
        stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|entry| {
                entry["path"]
                    .as_str()
                    .is_some_and(|p| paths.iter().any(|want| p.starts_with(want)))
            })
            .collect()
    };
    wait_until(
        "three access log lines on stdout",
        Duration::from_secs(10),
        || async { logged(&gateway.stdout()).len() >= paths.len() },
    )
    .await;
    let stdout = gateway.stdout();

    for line in stdout.lines().filter(|line| !line.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert!(
            entry.is_object(),
            "stdout line is not a JSON object: {line}"
        );
        for secret in [
            "SECRETQUERY",
            "SECRETCOOKIE",
            "SECRETSESSION",
            "SECRETTOKEN",
            "token=",
        ] {
            assert!(
                !line.contains(secret),
                "access log line leaks {secret}: {line}"
            );
        }
    }
    let entries = logged(&stdout);
    assert_eq!(
        entries.len(),
        paths.len(),
        "one access log line per request, got:\n{stdout}"
    );
    for (entry, path) in entries.iter().zip(paths) {
        for key in [
            "ts",
            "route",
            "method",
            "host",
            "path",
            "status",
            "duration_ms",
            "upstream",
            "client",
        ] {
            assert!(
                entry.get(key).is_some(),
                "access log line for {path} has no {key:?}: {entry}"
            );
        }
        assert_eq!(entry["path"], path, "logged path (no query string)");
        assert_eq!(entry["method"], "GET", "logged method for {path}");
        assert_eq!(entry["host"], "app.test", "logged host for {path}");
        assert_eq!(entry["client"], "127.0.0.1", "logged client for {path}");
    }
    assert_eq!(entries[0]["route"], "logged", "route of /logged/a");
    assert_eq!(entries[0]["status"], 200, "status of /logged/a");
    assert_eq!(entries[2]["route"], "none", "route of an unmatched request");
    assert_eq!(entries[2]["status"], 404, "status of an unmatched request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_health_endpoints() {
    let backend = EchoBackend::start("app").await;
    let gateway = Gateway::start(&format!(
        "upstreams:
  app: {{targets: [\"{}\"]}}
routes:
  - name: app
    upstream: app
    auth: public
",
        backend.addr()
    ))
    .await;
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = gateway
            .client()
            .get(gateway.admin_url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the admin listener: {e}"));
        assert_eq!(response.status(), 200, "admin {path} status");
        let text = response.text().await.expect("reading the admin body");
        assert_eq!(text.trim_end(), body, "admin {path} body");
    }
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("# TYPE portcullis_"),
        "admin /metrics is not Prometheus text with portcullis metrics:\n{metrics}"
    );
    assert_eq!(backend.count(), 0, "admin requests never reach a backend");
}

//! Upstream targets by DNS name, against a real DNS server: dnsmasq on a loopback port, started
//! here, whose answer the test changes (dnsmasq re-reads its hosts file on SIGHUP).
//!
//! Traffic follows a changed answer without a gateway reload; with the server gone the last good
//! answer keeps serving while `portcullis_dns_failures_total` grows; a name that never resolved
//! answers 503; an upstream waiting for its first answer holds `/readyz` back.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tempfile::TempDir;

use crate::support::{
    EchoBackend, Gateway, ServerOptions, free_port, http_client, metric_sum, wait_until,
};

/// dnsmasq as a child process: authoritative for `.test`, answering from a hosts file with a
/// 1 s TTL, nothing else (no upstream servers, no /etc/hosts).
struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    hosts: PathBuf,
    dir: TempDir,
}

fn dnsmasq_binary() -> &'static str {
    if Path::new("/usr/sbin/dnsmasq").exists() {
        "/usr/sbin/dnsmasq"
    } else {
        "dnsmasq"
    }
}

impl Dnsmasq {
    /// Starts it answering `hosts` (lines of `IP name`) on a free loopback port, once it
    /// answers for `ready_name`.
    async fn start(hosts: &str, ready_name: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // dnsmasq started as root reads its hosts file again as `nobody` on SIGHUP.
        let open = |p: &Path, mode| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .expect("chmod in the temporary directory");
        };
        open(dir.path(), 0o755);
        let file = dir.path().join("hosts");
        std::fs::write(&file, hosts).expect("writing the hosts file");
        open(&file, 0o644);
        for _ in 0..20 {
            let port = free_port();
            if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let log = std::fs::File::create(dir.path().join("dnsmasq.log")).expect("log file");
            let child = Command::new(dnsmasq_binary())
                .args([
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    &format!("--port={port}"),
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    &format!("--addn-hosts={}", file.display()),
                    "--local=/test/",
                    "--local-ttl=1",
                    &format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()),
                    "--log-queries",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("dnsmasq must be installed (tests/setup.sh installs dnsmasq-base)");
            let mut server = Self {
                child: Some(child),
                port,
                hosts: file.clone(),
                dir,
            };
            let answered = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if server.answer(ready_name).await.is_some() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
            if answered.is_err() {
                let log = std::fs::read_to_string(server.dir.path().join("dnsmasq.log"))
                    .unwrap_or_default();
                server.stop();
                panic!("dnsmasq did not answer within 5 s; its log:\n{log}");
            }
            return server;
        }
        panic!("no free UDP and TCP port for dnsmasq on 127.0.0.1");
    }

    /// `127.0.0.1:<port>`.
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The IPv4 addresses it answers for `name` now, asked directly (no cache).
    async fn answer(&self, name: &str) -> Option<Vec<IpAddr>> {
        let mut ns = NameServerConfig::udp(self.addr().ip());
        for c in &mut ns.connections {
            c.port = self.port;
        }
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().cache_size = 0;
        builder.options_mut().timeout = Duration::from_millis(500);
        builder.options_mut().attempts = 1;
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4Only;
        let resolver = builder.build().ok()?;
        let lookup = resolver.lookup_ip(name).await.ok()?;
        let mut ips: Vec<IpAddr> = lookup.iter().collect();
        ips.sort();
        Some(ips)
    }

    /// Replaces the hosts file and makes dnsmasq read it (SIGHUP); returns once it answers
    /// `name` with `ip`.
    async fn change(&self, hosts: &str, name: &str, ip: IpAddr) {
        let tmp = self.hosts.with_extension("new");
        std::fs::write(&tmp, hosts).expect("writing the new hosts file");
        std::fs::rename(&tmp, &self.hosts).expect("replacing the hosts file");
        let pid = self.child.as_ref().map(Child::id).expect("dnsmasq runs");
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -HUP dnsmasq");
        wait_until(
            &format!("dnsmasq to answer {name} with {ip}"),
            Duration::from_secs(5),
            || async { self.answer(name).await == Some(vec![ip]) },
        )
        .await;
    }

    /// Kills it: nothing answers on its port any more.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two echo backends on the same port: `a` on 127.0.0.1, `b` on 127.0.0.2.
async fn backends_on_one_port() -> (EchoBackend, EchoBackend, u16) {
    for _ in 0..20 {
        let port = free_port();
        let Ok(a) = EchoBackend::start_on("a", SocketAddr::from(([127, 0, 0, 1], port))).await
        else {
            continue;
        };
        if let Ok(b) = EchoBackend::start_on("b", SocketAddr::from(([127, 0, 0, 2], port))).await {
            return (a, b, port);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

/// GETs `path` on a new connection (so no kept-alive connection hides a change of address);
/// returns the status and the JSON body.
async fn get(gateway: &Gateway, path: &str) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("a client");
    let response = client
        .get(gateway.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}

/// The backend that answered, from the echo body.
fn backend_of(body: &serde_json::Value) -> &str {
    body.get("backend").and_then(|b| b.as_str()).unwrap_or("")
}

const ROUTES: &str = "routes:
  - name: app
    match: {path_prefix: /app}
    upstream: app
    auth: public
  - name: never
    match: {path_prefix: /never}
    upstream: never
    auth: public
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_follows_a_changed_dns_answer_and_survives_the_server_going_away() {
    let (a, b, port) = backends_on_one_port().await;
    let mut dns = Dnsmasq::start("127.0.0.1 app.test\n", "app.test").await;
    let options = ServerOptions {
        extra_server: format!("  dns:\n    servers: [\"{}\"]\n", dns.addr()),
        ..ServerOptions::default()
    };
    let gateway = Gateway::start_with(
        options,
        &format!(
            "upstreams:
  app: {{targets: [\"app.test:{port}\"], connect_timeout: 1s}}
  never: {{targets: [\"never.test:{port}\"], connect_timeout: 1s}}
{ROUTES}"
        ),
    )
    .await;

    // Ready means every name had its first lookup: the gateway serves app.test at once.
    for i in 0..6 {
        let (status, body) = get(&gateway, &format!("/app/{i}")).await;
        assert_eq!(
            (status, backend_of(&body)),
            (200, "a"),
            "request {i}: {body}"
        );
    }
    assert_eq!(b.count(), 0, "nothing went to 127.0.0.2 yet");

    // A name that never resolved: 503, as a JSON error with the request id, and counted.
    let (status, body) = get(&gateway, "/never/x").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "service_unavailable", "{body}");
    assert_eq!(
        body["request_id"].as_str().map(str::len),
        Some(32),
        "{body}"
    );
    let metrics = gateway.metrics().await;
    let sample = |m: &str, name: &str, labels: &[&str]| metric_sum(m, name, labels);
    assert_eq!(
        sample(
            &metrics,
            "portcullis_upstream_errors_total",
            &["upstream=\"never\"", "kind=\"no_address\""]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "portcullis_upstream_addresses",
            &["upstream=\"app\""]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "portcullis_upstream_addresses",
            &["upstream=\"never\""]
        ),
        0.0
    );
    assert!(
        sample(
            &metrics,
            "portcullis_dns_failures_total",
            &["upstream=\"never\""]
        ) >= 1.0,
        "NXDOMAIN for never.test is a failed lookup:\n{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "portcullis_dns_failures_total",
            &["upstream=\"app\""]
        ),
        0.0
    );

    // The answer changes: requests follow within a TTL (1 s) or two, without a reload.
    let to_b: IpAddr = [127, 0, 0, 2].into();
    dns.change("127.0.0.2 app.test\n127.0.0.1 new.test\n", "app.test", to_b)
        .await;
    wait_until(
        "requests to reach backend b",
        Duration::from_secs(10),
        || async { backend_of(&get(&gateway, "/app/probe").await.1) == "b" },
    )
    .await;
    let a_before = a.count();
    for i in 0..6 {
        let (status, body) = get(&gateway, &format!("/app/after/{i}")).await;
        assert_eq!(
            (status, backend_of(&body)),
            (200, "b"),
            "request {i}: {body}"
        );
    }
    assert_eq!(a.count(), a_before, "no request went to the old address");
    let metrics = gateway.metrics().await;
    assert_eq!(
        sample(&metrics, "portcullis_config_reloads_total", &[]),
        0.0,
        "no reload was involved"
    );

    // A reload that adds an upstream by name swaps it in with its first answer, not with 503s.
    gateway.rewrite_config(&format!(
        "upstreams:
  app: {{targets: [\"app.test:{port}\"], connect_timeout: 1s}}
  never: {{targets: [\"never.test:{port}\"], connect_timeout: 1s}}
  new: {{targets: [\"new.test:{port}\"], connect_timeout: 1s}}
{ROUTES}  - name: new
    match: {{path_prefix: /new}}
    upstream: new
    auth: public
"
    ));
    gateway.reload();
    wait_until("the reload to succeed", Duration::from_secs(10), || async {
        let m = gateway.metrics().await;
        sample(
            &m,
            "portcullis_config_reloads_total",
            &["result=\"success\""],
        ) == 1.0
    })
    .await;
    let (status, body) = get(&gateway, "/new/first").await;
    assert_eq!((status, backend_of(&body)), (200, "a"), "{body}");

    // The server goes away: lookups fail and are counted, the last good answer keeps serving.
    let failures = |m: &str| sample(m, "portcullis_dns_failures_total", &["upstream=\"app\""]);
    let before = failures(&gateway.metrics().await);
    dns.stop();
    wait_until(
        "portcullis_dns_failures_total{upstream=\"app\"} to grow",
        Duration::from_secs(15),
        || async { failures(&gateway.metrics().await) > before },
    )
    .await;
    for i in 0..6 {
        let (status, body) = get(&gateway, &format!("/app/stale/{i}")).await;
        assert_eq!(
            (status, backend_of(&body)),
            (200, "b"),
            "request {i}: {body}"
        );
    }
    let metrics = gateway.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "portcullis_upstream_addresses",
            &["upstream=\"app\""]
        ),
        1.0
    );
    assert!(
        gateway.stderr().contains("DNS lookup failed"),
        "the failure is logged:\n{}",
        gateway.stderr()
    );
    let (status, _) = get(&gateway, "/never/again").await;
    assert_eq!(status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_waiting_for_its_first_answer_is_not_ready_and_answers_503() {
    // A DNS server that takes queries and never answers: the first lookup runs to its
    // timeouts (two attempts of 2 s).
    let silent = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let backend = EchoBackend::start("fixed").await;
    let gateway = Gateway::spawn_with(
        ServerOptions {
            extra_server: format!(
                "  dns:\n    servers: [\"{}\"]\n",
                silent.local_addr().expect("bound")
            ),
            ..ServerOptions::default()
        },
        &format!(
            "upstreams:
  app: {{targets: [\"app.test:{}\"]}}
  fixed: {{targets: [\"{}\"]}}
routes:
  - name: app
    match: {{path_prefix: /app}}
    upstream: app
    auth: public
  - name: fixed
    match: {{path_prefix: /fixed}}
    upstream: fixed
    auth: public
",
            backend.addr().port(),
            backend.addr()
        ),
    );
    let client = http_client();
    let readyz = || async {
        let response = client.get(gateway.admin_url("/readyz")).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    };
    wait_until(
        "the admin listener to answer",
        Duration::from_secs(20),
        || async { readyz().await.is_some() },
    )
    .await;
    let (status, body) = readyz().await.expect("readyz answers");
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body.trim_end(),
        "not ready: no address yet for upstream(s) app"
    );
    // Meanwhile, its routes answer 503 and the upstream with an IP target serves.
    wait_until(
        "the public listener to accept",
        Duration::from_secs(10),
        || async { tokio::net::TcpStream::connect(gateway.addr()).await.is_ok() },
    )
    .await;
    let (status, body) = get(&gateway, "/app/x").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "service_unavailable", "{body}");
    let (status, body) = get(&gateway, "/fixed/x").await;
    assert_eq!((status, backend_of(&body)), (200, "fixed"), "{body}");
    // Once the first lookup has failed, the gateway is ready (the name's routes still 503):
    // the name is as broken for every instance, so holding this one back would help nobody.
    wait_until("readyz to say ready", Duration::from_secs(20), || async {
        readyz().await.is_some_and(|(s, _)| s == 200)
    })
    .await;
    let metrics = gateway.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "portcullis_dns_failures_total",
            &["upstream=\"app\""]
        ) >= 1.0,
        "{metrics}"
    );
    let (status, _) = get(&gateway, "/app/y").await;
    assert_eq!(status, 503);
    drop(silent);
}

//! The gateway under test, as a child process of the test.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_port, http_client, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// How long the gateway may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The `server:` settings a test may choose; the rest is fixed (free ports, files in the
/// gateway's temporary directory, `threads: 2`).
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `server.trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// The public listener; `None`: a free port on 127.0.0.1. Set it when the address must be
    /// known before the gateway starts (a provider's redirect URI names it).
    pub listen: Option<SocketAddr>,
    /// The admin listener; `None`: a free port on 127.0.0.1.
    pub admin: Option<SocketAddr>,
    /// More `server.listen` entries, as YAML list items indented by four spaces (TLS listeners,
    /// redirect listeners).
    pub extra_listeners: String,
    /// More `server:` keys, as YAML lines indented by two spaces (`limits:` …).
    pub extra_server: String,
    /// `server.drain_timeout`; `None`: `1s`.
    pub drain_timeout: Option<String>,
}

/// A running gateway; killed (SIGTERM, then SIGKILL) when dropped.
pub struct Gateway {
    child: Child,
    dir: TempDir,
    config_path: PathBuf,
    listen: SocketAddr,
    admin: SocketAddr,
    server_block: String,
    client: reqwest::Client,
}

impl Gateway {
    /// Starts a gateway with default server options; `rest` is the YAML after `server:`
    /// (`upstreams:`, `identity:`, `routes:` ...).
    pub async fn start(rest: &str) -> Self {
        Self::start_with(ServerOptions::default(), rest).await
    }

    /// Starts a gateway with `options`; see [`Gateway::start`].
    pub async fn start_with(options: ServerOptions, rest: &str) -> Self {
        let mut gateway = Self::spawn_with(options, rest);
        gateway.wait_ready().await;
        gateway
    }

    /// Spawns a gateway without waiting for it to become ready (for tests of readiness itself).
    pub fn spawn(rest: &str) -> Self {
        Self::spawn_with(ServerOptions::default(), rest)
    }

    /// Spawns a gateway with `options` without waiting for it to become ready.
    pub fn spawn_with(options: ServerOptions, rest: &str) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory must work");
        let listen = options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
        let admin = options
            .admin
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
        let trusted = options
            .trusted_proxies
            .iter()
            .map(|cidr| format!("{cidr:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let server_block = format!(
            "server:\n  listen:\n    - \"{listen}\"\n{extra}  admin: \"{admin}\"\n  trusted_proxies: [{trusted}]\n  threads: 2\n  drain_timeout: {drain}\n  pid_file: \"{pid}\"\n  upgrade_sock: \"{sock}\"\n{extra_server}",
            extra = options.extra_listeners,
            extra_server = options.extra_server,
            drain = options.drain_timeout.as_deref().unwrap_or("1s"),
            pid = dir.path().join("portcullis.pid").display(),
            sock = dir.path().join("portcullis.sock").display(),
        );
        let config_path = dir.path().join("portcullis.yaml");
        std::fs::write(&config_path, format!("{server_block}{rest}"))
            .expect("writing the config must work");
        let stdout = File::create(dir.path().join("stdout.log")).expect("creating stdout.log");
        let stderr = File::create(dir.path().join("stderr.log")).expect("creating stderr.log");
        let child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawning the portcullis binary must work");
        Self {
            child,
            dir,
            config_path,
            listen,
            admin,
            server_block,
            client: http_client(),
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let readyz = self.admin_url("/readyz");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the gateway exited before becoming ready ({status}); config:\n{}\nstderr:\n{}",
                    self.config(),
                    self.stderr()
                );
            }
            let ready = matches!(
                self.client.get(&readyz).send().await,
                Ok(response) if response.status() == 200
            );
            if ready && tokio::net::TcpStream::connect(self.listen).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway was not ready within {READY_TIMEOUT:?}; config:\n{}\nstderr:\n{}",
                self.config(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The config file's path.
    pub fn config_path(&self) -> PathBuf {
        self.config_path.clone()
    }

    /// The public listener.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// `http://<listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// `http://<admin><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// A client for this gateway (no proxy, no redirects).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The config file's current text.
    pub fn config(&self) -> String {
        std::fs::read_to_string(&self.config_path).unwrap_or_default()
    }

    /// Sends SIGHUP.
    pub fn reload(&self) {
        self.signal("HUP");
    }

    /// Rewrites the config with the same `server:` block and a new `rest`.
    pub fn rewrite_config(&self, rest: &str) {
        self.write_raw_config(&format!("{}{rest}", self.server_block));
    }

    /// Replaces the config file with `text` as is.
    pub fn write_raw_config(&self, text: &str) {
        // Write then rename, so the gateway never reads a half-written file.
        let tmp = self.dir.path().join("portcullis.yaml.new");
        std::fs::write(&tmp, text).expect("writing the new config must work");
        std::fs::rename(&tmp, &self.config_path).expect("renaming the new config must work");
    }

    /// What the gateway wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// What the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Polls stderr until it contains `needle`.
    pub async fn wait_for_stderr(&self, needle: &str, timeout: Duration) {
        let what = format!("gateway stderr to contain {needle:?}");
        wait_until(&what, timeout, || async { self.stderr().contains(needle) }).await;
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics on the admin listener must answer");
        assert_eq!(response.status(), 200, "GET /metrics status");
        response.text().await.expect("reading /metrics")
    }

    /// pingora's graceful upgrade: starts a second process with `--upgrade` on the same config,
    /// lets it ask for the listening sockets, then sends SIGQUIT to the running one, which hands
    /// them over and drains. Returns the old process's exit status; the new one is then `self`.
    pub async fn upgrade(&mut self) -> Option<ExitStatus> {
        let stdout =
            File::create(self.dir.path().join("stdout.upgraded.log")).expect("creating a log");
        let stderr =
            File::create(self.dir.path().join("stderr.upgraded.log")).expect("creating a log");
        let new = Command::new(BIN)
            .arg("run")
            .arg("--upgrade")
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawning the upgraded portcullis must work");
        // The new process polls the upgrade socket about once a second; give it time to start.
        let log = self.dir.path().join("stderr.upgraded.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("transfer")) {
            assert!(
                Instant::now() < deadline,
                "the upgraded process never waited for sockets"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.signal("QUIT");
        let mut old = std::mem::replace(&mut self.child, new);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = old.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = old.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; `None` if it did not.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The gateway process's resident memory, KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the gateway process is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("/proc status has VmRSS")
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; `None` if it did not.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.exited_within(timeout).await
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill must work");
        assert!(status.success(), "kill -{name} {} failed", self.child.id());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// Stops a child process (gateway or provider): SIGTERM, up to 3 s to exit, then SIGKILL.
pub fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `portcullis check --config FILE` on `yaml`; returns the exit code and stdout+stderr, with
/// the config file's path replaced by `FILE`.
pub fn check(yaml: &str) -> (i32, String) {
    check_with(yaml, &[])
}

/// [`check`] with more arguments (`--offline`, `--format json`).
pub fn check_with(yaml: &str, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("creating a temporary directory must work");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("writing the config must work");
    let output = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running portcullis check must work");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = text.replace(&path.display().to_string(), "FILE");
    (output.status.code().unwrap_or(-1), text)
}

/// Runs `portcullis explain --config config GET url --header header`: the exit code and
/// stdout+stderr.
pub fn explain(config: &Path, url: &str, header: &str) -> (i32, String) {
    let output = Command::new(BIN)
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args(["GET", url, "--header", header])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running portcullis explain must work");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

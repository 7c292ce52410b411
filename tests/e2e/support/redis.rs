//! Real Redis servers for the session store's tests (Debian's `redis-server`, installed by
//! `tests/setup.sh`): a single server (optionally with a password and append-only persistence,
//! so a restart keeps the data), a three-master cluster, and a sentinel. Every process runs on
//! loopback in its own temporary directory and is killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::free_port;
use super::gateway::stop_child;

/// The test password of servers started with one.
pub const PASSWORD: &str = "redis-test-password";

const READY: Duration = Duration::from_secs(10);

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    args: Vec<String>,
    password: Option<String>,
    /// The CA file clients trust, for a TLS server.
    tls_ca: Option<std::path::PathBuf>,
    /// The test CA (and the server's key and certificate) of a TLS server, kept while it runs.
    _ca: Option<super::certs::TestCa>,
}

impl RedisServer {
    /// A server on a free port without a password, append-only persistence on.
    pub async fn start() -> Self {
        Self::start_with(None, &[]).await
    }

    /// A server requiring `PASSWORD`.
    pub async fn start_with_password() -> Self {
        Self::start_with(Some(PASSWORD), &[]).await
    }

    /// A server with an optional password and extra `redis-server` arguments.
    pub async fn start_with(password: Option<&str>, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // A cluster node listens on its port + 10000 too (the cluster bus).
        let port = if extra.contains(&"--cluster-enabled") {
            super::free_port_with(10_000)
        } else {
            free_port()
        };
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.path().display().to_string(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
            "--protected-mode".into(),
            "no".into(),
        ];
        if let Some(p) = password {
            args.extend(["--requirepass".into(), p.into()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut server = Self {
            child: None,
            port,
            dir,
            args,
            password: password.map(str::to_owned),
            tls_ca: None,
            _ca: None,
        };
        server.spawn().await;
        server
    }

    /// A TLS-only server whose certificate (for 127.0.0.1) a fresh test CA signed; the CA's
    /// PEM file is [`RedisServer::ca_file`].
    pub async fn start_tls() -> Self {
        let ca = super::certs::TestCa::new("redis-test-ca");
        let leaf = ca.issue("redis", &["localhost", "IP:127.0.0.1"], 1, false);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let ca_copy = dir.path().join("ca.crt");
        std::fs::copy(ca.cert(), &ca_copy).expect("copying the CA");
        let show = |p: &std::path::Path| p.display().to_string();
        let args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &show(dir.path()),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--tls-cert-file",
            &show(&leaf.cert),
            "--tls-key-file",
            &show(&leaf.key),
            "--tls-ca-cert-file",
            &show(&ca_copy),
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let mut server = Self {
            child: None,
            port,
            tls_ca: Some(ca_copy),
            dir,
            args,
            password: None,
            _ca: Some(ca),
        };
        server.spawn().await;
        server
    }

    /// The CA file of a TLS server.
    pub fn ca_file(&self) -> Option<String> {
        self.tls_ca.as_ref().map(|p| p.display().to_string())
    }

    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("redis.log");
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (tests/setup.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + READY;
        loop {
            if self
                .command(&["PING"])
                .await
                .is_some_and(|r| r.contains("PONG"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not answer: {}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Kills it (its append-only file stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }

    /// Starts it again on the same port, with the same data.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Runs one command (RESP over a fresh connection, authenticated when the server has a
    /// password); the reply in a readable form, `None` when the server does not answer.
    pub async fn command(&self, args: &[&str]) -> Option<String> {
        match &self.tls_ca {
            None => command(self.port, self.password.as_deref(), args).await,
            Some(ca) => {
                let ca = ca.display().to_string();
                let mut all = vec!["--tls", "--cacert", &ca];
                all.extend_from_slice(args);
                command(self.port, self.password.as_deref(), &all).await
            }
        }
    }

    /// Every key matching `pattern`.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        self.command(&["KEYS", pattern])
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One command to the server on `port` through `redis-cli` (authenticated with `password`);
/// its output (`redis-cli`'s raw format: one line per element), `None` when it fails.
pub async fn command(port: u16, password: Option<&str>, args: &[&str]) -> Option<String> {
    let mut cmd = tokio::process::Command::new("redis-cli");
    cmd.arg("-h")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(port.to_string());
    if let Some(p) = password {
        cmd.arg("-a").arg(p).arg("--no-auth-warning");
    }
    // `--tls`/`--cacert` come before the command.
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(5), cmd.output())
        .await
        .ok()?
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Three masters (no replicas) forming a Redis Cluster.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes and joins them (`redis-cli --cluster create`), waiting until the
    /// cluster is `ok`.
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(
                RedisServer::start_with(
                    None,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
                .await,
            );
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut ok = true;
            for n in &nodes {
                let info = n.command(&["CLUSTER", "INFO"]).await.unwrap_or_default();
                ok &= info.contains("cluster_state:ok");
            }
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster never became ok");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { nodes }
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Every key matching `pattern`, over all masters.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut all = Vec::new();
        for n in &self.nodes {
            all.extend(n.keys(pattern).await);
        }
        all
    }
}

/// A sentinel monitoring one master under the name `mymaster`.
pub struct RedisSentinel {
    child: Option<Child>,
    port: u16,
    _dir: TempDir,
}

impl RedisSentinel {
    /// Starts a sentinel for the master on `master_port` (quorum 1).
    pub async fn start(master_port: u16, password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master_port} 1\nsentinel down-after-milliseconds mymaster 1000\n",
            dir.path().display()
        );
        if let Some(p) = password {
            conf.push_str(&format!("sentinel auth-pass mymaster {p}\n"));
        }
        let path = dir.path().join("sentinel.conf");
        std::fs::write(&path, conf).expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&path)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel runs");
        let deadline = Instant::now() + READY;
        loop {
            let reply = command(
                port,
                None,
                &["SENTINEL", "get-master-addr-by-name", "mymaster"],
            )
            .await
            .unwrap_or_default();
            if reply.contains(&master_port.to_string()) {
                break;
            }
            assert!(Instant::now() < deadline, "the sentinel did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child: Some(child),
            port,
            _dir: dir,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }
}

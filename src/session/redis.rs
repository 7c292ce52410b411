//! The Redis session store: the cookie holds a [`Ticket`] (an id and a per-session key), Redis
//! holds the session encrypted with that key — so neither a stolen Redis dump nor a cookie
//! jar alone reveals a token.
//!
//! Entries: `<prefix>s:<id>` = nonce ‖ AES-256-GCM(key, session JSON, aad = id), expiring at
//! the earlier of the session's end and its idle timeout (so the idle timeout slides with every
//! write); `<prefix>x:<digest>` = set of ids per provider `sid` / `sub` (back-channel logout),
//! the digest hiding the user; `<prefix>l:<id>` = refresh lock. Every key is used on its own, so
//! the same code serves a single server, Sentinel and Cluster.
//!
//! Connections are redis' managed, multiplexed ones (a [`ConnectionManager`], or a cluster
//! connection), made on first use and re-made at most once per [`RECONNECT_GAP`] while Redis is
//! down; every call — connecting included — is bounded by `sessions.redis.timeout`, and a
//! failure is reported as [`StoreError::Unavailable`] (session routes answer 503), never waited
//! out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, TlsCertificates, TlsMode};

use super::{SessionData, Ticket};
use crate::config::{RedisConfig, RedisTopology};
use crate::metrics;

/// Least time between two connection attempts while Redis is unreachable.
pub const RECONNECT_GAP: Duration = Duration::from_secs(1);

/// How long a refresh lock is held at most.
pub const LOCK_TTL: Duration = Duration::from_secs(10);

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Redis is unreachable, slow beyond the timeout, or answered an error.
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
}

enum Backend {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A connection to the Redis store, shared by every shard and every config load with the same
/// `sessions.redis` settings.
pub struct RedisStore {
    config: RedisConfig,
    backend: ArcSwapOption<Backend>,
    connecting: tokio::sync::Mutex<Option<Instant>>,
    up: AtomicBool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.config.topology)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

/// The store for `config`: the same one for every caller with equal settings, so config reloads
/// keep the connection.
pub fn shared(config: &RedisConfig) -> Arc<RedisStore> {
    static STORES: OnceLock<Mutex<Vec<Arc<RedisStore>>>> = OnceLock::new();
    let stores = STORES.get_or_init(|| Mutex::new(Vec::new()));
    let Ok(mut stores) = stores.lock() else {
        return Arc::new(RedisStore::new(config.clone()));
    };
    if let Some(found) = stores.iter().find(|s| s.config == *config) {
        return found.clone();
    }
    let store = Arc::new(RedisStore::new(config.clone()));
    stores.push(store.clone());
    store
}

fn kind(e: &redis::RedisError) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        "connection"
    } else {
        "server"
    }
}

impl RedisStore {
    /// A store that connects on first use.
    pub fn new(config: RedisConfig) -> Self {
        Self {
            config,
            backend: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(None),
            up: AtomicBool::new(false),
        }
    }

    /// Whether the last call (or health check) reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.config.key_prefix)
    }

    fn connection_info(&self, url: &str) -> redis::RedisResult<redis::ConnectionInfo> {
        let info = url.into_connection_info()?;
        let mut redis = info.redis_settings().clone();
        if let Some(user) = &self.config.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &self.config.password {
            redis = redis.set_password(password.expose());
        }
        Ok(info.set_redis_settings(redis))
    }

    fn certificates(&self) -> Option<TlsCertificates> {
        self.config.ca_pem.as_ref().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }

    fn client(&self, info: redis::ConnectionInfo) -> redis::RedisResult<redis::Client> {
        match self.certificates() {
            Some(certs) => redis::Client::build_with_tls(info, certs),
            None => redis::Client::open(info),
        }
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(self.config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(RECONNECT_GAP)
    }

    async fn connect(&self) -> redis::RedisResult<Backend> {
        match &self.config.topology {
            RedisTopology::Standalone(url) => {
                let client = self.client(self.connection_info(url.expose())?)?;
                let manager =
                    ConnectionManager::new_with_config(client, self.manager_config()).await?;
                Ok(Backend::Single(manager))
            }
            RedisTopology::Sentinel { master, nodes } => {
                let addrs = nodes
                    .iter()
                    .map(|n| n.expose().into_connection_info().map(|i| i.addr().clone()))
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                let mut builder =
                    SentinelClientBuilder::new(addrs, master.clone(), SentinelServerType::Master)?;
                if let Some(user) = &self.config.username {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = &self.config.password {
                    builder = builder.set_client_to_redis_password(password.expose());
                }
                if self.config.tls {
                    builder = builder
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                }
                if let Some(certs) = self.certificates() {
                    builder = builder
                        .set_client_to_redis_certificates(certs.clone())
                        .set_client_to_sentinel_certificates(certs);
                }
                let mut sentinel = builder.build()?;
                let client = sentinel.async_get_client().await?;
                let manager =
                    ConnectionManager::new_with_config(client, self.manager_config()).await?;
                Ok(Backend::Single(manager))
            }
            RedisTopology::Cluster(nodes) => {
                let infos = nodes
                    .iter()
                    .map(|n| self.connection_info(n.expose()))
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                let mut builder = ClusterClientBuilder::new(infos)
                    .connection_timeout(self.config.timeout)
                    .response_timeout(self.config.timeout)
                    .retries(1);
                if let Some(user) = &self.config.username {
                    builder = builder.username(user);
                }
                if let Some(password) = &self.config.password {
                    builder = builder.password(password.expose());
                }
                if self.config.tls {
                    builder = builder.tls(TlsMode::Secure);
                }
                if let Some(certs) = self.certificates() {
                    builder = builder.certs(certs);
                }
                let connection = builder.build()?.get_async_connection().await?;
                Ok(Backend::Cluster(connection))
            }
        }
    }

    /// The connection, made now if there is none (at most once per [`RECONNECT_GAP`]).
    async fn backend(&self) -> Result<Arc<Backend>, StoreError> {
        if let Some(b) = self.backend.load_full() {
            return Ok(b);
        }
        let mut last = self.connecting.lock().await;
        if let Some(b) = self.backend.load_full() {
            return Ok(b);
        }
        if last.is_some_and(|t| t.elapsed() < RECONNECT_GAP) {
            return Err(StoreError::Unavailable("reconnecting".into()));
        }
        *last = Some(Instant::now());
        match self.connect().await {
            Ok(b) => {
                let b = Arc::new(b);
                self.backend.store(Some(b.clone()));
                tracing::info!("session store connected");
                Ok(b)
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store: cannot connect");
                metrics::STORE_ERRORS
                    .with_label_values(&["connect", kind(&e)])
                    .inc();
                Err(StoreError::Unavailable(kind(&e).into()))
            }
        }
    }

    /// Runs `cmd`, bounded by the timeout, counted in metrics as `op`.
    async fn run<T: FromRedisValue>(&self, op: &'static str, cmd: &Cmd) -> Result<T, StoreError> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.config.timeout, async {
            let backend = self.backend().await?;
            let result = match &*backend {
                Backend::Single(m) => cmd.query_async::<T>(&mut m.clone()).await,
                Backend::Cluster(c) => cmd.query_async::<T>(&mut c.clone()).await,
            };
            result.map_err(|e| {
                if matches!(self.config.topology, RedisTopology::Sentinel { .. })
                    && (e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_connection_refusal()
                        || e.code() == Some("READONLY"))
                {
                    // The master may have moved: ask the sentinels again next time.
                    self.backend.store(None);
                }
                metrics::STORE_ERRORS
                    .with_label_values(&[op, kind(&e)])
                    .inc();
                StoreError::Unavailable(kind(&e).into())
            })
        })
        .await
        .unwrap_or_else(|_| {
            metrics::STORE_ERRORS
                .with_label_values(&[op, "timeout"])
                .inc();
            Err(StoreError::Unavailable("timeout".into()))
        });
        metrics::STORE_LATENCY
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        self.set_up(outcome.is_ok());
        outcome
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        metrics::STORE_UP.set(i64::from(up));
    }

    /// `PING`, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run::<String>("ping", &redis::cmd("PING"))
            .await
            .map(|_| ())
    }

    /// The session of `ticket`; `None` when it has ended (or never was).
    pub async fn get(&self, ticket: &Ticket) -> Result<Option<SessionData>, StoreError> {
        let value: Option<Vec<u8>> = self
            .run("get", redis::cmd("GET").arg(self.key("s", &ticket.id)))
            .await?;
        Ok(value.and_then(|v| open(ticket, &v)))
    }

    /// Stores `session` under `ticket` for `ttl`.
    pub async fn put(
        &self,
        ticket: &Ticket,
        session: &SessionData,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let sealed = seal(ticket, session)
            .ok_or_else(|| StoreError::Unavailable("cannot encrypt".into()))?;
        let ms = ttl.as_millis().max(1) as u64;
        self.run::<()>(
            "put",
            redis::cmd("SET")
                .arg(self.key("s", &ticket.id))
                .arg(sealed)
                .arg("PX")
                .arg(ms),
        )
        .await
    }

    /// Ends the session of `id`.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.run::<()>("delete", redis::cmd("DEL").arg(self.key("s", id)))
            .await
    }

    /// Adds session `id` to the index entry `entry` (a provider's `sid` or `sub`) for `ttl`.
    pub async fn index(&self, entry: &str, id: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = self.key("x", &digest(entry));
        self.run::<()>("index", redis::cmd("SADD").arg(&key).arg(id))
            .await?;
        self.run::<()>(
            "index",
            redis::cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl.as_millis().max(1) as u64),
        )
        .await
    }

    /// Ends every session indexed under `entry`; how many there were.
    pub async fn end_indexed(&self, entry: &str) -> Result<usize, StoreError> {
        let key = self.key("x", &digest(entry));
        let ids: Vec<String> = self.run("index", redis::cmd("SMEMBERS").arg(&key)).await?;
        for id in &ids {
            self.delete(id).await?;
        }
        self.run::<()>("index", redis::cmd("DEL").arg(&key)).await?;
        Ok(ids.len())
    }

    /// Takes the refresh lock of session `id` with `token`; whether it was free.
    pub async fn lock(&self, id: &str, token: &str) -> Result<bool, StoreError> {
        let answer: Option<String> = self
            .run(
                "lock",
                redis::cmd("SET")
                    .arg(self.key("l", id))
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(LOCK_TTL.as_millis() as u64),
            )
            .await?;
        Ok(answer.is_some())
    }

    /// Releases the refresh lock of `id` if `token` still holds it.
    pub async fn unlock(&self, id: &str, token: &str) -> Result<(), StoreError> {
        const SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
        self.run::<i64>(
            "lock",
            redis::cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(self.key("l", id))
                .arg(token),
        )
        .await
        .map(|_| ())
    }
}

/// The index entry name of a provider's `sid` or `sub`.
pub fn index_entry(provider: &str, kind: &str, value: &str) -> String {
    format!("{provider}\u{0}{kind}\u{0}{value}")
}

fn digest(entry: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, entry.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

fn key_of(ticket: &Ticket) -> Option<LessSafeKey> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&ticket.key)
        .ok()?;
    UnboundKey::new(&AES_256_GCM, &raw)
        .ok()
        .map(LessSafeKey::new)
}

/// nonce ‖ AES-256-GCM(ticket key, session JSON, aad = ticket id).
fn seal(ticket: &Ticket, session: &SessionData) -> Option<Vec<u8>> {
    let key = key_of(ticket)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).ok()?;
    let mut data = serde_json::to_vec(session).ok()?;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(ticket.id.as_bytes()),
        &mut data,
    )
    .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    Some(out)
}

fn open(ticket: &Ticket, value: &[u8]) -> Option<SessionData> {
    let key = key_of(ticket)?;
    if value.len() < NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = value.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut data = sealed.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(ticket.id.as_bytes()), &mut data)
        .ok()?;
    serde_json::from_slice(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_open_only_with_their_ticket() {
        let ticket = Ticket::new();
        let session = SessionData::new("corp", serde_json::Map::new(), 5);
        let sealed = seal(&ticket, &session).expect("seals");
        assert_eq!(open(&ticket, &sealed), Some(session.clone()));
        assert!(
            !String::from_utf8_lossy(&sealed).contains("corp"),
            "the entry is encrypted"
        );
        let other_key = Ticket {
            id: ticket.id.clone(),
            key: Ticket::new().key,
        };
        assert_eq!(open(&other_key, &sealed), None);
        let other_id = Ticket {
            id: Ticket::new().id,
            key: ticket.key.clone(),
        };
        assert_eq!(open(&other_id, &sealed), None, "bound to its id");
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(open(&ticket, &flipped), None);
        assert_eq!(open(&ticket, &sealed[..5]), None);
    }

    #[test]
    fn index_entries_hide_the_user() {
        let entry = index_entry("corp", "sub", "alice@example.com");
        assert!(!digest(&entry).contains("alice"));
        assert_eq!(digest(&entry).len(), 43);
    }
}

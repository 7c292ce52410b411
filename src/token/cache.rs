//! The verified-token cache: what a token proved, for as long as it may prove it.
//!
//! Keyed by the SHA-256 of (provider, token), so the cache holds no token and a token verified
//! for one provider is never found for another. An entry never outlives the token's `exp` (nor,
//! for refusals, a few seconds). Size is bounded per shard; a full shard first drops expired
//! entries, then an arbitrary one. The cache only says *who* a token speaks for: the per-route
//! checks (audience, scopes, rules) run on every request, hit or miss.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;

use super::{TokenError, Verified};

const SHARDS: usize = 16;

/// A cached outcome.
#[derive(Debug, Clone)]
pub enum Cached {
    /// The token is valid.
    Valid(Arc<Verified>),
    /// The token was refused (introspection said inactive).
    Refused(TokenError),
}

struct Entry {
    outcome: Cached,
    /// Unix seconds after which the entry is dead.
    until: u64,
}

/// A bounded, sharded map from token digest to outcome.
pub struct TokenCache {
    shards: Vec<RwLock<HashMap<[u8; 32], Entry>>>,
    per_shard: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.len())
            .finish()
    }
}

/// The cache key of `token` for `provider`.
pub fn key(provider: &str, token: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(provider.as_bytes());
    ctx.update(&[0]);
    ctx.update(token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl TokenCache {
    /// A cache of about `capacity` entries (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> &RwLock<HashMap<[u8; 32], Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The live outcome for `key` at unix time `now`.
    pub fn get(&self, key: &[u8; 32], now: u64) -> Option<Cached> {
        let shard = self.shard(key).read().ok()?;
        shard
            .get(key)
            .filter(|e| e.until > now)
            .map(|e| e.outcome.clone())
    }

    /// Stores `outcome` until unix time `until`.
    pub fn put(&self, key: [u8; 32], outcome: Cached, until: u64, now: u64) {
        if self.per_shard == 0 || until <= now {
            return;
        }
        let Ok(mut shard) = self.shard(&key).write() else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| e.until > now);
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(key, Entry { outcome, until });
    }

    /// Entries held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map_or(0, |m| m.len()))
            .sum()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Cached {
        Cached::Valid(Arc::new(Verified {
            claims: Arc::new(serde_json::Map::new()),
            expires_at: 100,
            introspected: false,
        }))
    }

    #[test]
    fn entries_die_at_their_deadline() {
        let c = TokenCache::new(10);
        let k = key("p", "t");
        c.put(k, verified(), 100, 50);
        assert!(c.get(&k, 99).is_some());
        assert!(c.get(&k, 100).is_none());
    }

    #[test]
    fn keys_are_per_provider() {
        assert_ne!(key("a", "t"), key("b", "t"));
        assert_ne!(key("a", "t"), key("a", "u"));
    }

    #[test]
    fn size_is_bounded() {
        let c = TokenCache::new(SHARDS);
        for i in 0..1000 {
            c.put(key("p", &i.to_string()), verified(), 200, 0);
        }
        assert!(c.len() <= SHARDS, "{}", c.len());
    }

    #[test]
    fn capacity_zero_disables() {
        let c = TokenCache::new(0);
        c.put(key("p", "t"), verified(), 200, 0);
        assert!(c.is_empty());
    }
}

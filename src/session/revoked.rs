//! Sessions ended while they live in cookies (the cookie store, which has no server-side copy to
//! delete): by OIDC back-channel logout (the provider's `sid` or `sub`: a session signed in before
//! the logout is refused) and by sign-out (the gateway's own session id: a copy of the cookie
//! taken before the sign-out is refused) — remembered in this process. With the Redis store the
//! sessions themselves are deleted, on every instance at once; this list is then not needed.
//!
//! Reads are lock-free (the request path checks every session against it); writes are rare.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use arc_swap::ArcSwap;

use super::SessionData;
use super::redis::index_entry;

/// Entry → (when it was revoked, when the entry may be forgotten), Unix seconds.
type Entries = HashMap<String, (u64, u64)>;

static REVOKED: LazyLock<ArcSwap<Entries>> =
    LazyLock::new(|| ArcSwap::from_pointee(HashMap::new()));
static WRITER: Mutex<()> = Mutex::new(());

/// Most entries kept; beyond it the ones closest to expiry are dropped first.
const MAX_ENTRIES: usize = 100_000;

/// Ends, from `now`, the sessions of provider `provider` whose `kind` claim (`sid` or `sub`) is
/// `value` and that began no later than `now`. Remembered until `until`.
pub fn revoke(provider: &str, kind: &str, value: &str, now: u64, until: u64) {
    let Ok(_one_writer) = WRITER.lock() else {
        return;
    };
    let mut next: Entries = REVOKED
        .load()
        .iter()
        .filter(|(_, (_, keep))| *keep > now)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if next.len() >= MAX_ENTRIES {
        let mut by_expiry: Vec<(String, u64)> = next
            .iter()
            .map(|(k, (_, keep))| (k.clone(), *keep))
            .collect();
        by_expiry.sort_by_key(|(_, keep)| *keep);
        for (k, _) in by_expiry.into_iter().take(MAX_ENTRIES / 10) {
            next.remove(&k);
        }
    }
    next.insert(index_entry(provider, kind, value), (now, until));
    REVOKED.store(Arc::new(next));
}

/// Whether `session` was ended by a back-channel logout.
pub fn is_revoked(session: &SessionData, now: u64) -> bool {
    let entries = REVOKED.load();
    if entries.is_empty() {
        return false;
    }
    if entries
        .get(&index_entry(&session.provider, "session", &session.sid))
        .is_some_and(|(_, keep)| *keep > now)
    {
        return true;
    }
    ["sid", "sub"].iter().any(|kind| {
        let Some(value) = session.claims.get(*kind).and_then(|v| v.as_str()) else {
            return false;
        };
        entries
            .get(&index_entry(&session.provider, kind, value))
            .is_some_and(|(at, keep)| *keep > now && session.created <= *at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sessions_from_before_the_logout_are_refused_later_ones_pass() {
        let claims = json!({"sub": "revoked-user", "sid": "sid-1"});
        let mut before =
            SessionData::new("corp", claims.as_object().expect("object").clone(), 1_000);
        assert!(!is_revoked(&before, 1_001));
        revoke("corp", "sub", "revoked-user", 1_010, 5_000);
        assert!(is_revoked(&before, 1_011));
        let mut after = before.clone();
        after.created = 1_020;
        assert!(!is_revoked(&after, 1_021), "a new sign-in works");
        before.provider = "other".into();
        assert!(!is_revoked(&before, 1_011), "per provider");
        assert!(!is_revoked(&after, 6_000));
    }
}

//! One interface over the two session stores: the whole session sealed in the cookie (the
//! default), or a ticket in the cookie and the session in Redis.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::redis::{RedisStore, StoreError, index_entry, shared};
use super::{Cookies, SessionData, Ticket, revoked};
use crate::config::{SessionStore, SessionsConfig};

/// Where sessions live.
#[derive(Debug, Clone)]
pub enum Store {
    /// In the cookie.
    Cookie,
    /// In Redis.
    Redis(Arc<RedisStore>),
}

/// What a request's cookies lead to.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The session, if there is a live one.
    pub session: Option<SessionData>,
    /// Its ticket (Redis store).
    pub ticket: Option<Ticket>,
    /// Which session cookies the request carried (to clear them).
    pub present: u8,
    /// Why cookies that were there led to no session (bounded label).
    pub problem: Option<&'static str>,
}

/// Whether `session` is within its lifetime and idle timeout at `now` (and not from the future).
pub fn live(session: &SessionData, config: &SessionsConfig, now: u64) -> bool {
    session.created + config.lifetime.as_secs() > now
        && session.seen + config.idle_timeout.as_secs() > now
        && session.created <= now + 60
}

/// How long a stored session lives from `now`: to its end, or its idle timeout if sooner.
pub fn remaining(session: &SessionData, config: &SessionsConfig, now: u64) -> Duration {
    let until_end = (session.created + config.lifetime.as_secs()).saturating_sub(now);
    Duration::from_secs(until_end).min(config.idle_timeout)
}

impl Store {
    /// The store `config` asks for.
    pub fn for_config(config: &SessionsConfig) -> Self {
        match (config.store, &config.redis) {
            (SessionStore::Redis, Some(redis)) => Store::Redis(shared(redis)),
            _ => Store::Cookie,
        }
    }

    /// The Redis store, when sessions live there.
    pub fn redis(&self) -> Option<&Arc<RedisStore>> {
        match self {
            Store::Redis(r) => Some(r),
            Store::Cookie => None,
        }
    }

    /// The session the request's cookies lead to; a session ended on this instance (sign-out or
    /// back-channel logout of a cookie session) is not returned.
    pub async fn load(&self, cookies: &Cookies, headers: &HeaderMap) -> Result<Loaded, StoreError> {
        let read = cookies.read(headers);
        let mut loaded = Loaded {
            present: read.present,
            problem: read.problem,
            ..Loaded::default()
        };
        match (self, read.session, read.ticket) {
            (Store::Cookie, Some(session), _) => loaded.session = Some(session),
            (Store::Redis(redis), _, Some(ticket)) => {
                loaded.session = redis.get(&ticket).await?;
                if loaded.session.is_none() {
                    loaded.problem = Some("ended");
                }
                loaded.ticket = Some(ticket);
            }
            // A cookie of the other store (the store was switched): signed out.
            (_, Some(_), _) | (_, _, Some(_)) => loaded.problem = Some("other_store"),
            _ => {}
        }
        if loaded
            .session
            .as_ref()
            .is_some_and(|s| revoked::is_revoked(s, crate::token::unix_now()))
        {
            loaded.session = None;
            loaded.problem = Some("ended");
        }
        Ok(loaded)
    }

    /// Stores `session`; the `Set-Cookie` values to send. `ticket` is the session's ticket when
    /// it already has one (Redis store); a new session gets one, indexed by its provider's `sid`
    /// and `sub` for back-channel logout.
    pub async fn save(
        &self,
        cookies: &Cookies,
        config: &SessionsConfig,
        session: &mut SessionData,
        ticket: Option<&Ticket>,
        present: u8,
        now: u64,
    ) -> Result<Vec<String>, StoreError> {
        let Store::Redis(redis) = self else {
            return Ok(write_cookie(cookies, session, present, now));
        };
        let ttl = remaining(session, config, now);
        if let Some(ticket) = ticket {
            redis.put(ticket, session, ttl).await?;
            return Ok(Vec::new());
        }
        let ticket = Ticket::new();
        redis.put(&ticket, session, ttl).await?;
        let lifetime =
            Duration::from_secs((session.created + config.lifetime.as_secs()).saturating_sub(now));
        for kind in ["sid", "sub"] {
            if let Some(value) = session.claims.get(kind).and_then(|v| v.as_str()) {
                redis
                    .index(
                        &index_entry(&session.provider, kind, value),
                        &ticket.id,
                        lifetime,
                    )
                    .await?;
            }
        }
        cookies
            .write_ticket(&ticket, present, lifetime.as_secs())
            .ok_or_else(|| StoreError::Unavailable("cannot seal the ticket".into()))
    }

    /// Ends a session: deletes it from Redis (by its `ticket`), or — a cookie session has no
    /// server-side copy — remembers its id on this instance until it would have ended anyway, so
    /// a copy of its cookie is refused from now on.
    pub async fn end(
        &self,
        session: Option<&SessionData>,
        ticket: Option<&Ticket>,
        config: &SessionsConfig,
        now: u64,
    ) -> Result<(), StoreError> {
        match (self, ticket, session) {
            (Store::Redis(redis), Some(t), _) => redis.delete(&t.id).await,
            (Store::Cookie, _, Some(s)) => {
                let until = s.created + config.lifetime.as_secs();
                revoked::revoke(&s.provider, "session", &s.sid, now, until);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The `Set-Cookie` values sealing `session` in the cookie; a session too large for the cookies
/// loses its ID token (used only as a logout hint) rather than failing.
fn write_cookie(
    cookies: &Cookies,
    session: &mut SessionData,
    present: u8,
    now: u64,
) -> Vec<String> {
    match cookies.write(session, present, now) {
        Ok(c) => c,
        Err(_) => {
            session.id_token = None;
            cookies.write(session, present, now).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "session too large for cookies; use the Redis store");
                cookies.clear(present)
            })
        }
    }
}

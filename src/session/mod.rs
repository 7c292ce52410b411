//! Browser sessions, sealed in cookies.
//!
//! The whole session — identity claims, tokens, timestamps — is JSON sealed with AES-256-GCM
//! (the `cookie` crate's private jar: a fresh random nonce each time, the cookie's name as
//! associated data, keys derived from `sessions.secret` by HKDF). Old secrets
//! (`sessions.old_secrets`) still open cookies, so a secret can be rotated without signing
//! everybody out; new cookies are always sealed with the current one.
//!
//! A sealed session longer than [`CHUNK_LEN`] is split into numbered cookies
//! (`__Host-portcullis`, `__Host-portcullis_1`, …, at most [`MAX_CHUNKS`]); the first one says how
//! many there are. The seal covers the joined value, so a missing, truncated, re-ordered or
//! foreign chunk fails to open and the request is treated as signed out — never as an error.
//!
//! Sign-ins in flight each have their own short-lived cookie (`__Host-portcullis_s_<tag>`, the tag
//! taken from the random `state`), so several tabs can sign in at once; [`Cookies::pending`]
//! lets `/start` drop the oldest beyond `max_pending_sign_ins`.

pub mod redis;
pub mod revoked;
pub mod store;

use std::time::Duration;

use base64::Engine;
use cookie::{Cookie, CookieJar, Key};
use http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::config::SessionsConfig;

/// Longest value of one cookie. Browsers keep at least 4,096 bytes per cookie, name and
/// attributes included.
pub const CHUNK_LEN: usize = 3_500;

/// Most cookies one session may be split into.
pub const MAX_CHUNKS: usize = 4;

/// How long a sign-in may take, from the redirect to the provider to the callback.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);

/// Session format version; a cookie of another version is treated as signed out.
const VERSION: u8 = 1;

/// One browser session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// Format version.
    pub v: u8,
    /// Random session id, new at every sign-in.
    pub sid: String,
    /// Name of the provider that signed the user in.
    #[serde(rename = "p")]
    pub provider: String,
    /// Sign-in time (Unix seconds).
    #[serde(rename = "c")]
    pub created: u64,
    /// Last time the session was seen in use (Unix seconds, updated coarsely).
    #[serde(rename = "s")]
    pub seen: u64,
    /// Identity claims (ID token and/or userinfo), plus `scope` as granted.
    #[serde(rename = "id")]
    pub claims: Map<String, Value>,
    /// The access token.
    #[serde(rename = "at", default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// When the access token expires (Unix seconds), when the provider said.
    #[serde(rename = "ae", default, skip_serializing_if = "Option::is_none")]
    pub access_expires: Option<u64>,
    /// The refresh token.
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The ID token, kept for `id_token_hint` at sign-out.
    #[serde(rename = "it", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl SessionData {
    /// A new session for `provider`, with a fresh random id.
    pub fn new(provider: &str, claims: Map<String, Value>, now: u64) -> Self {
        Self {
            v: VERSION,
            sid: random_token(16),
            provider: provider.to_owned(),
            created: now,
            seen: now,
            claims,
            access_token: None,
            access_expires: None,
            refresh_token: None,
            id_token: None,
        }
    }
}

/// What the cookie holds with the Redis store: the session's id and the key its Redis entry is
/// encrypted with. Sealed like a session, so the cookie alone reveals nothing either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    /// Random id (128 bits, base64url): the Redis key's suffix.
    #[serde(rename = "t")]
    pub id: String,
    /// Random per-session key (256 bits, base64url) of the Redis entry.
    #[serde(rename = "k")]
    pub key: String,
}

impl Ticket {
    /// A new random ticket.
    pub fn new() -> Self {
        Self {
            id: random_token(16),
            key: random_token(32),
        }
    }
}

impl Default for Ticket {
    fn default() -> Self {
        Self::new()
    }
}

/// What a session cookie opens to.
#[derive(Deserialize)]
#[serde(untagged)]
enum Sealed {
    Ticket(Ticket),
    Session(Box<SessionData>),
}

/// A sign-in in flight, kept in its own cookie until the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The `state` sent to the provider.
    pub state: String,
    /// PKCE code verifier.
    pub verifier: String,
    /// The `nonce` sent to the provider.
    pub nonce: String,
    /// Where to go after sign-in (already checked).
    pub rd: String,
    /// Provider name.
    pub provider: String,
    /// When the sign-in started (Unix seconds).
    pub created: u64,
}

impl PendingSignIn {
    /// The cookie-name tag of this sign-in.
    pub fn tag(&self) -> &str {
        tag_of(&self.state)
    }
}

/// The cookie-name tag of `state`: its first 12 characters (the state is random).
pub fn tag_of(state: &str) -> &str {
    let end = state.char_indices().nth(12).map_or(state.len(), |(i, _)| i);
    &state[..end]
}

/// `n` random bytes, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // aws-lc's generator only fails when the OS has no randomness, where nothing can be safe;
    // an all-zero token would be guessable, so never hand one out.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        panic!("the operating system's random number generator failed");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the request's cookies said about the session.
#[derive(Debug, Default)]
pub struct ReadSession {
    /// The session, when every chunk was there and opened (cookie store).
    pub session: Option<SessionData>,
    /// The ticket, when the cookie holds one (Redis store).
    pub ticket: Option<Ticket>,
    /// Indexes of the session chunk cookies present (0 = the first), to clear stale ones.
    pub present: u8,
    /// Why no session could be read although cookies were there (bounded label).
    pub problem: Option<&'static str>,
}

/// Why a session could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// More than [`MAX_CHUNKS`] cookies would be needed.
    #[error("the session does not fit in {MAX_CHUNKS} cookies")]
    TooLarge,
}

/// The gateway's cookies: names, attributes, sealing and opening.
pub struct Cookies {
    keys: Vec<Key>,
    csrf: Option<aws_lc_rs::hmac::Key>,
    /// Session cookie name (with `__Host-` when secure, `__Secure-` when secure for a domain).
    name: String,
    secure: bool,
    /// `; Domain=…` with `sessions.cookie_domain`, else empty (host-only cookies).
    domain: String,
    lifetime: Duration,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookies")
            .field("name", &self.name)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Cookies {
    /// Cookies for `config`.
    pub fn new(config: &SessionsConfig) -> Self {
        let prefix = match (config.secure_cookies, &config.cookie_domain) {
            (true, None) => "__Host-",
            // `__Host-` forbids `Domain`; `__Secure-` still requires `Secure`.
            (true, Some(_)) => "__Secure-",
            (false, _) => "",
        };
        Self {
            // Secrets are at least 32 bytes (checked at config load), which derive_from needs.
            keys: config
                .keys
                .iter()
                .filter(|k| k.len() >= 32)
                .map(|k| Key::derive_from(k))
                .collect(),
            csrf: config
                .keys
                .first()
                .map(|k| aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, k)),
            name: format!("{prefix}{}", config.cookie_name),
            secure: config.secure_cookies,
            domain: config
                .cookie_domain
                .as_ref()
                .map(|d| format!("; Domain={d}"))
                .unwrap_or_default(),
            lifetime: config.lifetime,
        }
    }

    /// The session cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The anti-CSRF token of session `sid` (for the sign-out form): an HMAC of the session id
    /// under the current secret.
    pub fn csrf_token(&self, sid: &str) -> String {
        let Some(key) = &self.csrf else {
            return String::new();
        };
        let mut message = b"portcullis sign-out\0".to_vec();
        message.extend_from_slice(sid.as_bytes());
        let tag = aws_lc_rs::hmac::sign(key, &message);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `token` is session `sid`'s anti-CSRF token (constant-time).
    pub fn csrf_valid(&self, sid: &str, token: &str) -> bool {
        let expected = self.csrf_token(sid);
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }

    fn chunk_name(&self, i: usize) -> String {
        if i == 0 {
            self.name.clone()
        } else {
            format!("{}_{i}", self.name)
        }
    }

    fn pending_name(&self, tag: &str) -> String {
        format!("{}_s_{tag}", self.name)
    }

    /// `Set-Cookie` attributes shared by every cookie of the gateway.
    fn attributes(&self, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        let domain = &self.domain;
        format!("; Path=/{domain}; Max-Age={max_age}{secure}; HttpOnly; SameSite=Lax")
    }

    fn seal(&self, name: &str, value: String) -> Option<String> {
        let key = self.keys.first()?;
        let mut jar = CookieJar::new();
        jar.private_mut(key)
            .add(Cookie::new(name.to_owned(), value));
        jar.get(name).map(|c| c.value().to_owned())
    }

    fn open(&self, name: &str, sealed: &str) -> Option<String> {
        let jar = CookieJar::new();
        self.keys.iter().find_map(|key| {
            jar.private(key)
                .decrypt(Cookie::new(name.to_owned(), sealed.to_owned()))
                .map(|c| c.value().to_owned())
        })
    }

    /// Reads the session from the request's `Cookie` headers.
    pub fn read(&self, headers: &HeaderMap) -> ReadSession {
        let mut chunks: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
        let mut out = ReadSession::default();
        let mut duplicate = false;
        for (name, value) in request_cookies(headers) {
            let Some(i) = self.chunk_index(name) else {
                continue;
            };
            out.present |= 1 << i;
            if chunks[i].replace(value).is_some() {
                duplicate = true;
            }
        }
        let Some(first) = chunks[0] else {
            if out.present != 0 {
                out.problem = Some("chunks");
            }
            return out;
        };
        if duplicate {
            out.problem = Some("duplicate");
            return out;
        }
        let Some((count, data)) = first.split_once('.') else {
            out.problem = Some("format");
            return out;
        };
        let count = match count.parse::<usize>() {
            Ok(n) if (1..=MAX_CHUNKS).contains(&n) => n,
            _ => {
                out.problem = Some("format");
                return out;
            }
        };
        let mut sealed = String::with_capacity(count * CHUNK_LEN);
        sealed.push_str(data);
        for chunk in &chunks[1..count] {
            match chunk {
                Some(c) => sealed.push_str(c),
                None => {
                    out.problem = Some("chunks");
                    return out;
                }
            }
        }
        let Some(json) = self.open(&self.name, &sealed) else {
            out.problem = Some("seal");
            return out;
        };
        match serde_json::from_str::<Sealed>(&json) {
            Ok(Sealed::Session(s)) if s.v == VERSION => out.session = Some(*s),
            Ok(Sealed::Ticket(t)) => out.ticket = Some(t),
            _ => out.problem = Some("format"),
        }
        out
    }

    /// The chunk index of a session cookie name.
    fn chunk_index(&self, name: &str) -> Option<usize> {
        let rest = name.strip_prefix(self.name.as_str())?;
        if rest.is_empty() {
            return Some(0);
        }
        let n = rest.strip_prefix('_')?;
        if n.len() != 1 {
            return None;
        }
        let i = n.parse::<usize>().ok()?;
        (1..MAX_CHUNKS).contains(&i).then_some(i)
    }

    /// `Set-Cookie` values storing `session`, clearing chunks of an older, longer one that the
    /// request carried (`present`, from [`Cookies::read`]).
    pub fn write(
        &self,
        session: &SessionData,
        present: u8,
        now: u64,
    ) -> Result<Vec<String>, WriteError> {
        let json = serde_json::to_string(session).map_err(|_| WriteError::TooLarge)?;
        let sealed = self.seal(&self.name, json).ok_or(WriteError::TooLarge)?;
        // The first chunk also carries "<count>.".
        let count = (sealed.len() + 2).div_ceil(CHUNK_LEN).max(1);
        if count > MAX_CHUNKS {
            return Err(WriteError::TooLarge);
        }
        let max_age = (session.created + self.lifetime.as_secs()).saturating_sub(now);
        let attributes = self.attributes(max_age);
        let mut out = Vec::with_capacity(MAX_CHUNKS);
        let mut rest = sealed.as_str();
        for i in 0..count {
            let room = if i == 0 { CHUNK_LEN - 2 } else { CHUNK_LEN };
            let (part, tail) = rest.split_at(room.min(rest.len()));
            rest = tail;
            let value = if i == 0 {
                format!("{count}.{part}")
            } else {
                part.to_owned()
            };
            out.push(format!("{}={value}{attributes}", self.chunk_name(i)));
        }
        for i in count..MAX_CHUNKS {
            if present & (1 << i) != 0 {
                out.push(self.expire(&self.chunk_name(i)));
            }
        }
        Ok(out)
    }

    /// `Set-Cookie` values storing `ticket` (valid for `max_age` seconds), clearing chunks of a
    /// longer cookie session the request carried.
    pub fn write_ticket(&self, ticket: &Ticket, present: u8, max_age: u64) -> Option<Vec<String>> {
        let json = serde_json::to_string(ticket).ok()?;
        let sealed = self.seal(&self.name, json)?;
        let mut out = vec![format!(
            "{}=1.{sealed}{}",
            self.name,
            self.attributes(max_age)
        )];
        out.extend(
            (1..MAX_CHUNKS)
                .filter(|i| present & (1 << i) != 0)
                .map(|i| self.expire(&self.chunk_name(i))),
        );
        Some(out)
    }

    /// `Set-Cookie` values removing every session chunk the request carried (all of them when
    /// `present` is `u8::MAX`).
    pub fn clear(&self, present: u8) -> Vec<String> {
        (0..MAX_CHUNKS)
            .filter(|i| present & (1 << i) != 0)
            .map(|i| self.expire(&self.chunk_name(i)))
            .collect()
    }

    fn expire(&self, name: &str) -> String {
        format!("{name}={}", self.attributes(0))
    }

    /// The pending sign-in cookies of the request: (cookie name, its sign-in if it opens).
    pub fn pending(&self, headers: &HeaderMap) -> Vec<(String, Option<PendingSignIn>)> {
        let prefix = format!("{}_s_", self.name);
        request_cookies(headers)
            .filter(|(name, _)| name.starts_with(&prefix))
            .take(64)
            .map(|(name, value)| {
                let pending = self
                    .open(name, value)
                    .and_then(|json| serde_json::from_str::<PendingSignIn>(&json).ok());
                (name.to_owned(), pending)
            })
            .collect()
    }

    /// The pending sign-in whose `state` is `state`, if its cookie is there, opens, matches
    /// (in constant time) and has not expired. Also returns the cookie's name, to clear it.
    pub fn take_pending(
        &self,
        headers: &HeaderMap,
        state: &str,
        now: u64,
    ) -> (Option<PendingSignIn>, Option<String>) {
        let name = self.pending_name(tag_of(state));
        let Some(value) = request_cookies(headers)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
        else {
            return (None, None);
        };
        let pending = self
            .open(&name, value)
            .and_then(|json| serde_json::from_str::<PendingSignIn>(&json).ok())
            .filter(|p| bool::from(p.state.as_bytes().ct_eq(state.as_bytes())))
            .filter(|p| p.created + PENDING_LIFETIME.as_secs() > now && p.created <= now + 60);
        (pending, Some(name))
    }

    /// The `Set-Cookie` value of a pending sign-in.
    pub fn write_pending(&self, pending: &PendingSignIn) -> Option<String> {
        let name = self.pending_name(pending.tag());
        let json = serde_json::to_string(pending).ok()?;
        let sealed = self.seal(&name, json)?;
        Some(format!(
            "{name}={sealed}{}",
            self.attributes(PENDING_LIFETIME.as_secs())
        ))
    }

    /// The `Set-Cookie` value removing cookie `name`.
    pub fn clear_named(&self, name: &str) -> String {
        self.expire(name)
    }
}

/// The `name=value` pairs of every `Cookie` header, in order.
pub fn request_cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.trim(), value.trim().trim_matches('"')))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionStore;
    use http::HeaderValue;
    use serde_json::json;

    fn config(keys: Vec<Vec<u8>>) -> SessionsConfig {
        SessionsConfig {
            store: SessionStore::Cookie,
            keys,
            lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(600),
            cookie_name: "portcullis".into(),
            redis: None,
            allowed_redirect_hosts: Vec::new(),
            max_pending_sign_ins: 5,
            refresh_before: Duration::from_secs(60),
            secure_cookies: true,
            cookie_domain: None,
        }
    }

    #[test]
    fn a_cookie_domain_gives_secure_prefixed_domain_cookies_read_back_the_same() {
        let mut shared = config(vec![vec![7; 32]]);
        shared.cookie_domain = Some("example.test".into());
        let c = Cookies::new(&shared);
        assert_eq!(c.name(), "__Secure-portcullis");
        let s = session(4_000);
        let set = c.write(&s, 0, 1000).expect("fits");
        assert_eq!(set.len(), 2);
        for cookie in &set {
            assert!(cookie.starts_with("__Secure-portcullis"), "{cookie}");
            assert!(cookie.len() < 4_096, "{}", cookie.len());
            assert!(
                cookie.ends_with(
                    "; Path=/; Domain=example.test; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
                ),
                "{cookie}"
            );
        }
        assert_eq!(c.read(&browser(&set)).session.as_ref(), Some(&s));
        // Host-only cookies of another configuration are not this one's.
        let host_only = Cookies::new(&config(vec![vec![7; 32]]));
        assert_eq!(host_only.read(&browser(&set)).session, None);
        // Without `Secure` (the development setting) no prefix, still the domain.
        shared.secure_cookies = false;
        let dev = Cookies::new(&shared);
        let set = dev.write(&s, 0, 1000).expect("fits");
        assert!(set[0].starts_with("portcullis="), "{}", set[0]);
        assert!(set[0].contains("; Domain=example.test;"), "{}", set[0]);
    }

    fn session(padding: usize) -> SessionData {
        let claims =
            json!({"sub": "alice", "email": "alice@corp.example", "pad": "x".repeat(padding)});
        let mut s = SessionData::new("corp", claims.as_object().expect("object").clone(), 1000);
        s.access_token = Some("at".into());
        s
    }

    /// The `Cookie` header a browser would send back for these `Set-Cookie` values.
    fn browser(set_cookies: &[String]) -> HeaderMap {
        let pairs: Vec<&str> = set_cookies
            .iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().expect("a pair"))
            .collect();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).expect("valid"),
        );
        h
    }

    #[test]
    fn sessions_round_trip_in_one_or_more_chunks() {
        let c = Cookies::new(&config(vec![vec![7; 32]]));
        for (padding, chunks) in [(10, 1), (4_000, 2), (8_000, 4)] {
            let s = session(padding);
            let set = c.write(&s, 0, 1000).expect("fits");
            assert_eq!(set.len(), chunks, "padding {padding}");
            for cookie in &set {
                assert!(cookie.starts_with("__Host-portcullis"), "{cookie}");
                assert!(cookie.len() < 4_000);
                assert!(cookie.ends_with("; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"));
            }
            let read = c.read(&browser(&set));
            assert_eq!(read.session.as_ref(), Some(&s));
            assert_eq!(read.problem, None);
        }
        assert_eq!(
            c.write(&session(12_000), 0, 1000),
            Err(WriteError::TooLarge)
        );
    }

    #[test]
    fn a_shorter_session_clears_stale_chunks() {
        let c = Cookies::new(&config(vec![vec![7; 32]]));
        let long = c.write(&session(8_000), 0, 1000).expect("fits");
        let read = c.read(&browser(&long));
        assert_eq!(read.present, 0b1111);
        let short = c.write(&session(10), read.present, 1000).expect("fits");
        assert_eq!(short.len(), 4);
        assert!(short[1..].iter().all(|s| s.contains("Max-Age=0")));
        assert_eq!(c.clear(read.present).len(), 4);
    }

    #[test]
    fn tampered_truncated_reordered_and_foreign_cookies_do_not_open() {
        let c = Cookies::new(&config(vec![vec![7; 32]]));
        let set = c.write(&session(4_000), 0, 1000).expect("fits");
        let pairs: Vec<String> = set
            .iter()
            .map(|s| s.split(';').next().expect("pair").to_owned())
            .collect();
        let header = |v: String| {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, HeaderValue::from_str(&v).expect("valid"));
            h
        };
        let (first, second) = (&pairs[0], &pairs[1]);
        let flip = |s: &str, at: usize| {
            let mut b = s.as_bytes().to_vec();
            b[at] = if b[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(b).expect("ascii")
        };
        let (n1, v1) = first.split_once('=').expect("pair");
        let (n2, v2) = second.split_once('=').expect("pair");
        let cases = [
            (first.to_string(), Some("chunks")),
            (format!("{first}; {}", flip(second, 40)), Some("seal")),
            (format!("{}; {second}", flip(first, 60)), Some("seal")),
            (
                format!("{first}; {n2}={}", &v2[..v2.len() - 5]),
                Some("seal"),
            ),
            // The chunks' values swapped between the names.
            (format!("{n1}=2.{v2}; {n2}={}", &v1[2..]), Some("seal")),
            (format!("{first}; {second}; {first}"), Some("duplicate")),
            (format!("{n1}=9.{}; {second}", &v1[2..]), Some("format")),
            (format!("{n1}=garbage"), Some("format")),
            (second.to_string(), Some("chunks")),
        ];
        for (cookie, problem) in cases {
            let read = c.read(&header(cookie.clone()));
            assert!(read.session.is_none(), "{cookie}");
            assert_eq!(read.problem, problem, "{cookie}");
        }
        // Another gateway's key.
        let other = Cookies::new(&config(vec![vec![8; 32]]));
        let read = other.read(&header(pairs.join("; ")));
        assert_eq!((read.session, read.problem), (None, Some("seal")));
    }

    #[test]
    fn old_secrets_still_open_sessions_and_new_ones_use_the_current_secret() {
        let old = Cookies::new(&config(vec![vec![1; 32]]));
        let set = old.write(&session(10), 0, 1000).expect("fits");
        let rotated = Cookies::new(&config(vec![vec![2; 32], vec![1; 32]]));
        assert!(rotated.read(&browser(&set)).ticket.is_none());
        assert_eq!(
            rotated.read(&browser(&set)).session,
            Some(session_with_sid(&set, &old))
        );
        let new = rotated.write(&session(10), 0, 1000).expect("fits");
        assert!(old.read(&browser(&new)).session.is_none());
    }

    fn session_with_sid(set: &[String], c: &Cookies) -> SessionData {
        c.read(&browser(set)).session.expect("opens")
    }

    #[test]
    fn tickets_round_trip_and_are_told_from_sessions() {
        let c = Cookies::new(&config(vec![vec![7; 32]]));
        let ticket = Ticket::new();
        let set = c.write_ticket(&ticket, 0b11, 60).expect("seals");
        assert_eq!(set.len(), 2, "the stale chunk is cleared: {set:?}");
        let read = c.read(&browser(&set));
        assert_eq!(read.ticket, Some(ticket));
        assert_eq!(read.session, None);
        assert!(set[0].len() < 300);
    }

    #[test]
    fn pending_sign_ins_are_bound_to_their_state() {
        let c = Cookies::new(&config(vec![vec![7; 32]]));
        let p = PendingSignIn {
            state: random_token(32),
            verifier: random_token(32),
            nonce: random_token(16),
            rd: "/app".into(),
            provider: "corp".into(),
            created: 1000,
        };
        let set = c.write_pending(&p).expect("seals");
        assert!(set.starts_with(&format!("__Host-portcullis_s_{}=", p.tag())));
        let headers = browser(std::slice::from_ref(&set));
        assert_eq!(c.take_pending(&headers, &p.state, 1001).0, Some(p.clone()));
        // Same tag, other state: refused.
        let forged = format!("{}{}", p.tag(), "x".repeat(31));
        assert_eq!(c.take_pending(&headers, &forged, 1001).0, None);
        // Expired.
        assert_eq!(c.take_pending(&headers, &p.state, 1000 + 601).0, None);
        assert_eq!(c.pending(&headers).len(), 1);
    }
}

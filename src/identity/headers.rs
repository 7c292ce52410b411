//! Header hygiene: what to strip from a client's request before anything is added to it.
//!
//! The order is the contract's: hop-by-hop headers and every header named in `Connection`;
//! identity headers in every spelling a backend could fold into the same name (case, `_` for
//! `-`); forwarding headers from peers outside `trusted_proxies`; the gateway's own cookies. Only
//! after that does the proxy set the headers it owns. This module decides; `proxy` applies the
//! [`HeaderPlan`] with pingora's header API (which keeps its case map in step).
//!
//! Invariant: framing headers (`Content-Length`, `Transfer-Encoding`) and `Host` are never removed
//! here, even when a client names them in `Connection`: pingora frames the upstream request from
//! them, and dropping one would let a client desynchronise the two hops.

use std::collections::HashSet;

use http::{HeaderMap, HeaderName, header};

/// Headers no client may set, whatever the configuration says (canonical spelling).
const BUILTIN_IDENTITY: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "x-remote-user",
    "remote-user",
];

/// Any header starting with this (canonical spelling) is the gateway's.
const OWN_PREFIX: &[u8] = b"x-portcullis-";

/// Forwarding headers believed only from trusted proxies (canonical spelling).
const FORWARDING: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "forwarded",
    "x-original-url",
    "x-original-uri",
    "x-original-host",
    "x-rewrite-url",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1 and common non-standard ones), and `Proxy` (httpoxy,
/// CVE-2016-5385/5387: CGI-style backends turn it into `HTTP_PROXY` and send their own outgoing
/// requests through it). `Transfer-Encoding` is hop-by-hop too, but pingora owns framing and
/// rewrites it itself.
const HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static("proxy"),
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Why a header was stripped; for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripReason {
    /// Hop-by-hop or named in `Connection`.
    HopByHop,
    /// An identity header the client may not set.
    Identity,
    /// A forwarding header from an untrusted peer.
    Forwarding,
}

/// What to do with the `Cookie` header.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieAction {
    /// No gateway cookie in it.
    Keep,
    /// Only gateway cookies in it.
    Remove,
    /// Gateway cookies removed; the rest joined.
    Replace(String),
}

/// The result of [`Hygiene::plan`].
#[derive(Debug, PartialEq, Eq)]
pub struct HeaderPlan {
    /// Names to remove (every value), with the reason.
    pub remove: Vec<(HeaderName, StripReason)>,
    /// What to do with `Cookie`.
    pub cookie: CookieAction,
}

/// The hygiene rules of one config, compiled.
#[derive(Debug)]
pub struct Hygiene {
    identity: HashSet<Box<[u8]>>,
    forwarding: HashSet<Box<[u8]>>,
    cookie_base: String,
}

impl Hygiene {
    /// Rules for these configured identity header names and cookie base name.
    pub fn new<'a>(identity: impl IntoIterator<Item = &'a HeaderName>, cookie_base: &str) -> Self {
        let canon = |s: &str| canonical(s.as_bytes()).into_boxed_slice();
        Self {
            identity: BUILTIN_IDENTITY
                .iter()
                .map(|s| canon(s))
                .chain(identity.into_iter().map(|h| canon(h.as_str())))
                .collect(),
            forwarding: FORWARDING.iter().map(|s| canon(s)).collect(),
            cookie_base: cookie_base.to_ascii_lowercase(),
        }
    }

    /// Decides what to strip from `headers`; `trusted`: the peer is a trusted proxy. `Upgrade`
    /// and `Connection` always go: the caller restores them for a WebSocket upgrade.
    pub fn plan(&self, headers: &HeaderMap, trusted: bool) -> HeaderPlan {
        let mut remove: Vec<(HeaderName, StripReason)> = Vec::new();
        for name in &HOP_BY_HOP {
            if headers.contains_key(name) {
                remove.push((name.clone(), StripReason::HopByHop));
            }
        }
        for value in headers.get_all(header::CONNECTION) {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let Ok(name) = HeaderName::from_bytes(token.as_bytes()) else {
                    continue;
                };
                let framing = name == header::CONTENT_LENGTH
                    || name == header::TRANSFER_ENCODING
                    || name == header::HOST;
                if !framing
                    && headers.contains_key(&name)
                    && !remove.iter().any(|(n, _)| *n == name)
                {
                    remove.push((name, StripReason::HopByHop));
                }
            }
        }
        for name in headers.keys() {
            let reason = if self.is_identity(name.as_str().as_bytes()) {
                StripReason::Identity
            } else if !trusted && self.matches(&self.forwarding, name.as_str().as_bytes()) {
                StripReason::Forwarding
            } else {
                continue;
            };
            if !remove.iter().any(|(n, _)| n == name) {
                remove.push((name.clone(), reason));
            }
        }
        HeaderPlan {
            remove,
            cookie: self.cookie_action(headers),
        }
    }

    fn is_identity(&self, name: &[u8]) -> bool {
        self.matches(&self.identity, name)
            || (name.len() >= OWN_PREFIX.len()
                && name[..OWN_PREFIX.len()]
                    .iter()
                    .zip(OWN_PREFIX)
                    .all(|(a, b)| fold(*a) == *b))
    }

    fn matches(&self, set: &HashSet<Box<[u8]>>, name: &[u8]) -> bool {
        if name.contains(&b'_') {
            set.contains(canonical(name).as_slice())
        } else {
            set.contains(name)
        }
    }

    /// Whether cookie `name` is one of the gateway's (any prefix, chunk or pending sign-in).
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        let lower = name.trim().to_ascii_lowercase();
        let bare = lower
            .strip_prefix("__host-")
            .or_else(|| lower.strip_prefix("__secure-"))
            .unwrap_or(&lower);
        match bare.strip_prefix(self.cookie_base.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('_') || rest.starts_with('-'),
            None => false,
        }
    }

    fn cookie_action(&self, headers: &HeaderMap) -> CookieAction {
        let mut found = false;
        let mut kept: Vec<&str> = Vec::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                let name = pair.split('=').next().unwrap_or(pair);
                if self.is_gateway_cookie(name) {
                    found = true;
                } else {
                    kept.push(pair);
                }
            }
        }
        match (found, kept.is_empty()) {
            (false, _) => CookieAction::Keep,
            (true, true) => CookieAction::Remove,
            (true, false) => CookieAction::Replace(kept.join("; ")),
        }
    }
}

/// Lower-case, `_` as `-`: the spelling every folding backend agrees on.
fn canonical(name: &[u8]) -> Vec<u8> {
    name.iter().map(|b| fold(*b)).collect()
}

#[inline]
fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hygiene() -> Hygiene {
        let extra = HeaderName::from_static("x-forwarded-department");
        Hygiene::new([&extra], "portcullis")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("valid name"),
                HeaderValue::from_str(v).expect("valid value"),
            );
        }
        map
    }

    fn removed(plan: &HeaderPlan) -> Vec<&str> {
        plan.remove.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn identity_headers_go_in_every_spelling() {
        let h = hygiene();
        for name in [
            "X-Forwarded-User",
            "x_forwarded_user",
            "X-FORWARDED_USER",
            "X-Forwarded-Department",
            "x_forwarded_department",
            "X-Portcullis-Anything",
            "x_portcullis_assertion",
            "Remote-User",
        ] {
            let plan = h.plan(&headers(&[(name, "evil")]), true);
            assert_eq!(plan.remove.len(), 1, "{name}");
            assert_eq!(plan.remove[0].1, StripReason::Identity, "{name}");
        }
    }

    #[test]
    fn forwarding_headers_go_unless_the_peer_is_trusted() {
        let h = hygiene();
        let req = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("X_Real_IP", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        assert_eq!(h.plan(&req, false).remove.len(), 3);
        assert!(h.plan(&req, true).remove.is_empty());
    }

    #[test]
    fn connection_names_are_dropped_but_never_framing() {
        let h = hygiene();
        let req = headers(&[
            (
                "connection",
                "close, X-Custom, content-length, host, transfer-encoding",
            ),
            ("x-custom", "1"),
            ("content-length", "0"),
            ("host", "a"),
        ]);
        assert_eq!(
            removed(&h.plan(&req, false)),
            vec!["connection", "x-custom"]
        );
    }

    #[test]
    fn connection_naming_an_identity_header_drops_it() {
        let h = hygiene();
        let req = headers(&[
            ("connection", "X-Forwarded-User"),
            ("x-forwarded-user", "evil"),
        ]);
        let plan = h.plan(&req, false);
        assert_eq!(removed(&plan), vec!["connection", "x-forwarded-user"]);
    }

    #[test]
    fn gateway_cookies_are_removed_and_others_kept() {
        let h = hygiene();
        let cases = [
            ("a=1; b=2", CookieAction::Keep),
            ("portcullis=x", CookieAction::Remove),
            (
                "__Host-portcullis_0=x; a=1; PORTCULLIS-state=y",
                CookieAction::Replace("a=1".into()),
            ),
            ("portcullisx=1", CookieAction::Keep),
        ];
        for (cookie, want) in cases {
            assert_eq!(
                h.plan(&headers(&[("cookie", cookie)]), false).cookie,
                want,
                "{cookie}"
            );
        }
        let two = headers(&[("cookie", "a=1"), ("cookie", "portcullis_1=z; b=2")]);
        assert_eq!(
            h.plan(&two, false).cookie,
            CookieAction::Replace("a=1; b=2".into())
        );
    }
}

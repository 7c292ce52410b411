//! Where to send the browser after sign-in: validation of the return URL (`rd`) against open
//! redirects.
//!
//! `rd` comes from whoever built the sign-in link, so it is attacker-controlled: the gateway
//! must never become a trampoline to another site. Browsers are lenient URL parsers (`\` is `/`
//! in `http(s)` URLs, tabs and newlines are dropped, `//host` is scheme-relative, `https:host`
//! is absolute), so the rule is an allow-list of plain shapes, checked on the raw string and on
//! its percent-decoded forms, and the answer is the URL as re-serialised by a WHATWG parser
//! (the `url` crate), which is what a browser will resolve.
//!
//! Accepted:
//! - a **path**: starts with exactly one `/` (not `//`, not `/\`), whose percent-decoded forms
//!   (decoded up to three times, for apps that decode again) do not start with `//` or `/\`
//!   either, and whose resolved form (dot segments removed: `/..//x`, `/%2e%2e//x`,
//!   `/./%2Fx`) does not either;
//! - an **absolute `http` or `https` URL** written with `://`, without userinfo (`@`) or `%` in
//!   its authority, whose host — ASCII letters, digits, `-` and `.`, non-empty labels, no
//!   trailing dot, compared lower-case — matches one of the allowed [`HostRule`]s; a port
//!   (1–65535) is allowed. IP literals other than dotted IPv4 are refused.
//!
//! Refused everywhere: anything empty or longer than [`MAX_LEN`] bytes; any byte outside
//! printable ASCII (controls, space, raw non-ASCII: fullwidth `／`, ideographic `。`); a
//! backslash, raw or encoded (`%5C`); a malformed `%` escape; an encoded control byte
//! (`%00`–`%1F`, `%7F`) in any decoded form. An encoded space (`%20`) is fine. Every other
//! shape — `javascript:`, `data:`, `https:host`, `evil.com`, `.` — is refused.
//!
//! `rd` is the parameter's value after the query string's own decoding.

use std::borrow::Cow;

use url::{Position, Url};

/// The longest `rd` accepted, in bytes (and the longest URL returned).
pub const MAX_LEN: usize = 2048;

/// How many rounds of percent-decoding are inspected.
const DECODE_ROUNDS: usize = 3;

/// A base for resolving paths; `.invalid` never resolves (RFC 2606).
const PATH_BASE: &str = "https://portcullis.invalid/";

/// A host that absolute return URLs may point to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// Exactly this host (compared case-insensitively).
    Exact(String),
    /// Any host below this domain, at any depth, not the domain itself: `Suffix("example.com")`
    /// (also written `"*.example.com"`) matches `a.example.com` and `a.b.example.com`, not
    /// `example.com` nor `evilexample.com`.
    Suffix(String),
}

impl HostRule {
    /// `*.example.com` as [`HostRule::Suffix`], anything else as [`HostRule::Exact`];
    /// lower-cased.
    pub fn parse(pattern: &str) -> Self {
        let pattern = pattern.trim().to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(domain) => HostRule::Suffix(domain.to_owned()),
            None => HostRule::Exact(pattern),
        }
    }

    /// Whether `host` (no port) is matched. An empty rule matches nothing.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostRule::Exact(h) => !h.is_empty() && host.eq_ignore_ascii_case(h),
            HostRule::Suffix(s) => {
                let domain = s
                    .strip_prefix("*.")
                    .or_else(|| s.strip_prefix('.'))
                    .unwrap_or(s);
                let (host, domain) = (host.as_bytes(), domain.as_bytes());
                !domain.is_empty()
                    && host.len() > domain.len() + 1
                    && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                    && host[host.len() - domain.len() - 1] == b'.'
            }
        }
    }
}

/// The URL to redirect to after sign-in (for `Location`), or `None` if `rd` is not safe. See
/// the module documentation for what is accepted.
pub fn safe_return_url(rd: &str, allowed: &[HostRule]) -> Option<String> {
    if rd.is_empty()
        || rd.len() > MAX_LEN
        || !rd.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    {
        return None;
    }
    let out = if rd.starts_with('/') {
        // The input and the resolved path alike: `/./%2Fevil.com` resolves to `/%2Fevil.com`.
        let path = safe_path(rd)?;
        if leads_elsewhere(rd)? || leads_elsewhere(&path)? {
            return None;
        }
        path
    } else {
        decoded_forms(rd)?;
        safe_absolute(rd, allowed)?
    };
    (out.len() <= MAX_LEN && out.bytes().all(|b| b.is_ascii_graphic())).then_some(out)
}

/// A path (with query and fragment), resolved as a browser would against this origin.
fn safe_path(rd: &str) -> Option<String> {
    let base = Url::parse(PATH_BASE).ok()?;
    let resolved = base.join(rd).ok()?;
    if resolved.scheme() != "https"
        || resolved.host_str() != base.host_str()
        || resolved.port().is_some()
    {
        return None;
    }
    let path = &resolved[Position::BeforePath..];
    (path.starts_with('/') && !path.starts_with("//")).then(|| path.to_owned())
}

/// Whether `path` or one of its decoded forms starts with `//` or `/\` (read as another host);
/// `None` if its escapes are unsafe (see [`decoded_forms`]).
fn leads_elsewhere(path: &str) -> Option<bool> {
    let decoded = decoded_forms(path)?;
    Some(
        std::iter::once(path.as_bytes())
            .chain(decoded.iter().map(Vec::as_slice))
            .any(|form| form.starts_with(b"//") || form.starts_with(b"/\\")),
    )
}

/// An absolute `http(s)://` URL whose host is allowed.
fn safe_absolute(rd: &str, allowed: &[HostRule]) -> Option<String> {
    let (scheme, rest) = split_scheme(rd)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if !is_plain_host(host) || !port.is_none_or(is_port) {
        return None;
    }
    let host = host.to_ascii_lowercase();
    if !allowed.iter().any(|rule| rule.matches(&host)) {
        return None;
    }
    // The browser's view must be ours: same scheme, same host, no userinfo.
    let url = Url::parse(rd).ok()?;
    if url.scheme() != scheme
        || url.host_str() != Some(host.as_str())
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    Some(url.into())
}

/// `("http" | "https", rest after "://")`, the scheme matched case-insensitively.
fn split_scheme(rd: &str) -> Option<(&'static str, &str)> {
    ["https", "http"].into_iter().find_map(|scheme| {
        let head = rd.get(..scheme.len() + 3)?;
        let (name, sep) = head.split_at(scheme.len());
        (name.eq_ignore_ascii_case(scheme) && sep == "://").then(|| (scheme, &rd[head.len()..]))
    })
}

/// A DNS name or dotted IPv4: `[A-Za-z0-9-]` labels, none empty (no trailing dot).
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A port: 1 to 5 digits, 1–65535.
fn is_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// The successive percent-decodings of `s` that differ from the previous one (at most
/// [`DECODE_ROUNDS`]). `None` if `s` has a malformed escape, if a decoded form holds a control
/// byte or a backslash, or if decoding has not settled after the last round.
fn decoded_forms(s: &str) -> Option<Vec<Vec<u8>>> {
    let mut forms: Vec<Vec<u8>> = Vec::new();
    let mut current: Cow<'_, [u8]> = Cow::Borrowed(s.as_bytes());
    for round in 0..=DECODE_ROUNDS {
        let Some(next) = percent_decode(&current, round == 0)? else {
            return Some(forms);
        };
        if round == DECODE_ROUNDS || next.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'\\') {
            return None;
        }
        forms.push(next.clone());
        current = Cow::Owned(next);
    }
    None
}

/// One round of percent-decoding: `Some(None)` if nothing was escaped, `None` if `strict` and
/// an escape is malformed (when not strict, a malformed escape is kept as text).
fn percent_decode(input: &[u8], strict: bool) -> Option<Option<Vec<u8>>> {
    if !input.contains(&b'%') {
        return Some(None);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%' {
            let hex = input.get(i + 1..i + 3).and_then(|h| {
                let text = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(text, 16)
                    .ok()
                    .filter(|_| h.iter().all(u8::is_ascii_hexdigit))
            });
            match hex {
                Some(byte) => {
                    out.push(byte);
                    changed = true;
                    i += 3;
                    continue;
                }
                None if strict => return None,
                None => {}
            }
        }
        out.push(b);
        i += 1;
    }
    Some(changed.then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<HostRule> {
        vec![
            HostRule::Exact("good.com".into()),
            HostRule::Suffix("good.com".into()),
            HostRule::Exact("partner.example".into()),
        ]
    }

    #[test]
    fn open_redirect_payloads_are_refused() {
        let long_path = format!("/{}", "a".repeat(MAX_LEN));
        let long_url = format!("https://app.good.com/{}", "a".repeat(MAX_LEN));
        let refused: Vec<&str> = vec![
            "",
            ".",
            "..",
            "evil.com",
            "evil.com/path",
            "//evil.com",
            "///evil.com",
            "////evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "\\\\evil.com",
            "/\\t/evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r/evil.com",
            "\t//evil.com",
            " /x",
            "/x ",
            "/%2F%2Fevil.com",
            "/%2f%2fevil.com",
            "/%2f/evil.com",
            "/%2F/evil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "/a%5Cb",
            "%2F%2Fevil.com",
            "%2f%2fevil.com",
            "/%09/evil.com",
            "/%0a/evil.com",
            "/%0D%0ALocation:%20https://evil.com",
            "/x%00",
            "/x%7f",
            "/%252F%252Fevil.com",
            "/%25252F%25252Fevil.com",
            "/%2525252F",
            "/%zz",
            "/%",
            "/%2",
            "/..//evil.com",
            "/%2e%2e//evil.com",
            "/%2E%2E/%2E%2E//evil.com",
            "/.//evil.com",
            "/./%2Fevil.com",
            "/a/..//evil.com",
            "https:evil.com",
            "https:/evil.com",
            "https:good.com",
            "https:/good.com",
            "http://evil.com",
            "https://evil.com",
            "https://evil.com/good.com",
            "//evil.com@good.com",
            "//good.com",
            "https://good.com@evil.com",
            "https://user@good.com/",
            "https://user:pass@good.com/",
            "https://evil.com\\@good.com",
            "https://evil.com\\.good.com",
            "https://good.com.evil.com",
            "https://good.com.evil.com/",
            "https://evilgood.com",
            "https://good.com%2F@evil.com",
            "https://good.com%2f.evil.com",
            "https://%67ood.com/",
            "https://evil.com%23.good.com",
            "https://evil.com?.good.com",
            "https://evil.com#.good.com",
            "https://evil.com\u{FF0F}good.com",
            "https://evil.com\u{FF0F}.good.com",
            "//evil%E3%80%82com",
            "https://evil\u{3002}com",
            "https://app\u{3002}good.com",
            "https://аpp.good.com/",
            "https://good.com./",
            "https://.good.com/",
            "https://app..good.com/",
            "https://good.com:/",
            "https://good.com:0/",
            "https://good.com:65536/",
            "https://good.com:443:443/",
            "https://good.com:8443a/",
            "https://[::1]/",
            "https:///good.com",
            "https://",
            "http:\\\\evil.com",
            "https:\\\\good.com",
            "ftp://good.com/",
            "ws://good.com/",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "javascript://good.com/%0Aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            &long_path,
            &long_url,
        ];
        let allowed = rules();
        for rd in refused {
            assert_eq!(
                safe_return_url(rd, &allowed),
                None,
                "{rd:?} must be refused"
            );
        }
    }

    #[test]
    fn safe_targets_are_accepted_and_normalised() {
        let allowed = rules();
        for (rd, expected) in [
            ("/", "/"),
            ("/app", "/app"),
            ("/app?x=1#frag", "/app?x=1#frag"),
            ("/a/b%20c", "/a/b%20c"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/a/./b/../c", "/a/c"),
            ("/..", "/"),
            ("/app?next=//evil.com", "/app?next=//evil.com"),
            ("/app?next=%2F%2Fevil.com", "/app?next=%2F%2Fevil.com"),
            ("/search?q=a%2Fb", "/search?q=a%2Fb"),
            ("/%7Euser", "/%7Euser"),
            ("/x\"y", "/x%22y"),
            ("https://app.good.com/x", "https://app.good.com/x"),
            ("https://a.b.good.com/x?y#z", "https://a.b.good.com/x?y#z"),
            ("https://good.com:8443/", "https://good.com:8443/"),
            ("https://good.com", "https://good.com/"),
            ("https://good.com:443/x", "https://good.com/x"),
            ("http://good.com/x", "http://good.com/x"),
            ("HTTPS://APP.Good.COM/Path", "https://app.good.com/Path"),
            ("https://partner.example/cb", "https://partner.example/cb"),
            (
                "https://xn--bcher-kva.good.com/",
                "https://xn--bcher-kva.good.com/",
            ),
        ] {
            assert_eq!(
                safe_return_url(rd, &allowed).as_deref(),
                Some(expected),
                "{rd:?}"
            );
        }
    }

    #[test]
    fn absolute_urls_need_an_allowed_host() {
        assert_eq!(safe_return_url("https://good.com/", &[]), None);
        assert_eq!(safe_return_url("/ok", &[]).as_deref(), Some("/ok"));
        // Suffix is not the apex; Exact is not the subdomains.
        let suffix = [HostRule::Suffix("good.com".into())];
        assert_eq!(safe_return_url("https://good.com/", &suffix), None);
        assert!(safe_return_url("https://x.good.com/", &suffix).is_some());
        let exact = [HostRule::Exact("good.com".into())];
        assert_eq!(safe_return_url("https://x.good.com/", &exact), None);
        assert!(safe_return_url("https://good.com:8443/", &exact).is_some());
    }

    #[test]
    fn numeric_hosts_are_taken_as_the_browser_reads_them() {
        let allowed = [
            HostRule::Exact("127.0.0.1".into()),
            HostRule::Exact("127.1".into()),
        ];
        assert_eq!(
            safe_return_url("http://127.0.0.1:8080/x", &allowed).as_deref(),
            Some("http://127.0.0.1:8080/x")
        );
        // A browser reads 127.1 as 127.0.0.1: not the host the rule named.
        assert_eq!(safe_return_url("http://127.1/", &allowed), None);
        let hex = [HostRule::Exact("0x7f000001".into())];
        assert_eq!(safe_return_url("http://0x7f000001/", &hex), None);
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            HostRule::parse("*.Example.com"),
            HostRule::Suffix("example.com".into())
        );
        assert_eq!(
            HostRule::parse("App.example.com"),
            HostRule::Exact("app.example.com".into())
        );

        let suffix = HostRule::Suffix("example.com".into());
        assert!(suffix.matches("a.example.com"));
        assert!(suffix.matches("a.b.example.com"));
        assert!(suffix.matches("A.EXAMPLE.COM"));
        assert!(!suffix.matches("example.com"));
        assert!(!suffix.matches(".example.com"));
        assert!(!suffix.matches("evilexample.com"));
        assert!(!suffix.matches("example.com.evil"));
        // The wildcard spelling in the rule itself is understood.
        assert!(HostRule::Suffix("*.example.com".into()).matches("a.example.com"));
        assert!(!HostRule::Suffix("*.example.com".into()).matches("example.com"));
        // Empty rules match nothing.
        assert!(!HostRule::Suffix(String::new()).matches("anything.com"));
        assert!(!HostRule::Suffix("*.".into()).matches("a.com"));
        assert!(!HostRule::Exact(String::new()).matches(""));

        let exact = HostRule::Exact("Example.com".into());
        assert!(exact.matches("example.com"));
        assert!(!exact.matches("a.example.com"));
    }

    #[test]
    fn percent_decoding_rounds() {
        assert_eq!(decoded_forms("/plain"), Some(vec![]));
        assert_eq!(
            decoded_forms("/%2541"),
            Some(vec![b"/%41".to_vec(), b"/A".to_vec()])
        );
        assert_eq!(decoded_forms("/%4"), None, "malformed");
        assert_eq!(decoded_forms("/%g0"), None, "malformed");
        assert_eq!(decoded_forms("/%+1"), None, "not hex");
        // A malformed escape that appears only after decoding is text, not an error.
        assert_eq!(decoded_forms("/%25zz"), Some(vec![b"/%zz".to_vec()]));
        assert_eq!(
            decoded_forms("/%250A"),
            None,
            "a control byte after two rounds"
        );
        assert_eq!(
            decoded_forms("/%25252541"),
            None,
            "still decoding after three rounds"
        );
    }
}

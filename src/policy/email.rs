//! The `email_domain` condition: the `email` claim lies in a domain or one of its subdomains.
//!
//! The address is parsed strictly, because every lenient reading is a way in:
//! - exactly one `@` (`a@evil.com@corp.com` is refused, and so are quoted local parts that contain
//!   an `@`), a non-empty local part, no spaces or control characters;
//! - the domain is a syntactically valid host name: ASCII letters, digits and `-`, labels of 1 to
//!   63 characters not starting or ending with `-`, 253 characters at most. A trailing dot
//!   (`a@corp.com.`) is refused: providers do not issue such addresses, and accepting one would
//!   make the match depend on an unusual spelling;
//! - the domain equals the rule's domain or ends with `.` + it, compared case-insensitively, so
//!   `eu.corp.com` is in `corp.com` but `evilcorp.com` and `corp.com.evil.net` are not.
//!
//! `email_verified` (OIDC Core §5.1): `false`, or any value other than `true`/`"true"`, fails the
//! condition unless the rule sets `allow_unverified_email`. An absent (or `null`) `email_verified`
//! passes: many providers omit it for directory accounts whose addresses they issued themselves,
//! and refusing those would make the condition unusable with them.
//!
//! Invariant: a missing, non-string or malformed `email` fails the condition; nothing panics or
//! allocates at request time.

use serde_json::{Map, Value};

/// Longest host name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_HOST_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// A compiled `email_domain` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EmailDomain {
    /// Lower-case ASCII host name.
    domain: Box<str>,
    /// Whether `email_verified: false` is accepted.
    allow_unverified: bool,
}

/// Why an `email_domain` condition held or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmailOutcome {
    /// The address is in the domain and not known to be unverified.
    Passed,
    /// No `email` claim, or not a string.
    Missing,
    /// `email` is not one well-formed address.
    Malformed,
    /// The address is in another domain.
    OtherDomain,
    /// `email_verified` says the address is not verified.
    Unverified,
}

impl EmailOutcome {
    /// A short explanation of a failure, for `explain`.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            EmailOutcome::Passed => "in the domain",
            EmailOutcome::Missing => "no `email` claim (a string)",
            EmailOutcome::Malformed => "`email` is not one well-formed address",
            EmailOutcome::OtherDomain => "the address is in another domain",
            EmailOutcome::Unverified => "`email_verified` is not true",
        }
    }
}

impl EmailDomain {
    /// Compiles the configured domain. Errors say how to write it instead.
    pub(crate) fn parse(raw: &str, allow_unverified: bool) -> Result<EmailDomain, String> {
        if raw.starts_with('@') {
            return Err(format!(
                "`{raw}`: write the domain without `@`, as in `{}`",
                raw.trim_start_matches('@')
            ));
        }
        if let Some(rest) = raw.strip_prefix("*.") {
            return Err(format!("`{raw}`: subdomains always match; write `{rest}`"));
        }
        if raw.len() > 1
            && let Some(rest) = raw.strip_suffix('.')
        {
            return Err(format!(
                "`{raw}`: write the domain without the trailing dot: `{rest}`"
            ));
        }
        if !raw.is_ascii() {
            return Err(format!(
                "`{raw}`: not ASCII; write an internationalised domain in its `xn--` form"
            ));
        }
        if !is_host_name(raw) {
            return Err(format!("`{raw}` is not a valid domain name"));
        }
        Ok(EmailDomain {
            domain: raw.to_ascii_lowercase().into(),
            allow_unverified,
        })
    }

    /// The domain, lower-case.
    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    /// Checks the claims. See the module doc for the rules.
    pub(crate) fn check(&self, claims: &Map<String, Value>) -> EmailOutcome {
        let Some(Value::String(email)) = claims.get("email") else {
            return EmailOutcome::Missing;
        };
        let Some(domain) = address_domain(email) else {
            return EmailOutcome::Malformed;
        };
        if !in_domain(domain, &self.domain) {
            return EmailOutcome::OtherDomain;
        }
        if !self.allow_unverified && !verified_or_unstated(claims.get("email_verified")) {
            return EmailOutcome::Unverified;
        }
        EmailOutcome::Passed
    }
}

/// The domain of a strictly parsed address, or `None` when it is not one well-formed address.
fn address_domain(email: &str) -> Option<&str> {
    let (local, domain) = email.split_once('@')?;
    let clean = |s: &str| !s.is_empty() && !s.bytes().any(|b| b.is_ascii_control() || b == b' ');
    (clean(local) && !domain.contains('@') && is_host_name(domain)).then_some(domain)
}

/// Whether `host` is a syntactically valid ASCII host name, without a trailing dot. Either case.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether the valid host name `host` is `domain` (lower-case) or a subdomain of it.
fn in_domain(host: &str, domain: &str) -> bool {
    let (host, domain) = (host.as_bytes(), domain.as_bytes());
    match host.len().checked_sub(domain.len()) {
        Some(0) => host.eq_ignore_ascii_case(domain),
        Some(dot) => {
            host.get(dot - 1) == Some(&b'.')
                && host
                    .get(dot..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(domain))
        }
        None => false,
    }
}

/// `email_verified` absent, `null`, `true` or `"true"` (any case).
fn verified_or_unstated(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(true)) => true,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn addresses_match_on_label_boundaries() {
        let rule = EmailDomain::parse("corp.com", false).expect("valid");
        let cases = [
            ("a@corp.com", EmailOutcome::Passed),
            ("a@eu.corp.com", EmailOutcome::Passed),
            ("a@x.eu.corp.com", EmailOutcome::Passed),
            ("A.B+tag@CORP.Com", EmailOutcome::Passed),
            ("a@evil.com@corp.com", EmailOutcome::Malformed),
            ("\"a@b\"@corp.com", EmailOutcome::Malformed),
            ("a@evilcorp.com", EmailOutcome::OtherDomain),
            ("a@corp.com.evil.net", EmailOutcome::OtherDomain),
            ("a@com", EmailOutcome::OtherDomain),
            ("@corp.com", EmailOutcome::Malformed),
            ("a@corp.com.", EmailOutcome::Malformed),
            ("a@.corp.com", EmailOutcome::Malformed),
            ("a@x..corp.com", EmailOutcome::Malformed),
            ("a@", EmailOutcome::Malformed),
            ("corp.com", EmailOutcome::Malformed),
            ("a b@corp.com", EmailOutcome::Malformed),
            ("a\n@corp.com", EmailOutcome::Malformed),
            ("a@corp.com\n", EmailOutcome::Malformed),
            ("a@córp.com", EmailOutcome::Malformed),
            ("a@-x.corp.com", EmailOutcome::Malformed),
            ("", EmailOutcome::Malformed),
        ];
        for (email, want) in cases {
            assert_eq!(
                rule.check(&claims(json!({"email": email}))),
                want,
                "{email}"
            );
        }
    }

    #[test]
    fn missing_or_non_string_email_fails_closed() {
        let rule = EmailDomain::parse("corp.com", true).expect("valid");
        for value in [
            json!({}),
            json!({"email": null}),
            json!({"email": ["a@corp.com"]}),
            json!({"email": 1}),
            json!({"mail": "a@corp.com"}),
        ] {
            assert_eq!(
                rule.check(&claims(value.clone())),
                EmailOutcome::Missing,
                "{value}"
            );
        }
    }

    #[test]
    fn unverified_addresses_fail_unless_allowed() {
        let strict = EmailDomain::parse("corp.com", false).expect("valid");
        let lenient = EmailDomain::parse("corp.com", true).expect("valid");
        let cases = [
            (None, EmailOutcome::Passed),
            (Some(json!(null)), EmailOutcome::Passed),
            (Some(json!(true)), EmailOutcome::Passed),
            (Some(json!("true")), EmailOutcome::Passed),
            (Some(json!("TRUE")), EmailOutcome::Passed),
            (Some(json!(false)), EmailOutcome::Unverified),
            (Some(json!("false")), EmailOutcome::Unverified),
            (Some(json!("no")), EmailOutcome::Unverified),
            (Some(json!(0)), EmailOutcome::Unverified),
        ];
        for (verified, want) in cases {
            let mut c = claims(json!({"email": "a@corp.com"}));
            if let Some(v) = verified.clone() {
                c.insert("email_verified".into(), v);
            }
            assert_eq!(strict.check(&c), want, "{verified:?}");
            assert_eq!(
                lenient.check(&c),
                EmailOutcome::Passed,
                "{verified:?} allowed"
            );
        }
    }

    #[test]
    fn another_domain_is_reported_before_verification() {
        let rule = EmailDomain::parse("corp.com", false).expect("valid");
        let c = claims(json!({"email": "a@other.com", "email_verified": false}));
        assert_eq!(rule.check(&c), EmailOutcome::OtherDomain);
    }

    #[test]
    fn configured_domains_are_validated() {
        let good = [
            ("corp.com", "corp.com"),
            ("Corp.COM", "corp.com"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("localhost", "localhost"),
        ];
        for (raw, stored) in good {
            assert_eq!(
                EmailDomain::parse(raw, false).map(|d| d.domain().to_owned()),
                Ok(stored.to_owned()),
                "{raw}"
            );
        }
        let bad = [
            ("", "not a valid domain"),
            ("@corp.com", "without `@`"),
            ("*.corp.com", "subdomains always match"),
            ("corp.com.", "trailing dot"),
            (".", "not a valid domain"),
            ("córp.com", "not ASCII"),
            ("corp..com", "not a valid domain"),
            ("-corp.com", "not a valid domain"),
            ("corp_x.com", "not a valid domain"),
            ("a@corp.com", "not a valid domain"),
            ("corp.com/x", "not a valid domain"),
        ];
        for (raw, want) in bad {
            match EmailDomain::parse(raw, false) {
                Ok(_) => panic!("{raw} was accepted"),
                Err(e) => assert!(e.contains(want), "{raw}: {e}"),
            }
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(EmailDomain::parse(&long, false).is_err());
    }
}

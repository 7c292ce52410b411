//! `sessions.cookie_domain`: one sign-in shared by the hosts under a domain. The domain's own
//! syntax, and whether a host the gateway answers on is under it (a browser refuses a cookie
//! whose `Domain` does not cover the host that set it, so a host outside would loop on sign-in).

use crate::routing::HostMatch;

/// The domain as cookies carry it (lower case), or why `raw` cannot be one.
pub(super) fn parse(raw: &str) -> Result<String, String> {
    if raw.starts_with('.') {
        return Err(format!(
            "write the domain without the leading dot (`{}`)",
            raw.trim_start_matches('.')
        ));
    }
    let domain = raw.to_ascii_lowercase();
    if domain.parse::<std::net::IpAddr>().is_ok() {
        return Err("an IP address cannot be shared by other hosts: name a domain".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() > 253 || !labels.iter().all(label_ok) {
        return Err(format!(
            "`{raw}` is not a domain name (no scheme, port or path)"
        ));
    }
    if labels.len() < 2 {
        return Err(format!(
            "`{raw}` is a top-level domain: browsers refuse cookies for it; name the site's domain (`example.com`)"
        ));
    }
    Ok(domain)
}

/// Whether every host `host` matches is `domain` or under it.
pub(super) fn covers(domain: &str, host: &HostMatch) -> bool {
    match host {
        HostMatch::Any => false,
        HostMatch::Exact(h) | HostMatch::Suffix(h) => under(domain, h),
    }
}

/// Whether host name `host` is `domain` or a subdomain of it.
pub(super) fn under(domain: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_names_of_two_labels_or_more() {
        assert_eq!(parse("Example.COM").as_deref(), Ok("example.com"));
        assert_eq!(
            parse("corp.example.co.uk").as_deref(),
            Ok("corp.example.co.uk")
        );
        for bad in [
            ".example.com",
            "com",
            "localhost",
            "10.0.0.1",
            "::1",
            "example.com:443",
            "https://example.com",
            "exa mple.com",
            "-a.example.com",
            "a..example.com",
            "example.com.",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse(".example.com")
                .expect_err("a leading dot")
                .contains("`example.com`")
        );
    }

    #[test]
    fn hosts_are_under_the_domain_or_not() {
        let d = "example.com";
        assert!(under(d, "example.com"));
        assert!(under(d, "a.example.com"));
        assert!(under(d, "A.B.Example.com"));
        assert!(!under(d, "badexample.com"));
        assert!(!under(d, "example.com.evil.test"));
        assert!(!under(d, "com"));
        assert!(covers(d, &HostMatch::Suffix("example.com".into())));
        assert!(covers(d, &HostMatch::Suffix("apps.example.com".into())));
        assert!(!covers(d, &HostMatch::Suffix("com".into())));
        assert!(
            !covers(d, &HostMatch::Any),
            "a route on every host is not under any domain"
        );
    }
}

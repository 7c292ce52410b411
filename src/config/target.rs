//! Upstream targets as configured: `IP:port`, used as it is, or `name:port`, a DNS name whose
//! addresses the resolver in [`crate::upstream::dns`] keeps current. Parsing is pure: nothing is
//! looked up at load.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// One configured target of an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An `IP:port`, used as it is.
    Addr(SocketAddr),
    /// A DNS name and a port: every address the name resolves to is a target.
    Name {
        /// The name, as configured (lowercase).
        host: Arc<str>,
        /// The port of every address.
        port: u16,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => write!(f, "{a}"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// An upstream target: `IP:port` (an IPv6 address in brackets), else `name:port` with a DNS
/// name (see [`is_dns_name`]), kept lowercase.
pub(super) fn parse(raw: &str) -> Result<Target, String> {
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(Target::Addr(addr));
    }
    let Some((host, port)) = raw.rsplit_once(':') else {
        return Err(format!("`{raw}` has no port: write IP:port or name:port"));
    };
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p != 0) else {
        return Err(format!("`{raw}`: `{port}` is not a port (1-65535)"));
    };
    if !is_dns_name(host) {
        return Err(format!(
            "`{raw}` is neither an IP:port (IPv6 in brackets: [::1]:80) nor a DNS name:port"
        ));
    }
    Ok(Target::Name {
        host: Arc::from(host.to_ascii_lowercase()),
        port,
    })
}

/// A DNS host name (RFC 1123 §2.1): dot-separated labels of 1-63 letters, digits, `-` (and
/// `_`, which some internal zones use), none starting or ending with `-`; at most 253 bytes
/// plus an optional final dot. The last label is not all digits, so a mistyped IP address
/// (`10.0.0.300`) is not taken for a name.
pub(super) fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.split('.').all(label_ok)
        && host
            .rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_addresses_or_names_with_a_port() {
        let name = |host: &str, port| {
            Ok(Target::Name {
                host: Arc::from(host),
                port,
            })
        };
        let addr = |s: &str| Ok(Target::Addr(s.parse().expect("test address")));
        for (raw, want) in [
            ("10.0.0.5:8080", addr("10.0.0.5:8080")),
            ("[::1]:8443", addr("[::1]:8443")),
            ("app.internal:9001", name("app.internal", 9001)),
            ("App.Internal:9001", name("app.internal", 9001)),
            ("localhost:80", name("localhost", 80)),
            (
                "web.default.svc.cluster.local.:80",
                name("web.default.svc.cluster.local.", 80),
            ),
            ("my_service:3000", name("my_service", 3000)),
            ("a-b.c-d:1", name("a-b.c-d", 1)),
        ] {
            assert_eq!(parse(raw), want, "{raw}");
        }
    }

    #[test]
    fn garbage_targets_are_refused_with_the_reason() {
        let long_label = format!("{}.test:80", "a".repeat(64));
        let long_name = format!("{}:80", ["abcdefghi"; 26].join("."));
        for (raw, says) in [
            ("app.internal", "has no port"),
            ("app.internal:", "is not a port"),
            ("app.internal:0", "is not a port"),
            ("app.internal:65536", "is not a port"),
            ("app.internal:http", "is not a port"),
            (":80", "neither an IP:port"),
            ("10.0.0.300:80", "neither an IP:port"),
            ("::1:80", "neither an IP:port"),
            ("-app.test:80", "neither an IP:port"),
            ("app-.test:80", "neither an IP:port"),
            ("app..test:80", "neither an IP:port"),
            ("app test:80", "neither an IP:port"),
            ("http://app.test:80", "neither an IP:port"),
            ("app.test/x:80", "neither an IP:port"),
            ("äpp.test:80", "neither an IP:port"),
            (long_label.as_str(), "neither an IP:port"),
            (long_name.as_str(), "neither an IP:port"),
        ] {
            match parse(raw) {
                Ok(t) => panic!("{raw} was taken as {t:?}"),
                Err(e) => assert!(e.contains(says) && e.contains(raw), "{raw}: {e}"),
            }
        }
    }

    #[test]
    fn dns_servers_and_targets_are_checked_at_load_with_their_line() {
        let yaml = "server:
  listen: [\"127.0.0.1:8080\"]
  admin: \"127.0.0.1:9090\"
  dns:
    servers: [\"127.0.0.1:5353\", \"dns.example:53\"]
upstreams:
  app: {targets: [\"app.internal:9001\", \"not a name:80\"]}
routes:
  - name: app
    upstream: app
    auth: public
";
        let errors = crate::config::load_str(yaml, "t.yaml")
            .expect_err("two bad values")
            .0;
        let found: Vec<(&str, usize)> = errors
            .iter()
            .map(|e| (e.key.as_str(), e.position.line))
            .collect();
        assert_eq!(
            found,
            vec![
                ("server.dns.servers[1]", 5),
                ("upstreams.app.targets[1]", 7)
            ],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("not an IP:port"), "{errors:?}");

        let empty = yaml.replace(
            "servers: [\"127.0.0.1:5353\", \"dns.example:53\"]",
            "servers: []",
        );
        let errors = crate::config::load_str(&empty, "t.yaml")
            .expect_err("no servers")
            .0;
        assert!(
            errors
                .iter()
                .any(|e| e.key == "server.dns.servers" && e.message.contains("at least one")),
            "{errors:?}"
        );

        let good = yaml
            .replace(", \"dns.example:53\"", "")
            .replace(", \"not a name:80\"", ", \"10.0.0.5:8080\"");
        let config = crate::config::load_str(&good, "t.yaml").expect("valid");
        assert_eq!(
            config.server.dns.servers,
            vec!["127.0.0.1:5353".parse::<SocketAddr>().expect("address")]
        );
        let targets: Vec<String> = config.upstreams[0]
            .targets
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(targets, vec!["app.internal:9001", "10.0.0.5:8080"]);
        let unknown = yaml.replace("    servers:", "    search: [a]\n    servers:");
        assert!(crate::config::load_str(&unknown, "t.yaml").is_err());
        let system = yaml
            .replace(
                "  dns:\n    servers: [\"127.0.0.1:5353\", \"dns.example:53\"]\n",
                "",
            )
            .replace(", \"not a name:80\"", "");
        let config = crate::config::load_str(&system, "t.yaml").expect("valid");
        assert!(config.server.dns.servers.is_empty(), "the system resolver");
    }
}

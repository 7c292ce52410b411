//! The operational log: `tracing` events on standard error, as text lines or JSON objects
//! (`server.log_format`), filtered by `PORTCULLIS_LOG` (an `EnvFilter` spec, default `info`).
//!
//! pingora logs through the `log` crate, bridged into `tracing` (target `pingora_core::…`); its
//! start-up and shutdown chatter is INFO there, so `pingora` targets are kept at WARN unless
//! `PORTCULLIS_LOG` names a `pingora` target itself.
//!
//! Events name people through [`LoggedUser`] only: a claim value with its control characters
//! escaped and its length bounded, never a token, cookie or secret.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::config::file::LogFormatFile;

/// The environment variable holding the filter.
pub const ENV: &str = "PORTCULLIS_LOG";

/// Longest user name logged, bytes; a longer one is cut (at a character boundary) and marked
/// with `…`.
pub const MAX_USER: usize = 256;

/// The filter: `spec` (from [`ENV`]) or `info`, with `pingora=warn` unless `spec` names a
/// `pingora` target. An unparsable spec falls back to the default (and says so once started).
pub fn filter(spec: Option<&str>) -> (EnvFilter, Option<String>) {
    let default = || EnvFilter::new("info,pingora=warn");
    match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => (default(), None),
        Some(spec) => {
            let full = if spec.contains("pingora") {
                spec.to_owned()
            } else {
                format!("{spec},pingora=warn")
            };
            match EnvFilter::try_new(&full) {
                Ok(f) => (f, None),
                Err(e) => (default(), Some(format!("{ENV} ignored: {e}"))),
            }
        }
    }
}

/// Installs the process's subscriber: `format` on standard error, colours only on a terminal.
/// Called once, before anything logs.
pub fn init(format: LogFormat) {
    let spec = std::env::var(ENV).ok();
    let (filter, problem) = filter(spec.as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // Flattened: `message` and the event's fields at the top level, beside `level`.
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    if installed.is_ok()
        && let Some(problem) = problem
    {
        tracing::warn!("{problem}");
    }
}

/// `server.log_format` of the config file at `path`, read ahead of the full load so that every
/// line — the load's own warnings too — comes out in one format. Text when the file cannot be
/// read or parsed (the load then reports why).
pub fn format_of(path: &Path) -> LogFormat {
    #[derive(Deserialize)]
    struct Head {
        server: Option<Server>,
    }
    #[derive(Deserialize)]
    struct Server {
        log_format: Option<LogFormatFile>,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return LogFormat::Text;
    };
    match serde_yaml_ng::from_str::<Head>(&text) {
        Ok(Head {
            server:
                Some(Server {
                    log_format: Some(LogFormatFile::Json),
                }),
        }) => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// A user name as logs carry it: control characters escaped (`\n`, `\u{1b}`), at most
/// [`MAX_USER`] bytes. Borrowed when the name needs neither.
pub fn user_label(name: &str) -> Cow<'_, str> {
    if name.len() <= MAX_USER && !name.chars().any(char::is_control) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(MAX_USER + 4);
    for c in name.chars() {
        let before = out.len();
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > MAX_USER {
            out.truncate(before);
            out.push('…');
            break;
        }
    }
    Cow::Owned(out)
}

/// The user of `claims` under the claim named `claim` (dotted paths as in `allow` rules):
/// strings as they are, numbers in JSON form, through [`user_label`]. `None` when the claim is
/// absent or not a string or number.
pub fn user_of<'a>(
    claims: &'a serde_json::Map<String, serde_json::Value>,
    claim: &str,
) -> Option<Cow<'a, str>> {
    match crate::policy::lookup_claim(claims, claim)? {
        serde_json::Value::String(s) => Some(user_label(s)),
        serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// A user for an event's `user` field (`%` in `tracing` macros): see [`user_of`]; `-` when
/// unknown.
pub struct LoggedUser<'a>(pub Option<Cow<'a, str>>);

impl fmt::Display for LoggedUser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_deref().unwrap_or("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pingora_stays_at_warn_unless_the_spec_names_it() {
        for (spec, want) in [
            (None, "info,pingora=warn"),
            (Some("debug"), "debug,pingora=warn"),
            (Some("portcullis=debug"), "portcullis=debug,pingora=warn"),
            (Some("info,pingora_core=info"), "info,pingora_core=info"),
        ] {
            let (f, problem) = filter(spec);
            assert!(problem.is_none(), "{spec:?}: {problem:?}");
            let want = EnvFilter::new(want).to_string();
            assert_eq!(f.to_string(), want, "{spec:?}");
        }
    }

    #[test]
    fn a_bad_spec_falls_back_and_says_why() {
        let (f, problem) = filter(Some("info,[{"));
        assert_eq!(
            f.to_string(),
            EnvFilter::new("info,pingora=warn").to_string()
        );
        assert!(problem.is_some_and(|p| p.contains(ENV)));
    }

    #[test]
    fn user_names_are_escaped_and_bounded() {
        assert!(matches!(user_label("alice"), Cow::Borrowed("alice")));
        assert_eq!(
            user_label("eve\nINFO forged line\u{1b}[0m"),
            "eve\\nINFO forged line\\u{1b}[0m"
        );
        let long = "ü".repeat(MAX_USER);
        let cut = user_label(&long);
        assert!(cut.len() <= MAX_USER + '…'.len_utf8(), "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'ü'));
    }

    #[test]
    fn users_come_from_the_configured_claim() {
        let claims =
            json!({"sub": "s-1", "email": "a@x", "id": 42, "o": {"u": "deep"}, "g": ["x"]});
        let claims = claims.as_object().expect("object");
        assert_eq!(user_of(claims, "sub").as_deref(), Some("s-1"));
        assert_eq!(user_of(claims, "email").as_deref(), Some("a@x"));
        assert_eq!(user_of(claims, "id").as_deref(), Some("42"));
        assert_eq!(user_of(claims, "o.u").as_deref(), Some("deep"));
        assert_eq!(user_of(claims, "g"), None);
        assert_eq!(user_of(claims, "missing"), None);
        assert_eq!(LoggedUser(None).to_string(), "-");
    }
}

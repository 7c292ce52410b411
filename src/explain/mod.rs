//! `portcullis explain`: what the running gateway would do with one request, step by step.
//!
//! The request goes through the same code the gateway runs (limits, admission, the route's
//! authentication and rules, the header plan, the path rewrite), never to a backend. The
//! gateway's own endpoints under `auth_prefix` are described as `proxy::endpoints` answers them
//! ([`endpoints`]). One [`Report`] is built and printed either for people (one `label: text` line
//! per step, times as RFC 3339 plus "in 59 min") or, with `--json`, as one JSON object.
//!
//! Exit status: 0 when the request would be proxied or answered with success (2xx/3xx) by the
//! gateway, 1 when refused, 2 when the request itself cannot be built.

mod auth;
mod endpoints;
mod upstream;

use std::process::ExitCode;

use http::{HeaderName, HeaderValue, Method, Request, request::Parts};
use serde::Serialize;

use portcullis::routing::{AuthPolicy, admit, endpoint, over_limits};
use portcullis::snapshot::Snapshot;

/// Everything `explain` found, printed as text or JSON.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// `METHOD URL` as given.
    pub request: String,
    /// Each step, in the order the gateway takes them.
    pub steps: Vec<Step>,
    /// The route taken, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteInfo>,
    /// The gateway endpoint asked for (`/start`, `/userinfo`, …), if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// What the backend would receive, when the request would be proxied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_request: Option<upstream::UpstreamRequest>,
    /// `proxied`, `answered` (by the gateway itself) or `refused`.
    pub verdict: &'static str,
    /// The status the gateway would answer with itself (not for `proxied`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// One step: a short label and what happened.
#[derive(Debug, Serialize)]
pub struct Step {
    /// `host`, `route`, `token`, `allow[0]`, …
    pub label: String,
    /// For people; no Rust `Debug` shapes, no secrets.
    pub text: String,
}

/// The route a request takes.
#[derive(Debug, Serialize)]
pub struct RouteInfo {
    /// Its index in `routes:`.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// `public`, `session`, `bearer` or `session_or_bearer`.
    pub auth: &'static str,
    /// The provider's name, for protected routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The upstream's name.
    pub upstream: String,
}

impl Report {
    /// Adds a step.
    pub fn step(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.steps.push(Step {
            label: label.into(),
            text: text.into(),
        });
    }

    /// Ends with the gateway answering `status` itself.
    fn answer(&mut self, status: u16, text: impl Into<String>) {
        let ok = (200..400).contains(&status);
        self.verdict = if ok { "answered" } else { "refused" };
        self.status = Some(status);
        self.step(if ok { "answer" } else { "refused" }, text);
    }

    fn print_text(&self) {
        let line = |label: &str, text: &str| println!("{:<10} {text}", format!("{label}:"));
        line("request", &self.request);
        for s in &self.steps {
            line(&s.label, &s.text);
        }
        if let Some(up) = &self.upstream_request {
            up.print(line);
        }
        line("verdict", self.verdict);
    }
}

/// Prints the decision for `method url` with `headers` under `snap`, as text or (`json`) one
/// JSON object. See the module doc for the exit status.
pub fn explain(
    snap: Snapshot,
    method: &str,
    url: &str,
    headers: &[String],
    json: bool,
) -> ExitCode {
    let parts = match build_request(method, url, headers) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut report = Report {
        request: format!("{method} {url}"),
        ..Report::default()
    };
    judge(&snap, &parts, url, &mut report);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("cannot print the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        report.print_text();
    }
    if report.verdict == "refused" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn build_request(method: &str, url: &str, headers: &[String]) -> Result<Parts, String> {
    let m =
        Method::from_bytes(method.as_bytes()).map_err(|_| format!("`{method}` is not a method"))?;
    let mut builder = Request::builder().method(m).uri(url);
    for raw in headers {
        let (name, value) = raw
            .split_once(':')
            .ok_or_else(|| format!("header `{raw}` is not `Name: value`"))?;
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            return Err(format!("header `{raw}` is not valid"));
        };
        builder = builder.header(name, value);
    }
    let request = builder
        .body(())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    Ok(request.into_parts().0)
}

/// Runs the request through the gateway's steps, in its order, into `report`.
fn judge(snap: &Snapshot, parts: &Parts, url: &str, report: &mut Report) {
    if let Some(r) = over_limits(&snap.config.server.limits, parts, url.as_bytes()) {
        return report.answer(
            r.status,
            format!("{} {} ({}: server.limits)", r.status, r.message, r.reason),
        );
    }
    let prefix = &snap.config.server.auth_prefix;
    if let Some(name) = endpoint(prefix, parts) {
        return endpoints::explain(snap, parts, &name, report);
    }
    let admitted = match admit(&snap.router, prefix, parts, url.as_bytes()) {
        Ok(a) => a,
        Err(r) => {
            return report.answer(
                r.status,
                format!("{} {} ({})", r.status, r.message, r.reason),
            );
        }
    };
    let route = &snap.router.routes()[admitted.route];
    let path = admitted
        .rewritten_path
        .clone()
        .unwrap_or_else(|| parts.uri.path().to_owned());
    report.step("host", display_host(&admitted.host));
    report.step("path", normalised_note(&path, parts.uri.path()));
    let provider = route
        .provider
        .and_then(|i| snap.config.providers.keys().nth(i))
        .cloned();
    let upstream = &snap.config.upstreams[route.upstream];
    let auth = auth_name(route.auth);
    let mut text = format!("routes[{}] `{}`, auth {auth}", admitted.route, route.name);
    if let Some(p) = &provider {
        text.push_str(&format!(", provider `{p}`"));
    }
    report.step("route", text);
    report.route = Some(RouteInfo {
        index: admitted.route,
        name: route.name.to_string(),
        auth,
        provider,
        upstream: upstream.name.to_string(),
    });
    let identity = if route.auth == AuthPolicy::Public {
        None
    } else {
        match auth::authenticate(snap, route, parts, &path, report) {
            auth::Outcome::Passed(identity) => Some(identity),
            auth::Outcome::Refused(status) => {
                report.verdict = "refused";
                report.status = Some(status);
                return;
            }
        }
    };
    let targets: Vec<String> = upstream.targets.iter().map(|t| t.to_string()).collect();
    report.step(
        "upstream",
        format!("`{}`: {}", upstream.name, targets.join(", ")),
    );
    report.upstream_request = Some(upstream::plan(
        snap,
        route,
        parts,
        &admitted,
        &path,
        identity.as_ref(),
    ));
    report.verdict = "proxied";
}

/// The host routes matched on, or a note when there is none.
fn display_host(host: &str) -> String {
    if host.is_empty() {
        "none (no Host header and no host in the URL): only routes without `match.host` apply"
            .into()
    } else {
        host.to_string()
    }
}

fn normalised_note(path: &str, raw: &str) -> String {
    if path == raw {
        path.to_string()
    } else {
        format!("{path} (normalised from {raw})")
    }
}

/// The config's spelling of a route's auth.
pub fn auth_name(auth: AuthPolicy) -> &'static str {
    match auth {
        AuthPolicy::Public => "public",
        AuthPolicy::Session => "session",
        AuthPolicy::Bearer => "bearer",
        AuthPolicy::SessionOrBearer => "session_or_bearer",
    }
}

/// `unix` as RFC 3339 with how far it is from `now`: `2026-12-04T19:08:00Z (in 59 min)`.
pub fn when(unix: u64, now: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let stamp = humantime::format_rfc3339_seconds(at);
    let (ahead, gap) = if unix >= now {
        (true, unix - now)
    } else {
        (false, now - unix)
    };
    let span = match gap {
        0..=59 => format!("{gap} s"),
        60..=3_599 => format!("{} min", gap / 60),
        3_600..=172_799 => match (gap / 3_600, gap % 3_600 / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        _ => format!("{} days", gap / 86_400),
    };
    if gap == 0 {
        format!("{stamp} (now)")
    } else if ahead {
        format!("{stamp} (in {span})")
    } else {
        format!("{stamp} ({span} ago)")
    }
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn times_are_rfc3339_with_a_relative_note() {
        let now = 1_800_000_000;
        assert_eq!(when(now + 3_540, now), "2027-01-15T08:59:00Z (in 59 min)");
        assert_eq!(when(now - 180, now), "2027-01-15T07:57:00Z (3 min ago)");
        assert_eq!(when(now, now), "2027-01-15T08:00:00Z (now)");
        assert!(when(now + 12 * 3_600, now).ends_with("(in 12 h)"));
        assert!(when(now + 3_600 + 120, now).ends_with("(in 1 h 2 min)"));
        assert!(when(now - 5 * 86_400, now).ends_with("(5 days ago)"));
    }
}

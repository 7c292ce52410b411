//! `portcullis check`: judge a config file for people or for CI, and exit 0 (no errors, maybe
//! warnings) or 1.
//!
//! Text: each error and warning on its own line, `file:line:column: [warning: ]key: message`,
//! on stderr, then `file: ok (N routes, M upstreams)` on stdout when there is no error. JSON
//! (`--format json`): one object on stdout, `{errors, warnings, summary}`.

use std::path::Path;
use std::process::ExitCode;

use clap::ValueEnum;
use serde_json::{Value, json};

use portcullis::config::{self, CheckOptions, ConfigError, Report};

/// How `check` prints what it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per problem, for people.
    #[default]
    Text,
    /// One JSON object, for CI.
    Json,
}

/// Checks the file at `path` and prints the report in `format`.
pub fn check(path: &Path, offline: bool, format: Format) -> ExitCode {
    let report = config::check(path, CheckOptions { offline });
    match format {
        Format::Text => print_text(path, &report),
        Format::Json => println!("{:#}", to_json(path, &report)),
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_text(path: &Path, report: &Report) {
    for e in &report.errors {
        eprintln!("{e}");
    }
    for w in &report.warnings {
        // The same line as an error's, marked after the position.
        let line = w.to_string();
        let at = w.file.len();
        let head = line[at..].find(": ").map_or(line.len(), |i| at + i + 2);
        eprintln!("{}warning: {}", &line[..head], &line[head..]);
    }
    if let Some(c) = &report.config {
        let mut summary = format!(
            "{}: ok ({}, {})",
            path.display(),
            counted(c.routes.len(), "route"),
            counted(c.upstreams.len(), "upstream")
        );
        if !report.warnings.is_empty() {
            summary.push_str(&format!(", {}", counted(report.warnings.len(), "warning")));
        }
        println!("{summary}");
    }
}

/// `1 route`, `2 routes`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn to_json(path: &Path, report: &Report) -> Value {
    let item = |e: &ConfigError| {
        let known = e.position.line > 0;
        let mut v = json!({
            "file": e.file,
            "line": known.then_some(e.position.line),
            "column": known.then_some(e.position.column),
            "key": e.key,
            "message": e.message,
        });
        if let Some(s) = &e.suggestion {
            v["suggestion"] = json!(s);
        }
        v
    };
    json!({
        "errors": report.errors.iter().map(item).collect::<Vec<_>>(),
        "warnings": report.warnings.iter().map(item).collect::<Vec<_>>(),
        "summary": {
            "file": path.display().to_string(),
            "ok": report.errors.is_empty(),
            "errors": report.errors.len(),
            "warnings": report.warnings.len(),
            "routes": report.config.as_ref().map(|c| c.routes.len()),
            "upstreams": report.config.as_ref().map(|c| c.upstreams.len()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(counted(1, "route"), "1 route");
        assert_eq!(counted(0, "route"), "0 routes");
        assert_eq!(counted(3, "upstream"), "3 upstreams");
    }
}

//! `portcullis check` (and `run`) on invalid configs: every error of the contract's list gives its
//! phrase with a `FILE:LINE:COL:` prefix naming the right line; valid configs pass; `schema`
//! prints a JSON Schema.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{check, line_of, nth_line_of};

const VALID: &str = include_str!("../fixtures/valid.yaml");

const SERVER: &str = "server:
  listen: [\"127.0.0.1:18080\"]
  admin: \"127.0.0.1:18081\"
";

const UPSTREAMS: &str = "upstreams:
  app: {targets: [\"127.0.0.1:18082\"]}
";

/// One expected error line: `FILE:<line>:<col>: [<key>: ]...<phrase>...`.
struct Expect {
    phrase: String,
    line: usize,
    key: Option<&'static str>,
}

struct Case {
    name: &'static str,
    yaml: String,
    expect: Vec<Expect>,
    /// Exactly this many error lines (structural errors stop at the first).
    exact_count: Option<usize>,
}

fn expect(phrase: &str, line: usize, key: Option<&'static str>) -> Expect {
    Expect {
        phrase: phrase.to_string(),
        line,
        key,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();

    let yaml = format!(
        "{SERVER}  foo: 1\n{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "unknown key",
        expect: vec![expect(
            "unknown field `foo`",
            line_of(&yaml, "foo: 1"),
            None,
        )],
        exact_count: Some(1),
        yaml,
    });

    let yaml = format!(
        "{SERVER}{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n    colour: blue\n  - name: other\n    upstream: app\n    auth: public\n    size: 3\n"
    );
    cases.push(Case {
        name: "structural errors stop at the first",
        expect: vec![expect(
            "unknown field `colour`",
            line_of(&yaml, "colour: blue"),
            None,
        )],
        exact_count: Some(1),
        yaml,
    });

    let yaml = format!(
        "{SERVER}{UPSTREAMS}routes:\n  - name: web\n    match: {{path_prefix: /a}}\n    upstream: app\n    auth: public\n  - name: web\n    match: {{path_prefix: /b}}\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "duplicate route name",
        expect: vec![expect(
            "duplicate route name",
            nth_line_of(&yaml, "- name: web", 1),
            None,
        )],
        exact_count: Some(1),
        yaml,
    });

    let yaml = format!(
        "{SERVER}{UPSTREAMS}routes:\n  - name: web\n    upstream: nope\n    auth: public\n"
    );
    cases.push(Case {
        name: "dangling upstream",
        expect: vec![expect(
            "unknown upstream `nope`",
            line_of(&yaml, "upstream: nope"),
            Some("routes[0].upstream"),
        )],
        exact_count: Some(1),
        yaml,
    });

    let yaml = format!(
        "{SERVER}{UPSTREAMS}routes:\n  - name: api\n    upstream: app\n    auth: bearer\n    provider: nope\n"
    );
    cases.push(Case {
        name: "dangling provider",
        expect: vec![expect(
            "unknown provider `nope`",
            line_of(&yaml, "provider: nope"),
            Some("routes[0].provider"),
        )],
        exact_count: None,
        yaml,
    });

    let yaml = format!(
        "{SERVER}{UPSTREAMS}routes:\n  - {{name: everything, match: {{path_prefix: /}}, upstream: app, auth: public}}\n  - {{name: hidden, match: {{path: /x}}, upstream: app, auth: public}}\n"
    );
    cases.push(Case {
        name: "shadowed route",
        expect: vec![expect(
            "shadowed by routes[0]",
            line_of(&yaml, "name: hidden"),
            None,
        )],
        exact_count: Some(1),
        yaml,
    });

    let yaml = format!(
        "{SERVER}{UPSTREAMS}routes:\n  - {{name: s, match: {{path_prefix: /s}}, upstream: app, auth: session}}\n  - {{name: b, match: {{path_prefix: /b}}, upstream: app, auth: bearer}}\n  - {{name: sb, match: {{path_prefix: /sb}}, upstream: app, auth: session_or_bearer}}\n"
    );
    cases.push(Case {
        name: "session routes need `sessions:` and every protected route a provider (all reported)",
        expect: vec![
            expect(
                "need a `sessions:` section",
                line_of(&yaml, "auth: session}"),
                None,
            ),
            expect(
                "a protected route needs `provider`",
                line_of(&yaml, "auth: session}"),
                None,
            ),
            expect(
                "a protected route needs `provider`",
                line_of(&yaml, "auth: bearer}"),
                None,
            ),
            expect(
                "need a `sessions:` section",
                line_of(&yaml, "auth: session_or_bearer}"),
                None,
            ),
        ],
        exact_count: None,
        yaml,
    });

    let yaml = format!(
        "{SERVER}sessions:\n  secret: \"c2hvcnQ=\"\n{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "weak session secret",
        expect: vec![expect(
            "at least 32 bytes",
            line_of(&yaml, "secret:"),
            Some("sessions.secret"),
        )],
        exact_count: None,
        yaml,
    });

    let yaml = format!(
        "{SERVER}sessions:\n  secret: \"${{env:PORTCULLIS_E2E_SURELY_UNSET_VARIABLE}}\"\n{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "missing environment variable",
        expect: vec![expect(
            "environment variable `PORTCULLIS_E2E_SURELY_UNSET_VARIABLE` is not set",
            line_of(&yaml, "secret:"),
            Some("sessions.secret"),
        )],
        exact_count: None,
        yaml,
    });

    let yaml = format!(
        "{SERVER}  drain_timeout: soon\nupstreams:\n  app:\n    targets: [\"127.0.0.1:18082\"]\n    read_timeout: 5 parsecs\nroutes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "invalid durations (both reported)",
        expect: vec![
            expect(
                "invalid duration",
                line_of(&yaml, "drain_timeout: soon"),
                Some("server.drain_timeout"),
            ),
            expect(
                "invalid duration",
                line_of(&yaml, "read_timeout: 5 parsecs"),
                Some("upstreams.app.read_timeout"),
            ),
        ],
        exact_count: Some(2),
        yaml,
    });

    let yaml = format!(
        "{SERVER}upstreams:\n  app:\n    targets:\n      - \"127.0.0.1:18082\"\n      - \"app internal:80\"\nroutes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "bad upstream target",
        expect: vec![expect(
            "neither an IP:port",
            line_of(&yaml, "app internal:80"),
            Some("upstreams.app.targets[1]"),
        )],
        exact_count: Some(1),
        yaml,
    });

    let yaml = format!(
        "{SERVER}  foo: bar: baz\n{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "bad YAML syntax",
        expect: vec![expect("", line_of(&yaml, "foo: bar: baz"), None)],
        exact_count: Some(1),
        yaml,
    });

    let yaml = format!(
        "{SERVER}  admin: \"127.0.0.1:18083\"\n{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "duplicate YAML key",
        expect: vec![expect("duplicate", nth_line_of(&yaml, "admin:", 1), None)],
        exact_count: None,
        yaml,
    });

    let yaml = format!(
        "{SERVER}upstreams:\n  app:\n    targets: [\"not-an-address\"]\nroutes:\n  - name: web\n    match: {{path_prefix: /a}}\n    upstream: nope\n    auth: public\n  - name: web\n    match: {{path_prefix: /b}}\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "several semantic errors, all reported",
        expect: vec![
            expect("has no port", line_of(&yaml, "not-an-address"), None),
            expect(
                "unknown upstream `nope`",
                line_of(&yaml, "upstream: nope"),
                Some("routes[0].upstream"),
            ),
            expect(
                "duplicate route name",
                nth_line_of(&yaml, "- name: web", 1),
                None,
            ),
        ],
        exact_count: Some(3),
        yaml,
    });

    let yaml = format!(
        "{SERVER}{UPSTREAMS}identity:\n  access_token: Authorization\n  id_token: authorization\nroutes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "the ID token header clashes with another identity header",
        expect: vec![expect(
            "`authorization` already carries another identity header",
            line_of(&yaml, "id_token: authorization"),
            Some("identity.id_token"),
        )],
        exact_count: Some(1),
        yaml,
    });

    let yaml = format!(
        "{SERVER}  log_format: yaml\n{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "unknown log format",
        expect: vec![expect(
            "unknown variant `yaml`",
            line_of(&yaml, "log_format: yaml"),
            None,
        )],
        exact_count: Some(1),
        yaml,
    });

    cases
}

/// An error line `FILE:LINE:COL: rest` split into (line, col, rest).
fn parse_error_line(line: &str) -> Option<(usize, usize, &str)> {
    let rest = line.strip_prefix("FILE:")?;
    let (line_no, rest) = rest.split_once(':')?;
    let (col, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix(' ')?;
    Some((line_no.parse().ok()?, col.parse().ok()?, rest))
}

fn judge(case: &Case, code: i32, output: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if code != 1 {
        problems.push(format!("exit code {code}, want 1"));
    }
    let errors: Vec<(usize, usize, &str)> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(parse_error_line)
        .collect();
    let lines = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    if errors.len() != lines {
        problems.push("a non-empty output line is not `FILE:LINE:COL: ...`".to_string());
    }
    if let Some(n) = case.exact_count
        && errors.len() != n
    {
        problems.push(format!("{} error lines, want {n}", errors.len()));
    }
    for want in &case.expect {
        let found = errors.iter().any(|(line, col, rest)| {
            *line == want.line
                && *col >= 1
                && rest.contains(&want.phrase)
                && want
                    .key
                    .is_none_or(|key| rest.starts_with(&format!("{key}: ")))
        });
        if !found {
            problems.push(format!(
                "no line `FILE:{}:COL: {}...{}...`",
                want.line,
                want.key.map(|k| format!("{k}: ")).unwrap_or_default(),
                want.phrase
            ));
        }
    }
    problems
}

#[test]
fn check_reports_each_error_with_its_position() {
    let mut failures = Vec::new();
    for case in cases() {
        let (code, output) = check(&case.yaml);
        let problems = judge(&case, code, &output);
        if !problems.is_empty() {
            failures.push(format!(
                "case {:?}: {}\n--- config ---\n{}--- output ---\n{output}",
                case.name,
                problems.join("; "),
                numbered(&case.yaml)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} config error case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn numbered(yaml: &str) -> String {
    yaml.lines()
        .enumerate()
        .map(|(i, line)| format!("{:>3} | {line}\n", i + 1))
        .collect()
}

#[test]
fn check_accepts_a_valid_config() {
    let (code, output) = check(VALID);
    assert_eq!(code, 0, "check on the valid fixture: {output}");
    assert_eq!(
        output.trim_end(),
        "FILE: ok (3 routes, 2 upstreams)",
        "check output on the valid fixture"
    );

    let minimal =
        format!("{SERVER}{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n");
    let (code, output) = check(&minimal);
    assert_eq!(code, 0, "check on a minimal config: {output}");
    assert!(
        output.trim_end().starts_with("FILE: ok ("),
        "check output on a minimal config: {output}"
    );
}

#[test]
fn run_with_an_invalid_config_exits_1_with_the_errors() {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join("bad.yaml");
    let yaml = format!(
        "{SERVER}{UPSTREAMS}routes:\n  - name: web\n    upstream: nope\n    auth: public\n"
    );
    std::fs::write(&path, &yaml).expect("writing the config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("stderr.log")).expect("creating stderr.log"),
        ))
        .spawn()
        .expect("spawning portcullis run");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`portcullis run` with an invalid config did not exit within 20s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(1),
        "exit code of run; stderr:\n{stderr}"
    );
    let want = format!("{}:{}:", path.display(), line_of(&yaml, "upstream: nope"));
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with(&want) && line.contains("unknown upstream `nope`")),
        "run's stderr has no line starting {want:?} naming the unknown upstream:\n{stderr}"
    );
}

#[test]
fn schema_prints_a_json_schema() {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("schema")
        .stdin(Stdio::null())
        .output()
        .expect("running portcullis schema");
    assert!(output.status.success(), "portcullis schema exit status");
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "schema output is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema has no properties object: {schema}"));
    for key in ["server", "upstreams", "routes"] {
        assert!(
            properties.contains_key(key),
            "schema properties lack {key:?}"
        );
    }
}

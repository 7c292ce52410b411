//! `portcullis check` (and `run`) on invalid configs: every error of the contract's list gives its
//! phrase with a `FILE:LINE:COL:` prefix naming the right line; valid configs pass; `schema`
//! prints a JSON Schema.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{check, check_with, line_of, nth_line_of};

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
        name: "every unknown key is reported in one run",
        expect: vec![
            expect(
                "unknown field `colour`",
                line_of(&yaml, "colour: blue"),
                Some("routes[0].colour"),
            ),
            expect(
                "unknown field `size`",
                line_of(&yaml, "size: 3"),
                Some("routes[1].size"),
            ),
        ],
        exact_count: Some(2),
        yaml,
    });

    let yaml = "server:\n  listen: \"127.0.0.1:18080\"\n  admin: \"127.0.0.1:18081\"\n  thread: 2\n  h2c: maybe\nupstreams:\n  app: {targets: [\"127.0.0.1:18082\"], conect_timeout: 2s}\nroutes:\n  - name: web\n    upstream: app\n    auth: publik\n".to_string();
    cases.push(Case {
        name: "unknown keys and type errors together, with suggestions, the key path once",
        expect: vec![
            expect(
                "invalid type: expected a list, found a string",
                line_of(&yaml, "listen:"),
                Some("server.listen"),
            ),
            expect(
                "unknown field `thread`; did you mean `threads`?",
                line_of(&yaml, "thread: 2"),
                Some("server.thread"),
            ),
            expect(
                "invalid type: expected true or false",
                line_of(&yaml, "h2c: maybe"),
                Some("server.h2c"),
            ),
            expect(
                "unknown field `conect_timeout`; did you mean `connect_timeout`?",
                line_of(&yaml, "conect_timeout"),
                Some("upstreams.app.conect_timeout"),
            ),
            expect(
                "unknown variant `publik`",
                line_of(&yaml, "auth: publik"),
                Some("routes[0].auth"),
            ),
            expect(
                "did you mean `public`?",
                line_of(&yaml, "auth: publik"),
                Some("routes[0].auth"),
            ),
        ],
        exact_count: Some(5),
        yaml,
    });

    let yaml = format!(
        "{SERVER}{UPSTREAMS}routes:\n  - name: web\n    match: {{path_prefix: api}}\n    upstream: app\n    auth: public\n  - name: none\n    match: {{path_prefix: /b}}\n    upstream: app\n    auth: public\n  - name: userinfo\n    match: {{path_prefix: /c}}\n    upstream: app\n    auth: public\n"
    );
    cases.push(Case {
        name: "a relative path prefix; route names that are the gateway's own metric labels",
        expect: vec![
            expect(
                "`api` must start with /",
                line_of(&yaml, "path_prefix: api"),
                Some("routes[0].match.path_prefix"),
            ),
            expect(
                "the gateway's own metrics",
                line_of(&yaml, "name: none"),
                Some("routes[1].name"),
            ),
            expect(
                "the gateway's own metrics",
                line_of(&yaml, "name: userinfo"),
                Some("routes[2].name"),
            ),
        ],
        exact_count: Some(3),
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
    for (_, _, rest) in &errors {
        if let Some((key, after)) = rest.split_once(": ")
            && after.starts_with(&format!("{key}: "))
        {
            problems.push(format!("the key path is printed twice: {rest}"));
        }
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
    assert_eq!(
        output.trim_end(),
        "FILE: ok (1 route, 1 upstream)",
        "check output on a minimal config"
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

/// Lines of `output` that are `FILE:<line>:<col>: warning: <key>: ...<phrase>...`.
fn has_warning(output: &str, line: usize, key: &str, phrase: &str) -> bool {
    output.lines().any(|l| {
        parse_error_line(l).is_some_and(|(at, col, rest)| {
            at == line
                && col >= 1
                && rest.starts_with(&format!("warning: {key}: "))
                && rest.contains(phrase)
        })
    })
}

#[test]
fn check_offline_reports_missing_secrets_as_warnings() {
    let yaml = format!(
        "{SERVER}providers:\n  corp:\n    issuer: https://idp.test\n    client_id: gw\n    client_secret: \"${{file:/nonexistent/portcullis/client-secret}}\"\nsessions:\n  secret: \"${{env:PORTCULLIS_E2E_SURELY_UNSET_VARIABLE}}\"\n{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: session\n    provider: corp\n"
    );
    let (code, output) = check(&yaml);
    assert_eq!(
        code, 1,
        "without --offline a missing secret is an error: {output}"
    );
    assert!(
        output.contains("sessions.secret: environment variable `PORTCULLIS_E2E_SURELY_UNSET_VARIABLE` is not set")
            && !output.contains("warning:"),
        "{output}"
    );

    let (code, output) = check_with(&yaml, &["--offline"]);
    assert_eq!(code, 0, "with --offline only warnings remain: {output}");
    assert!(
        has_warning(
            &output,
            line_of(&yaml, "secret: \"${env:"),
            "sessions.secret",
            "environment variable `PORTCULLIS_E2E_SURELY_UNSET_VARIABLE` is not set"
        ),
        "{output}"
    );
    assert!(
        has_warning(
            &output,
            line_of(&yaml, "client_secret:"),
            "providers.corp.client_secret",
            "cannot read secret file `/nonexistent/portcullis/client-secret`"
        ),
        "{output}"
    );
    assert!(
        output
            .lines()
            .any(|l| l == "FILE: ok (1 route, 1 upstream), 2 warnings"),
        "{output}"
    );

    // Anything else wrong still fails, with the secrets still only warned about.
    let broken = yaml.replace(
        "upstream: app\n    auth: session",
        "upstream: nope\n    auth: session",
    );
    let (code, output) = check_with(&broken, &["--offline"]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("routes[0].upstream: unknown upstream `nope`"),
        "{output}"
    );
    assert!(output.contains("warning: sessions.secret:"), "{output}");
    assert!(!output.contains(": ok ("), "{output}");

    // A malformed reference is the file's fault: an error even offline.
    let malformed = yaml.replace("${env:PORTCULLIS_E2E_SURELY_UNSET_VARIABLE}", "${vault:x}");
    let (code, output) = check_with(&malformed, &["--offline"]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("sessions.secret: unknown reference"),
        "{output}"
    );
}

#[test]
fn check_warns_about_secrets_in_the_file_and_secrets_that_are_not_random() {
    let zeros = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; // 32 zero bytes
    let random = "q0H3oK7tZ1rN9dLxW2vB5yC8eF4gJ6hM0sT3uV7wX1Y=";
    let config = |secret: &str| {
        format!(
            "{SERVER}sessions:\n  secret: \"{secret}\"\n  old_secrets: [\"{zeros}\"]\n  redis: {{url: \"redis://:hunter2@127.0.0.1:6379\"}}\n{UPSTREAMS}routes:\n  - name: web\n    upstream: app\n    auth: public\n"
        )
    };
    let yaml = config(random);
    let (code, output) = check(&yaml);
    assert_eq!(code, 0, "warnings only: {output}");
    let secret_line = line_of(&yaml, "secret:");
    let literal = "a secret written in the file itself";
    assert!(
        has_warning(&output, secret_line, "sessions.secret", literal),
        "{output}"
    );
    assert!(
        has_warning(
            &output,
            line_of(&yaml, "old_secrets"),
            "sessions.old_secrets[0]",
            "does not look random"
        ),
        "{output}"
    );
    assert!(
        has_warning(
            &output,
            line_of(&yaml, "redis:"),
            "sessions.redis.url",
            literal
        ),
        "{output}"
    );
    assert!(
        !output.contains("sessions.secret: the secret"),
        "a random secret is not called weak: {output}"
    );
    assert!(
        !output.contains("hunter2") && !output.contains(random),
        "no secret is echoed: {output}"
    );
    assert!(
        output
            .lines()
            .any(|l| l == "FILE: ok (1 route, 1 upstream), 4 warnings"),
        "{output}"
    );

    // Read from a file, 32 zero bytes are still weak, and no longer literal.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{zeros}\n")).expect("writing the secret");
    let yaml = config(&format!("${{file:{}}}", file.display()));
    let (code, output) = check(&yaml);
    assert_eq!(code, 0, "{output}");
    assert!(
        has_warning(
            &output,
            secret_line,
            "sessions.secret",
            "has only 1 distinct byte value"
        ),
        "{output}"
    );
    assert!(
        !has_warning(&output, secret_line, "sessions.secret", literal),
        "{output}"
    );
}

#[test]
fn a_missing_config_file_is_named_without_a_position() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("absent.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("running portcullis check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            path.display()
        )
    );
}

#[test]
fn check_format_json_is_one_object() {
    let yaml = format!(
        "{SERVER}sessions:\n  secret: \"q0H3oK7tZ1rN9dLxW2vB5yC8eF4gJ6hM0sT3uV7wX1Y=\"\nupstreams:\n  app: {{targets: [\"127.0.0.1:18082\"], conect_timeout: 2s}}\nroutes:\n  - name: web\n    upstream: app\n    auth: public\n"
    );
    let (code, output) = check_with(&yaml, &["--format", "json"]);
    assert_eq!(code, 1, "{output}");
    let report: serde_json::Value = serde_json::from_str(&output)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {output}"));
    let errors = report["errors"].as_array().expect("errors is a list");
    assert_eq!(errors.len(), 1, "{report:#}");
    let e = &errors[0];
    assert_eq!(e["file"], "FILE", "{e}");
    assert_eq!(e["line"], line_of(&yaml, "conect_timeout"), "{e}");
    assert!(e["column"].as_u64().is_some_and(|c| c > 1), "{e}");
    assert_eq!(e["key"], "upstreams.app.conect_timeout");
    assert_eq!(e["message"], "unknown field `conect_timeout`");
    assert_eq!(e["suggestion"], "connect_timeout");
    assert_eq!(report["summary"]["ok"], false, "{report:#}");
    assert_eq!(report["summary"]["errors"], 1, "{report:#}");

    let fixed = yaml.replace("conect_timeout", "connect_timeout");
    let (code, output) = check_with(&fixed, &["--format", "json"]);
    assert_eq!(code, 0, "{output}");
    let report: serde_json::Value = serde_json::from_str(&output)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {output}"));
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    let warnings = report["warnings"].as_array().expect("warnings is a list");
    assert_eq!(warnings.len(), 1, "{report:#}");
    assert_eq!(warnings[0]["key"], "sessions.secret");
    assert_eq!(warnings[0]["line"], line_of(&fixed, "secret:"));
    assert!(warnings[0].get("suggestion").is_none(), "{report:#}");
    assert_eq!(
        report["summary"],
        serde_json::json!({"file": "FILE", "ok": true, "errors": 0, "warnings": 1, "routes": 1, "upstreams": 1}),
        "{report:#}"
    );
}

//! The shape of the YAML document, checked against the config's JSON Schema: every unknown key
//! and every type error at once, with a "did you mean" for near-miss names.
//!
//! serde stops at the first structural error; this walk does not. It reads the same schema
//! `portcullis schema` prints (derived from [`super::file`]), so it knows exactly the keys and
//! types serde does, and a key added there is known here without any edit. It only runs after
//! serde has refused the document (so its findings come on top of a real error, never instead
//! of a successful load), and it accepts what serde accepts: any scalar where a string is
//! expected, `~` only for optional keys.

use serde_json::Value as Schema;
use serde_yaml_ng::Value as Yaml;

/// One structural problem at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    /// Where, e.g. `upstreams.app.conect_timeout`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// A known name close to an unknown one.
    pub suggestion: Option<String>,
}

/// Every structural problem of `text`; empty when it is not YAML (serde reports that).
pub(super) fn check(text: &str) -> Vec<Finding> {
    let Ok(doc) = serde_yaml_ng::from_str::<Yaml>(text) else {
        return Vec::new();
    };
    let schema = super::schema();
    let mut walk = Walk {
        root: &schema,
        found: Vec::new(),
    };
    walk.node(&schema, &doc, "");
    walk.found
}

/// The closest of `known` to `name`, when it is close enough to be a typo: at most one edit
/// (insertion, deletion, substitution or swap of neighbours) per three characters.
pub(super) fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|k| (k, strsim::damerau_levenshtein(name, k)))
        .filter(|(k, d)| *d <= limit && *k != name)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k.to_string())
}

struct Walk<'s> {
    root: &'s Schema,
    found: Vec<Finding>,
}

impl<'s> Walk<'s> {
    fn report(&mut self, key: &str, message: String, suggestion: Option<String>) {
        self.found.push(Finding {
            key: key.to_string(),
            message,
            suggestion,
        });
    }

    /// Follows a local `$ref` (`#/$defs/Name`).
    fn deref(&self, mut schema: &'s Schema) -> &'s Schema {
        for _ in 0..8 {
            let Some(target) = schema.get("$ref").and_then(Schema::as_str) else {
                break;
            };
            let Some(found) = target
                .strip_prefix("#/")
                .and_then(|p| self.root.pointer(&format!("/{p}")))
            else {
                break;
            };
            schema = found;
        }
        schema
    }

    fn node(&mut self, schema: &'s Schema, value: &Yaml, path: &str) {
        let schema = self.deref(schema);
        let value = untagged(value);
        let branches = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Schema::as_array);
        if let Some(branches) = branches {
            return self.one_of(branches, value, path);
        }
        let types = types(schema);
        if types.is_empty() {
            return;
        }
        if !types.iter().any(|t| accepts(t, value)) {
            let message = format!(
                "invalid type: expected {}, found {}",
                wanted(&types),
                kind(value)
            );
            return self.report(path, message, None);
        }
        if let Some(min) = schema.get("minimum").and_then(Schema::as_i64)
            && let Yaml::Number(n) = value
            && n.as_i64().is_some_and(|n| n < min)
        {
            return self.report(path, format!("must be at least {min}"), None);
        }
        match value {
            Yaml::Mapping(map) => self.mapping(schema, map, path),
            Yaml::Sequence(items) => {
                if let Some(item) = schema.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.node(item, v, &format!("{path}[{i}]"));
                    }
                }
            }
            _ => {}
        }
    }

    /// An enum (every branch a `const`) or an untagged choice (the branch of the value's kind).
    fn one_of(&mut self, branches: &'s [Schema], value: &Yaml, path: &str) {
        let consts: Vec<&str> = branches
            .iter()
            .filter_map(|b| b.get("const").and_then(Schema::as_str))
            .collect();
        if !consts.is_empty() && consts.len() == branches.len() {
            let given = scalar_text(value);
            if given.as_deref().is_some_and(|g| consts.contains(&g)) {
                return;
            }
            let list = consts
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let (message, suggestion) = match given {
                Some(g) => (
                    format!("unknown variant `{g}`, expected one of {list}"),
                    suggest(&g, consts.iter().copied()),
                ),
                None => (
                    format!(
                        "invalid type: expected one of {list}, found {}",
                        kind(value)
                    ),
                    None,
                ),
            };
            return self.report(path, message, suggestion);
        }
        let resolved: Vec<&'s Schema> = branches.iter().map(|b| self.deref(b)).collect();
        // An optional enum or choice (`Option<T>`): `null`, or the inner schema, which has no
        // `type` of its own to match the value's kind against.
        let inner: Vec<&'s Schema> = resolved
            .iter()
            .copied()
            .filter(|b| types(b) != ["null"])
            .collect();
        if let [only] = inner[..]
            && inner.len() < resolved.len()
            && !matches!(value, Yaml::Null)
        {
            return self.node(only, value, path);
        }
        if let Some(branch) = resolved
            .iter()
            .find(|b| types(b).iter().any(|t| accepts(t, value)))
        {
            return self.node(branch, value, path);
        }
        let all: Vec<&str> = resolved.iter().flat_map(|b| types(b)).collect();
        if all.is_empty() {
            return;
        }
        let message = format!(
            "invalid type: expected {}, found {}",
            wanted(&all),
            kind(value)
        );
        self.report(path, message, None);
    }

    fn mapping(&mut self, schema: &'s Schema, map: &serde_yaml_ng::Mapping, path: &str) {
        let properties = schema.get("properties").and_then(Schema::as_object);
        let additional = schema.get("additionalProperties");
        for (k, v) in map {
            let Some(name) = scalar_text(k) else {
                self.report(path, "a key must be a plain name".into(), None);
                continue;
            };
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if let Some(s) = properties.and_then(|p| p.get(&name)) {
                self.node(s, v, &child);
                continue;
            }
            match additional {
                Some(Schema::Bool(false)) => {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let suggestion = suggest(&name, known.iter().copied());
                    let message = if suggestion.is_some() {
                        format!("unknown field `{name}`")
                    } else {
                        let list = known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        format!("unknown field `{name}`, expected one of {list}")
                    };
                    self.report(&child, message, suggestion);
                }
                Some(s @ Schema::Object(_)) => self.node(s, v, &child),
                _ => {}
            }
        }
        let required = schema.get("required").and_then(Schema::as_array);
        for name in required.into_iter().flatten().filter_map(Schema::as_str) {
            let present = map.keys().any(|k| scalar_text(k).as_deref() == Some(name));
            if !present {
                let at = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                self.report(&at, format!("missing field `{name}`"), None);
            }
        }
    }
}

fn untagged(value: &Yaml) -> &Yaml {
    match value {
        Yaml::Tagged(t) => untagged(&t.value),
        v => v,
    }
}

/// The schema's `type`, as a list.
fn types(schema: &Schema) -> Vec<&str> {
    match schema.get("type") {
        Some(Schema::String(t)) => vec![t.as_str()],
        Some(Schema::Array(list)) => list.iter().filter_map(Schema::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether serde would take `value` for a JSON Schema `type`.
fn accepts(ty: &str, value: &Yaml) -> bool {
    match (ty, value) {
        ("null", Yaml::Null) => true,
        ("string", Yaml::String(_) | Yaml::Number(_) | Yaml::Bool(_)) => true,
        ("integer", Yaml::Number(n)) => n.is_i64() || n.is_u64(),
        ("number", Yaml::Number(_)) => true,
        ("boolean", Yaml::Bool(_)) => true,
        ("array", Yaml::Sequence(_)) => true,
        ("object", Yaml::Mapping(_)) => true,
        _ => false,
    }
}

fn wanted(types: &[&str]) -> String {
    let mut names: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "string" => "a string",
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "true or false",
            "array" => "a list",
            "object" => "a mapping",
            other => other,
        })
        .collect();
    names.dedup();
    names.join(" or ")
}

/// What `value` is, without echoing it (it may be a secret).
fn kind(value: &Yaml) -> &'static str {
    match value {
        Yaml::Null => "nothing",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(n) if n.is_f64() => "a decimal number",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

fn scalar_text(value: &Yaml) -> Option<String> {
    match untagged(value) {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "server:\n  listen: [\"127.0.0.1:1\"]\n  admin: \"127.0.0.1:2\"\n";

    fn keys(text: &str) -> Vec<(String, String, Option<String>)> {
        check(text)
            .into_iter()
            .map(|f| (f.key, f.message, f.suggestion))
            .collect()
    }

    #[test]
    fn every_unknown_key_and_type_error_is_found() {
        let doc = format!(
            "{HEAD}  thread: 2\n  h2c: maybe\nupstreams:\n  app: {{targets: [\"x\"], conect_timeout: 2s}}\nroutes:\n  - {{name: a, upstream: app, auth: publik, colour: blue}}\n  - {{name: b, upstream: app}}\n"
        );
        let found = keys(&doc);
        let want = [
            ("server.thread", Some("threads")),
            ("server.h2c", None),
            ("upstreams.app.conect_timeout", Some("connect_timeout")),
            ("routes[0].auth", Some("public")),
            ("routes[0].colour", None),
            ("routes[1].auth", None),
        ];
        for (key, suggestion) in want {
            assert!(
                found
                    .iter()
                    .any(|(k, _, s)| k == key && s.as_deref() == suggestion),
                "no finding at {key} with {suggestion:?}: {found:#?}"
            );
        }
        assert_eq!(found.len(), want.len(), "{found:#?}");
    }

    #[test]
    fn what_serde_accepts_is_not_reported() {
        let doc = format!(
            "{HEAD}  pid_file: 12\n  auth_prefix: ~\n  threads: 2\n  listen_extra_is_not_here: 1\nupstreams:\n  app: {{targets: [\"x\"], tls: true}}\nroutes:\n  - {{name: a, upstream: app, auth: public, match: {{path: /x}}}}\n  - name: b\n    upstream: app\n    auth: session\n    allow:\n      - {{claims: {{a: b, c: [d, e]}}}}\n"
        );
        let found = keys(&doc);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].0, "server.listen_extra_is_not_here");
    }

    #[test]
    fn untagged_listeners_are_checked_by_their_shape() {
        let doc = "server:\n  listen: [\"127.0.0.1:1\", {address: \"127.0.0.1:3\", cert: c, kye: k}, [1]]\n  admin: \"127.0.0.1:2\"\nupstreams: {}\nroutes: []\n";
        let found = keys(doc);
        assert!(
            found
                .iter()
                .any(|(k, _, s)| k == "server.listen[1].kye" && s.as_deref() == Some("key")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|(k, m, _)| k == "server.listen[2]" && m.contains("a string or a mapping")),
            "{found:#?}"
        );
    }

    #[test]
    fn an_optional_enum_names_its_variants() {
        let found = keys(
            "server:\n  listen: [\"127.0.0.1:1\"]\n  admin: \"127.0.0.1:2\"\n  log_format: yaml\n",
        );
        let format: Vec<_> = found
            .iter()
            .filter(|f| f.0 == "server.log_format")
            .collect();
        assert_eq!(format.len(), 1, "{found:?}");
        assert!(
            format[0]
                .1
                .contains("unknown variant `yaml`, expected one of `text`, `json`"),
            "{found:?}"
        );
    }

    #[test]
    fn suggestions_need_a_close_name() {
        assert_eq!(
            suggest("conect_timeout", ["connect_timeout", "read_timeout"]),
            Some("connect_timeout".into())
        );
        assert_eq!(suggest("kye", ["address", "key"]), Some("key".into()));
        assert_eq!(suggest("foo", ["admin", "listen"]), None);
        assert_eq!(suggest("size", ["name", "match"]), None);
    }
}

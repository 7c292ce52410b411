//! Reading a claims map: lookup by name or dotted path, value matching (equality, `*` globs, path
//! variables), and the scope and group claims.
//!
//! Owns only how claim *values* are read and compared; which conditions an entry has and how they
//! combine is [`super::entry`]'s business.
//!
//! Invariants:
//! - Nothing here allocates at request time: strings are compared in place and numbers are
//!   formatted into a stack buffer.
//! - A claim that is absent, `null`, an object, or of a type a rule cannot read matches nothing:
//!   every reader fails closed and none returns an error.
//! - Lookup tries the whole name as one key first, so namespaced claims with dots in their name
//!   (`https://example.com/roles`) work; only then is the name read as a path into nested objects
//!   (`realm_access.roles`), splitting at the leftmost dot that names an object first.

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};

use super::path_template::{Bindings, valid_var_name};

/// The claim holding granted scopes as one space-separated string (RFC 8693 §4.2, RFC 9068 §2.2.3).
const SCOPE_CLAIM: &str = "scope";
/// The claim some providers use instead: an array of scopes, or a space-separated string.
const SCP_CLAIM: &str = "scp";

/// The claim `name`: the key `name` itself if present, else `name` read as a dotted path into
/// nested objects. `None` when absent.
pub fn lookup<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut from = 0;
    while let Some(offset) = name.get(from..).and_then(|rest| rest.find('.')) {
        let dot = from + offset;
        if let (Some(Value::Object(inner)), Some(rest)) = (
            name.get(..dot).and_then(|k| claims.get(k)),
            name.get(dot + 1..),
        ) && let Some(value) = lookup(inner, rest)
        {
            return Some(value);
        }
        from = dot + 1;
    }
    None
}

/// Whether `test` holds for the text form of `value`, or of any element when `value` is an array.
/// Strings are their own text; numbers and booleans are compared in their JSON text form (`42`,
/// `1.5`, `true`). `null`, objects and nested arrays match nothing.
pub(crate) fn any_text(value: &Value, mut test: impl FnMut(&str) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| scalar_text(item, &mut test)),
        other => scalar_text(other, &mut test),
    }
}

fn scalar_text(value: &Value, test: &mut impl FnMut(&str) -> bool) -> bool {
    match value {
        Value::String(s) => test(s),
        Value::Bool(true) => test("true"),
        Value::Bool(false) => test("false"),
        Value::Number(n) => {
            let mut text = StackText::default();
            // A number too long for the buffer matches nothing rather than being truncated.
            write!(text, "{n}").is_ok() && test(text.as_str())
        }
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// A small fixed buffer for a number's text, so comparing numbers does not allocate.
struct StackText {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Whether `scope` is granted: a token of the `scope` string, or of the `scp` claim (an array of
/// scopes or a space-separated string). Both claims may be present; the grant is their union.
/// `scope` must not be empty or contain a space (checked at compile time).
pub(crate) fn has_scope(claims: &Map<String, Value>, scope: &str) -> bool {
    let in_string = |value: Option<&Value>| match value {
        Some(Value::String(s)) => s.split(' ').any(|granted| granted == scope),
        _ => false,
    };
    in_string(claims.get(SCOPE_CLAIM))
        || match claims.get(SCP_CLAIM) {
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(scope)),
            other => in_string(other),
        }
}

/// Whether the groups claim `claim` (an array of strings, or one string taken whole) names any of
/// `wanted`. Array elements that are not strings are ignored.
pub(crate) fn in_any_group(claims: &Map<String, Value>, claim: &str, wanted: &[Box<str>]) -> bool {
    let named = |group: &str| wanted.iter().any(|w| **w == *group);
    match lookup(claims, claim) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(named),
        Some(Value::String(group)) => named(group),
        _ => false,
    }
}

/// A `*` glob: `*` matches any run of characters, including none; nothing else is special.
/// Holds at least two parts (the pattern split at each `*`), so at least one star.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    parts: Box<[Box<str>]>,
}

impl Glob {
    /// The glob for `pattern`, `None` when it has no `*`.
    fn new(pattern: &str) -> Option<Glob> {
        pattern.contains('*').then(|| Glob {
            parts: pattern.split('*').map(Box::from).collect(),
        })
    }

    /// Whether `text` matches. Leftmost-first search of each middle part is exact for `*`-only
    /// globs, so this is linear in `text` per part, without backtracking.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let Some((first, rest)) = self.parts.split_first() else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return **first == *text;
        };
        if text.len() < first.len() + last.len()
            || !text.starts_with(&**first)
            || !text.ends_with(&**last)
        {
            return false;
        }
        let Some(mut hay) = text.get(first.len()..text.len() - last.len()) else {
            return false;
        };
        for part in middle {
            match hay.find(&**part) {
                Some(at) => hay = hay.get(at + part.len()..).unwrap_or(""),
                None => return false,
            }
        }
        true
    }
}

/// One accepted value of a claim condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueMatcher {
    /// Equal to this text.
    Exact(Box<str>),
    /// Matches this glob.
    Glob(Glob, Box<str>),
    /// `*` alone: any value at all, as long as the claim has one.
    Present,
    /// Equal to the segment bound to path variable `index` (named `name`).
    Var { index: usize, name: Box<str> },
}

/// A claim value as written in the config, before path variables are resolved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ValueSpec<'a> {
    /// A literal, a glob or `*`.
    Fixed(ValueMatcher),
    /// `{name}`: the segment bound to this path variable.
    Var(&'a str),
}

/// Reads one configured claim value: `{name}` (the whole value) is a path variable; a value with a
/// `*` is a glob (`*` alone accepts any value); anything else is compared for equality. Braces
/// anywhere else are refused, so `{region}-admins` is not silently taken literally.
pub(crate) fn parse_value(raw: &str) -> Result<ValueSpec<'_>, String> {
    if let Some(name) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        return if name.is_empty() {
            Err("`{}` names no path variable".to_owned())
        } else if valid_var_name(name) {
            Ok(ValueSpec::Var(name))
        } else {
            Err(format!(
                "`{raw}`: a variable name has only letters, digits and `_`"
            ))
        };
    }
    if raw.contains(['{', '}']) {
        return Err(format!(
            "`{raw}`: a path variable must be the whole value, as in `{{region}}`"
        ));
    }
    if !raw.is_empty() && raw.bytes().all(|b| b == b'*') {
        return Ok(ValueSpec::Fixed(ValueMatcher::Present));
    }
    Ok(ValueSpec::Fixed(match Glob::new(raw) {
        Some(glob) => ValueMatcher::Glob(glob, raw.into()),
        None => ValueMatcher::Exact(raw.into()),
    }))
}

impl ValueMatcher {
    /// Whether `text` (one scalar of the claim) is accepted.
    fn accepts(&self, text: &str, bindings: &Bindings<'_>) -> bool {
        match self {
            ValueMatcher::Exact(want) => **want == *text,
            ValueMatcher::Glob(glob, _) => glob.matches(text),
            ValueMatcher::Present => true,
            ValueMatcher::Var { index, .. } => bindings.get(*index) == Some(text),
        }
    }
}

impl fmt::Display for ValueMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueMatcher::Exact(v) => write!(f, "{v:?}"),
            ValueMatcher::Glob(_, raw) => write!(f, "{raw:?}"),
            ValueMatcher::Present => f.write_str("\"*\""),
            ValueMatcher::Var { name, .. } => write!(f, "\"{{{name}}}\""),
        }
    }
}

/// A `claims:` condition on one claim: it holds when any value of the claim is accepted by any
/// matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimRule {
    /// Claim name or dotted path, as given.
    pub(crate) name: Box<str>,
    /// Accepted values (one-of); never empty.
    pub(crate) matchers: Box<[ValueMatcher]>,
}

impl ClaimRule {
    /// Whether the claim is present and one of its values is accepted.
    pub(crate) fn holds(&self, claims: &Map<String, Value>, bindings: &Bindings<'_>) -> bool {
        lookup(claims, &self.name).is_some_and(|value| {
            any_text(value, |text| {
                self.matchers.iter().any(|m| m.accepts(text, bindings))
            })
        })
    }

    /// The accepted values, for `explain`: `"a"` or `["a", "b*"]`.
    pub(crate) fn describe(&self) -> String {
        match &*self.matchers {
            [one] => one.to_string(),
            many => {
                let items: Vec<String> = many.iter().map(ToString::to_string).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}

/// Checks a configured claim name: not empty, and no empty part when read as a dotted path.
pub(crate) fn check_claim_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("empty claim name".to_owned())
    } else if name.split('.').any(str::is_empty) {
        Err(format!("claim path `{name}` has an empty part"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn lookup_reads_names_and_dotted_paths() {
        let claims = map(json!({
            "sub": "u1",
            "realm_access": {"roles": ["admin"], "deep": {"x": 1}},
            "https://example.com/roles": ["ops"],
            "org.team": "flat",
            "org": {"team": "nested"},
            "a": {"b.c": {"d": "dotted-key"}},
            "scalar": "not an object",
        }));
        let cases = [
            ("sub", Some(json!("u1"))),
            ("realm_access.roles", Some(json!(["admin"]))),
            ("realm_access.deep.x", Some(json!(1))),
            ("https://example.com/roles", Some(json!(["ops"]))),
            ("org.team", Some(json!("flat"))),
            ("a.b.c.d", Some(json!("dotted-key"))),
            ("realm_access.missing", None),
            ("scalar.x", None),
            ("missing", None),
            ("realm_access.roles.0", None),
        ];
        for (name, want) in cases {
            assert_eq!(lookup(&claims, name), want.as_ref(), "{name}");
        }
    }

    #[test]
    fn scalars_are_compared_in_their_json_text_form() {
        let cases = [
            (json!("eu"), "eu", true),
            (json!(42), "42", true),
            (json!(-7), "-7", true),
            (json!(1.5), "1.5", true),
            (json!(true), "true", true),
            (json!(false), "false", true),
            (json!(["x", "eu"]), "eu", true),
            (json!(["x", 3]), "3", true),
            (json!(["x"]), "eu", false),
            (json!([]), "eu", false),
            (json!(null), "null", false),
            (json!({"eu": 1}), "eu", false),
            (json!([["eu"]]), "eu", false),
        ];
        for (value, want, expected) in cases {
            assert_eq!(
                any_text(&value, |t| t == want),
                expected,
                "{value} vs {want}"
            );
        }
    }

    #[test]
    fn globs_match_any_run_including_empty() {
        let cases = [
            ("team-*", "team-a", true),
            ("team-*", "team-", true),
            ("team-*", "team", false),
            ("*-admins", "eu-admins", true),
            ("*-admins", "eu-admins-x", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("a*b*c", "abcb", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*x*", "x", true),
            ("*x*", "yyy", false),
            ("é*é", "éé", true),
            ("é*é", "é", false),
        ];
        for (pattern, text, expected) in cases {
            let glob = Glob::new(pattern).expect("has a star");
            assert_eq!(glob.matches(text), expected, "{pattern} vs {text}");
        }
        assert_eq!(Glob::new("plain"), None);
    }

    #[test]
    fn configured_values_are_parsed_by_form() {
        assert_eq!(
            parse_value("admin"),
            Ok(ValueSpec::Fixed(ValueMatcher::Exact("admin".into())))
        );
        assert_eq!(
            parse_value(""),
            Ok(ValueSpec::Fixed(ValueMatcher::Exact("".into())))
        );
        assert_eq!(
            parse_value("*"),
            Ok(ValueSpec::Fixed(ValueMatcher::Present))
        );
        assert_eq!(
            parse_value("**"),
            Ok(ValueSpec::Fixed(ValueMatcher::Present))
        );
        assert!(matches!(
            parse_value("team-*"),
            Ok(ValueSpec::Fixed(ValueMatcher::Glob(..)))
        ));
        assert_eq!(parse_value("{region}"), Ok(ValueSpec::Var("region")));
        for bad in ["{}", "{re gion}", "{region}-admins", "x{y}", "{a", "b}"] {
            assert!(parse_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let cases = [
            (json!({"scope": "a b"}), "b", true),
            (json!({"scope": "a b"}), "c", false),
            (json!({"scope": "ab"}), "a", false),
            (json!({"scp": ["a", "b"]}), "b", true),
            (json!({"scp": "a b"}), "b", true),
            (json!({"scope": "a", "scp": ["b"]}), "b", true),
            (json!({"scope": "a", "scp": ["b"]}), "a", true),
            (json!({"scope": ["a"]}), "a", false),
            (json!({"scp": 5}), "5", false),
            (json!({"scp": [1, "a"]}), "a", true),
            (json!({}), "a", false),
        ];
        for (claims, scope, expected) in cases {
            assert_eq!(
                has_scope(&map(claims.clone()), scope),
                expected,
                "{claims} has {scope}"
            );
        }
    }

    #[test]
    fn groups_come_from_an_array_or_one_string() {
        let wanted: Vec<Box<str>> = vec!["ops".into(), "dev".into()];
        let cases = [
            (json!({"groups": ["x", "dev"]}), "groups", true),
            (json!({"groups": ["x"]}), "groups", false),
            (json!({"groups": "ops"}), "groups", true),
            (json!({"groups": "ops dev"}), "groups", false),
            (json!({"groups": [1, "ops"]}), "groups", true),
            (json!({"groups": {"ops": true}}), "groups", false),
            (json!({"roles": ["ops"]}), "groups", false),
            (
                json!({"realm_access": {"roles": ["ops"]}}),
                "realm_access.roles",
                true,
            ),
        ];
        for (claims, claim, expected) in cases {
            assert_eq!(
                in_any_group(&map(claims.clone()), claim, &wanted),
                expected,
                "{claims} via {claim}"
            );
        }
    }

    #[test]
    fn claim_rules_match_any_value_against_any_matcher() {
        let rule = ClaimRule {
            name: "realm_access.roles".into(),
            matchers: vec![
                ValueMatcher::Exact("admin".into()),
                ValueMatcher::Glob(Glob::new("ops-*").expect("star"), "ops-*".into()),
            ]
            .into(),
        };
        let bindings = Bindings::default();
        let cases = [
            (json!({"realm_access": {"roles": ["user", "admin"]}}), true),
            (json!({"realm_access": {"roles": ["ops-eu"]}}), true),
            (json!({"realm_access": {"roles": "admin"}}), true),
            (json!({"realm_access": {"roles": ["user"]}}), false),
            (json!({"realm_access": {}}), false),
            (json!({}), false),
        ];
        for (claims, expected) in cases {
            assert_eq!(
                rule.holds(&map(claims.clone()), &bindings),
                expected,
                "{claims}"
            );
        }
        assert_eq!(rule.describe(), "[\"admin\", \"ops-*\"]");
    }

    #[test]
    fn present_glob_needs_some_value() {
        let rule = ClaimRule {
            name: "tenant".into(),
            matchers: vec![ValueMatcher::Present].into(),
        };
        let bindings = Bindings::default();
        let cases = [
            (json!({"tenant": "t1"}), true),
            (json!({"tenant": ""}), true),
            (json!({"tenant": 0}), true),
            (json!({"tenant": ["a"]}), true),
            (json!({"tenant": []}), false),
            (json!({"tenant": null}), false),
            (json!({}), false),
        ];
        for (claims, expected) in cases {
            assert_eq!(
                rule.holds(&map(claims.clone()), &bindings),
                expected,
                "{claims}"
            );
        }
    }

    #[test]
    fn claim_names_must_have_no_empty_parts() {
        for good in ["sub", "realm_access.roles", "https://example.com/roles"] {
            assert!(check_claim_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".a", "a.", "a..b"] {
            assert!(check_claim_name(bad).is_err(), "{bad}");
        }
    }
}

//! From `allow:` entries as written ([`AllowFile`]) to compiled [`Entry`]s.
//!
//! A policy that cannot be satisfied is a config error: every problem of every entry is reported,
//! each with its key relative to the route (`allow[1].email_domain`), and nothing is compiled
//! unless all entries are sound. Lists that would make a condition vacuous (`scopes: []`,
//! `claims: {}`) are refused as well, since they almost always hide a mistake.

use super::claims::{ClaimRule, ValueMatcher, ValueSpec, check_claim_name, parse_value};
use super::email::EmailDomain;
use super::entry::{Entry, MethodRule};
use super::path_template::PathTemplate;
use super::{PolicyContext, PolicyProblem};
use crate::config::file::{AllowFile, ClaimValueFile};
use crate::routing::{MethodSet, PathMatch};

/// Problems found so far.
#[derive(Default)]
struct Errors(Vec<PolicyProblem>);

impl Errors {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push((key.into(), message.into()));
    }
}

/// Compiles every entry, or reports every problem.
pub(super) fn entries(
    files: &[AllowFile],
    ctx: &PolicyContext<'_>,
) -> Result<Vec<Entry>, Vec<PolicyProblem>> {
    let mut errors = Errors::default();
    if files.is_empty() {
        errors.push(
            "allow",
            "empty list: no one could pass; omit `allow` to admit any signed-in identity",
        );
    }
    let compiled: Vec<Entry> = files
        .iter()
        .enumerate()
        .filter_map(|(i, file)| entry(&format!("allow[{i}]"), file, ctx, &mut errors))
        .collect();
    if errors.0.is_empty() {
        Ok(compiled)
    } else {
        Err(errors.0)
    }
}

/// One entry; `None` when it has problems (all pushed to `errors`).
fn entry(
    base: &str,
    file: &AllowFile,
    ctx: &PolicyContext<'_>,
    errors: &mut Errors,
) -> Option<Entry> {
    let before = errors.0.len();
    if file.scopes.is_none()
        && file.groups.is_none()
        && file.email_domain.is_none()
        && file.claims.is_none()
        && file.path.is_none()
        && file.methods.is_none()
    {
        errors.push(
            base,
            "an entry needs at least one of scopes, groups, email_domain, claims, path or methods",
        );
        return None;
    }
    let methods = file
        .methods
        .as_deref()
        .and_then(|names| methods(&format!("{base}.methods"), names, ctx.route_methods, errors));
    let path = file
        .path
        .as_deref()
        .and_then(|raw| path(&format!("{base}.path"), raw, ctx.route_path, errors));
    let scopes = file
        .scopes
        .as_deref()
        .map(|s| scopes(&format!("{base}.scopes"), s, errors));
    let groups = file
        .groups
        .as_deref()
        .map(|g| groups(&format!("{base}.groups"), g, errors));
    let email = file.email_domain.as_deref().and_then(|raw| {
        EmailDomain::parse(raw, file.allow_unverified_email)
            .map_err(|e| errors.push(format!("{base}.email_domain"), e))
            .ok()
    });
    if file.allow_unverified_email && file.email_domain.is_none() {
        errors.push(
            format!("{base}.allow_unverified_email"),
            "has no effect without `email_domain` in the same entry",
        );
    }
    let claims = file.claims.as_ref().map(|map| {
        if map.is_empty() {
            errors.push(
                format!("{base}.claims"),
                "empty map: it would require nothing; remove it",
            );
        }
        let path_given = file.path.as_deref();
        map.iter()
            .filter_map(|(name, value)| {
                claim(
                    &format!("{base}.claims.{name}"),
                    name,
                    value,
                    path_given,
                    path.as_ref(),
                    errors,
                )
            })
            .collect::<Vec<_>>()
    });
    (errors.0.len() == before).then(|| Entry {
        methods,
        path,
        scopes: scopes.unwrap_or_default().into(),
        groups: groups.unwrap_or_default().into(),
        email,
        claims: claims.unwrap_or_default().into(),
    })
}

fn methods(
    key: &str,
    names: &[String],
    route: MethodSet,
    errors: &mut Errors,
) -> Option<MethodRule> {
    if names.is_empty() {
        errors.push(key, "empty list: the entry could never hold");
        return None;
    }
    let mut ok = true;
    for (j, name) in names.iter().enumerate() {
        if MethodSet::from_names([name.as_str()]).is_err() {
            ok = false;
            let upper = name.to_ascii_uppercase();
            let message = if MethodSet::from_names([upper.as_str()]).is_ok() {
                format!("unknown method `{name}`: methods are upper case, as in `{upper}`")
            } else {
                format!("unknown method `{name}`")
            };
            errors.push(format!("{key}[{j}]"), message);
        }
    }
    let set = MethodSet::from_names(names.iter().map(String::as_str))
        .ok()
        .filter(|_| ok)?;
    if !set.intersects(&route) {
        errors.push(
            key,
            "no method in common with the route's `match.methods`: the entry could never hold",
        );
        return None;
    }
    let mut unique: Vec<Box<str>> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.iter().any(|u| **u == **name) {
            unique.push(name.as_str().into());
        }
    }
    Some(MethodRule {
        set,
        names: unique.into(),
    })
}

fn path(key: &str, raw: &str, route: &PathMatch, errors: &mut Errors) -> Option<PathTemplate> {
    let template = PathTemplate::parse(raw)
        .map_err(|e| errors.push(key, e))
        .ok()?;
    if !template.can_match(route) {
        let taken = match route {
            PathMatch::Any => "every path".to_owned(),
            PathMatch::Exact(p) => format!("`match.path: {p}`"),
            PathMatch::Prefix(p) => format!("`match.path_prefix: {p}`"),
        };
        errors.push(
            key,
            format!("`{raw}` can never match a path this route takes ({taken})"),
        );
        return None;
    }
    Some(template)
}

fn scopes(key: &str, scopes: &[String], errors: &mut Errors) -> Vec<Box<str>> {
    if scopes.is_empty() {
        errors.push(key, "empty list: it would require nothing; remove it");
    }
    let mut unique: Vec<Box<str>> = Vec::with_capacity(scopes.len());
    for (j, scope) in scopes.iter().enumerate() {
        if scope.is_empty() {
            errors.push(format!("{key}[{j}]"), "empty scope");
        } else if scope
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            errors.push(
                format!("{key}[{j}]"),
                format!("`{scope}` is not one scope: list each scope separately"),
            );
        } else if !unique.iter().any(|u| **u == **scope) {
            unique.push(scope.as_str().into());
        }
    }
    unique
}

fn groups(key: &str, groups: &[String], errors: &mut Errors) -> Vec<Box<str>> {
    if groups.is_empty() {
        errors.push(key, "empty list: the entry could never hold");
    }
    let mut unique: Vec<Box<str>> = Vec::with_capacity(groups.len());
    for (j, group) in groups.iter().enumerate() {
        if group.is_empty() {
            errors.push(format!("{key}[{j}]"), "empty group name");
        } else if !unique.iter().any(|u| **u == **group) {
            unique.push(group.as_str().into());
        }
    }
    unique
}

/// One `claims` condition. `path_given` is the entry's `path` as written, `path` its compiled
/// form (`None` when absent or invalid, already reported).
fn claim(
    key: &str,
    name: &str,
    value: &ClaimValueFile,
    path_given: Option<&str>,
    path: Option<&PathTemplate>,
    errors: &mut Errors,
) -> Option<ClaimRule> {
    let before = errors.0.len();
    if let Err(e) = check_claim_name(name) {
        errors.push(key, e);
    }
    let values: Vec<(String, &str)> = match value {
        ClaimValueFile::One(v) => vec![(key.to_owned(), v.as_str())],
        ClaimValueFile::Any(list) => {
            if list.is_empty() {
                errors.push(key, "empty list: the claim could never match");
            }
            list.iter()
                .enumerate()
                .map(|(j, v)| (format!("{key}[{j}]"), v.as_str()))
                .collect()
        }
    };
    let mut matchers = Vec::with_capacity(values.len());
    for (value_key, raw) in values {
        match parse_value(raw) {
            Err(e) => errors.push(value_key, e),
            Ok(ValueSpec::Fixed(m)) => matchers.push(m),
            Ok(ValueSpec::Var(var)) => match (path_given, path) {
                (None, _) => errors.push(
                    value_key,
                    format!("`{{{var}}}` needs a `path` in the same entry that binds it"),
                ),
                // The path is invalid and already reported; its variables cannot be judged.
                (Some(_), None) => {}
                (Some(raw_path), Some(t)) => match t.var_index(var) {
                    Some(index) => matchers.push(ValueMatcher::Var {
                        index,
                        name: var.into(),
                    }),
                    None => errors.push(
                        value_key,
                        format!("`{{{var}}}` is not bound by `path` (`{raw_path}`)"),
                    ),
                },
            },
        }
    }
    (errors.0.len() == before && !matchers.is_empty()).then(|| ClaimRule {
        name: name.into(),
        matchers: matchers.into(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::{DEFAULT_GROUPS_CLAIM, Policy};

    fn allow(entries: Value) -> Vec<AllowFile> {
        serde_json::from_value(entries).expect("well-formed allow entries")
    }

    fn compile_with(
        entries: Value,
        route_path: &PathMatch,
        route_methods: MethodSet,
    ) -> Result<Policy, Vec<PolicyProblem>> {
        let ctx = PolicyContext {
            route_path,
            route_methods,
            groups_claim: DEFAULT_GROUPS_CLAIM,
        };
        Policy::compile(&allow(entries), &ctx)
    }

    fn problems(
        entries: Value,
        route_path: &PathMatch,
        route_methods: MethodSet,
    ) -> Vec<PolicyProblem> {
        compile_with(entries, route_path, route_methods)
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn sound_policies_compile() {
        let orders = PathMatch::Prefix("/orders".into());
        let get_post = MethodSet::from_names(["GET", "POST"]).expect("known");
        let cases = [
            json!([{"scopes": ["orders.read"]}]),
            json!([{"path": "/orders/regions/{region}/**", "claims": {"region": "{region}"}}]),
            json!([{"email_domain": "corp.com", "groups": ["crm-users"]}]),
            json!([{"email_domain": "Corp.com", "allow_unverified_email": true}]),
            json!([{"methods": ["GET", "DELETE"]}]),
            json!([{"claims": {"tenant": "*", "realm_access.roles": ["admin", "ops-*"]}}]),
            json!([{"claims": {"https://example.com/roles": "admin"}}]),
            json!([{"path": "/orders/{id}", "claims": {"owned": ["{id}", "all"]}}]),
            json!([{"scopes": ["a", "a"], "groups": ["g", "g"], "methods": ["GET", "GET"]}]),
        ];
        for entries in cases {
            let got = compile_with(entries.clone(), &orders, get_post);
            assert!(got.is_ok(), "{entries}: {got:?}");
        }
    }

    #[test]
    fn every_unsatisfiable_or_malformed_rule_is_reported_at_its_key() {
        let any = PathMatch::Any;
        let orders = PathMatch::Prefix("/orders".into());
        let exact = PathMatch::Exact("/orders/7".into());
        let all = MethodSet::ALL;
        let get = MethodSet::from_names(["GET"]).expect("known");
        let cases = [
            (json!([]), &any, all, "allow", "empty list"),
            (json!([{}]), &any, all, "allow[0]", "at least one"),
            (
                json!([{"allow_unverified_email": true}]),
                &any,
                all,
                "allow[0]",
                "at least one",
            ),
            (
                json!([{"scopes": []}]),
                &any,
                all,
                "allow[0].scopes",
                "empty list",
            ),
            (
                json!([{"scopes": ["a", ""]}]),
                &any,
                all,
                "allow[0].scopes[1]",
                "empty scope",
            ),
            (
                json!([{"scopes": ["a b"]}]),
                &any,
                all,
                "allow[0].scopes[0]",
                "not one scope",
            ),
            (
                json!([{"groups": []}]),
                &any,
                all,
                "allow[0].groups",
                "empty list",
            ),
            (
                json!([{"groups": [""]}]),
                &any,
                all,
                "allow[0].groups[0]",
                "empty group",
            ),
            (
                json!([{"methods": []}]),
                &any,
                all,
                "allow[0].methods",
                "empty list",
            ),
            (
                json!([{"methods": ["GET", "FETCH"]}]),
                &any,
                all,
                "allow[0].methods[1]",
                "unknown method `FETCH`",
            ),
            (
                json!([{"methods": ["get"]}]),
                &any,
                all,
                "allow[0].methods[0]",
                "upper case, as in `GET`",
            ),
            (
                json!([{"methods": ["POST", "PUT"]}]),
                &any,
                get,
                "allow[0].methods",
                "no method in common",
            ),
            (
                json!([{"claims": {}}]),
                &any,
                all,
                "allow[0].claims",
                "empty map",
            ),
            (
                json!([{"claims": {"roles": []}}]),
                &any,
                all,
                "allow[0].claims.roles",
                "empty list",
            ),
            (
                json!([{"claims": {"a..b": "x"}}]),
                &any,
                all,
                "allow[0].claims.a..b",
                "empty part",
            ),
            (
                json!([{"claims": {"": "x"}}]),
                &any,
                all,
                "allow[0].claims.",
                "empty claim name",
            ),
            (
                json!([{"claims": {"region": "{region}"}}]),
                &any,
                all,
                "allow[0].claims.region",
                "needs a `path`",
            ),
            (
                json!([{"path": "/r/{id}", "claims": {"region": "{region}"}}]),
                &any,
                all,
                "allow[0].claims.region",
                "not bound by `path` (`/r/{id}`)",
            ),
            (
                json!([{"claims": {"roles": ["a", "{x}-y"]}}]),
                &any,
                all,
                "allow[0].claims.roles[1]",
                "whole value",
            ),
            (
                json!([{"claims": {"roles": "{}"}}]),
                &any,
                all,
                "allow[0].claims.roles",
                "no path variable",
            ),
            (
                json!([{"email_domain": "@corp.com"}]),
                &any,
                all,
                "allow[0].email_domain",
                "without `@`",
            ),
            (
                json!([{"email_domain": "corp.com."}]),
                &any,
                all,
                "allow[0].email_domain",
                "trailing dot",
            ),
            (
                json!([{"email_domain": "corp..com"}]),
                &any,
                all,
                "allow[0].email_domain",
                "not a valid domain",
            ),
            (
                json!([{"scopes": ["a"], "allow_unverified_email": true}]),
                &any,
                all,
                "allow[0].allow_unverified_email",
                "no effect",
            ),
            (
                json!([{"path": "regions/**"}]),
                &any,
                all,
                "allow[0].path",
                "start with `/`",
            ),
            (
                json!([{"path": "/a/{}"}]),
                &any,
                all,
                "allow[0].path",
                "no variable name",
            ),
            (
                json!([{"path": "/a/**/b"}]),
                &any,
                all,
                "allow[0].path",
                "last segment",
            ),
            (
                json!([{"path": "/{x}/{x}"}]),
                &any,
                all,
                "allow[0].path",
                "bound twice",
            ),
            (
                json!([{"path": "/a/x{y}"}]),
                &any,
                all,
                "allow[0].path",
                "mixes text",
            ),
            (
                json!([{"path": "/regions/**"}]),
                &orders,
                all,
                "allow[0].path",
                "can never match a path this route takes (`match.path_prefix: /orders`)",
            ),
            (
                json!([{"path": "/orders/{id}/x"}]),
                &exact,
                all,
                "allow[0].path",
                "`match.path: /orders/7`",
            ),
        ];
        for (entries, route_path, route_methods, key, message) in cases {
            let got = problems(entries.clone(), route_path, route_methods);
            assert!(
                got.iter().any(|(k, m)| k == key && m.contains(message)),
                "{entries}: want {key}: …{message}…, got {got:?}"
            );
            for (k, m) in &got {
                assert!(
                    !m.ends_with('.') && m.chars().next().is_some_and(|c| !c.is_uppercase()),
                    "{k}: {m}"
                );
            }
        }
    }

    #[test]
    fn every_problem_of_every_entry_is_reported_at_once() {
        let got = problems(
            json!([
                {"scopes": []},
                {"email_domain": "@corp.com", "methods": ["get"]},
                {"groups": ["ok"]},
                {"path": "/a/{}", "claims": {"r": "{r}"}},
            ]),
            &PathMatch::Any,
            MethodSet::ALL,
        );
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        // The unbound `{r}` is not reported: the path is invalid, so its variables are unknown.
        assert_eq!(
            keys,
            [
                "allow[0].scopes",
                "allow[1].methods[0]",
                "allow[1].email_domain",
                "allow[3].path"
            ]
        );
    }
}

//! `allow` rules: whether an authenticated identity may use a route.
//!
//! A route's `allow:` is a list of entries. The request is allowed when *any* entry holds; an
//! entry holds when *all* of its conditions hold. Without `allow`, any authenticated identity
//! passes ([`Policy::any_authenticated`]). Entries are compiled once per config load
//! ([`Policy::compile`]) and evaluated per request ([`Policy::evaluate`]) against a plain claims
//! map, so bearer-token and browser-session routes share them.
//!
//! This module owns the rules only. It does not authenticate (tokens and sessions are checked
//! before it runs), write responses or metrics: it returns a [`Verdict`] with a bounded
//! [`DenyReason`] that callers turn into a 403 (or an RFC 6750 `insufficient_scope` answer) and a
//! metric label.
//!
//! # Conditions
//! - `scopes`: every listed scope is granted, by the `scope` claim (space-separated) or the `scp`
//!   claim (array, or space-separated string); both together grant their union.
//! - `groups`: the groups claim (named by [`PolicyContext::groups_claim`], a dotted path allowed)
//!   names any of them; the claim is an array of strings or one string, taken whole.
//! - `email_domain`: the `email` claim is in the domain or a subdomain, on label boundaries and
//!   ignoring case (`a@eu.corp.com` is in `corp.com`; `a@evilcorp.com` and
//!   `a@corp.com.evil.net` are not). The address is parsed strictly: exactly one `@`, a non-empty
//!   local part, a valid ASCII host name as domain; a trailing dot (`a@corp.com.`) is refused.
//!   An `email_verified` of `false` (or `"false"`, or anything but `true`/`"true"`) fails it
//!   unless `allow_unverified_email` is set; an **absent or `null` `email_verified` passes**,
//!   because many providers omit it for directory accounts whose addresses they issue themselves.
//! - `claims`: each named claim (a dotted path reads nested objects; a key with the whole name,
//!   dots and all, is preferred) has a value that is accepted. A configured value is equality, a
//!   glob when it has `*` (`*` matches any run, nothing else is special), or `"{name}"`, the path
//!   segment bound to `name`; a list is one-of. A glob of only `*` accepts any value, as long as
//!   the claim has one (not `null`, not `[]`). The claim's string, number or boolean is compared
//!   in its JSON text form; an array matches when any element does.
//! - `path`: a template the normalised request path matches. Segments are literals, `{name}`
//!   (one non-empty segment, bound to `name`), `*` (one non-empty segment) or, last only, `**`
//!   (zero or more segments): `/regions/{region}/**` takes `/regions/eu` and `/regions/eu/x`, not
//!   `/regions/`. Without `**` the segment count must be equal; a trailing `/` is literal.
//! - `methods`: the request method is one of them (upper case, as in `match.methods`).
//!
//! # Denial reasons
//! When no entry holds, the reason is chosen so that `insufficient_scope` is reported only when
//! more scopes would actually help: if some entry fails on its scopes alone, the first such entry
//! gives [`DenyReason::InsufficientScope`] and its missing scopes. Otherwise the entry with the
//! fewest kinds of failed condition (the first on ties) gives the reason, taking its first failed
//! kind in the order method, path, group, email, claim.
//!
//! # Invariants
//! - Fail closed: a condition whose claim is absent or of a type it cannot read is false; nothing
//!   here returns an error or panics at request time.
//! - [`Policy::evaluate`] does not allocate when an entry holds, and uses no regular expressions.
//! - A policy that compiles can be satisfied as far as the route's own match allows: empty
//!   entries and lists, unknown methods, methods or paths the route never takes, malformed
//!   templates and unbound template variables are all compile errors.

mod claims;
mod compile;
mod email;
mod entry;
mod path_template;

use std::fmt;

use http::Method;
use serde_json::{Map, Value};

use crate::config::file::AllowFile;
use crate::routing::{MethodSet, PathMatch};

pub use self::claims::lookup as lookup_claim;
use self::entry::Entry;

/// The groups claim used when the provider names none.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// A route's compiled `allow` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Any-of entries; empty means any authenticated identity.
    entries: Box<[Entry]>,
    /// Claim (name or dotted path) read by `groups` conditions.
    groups_claim: Box<str>,
}

/// What [`Policy::compile`] needs to know about the route and its provider.
#[derive(Debug, Clone, Copy)]
pub struct PolicyContext<'a> {
    /// The route's own path match; a `path` condition it never satisfies is an error.
    pub route_path: &'a PathMatch,
    /// The route's own methods; a `methods` condition sharing none with them is an error.
    pub route_methods: MethodSet,
    /// The claim listing groups (name or dotted path), usually [`DEFAULT_GROUPS_CLAIM`].
    pub groups_claim: &'a str,
}

/// The facts about a request that rules read, besides claims.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The normalised path (see [`crate::routing::normalise`]), without query.
    pub path: &'a str,
}

/// One problem found by [`Policy::compile`]: `(key, message)`. The key is relative to the route
/// (`allow[1].email_domain`, `allow[0].claims.roles[2]`); the message is lower case, without a
/// trailing period.
pub type PolicyProblem = (String, String);

/// The outcome of [`Policy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The identity may pass.
    Allow {
        /// The first entry that held; `None` for [`Policy::any_authenticated`].
        entry: Option<usize>,
    },
    /// The identity may not pass.
    Deny(Denial),
}

impl Verdict {
    /// Whether the identity may pass.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }
}

/// Why a request was denied. See the module doc for how the entry and reason are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The reason, a bounded set fit for a metric label.
    pub reason: DenyReason,
    /// The entry the reason comes from (the one closest to passing).
    pub entry: usize,
    /// For [`DenyReason::InsufficientScope`], the entry's required scopes that were not granted,
    /// in configured order, for the `scope` attribute of an RFC 6750 §3.1 answer. Empty otherwise.
    pub missing_scopes: Vec<String>,
}

/// Why no entry held: the failing condition of the entry closest to passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// Only scopes were missing; a token with more scopes would pass (RFC 6750 §3.1).
    InsufficientScope,
    /// Not in any required group.
    Group,
    /// The email condition failed (missing, malformed, other domain or unverified).
    Email,
    /// A claim condition failed.
    Claim,
    /// The path did not match the template.
    Path,
    /// The method is not allowed.
    Method,
}

impl DenyReason {
    /// The metric label: `insufficient_scope`, `group`, `email`, `claim`, `path` or `method`.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::InsufficientScope => "insufficient_scope",
            DenyReason::Group => "group",
            DenyReason::Email => "email",
            DenyReason::Claim => "claim",
            DenyReason::Path => "path",
            DenyReason::Method => "method",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry, condition by condition, for `portcullis explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryReport {
    /// Whether every condition held.
    pub held: bool,
    /// The entry's conditions, in the order they are checked.
    pub conditions: Vec<ConditionReport>,
}

/// The kind of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionKind {
    /// `methods`.
    Methods,
    /// `path`.
    Path,
    /// `scopes`.
    Scopes,
    /// `groups`.
    Groups,
    /// `email_domain` (with `allow_unverified_email`).
    EmailDomain,
    /// One entry of `claims`.
    Claim,
}

/// One condition of an entry and whether it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionReport {
    /// The kind of condition.
    pub kind: ConditionKind,
    /// Its key within the entry: `scopes`, `claims.realm_access.roles`.
    pub key: String,
    /// The rule as configured: `[orders.read]`, `/regions/{region}/**`, `"{region}"`.
    pub rule: String,
    /// Whether it held.
    pub held: bool,
    /// Why it failed (`missing: orders.write`, `claim absent`); `None` when it held.
    pub detail: Option<String>,
}

impl Policy {
    /// The policy of a route without `allow`: every authenticated identity passes.
    pub fn any_authenticated() -> Policy {
        Policy {
            entries: Box::new([]),
            groups_claim: DEFAULT_GROUPS_CLAIM.into(),
        }
    }

    /// Compiles a route's `allow` entries, once per config load.
    ///
    /// # Errors
    /// Every problem of every entry, with its key relative to the route; see the module doc for
    /// what is refused. `allow: []` is refused too (it would admit no one): omit `allow` instead.
    pub fn compile(
        entries: &[AllowFile],
        ctx: &PolicyContext<'_>,
    ) -> Result<Policy, Vec<PolicyProblem>> {
        Ok(Policy {
            entries: compile::entries(entries, ctx)?.into(),
            groups_claim: ctx.groups_claim.into(),
        })
    }

    /// Whether this is [`Policy::any_authenticated`].
    pub fn is_any_authenticated(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decides whether the identity with these claims may make this request. Called once per
    /// authenticated request; allocation-free unless the request is denied.
    pub fn evaluate(&self, request: &RequestFacts<'_>, claims: &Map<String, Value>) -> Verdict {
        if self.entries.is_empty() {
            return Verdict::Allow { entry: None };
        }
        match self
            .entries
            .iter()
            .position(|e| e.holds(request, claims, &self.groups_claim))
        {
            Some(entry) => Verdict::Allow { entry: Some(entry) },
            None => self.deny(request, claims),
        }
    }

    /// The denial for a request no entry admits; see the module doc for the choice.
    fn deny(&self, request: &RequestFacts<'_>, claims: &Map<String, Value>) -> Verdict {
        let mut closest: Option<(usize, entry::Failures)> = None;
        for (i, entry) in self.entries.iter().enumerate() {
            let failed = entry.failures(request, claims, &self.groups_claim);
            if failed.is_empty() {
                // Only if `holds` and `failures` ever disagreed; the entries' conditions decide.
                return Verdict::Allow { entry: Some(i) };
            }
            if failed.only_scopes() {
                return Verdict::Deny(Denial {
                    reason: DenyReason::InsufficientScope,
                    entry: i,
                    missing_scopes: entry.missing_scopes(claims).map(str::to_owned).collect(),
                });
            }
            if closest.is_none_or(|(_, best)| failed.count() < best.count()) {
                closest = Some((i, failed));
            }
        }
        let (entry, failed) = closest.unwrap_or_default();
        Verdict::Deny(Denial {
            // Never scopes: an entry failing on scopes alone returned above.
            reason: failed.first().unwrap_or(DenyReason::Claim),
            entry,
            missing_scopes: Vec::new(),
        })
    }

    /// Every entry, condition by condition, for `portcullis explain`. Empty for
    /// [`Policy::any_authenticated`]. Allocates freely; not for the request path.
    pub fn explain(
        &self,
        request: &RequestFacts<'_>,
        claims: &Map<String, Value>,
    ) -> Vec<EntryReport> {
        self.entries
            .iter()
            .map(|e| e.report(request, claims, &self.groups_claim))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(entries: Value) -> Policy {
        let entries: Vec<AllowFile> = serde_json::from_value(entries).expect("well-formed entries");
        let ctx = PolicyContext {
            route_path: &PathMatch::Any,
            route_methods: MethodSet::ALL,
            groups_claim: DEFAULT_GROUPS_CLAIM,
        };
        Policy::compile(&entries, &ctx).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn method(name: &str) -> Method {
        Method::from_bytes(name.as_bytes()).expect("valid method")
    }

    fn evaluate(p: &Policy, m: &str, path: &str, c: Value) -> Verdict {
        p.evaluate(
            &RequestFacts {
                method: &method(m),
                path,
            },
            &claims(c),
        )
    }

    fn allow(entry: usize) -> Verdict {
        Verdict::Allow { entry: Some(entry) }
    }

    fn deny(reason: DenyReason, entry: usize) -> Verdict {
        Verdict::Deny(Denial {
            reason,
            entry,
            missing_scopes: Vec::new(),
        })
    }

    fn scope_denial(entry: usize, missing: &[&str]) -> Verdict {
        Verdict::Deny(Denial {
            reason: DenyReason::InsufficientScope,
            entry,
            missing_scopes: missing.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    #[test]
    fn no_allow_admits_any_authenticated_identity() {
        let p = Policy::any_authenticated();
        assert!(p.is_any_authenticated());
        assert_eq!(
            evaluate(&p, "DELETE", "/x", json!({})),
            Verdict::Allow { entry: None }
        );
        assert!(
            p.explain(
                &RequestFacts {
                    method: &Method::GET,
                    path: "/"
                },
                &Map::new()
            )
            .is_empty()
        );
    }

    #[test]
    fn any_entry_admits_and_every_condition_of_it_must_hold() {
        use DenyReason::*;
        let p = policy(json!([
            {"scopes": ["orders.read", "orders.write"], "methods": ["POST"]},
            {"groups": ["admins"]},
            {"email_domain": "corp.com", "path": "/reports/**"},
        ]));
        let both = json!({"scope": "orders.read orders.write"});
        let cases = [
            ("POST", "/x", both.clone(), allow(0)),
            ("GET", "/x", both.clone(), deny(Method, 0)),
            (
                "POST",
                "/x",
                json!({"scope": "orders.read"}),
                scope_denial(0, &["orders.write"]),
            ),
            (
                "POST",
                "/x",
                json!({}),
                scope_denial(0, &["orders.read", "orders.write"]),
            ),
            (
                "GET",
                "/x",
                json!({"groups": ["users", "admins"]}),
                allow(1),
            ),
            (
                "GET",
                "/reports/q",
                json!({"email": "a@corp.com"}),
                allow(2),
            ),
            (
                "GET",
                "/reports",
                json!({"email": "a@eu.corp.com"}),
                allow(2),
            ),
            (
                "GET",
                "/other",
                json!({"email": "a@corp.com"}),
                deny(Group, 1),
            ),
            (
                "GET",
                "/reports/q",
                json!({"email": "a@corp.com", "email_verified": false}),
                deny(Group, 1),
            ),
            (
                "GET",
                "/reports/q",
                json!({"email": "a@evilcorp.com"}),
                deny(Group, 1),
            ),
        ];
        for (m, path, c, want) in cases {
            assert_eq!(evaluate(&p, m, path, c.clone()), want, "{m} {path} {c}");
        }
    }

    #[test]
    fn each_failed_condition_has_its_reason() {
        use DenyReason::*;
        let cases = [
            (
                json!([{"groups": ["a"]}]),
                json!({"groups": ["b"]}),
                deny(Group, 0),
            ),
            (
                json!([{"email_domain": "corp.com"}]),
                json!({"email": "a@other.com"}),
                deny(Email, 0),
            ),
            (
                json!([{"claims": {"tier": "gold"}}]),
                json!({"tier": "silver"}),
                deny(Claim, 0),
            ),
            (json!([{"path": "/a/**"}]), json!({}), deny(Path, 0)),
            (json!([{"methods": ["POST"]}]), json!({}), deny(Method, 0)),
            (
                json!([{"scopes": ["s"]}]),
                json!({"scope": "t"}),
                scope_denial(0, &["s"]),
            ),
            // Scopes and a group both missing: more scopes would not help.
            (
                json!([{"scopes": ["s"], "groups": ["a"]}]),
                json!({}),
                deny(Group, 0),
            ),
            // A later entry failing on scopes alone beats an earlier one failing otherwise.
            (
                json!([{"groups": ["a"]}, {"scopes": ["x", "y", "z"]}]),
                json!({"scp": ["x"]}),
                scope_denial(1, &["y", "z"]),
            ),
            // The entry with the fewest failed kinds gives the reason.
            (
                json!([{"methods": ["POST"], "groups": ["a"]}, {"claims": {"tier": "gold"}}]),
                json!({}),
                deny(Claim, 1),
            ),
        ];
        for (entries, c, want) in cases {
            let p = policy(entries.clone());
            assert_eq!(
                evaluate(&p, "GET", "/b", c.clone()),
                want,
                "{entries} with {c}"
            );
        }
        assert_eq!(
            [InsufficientScope, Group, Email, Claim, Path, Method].map(DenyReason::as_str),
            [
                "insufficient_scope",
                "group",
                "email",
                "claim",
                "path",
                "method"
            ]
        );
    }

    #[test]
    fn scopes_come_from_scope_or_scp_or_both() {
        let p = policy(json!([{"scopes": ["read", "write"]}]));
        let cases = [
            (json!({"scope": "read write"}), true),
            (json!({"scope": "write other read"}), true),
            (json!({"scp": ["read", "write"]}), true),
            (json!({"scp": "read write"}), true),
            (json!({"scope": "read", "scp": ["write"]}), true),
            (json!({"scope": "read"}), false),
            (json!({"scope": "readwrite"}), false),
            (json!({"scope": ["read", "write"]}), false),
            (json!({"scp": {"read": true, "write": true}}), false),
            (json!({"scp": null}), false),
        ];
        for (c, allowed) in cases {
            assert_eq!(
                evaluate(&p, "GET", "/", c.clone()).is_allowed(),
                allowed,
                "{c}"
            );
        }
    }

    #[test]
    fn claims_match_by_value_glob_list_and_dotted_path() {
        let p = policy(json!([{"claims": {
            "realm_access.roles": ["admin", "ops-*"],
            "level": "3",
            "mfa": "true",
        }}]));
        let ok = |roles: Value| json!({"realm_access": {"roles": roles}, "level": 3, "mfa": true});
        let cases = [
            (ok(json!(["user", "admin"])), true),
            (ok(json!(["ops-eu"])), true),
            (ok(json!("admin")), true),
            (ok(json!(["user"])), false),
            (ok(json!([])), false),
            (ok(json!(null)), false),
            (
                json!({"realm_access": {"roles": ["admin"]}, "level": "3", "mfa": "true"}),
                true,
            ),
            (
                json!({"realm_access": {"roles": ["admin"]}, "level": 4, "mfa": true}),
                false,
            ),
            (
                json!({"realm_access": {"roles": ["admin"]}, "level": 3, "mfa": false}),
                false,
            ),
            (
                json!({"realm_access": {"roles": ["admin"]}, "level": 3}),
                false,
            ),
            (
                json!({"realm_access.roles": ["admin"], "level": 3, "mfa": true}),
                true,
            ),
        ];
        for (c, allowed) in cases {
            assert_eq!(
                evaluate(&p, "GET", "/", c.clone()).is_allowed(),
                allowed,
                "{c}"
            );
        }
    }

    #[test]
    fn path_variables_bind_claim_values() {
        let p = policy(json!([{"path": "/regions/{region}/**", "claims": {"region": "{region}"}}]));
        let cases = [
            ("/regions/eu/x", json!({"region": "eu"}), true),
            ("/regions/eu", json!({"region": "eu"}), true),
            ("/regions/eu/x", json!({"region": "us"}), false),
            ("/regions/eu/x", json!({"region": "EU"}), false),
            ("/regions/eu/x", json!({"region": ["us", "eu"]}), true),
            ("/regions/eu/x", json!({}), false),
            ("/regions/", json!({"region": ""}), false),
            ("/regions/", json!({"region": "eu"}), false),
            ("/regions", json!({"region": "eu"}), false),
            ("/other/eu", json!({"region": "eu"}), false),
        ];
        for (path, c, allowed) in cases {
            assert_eq!(
                evaluate(&p, "GET", path, c.clone()).is_allowed(),
                allowed,
                "{path} {c}"
            );
        }
        let one_of = policy(
            json!([{"path": "/t/{tenant}", "claims": {"tenants": ["{tenant}", "*-admin"]}}]),
        );
        assert!(evaluate(&one_of, "GET", "/t/acme", json!({"tenants": ["acme"]})).is_allowed());
        assert!(evaluate(&one_of, "GET", "/t/acme", json!({"tenants": ["x-admin"]})).is_allowed());
        assert!(!evaluate(&one_of, "GET", "/t/acme", json!({"tenants": ["other"]})).is_allowed());
    }

    #[test]
    fn missing_or_mistyped_claims_fail_closed() {
        let p = policy(json!([
            {"scopes": ["s"]},
            {"groups": ["g"]},
            {"email_domain": "corp.com"},
            {"claims": {"tier": "gold", "org.unit": "*"}},
        ]));
        let cases = [
            json!({}),
            json!({"scope": 1, "scp": true, "groups": {"g": 1}, "email": ["a@corp.com"], "tier": null}),
            json!({"scope": null, "groups": null, "email": null, "tier": {"gold": 1}, "org": "unit"}),
            json!({"groups": [["g"]], "email": 7, "tier": [["gold"]], "org": {"unit": []}}),
            json!({"tier": "gold", "org": {"unit": null}}),
        ];
        for c in cases {
            assert!(!evaluate(&p, "GET", "/", c.clone()).is_allowed(), "{c}");
        }
    }

    #[test]
    fn explain_reports_every_condition() {
        let p = policy(json!([
            {"methods": ["GET"], "path": "/r/{region}/**", "scopes": ["a", "b"], "claims": {"region": "{region}"}},
            {"groups": ["ops"], "email_domain": "corp.com"},
        ]));
        let request = RequestFacts {
            method: &Method::GET,
            path: "/r/eu/x",
        };
        let c = claims(json!({"scope": "a", "region": "us", "email": "x@corp.com"}));
        let reports = p.explain(&request, &c);
        type Row<'a> = (ConditionKind, &'a str, &'a str, bool, Option<&'a str>);
        let summary: Vec<Vec<Row<'_>>> = reports
            .iter()
            .map(|r| {
                r.conditions
                    .iter()
                    .map(|c| {
                        (
                            c.kind,
                            c.key.as_str(),
                            c.rule.as_str(),
                            c.held,
                            c.detail.as_deref(),
                        )
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            summary,
            [
                vec![
                    (ConditionKind::Methods, "methods", "[GET]", true, None),
                    (ConditionKind::Path, "path", "/r/{region}/**", true, None),
                    (
                        ConditionKind::Scopes,
                        "scopes",
                        "[a, b]",
                        false,
                        Some("missing: b")
                    ),
                    (
                        ConditionKind::Claim,
                        "claims.region",
                        "\"{region}\"",
                        false,
                        Some("is \"us\"")
                    ),
                ],
                vec![
                    (
                        ConditionKind::Groups,
                        "groups",
                        "[ops]",
                        false,
                        Some("no `groups` claim")
                    ),
                    (
                        ConditionKind::EmailDomain,
                        "email_domain",
                        "corp.com",
                        true,
                        None
                    ),
                ],
            ]
        );
        assert!(reports.iter().all(|r| !r.held));
        let elsewhere = RequestFacts {
            method: &Method::POST,
            path: "/s",
        };
        let first = &p.explain(&elsewhere, &c)[0];
        assert_eq!(
            first.conditions[0].detail.as_deref(),
            Some("POST is not one of them")
        );
        assert_eq!(
            first.conditions[1].detail.as_deref(),
            Some("`/s` does not match")
        );
        assert_eq!(
            first.conditions[3].detail.as_deref(),
            Some("the path did not match, so its variables are unbound")
        );
    }

    #[test]
    fn explain_agrees_with_evaluate() {
        let p = policy(json!([
            {"scopes": ["s"], "methods": ["POST"]},
            {"groups": ["g"], "path": "/a/{x}", "claims": {"x": "{x}"}},
            {"email_domain": "corp.com"},
        ]));
        let requests = [("GET", "/a/1"), ("POST", "/a/1"), ("GET", "/b")];
        let identities = [
            json!({}),
            json!({"scope": "s"}),
            json!({"groups": "g", "x": "1"}),
            json!({"groups": "g", "x": 1}),
            json!({"email": "a@corp.com"}),
            json!({"email": "a@corp.com", "email_verified": "false"}),
        ];
        for (m, path) in requests {
            for c in &identities {
                let verdict = evaluate(&p, m, path, c.clone());
                let reports = p.explain(
                    &RequestFacts {
                        method: &method(m),
                        path,
                    },
                    &claims(c.clone()),
                );
                let first_held = reports.iter().position(|r| r.held);
                match verdict {
                    Verdict::Allow { entry } => assert_eq!(entry, first_held, "{m} {path} {c}"),
                    Verdict::Deny(_) => assert_eq!(first_held, None, "{m} {path} {c}"),
                }
            }
        }
    }
}

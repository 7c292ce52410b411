//! One compiled `allow` entry: its conditions, and how they are checked against one request.
//!
//! Three readings of the same conditions, all sharing the per-condition checks below:
//! [`Entry::holds`] short-circuits (the hot path), [`Entry::failures`] checks every condition (for
//! a denial's reason) and [`Entry::report`] describes every condition (for `explain`).
//!
//! Invariant: conditions are checked in the order methods, path, scopes, groups, email, claims;
//! the path comes before claims because it binds the variables claim values refer to. An entry
//! always has at least one condition, and no list in it is empty (both checked at compile time).

use http::Method;
use serde_json::{Map, Value};

use super::claims::{ClaimRule, has_scope, in_any_group, lookup};
use super::email::{EmailDomain, EmailOutcome};
use super::path_template::{Bindings, PathTemplate};
use super::{ConditionKind, ConditionReport, DenyReason, EntryReport, RequestFacts};
use crate::routing::MethodSet;

/// Longest claim value quoted in an `explain` report.
const MAX_QUOTED: usize = 120;

/// A `methods` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MethodRule {
    /// The methods, as a set.
    pub(super) set: MethodSet,
    /// The methods as written, for `explain`.
    pub(super) names: Box<[Box<str>]>,
}

/// A compiled entry. An empty list means the condition was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The request method is one of these.
    pub(super) methods: Option<MethodRule>,
    /// The request path matches; binds variables for `claims`.
    pub(super) path: Option<PathTemplate>,
    /// Every one of these scopes is granted.
    pub(super) scopes: Box<[Box<str>]>,
    /// The identity is in any of these groups.
    pub(super) groups: Box<[Box<str>]>,
    /// The email address lies in this domain.
    pub(super) email: Option<EmailDomain>,
    /// Every one of these claim conditions holds.
    pub(super) claims: Box<[ClaimRule]>,
}

/// The failed conditions of an entry, one bit per [`DenyReason`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failures(u8);

/// Reasons in the order a denial prefers them when several conditions fail: what the request
/// asked for first, then who the identity is; scopes last, since `insufficient_scope` tells the
/// client that a token with more scopes would do, which is only true when nothing else failed.
const REASON_ORDER: [DenyReason; 6] = [
    DenyReason::Method,
    DenyReason::Path,
    DenyReason::Group,
    DenyReason::Email,
    DenyReason::Claim,
    DenyReason::InsufficientScope,
];

impl Failures {
    fn bit(reason: DenyReason) -> u8 {
        1 << REASON_ORDER.iter().position(|r| *r == reason).unwrap_or(0)
    }

    fn set(&mut self, reason: DenyReason, failed: bool) {
        if failed {
            self.0 |= Self::bit(reason);
        }
    }

    /// Whether no condition failed.
    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether scopes are the only failed condition.
    pub(super) fn only_scopes(self) -> bool {
        self.0 == Self::bit(DenyReason::InsufficientScope)
    }

    /// How many kinds of condition failed.
    pub(super) fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// The reason to report: the first failed kind in [`REASON_ORDER`].
    pub(super) fn first(self) -> Option<DenyReason> {
        REASON_ORDER
            .into_iter()
            .find(|r| self.0 & Self::bit(*r) != 0)
    }
}

impl Entry {
    fn method_ok(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.set.contains(method))
    }

    fn path_ok<'r>(&self, path: &'r str, bindings: &mut Bindings<'r>) -> bool {
        self.path.as_ref().is_none_or(|t| t.matches(path, bindings))
    }

    fn scopes_ok(&self, claims: &Map<String, Value>) -> bool {
        self.scopes.iter().all(|s| has_scope(claims, s))
    }

    fn groups_ok(&self, claims: &Map<String, Value>, groups_claim: &str) -> bool {
        self.groups.is_empty() || in_any_group(claims, groups_claim, &self.groups)
    }

    fn email_ok(&self, claims: &Map<String, Value>) -> bool {
        self.email
            .as_ref()
            .is_none_or(|e| e.check(claims) == EmailOutcome::Passed)
    }

    fn claims_ok(&self, claims: &Map<String, Value>, bindings: &Bindings<'_>) -> bool {
        self.claims.iter().all(|c| c.holds(claims, bindings))
    }

    /// Whether every condition holds. Stops at the first that does not; allocation-free.
    pub(super) fn holds(
        &self,
        request: &RequestFacts<'_>,
        claims: &Map<String, Value>,
        groups_claim: &str,
    ) -> bool {
        let mut bindings = Bindings::default();
        self.method_ok(request.method)
            && self.path_ok(request.path, &mut bindings)
            && self.scopes_ok(claims)
            && self.groups_ok(claims, groups_claim)
            && self.email_ok(claims)
            && self.claims_ok(claims, &bindings)
    }

    /// Every failed condition.
    pub(super) fn failures(
        &self,
        request: &RequestFacts<'_>,
        claims: &Map<String, Value>,
        groups_claim: &str,
    ) -> Failures {
        let mut bindings = Bindings::default();
        let mut failed = Failures::default();
        failed.set(DenyReason::Method, !self.method_ok(request.method));
        failed.set(DenyReason::Path, !self.path_ok(request.path, &mut bindings));
        failed.set(DenyReason::InsufficientScope, !self.scopes_ok(claims));
        failed.set(DenyReason::Group, !self.groups_ok(claims, groups_claim));
        failed.set(DenyReason::Email, !self.email_ok(claims));
        failed.set(DenyReason::Claim, !self.claims_ok(claims, &bindings));
        failed
    }

    /// The required scopes not granted, in configured order.
    pub(super) fn missing_scopes<'e>(
        &'e self,
        claims: &'e Map<String, Value>,
    ) -> impl Iterator<Item = &'e str> + 'e {
        self.scopes
            .iter()
            .map(|s| &**s)
            .filter(|s| !has_scope(claims, s))
    }

    /// Every condition, whether it held and why, in check order.
    pub(super) fn report(
        &self,
        request: &RequestFacts<'_>,
        claims: &Map<String, Value>,
        groups_claim: &str,
    ) -> EntryReport {
        let mut conditions = Vec::new();
        let mut add = |kind, key: String, rule: String, held: bool, detail: Option<String>| {
            conditions.push(ConditionReport {
                kind,
                key,
                rule,
                held,
                detail,
            });
        };
        if let Some(m) = &self.methods {
            let held = self.method_ok(request.method);
            let detail = (!held).then(|| format!("{} is not one of them", request.method));
            add(
                ConditionKind::Methods,
                "methods".into(),
                list(&m.names),
                held,
                detail,
            );
        }
        let mut bindings = Bindings::default();
        let path_held = self.path_ok(request.path, &mut bindings);
        if let Some(t) = &self.path {
            let detail = if path_held {
                None
            } else {
                Some(format!("`{}` does not match", request.path))
            };
            add(
                ConditionKind::Path,
                "path".into(),
                t.as_str().into(),
                path_held,
                detail,
            );
        }
        if !self.scopes.is_empty() {
            let missing: Vec<&str> = self.missing_scopes(claims).collect();
            let detail = (!missing.is_empty()).then(|| format!("missing: {}", missing.join(" ")));
            add(
                ConditionKind::Scopes,
                "scopes".into(),
                list(&self.scopes),
                missing.is_empty(),
                detail,
            );
        }
        if !self.groups.is_empty() {
            let held = self.groups_ok(claims, groups_claim);
            let detail = (!held).then(|| match lookup(claims, groups_claim) {
                None => format!("no `{groups_claim}` claim"),
                Some(value) => format!("`{groups_claim}` is {}", quote(value)),
            });
            add(
                ConditionKind::Groups,
                "groups".into(),
                list(&self.groups),
                held,
                detail,
            );
        }
        if let Some(e) = &self.email {
            let outcome = e.check(claims);
            let held = outcome == EmailOutcome::Passed;
            let detail = (!held).then(|| outcome.describe().to_owned());
            add(
                ConditionKind::EmailDomain,
                "email_domain".into(),
                e.domain().into(),
                held,
                detail,
            );
        }
        for rule in &*self.claims {
            let held = rule.holds(claims, &bindings);
            let detail = (!held).then(|| match lookup(claims, &rule.name) {
                None => "claim absent".to_owned(),
                Some(_) if !path_held => {
                    "the path did not match, so its variables are unbound".to_owned()
                }
                Some(value) => format!("is {}", quote(value)),
            });
            add(
                ConditionKind::Claim,
                format!("claims.{}", rule.name),
                rule.describe(),
                held,
                detail,
            );
        }
        EntryReport {
            held: conditions.iter().all(|c| c.held),
            conditions,
        }
    }
}

/// `[a, b]`.
fn list(items: &[Box<str>]) -> String {
    format!("[{}]", items.join(", "))
}

/// A claim value as JSON, cut to [`MAX_QUOTED`] characters.
fn quote(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_report_the_first_reason_in_preference_order() {
        let mut f = Failures::default();
        assert!(f.is_empty() && f.first().is_none());
        f.set(DenyReason::InsufficientScope, true);
        assert!(f.only_scopes());
        assert_eq!(f.first(), Some(DenyReason::InsufficientScope));
        f.set(DenyReason::Claim, true);
        f.set(DenyReason::Path, true);
        f.set(DenyReason::Group, false);
        assert!(!f.only_scopes());
        assert_eq!(f.count(), 3);
        assert_eq!(f.first(), Some(DenyReason::Path));
    }

    #[test]
    fn quoted_values_are_cut() {
        assert_eq!(quote(&Value::from("eu")), "\"eu\"");
        let long = Value::from("é".repeat(300));
        assert_eq!(quote(&long).chars().count(), MAX_QUOTED + 1);
    }
}

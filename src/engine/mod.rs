//! engine: decides. Pure functions over the model; no I/O, and nothing of
//! gRPC or SQL. The `authorizer` module gathers the inputs through the
//! [`crate::store::Store`] trait and hands them to [`decide`].
//!
//! The rule (PRODUCT.md): allowed when the principal is an active member of
//! the tenant, some non-expired allow grant held by the principal or any of its
//! teams (transitively) sits on the resource or on an ancestor up to the
//! nearest private boundary (the tenant counts as the top ancestor), its role
//! (with inherited roles) is effective at that scope and has a permission
//! matching `<resource type>.<action>`, and no non-expired deny grant anywhere
//! on the path (private boundaries do not stop a deny) matches; a deny counts
//! wherever its role names the permission, effective there or not (fail
//! closed). Super users are
//! always allowed. Anything unknown is a denial with a reason.

pub mod authorizer;
mod cooperate;
mod from_index;
pub mod links;
pub use cooperate::Cooperate;
pub use links::{decide_linked, links_to_fetch, Linked};

pub use crate::model::{Binding, RoleMatch, RoleTable};

use crate::model::condition::{Facts, Outcome, RequestContext};
use crate::model::{Condition, Effect, Millis, Principal, PrincipalStatus, ResourceNode, Scope};

/// Why a decision came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Allowed by an allow grant.
    Granted,
    /// Allowed: super user.
    SuperUser,
    /// Denied: no such tenant.
    UnknownTenant,
    /// Denied: no such principal in the tenant.
    UnknownPrincipal,
    /// Denied: invited, not active.
    PrincipalInvited,
    /// Denied: invited, and the invitation lapsed.
    PrincipalInvitationExpired,
    /// Denied: suspended.
    PrincipalSuspended,
    /// Denied: removed.
    PrincipalRemoved,
    /// Denied: no such resource in the tenant.
    UnknownResource,
    /// Denied: no role names the action.
    UnknownPermission,
    /// Denied: nothing grants it.
    NoGrant,
    /// Denied: a matching role is granted where it has no effect.
    RoleNotEffective,
    /// Denied: a matching grant sits above a private boundary.
    PrivateBoundary,
    /// Denied: a matching grant sits above a restricted resource, and is
    /// not a tenant-wide `owner` or `admin` grant.
    RestrictedBoundary,
    /// Denied: the only matching grant expired.
    GrantExpired,
    /// Denied: the condition of every matching grant (or of its role) does
    /// not hold.
    ConditionFailed,
    /// Denied: a matching grant's condition needs context the request lacks.
    ConditionContextMissing,
    /// Denied: an explicit deny grant matched.
    ExplicitDeny,
    /// Denied: the action needs another on a resource this one acts on
    /// (a link), and that is denied.
    LinkDenied,
}

/// Which grant, role, team and scope decided, or why it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explanation {
    /// The deciding (or nearly matching) grant.
    pub grant_id: String,
    /// Its role.
    pub role_id: String,
    /// The matching permission pattern.
    pub permission: String,
    /// Its scope.
    pub scope: Option<Scope>,
    /// Teams through which the grant is held, nearest first.
    pub via_teams: Vec<String>,
    /// A sentence for people.
    pub detail: String,
    /// The condition that decided or failed, as written.
    pub condition: String,
    /// The `request` fields a condition needs and the request lacked.
    pub missing_context: Vec<String>,
    /// With a link's denial: the linked resource and the action it needed.
    pub linked: Option<(crate::model::ResourceRef, String)>,
}

/// The answer to a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// True only when allowed.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// Details.
    pub explanation: Explanation,
}

impl Decision {
    fn deny(reason: Reason, detail: impl Into<String>) -> Self {
        Decision {
            allowed: false,
            reason,
            explanation: Explanation {
                detail: detail.into(),
                ..Explanation::default()
            },
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// An instance super user: always allowed.
    SuperUser,
    /// A principal of the tenant, or `None` when the id is unknown.
    Principal(Option<&'a Principal>),
}

/// What is asked: `<rtype>.<action>` on the resource whose ancestry is `path`
/// (the resource first, then its parent, up to the top). An empty path asks
/// about the tenant itself; `None` means the resource does not exist.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// Permission type, normally the resource's type.
    pub rtype: &'a str,
    /// Action.
    pub action: &'a str,
    /// Ancestry, the resource first.
    pub path: Option<&'a [ResourceNode]>,
    /// The caller's context, which conditions read.
    pub context: &'a RequestContext,
}

/// Decides one question from the principal's bindings. Pure: same inputs, same
/// answer.
pub fn decide(
    subject: Subject<'_>,
    bindings: &[Binding],
    roles: &RoleTable,
    q: Question<'_>,
    now: Millis,
) -> Decision {
    decide_among(subject, bindings.iter(), roles, q, now)
}

/// [`decide`] over any (cloneable) iterator of bindings, so that callers
/// holding an index can pass only the bindings whose scope is on the path
/// (the others never count, so the answer is the same).
///
/// An action that implies others (`edit` ⇒ `view`, the tenant's implied
/// actions) is allowed only when each of them is too: a denial of an
/// implied action is the answer, with its reason and grant, explained.
pub fn decide_among<'b, I>(
    subject: Subject<'_>,
    bindings: I,
    roles: &RoleTable,
    q: Question<'_>,
    now: Millis,
) -> Decision
where
    I: Iterator<Item = &'b Binding> + Clone,
{
    let d = decide_one(subject, bindings.clone(), roles, q, now);
    if !d.allowed || matches!(subject, Subject::SuperUser) {
        return d;
    }
    for implied in roles.implied(q.action) {
        let other = decide_one(
            subject,
            bindings.clone(),
            roles,
            Question {
                action: implied,
                ..q
            },
            now,
        );
        if !other.allowed {
            let mut denial = other;
            denial.explanation.detail = format!(
                "`{}` implies `{implied}`, which is denied: {}",
                q.action, denial.explanation.detail
            );
            return denial;
        }
    }
    d
}

/// The decision on one action alone.
fn decide_one<'b, I>(
    subject: Subject<'_>,
    bindings: I,
    roles: &RoleTable,
    q: Question<'_>,
    now: Millis,
) -> Decision
where
    I: Iterator<Item = &'b Binding> + Clone,
{
    let principal = match member(subject, now) {
        Ok(p) => p,
        Err(d) => return *d,
    };
    let Some(path) = q.path else {
        return Decision::deny(
            Reason::UnknownResource,
            "the resource does not exist in the tenant",
        );
    };
    if !roles.knows_action(q.action) {
        return Decision::deny(
            Reason::UnknownPermission,
            format!("no role of the tenant names the action `{}`", q.action),
        );
    }
    let on = OnPath::new(path);
    let facts = Facts {
        request: q.context,
        subject: principal,
        resource: path.first(),
        now,
    };
    if let Some(d) = first_deny(bindings.clone(), roles, q, &on, &facts) {
        return d;
    }
    best_allow(bindings, roles, q, &on, &facts)
}

/// The active principal asking, or the denial of anyone else (super users
/// are allowed).
fn member<'p>(subject: Subject<'p>, now: Millis) -> Result<&'p Principal, Box<Decision>> {
    let principal = match subject {
        Subject::SuperUser => {
            let mut d = Decision::deny(Reason::SuperUser, "super users are allowed everything");
            d.allowed = true;
            return Err(Box::new(d));
        }
        Subject::Principal(None) => {
            return Err(Box::new(Decision::deny(
                Reason::UnknownPrincipal,
                "the principal is not a member of the tenant",
            )))
        }
        Subject::Principal(Some(p)) => p,
    };
    Err(Box::new(match principal.status {
        PrincipalStatus::Active => return Ok(principal),
        PrincipalStatus::Invited if principal.invitation_lapsed(now) => Decision::deny(
            Reason::PrincipalInvitationExpired,
            format!(
                "the principal's invitation lapsed at {} without being accepted",
                crate::model::format_millis(principal.invitation_expires_at.unwrap_or(0))
            ),
        ),
        PrincipalStatus::Invited => Decision::deny(
            Reason::PrincipalInvited,
            "the principal has not accepted the invitation",
        ),
        PrincipalStatus::Suspended => {
            Decision::deny(Reason::PrincipalSuspended, "the principal is suspended")
        }
        PrincipalStatus::Removed => Decision::deny(
            Reason::PrincipalRemoved,
            "the principal was removed from the tenant",
        ),
    }))
}

/// Where grants sit on a resource's path and which of them reach it.
struct OnPath<'p> {
    path: &'p [ResourceNode],
    /// The nearest private node: allow grants count up to and including it.
    private: Option<usize>,
    /// The nearest restricted node: past it only tenant-wide owner and admin
    /// grants count.
    restricted: Option<usize>,
}

impl<'p> OnPath<'p> {
    fn new(path: &'p [ResourceNode]) -> Self {
        OnPath {
            path,
            private: path.iter().position(|n| n.private),
            restricted: path.iter().position(|n| n.restricted),
        }
    }

    /// Index of the scope on the path: 0 = the resource, path.len() = the
    /// tenant; `None` off the path.
    fn depth(&self, scope: &Scope) -> Option<usize> {
        match scope {
            Scope::Tenant => Some(self.path.len()),
            Scope::Resource(r) => self.path.iter().position(|n| &n.resource == r),
        }
    }

    /// Why an allow grant at `depth` does not reach the resource, if it
    /// does not.
    fn blocked(&self, b: &Binding, depth: usize) -> Option<Reason> {
        if self.private.is_some_and(|limit| depth > limit) {
            return Some(Reason::PrivateBoundary);
        }
        let reaches_restricted = b.grant.scope == Scope::Tenant
            && crate::model::REACH_RESTRICTED.contains(&b.grant.role_id.as_str());
        (self.restricted.is_some_and(|limit| depth > limit) && !reaches_restricted)
            .then_some(Reason::RestrictedBoundary)
    }
}

/// The deny that wins, if any: one anywhere on the path whose role names the
/// permission (effective there or not: fail closed), unconditional, or whose
/// condition holds, cannot be evaluated, or lacks context.
fn first_deny<'b, I>(
    bindings: I,
    roles: &RoleTable,
    q: Question<'_>,
    on: &OnPath<'_>,
    facts: &Facts<'_>,
) -> Option<Decision>
where
    I: Iterator<Item = &'b Binding>,
{
    for b in bindings.filter(|b| b.grant.effect == Effect::Deny && b.live(facts.now)) {
        if on.depth(&b.grant.scope).is_none() {
            continue;
        }
        let permission =
            match roles.role_match(&b.grant.role_id, b.grant.scope.kind(), q.rtype, q.action) {
                RoleMatch::Matched(p) => p,
                RoleMatch::NotEffective => String::new(),
                RoleMatch::NoMatch => continue,
            };
        let (detail, condition) = match judge(b, roles, facts) {
            Ok(c) => ("an explicit deny grant matches".to_owned(), c),
            Err(Unmet::False(_)) => continue,
            Err(Unmet::Error(c, e)) => (
                format!("an explicit deny grant matches: its condition could not be evaluated ({e}), so it counts"),
                Some(c),
            ),
            Err(Unmet::Missing(c, fields)) => {
                let mut explanation =
                    explain(b, permission, &missing_detail("a deny grant's", &fields));
                explanation.condition = c.source().to_owned();
                explanation.missing_context = fields;
                return Some(Decision {
                    allowed: false,
                    reason: Reason::ConditionContextMissing,
                    explanation,
                });
            }
        };
        let mut explanation = explain(b, permission, &detail);
        explanation.condition = condition.map(|c| c.source().to_owned()).unwrap_or_default();
        return Some(Decision {
            allowed: false,
            reason: Reason::ExplicitDeny,
            explanation,
        });
    }
    None
}

/// The best allow: nearest scope, then fewest teams, then grant id, among
/// those that reach the resource and whose conditions hold; otherwise the
/// most telling denial. Unconditional grants are ranked as they come;
/// conditional ones are evaluated only when they would rank first.
fn best_allow<'b, I>(
    bindings: I,
    roles: &RoleTable,
    q: Question<'_>,
    on: &OnPath<'_>,
    facts: &Facts<'_>,
) -> Decision
where
    I: Iterator<Item = &'b Binding>,
{
    let mut best: Option<(usize, &Binding, String)> = None;
    let mut conditional: Vec<(usize, &Binding, String)> = Vec::new();
    let mut failure: Option<Failure<'_>> = None;
    for b in bindings.filter(|b| b.grant.effect == Effect::Allow) {
        let Some(depth) = on.depth(&b.grant.scope) else {
            continue;
        };
        match roles.role_match(&b.grant.role_id, b.grant.scope.kind(), q.rtype, q.action) {
            RoleMatch::NoMatch => {}
            RoleMatch::NotEffective => {
                note(&mut failure, Failure::new(Reason::RoleNotEffective, b))
            }
            RoleMatch::Matched(permission) => {
                if !b.live(facts.now) {
                    note(&mut failure, Failure::new(Reason::GrantExpired, b));
                } else if let Some(reason) = on.blocked(b, depth) {
                    note(&mut failure, Failure::new(reason, b));
                } else if has_conditions(b, roles) {
                    conditional.push((depth, b, permission));
                } else if best
                    .as_ref()
                    .is_none_or(|cur| rank(depth, b, cur.0, cur.1) == std::cmp::Ordering::Less)
                {
                    best = Some((depth, b, permission));
                }
            }
        }
    }
    conditional.sort_by(|x, y| rank(x.0, x.1, y.0, y.1));
    for (depth, b, permission) in conditional {
        if best
            .as_ref()
            .is_some_and(|cur| rank(depth, b, cur.0, cur.1) != std::cmp::Ordering::Less)
        {
            break;
        }
        match judge(b, roles, facts) {
            Ok(c) => {
                let mut explanation = explain(
                    b,
                    permission,
                    "an allow grant matches and its condition holds",
                );
                explanation.condition = c.map(|c| c.source().to_owned()).unwrap_or_default();
                return Decision {
                    allowed: true,
                    reason: Reason::Granted,
                    explanation,
                };
            }
            Err(unmet) => note(&mut failure, Failure::of_condition(b, unmet)),
        }
    }
    match best {
        Some((_, b, permission)) => Decision {
            allowed: true,
            reason: Reason::Granted,
            explanation: explain(b, permission, "an allow grant matches"),
        },
        None => denial(failure, q),
    }
}

/// The denial when no allow grant decided: the most telling failure, or no
/// grant at all.
fn denial(failure: Option<Failure<'_>>, q: Question<'_>) -> Decision {
    let Some(f) = failure else {
        return Decision::deny(
            Reason::NoGrant,
            format!(
                "no grant of the principal or its teams gives `{}.{}` here",
                q.rtype, q.action
            ),
        );
    };
    let detail = match f.reason {
        Reason::GrantExpired => "the matching grant has expired".to_owned(),
        Reason::PrivateBoundary => {
            "the matching grant sits above a private resource, which inherits nothing".to_owned()
        }
        Reason::RestrictedBoundary => {
            "the matching grant sits above a restricted resource, which only tenant-wide owner and admin grants reach"
                .to_owned()
        }
        Reason::ConditionFailed | Reason::ConditionContextMissing => f.detail,
        _ => "the matching role is not effective at the scope it was granted on".to_owned(),
    };
    let mut explanation = explain(f.binding, String::new(), &detail);
    explanation.condition = f
        .condition
        .map(|c| c.source().to_owned())
        .unwrap_or_default();
    explanation.missing_context = f.missing;
    Decision {
        allowed: false,
        reason: f.reason,
        explanation,
    }
}

/// How two allow candidates rank: nearer scope first, then fewer teams, then
/// grant id.
fn rank(depth: usize, b: &Binding, other_depth: usize, other: &Binding) -> std::cmp::Ordering {
    (depth, b.via_teams.len(), &b.grant.id).cmp(&(
        other_depth,
        other.via_teams.len(),
        &other.grant.id,
    ))
}

/// The first of a grant's conditions (its own and its role's) that did not
/// hold for a question, and how.
enum Unmet {
    /// It does not hold.
    False(Condition),
    /// It could not be evaluated.
    Error(Condition, String),
    /// It needs context the question lacks.
    Missing(Condition, Vec<String>),
}

/// Whether a binding carries conditions, its own or its role's.
pub fn has_conditions(b: &Binding, roles: &RoleTable) -> bool {
    b.grant.condition.is_some() || !roles.conditions(&b.grant.role_id).is_empty()
}

/// `Ok` with the first condition (if any) when all of a grant's conditions
/// hold, else the first that does not.
fn judge(
    b: &Binding,
    roles: &RoleTable,
    facts: &Facts<'_>,
) -> std::result::Result<Option<Condition>, Unmet> {
    let mut first = None;
    for c in b
        .grant
        .condition
        .iter()
        .chain(roles.conditions(&b.grant.role_id))
    {
        match c.evaluate(facts) {
            Outcome::Holds => {
                first.get_or_insert_with(|| c.clone());
            }
            Outcome::Fails => return Err(Unmet::False(c.clone())),
            Outcome::Error(e) => return Err(Unmet::Error(c.clone(), e)),
            Outcome::Missing(fields) => return Err(Unmet::Missing(c.clone(), fields)),
        }
    }
    Ok(first)
}

fn missing_detail(whose: &str, fields: &[String]) -> String {
    format!(
        "{whose} condition needs request context the request lacks: {}",
        fields
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The most telling reason a matching grant did not allow.
struct Failure<'b> {
    reason: Reason,
    binding: &'b Binding,
    detail: String,
    condition: Option<Condition>,
    missing: Vec<String>,
}

impl<'b> Failure<'b> {
    fn new(reason: Reason, binding: &'b Binding) -> Self {
        Failure {
            reason,
            binding,
            detail: String::new(),
            condition: None,
            missing: Vec::new(),
        }
    }

    /// Why a matching allow grant's condition kept it from counting.
    fn of_condition(binding: &'b Binding, unmet: Unmet) -> Self {
        let (reason, detail, condition, missing) = match unmet {
            Unmet::False(c) => (
                Reason::ConditionFailed,
                format!("the matching grant's condition `{c}` does not hold"),
                Some(c),
                Vec::new(),
            ),
            Unmet::Error(c, e) => (
                Reason::ConditionFailed,
                format!("the matching grant's condition `{c}` could not be evaluated: {e}"),
                Some(c),
                Vec::new(),
            ),
            Unmet::Missing(c, fields) => (
                Reason::ConditionContextMissing,
                missing_detail("the matching grant's", &fields),
                Some(c),
                fields,
            ),
        };
        Failure {
            reason,
            binding,
            detail,
            condition,
            missing,
        }
    }
}

/// Keeps the most telling reason for a denial.
fn note<'b>(failure: &mut Option<Failure<'b>>, f: Failure<'b>) {
    if failure.as_ref().is_none_or(|cur| f.reason > cur.reason) {
        *failure = Some(f);
    }
}

fn explain(b: &Binding, permission: String, detail: &str) -> Explanation {
    Explanation {
        grant_id: b.grant.id.clone(),
        role_id: b.grant.role_id.clone(),
        permission,
        scope: Some(b.grant.scope.clone()),
        via_teams: b.via_teams.clone(),
        detail: detail.to_owned(),
        ..Explanation::default()
    }
}

/// The scopes whose subtrees may hold resources on which `<rtype>.<action>` is
/// allowed: live allow bindings whose role covers it where granted. A superset
/// of the answer; every candidate is then confirmed with [`decide`].
pub fn candidate_scopes(
    bindings: &[Binding],
    roles: &RoleTable,
    rtype: &str,
    action: &str,
    now: Millis,
) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = bindings
        .iter()
        .filter(|b| b.grant.effect == Effect::Allow && b.live(now))
        .filter(|b| {
            matches!(
                roles.role_match(&b.grant.role_id, b.grant.scope.kind(), rtype, action),
                RoleMatch::Matched(_)
            )
        })
        .map(|b| b.grant.scope.clone())
        .collect();
    scopes.sort();
    scopes.dedup();
    if scopes.contains(&Scope::Tenant) {
        return vec![Scope::Tenant];
    }
    scopes
}

#[cfg(test)]
mod tests;

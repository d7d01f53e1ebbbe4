//! The invariants every admin write keeps, each named by the `rule` of the
//! FAILED_PRECONDITION it answers: `last_account_admin`, `single_owner`,
//! `owner_must_be_active`, `role_in_use`, `locked_role`, and the cycle rules
//! (`team_cycle`, `role_cycle`, `resource_cycle`); plus the tree depth
//! limit (INVALID_ARGUMENT).

use crate::engine::{self, Question, RoleMatch, Subject};
use crate::error::{Error, Result};
use crate::model::roles::{MAX_INHERITANCE_DEPTH, MAX_ROLE_CLOSURE, PREDEFINED_ROLE_IDS};
use crate::model::{
    self, Binding, Effect, Millis, Principal, PrincipalStatus, ResourceRef, Role, RoleTable,
    SubjectRef, Tenant,
};
use crate::store::WriteTx;
use std::collections::{HashMap, HashSet};

/// Principals that hold the whole `account_admin` role on the tenant by
/// `holders`' bindings: allowed every `(type, action)` the role gives there,
/// whether through `account_admin` itself, a role that includes all of it
/// (`owner`) or several roles together. Holding some of it (say only
/// `tenant.manage_members`) does not make an account administrator. With
/// `durable`, only grants without expiry count, so that an admin about to
/// expire is not the one that keeps the tenant administrable.
pub fn account_admins(
    holders: Vec<(Principal, Vec<Binding>)>,
    roles: &RoleTable,
    now: Millis,
    durable: bool,
) -> Vec<String> {
    let pairs = account_admin_pairs(roles);
    let mut out = Vec::new();
    for (p, mut bindings) in holders {
        if durable {
            // An expiring or conditional allow may stop counting by itself
            // (a condition may depend on the time, or never hold): only
            // lasting, unconditional administrators keep the tenant.
            bindings.retain(|b| {
                b.grant.effect == Effect::Deny
                    || (b.grant.expires_at.is_none() && !engine::has_conditions(b, roles))
            });
        }
        let holds = |(rtype, action): &(&str, &str)| {
            let q = Question {
                rtype,
                action,
                path: Some(&[]),
                context: crate::model::condition::RequestContext::none(),
            };
            engine::decide(Subject::Principal(Some(&p)), &bindings, roles, q, now).allowed
        };
        if !pairs.is_empty() && pairs.iter().all(holds) {
            out.push(p.id);
        }
    }
    out
}

/// Every `(type, action)` the `account_admin` role gives on the tenant,
/// over the tenant's whole action vocabulary.
fn account_admin_pairs(roles: &RoleTable) -> Vec<(&str, &str)> {
    let mut types = roles.named_types();
    types.insert(model::TENANT_TYPE);
    let mut pairs = Vec::new();
    for t in types {
        for a in roles.actions() {
            if matches!(
                roles.role_match("account_admin", model::TENANT_TYPE, t, a),
                RoleMatch::Matched(_)
            ) {
                pairs.push((t, a));
            }
        }
    }
    pairs
}

/// How many durable account administrators the tenant has now.
pub async fn durable_admins<T: WriteTx>(tx: &mut T) -> Result<usize> {
    let roles = super::role_table(tx).await?;
    let holders = tx.tenant_holders().await?;
    Ok(account_admins(holders, &roles, tx.now(), true).len())
}

/// Refuses a write that leaves a tenant that had (`before`) an account
/// administrator without one.
pub async fn keep_an_admin<T: WriteTx>(tx: &mut T, before: usize) -> Result<()> {
    if before > 0 && durable_admins(tx).await? == 0 {
        return Err(Error::precondition(
            "last_account_admin",
            "the tenant must keep at least one active account administrator without expiry or condition",
        ));
    }
    Ok(())
}

/// Whether the tenant's resources of `rtype` have exactly one owner.
pub fn is_single_owner(tenant: &Tenant, rtype: &str) -> bool {
    tenant.single_owner_types.iter().any(|t| t == rtype)
}

/// The tenant's settings (NOT_FOUND should the tenant have vanished).
pub async fn tenant_settings<T: WriteTx>(tx: &mut T) -> Result<Tenant> {
    tx.tenant().await?.ok_or_else(|| Error::not_found("tenant"))
}

/// The direct `owner` allow grants of principals on a resource, by grant id.
pub async fn owners<T: WriteTx>(tx: &mut T, r: &ResourceRef) -> Result<Vec<model::Grant>> {
    Ok(tx
        .grants_on(&model::Scope::Resource(r.clone()))
        .await?
        .into_iter()
        .filter(|g| {
            g.role_id == "owner"
                && g.effect == Effect::Allow
                && matches!(g.subject, SubjectRef::Principal(_))
        })
        .collect())
}

/// Before a type becomes single-owner, every resource of it must have
/// exactly one owner.
pub async fn ensure_single_owners<T: WriteTx>(tx: &mut T, rtype: &str) -> Result<()> {
    for r in tx.resources_of_type(rtype).await? {
        let n = owners(tx, &r).await?.len();
        if n != 1 {
            return Err(Error::precondition(
                "single_owner",
                format!("`{r}` has {n} owners; give it exactly one before making `{rtype}` single-owner"),
            ));
        }
    }
    Ok(())
}

/// An owner must be an active member.
pub fn owner_must_be_active(p: &Principal) -> Result<()> {
    if p.status != PrincipalStatus::Active {
        return Err(Error::precondition(
            "owner_must_be_active",
            format!("`{}` is not an active member", p.id),
        ));
    }
    Ok(())
}

/// Predefined roles are locked.
pub fn refuse_locked(role_id: &str) -> Result<()> {
    if PREDEFINED_ROLE_IDS.contains(&role_id) {
        return Err(Error::precondition(
            "locked_role",
            format!("`{role_id}` is a predefined role and cannot be created, changed or deleted"),
        ));
    }
    Ok(())
}

/// Inherited roles must exist, inheritance must not loop back to `role`,
/// and no role may then reach more than [`MAX_ROLE_CLOSURE`] roles or inherit
/// more than [`MAX_INHERITANCE_DEPTH`] levels deep (so that a decision's cost
/// stays bounded), given the tenant's other custom roles.
pub fn check_inheritance(others: &[Role], role: &Role) -> Result<()> {
    let mut custom: Vec<Role> = others.iter().filter(|r| r.id != role.id).cloned().collect();
    custom.push(role.clone());
    let table = RoleTable::new(custom.clone());
    // The role table cuts cycles when it loads, so look for one on the raw
    // definitions.
    let edges: HashMap<&str, &Vec<String>> = custom
        .iter()
        .map(|r| (r.id.as_str(), &r.inherits))
        .collect();
    for parent in &role.inherits {
        if table.get(parent).is_none() {
            return Err(Error::invalid(
                "role.inherits",
                format!("no role `{parent}`"),
            ));
        }
        let mut stack = vec![parent.as_str()];
        let mut seen = HashSet::new();
        while let Some(r) = stack.pop() {
            if r == role.id {
                return Err(Error::precondition(
                    "role_cycle",
                    format!("`{parent}` already inherits `{}`", role.id),
                ));
            }
            if seen.insert(r) {
                if let Some(next) = edges.get(r) {
                    stack.extend(next.iter().map(String::as_str));
                }
            }
        }
    }
    for r in table.all() {
        let deep = table.inheritance_depth(&r.id).is_none();
        let wide = table.closure(&r.id).len() > MAX_ROLE_CLOSURE;
        if deep || wide {
            return Err(Error::invalid(
                "role.inherits",
                format!(
                    "`{}` would inherit {}; the limits are {MAX_INHERITANCE_DEPTH} levels and {MAX_ROLE_CLOSURE} roles (role_inheritance_limit)",
                    r.id,
                    if deep { "too deep" } else { "too many roles" }
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a custom role that others still inherit.
pub fn not_inherited(custom: &[Role], role_id: &str) -> Result<()> {
    let heirs: Vec<&str> = custom
        .iter()
        .filter(|r| r.inherits.iter().any(|i| i == role_id))
        .map(|r| r.id.as_str())
        .collect();
    if !heirs.is_empty() {
        return Err(Error::precondition(
            "role_in_use",
            format!("`{role_id}` is inherited by {}", heirs.join(", ")),
        ));
    }
    Ok(())
}

/// Teams nested inside `team`, transitively.
pub async fn teams_within<T: WriteTx>(tx: &mut T, team: &str) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let mut stack = vec![team.to_owned()];
    while let Some(current) = stack.pop() {
        for m in tx.team_members(&current).await? {
            if let SubjectRef::Team(id) = m {
                if out.insert(id.clone()) {
                    stack.push(id);
                }
            }
        }
    }
    Ok(out)
}

/// A team may not (transitively) contain itself.
pub async fn no_team_cycle<T: WriteTx>(tx: &mut T, team: &str, member: &SubjectRef) -> Result<()> {
    if let SubjectRef::Team(inner) = member {
        if inner == team || teams_within(tx, inner).await?.contains(team) {
            return Err(Error::precondition(
                "team_cycle",
                format!("team `{inner}` contains `{team}`, so it cannot also be a member of it"),
            ));
        }
    }
    Ok(())
}

/// Teams in the longest chain of teams containing `team`, itself included.
async fn chain_up<T: WriteTx>(tx: &mut T, team: &str) -> Result<usize> {
    let mut level = vec![team.to_owned()];
    let mut n = 0;
    while !level.is_empty() && n <= model::MAX_TEAM_NESTING {
        n += 1;
        let mut next = Vec::new();
        for t in &level {
            next.extend(tx.teams_of(&SubjectRef::Team(t.clone())).await?);
        }
        next.sort();
        next.dedup();
        level = next;
    }
    Ok(n)
}

/// Teams in the longest chain of teams inside `team`, itself included.
async fn chain_down<T: WriteTx>(tx: &mut T, team: &str) -> Result<usize> {
    let mut level = vec![team.to_owned()];
    let mut n = 0;
    while !level.is_empty() && n <= model::MAX_TEAM_NESTING {
        n += 1;
        let mut next = Vec::new();
        for t in &level {
            for m in tx.team_members(t).await? {
                if let SubjectRef::Team(id) = m {
                    next.push(id);
                }
            }
        }
        next.sort();
        next.dedup();
        level = next;
    }
    Ok(n)
}

/// Refuses a membership that would make a chain of teams inside teams
/// longer than [`model::MAX_TEAM_NESTING`] (bounding what resolving a
/// principal's teams costs).
pub async fn team_nesting_limit<T: WriteTx>(
    tx: &mut T,
    team: &str,
    member: &SubjectRef,
) -> Result<()> {
    let SubjectRef::Team(inner) = member else {
        return Ok(());
    };
    let length = chain_up(tx, team).await? + chain_down(tx, inner).await?;
    if length > model::MAX_TEAM_NESTING {
        return Err(Error::precondition(
            "team_nesting_limit",
            format!(
                "teams would nest {length} deep; the limit is {}",
                model::MAX_TEAM_NESTING
            ),
        ));
    }
    Ok(())
}

/// A resource may not move under itself or its descendants; `new_path` is
/// the new parent's ancestry.
pub fn no_resource_cycle(r: &ResourceRef, new_path: &[model::ResourceNode]) -> Result<()> {
    if new_path.iter().any(|n| &n.resource == r) {
        return Err(Error::precondition(
            "resource_cycle",
            format!("`{r}` cannot move under itself or its descendants"),
        ));
    }
    Ok(())
}

/// Refuses a tree deeper than [`model::MAX_TREE_DEPTH`] levels.
pub fn check_depth(field: &str, depth: usize) -> Result<()> {
    if depth > model::MAX_TREE_DEPTH {
        return Err(Error::invalid(
            field,
            format!(
                "the resource tree would be {depth} levels deep; the limit is {}",
                model::MAX_TREE_DEPTH
            ),
        ));
    }
    Ok(())
}

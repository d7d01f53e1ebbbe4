//! Apply: make a tenant what a tenant file says. The difference between the
//! tenant now and the file is planned as the single writes an administrator
//! would make ([`plan`]: additions first, then removals, so that the tenant
//! keeps an administrator throughout), and [`ApplyTenant`] runs them all in
//! one transaction, each authorized as the acting user and checked by its
//! own rules: apply lets nobody do what they could not do write by write.
//! [`access_changes`] tells who gains and who loses which access.

use super::grants::{CreateGrant, DeleteGrant};
use super::members::{
    AddTeamMember, CreatePrincipal, CreateTeam, DeleteTeam, RemoveTeamMember, SetPrincipalStatus,
};
use super::resources::{
    CreateResource, DeleteResource, MoveResource, SetResourceAttributes, SetResourcePrivate,
    SetResourceRestricted, TransferOwnership,
};
use super::roles::{CreateRole, DeleteRole, UpdateRole};
use super::tenants::UpdateTenant;
use super::{Change, Command};
use crate::engine::{self, Question, Subject};
use crate::error::{Error, Result};
use crate::index::list::{accessible_within, ListQuery};
use crate::index::tenant::TenantIndex;
use crate::model::{
    self, Effect, Grant, Millis, Principal, PrincipalStatus, Resource, ResourceRef, Role, Scope,
    SubjectRef,
};
use crate::store::{Invalidation, TenantDump, WriteContext, WriteTx};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One single write of a plan.
#[derive(Debug, Clone)]
pub enum Op {
    /// Change the tenant's settings.
    UpdateTenant(UpdateTenant),
    /// Create a custom role.
    CreateRole(Role),
    /// Replace a custom role.
    UpdateRole(Role),
    /// Delete a custom role.
    DeleteRole(String),
    /// Create a principal.
    CreatePrincipal(Principal),
    /// Change a principal's status.
    SetStatus(String, PrincipalStatus, Option<Millis>),
    /// Create a team.
    CreateTeam(model::Team),
    /// Delete a team.
    DeleteTeam(String),
    /// Add a member to a team.
    AddMember(String, SubjectRef),
    /// Remove a member from a team.
    RemoveMember(String, SubjectRef),
    /// Create a resource (with its owner, for single-owner types).
    CreateResource(Resource, Option<String>),
    /// Move a resource.
    Move(ResourceRef, Option<ResourceRef>),
    /// Change a resource's private flag.
    SetPrivate(ResourceRef, bool),
    /// Replace a resource's attributes.
    SetAttributes(ResourceRef, model::Attributes),
    /// Change a resource's restricted flag.
    SetRestricted(ResourceRef, bool),
    /// Replace a resource's links.
    SetLinks(ResourceRef, Vec<model::Link>),
    /// Delete a resource and its subtree.
    DeleteResource(ResourceRef),
    /// Create a grant.
    CreateGrant(Grant),
    /// Give a single-owner resource another owner.
    Transfer(ResourceRef, String),
    /// Revoke a grant.
    DeleteGrant(Grant),
}

/// A planned change as people read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Planned {
    /// What kind of change, as the audit trail names it (`grant.create`).
    pub kind: String,
    /// What it changes.
    pub target: String,
}

fn scope_str(s: &Scope) -> String {
    match s {
        Scope::Tenant => "tenant".to_owned(),
        Scope::Resource(r) => r.to_string(),
    }
}

fn grant_str(g: &Grant) -> String {
    let mut s = format!(
        "{} {}{} on {}",
        g.subject,
        if g.effect == Effect::Deny {
            "denied "
        } else {
            ""
        },
        g.role_id,
        scope_str(&g.scope)
    );
    if let Some(e) = g.expires_at {
        s.push_str(&format!(" until {}", model::format_millis(e)));
    }
    if let Some(c) = &g.condition {
        s.push_str(&format!(" if {c}"));
    }
    s
}

impl Op {
    /// The change as people read it.
    pub fn describe(&self) -> Planned {
        let (kind, target) = match self {
            Op::UpdateTenant(_) => ("tenant.update", "settings".to_owned()),
            Op::CreateRole(r) => ("role.create", r.id.clone()),
            Op::UpdateRole(r) => ("role.update", r.id.clone()),
            Op::DeleteRole(r) => ("role.delete", r.clone()),
            Op::CreatePrincipal(p) => (
                "principal.create",
                format!("{} ({}, {})", p.id, p.kind.as_str(), p.status.as_str()),
            ),
            Op::SetStatus(p, s, lapses) => (
                "principal.status",
                match lapses {
                    Some(t) => format!("{p} → {} until {}", s.as_str(), model::format_millis(*t)),
                    None => format!("{p} → {}", s.as_str()),
                },
            ),
            Op::CreateTeam(t) => ("team.create", t.id.clone()),
            Op::DeleteTeam(t) => ("team.delete", t.clone()),
            Op::AddMember(t, m) => ("team.add_member", format!("{m} to {t}")),
            Op::RemoveMember(t, m) => ("team.remove_member", format!("{m} from {t}")),
            Op::CreateResource(r, owner) => (
                "resource.create",
                format!(
                    "{}{}{}{}",
                    r.resource,
                    r.parent
                        .as_ref()
                        .map(|p| format!(" under {p}"))
                        .unwrap_or_default(),
                    if r.private { " (private)" } else { "" },
                    owner
                        .as_ref()
                        .map(|o| format!(", owned by {o}"))
                        .unwrap_or_default()
                ),
            ),
            Op::Move(r, p) => (
                "resource.move",
                format!(
                    "{r} to {}",
                    p.as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or("the top".into())
                ),
            ),
            Op::SetPrivate(r, p) => (
                "resource.set_private",
                format!("{r} {}", if *p { "private" } else { "not private" }),
            ),
            Op::SetRestricted(r, x) => (
                "resource.set_restricted",
                format!("{r} {}", if *x { "restricted" } else { "not restricted" }),
            ),
            Op::SetAttributes(r, a) => (
                "resource.set_attributes",
                format!("{r} {}", serde_json::to_string(a).unwrap_or_default()),
            ),
            Op::SetLinks(r, l) => (
                "resource.set_links",
                format!("{r} {}", serde_json::to_string(l).unwrap_or_default()),
            ),
            Op::DeleteResource(r) => ("resource.delete", r.to_string()),
            Op::CreateGrant(g) => ("grant.create", grant_str(g)),
            Op::Transfer(r, o) => ("resource.transfer_ownership", format!("{r} to {o}")),
            Op::DeleteGrant(g) => ("grant.delete", grant_str(g)),
        };
        Planned {
            kind: kind.to_owned(),
            target,
        }
    }

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<()> {
        match self {
            Op::UpdateTenant(u) => drop(u.run(tx, ctx).await?),
            Op::CreateRole(role) => drop(CreateRole { role }.run(tx, ctx).await?),
            Op::UpdateRole(role) => drop(UpdateRole { role, only: None }.run(tx, ctx).await?),
            Op::DeleteRole(role_id) => drop(
                DeleteRole {
                    role_id,
                    cascade: false,
                }
                .run(tx, ctx)
                .await?,
            ),
            Op::CreatePrincipal(principal) => {
                drop(CreatePrincipal { principal }.run(tx, ctx).await?)
            }
            Op::SetStatus(principal_id, status, invitation_expires_at) => drop(
                SetPrincipalStatus {
                    principal_id,
                    status,
                    invitation_expires_at,
                }
                .run(tx, ctx)
                .await?,
            ),
            Op::CreateTeam(team) => drop(CreateTeam { team }.run(tx, ctx).await?),
            Op::DeleteTeam(team_id) => drop(DeleteTeam { team_id }.run(tx, ctx).await?),
            Op::AddMember(team_id, member) => {
                drop(AddTeamMember { team_id, member }.run(tx, ctx).await?)
            }
            Op::RemoveMember(team_id, member) => {
                drop(RemoveTeamMember { team_id, member }.run(tx, ctx).await?)
            }
            Op::CreateResource(r, owner) => drop(
                CreateResource {
                    resource: r.resource,
                    parent: r.parent,
                    private: r.private,
                    owner,
                    restricted: r.restricted,
                    attributes: r.attributes,
                    links: r.links,
                }
                .run(tx, ctx)
                .await?,
            ),
            Op::SetRestricted(resource, restricted) => drop(
                SetResourceRestricted {
                    resource,
                    restricted,
                }
                .run(tx, ctx)
                .await?,
            ),
            Op::SetLinks(resource, links) => drop(
                super::links::SetResourceLinks { resource, links }
                    .run(tx, ctx)
                    .await?,
            ),
            Op::SetAttributes(resource, attributes) => drop(
                SetResourceAttributes {
                    resource,
                    attributes,
                }
                .run(tx, ctx)
                .await?,
            ),
            Op::Move(resource, new_parent) => drop(
                MoveResource {
                    resource,
                    new_parent,
                }
                .run(tx, ctx)
                .await?,
            ),
            Op::SetPrivate(resource, private) => drop(
                SetResourcePrivate { resource, private }
                    .run(tx, ctx)
                    .await?,
            ),
            Op::DeleteResource(resource) => drop(DeleteResource { resource }.run(tx, ctx).await?),
            Op::CreateGrant(g) => drop(
                CreateGrant {
                    subject: g.subject,
                    role_id: g.role_id,
                    scope: g.scope,
                    effect: g.effect,
                    expires_at: g.expires_at,
                    condition: g.condition,
                }
                .run(tx, ctx)
                .await?,
            ),
            Op::Transfer(resource, new_owner) => drop(
                TransferOwnership {
                    resource,
                    new_owner,
                    previous_owner_role: None,
                }
                .run(tx, ctx)
                .await?,
            ),
            Op::DeleteGrant(g) => drop(DeleteGrant { grant_id: g.id }.run(tx, ctx).await?),
        }
        Ok(())
    }
}

/// What makes two grants the same grant in a file: everything but the id
/// and creation time (files written by hand carry neither).
type GrantKey = (
    SubjectRef,
    String,
    Scope,
    Effect,
    Option<Millis>,
    Option<String>,
);

fn key(g: &Grant) -> GrantKey {
    (
        g.subject.clone(),
        g.role_id.clone(),
        g.scope.clone(),
        g.effect,
        g.expires_at,
        g.condition.as_ref().map(|c| c.source().to_owned()),
    )
}

/// The owner a single-owner resource has in `d`.
fn single_owners(d: &TenantDump) -> HashMap<&ResourceRef, &str> {
    d.grants
        .iter()
        .filter_map(|g| match (&g.scope, &g.subject) {
            (Scope::Resource(r), SubjectRef::Principal(p))
                if g.role_id == "owner"
                    && g.effect == Effect::Allow
                    && super::invariants::is_single_owner(&d.tenant, &r.rtype) =>
            {
                Some((r, p.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// The single writes that turn `now` into `want`, in the order they run.
/// Refuses differences no write can make (a principal's or a team's
/// display name, a principal's kind).
pub fn plan(now: &TenantDump, want: &TenantDump) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    settings_changes(now, want, &mut ops);
    role_changes(now, want, &mut ops);
    let removals = principal_changes(now, want, &mut ops)?;
    team_changes(now, want, &mut ops)?;
    resource_changes(now, want, &mut ops);
    grant_changes(now, want, &mut ops);
    deletions(now, want, &mut ops);
    ops.extend(removals);
    for p in &now.principals {
        if !want.principals.iter().any(|w| w.id == p.id) && p.status != PrincipalStatus::Removed {
            ops.push(Op::SetStatus(p.id.clone(), PrincipalStatus::Removed, None));
        }
    }
    Ok(ops)
}

fn settings_changes(now: &TenantDump, want: &TenantDump, ops: &mut Vec<Op>) {
    // Settings.
    let (a, b) = (&now.tenant, &want.tenant);
    if a.display_name != b.display_name
        || a.single_owner_types != b.single_owner_types
        || a.creator_owner_types != b.creator_owner_types
        || a.audit_retention_days != b.audit_retention_days
        || a.actions != b.actions
        || a.implied_actions != b.implied_actions
    {
        let changed = |x: &Vec<String>, y: &Vec<String>| (x != y).then(|| y.clone());
        ops.push(Op::UpdateTenant(UpdateTenant {
            display_name: (a.display_name != b.display_name).then(|| b.display_name.clone()),
            single_owner_types: changed(&a.single_owner_types, &b.single_owner_types),
            creator_owner_types: changed(&a.creator_owner_types, &b.creator_owner_types),
            audit_retention_days: (a.audit_retention_days != b.audit_retention_days)
                .then_some(b.audit_retention_days),
            actions: changed(&a.actions, &b.actions),
            implied_actions: (a.implied_actions != b.implied_actions)
                .then(|| b.implied_actions.clone()),
        }));
    }
}

fn role_changes(now: &TenantDump, want: &TenantDump, ops: &mut Vec<Op>) {
    // Roles: new ones after those they inherit; changed ones replaced.
    let now_roles: HashMap<&str, &Role> = now.roles.iter().map(|r| (r.id.as_str(), r)).collect();
    for r in crate::store::inherited_first(want.roles.clone()) {
        match now_roles.get(r.id.as_str()) {
            None => ops.push(Op::CreateRole(r)),
            Some(old) if !same_role(old, &r) => ops.push(Op::UpdateRole(r)),
            Some(_) => {}
        }
    }
}

/// Principals created and status changes; returns the removals, which run
/// last (removal revokes the principal's grants and memberships).
fn principal_changes(now: &TenantDump, want: &TenantDump, ops: &mut Vec<Op>) -> Result<Vec<Op>> {
    // Principals.
    let mut removals = Vec::new();
    let now_principals: HashMap<&str, &Principal> =
        now.principals.iter().map(|p| (p.id.as_str(), p)).collect();
    for p in &want.principals {
        match now_principals.get(p.id.as_str()) {
            None => ops.push(Op::CreatePrincipal(p.clone())),
            Some(old) => {
                if old.kind != p.kind {
                    return Err(Error::invalid(
                        "principals.kind",
                        format!(
                            "`{}` is a {}; a principal's kind cannot change",
                            p.id,
                            old.kind.as_str()
                        ),
                    ));
                }
                if old.display_name != p.display_name {
                    return Err(Error::invalid(
                        "principals.display_name",
                        format!(
                            "`{}`: a principal's display name cannot be changed by apply",
                            p.id
                        ),
                    ));
                }
                let lapses = p
                    .invitation_expires_at
                    .filter(|_| p.status == PrincipalStatus::Invited);
                if old.status != p.status && p.status == PrincipalStatus::Removed {
                    // Removal revokes the principal's grants and memberships:
                    // last, after the revocations the file asks for.
                    removals.push(Op::SetStatus(p.id.clone(), p.status, None));
                } else if old.status != p.status || old.invitation_expires_at != lapses {
                    // A new or renewed invitation carries its expiry.
                    ops.push(Op::SetStatus(p.id.clone(), p.status, lapses));
                }
            }
        }
    }
    Ok(removals)
}

fn team_changes(now: &TenantDump, want: &TenantDump, ops: &mut Vec<Op>) -> Result<()> {
    // Teams and memberships.
    let now_teams: HashMap<&str, &model::Team> =
        now.teams.iter().map(|t| (t.id.as_str(), t)).collect();
    for t in &want.teams {
        match now_teams.get(t.id.as_str()) {
            None => ops.push(Op::CreateTeam(t.clone())),
            Some(old) if old.display_name != t.display_name => {
                return Err(Error::invalid(
                    "teams.display_name",
                    format!(
                        "`{}`: a team's display name cannot be changed by apply",
                        t.id
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let now_members: BTreeSet<&(String, SubjectRef)> = now.members.iter().collect();
    let want_members: BTreeSet<&(String, SubjectRef)> = want.members.iter().collect();
    for (t, m) in want_members.difference(&now_members) {
        ops.push(Op::AddMember(t.clone(), m.clone()));
    }
    Ok(())
}

fn resource_changes(now: &TenantDump, want: &TenantDump, ops: &mut Vec<Op>) {
    // Resources: new ones parents first; moves; privacy.
    let now_res: HashMap<&ResourceRef, &Resource> =
        now.resources.iter().map(|r| (&r.resource, r)).collect();
    let want_owner = single_owners(want);
    // Links last: a link may name a resource created after its own.
    let mut links = Vec::new();
    for r in &want.resources {
        match now_res.get(&r.resource) {
            None => {
                ops.push(Op::CreateResource(
                    Resource {
                        links: Vec::new(),
                        ..r.clone()
                    },
                    want_owner.get(&r.resource).map(|o| (*o).to_owned()),
                ));
                if !r.links.is_empty() {
                    links.push(Op::SetLinks(r.resource.clone(), r.links.clone()));
                }
            }
            Some(old) => {
                if old.parent != r.parent {
                    ops.push(Op::Move(r.resource.clone(), r.parent.clone()));
                }
                if old.private != r.private {
                    ops.push(Op::SetPrivate(r.resource.clone(), r.private));
                }
                if old.restricted != r.restricted {
                    ops.push(Op::SetRestricted(r.resource.clone(), r.restricted));
                }
                if old.attributes != r.attributes {
                    ops.push(Op::SetAttributes(r.resource.clone(), r.attributes.clone()));
                }
                if old.links != r.links {
                    links.push(Op::SetLinks(r.resource.clone(), r.links.clone()));
                }
            }
        }
    }
    ops.extend(links);
}

/// Whether `g` is the owner grant of a single-owner resource (changed by
/// transfer, not by grant writes).
fn owner_grant(d: &TenantDump, g: &Grant) -> bool {
    match (&g.scope, &g.subject) {
        (Scope::Resource(r), SubjectRef::Principal(_)) => {
            g.role_id == "owner"
                && g.effect == Effect::Allow
                && super::invariants::is_single_owner(&d.tenant, &r.rtype)
        }
        _ => false,
    }
}

/// The resources of `now` that `want` lacks, in `now`'s order.
fn removed_resources<'a>(now: &'a TenantDump, want: &TenantDump) -> Vec<&'a ResourceRef> {
    let want_res: HashSet<&ResourceRef> = want.resources.iter().map(|r| &r.resource).collect();
    now.resources
        .iter()
        .map(|r| &r.resource)
        .filter(|r| !want_res.contains(r))
        .collect()
}

/// Grants created, owners transferred, grants revoked (but those that a
/// team's or a resource's deletion takes with it).
fn grant_changes(now: &TenantDump, want: &TenantDump, ops: &mut Vec<Op>) {
    let want_teams: HashSet<&str> = want.teams.iter().map(|t| t.id.as_str()).collect();
    let now_res: HashSet<&ResourceRef> = now.resources.iter().map(|r| &r.resource).collect();
    let want_owner = single_owners(want);
    let now_owner = single_owners(now);
    // Grants: matched by what they grant; single-owner owners by transfer.
    let mut now_keys: HashMap<GrantKey, Vec<&Grant>> = HashMap::new();
    for g in &now.grants {
        now_keys.entry(key(g)).or_default().push(g);
    }
    for g in &want.grants {
        if owner_grant(want, g) {
            continue;
        }
        match now_keys.get_mut(&key(g)).and_then(|v| v.pop()) {
            Some(_) => {}
            None => ops.push(Op::CreateGrant(g.clone())),
        }
    }
    for (r, o) in &want_owner {
        if now_res.contains(r) && now_owner.get(r).is_some_and(|old| old != o) {
            ops.push(Op::Transfer((*r).clone(), (*o).to_owned()));
        }
    }
    let removed_set: HashSet<&ResourceRef> = removed_resources(now, want).into_iter().collect();
    let mut leftovers: Vec<&Grant> = now_keys.into_values().flatten().collect();
    leftovers.sort_by(|a, b| a.id.cmp(&b.id));
    for g in leftovers {
        if owner_grant(now, g) {
            continue;
        }
        let on_removed = matches!(&g.scope, Scope::Resource(r) if removed_set.contains(r));
        let of_removed_team =
            matches!(&g.subject, SubjectRef::Team(t) if !want_teams.contains(t.as_str()));
        if !on_removed && !of_removed_team {
            ops.push(Op::DeleteGrant(g.clone()));
        }
    }
}

/// Memberships, teams, resources and roles removed, in that order.
fn deletions(now: &TenantDump, want: &TenantDump, ops: &mut Vec<Op>) {
    let want_teams: HashSet<&str> = want.teams.iter().map(|t| t.id.as_str()).collect();
    let want_roles: HashSet<&str> = want.roles.iter().map(|r| r.id.as_str()).collect();
    let now_members: BTreeSet<&(String, SubjectRef)> = now.members.iter().collect();
    let want_members: BTreeSet<&(String, SubjectRef)> = want.members.iter().collect();
    let now_res: HashMap<&ResourceRef, &Resource> =
        now.resources.iter().map(|r| (&r.resource, r)).collect();
    let removed_res = removed_resources(now, want);
    let removed_set: HashSet<&ResourceRef> = removed_res.iter().copied().collect();
    for (t, m) in now_members.difference(&want_members) {
        let team_goes = !want_teams.contains(t.as_str());
        let member_team_goes = matches!(m, SubjectRef::Team(x) if !want_teams.contains(x.as_str()));
        if !team_goes && !member_team_goes {
            ops.push(Op::RemoveMember(t.clone(), m.clone()));
        }
    }
    for t in &now.teams {
        if !want_teams.contains(t.id.as_str()) {
            ops.push(Op::DeleteTeam(t.id.clone()));
        }
    }
    // Only the top of each removed subtree (deleting it takes the rest).
    for r in &removed_res {
        let parent_goes = now_res[r]
            .parent
            .as_ref()
            .is_some_and(|p| removed_set.contains(p));
        if !parent_goes {
            ops.push(Op::DeleteResource((*r).clone()));
        }
    }
    for r in crate::store::inherited_first(now.roles.clone())
        .iter()
        .rev()
    {
        if !want_roles.contains(r.id.as_str()) {
            ops.push(Op::DeleteRole(r.id.clone()));
        }
    }
}

fn same_role(a: &Role, b: &Role) -> bool {
    a.display_name == b.display_name
        && a.permissions == b.permissions
        && a.excluded_permissions == b.excluded_permissions
        && a.inherits == b.inherits
        && a.effective_at == b.effective_at
}

/// Apply a plan made against the tenant at `base_revision`, in one write.
#[derive(Debug, Clone)]
pub struct ApplyTenant {
    /// The revision the plan was made at: if the tenant moved since, the
    /// apply is refused (FAILED_PRECONDITION `tenant_changed`), to be planned
    /// again.
    pub base_revision: i64,
    /// The writes, in order.
    pub ops: Vec<Op>,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// The writes, in order.
    pub changes: Vec<Planned>,
}

/// Most planned changes an apply's audit event lists one by one.
const AUDITED_CHANGES: usize = 1_000;

impl Command for ApplyTenant {
    type Output = Applied;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Applied>> {
        if tx.revision() != self.base_revision + 1 {
            return Err(Error::precondition(
                "tenant_changed",
                format!(
                    "the tenant changed after revision {} while the apply was planned; plan it again",
                    self.base_revision
                ),
            ));
        }
        let changes: Vec<Planned> = self.ops.iter().map(Op::describe).collect();
        for (i, op) in self.ops.into_iter().enumerate() {
            let what = &changes[i];
            Box::pin(op.run(tx, ctx))
                .await
                .map_err(|e| in_change(e, i, what))?;
        }
        let listed: Vec<&Planned> = changes.iter().take(AUDITED_CHANGES).collect();
        Ok(Change {
            action: "tenant.apply",
            target: format!("tenant:{}", ctx.tenant_id),
            before: String::new(),
            after: serde_json::json!({ "changes": listed, "count": changes.len() }).to_string(),
            output: Applied { changes },
            invalidation: Invalidation::everything(),
        })
    }
}

/// The error of the `i`th change, saying which change it was.
fn in_change(e: Error, i: usize, what: &Planned) -> Error {
    let place = format!("change {} ({} {})", i + 1, what.kind, what.target);
    match e {
        Error::InvalidArgument { field, message } => Error::InvalidArgument {
            field,
            message: format!("{place}: {message}"),
        },
        Error::FailedPrecondition { rule, message } => Error::FailedPrecondition {
            rule,
            message: format!("{place}: {message}"),
        },
        Error::PermissionDenied(m) => Error::PermissionDenied(format!("{place}: {m}")),
        Error::NotFound { what } => Error::NotFound {
            what: format!("{what} ({place})"),
        },
        Error::AlreadyExists { what } => Error::AlreadyExists {
            what: format!("{what} ({place})"),
        },
        other => other,
    }
}

/// One difference in access: `principal` gains (or loses) `action` on
/// `resource` (`tenant:` for the tenant itself).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct AccessChange {
    /// The principal.
    pub principal: String,
    /// The action.
    pub action: String,
    /// The resource (`tenant` for the tenant).
    pub resource: String,
    /// Gained (else lost).
    pub gained: bool,
}

/// Who gains and who loses which access between two states of a tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessDiff {
    /// The first `limit` differences, by principal, action and resource.
    pub changes: Vec<AccessChange>,
    /// Differences in all: gained.
    pub gained: u64,
    /// Differences in all: lost.
    pub lost: u64,
    /// False when the comparison stopped at its work budget (the counts
    /// are then lower bounds).
    pub complete: bool,
}

/// Most resources the access comparison visits in all.
pub const ACCESS_DIFF_BUDGET: usize = 5_000_000;

/// Everything `p` may do in `idx`: `(action, resource)` pairs, the tenant
/// itself as `tenant`.
fn access_of(
    idx: &TenantIndex,
    p: &str,
    actions: &BTreeSet<String>,
    types: &BTreeSet<String>,
    now: Millis,
    budget: &mut usize,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let principal = idx.principal(p);
    let bindings = match principal {
        Some(x) if x.status == PrincipalStatus::Active => idx.bindings(p),
        _ => return out,
    };
    let roles = idx.roles();
    for a in actions {
        let q = Question {
            rtype: model::TENANT_TYPE,
            action: a,
            path: Some(&[]),
            context: crate::model::condition::RequestContext::none(),
        };
        if engine::decide(Subject::Principal(principal), &bindings, roles, q, now).allowed {
            out.insert((a.clone(), model::TENANT_TYPE.to_owned()));
        }
        for t in types {
            let mut after: Option<Vec<ResourceRef>> = None;
            loop {
                if *budget == 0 {
                    return out;
                }
                let q = ListQuery {
                    principal,
                    bindings: &bindings,
                    rtype: t,
                    action: a,
                    now,
                    context: model::condition::RequestContext::none(),
                };
                let page =
                    accessible_within(idx.tree(), roles, q, after.as_deref(), 10_000, *budget);
                *budget = budget.saturating_sub(page.visited.max(1));
                out.extend(page.resources.iter().map(|r| (a.clone(), r.to_string())));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
    }
    out
}

/// Whether `actor` may view `resource` (`type:id`, or `tenant` for the
/// tenant itself) in `idx`.
pub fn may_view(idx: &TenantIndex, actor: &str, resource: &str) -> bool {
    let Some(p) = idx.principal(actor) else {
        return false;
    };
    let bindings = idx.bindings(actor);
    let (rtype, path) = match resource.split_once(':') {
        None => (model::TENANT_TYPE.to_owned(), Some(Vec::new())),
        Some((t, id)) => (
            t.to_owned(),
            idx.tree().ancestry(&ResourceRef {
                rtype: t.to_owned(),
                id: id.to_owned(),
            }),
        ),
    };
    let q = Question {
        rtype: &rtype,
        action: "view",
        path: path.as_deref(),
        context: model::condition::RequestContext::none(),
    };
    let resolve = |r: &ResourceRef| idx.tree().ancestry(r);
    engine::decide_linked(
        Subject::Principal(Some(p)),
        bindings.iter(),
        idx.roles(),
        q,
        model::now_millis(),
        &engine::Linked {
            bindings: &bindings,
            ancestry: &resolve,
        },
    )
    .allowed
}

/// Who gains and who loses which access going from `before` to `after`,
/// over every principal of either, every action either knows and every
/// resource type either has; at most `limit` differences listed.
pub fn access_changes(before: &TenantDump, after: &TenantDump, limit: usize) -> Result<AccessDiff> {
    access_changes_where(before, after, limit, |_, _, _| true)
}

/// [`access_changes`] counting and listing only the differences on the
/// resources `keep` accepts (given both states and the resource, `type:id`
/// or `tenant`).
pub fn access_changes_where(
    before: &TenantDump,
    after: &TenantDump,
    limit: usize,
    keep: impl Fn(&TenantIndex, &TenantIndex, &str) -> bool,
) -> Result<AccessDiff> {
    let build = |d: &TenantDump| {
        TenantIndex::from_rows(d.rows())
            .map_err(|e| Error::invalid("tenant", format!("the resource tree: {e}")))
    };
    let (a, b) = (build(before)?, build(after)?);
    let mut actions: BTreeSet<String> = a.roles().actions().map(str::to_owned).collect();
    actions.extend(b.roles().actions().map(str::to_owned));
    let types: BTreeSet<String> = before
        .resources
        .iter()
        .chain(&after.resources)
        .map(|r| r.resource.rtype.clone())
        .collect();
    let principals: BTreeSet<&str> = before
        .principals
        .iter()
        .chain(&after.principals)
        .map(|p| p.id.as_str())
        .collect();
    let now = model::now_millis();
    let mut budget = ACCESS_DIFF_BUDGET;
    let mut diff = AccessDiff {
        complete: true,
        ..AccessDiff::default()
    };
    let mut listed: BTreeMap<(String, String, String), bool> = BTreeMap::new();
    for p in principals {
        let was = access_of(&a, p, &actions, &types, now, &mut budget);
        let is = access_of(&b, p, &actions, &types, now, &mut budget);
        if budget == 0 {
            diff.complete = false;
        }
        for (gained, set) in [(true, is.difference(&was)), (false, was.difference(&is))] {
            for (action, resource) in set {
                if !keep(&a, &b, resource) {
                    continue;
                }
                if gained {
                    diff.gained += 1;
                } else {
                    diff.lost += 1;
                }
                if listed.len() < limit {
                    listed.insert((p.to_owned(), action.clone(), resource.clone()), gained);
                }
            }
        }
        if budget == 0 {
            break;
        }
    }
    diff.changes = listed
        .into_iter()
        .map(|((principal, action, resource), gained)| AccessChange {
            principal,
            action,
            resource,
            gained,
        })
        .collect();
    Ok(diff)
}

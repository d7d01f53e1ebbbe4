//! Whole tenants: import (a new tenant from a dump, in one transaction, by
//! the same rules the single writes keep), deletion (offboarding, leaving a
//! tombstone), and the erasure of a principal's display name (privacy
//! requests). Each is one audited write.

use super::authz::authorize;
use super::invariants::{check_depth, check_inheritance, durable_admins, is_single_owner};
use super::{json, Change, Command};
use crate::error::{Error, Result};
use crate::model::roles::{BUILTIN_ACTIONS, PREDEFINED_ROLE_IDS};
use crate::model::{self, Actor, Effect, ResourceRef, Role, Scope, SubjectRef};
use crate::store::{Invalidation, TenantDump, WriteContext, WriteTx};
use std::collections::{HashMap, HashSet};

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Imported {
    /// Custom roles.
    pub roles: u64,
    /// Principals.
    pub principals: u64,
    /// Teams.
    pub teams: u64,
    /// Memberships.
    pub members: u64,
    /// Resources.
    pub resources: u64,
    /// Grants.
    pub grants: u64,
}

/// Create the context's tenant from a whole dump (ids, creation times and
/// grant ids kept). Operators only.
#[derive(Debug, Clone)]
pub struct ImportTenant {
    /// The tenant; its settings' id is replaced by the context's.
    pub dump: TenantDump,
}

impl Command for ImportTenant {
    type Output = Imported;
    const CREATES_TENANT: bool = true;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Imported>> {
        if ctx.actor != Actor::SuperUser {
            return Err(Error::PermissionDenied(
                "only an operator imports tenants".to_owned(),
            ));
        }
        if tx.tenant().await?.is_some() {
            return Err(Error::AlreadyExists {
                what: format!("tenant `{}`", ctx.tenant_id),
            });
        }
        let mut dump = self.dump;
        dump.tenant.id = ctx.tenant_id.clone();
        declare_named_actions(&mut dump);
        let started = std::time::Instant::now();
        check_dump(&dump, tx.now())?;
        let checked = started.elapsed();
        tx.insert_tenant(&dump.tenant).await?;
        tx.insert_dump(&dump).await?;
        tracing::info!(
            tenant = %ctx.tenant_id,
            resources = dump.resources.len(),
            check_ms = checked.as_millis() as u64,
            write_ms = (started.elapsed() - checked).as_millis() as u64,
            "tenant import checked and written"
        );
        if durable_admins(tx).await? == 0 {
            return Err(Error::precondition(
                "last_account_admin",
                "an imported tenant needs at least one active account administrator without expiry",
            ));
        }
        let out = Imported {
            roles: dump.roles.len() as u64,
            principals: dump.principals.len() as u64,
            teams: dump.teams.len() as u64,
            members: dump.members.len() as u64,
            resources: dump.resources.len() as u64,
            grants: dump.grants.len() as u64,
        };
        Ok(Change {
            action: "tenant.import",
            target: format!("tenant:{}", ctx.tenant_id),
            before: String::new(),
            after: serde_json::json!({ "tenant": &dump.tenant, "imported": &out }).to_string(),
            output: out,
            invalidation: Invalidation::everything(),
        })
    }
}

/// Adds the actions the custom roles name to the tenant's declared ones,
/// as creating each role would.
fn declare_named_actions(d: &mut TenantDump) {
    for r in &d.roles {
        for p in &r.permissions {
            if let Some(a) = p.names_action() {
                if !BUILTIN_ACTIONS.contains(&a) && !d.tenant.actions.iter().any(|x| x == a) {
                    d.tenant.actions.push(a.to_owned());
                }
            }
        }
    }
    d.tenant.actions.sort();
}

fn dup(what: &str, id: impl std::fmt::Display) -> Error {
    Error::AlreadyExists {
        what: format!("{what} `{id}` (twice in the import)"),
    }
}

/// The links of a dump: known actions, linked resources in the dump, none
/// to itself, no cycle and no chain deeper than [`model::MAX_LINK_DEPTH`].
fn check_dump_links(
    d: &TenantDump,
    table: &model::RoleTable,
    resources: &HashMap<&ResourceRef, usize>,
) -> Result<()> {
    let mut links: HashMap<&ResourceRef, &[model::Link]> = HashMap::new();
    for (i, r) in d.resources.iter().enumerate() {
        for (j, l) in r.links.iter().enumerate() {
            let at = format!("resources[{i}].links[{j}]");
            for a in std::iter::once(&l.action).chain(&l.on) {
                if !table.knows_action(a) {
                    return Err(Error::invalid(
                        at,
                        format!("`{a}` is not an action of the tenant"),
                    ));
                }
            }
            if l.resource == r.resource || !resources.contains_key(&l.resource) {
                return Err(Error::not_found(format!(
                    "{at}: resource `{}` (another resource of the tenant)",
                    l.resource
                )));
            }
        }
        if !r.links.is_empty() {
            links.insert(&r.resource, &r.links);
        }
    }
    // The longest chain from each linked resource, depth first; a resource
    // met again on the way down is a cycle.
    fn longest<'a>(
        r: &'a ResourceRef,
        links: &HashMap<&'a ResourceRef, &'a [model::Link]>,
        on_the_way: &mut Vec<&'a ResourceRef>,
        memo: &mut HashMap<&'a ResourceRef, usize>,
    ) -> Result<usize> {
        if let Some(n) = memo.get(r) {
            return Ok(*n);
        }
        if on_the_way.contains(&r) {
            return Err(Error::precondition(
                "link_cycle",
                format!("the links through `{r}` form a cycle"),
            ));
        }
        // Deeper than any decision follows: refused without going further
        // (a long chain never deepens the recursion past the limit).
        if let Some(top) = on_the_way
            .first()
            .filter(|_| on_the_way.len() > model::MAX_LINK_DEPTH)
        {
            return Err(Error::precondition(
                "link_depth",
                format!(
                    "`{top}` acts on resources more than {} links away",
                    model::MAX_LINK_DEPTH
                ),
            ));
        }
        on_the_way.push(r);
        let mut n = 0;
        for l in links.get(r).copied().unwrap_or_default() {
            n = n.max(1 + longest(&l.resource, links, on_the_way, memo)?);
        }
        on_the_way.pop();
        if n > model::MAX_LINK_DEPTH {
            return Err(Error::precondition(
                "link_depth",
                format!(
                    "`{r}` acts on resources more than {} links away",
                    model::MAX_LINK_DEPTH
                ),
            ));
        }
        memo.insert(r, n);
        Ok(n)
    }
    let mut memo = HashMap::new();
    for r in links.keys() {
        longest(r, &links, &mut Vec::new(), &mut memo)?;
    }
    Ok(())
}

/// Checks a dump against the rules every single write keeps: each record
/// names only records before it (roles the roles they inherit, memberships
/// existing teams and members, resources their parent, grants their
/// subject, role and scope), no duplicates, no team cycle, team nesting,
/// tree depth and role inheritance within their limits, and single-owner
/// resources with exactly one owner. Field syntax was checked when the
/// dump was read. The account-administrator invariant is checked by the
/// import once the rows are written.
pub fn check_dump(d: &TenantDump, _now: model::Millis) -> Result<()> {
    let mut roles: Vec<Role> = Vec::with_capacity(d.roles.len());
    for (i, r) in d.roles.iter().enumerate() {
        if PREDEFINED_ROLE_IDS.contains(&r.id.as_str()) {
            return Err(Error::precondition(
                "locked_role",
                format!("roles[{i}]: `{}` is a predefined role", r.id),
            ));
        }
        if roles.iter().any(|x| x.id == r.id) {
            return Err(dup("role", &r.id));
        }
        check_inheritance(&roles, r).map_err(|e| at(&format!("roles[{i}]"), e))?;
        roles.push(r.clone());
    }
    let table = model::RoleTable::for_tenant(roles, Some(&d.tenant));
    for i in &d.tenant.implied_actions {
        for a in [&i.action, &i.implies] {
            if !table.knows_action(a) {
                return Err(Error::invalid(
                    "settings.implied_actions",
                    format!("`{a}` is not an action of the tenant; declare it in `actions`"),
                ));
            }
        }
    }
    let mut principals = HashSet::with_capacity(d.principals.len());
    let mut removed = HashSet::new();
    for p in &d.principals {
        if !principals.insert(p.id.as_str()) {
            return Err(dup("principal", &p.id));
        }
        if p.status == model::PrincipalStatus::Removed {
            removed.insert(p.id.as_str());
        }
    }
    // A removed principal holds nothing (removal revokes everything).
    let holds_nothing = |s: &SubjectRef, place: String| match s {
        SubjectRef::Principal(p) if removed.contains(p.as_str()) => Err(Error::precondition(
            "principal_removed",
            format!("{place}: `{p}` is removed and holds nothing"),
        )),
        _ => Ok(()),
    };
    for (i, (_, m)) in d.members.iter().enumerate() {
        holds_nothing(m, format!("members[{i}]"))?;
    }
    for (i, g) in d.grants.iter().enumerate() {
        holds_nothing(&g.subject, format!("grants[{i}]"))?;
    }
    let mut teams = HashSet::with_capacity(d.teams.len());
    for t in &d.teams {
        if !teams.insert(t.id.as_str()) {
            return Err(dup("team", &t.id));
        }
    }
    let exists = |s: &SubjectRef| match s {
        SubjectRef::Principal(p) => principals.contains(p.as_str()),
        SubjectRef::Team(t) => teams.contains(t.as_str()),
    };
    let mut members: HashSet<(&str, &SubjectRef)> = HashSet::with_capacity(d.members.len());
    let mut inner: HashMap<&str, Vec<&str>> = HashMap::new();
    for (i, (team, m)) in d.members.iter().enumerate() {
        if !teams.contains(team.as_str()) {
            return Err(Error::not_found(format!("members[{i}]: team `{team}`")));
        }
        if !exists(m) {
            return Err(Error::not_found(format!("members[{i}]: member `{m}`")));
        }
        if !members.insert((team.as_str(), m)) {
            return Err(dup("membership", format!("{team} ∋ {m}")));
        }
        if let SubjectRef::Team(t) = m {
            inner.entry(team.as_str()).or_default().push(t.as_str());
        }
    }
    check_team_nesting(&inner)?;
    let mut depth: HashMap<&ResourceRef, usize> = HashMap::with_capacity(d.resources.len());
    for (i, r) in d.resources.iter().enumerate() {
        if depth.contains_key(&r.resource) {
            return Err(dup("resource", &r.resource));
        }
        let level = match &r.parent {
            None => 1,
            Some(p) => {
                1 + depth.get(p).copied().ok_or_else(|| {
                    Error::not_found(format!(
                        "resources[{i}]: parent `{p}` of `{}` (a parent comes before its children)",
                        r.resource
                    ))
                })?
            }
        };
        check_depth(&format!("resources[{i}].parent"), level)?;
        depth.insert(&r.resource, level);
    }
    check_dump_links(d, &table, &depth)?;
    let mut grant_ids = HashSet::with_capacity(d.grants.len());
    let mut owners: HashMap<&ResourceRef, usize> = HashMap::new();
    for (i, g) in d.grants.iter().enumerate() {
        if !grant_ids.insert(g.id.as_str()) {
            return Err(dup("grant", &g.id));
        }
        if !exists(&g.subject) {
            return Err(Error::not_found(format!(
                "grants[{i}]: subject `{}`",
                g.subject
            )));
        }
        if table.get(&g.role_id).is_none() {
            return Err(Error::not_found(format!(
                "grants[{i}]: role `{}`",
                g.role_id
            )));
        }
        if let Scope::Resource(r) = &g.scope {
            if !depth.contains_key(r) {
                return Err(Error::not_found(format!("grants[{i}]: scope `{r}`")));
            }
            if g.role_id == "owner"
                && g.effect == Effect::Allow
                && is_single_owner(&d.tenant, &r.rtype)
            {
                if !matches!(g.subject, SubjectRef::Principal(_)) {
                    return Err(Error::precondition(
                        "single_owner",
                        format!("grants[{i}]: the owner of `{r}` must be a principal"),
                    ));
                }
                *owners.entry(r).or_default() += 1;
            }
        }
    }
    for r in d.resources.iter().map(|r| &r.resource) {
        if is_single_owner(&d.tenant, &r.rtype) {
            let n = owners.get(r).copied().unwrap_or(0);
            if n != 1 {
                return Err(Error::precondition(
                    "single_owner",
                    format!("`{r}` has {n} owners; a `{}` has exactly one", r.rtype),
                ));
            }
        }
    }
    Ok(())
}

/// The error `e` with `place` in front of its message.
fn at(place: &str, e: Error) -> Error {
    match e {
        Error::InvalidArgument { field, message } => Error::InvalidArgument {
            field: format!("{place}.{}", field.rsplit('.').next().unwrap_or(&field)),
            message,
        },
        Error::FailedPrecondition { rule, message } => Error::FailedPrecondition {
            rule,
            message: format!("{place}: {message}"),
        },
        other => other,
    }
}

/// Refuses team cycles and chains of teams longer than
/// [`model::MAX_TEAM_NESTING`].
fn check_team_nesting(inner: &HashMap<&str, Vec<&str>>) -> Result<()> {
    // Longest chain down from each team, by depth-first search.
    fn down<'a>(
        t: &'a str,
        inner: &HashMap<&'a str, Vec<&'a str>>,
        memo: &mut HashMap<&'a str, usize>,
        path: &mut Vec<&'a str>,
    ) -> Result<usize> {
        if let Some(n) = memo.get(t) {
            return Ok(*n);
        }
        if path.contains(&t) {
            return Err(Error::precondition(
                "team_cycle",
                format!("teams `{}` contain each other", path.join("` → `")),
            ));
        }
        path.push(t);
        let mut longest = 0;
        for c in inner.get(t).into_iter().flatten() {
            longest = longest.max(1 + down(c, inner, memo, path)?);
        }
        path.pop();
        memo.insert(t, longest);
        Ok(longest)
    }
    let mut memo = HashMap::new();
    for t in inner.keys() {
        let n = down(t, inner, &mut memo, &mut Vec::new())?;
        if n + 1 > model::MAX_TEAM_NESTING {
            return Err(Error::precondition(
                "team_nesting_limit",
                format!(
                    "teams would nest {} deep below `{t}`; the limit is {}",
                    n + 1,
                    model::MAX_TEAM_NESTING
                ),
            ));
        }
    }
    Ok(())
}

/// Delete the context's tenant and everything in it (offboarding).
/// Operators only. Its audit event (`tenant.delete`) is kept.
#[derive(Debug, Clone)]
pub struct DeleteTenant;

/// What a deletion removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deleted {
    /// Resources.
    pub resources: u64,
}

impl Command for DeleteTenant {
    type Output = Deleted;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Deleted>> {
        if ctx.actor != Actor::SuperUser {
            return Err(Error::PermissionDenied(
                "only an operator deletes tenants".to_owned(),
            ));
        }
        let tenant = super::invariants::tenant_settings(tx).await?;
        let mut out = Deleted::default();
        for t in tx.resource_types().await? {
            out.resources += tx.resources_of_type(&t).await?.len() as u64;
        }
        tx.delete_tenant().await?;
        Ok(Change {
            action: "tenant.delete",
            target: format!("tenant:{}", ctx.tenant_id),
            before: json(&tenant),
            after: serde_json::json!({ "resources": out.resources }).to_string(),
            output: out,
            invalidation: Invalidation {
                everything: true,
                deleted: true,
                ..Invalidation::default()
            },
        })
    }
}

/// Replace a principal's display name, in its record and throughout the
/// audit trail, by a pseudonym (a privacy request). The principal keeps its
/// id, status and grants.
#[derive(Debug, Clone)]
pub struct ErasePrincipal {
    /// The principal.
    pub principal_id: String,
}

/// What an erasure changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Erased {
    /// The name now shown.
    pub pseudonym: String,
    /// Audit events rewritten.
    pub audit_events: u64,
}

impl Command for ErasePrincipal {
    type Output = Erased;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Erased>> {
        authorize(tx, ctx, model::TENANT_TYPE, "manage_members", &[]).await?;
        let id = self.principal_id;
        if tx.principal(&id).await?.is_none() {
            return Err(Error::not_found(format!("principal `{id}`")));
        }
        let pseudonym = format!(
            "erased-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let audit_events = tx.erase_display_name(&id, &pseudonym).await?;
        let out = Erased {
            pseudonym,
            audit_events,
        };
        Ok(Change {
            action: "principal.erase",
            target: format!("principal:{id}"),
            before: String::new(),
            after: json(&out),
            output: out,
            invalidation: Invalidation {
                principals: vec![id],
                ..Invalidation::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's chain of links as long as an import allows is refused as
    /// too deep, without recursing down it (no stack overflow).
    #[test]
    fn a_long_chain_of_links_is_refused_without_following_it_to_the_end() {
        let tenant = model::Tenant {
            id: "acme".into(),
            display_name: "Acme".into(),
            single_owner_types: Vec::new(),
            creator_owner_types: Vec::new(),
            audit_retention_days: 90,
            created_at: 0,
            actions: Vec::new(),
            implied_actions: Vec::new(),
        };
        let mut d = TenantDump::empty(tenant, 0);
        let at = |i: usize| ResourceRef {
            rtype: "board".into(),
            id: format!("b{i}"),
        };
        let n = 200_000;
        for i in 0..n {
            d.resources.push(model::Resource {
                resource: at(i),
                parent: None,
                private: false,
                restricted: false,
                attributes: Default::default(),
                links: if i + 1 < n {
                    vec![model::Link {
                        resource: at(i + 1),
                        action: "view".into(),
                        on: vec!["view".into()],
                    }]
                } else {
                    Vec::new()
                },
                created_at: 0,
            });
        }
        let e = check_dump(&d, 0).unwrap_err();
        assert!(e.to_string().contains("links away"), "{e}");
        // Four links deep is allowed.
        d.resources.truncate(5);
        d.resources[4].links.clear();
        check_dump(&d, 0).expect("a chain of four links");
    }
}

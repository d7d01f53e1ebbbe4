//! One tenant's index at a revision: its resource tree, grants by scope and
//! by subject, team memberships, principals, custom roles and settings, kept
//! up to date by applying the revision log's row-level changes
//! ([`Delta`]) in order. A gap in the revisions, or a change that does not
//! fit, means the index no longer matches the store: it must be rebuilt.
//! Pure data: no I/O.

use super::tree::Tree;
use crate::model::{
    Binding, Grant, Principal, ResourceRef, Role, RoleTable, Scope, SubjectRef, Team, Tenant,
};
use crate::store::{Delta, Invalidation, TenantRows};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Why an index cannot follow the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// The next entry is not the revision after the index's.
    #[error("the log jumps from revision {at} to {next}")]
    Gap { at: i64, next: i64 },
    /// A change names rows the index does not hold.
    #[error("revision {0} does not fit the index")]
    Misfit(i64),
}

/// A tenant's index.
#[derive(Debug, Clone)]
pub struct TenantIndex {
    revision: i64,
    tenant: Option<Tenant>,
    tree: Tree,
    grants: HashMap<String, Arc<Grant>>,
    by_scope: HashMap<Scope, BTreeSet<String>>,
    by_subject: HashMap<SubjectRef, BTreeSet<String>>,
    /// Direct members of each team.
    members: HashMap<String, BTreeSet<SubjectRef>>,
    /// Teams each subject is a direct member of.
    member_of: HashMap<SubjectRef, BTreeSet<String>>,
    teams: BTreeMap<String, Team>,
    principals: HashMap<String, Principal>,
    roles: BTreeMap<String, Role>,
    /// The role table compiled from `roles` and the tenant's actions.
    compiled: Arc<RoleTable>,
}

impl Default for TenantIndex {
    fn default() -> Self {
        TenantIndex {
            revision: 0,
            tenant: None,
            tree: Tree::default(),
            grants: HashMap::new(),
            by_scope: HashMap::new(),
            by_subject: HashMap::new(),
            members: HashMap::new(),
            member_of: HashMap::new(),
            teams: BTreeMap::new(),
            principals: HashMap::new(),
            roles: BTreeMap::new(),
            compiled: Arc::new(RoleTable::new(Vec::new())),
        }
    }
}

impl TenantIndex {
    /// The index of a tenant before its first write (revision 0).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The revision the index reflects.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The resource tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The tenant's settings (`None` before it is created).
    pub fn tenant(&self) -> Option<&Tenant> {
        self.tenant.as_ref()
    }

    /// A principal of the tenant.
    pub fn principal(&self, id: &str) -> Option<&Principal> {
        self.principals.get(id)
    }

    /// Builds the index from every row of the tenant, read at one revision.
    pub fn from_rows(rows: TenantRows) -> Result<Self, super::tree::TreeError> {
        let mut index = TenantIndex {
            revision: rows.revision,
            tree: Tree::from_rows(rows.resources)?,
            principals: rows
                .principals
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect(),
            teams: rows.teams.into_iter().map(|t| (t.id.clone(), t)).collect(),
            roles: rows
                .roles
                .into_iter()
                .map(|r| (r.id.clone(), Role { locked: false, ..r }))
                .collect(),
            tenant: Some(rows.tenant),
            ..TenantIndex::default()
        };
        for (r, attributes) in &rows.attributes {
            index.tree.set_attributes(r, attributes);
        }
        for (r, links) in &rows.links {
            index.tree.set_links(r, links);
        }
        for r in &rows.restricted {
            index.tree.set_restricted(r, true);
        }
        for (team, member) in rows.members {
            index
                .member_of
                .entry(member.clone())
                .or_default()
                .insert(team.clone());
            index.members.entry(team).or_default().insert(member);
        }
        for g in rows.grants {
            index.index_grant(g);
        }
        index.compile_roles();
        Ok(index)
    }

    /// The tenant's role table (predefined and custom roles, declared
    /// actions), compiled once per change of roles or actions.
    pub fn role_table(&self) -> Arc<RoleTable> {
        self.compiled.clone()
    }

    /// As [`TenantIndex::role_table`], borrowed.
    pub fn roles(&self) -> &RoleTable {
        &self.compiled
    }

    fn compile_roles(&mut self) {
        self.compiled = Arc::new(RoleTable::for_tenant(
            self.roles.values().cloned().collect(),
            self.tenant.as_ref(),
        ));
    }

    /// Whether the index may answer (false once a change failed to apply
    /// part way: it must be rebuilt).
    pub fn usable(&self) -> bool {
        self.revision >= 0
    }

    /// Applies the log entries that follow the index's revision, in order.
    /// On a misfit the index is left unusable ([`TenantIndex::usable`]).
    pub fn advance(&mut self, entries: &[(i64, Invalidation)]) -> Result<(), Stale> {
        let mut roles_changed = false;
        for (revision, inv) in entries {
            if !self.usable() {
                return Err(Stale::Misfit(*revision));
            }
            if *revision <= self.revision {
                continue;
            }
            if *revision != self.revision + 1 {
                return Err(Stale::Gap {
                    at: self.revision,
                    next: *revision,
                });
            }
            // An entry written before row-level changes were recorded says
            // what went stale but not what changed.
            if inv.deltas.is_empty() && *inv != Invalidation::default() {
                self.revision = -1;
                return Err(Stale::Misfit(*revision));
            }
            for d in &inv.deltas {
                roles_changed |= matches!(
                    d,
                    Delta::Role { .. } | Delta::RoleDeleted { .. } | Delta::Tenant { .. }
                );
                if !self.apply(d) {
                    self.revision = -1;
                    return Err(Stale::Misfit(*revision));
                }
            }
            self.revision = *revision;
        }
        if roles_changed {
            self.compile_roles();
        }
        Ok(())
    }

    /// Every principal holding a grant on one of `scopes`, directly or as a
    /// member (transitively) of a team holding one, in id order.
    pub fn holders<'a>(&'a self, scopes: impl IntoIterator<Item = &'a Scope>) -> BTreeSet<&'a str> {
        let mut out = BTreeSet::new();
        let mut teams: VecDeque<&str> = VecDeque::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for scope in scopes {
            for g in self.grants_on(scope) {
                match &g.subject {
                    SubjectRef::Principal(p) => {
                        out.insert(p.as_str());
                    }
                    SubjectRef::Team(t) => teams.push_back(t.as_str()),
                }
            }
        }
        while let Some(team) = teams.pop_front() {
            if !seen.insert(team) {
                continue;
            }
            for m in self.members.get(team).into_iter().flatten() {
                match m {
                    SubjectRef::Principal(p) => {
                        out.insert(p.as_str());
                    }
                    SubjectRef::Team(t) => teams.push_back(t.as_str()),
                }
            }
        }
        out
    }

    /// Roughly how many bytes the index holds (what the cache weighs it by).
    pub fn approx_bytes(&self) -> u64 {
        // Per row: the strings and the map and tree entries around them.
        (self.tree.len() as u64) * 200
            + (self.grants.len() as u64) * 400
            + (self.principals.len() as u64) * 200
            + (self.member_of.len() as u64) * 300
            + (self.teams.len() as u64) * 150
            + (self.roles.len() as u64) * 1_000
            + 4_096
    }

    /// Every grant the principal holds, directly or through its teams
    /// (transitively), each once, with the chain of teams it comes through
    /// (the principal's direct team first): direct ones by id, then the
    /// others by id.
    pub fn bindings(&self, principal_id: &str) -> Vec<Binding> {
        let me = SubjectRef::Principal(principal_id.to_owned());
        let mut out: Vec<Binding> = self
            .grants_of(&me)
            .map(|g| Binding {
                grant: g.clone(),
                via_teams: Vec::new(),
            })
            .collect();
        // Breadth first up the team graph: each team once, by its shortest
        // chain.
        let mut chains: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut queue: VecDeque<(&str, Vec<String>)> = self
            .member_of
            .get(&me)
            .into_iter()
            .flatten()
            .map(|t| (t.as_str(), vec![t.clone()]))
            .collect();
        while let Some((team, chain)) = queue.pop_front() {
            if chains.contains_key(team) {
                continue;
            }
            let as_member = SubjectRef::Team(team.to_owned());
            for up in self.member_of.get(&as_member).into_iter().flatten() {
                if !chains.contains_key(up.as_str()) {
                    let mut longer = chain.clone();
                    longer.push(up.clone());
                    queue.push_back((up.as_str(), longer));
                }
            }
            chains.insert(team, chain);
        }
        for (team, chain) in chains {
            let holder = SubjectRef::Team(team.to_owned());
            out.extend(self.grants_of(&holder).map(|g| Binding {
                grant: g.clone(),
                via_teams: chain.clone(),
            }));
        }
        // The store's order: direct grants, then those held through teams,
        // each by id (which near-miss a denial explains follows it).
        out.sort_by(|a, b| {
            (!a.via_teams.is_empty(), &a.grant.id).cmp(&(!b.via_teams.is_empty(), &b.grant.id))
        });
        out
    }

    /// The grants sitting on `scope`.
    pub fn grants_on(&self, scope: &Scope) -> impl Iterator<Item = &Grant> {
        self.by_scope
            .get(scope)
            .into_iter()
            .flatten()
            .filter_map(|id| self.grants.get(id))
            .map(|g| g.as_ref())
    }

    fn grants_of(&self, s: &SubjectRef) -> impl Iterator<Item = &Arc<Grant>> {
        self.by_subject
            .get(s)
            .into_iter()
            .flatten()
            .filter_map(|id| self.grants.get(id))
    }

    /// Applies one change; false when it does not fit.
    fn apply(&mut self, d: &Delta) -> bool {
        match d {
            Delta::Tenant { tenant } => {
                self.tenant = Some(tenant.clone());
                true
            }
            Delta::Resource { .. }
            | Delta::Private { .. }
            | Delta::Moved { .. }
            | Delta::Attributes { .. }
            | Delta::Links { .. }
            | Delta::Restricted { .. } => self.tree.apply(d),
            Delta::SubtreeDeleted { resource } => match self.tree.remove_collect(resource) {
                Some(gone) => {
                    for r in gone {
                        let ids = self
                            .by_scope
                            .remove(&Scope::Resource(r))
                            .unwrap_or_default();
                        for id in ids {
                            self.unindex(&id);
                        }
                    }
                    true
                }
                None => false,
            },
            Delta::Principal { principal } => {
                self.principals
                    .insert(principal.id.clone(), principal.clone());
                true
            }
            Delta::Status {
                principal_id,
                status,
                invitation_expires_at,
            } => match self.principals.get_mut(principal_id) {
                Some(p) => {
                    p.status = *status;
                    p.invitation_expires_at = *invitation_expires_at;
                    true
                }
                None => false,
            },
            Delta::Team { team } => {
                self.teams.insert(team.id.clone(), team.clone());
                true
            }
            Delta::TeamDeleted { team_id } => {
                let as_member = SubjectRef::Team(team_id.clone());
                for m in self.members.remove(team_id).unwrap_or_default() {
                    self.leave(team_id, &m);
                }
                for t in self.member_of.get(&as_member).cloned().unwrap_or_default() {
                    self.leave(&t, &as_member);
                    if let Some(ms) = self.members.get_mut(&t) {
                        ms.remove(&as_member);
                    }
                }
                for id in self.by_subject.get(&as_member).cloned().unwrap_or_default() {
                    self.unindex(&id);
                }
                self.teams.remove(team_id).is_some()
            }
            Delta::MemberAdded { team_id, member } => {
                self.members
                    .entry(team_id.clone())
                    .or_default()
                    .insert(member.clone());
                self.member_of
                    .entry(member.clone())
                    .or_default()
                    .insert(team_id.clone());
                true
            }
            Delta::MemberRemoved { team_id, member } => {
                if let Some(ms) = self.members.get_mut(team_id) {
                    ms.remove(member);
                }
                self.leave(team_id, member);
                true
            }
            Delta::Role { role } => {
                let role = Role {
                    locked: false,
                    ..role.clone()
                };
                self.roles.insert(role.id.clone(), role);
                true
            }
            Delta::RoleDeleted { role_id } => self.roles.remove(role_id).is_some(),
            Delta::Grant { grant } => {
                if let Scope::Resource(r) = &grant.scope {
                    if !self.tree.contains(r) {
                        return false;
                    }
                }
                self.index_grant(grant.clone());
                true
            }
            Delta::GrantsDeleted { ids } => {
                for id in ids {
                    self.unindex(id);
                }
                true
            }
            Delta::GrantsOfRoleDeleted { role_id } => {
                let ids: Vec<String> = self
                    .grants
                    .values()
                    .filter(|g| &g.role_id == role_id)
                    .map(|g| g.id.clone())
                    .collect();
                for id in ids {
                    self.unindex(&id);
                }
                true
            }
        }
    }

    /// Adds a grant to every map.
    fn index_grant(&mut self, grant: Grant) {
        self.by_scope
            .entry(grant.scope.clone())
            .or_default()
            .insert(grant.id.clone());
        self.by_subject
            .entry(grant.subject.clone())
            .or_default()
            .insert(grant.id.clone());
        self.grants.insert(grant.id.clone(), Arc::new(grant));
    }

    /// Forgets `member`'s direct membership of `team` (the reverse map).
    fn leave(&mut self, team: &str, member: &SubjectRef) {
        if let Some(ts) = self.member_of.get_mut(member) {
            ts.remove(team);
            if ts.is_empty() {
                self.member_of.remove(member);
            }
        }
    }

    /// Removes a grant from every map.
    fn unindex(&mut self, id: &str) {
        if let Some(g) = self.grants.remove(id) {
            if let Some(ids) = self.by_scope.get_mut(&g.scope) {
                ids.remove(id);
            }
            if let Some(ids) = self.by_subject.get_mut(&g.subject) {
                ids.remove(id);
            }
        }
    }

    /// Resources in the tree (for reports).
    pub fn resources(&self) -> usize {
        self.tree.len()
    }

    /// Whether `r` is a resource of the tenant.
    pub fn has_resource(&self, r: &ResourceRef) -> bool {
        self.tree.contains(r)
    }
}

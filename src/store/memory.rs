//! memory: an in-memory adapter of the storage ports, for tests; knows nothing
//! of SQL, the engine or gRPC.
//!
//! Every tenant's rows live in one `TenantState` behind an `Arc`, in
//! `BTreeMap`s keyed for the orders the ports document; reads clone the `Arc`
//! and scan. A write ([`MemTx`]) holds the store's write lock for its whole
//! life (so writers serialize, as the SQL store's row lock makes them), works
//! on a copy of its tenant's state, and swaps the copy in on
//! [`WriteTx::commit`]; dropped without committing, it changes nothing.
//! Its semantics follow the SQL adapter's (`store::sql`): the same orders,
//! keyset keys, team chains and revision, replay, audit and pruning rules.

use super::{
    AuditFilter, Begun, Catalog, Delta, Descendant, Invalidation, Keyset, Record, RevisionLog,
    Store, SubjectEntry, TenantRows, WriteContext, WriteStore, WriteTx, REQUEST_ID_RETENTION_MS,
};
use crate::error::{Error, Result};
use crate::model::{
    self, Attributes, AuditEvent, Binding, Grant, Link, Millis, Principal, PrincipalStatus,
    Resource, ResourceNode, ResourceRef, Role, RoleTable, Scope, SubjectRef, Team, Tenant,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// A resource's row: where it hangs and its flag.
#[derive(Debug, Clone)]
struct Node {
    parent: Option<ResourceRef>,
    private: bool,
    restricted: bool,
    attributes: Option<Arc<Attributes>>,
    links: Option<Arc<Vec<Link>>>,
    created_at: Millis,
}

impl Node {
    /// The row as a resource.
    fn resource(&self, r: &ResourceRef) -> Resource {
        Resource {
            resource: r.clone(),
            parent: self.parent.clone(),
            private: self.private,
            restricted: self.restricted,
            attributes: self.attributes.as_deref().cloned().unwrap_or_default(),
            links: self.links.as_deref().cloned().unwrap_or_default(),
            created_at: self.created_at,
        }
    }

    /// The row as a node of an ancestry.
    fn node(&self, r: &ResourceRef) -> ResourceNode {
        ResourceNode {
            resource: r.clone(),
            private: self.private,
            restricted: self.restricted,
            attributes: self.attributes.clone(),
            links: self.links.clone(),
        }
    }
}

/// A remembered request id.
#[derive(Debug, Clone)]
struct RequestRow {
    fingerprint: String,
    revision: i64,
    outcome: String,
    at: Millis,
}

/// Every row of one tenant.
#[derive(Debug, Clone, Default)]
struct TenantState {
    /// `None` only inside the write that creates the tenant.
    tenant: Option<Tenant>,
    revision: i64,
    /// Keyed `(type, id)`: the order of `list_children`.
    resources: BTreeMap<ResourceRef, Node>,
    principals: BTreeMap<String, Principal>,
    teams: BTreeMap<String, Team>,
    /// `(team, member)`; `SubjectRef` orders principals before teams, like
    /// the `kind:id` key.
    members: BTreeSet<(String, SubjectRef)>,
    roles: BTreeMap<String, Role>,
    grants: BTreeMap<String, Grant>,
    changes: BTreeMap<i64, Invalidation>,
    /// Keyed by revision (which is also the event's id).
    audit: BTreeMap<i64, AuditEvent>,
    requests: BTreeMap<String, RequestRow>,
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("corrupt in-memory state: {what}"))
}

fn missing_resource(r: &ResourceRef) -> Error {
    Error::not_found(format!("resource `{r}`"))
}

/// Splits a `kind:id` / `type:id` keyset key; types and kinds never hold `:`.
fn split_key(key: &str) -> (&str, &str) {
    key.split_once(':').unwrap_or((key, ""))
}

/// Whether `(kind, id)` comes after the key `after` (`kind:id`).
fn after_key(kind: &str, id: &str, after: Option<&str>) -> bool {
    match after {
        None => true,
        Some(a) => {
            let (k, i) = split_key(a);
            kind > k || (kind == k && id > i)
        }
    }
}

fn page_limit(limit: u64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

impl TenantState {
    /// Every resource as `(resource, parent, private)`.
    fn resource_rows(&self) -> Vec<super::ResourceRow> {
        self.resources
            .iter()
            .map(|(r, n)| (r.clone(), n.parent.clone(), n.private))
            .collect()
    }

    fn resource(&self, r: &ResourceRef) -> Option<Resource> {
        self.resources.get(r).map(|n| n.resource(r))
    }

    /// The resource and its ancestors, the resource first.
    fn ancestry(&self, r: &ResourceRef) -> Result<Option<Vec<ResourceNode>>> {
        let Some(mut node) = self.resources.get(r) else {
            return Ok(None);
        };
        let mut path = vec![node.node(r)];
        while let Some(parent) = &node.parent {
            if path.len() > self.resources.len() {
                return Err(corrupt("resource cycle"));
            }
            node = self
                .resources
                .get(parent)
                .ok_or_else(|| corrupt("parent"))?;
            path.push(node.node(parent));
        }
        Ok(Some(path))
    }

    /// How many levels `x` is below `root` (0 for `root` itself), if it is in
    /// `root`'s subtree.
    fn depth_below(&self, x: &ResourceRef, root: &ResourceRef) -> Result<Option<usize>> {
        Ok(self
            .ancestry(x)?
            .and_then(|path| path.iter().position(|n| &n.resource == root)))
    }

    /// Every resource strictly below `r`, by (depth, type, id).
    fn descendants(&self, r: &ResourceRef) -> Result<Vec<Descendant>> {
        let mut out = Vec::new();
        for (x, node) in &self.resources {
            if let Some(depth) = self.depth_below(x, r)? {
                if depth > 0 {
                    out.push(Descendant {
                        resource: x.clone(),
                        depth,
                        private: node.private,
                        linked: node.links.is_some(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (a.depth, &a.resource).cmp(&(b.depth, &b.resource)));
        Ok(out)
    }

    /// `r` and every resource below it.
    fn subtree(&self, r: &ResourceRef) -> Result<BTreeSet<ResourceRef>> {
        let mut out = BTreeSet::new();
        for x in self.resources.keys() {
            if self.depth_below(x, r)?.is_some() {
                out.insert(x.clone());
            }
        }
        Ok(out)
    }

    /// Direct members of `team`, in (kind, id) order.
    fn members_of(&self, team: &str) -> Vec<SubjectRef> {
        self.members
            .iter()
            .filter(|(t, _)| t == team)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Teams `member` belongs to directly, in id order.
    fn direct_teams(&self, member: &SubjectRef) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, m)| m == member)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Teams the principal is in, directly or through other teams, each with
    /// the chain from its direct team to it (breadth first: shortest chain).
    fn teams_with_chains(&self, principal_id: &str) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut frontier: Vec<(SubjectRef, Vec<String>)> =
            vec![(SubjectRef::Principal(principal_id.to_owned()), Vec::new())];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (member, chain) in &frontier {
                for team in self.direct_teams(member) {
                    if seen.insert(team.clone()) {
                        let mut chain = chain.clone();
                        chain.push(team.clone());
                        out.push((team.clone(), chain.clone()));
                        next.push((SubjectRef::Team(team), chain));
                    }
                }
            }
            frontier = next;
        }
        out
    }

    /// Every grant the principal holds: direct ones, then its teams', each
    /// group in grant id order.
    fn bindings(&self, principal_id: &str) -> Vec<Binding> {
        let chains: HashMap<String, Vec<String>> =
            self.teams_with_chains(principal_id).into_iter().collect();
        let direct = SubjectRef::Principal(principal_id.to_owned());
        let mut out: Vec<Binding> = self
            .grants
            .values()
            .filter(|g| g.subject == direct)
            .map(|g| Binding {
                grant: Arc::new(g.clone()),
                via_teams: Vec::new(),
            })
            .collect();
        for g in self.grants.values() {
            if let SubjectRef::Team(team) = &g.subject {
                if let Some(chain) = chains.get(team) {
                    out.push(Binding {
                        grant: Arc::new(g.clone()),
                        via_teams: chain.clone(),
                    });
                }
            }
        }
        out
    }

    /// Principals inside `team`, transitively, in id order, each with the
    /// chain from its direct team up to `team` (shortest chain).
    fn principals_in_team(&self, team: &str) -> Vec<(String, Vec<String>)> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen: HashSet<String> = HashSet::from([team.to_owned()]);
        // Chains are built top-down and reversed when a principal is reached.
        let mut queue: VecDeque<(String, Vec<String>)> =
            VecDeque::from([(team.to_owned(), vec![team.to_owned()])]);
        while let Some((current, chain)) = queue.pop_front() {
            for m in self.members_of(&current) {
                match m {
                    SubjectRef::Principal(p) => {
                        out.entry(p)
                            .or_insert_with(|| chain.iter().rev().cloned().collect());
                    }
                    SubjectRef::Team(inner) => {
                        if seen.insert(inner.clone()) {
                            let mut next = chain.clone();
                            next.push(inner.clone());
                            queue.push_back((inner, next));
                        }
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// The principals reached by `grants` (teams expanded), in id order, each
    /// with its bindings among them; unknown principals are left out.
    fn expand_holders<'a>(
        &self,
        grants: impl Iterator<Item = &'a Grant> + Clone,
    ) -> Vec<(Principal, Vec<Binding>)> {
        let mut by_principal: BTreeMap<String, Vec<Binding>> = BTreeMap::new();
        for g in grants.clone() {
            if let SubjectRef::Principal(p) = &g.subject {
                by_principal.entry(p.clone()).or_default().push(Binding {
                    grant: Arc::new(g.clone()),
                    via_teams: Vec::new(),
                });
            }
        }
        let mut members: HashMap<String, Vec<(String, Vec<String>)>> = HashMap::new();
        for g in grants {
            if let SubjectRef::Team(team) = &g.subject {
                let inside = members
                    .entry(team.clone())
                    .or_insert_with(|| self.principals_in_team(team));
                for (p, chain) in inside.iter() {
                    by_principal.entry(p.clone()).or_default().push(Binding {
                        grant: Arc::new(g.clone()),
                        via_teams: chain.clone(),
                    });
                }
            }
        }
        by_principal
            .into_iter()
            .filter_map(|(id, b)| self.principals.get(&id).map(|p| (p.clone(), b)))
            .collect()
    }

    fn tenant_holders(&self) -> Vec<(Principal, Vec<Binding>)> {
        self.expand_holders(self.grants.values().filter(|g| g.scope == Scope::Tenant))
    }

    fn holders_on_path(&self, path: &[ResourceNode]) -> Result<Vec<(Principal, Vec<Binding>)>> {
        let Some(first) = path.first() else {
            return Ok(self.tenant_holders());
        };
        let Some(ancestry) = self.ancestry(&first.resource)? else {
            return Ok(Vec::new());
        };
        let on_path: HashSet<&ResourceRef> = ancestry.iter().map(|n| &n.resource).collect();
        Ok(
            self.expand_holders(self.grants.values().filter(|g| match &g.scope {
                Scope::Tenant => true,
                Scope::Resource(r) => on_path.contains(r),
            })),
        )
    }

    fn resources_in_scopes(
        &self,
        scopes: &[Scope],
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Vec<ResourceNode>>> {
        let candidates = self
            .resources
            .keys()
            .filter(|r| r.rtype == rtype && after.is_none_or(|a| r.id.as_str() > a));
        let mut out = Vec::new();
        if scopes.contains(&Scope::Tenant) {
            for r in candidates.take(limit) {
                out.push(self.ancestry(r)?.ok_or_else(|| corrupt("resource"))?);
            }
            return Ok(out);
        }
        let roots: HashSet<&ResourceRef> = scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Resource(r) => Some(r),
                Scope::Tenant => None,
            })
            .collect();
        for r in candidates {
            let path = self.ancestry(r)?.ok_or_else(|| corrupt("resource"))?;
            if path.iter().any(|n| roots.contains(&n.resource)) {
                out.push(path);
            }
        }
        Ok(out)
    }

    fn list_children(
        &self,
        parent: Option<&ResourceRef>,
        page: Keyset<'_>,
    ) -> Result<Vec<Resource>> {
        if let Some(p) = parent {
            if !self.resources.contains_key(p) {
                return Err(missing_resource(p));
            }
        }
        Ok(self
            .resources
            .iter()
            .filter(|(_, n)| n.parent.as_ref() == parent)
            .filter(|(r, _)| after_key(&r.rtype, &r.id, page.after))
            .take(page_limit(page.limit))
            .map(|(r, n)| n.resource(r))
            .collect())
    }

    fn grants_in_subtree(&self, r: &ResourceRef) -> Result<Vec<Grant>> {
        let inside = self.subtree(r)?;
        Ok(self
            .grants
            .values()
            .filter(|g| matches!(&g.scope, Scope::Resource(s) if inside.contains(s)))
            .cloned()
            .collect())
    }
}

/// The in-memory store: every tenant's state, and the write lock that
/// serializes writers. Cheap to clone (clones share the same state).
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    tenants: Arc<RwLock<BTreeMap<String, Arc<TenantState>>>>,
    /// Deleted tenants and the revision each reached.
    tombstones: Arc<RwLock<BTreeMap<String, i64>>>,
    write: Arc<Mutex<()>>,
    /// When grants last decided a check, by `(tenant, grant id)`.
    used: Arc<std::sync::Mutex<HashMap<(String, String), Millis>>>,
}

impl MemStore {
    /// An empty store (no tenants).
    pub fn new() -> Self {
        Self::default()
    }

    /// The committed state of a tenant.
    fn snapshot(&self, tenant: &str) -> Result<Option<Arc<TenantState>>> {
        let tenants = self
            .tenants
            .read()
            .map_err(|_| Error::Internal("in-memory store lock poisoned".to_owned()))?;
        Ok(tenants.get(tenant).cloned())
    }

    fn tombstone_of(&self, tenant: &str) -> Result<Option<i64>> {
        let t = self
            .tombstones
            .read()
            .map_err(|_| Error::Internal("in-memory store lock poisoned".to_owned()))?;
        Ok(t.get(tenant).copied())
    }

    /// Runs `f` over the tenant's committed state, or returns `absent`.
    fn read<T>(
        &self,
        tenant: &str,
        absent: impl FnOnce() -> Result<T>,
        f: impl FnOnce(&TenantState) -> Result<T>,
    ) -> Result<T> {
        match self.snapshot(tenant)? {
            Some(s) => f(&s),
            None => absent(),
        }
    }
}

impl Store for MemStore {
    async fn tenant_revision(&self, tenant: &str, at_least: Option<i64>) -> Result<Option<i64>> {
        let rev = self.snapshot(tenant)?.map(|s| s.revision);
        super::fresh_enough(rev, at_least)
    }

    async fn subject(&self, tenant: &str, principal_id: &str) -> Result<Arc<SubjectEntry>> {
        let entry = self.read(
            tenant,
            || Ok(SubjectEntry::default()),
            |s| {
                let principal = s.principals.get(principal_id).cloned();
                let bindings = match &principal {
                    Some(p) if p.status == PrincipalStatus::Active => s.bindings(principal_id),
                    _ => Vec::new(),
                };
                Ok(SubjectEntry {
                    principal,
                    bindings,
                })
            },
        )?;
        Ok(Arc::new(entry))
    }

    async fn ancestry(
        &self,
        tenant: &str,
        resource: &ResourceRef,
    ) -> Result<Option<Arc<Vec<ResourceNode>>>> {
        self.read(
            tenant,
            || Ok(None),
            |s| Ok(s.ancestry(resource)?.map(Arc::new)),
        )
    }

    async fn roles(&self, tenant: &str) -> Result<Arc<RoleTable>> {
        let (custom, declared) = self.read(
            tenant,
            || Ok((Vec::new(), None)),
            |s| Ok((s.roles.values().cloned().collect(), s.tenant.clone())),
        )?;
        Ok(Arc::new(RoleTable::for_tenant(custom, declared.as_ref())))
    }

    async fn resources_in_scopes(
        &self,
        tenant: &str,
        scopes: &[Scope],
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Vec<ResourceNode>>> {
        self.read(
            tenant,
            || Ok(Vec::new()),
            |s| s.resources_in_scopes(scopes, rtype, after, limit),
        )
    }

    async fn holders_on_path(
        &self,
        tenant: &str,
        path: &[ResourceNode],
    ) -> Result<Vec<(Principal, Vec<Binding>)>> {
        self.read(tenant, || Ok(Vec::new()), |s| s.holders_on_path(path))
    }
}

impl RevisionLog for MemStore {
    async fn tenant_revisions(&self) -> Result<Vec<(String, i64)>> {
        let tenants = self
            .tenants
            .read()
            .map_err(|_| Error::Internal("in-memory store lock poisoned".to_owned()))?;
        Ok(tenants
            .iter()
            .map(|(id, s)| (id.clone(), s.revision))
            .collect())
    }

    async fn changes(
        &self,
        tenant: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<(i64, Invalidation)>> {
        self.read(
            tenant,
            || Ok(Vec::new()),
            |s| {
                Ok(s.changes
                    .iter()
                    .filter(|(rev, _)| **rev > after && **rev <= upto)
                    .map(|(rev, inv)| (*rev, inv.clone()))
                    .collect())
            },
        )
    }

    async fn snapshot(&self, tenant: &str) -> Result<Option<TenantRows>> {
        self.read(tenant, || Ok(None), |s| Ok(Self::rows(s)))
    }
}

impl MemStore {
    fn rows(s: &TenantState) -> Option<TenantRows> {
        Some(TenantRows {
            revision: s.revision,
            tenant: s.tenant.clone()?,
            resources: s.resource_rows(),
            attributes: s
                .resources
                .iter()
                .filter_map(|(r, n)| Some((r.clone(), n.attributes.as_deref()?.clone())))
                .collect(),
            restricted: s
                .resources
                .iter()
                .filter(|(_, n)| n.restricted)
                .map(|(r, _)| r.clone())
                .collect(),
            links: s
                .resources
                .iter()
                .filter_map(|(r, n)| Some((r.clone(), n.links.as_deref()?.clone())))
                .collect(),
            principals: s.principals.values().cloned().collect(),
            teams: s.teams.values().cloned().collect(),
            members: s.members.iter().cloned().collect(),
            roles: s.roles.values().cloned().collect(),
            grants: s.grants.values().cloned().collect(),
        })
    }
}

impl Catalog for MemStore {
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.read(id, || Ok(None), |s| Ok(s.tenant.clone()))
    }

    async fn list_tenants(&self, page: Keyset<'_>) -> Result<Vec<Tenant>> {
        let tenants = self
            .tenants
            .read()
            .map_err(|_| Error::Internal("in-memory store lock poisoned".to_owned()))?;
        Ok(tenants
            .iter()
            .filter(|(id, _)| page.after.is_none_or(|a| id.as_str() > a))
            .filter_map(|(_, s)| s.tenant.clone())
            .take(page_limit(page.limit))
            .collect())
    }

    async fn resource(&self, tenant: &str, r: &ResourceRef) -> Result<Option<Resource>> {
        self.read(tenant, || Ok(None), |s| Ok(s.resource(r)))
    }

    async fn list_children(
        &self,
        tenant: &str,
        parent: Option<&ResourceRef>,
        page: Keyset<'_>,
    ) -> Result<Vec<Resource>> {
        let absent = || match parent {
            Some(p) => Err(missing_resource(p)),
            None => Ok(Vec::new()),
        };
        self.read(tenant, absent, |s| s.list_children(parent, page))
    }

    async fn principal(&self, tenant: &str, id: &str) -> Result<Option<Principal>> {
        self.read(tenant, || Ok(None), |s| Ok(s.principals.get(id).cloned()))
    }

    async fn list_principals(&self, tenant: &str, page: Keyset<'_>) -> Result<Vec<Principal>> {
        self.read(
            tenant,
            || Ok(Vec::new()),
            |s| {
                Ok(s.principals
                    .iter()
                    .filter(|(id, _)| page.after.is_none_or(|a| id.as_str() > a))
                    .take(page_limit(page.limit))
                    .map(|(_, p)| p.clone())
                    .collect())
            },
        )
    }

    async fn list_teams(&self, tenant: &str, page: Keyset<'_>) -> Result<Vec<Team>> {
        self.read(
            tenant,
            || Ok(Vec::new()),
            |s| {
                Ok(s.teams
                    .iter()
                    .filter(|(id, _)| page.after.is_none_or(|a| id.as_str() > a))
                    .take(page_limit(page.limit))
                    .map(|(_, t)| t.clone())
                    .collect())
            },
        )
    }

    async fn team_members(
        &self,
        tenant: &str,
        team: &str,
        page: Keyset<'_>,
    ) -> Result<Option<Vec<SubjectRef>>> {
        self.read(
            tenant,
            || Ok(None),
            |s| {
                if !s.teams.contains_key(team) {
                    return Ok(None);
                }
                Ok(Some(
                    s.members_of(team)
                        .into_iter()
                        .filter(|m| after_key(m.kind_str(), m.id(), page.after))
                        .take(page_limit(page.limit))
                        .collect(),
                ))
            },
        )
    }

    async fn list_grants(
        &self,
        tenant: &str,
        subject: Option<&SubjectRef>,
        scope: Option<&ResourceRef>,
        page: Keyset<'_>,
    ) -> Result<Vec<Grant>> {
        let absent = || match scope {
            Some(r) => Err(missing_resource(r)),
            None => Ok(Vec::new()),
        };
        self.read(tenant, absent, |s| {
            if let Some(r) = scope {
                if !s.resources.contains_key(r) {
                    return Err(missing_resource(r));
                }
            }
            Ok(s.grants
                .values()
                .filter(|g| subject.is_none_or(|sub| &g.subject == sub))
                .filter(|g| scope.is_none_or(|r| matches!(&g.scope, Scope::Resource(x) if x == r)))
                .filter(|g| page.after.is_none_or(|a| g.id.as_str() > a))
                .take(page_limit(page.limit))
                .cloned()
                .collect())
        })
    }

    async fn record_grant_use(&self, tenant: &str, uses: &[(String, Millis)]) -> Result<()> {
        let mut used = self
            .used
            .lock()
            .map_err(|_| Error::Internal("in-memory store lock poisoned".to_owned()))?;
        for (id, at) in uses {
            let t = used.entry((tenant.to_owned(), id.clone())).or_insert(*at);
            *t = (*t).max(*at);
        }
        Ok(())
    }

    async fn grants_last_used(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Millis>> {
        let used = self
            .used
            .lock()
            .map_err(|_| Error::Internal("in-memory store lock poisoned".to_owned()))?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let at = used.get(&(tenant.to_owned(), id.clone()))?;
                Some((id.clone(), *at))
            })
            .collect())
    }

    async fn list_audit(&self, f: &AuditFilter, limit: u64) -> Result<Vec<AuditEvent>> {
        self.read(
            &f.tenant,
            || Ok(Vec::new()),
            |s| {
                Ok(s.audit
                    .values()
                    .rev()
                    .filter(|e| f.actor.as_ref().is_none_or(|a| &e.actor == a))
                    .filter(|e| f.action.as_ref().is_none_or(|a| &e.action == a))
                    .filter(|e| {
                        f.target_prefix
                            .as_ref()
                            .is_none_or(|p| e.target.starts_with(p.as_str()))
                    })
                    .filter(|e| f.since.is_none_or(|t| e.at >= t))
                    .filter(|e| f.until.is_none_or(|t| e.at < t))
                    .filter(|e| f.before_revision.is_none_or(|b| e.revision < b))
                    .take(page_limit(limit))
                    .cloned()
                    .collect())
            },
        )
    }

    async fn bindings(&self, tenant: &str, principal_id: &str) -> Result<Vec<Binding>> {
        self.read(tenant, || Ok(Vec::new()), |s| Ok(s.bindings(principal_id)))
    }

    async fn custom_roles(&self, tenant: &str) -> Result<Vec<Role>> {
        self.read(
            tenant,
            || Ok(Vec::new()),
            |s| Ok(s.roles.values().cloned().collect()),
        )
    }

    async fn tenant_holders(&self, tenant: &str) -> Result<Vec<(Principal, Vec<Binding>)>> {
        self.read(tenant, || Ok(Vec::new()), |s| Ok(s.tenant_holders()))
    }

    async fn resource_rows(&self, tenant: &str) -> Result<Vec<crate::store::ResourceRow>> {
        self.read(tenant, || Ok(Vec::new()), |s| Ok(s.resource_rows()))
    }

    async fn export(&self, tenant: &str) -> Result<Option<super::TenantDump>> {
        self.read(
            tenant,
            || Ok(None),
            |s| {
                Ok(Self::rows(s).map(|rows| {
                    super::TenantDump::from_rows(rows, |r| {
                        s.resources.get(r).map(|n| n.created_at).unwrap_or_default()
                    })
                }))
            },
        )
    }

    async fn tombstone(&self, tenant: &str) -> Result<Option<i64>> {
        self.tombstone_of(tenant)
    }
}

/// The first attempt of a retried request id, if any.
fn replay(state: &TenantState, ctx: &WriteContext) -> Result<Option<Begun<MemTx>>> {
    let Some(key) = &ctx.request else {
        return Ok(None);
    };
    let Some(row) = state.requests.get(&key.id) else {
        return Ok(None);
    };
    if row.fingerprint != key.fingerprint {
        return Err(Error::precondition(
            "request_id_reused",
            format!("request id `{}` was used for a different request", key.id),
        ));
    }
    Ok(Some(Begun::Replayed {
        outcome: row.outcome.clone(),
        revision: row.revision,
    }))
}

impl WriteStore for MemStore {
    type Tx = MemTx;

    async fn begin(&self, ctx: &WriteContext, creating: bool) -> Result<Begun<MemTx>> {
        let guard = self.write.clone().lock_owned().await;
        let t = ctx.tenant_id.as_str();
        let current = self.snapshot(t)?;
        let state = match (creating, current) {
            (true, Some(existing)) => {
                // A retried creation replays; any other creation is refused.
                if let Some(first) = replay(&existing, ctx)? {
                    return Ok(first);
                }
                return Err(Error::AlreadyExists {
                    what: format!("tenant `{t}`"),
                });
            }
            (true, None) => TenantState {
                revision: self.tombstone_of(t)?.unwrap_or(0) + 1,
                ..TenantState::default()
            },
            (false, None) => return Err(Error::not_found(format!("tenant `{t}`"))),
            (false, Some(existing)) => {
                let mut state = (*existing).clone();
                state.revision += 1;
                if let Some(first) = replay(&state, ctx)? {
                    return Ok(first);
                }
                state
            }
        };
        Ok(Begun::Open(MemTx {
            store: self.clone(),
            _guard: guard,
            ctx: ctx.clone(),
            creating,
            now: model::now_millis(),
            state,
            deltas: Vec::new(),
            deleting: false,
        }))
    }
}

/// One open write of a [`MemStore`]: a private copy of its tenant's state,
/// holding the store's write lock until it is committed or dropped.
#[derive(Debug)]
pub struct MemTx {
    store: MemStore,
    _guard: OwnedMutexGuard<()>,
    ctx: WriteContext,
    creating: bool,
    now: Millis,
    state: TenantState,
    deltas: Vec<Delta>,
    /// `delete_tenant` ran: the commit removes the tenant.
    deleting: bool,
}

impl MemTx {
    fn require_resource(&self, r: &ResourceRef) -> Result<()> {
        if self.state.resources.contains_key(r) {
            Ok(())
        } else {
            Err(missing_resource(r))
        }
    }

    fn require_team(&self, id: &str) -> Result<()> {
        if self.state.teams.contains_key(id) {
            Ok(())
        } else {
            Err(Error::not_found(format!("team `{id}`")))
        }
    }

    fn require_principal(&self, id: &str) -> Result<()> {
        if self.state.principals.contains_key(id) {
            Ok(())
        } else {
            Err(Error::not_found(format!("principal `{id}`")))
        }
    }

    fn require_subject(&self, s: &SubjectRef) -> Result<()> {
        match s {
            SubjectRef::Principal(id) => self.require_principal(id),
            SubjectRef::Team(id) => self.require_team(id),
        }
    }
}

impl WriteTx for MemTx {
    fn revision(&self) -> i64 {
        self.state.revision
    }

    fn now(&self) -> Millis {
        self.now
    }

    fn deltas(&self) -> &[Delta] {
        &self.deltas
    }

    async fn commit(self, mut record: Record) -> Result<()> {
        let MemTx {
            store,
            _guard,
            ctx,
            now,
            mut state,
            deltas,
            deleting,
            ..
        } = self;
        record.invalidation.deltas = deltas;
        if state.tenant.is_none() {
            return Err(Error::Internal(format!(
                "a write creating tenant `{}` committed without inserting it",
                ctx.tenant_id
            )));
        }
        let revision = state.revision;
        if let Some(key) = &ctx.request {
            state.requests.insert(
                key.id.clone(),
                RequestRow {
                    fingerprint: key.fingerprint.clone(),
                    revision,
                    outcome: record.outcome,
                    at: now,
                },
            );
        }
        state.changes.insert(revision, record.invalidation);
        state.audit.insert(
            revision,
            AuditEvent {
                id: revision,
                revision,
                at: now,
                caller: ctx.caller.clone(),
                actor: ctx.actor.to_string(),
                action: record.action.to_owned(),
                target: record.target,
                before_json: record.before,
                after_json: record.after,
            },
        );
        // Prune request ids past a day and audit events past retention.
        state
            .requests
            .retain(|_, r| r.at >= now - REQUEST_ID_RETENTION_MS);
        let days = state
            .tenant
            .as_ref()
            .map(|t| i64::from(t.audit_retention_days))
            .unwrap_or(0);
        let horizon = now - days * 86_400_000;
        state.audit.retain(|_, e| e.at >= horizon);
        let mut tenants = store
            .tenants
            .write()
            .map_err(|_| Error::Internal("in-memory store lock poisoned".to_owned()))?;
        if deleting {
            // Only the deletion's own audit event and log entry outlive it.
            tenants.remove(&ctx.tenant_id);
            let mut tombs = store
                .tombstones
                .write()
                .map_err(|_| Error::Internal("in-memory store lock poisoned".to_owned()))?;
            tombs.insert(ctx.tenant_id.clone(), revision);
        } else {
            tenants.insert(ctx.tenant_id.clone(), Arc::new(state));
        }
        Ok(())
    }

    async fn snapshot(&mut self) -> Result<Option<TenantRows>> {
        Ok(MemStore::rows(&self.state))
    }

    async fn delete_tenant(&mut self) -> Result<()> {
        self.deleting = true;
        Ok(())
    }

    async fn erase_display_name(&mut self, principal: &str, pseudonym: &str) -> Result<u64> {
        let st = &mut self.state;
        let current: Vec<String> = st
            .principals
            .get(principal)
            .map(|p| vec![p.display_name.clone()])
            .unwrap_or_default();
        if let Some(p) = st.principals.get_mut(principal) {
            p.display_name = pseudonym.to_owned();
            let p = p.clone();
            self.deltas.push(Delta::Principal { principal: p });
        }
        let mut changed = 0;
        for e in st.audit.values_mut() {
            let before = super::pseudonymize_json(&e.before_json, principal, &current, pseudonym);
            let after = super::pseudonymize_json(&e.after_json, principal, &current, pseudonym);
            if before.is_some() || after.is_some() {
                changed += 1;
            }
            if let Some(b) = before {
                e.before_json = b;
            }
            if let Some(a) = after {
                e.after_json = a;
            }
        }
        for inv in st.changes.values_mut() {
            let json = serde_json::to_string(&*inv).unwrap_or_default();
            if let Some(new) = super::pseudonymize_json(&json, principal, &current, pseudonym) {
                *inv = serde_json::from_str(&new).map_err(|_| corrupt("change record"))?;
            }
        }
        let quoted = serde_json::to_string(principal).unwrap_or_default();
        st.requests.retain(|_, r| !r.outcome.contains(&quoted));
        Ok(changed)
    }

    // ---- reads ----

    async fn tenant(&mut self) -> Result<Option<Tenant>> {
        Ok(self.state.tenant.clone())
    }

    async fn principal(&mut self, id: &str) -> Result<Option<Principal>> {
        Ok(self.state.principals.get(id).cloned())
    }

    async fn team(&mut self, id: &str) -> Result<Option<Team>> {
        Ok(self.state.teams.get(id).cloned())
    }

    async fn team_members(&mut self, team: &str) -> Result<Vec<SubjectRef>> {
        Ok(self.state.members_of(team))
    }

    async fn principals_in_team(&mut self, team: &str) -> Result<Vec<(String, Vec<String>)>> {
        Ok(self.state.principals_in_team(team))
    }

    async fn teams_of(&mut self, member: &SubjectRef) -> Result<Vec<String>> {
        Ok(self.state.direct_teams(member))
    }

    async fn resource(&mut self, r: &ResourceRef) -> Result<Option<Resource>> {
        Ok(self.state.resource(r))
    }

    async fn ancestry(&mut self, r: &ResourceRef) -> Result<Option<Vec<ResourceNode>>> {
        self.state.ancestry(r)
    }

    async fn subtree_height(&mut self, r: &ResourceRef) -> Result<usize> {
        self.require_resource(r)?;
        let deepest = self
            .state
            .descendants(r)?
            .iter()
            .map(|d| d.depth)
            .max()
            .unwrap_or(0);
        Ok(deepest + 1)
    }

    async fn descendants(&mut self, r: &ResourceRef) -> Result<Vec<Descendant>> {
        self.require_resource(r)?;
        self.state.descendants(r)
    }

    async fn resource_types(&mut self) -> Result<Vec<String>> {
        let types: std::collections::BTreeSet<&str> = self
            .state
            .resources
            .keys()
            .map(|r| r.rtype.as_str())
            .collect();
        Ok(types.into_iter().map(str::to_owned).collect())
    }

    async fn resources_of_type(&mut self, rtype: &str) -> Result<Vec<ResourceRef>> {
        Ok(self
            .state
            .resources
            .keys()
            .filter(|r| r.rtype == rtype)
            .cloned()
            .collect())
    }

    async fn custom_roles(&mut self) -> Result<Vec<Role>> {
        Ok(self.state.roles.values().cloned().collect())
    }

    async fn grant(&mut self, id: &str) -> Result<Option<Grant>> {
        Ok(self.state.grants.get(id).cloned())
    }

    async fn grants_on(&mut self, scope: &Scope) -> Result<Vec<Grant>> {
        if let Scope::Resource(r) = scope {
            self.require_resource(r)?;
        }
        Ok(self
            .state
            .grants
            .values()
            .filter(|g| &g.scope == scope)
            .cloned()
            .collect())
    }

    async fn grants_in_subtree(&mut self, r: &ResourceRef) -> Result<Vec<Grant>> {
        self.require_resource(r)?;
        self.state.grants_in_subtree(r)
    }

    async fn grants_of(&mut self, s: &SubjectRef) -> Result<Vec<Grant>> {
        Ok(self
            .state
            .grants
            .values()
            .filter(|g| &g.subject == s)
            .cloned()
            .collect())
    }

    async fn grants_of_role(&mut self, role: &str) -> Result<Vec<Grant>> {
        Ok(self
            .state
            .grants
            .values()
            .filter(|g| g.role_id == role)
            .cloned()
            .collect())
    }

    async fn count_grants_of_role(&mut self, role: &str) -> Result<u64> {
        Ok(self
            .state
            .grants
            .values()
            .filter(|g| g.role_id == role)
            .count() as u64)
    }

    async fn bindings(&mut self, principal: &str) -> Result<Vec<Binding>> {
        Ok(self.state.bindings(principal))
    }

    async fn tenant_holders(&mut self) -> Result<Vec<(Principal, Vec<Binding>)>> {
        Ok(self.state.tenant_holders())
    }

    // ---- row primitives ----

    async fn insert_tenant(&mut self, t: &Tenant) -> Result<()> {
        if !self.creating || t.id != self.ctx.tenant_id {
            return Err(Error::Internal(format!(
                "insert_tenant of `{}` outside the write creating it",
                t.id
            )));
        }
        if self.state.tenant.is_some() {
            return Err(Error::AlreadyExists {
                what: format!("tenant `{}`", t.id),
            });
        }
        self.state.tenant = Some(t.clone());
        self.deltas.push(Delta::Tenant { tenant: t.clone() });
        Ok(())
    }

    async fn update_tenant(&mut self, t: &Tenant) -> Result<()> {
        if t.id != self.ctx.tenant_id || self.state.tenant.is_none() {
            return Err(Error::not_found(format!("tenant `{}`", t.id)));
        }
        self.state.tenant = Some(t.clone());
        self.deltas.push(Delta::Tenant { tenant: t.clone() });
        Ok(())
    }

    async fn insert_resource(&mut self, r: &Resource) -> Result<()> {
        if let Some(p) = &r.parent {
            self.require_resource(p)?;
        }
        if self.state.resources.contains_key(&r.resource) {
            return Err(Error::AlreadyExists {
                what: format!("resource `{}`", r.resource),
            });
        }
        self.state.resources.insert(
            r.resource.clone(),
            Node {
                parent: r.parent.clone(),
                private: r.private,
                restricted: r.restricted,
                attributes: (!r.attributes.is_empty()).then(|| Arc::new(r.attributes.clone())),
                links: (!r.links.is_empty()).then(|| Arc::new(r.links.clone())),
                created_at: r.created_at,
            },
        );
        self.deltas.push(Delta::Resource {
            resource: r.resource.clone(),
            parent: r.parent.clone(),
            private: r.private,
            restricted: r.restricted,
            attributes: r.attributes.clone(),
            links: r.links.clone(),
        });
        Ok(())
    }

    async fn resources_linking_to(&mut self, r: &ResourceRef) -> Result<Vec<ResourceRef>> {
        Ok(self
            .state
            .resources
            .iter()
            .filter(|(_, n)| {
                n.links
                    .as_deref()
                    .is_some_and(|l| l.iter().any(|l| &l.resource == r))
            })
            .map(|(x, _)| x.clone())
            .collect())
    }

    async fn set_links(&mut self, r: &ResourceRef, links: &[Link]) -> Result<()> {
        let node = self
            .state
            .resources
            .get_mut(r)
            .ok_or_else(|| missing_resource(r))?;
        node.links = (!links.is_empty()).then(|| Arc::new(links.to_vec()));
        self.deltas.push(Delta::Links {
            resource: r.clone(),
            links: links.to_vec(),
        });
        Ok(())
    }

    async fn set_restricted(&mut self, r: &ResourceRef, restricted: bool) -> Result<()> {
        let node = self
            .state
            .resources
            .get_mut(r)
            .ok_or_else(|| missing_resource(r))?;
        node.restricted = restricted;
        self.deltas.push(Delta::Restricted {
            resource: r.clone(),
            restricted,
        });
        Ok(())
    }

    async fn set_attributes(&mut self, r: &ResourceRef, attributes: &Attributes) -> Result<()> {
        let node = self
            .state
            .resources
            .get_mut(r)
            .ok_or_else(|| missing_resource(r))?;
        node.attributes = (!attributes.is_empty()).then(|| Arc::new(attributes.clone()));
        self.deltas.push(Delta::Attributes {
            resource: r.clone(),
            attributes: attributes.clone(),
        });
        Ok(())
    }

    async fn set_private(&mut self, r: &ResourceRef, private: bool) -> Result<()> {
        let node = self
            .state
            .resources
            .get_mut(r)
            .ok_or_else(|| missing_resource(r))?;
        node.private = private;
        self.deltas.push(Delta::Private {
            resource: r.clone(),
            private,
        });
        Ok(())
    }

    async fn move_subtree(
        &mut self,
        r: &ResourceRef,
        new_parent: Option<&ResourceRef>,
    ) -> Result<()> {
        self.require_resource(r)?;
        if let Some(p) = new_parent {
            self.require_resource(p)?;
            // Never build a cycle, whatever the caller checked.
            if self.state.depth_below(p, r)?.is_some() {
                return Err(Error::precondition(
                    "resource_cycle",
                    format!("`{r}` cannot move under itself or its descendants"),
                ));
            }
        }
        let node = self
            .state
            .resources
            .get_mut(r)
            .ok_or_else(|| missing_resource(r))?;
        node.parent = new_parent.cloned();
        self.deltas.push(Delta::Moved {
            resource: r.clone(),
            parent: new_parent.cloned(),
        });
        Ok(())
    }

    async fn delete_subtree(&mut self, r: &ResourceRef) -> Result<u64> {
        self.require_resource(r)?;
        let doomed = self.state.subtree(r)?;
        self.state
            .grants
            .retain(|_, g| !matches!(&g.scope, Scope::Resource(s) if doomed.contains(s)));
        self.state.resources.retain(|x, _| !doomed.contains(x));
        self.deltas.push(Delta::SubtreeDeleted {
            resource: r.clone(),
        });
        Ok(doomed.len() as u64)
    }

    async fn insert_principal(&mut self, p: &Principal) -> Result<()> {
        if self.state.principals.contains_key(&p.id) {
            return Err(Error::AlreadyExists {
                what: format!("principal `{}`", p.id),
            });
        }
        self.state.principals.insert(p.id.clone(), p.clone());
        self.deltas.push(Delta::Principal {
            principal: p.clone(),
        });
        Ok(())
    }

    async fn set_principal_status(
        &mut self,
        id: &str,
        status: PrincipalStatus,
        invitation_expires_at: Option<Millis>,
    ) -> Result<()> {
        let expiry = invitation_expires_at.filter(|_| status == PrincipalStatus::Invited);
        let p = self
            .state
            .principals
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("principal `{id}`")))?;
        p.status = status;
        p.invitation_expires_at = expiry;
        self.deltas.push(Delta::Status {
            principal_id: id.to_owned(),
            status,
            invitation_expires_at: expiry,
        });
        Ok(())
    }

    async fn insert_team(&mut self, t: &Team) -> Result<()> {
        if self.state.teams.contains_key(&t.id) {
            return Err(Error::AlreadyExists {
                what: format!("team `{}`", t.id),
            });
        }
        self.state.teams.insert(t.id.clone(), t.clone());
        self.deltas.push(Delta::Team { team: t.clone() });
        Ok(())
    }

    async fn delete_team(&mut self, id: &str) -> Result<u64> {
        self.require_team(id)?;
        let as_member = SubjectRef::Team(id.to_owned());
        self.state
            .members
            .retain(|(team, m)| team != id && m != &as_member);
        let before = self.state.grants.len();
        self.state.grants.retain(|_, g| g.subject != as_member);
        let deleted = before - self.state.grants.len();
        self.state.teams.remove(id);
        self.deltas.push(Delta::TeamDeleted {
            team_id: id.to_owned(),
        });
        Ok(deleted as u64)
    }

    async fn add_member(&mut self, team: &str, member: &SubjectRef) -> Result<()> {
        self.require_team(team)?;
        self.require_subject(member)?;
        if !self.state.members.insert((team.to_owned(), member.clone())) {
            return Err(Error::AlreadyExists {
                what: format!("member `{member}` of team `{team}`"),
            });
        }
        self.deltas.push(Delta::MemberAdded {
            team_id: team.to_owned(),
            member: member.clone(),
        });
        Ok(())
    }

    async fn remove_member(&mut self, team: &str, member: &SubjectRef) -> Result<bool> {
        let removed = self
            .state
            .members
            .remove(&(team.to_owned(), member.clone()));
        if removed {
            self.deltas.push(Delta::MemberRemoved {
                team_id: team.to_owned(),
                member: member.clone(),
            });
        }
        Ok(removed)
    }

    async fn insert_role(&mut self, r: &Role) -> Result<()> {
        if self.state.roles.contains_key(&r.id) {
            return Err(Error::AlreadyExists {
                what: format!("role `{}`", r.id),
            });
        }
        self.state.roles.insert(
            r.id.clone(),
            Role {
                locked: false,
                ..r.clone()
            },
        );
        self.deltas.push(Delta::Role { role: r.clone() });
        Ok(())
    }

    async fn update_role(&mut self, r: &Role) -> Result<()> {
        let slot = self
            .state
            .roles
            .get_mut(&r.id)
            .ok_or_else(|| Error::not_found(format!("role `{}`", r.id)))?;
        *slot = Role {
            locked: false,
            ..r.clone()
        };
        self.deltas.push(Delta::Role { role: r.clone() });
        Ok(())
    }

    async fn delete_role(&mut self, id: &str) -> Result<()> {
        self.state
            .roles
            .remove(id)
            .ok_or_else(|| Error::not_found(format!("role `{id}`")))?;
        self.deltas.push(Delta::RoleDeleted {
            role_id: id.to_owned(),
        });
        Ok(())
    }

    async fn insert_grant(&mut self, g: &Grant) -> Result<()> {
        if let Scope::Resource(r) = &g.scope {
            self.require_resource(r)?;
        }
        if self.state.grants.contains_key(&g.id) {
            return Err(Error::AlreadyExists {
                what: format!("grant `{}`", g.id),
            });
        }
        self.state.grants.insert(g.id.clone(), g.clone());
        self.deltas.push(Delta::Grant { grant: g.clone() });
        Ok(())
    }

    async fn delete_grants(&mut self, ids: &[String]) -> Result<u64> {
        let mut deleted = 0;
        for id in ids {
            if self.state.grants.remove(id).is_some() {
                deleted += 1;
            }
        }
        self.deltas.push(Delta::GrantsDeleted { ids: ids.to_vec() });
        Ok(deleted)
    }

    async fn delete_grants_of_role(&mut self, role: &str) -> Result<u64> {
        let before = self.state.grants.len();
        self.state.grants.retain(|_, g| g.role_id != role);
        self.deltas.push(Delta::GrantsOfRoleDeleted {
            role_id: role.to_owned(),
        });
        Ok((before - self.state.grants.len()) as u64)
    }
}

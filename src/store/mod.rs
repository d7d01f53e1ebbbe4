//! store: the storage ports, in model types only, and their adapters. Knows
//! nothing of the engine, the admin rules or gRPC.
//!
//! - [`Store`]: the reads a decision needs (implemented by the SQL store, the
//!   in-memory store and the cache that decorates either).
//! - [`RevisionLog`]: every tenant's revision and the invalidations of its
//!   writes, which the cache polls.
//! - [`Catalog`]: the administrative reads (lists and lookups).
//! - [`WriteStore`] / [`WriteTx`]: the write side. [`WriteStore::begin`] opens
//!   one transaction for one admin write; the adapter owns the revision bump
//!   that serializes a tenant's writers, request-id replay and recording, the
//!   revision-log row, the audit row and the commit ([`WriteTx::commit`]).
//!   The transaction offers reads and row primitives; the rules that decide
//!   which primitives run live in the admin layer above.
//!
//! Adapters: [`sql::SqlStore`] (sea-orm over SQLite or PostgreSQL, the only
//! sea-orm user besides `entity` and `migration`) and [`memory::MemStore`]
//! (tests and the admin layer's unit tests). One conformance suite
//! (`tests/api/conformance.rs`) runs over all three backends.

pub mod delta;
pub mod entity;
pub mod memory;
pub mod migration;
pub mod sql;

use crate::error::Result;
use crate::model::{
    Actor, Attributes, AuditEvent, Binding, Grant, Link, Millis, Principal, PrincipalStatus,
    Resource, ResourceNode, ResourceRef, Role, RoleTable, Scope, SubjectRef, Team, Tenant,
};
pub use delta::Delta;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// What a write makes stale in a cache, recorded with its revision so that
/// every replica drops exactly those entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    /// Everything cached for the tenant.
    #[serde(default)]
    pub everything: bool,
    /// The tenant's role table.
    #[serde(default)]
    pub roles: bool,
    /// Principals whose status or bindings changed (teams already expanded).
    #[serde(default)]
    pub principals: Vec<String>,
    /// Resources whose ancestry changed, with everything below them.
    #[serde(default)]
    pub subtrees: Vec<ResourceRef>,
    /// Single resources that came into existence.
    #[serde(default)]
    pub resources: Vec<ResourceRef>,
    /// The tenant was deleted: forget it (its revision, caches and index).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The write's row-level changes, in order (filled in by the store when
    /// the write commits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<Delta>,
}

impl Invalidation {
    /// Invalidates everything of the tenant.
    pub fn everything() -> Self {
        Self {
            everything: true,
            ..Self::default()
        }
    }
}

/// A principal as decisions need it: its record (`None` when unknown) and,
/// when it is active, every grant it holds directly or through its teams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectEntry {
    /// The principal, or `None` when the id is not a member of the tenant.
    pub principal: Option<Principal>,
    /// Its bindings; empty unless the principal is active.
    pub bindings: Vec<Binding>,
}

/// The reads a decision needs, in model types. Implemented by the SQL store,
/// the in-memory store and the cache that decorates them.
pub trait Store: Send + Sync + 'static {
    /// The tenant's revision, at least `at_least` (INVALID_ARGUMENT naming
    /// `consistency_token` when the tenant has not reached it); `None` when
    /// the tenant does not exist.
    fn tenant_revision(
        &self,
        tenant: &str,
        at_least: Option<i64>,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// A principal of the tenant with its resolved bindings.
    fn subject(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> impl Future<Output = Result<Arc<SubjectEntry>>> + Send;

    /// The resource and its ancestors, the resource first; `None` when unknown.
    fn ancestry(
        &self,
        tenant: &str,
        resource: &ResourceRef,
    ) -> impl Future<Output = Result<Option<Arc<Vec<ResourceNode>>>>> + Send;

    /// The tenant's predefined and custom roles.
    fn roles(&self, tenant: &str) -> impl Future<Output = Result<Arc<RoleTable>>> + Send;

    /// The resources of `rtype` in any of the scopes (the scopes themselves
    /// included) whose id is after `after`, each once, with its ancestry.
    /// For the tenant scope the result is in id order and holds at most
    /// `limit` resources (keyset pages); for resource scopes it is complete.
    fn resources_in_scopes(
        &self,
        tenant: &str,
        scopes: &[Scope],
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<ResourceNode>>>> + Send;

    /// Every principal holding a grant on the tenant or on a resource of
    /// `path` (directly or through teams), each with its bindings on those
    /// scopes, in id order.
    fn holders_on_path(
        &self,
        tenant: &str,
        path: &[ResourceNode],
    ) -> impl Future<Output = Result<Vec<(Principal, Vec<Binding>)>>> + Send;

    /// The tenant's permission index at `revision` or later, when this store
    /// keeps one (the cache does); `None`: decide from the reads above.
    fn index(
        &self,
        tenant: &str,
        revision: i64,
    ) -> impl Future<Output = Result<Option<crate::index::IndexRead>>> + Send {
        let _ = (tenant, revision);
        async { Ok(None) }
    }
}

/// The tenant's revision `newest` (`None`: no such tenant), checked against
/// a consistency token `at_least`: a token ahead of the tenant is not one of
/// its own (tokens are per tenant, and every acknowledged write is stored),
/// so it is INVALID_ARGUMENT naming `consistency_token`. Shared by every
/// [`Store::tenant_revision`].
pub fn fresh_enough(newest: Option<i64>, at_least: Option<i64>) -> Result<Option<i64>> {
    if let (Some(rev), Some(min)) = (newest, at_least) {
        if rev < min {
            return Err(crate::error::Error::invalid(
                "consistency_token",
                format!("revision {min} is ahead of the tenant's newest revision {rev} (tokens are per tenant)"),
            ));
        }
    }
    Ok(newest)
}

/// The revision log the cache polls: what every replica needs to drop
/// exactly what other replicas' writes made stale.
pub trait RevisionLog: Send + Sync + 'static {
    /// Every tenant with its current revision.
    fn tenant_revisions(&self) -> impl Future<Output = Result<Vec<(String, i64)>>> + Send;

    /// The invalidations of the tenant's revisions in `(after, upto]`, in
    /// order (fewer than `upto - after` when the log has a gap).
    fn changes(
        &self,
        tenant: &str,
        after: i64,
        upto: i64,
    ) -> impl Future<Output = Result<Vec<(i64, Invalidation)>>> + Send;

    /// Every row of the tenant at one revision, read in one snapshot (what
    /// the permission index is built from: one bulk read per table); `None`
    /// when the tenant does not exist.
    fn snapshot(&self, tenant: &str) -> impl Future<Output = Result<Option<TenantRows>>> + Send;
}

/// Every row of one tenant at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRows {
    /// The revision the rows are at.
    pub revision: i64,
    /// The tenant's settings.
    pub tenant: Tenant,
    /// Every resource as `(resource, parent, private)`, in no set order.
    pub resources: Vec<ResourceRow>,
    /// The attributes of every resource that has some.
    pub attributes: Vec<(ResourceRef, Attributes)>,
    /// Every restricted resource.
    pub restricted: Vec<ResourceRef>,
    /// The links of every resource that has some.
    pub links: Vec<(ResourceRef, Vec<Link>)>,
    /// Every principal.
    pub principals: Vec<Principal>,
    /// Every team.
    pub teams: Vec<Team>,
    /// Every direct membership as `(team, member)`.
    pub members: Vec<(String, SubjectRef)>,
    /// Every custom role.
    pub roles: Vec<Role>,
    /// Every grant.
    pub grants: Vec<Grant>,
}

/// A whole tenant as export writes it and import reads it: every row,
/// each record after the records it names (roles after the roles they
/// inherit, resources after their parents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDump {
    /// The revision the rows are at (0 for a dump that is not from storage).
    pub revision: i64,
    /// The tenant's settings.
    pub tenant: Tenant,
    /// Custom roles, each after the roles it inherits.
    pub roles: Vec<Role>,
    /// Principals, in id order.
    pub principals: Vec<Principal>,
    /// Teams, in id order.
    pub teams: Vec<Team>,
    /// Direct memberships `(team, member)`.
    pub members: Vec<(String, SubjectRef)>,
    /// Resources, each after its parent.
    pub resources: Vec<Resource>,
    /// Grants, in id order.
    pub grants: Vec<Grant>,
}

impl TenantDump {
    /// A tenant with its settings and no records, at revision `revision`.
    pub fn empty(tenant: Tenant, revision: i64) -> Self {
        Self {
            revision,
            tenant,
            roles: Vec::new(),
            principals: Vec::new(),
            teams: Vec::new(),
            members: Vec::new(),
            resources: Vec::new(),
            grants: Vec::new(),
        }
    }

    /// The dump of `rows`, with each resource's creation time from `created`.
    pub fn from_rows(rows: TenantRows, created: impl Fn(&ResourceRef) -> Millis) -> Self {
        let TenantRows {
            revision,
            tenant,
            resources,
            attributes,
            restricted,
            links,
            mut principals,
            mut teams,
            mut members,
            roles,
            mut grants,
        } = rows;
        principals.sort_by(|a, b| a.id.cmp(&b.id));
        teams.sort_by(|a, b| a.id.cmp(&b.id));
        members.sort();
        grants.sort_by(|a, b| a.id.cmp(&b.id));
        let mut attributes: HashMap<ResourceRef, Attributes> = attributes.into_iter().collect();
        let restricted: std::collections::HashSet<ResourceRef> = restricted.into_iter().collect();
        let mut links: HashMap<ResourceRef, Vec<Link>> = links.into_iter().collect();
        let resources = parents_first(resources)
            .into_iter()
            .map(|(r, parent, private)| Resource {
                created_at: created(&r),
                attributes: attributes.remove(&r).unwrap_or_default(),
                restricted: restricted.contains(&r),
                links: links.remove(&r).unwrap_or_default(),
                resource: r,
                parent,
                private,
            })
            .collect();
        Self {
            revision,
            tenant,
            roles: inherited_first(roles),
            principals,
            teams,
            members,
            resources,
            grants,
        }
    }

    /// The rows the permission index is built from.
    pub fn rows(&self) -> TenantRows {
        TenantRows {
            revision: self.revision,
            tenant: self.tenant.clone(),
            resources: self
                .resources
                .iter()
                .map(|r| (r.resource.clone(), r.parent.clone(), r.private))
                .collect(),
            attributes: self
                .resources
                .iter()
                .filter(|r| !r.attributes.is_empty())
                .map(|r| (r.resource.clone(), r.attributes.clone()))
                .collect(),
            restricted: self
                .resources
                .iter()
                .filter(|r| r.restricted)
                .map(|r| r.resource.clone())
                .collect(),
            links: self
                .resources
                .iter()
                .filter(|r| !r.links.is_empty())
                .map(|r| (r.resource.clone(), r.links.clone()))
                .collect(),
            principals: self.principals.clone(),
            teams: self.teams.clone(),
            members: self.members.clone(),
            roles: self.roles.clone(),
            grants: self.grants.clone(),
        }
    }
}

/// Resources ordered so that each comes after its parent (top-level ones
/// first, then level by level, each level in `(type, id)` order). Resources
/// whose parent is missing, or that sit in a cycle, come last.
pub fn parents_first(mut rows: Vec<ResourceRow>) -> Vec<ResourceRow> {
    use std::collections::HashSet;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut children: HashMap<&ResourceRef, Vec<usize>> = HashMap::new();
    let mut order: Vec<usize> = Vec::with_capacity(rows.len());
    for (i, (_, parent, _)) in rows.iter().enumerate() {
        match parent {
            Some(p) => children.entry(p).or_default().push(i),
            None => order.push(i),
        }
    }
    let mut next = 0;
    while next < order.len() {
        if let Some(c) = children.remove(&rows[order[next]].0) {
            order.extend(c);
        }
        next += 1;
    }
    let placed: HashSet<usize> = order.iter().copied().collect();
    order.extend((0..rows.len()).filter(|i| !placed.contains(i)));
    let mut slots: Vec<Option<ResourceRow>> = rows.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Custom roles ordered so that each comes after the custom roles it
/// inherits (in id order otherwise); roles in a cycle come last.
pub fn inherited_first(mut roles: Vec<Role>) -> Vec<Role> {
    use std::collections::HashSet;
    roles.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: HashSet<String> = roles.iter().map(|r| r.id.clone()).collect();
    let mut placed: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(roles.len());
    loop {
        let before = out.len();
        let (ready, rest): (Vec<Role>, Vec<Role>) = roles.into_iter().partition(|r| {
            r.inherits
                .iter()
                .all(|p| !ids.contains(p) || placed.contains(p))
        });
        roles = rest;
        for r in ready {
            placed.insert(r.id.clone());
            out.push(r);
        }
        if roles.is_empty() || out.len() == before {
            out.extend(roles);
            return out;
        }
    }
}

/// Filters of an audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Tenant.
    pub tenant: String,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only targets starting with this.
    pub target_prefix: Option<String>,
    /// At or after.
    pub since: Option<i64>,
    /// Before.
    pub until: Option<i64>,
    /// Only events of revisions below this one (paging, newest first).
    pub before_revision: Option<i64>,
}

/// A keyset page request: items after `after`, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Keyset<'a> {
    /// The key of the last item of the previous page.
    pub after: Option<&'a str>,
    /// Most items.
    pub limit: u64,
}

impl Keyset<'_> {
    /// Every item (the most a SQL `LIMIT` takes).
    pub const ALL: Keyset<'static> = Keyset {
        after: None,
        limit: i64::MAX as u64,
    };
}

/// The administrative reads, straight from storage (never cached).
pub trait Catalog: Send + Sync + 'static {
    /// One tenant.
    fn tenant(&self, id: &str) -> impl Future<Output = Result<Option<Tenant>>> + Send;
    /// Tenants in id order.
    fn list_tenants(&self, page: Keyset<'_>) -> impl Future<Output = Result<Vec<Tenant>>> + Send;
    /// One resource.
    fn resource(
        &self,
        tenant: &str,
        r: &ResourceRef,
    ) -> impl Future<Output = Result<Option<Resource>>> + Send;
    /// Direct children of `parent` (or top-level resources), in (type, id)
    /// order; the key is `type:id`. NOT_FOUND when the parent does not exist.
    fn list_children(
        &self,
        tenant: &str,
        parent: Option<&ResourceRef>,
        page: Keyset<'_>,
    ) -> impl Future<Output = Result<Vec<Resource>>> + Send;
    /// One principal.
    fn principal(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Principal>>> + Send;
    /// Principals in id order.
    fn list_principals(
        &self,
        tenant: &str,
        page: Keyset<'_>,
    ) -> impl Future<Output = Result<Vec<Principal>>> + Send;
    /// Teams in id order.
    fn list_teams(
        &self,
        tenant: &str,
        page: Keyset<'_>,
    ) -> impl Future<Output = Result<Vec<Team>>> + Send;
    /// Direct members of a team in (kind, id) order, the key being
    /// `kind:id`; `None` when the team does not exist.
    fn team_members(
        &self,
        tenant: &str,
        team: &str,
        page: Keyset<'_>,
    ) -> impl Future<Output = Result<Option<Vec<SubjectRef>>>> + Send;
    /// Grants, optionally of one subject and/or on one resource, in id order.
    /// NOT_FOUND when the resource does not exist.
    fn list_grants(
        &self,
        tenant: &str,
        subject: Option<&SubjectRef>,
        scope: Option<&ResourceRef>,
        page: Keyset<'_>,
    ) -> impl Future<Output = Result<Vec<Grant>>> + Send;
    /// Records when grants last decided a check: each `(grant id, time)`
    /// moves the grant's last use forward (never back); grants that are
    /// gone are skipped. Not a write of the tenant: no revision, no audit.
    fn record_grant_use(
        &self,
        tenant: &str,
        uses: &[(String, Millis)],
    ) -> impl Future<Output = Result<()>> + Send;
    /// When each of `ids` last decided a check (those never used absent).
    fn grants_last_used(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Millis>>> + Send;
    /// Audit events, newest first.
    fn list_audit(
        &self,
        filter: &AuditFilter,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<AuditEvent>>> + Send;
    /// Every grant a principal holds directly or through teams, whatever its
    /// status.
    fn bindings(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> impl Future<Output = Result<Vec<Binding>>> + Send;
    /// The tenant's custom roles, in id order.
    fn custom_roles(&self, tenant: &str) -> impl Future<Output = Result<Vec<Role>>> + Send;
    /// Every resource of the tenant as `(resource, parent, private)`, in
    /// one read (what the index builds its tree from); in no set order.
    fn resource_rows(&self, tenant: &str) -> impl Future<Output = Result<Vec<ResourceRow>>> + Send;
    /// Principals holding tenant-wide grants, with those bindings.
    fn tenant_holders(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Vec<(Principal, Vec<Binding>)>>> + Send;
    /// Every row of the tenant with creation times, read in one snapshot
    /// (what `ExportTenant` streams); `None` when the tenant does not exist.
    fn export(&self, tenant: &str) -> impl Future<Output = Result<Option<TenantDump>>> + Send;
    /// The revision a tenant deleted with `DeleteTenant` had reached, if
    /// any: a tenant created again with its id continues after it.
    fn tombstone(&self, tenant: &str) -> impl Future<Output = Result<Option<i64>>> + Send;
}

/// A resource, its parent and whether it is private.
pub type ResourceRow = (ResourceRef, Option<ResourceRef>, bool);

/// Who is writing.
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// Tenant written.
    pub tenant_id: String,
    /// Name of the credential that called.
    pub caller: String,
    /// The acting principal or the super user.
    pub actor: Actor,
    /// The client's id for this write, so that a retry is applied once.
    pub request: Option<RequestKey>,
}

/// A client request id and what it was first used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The client's id (unique per tenant).
    pub id: String,
    /// A digest of the whole request, to refuse reuse for another request.
    pub fingerprint: String,
}

/// How long a request id is remembered.
pub const REQUEST_ID_RETENTION_MS: i64 = 24 * 3_600_000;

/// What an admin write records with its revision, in the same transaction.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Audit action, such as `grant.create`.
    pub action: &'static str,
    /// Audit target, such as `grant:…`.
    pub target: String,
    /// JSON of the target before (empty when it did not exist).
    pub before: String,
    /// JSON of the target after (empty when it no longer exists).
    pub after: String,
    /// What the write makes stale (the revision-log row).
    pub invalidation: Invalidation,
    /// JSON of the write's result, returned again to a retry of its request id.
    pub outcome: String,
}

/// An opened write.
#[derive(Debug)]
pub enum Begun<T> {
    /// A transaction holding the tenant's write lock, at the new revision.
    Open(T),
    /// The request id was used before for this same request: nothing is
    /// written; the first attempt's result (JSON) and revision.
    Replayed {
        /// JSON of the first attempt's result.
        outcome: String,
        /// Its revision.
        revision: i64,
    },
}

/// The write side of a store: opens one transaction per admin write.
pub trait WriteStore: Send + Sync + 'static {
    /// The transaction type.
    type Tx: WriteTx;

    /// Opens a write of `ctx.tenant_id`. Normally it bumps the tenant's
    /// revision first (taking the tenant's write lock; NOT_FOUND when the
    /// tenant does not exist); with `creating`, the tenant must not exist
    /// yet and the write will be its revision 1. Then a request id seen
    /// before is replayed (FAILED_PRECONDITION `request_id_reused` when it
    /// was used for a different request). Dropping the transaction without
    /// committing rolls everything back.
    fn begin(
        &self,
        ctx: &WriteContext,
        creating: bool,
    ) -> impl Future<Output = Result<Begun<Self::Tx>>> + Send;
}

/// One entry below a resource: a descendant and how many levels below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descendant {
    /// The descendant.
    pub resource: ResourceRef,
    /// 1 for a child, 2 for a grandchild, …
    pub depth: usize,
    /// Whether it is a private boundary.
    pub private: bool,
    /// Whether it acts on other resources (has links).
    pub linked: bool,
}

/// One open admin write: reads that see its own changes, and row primitives.
/// Every method concerns the tenant the write was opened for. Primitives do
/// not check rules (the admin layer does), but never leave rows dangling:
/// deleting a subtree deletes the grants on it, deleting a team its
/// memberships and grants.
pub trait WriteTx: Send + Sized {
    /// The revision this write produces.
    fn revision(&self) -> i64;
    /// The write's time (creation times, audit time, expiry checks).
    fn now(&self) -> Millis;
    /// Records `record` (audit row, revision-log row, request id) and
    /// commits; prunes request ids and audit events past retention.
    fn commit(self, record: Record) -> impl Future<Output = Result<()>> + Send;
    /// The row-level changes made so far, in order; `commit` records them
    /// in the revision log with the write's invalidation.
    fn deltas(&self) -> &[Delta];

    // ---- reads ----
    /// The tenant's settings (`None` only before `insert_tenant`).
    fn tenant(&mut self) -> impl Future<Output = Result<Option<Tenant>>> + Send;
    /// A principal.
    fn principal(&mut self, id: &str) -> impl Future<Output = Result<Option<Principal>>> + Send;
    /// A team.
    fn team(&mut self, id: &str) -> impl Future<Output = Result<Option<Team>>> + Send;
    /// Direct members of a team (empty when it has none or does not exist).
    fn team_members(&mut self, team: &str) -> impl Future<Output = Result<Vec<SubjectRef>>> + Send;
    /// Principals inside a team, transitively, each with the team chain from
    /// its direct team up to `team`.
    fn principals_in_team(
        &mut self,
        team: &str,
    ) -> impl Future<Output = Result<Vec<(String, Vec<String>)>>> + Send;
    /// Teams a subject belongs to directly.
    fn teams_of(&mut self, member: &SubjectRef)
        -> impl Future<Output = Result<Vec<String>>> + Send;
    /// A resource.
    fn resource(
        &mut self,
        r: &ResourceRef,
    ) -> impl Future<Output = Result<Option<Resource>>> + Send;
    /// A resource's ancestry, the resource first.
    fn ancestry(
        &mut self,
        r: &ResourceRef,
    ) -> impl Future<Output = Result<Option<Vec<ResourceNode>>>> + Send;
    /// Levels in the subtree of `r`, itself included (1 for a leaf).
    fn subtree_height(&mut self, r: &ResourceRef) -> impl Future<Output = Result<usize>> + Send;
    /// Every resource below `r` (not `r` itself).
    fn descendants(
        &mut self,
        r: &ResourceRef,
    ) -> impl Future<Output = Result<Vec<Descendant>>> + Send;
    /// The distinct types of the tenant's resources, in order.
    fn resource_types(&mut self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Every resource of a type.
    fn resources_of_type(
        &mut self,
        rtype: &str,
    ) -> impl Future<Output = Result<Vec<ResourceRef>>> + Send;
    /// The tenant's custom roles, in id order.
    fn custom_roles(&mut self) -> impl Future<Output = Result<Vec<Role>>> + Send;
    /// A grant.
    fn grant(&mut self, id: &str) -> impl Future<Output = Result<Option<Grant>>> + Send;
    /// Grants sitting exactly on `scope`.
    fn grants_on(&mut self, scope: &Scope) -> impl Future<Output = Result<Vec<Grant>>> + Send;
    /// Grants on `r` or anything below it.
    fn grants_in_subtree(
        &mut self,
        r: &ResourceRef,
    ) -> impl Future<Output = Result<Vec<Grant>>> + Send;
    /// Grants held directly by a subject.
    fn grants_of(&mut self, s: &SubjectRef) -> impl Future<Output = Result<Vec<Grant>>> + Send;
    /// Every grant of a role, in id order.
    fn grants_of_role(&mut self, role: &str) -> impl Future<Output = Result<Vec<Grant>>> + Send;
    /// How many grants name a role.
    fn count_grants_of_role(&mut self, role: &str) -> impl Future<Output = Result<u64>> + Send;
    /// Every grant a principal holds directly or through teams.
    fn bindings(&mut self, principal: &str) -> impl Future<Output = Result<Vec<Binding>>> + Send;
    /// Principals holding tenant-wide grants, with those bindings.
    fn tenant_holders(
        &mut self,
    ) -> impl Future<Output = Result<Vec<(Principal, Vec<Binding>)>>> + Send;

    // ---- row primitives ----
    /// Creates the tenant (only in a write opened with `creating`).
    fn insert_tenant(&mut self, t: &Tenant) -> impl Future<Output = Result<()>> + Send;
    /// Replaces the tenant's settings.
    fn update_tenant(&mut self, t: &Tenant) -> impl Future<Output = Result<()>> + Send;
    /// Creates a resource under its (existing) parent.
    fn insert_resource(&mut self, r: &Resource) -> impl Future<Output = Result<()>> + Send;
    /// Sets a resource's private flag.
    fn set_private(
        &mut self,
        r: &ResourceRef,
        private: bool,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The resources whose links name `r` (which may no longer exist).
    fn resources_linking_to(
        &mut self,
        r: &ResourceRef,
    ) -> impl Future<Output = Result<Vec<ResourceRef>>> + Send;
    /// Replaces a resource's links.
    fn set_links(
        &mut self,
        r: &ResourceRef,
        links: &[Link],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Sets a resource's restricted flag.
    fn set_restricted(
        &mut self,
        r: &ResourceRef,
        restricted: bool,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Replaces a resource's attributes.
    fn set_attributes(
        &mut self,
        r: &ResourceRef,
        attributes: &Attributes,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Moves a resource with its subtree under `new_parent` (the top when `None`).
    fn move_subtree(
        &mut self,
        r: &ResourceRef,
        new_parent: Option<&ResourceRef>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a resource, its subtree and every grant on them; returns the
    /// number of resources deleted.
    fn delete_subtree(&mut self, r: &ResourceRef) -> impl Future<Output = Result<u64>> + Send;
    /// Creates a principal.
    fn insert_principal(&mut self, p: &Principal) -> impl Future<Output = Result<()>> + Send;
    /// Changes a principal's status.
    fn set_principal_status(
        &mut self,
        id: &str,
        status: PrincipalStatus,
        invitation_expires_at: Option<Millis>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Creates a team.
    fn insert_team(&mut self, t: &Team) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a team, its memberships (both ways) and its grants; returns
    /// the number of grants deleted.
    fn delete_team(&mut self, id: &str) -> impl Future<Output = Result<u64>> + Send;
    /// Adds a member to a team.
    fn add_member(
        &mut self,
        team: &str,
        member: &SubjectRef,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Removes a member; whether it was one.
    fn remove_member(
        &mut self,
        team: &str,
        member: &SubjectRef,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Creates a custom role.
    fn insert_role(&mut self, r: &Role) -> impl Future<Output = Result<()>> + Send;
    /// Replaces a custom role.
    fn update_role(&mut self, r: &Role) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a custom role.
    fn delete_role(&mut self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Creates a grant on an existing scope.
    fn insert_grant(&mut self, g: &Grant) -> impl Future<Output = Result<()>> + Send;
    /// Deletes grants by id; returns how many existed.
    fn delete_grants(&mut self, ids: &[String]) -> impl Future<Output = Result<u64>> + Send;
    /// Deletes every grant of a role; returns how many.
    fn delete_grants_of_role(&mut self, role: &str) -> impl Future<Output = Result<u64>> + Send;

    // ---- whole tenants ----
    /// Writes every record of `dump` but the tenant's settings (already
    /// inserted), in its order, with its ids and creation times; the caller
    /// has checked it. The default goes row by row; SQL adapters write
    /// large batches and record no row-level changes (the write's
    /// invalidation is `everything`).
    fn insert_dump(&mut self, dump: &TenantDump) -> impl Future<Output = Result<()>> + Send {
        async move {
            for r in &dump.roles {
                self.insert_role(r).await?;
            }
            for p in &dump.principals {
                self.insert_principal(p).await?;
            }
            for t in &dump.teams {
                self.insert_team(t).await?;
            }
            for (team, m) in &dump.members {
                self.add_member(team, m).await?;
            }
            for r in &dump.resources {
                self.insert_resource(r).await?;
            }
            for g in &dump.grants {
                self.insert_grant(g).await?;
            }
            Ok(())
        }
    }
    /// Deletes every row of the tenant (its audit trail too) and leaves a
    /// tombstone at this write's revision, so that a tenant created again
    /// with the id continues after it; `commit` then records only the
    /// deletion's audit event.
    fn delete_tenant(&mut self) -> impl Future<Output = Result<()>> + Send;
    /// Every row of the tenant as this write sees it (its own changes
    /// included); `None` when the tenant does not exist.
    fn snapshot(&mut self) -> impl Future<Output = Result<Option<TenantRows>>> + Send;
    /// Replaces a principal's display name by `pseudonym` in its record, in
    /// every audit event and revision-log entry that shows it, and forgets
    /// the request ids whose stored results show it; returns how many audit
    /// events changed.
    fn erase_display_name(
        &mut self,
        principal: &str,
        pseudonym: &str,
    ) -> impl Future<Output = Result<u64>> + Send;
}

/// `json` with every object whose `id` is `principal` and that has a
/// `display_name` given `pseudonym` as display name, and every string equal
/// to one of those names (or to `also`) replaced by `pseudonym`; `None` when
/// nothing changed or `json` is not JSON.
pub fn pseudonymize_json(
    json: &str,
    principal: &str,
    also: &[String],
    pseudonym: &str,
) -> Option<String> {
    fn names(v: &serde_json::Value, principal: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("id").and_then(|i| i.as_str()) == Some(principal) {
                    if let Some(n) = m.get("display_name").and_then(|n| n.as_str()) {
                        out.push(n.to_owned());
                    }
                }
                m.values().for_each(|x| names(x, principal, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| names(x, principal, out)),
            _ => {}
        }
    }
    fn replace(v: &mut serde_json::Value, names: &[String], pseudonym: &str) -> bool {
        match v {
            serde_json::Value::String(s) if names.iter().any(|n| n == s) => {
                *s = pseudonym.to_owned();
                true
            }
            serde_json::Value::Object(m) => m
                .values_mut()
                .fold(false, |c, x| replace(x, names, pseudonym) | c),
            serde_json::Value::Array(a) => a
                .iter_mut()
                .fold(false, |c, x| replace(x, names, pseudonym) | c),
            _ => false,
        }
    }
    if json.is_empty() {
        return None;
    }
    let mut v: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut found: Vec<String> = also.iter().filter(|n| !n.is_empty()).cloned().collect();
    names(&v, principal, &mut found);
    found.retain(|n| !n.is_empty() && n != pseudonym);
    if found.is_empty() {
        return None;
    }
    replace(&mut v, &found, pseudonym).then(|| v.to_string())
}

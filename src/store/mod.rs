//! store: persistence. The [`Store`] trait is what the engine asks for, in
//! model types; [`sql::SqlStore`] implements it (and the administrative
//! writes) with sea-orm over SQLite or PostgreSQL, and is the only sea-orm
//! user besides the `entity` and `migration` modules. The cache
//! (`crate::cache`) decorates it.

pub mod entity;
pub mod migration;
pub mod sql;

use crate::engine::{Binding, RoleTable};
use crate::error::Result;
use crate::model::{Principal, ResourceNode, ResourceRef, Scope};
use serde::{Deserialize, Serialize};
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

/// The reads a decision needs, in model types. Implemented by the SQL store
/// and by the cache that decorates it.
pub trait Store: Send + Sync + 'static {
    /// The tenant's revision, at least `at_least` (or UNAVAILABLE when the
    /// store cannot reach it); `None` when the tenant does not exist.
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
    /// scopes.
    fn holders_on_path(
        &self,
        tenant: &str,
        path: &[ResourceNode],
    ) -> impl Future<Output = Result<Vec<(Principal, Vec<Binding>)>>> + Send;
}

//! store: persistence. The [`Store`] trait is what the engine asks for, in
//! model types; [`sql::SqlStore`] implements it (and the administrative
//! writes) with sea-orm over SQLite or PostgreSQL, and is the only sea-orm
//! user besides the `entity` and `migration` modules.

pub mod entity;
pub mod migration;
pub mod sql;

use crate::engine::{Binding, RoleTable};
use crate::error::Result;
use crate::model::{Principal, ResourceNode, ResourceRef, Scope};
use std::future::Future;

/// The reads a decision needs, in model types.
pub trait Store: Send + Sync + 'static {
    /// The tenant's current revision, or `None` when the tenant does not exist.
    fn tenant_revision(&self, tenant: &str) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// A principal of the tenant.
    fn principal(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Principal>>> + Send;

    /// Every grant the principal holds, directly or through its teams
    /// (transitively), with the team chain.
    fn bindings(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> impl Future<Output = Result<Vec<Binding>>> + Send;

    /// The resource and its ancestors, the resource first; `None` when unknown.
    fn ancestry(
        &self,
        tenant: &str,
        resource: &ResourceRef,
    ) -> impl Future<Output = Result<Option<Vec<ResourceNode>>>> + Send;

    /// The tenant's predefined and custom roles.
    fn roles(&self, tenant: &str) -> impl Future<Output = Result<RoleTable>> + Send;

    /// The resources of `rtype` in the scope (the scope itself included), each
    /// with its ancestry.
    fn resources_in_scope(
        &self,
        tenant: &str,
        scope: &Scope,
        rtype: &str,
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

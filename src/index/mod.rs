//! index: the per-tenant permission index of issue 11, being built. So far
//! the resource tree ([`tree::Tree`]): a tenant's resources in memory, in a
//! stable depth-first order with resumable walks; lists over it
//! ([`list::accessible`]), whose work follows the page and the principal's
//! grants rather than the tenant; and a tenant's whole index
//! ([`tenant::TenantIndex`]: tree, grants, teams, principals, roles) kept
//! at a revision by applying the revision log's row-level changes. Not yet
//! serving any call: checks and lists still go through the cache of
//! resolved bindings (`crate::cache`).

/// A tenant's index, read-locked at a revision at least the one asked for
/// (what the cache hands the authorizer).
pub type IndexRead = tokio::sync::OwnedRwLockReadGuard<tenant::TenantIndex>;

pub mod list;
pub mod tenant;
pub mod tree;

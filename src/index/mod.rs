//! index: the per-tenant permission index of issue 11, being built. So far
//! the resource tree ([`tree::Tree`]): a tenant's resources in memory, in a
//! stable depth-first order with resumable walks, the structure lists will
//! page through. Not yet serving any call: checks and lists still go
//! through the cache of resolved bindings (`crate::cache`).

pub mod tree;

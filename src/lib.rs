//! Portcullis: a gRPC authorization service for workflow-automation platforms.
//!
//! Code map (dependencies point one way: `model` <- `engine` <- `admin` <-
//! `grpc` <- `app`; `store` speaks `model` only):
//! - [`model`]: domain types and validation, the compiled role table and the
//!   predefined roles; no gRPC, no SQL.
//! - [`engine`]: the decision ([`engine::decide`]) as pure functions, and the
//!   [`engine::authorizer::Authorizer`] that gathers inputs through the
//!   [`store::Store`] port. Never imports tonic or sea-orm.
//! - [`admin`]: the administrative rules: typed commands, one file per
//!   aggregate, the invariants and the actor's authorization, run through the
//!   write port ([`store::WriteStore`]); unit-tested over the in-memory store.
//! - [`store`]: the storage ports ([`store::Store`], [`store::RevisionLog`],
//!   [`store::Catalog`], [`store::WriteStore`]) and their adapters: SQL
//!   ([`store::sql::SqlStore`], sea-orm) and memory ([`store::memory::MemStore`]);
//!   SQL and mapping only, never the engine.
//! - [`cache`]: the moka cache of resolved bindings, ancestries and role
//!   tables, a decorator over any store port kept exact by the revision log.
//! - [`grpc`]: thin tonic handlers; `grpc/status.rs` maps [`error::Error`] to
//!   gRPC codes with error details in one place.
//! - [`auth`]: credentials (API keys, client certificates), scopes, tenant
//!   limits.
//! - [`metrics`]: Prometheus metrics and their endpoint; live values come from
//!   closures handed in by `app`.
//! - [`client`]: the recommended way for a Rust service to call Portcullis
//!   (also alone: `default-features = false, features = ["client"]`).
//! - [`tenant_file`]: a whole tenant as a TOML or JSON file with assertions
//!   (what `portcullis tenant export|import`, `apply` and `test` read and
//!   write); `test` runs the assertions in an embedded in-memory instance.
//! - [`config`], [`telemetry`], [`app`]: configuration, logs and traces,
//!   wiring (and [`app::StartupError`]).
//! - `bench` (cargo feature `bench`): `portcullis bench`, the dataset seeder
//!   (which bypasses the admin rules) and load generator.
//!
//! Invariants: a denial is a value, never an error; storage failures are
//! `UNAVAILABLE`, never a decision; every admin write is one transaction with
//! its audit record and revision bump.

#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "server")]
pub mod cache;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(any(feature = "client", feature = "server"))]
pub mod client;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod decision_log;
#[cfg(feature = "server")]
pub mod engine;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod grant_use;
pub mod grpc;
#[cfg(feature = "server")]
pub mod index;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod model;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod tenant_file;
#[cfg(feature = "server")]
pub mod tls;

//! Portcullis: a gRPC authorization service for workflow-automation platforms.
//!
//! Code map (dependencies point inward):
//! - [`model`]: domain types and validation; no gRPC, no SQL.
//! - [`engine`]: the decision ([`engine::decide`]) as pure functions, and the
//!   [`engine::authorizer::Authorizer`] that gathers inputs through the
//!   [`store::Store`] trait. Never imports tonic or sea-orm.
//! - [`store`]: the `Store` trait and its sea-orm implementation
//!   ([`store::sql::SqlStore`]), entities and migrations; administrative
//!   writes with their invariants and audit records.
//! - [`grpc`]: thin tonic handlers; `grpc/status.rs` maps [`error::Error`] to
//!   gRPC codes in one place.
//! - [`cache`]: the moka cache of resolved bindings, ancestries and role
//!   tables, a `Store` decorator kept exact by the revision log.
//! - [`auth`]: credentials (API keys, client certificates), scopes, tenant
//!   limits.
//! - [`metrics`]: Prometheus metrics and their endpoint.
//! - [`client`]: the recommended way for a Rust service to call Check.
//! - [`config`], [`telemetry`], [`app`]: configuration, logs and traces,
//!   wiring.
//! - [`bench`]: `portcullis bench`, the dataset seeder and load generator.
//!
//! Invariants: a denial is a value, never an error; storage failures are
//! `UNAVAILABLE`, never a decision; every admin write is one transaction with
//! its audit record and revision bump.

pub mod admin;
pub mod app;
pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cache;
pub mod client;
pub mod config;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod model;
pub mod store;
pub mod telemetry;

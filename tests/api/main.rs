//! Integration tests: one binary, so the suite links once. Every test starts
//! the real server on an ephemeral loopback port and talks gRPC to it.

mod actor_tokens;
mod cache;
mod cli;
mod client;
mod conformance;
mod database_tls;
mod error_details;
mod helpers;
mod process;

mod hostile;
mod invariants;
mod isolation;
mod json_http;
mod lifecycle;
mod masks_and_pages;
mod observability;
mod preview;
mod properties;
mod python_client;
mod runbook;
mod seed_flow_builder;
mod seed_monday;
mod seed_neowit;
mod seed_oneflow;
mod seed_openfn;
mod smoke;
mod surface;
mod tenants;
mod trust;
mod watch;
mod why_delegation;

//! Integration tests: one binary, so the suite links once. Every test starts
//! the real server on an ephemeral loopback port and talks gRPC to it.

mod helpers;

mod invariants;
mod smoke;
mod surface;

//! sea-orm entities, one per table.
#![allow(missing_docs)]

pub mod audit_event;
pub mod change;
pub mod grant;
pub mod principal;
pub mod request;
pub mod resource;
pub mod role;
pub mod team;
pub mod team_member;
pub mod tenant;
pub mod tombstone;

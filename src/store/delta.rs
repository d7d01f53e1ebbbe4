//! Row-level change records: what one admin write changed, primitive by
//! primitive, recorded in the revision log with the write's invalidation.
//! A replica (or, later, a change feed) that applies a tenant's deltas in
//! revision order holds the same rows as the store, without reading them
//! back. Cascades are the store's: deleting a subtree deletes the grants on
//! it, deleting a team its memberships and grants, deleting grants of a role
//! all of them.

use crate::model::{
    Attributes, Grant, Link, Millis, Principal, PrincipalStatus, ResourceRef, Role, SubjectRef,
    Team, Tenant,
};
use serde::{Deserialize, Serialize};

/// One change of a write, in the order it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Delta {
    /// The tenant was created or its settings changed.
    Tenant { tenant: Tenant },
    /// A resource was created.
    Resource {
        resource: ResourceRef,
        parent: Option<ResourceRef>,
        private: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        restricted: bool,
        #[serde(default, skip_serializing_if = "Attributes::is_empty")]
        attributes: Attributes,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<Link>,
    },
    /// A resource's links were replaced.
    Links {
        resource: ResourceRef,
        links: Vec<Link>,
    },
    /// A resource became restricted or not.
    Restricted {
        resource: ResourceRef,
        restricted: bool,
    },
    /// A resource's attributes were replaced.
    Attributes {
        resource: ResourceRef,
        attributes: Attributes,
    },
    /// A resource became private or public.
    Private {
        resource: ResourceRef,
        private: bool,
    },
    /// A resource (with its subtree) moved under `parent`.
    Moved {
        resource: ResourceRef,
        parent: Option<ResourceRef>,
    },
    /// A resource, everything below it and the grants on them were deleted.
    SubtreeDeleted { resource: ResourceRef },
    /// A principal was created.
    Principal { principal: Principal },
    /// A principal's status changed.
    Status {
        principal_id: String,
        status: PrincipalStatus,
        /// The invitation's expiry, with status `invited`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invitation_expires_at: Option<Millis>,
    },
    /// A team was created.
    Team { team: Team },
    /// A team, its memberships (as team and as member) and its grants were
    /// deleted.
    TeamDeleted { team_id: String },
    /// A member joined a team.
    MemberAdded { team_id: String, member: SubjectRef },
    /// A member left a team.
    MemberRemoved { team_id: String, member: SubjectRef },
    /// A custom role was created or changed.
    Role { role: Role },
    /// A custom role was deleted.
    RoleDeleted { role_id: String },
    /// A grant was made.
    Grant { grant: Grant },
    /// Grants were deleted.
    GrantsDeleted { ids: Vec<String> },
    /// Every grant of a role was deleted.
    GrantsOfRoleDeleted { role_id: String },
}

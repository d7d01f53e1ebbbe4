//! Conversions between protobuf messages and model types. A missing or
//! malformed field becomes `INVALID_ARGUMENT` naming it.

use super::pb;
use crate::engine::{Decision, Explanation, Reason};
use crate::error::{Error, Result};
use crate::model::{
    self, condition, AuditEvent, Effect, Grant, Millis, Permission, Principal, PrincipalKind,
    PrincipalStatus, Resource, ResourceRef, Role, Scope, SubjectRef, Team, Tenant,
};

/// A required id field.
pub fn id(field: &str, v: String) -> Result<String> {
    model::validate_id(field, &v)?;
    Ok(v)
}

/// A list of action names, each valid, sorted and without duplicates (at
/// most 256).
pub fn action_list(field: &str, v: Vec<String>) -> Result<Vec<String>> {
    if v.len() > 256 {
        return Err(Error::invalid(field, "at most 256 actions"));
    }
    let mut out = Vec::with_capacity(v.len());
    for (i, a) in v.into_iter().enumerate() {
        model::validate_name(&format!("{field}[{i}]"), &a)?;
        out.push(a);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A required principal id (not a reserved one).
pub fn principal_id(field: &str, v: String) -> Result<String> {
    model::validate_principal_id(field, &v)?;
    Ok(v)
}

/// A required name field (type, action, role id).
pub fn name(field: &str, v: String) -> Result<String> {
    model::validate_name(field, &v)?;
    Ok(v)
}

/// A required resource reference.
pub fn resource(field: &str, r: Option<pb::ResourceRef>) -> Result<ResourceRef> {
    let r = r.ok_or_else(|| Error::invalid(field, "must be set"))?;
    ResourceRef::new(field, &r.r#type, &r.id)
}

/// An optional resource reference.
pub fn opt_resource(field: &str, r: Option<pb::ResourceRef>) -> Result<Option<ResourceRef>> {
    r.map(|r| ResourceRef::new(field, &r.r#type, &r.id))
        .transpose()
}

/// A grant scope: a resource, or the tenant when unset.
pub fn scope(field: &str, r: Option<pb::ResourceRef>) -> Result<Scope> {
    Ok(opt_resource(field, r)?.map_or(Scope::Tenant, Scope::Resource))
}

/// A required subject.
pub fn subject(field: &str, s: Option<pb::SubjectRef>) -> Result<SubjectRef> {
    use pb::subject_ref::Kind;
    match s.and_then(|s| s.kind) {
        Some(Kind::PrincipalId(p)) => Ok(SubjectRef::Principal(id(
            &format!("{field}.principal_id"),
            p,
        )?)),
        Some(Kind::TeamId(t)) => Ok(SubjectRef::Team(id(&format!("{field}.team_id"), t)?)),
        None => Err(Error::invalid(
            field,
            "must name a `principal_id` or a `team_id`",
        )),
    }
}

/// A display name.
pub fn display_name(field: &str, v: String) -> Result<String> {
    model::validate_display_name(field, &v)?;
    Ok(v)
}

/// A list of resource type names.
pub fn type_list(field: &str, v: Vec<String>) -> Result<Vec<String>> {
    if v.len() > 64 {
        return Err(Error::invalid(field, "at most 64 types"));
    }
    for t in &v {
        model::validate_resource_type(field, t)?;
    }
    Ok(v)
}

/// A principal kind; unspecified means user.
pub fn principal_kind(field: &str, v: i32) -> Result<PrincipalKind> {
    match pb::PrincipalKind::try_from(v) {
        Ok(pb::PrincipalKind::Unspecified | pb::PrincipalKind::User) => Ok(PrincipalKind::User),
        Ok(pb::PrincipalKind::ServiceAccount) => Ok(PrincipalKind::ServiceAccount),
        Err(_) => Err(Error::invalid(field, format!("unknown value {v}"))),
    }
}

/// A principal status; `None` when unspecified.
pub fn principal_status(field: &str, v: i32) -> Result<Option<PrincipalStatus>> {
    match pb::PrincipalStatus::try_from(v) {
        Ok(pb::PrincipalStatus::Unspecified) => Ok(None),
        Ok(pb::PrincipalStatus::Invited) => Ok(Some(PrincipalStatus::Invited)),
        Ok(pb::PrincipalStatus::Active) => Ok(Some(PrincipalStatus::Active)),
        Ok(pb::PrincipalStatus::Suspended) => Ok(Some(PrincipalStatus::Suspended)),
        Ok(pb::PrincipalStatus::Removed) => Ok(Some(PrincipalStatus::Removed)),
        Err(_) => Err(Error::invalid(field, format!("unknown value {v}"))),
    }
}

/// An effect; unspecified means allow.
pub fn effect(field: &str, v: i32) -> Result<Effect> {
    match pb::Effect::try_from(v) {
        Ok(pb::Effect::Unspecified | pb::Effect::Allow) => Ok(Effect::Allow),
        Ok(pb::Effect::Deny) => Ok(Effect::Deny),
        Err(_) => Err(Error::invalid(field, format!("unknown value {v}"))),
    }
}

/// A timestamp as milliseconds.
pub fn time(field: &str, t: Option<prost_types::Timestamp>) -> Result<Option<Millis>> {
    let Some(t) = t else { return Ok(None) };
    if !(0..1_000_000_000).contains(&t.nanos) || !(0..=253_402_300_799).contains(&t.seconds) {
        return Err(Error::invalid(
            field,
            "must be a valid time between 1970 and 9999",
        ));
    }
    Ok(Some(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000))
}

/// A time as a protobuf timestamp.
pub fn timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A role definition from the request, validated.
pub fn role(field: &str, r: Option<pb::Role>) -> Result<Role> {
    let role = role_fields(field, r)?;
    role.validate()?;
    Ok(role)
}

/// A role's fields from the request, patterns parsed but the whole not yet
/// validated (an update mask merges them with the stored role first).
fn role_fields(field: &str, r: Option<pb::Role>) -> Result<Role> {
    let r = r.ok_or_else(|| Error::invalid(field, "must be set"))?;
    let perms = |f: &str, v: &[String]| -> Result<Vec<Permission>> {
        v.iter()
            .map(|p| Permission::parse(&format!("{field}.{f}"), p))
            .collect()
    };
    Ok(Role {
        permissions: perms("permissions", &r.permissions)?,
        excluded_permissions: perms("excluded_permissions", &r.excluded_permissions)?,
        id: r.id,
        display_name: r.display_name,
        inherits: r.inherits,
        effective_at: r.effective_at,
        locked: false,
        condition: condition::optional(&format!("{field}.condition"), &r.condition)?,
    })
}

/// The paths of an update mask, each one of `allowed`; `None` when the mask
/// is absent or empty (change everything).
fn update_mask(
    mask: Option<prost_types::FieldMask>,
    allowed: &[&str],
) -> Result<Option<Vec<String>>> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Ok(None);
    }
    for p in &paths {
        if !allowed.contains(&p.as_str()) {
            let shown: String = p.chars().take(64).collect();
            return Err(Error::invalid(
                "update_mask",
                format!(
                    "unknown field `{shown}`; expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(Some(paths))
}

impl From<ResourceRef> for pb::ResourceRef {
    fn from(r: ResourceRef) -> Self {
        pb::ResourceRef {
            r#type: r.rtype,
            id: r.id,
        }
    }
}

impl From<SubjectRef> for pb::SubjectRef {
    fn from(s: SubjectRef) -> Self {
        use pb::subject_ref::Kind;
        pb::SubjectRef {
            kind: Some(match s {
                SubjectRef::Principal(p) => Kind::PrincipalId(p),
                SubjectRef::Team(t) => Kind::TeamId(t),
            }),
        }
    }
}

fn scope_ref(s: Scope) -> Option<pb::ResourceRef> {
    match s {
        Scope::Tenant => None,
        Scope::Resource(r) => Some(r.into()),
    }
}

impl From<Reason> for pb::Reason {
    fn from(r: Reason) -> Self {
        match r {
            Reason::Granted => pb::Reason::Granted,
            Reason::SuperUser => pb::Reason::SuperUser,
            Reason::UnknownTenant => pb::Reason::UnknownTenant,
            Reason::UnknownPrincipal => pb::Reason::UnknownPrincipal,
            Reason::PrincipalInvited => pb::Reason::PrincipalInvited,
            Reason::PrincipalInvitationExpired => pb::Reason::PrincipalInvitationExpired,
            Reason::PrincipalSuspended => pb::Reason::PrincipalSuspended,
            Reason::PrincipalRemoved => pb::Reason::PrincipalRemoved,
            Reason::UnknownResource => pb::Reason::UnknownResource,
            Reason::UnknownPermission => pb::Reason::UnknownPermission,
            Reason::NoGrant => pb::Reason::NoGrant,
            Reason::RoleNotEffective => pb::Reason::RoleNotEffective,
            Reason::PrivateBoundary => pb::Reason::PrivateBoundary,
            Reason::RestrictedBoundary => pb::Reason::RestrictedBoundary,
            Reason::GrantExpired => pb::Reason::GrantExpired,
            Reason::ConditionFailed => pb::Reason::ConditionFailed,
            Reason::ConditionContextMissing => pb::Reason::ConditionContextMissing,
            Reason::ExplicitDeny => pb::Reason::ExplicitDeny,
            Reason::LinkDenied => pb::Reason::LinkDenied,
        }
    }
}

impl From<Explanation> for pb::Explanation {
    fn from(e: Explanation) -> Self {
        pb::Explanation {
            grant_id: e.grant_id,
            role_id: e.role_id,
            permission: e.permission,
            scope: e.scope.and_then(scope_ref),
            via_teams: e.via_teams,
            detail: e.detail,
            condition: e.condition,
            missing_context: e.missing_context,
            linked_action: e.linked.as_ref().map(|l| l.1.clone()).unwrap_or_default(),
            linked_resource: e.linked.map(|l| l.0.into()),
        }
    }
}

/// The parts of a decision a response carries.
/// A denial for missing context always names the fields (only them without
/// `explain`), so that a caller can retry with them.
pub fn decision(d: Decision, explain: bool) -> (bool, i32, Option<pb::Explanation>) {
    let reason = pb::Reason::from(d.reason) as i32;
    let explanation = if explain {
        Some(d.explanation.into())
    } else if d.reason == Reason::ConditionContextMissing {
        Some(pb::Explanation {
            missing_context: d.explanation.missing_context,
            ..Default::default()
        })
    } else {
        None
    };
    (d.allowed, reason, explanation)
}

impl From<Tenant> for pb::Tenant {
    fn from(t: Tenant) -> Self {
        pb::Tenant {
            id: t.id,
            display_name: t.display_name,
            single_owner_types: t.single_owner_types,
            creator_owner_types: t.creator_owner_types,
            audit_retention_days: t.audit_retention_days,
            create_time: Some(timestamp(t.created_at)),
            actions: t.actions,
            implied_actions: t
                .implied_actions
                .into_iter()
                .map(|i| pb::ImpliedAction {
                    action: i.action,
                    implies: i.implies,
                })
                .collect(),
        }
    }
}

impl From<Resource> for pb::Resource {
    fn from(r: Resource) -> Self {
        pb::Resource {
            r#ref: Some(r.resource.into()),
            parent: r.parent.map(Into::into),
            private: r.private,
            create_time: Some(timestamp(r.created_at)),
            attributes: r.attributes.into_iter().collect(),
            restricted: r.restricted,
            links: r.links.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<model::Link> for pb::ResourceLink {
    fn from(l: model::Link) -> Self {
        pb::ResourceLink {
            resource: Some(l.resource.into()),
            action: l.action,
            on: l.on,
        }
    }
}

/// A resource's links, validated (see [`model::validate_links`]).
pub fn links(field: &str, v: Vec<pb::ResourceLink>) -> Result<Vec<model::Link>> {
    if v.len() > model::MAX_LINKS {
        return Err(Error::invalid(
            field,
            format!("at most {} links", model::MAX_LINKS),
        ));
    }
    let mut out = Vec::with_capacity(v.len());
    for (i, l) in v.into_iter().enumerate() {
        let at = format!("{field}[{i}]");
        out.push(model::Link {
            resource: resource(&format!("{at}.resource"), l.resource)?,
            action: name(&format!("{at}.action"), l.action)?,
            on: l.on,
        });
    }
    model::validate_links(field, &mut out)?;
    Ok(out)
}

impl From<Principal> for pb::Principal {
    fn from(p: Principal) -> Self {
        let kind = match p.kind {
            PrincipalKind::User => pb::PrincipalKind::User,
            PrincipalKind::ServiceAccount => pb::PrincipalKind::ServiceAccount,
        };
        let status = match p.status {
            PrincipalStatus::Invited => pb::PrincipalStatus::Invited,
            PrincipalStatus::Active => pb::PrincipalStatus::Active,
            PrincipalStatus::Suspended => pb::PrincipalStatus::Suspended,
            PrincipalStatus::Removed => pb::PrincipalStatus::Removed,
        };
        pb::Principal {
            id: p.id,
            kind: kind as i32,
            status: status as i32,
            display_name: p.display_name,
            create_time: Some(timestamp(p.created_at)),
            invitation_expire_time: p.invitation_expires_at.map(timestamp),
        }
    }
}

impl From<Team> for pb::Team {
    fn from(t: Team) -> Self {
        pb::Team {
            id: t.id,
            display_name: t.display_name,
        }
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        pb::Role {
            id: r.id,
            display_name: r.display_name,
            permissions: r.permissions.iter().map(ToString::to_string).collect(),
            excluded_permissions: r
                .excluded_permissions
                .iter()
                .map(ToString::to_string)
                .collect(),
            inherits: r.inherits,
            effective_at: r.effective_at,
            locked: r.locked,
            condition: r
                .condition
                .map(|c| c.source().to_owned())
                .unwrap_or_default(),
        }
    }
}

impl From<Grant> for pb::Grant {
    fn from(g: Grant) -> Self {
        let effect = match g.effect {
            Effect::Allow => pb::Effect::Allow,
            Effect::Deny => pb::Effect::Deny,
        };
        pb::Grant {
            last_use_time: Default::default(),
            id: g.id,
            subject: Some(g.subject.into()),
            role_id: g.role_id,
            scope: scope_ref(g.scope),
            effect: effect as i32,
            expire_time: g.expires_at.map(timestamp),
            create_time: Some(timestamp(g.created_at)),
            condition: g
                .condition
                .map(|c| c.source().to_owned())
                .unwrap_or_default(),
        }
    }
}

impl From<AuditEvent> for pb::AuditEvent {
    fn from(a: AuditEvent) -> Self {
        pb::AuditEvent {
            // Per tenant: a global sequence would tell one tenant how much
            // the others write.
            id: a.revision as u64,
            revision: a.revision.to_string(),
            time: Some(timestamp(a.at)),
            caller: a.caller,
            actor: a.actor,
            action: a.action,
            target: a.target,
            before_json: a.before_json,
            after_json: a.after_json,
        }
    }
}

// ---- admin commands from requests -----------------------------------------
// The write context (tenant, actor, request id) has already been taken out of
// the request by `grpc::admin`; these convert the rest.

use crate::admin::{grants, links, members, resources, roles, tenants};

fn retention(days: u32) -> Result<u32> {
    match days {
        0 => Ok(90),
        1..=3650 => Ok(days),
        _ => Err(Error::invalid(
            "audit_retention_days",
            "must be at most 3650",
        )),
    }
}

fn default_types(v: Vec<String>, default: &[&str]) -> Vec<String> {
    if v.is_empty() {
        default.iter().map(|s| (*s).to_owned()).collect()
    } else {
        v
    }
}

fn opt_id(field: &str, v: String) -> Result<Option<String>> {
    if v.is_empty() {
        Ok(None)
    } else {
        id(field, v).map(Some)
    }
}

/// A tenant's implied actions, validated.
pub fn implied_actions(
    field: &str,
    v: Vec<pb::ImpliedAction>,
) -> Result<Vec<model::ImpliedAction>> {
    let list: Vec<model::ImpliedAction> = v
        .into_iter()
        .map(|i| model::ImpliedAction {
            action: i.action,
            implies: i.implies,
        })
        .collect();
    model::validate_implied_actions(field, &list)
}

/// A `CreateTenant` for the tenant `tenant_id`.
pub fn create_tenant(tenant_id: &str, r: pb::CreateTenantRequest) -> Result<tenants::CreateTenant> {
    let now = model::now_millis();
    let tenant = Tenant {
        id: tenant_id.to_owned(),
        display_name: display_name("display_name", r.display_name)?,
        single_owner_types: default_types(
            type_list("single_owner_types", r.single_owner_types)?,
            &["project"],
        ),
        creator_owner_types: default_types(
            type_list("creator_owner_types", r.creator_owner_types)?,
            &["project", "workflow", "draft"],
        ),
        audit_retention_days: retention(r.audit_retention_days)?,
        created_at: now,
        actions: Vec::new(),
        implied_actions: Vec::new(),
    };
    let first_admin = match r.first_admin {
        None => None,
        Some(a) => Some(Principal {
            id: principal_id("first_admin.principal_id", a.principal_id)?,
            kind: principal_kind("first_admin.kind", a.kind)?,
            status: PrincipalStatus::Active,
            display_name: display_name("first_admin.display_name", a.display_name)?,
            invitation_expires_at: None,
            created_at: now,
        }),
    };
    Ok(tenants::CreateTenant {
        tenant,
        first_admin,
    })
}

impl TryFrom<pb::UpdateTenantRequest> for tenants::UpdateTenant {
    type Error = Error;
    fn try_from(r: pb::UpdateTenantRequest) -> Result<Self> {
        let mask = update_mask(
            r.update_mask,
            &[
                "display_name",
                "single_owner_types",
                "creator_owner_types",
                "audit_retention_days",
                "actions",
                "implied_actions",
            ],
        )?;
        let named = |f: &str| mask.as_ref().is_some_and(|m| m.iter().any(|p| p == f));
        let set = |f: &str| mask.is_none() || named(f);
        Ok(Self {
            display_name: set("display_name")
                .then(|| display_name("display_name", r.display_name))
                .transpose()?,
            single_owner_types: set("single_owner_types")
                .then(|| type_list("single_owner_types", r.single_owner_types))
                .transpose()?,
            creator_owner_types: set("creator_owner_types")
                .then(|| type_list("creator_owner_types", r.creator_owner_types))
                .transpose()?,
            audit_retention_days: set("audit_retention_days")
                .then(|| retention(r.audit_retention_days))
                .transpose()?,
            actions: named("actions")
                .then(|| action_list("actions", r.actions))
                .transpose()?,
            implied_actions: named("implied_actions")
                .then(|| implied_actions("implied_actions", r.implied_actions))
                .transpose()?,
        })
    }
}

impl TryFrom<pb::CreateResourceRequest> for resources::CreateResource {
    type Error = Error;
    fn try_from(r: pb::CreateResourceRequest) -> Result<Self> {
        Ok(Self {
            owner: opt_id("owner_id", r.owner_id)?,
            resource: resource("resource", r.resource)?,
            parent: opt_resource("parent", r.parent)?,
            private: r.private,
            restricted: r.restricted,
            attributes: attributes("attributes", r.attributes)?,
            links: links("links", r.links)?,
        })
    }
}

impl TryFrom<pb::SetResourceLinksRequest> for links::SetResourceLinks {
    type Error = Error;
    fn try_from(r: pb::SetResourceLinksRequest) -> Result<Self> {
        Ok(Self {
            resource: resource("resource", r.resource)?,
            links: links("links", r.links)?,
        })
    }
}

impl TryFrom<pb::SetResourceRestrictedRequest> for resources::SetResourceRestricted {
    type Error = Error;
    fn try_from(r: pb::SetResourceRestrictedRequest) -> Result<Self> {
        Ok(Self {
            resource: resource("resource", r.resource)?,
            restricted: r.restricted,
        })
    }
}

impl TryFrom<pb::SetResourceAttributesRequest> for resources::SetResourceAttributes {
    type Error = Error;
    fn try_from(r: pb::SetResourceAttributesRequest) -> Result<Self> {
        Ok(Self {
            resource: resource("resource", r.resource)?,
            attributes: attributes("attributes", r.attributes)?,
        })
    }
}

/// A resource's attributes, validated.
pub fn attributes(
    field: &str,
    a: std::collections::HashMap<String, String>,
) -> Result<model::Attributes> {
    let a: model::Attributes = a.into_iter().collect();
    condition::validate_attributes(field, &a)?;
    Ok(a)
}

impl TryFrom<pb::MoveResourceRequest> for resources::MoveResource {
    type Error = Error;
    fn try_from(r: pb::MoveResourceRequest) -> Result<Self> {
        Ok(Self {
            resource: resource("resource", r.resource)?,
            new_parent: opt_resource("new_parent", r.new_parent)?,
        })
    }
}

impl TryFrom<pb::SetResourcePrivateRequest> for resources::SetResourcePrivate {
    type Error = Error;
    fn try_from(r: pb::SetResourcePrivateRequest) -> Result<Self> {
        Ok(Self {
            resource: resource("resource", r.resource)?,
            private: r.private,
        })
    }
}

impl TryFrom<pb::DeleteResourceRequest> for resources::DeleteResource {
    type Error = Error;
    fn try_from(r: pb::DeleteResourceRequest) -> Result<Self> {
        Ok(Self {
            resource: resource("resource", r.resource)?,
        })
    }
}

impl TryFrom<pb::TransferOwnershipRequest> for resources::TransferOwnership {
    type Error = Error;
    fn try_from(r: pb::TransferOwnershipRequest) -> Result<Self> {
        let previous_owner_role = if r.previous_owner_role_id.is_empty() {
            None
        } else {
            Some(name("previous_owner_role_id", r.previous_owner_role_id)?)
        };
        Ok(Self {
            resource: resource("resource", r.resource)?,
            new_owner: id("new_owner_id", r.new_owner_id)?,
            previous_owner_role,
        })
    }
}

impl TryFrom<pb::CreatePrincipalRequest> for members::CreatePrincipal {
    type Error = Error;
    fn try_from(r: pb::CreatePrincipalRequest) -> Result<Self> {
        let status = match principal_status("status", r.status)? {
            None | Some(PrincipalStatus::Invited) => PrincipalStatus::Invited,
            Some(PrincipalStatus::Active) => PrincipalStatus::Active,
            Some(_) => {
                return Err(Error::invalid(
                    "status",
                    "a new principal is invited or active",
                ))
            }
        };
        Ok(Self {
            principal: Principal {
                id: principal_id("principal_id", r.principal_id)?,
                kind: principal_kind("kind", r.kind)?,
                status,
                display_name: display_name("display_name", r.display_name)?,
                invitation_expires_at: time("invitation_expire_time", r.invitation_expire_time)?,
                created_at: model::now_millis(),
            },
        })
    }
}

impl TryFrom<pb::SetPrincipalStatusRequest> for members::SetPrincipalStatus {
    type Error = Error;
    fn try_from(r: pb::SetPrincipalStatusRequest) -> Result<Self> {
        let status = principal_status("status", r.status)?
            .ok_or_else(|| Error::invalid("status", "must be set"))?;
        Ok(Self {
            principal_id: id("principal_id", r.principal_id)?,
            status,
            invitation_expires_at: time("invitation_expire_time", r.invitation_expire_time)?,
        })
    }
}

impl TryFrom<pb::AcceptInvitationRequest> for members::AcceptInvitation {
    type Error = Error;
    fn try_from(r: pb::AcceptInvitationRequest) -> Result<Self> {
        Ok(Self {
            principal_id: id("principal_id", r.principal_id)?,
        })
    }
}

impl TryFrom<pb::CreateTeamRequest> for members::CreateTeam {
    type Error = Error;
    fn try_from(r: pb::CreateTeamRequest) -> Result<Self> {
        Ok(Self {
            team: Team {
                id: id("team_id", r.team_id)?,
                display_name: display_name("display_name", r.display_name)?,
            },
        })
    }
}

impl TryFrom<pb::DeleteTeamRequest> for members::DeleteTeam {
    type Error = Error;
    fn try_from(r: pb::DeleteTeamRequest) -> Result<Self> {
        Ok(Self {
            team_id: id("team_id", r.team_id)?,
        })
    }
}

impl TryFrom<pb::AddTeamMemberRequest> for members::AddTeamMember {
    type Error = Error;
    fn try_from(r: pb::AddTeamMemberRequest) -> Result<Self> {
        Ok(Self {
            team_id: id("team_id", r.team_id)?,
            member: subject("member", r.member)?,
        })
    }
}

impl TryFrom<pb::RemoveTeamMemberRequest> for members::RemoveTeamMember {
    type Error = Error;
    fn try_from(r: pb::RemoveTeamMemberRequest) -> Result<Self> {
        Ok(Self {
            team_id: id("team_id", r.team_id)?,
            member: subject("member", r.member)?,
        })
    }
}

impl TryFrom<pb::CreateRoleRequest> for roles::CreateRole {
    type Error = Error;
    fn try_from(r: pb::CreateRoleRequest) -> Result<Self> {
        Ok(Self {
            role: role("role", r.role)?,
        })
    }
}

impl TryFrom<pb::UpdateRoleRequest> for roles::UpdateRole {
    type Error = Error;
    fn try_from(r: pb::UpdateRoleRequest) -> Result<Self> {
        let only = update_mask(
            r.update_mask,
            &[
                "display_name",
                "permissions",
                "excluded_permissions",
                "inherits",
                "effective_at",
                "condition",
            ],
        )?;
        let role = match only {
            None => role("role", r.role)?,
            Some(_) => {
                let role = role_fields("role", r.role)?;
                model::validate_name("role.id", &role.id)?;
                role
            }
        };
        Ok(Self { role, only })
    }
}

impl TryFrom<pb::DeleteRoleRequest> for roles::DeleteRole {
    type Error = Error;
    fn try_from(r: pb::DeleteRoleRequest) -> Result<Self> {
        Ok(Self {
            role_id: name("role_id", r.role_id)?,
            cascade: r.cascade,
        })
    }
}

impl TryFrom<pb::CreateGrantRequest> for grants::CreateGrant {
    type Error = Error;
    fn try_from(r: pb::CreateGrantRequest) -> Result<Self> {
        Ok(Self {
            subject: subject("subject", r.subject)?,
            role_id: name("role_id", r.role_id)?,
            scope: scope("scope", r.scope)?,
            effect: effect("effect", r.effect)?,
            expires_at: time("expire_time", r.expire_time)?,
            condition: condition::optional("condition", &r.condition)?,
        })
    }
}

impl TryFrom<pb::DeleteGrantRequest> for grants::DeleteGrant {
    type Error = Error;
    fn try_from(r: pb::DeleteGrantRequest) -> Result<Self> {
        Ok(Self {
            grant_id: id("grant_id", r.grant_id)?,
        })
    }
}

impl From<crate::admin::reads::AccessEntry> for pb::AccessEntry {
    fn from(e: crate::admin::reads::AccessEntry) -> Self {
        Self {
            grant: Some(e.grant.into()),
            via_teams: e.via_teams,
            effective: e.effective,
        }
    }
}

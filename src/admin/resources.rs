//! Resources: create (with creator ownership), move, privacy, delete, and
//! ownership transfer of single-owner types.

use super::authz::{authorize, authorize_or_tenant_wide, authorize_subtree};
use super::delegation::Delegator;
use super::invariants::{
    check_depth, is_single_owner, no_resource_cycle, owner_must_be_active, owners, tenant_settings,
};
use super::tenants::new_grant;
use super::{json, Change, Command};
use crate::error::{Error, Result};
use crate::model::{
    Actor, Attributes, Effect, Grant, Resource, ResourceNode, ResourceRef, RoleMatch, Scope,
    SubjectRef, TENANT_TYPE,
};
use crate::store::{Invalidation, WriteContext, WriteTx};

/// A resource's ancestry, or NOT_FOUND.
pub(crate) async fn existing<T: WriteTx>(tx: &mut T, r: &ResourceRef) -> Result<Vec<ResourceNode>> {
    tx.ancestry(r)
        .await?
        .ok_or_else(|| Error::not_found(format!("resource `{r}`")))
}

/// An optional parent's ancestry; empty (the tenant) when unset.
async fn existing_parent<T: WriteTx>(
    tx: &mut T,
    parent: Option<&ResourceRef>,
) -> Result<Vec<ResourceNode>> {
    match parent {
        Some(p) => existing(tx, p).await,
        None => Ok(Vec::new()),
    }
}

/// A resource as stored, or NOT_FOUND.
pub(crate) async fn stored<T: WriteTx>(tx: &mut T, r: &ResourceRef) -> Result<Resource> {
    tx.resource(r)
        .await?
        .ok_or_else(|| Error::not_found(format!("resource `{r}`")))
}

/// Register a resource.
#[derive(Debug, Clone)]
pub struct CreateResource {
    /// The resource.
    pub resource: ResourceRef,
    /// Its parent.
    pub parent: Option<ResourceRef>,
    /// Private from the start.
    pub private: bool,
    /// Explicit owner.
    pub owner: Option<String>,
    /// Restricted from the start.
    pub restricted: bool,
    /// Attributes conditions read.
    pub attributes: Attributes,
    /// The resources it acts on.
    pub links: Vec<crate::model::Link>,
}

impl Command for CreateResource {
    type Output = Resource;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Resource>> {
        let Self {
            resource,
            parent,
            private,
            owner,
            restricted,
            attributes,
            links,
        } = self;
        let parent_path = existing_parent(tx, parent.as_ref()).await?;
        authorize(tx, ctx, &resource.rtype, "create", &parent_path).await?;
        if !attributes.is_empty() && ctx.actor != Actor::SuperUser {
            // Attributes can make a condition hold (`resource.user ==
            // subject.id`) and so give access the creator may not hold:
            // they are the platform's, as on SetResourceAttributes.
            return Err(Error::PermissionDenied(
                "only a super user sets a resource's attributes (conditions read them)".to_owned(),
            ));
        }
        check_depth("parent", parent_path.len() + 1)?;
        if tx.resource(&resource).await?.is_some() {
            return Err(Error::AlreadyExists {
                what: format!("resource `{resource}`"),
            });
        }
        // A link to a deleted resource still denies; a new resource taking
        // its name would make it pass for whoever creates it.
        if let Some(by) = tx.resources_linking_to(&resource).await?.first() {
            return Err(Error::precondition(
                "linked_name",
                format!(
                    "`{by}` still links to `{resource}`, which was deleted: lift that link before a resource takes the name"
                ),
            ));
        }
        let settings = tenant_settings(tx).await?;
        let single = is_single_owner(&settings, &resource.rtype);
        let creator_owned = single
            || settings
                .creator_owner_types
                .iter()
                .any(|x| x == &resource.rtype);
        let owner = match (owner, &ctx.actor) {
            (Some(o), _) => Some(o),
            (None, Actor::Principal(p)) if creator_owned => Some(p.clone()),
            _ => None,
        };
        if single && owner.is_none() {
            return Err(Error::invalid(
                "owner_id",
                format!(
                    "`{}` has a single owner: name it when acting as super user",
                    resource.rtype
                ),
            ));
        }
        let created = Resource {
            resource: resource.clone(),
            parent: parent.clone(),
            private,
            restricted,
            attributes,
            links,
            created_at: tx.now(),
        };
        if !created.links.is_empty() {
            let mut path = vec![created.node()];
            path.extend(parent_path.iter().cloned());
            super::links::check_links(tx, ctx, &path, &[], &created.links).await?;
        }
        tx.insert_resource(&created).await?;
        let mut after =
            serde_json::json!({ "resource": &resource, "parent": &parent, "private": private });
        if restricted {
            after["restricted"] = serde_json::Value::Bool(true);
        }
        if !created.attributes.is_empty() {
            after["attributes"] = serde_json::to_value(&created.attributes).unwrap_or_default();
        }
        if !created.links.is_empty() {
            after["links"] = serde_json::to_value(&created.links).unwrap_or_default();
        }
        let mut inv = Invalidation {
            resources: vec![resource.clone()],
            ..Invalidation::default()
        };
        if let Some(o) = owner {
            let p = tx
                .principal(&o)
                .await?
                .ok_or_else(|| Error::not_found(format!("principal `{o}`")))?;
            owner_must_be_active(&p)?;
            inv.principals.push(o.clone());
            let g = new_grant(
                SubjectRef::Principal(o),
                "owner",
                Scope::Resource(resource.clone()),
                Effect::Allow,
                None,
                tx.now(),
            );
            tx.insert_grant(&g).await?;
            after["owner_grant"] = serde_json::to_value(&g).unwrap_or_default();
        }
        Ok(Change {
            output: created,
            action: "resource.create",
            target: format!("resource:{resource}"),
            before: String::new(),
            after: after.to_string(),
            invalidation: inv,
        })
    }
}

/// The grants that reach a resource from above through `ancestors` (its
/// ancestry above it, nearest first): those on each ancestor up to and
/// including the nearest private one, and the tenant's when none is private.
async fn reaching_from_above<T: WriteTx>(
    tx: &mut T,
    ancestors: &[ResourceNode],
) -> Result<Vec<Grant>> {
    let mut out = Vec::new();
    for n in ancestors {
        out.extend(tx.grants_on(&Scope::Resource(n.resource.clone())).await?);
        if n.private {
            return Ok(out);
        }
    }
    out.extend(tx.grants_on(&Scope::Tenant).await?);
    Ok(out)
}

/// The deny grants on `ancestors` (each applies to everything below it,
/// private or not).
async fn denies_above<T: WriteTx>(tx: &mut T, ancestors: &[ResourceNode]) -> Result<Vec<Grant>> {
    let mut out = Vec::new();
    for n in ancestors {
        let on = tx.grants_on(&Scope::Resource(n.resource.clone())).await?;
        out.extend(on.into_iter().filter(|g| g.effect == Effect::Deny));
    }
    Ok(out)
}

/// Re-parent a resource and its subtree.
#[derive(Debug, Clone)]
pub struct MoveResource {
    /// The resource.
    pub resource: ResourceRef,
    /// New parent (the top of the tenant when `None`).
    pub new_parent: Option<ResourceRef>,
}

impl Command for MoveResource {
    type Output = Resource;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Resource>> {
        let Self {
            resource,
            new_parent,
        } = self;
        let path = existing(tx, &resource).await?;
        authorize(tx, ctx, &resource.rtype, "manage", &path).await?;
        let np_path = existing_parent(tx, new_parent.as_ref()).await?;
        authorize(tx, ctx, &resource.rtype, "create", &np_path).await?;
        no_resource_cycle(&resource, &np_path)?;
        let height = tx.subtree_height(&resource).await?;
        check_depth("new_parent", np_path.len() + height)?;
        let before = stored(tx, &resource).await?;
        let d = Delegator::load(tx, ctx).await?;
        if !before.private {
            // Whatever the new ancestors' grants give comes into the
            // subtree: the actor must hold it there (delegation rule).
            let old: Vec<Grant> = reaching_from_above(tx, &path[1..]).await?;
            let incoming: Vec<Grant> = reaching_from_above(tx, &np_path)
                .await?
                .into_iter()
                .filter(|g| !old.iter().any(|o| o.id == g.id))
                .collect();
            d.could_bring_in(tx, &incoming, &resource, false, &|| {
                format!("move `{resource}` under grants it does not hold")
            })
            .await?;
        }
        // Denies of the old ancestors stop applying to the subtree (private
        // boundaries do not stop a deny): moving out from under one lifts
        // it there, which needs what lifting it needs.
        let new_denies = denies_above(tx, &np_path).await?;
        for g in denies_above(tx, &path[1..]).await? {
            if !new_denies.iter().any(|n| n.id == g.id) {
                d.could_lift(tx, &g).await?;
            }
        }
        tx.move_subtree(&resource, new_parent.as_ref()).await?;
        let after = Resource {
            parent: new_parent,
            ..before.clone()
        };
        Ok(subtree_change("resource.move", resource, before, after))
    }
}

/// The record of a write that changed `resource`, its subtree made stale
/// (every cached ancestry below carries the resource's node).
pub(crate) fn subtree_change(
    action: &'static str,
    resource: ResourceRef,
    before: Resource,
    after: Resource,
) -> Change<Resource> {
    Change {
        action,
        target: format!("resource:{resource}"),
        before: json(&before),
        after: json(&after),
        output: after,
        invalidation: Invalidation {
            subtrees: vec![resource],
            ..Invalidation::default()
        },
    }
}

/// Change a resource's privacy.
#[derive(Debug, Clone)]
pub struct SetResourcePrivate {
    /// The resource.
    pub resource: ResourceRef,
    /// New privacy.
    pub private: bool,
}

impl Command for SetResourcePrivate {
    type Output = Resource;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Resource>> {
        set_boundary(tx, ctx, self.resource, Boundary::Private, self.private).await
    }
}

/// Restrict a resource (only tenant-wide owner and admin grants reach in
/// from above) or lift its restriction.
#[derive(Debug, Clone)]
pub struct SetResourceRestricted {
    /// The resource.
    pub resource: ResourceRef,
    /// New restriction.
    pub restricted: bool,
}

impl Command for SetResourceRestricted {
    type Output = Resource;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Resource>> {
        set_boundary(
            tx,
            ctx,
            self.resource,
            Boundary::Restricted,
            self.restricted,
        )
        .await
    }
}

/// What keeps grants from above out of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// Nothing from above reaches in.
    Private,
    /// Only tenant-wide owner and admin grants reach in.
    Restricted,
}

/// Sets or lifts a boundary on a resource. Needs `share` there; tenant-wide
/// owners and admins can always undo a boundary set below them. Lifting it
/// lets the grants above into the subtree: the actor must hold what they
/// give there (or, recovering, tenant-wide), those that reach in already
/// aside — for privacy, the tenant-wide grants that let their holders undo
/// it themselves (owners, admins: `share` on the tenant), which bring in
/// nothing they could not have taken back anyway.
async fn set_boundary<T: WriteTx>(
    tx: &mut T,
    ctx: &WriteContext,
    resource: ResourceRef,
    kind: Boundary,
    on: bool,
) -> Result<Change<Resource>> {
    let path = existing(tx, &resource).await?;
    authorize_or_tenant_wide(tx, ctx, &resource.rtype, "share", &path).await?;
    let before = stored(tx, &resource).await?;
    let lifting = match kind {
        Boundary::Private => before.private && !on,
        // Under privacy, lifting a restriction brings nothing in.
        Boundary::Restricted => before.restricted && !on && !before.private,
    };
    if lifting {
        let d = Delegator::load(tx, ctx).await?;
        let mut incoming = reaching_from_above(tx, &path[1..]).await?;
        incoming.retain(|g| {
            let tenant_wide = g.scope == Scope::Tenant;
            match kind {
                Boundary::Private => {
                    !tenant_wide
                        || !matches!(
                            d.roles()
                                .role_match(&g.role_id, TENANT_TYPE, &resource.rtype, "share"),
                            RoleMatch::Matched(_)
                        )
                }
                Boundary::Restricted => {
                    !(tenant_wide && crate::model::REACH_RESTRICTED.contains(&g.role_id.as_str()))
                }
            }
        });
        d.could_bring_in(tx, &incoming, &resource, true, &|| match kind {
            Boundary::Private => format!("make `{resource}` public"),
            Boundary::Restricted => format!("lift the restriction of `{resource}`"),
        })
        .await?;
    }
    let mut after = before.clone();
    let action = match kind {
        Boundary::Private => {
            tx.set_private(&resource, on).await?;
            after.private = on;
            "resource.set_private"
        }
        Boundary::Restricted => {
            tx.set_restricted(&resource, on).await?;
            after.restricted = on;
            "resource.set_restricted"
        }
    };
    Ok(subtree_change(action, resource, before, after))
}

/// Replace a resource's attributes. Attributes are facts the platform
/// states (whose alert settings a resource holds, which board a workflow
/// acts on): conditions read them, so a member who could change them could
/// re-point a condition such as `resource.user == subject.id` at themselves.
/// Only a super user changes them.
#[derive(Debug, Clone)]
pub struct SetResourceAttributes {
    /// The resource.
    pub resource: ResourceRef,
    /// The new attributes.
    pub attributes: Attributes,
}

impl Command for SetResourceAttributes {
    type Output = Resource;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Resource>> {
        let Self {
            resource,
            attributes,
        } = self;
        if ctx.actor != Actor::SuperUser {
            return Err(Error::PermissionDenied(
                "only a super user changes a resource's attributes (conditions read them)"
                    .to_owned(),
            ));
        }
        let before = stored(tx, &resource).await?;
        tx.set_attributes(&resource, &attributes).await?;
        let after = Resource {
            attributes,
            ..before.clone()
        };
        Ok(subtree_change(
            "resource.set_attributes",
            resource,
            before,
            after,
        ))
    }
}

/// Delete a resource with its subtree and the grants on them.
#[derive(Debug, Clone)]
pub struct DeleteResource {
    /// The resource.
    pub resource: ResourceRef,
}

impl Command for DeleteResource {
    /// Resources deleted.
    type Output = u64;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<u64>> {
        let resource = self.resource;
        let path = existing(tx, &resource).await?;
        authorize(tx, ctx, &resource.rtype, "delete", &path).await?;
        authorize_subtree(tx, ctx, "delete", &path).await?;
        let before = stored(tx, &resource).await?;
        let mut inv = Invalidation {
            subtrees: vec![resource.clone()],
            ..Invalidation::default()
        };
        for g in tx.grants_in_subtree(&resource).await? {
            inv.principals.extend(principals_of(tx, &g.subject).await?);
        }
        inv.principals.sort();
        inv.principals.dedup();
        let deleted = tx.delete_subtree(&resource).await?;
        Ok(Change {
            output: deleted,
            action: "resource.delete",
            target: format!("resource:{resource}"),
            before: json(&before),
            after: serde_json::json!({ "deleted_resources": deleted }).to_string(),
            invalidation: inv,
        })
    }
}

/// Hand the owner role of a resource to another principal.
#[derive(Debug, Clone)]
pub struct TransferOwnership {
    /// The resource.
    pub resource: ResourceRef,
    /// New owner.
    pub new_owner: String,
    /// Role left to the previous owners.
    pub previous_owner_role: Option<String>,
}

impl Command for TransferOwnership {
    /// The new owner grant.
    type Output = Grant;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Grant>> {
        let Self {
            resource,
            new_owner,
            previous_owner_role,
        } = self;
        let path = existing(tx, &resource).await?;
        authorize(tx, ctx, &resource.rtype, "transfer", &path).await?;
        let owner = tx
            .principal(&new_owner)
            .await?
            .ok_or_else(|| Error::not_found(format!("principal `{new_owner}`")))?;
        owner_must_be_active(&owner)?;
        if previous_owner_role.as_deref() == Some("owner")
            && is_single_owner(&tenant_settings(tx).await?, &resource.rtype)
        {
            return Err(Error::precondition(
                "single_owner",
                format!(
                    "`{}` has exactly one owner: the previous owner cannot keep `owner`",
                    resource.rtype
                ),
            ));
        }
        if let Some(r) = &previous_owner_role {
            let roles = super::role_table(tx).await?;
            if roles.get(r).is_none() {
                return Err(Error::not_found(format!("role `{r}`")));
            }
        }
        let previous = owners(tx, &resource).await?;
        // The new owner gets `owner`: the actor must hold it there.
        let d = Delegator::load(tx, ctx).await?;
        let probe = new_grant(
            SubjectRef::Principal(new_owner.clone()),
            "owner",
            Scope::Resource(resource.clone()),
            Effect::Allow,
            None,
            tx.now(),
        );
        d.could_make(tx, &probe).await?;
        let ids: Vec<String> = previous.iter().map(|g| g.id.clone()).collect();
        tx.delete_grants(&ids).await?;
        let scope = Scope::Resource(resource.clone());
        let now = tx.now();
        let g = new_grant(
            SubjectRef::Principal(new_owner.clone()),
            "owner",
            scope.clone(),
            Effect::Allow,
            None,
            now,
        );
        tx.insert_grant(&g).await?;
        if let Some(r) = &previous_owner_role {
            for p in previous.iter().filter(|p| p.subject.id() != new_owner) {
                let kept = new_grant(
                    p.subject.clone(),
                    r,
                    scope.clone(),
                    Effect::Allow,
                    None,
                    now,
                );
                tx.insert_grant(&kept).await?;
            }
        }
        let mut principals = vec![new_owner.clone()];
        principals.extend(previous.iter().map(|g| g.subject.id().to_owned()));
        let before: Vec<&str> = previous.iter().map(|g| g.subject.id()).collect();
        Ok(Change {
            action: "resource.transfer_ownership",
            target: format!("resource:{resource}"),
            before: serde_json::json!({ "owners": before }).to_string(),
            after: serde_json::json!({ "owners": [new_owner], "owner_grant": &g, "previous_owner_role": previous_owner_role }).to_string(),
            output: g,
            invalidation: Invalidation {
                principals,
                ..Invalidation::default()
            },
        })
    }
}

/// The principals a subject stands for: itself, or a team's members
/// transitively.
pub(crate) async fn principals_of<T: WriteTx>(tx: &mut T, s: &SubjectRef) -> Result<Vec<String>> {
    Ok(match s {
        SubjectRef::Principal(p) => vec![p.clone()],
        SubjectRef::Team(team) => tx
            .principals_in_team(team)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect(),
    })
}

//! Links between resources: which resources a resource acts on (see
//! [`crate::engine::links`] for how they decide). Setting them is guarded
//! both ways: a link added needs its action on the linked resource from the
//! actor (nobody links what they may not use, nor learns through a link
//! what they may not see), and an action a link stops gating needs that
//! action on the resource as it was (nobody lifts a link they could not
//! pass), unless the linked resource is gone.

use super::authz::authorize;
use super::resources::{existing, stored, subtree_change};
use super::{Change, Command};
use crate::error::{Error, Result};
use crate::model::{Link, Resource, ResourceNode, ResourceRef, MAX_LINK_DEPTH};
use crate::store::{WriteContext, WriteTx};
use std::collections::HashSet;

/// Most resources the check of a new link's chain reads.
const MAX_CHAIN_READS: usize = 256;

/// Replace the resources a resource acts on.
#[derive(Debug, Clone)]
pub struct SetResourceLinks {
    /// The resource.
    pub resource: ResourceRef,
    /// Its links from now on (validated by [`crate::model::validate_links`]).
    pub links: Vec<Link>,
}

impl Command for SetResourceLinks {
    type Output = Resource;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Resource>> {
        let Self { resource, links } = self;
        let path = existing(tx, &resource).await?;
        authorize(tx, ctx, &resource.rtype, "manage", &path).await?;
        let before = stored(tx, &resource).await?;
        check_links(tx, ctx, &path, &before.links, &links).await?;
        tx.set_links(&resource, &links).await?;
        let after = Resource {
            links,
            ..before.clone()
        };
        Ok(subtree_change(
            "resource.set_links",
            resource,
            before,
            after,
        ))
    }
}

/// Checks the links of the resource `path` starts with going from `before`
/// to `after` (as [`SetResourceLinks`] and a creation with links do):
/// known actions, linked resources that exist, no link to itself, no cycle
/// and no chain deeper than [`MAX_LINK_DEPTH`] through the links of the
/// linked resources, and what the actor must hold (see the module).
pub(crate) async fn check_links<T: WriteTx>(
    tx: &mut T,
    ctx: &WriteContext,
    path: &[ResourceNode],
    before: &[Link],
    after: &[Link],
) -> Result<()> {
    let Some(resource) = path.first().map(|n| n.resource.clone()) else {
        return Ok(());
    };
    let roles = super::role_table(tx).await?;
    for (i, l) in after.iter().enumerate() {
        let at = format!("links[{i}]");
        for (field, a) in std::iter::once((format!("{at}.action"), &l.action)).chain(
            l.on.iter()
                .enumerate()
                .map(|(j, a)| (format!("{at}.on[{j}]"), a)),
        ) {
            if !roles.knows_action(a) {
                return Err(Error::invalid(
                    field,
                    format!("no role of the tenant names the action `{a}`"),
                ));
            }
        }
        if l.resource == resource {
            return Err(Error::invalid(
                format!("{at}.resource"),
                "a resource does not act on itself",
            ));
        }
        let target = tx.ancestry(&l.resource).await?.ok_or_else(|| {
            Error::not_found(format!("resource `{}` ({at}.resource)", l.resource))
        })?;
        if !before.contains(l) {
            authorize(tx, ctx, &l.resource.rtype, &l.action, &target).await?;
        }
    }
    // Each action a link stops gating, once.
    let mut lifted = std::collections::BTreeSet::new();
    for old in before {
        // A link to a resource that is gone protects nothing: whoever
        // manages the resource may lift it (it denies everyone meanwhile).
        if tx.resource(&old.resource).await?.is_none() {
            continue;
        }
        for a in &old.on {
            let kept = after
                .iter()
                .any(|n| n.resource == old.resource && n.action == old.action && n.on.contains(a));
            if !kept {
                lifted.insert(a.as_str());
            }
        }
    }
    for a in lifted {
        authorize(tx, ctx, &resource.rtype, a, path).await?;
    }
    let added: Vec<&ResourceRef> = after
        .iter()
        .filter(|l| !before.contains(l))
        .map(|l| &l.resource)
        .collect();
    check_chain(tx, &resource, &added).await
}

/// Refuses links from `resource` to `targets` when, through the targets' own
/// links, they lead back to it or make a chain deeper than
/// [`MAX_LINK_DEPTH`], each resource counted at the nearest depth it is met
/// (the links above `resource` are not looked at: a decision that meets a
/// deeper chain or a cycle denies, so nothing is allowed by one).
async fn check_chain<T: WriteTx>(
    tx: &mut T,
    resource: &ResourceRef,
    targets: &[&ResourceRef],
) -> Result<()> {
    let mut level: Vec<ResourceRef> = targets.iter().map(|r| (*r).clone()).collect();
    let mut seen: HashSet<ResourceRef> = level.iter().cloned().collect();
    let mut reads = 0usize;
    for depth in 1.. {
        if level.is_empty() {
            return Ok(());
        }
        let mut next = Vec::new();
        for r in level {
            reads += 1;
            if reads > MAX_CHAIN_READS {
                return Err(Error::precondition(
                    "link_chain",
                    format!(
                        "the resources `{resource}` would act on lead to more than {MAX_CHAIN_READS} others through their links"
                    ),
                ));
            }
            let Some(row) = tx.resource(&r).await? else {
                continue;
            };
            for l in row.links {
                if &l.resource == resource {
                    return Err(Error::precondition(
                        "link_cycle",
                        format!("`{r}` acts on `{resource}` (through its links): the links would form a cycle"),
                    ));
                }
                if depth + 1 > MAX_LINK_DEPTH {
                    return Err(Error::precondition(
                        "link_depth",
                        format!(
                            "through `{r}`, `{resource}` would act on resources more than {MAX_LINK_DEPTH} links away"
                        ),
                    ));
                }
                if seen.insert(l.resource.clone()) {
                    next.push(l.resource);
                }
            }
        }
        level = next;
    }
    Ok(())
}

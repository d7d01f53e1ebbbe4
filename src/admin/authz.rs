//! The actor's authorization: an admin write is allowed when the engine
//! allows its acting principal the write's permission where it applies, by
//! the same rule as every `Check` (the super user is always allowed).

use crate::engine::links::{decide_gathered, links_to_fetch, Gathered};
use crate::engine::{Question, Subject};
use crate::error::{Error, Result};
use crate::model::{
    Actor, Effect, Millis, PrincipalStatus, ResourceNode, RoleMatch, RoleTable, Scope,
};
use crate::store::{SubjectEntry, WriteContext, WriteTx};

/// A principal as decisions need it, read inside the write: its record
/// (`None` when unknown) and, when it is active, every grant it holds
/// directly or through teams (what [`crate::store::Store::subject`] is on the
/// read side).
pub(crate) async fn subject<T: WriteTx>(tx: &mut T, id: &str) -> Result<SubjectEntry> {
    let principal = tx.principal(id).await?;
    let bindings = match &principal {
        Some(p) if p.status == PrincipalStatus::Active => tx.bindings(id).await?,
        _ => Vec::new(),
    };
    Ok(SubjectEntry {
        principal,
        bindings,
    })
}

/// Reads, inside the write, the ancestries of the linked resources deciding
/// `action` on the resource `path` starts with may need.
pub(crate) async fn gather_in<T: WriteTx>(
    tx: &mut T,
    path: &[ResourceNode],
    question: (&str, &str),
    roles: &RoleTable,
) -> Result<Gathered> {
    let mut known = Gathered::new();
    loop {
        let wanted = links_to_fetch(path, question, roles, &known);
        if wanted.is_empty() {
            return Ok(known);
        }
        for r in wanted {
            let a = tx.ancestry(&r).await?;
            known.insert(r, a);
        }
    }
}

/// Refuses the write unless the actor may `<rtype>.<action>` on the resource
/// whose ancestry is `path` (the tenant itself when `path` is empty), its
/// links followed.
pub async fn authorize<T: WriteTx>(
    tx: &mut T,
    ctx: &WriteContext,
    rtype: &str,
    action: &str,
    path: &[ResourceNode],
) -> Result<()> {
    let Actor::Principal(id) = &ctx.actor else {
        return Ok(());
    };
    let actor = Acting::load(tx, id).await?;
    let known = gather_in(tx, path, (rtype, action), &actor.roles).await?;
    actor.may(rtype, action, path, &known)
}

/// The acting principal with its grants and the tenant's roles, read once
/// per authorization.
struct Acting<'a> {
    id: &'a str,
    entry: SubjectEntry,
    roles: RoleTable,
    now: Millis,
}

impl<'a> Acting<'a> {
    async fn load<T: WriteTx>(tx: &mut T, id: &'a str) -> Result<Self> {
        Ok(Self {
            id,
            entry: subject(tx, id).await?,
            roles: super::role_table(tx).await?,
            now: tx.now(),
        })
    }

    /// Refuses unless the actor may `<rtype>.<action>` where `path` says,
    /// the links followed through the ancestries `known`.
    fn may(
        &self,
        rtype: &str,
        action: &str,
        path: &[ResourceNode],
        known: &Gathered,
    ) -> Result<()> {
        let q = Question {
            rtype,
            action,
            path: Some(path),
            context: crate::model::condition::RequestContext::none(),
        };
        let d = decide_gathered(
            Subject::Principal(self.entry.principal.as_ref()),
            &self.entry.bindings,
            &self.roles,
            q,
            self.now,
            known,
        );
        if d.allowed {
            return Ok(());
        }
        let on = path
            .first()
            .map(|n| format!("`{}`", n.resource))
            .unwrap_or_else(|| "the tenant".to_owned());
        Err(Error::PermissionDenied(format!(
            "actor `{}` may not `{rtype}.{action}` on {on}: {}",
            self.id, d.explanation.detail
        )))
    }

    /// Whether a live deny of the actor's own on a resource of `path` names
    /// `<rtype>.<action>`.
    fn denied_on(&self, rtype: &str, action: &str, path: &[ResourceNode]) -> bool {
        self.entry.bindings.iter().any(|b| {
            b.grant.effect == Effect::Deny
                && b.live(self.now)
                && matches!(&b.grant.scope, Scope::Resource(r)
                    if path.iter().any(|n| &n.resource == r))
                && !matches!(
                    self.roles
                        .role_match(&b.grant.role_id, b.grant.scope.kind(), rtype, action),
                    RoleMatch::NoMatch
                )
        })
    }
}

/// Like [`authorize`], but a tenant-wide permission (the actor allowed
/// `<rtype>.<action>` as asked of the tenant itself) also suffices, whatever
/// private boundaries and denies on others below say: tenant owners and
/// tenant-wide admins can always recover what a lower actor set (lift a
/// deny, undo privacy). A deny of the actor's own on the path still counts.
pub async fn authorize_or_tenant_wide<T: WriteTx>(
    tx: &mut T,
    ctx: &WriteContext,
    rtype: &str,
    action: &str,
    path: &[ResourceNode],
) -> Result<()> {
    let Actor::Principal(id) = &ctx.actor else {
        return Ok(());
    };
    let actor = Acting::load(tx, id).await?;
    let known = gather_in(tx, path, (rtype, action), &actor.roles).await?;
    match actor.may(rtype, action, path, &known) {
        Err(Error::PermissionDenied(why)) if !path.is_empty() => {
            // Nobody recovers with a power it is itself denied there.
            if actor.may(rtype, action, &[], &known).is_err()
                || actor.denied_on(rtype, action, path)
            {
                return Err(Error::PermissionDenied(why));
            }
            Ok(())
        }
        other => other,
    }
}

/// Refuses unless the actor may `<type>.<action>` on every resource below
/// `root` (whose ancestry is `root_path`), private ones included: deleting a
/// subtree must not delete what the actor could not delete one by one. The
/// refusal names one resource it may not act on.
pub async fn authorize_subtree<T: WriteTx>(
    tx: &mut T,
    ctx: &WriteContext,
    action: &str,
    root_path: &[ResourceNode],
) -> Result<()> {
    let (Actor::Principal(id), Some(root)) = (&ctx.actor, root_path.first()) else {
        return Ok(());
    };
    let root = root.resource.clone();
    let below = tx.descendants(&root).await?;
    if below.is_empty() {
        return Ok(());
    }
    let SubjectEntry {
        principal,
        bindings,
    } = subject(tx, id).await?;
    let roles = super::role_table(tx).await?;
    let now = tx.now();
    let allowed = |rtype: &str, path: &[ResourceNode], known: &Gathered| {
        let q = Question {
            rtype,
            action,
            path: Some(path),
            context: crate::model::condition::RequestContext::none(),
        };
        decide_gathered(
            Subject::Principal(principal.as_ref()),
            &bindings,
            &roles,
            q,
            now,
            known,
        )
        .allowed
    };
    // What holds at the root holds below, unless a private boundary or a
    // deny of the actor's sits inside the subtree.
    let inside: std::collections::HashSet<&crate::model::ResourceRef> =
        below.iter().map(|d| &d.resource).collect();
    let uniform = below.iter().all(|d| !d.private && !d.linked)
        && !bindings.iter().any(|b| {
            b.grant.effect == crate::model::Effect::Deny
                && matches!(&b.grant.scope, crate::model::Scope::Resource(r) if inside.contains(r))
        });
    if uniform {
        let types: std::collections::BTreeSet<&str> =
            below.iter().map(|d| d.resource.rtype.as_str()).collect();
        let none = Gathered::new();
        if types.iter().all(|t| allowed(t, root_path, &none)) {
            return Ok(());
        }
    }
    for d in &below {
        let path = tx
            .ancestry(&d.resource)
            .await?
            .ok_or_else(|| Error::not_found(format!("resource `{}`", d.resource)))?;
        let known = if d.linked {
            gather_in(tx, &path, (&d.resource.rtype, action), &roles).await?
        } else {
            Gathered::new()
        };
        if !allowed(&d.resource.rtype, &path, &known) {
            return Err(Error::PermissionDenied(format!(
                "actor `{id}` may not `{}.{action}` on `{}`, which is inside `{root}`: nothing was deleted",
                d.resource.rtype, d.resource
            )));
        }
    }
    Ok(())
}

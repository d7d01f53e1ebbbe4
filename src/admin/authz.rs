//! The actor's authorization: an admin write is allowed when the engine
//! allows its acting principal the write's permission where it applies, by
//! the same rule as every `Check` (the super user is always allowed).

use crate::engine::{self, Question, Subject};
use crate::error::{Error, Result};
use crate::model::{Actor, PrincipalStatus, ResourceNode, RoleTable};
use crate::store::{WriteContext, WriteTx};

/// Refuses the write unless the actor may `<rtype>.<action>` on the resource
/// whose ancestry is `path` (the tenant itself when `path` is empty).
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
    let principal = tx.principal(id).await?;
    let bindings = match &principal {
        Some(p) if p.status == PrincipalStatus::Active => tx.bindings(id).await?,
        _ => Vec::new(),
    };
    let roles = RoleTable::new(tx.custom_roles().await?);
    let q = Question {
        rtype,
        action,
        path: Some(path),
    };
    let d = engine::decide(
        Subject::Principal(principal.as_ref()),
        &bindings,
        &roles,
        q,
        tx.now(),
    );
    if d.allowed {
        return Ok(());
    }
    let on = path
        .first()
        .map(|n| format!("`{}`", n.resource))
        .unwrap_or_else(|| "the tenant".to_owned());
    Err(Error::PermissionDenied(format!(
        "actor `{id}` may not `{rtype}.{action}` on {on}: {}",
        d.explanation.detail
    )))
}

/// Like [`authorize`], but a tenant-wide permission (the actor allowed
/// `<rtype>.<action>` as asked of the tenant itself) also suffices, whatever
/// denies and private boundaries below say: tenant owners and tenant-wide
/// admins can always recover what a lower actor set (lift a deny, undo
/// privacy).
pub async fn authorize_or_tenant_wide<T: WriteTx>(
    tx: &mut T,
    ctx: &WriteContext,
    rtype: &str,
    action: &str,
    path: &[ResourceNode],
) -> Result<()> {
    match authorize(tx, ctx, rtype, action, path).await {
        Err(Error::PermissionDenied(why)) if !path.is_empty() => {
            authorize(tx, ctx, rtype, action, &[])
                .await
                .map_err(|_| Error::PermissionDenied(why))
        }
        other => other,
    }
}

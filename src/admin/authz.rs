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

//! Grants (role bindings): created and revoked by those allowed
//! `<scope type>.share` on the scope.

use super::authz::{authorize, authorize_or_tenant_wide};
use super::delegation::{grants_of_subject, Delegator};
use super::invariants::{durable_admins, is_single_owner, keep_an_admin, tenant_settings};
use super::members::require_subject;
use super::resources::{existing, principals_of};
use super::tenants::new_grant;
use super::{json, Change, Command};
use crate::error::{Error, Result};
use crate::model::{Condition, Effect, Grant, Millis, Scope, SubjectRef};
use crate::store::{Invalidation, WriteContext, WriteTx};

/// Grant (or deny) a role on a scope.
#[derive(Debug, Clone)]
pub struct CreateGrant {
    /// Holder.
    pub subject: SubjectRef,
    /// Role.
    pub role_id: String,
    /// Scope.
    pub scope: Scope,
    /// Allow or deny.
    pub effect: Effect,
    /// Expiry.
    pub expires_at: Option<Millis>,
    /// Condition.
    pub condition: Option<Condition>,
}

impl Command for CreateGrant {
    type Output = Grant;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Grant>> {
        let Self {
            subject,
            role_id,
            scope,
            effect,
            expires_at,
            condition,
        } = self;
        let path = match &scope {
            Scope::Tenant => Vec::new(),
            Scope::Resource(r) => existing(tx, r).await?,
        };
        authorize(tx, ctx, scope.kind(), "share", &path).await?;
        require_subject(tx, &subject).await?;
        let roles = super::role_table(tx).await?;
        if roles.get(&role_id).is_none() {
            return Err(Error::not_found(format!("role `{role_id}`")));
        }
        if expires_at.is_some_and(|e| e <= tx.now()) {
            return Err(Error::invalid("expire_time", "must be in the future"));
        }
        if let Scope::Resource(r) = &scope {
            if role_id == "owner"
                && effect == Effect::Allow
                && is_single_owner(&tenant_settings(tx).await?, &r.rtype)
            {
                return Err(Error::precondition(
                    "single_owner",
                    format!(
                        "`{}` has exactly one owner; use TransferOwnership to change it",
                        r.rtype
                    ),
                ));
            }
        }
        let mut g = new_grant(subject, &role_id, scope, effect, expires_at, tx.now());
        g.condition = condition;
        // Nobody hands out (or denies) more than they hold, and a deny
        // targets only those whose grants the actor could have made.
        let d = Delegator::load(tx, ctx).await?;
        d.could_make(tx, &g).await?;
        if effect == Effect::Deny {
            let held = grants_of_subject(tx, &g.subject).await?;
            d.could_make_all(tx, &held, &g.subject).await?;
        }
        let admins = durable_admins(tx).await?;
        tx.insert_grant(&g).await?;
        keep_an_admin(tx, admins).await?;
        let principals = principals_of(tx, &g.subject).await?;
        Ok(Change {
            action: "grant.create",
            target: format!("grant:{}", g.id),
            before: String::new(),
            after: json(&g),
            output: g,
            invalidation: Invalidation {
                principals,
                ..Invalidation::default()
            },
        })
    }
}

/// Revoke a grant.
#[derive(Debug, Clone)]
pub struct DeleteGrant {
    /// The grant.
    pub grant_id: String,
}

impl Command for DeleteGrant {
    type Output = ();

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<()>> {
        let grant_id = self.grant_id;
        let g = tx
            .grant(&grant_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("grant `{grant_id}`")))?;
        let path = match &g.scope {
            Scope::Tenant => Vec::new(),
            Scope::Resource(r) => existing(tx, r).await?,
        };
        // Tenant-wide owners and admins can always lift a deny set below them.
        authorize_or_tenant_wide(tx, ctx, g.scope.kind(), "share", &path).await?;
        if g.effect == Effect::Deny {
            // Lifting a deny gives its target back what the deny took away.
            Delegator::load(tx, ctx).await?.could_lift(tx, &g).await?;
        }
        if let Scope::Resource(r) = &g.scope {
            if g.role_id == "owner"
                && g.effect == Effect::Allow
                && matches!(g.subject, SubjectRef::Principal(_))
                && is_single_owner(&tenant_settings(tx).await?, &r.rtype)
            {
                return Err(Error::precondition(
                    "single_owner",
                    format!("`{r}` must keep its owner; use TransferOwnership to change it"),
                ));
            }
        }
        let admins = durable_admins(tx).await?;
        tx.delete_grants(std::slice::from_ref(&grant_id)).await?;
        keep_an_admin(tx, admins).await?;
        let principals = principals_of(tx, &g.subject).await?;
        Ok(Change {
            output: (),
            action: "grant.delete",
            target: format!("grant:{grant_id}"),
            before: json(&g),
            after: String::new(),
            invalidation: Invalidation {
                principals,
                ..Invalidation::default()
            },
        })
    }
}

//! Tenants: created by an operator (optionally with a first account
//! administrator), settings changed by those allowed `tenant.manage`.

use super::authz::authorize;
use super::delegation::Delegator;
use super::invariants::{
    durable_admins, ensure_single_owners, is_single_owner, keep_an_admin, tenant_settings,
};
use super::{json, Change, Command};
use crate::error::{Error, Result};
use crate::model::{self, Actor, Effect, Grant, Principal, RoleTable, Scope, SubjectRef, Tenant};
use crate::store::{Invalidation, WriteContext, WriteTx};

/// Create the tenant of the context, optionally with its first account admin.
#[derive(Debug, Clone)]
pub struct CreateTenant {
    /// Settings (the id is the context's tenant).
    pub tenant: Tenant,
    /// First account administrator, created active.
    pub first_admin: Option<Principal>,
}

impl Command for CreateTenant {
    type Output = Tenant;
    const CREATES_TENANT: bool = true;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Tenant>> {
        if ctx.actor != Actor::SuperUser {
            return Err(Error::PermissionDenied(
                "only an operator creates tenants".to_owned(),
            ));
        }
        let tenant = self.tenant;
        if tx.tenant().await?.is_some() {
            return Err(Error::AlreadyExists {
                what: format!("tenant `{}`", tenant.id),
            });
        }
        tx.insert_tenant(&tenant).await?;
        let mut after = serde_json::json!({ "tenant": &tenant });
        if let Some(admin) = self.first_admin {
            tx.insert_principal(&admin).await?;
            let g = new_grant(
                SubjectRef::Principal(admin.id.clone()),
                "account_admin",
                Scope::Tenant,
                Effect::Allow,
                None,
                tx.now(),
            );
            tx.insert_grant(&g).await?;
            after["first_admin"] = serde_json::to_value(&admin).unwrap_or_default();
            after["first_admin_grant"] = serde_json::to_value(&g).unwrap_or_default();
        }
        Ok(Change {
            target: format!("tenant:{}", tenant.id),
            output: tenant,
            action: "tenant.create",
            before: String::new(),
            after: after.to_string(),
            invalidation: Invalidation::everything(),
        })
    }
}

/// Change the tenant's settings; fields left `None` keep their value.
#[derive(Debug, Clone, Default)]
pub struct UpdateTenant {
    /// New name.
    pub display_name: Option<String>,
    /// New single-owner types.
    pub single_owner_types: Option<Vec<String>>,
    /// New creator-owner types.
    pub creator_owner_types: Option<Vec<String>>,
    /// New retention.
    pub audit_retention_days: Option<u32>,
    /// New declared actions.
    pub actions: Option<Vec<String>>,
    /// New implied actions (validated).
    pub implied_actions: Option<Vec<model::ImpliedAction>>,
}

impl Command for UpdateTenant {
    type Output = Tenant;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Tenant>> {
        authorize(tx, ctx, model::TENANT_TYPE, "manage", &[]).await?;
        let before = tenant_settings(tx).await?;
        let after = Tenant {
            display_name: self.display_name.unwrap_or(before.display_name.clone()),
            single_owner_types: self
                .single_owner_types
                .unwrap_or(before.single_owner_types.clone()),
            creator_owner_types: self
                .creator_owner_types
                .unwrap_or(before.creator_owner_types.clone()),
            audit_retention_days: self
                .audit_retention_days
                .unwrap_or(before.audit_retention_days),
            actions: self.actions.unwrap_or(before.actions.clone()),
            implied_actions: self
                .implied_actions
                .unwrap_or(before.implied_actions.clone()),
            ..before.clone()
        };
        if after.actions != before.actions {
            // Everyone holding a wildcard permission gains a declared action.
            let custom = tx.custom_roles().await?;
            let table = RoleTable::with_actions(custom, &after.actions);
            Delegator::load(tx, ctx)
                .await?
                .could_declare(&table, &after.actions)?;
        }
        if after.implied_actions != before.implied_actions {
            let custom = tx.custom_roles().await?;
            let table = RoleTable::for_tenant(custom, Some(&after));
            for i in &after.implied_actions {
                for a in [&i.action, &i.implies] {
                    if !table.knows_action(a) {
                        return Err(Error::invalid(
                            "implied_actions",
                            format!("`{a}` is not an action of the tenant; declare it first"),
                        ));
                    }
                }
            }
            // Taking an implication away lets its implying action through
            // where the implied one is denied: the actor must hold the
            // implying action tenant-wide, as for declaring it.
            let lifted: Vec<String> = before
                .implied_actions
                .iter()
                .filter(|i| !after.implied_actions.contains(i))
                .map(|i| i.action.clone())
                .collect();
            Delegator::load(tx, ctx).await?.holds_everywhere(
                &table,
                &lifted,
                "lift an implication of",
            )?;
        }
        for ty in &after.single_owner_types {
            if !is_single_owner(&before, ty) {
                ensure_single_owners(tx, ty).await?;
            }
        }
        let admins = durable_admins(tx).await?;
        tx.update_tenant(&after).await?;
        // A declared action is part of `account_admin` (`tenant.*`).
        keep_an_admin(tx, admins).await?;
        Ok(Change {
            action: "tenant.update",
            target: format!("tenant:{}", before.id),
            before: json(&before),
            after: json(&after),
            invalidation: Invalidation {
                // The vocabulary and the implications are part of the
                // role table.
                roles: after.actions != before.actions
                    || after.implied_actions != before.implied_actions,
                ..Invalidation::default()
            },
            output: after,
        })
    }
}

/// A new grant with a fresh id.
pub(crate) fn new_grant(
    subject: SubjectRef,
    role_id: &str,
    scope: Scope,
    effect: Effect,
    expires_at: Option<model::Millis>,
    now: model::Millis,
) -> Grant {
    Grant {
        id: uuid::Uuid::now_v7().to_string(),
        subject,
        role_id: role_id.to_owned(),
        scope,
        effect,
        expires_at,
        condition: None,
        created_at: now,
    }
}

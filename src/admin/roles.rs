//! Custom roles: created, replaced and deleted by those allowed
//! `tenant.manage_roles`; predefined roles are locked.

use super::authz::authorize;
use super::delegation::Delegator;
use super::invariants::{
    check_inheritance, durable_admins, keep_an_admin, not_inherited, refuse_locked, tenant_settings,
};
use super::{json, Change, Command};
use crate::error::{Error, Result};
use crate::model::roles::BUILTIN_ACTIONS;
use crate::model::{self, Effect, Grant, Role, RoleTable, Scope, SubjectRef};
use crate::store::{Invalidation, WriteContext, WriteTx};
use std::collections::BTreeSet;

async fn require_role<T: WriteTx>(tx: &mut T, id: &str) -> Result<(Role, Vec<Role>)> {
    let custom = tx.custom_roles().await?;
    let role = custom
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .ok_or_else(|| Error::not_found(format!("role `{id}`")))?;
    Ok((role, custom))
}

/// Refuses a change of role `role_id` (leaving the role table `after`) that
/// would let some holder do what the actor may not.
async fn edit_is_delegable<T: WriteTx>(
    tx: &mut T,
    ctx: &WriteContext,
    role_id: &str,
    after: &RoleTable,
) -> Result<()> {
    let d = Delegator::load(tx, ctx).await?;
    if d.is_super_user() {
        return Ok(());
    }
    let before = d.roles().clone();
    let mut affected: BTreeSet<String> = BTreeSet::new();
    for table in [&before, after] {
        for r in table.all() {
            if table.closure(&r.id).contains(role_id) {
                affected.insert(r.id.clone());
            }
        }
    }
    let mut judged: BTreeSet<(String, Scope, bool, SubjectRef)> = BTreeSet::new();
    for q in &affected {
        for g in tx.grants_of_role(q).await? {
            if !judged.insert((
                q.clone(),
                g.scope.clone(),
                g.effect == Effect::Deny,
                g.subject.clone(),
            )) {
                continue;
            }
            let kind = g.scope.kind();
            let was = d.gives(&before, q, kind, g.effect);
            let will = d.gives(after, q, kind, g.effect);
            // A changed condition may let the role count where it did not:
            // the actor must then hold all it gives (or, for a deny, all it
            // took away).
            let reconditioned = before.conditions(q) != after.conditions(q);
            let gained: BTreeSet<(String, String)> = match (g.effect, reconditioned) {
                (Effect::Allow, false) => will.difference(&was).cloned().collect(),
                (Effect::Deny, false) => was.difference(&will).cloned().collect(),
                (Effect::Allow, true) => will.clone(),
                (Effect::Deny, true) => was.clone(),
            };
            if gained.is_empty() || d.waives(&g.subject) {
                continue;
            }
            d.require_on_scope(tx, &gained, &g.scope, &|| {
                format!(
                    "change `{role_id}`, which is granted through `{q}` on {}",
                    g.scope
                )
            })
            .await?;
        }
    }
    Ok(())
}

/// Declares the actions `role` names, so that they stay in the tenant's
/// vocabulary (and under `*.*`) whatever later happens to the role.
async fn declare_actions<T: WriteTx>(tx: &mut T, role: &Role) -> Result<()> {
    let mut tenant = tenant_settings(tx).await?;
    let mut added = false;
    for p in &role.permissions {
        if let Some(a) = p.names_action() {
            if !BUILTIN_ACTIONS.contains(&a) && !tenant.actions.iter().any(|x| x == a) {
                tenant.actions.push(a.to_owned());
                added = true;
            }
        }
    }
    if added {
        tenant.actions.sort();
        tx.update_tenant(&tenant).await?;
    }
    Ok(())
}

/// Refuses unless the actor could declare the actions `role` names that
/// the tenant does not know yet (every `*.*` holder gains them), by the
/// role table the write would leave.
async fn could_declare_named<T: WriteTx>(
    tx: &mut T,
    ctx: &WriteContext,
    custom: &[Role],
    role: &Role,
) -> Result<()> {
    let declared = tenant_settings(tx).await?.actions;
    let before = RoleTable::with_actions(custom.to_vec(), &declared);
    let named: Vec<String> = role
        .permissions
        .iter()
        .filter_map(|p| p.names_action())
        .filter(|a| !before.knows_action(a))
        .map(str::to_owned)
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let mut after: Vec<Role> = custom.iter().filter(|r| r.id != role.id).cloned().collect();
    after.push(role.clone());
    let mut all = declared;
    all.extend(named.iter().cloned());
    let table = RoleTable::with_actions(after, &all);
    Delegator::load(tx, ctx)
        .await?
        .could_declare(&table, &named)
}

/// Create a custom role.
#[derive(Debug, Clone)]
pub struct CreateRole {
    /// The role.
    pub role: Role,
}

impl Command for CreateRole {
    type Output = Role;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Role>> {
        let role = self.role;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_roles", &[]).await?;
        refuse_locked(&role.id)?;
        let custom = tx.custom_roles().await?;
        if custom.iter().any(|r| r.id == role.id) {
            return Err(Error::AlreadyExists {
                what: format!("role `{}`", role.id),
            });
        }
        check_inheritance(&custom, &role)?;
        could_declare_named(tx, ctx, &custom, &role).await?;
        let admins = durable_admins(tx).await?;
        tx.insert_role(&role).await?;
        declare_actions(tx, &role).await?;
        // A newly declared action is part of `account_admin` (`tenant.*`):
        // an administrator holding it by name only would stop counting.
        keep_an_admin(tx, admins).await?;
        Ok(Change {
            action: "role.create",
            target: format!("role:{}", role.id),
            before: String::new(),
            after: json(&role),
            output: role,
            invalidation: Invalidation {
                roles: true,
                ..Invalidation::default()
            },
        })
    }
}

/// Replace a custom role's definition, or only some of its fields.
#[derive(Debug, Clone)]
pub struct UpdateRole {
    /// The role (with `only`, just the named fields count).
    pub role: Role,
    /// The fields to change (`display_name`, `permissions`,
    /// `excluded_permissions`, `inherits`, `effective_at`); `None`: all.
    pub only: Option<Vec<String>>,
}

/// `before` with the fields named in `only` taken from `new`.
fn merged(before: &Role, new: Role, only: &[String]) -> Role {
    let has = |f: &str| only.iter().any(|p| p == f);
    Role {
        display_name: if has("display_name") {
            new.display_name
        } else {
            before.display_name.clone()
        },
        permissions: if has("permissions") {
            new.permissions
        } else {
            before.permissions.clone()
        },
        excluded_permissions: if has("excluded_permissions") {
            new.excluded_permissions
        } else {
            before.excluded_permissions.clone()
        },
        inherits: if has("inherits") {
            new.inherits
        } else {
            before.inherits.clone()
        },
        effective_at: if has("effective_at") {
            new.effective_at
        } else {
            before.effective_at.clone()
        },
        condition: if has("condition") {
            new.condition
        } else {
            before.condition.clone()
        },
        ..before.clone()
    }
}

impl Command for UpdateRole {
    type Output = Role;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Role>> {
        authorize(tx, ctx, model::TENANT_TYPE, "manage_roles", &[]).await?;
        refuse_locked(&self.role.id)?;
        let (before, custom) = require_role(tx, &self.role.id).await?;
        let role = match &self.only {
            None => self.role,
            Some(only) => {
                let role = merged(&before, self.role, only);
                role.validate()?;
                role
            }
        };
        check_inheritance(&custom, &role)?;
        // Whoever holds the role (or one inheriting it) gains what the edit
        // adds, and loses the denial of what it removes: the actor must hold
        // those itself, wherever the role is granted.
        let mut after: Vec<Role> = custom.iter().filter(|r| r.id != role.id).cloned().collect();
        after.push(role.clone());
        let declared = tenant_settings(tx).await?.actions;
        edit_is_delegable(
            tx,
            ctx,
            &role.id,
            &RoleTable::with_actions(after, &declared),
        )
        .await?;
        could_declare_named(tx, ctx, &custom, &role).await?;
        let admins = durable_admins(tx).await?;
        tx.update_role(&role).await?;
        // What the role named before stays in the vocabulary too.
        declare_actions(tx, &before).await?;
        declare_actions(tx, &role).await?;
        keep_an_admin(tx, admins).await?;
        Ok(Change {
            action: "role.update",
            target: format!("role:{}", role.id),
            before: json(&before),
            after: json(&role),
            output: role,
            invalidation: Invalidation {
                roles: true,
                ..Invalidation::default()
            },
        })
    }
}

/// Delete a custom role (with `cascade`, its grants too).
#[derive(Debug, Clone)]
pub struct DeleteRole {
    /// The role.
    pub role_id: String,
    /// Also delete its grants.
    pub cascade: bool,
}

impl Command for DeleteRole {
    /// Grants deleted with it.
    type Output = u64;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<u64>> {
        let Self { role_id, cascade } = self;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_roles", &[]).await?;
        refuse_locked(&role_id)?;
        let (before, custom) = require_role(tx, &role_id).await?;
        not_inherited(&custom, &role_id)?;
        let granted = tx.count_grants_of_role(&role_id).await?;
        if granted > 0 && !cascade {
            return Err(Error::precondition(
                "role_in_use",
                format!("`{role_id}` is still granted {granted} times; delete with `cascade` to revoke those grants"),
            ));
        }
        // Deleting its deny grants gives back what they took away.
        let denies: Vec<Grant> = tx
            .grants_of_role(&role_id)
            .await?
            .into_iter()
            .filter(|g| g.effect == Effect::Deny)
            .collect();
        let d = Delegator::load(tx, ctx).await?;
        for g in &denies {
            d.could_make(tx, g).await?;
        }
        let admins = durable_admins(tx).await?;
        let deleted = tx.delete_grants_of_role(&role_id).await?;
        declare_actions(tx, &before).await?;
        tx.delete_role(&role_id).await?;
        keep_an_admin(tx, admins).await?;
        Ok(Change {
            output: deleted,
            action: "role.delete",
            target: format!("role:{role_id}"),
            before: json(&before),
            after: serde_json::json!({ "deleted_grants": deleted }).to_string(),
            invalidation: Invalidation::everything(),
        })
    }
}

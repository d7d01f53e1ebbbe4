//! Administrative queries: lookups and lists straight from storage, and a
//! principal's access overview.

use super::invariants::account_admins;
use super::Admin;
use crate::error::{Error, Result};
use crate::model::{now_millis, Grant, Principal, Role, RoleTable, Scope};
use crate::store::Catalog;

/// One grant in a principal's access overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// The grant.
    pub grant: Grant,
    /// Teams it is held through, nearest first.
    pub via_teams: Vec<String>,
    /// Live, and its role has effect where it is granted.
    pub effective: bool,
}

/// One page of an ordered list: the items after `after` (by `key`), at most
/// `limit`, and whether more follow.
pub fn page_of<T, K: Ord>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
    after: Option<&K>,
    limit: usize,
) -> (Vec<T>, bool) {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|i| after.is_none_or(|a| key(i) > *a))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    (rest, more)
}

/// The key that orders an access overview: scope, then grant id.
pub fn overview_key(e: &AccessEntry) -> (Scope, String) {
    (e.grant.scope.clone(), e.grant.id.clone())
}

/// The key that orders a role list: predefined first, then by id.
pub fn role_key(r: &Role) -> (bool, String) {
    (!r.locked, r.id.clone())
}

/// Which workspaces (or other scopes) a principal has access to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessOverview {
    /// The principal.
    pub principal: Principal,
    /// Whether it is an account administrator now.
    pub account_admin: bool,
    /// Its grants, direct and through teams, by scope then grant id.
    pub entries: Vec<AccessEntry>,
}

impl<S: Catalog> Admin<S> {
    /// The tenant's role table (predefined and custom roles).
    pub async fn role_table(&self, tenant: &str) -> Result<RoleTable> {
        let declared = self
            .store
            .tenant(tenant)
            .await?
            .map(|t| t.actions)
            .unwrap_or_default();
        Ok(RoleTable::with_actions(
            self.store.custom_roles(tenant).await?,
            &declared,
        ))
    }

    /// One role, predefined or custom.
    pub async fn role(&self, tenant: &str, role_id: &str) -> Result<Role> {
        self.role_table(tenant)
            .await?
            .get(role_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("role `{role_id}`")))
    }

    /// A principal's grants (optionally only on scopes of `scope_type`) and
    /// whether each has effect now.
    pub async fn access_overview(
        &self,
        tenant: &str,
        principal_id: &str,
        scope_type: Option<&str>,
    ) -> Result<AccessOverview> {
        let principal = self
            .store
            .principal(tenant, principal_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("principal `{principal_id}`")))?;
        let roles = self.role_table(tenant).await?;
        let now = now_millis();
        let mut bindings = self.store.bindings(tenant, principal_id).await?;
        bindings.retain(|b| scope_type.is_none_or(|t| b.grant.scope.kind() == t));
        bindings.sort_by(|a, b| (&a.grant.scope, &a.grant.id).cmp(&(&b.grant.scope, &b.grant.id)));
        let entries = bindings
            .into_iter()
            .map(|b| {
                let effective = b.live(now)
                    && roles
                        .get(&b.grant.role_id)
                        .is_some_and(|role| role.effective_at(b.grant.scope.kind()));
                AccessEntry {
                    grant: b.grant,
                    via_teams: b.via_teams,
                    effective,
                }
            })
            .collect();
        let holders = self.store.tenant_holders(tenant).await?;
        let account_admin = account_admins(holders, &roles, now, false)
            .iter()
            .any(|p| p == principal_id);
        Ok(AccessOverview {
            principal,
            account_admin,
            entries,
        })
    }
}

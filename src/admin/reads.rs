//! Administrative queries: lookups and lists straight from storage, and a
//! principal's access overview.

use super::invariants::account_admins;
use super::Admin;
use crate::engine::authorizer::gather_links;
use crate::engine::links::{decide_gathered, Gathered};
use crate::engine::{Question, Subject};
use crate::error::{Error, Result};
use crate::model::{
    now_millis, Binding, Grant, Millis, Principal, PrincipalStatus, Resource, ResourceNode,
    ResourceRef, Role, RoleTable, Scope, TENANT_TYPE,
};
use crate::store::{Catalog, Store};
use std::collections::HashMap;
use std::sync::Arc;

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
        let settings = self.store.tenant(tenant).await?;
        Ok(RoleTable::for_tenant(
            self.store.custom_roles(tenant).await?,
            settings.as_ref(),
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
                    grant: Arc::unwrap_or_clone(b.grant),
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

/// The actor an admin read names, with what it may see: reads that name an
/// actor answer only what that actor could look at itself.
#[derive(Debug, Clone)]
pub struct Viewer {
    principal: Principal,
    bindings: Vec<Binding>,
    roles: Arc<RoleTable>,
    now: Millis,
}

impl Viewer {
    /// The actor's id.
    pub fn id(&self) -> &str {
        &self.principal.id
    }

    /// Whether the actor may `<rtype>.<action>` on the resource whose
    /// ancestry is `path` (the tenant when empty). A link of the resource
    /// reads as one to a resource that does not exist (a denial): where
    /// links may count, ask [`Admin::viewer_may`].
    pub fn may(&self, rtype: &str, action: &str, path: &[ResourceNode]) -> bool {
        self.may_among(rtype, action, path, &Gathered::new())
    }

    /// [`Viewer::may`] with the ancestries of linked resources `known`.
    fn may_among(
        &self,
        rtype: &str,
        action: &str,
        path: &[ResourceNode],
        known: &Gathered,
    ) -> bool {
        let q = Question {
            rtype,
            action,
            path: Some(path),
            context: crate::model::condition::RequestContext::none(),
        };
        decide_gathered(
            Subject::Principal(Some(&self.principal)),
            &self.bindings,
            &self.roles,
            q,
            self.now,
            known,
        )
        .allowed
    }

    /// Whether the actor may view `scope`: `<type>.view` on a resource,
    /// `tenant.view` on the tenant.
    pub fn may_view(&self, scope: &Scope, path: &[ResourceNode]) -> bool {
        match scope {
            Scope::Tenant => self.may(TENANT_TYPE, "view", &[]),
            Scope::Resource(r) => self.may(&r.rtype, "view", path),
        }
    }
}

impl<S: Store> Admin<S> {
    /// The actor of a read, which must be an active member of the tenant.
    pub async fn viewer(&self, tenant: &str, actor_id: &str) -> Result<Viewer> {
        let entry = Store::subject(&self.store, tenant, actor_id).await?;
        let principal = match &entry.principal {
            Some(p) if p.status == PrincipalStatus::Active => p.clone(),
            _ => {
                return Err(Error::PermissionDenied(format!(
                    "actor `{actor_id}` is not an active member of the tenant"
                )))
            }
        };
        Ok(Viewer {
            principal,
            bindings: entry.bindings.clone(),
            roles: Store::roles(&self.store, tenant).await?,
            now: now_millis(),
        })
    }

    /// Whether `viewer` may view `scope` (false for a resource that does
    /// not exist).
    pub async fn may_view(&self, tenant: &str, viewer: &Viewer, scope: &Scope) -> Result<bool> {
        Ok(match scope {
            Scope::Tenant => viewer.may_view(scope, &[]),
            Scope::Resource(r) => match Store::ancestry(&self.store, tenant, r).await? {
                Some(path) => self.viewer_may(tenant, viewer, "view", &path).await?,
                None => false,
            },
        })
    }

    /// Whether `viewer` may do `action` on the resource `path` starts with,
    /// its links followed.
    pub async fn viewer_may(
        &self,
        tenant: &str,
        viewer: &Viewer,
        action: &str,
        path: &[ResourceNode],
    ) -> Result<bool> {
        let Some(rtype) = path.first().map(|n| n.resource.rtype.as_str()) else {
            return Ok(viewer.may(TENANT_TYPE, action, path));
        };
        let mut known = Gathered::new();
        gather_links(
            &self.store,
            tenant,
            (path, (rtype, action)),
            &viewer.roles,
            &mut known,
        )
        .await?;
        Ok(viewer.may_among(rtype, action, path, &known))
    }
}

impl<S: Store + Catalog> Admin<S> {
    /// A resource as `viewer` may see it: one it may not view is answered as
    /// one that does not exist.
    pub async fn resource(
        &self,
        tenant: &str,
        viewer: Option<&Viewer>,
        r: &ResourceRef,
    ) -> Result<Option<Resource>> {
        let found = self.store.resource(tenant, r).await?;
        let visible = match (&found, viewer) {
            (Some(_), Some(v)) => {
                self.may_view(tenant, v, &Scope::Resource(r.clone()))
                    .await?
            }
            _ => true,
        };
        Ok(found.filter(|_| visible))
    }
}

impl<S: Store> Admin<S> {
    /// `items` (children of `parent`) without those `viewer` may not view.
    pub async fn visible_children(
        &self,
        tenant: &str,
        viewer: Option<&Viewer>,
        parent: Option<&ResourceRef>,
        items: Vec<Resource>,
    ) -> Result<Vec<Resource>> {
        let Some(v) = viewer else {
            return Ok(items);
        };
        let above: Vec<ResourceNode> = match parent {
            None => Vec::new(),
            Some(p) => {
                let path = Store::ancestry(&self.store, tenant, p).await?;
                match path {
                    // A parent the actor may not view is one that does not exist.
                    Some(path) if self.viewer_may(tenant, v, "view", &path).await? => path.to_vec(),
                    _ => return Err(Error::not_found(format!("resource `{p}`"))),
                }
            }
        };
        let mut path = Vec::with_capacity(above.len() + 1);
        let mut out = Vec::with_capacity(items.len());
        for r in items {
            path.clear();
            path.push(r.node());
            path.extend(above.iter().cloned());
            if self.viewer_may(tenant, v, "view", &path).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// `grants` (asked on `scope`, when given) without those on scopes
    /// `viewer` may not view; a scope it may not view is one that does not
    /// exist.
    pub async fn visible_grants(
        &self,
        tenant: &str,
        viewer: Option<&Viewer>,
        scope: Option<&ResourceRef>,
        grants: Vec<Grant>,
    ) -> Result<Vec<Grant>> {
        let Some(v) = viewer else {
            return Ok(grants);
        };
        if let Some(r) = scope {
            if !self
                .may_view(tenant, v, &Scope::Resource(r.clone()))
                .await?
            {
                return Err(Error::not_found(format!("resource `{r}`")));
            }
        }
        let mut seen: HashMap<Scope, bool> = HashMap::new();
        let mut out = Vec::with_capacity(grants.len());
        for g in grants {
            let visible = match seen.get(&g.scope) {
                Some(b) => *b,
                None => {
                    let b = self.may_view(tenant, v, &g.scope).await?;
                    seen.insert(g.scope.clone(), b);
                    b
                }
            };
            if visible {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// A principal's access overview as `viewer` may see it: its own whole,
    /// or, for those allowed `tenant.manage_members`, anyone's, limited to
    /// the scopes the viewer may view.
    pub async fn visible_overview(
        &self,
        tenant: &str,
        viewer: Option<&Viewer>,
        overview: AccessOverview,
    ) -> Result<AccessOverview> {
        let Some(v) = viewer else {
            return Ok(overview);
        };
        if v.id() == overview.principal.id {
            return Ok(overview);
        }
        if !v.may(TENANT_TYPE, "manage_members", &[]) {
            return Err(Error::PermissionDenied(format!(
                "actor `{}` may see only its own access overview (it is not allowed `tenant.manage_members`)",
                v.id()
            )));
        }
        let mut entries = Vec::with_capacity(overview.entries.len());
        for e in overview.entries {
            if self.may_view(tenant, v, &e.grant.scope).await? {
                entries.push(e);
            }
        }
        Ok(AccessOverview {
            entries,
            ..overview
        })
    }
}

/// Refuses unless `viewer` (when a read names one) may read the audit log.
pub fn may_read_audit(viewer: Option<&Viewer>) -> Result<()> {
    match viewer {
        Some(v) if !v.may(TENANT_TYPE, "view_audit", &[]) => Err(Error::PermissionDenied(format!(
            "actor `{}` may not read the audit log (it is not allowed `tenant.view_audit`)",
            v.id()
        ))),
        _ => Ok(()),
    }
}

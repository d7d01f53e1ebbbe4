//! The predefined (locked) roles and a tenant's compiled role table: data the
//! decision reads, kept in the model so that storage can build it without
//! knowing the engine.

use super::{Condition, ImpliedAction, Permission, Role, Tenant, TENANT_TYPE};
use std::collections::{HashMap, HashSet};

/// Actions every tenant knows, whatever its custom roles say.
pub const BUILTIN_ACTIONS: &[&str] = &[
    "view",
    "edit",
    "execute",
    "create",
    "delete",
    "share",
    "manage",
    "transfer",
    "manage_members",
    "manage_teams",
    "manage_roles",
    "view_audit",
    "delegate",
];

/// Ids of the predefined roles, which are locked.
pub const PREDEFINED_ROLE_IDS: &[&str] = &["account_admin", "owner", "admin", "editor", "viewer"];

fn role(id: &str, name: &str, perms: &[&str], excluded: &[&str], effective_at: &[&str]) -> Role {
    let parse = |p: &&str| Permission::parse("role.permissions", p).expect("predefined pattern");
    Role {
        id: id.to_owned(),
        display_name: name.to_owned(),
        permissions: perms.iter().map(parse).collect(),
        excluded_permissions: excluded.iter().map(parse).collect(),
        inherits: Vec::new(),
        condition: None,
        effective_at: effective_at.iter().map(|s| (*s).to_owned()).collect(),
        locked: true,
    }
}

/// The predefined roles, from the seeds' matrices:
/// - `account_admin` (Oneflow's account administrator): administers the tenant
///   (members, teams, roles, audit, tenant-wide grants) and workspaces from the
///   admin level, but gives no access inside them; effective only on the tenant.
/// - `owner`: everything (OpenFn owner: the only one who may delete a project).
/// - `admin`: everything except deleting a project, transferring ownership
///   and `tenant.delegate` (so a tenant-wide admin cannot make itself owner).
/// - `editor`: view, create, edit, delete and execute content; not project or
///   workspace settings, not sharing, not administration.
/// - `viewer`: view only.
pub fn predefined_roles() -> Vec<Role> {
    vec![
        role(
            "account_admin",
            "Account administrator",
            &[
                "tenant.*",
                "workspace.create",
                "workspace.delete",
                "workspace.share",
                "workspace.manage",
            ],
            &[],
            &[TENANT_TYPE],
        ),
        role("owner", "Owner", &["*.*"], &[], &[TENANT_TYPE, "*"]),
        role(
            "admin",
            "Admin",
            &["*.*"],
            &["project.delete", "*.transfer", "tenant.delegate"],
            &[TENANT_TYPE, "*"],
        ),
        role(
            "editor",
            "Editor",
            &["*.view", "*.edit", "*.execute", "*.create", "*.delete"],
            &[
                "tenant.*",
                "project.edit",
                "project.delete",
                "workspace.edit",
                "workspace.delete",
            ],
            &[TENANT_TYPE, "*"],
        ),
        role(
            "viewer",
            "Viewer",
            &["*.view"],
            &["tenant.*"],
            &[TENANT_TYPE, "*"],
        ),
    ]
}

/// Deepest role inheritance written (a role inheriting a role inheriting
/// nothing is depth 1).
pub const MAX_INHERITANCE_DEPTH: usize = 8;
/// Most roles a role may reach through inheritance, itself included.
pub const MAX_ROLE_CLOSURE: usize = 32;

/// How a role relates to a question on a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleMatch {
    /// A permission of the role (or an inherited role) covers it; the pattern.
    Matched(String),
    /// The role would cover it, but is not effective at the scope.
    NotEffective,
    /// The role does not cover it.
    NoMatch,
}

/// A tenant's roles (predefined and custom), ready for decisions.
#[derive(Debug, Clone)]
pub struct RoleTable {
    roles: HashMap<String, Role>,
    known_actions: HashSet<String>,
    /// For each role with any: the conditions of the role and of every role
    /// it inherits, all of which a grant of it must meet.
    conditions: HashMap<String, Vec<Condition>>,
    /// For each implying action: every action it implies, transitively.
    implied: HashMap<String, Vec<String>>,
}

impl RoleTable {
    /// Builds the table from the tenant's custom roles.
    pub fn new(custom: Vec<Role>) -> Self {
        Self::with_actions(custom, &[])
    }

    /// Builds the table from the tenant's custom roles and its declared
    /// actions (which stay known whether or not a role names them).
    pub fn with_actions(custom: Vec<Role>, declared: &[String]) -> Self {
        let mut roles: HashMap<String, Role> = predefined_roles()
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        for r in custom {
            // A custom role never shadows a predefined one.
            roles.entry(r.id.clone()).or_insert(r);
        }
        let mut known_actions: HashSet<String> =
            BUILTIN_ACTIONS.iter().map(|s| (*s).to_owned()).collect();
        known_actions.extend(declared.iter().cloned());
        for r in roles.values() {
            for p in &r.permissions {
                if let Some(a) = p.names_action() {
                    known_actions.insert(a.to_owned());
                }
            }
        }
        let mut table = Self {
            roles,
            known_actions,
            conditions: HashMap::new(),
            implied: HashMap::new(),
        };
        // Writes refuse inheritance cycles; should a corrupt table hold one
        // anyway, the roles on it lose their inheritance (fail closed), so
        // that matching never loops.
        let cyclic: Vec<String> = table
            .roles
            .values()
            .filter(|r| r.inherits.iter().any(|p| table.closure(p).contains(&r.id)))
            .map(|r| r.id.clone())
            .collect();
        for id in cyclic {
            if let Some(r) = table.roles.get_mut(&id) {
                r.inherits.clear();
            }
        }
        if table.roles.values().any(|r| r.condition.is_some()) {
            let ids: Vec<String> = table.roles.keys().cloned().collect();
            for id in ids {
                let mut closure: Vec<String> = table.closure(&id).into_iter().collect();
                closure.sort();
                let found: Vec<Condition> = closure
                    .iter()
                    .filter_map(|r| table.roles.get(r)?.condition.clone())
                    .collect();
                if !found.is_empty() {
                    table.conditions.insert(id, found);
                }
            }
        }
        table
    }

    /// The table of a tenant: its custom roles, declared actions and implied
    /// actions.
    pub fn for_tenant(custom: Vec<Role>, tenant: Option<&Tenant>) -> Self {
        match tenant {
            None => Self::new(custom),
            Some(t) => Self::with_actions(custom, &t.actions).with_implications(&t.implied_actions),
        }
    }

    /// With the tenant's implications (`edit` ⇒ `view`), closed transitively.
    pub fn with_implications(mut self, list: &[ImpliedAction]) -> Self {
        self.implied.clear();
        for i in list {
            let mut all: Vec<String> = Vec::new();
            let mut stack = vec![i.action.as_str()];
            while let Some(a) = stack.pop() {
                for x in list.iter().filter(|x| x.action == a) {
                    if x.implies != i.action && !all.contains(&x.implies) {
                        all.push(x.implies.clone());
                        stack.push(&x.implies);
                    }
                }
            }
            all.sort();
            self.implied.insert(i.action.clone(), all);
        }
        self
    }

    /// The actions `action` implies, transitively (empty for most).
    pub fn implied(&self, action: &str) -> &[String] {
        self.implied.get(action).map_or(&[], Vec::as_slice)
    }

    /// The conditions a grant of `role_id` must meet: the role's own and
    /// those of every role it inherits (empty for most roles).
    pub fn conditions(&self, role_id: &str) -> &[Condition] {
        self.conditions.get(role_id).map_or(&[], Vec::as_slice)
    }

    /// A role by id.
    pub fn get(&self, id: &str) -> Option<&Role> {
        self.roles.get(id)
    }

    /// Every role, predefined first, then custom in id order.
    pub fn all(&self) -> Vec<&Role> {
        let mut v: Vec<&Role> = self.roles.values().collect();
        v.sort_by_key(|r| (!r.locked, r.id.clone()));
        v
    }

    /// The tenant's action vocabulary: built-in, declared, and named by roles.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.known_actions.iter().map(String::as_str)
    }

    /// The resource types some role's permission (or exclusion) names.
    pub fn named_types(&self) -> std::collections::BTreeSet<&str> {
        let mut out = std::collections::BTreeSet::new();
        for r in self.roles.values() {
            for p in r.permissions.iter().chain(&r.excluded_permissions) {
                if let crate::model::Pattern::Exact(t) = &p.rtype {
                    out.insert(t.as_str());
                }
            }
        }
        out
    }

    /// Whether any role of the tenant, or the built-in vocabulary, names `action`.
    pub fn knows_action(&self, action: &str) -> bool {
        self.known_actions.contains(action)
    }

    /// Whether `role_id`, granted on a scope of `scope_kind`, covers
    /// `<rtype>.<action>`. Inherited roles count only where they are themselves
    /// effective, so inheritance never widens where a permission applies.
    pub fn role_match(
        &self,
        role_id: &str,
        scope_kind: &str,
        rtype: &str,
        action: &str,
    ) -> RoleMatch {
        // Each inherited role is judged once per question, however many
        // paths reach it (a diamond-shaped graph costs its size, not its
        // paths).
        let mut memo = Vec::new();
        self.role_match_inner(role_id, scope_kind, rtype, action, 0, &mut memo)
    }

    fn role_match_inner<'a>(
        &'a self,
        role_id: &'a str,
        scope_kind: &str,
        rtype: &str,
        action: &str,
        depth: usize,
        memo: &mut Vec<(&'a str, RoleMatch)>,
    ) -> RoleMatch {
        // Writes refuse inheritance cycles and deep graphs; the depth limit
        // only guards against a corrupt table.
        if depth > MAX_INHERITANCE_DEPTH {
            return RoleMatch::NoMatch;
        }
        let Some(role) = self.roles.get(role_id) else {
            return RoleMatch::NoMatch;
        };
        // Exclusions trim everything the role gives, inherited permissions too.
        if role
            .excluded_permissions
            .iter()
            .any(|x| x.matches(rtype, action))
        {
            return RoleMatch::NoMatch;
        }
        let own = role.permissions.iter().find(|p| p.matches(rtype, action));
        let effective = role.effective_at(scope_kind);
        let mut result = match (own, effective) {
            (Some(p), true) => return RoleMatch::Matched(p.to_string()),
            (Some(_), false) => RoleMatch::NotEffective,
            (None, _) => RoleMatch::NoMatch,
        };
        for parent in &role.inherits {
            let found = match memo.iter().find(|(id, _)| *id == parent.as_str()) {
                Some((_, m)) => m.clone(),
                None => {
                    let m =
                        self.role_match_inner(parent, scope_kind, rtype, action, depth + 1, memo);
                    memo.push((parent.as_str(), m.clone()));
                    m
                }
            };
            match found {
                // Inherited permissions apply only where the granted role applies.
                RoleMatch::Matched(p) if effective => return RoleMatch::Matched(p),
                RoleMatch::Matched(_) | RoleMatch::NotEffective => result = RoleMatch::NotEffective,
                RoleMatch::NoMatch => {}
            }
        }
        result
    }

    /// The longest inheritance chain from `role_id` (0 for a role that
    /// inherits nothing), or `None` past [`MAX_INHERITANCE_DEPTH`].
    pub fn inheritance_depth(&self, role_id: &str) -> Option<usize> {
        fn depth<'a>(
            t: &'a RoleTable,
            id: &'a str,
            level: usize,
            memo: &mut HashMap<&'a str, usize>,
        ) -> Option<usize> {
            if level > MAX_INHERITANCE_DEPTH {
                return None;
            }
            if let Some(d) = memo.get(id) {
                return Some(*d);
            }
            let Some(role) = t.roles.get(id) else {
                return Some(0);
            };
            let mut most = 0;
            for p in &role.inherits {
                most = most.max(depth(t, p, level + 1, memo)? + 1);
            }
            memo.insert(id, most);
            Some(most)
        }
        let d = depth(self, role_id, 0, &mut HashMap::new())?;
        (d <= MAX_INHERITANCE_DEPTH).then_some(d)
    }

    /// Roles reachable from `role_id` through inheritance, itself included.
    pub fn closure(&self, role_id: &str) -> HashSet<String> {
        let mut out = HashSet::new();
        let mut stack = vec![role_id.to_owned()];
        while let Some(r) = stack.pop() {
            if out.insert(r.clone()) {
                if let Some(role) = self.roles.get(&r) {
                    stack.extend(role.inherits.iter().cloned());
                }
            }
        }
        out
    }
}

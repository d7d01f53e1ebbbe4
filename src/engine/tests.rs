//! Unit tests of the pure decision rule: `decide`, `candidate_scopes` and the
//! `RoleTable`. Everything is built by hand; nothing touches a store.
//!
//! The fixture tree (top first):
//!
//! ```text
//! tenant
//! └── workspace:w1
//!     ├── folder:f1
//!     │   ├── workflow:wf1
//!     │   └── folder:f2
//!     │       └── workflow:wf2
//!     └── folder:sib
//! ```
//!
//! Privacy is chosen per test by building the path with the right flags.

use super::*;
use crate::model::{
    Effect, Grant, Millis, Permission, Principal, PrincipalKind, PrincipalStatus, ResourceNode,
    ResourceRef, Role, Scope, SubjectRef,
};
use std::sync::Arc;

const NOW: Millis = 1_700_000_000_000;

// ---------------------------------------------------------------- builders

fn rref(rtype: &str, id: &str) -> ResourceRef {
    ResourceRef {
        rtype: rtype.to_owned(),
        id: id.to_owned(),
    }
}

fn on(rtype: &str, id: &str) -> Scope {
    Scope::Resource(rref(rtype, id))
}

fn node(rtype: &str, id: &str, private: bool) -> ResourceNode {
    ResourceNode {
        links: Default::default(),
        resource: rref(rtype, id),
        private,
        attributes: None,
        restricted: Default::default(),
    }
}

/// Ancestry of `workflow:wf1`: wf1 → f1 → w1; `private` names the private ids.
fn wf1_path(private: &[&str]) -> Vec<ResourceNode> {
    vec![
        node("workflow", "wf1", private.contains(&"wf1")),
        node("folder", "f1", private.contains(&"f1")),
        node("workspace", "w1", private.contains(&"w1")),
    ]
}

/// Ancestry of `workflow:wf2`: wf2 → f2 → f1 → w1.
fn wf2_path(private: &[&str]) -> Vec<ResourceNode> {
    vec![
        node("workflow", "wf2", private.contains(&"wf2")),
        node("folder", "f2", private.contains(&"f2")),
        node("folder", "f1", private.contains(&"f1")),
        node("workspace", "w1", private.contains(&"w1")),
    ]
}

/// Ancestry of `folder:f1`: f1 → w1.
fn f1_path(private: &[&str]) -> Vec<ResourceNode> {
    vec![
        node("folder", "f1", private.contains(&"f1")),
        node("workspace", "w1", private.contains(&"w1")),
    ]
}

/// Ancestry of `workspace:w1`.
fn w1_path() -> Vec<ResourceNode> {
    vec![node("workspace", "w1", false)]
}

fn binding(id: &str, role: &str, scope: Scope, effect: Effect) -> Binding {
    Binding {
        grant: Arc::new(Grant {
            id: id.to_owned(),
            subject: SubjectRef::Principal("alice".to_owned()),
            role_id: role.to_owned(),
            scope,
            effect,
            expires_at: None,
            condition: None,
            created_at: 0,
        }),
        via_teams: Vec::new(),
    }
}

fn allow(id: &str, role: &str, scope: Scope) -> Binding {
    binding(id, role, scope, Effect::Allow)
}

fn deny(id: &str, role: &str, scope: Scope) -> Binding {
    binding(id, role, scope, Effect::Deny)
}

trait BindingExt {
    fn expiring(self, at: Millis) -> Self;
    fn via(self, teams: &[&str]) -> Self;
}

impl BindingExt for Binding {
    fn expiring(mut self, at: Millis) -> Self {
        Arc::make_mut(&mut self.grant).expires_at = Some(at);
        self
    }
    fn via(mut self, teams: &[&str]) -> Self {
        self.via_teams = teams.iter().map(|t| (*t).to_owned()).collect();
        if let Some(holder) = teams.last() {
            Arc::make_mut(&mut self.grant).subject = SubjectRef::Team((*holder).to_owned());
        }
        self
    }
}

fn principal(status: PrincipalStatus) -> Principal {
    Principal {
        id: "alice".to_owned(),
        kind: PrincipalKind::User,
        status,
        display_name: "Alice".to_owned(),
        created_at: 0,
        invitation_expires_at: Default::default(),
    }
}

fn perms(patterns: &[&str]) -> Vec<Permission> {
    patterns
        .iter()
        .map(|p| Permission::parse("role.permissions", p).expect("test pattern"))
        .collect()
}

fn custom_role(
    id: &str,
    permissions: &[&str],
    excluded: &[&str],
    inherits: &[&str],
    effective_at: &[&str],
) -> Role {
    let role = Role {
        id: id.to_owned(),
        display_name: id.to_owned(),
        permissions: perms(permissions),
        excluded_permissions: perms(excluded),
        inherits: inherits.iter().map(|s| (*s).to_owned()).collect(),
        effective_at: effective_at.iter().map(|s| (*s).to_owned()).collect(),
        locked: false,
        condition: None,
    };
    role.validate().expect("test roles are valid custom roles");
    role
}

fn predefined() -> RoleTable {
    RoleTable::new(Vec::new())
}

/// Decides for the active principal `alice`.
fn ask(
    bindings: &[Binding],
    roles: &RoleTable,
    rtype: &str,
    action: &str,
    path: Option<&[ResourceNode]>,
) -> Decision {
    let alice = principal(PrincipalStatus::Active);
    decide(
        Subject::Principal(Some(&alice)),
        bindings,
        roles,
        Question {
            rtype,
            action,
            path,
            context: crate::model::condition::RequestContext::none(),
        },
        NOW,
    )
}

#[track_caller]
fn assert_allowed(d: &Decision) {
    assert!(d.allowed, "expected an allow, got {d:?}");
    assert_eq!(d.reason, Reason::Granted, "{d:?}");
}

#[track_caller]
fn assert_denied(d: &Decision, reason: Reason) {
    assert!(!d.allowed, "expected a denial ({reason:?}), got {d:?}");
    assert_eq!(d.reason, reason, "{d:?}");
}

// ------------------------------------------------------- who is asking

#[test]
fn a_super_user_is_allowed_anything_even_without_grants_resources_or_known_actions() {
    let roles = predefined();
    let path = wf1_path(&["wf1"]);
    for (action, p) in [
        ("edit", Some(path.as_slice())),
        ("frobnicate", Some(path.as_slice())),
        ("view", None),
    ] {
        let d = decide(
            Subject::SuperUser,
            &[deny("d1", "owner", Scope::Tenant)],
            &roles,
            Question {
                rtype: "workflow",
                action,
                path: p,
                context: crate::model::condition::RequestContext::none(),
            },
            NOW,
        );
        assert!(d.allowed, "{action}: {d:?}");
        assert_eq!(d.reason, Reason::SuperUser);
    }
}

#[test]
fn an_unknown_principal_is_denied_even_if_bindings_were_passed() {
    let path = wf1_path(&[]);
    let d = decide(
        Subject::Principal(None),
        &[allow("g1", "owner", Scope::Tenant)],
        &predefined(),
        Question {
            rtype: "workflow",
            action: "view",
            path: Some(&path),
            context: crate::model::condition::RequestContext::none(),
        },
        NOW,
    );
    assert_denied(&d, Reason::UnknownPrincipal);
}

fn decide_with_status(status: PrincipalStatus) -> Decision {
    let p = principal(status);
    let path = wf1_path(&[]);
    decide(
        Subject::Principal(Some(&p)),
        &[allow("g1", "owner", Scope::Tenant)],
        &predefined(),
        Question {
            rtype: "workflow",
            action: "view",
            path: Some(&path),
            context: crate::model::condition::RequestContext::none(),
        },
        NOW,
    )
}

#[test]
fn an_active_tenant_owner_is_allowed_which_makes_the_status_tests_meaningful() {
    assert_allowed(&decide_with_status(PrincipalStatus::Active));
}

#[test]
fn an_invited_principal_has_no_access_even_with_an_owner_grant() {
    assert_denied(
        &decide_with_status(PrincipalStatus::Invited),
        Reason::PrincipalInvited,
    );
}

#[test]
fn a_suspended_principal_loses_access_even_with_an_owner_grant() {
    assert_denied(
        &decide_with_status(PrincipalStatus::Suspended),
        Reason::PrincipalSuspended,
    );
}

#[test]
fn a_removed_principal_has_no_access_even_with_an_owner_grant() {
    assert_denied(
        &decide_with_status(PrincipalStatus::Removed),
        Reason::PrincipalRemoved,
    );
}

// ------------------------------------------------------- what is asked

#[test]
fn an_unknown_resource_is_denied_even_for_a_tenant_owner() {
    let d = ask(
        &[allow("g1", "owner", Scope::Tenant)],
        &predefined(),
        "workflow",
        "view",
        None,
    );
    assert_denied(&d, Reason::UnknownResource);
}

#[test]
fn an_unknown_action_is_denied_as_unknown_permission_even_for_a_tenant_owner() {
    let path = wf1_path(&[]);
    let d = ask(
        &[allow("g1", "owner", Scope::Tenant)],
        &predefined(),
        "workflow",
        "frobnicate",
        Some(&path),
    );
    assert_denied(&d, Reason::UnknownPermission);
}

#[test]
fn an_action_named_only_by_a_custom_role_is_known_and_can_be_granted() {
    let path = wf1_path(&[]);
    let without = predefined();
    let d = ask(&[], &without, "workflow", "approve", Some(&path));
    assert_denied(&d, Reason::UnknownPermission);

    let with = RoleTable::new(vec![custom_role(
        "approver",
        &["workflow.approve"],
        &[],
        &[],
        &["*"],
    )]);
    // Known now: a principal without a grant gets NoGrant, not UnknownPermission.
    assert_denied(
        &ask(&[], &with, "workflow", "approve", Some(&path)),
        Reason::NoGrant,
    );
    let d = ask(
        &[allow("g1", "approver", on("folder", "f1"))],
        &with,
        "workflow",
        "approve",
        Some(&path),
    );
    assert_allowed(&d);
    assert_eq!(d.explanation.permission, "workflow.approve");
}

#[test]
fn a_wildcard_action_in_a_custom_role_does_not_make_every_action_known() {
    let roles = RoleTable::new(vec![custom_role(
        "workflow_all",
        &["workflow.*"],
        &[],
        &[],
        &["*"],
    )]);
    assert!(!roles.knows_action("frobnicate"));
    let path = wf1_path(&[]);
    let d = ask(
        &[allow("g1", "workflow_all", on("workspace", "w1"))],
        &roles,
        "workflow",
        "frobnicate",
        Some(&path),
    );
    assert_denied(&d, Reason::UnknownPermission);
}

// ------------------------------------------------------- inheritance

#[test]
fn a_grant_on_an_ancestor_is_inherited_by_its_descendants() {
    let path = wf2_path(&[]);
    let d = ask(
        &[allow("g1", "viewer", on("workspace", "w1"))],
        &predefined(),
        "workflow",
        "view",
        Some(&path),
    );
    assert_allowed(&d);
    assert_eq!(d.explanation.grant_id, "g1");
    assert_eq!(d.explanation.role_id, "viewer");
    assert_eq!(d.explanation.permission, "*.view");
    assert_eq!(d.explanation.scope, Some(on("workspace", "w1")));
    assert!(d.explanation.via_teams.is_empty());
}

#[test]
fn a_grant_on_a_descendant_does_not_reach_up_to_its_ancestor() {
    let path = f1_path(&[]);
    let d = ask(
        &[allow("g1", "owner", on("workflow", "wf1"))],
        &predefined(),
        "folder",
        "view",
        Some(&path),
    );
    assert_denied(&d, Reason::NoGrant);
}

#[test]
fn a_grant_on_a_sibling_subtree_does_not_apply() {
    let path = wf1_path(&[]);
    let d = ask(
        &[allow("g1", "owner", on("folder", "sib"))],
        &predefined(),
        "workflow",
        "view",
        Some(&path),
    );
    assert_denied(&d, Reason::NoGrant);
}

#[test]
fn a_role_allows_only_the_actions_its_permissions_name() {
    let path = wf1_path(&[]);
    let d = ask(
        &[allow("g1", "viewer", on("workspace", "w1"))],
        &predefined(),
        "workflow",
        "edit",
        Some(&path),
    );
    assert_denied(&d, Reason::NoGrant);
}

#[test]
fn a_tenant_wide_grant_reaches_every_resource_and_the_tenant_itself() {
    let roles = predefined();
    let editor = [allow("g1", "editor", Scope::Tenant)];
    let path = wf2_path(&[]);
    let d = ask(&editor, &roles, "workflow", "edit", Some(&path));
    assert_allowed(&d);
    assert_eq!(d.explanation.scope, Some(Scope::Tenant));

    let owner = [allow("g2", "owner", Scope::Tenant)];
    let d = ask(&owner, &roles, "tenant", "manage_members", Some(&[]));
    assert_allowed(&d);
    assert_eq!(d.explanation.scope, Some(Scope::Tenant));
}

#[test]
fn a_resource_grant_gives_nothing_on_the_tenant_itself() {
    let d = ask(
        &[allow("g1", "owner", on("workspace", "w1"))],
        &predefined(),
        "tenant",
        "manage_members",
        Some(&[]),
    );
    assert_denied(&d, Reason::NoGrant);
}

#[test]
fn viewer_and_editor_at_tenant_scope_give_no_tenant_administration() {
    let roles = predefined();
    for role in ["viewer", "editor"] {
        let b = [allow("g1", role, Scope::Tenant)];
        for action in ["view", "manage_members", "share"] {
            let d = ask(&b, &roles, "tenant", action, Some(&[]));
            assert_denied(&d, Reason::NoGrant);
        }
    }
}

// ------------------------------------------------------- private boundaries

#[test]
fn a_private_folder_inherits_neither_ancestor_nor_tenant_grants() {
    let bindings = [
        allow("g-tenant", "owner", Scope::Tenant),
        allow("g-ws", "owner", on("workspace", "w1")),
    ];
    let roles = predefined();
    let folder = f1_path(&["f1"]);
    let d = ask(&bindings, &roles, "folder", "view", Some(&folder));
    assert_denied(&d, Reason::PrivateBoundary);
    let inside = wf1_path(&["f1"]);
    let d = ask(&bindings, &roles, "workflow", "view", Some(&inside));
    assert_denied(&d, Reason::PrivateBoundary);
    // The same grants do reach through when f1 is not private.
    let open = wf1_path(&[]);
    assert_allowed(&ask(&bindings, &roles, "workflow", "view", Some(&open)));
}

#[test]
fn a_grant_on_a_private_folder_reaches_a_workflow_inside_it() {
    let bindings = [allow("g1", "editor", on("folder", "f1"))];
    let roles = predefined();
    let folder = f1_path(&["f1"]);
    assert_allowed(&ask(&bindings, &roles, "folder", "view", Some(&folder)));
    let inside = wf2_path(&["f1"]);
    let d = ask(&bindings, &roles, "workflow", "edit", Some(&inside));
    assert_allowed(&d);
    assert_eq!(d.explanation.scope, Some(on("folder", "f1")));
}

#[test]
fn a_grant_below_a_private_folder_applies_inside_it() {
    let bindings = [allow("g1", "viewer", on("folder", "f2"))];
    let inside = wf2_path(&["f1"]);
    assert_allowed(&ask(
        &bindings,
        &predefined(),
        "workflow",
        "view",
        Some(&inside),
    ));
}

#[test]
fn a_private_workflow_is_reached_only_by_grants_on_itself() {
    let roles = predefined();
    let path = wf1_path(&["wf1"]);
    let from_folder = [allow("g1", "viewer", on("folder", "f1"))];
    assert_denied(
        &ask(&from_folder, &roles, "workflow", "view", Some(&path)),
        Reason::PrivateBoundary,
    );
    let on_itself = [allow("g2", "viewer", on("workflow", "wf1"))];
    assert_allowed(&ask(&on_itself, &roles, "workflow", "view", Some(&path)));
}

#[test]
fn the_nearest_private_boundary_is_the_one_that_counts() {
    // f1 and wf2 are both private: a grant on f1 stops at wf2.
    let path = wf2_path(&["f1", "wf2"]);
    let d = ask(
        &[allow("g1", "owner", on("folder", "f1"))],
        &predefined(),
        "workflow",
        "view",
        Some(&path),
    );
    assert_denied(&d, Reason::PrivateBoundary);
}

#[test]
fn a_private_resource_below_does_not_hide_its_ancestors_from_their_own_grants() {
    // f1 is private, but asking about w1 has nothing private on its path.
    let d = ask(
        &[allow("g1", "viewer", Scope::Tenant)],
        &predefined(),
        "workspace",
        "view",
        Some(&w1_path()),
    );
    assert_allowed(&d);
}

// ------------------------------------------------------- deny

#[test]
fn a_deny_on_an_ancestor_beats_an_allow_on_the_resource() {
    let bindings = [
        allow("g-allow", "owner", on("workflow", "wf1")),
        deny("g-deny", "viewer", on("workspace", "w1")),
    ];
    let roles = predefined();
    let path = wf1_path(&[]);
    let d = ask(&bindings, &roles, "workflow", "view", Some(&path));
    assert_denied(&d, Reason::ExplicitDeny);
    assert_eq!(d.explanation.grant_id, "g-deny");
    assert_eq!(d.explanation.role_id, "viewer");
    assert_eq!(d.explanation.permission, "*.view");
    assert_eq!(d.explanation.scope, Some(on("workspace", "w1")));
    // The deny takes away only what its role names: `viewer` has no `edit`.
    assert_allowed(&ask(&bindings, &roles, "workflow", "edit", Some(&path)));
}

#[test]
fn a_tenant_wide_deny_beats_every_allow() {
    let bindings = [
        allow("g1", "owner", on("workflow", "wf1")),
        allow("g2", "owner", Scope::Tenant),
        deny("g3", "editor", Scope::Tenant),
    ];
    let path = wf1_path(&[]);
    let d = ask(&bindings, &predefined(), "workflow", "execute", Some(&path));
    assert_denied(&d, Reason::ExplicitDeny);
    assert_eq!(d.explanation.grant_id, "g3");
}

#[test]
fn a_deny_above_a_private_boundary_still_applies() {
    let bindings = [
        allow("g-allow", "owner", on("folder", "f1")),
        deny("g-deny", "viewer", on("workspace", "w1")),
    ];
    let path = wf1_path(&["f1"]);
    let d = ask(&bindings, &predefined(), "workflow", "view", Some(&path));
    assert_denied(&d, Reason::ExplicitDeny);
    assert_eq!(d.explanation.grant_id, "g-deny");
}

#[test]
fn a_deny_on_a_descendant_or_a_sibling_does_not_apply() {
    let bindings = [
        allow("g-allow", "viewer", on("workspace", "w1")),
        deny("g-child", "viewer", on("workflow", "wf1")),
        deny("g-sib", "viewer", on("folder", "sib")),
    ];
    let path = f1_path(&[]);
    assert_allowed(&ask(
        &bindings,
        &predefined(),
        "folder",
        "view",
        Some(&path),
    ));
}

#[test]
fn a_deny_held_through_a_team_applies_to_its_members() {
    let bindings = [
        allow("g-allow", "owner", on("workflow", "wf1")),
        deny("g-deny", "viewer", on("folder", "f1")).via(&["contractors"]),
    ];
    let path = wf1_path(&[]);
    let d = ask(&bindings, &predefined(), "workflow", "view", Some(&path));
    assert_denied(&d, Reason::ExplicitDeny);
    assert_eq!(d.explanation.via_teams, vec!["contractors".to_owned()]);
}

/// PRODUCT.md: a deny grant is "an explicit exclusion that beats every allow
/// on that scope and below", and the service "fails closed". A deny grant is
/// accepted on any scope, so a deny whose role is effective elsewhere must
/// still take its permissions away here rather than be silently ignored.
#[test]
fn a_deny_takes_effect_even_when_its_role_is_not_effective_at_the_deny_scope() {
    let runner = custom_role("runner", &["workflow.execute"], &[], &[], &["workflow"]);
    let roles = RoleTable::new(vec![runner]);
    let path = wf1_path(&[]);
    let bindings = [
        allow("g-allow", "editor", on("workspace", "w1")),
        deny("g-deny", "runner", on("folder", "f1")),
    ];
    let d = ask(&bindings, &roles, "workflow", "execute", Some(&path));
    assert_denied(&d, Reason::ExplicitDeny);

    // The same with the predefined account administrator role.
    let bindings = [
        allow("g-allow", "account_admin", Scope::Tenant),
        deny("g-deny", "account_admin", on("workspace", "w1")),
    ];
    let d = ask(
        &bindings,
        &predefined(),
        "workspace",
        "manage",
        Some(&w1_path()),
    );
    assert_denied(&d, Reason::ExplicitDeny);
}

// ------------------------------------------------------- expiry

#[test]
fn an_expired_allow_is_denied_as_grant_expired() {
    let path = wf1_path(&[]);
    let d = ask(
        &[allow("g1", "editor", on("folder", "f1")).expiring(NOW - 1)],
        &predefined(),
        "workflow",
        "edit",
        Some(&path),
    );
    assert_denied(&d, Reason::GrantExpired);
    assert_eq!(d.explanation.grant_id, "g1");
}

#[test]
fn an_allow_expires_at_its_expiry_instant_and_not_before() {
    let roles = predefined();
    let path = wf1_path(&[]);
    let at = |t| [allow("g1", "viewer", on("folder", "f1")).expiring(t)];
    assert_allowed(&ask(&at(NOW + 1), &roles, "workflow", "view", Some(&path)));
    assert_denied(
        &ask(&at(NOW), &roles, "workflow", "view", Some(&path)),
        Reason::GrantExpired,
    );
    assert!(at(NOW + 1)[0].live(NOW));
    assert!(!at(NOW)[0].live(NOW));
}

#[test]
fn an_expired_deny_is_ignored() {
    let bindings = [
        allow("g-allow", "viewer", on("workflow", "wf1")),
        deny("g-deny", "viewer", Scope::Tenant).expiring(NOW - 1),
    ];
    let path = wf1_path(&[]);
    let d = ask(&bindings, &predefined(), "workflow", "view", Some(&path));
    assert_allowed(&d);
    assert_eq!(d.explanation.grant_id, "g-allow");
}

#[test]
fn a_live_grant_wins_over_an_expired_one() {
    let bindings = [
        allow("g-old", "owner", on("workflow", "wf1")).expiring(NOW - 1),
        allow("g-new", "viewer", on("workspace", "w1")),
    ];
    let path = wf1_path(&[]);
    let d = ask(&bindings, &predefined(), "workflow", "view", Some(&path));
    assert_allowed(&d);
    assert_eq!(d.explanation.grant_id, "g-new");
}

// ------------------------------------------------------- role context

#[test]
fn account_admin_granted_on_a_workspace_is_not_effective() {
    let d = ask(
        &[allow("g1", "account_admin", on("workspace", "w1"))],
        &predefined(),
        "workspace",
        "manage",
        Some(&w1_path()),
    );
    assert_denied(&d, Reason::RoleNotEffective);
    assert_eq!(d.explanation.grant_id, "g1");
    assert_eq!(d.explanation.role_id, "account_admin");
}

#[test]
fn account_admin_at_tenant_scope_manages_workspaces_but_gives_no_access_inside_them() {
    let roles = predefined();
    let b = [allow("g1", "account_admin", Scope::Tenant)];
    for action in ["manage", "share", "delete", "create"] {
        assert_allowed(&ask(&b, &roles, "workspace", action, Some(&w1_path())));
    }
    assert_allowed(&ask(&b, &roles, "tenant", "manage_members", Some(&[])));
    assert_denied(
        &ask(&b, &roles, "workspace", "view", Some(&w1_path())),
        Reason::NoGrant,
    );
    let path = wf1_path(&[]);
    for action in ["view", "edit", "execute"] {
        assert_denied(
            &ask(&b, &roles, "workflow", action, Some(&path)),
            Reason::NoGrant,
        );
    }
}

#[test]
fn a_custom_role_inheriting_viewer_gives_view() {
    let roles = RoleTable::new(vec![custom_role(
        "auditor",
        &["tenant.view_audit"],
        &[],
        &["viewer"],
        &["tenant", "*"],
    )]);
    let path = wf1_path(&[]);
    let b = [allow("g1", "auditor", on("workspace", "w1"))];
    let d = ask(&b, &roles, "workflow", "view", Some(&path));
    assert_allowed(&d);
    assert_eq!(d.explanation.role_id, "auditor");
    assert_eq!(d.explanation.permission, "*.view");
    assert_denied(
        &ask(&b, &roles, "workflow", "edit", Some(&path)),
        Reason::NoGrant,
    );
}

#[test]
fn a_custom_role_effective_only_at_folders_does_nothing_on_a_workspace() {
    let roles = RoleTable::new(vec![custom_role(
        "folder_editor",
        &["workflow.edit"],
        &[],
        &["viewer"],
        &["folder"],
    )]);
    let path = wf1_path(&[]);
    let on_ws = [allow("g1", "folder_editor", on("workspace", "w1"))];
    // Neither its own permission nor the inherited `viewer` applies there.
    for action in ["edit", "view"] {
        assert_denied(
            &ask(&on_ws, &roles, "workflow", action, Some(&path)),
            Reason::RoleNotEffective,
        );
    }
    let on_folder = [allow("g2", "folder_editor", on("folder", "f1"))];
    for action in ["edit", "view"] {
        assert_allowed(&ask(&on_folder, &roles, "workflow", action, Some(&path)));
    }
}

#[test]
fn a_role_effective_at_every_resource_is_not_effective_on_the_tenant() {
    let roles = RoleTable::new(vec![custom_role(
        "runner",
        &["workflow.execute"],
        &[],
        &[],
        &["*"],
    )]);
    let path = wf1_path(&[]);
    let d = ask(
        &[allow("g1", "runner", Scope::Tenant)],
        &roles,
        "workflow",
        "execute",
        Some(&path),
    );
    assert_denied(&d, Reason::RoleNotEffective);
}

#[test]
fn inheriting_account_admin_does_not_make_it_effective_on_a_workspace() {
    let roles = RoleTable::new(vec![custom_role(
        "ws_boss",
        &["workflow.view"],
        &[],
        &["account_admin"],
        &["*"],
    )]);
    let d = ask(
        &[allow("g1", "ws_boss", on("workspace", "w1"))],
        &roles,
        "workspace",
        "manage",
        Some(&w1_path()),
    );
    assert_denied(&d, Reason::RoleNotEffective);
}

#[test]
fn admin_cannot_delete_or_transfer_a_project_but_the_owner_can() {
    let roles = predefined();
    let project = [node("project", "p1", false)];
    let admin = [allow("g1", "admin", on("project", "p1"))];
    let owner = [allow("g2", "owner", on("project", "p1"))];
    for action in ["delete", "transfer"] {
        assert_denied(
            &ask(&admin, &roles, "project", action, Some(&project)),
            Reason::NoGrant,
        );
        assert_allowed(&ask(&owner, &roles, "project", action, Some(&project)));
    }
    // Excluding `project.delete` leaves the rest of `*.*`.
    assert_allowed(&ask(&admin, &roles, "project", "edit", Some(&project)));
    let path = wf1_path(&[]);
    let admin_ws = [allow("g3", "admin", on("workspace", "w1"))];
    assert_allowed(&ask(&admin_ws, &roles, "workflow", "delete", Some(&path)));
}

#[test]
fn editor_edits_workflows_but_not_project_or_workspace_settings() {
    let roles = predefined();
    let project = [node("project", "p1", false)];
    let b = [allow("g1", "editor", on("project", "p1"))];
    for action in ["edit", "delete", "share"] {
        assert_denied(
            &ask(&b, &roles, "project", action, Some(&project)),
            Reason::NoGrant,
        );
    }
    assert_allowed(&ask(&b, &roles, "project", "view", Some(&project)));
    let path = wf1_path(&[]);
    let ws = [allow("g2", "editor", on("workspace", "w1"))];
    for action in ["view", "edit", "execute", "create", "delete"] {
        assert_allowed(&ask(&ws, &roles, "workflow", action, Some(&path)));
    }
    assert_denied(
        &ask(&ws, &roles, "workflow", "share", Some(&path)),
        Reason::NoGrant,
    );
    assert_denied(
        &ask(&ws, &roles, "workspace", "edit", Some(&w1_path())),
        Reason::NoGrant,
    );
}

#[test]
fn a_grant_of_a_role_the_tenant_does_not_have_gives_nothing() {
    let path = wf1_path(&[]);
    let d = ask(
        &[allow("g1", "ghost", on("workspace", "w1"))],
        &predefined(),
        "workflow",
        "view",
        Some(&path),
    );
    assert_denied(&d, Reason::NoGrant);
}

// ------------------------------------------------------- explanations

#[test]
fn the_explanation_names_the_nearest_scope_and_the_teams_it_came_through() {
    let bindings = [
        allow("g-tenant", "owner", Scope::Tenant),
        allow("g-ws", "viewer", on("workspace", "w1")),
        allow("g-f1", "viewer", on("folder", "f1")).via(&["platform", "engineering"]),
    ];
    let path = wf2_path(&[]);
    let d = ask(&bindings, &predefined(), "workflow", "view", Some(&path));
    assert_allowed(&d);
    assert_eq!(d.explanation.grant_id, "g-f1");
    assert_eq!(d.explanation.scope, Some(on("folder", "f1")));
    assert_eq!(
        d.explanation.via_teams,
        vec!["platform".to_owned(), "engineering".to_owned()]
    );
}

#[test]
fn on_the_same_scope_the_explanation_prefers_fewer_teams_then_the_smaller_grant_id() {
    let roles = predefined();
    let path = wf1_path(&[]);
    let bindings = [
        allow("g-a", "viewer", on("folder", "f1")).via(&["t1", "t2"]),
        allow("g-b", "viewer", on("folder", "f1")).via(&["t3"]),
        allow("g-c", "viewer", on("folder", "f1")),
    ];
    let d = ask(&bindings, &roles, "workflow", "view", Some(&path));
    assert_eq!(d.explanation.grant_id, "g-c");
    assert!(d.explanation.via_teams.is_empty());

    let teams_only = [
        allow("g-z", "viewer", on("folder", "f1")).via(&["t9"]),
        allow("g-y", "viewer", on("folder", "f1")).via(&["t8"]),
    ];
    let d = ask(&teams_only, &roles, "workflow", "view", Some(&path));
    assert_eq!(d.explanation.grant_id, "g-y");
    let reversed: Vec<Binding> = teams_only.iter().rev().cloned().collect();
    let d2 = ask(&reversed, &roles, "workflow", "view", Some(&path));
    assert_eq!(d2.explanation.grant_id, "g-y");
}

// ------------------------------------------------------- denial reasons

/// The predefined roles plus `folder_viewer` (`workflow.view`, effective only
/// on folders), to have a grant that matches but is not effective.
fn with_folder_viewer() -> RoleTable {
    RoleTable::new(vec![custom_role(
        "folder_viewer",
        &["workflow.view"],
        &[],
        &[],
        &["folder"],
    )])
}

/// Runs the question with the bindings in both orders: the reason must not
/// depend on the order the store returned them in.
#[track_caller]
fn assert_reason_in_any_order(bindings: &[Binding], path: &[ResourceNode], want: Reason) {
    let roles = with_folder_viewer();
    let d = ask(bindings, &roles, "workflow", "view", Some(path));
    assert_denied(&d, want);
    let reversed: Vec<Binding> = bindings.iter().rev().cloned().collect();
    let r = ask(&reversed, &roles, "workflow", "view", Some(path));
    assert_denied(&r, want);
    assert_eq!(d.explanation.grant_id, r.explanation.grant_id);
}

#[test]
fn an_explicit_deny_is_reported_before_an_expired_grant() {
    let path = wf1_path(&["f1"]);
    assert_reason_in_any_order(
        &[
            allow("g-exp", "viewer", on("workflow", "wf1")).expiring(NOW - 1),
            allow("g-above", "viewer", on("workspace", "w1")),
            deny("g-deny", "viewer", Scope::Tenant),
        ],
        &path,
        Reason::ExplicitDeny,
    );
}

#[test]
fn an_expired_grant_is_reported_before_a_private_boundary() {
    let path = wf1_path(&["f1"]);
    let bindings = [
        allow("g-above", "viewer", on("workspace", "w1")),
        allow("g-exp", "viewer", on("workflow", "wf1")).expiring(NOW - 1),
        allow("g-ne", "folder_viewer", on("workspace", "w1")),
    ];
    assert_reason_in_any_order(&bindings, &path, Reason::GrantExpired);
    let d = ask(
        &bindings,
        &with_folder_viewer(),
        "workflow",
        "view",
        Some(&path),
    );
    assert_eq!(d.explanation.grant_id, "g-exp");
}

#[test]
fn a_private_boundary_is_reported_before_a_role_that_is_not_effective() {
    let roles = with_folder_viewer();
    let path = wf1_path(&["wf1"]);
    let bindings = [
        allow("g-ne", "folder_viewer", on("workflow", "wf1")),
        allow("g-above", "viewer", on("folder", "f1")),
    ];
    for order in [bindings.to_vec(), bindings.iter().rev().cloned().collect()] {
        let d = ask(&order, &roles, "workflow", "view", Some(&path));
        assert_denied(&d, Reason::PrivateBoundary);
        assert_eq!(d.explanation.grant_id, "g-above");
    }
}

#[test]
fn a_role_that_is_not_effective_is_reported_before_no_grant() {
    let roles = with_folder_viewer();
    let path = wf1_path(&[]);
    let bindings = [
        allow("g-none", "editor", on("folder", "sib")),
        allow("g-ne", "folder_viewer", on("workspace", "w1")),
        allow("g-nomatch", "account_admin", Scope::Tenant),
    ];
    for order in [bindings.to_vec(), bindings.iter().rev().cloned().collect()] {
        let d = ask(&order, &roles, "workflow", "view", Some(&path));
        assert_denied(&d, Reason::RoleNotEffective);
        assert_eq!(d.explanation.grant_id, "g-ne");
    }
}

#[test]
fn with_no_matching_grant_at_all_the_reason_is_no_grant_with_an_empty_explanation() {
    let path = wf1_path(&[]);
    let d = ask(
        &[allow("g1", "viewer", on("folder", "sib"))],
        &predefined(),
        "workflow",
        "view",
        Some(&path),
    );
    assert_denied(&d, Reason::NoGrant);
    assert!(d.explanation.grant_id.is_empty());
    assert_eq!(d.explanation.scope, None);
    assert!(!d.explanation.detail.is_empty());
}

// ------------------------------------------------------- candidate_scopes

#[test]
fn candidate_scopes_lists_each_matching_scope_once() {
    let bindings = [
        allow("g1", "viewer", on("folder", "f1")),
        allow("g2", "editor", on("folder", "f1")).via(&["t1"]),
        allow("g3", "viewer", on("workspace", "w2")),
    ];
    let mut got = candidate_scopes(&bindings, &predefined(), "workflow", "view", NOW);
    got.sort();
    assert_eq!(got, vec![on("folder", "f1"), on("workspace", "w2")]);
}

#[test]
fn candidate_scopes_collapses_to_the_tenant_when_a_tenant_wide_grant_matches() {
    let bindings = [
        allow("g1", "viewer", on("folder", "f1")),
        allow("g2", "viewer", Scope::Tenant),
    ];
    assert_eq!(
        candidate_scopes(&bindings, &predefined(), "workflow", "view", NOW),
        vec![Scope::Tenant]
    );
}

#[test]
fn candidate_scopes_ignores_expired_deny_non_matching_and_ineffective_grants() {
    let bindings = [
        allow("g-exp", "editor", Scope::Tenant).expiring(NOW),
        deny("g-deny", "editor", on("workspace", "w3")),
        allow("g-nomatch", "viewer", on("workspace", "w4")),
        allow("g-ne", "account_admin", on("workspace", "w5")),
        allow("g-ok", "editor", on("folder", "f1")),
    ];
    let roles = predefined();
    assert_eq!(
        candidate_scopes(&bindings, &roles, "workflow", "edit", NOW),
        vec![on("folder", "f1")]
    );
    // account_admin on w5 would match workspace.manage, were it effective there.
    assert!(candidate_scopes(&bindings, &roles, "workspace", "manage", NOW).is_empty());
}

#[test]
fn every_allowed_resource_lies_under_some_candidate_scope() {
    // The superset promise that ListAccessible relies on.
    let roles = predefined();
    let bindings = [
        allow("g1", "viewer", on("folder", "f2")),
        allow("g2", "editor", on("workspace", "w1")).expiring(NOW - 1),
        deny("g3", "viewer", on("folder", "sib")),
    ];
    let scopes = candidate_scopes(&bindings, &roles, "workflow", "view", NOW);
    for path in [wf1_path(&[]), wf2_path(&[]), wf2_path(&["f2"])] {
        let d = ask(&bindings, &roles, "workflow", "view", Some(&path));
        let covered = scopes.iter().any(|s| match s {
            Scope::Tenant => true,
            Scope::Resource(r) => path.iter().any(|n| &n.resource == r),
        });
        assert_eq!(d.allowed, covered, "{path:?}: {d:?} vs {scopes:?}");
    }
}

// ------------------------------------------------------- RoleTable

#[test]
fn role_match_reports_the_matching_pattern_not_effective_or_no_match() {
    let roles = predefined();
    assert_eq!(
        roles.role_match("viewer", "folder", "workflow", "view"),
        RoleMatch::Matched("*.view".to_owned())
    );
    assert_eq!(
        roles.role_match("viewer", "folder", "workflow", "edit"),
        RoleMatch::NoMatch
    );
    assert_eq!(
        roles.role_match("account_admin", "workspace", "workspace", "manage"),
        RoleMatch::NotEffective
    );
    assert_eq!(
        roles.role_match("account_admin", "tenant", "workspace", "manage"),
        RoleMatch::Matched("workspace.manage".to_owned())
    );
    assert_eq!(
        roles.role_match("admin", "project", "project", "delete"),
        RoleMatch::NoMatch
    );
    assert_eq!(
        roles.role_match("nonexistent", "tenant", "workflow", "view"),
        RoleMatch::NoMatch
    );
}

#[test]
fn role_match_finds_permissions_through_several_levels_of_inheritance() {
    let roles = RoleTable::new(vec![
        custom_role("a", &["thing.poke"], &[], &["b"], &["*"]),
        custom_role("b", &["thing.prod"], &[], &["viewer"], &["*"]),
    ]);
    assert_eq!(
        roles.role_match("a", "folder", "workflow", "view"),
        RoleMatch::Matched("*.view".to_owned())
    );
    assert_eq!(
        roles.role_match("a", "folder", "thing", "prod"),
        RoleMatch::Matched("thing.prod".to_owned())
    );
    assert_eq!(
        roles.role_match("b", "folder", "thing", "poke"),
        RoleMatch::NoMatch
    );
}

#[test]
fn a_corrupt_inheritance_cycle_is_cut_and_matching_terminates() {
    // The store refuses cycles; should a table hold one anyway, the roles on
    // it keep only their own permissions (fail closed) and nothing loops.
    let roles = RoleTable::new(vec![
        custom_role("a", &["thing.poke"], &[], &["b"], &["*"]),
        custom_role("b", &["thing.prod"], &[], &["a"], &["*"]),
        custom_role("c", &["thing.zip"], &[], &["a"], &["*"]),
    ]);
    assert_eq!(
        roles.role_match("a", "folder", "thing", "poke"),
        RoleMatch::Matched("thing.poke".to_owned())
    );
    assert_eq!(
        roles.role_match("a", "folder", "thing", "prod"),
        RoleMatch::NoMatch
    );
    assert_eq!(
        roles.role_match("a", "folder", "thing", "zap"),
        RoleMatch::NoMatch
    );
    // A role that merely inherits from the cycle keeps its inheritance.
    assert_eq!(
        roles.role_match("c", "folder", "thing", "poke"),
        RoleMatch::Matched("thing.poke".to_owned())
    );
    let want: std::collections::HashSet<String> = ["a"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(roles.closure("a"), want);
}

#[test]
fn excluded_permissions_remove_own_and_inherited_permissions() {
    // proto: "Patterns removed from everything this role gives".
    let roles = RoleTable::new(vec![
        custom_role(
            "no_delete_editor",
            &["*.edit", "*.delete"],
            &["workflow.delete"],
            &[],
            &["*"],
        ),
        custom_role(
            "editor_plus",
            &["*.share"],
            &["workflow.delete"],
            &["editor"],
            &["*"],
        ),
    ]);
    assert_eq!(
        roles.role_match("no_delete_editor", "folder", "workflow", "delete"),
        RoleMatch::NoMatch
    );
    assert_eq!(
        roles.role_match("no_delete_editor", "folder", "connection", "delete"),
        RoleMatch::Matched("*.delete".to_owned())
    );
    assert_eq!(
        roles.role_match("editor_plus", "folder", "workflow", "delete"),
        RoleMatch::NoMatch
    );
    assert_eq!(
        roles.role_match("editor_plus", "folder", "connection", "delete"),
        RoleMatch::Matched("*.delete".to_owned())
    );
}

#[test]
fn knows_action_covers_the_builtin_vocabulary_and_custom_role_actions_only() {
    let roles = RoleTable::new(vec![custom_role(
        "approver",
        &["workflow.approve", "*.archive"],
        &[],
        &[],
        &["*"],
    )]);
    for a in [
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
        "approve",
        "archive",
    ] {
        assert!(roles.knows_action(a), "{a}");
    }
    for a in ["frobnicate", "workflow", "approver", "*", ""] {
        assert!(!roles.knows_action(a), "{a}");
    }
    assert!(!predefined().knows_action("approve"));
}

#[test]
fn a_custom_role_cannot_shadow_a_predefined_one() {
    let roles = RoleTable::new(vec![custom_role("viewer", &["*.*"], &[], &[], &["*"])]);
    assert_eq!(
        roles.role_match("viewer", "folder", "workflow", "edit"),
        RoleMatch::NoMatch
    );
    assert!(roles.get("viewer").is_some_and(|r| r.locked));
}

#[test]
fn closure_is_the_role_and_everything_it_inherits_transitively() {
    let roles = RoleTable::new(vec![
        custom_role("a", &["thing.poke"], &[], &["b", "viewer"], &["*"]),
        custom_role("b", &["thing.prod"], &[], &["editor"], &["*"]),
        custom_role("c", &["thing.zap"], &[], &[], &["*"]),
    ]);
    let set = |ids: &[&str]| -> std::collections::HashSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    };
    assert_eq!(roles.closure("a"), set(&["a", "b", "viewer", "editor"]));
    assert_eq!(roles.closure("c"), set(&["c"]));
    assert_eq!(roles.closure("owner"), set(&["owner"]));
    assert_eq!(roles.closure("ghost"), set(&["ghost"]));
}

// ------------------------------------------------------------ conditions

mod conditions {
    use super::*;
    use crate::model::condition::RequestContext;
    use crate::model::Condition;
    use serde_json::json;

    trait Conditional {
        fn when(self, src: &str) -> Self;
    }

    impl Conditional for Binding {
        fn when(mut self, src: &str) -> Self {
            Arc::make_mut(&mut self.grant).condition =
                Some(Condition::compile("condition", src).unwrap());
            self
        }
    }

    fn with(ctx: serde_json::Value) -> RequestContext {
        let typed = ctx
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        RequestContext::new([], typed).unwrap()
    }

    fn ask_with(
        bindings: &[Binding],
        roles: &RoleTable,
        action: &str,
        path: &[ResourceNode],
        context: &RequestContext,
    ) -> Decision {
        let alice = principal(PrincipalStatus::Active);
        decide(
            Subject::Principal(Some(&alice)),
            bindings,
            roles,
            Question {
                rtype: "workflow",
                action,
                path: Some(path),
                context,
            },
            NOW,
        )
    }

    #[test]
    fn a_conditional_allow_counts_only_when_its_condition_holds() {
        let path = wf1_path(&[]);
        let g = [
            allow("g1", "editor", Scope::Resource(rref("workspace", "w1")))
                .when("request.mfa == true"),
        ];
        let roles = predefined();
        let d = ask_with(&g, &roles, "edit", &path, &with(json!({"mfa": true})));
        assert_allowed(&d);
        assert_eq!(d.explanation.condition, "request.mfa == true");
        let d = ask_with(&g, &roles, "edit", &path, &with(json!({"mfa": false})));
        assert_denied(&d, Reason::ConditionFailed);
        assert_eq!(d.explanation.grant_id, "g1");
        let d = ask_with(&g, &roles, "edit", &path, RequestContext::none());
        assert_denied(&d, Reason::ConditionContextMissing);
        assert_eq!(d.explanation.missing_context, ["mfa"]);
    }

    #[test]
    fn an_unconditional_grant_further_up_still_allows_when_the_nearer_condition_fails() {
        let path = wf1_path(&[]);
        let g = [
            allow("near", "editor", Scope::Resource(rref("folder", "f1"))).when("request.mfa"),
            allow("far", "viewer", Scope::Tenant),
        ];
        let d = ask_with(&g, &predefined(), "view", &path, RequestContext::none());
        assert_allowed(&d);
        assert_eq!(d.explanation.grant_id, "far");
        // And with the context, the nearer one decides.
        let d = ask_with(
            &g,
            &predefined(),
            "view",
            &path,
            &with(json!({"mfa": true})),
        );
        assert_eq!(d.explanation.grant_id, "near");
    }

    #[test]
    fn a_conditional_deny_applies_when_it_holds_and_when_it_cannot_be_told() {
        let path = wf1_path(&[]);
        let g = [
            allow("a", "editor", Scope::Tenant),
            deny("d", "editor", Scope::Resource(rref("workspace", "w1")))
                .when("!inCidr(request.ip, '10.0.0.0/8')"),
        ];
        let roles = predefined();
        let inside = ask_with(&g, &roles, "edit", &path, &with(json!({"ip": "10.0.0.9"})));
        assert_allowed(&inside);
        let outside = ask_with(&g, &roles, "edit", &path, &with(json!({"ip": "8.8.8.8"})));
        assert_denied(&outside, Reason::ExplicitDeny);
        assert_eq!(
            outside.explanation.condition,
            "!inCidr(request.ip, '10.0.0.0/8')"
        );
        // Without the ip the deny might hold: the answer asks for it.
        let unknown = ask_with(&g, &roles, "edit", &path, RequestContext::none());
        assert_denied(&unknown, Reason::ConditionContextMissing);
        assert_eq!(unknown.explanation.missing_context, ["ip"]);
        // An ip that is not one: the deny counts (fail closed).
        let garbage = ask_with(&g, &roles, "edit", &path, &with(json!({"ip": "x"})));
        assert_denied(&garbage, Reason::ExplicitDeny);
    }

    #[test]
    fn a_role_condition_binds_every_grant_of_it_and_of_roles_inheriting_it() {
        let mut secure = custom_role("secure_editor", &["workflow.edit"], &[], &[], &["*"]);
        secure.condition =
            Some(Condition::compile("role.condition", "request.mfa == true").unwrap());
        let wider = custom_role("wider", &["workflow.view"], &[], &["secure_editor"], &["*"]);
        let roles = RoleTable::new(vec![secure, wider]);
        assert_eq!(roles.conditions("wider").len(), 1);
        assert!(roles.conditions("editor").is_empty());
        let path = wf1_path(&[]);
        for role in ["secure_editor", "wider"] {
            let g = [allow("g", role, Scope::Resource(rref("workspace", "w1")))];
            assert_denied(
                &ask_with(&g, &roles, "edit", &path, RequestContext::none()),
                Reason::ConditionContextMissing,
            );
            assert_allowed(&ask_with(
                &g,
                &roles,
                "edit",
                &path,
                &with(json!({"mfa": true})),
            ));
        }
    }

    #[test]
    fn a_condition_reads_the_attributes_of_the_resource_asked_about() {
        let mut path = wf1_path(&[]);
        path[0].attributes = Some(Arc::new([("user".to_owned(), "alice".to_owned())].into()));
        let g = [allow("g", "editor", Scope::Tenant).when("resource.user == subject.id")];
        assert_allowed(&ask_with(
            &g,
            &predefined(),
            "edit",
            &path,
            RequestContext::none(),
        ));
        path[0].attributes = Some(Arc::new([("user".to_owned(), "bob".to_owned())].into()));
        assert_denied(
            &ask_with(&g, &predefined(), "edit", &path, RequestContext::none()),
            Reason::ConditionFailed,
        );
    }
}

#[test]
fn an_invitation_that_lapsed_is_denied_as_expired_and_one_that_did_not_as_invited() {
    let path = wf1_path(&[]);
    let g = [allow("g", "viewer", Scope::Tenant)];
    for (expiry, reason) in [
        (None, Reason::PrincipalInvited),
        (Some(NOW + 1), Reason::PrincipalInvited),
        (Some(NOW), Reason::PrincipalInvitationExpired),
        (Some(NOW - 1), Reason::PrincipalInvitationExpired),
    ] {
        let mut p = principal(PrincipalStatus::Invited);
        p.invitation_expires_at = expiry;
        let d = decide(
            Subject::Principal(Some(&p)),
            &g,
            &predefined(),
            Question {
                rtype: "workflow",
                action: "view",
                path: Some(&path),
                context: crate::model::condition::RequestContext::none(),
            },
            NOW,
        );
        assert_denied(&d, reason);
    }
}

#[test]
fn an_implied_action_denied_denies_the_implying_one() {
    use crate::model::ImpliedAction;
    let path = wf1_path(&[]);
    let imply = |a: &str, i: &str| ImpliedAction {
        action: a.into(),
        implies: i.into(),
    };
    let roles = predefined().with_implications(&[imply("edit", "view"), imply("execute", "edit")]);
    assert_eq!(roles.implied("execute"), ["edit", "view"]);
    let g = [
        allow("e", "editor", Scope::Resource(rref("workspace", "w1"))),
        deny("d", "viewer", Scope::Resource(rref("workflow", "wf1"))),
    ];
    for action in ["edit", "execute"] {
        let d = ask(&g, &roles, "workflow", action, Some(&path));
        assert_denied(&d, Reason::ExplicitDeny);
        assert_eq!(d.explanation.grant_id, "d");
        assert!(d.explanation.detail.contains("implies `"), "{d:?}");
    }
    // Without the deny the implication changes nothing.
    assert_allowed(&ask(&g[..1], &roles, "workflow", "execute", Some(&path)));
    // Not granted the implied action at all is a denial too.
    let runner = custom_role("runner", &["workflow.execute"], &[], &[], &["*"]);
    let roles = RoleTable::new(vec![runner]).with_implications(&[imply("execute", "view")]);
    let g = [allow(
        "r",
        "runner",
        Scope::Resource(rref("workspace", "w1")),
    )];
    assert_denied(
        &ask(&g, &roles, "workflow", "execute", Some(&path)),
        Reason::NoGrant,
    );
}

#[test]
fn implications_are_checked_when_written() {
    use crate::model::{validate_implied_actions, ImpliedAction};
    let imply = |a: &str, i: &str| ImpliedAction {
        action: a.into(),
        implies: i.into(),
    };
    let ok =
        validate_implied_actions("f", &[imply("edit", "view"), imply("edit", "view")]).unwrap();
    assert_eq!(ok.len(), 1, "duplicates are merged");
    for bad in [
        vec![imply("view", "view")],
        vec![
            imply("edit", "view"),
            imply("view", "execute"),
            imply("execute", "edit"),
        ],
        vec![imply("Edit!", "view")],
        (0..33).map(|i| imply(&format!("a{i}"), "view")).collect(),
    ] {
        assert!(validate_implied_actions("f", &bad).is_err(), "{bad:?}");
    }
}

#[test]
fn only_tenant_wide_owner_and_admin_grants_reach_into_a_restricted_resource() {
    // wf1 → f1 (restricted) → w1.
    let mut path = wf1_path(&[]);
    path[1].restricted = true;
    let roles = predefined();
    for (g, reason) in [
        (
            allow("g", "editor", Scope::Resource(rref("workspace", "w1"))),
            Some(Reason::RestrictedBoundary),
        ),
        (
            allow("g", "editor", Scope::Tenant),
            Some(Reason::RestrictedBoundary),
        ),
        (
            allow("g", "admin", Scope::Resource(rref("workspace", "w1"))),
            Some(Reason::RestrictedBoundary),
        ),
        (allow("g", "admin", Scope::Tenant), None),
        (allow("g", "owner", Scope::Tenant), None),
        // On the restricted resource itself and below, as usual.
        (
            allow("g", "editor", Scope::Resource(rref("folder", "f1"))),
            None,
        ),
        (
            allow("g", "editor", Scope::Resource(rref("workflow", "wf1"))),
            None,
        ),
    ] {
        let d = ask(
            std::slice::from_ref(&g),
            &roles,
            "workflow",
            "edit",
            Some(&path),
        );
        match reason {
            None => assert_allowed(&d),
            Some(r) => assert_denied(&d, r),
        }
    }
    // A private boundary still stops even tenant-wide admins.
    path[1].private = true;
    let d = ask(
        &[allow("g", "admin", Scope::Tenant)],
        &roles,
        "workflow",
        "edit",
        Some(&path),
    );
    assert_denied(&d, Reason::PrivateBoundary);
    // A deny above a restricted resource still counts.
    path[1].private = false;
    let d = ask(
        &[
            allow("a", "admin", Scope::Tenant),
            deny("d", "editor", Scope::Resource(rref("workspace", "w1"))),
        ],
        &roles,
        "workflow",
        "edit",
        Some(&path),
    );
    assert_denied(&d, Reason::ExplicitDeny);
}

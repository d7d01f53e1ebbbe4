//! Oneflow (seed 002, "Roles and permissions in Oneflow"): locked predefined
//! roles, the account administrator who manages the account but not the work
//! inside workspaces, workspace roles granted at account level (every
//! workspace) or on one workspace, role context, at least one account
//! administrator, several roles at once, the per-user access overview and
//! custom roles.
//!
//! Oneflow's roles map onto Portcullis's predefined ones: Account
//! administrator = `account_admin`, Workspace manager = `admin`, Workspace
//! member = `editor`, Workspace read-only = `viewer`. The account is the
//! tenant; "Account access" grants are tenant-wide grants, "Workspace access"
//! grants sit on a `workspace` resource.

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::{Code, Status};

const WS1: &str = "workspace:ws1";
const WS2: &str = "workspace:ws2";

/// Tenant `acme` (with its account administrator `root-admin`) and two
/// workspaces, each holding a contract.
async fn oneflow_account(b: Backend) -> TestApp {
    let app = spawn_app_on(b).await;
    app.resource(WS1, None).await;
    app.resource(WS2, None).await;
    app.resource("contract:c1", Some(WS1)).await;
    app.resource("contract:c2", Some(WS2)).await;
    app
}

async fn invite_as(app: &TestApp, actor: &str, id: &str) -> Result<String, Status> {
    app.operator()
        .create_principal(pb::CreatePrincipalRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            principal_id: id.into(),
            kind: pb::PrincipalKind::User as i32,
            display_name: id.into(),
            status: pb::PrincipalStatus::Invited as i32,
            invitation_expire_time: Default::default(),
        })
        .await
        .map(|r| r.into_inner().consistency_token)
}

async fn revoke_as(app: &TestApp, actor: &str, grant_id: &str) -> Result<String, Status> {
    app.operator()
        .delete_grant(pb::DeleteGrantRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            grant_id: grant_id.into(),
        })
        .await
        .map(|r| r.into_inner().consistency_token)
}

async fn overview(
    app: &TestApp,
    principal: &str,
    scope_type: &str,
) -> pb::GetAccessOverviewResponse {
    app.admin()
        .get_access_overview(pb::GetAccessOverviewRequest {
            tenant_id: TENANT.into(),
            principal_id: principal.into(),
            scope_type: scope_type.into(),
            ..Default::default()
        })
        .await
        .expect("access overview")
        .into_inner()
}

/// The grants a subject holds directly.
async fn grants_of(app: &TestApp, subject: &str) -> Vec<pb::Grant> {
    app.operator()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj(subject)),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list grants")
        .into_inner()
        .grants
}

fn scope_name(s: &Option<pb::ResourceRef>) -> String {
    match s {
        None => "tenant".to_owned(),
        Some(r) => format!("{}:{}", r.r#type, r.id),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---- locked predefined roles ------------------------------------------

async fn predefined_roles_cannot_be_edited_or_removed(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("rita").await;
    app.grant("rita", "viewer", WS1).await;
    for id in ["account_admin", "owner", "admin", "editor", "viewer"] {
        let role = app
            .admin()
            .get_role(pb::GetRoleRequest {
                tenant_id: TENANT.into(),
                role_id: id.into(),
                actor_id: String::new(),
            })
            .await
            .expect("get role")
            .into_inner()
            .role
            .expect("role");
        assert!(role.locked, "{id} is marked locked");
        // A well-formed new definition, so only the lock can refuse it.
        let edited = pb::Role {
            id: id.into(),
            display_name: format!("{id} (edited)"),
            permissions: vec!["*.view".into(), "*.edit".into()],
            effective_at: vec!["tenant".into(), "*".into()],
            ..Default::default()
        };
        for actor in ["", ADMIN] {
            let update = app
                .operator()
                .update_role(pb::UpdateRoleRequest {
                    request_id: String::new(),
                    tenant_id: TENANT.into(),
                    actor_id: actor.into(),
                    role: Some(edited.clone()),
                    ..Default::default()
                })
                .await;
            assert_eq!(code(update), Code::FailedPrecondition, "update {id}");
            for cascade in [false, true] {
                let delete = app
                    .operator()
                    .delete_role(pb::DeleteRoleRequest {
                        request_id: String::new(),
                        tenant_id: TENANT.into(),
                        actor_id: actor.into(),
                        role_id: id.into(),
                        cascade,
                    })
                    .await;
                assert_eq!(code(delete), Code::FailedPrecondition, "delete {id}");
            }
        }
        let recreate = app
            .operator()
            .create_role(pb::CreateRoleRequest {
                tenant_id: TENANT.into(),
                role: Some(edited),
                ..Default::default()
            })
            .await;
        assert_eq!(code(recreate), Code::FailedPrecondition, "re-create {id}");
    }
    // Nothing changed: a read-only user still only reads, and the grant stands.
    assert!(app.check("rita", "view", "contract:c1").await);
    assert!(!app.check("rita", "edit", "contract:c1").await);
    assert_eq!(grants_of(&app, "rita").await.len(), 1);
}

// ---- the account administrator ----------------------------------------

async fn account_admin_manages_users_and_workspaces_but_works_in_none(b: Backend) {
    let app = oneflow_account(b).await;
    // User invitations.
    invite_as(&app, ADMIN, "ivy").await.expect("invite");
    assert_eq!(
        app.reason("ivy", "view", WS1).await,
        pb::Reason::PrincipalInvited
    );
    // Ivy accepts the invitation (an administrator cannot do it for her).
    assert_eq!(
        code(
            app.set_status(ADMIN, "ivy", pb::PrincipalStatus::Active)
                .await
        ),
        Code::FailedPrecondition
    );
    app.accept("ivy").await.expect("accept");
    // Workspace administration: create one, grant access to it, at account
    // level too.
    app.resource_as(ADMIN, "workspace:ws3", None, false)
        .await
        .expect("create workspace");
    app.grant_full(
        ADMIN,
        "ivy",
        "editor",
        "workspace:ws3",
        pb::Effect::Allow,
        None,
    )
    .await
    .expect("grant workspace access");
    app.grant_full(ADMIN, "ivy", "viewer", "tenant", pb::Effect::Allow, None)
        .await
        .expect("grant account-level access");
    app.resource("contract:c3", Some("workspace:ws3")).await;
    assert!(app.check("ivy", "view", "workspace:ws3").await);
    assert!(app.check("ivy", "edit", "contract:c3").await);
    assert!(app.check("ivy", "view", "contract:c2").await);

    // Workspaces are administered from the admin level...
    for ws in [WS1, WS2, "workspace:ws3"] {
        for action in ["manage", "share", "delete"] {
            assert!(app.check(ADMIN, action, ws).await, "{action} {ws}");
        }
    }
    // ... but there is no access inside any workspace.
    for ws in [WS1, WS2, "workspace:ws3"] {
        assert_eq!(
            app.reason(ADMIN, "view", ws).await,
            pb::Reason::NoGrant,
            "{ws}"
        );
        assert!(!app.check(ADMIN, "edit", ws).await, "{ws}");
    }
    for c in ["contract:c1", "contract:c2", "contract:c3"] {
        for action in ["view", "edit", "execute", "create", "delete"] {
            assert!(!app.check(ADMIN, action, c).await, "{action} {c}");
        }
    }
    assert!(app.list(ADMIN, "view", "workspace").await.is_empty());
    assert!(app.list(ADMIN, "view", "contract").await.is_empty());
    assert_eq!(
        code(
            app.resource_as(ADMIN, "contract:c4", Some(WS1), false)
                .await
        ),
        Code::PermissionDenied
    );

    // "To work inside a workspace, the user also needs a role with workspace
    // permissions."
    app.grant(ADMIN, "editor", WS1).await;
    assert!(app.check(ADMIN, "edit", "contract:c1").await);
    assert!(!app.check(ADMIN, "view", "contract:c2").await);
    assert_eq!(app.list(ADMIN, "view", "workspace").await, vec!["ws1"]);
}

async fn a_workspace_role_granted_at_account_level_applies_to_all_workspaces(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("mia").await;
    // Workspace member under Account access.
    app.grant("mia", "editor", "tenant").await;
    app.resource("workspace:ws3", None).await;
    app.resource("contract:c3", Some("workspace:ws3")).await;
    for ws in [WS1, WS2, "workspace:ws3"] {
        assert!(app.check("mia", "view", ws).await, "{ws}");
    }
    for c in ["contract:c1", "contract:c2", "contract:c3"] {
        assert!(app.check("mia", "edit", c).await, "{c}");
    }
    assert_eq!(
        sorted(app.list("mia", "view", "workspace").await),
        vec!["ws1", "ws2", "ws3"]
    );
    // A workspace role at account level is still no account administration.
    assert_eq!(
        code(invite_as(&app, "mia", "someone").await),
        Code::PermissionDenied
    );
    assert!(!overview(&app, "mia", "").await.account_admin);
}

async fn a_workspace_role_granted_on_one_workspace_applies_only_there(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("wes").await;
    app.grant("wes", "editor", WS1).await;
    assert!(app.check("wes", "view", WS1).await);
    assert!(app.check("wes", "edit", "contract:c1").await);
    assert_eq!(app.reason("wes", "view", WS2).await, pb::Reason::NoGrant);
    assert_eq!(
        app.reason("wes", "view", "contract:c2").await,
        pb::Reason::NoGrant
    );
    assert_eq!(app.list("wes", "view", "workspace").await, vec!["ws1"]);
    assert_eq!(app.list("wes", "edit", "contract").await, vec!["c1"]);
}

async fn account_admin_granted_on_a_workspace_grants_no_account_permission(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("aaron").await;
    let g = app.grant("aaron", "account_admin", WS1).await;
    // No account-level administration as an actor.
    assert_eq!(
        code(invite_as(&app, "aaron", "someone").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            app.set_status("aaron", "aaron", pb::PrincipalStatus::Suspended)
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(app.resource_as("aaron", "workspace:ws3", None, false).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            app.grant_full(
                "aaron",
                "aaron",
                "editor",
                "tenant",
                pb::Effect::Allow,
                None
            )
            .await
        ),
        Code::PermissionDenied
    );
    let custom_role = app
        .operator()
        .create_role(pb::CreateRoleRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: "aaron".into(),
            role: Some(pb::Role {
                id: "aaron_role".into(),
                display_name: "aaron_role".into(),
                permissions: vec!["*.view".into()],
                effective_at: vec!["*".into()],
                ..Default::default()
            }),
        })
        .await;
    assert_eq!(code(custom_role), Code::PermissionDenied);
    // Not even the workspace administration the role names, on that very
    // workspace: the role is not effective there.
    for action in ["manage", "share", "delete"] {
        let d = app.check_full("aaron", action, WS1).await;
        assert!(!d.allowed, "{action}");
        assert_eq!(d.reason, pb::Reason::RoleNotEffective as i32, "{action}");
        let e = d.explanation.expect("explanation");
        assert_eq!(e.grant_id, g.id);
        assert_eq!(e.role_id, "account_admin");
    }
    assert_eq!(
        code(
            app.grant_full("aaron", "aaron", "editor", WS1, pb::Effect::Allow, None)
                .await
        ),
        Code::PermissionDenied
    );
    let o = overview(&app, "aaron", "").await;
    assert!(!o.account_admin);
    assert_eq!(o.entries.len(), 1);
    assert!(!o.entries[0].effective);

    // The same role under Account access does grant it.
    app.grant("aaron", "account_admin", "tenant").await;
    invite_as(&app, "aaron", "someone")
        .await
        .expect("account administrator invites");
    assert!(overview(&app, "aaron", "").await.account_admin);
}

// ---- at least one account administrator ------------------------------

async fn the_last_account_administrator_cannot_be_taken_away(b: Backend) {
    let app = oneflow_account(b).await;
    let admin_grant = grants_of(&app, ADMIN)
        .await
        .into_iter()
        .find(|g| g.role_id == "account_admin" && g.scope.is_none())
        .expect("root-admin's grant");
    for status in [pb::PrincipalStatus::Suspended, pb::PrincipalStatus::Removed] {
        for actor in ["", ADMIN] {
            assert_eq!(
                code(app.set_status(actor, ADMIN, status).await),
                Code::FailedPrecondition,
                "{status:?} by {actor:?}"
            );
        }
    }
    assert_eq!(
        code(app.revoke(&admin_grant.id).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(revoke_as(&app, ADMIN, &admin_grant.id).await),
        Code::FailedPrecondition
    );
    let denied = app
        .grant_full("", ADMIN, "account_admin", "tenant", pb::Effect::Deny, None)
        .await;
    assert_eq!(code(denied), Code::FailedPrecondition);
    // Still the administrator.
    assert!(overview(&app, ADMIN, "").await.account_admin);
    invite_as(&app, ADMIN, "still-admin")
        .await
        .expect("root-admin still administers");
}

async fn a_second_account_administrator_lets_the_first_go(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("beth").await;
    app.grant_full(
        ADMIN,
        "beth",
        "account_admin",
        "tenant",
        pb::Effect::Allow,
        None,
    )
    .await
    .expect("an administrator grants the role");
    app.set_status("", ADMIN, pb::PrincipalStatus::Suspended)
        .await
        .expect("suspend one of two administrators");
    assert!(!overview(&app, ADMIN, "").await.account_admin);
    // Beth is now the last one.
    assert_eq!(
        code(
            app.set_status("", "beth", pb::PrincipalStatus::Removed)
                .await
        ),
        Code::FailedPrecondition
    );
    app.set_status("beth", ADMIN, pb::PrincipalStatus::Active)
        .await
        .expect("restore");
    // Two again: revoking one of them or denying it is fine.
    let root_grant = grants_of(&app, ADMIN)
        .await
        .into_iter()
        .find(|g| g.role_id == "account_admin")
        .expect("grant");
    revoke_as(&app, "beth", &root_grant.id)
        .await
        .expect("revoke one of two");
    assert!(!overview(&app, ADMIN, "").await.account_admin);
    app.grant(ADMIN, "account_admin", "tenant").await;
    app.grant_full(
        "",
        "beth",
        "account_admin",
        "tenant",
        pb::Effect::Deny,
        None,
    )
    .await
    .expect("deny one of two");
    assert!(!overview(&app, "beth", "").await.account_admin);
    assert_eq!(
        code(invite_as(&app, "beth", "x").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            app.set_status("", ADMIN, pb::PrincipalStatus::Removed)
                .await
        ),
        Code::FailedPrecondition,
        "root-admin is the last one again"
    );
}

async fn an_expiring_administrator_does_not_count_as_the_second(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("temp").await;
    let in_an_hour = prost_types::Timestamp {
        seconds: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
            + 3600,
        nanos: 0,
    };
    app.grant_full(
        "",
        "temp",
        "account_admin",
        "tenant",
        pb::Effect::Allow,
        Some(in_an_hour),
    )
    .await
    .expect("temporary administrator");
    assert!(overview(&app, "temp", "").await.account_admin);
    assert_eq!(
        code(
            app.set_status("", ADMIN, pb::PrincipalStatus::Removed)
                .await
        ),
        Code::FailedPrecondition
    );
}

async fn an_administrator_held_through_a_team_counts_and_is_kept(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("tina").await;
    app.team("admins").await;
    app.add_member("admins", "tina").await.expect("member");
    app.grant("team:admins", "account_admin", "tenant").await;
    assert!(overview(&app, "tina", "").await.account_admin);
    app.set_status("", ADMIN, pb::PrincipalStatus::Removed)
        .await
        .expect("tina is the other administrator");
    assert_eq!(
        code(app.remove_member("admins", "tina").await),
        Code::FailedPrecondition
    );
    let deleted = app
        .operator()
        .delete_team(pb::DeleteTeamRequest {
            tenant_id: TENANT.into(),
            team_id: "admins".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(deleted), Code::FailedPrecondition);
    assert!(overview(&app, "tina", "").await.account_admin);
}

// ---- several roles, the overview, custom roles -------------------------

async fn a_user_with_several_roles_gets_all_of_them(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("uma").await;
    app.team("reviewers").await;
    app.add_member("reviewers", "uma").await.expect("member");
    // Read-only everywhere (through a team), member of ws2, and account
    // administrator.
    app.grant("team:reviewers", "viewer", "tenant").await;
    app.grant("uma", "editor", WS2).await;
    app.grant("uma", "account_admin", "tenant").await;
    assert!(app.check("uma", "view", "contract:c1").await);
    assert!(!app.check("uma", "edit", "contract:c1").await);
    assert!(app.check("uma", "edit", "contract:c2").await);
    // Sharing a workspace is not a member's, but the account administrator
    // role she also holds gives it.
    let share = app.check_full("uma", "share", WS2).await;
    assert!(share.allowed);
    assert_eq!(
        share.explanation.expect("explanation").role_id,
        "account_admin"
    );
    assert_eq!(
        sorted(app.list("uma", "view", "contract").await),
        vec!["c1", "c2"]
    );
    assert_eq!(app.list("uma", "edit", "contract").await, vec!["c2"]);
    invite_as(&app, "uma", "newhire")
        .await
        .expect("and administers the account");
    app.grant_full("uma", "newhire", "viewer", WS1, pb::Effect::Allow, None)
        .await
        .expect("grants workspace access as account administrator");
}

async fn the_access_overview_shows_workspaces_roles_teams_and_admin_access(b: Backend) {
    let app = oneflow_account(b).await;
    app.resource("workspace:ws3", None).await;
    app.user("nina").await;
    app.team("sales").await;
    app.team("all_staff").await;
    app.add_member("sales", "nina").await.expect("member");
    app.add_member("all_staff", "team:sales")
        .await
        .expect("nested");
    let direct = app.grant("nina", "editor", WS1).await;
    app.grant("team:sales", "viewer", WS2).await;
    app.grant("team:all_staff", "admin", "workspace:ws3").await;
    app.grant("team:all_staff", "viewer", "tenant").await;

    let o = overview(&app, "nina", "").await;
    assert_eq!(o.principal.expect("principal").id, "nina");
    assert!(!o.account_admin);
    let mut rows: Vec<(String, String, Vec<String>, bool)> = o
        .entries
        .iter()
        .map(|e| {
            let g = e.grant.as_ref().expect("grant");
            (
                scope_name(&g.scope),
                g.role_id.clone(),
                e.via_teams.clone(),
                e.effective,
            )
        })
        .collect();
    rows.sort();
    let s = |x: &str| x.to_owned();
    let mut want = vec![
        (
            s("tenant"),
            s("viewer"),
            vec![s("sales"), s("all_staff")],
            true,
        ),
        (s(WS1), s("editor"), vec![], true),
        (s(WS2), s("viewer"), vec![s("sales")], true),
        (
            s("workspace:ws3"),
            s("admin"),
            vec![s("sales"), s("all_staff")],
            true,
        ),
    ];
    want.sort();
    assert_eq!(rows, want);

    // Only workspace-level access.
    let ws_only = overview(&app, "nina", "workspace").await;
    assert_eq!(ws_only.entries.len(), 3);
    assert!(ws_only.entries.iter().all(|e| e
        .grant
        .as_ref()
        .and_then(|g| g.scope.as_ref())
        .is_some()));

    // The administrator's flag.
    assert!(overview(&app, ADMIN, "").await.account_admin);

    // "You can also update roles or remove access directly from this view."
    revoke_as(&app, ADMIN, &direct.id)
        .await
        .expect("account administrator removes workspace access");
    assert!(!app.check("nina", "edit", "contract:c1").await);
    assert!(
        app.check("nina", "view", "contract:c1").await,
        "tenant viewer"
    );
    assert_eq!(overview(&app, "nina", "workspace").await.entries.len(), 2);
}

async fn custom_roles_extend_and_inherit_the_predefined_ones(b: Backend) {
    let app = oneflow_account(b).await;
    app.user("cara").await;
    app.user("wendy").await;
    app.grant("wendy", "admin", WS1).await;
    // Before any role names `publish`, it is an unknown permission.
    assert_eq!(
        app.reason("cara", "publish", "contract:c1").await,
        pb::Reason::UnknownPermission
    );
    let role = pb::Role {
        id: "contract_publisher".into(),
        display_name: "Contract publisher".into(),
        permissions: vec!["contract.publish".into()],
        inherits: vec!["viewer".into()],
        effective_at: vec!["*".into()],
        ..Default::default()
    };
    let create = |actor: &str| {
        let role = role.clone();
        let actor = actor.to_owned();
        let mut client = app.operator();
        async move {
            client
                .create_role(pb::CreateRoleRequest {
                    request_id: String::new(),
                    tenant_id: TENANT.into(),
                    actor_id: actor,
                    role: Some(role),
                })
                .await
        }
    };
    // A workspace manager is no account administrator: no custom roles.
    assert_eq!(code(create("wendy").await), Code::PermissionDenied);
    create(ADMIN)
        .await
        .expect("the account administrator creates it");
    let g = app.grant("cara", "contract_publisher", WS1).await;
    assert!(app.check("cara", "publish", "contract:c1").await);
    assert!(app.check("cara", "view", "contract:c1").await, "inherited");
    assert!(!app.check("cara", "edit", "contract:c1").await);
    assert!(!app.check("cara", "publish", "contract:c2").await);
    assert_eq!(app.list("cara", "publish", "contract").await, vec!["c1"]);

    // Custom roles are not locked: they can be changed...
    let mut wider = role.clone();
    wider.permissions.push("contract.edit".into());
    app.operator()
        .update_role(pb::UpdateRoleRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: ADMIN.into(),
            role: Some(wider),
            ..Default::default()
        })
        .await
        .expect("update a custom role");
    assert!(app.check("cara", "edit", "contract:c1").await);
    // ... and removed, taking their grants along only when asked to.
    let delete = |cascade: bool| {
        let mut client = app.operator();
        async move {
            client
                .delete_role(pb::DeleteRoleRequest {
                    request_id: String::new(),
                    tenant_id: TENANT.into(),
                    actor_id: ADMIN.into(),
                    role_id: "contract_publisher".into(),
                    cascade,
                })
                .await
        }
    };
    assert_eq!(code(delete(false).await), Code::FailedPrecondition);
    assert!(app.check("cara", "publish", "contract:c1").await);
    let deleted = delete(true).await.expect("cascade").into_inner();
    assert_eq!(deleted.deleted_grants, 1);
    assert!(!app.check("cara", "view", "contract:c1").await);
    assert!(grants_of(&app, "cara").await.iter().all(|x| x.id != g.id));
}

on_every_backend!(
    predefined_roles_cannot_be_edited_or_removed,
    account_admin_manages_users_and_workspaces_but_works_in_none,
    a_workspace_role_granted_at_account_level_applies_to_all_workspaces,
    a_workspace_role_granted_on_one_workspace_applies_only_there,
    account_admin_granted_on_a_workspace_grants_no_account_permission,
    the_last_account_administrator_cannot_be_taken_away,
    a_second_account_administrator_lets_the_first_go,
    an_expiring_administrator_does_not_count_as_the_second,
    an_administrator_held_through_a_team_counts_and_is_kept,
    a_user_with_several_roles_gets_all_of_them,
    the_access_overview_shows_workspaces_roles_teams_and_admin_access,
    custom_roles_extend_and_inherit_the_predefined_ones,
);

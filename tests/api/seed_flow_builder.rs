//! Seed 001 (flow builder user management), encoded through the public API.
//!
//! The model used throughout: flows are `workflow` resources and connections
//! `connection` resources inside `workspace:ws`, optionally in (nested)
//! folders. The seed's workspace roles are the predefined `admin`, `editor`
//! and `viewer` granted on the workspace. User management (inviting,
//! suspending, removing members) is a tenant-level permission in Portcullis
//! (`tenant.manage_members`), so the workspace administrator `ada` of these
//! scenarios holds `admin` on the tenant (a one-workspace account).

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::Code;

const WS: &str = "workspace:ws";

fn reason_of(r: &pb::CheckResponse) -> pb::Reason {
    pb::Reason::try_from(r.reason).expect("known reason")
}

/// A check that reflects at least the write that returned `token`.
async fn check_at(
    app: &TestApp,
    subject: &str,
    action: &str,
    r: &str,
    token: &str,
) -> pb::CheckResponse {
    app.checker()
        .check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: subject.into(),
            action: action.into(),
            resource: Some(res(r)),
            consistency_token: token.into(),
            explain: true,
            ..Default::default()
        })
        .await
        .expect("check")
        .into_inner()
}

/// ListAccessible (first page, which holds everything here) at a token.
async fn list_at(
    app: &TestApp,
    subject: &str,
    action: &str,
    rtype: &str,
    token: &str,
) -> Vec<String> {
    let page = app
        .lister()
        .list_accessible(pb::ListAccessibleRequest {
            tenant_id: TENANT.into(),
            principal_id: subject.into(),
            action: action.into(),
            resource_type: rtype.into(),
            consistency_token: token.into(),
            ..Default::default()
        })
        .await
        .expect("list accessible")
        .into_inner();
    assert!(page.next_page_token.is_empty(), "a single page expected");
    page.resource_ids
}

/// Invites (or adds, when `active`) a user, acting as `actor` with the admin key.
async fn invite_as(
    app: &TestApp,
    actor: &str,
    id: &str,
    active: bool,
) -> Result<String, tonic::Status> {
    let status = if active {
        pb::PrincipalStatus::Active
    } else {
        pb::PrincipalStatus::Unspecified
    };
    app.admin()
        .create_principal(pb::CreatePrincipalRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            principal_id: id.into(),
            kind: pb::PrincipalKind::User as i32,
            display_name: id.into(),
            status: status as i32,
            invitation_expire_time: Default::default(),
        })
        .await
        .map(|r| r.into_inner().consistency_token)
}

/// Sets a principal's status acting as `actor` with the admin key.
async fn status_as(
    app: &TestApp,
    actor: &str,
    id: &str,
    status: pb::PrincipalStatus,
) -> Result<String, tonic::Status> {
    app.admin()
        .set_principal_status(pb::SetPrincipalStatusRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            principal_id: id.into(),
            status: status as i32,
            invitation_expire_time: Default::default(),
        })
        .await
        .map(|r| r.into_inner().consistency_token)
}

/// The workspace with `ada` (admin, on the tenant), `ed` (editor), `vic`
/// (viewer) and `nobody` (member of the account with no role here).
async fn workspace(app: &TestApp) {
    for u in ["ada", "ed", "vic", "nobody"] {
        app.user(u).await;
    }
    app.resource(WS, None).await;
    app.grant("ada", "admin", "tenant").await;
    app.grant("ed", "editor", WS).await;
    app.grant("vic", "viewer", WS).await;
}

async fn flow_permissions_follow_the_owner_editor_viewer_none_matrix(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.user("olive").await;
    // olive owns the flow and has no workspace role at all.
    app.owned_resource("workflow:sync", Some(WS), "olive").await;

    // (subject, can view, can edit, can execute). The seed's "Limited"
    // execute for viewers is encoded as denied: the viewer role has no
    // execute permission.
    let matrix = [
        ("olive", true, true, true),
        ("ed", true, true, true),
        ("vic", true, false, false),
        ("nobody", false, false, false),
        // Admin: "view all flows", full workspace control.
        ("ada", true, true, true),
    ];
    for (who, view, edit, execute) in matrix {
        for (action, expected) in [("view", view), ("edit", edit), ("execute", execute)] {
            let r = app.check_full(who, action, "workflow:sync").await;
            assert_eq!(r.allowed, expected, "{who} {action}: {r:?}");
            let want = if expected {
                pb::Reason::Granted
            } else {
                pb::Reason::NoGrant
            };
            assert_eq!(reason_of(&r), want, "{who} {action}");
        }
    }
    let owner = app.check_full("olive", "edit", "workflow:sync").await;
    assert_eq!(owner.explanation.unwrap().role_id, "owner");
    assert_eq!(
        app.subjects("workflow:sync", "execute").await,
        vec!["ada", "ed", "olive"]
    );
}

async fn editors_manage_connections_and_viewers_cannot(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    // The viewer cannot create a connection...
    let r = app
        .resource_as("vic", "connection:vic_db", Some(WS), false)
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    // ...the editor can, and may edit, use and delete it.
    app.resource_as("ed", "connection:stripe", Some(WS), false)
        .await
        .expect("an editor creates a connection");
    for action in ["view", "edit", "execute", "delete"] {
        assert!(
            app.check("ed", action, "connection:stripe").await,
            "ed {action}"
        );
    }
    for action in ["edit", "execute", "delete"] {
        assert!(
            !app.check("vic", action, "connection:stripe").await,
            "vic {action}"
        );
    }
    // Admins see (and manage) every connection.
    assert!(app.check("ada", "view", "connection:stripe").await);
    assert!(app.check("ada", "edit", "connection:stripe").await);
    assert!(app.list("vic", "edit", "connection").await.is_empty());
    assert_eq!(app.list("ed", "edit", "connection").await, vec!["stripe"]);

    let delete = |actor: &'static str| {
        let mut client = app.admin();
        async move {
            client
                .delete_resource(pb::DeleteResourceRequest {
                    request_id: String::new(),
                    tenant_id: TENANT.into(),
                    actor_id: actor.into(),
                    resource: Some(res("connection:stripe")),
                })
                .await
        }
    };
    assert_eq!(code(delete("vic").await), Code::PermissionDenied);
    assert!(app.check("ed", "view", "connection:stripe").await);
    delete("ed").await.expect("an editor deletes a connection");
    assert_eq!(
        app.reason("ed", "view", "connection:stripe").await,
        pb::Reason::UnknownResource
    );
}

async fn connection_use_can_be_limited_to_specific_users_and_teams(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.user("pat").await;
    app.team("payments").await;
    app.add_member("payments", "pat").await.unwrap();
    // Shared with all workspace members: anyone with a workspace role may use it.
    app.resource("connection:slack", Some(WS)).await;
    // Restricted to a team: shared with the team only (administrators
    // still see it, "Admin: view all flows and connections").
    app.restricted_resource("connection:bank", Some(WS)).await;
    app.grant("team:payments", "editor", "connection:bank")
        .await;

    assert!(app.check("ed", "execute", "connection:slack").await);
    assert!(app.check("pat", "execute", "connection:bank").await);
    let r = app.check_full("ed", "execute", "connection:bank").await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::RestrictedBoundary);
    assert_eq!(
        app.subjects("connection:bank", "execute").await,
        vec!["ada", "pat"]
    );
    assert_eq!(app.list("pat", "execute", "connection").await, vec!["bank"]);
}

async fn only_admins_manage_users(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    // Even an editor of the whole account cannot manage users.
    app.grant("ed", "editor", "tenant").await;

    let r = invite_as(&app, "ed", "newcomer", false).await;
    assert_eq!(code(r), Code::PermissionDenied);
    let r = invite_as(&app, "vic", "newcomer", false).await;
    assert_eq!(code(r), Code::PermissionDenied);
    let r = status_as(&app, "ed", "vic", pb::PrincipalStatus::Suspended).await;
    assert_eq!(code(r), Code::PermissionDenied);
    // Nor change anyone's role.
    let r = app
        .grant_full("ed", "vic", "editor", WS, pb::Effect::Allow, None)
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    assert!(!app.check("vic", "edit", WS).await);
    assert!(!app.check("newcomer", "view", WS).await);

    // The admin can do all of it.
    invite_as(&app, "ada", "newcomer", false)
        .await
        .expect("an admin invites");
    app.grant_full("ada", "vic", "editor", WS, pb::Effect::Allow, None)
        .await
        .expect("an admin changes a role");
    app.resource("workflow:sync", Some(WS)).await;
    assert!(app.check("vic", "edit", "workflow:sync").await);
    status_as(&app, "ada", "vic", pb::PrincipalStatus::Suspended)
        .await
        .expect("an admin suspends");
}

async fn folder_access_is_inherited_by_contents_including_nested_folders(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("fay").await;
    app.resource(WS, None).await;
    app.resource("folder:dev", Some(WS)).await;
    app.resource("folder:dev_tools", Some("folder:dev")).await;
    app.resource("folder:dev_tools_old", Some("folder:dev_tools"))
        .await;
    app.resource("folder:prod", Some(WS)).await;
    app.resource("workflow:build", Some("folder:dev")).await;
    app.resource("workflow:lint", Some("folder:dev_tools"))
        .await;
    app.resource("workflow:legacy", Some("folder:dev_tools_old"))
        .await;
    app.resource("workflow:deploy", Some("folder:prod")).await;
    app.resource("connection:test_db", Some("folder:dev_tools"))
        .await;
    app.grant("fay", "editor", "folder:dev").await;

    for f in ["workflow:build", "workflow:lint", "workflow:legacy"] {
        let r = app.check_full("fay", "edit", f).await;
        assert!(r.allowed, "{f}: {r:?}");
        assert_eq!(r.explanation.unwrap().scope, Some(res("folder:dev")), "{f}");
    }
    assert!(app.check("fay", "execute", "connection:test_db").await);
    assert!(!app.check("fay", "view", "workflow:deploy").await);
    assert!(!app.check("fay", "view", WS).await);
    assert_eq!(
        app.list("fay", "edit", "workflow").await,
        vec!["build", "legacy", "lint"]
    );
    assert_eq!(
        app.list("fay", "view", "folder").await,
        vec!["dev", "dev_tools", "dev_tools_old"]
    );
}

async fn a_deny_on_one_flow_overrides_the_folder_grant(b: Backend) {
    let app = spawn_app_on(b).await;
    for u in ["fay", "gus"] {
        app.user(u).await;
    }
    app.resource(WS, None).await;
    app.resource("folder:dev", Some(WS)).await;
    app.resource("workflow:build", Some("folder:dev")).await;
    app.resource("workflow:lint", Some("folder:dev")).await;
    app.grant("fay", "editor", "folder:dev").await;
    let deny = app.deny("fay", "editor", "workflow:build").await;

    let r = app.check_full("fay", "edit", "workflow:build").await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::ExplicitDeny);
    let e = r.explanation.unwrap();
    assert_eq!(e.grant_id, deny.id);
    assert_eq!(e.role_id, "editor");
    assert_eq!(e.scope, Some(res("workflow:build")));
    assert!(!app.check("fay", "view", "workflow:build").await);
    // The rest of the folder is untouched.
    assert!(app.check("fay", "edit", "workflow:lint").await);
    assert_eq!(app.list("fay", "edit", "workflow").await, vec!["lint"]);
    assert_eq!(app.list("fay", "view", "workflow").await, vec!["lint"]);

    // An item-level grant can also widen a folder grant.
    app.grant("gus", "viewer", "folder:dev").await;
    app.grant("gus", "editor", "workflow:lint").await;
    assert!(app.check("gus", "edit", "workflow:lint").await);
    assert!(!app.check("gus", "edit", "workflow:build").await);
    assert!(app.check("gus", "view", "workflow:build").await);

    // Lifting the override restores the folder grant.
    let token = app.revoke(&deny.id).await.unwrap();
    assert!(
        check_at(&app, "fay", "edit", "workflow:build", &token)
            .await
            .allowed
    );
}

/// The seed's team example: Engineering edits development flows and test
/// connections; Operations edits production flows and connections and views
/// development flows.
async fn teams(app: &TestApp) {
    for u in ["alice", "bob", "carol", "dave"] {
        app.user(u).await;
    }
    app.resource(WS, None).await;
    app.resource("folder:dev", Some(WS)).await;
    app.resource("folder:prod", Some(WS)).await;
    app.resource("workflow:dev_build", Some("folder:dev")).await;
    app.resource("connection:test_db", Some("folder:dev")).await;
    app.resource("workflow:prod_deploy", Some("folder:prod"))
        .await;
    app.resource("connection:prod_db", Some("folder:prod"))
        .await;
    for t in ["engineering", "platform", "operations"] {
        app.team(t).await;
    }
    app.grant("team:engineering", "editor", "folder:dev").await;
    app.grant("team:operations", "editor", "folder:prod").await;
    app.grant("team:operations", "viewer", "folder:dev").await;
    app.add_member("engineering", "team:platform")
        .await
        .unwrap();
    app.add_member("engineering", "alice").await.unwrap();
    app.add_member("platform", "bob").await.unwrap();
    app.add_member("engineering", "carol").await.unwrap();
    app.add_member("operations", "carol").await.unwrap();
    app.add_member("operations", "dave").await.unwrap();
}

async fn team_members_inherit_team_access_through_nested_teams(b: Backend) {
    let app = spawn_app_on(b).await;
    teams(&app).await;
    let r = app.check_full("alice", "edit", "workflow:dev_build").await;
    assert!(r.allowed);
    assert_eq!(r.explanation.unwrap().via_teams, vec!["engineering"]);
    assert!(app.check("alice", "execute", "connection:test_db").await);
    assert!(!app.check("alice", "view", "workflow:prod_deploy").await);
    assert!(!app.check("alice", "view", "connection:prod_db").await);

    let r = app.check_full("bob", "edit", "workflow:dev_build").await;
    assert!(r.allowed);
    assert_eq!(
        r.explanation.unwrap().via_teams,
        vec!["platform", "engineering"]
    );

    // Operations: production editor, development viewer.
    assert!(app.check("dave", "edit", "workflow:prod_deploy").await);
    assert!(app.check("dave", "edit", "connection:prod_db").await);
    assert!(app.check("dave", "view", "workflow:dev_build").await);
    assert!(!app.check("dave", "edit", "workflow:dev_build").await);
    assert_eq!(
        app.list("dave", "view", "workflow").await,
        vec!["dev_build", "prod_deploy"]
    );
    assert_eq!(
        app.list("dave", "edit", "workflow").await,
        vec!["prod_deploy"]
    );
    assert_eq!(app.list("bob", "edit", "workflow").await, vec!["dev_build"]);
}

async fn multiple_team_memberships_combine_and_removal_revokes(b: Backend) {
    let app = spawn_app_on(b).await;
    teams(&app).await;
    // carol is in both teams: she edits both kinds of flows.
    assert!(app.check("carol", "edit", "workflow:dev_build").await);
    assert!(app.check("carol", "edit", "workflow:prod_deploy").await);
    assert_eq!(
        app.list("carol", "edit", "workflow").await,
        vec!["dev_build", "prod_deploy"]
    );

    // Out of engineering: only what operations gives remains.
    let token = app.remove_member("engineering", "carol").await.unwrap();
    let r = check_at(&app, "carol", "edit", "workflow:dev_build", &token).await;
    assert!(!r.allowed, "{r:?}");
    assert_eq!(reason_of(&r), pb::Reason::NoGrant);
    let r = check_at(&app, "carol", "view", "workflow:dev_build", &token).await;
    assert!(r.allowed);
    assert_eq!(r.explanation.unwrap().via_teams, vec!["operations"]);
    assert!(
        check_at(&app, "carol", "edit", "workflow:prod_deploy", &token)
            .await
            .allowed
    );
    assert_eq!(
        list_at(&app, "carol", "edit", "workflow", &token).await,
        vec!["prod_deploy"]
    );

    // Removing a nested team revokes for all its members.
    let token = app
        .remove_member("engineering", "team:platform")
        .await
        .unwrap();
    assert!(
        !check_at(&app, "bob", "view", "workflow:dev_build", &token)
            .await
            .allowed
    );
    assert!(list_at(&app, "bob", "view", "workflow", &token)
        .await
        .is_empty());
    assert!(
        check_at(&app, "alice", "edit", "workflow:dev_build", &token)
            .await
            .allowed
    );
}

async fn suspended_user_loses_access_immediately_and_unsuspending_restores_it(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.resource("workflow:sync", Some(WS)).await;
    assert!(app.check("ed", "edit", "workflow:sync").await);

    let token = status_as(&app, "ada", "ed", pb::PrincipalStatus::Suspended)
        .await
        .expect("an admin suspends");
    let r = check_at(&app, "ed", "view", "workflow:sync", &token).await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::PrincipalSuspended);
    assert!(list_at(&app, "ed", "view", "workflow", &token)
        .await
        .is_empty());
    assert!(!app
        .subjects("workflow:sync", "edit")
        .await
        .contains(&"ed".to_string()));

    let token = status_as(&app, "ada", "ed", pb::PrincipalStatus::Active)
        .await
        .expect("an admin unsuspends");
    let r = check_at(&app, "ed", "edit", "workflow:sync", &token).await;
    assert!(r.allowed, "grants are kept while suspended: {r:?}");
    assert_eq!(
        list_at(&app, "ed", "edit", "workflow", &token).await,
        vec!["sync"]
    );
}

async fn a_pending_invitation_gives_no_access_until_accepted(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.resource("workflow:sync", Some(WS)).await;
    app.team("engineering").await;
    app.grant("team:engineering", "editor", WS).await;

    // Invited with a role and a team.
    invite_as(&app, "ada", "ian", false).await.unwrap();
    app.grant_full("ada", "ian", "viewer", WS, pb::Effect::Allow, None)
        .await
        .unwrap();
    let token = app.add_member("engineering", "ian").await.unwrap();
    let r = check_at(&app, "ian", "view", "workflow:sync", &token).await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::PrincipalInvited);
    assert!(list_at(&app, "ian", "view", "workflow", &token)
        .await
        .is_empty());
    assert!(!app
        .subjects("workflow:sync", "view")
        .await
        .contains(&"ian".to_string()));

    // Ada cannot accept for him; once he accepts, the role and the team
    // apply.
    assert!(status_as(&app, "ada", "ian", pb::PrincipalStatus::Active)
        .await
        .is_err());
    let token = app.accept("ian").await.unwrap();
    assert!(
        check_at(&app, "ian", "edit", "workflow:sync", &token)
            .await
            .allowed
    );

    // A revoked invitation gives nothing either.
    invite_as(&app, "ada", "ivy", false).await.unwrap();
    app.grant("ivy", "viewer", WS).await;
    let token = status_as(&app, "ada", "ivy", pb::PrincipalStatus::Removed)
        .await
        .unwrap();
    let r = check_at(&app, "ivy", "view", "workflow:sync", &token).await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::PrincipalRemoved);
}

async fn a_removed_user_has_no_access(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.resource("workflow:sync", Some(WS)).await;
    app.team("engineering").await;
    app.add_member("engineering", "ed").await.unwrap();
    app.grant("team:engineering", "editor", WS).await;

    let token = status_as(&app, "ada", "ed", pb::PrincipalStatus::Removed)
        .await
        .expect("an admin removes");
    for action in ["view", "edit", "execute"] {
        let r = check_at(&app, "ed", action, "workflow:sync", &token).await;
        assert!(!r.allowed, "{action}");
        assert_eq!(reason_of(&r), pb::Reason::PrincipalRemoved);
    }
    assert!(list_at(&app, "ed", "view", "workflow", &token)
        .await
        .is_empty());
    assert_eq!(app.subjects("workflow:sync", "edit").await, vec!["ada"]);
}

async fn troubleshooting_causes_are_answered_by_check_reasons(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.user("wendy").await;
    app.resource("workflow:sync", Some(WS)).await;
    app.resource("workspace:eu", None).await;
    app.resource("workflow:eu_sync", Some("workspace:eu")).await;
    app.grant("wendy", "editor", "workspace:eu").await;

    // 1. Not added to the workspace: unknown to the account, or no role here.
    let r = app.check_full("stranger", "view", "workflow:sync").await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::UnknownPrincipal);
    let r = app.check_full("nobody", "view", "workflow:sync").await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::NoGrant);

    // 2. The role lacks the permission.
    let r = app.check_full("vic", "edit", "workflow:sync").await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::NoGrant);
    let detail = r.explanation.unwrap().detail;
    assert!(detail.contains("workflow.edit"), "{detail}");
    assert!(app.check("vic", "view", "workflow:sync").await);

    // 3. Suspended.
    let token = status_as(&app, "ada", "ed", pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    let r = check_at(&app, "ed", "edit", "workflow:sync", &token).await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::PrincipalSuspended);
    assert!(r.explanation.unwrap().detail.contains("suspended"));

    // 4. Wrong workspace: wendy's role is in `eu`, the flow in `ws`.
    let r = app.check_full("wendy", "edit", "workflow:sync").await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::NoGrant);
    let r = app.check_full("wendy", "edit", "workflow:eu_sync").await;
    assert!(r.allowed);
    assert_eq!(r.explanation.unwrap().scope, Some(res("workspace:eu")));
    // "Confirm correct workspace": the access overview names it.
    let overview = app
        .admin()
        .get_access_overview(pb::GetAccessOverviewRequest {
            tenant_id: TENANT.into(),
            principal_id: "wendy".into(),
            scope_type: "workspace".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let scopes: Vec<_> = overview
        .entries
        .iter()
        .map(|e| e.grant.as_ref().unwrap().scope.clone())
        .collect();
    assert_eq!(scopes, vec![Some(res("workspace:eu"))]);
}

/// All pages of audit events for a filter, with the page sizes seen.
async fn audit_pages(
    app: &TestApp,
    actor: &str,
    action: &str,
    page_size: u32,
) -> (Vec<pb::AuditEvent>, Vec<usize>) {
    let mut events = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .admin()
            .list_audit_events(pb::ListAuditEventsRequest {
                tenant_id: TENANT.into(),
                actor: actor.into(),
                action: action.into(),
                page_size,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list audit events")
            .into_inner();
        sizes.push(page.events.len());
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return (events, sizes);
        }
        token = page.next_page_token;
        assert!(sizes.len() < 100, "pagination does not end");
    }
}

async fn user_management_changes_are_in_the_audit_trail_filterable_and_paginated(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.team("engineering").await;

    // ada's changes, oldest first: (action, target, revision).
    let mut done: Vec<(&str, String, String)> = Vec::new();
    let rev = invite_as(&app, "ada", "ian", false).await.unwrap();
    done.push(("principal.create", "principal:ian".into(), rev));
    let g = app
        .admin()
        .create_grant(pb::CreateGrantRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: "ada".into(),
            subject: Some(subj("ian")),
            role_id: "viewer".into(),
            scope: scope(WS),
            effect: pb::Effect::Allow as i32,
            expire_time: None,
            condition: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    let grant_id = g.grant.unwrap().id;
    done.push((
        "grant.create",
        format!("grant:{grant_id}"),
        g.consistency_token,
    ));
    let rev = status_as(&app, "ada", "ed", pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    done.push(("principal.set_status", "principal:ed".into(), rev));
    let rev = status_as(&app, "ada", "ed", pb::PrincipalStatus::Active)
        .await
        .unwrap();
    done.push(("principal.set_status", "principal:ed".into(), rev));
    let rev = app
        .admin()
        .add_team_member(pb::AddTeamMemberRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: "ada".into(),
            team_id: "engineering".into(),
            member: Some(subj("ed")),
        })
        .await
        .unwrap()
        .into_inner()
        .consistency_token;
    done.push(("team.add_member", "team:engineering".into(), rev));
    let rev = app
        .admin()
        .delete_grant(pb::DeleteGrantRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: "ada".into(),
            grant_id: grant_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .consistency_token;
    done.push(("grant.delete", format!("grant:{grant_id}"), rev));
    // Someone else's change, which the actor filter must leave out.
    invite_as(&app, ADMIN, "ron", false).await.unwrap();

    // Filter by user: exactly ada's changes, newest first.
    let (events, _) = audit_pages(&app, "ada", "", 0).await;
    let got: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str(), e.revision.as_str()))
        .collect();
    let want: Vec<(&str, &str, &str)> = done
        .iter()
        .rev()
        .map(|(a, t, r)| (*a, t.as_str(), r.as_str()))
        .collect();
    assert_eq!(got, want);
    for e in &events {
        assert_eq!(e.actor, "ada");
        assert_eq!(e.caller, "test-admin");
    }
    assert!(events.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    // Filter by action: the suspension and the unsuspension, with before/after.
    let (events, _) = audit_pages(&app, "ada", "principal.set_status", 0).await;
    assert_eq!(events.len(), 2);
    let before: serde_json::Value = serde_json::from_str(&events[1].before_json).unwrap();
    let after: serde_json::Value = serde_json::from_str(&events[1].after_json).unwrap();
    assert_eq!(before["status"], "active");
    assert_eq!(after["status"], "suspended");
    let after: serde_json::Value = serde_json::from_str(&events[0].after_json).unwrap();
    assert_eq!(after["status"], "active");
    // By action alone: both invitations, whoever sent them.
    let (events, _) = audit_pages(&app, "", "principal.create", 0).await;
    let targets: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.actor.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        &targets[..2],
        &[(ADMIN, "principal:ron"), ("ada", "principal:ian")]
    );
    assert!(events.iter().all(|e| e.action == "principal.create"));

    // Paginated: pages of at most two, in the same order as one big page.
    let (all, _) = audit_pages(&app, "", "", 0).await;
    let (paged, sizes) = audit_pages(&app, "", "", 2).await;
    assert!(all.len() > 6, "setup and ada's changes: {}", all.len());
    assert_eq!(
        paged.iter().map(|e| e.id).collect::<Vec<_>>(),
        all.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    assert!(sizes.len() >= all.len() / 2, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 2), "{sizes:?}");
    assert_eq!(sizes[0], 2);
}

async fn list_subjects_on_a_flow_names_exactly_who_may_view_it_with_teams_expanded(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.resource("folder:finance", Some(WS)).await;
    app.resource("workflow:payroll", Some("folder:finance"))
        .await;
    app.resource("workflow:other", Some(WS)).await;
    for u in ["alice", "bob", "olive", "dan", "sue", "zed"] {
        app.user(u).await;
    }
    app.principal("ian", pb::PrincipalKind::User, pb::PrincipalStatus::Invited)
        .await;
    app.team("engineering").await;
    app.team("platform").await;
    app.add_member("engineering", "alice").await.unwrap();
    app.add_member("engineering", "team:platform")
        .await
        .unwrap();
    app.add_member("platform", "bob").await.unwrap();
    app.add_member("engineering", "dan").await.unwrap();
    app.grant("team:engineering", "editor", "folder:finance")
        .await;
    app.grant("olive", "owner", "workflow:payroll").await;
    app.deny("dan", "editor", "workflow:payroll").await;
    app.grant("sue", "viewer", WS).await;
    app.set_status("", "sue", pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    app.grant("ian", "viewer", WS).await;
    app.grant("zed", "editor", "workflow:other").await;

    // Who may view: the account-wide admin, the workspace viewer and editor,
    // both engineering members (one through a nested team), the owner. Not:
    // dan (denied on the item), sue (suspended), ian (invited), zed (another
    // flow), nobody, root-admin (account administration only).
    let viewers = app.subjects("workflow:payroll", "view").await;
    assert_eq!(viewers, vec!["ada", "alice", "bob", "ed", "olive", "vic"]);
    assert_eq!(
        app.subjects("workflow:payroll", "edit").await,
        vec!["ada", "alice", "bob", "ed", "olive"]
    );
    // The same answer as Check for every principal of the account.
    let all = [
        ADMIN, "ada", "alice", "bob", "dan", "ed", "ian", "nobody", "olive", "sue", "vic", "zed",
    ];
    for p in all {
        assert_eq!(
            app.check(p, "view", "workflow:payroll").await,
            viewers.iter().any(|v| v == p),
            "{p}"
        );
    }
}

/// "Multi-Factor Authentication — Required for Admins": the workspace
/// administrator's grant carries `request.mfa == true`. The calling service
/// passes whether the session was verified with MFA in `typed_context`;
/// without it the answer asks for it, with `mfa: false` it is denied. Other
/// roles are unaffected, lists and ListSubjects follow the same context, and
/// an administrator who needs MFA does not count as the account's lasting
/// administrator (a condition could lock everyone out).
async fn administrators_need_multi_factor_authentication(b: Backend) {
    let app = spawn_app_on(b).await;
    for u in ["ada", "ed"] {
        app.user(u).await;
    }
    app.resource(WS, None).await;
    app.resource("workflow:sync", Some(WS)).await;
    app.grant("ed", "editor", WS).await;
    let g = app
        .conditional_grant(
            "",
            "ada",
            "admin",
            WS,
            pb::Effect::Allow,
            "request.mfa == true",
        )
        .await
        .expect("conditional admin grant");
    assert_eq!(g.condition, "request.mfa == true");

    let with_mfa = app
        .check_with(
            "ada",
            "manage",
            "workflow:sync",
            serde_json::json!({"mfa": true}),
        )
        .await;
    assert!(with_mfa.allowed, "{with_mfa:?}");
    let e = with_mfa.explanation.expect("explanation");
    assert_eq!(
        (e.role_id.as_str(), e.condition.as_str()),
        ("admin", "request.mfa == true")
    );

    let without = app.check_full("ada", "manage", "workflow:sync").await;
    assert!(!without.allowed);
    assert_eq!(reason_of(&without), pb::Reason::ConditionContextMissing);
    assert_eq!(without.explanation.unwrap().missing_context, ["mfa"]);
    // The fields are named without `explain` too.
    let plain = app
        .checker()
        .check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: "ada".into(),
            action: "manage".into(),
            resource: Some(res("workflow:sync")),
            ..Default::default()
        })
        .await
        .expect("check")
        .into_inner();
    assert_eq!(plain.explanation.expect("fields").missing_context, ["mfa"]);
    let refused = app
        .check_with(
            "ada",
            "manage",
            "workflow:sync",
            serde_json::json!({"mfa": false}),
        )
        .await;
    assert!(!refused.allowed);
    assert_eq!(reason_of(&refused), pb::Reason::ConditionFailed);
    // The string "true" in the untyped context is not the bool: CEL does not
    // coerce, so it is no way around the rule.
    let stringly = app
        .checker()
        .check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: "ada".into(),
            action: "manage".into(),
            resource: Some(res("workflow:sync")),
            context: [("mfa".to_owned(), "true".to_owned())].into(),
            ..Default::default()
        })
        .await
        .expect("check")
        .into_inner();
    assert!(!stringly.allowed);

    // Editors need no MFA.
    assert!(app.check("ed", "edit", "workflow:sync").await);
    // Lists and ListSubjects read the same context.
    assert_eq!(
        app.list_with(
            "ada",
            "manage",
            "workflow",
            serde_json::json!({"mfa": true})
        )
        .await,
        ["sync"]
    );
    assert!(app
        .list_with("ada", "manage", "workflow", serde_json::json!({}))
        .await
        .is_empty());
    assert_eq!(
        app.subjects_with("workflow:sync", "view", serde_json::json!({"mfa": true}))
            .await,
        ["ada", "ed"]
    );
    assert_eq!(
        app.subjects_with("workflow:sync", "view", serde_json::json!({}))
            .await,
        ["ed"]
    );

    // The account keeps a lasting administrator: the first administrator's
    // grant cannot go while only conditional ones would remain.
    let root = app
        .operator()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj(ADMIN)),
            page_size: 10,
            ..Default::default()
        })
        .await
        .expect("grants")
        .into_inner()
        .grants;
    app.conditional_grant(
        "",
        "ada",
        "account_admin",
        "tenant",
        pb::Effect::Allow,
        "request.mfa == true",
    )
    .await
    .expect("conditional account admin");
    let err = app.revoke(&root[0].id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("condition"), "{err:?}");
    // A condition that does not compile is refused naming the field.
    let bad = app
        .conditional_grant("", "ed", "viewer", WS, pb::Effect::Allow, "request.mfa ==")
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("condition"), "{bad:?}");
}

fn in_ms(ms: i64) -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        + ms;
    prost_types::Timestamp {
        seconds: now.div_euclid(1000),
        nanos: (now.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// "Pending Invitations — Pending: sent, not accepted; Expired: timed out;
/// Revoked: cancelled. Resend or revoke." An invitation may carry an
/// expiry: past it the invited user is denied as
/// `PRINCIPAL_INVITATION_EXPIRED` and cannot accept; resending renews it;
/// revoking removes the principal.
async fn invitations_time_out_and_can_be_resent_or_revoked(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.resource("workflow:sync", Some(WS)).await;
    let invite = |id: &str, expiry: Option<prost_types::Timestamp>| pb::CreatePrincipalRequest {
        tenant_id: TENANT.into(),
        actor_id: "ada".into(),
        principal_id: id.into(),
        kind: pb::PrincipalKind::User as i32,
        display_name: id.into(),
        status: pb::PrincipalStatus::Invited as i32,
        invitation_expire_time: expiry,
        ..Default::default()
    };
    app.admin()
        .create_principal(invite("ivy", Some(in_ms(1_500))))
        .await
        .expect("invite ivy");
    app.admin()
        .create_principal(invite("rex", Some(in_ms(60_000))))
        .await
        .expect("invite rex");
    app.grant("ivy", "viewer", WS).await;
    app.grant("rex", "viewer", WS).await;
    // Pending: no access yet.
    assert_eq!(
        app.reason("ivy", "view", "workflow:sync").await,
        pb::Reason::PrincipalInvited
    );
    let listed = app
        .admin()
        .get_principal(pb::GetPrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "ivy".into(),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner()
        .principal
        .expect("principal");
    assert!(listed.invitation_expire_time.is_some(), "{listed:?}");

    // Expired: timed out.
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    let r = app.check_full("ivy", "view", "workflow:sync").await;
    assert!(!r.allowed);
    assert_eq!(
        reason_of(&r),
        pb::Reason::PrincipalInvitationExpired,
        "{r:?}"
    );
    let late = app.accept("ivy").await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert!(late.message().contains("lapsed"), "{late:?}");

    // Resend: a new invitation with a new expiry, then accepted in time.
    app.admin()
        .set_principal_status(pb::SetPrincipalStatusRequest {
            tenant_id: TENANT.into(),
            actor_id: "ada".into(),
            principal_id: "ivy".into(),
            status: pb::PrincipalStatus::Invited as i32,
            invitation_expire_time: Some(in_ms(60_000)),
            ..Default::default()
        })
        .await
        .expect("resend");
    assert_eq!(
        app.reason("ivy", "view", "workflow:sync").await,
        pb::Reason::PrincipalInvited
    );
    app.accept("ivy").await.expect("accepted in time");
    assert!(app.check("ivy", "view", "workflow:sync").await);

    // Revoked: cancelled before it was accepted.
    status_as(&app, "ada", "rex", pb::PrincipalStatus::Removed)
        .await
        .expect("revoke the invitation");
    assert_eq!(
        app.reason("rex", "view", "workflow:sync").await,
        pb::Reason::PrincipalRemoved
    );
    assert_eq!(
        app.accept("rex").await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // An expiry in the past, or on anything but an invitation, is refused.
    for (what, req) in [
        ("past", invite("old", Some(in_ms(-1_000)))),
        (
            "active",
            pb::CreatePrincipalRequest {
                status: pb::PrincipalStatus::Active as i32,
                ..invite("act", Some(in_ms(60_000)))
            },
        ),
    ] {
        let e = app.admin().create_principal(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        assert!(
            e.message().contains("invitation_expire_time"),
            "{what}: {e:?}"
        );
    }
}

/// Sets the tenant's implied actions acting as `actor`.
async fn imply_as(
    app: &TestApp,
    actor: &str,
    pairs: &[(&str, &str)],
) -> Result<pb::Tenant, tonic::Status> {
    app.admin()
        .update_tenant(pb::UpdateTenantRequest {
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            implied_actions: pairs
                .iter()
                .map(|(a, i)| pb::ImpliedAction {
                    action: (*a).into(),
                    implies: (*i).into(),
                })
                .collect(),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["implied_actions".into()],
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().tenant.expect("tenant"))
}

/// "Every level that can edit or run a flow can also view it": the tenant
/// declares `edit` ⇒ `view` and `execute` ⇒ `view`, so a deny of viewing on
/// one flow denies editing and running it too (before the declaration it
/// left editing allowed). Lists follow; only someone who holds editing and
/// running tenant-wide may take the implication away.
async fn whoever_may_not_view_a_flow_may_not_edit_or_run_it(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.resource("workflow:sync", Some(WS)).await;
    app.resource("workflow:other", Some(WS)).await;
    // wes may change the tenant's settings, and holds nothing inside it.
    app.user("wes").await;
    app.role("settings_admin", &["tenant.manage"], &[], &["tenant"])
        .await
        .expect("role");
    app.grant("wes", "settings_admin", "tenant").await;
    app.deny("ed", "viewer", "workflow:sync").await;
    // Without the implication the seed's table is broken: ed edits a flow
    // it may not view.
    assert!(!app.check("ed", "view", "workflow:sync").await);
    assert!(app.check("ed", "edit", "workflow:sync").await);

    let t = imply_as(&app, "ada", &[("edit", "view"), ("execute", "view")])
        .await
        .expect("declare the implications");
    assert_eq!(t.implied_actions.len(), 2);
    for action in ["edit", "execute"] {
        let r = app.check_full("ed", action, "workflow:sync").await;
        assert!(!r.allowed, "{action}: {r:?}");
        assert_eq!(reason_of(&r), pb::Reason::ExplicitDeny, "{action}");
        let e = r.explanation.expect("explanation");
        assert!(e.detail.contains("implies `view`"), "{action}: {e:?}");
        assert!(
            app.check("ed", action, "workflow:other").await,
            "{action} elsewhere"
        );
    }
    assert_eq!(app.list("ed", "edit", "workflow").await, ["other"]);
    assert!(!app
        .subjects("workflow:sync", "edit")
        .await
        .contains(&"ed".to_owned()));
    // Everyone else keeps what the table gives.
    assert!(app.check("vic", "view", "workflow:sync").await);
    assert!(!app.check("vic", "edit", "workflow:sync").await);

    // Refused: a cycle, an action nobody declared, and taking the
    // implication away by someone who does not hold editing tenant-wide (it
    // would let edits through wherever viewing is denied).
    let cycle = imply_as(&app, "ada", &[("edit", "view"), ("view", "edit")])
        .await
        .unwrap_err();
    assert_eq!(cycle.code(), Code::InvalidArgument, "{cycle:?}");
    let unknown = imply_as(&app, "ada", &[("edit", "peek")])
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");
    let lifted = imply_as(&app, "wes", &[]).await.unwrap_err();
    assert_eq!(lifted.code(), Code::PermissionDenied, "{lifted:?}");
    assert!(
        lifted.message().contains("lift an implication of"),
        "{lifted:?}"
    );
    // Adding one only narrows access: wes may ...
    imply_as(
        &app,
        "wes",
        &[("edit", "view"), ("execute", "view"), ("transfer", "view")],
    )
    .await
    .expect("a further implication");
    // ... unless it strips the account administrators of what they hold
    // (`account_admin` deletes workspaces without viewing inside them).
    let all = [("edit", "view"), ("execute", "view"), ("transfer", "view")];
    let stripped = imply_as(&app, "ada", &[all[0], all[1], all[2], ("delete", "view")])
        .await
        .unwrap_err();
    assert_eq!(stripped.code(), Code::FailedPrecondition, "{stripped:?}");
    assert!(
        stripped.message().contains("last_account_admin"),
        "{stripped:?}"
    );
    // The tenant admin holds editing and running tenant-wide (not
    // `transfer`, which `admin` lacks): it lifts those two.
    imply_as(&app, "ada", &[all[2]])
        .await
        .expect("the tenant admin lifts it");
    assert!(app.check("ed", "edit", "workflow:sync").await);
}

/// The flow builder's three access modes of a connection — private to its
/// owner, all users, specific users and teams — and "Admin: view all flows
/// and connections", which holds for restricted ones too: "all users" is an
/// ordinary resource, "private to the owner" and "specific users and teams"
/// are restricted resources with grants to those (tenant-wide `admin` and
/// `owner` grants still reach in; a workspace admin's do not). monday's
/// private workflows (`private`) hide even from administrators.
async fn connection_access_modes_and_administrators_see_every_connection(b: Backend) {
    let app = spawn_app_on(b).await;
    workspace(&app).await;
    app.user("olive").await;
    app.user("wes").await;
    app.grant("wes", "admin", WS).await;
    app.team("ops").await;
    app.add_member("ops", "ed").await.expect("member");
    app.resource("connection:all", Some(WS)).await;
    app.restricted_resource("connection:mine", Some(WS)).await;
    app.grant("olive", "owner", "connection:mine").await;
    app.restricted_resource("connection:shared", Some(WS)).await;
    app.grant("team:ops", "viewer", "connection:shared").await;
    app.private_resource("workflow:private", Some(WS)).await;

    // (who, all, mine, shared)
    let table = [
        ("ada", true, true, true),
        ("olive", false, true, false),
        ("ed", true, false, true),
        ("vic", true, false, false),
        ("wes", true, false, false),
        ("nobody", false, false, false),
    ];
    for (who, all, mine, shared) in table {
        for (r, want) in [
            ("connection:all", all),
            ("connection:mine", mine),
            ("connection:shared", shared),
        ] {
            let a = app.check_full(who, "view", r).await;
            assert_eq!(a.allowed, want, "{who} views {r}: {a:?}");
        }
        let mut listed: Vec<&str> = Vec::new();
        for (id, on) in [("all", all), ("mine", mine), ("shared", shared)] {
            if on {
                listed.push(id);
            }
        }
        assert_eq!(app.list(who, "view", "connection").await, listed, "{who}");
    }
    let r = app.check_full("vic", "view", "connection:shared").await;
    assert_eq!(reason_of(&r), pb::Reason::RestrictedBoundary);
    assert_eq!(
        app.subjects("connection:mine", "view").await,
        vec!["ada", "olive"]
    );
    // A private workflow hides from the administrator too.
    assert_eq!(
        app.reason("ada", "view", "workflow:private").await,
        pb::Reason::PrivateBoundary
    );

    // Lifting a restriction needs `share` on the resource: neither the
    // editor nor the workspace admin (kept out by the restriction) may; the
    // tenant admin may.
    for who in ["ed", "wes"] {
        let refused = app
            .set_restricted(who, "connection:shared", false)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{who}: {refused:?}");
    }
    let lifted = app
        .set_restricted("ada", "connection:shared", false)
        .await
        .expect("lift");
    assert!(!lifted.restricted);
    assert!(app.check("vic", "view", "connection:shared").await);
    app.set_restricted("ada", "connection:shared", true)
        .await
        .expect("restrict again");
    assert!(!app.check("vic", "view", "connection:shared").await);
}

on_every_backend!(
    flow_permissions_follow_the_owner_editor_viewer_none_matrix,
    editors_manage_connections_and_viewers_cannot,
    connection_use_can_be_limited_to_specific_users_and_teams,
    only_admins_manage_users,
    folder_access_is_inherited_by_contents_including_nested_folders,
    a_deny_on_one_flow_overrides_the_folder_grant,
    team_members_inherit_team_access_through_nested_teams,
    multiple_team_memberships_combine_and_removal_revokes,
    suspended_user_loses_access_immediately_and_unsuspending_restores_it,
    a_pending_invitation_gives_no_access_until_accepted,
    a_removed_user_has_no_access,
    troubleshooting_causes_are_answered_by_check_reasons,
    user_management_changes_are_in_the_audit_trail_filterable_and_paginated,
    list_subjects_on_a_flow_names_exactly_who_may_view_it_with_teams_expanded,
    administrators_need_multi_factor_authentication,
    invitations_time_out_and_can_be_resent_or_revoked,
    whoever_may_not_view_a_flow_may_not_edit_or_run_it,
    connection_access_modes_and_administrators_see_every_connection,
);

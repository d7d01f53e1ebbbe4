//! Invariants kept inside the write transaction, answered with
//! FAILED_PRECONDITION naming the rule; and actors authorized by the engine.

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::Code;

/// Asserts a FAILED_PRECONDITION whose `google.rpc.ErrorInfo` reason is
/// `rule` (read from the status details, not from the message).
fn rule<T: std::fmt::Debug>(r: Result<T, tonic::Status>, rule: &str) {
    use tonic_types::StatusExt;
    let s = r.expect_err("expected FAILED_PRECONDITION");
    assert_eq!(s.code(), Code::FailedPrecondition, "{}", s.message());
    let details = s.get_error_details();
    let info = details.error_info().expect("an ErrorInfo detail");
    assert_eq!(info.reason, rule, "{}", s.message());
    assert_eq!(info.domain, "portcullis.v1");
}

async fn team_membership_never_forms_a_cycle(b: Backend) {
    let app = spawn_app_on(b).await;
    for t in ["a", "b", "c"] {
        app.team(t).await;
    }
    app.add_member("a", "team:b").await.unwrap();
    app.add_member("b", "team:c").await.unwrap();
    rule(app.add_member("c", "team:a").await, "team_cycle");
    rule(app.add_member("a", "team:a").await, "team_cycle");
    // A diamond is not a cycle.
    app.add_member("a", "team:c").await.unwrap();
}

async fn resources_never_move_under_themselves_and_moves_carry_access(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    app.resource("workspace:a", None).await;
    app.resource("workspace:b", None).await;
    app.resource("folder:f", Some("workspace:a")).await;
    app.resource("folder:g", Some("folder:f")).await;
    app.resource("workflow:w", Some("folder:g")).await;
    app.grant("alice", "viewer", "workspace:b").await;
    assert!(!app.check("alice", "view", "workflow:w").await);
    let mv = |r: &str, p: &str| {
        let mut op = app.operator();
        let (r, p) = (res(r), res(p));
        async move {
            op.move_resource(pb::MoveResourceRequest {
                tenant_id: TENANT.into(),
                resource: Some(r),
                new_parent: Some(p),
                ..Default::default()
            })
            .await
        }
    };
    rule(mv("folder:f", "folder:g").await, "resource_cycle");
    rule(mv("folder:f", "folder:f").await, "resource_cycle");
    // Moving the subtree under workspace b brings alice's access down to w.
    mv("folder:f", "workspace:b").await.unwrap();
    assert!(app.check("alice", "view", "workflow:w").await);
    assert_eq!(app.list("alice", "view", "workflow").await, vec!["w"]);
    // Deleting the subtree removes it and every grant on it.
    app.grant("alice", "editor", "folder:g").await;
    let deleted = app
        .operator()
        .delete_resource(pb::DeleteResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("folder:f")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted_resources, 3);
    assert_eq!(
        app.reason("alice", "view", "workflow:w").await,
        pb::Reason::UnknownResource
    );
    let left = app
        .operator()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj("alice")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .grants;
    assert_eq!(
        left.len(),
        1,
        "only the grant on workspace b remains: {left:?}"
    );
}

async fn a_granted_custom_role_is_deleted_only_with_cascade(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    app.resource("workflow:w", None).await;
    app.role("runner", &["workflow.execute"], &["viewer"], &["*"])
        .await
        .unwrap();
    app.role("super_runner", &["workflow.edit"], &["runner"], &["*"])
        .await
        .unwrap();
    app.grant("alice", "runner", "workflow:w").await;
    assert!(app.check("alice", "execute", "workflow:w").await);
    assert!(app.check("alice", "view", "workflow:w").await);
    let del = |cascade: bool, id: &'static str| {
        let mut op = app.operator();
        async move {
            op.delete_role(pb::DeleteRoleRequest {
                tenant_id: TENANT.into(),
                role_id: id.into(),
                cascade,
                ..Default::default()
            })
            .await
        }
    };
    rule(del(false, "runner").await, "role_in_use");
    // Inherited by another role: refused even with cascade.
    rule(del(true, "runner").await, "role_in_use");
    del(false, "super_runner").await.unwrap();
    rule(del(false, "runner").await, "role_in_use");
    let out = del(true, "runner").await.unwrap().into_inner();
    assert_eq!(out.deleted_grants, 1);
    assert!(!app.check("alice", "execute", "workflow:w").await);
    // Inheritance cannot loop.
    app.role("a", &["workflow.view"], &[], &["*"])
        .await
        .unwrap();
    app.role("b", &[], &["a"], &["*"]).await.unwrap();
    let r = app
        .operator()
        .update_role(pb::UpdateRoleRequest {
            tenant_id: TENANT.into(),
            role: Some(pb::Role {
                id: "a".into(),
                permissions: vec!["workflow.view".into()],
                inherits: vec!["b".into()],
                effective_at: vec!["*".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    rule(r, "role_cycle");
}

async fn predefined_roles_are_locked(b: Backend) {
    let app = spawn_app_on(b).await;
    rule(
        app.role("viewer", &["*.*"], &[], &["*"]).await,
        "locked_role",
    );
    let r = app
        .operator()
        .delete_role(pb::DeleteRoleRequest {
            tenant_id: TENANT.into(),
            role_id: "account_admin".into(),
            cascade: true,
            ..Default::default()
        })
        .await;
    rule(r, "locked_role");
    let roles = app
        .operator()
        .list_roles(pb::ListRolesRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .roles;
    let locked: Vec<&str> = roles
        .iter()
        .filter(|r| r.locked)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        locked,
        ["account_admin", "admin", "editor", "owner", "viewer"]
    );
}

async fn the_last_account_admin_cannot_be_lost_through_a_team_or_a_role(b: Backend) {
    let app = spawn_app_on(b).await;
    // Make the tenant's administration flow through a team and a custom role.
    app.user("carol").await;
    app.team("admins").await;
    app.add_member("admins", "carol").await.unwrap();
    app.role("org_admin", &[], &["account_admin"], &["tenant"])
        .await
        .unwrap();
    app.grant("team:admins", "org_admin", "tenant").await;
    // Now root-admin may go: carol remains.
    app.set_status("", ADMIN, pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    // carol is the last: each way of losing her is refused.
    rule(
        app.remove_member("admins", "carol").await,
        "last_account_admin",
    );
    rule(
        app.set_status("", "carol", pb::PrincipalStatus::Removed)
            .await,
        "last_account_admin",
    );
    let r = app
        .operator()
        .update_role(pb::UpdateRoleRequest {
            tenant_id: TENANT.into(),
            role: Some(pb::Role {
                id: "org_admin".into(),
                inherits: vec!["viewer".into()],
                effective_at: vec!["tenant".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    rule(r, "last_account_admin");
    let r = app
        .operator()
        .delete_team(pb::DeleteTeamRequest {
            tenant_id: TENANT.into(),
            team_id: "admins".into(),
            ..Default::default()
        })
        .await;
    rule(r, "last_account_admin");
    rule(
        app.grant_full(
            "",
            "carol",
            "account_admin",
            "tenant",
            pb::Effect::Deny,
            None,
        )
        .await,
        "last_account_admin",
    );
    // carol still administers.
    let overview = app
        .operator()
        .get_access_overview(pb::GetAccessOverviewRequest {
            tenant_id: TENANT.into(),
            principal_id: "carol".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(overview.account_admin);
    assert_eq!(overview.entries.len(), 1);
    assert_eq!(overview.entries[0].via_teams, ["admins"]);
}

async fn actors_are_authorized_by_their_own_grants(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("ed").await;
    app.user("vi").await;
    app.resource("workspace:ops", None).await;
    app.resource("folder:f", Some("workspace:ops")).await;
    app.grant("ed", "editor", "workspace:ops").await;
    app.grant("vi", "viewer", "workspace:ops").await;
    // An editor creates a workflow in the folder and becomes its owner.
    app.resource_as("ed", "workflow:w", Some("folder:f"), false)
        .await
        .unwrap();
    let owner = app.check_full("ed", "share", "workflow:w").await;
    assert!(owner.allowed);
    assert_eq!(owner.explanation.unwrap().role_id, "owner");
    // A viewer cannot create, and cannot share what it only views.
    assert_eq!(
        code(
            app.resource_as("vi", "workflow:x", Some("folder:f"), false)
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            app.grant_full("vi", "vi", "editor", "folder:f", pb::Effect::Allow, None)
                .await
        ),
        Code::PermissionDenied
    );
    // The editor cannot share the workspace either (sharing needs `share`).
    assert_eq!(
        code(
            app.grant_full(
                "ed",
                "vi",
                "editor",
                "workspace:ops",
                pb::Effect::Allow,
                None
            )
            .await
        ),
        Code::PermissionDenied
    );
    // As owner of w, the editor can share w.
    app.grant_full("ed", "vi", "editor", "workflow:w", pb::Effect::Allow, None)
        .await
        .unwrap();
    assert!(app.check("vi", "edit", "workflow:w").await);
    // Members are managed by account administrators only.
    let r = app
        .operator()
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            actor_id: "ed".into(),
            principal_id: "newbie".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    // Unknown actors are refused too.
    assert_eq!(
        code(app.resource_as("ghost", "workspace:z", None, false).await),
        Code::PermissionDenied
    );
}

async fn an_expiring_grant_stops_granting_at_its_expiry(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("temp").await;
    app.resource("workflow:w", None).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let expiry = now + std::time::Duration::from_millis(1_500);
    let ts = prost_types::Timestamp {
        seconds: expiry.as_secs() as i64,
        nanos: expiry.subsec_nanos() as i32,
    };
    app.grant_full(
        "",
        "temp",
        "viewer",
        "workflow:w",
        pb::Effect::Allow,
        Some(ts),
    )
    .await
    .unwrap();
    assert!(app.check("temp", "view", "workflow:w").await);
    assert_eq!(app.list("temp", "view", "workflow").await, ["w"]);
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    assert_eq!(
        app.reason("temp", "view", "workflow:w").await,
        pb::Reason::GrantExpired
    );
    assert!(app.list("temp", "view", "workflow").await.is_empty());
}

async fn the_audit_trail_records_who_did_what_with_before_and_after(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    let rev = app
        .set_status("", "alice", pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    app.admin()
        .create_team(pb::CreateTeamRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: ADMIN.into(),
            team_id: "ops".into(),
            display_name: "Ops".into(),
        })
        .await
        .unwrap();
    let events = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "team.create",
            "principal.set_status",
            "principal.create",
            "tenant.create"
        ]
    );
    let team = &events[0];
    assert_eq!(
        (team.caller.as_str(), team.actor.as_str()),
        ("test-admin", ADMIN)
    );
    let status = &events[1];
    assert_eq!(
        (status.caller.as_str(), status.actor.as_str()),
        ("test-operator", "super_user")
    );
    assert_eq!(status.revision, rev);
    assert!(
        status.before_json.contains("\"active\""),
        "{}",
        status.before_json
    );
    assert!(
        status.after_json.contains("\"suspended\""),
        "{}",
        status.after_json
    );
    let by_target = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            target_prefix: "principal:".into(),
            actor: "super_user".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(by_target.len(), 2);
}

on_every_backend!(
    team_membership_never_forms_a_cycle,
    resources_never_move_under_themselves_and_moves_carry_access,
    a_granted_custom_role_is_deleted_only_with_cascade,
    predefined_roles_are_locked,
    the_last_account_admin_cannot_be_lost_through_a_team_or_a_role,
    actors_are_authorized_by_their_own_grants,
    an_expiring_grant_stops_granting_at_its_expiry,
    the_audit_trail_records_who_did_what_with_before_and_after,
);

async fn audit_events_older_than_the_tenant_retention_are_pruned(b: Backend) {
    use sea_orm::ConnectionTrait;
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    // Age every event by 91 days, past the default 90-day retention.
    let db = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .unwrap();
    db.execute_unprepared("UPDATE audit_events SET at = at - 7862400000")
        .await
        .unwrap();
    db.close().await.ok();
    app.user("bob").await;
    let events = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let targets: Vec<&str> = events.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["principal:bob"]);
}

on_every_backend!(audit_events_older_than_the_tenant_retention_are_pruned);

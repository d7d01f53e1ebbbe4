//! Issue 10's "Why", item by item, through the public API on every backend:
//! each test is an attack a hostile tenant member made against an earlier
//! release, and asserts that it is now refused (or harmless).

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

// ------------------------------------------------------------------ helpers

/// The code, `google.rpc.ErrorInfo` reason and message of a refused call.
fn refusal<T: std::fmt::Debug>(r: Result<T, Status>) -> (Code, String, String) {
    let s = r.expect_err("the write went through");
    let details = s.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {s:?}"));
    assert_eq!(info.domain, "portcullis.v1");
    (s.code(), info.reason.clone(), s.message().to_owned())
}

/// Asserts PERMISSION_DENIED (`permission_denied`); returns the message.
fn denied<T: std::fmt::Debug>(r: Result<T, Status>) -> String {
    let (code, reason, message) = refusal(r);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert_eq!(reason, "permission_denied", "{message}");
    message
}

/// Asserts FAILED_PRECONDITION naming `rule`.
fn rule<T: std::fmt::Debug>(r: Result<T, Status>, rule: &str) {
    let (code, reason, message) = refusal(r);
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert_eq!(reason, rule, "{message}");
}

/// Asserts INVALID_ARGUMENT naming `field` in a BadRequest detail; returns
/// the message.
fn invalid<T: std::fmt::Debug>(r: Result<T, Status>, field: &str) -> String {
    let s = r.expect_err("the write went through");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    let details = s.get_error_details();
    let violations = &details
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest on {s:?}"))
        .field_violations;
    assert_eq!(violations[0].field, field, "{s:?}");
    assert_eq!(details.error_info().unwrap().reason, "invalid_argument");
    s.message().to_owned()
}

/// A grant as `(subject, role, scope, deny)`, for comparisons.
fn show(g: &pb::Grant) -> (String, String, String, bool) {
    use pb::subject_ref::Kind;
    let subject = match g.subject.as_ref().and_then(|s| s.kind.as_ref()) {
        Some(Kind::PrincipalId(p)) => p.clone(),
        Some(Kind::TeamId(t)) => format!("team:{t}"),
        None => String::new(),
    };
    let scope = g
        .scope
        .as_ref()
        .map_or("tenant".to_owned(), |r| format!("{}:{}", r.r#type, r.id));
    (
        subject,
        g.role_id.clone(),
        scope,
        g.effect == pb::Effect::Deny as i32,
    )
}

fn shown(subject: &str, role: &str, scope: &str, deny: bool) -> (String, String, String, bool) {
    (subject.into(), role.into(), scope.into(), deny)
}

/// Every grant held directly by `subject` (`team:x` or a principal).
async fn grants_of(app: &TestApp, subject: &str) -> Vec<(String, String, String, bool)> {
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
        .iter()
        .map(show)
        .collect()
}

/// Every grant on the resource `r`, with its id.
async fn grants_on(app: &TestApp, r: &str) -> Vec<pb::Grant> {
    app.operator()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            scope: Some(res(r)),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list grants")
        .into_inner()
        .grants
}

async fn shown_on(app: &TestApp, r: &str) -> Vec<(String, String, String, bool)> {
    grants_on(app, r).await.iter().map(show).collect()
}

/// A team's direct members.
async fn members(app: &TestApp, team: &str) -> Vec<pb::SubjectRef> {
    app.operator()
        .list_team_members(pb::ListTeamMembersRequest {
            tenant_id: TENANT.into(),
            team_id: team.into(),
            ..Default::default()
        })
        .await
        .expect("list team members")
        .into_inner()
        .members
}

async fn overview(app: &TestApp, principal: &str) -> pb::GetAccessOverviewResponse {
    app.operator()
        .get_access_overview(pb::GetAccessOverviewRequest {
            tenant_id: TENANT.into(),
            principal_id: principal.into(),
            ..Default::default()
        })
        .await
        .expect("access overview")
        .into_inner()
}

async fn status_of(app: &TestApp, principal: &str) -> pb::PrincipalStatus {
    let p = app
        .operator()
        .get_principal(pb::GetPrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: principal.into(),
            actor_id: String::new(),
        })
        .await
        .expect("get principal")
        .into_inner()
        .principal
        .unwrap();
    pb::PrincipalStatus::try_from(p.status).unwrap()
}

/// Whether the resource `r` exists.
async fn exists(app: &TestApp, r: &str) -> bool {
    match app
        .operator()
        .get_resource(pb::GetResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res(r)),
            actor_id: String::new(),
        })
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == Code::NotFound => false,
        Err(s) => panic!("get resource {r}: {s:?}"),
    }
}

async fn get_role(app: &TestApp, id: &str) -> Result<pb::Role, Status> {
    app.operator()
        .get_role(pb::GetRoleRequest {
            tenant_id: TENANT.into(),
            role_id: id.into(),
            actor_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().role.unwrap())
}

/// A grant made by `actor`.
async fn grant_as(
    app: &TestApp,
    actor: &str,
    subject: &str,
    role: &str,
    scope: &str,
) -> Result<pb::Grant, Status> {
    app.grant_full(actor, subject, role, scope, pb::Effect::Allow, None)
        .await
}

/// A deny grant made by `actor`.
async fn deny_as(
    app: &TestApp,
    actor: &str,
    subject: &str,
    role: &str,
    scope: &str,
) -> Result<pb::Grant, Status> {
    app.grant_full(actor, subject, role, scope, pb::Effect::Deny, None)
        .await
}

async fn add_member_as(
    app: &TestApp,
    actor: &str,
    team: &str,
    member: &str,
) -> Result<tonic::Response<pb::AddTeamMemberResponse>, Status> {
    app.operator()
        .add_team_member(pb::AddTeamMemberRequest {
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            team_id: team.into(),
            member: Some(subj(member)),
            ..Default::default()
        })
        .await
}

async fn delete_grant_as(
    app: &TestApp,
    actor: &str,
    grant_id: &str,
) -> Result<tonic::Response<pb::DeleteGrantResponse>, Status> {
    app.operator()
        .delete_grant(pb::DeleteGrantRequest {
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            grant_id: grant_id.into(),
            ..Default::default()
        })
        .await
}

async fn set_private_as(
    app: &TestApp,
    actor: &str,
    r: &str,
    private: bool,
) -> Result<tonic::Response<pb::SetResourcePrivateResponse>, Status> {
    app.operator()
        .set_resource_private(pb::SetResourcePrivateRequest {
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            resource: Some(res(r)),
            private,
            ..Default::default()
        })
        .await
}

async fn transfer_as(
    app: &TestApp,
    actor: &str,
    r: &str,
    new_owner: &str,
) -> Result<tonic::Response<pb::TransferOwnershipResponse>, Status> {
    app.operator()
        .transfer_ownership(pb::TransferOwnershipRequest {
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            resource: Some(res(r)),
            new_owner_id: new_owner.into(),
            ..Default::default()
        })
        .await
}

async fn delete_resource_as(
    app: &TestApp,
    actor: &str,
    r: &str,
) -> Result<pb::DeleteResourceResponse, Status> {
    app.operator()
        .delete_resource(pb::DeleteResourceRequest {
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            resource: Some(res(r)),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// Creates a resource with every option, as the super user.
async fn create_resource(
    app: &TestApp,
    r: &str,
    parent: Option<&str>,
    private: bool,
    owner: &str,
) -> Result<tonic::Response<pb::CreateResourceResponse>, Status> {
    app.operator()
        .create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res(r)),
            parent: parent.map(res),
            private,
            owner_id: owner.into(),
            ..Default::default()
        })
        .await
}

/// A custom role definition, effective at `at` (`tenant`, `*` for every
/// resource, or resource types).
fn role_def(id: &str, permissions: &[&str], inherits: &[&str], at: &[&str]) -> pb::Role {
    pb::Role {
        id: id.into(),
        display_name: id.into(),
        permissions: permissions.iter().map(|s| s.to_string()).collect(),
        inherits: inherits.iter().map(|s| s.to_string()).collect(),
        effective_at: at.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn update_role_as(
    app: &TestApp,
    actor: &str,
    role: pb::Role,
    mask: &[&str],
) -> Result<tonic::Response<pb::UpdateRoleResponse>, Status> {
    app.operator()
        .update_role(pb::UpdateRoleRequest {
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            role: Some(role),
            update_mask: (!mask.is_empty()).then(|| prost_types::FieldMask {
                paths: mask.iter().map(|s| s.to_string()).collect(),
            }),
            ..Default::default()
        })
        .await
}

/// `workspace:ws` ⊃ `folder:f` ⊃ `workflow:w`; `alice` holds the custom role
/// `sharer` (`*.share`, `*.view`, `*.edit`) on the folder and nothing else;
/// `bob` holds nothing.
async fn world_with_a_folder_sharer(app: &TestApp) {
    app.user("alice").await;
    app.user("bob").await;
    app.resource("workspace:ws", None).await;
    app.resource("folder:f", Some("workspace:ws")).await;
    app.resource("workflow:w", Some("folder:f")).await;
    app.role("sharer", &["*.share", "*.view", "*.edit"], &[], &["*"])
        .await
        .unwrap();
    app.grant("alice", "sharer", "folder:f").await;
}

// ------------------------------------- 1. handing out more than you hold

async fn a_folder_sharer_cannot_grant_herself_owner_or_a_colleague_admin(b: Backend) {
    let app = spawn_app_on(b).await;
    world_with_a_folder_sharer(&app).await;
    assert!(!app.check("alice", "delete", "workflow:w").await);
    denied(grant_as(&app, "alice", "alice", "owner", "folder:f").await);
    denied(grant_as(&app, "alice", "bob", "admin", "folder:f").await);
    denied(grant_as(&app, "alice", "bob", "editor", "folder:f").await);
    // Nothing was gained.
    assert_eq!(
        shown_on(&app, "folder:f").await,
        [shown("alice", "sharer", "folder:f", false)]
    );
    for action in ["delete", "execute", "transfer"] {
        assert!(!app.check("alice", action, "workflow:w").await, "{action}");
        assert!(!app.check("alice", action, "folder:f").await, "{action}");
    }
    assert!(!app.check("bob", "view", "workflow:w").await);
    assert!(grants_of(&app, "bob").await.is_empty());
    // What she holds she may hand on.
    grant_as(&app, "alice", "bob", "viewer", "folder:f")
        .await
        .unwrap();
    assert!(app.check("bob", "view", "workflow:w").await);
    assert!(!app.check("bob", "edit", "workflow:w").await);
}

async fn a_workspace_admin_cannot_make_himself_owner_or_take_a_single_owner_project(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("carl").await;
    app.user("dora").await;
    app.resource("workspace:ws", None).await;
    app.owned_resource("project:p", Some("workspace:ws"), "dora")
        .await;
    app.grant("carl", "admin", "workspace:ws").await;
    // `admin` lacks `*.transfer` and `project.delete`; `owner` has them.
    assert!(!app.check("carl", "transfer", "workspace:ws").await);
    denied(grant_as(&app, "carl", "carl", "owner", "workspace:ws").await);
    denied(transfer_as(&app, "carl", "project:p", "carl").await);
    // Nothing changed: dora still owns the project, carl is still an admin.
    assert_eq!(
        shown_on(&app, "project:p").await,
        [shown("dora", "owner", "project:p", false)]
    );
    assert_eq!(
        grants_of(&app, "carl").await,
        [shown("carl", "admin", "workspace:ws", false)]
    );
    assert!(app.check("dora", "transfer", "project:p").await);
    assert!(app.check("carl", "edit", "project:p").await);
    // What he holds he may hand on.
    app.user("eve").await;
    grant_as(&app, "carl", "eve", "editor", "workspace:ws")
        .await
        .unwrap();
    assert!(app.check("eve", "view", "project:p").await);
    assert!(!app.check("eve", "edit", "project:p").await);
    for (action, r) in [
        ("transfer", "project:p"),
        ("delete", "project:p"),
        ("transfer", "workspace:ws"),
    ] {
        assert!(!app.check("carl", action, r).await, "{action} {r}");
    }
}

async fn an_account_admin_cannot_grant_herself_owner_on_the_tenant(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("erin").await;
    app.user("frank").await;
    app.resource("workspace:ws", None).await;
    app.resource("workflow:w", Some("workspace:ws")).await;
    app.grant("erin", "account_admin", "tenant").await;
    // `account_admin`: nothing inside workspaces.
    assert!(!app.check("erin", "view", "workflow:w").await);
    denied(grant_as(&app, "erin", "erin", "owner", "tenant").await);
    denied(grant_as(&app, "erin", "erin", "owner", "workspace:ws").await);
    // Nor through a team she is in.
    app.operator()
        .create_team(pb::CreateTeamRequest {
            tenant_id: TENANT.into(),
            actor_id: "erin".into(),
            team_id: "mine".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    add_member_as(&app, "erin", "mine", "erin").await.unwrap();
    denied(grant_as(&app, "erin", "team:mine", "owner", "tenant").await);
    // Nothing was gained.
    assert_eq!(
        grants_of(&app, "erin").await,
        [shown("erin", "account_admin", "tenant", false)]
    );
    assert!(grants_of(&app, "team:mine").await.is_empty());
    for action in ["view", "edit", "delete"] {
        assert!(!app.check("erin", action, "workflow:w").await, "{action}");
    }
    // To others she may (the audited `tenant.delegate` waiver).
    grant_as(&app, "erin", "frank", "editor", "workspace:ws")
        .await
        .unwrap();
    assert!(app.check("frank", "edit", "workflow:w").await);
    assert!(!app.check("erin", "edit", "workflow:w").await);
}

// ------------------------------------------------ 2. editing your own role

async fn a_role_manager_cannot_widen_the_role_she_holds(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("finn").await;
    app.resource("workspace:ws", None).await;
    app.resource("workflow:w", Some("workspace:ws")).await;
    app.role("role_manager", &["tenant.manage_roles"], &[], &["tenant"])
        .await
        .unwrap();
    app.grant("finn", "role_manager", "tenant").await;
    denied(
        update_role_as(
            &app,
            "finn",
            role_def("role_manager", &["*.*"], &[], &["tenant"]),
            &[],
        )
        .await,
    );
    denied(
        update_role_as(
            &app,
            "finn",
            role_def("role_manager", &[], &["owner"], &["tenant"]),
            &["inherits"],
        )
        .await,
    );
    denied(
        update_role_as(
            &app,
            "finn",
            role_def(
                "role_manager",
                &["tenant.manage_roles", "workflow.delete"],
                &[],
                &["tenant"],
            ),
            &["permissions"],
        )
        .await,
    );
    // The role is unchanged, and she still cannot delete workflows.
    let role = get_role(&app, "role_manager").await.unwrap();
    assert_eq!(role.permissions, ["tenant.manage_roles"]);
    assert!(role.inherits.is_empty());
    assert!(!app.check("finn", "delete", "workflow:w").await);
    denied(delete_resource_as(&app, "finn", "workflow:w").await);
    assert!(exists(&app, "workflow:w").await);
    // An edit that gives nothing new is fine.
    update_role_as(
        &app,
        "finn",
        role_def("role_manager", &["tenant.manage_roles"], &[], &["tenant"]),
        &[],
    )
    .await
    .unwrap();
}

// --------------------------------------------- 3. joining a powerful team

async fn a_team_manager_cannot_join_a_team_holding_owner_on_the_tenant(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("gus").await;
    app.resource("workspace:ws", None).await;
    app.resource("workflow:w", Some("workspace:ws")).await;
    app.role("team_manager", &["tenant.manage_teams"], &[], &["tenant"])
        .await
        .unwrap();
    app.grant("gus", "team_manager", "tenant").await;
    app.team("owners").await;
    app.grant("team:owners", "owner", "tenant").await;
    denied(add_member_as(&app, "gus", "owners", "gus").await);
    // Nor by nesting a team of his own into it.
    app.team("mine").await;
    add_member_as(&app, "gus", "mine", "gus").await.unwrap();
    denied(add_member_as(&app, "gus", "owners", "team:mine").await);
    // Nothing was gained.
    assert!(members(&app, "owners").await.is_empty());
    for action in ["view", "delete"] {
        assert!(!app.check("gus", action, "workflow:w").await, "{action}");
    }
    assert!(overview(&app, "gus")
        .await
        .entries
        .iter()
        .all(|e| e.grant.as_ref().unwrap().role_id == "team_manager"));
}

// ---------------------------------- 4. side doors around last_account_admin

async fn the_last_account_admin_cannot_join_a_team_denied_account_admin(b: Backend) {
    let app = spawn_app_on(b).await;
    app.team("blocked").await;
    // Accepted: the team is empty, so nobody loses anything yet.
    app.deny("team:blocked", "account_admin", "tenant").await;
    rule(app.add_member("blocked", ADMIN).await, "last_account_admin");
    // Not by himself either.
    rule(
        add_member_as(&app, ADMIN, "blocked", ADMIN).await,
        "last_account_admin",
    );
    assert!(members(&app, "blocked").await.is_empty());
    assert!(overview(&app, ADMIN).await.account_admin);
    // He can still administer: create a member.
    app.operator()
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            actor_id: ADMIN.into(),
            principal_id: "newcomer".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn a_member_manager_cannot_suspend_the_last_real_account_admin(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("mo").await;
    app.role(
        "member_manager",
        &["tenant.manage_members"],
        &[],
        &["tenant"],
    )
    .await
    .unwrap();
    app.grant("mo", "member_manager", "tenant").await;
    // He does manage members.
    app.user("pat").await;
    app.set_status("mo", "pat", pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    let (code, reason, message) = refusal(
        app.set_status("mo", ADMIN, pb::PrincipalStatus::Suspended)
            .await,
    );
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert_eq!(reason, "last_account_admin", "{message}");
    assert_eq!(status_of(&app, ADMIN).await, pb::PrincipalStatus::Active);
    assert!(overview(&app, ADMIN).await.account_admin);
}

// ------------------------------------------ 5. locking out those above you

async fn a_folder_sharer_cannot_deny_the_tenant_administrators(b: Backend) {
    let app = spawn_app_on(b).await;
    world_with_a_folder_sharer(&app).await;
    app.user("hal").await;
    app.grant("hal", "admin", "tenant").await;
    app.user("olga").await;
    app.grant("olga", "owner", "tenant").await;
    for target in [ADMIN, "hal", "olga"] {
        for role in ["viewer", "sharer"] {
            denied(deny_as(&app, "alice", target, role, "folder:f").await);
        }
    }
    assert_eq!(
        shown_on(&app, "folder:f").await,
        [shown("alice", "sharer", "folder:f", false)]
    );
    for who in ["hal", "olga"] {
        assert!(app.check(who, "view", "workflow:w").await, "{who}");
        assert!(app.check(who, "share", "folder:f").await, "{who}");
    }
    // She may deny someone whose grants she could have made.
    deny_as(&app, "alice", "bob", "viewer", "folder:f")
        .await
        .unwrap();
}

async fn tenant_admins_lift_denies_and_undo_privacy_set_by_a_folder_sharer(b: Backend) {
    let app = spawn_app_on(b).await;
    world_with_a_folder_sharer(&app).await;
    app.user("hal").await;
    app.grant("hal", "admin", "tenant").await;
    app.user("olga").await;
    app.grant("olga", "owner", "tenant").await;
    grant_as(&app, "alice", "bob", "viewer", "folder:f")
        .await
        .unwrap();
    for recoverer in ["hal", "olga"] {
        // alice hides the folder and denies bob in it.
        set_private_as(&app, "alice", "folder:f", true)
            .await
            .unwrap();
        deny_as(&app, "alice", "bob", "viewer", "folder:f")
            .await
            .unwrap();
        assert_eq!(
            app.reason(recoverer, "view", "workflow:w").await,
            pb::Reason::PrivateBoundary
        );
        assert_eq!(
            app.reason("bob", "view", "workflow:w").await,
            pb::Reason::ExplicitDeny
        );
        // The tenant-wide admin (or owner) finds the deny and lifts it, then
        // makes the folder public again.
        let deny = grants_on(&app, "folder:f")
            .await
            .into_iter()
            .find(|g| g.effect == pb::Effect::Deny as i32)
            .expect("the deny is listed");
        assert_eq!(show(&deny), shown("bob", "viewer", "folder:f", true));
        delete_grant_as(&app, recoverer, &deny.id)
            .await
            .unwrap_or_else(|s| panic!("{recoverer} lifts the deny: {s:?}"));
        set_private_as(&app, recoverer, "folder:f", false)
            .await
            .unwrap_or_else(|s| panic!("{recoverer} undoes privacy: {s:?}"));
        assert!(app.check(recoverer, "view", "workflow:w").await);
        assert!(app.check("bob", "view", "workflow:w").await);
        assert!(grants_on(&app, "folder:f")
            .await
            .iter()
            .all(|g| g.effect != pb::Effect::Deny as i32));
    }
}

async fn an_admin_cannot_deny_the_single_owner_of_a_project(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("ivy").await;
    app.user("hal").await;
    app.grant("hal", "admin", "tenant").await;
    app.owned_resource("project:p", None, "ivy").await;
    for role in ["viewer", "owner"] {
        denied(deny_as(&app, "hal", "ivy", role, "project:p").await);
    }
    assert_eq!(
        shown_on(&app, "project:p").await,
        [shown("ivy", "owner", "project:p", false)]
    );
    assert!(app.check("ivy", "view", "project:p").await);
    assert!(app.check("ivy", "transfer", "project:p").await);
    // He may deny someone whose grants he could have made.
    app.user("zed").await;
    deny_as(&app, "hal", "zed", "viewer", "project:p")
        .await
        .unwrap();
}

// ------------------------------------------- 6. removal that does not remove

async fn removal_revokes_grants_and_memberships_and_reinvitation_starts_clean(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("jo").await;
    app.resource("workspace:ws", None).await;
    app.resource("workflow:w", Some("workspace:ws")).await;
    app.resource("workspace:other", None).await;
    app.grant("jo", "editor", "workspace:ws").await;
    app.team("t").await;
    app.grant("team:t", "viewer", "workspace:other").await;
    app.add_member("t", "jo").await.unwrap();
    assert!(app.check("jo", "edit", "workflow:w").await);
    assert!(app.check("jo", "view", "workspace:other").await);
    app.set_status("", "jo", pb::PrincipalStatus::Removed)
        .await
        .unwrap();
    assert_eq!(
        app.reason("jo", "view", "workflow:w").await,
        pb::Reason::PrincipalRemoved
    );
    assert!(grants_of(&app, "jo").await.is_empty());
    assert!(members(&app, "t").await.is_empty());
    assert!(overview(&app, "jo").await.entries.is_empty());
    let events = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            action: "principal.set_status".into(),
            target_prefix: "principal:jo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        events[0].after_json.contains("\"revoked\""),
        "{}",
        events[0].after_json
    );
    // Straight back to active is refused.
    rule(
        app.set_status("", "jo", pb::PrincipalStatus::Active).await,
        "principal_removed",
    );
    assert_eq!(status_of(&app, "jo").await, pb::PrincipalStatus::Removed);
    // Invited again, jo starts clean: no grant, no team.
    app.set_status("", "jo", pb::PrincipalStatus::Invited)
        .await
        .unwrap();
    assert_eq!(status_of(&app, "jo").await, pb::PrincipalStatus::Invited);
    let o = overview(&app, "jo").await;
    assert!(o.entries.is_empty(), "{:?}", o.entries);
    assert!(!o.account_admin);
    assert!(grants_of(&app, "jo").await.is_empty());
    assert!(members(&app, "t").await.is_empty());
    assert!(!app.check("jo", "view", "workflow:w").await);
    assert!(!app.check("jo", "view", "workspace:other").await);
}

async fn an_invited_principal_becomes_active_only_by_accepting(b: Backend) {
    let app = spawn_app_on(b).await;
    app.resource("workspace:ws", None).await;
    app.principal("ivy", pb::PrincipalKind::User, pb::PrincipalStatus::Invited)
        .await;
    app.user("bob").await;
    app.grant("ivy", "viewer", "workspace:ws").await;
    assert_eq!(
        app.reason("ivy", "view", "workspace:ws").await,
        pb::Reason::PrincipalInvited
    );
    // Nobody activates her: not the operator, not an account administrator.
    for actor in ["", "root-admin"] {
        rule(
            app.set_status(actor, "ivy", pb::PrincipalStatus::Active)
                .await,
            "invitation_not_accepted",
        );
    }
    // Nobody accepts for her either.
    let operator = app.operator();
    let accept_as = |actor: &'static str| {
        let mut operator = operator.clone();
        async move {
            operator
                .accept_invitation(pb::AcceptInvitationRequest {
                    tenant_id: TENANT.into(),
                    actor_id: actor.into(),
                    principal_id: "ivy".into(),
                    request_id: String::new(),
                })
                .await
        }
    };
    denied(accept_as("bob").await);
    denied(accept_as("root-admin").await);
    assert_eq!(status_of(&app, "ivy").await, pb::PrincipalStatus::Invited);
    assert!(!app.check("ivy", "view", "workspace:ws").await);
    // She accepts, and has what she was given.
    accept_as("ivy").await.unwrap();
    assert_eq!(status_of(&app, "ivy").await, pb::PrincipalStatus::Active);
    assert!(app.check("ivy", "view", "workspace:ws").await);
    // Accepting again changes nothing; a suspended principal cannot accept
    // its way back.
    accept_as("ivy").await.unwrap();
    assert_eq!(status_of(&app, "ivy").await, pb::PrincipalStatus::Active);
    app.set_status("", "ivy", pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    rule(accept_as("ivy").await, "not_invited");
    assert_eq!(status_of(&app, "ivy").await, pb::PrincipalStatus::Suspended);
    assert!(!app.check("ivy", "view", "workspace:ws").await);
}

async fn admin_reads_naming_an_actor_show_only_what_it_may_see(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    app.user("bob").await;
    app.resource("workspace:ws1", None).await;
    app.resource("workspace:ws2", None).await;
    app.resource("workflow:open", Some("workspace:ws1")).await;
    app.private_resource("workflow:secret", Some("workspace:ws1"))
        .await;
    app.grant("alice", "viewer", "workspace:ws1").await;
    app.grant("bob", "editor", "workspace:ws2").await;
    app.grant("bob", "owner", "workflow:secret").await;
    let mut admin = app.admin();
    let list = |parent: Option<&str>, actor: &str| {
        let mut admin = admin.clone();
        let (parent, actor) = (parent.map(res), actor.to_owned());
        async move {
            let mut ids: Vec<String> = admin
                .list_resources(pb::ListResourcesRequest {
                    tenant_id: TENANT.into(),
                    parent,
                    actor_id: actor,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .resources
                .into_iter()
                .map(|r| r.r#ref.unwrap().id)
                .collect();
            ids.sort();
            ids
        }
    };
    // Without an actor, the calling service sees everything, as before.
    assert_eq!(list(None, "").await, ["ws1", "ws2"]);
    assert_eq!(list(Some("workspace:ws1"), "").await, ["open", "secret"]);
    // Alice sees her workspace and what is not private in it.
    assert_eq!(list(None, "alice").await, ["ws1"]);
    assert_eq!(list(Some("workspace:ws1"), "alice").await, ["open"]);
    let get = |r: &str, actor: &str| {
        let mut admin = admin.clone();
        let (r, actor) = (res(r), actor.to_owned());
        async move {
            admin
                .get_resource(pb::GetResourceRequest {
                    tenant_id: TENANT.into(),
                    resource: Some(r),
                    actor_id: actor,
                })
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    };
    assert_eq!(get("workflow:secret", "bob").await, Ok(()));
    // What she may not see is answered as what does not exist.
    assert_eq!(get("workflow:secret", "alice").await, Err(Code::NotFound));
    assert_eq!(get("workspace:ws2", "alice").await, Err(Code::NotFound));
    assert_eq!(get("workspace:ws1", "alice").await, Ok(()));
    // Grants on scopes she may not view are left out.
    let grants = |actor: &str| {
        let mut admin = admin.clone();
        let actor = actor.to_owned();
        async move {
            let mut scopes: Vec<String> = admin
                .list_grants(pb::ListGrantsRequest {
                    tenant_id: TENANT.into(),
                    actor_id: actor,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .grants
                .into_iter()
                .map(|g| g.scope.map_or("tenant".to_owned(), |s| s.id))
                .collect();
            scopes.sort();
            scopes.dedup();
            scopes
        }
    };
    assert_eq!(grants("alice").await, ["ws1"]);
    // Naming what she may not view is answered as naming what does not
    // exist: as a parent, or as the scope of grants.
    let hidden = app
        .admin()
        .list_resources(pb::ListResourcesRequest {
            tenant_id: TENANT.into(),
            parent: Some(res("workspace:ws2")),
            actor_id: "alice".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(hidden), Code::NotFound);
    let hidden = app
        .admin()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            scope: Some(res("workspace:ws2")),
            actor_id: "alice".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(hidden), Code::NotFound);
    assert_eq!(grants("").await, ["secret", "tenant", "ws1", "ws2"]);
    // Her own overview, not bob's; an account administrator sees bob's.
    let overview_of = |who: &str, actor: &str| {
        let mut admin = admin.clone();
        let (who, actor) = (who.to_owned(), actor.to_owned());
        async move {
            admin
                .get_access_overview(pb::GetAccessOverviewRequest {
                    tenant_id: TENANT.into(),
                    principal_id: who,
                    actor_id: actor,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().entries.len())
                .map_err(|s| s.code())
        }
    };
    assert_eq!(overview_of("alice", "alice").await, Ok(1));
    assert_eq!(
        overview_of("bob", "alice").await,
        Err(Code::PermissionDenied)
    );
    assert_eq!(overview_of("bob", ADMIN).await.map(|_| ()), Ok(()));
    // The audit log is for those allowed `tenant.view_audit`.
    let audit = |actor: &str| {
        let mut admin = admin.clone();
        let actor = actor.to_owned();
        async move {
            admin
                .list_audit_events(pb::ListAuditEventsRequest {
                    tenant_id: TENANT.into(),
                    actor_id: actor,
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    };
    assert_eq!(audit("alice").await, Err(Code::PermissionDenied));
    assert_eq!(audit(ADMIN).await, Ok(()));
    // An actor that is not an active member reads nothing.
    app.set_status("", "bob", pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    for actor in ["bob", "nobody"] {
        let r = admin
            .list_teams(pb::ListTeamsRequest {
                tenant_id: TENANT.into(),
                actor_id: actor.into(),
                ..Default::default()
            })
            .await;
        assert_eq!(code(r), Code::PermissionDenied, "{actor}");
    }
}

async fn a_long_decision_lets_other_calls_through(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("mallory").await;
    app.resource("workspace:ws", None).await;
    for i in 0..50 {
        app.resource(&format!("workflow:w{i}"), Some("workspace:ws"))
            .await;
    }
    // The widest, deepest role graph accepted: 8 levels of 4 roles, each
    // inheriting all 4 of the level below.
    let name = |level: usize, i: usize| format!("l{level}r{i}");
    for level in 0..8 {
        let below: Vec<String> = if level == 0 {
            Vec::new()
        } else {
            (0..4).map(|j| name(level - 1, j)).collect()
        };
        let below: Vec<&str> = below.iter().map(String::as_str).collect();
        for i in 0..4 {
            let perm = format!("workflow.a{level}_{i}");
            app.role(&name(level, i), &[&perm], &below, &["*"])
                .await
                .unwrap();
        }
    }
    app.grant("mallory", &name(7, 0), "workspace:ws").await;
    // 5,000 questions no role answers: each looks at the whole graph.
    let batch = pb::BatchCheckRequest {
        tenant_id: TENANT.into(),
        items: (0..5_000)
            .map(|i| pb::BatchCheckItem {
                principal_id: "mallory".into(),
                action: "delete".into(),
                resource: Some(res(&format!("workflow:w{}", i % 50))),
            })
            .collect(),
        ..Default::default()
    };
    let mut checker = app.checker();
    // Once to fill the cache: then the batch is decision work only, with
    // nothing to wait for.
    let started = std::time::Instant::now();
    let answers = checker.batch_check(batch.clone()).await.unwrap();
    let took = started.elapsed();
    assert!(answers.into_inner().results.iter().all(|r| !r.allowed));
    // While the batch runs, other calls are answered in between: the
    // decision loop hands the thread back (this test's server shares the
    // test's single thread). Without that, one of these checks would wait
    // for the whole loop.
    // The other calls come over a connection of their own, as from another
    // service.
    let other = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut other = pb::check_service_client::CheckServiceClient::with_interceptor(
        other,
        Bearer::new(CHECK_KEY).unwrap(),
    );
    let question = pb::CheckRequest {
        tenant_id: TENANT.into(),
        principal_id: ADMIN.into(),
        action: "view".into(),
        resource: Some(res("workflow:w1")),
        ..Default::default()
    };
    other.check(question.clone()).await.unwrap();
    let mut heavy_client = checker.clone();
    let heavy = tokio::spawn(async move { heavy_client.batch_check(batch).await });
    let (mut worst, mut answered) = (std::time::Duration::ZERO, 0);
    while !heavy.is_finished() {
        let t = std::time::Instant::now();
        other.check(question.clone()).await.unwrap();
        worst = worst.max(t.elapsed());
        answered += 1;
    }
    heavy.await.unwrap().unwrap();
    println!(
        "cooperation: a warm 5,000-item batch took {} ms alone; {answered} checks answered while it ran again, the slowest in {} ms",
        took.as_millis(),
        worst.as_millis()
    );
    // Without the yields, the first check waits for the whole loop and the
    // batch is over when it returns: one check answered.
    assert!(
        answered >= 3,
        "{answered} checks answered during the batch (the slowest in {worst:?})"
    );
}

async fn the_single_owner_of_a_project_cannot_be_removed(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("kim").await;
    app.owned_resource("project:p", None, "kim").await;
    rule(
        app.set_status("", "kim", pb::PrincipalStatus::Removed)
            .await,
        "single_owner",
    );
    assert_eq!(status_of(&app, "kim").await, pb::PrincipalStatus::Active);
    assert_eq!(
        shown_on(&app, "project:p").await,
        [shown("kim", "owner", "project:p", false)]
    );
    assert!(app.check("kim", "transfer", "project:p").await);
}

async fn an_owner_must_be_active_on_creation_and_on_transfer(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("lee").await;
    app.set_status("", "lee", pb::PrincipalStatus::Suspended)
        .await
        .unwrap();
    app.principal("ina", pb::PrincipalKind::User, pb::PrincipalStatus::Invited)
        .await;
    for owner in ["lee", "ina"] {
        for r in ["project:p", "workflow:w"] {
            rule(
                create_resource(&app, r, None, false, owner).await,
                "owner_must_be_active",
            );
            assert!(!exists(&app, r).await, "{r} with owner {owner}");
        }
        assert!(grants_of(&app, owner).await.is_empty());
    }
    // Nor handed an existing project.
    app.user("max").await;
    app.owned_resource("project:q", None, "max").await;
    rule(
        transfer_as(&app, "", "project:q", "lee").await,
        "owner_must_be_active",
    );
    assert_eq!(
        shown_on(&app, "project:q").await,
        [shown("max", "owner", "project:q", false)]
    );
}

// ------------------------------------------- 7. deleting what you cannot see

async fn an_editor_cannot_delete_a_folder_holding_a_private_workflow_she_cannot_see(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("mia").await;
    app.user("ned").await;
    app.resource("workspace:ws", None).await;
    app.resource("folder:f", Some("workspace:ws")).await;
    app.resource("workflow:open", Some("folder:f")).await;
    create_resource(&app, "workflow:secret", Some("folder:f"), true, "ned")
        .await
        .unwrap();
    app.grant("mia", "editor", "workspace:ws").await;
    assert!(app.check("mia", "delete", "folder:f").await);
    assert!(app.check("mia", "delete", "workflow:open").await);
    assert_eq!(
        app.reason("mia", "view", "workflow:secret").await,
        pb::Reason::PrivateBoundary
    );
    let message = denied(delete_resource_as(&app, "mia", "folder:f").await);
    assert!(message.contains("workflow:secret"), "{message}");
    // Nothing was deleted.
    for r in ["folder:f", "workflow:open", "workflow:secret"] {
        assert!(exists(&app, r).await, "{r}");
    }
    assert!(app.check("ned", "view", "workflow:secret").await);
    // Once the private workflow is moved out, the folder is hers to delete.
    app.operator()
        .move_resource(pb::MoveResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("workflow:secret")),
            new_parent: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let out = delete_resource_as(&app, "mia", "folder:f").await.unwrap();
    assert_eq!(out.deleted_resources, 2);
    assert!(exists(&app, "workflow:secret").await);
}

// ------------------------------------------------- 8. actions that vanish

async fn owner_and_admin_keep_an_action_the_last_custom_role_stops_naming(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("pia").await;
    app.grant("pia", "owner", "tenant").await;
    app.user("hal").await;
    app.grant("hal", "admin", "tenant").await;
    app.user("ned").await;
    app.owned_resource("project:p", None, "ned").await;
    // Unknown before any role names it.
    assert_eq!(
        app.reason("pia", "sync", "project:p").await,
        pb::Reason::UnknownPermission
    );
    app.role("syncer", &["project.sync"], &[], &["*"])
        .await
        .unwrap();
    for who in ["pia", "hal", "ned"] {
        assert!(app.check(who, "sync", "project:p").await, "{who}");
    }
    // The only role naming it stops naming it.
    update_role_as(
        &app,
        "",
        role_def("syncer", &["project.view"], &[], &["*"]),
        &[],
    )
    .await
    .unwrap();
    for who in ["pia", "hal", "ned"] {
        assert!(
            app.check(who, "sync", "project:p").await,
            "{who} lost `sync`"
        );
    }
    // Deleted altogether.
    app.operator()
        .delete_role(pb::DeleteRoleRequest {
            tenant_id: TENANT.into(),
            role_id: "syncer".into(),
            cascade: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for who in ["pia", "hal", "ned"] {
        assert!(
            app.check(who, "sync", "project:p").await,
            "{who} lost `sync`"
        );
    }
    let tenant = app
        .operator()
        .get_tenant(pb::GetTenantRequest {
            tenant_id: TENANT.into(),
            actor_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert!(tenant.actions.iter().any(|a| a == "sync"), "{tenant:?}");
    // A typo is still unknown, not covered by `*.*`.
    assert_eq!(
        app.reason("pia", "synk", "project:p").await,
        pb::Reason::UnknownPermission
    );
}

// --------------------------------------- 9. one tenant stalls the instance

async fn a_role_graph_past_the_inheritance_limits_is_refused_when_written(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("uma").await;
    app.resource("workspace:ws", None).await;
    app.resource("workflow:w", Some("workspace:ws")).await;
    // Eight roles per level, each inheriting all eight of the level below:
    // a level-k role reaches 1 + 8k roles; the limit is 32.
    let name = |level: usize, i: usize| format!("l{level}r{i}");
    let mut refused_at = None;
    'levels: for level in 0..9 {
        for i in 0..8 {
            let below: Vec<String> = if level == 0 {
                Vec::new()
            } else {
                (0..8).map(|j| name(level - 1, j)).collect()
            };
            let below: Vec<&str> = below.iter().map(String::as_str).collect();
            let perms: &[&str] = if level == 0 { &["workflow.view"] } else { &[] };
            let r = app.role(&name(level, i), perms, &below, &["*"]).await;
            if r.is_err() {
                let message = invalid(r, "role.inherits");
                assert!(message.contains("role_inheritance_limit"), "{message}");
                refused_at = Some((level, i));
                break 'levels;
            }
        }
    }
    assert_eq!(refused_at, Some((4, 0)));
    assert_eq!(
        get_role(&app, "l4r0").await.unwrap_err().code(),
        Code::NotFound
    );
    // The widest graph allowed still decides correctly.
    app.grant("uma", "l3r7", "workspace:ws").await;
    assert!(app.check("uma", "view", "workflow:w").await);
    assert!(!app.check("uma", "edit", "workflow:w").await);

    // A chain: c0 ← c1 ← … ← c8 is 8 levels, the limit; c9 is refused.
    for i in 0..=9 {
        let parent = format!("c{}", i.max(1) - 1);
        let inherits: Vec<&str> = if i == 0 { vec![] } else { vec![&parent] };
        let perms: &[&str] = if i == 0 { &["workflow.execute"] } else { &[] };
        let r = app.role(&format!("c{i}"), perms, &inherits, &["*"]).await;
        if i < 9 {
            r.unwrap_or_else(|s| panic!("c{i}: {s:?}"));
        } else {
            let message = invalid(r, "role.inherits");
            assert!(message.contains("role_inheritance_limit"), "{message}");
        }
    }
    assert_eq!(
        get_role(&app, "c9").await.unwrap_err().code(),
        Code::NotFound
    );
    // Deepening the chain from below by an update is refused too.
    app.role("base", &["workflow.view"], &[], &["*"])
        .await
        .unwrap();
    let message = invalid(
        update_role_as(
            &app,
            "",
            role_def("c0", &[], &["base"], &["*"]),
            &["inherits"],
        )
        .await,
        "role.inherits",
    );
    assert!(message.contains("role_inheritance_limit"), "{message}");
    assert!(get_role(&app, "c0").await.unwrap().inherits.is_empty());
    // The deepest chain allowed decides correctly.
    app.grant("uma", "c8", "workspace:ws").await;
    assert!(app.check("uma", "execute", "workflow:w").await);
}

async fn teams_cannot_nest_past_the_limit(b: Backend) {
    let app = spawn_app_on(b).await;
    const LIMIT: usize = 8;
    for i in 0..=LIMIT {
        app.team(&format!("t{i}")).await;
    }
    // t0 ⊃ t1 ⊃ … ⊃ t7: eight teams in a chain, the limit.
    for i in 1..LIMIT {
        app.add_member(&format!("t{}", i - 1), &format!("team:t{i}"))
            .await
            .unwrap();
    }
    let t_last = format!("t{}", LIMIT - 1);
    let t_extra = format!("t{LIMIT}");
    rule(
        app.add_member(&t_last, &format!("team:{t_extra}")).await,
        "team_nesting_limit",
    );
    rule(
        app.add_member(&t_extra, "team:t0").await,
        "team_nesting_limit",
    );
    assert!(members(&app, &t_last).await.is_empty());
    assert!(members(&app, &t_extra).await.is_empty());
    // At the limit, access flows down the whole chain.
    app.user("deep").await;
    app.add_member(&t_last, "deep").await.unwrap();
    app.resource("workspace:ws", None).await;
    app.grant("team:t0", "viewer", "workspace:ws").await;
    assert!(app.check("deep", "view", "workspace:ws").await);
}

// ------------------------------------------------------------------ smaller

async fn the_principal_id_super_user_cannot_be_created(b: Backend) {
    let app = spawn_app_on(b).await;
    for kind in [pb::PrincipalKind::User, pb::PrincipalKind::ServiceAccount] {
        for actor in ["", ADMIN] {
            let r = app
                .operator()
                .create_principal(pb::CreatePrincipalRequest {
                    tenant_id: TENANT.into(),
                    actor_id: actor.into(),
                    principal_id: "super_user".into(),
                    kind: kind as i32,
                    status: pb::PrincipalStatus::Active as i32,
                    ..Default::default()
                })
                .await;
            invalid(r, "principal_id");
        }
    }
    let r = app
        .operator()
        .get_principal(pb::GetPrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "super_user".into(),
            actor_id: String::new(),
        })
        .await;
    assert_eq!(code(r), Code::NotFound);
    let all = app
        .operator()
        .list_principals(pb::ListPrincipalsRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .principals;
    let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, [ADMIN]);
}

async fn sixteen_concurrent_writers_all_succeed(b: Backend) {
    const WRITERS: usize = 16;
    const ROUNDS: usize = 6;
    let app = spawn_app_on(b).await;
    let others = ["north", "south", "east", "west"];
    for t in others {
        create_tenant(&mut app.operator(), t).await;
    }
    // Half the writers in one tenant, the others spread over four more.
    let tenant_of = |i: usize| -> &'static str {
        if i < WRITERS / 2 {
            TENANT
        } else {
            ["north", "south", "east", "west"][i % 4]
        }
    };
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let mut op = app.operator();
        let start = start.clone();
        let tenant = tenant_of(i);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut failures = Vec::new();
            for k in 0..ROUNDS {
                let who = format!("u{i}_{k}");
                let ws = format!("ws{i}_{k}");
                let r = op
                    .create_principal(pb::CreatePrincipalRequest {
                        tenant_id: tenant.into(),
                        principal_id: who.clone(),
                        status: pb::PrincipalStatus::Active as i32,
                        ..Default::default()
                    })
                    .await;
                if let Err(s) = r {
                    failures.push(format!("principal {who}: {:?} {}", s.code(), s.message()));
                }
                let r = op
                    .create_resource(pb::CreateResourceRequest {
                        tenant_id: tenant.into(),
                        resource: Some(res(&format!("workspace:{ws}"))),
                        ..Default::default()
                    })
                    .await;
                if let Err(s) = r {
                    failures.push(format!("resource {ws}: {:?} {}", s.code(), s.message()));
                }
                let r = op
                    .create_grant(pb::CreateGrantRequest {
                        tenant_id: tenant.into(),
                        subject: Some(subj(&who)),
                        role_id: "viewer".into(),
                        scope: Some(res(&format!("workspace:{ws}"))),
                        ..Default::default()
                    })
                    .await;
                if let Err(s) = r {
                    failures.push(format!("grant {who}: {:?} {}", s.code(), s.message()));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    // Every write is there.
    for (tenant, writers) in [(TENANT, WRITERS / 2)]
        .into_iter()
        .chain(others.iter().map(|t| (*t, WRITERS / 2 / others.len())))
    {
        let principals = app
            .operator()
            .list_principals(pb::ListPrincipalsRequest {
                tenant_id: tenant.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .principals;
        assert_eq!(principals.len(), 1 + writers * ROUNDS, "{tenant}");
        let grants = app
            .operator()
            .list_grants(pb::ListGrantsRequest {
                tenant_id: tenant.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .grants;
        assert_eq!(grants.len(), 1 + writers * ROUNDS, "{tenant}");
    }
    for i in 0..WRITERS / 2 {
        for k in 0..ROUNDS {
            let (who, ws) = (format!("u{i}_{k}"), format!("workspace:ws{i}_{k}"));
            assert!(app.check(&who, "view", &ws).await, "{who} {ws}");
        }
    }
}

on_every_backend!(
    a_folder_sharer_cannot_grant_herself_owner_or_a_colleague_admin,
    a_workspace_admin_cannot_make_himself_owner_or_take_a_single_owner_project,
    an_account_admin_cannot_grant_herself_owner_on_the_tenant,
    a_role_manager_cannot_widen_the_role_she_holds,
    a_team_manager_cannot_join_a_team_holding_owner_on_the_tenant,
    the_last_account_admin_cannot_join_a_team_denied_account_admin,
    a_member_manager_cannot_suspend_the_last_real_account_admin,
    a_folder_sharer_cannot_deny_the_tenant_administrators,
    tenant_admins_lift_denies_and_undo_privacy_set_by_a_folder_sharer,
    an_admin_cannot_deny_the_single_owner_of_a_project,
    removal_revokes_grants_and_memberships_and_reinvitation_starts_clean,
    an_invited_principal_becomes_active_only_by_accepting,
    admin_reads_naming_an_actor_show_only_what_it_may_see,
    a_long_decision_lets_other_calls_through,
    the_single_owner_of_a_project_cannot_be_removed,
    an_owner_must_be_active_on_creation_and_on_transfer,
    an_editor_cannot_delete_a_folder_holding_a_private_workflow_she_cannot_see,
    owner_and_admin_keep_an_action_the_last_custom_role_stops_naming,
    a_role_graph_past_the_inheritance_limits_is_refused_when_written,
    teams_cannot_nest_past_the_limit,
    the_principal_id_super_user_cannot_be_created,
    sixteen_concurrent_writers_all_succeed,
);

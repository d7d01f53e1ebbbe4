//! OpenFn (seed 003, "User Roles & Permissions"): collaborators of a project
//! are Owner (only 1 per project), Admin, Editor or Viewer, with the seed's
//! permission table; ownership changes only by transfer; the instance Super
//! User administers users and projects, and what it does is audited.
//!
//! The seed's rows map onto `<type>.<action>` like this: create a workflow =
//! `workflow.create` on the project (an admin write: CreateResource under the
//! project), edit a job / the workflow = `workflow.edit`, delete a workflow =
//! `workflow.delete`, run = `workflow.execute` (and `run.execute` for a re-run
//! from the work-order history), webhook authentication for a workflow =
//! `workflow.manage`, history = `run.view` / `workflow.view`, view project
//! settings = `project.view`, edit project name / description =
//! `project.edit`, project settings (webhook auth, MFA, storage policy,
//! retention, GitHub connection) = `project.manage`, initiate a GitHub sync =
//! `project.execute`, delete the project = `project.delete`, add/remove a
//! collaborator = `project.share`, project credentials = `credential.view`.

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::{Code, Status};

const PROJECT: &str = "project:p1";
const WORKFLOW: &str = "workflow:w1";
const RUN: &str = "run:r1";
const CREDENTIAL: &str = "credential:c1";

/// The four collaborators of the project, in the seed table's column order:
/// (principal, role on the project).
const COLLABORATORS: [(&str, &str); 4] = [
    ("olivia", "owner"),
    ("adam", "admin"),
    ("eddie", "editor"),
    ("vera", "viewer"),
];

const Y: bool = true;
const N: bool = false;

/// The seed's table, for the rows answered by `Check`: (seed row, action,
/// resource, expected for [owner, admin, editor, viewer]).
const MATRIX: &[(&str, &str, &str, [bool; 4])] = &[
    ("Edit a Job in a Workflow", "edit", WORKFLOW, [Y, Y, Y, N]),
    (
        "Add/remove webhook authentication method for Workflow",
        "manage",
        WORKFLOW,
        [Y, Y, N, N],
    ),
    ("Delete a Workflow", "delete", WORKFLOW, [Y, Y, Y, N]),
    ("Run from the Inspector", "execute", WORKFLOW, [Y, Y, Y, N]),
    (
        "Select the 5 latest Inputs for a Job in a Workflow",
        "edit",
        WORKFLOW,
        [Y, Y, Y, N],
    ),
    (
        "View/search/filter on the History page",
        "view",
        WORKFLOW,
        [Y, Y, Y, Y],
    ),
    (
        "View a Run from the Work Order history",
        "view",
        RUN,
        [Y, Y, Y, Y],
    ),
    (
        "View a Input from a Work Order history",
        "view",
        RUN,
        [Y, Y, Y, Y],
    ),
    (
        "Run from the Work Order history",
        "execute",
        RUN,
        [Y, Y, Y, N],
    ),
    ("View Project name", "view", PROJECT, [Y, Y, Y, Y]),
    ("Edit Project name", "edit", PROJECT, [Y, Y, N, N]),
    ("View Project description", "view", PROJECT, [Y, Y, Y, Y]),
    ("Edit Project description", "edit", PROJECT, [Y, Y, N, N]),
    ("Export Project", "view", PROJECT, [Y, Y, Y, Y]),
    ("Delete a Project", "delete", PROJECT, [Y, N, N, N]),
    (
        "View Project Credentials, type, and owner",
        "view",
        CREDENTIAL,
        [Y, Y, Y, Y],
    ),
    (
        "Add/remove webhook authentication method for Project",
        "manage",
        PROJECT,
        [Y, Y, N, N],
    ),
    (
        "Change MFA requirement for Project",
        "manage",
        PROJECT,
        [Y, Y, N, N],
    ),
    (
        "Add/remove Project Collaborator",
        "share",
        PROJECT,
        [Y, Y, N, N],
    ),
    ("View Project Collaborators", "view", PROJECT, [Y, Y, Y, Y]),
    (
        "Change Input/Output Dataclip storage policy",
        "manage",
        PROJECT,
        [Y, Y, N, N],
    ),
    (
        "Change History retention period",
        "manage",
        PROJECT,
        [Y, Y, N, N],
    ),
    (
        "Update GitHub project/repo connection",
        "manage",
        PROJECT,
        [Y, Y, N, N],
    ),
    ("Initiate GitHub sync", "execute", PROJECT, [Y, Y, Y, N]),
];

/// Tenant `acme` with project `p1` owned by olivia (named by the super user,
/// as OpenFn's super user creates projects), a workflow with a run, a
/// credential, and adam / eddie / vera as admin / editor / viewer
/// collaborators on the project.
async fn openfn_project(b: Backend) -> TestApp {
    let app = spawn_app_on(b).await;
    for (user, _) in COLLABORATORS {
        app.user(user).await;
    }
    app.owned_resource(PROJECT, None, "olivia").await;
    app.resource(WORKFLOW, Some(PROJECT)).await;
    app.resource(RUN, Some(WORKFLOW)).await;
    app.resource(CREDENTIAL, Some(PROJECT)).await;
    for (user, role) in &COLLABORATORS[1..] {
        app.grant(user, role, PROJECT).await;
    }
    app
}

/// Creates `r` under `parent` acting as `actor`.
async fn create_as(app: &TestApp, actor: &str, r: &str, parent: &str) -> Result<String, Status> {
    app.resource_as(actor, r, Some(parent), false).await
}

async fn delete_resource_as(app: &TestApp, actor: &str, r: &str) -> Result<u64, Status> {
    app.operator()
        .delete_resource(pb::DeleteResourceRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            resource: Some(res(r)),
        })
        .await
        .map(|r| r.into_inner().deleted_resources)
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

async fn transfer(
    app: &TestApp,
    actor: &str,
    r: &str,
    new_owner: &str,
    previous_owner_role: &str,
) -> Result<pb::Grant, Status> {
    app.operator()
        .transfer_ownership(pb::TransferOwnershipRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            resource: Some(res(r)),
            new_owner_id: new_owner.into(),
            previous_owner_role_id: previous_owner_role.into(),
        })
        .await
        .map(|r| r.into_inner().owner_grant.expect("owner grant"))
}

/// The principals holding an allow `owner` grant on `r`.
async fn owners(app: &TestApp, r: &str) -> Vec<String> {
    let grants = app
        .operator()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            scope: Some(res(r)),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list grants")
        .into_inner()
        .grants;
    let mut out: Vec<String> = grants
        .into_iter()
        .filter(|g| g.role_id == "owner" && g.effect == pb::Effect::Allow as i32)
        .map(|g| match g.subject.and_then(|s| s.kind) {
            Some(pb::subject_ref::Kind::PrincipalId(p)) => p,
            other => panic!("owner grant held by {other:?}"),
        })
        .collect();
    out.sort();
    out
}

/// The id of the owner grant on `r`.
async fn owner_grant_id(app: &TestApp, r: &str) -> String {
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
        .into_iter()
        .find(|g| g.role_id == "owner")
        .expect("an owner grant")
        .id
}

// ---- the role matrix ---------------------------------------------------

async fn each_collaborator_gets_exactly_the_seed_table_permissions(b: Backend) {
    let app = openfn_project(b).await;
    let mut wrong = Vec::new();
    for (row, action, resource, expected) in MATRIX {
        for (i, (user, role)) in COLLABORATORS.iter().enumerate() {
            let answer = app.check_full(user, action, resource).await;
            if answer.allowed != expected[i] {
                wrong.push(format!(
                    "{row}: {role} `{user}` {action} {resource}: expected {}, got {} ({:?})",
                    expected[i],
                    answer.allowed,
                    pb::Reason::try_from(answer.reason)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "seed table mismatches:\n{}",
        wrong.join("\n")
    );
}

async fn owner_admin_and_editor_create_workflows_in_the_project_but_not_viewers(b: Backend) {
    let app = openfn_project(b).await;
    // Seed row "Create a Workflow": Owner, Admin, Editor yes; Viewer no.
    let expected = [Y, Y, Y, N];
    for (i, (user, role)) in COLLABORATORS.iter().enumerate() {
        let wf = format!("workflow:new-by-{user}");
        let r = create_as(&app, user, &wf, PROJECT).await;
        if expected[i] {
            assert!(r.is_ok(), "{role} may create a workflow: {r:?}");
            // The creator of a workflow owns it (creator-owner type).
            assert!(app.check(user, "delete", &wf).await);
        } else {
            assert_eq!(code(r), Code::PermissionDenied, "{role} may not");
            assert_eq!(
                app.reason(user, "view", &wf).await,
                pb::Reason::UnknownResource,
                "a refused create writes nothing"
            );
        }
    }
}

async fn only_owner_and_admin_add_or_remove_collaborators(b: Backend) {
    let app = openfn_project(b).await;
    app.user("newcomer").await;
    // Seed row "Add/remove Project Collaborator": Owner, Admin yes.
    let expected = [Y, Y, N, N];
    for (i, (user, role)) in COLLABORATORS.iter().enumerate() {
        let added = app
            .grant_full(user, "newcomer", "viewer", PROJECT, pb::Effect::Allow, None)
            .await;
        if expected[i] {
            let g = added.unwrap_or_else(|e| panic!("{role} may add a collaborator: {e}"));
            assert!(app.check("newcomer", "view", PROJECT).await);
            revoke_as(&app, user, &g.id)
                .await
                .unwrap_or_else(|e| panic!("{role} may remove a collaborator: {e}"));
            assert!(!app.check("newcomer", "view", PROJECT).await);
        } else {
            assert_eq!(code(added), Code::PermissionDenied, "{role} may not add");
            assert!(!app.check("newcomer", "view", PROJECT).await);
            // Nor remove one someone else added.
            let g = app.grant("newcomer", "viewer", PROJECT).await;
            assert_eq!(
                code(revoke_as(&app, user, &g.id).await),
                Code::PermissionDenied,
                "{role} may not remove"
            );
            assert!(app.check("newcomer", "view", PROJECT).await);
            app.revoke(&g.id).await.expect("super user revokes");
        }
    }
}

async fn only_the_owner_deletes_the_project(b: Backend) {
    let app = openfn_project(b).await;
    assert_eq!(app.subjects(PROJECT, "delete").await, vec!["olivia"]);
    for (user, role) in &COLLABORATORS[1..] {
        assert_eq!(
            code(delete_resource_as(&app, user, PROJECT).await),
            Code::PermissionDenied,
            "{role} may not delete the project"
        );
    }
    assert!(app.check("vera", "view", PROJECT).await);
    let deleted = delete_resource_as(&app, "olivia", PROJECT)
        .await
        .expect("the owner deletes the project");
    assert_eq!(deleted, 4, "project, workflow, run and credential");
    assert_eq!(
        app.reason("olivia", "view", WORKFLOW).await,
        pb::Reason::UnknownResource
    );
}

// ---- only one owner per project ---------------------------------------

async fn a_second_owner_grant_on_a_project_is_refused(b: Backend) {
    let app = openfn_project(b).await;
    let as_super_user = app
        .grant_full("", "adam", "owner", PROJECT, pb::Effect::Allow, None)
        .await;
    assert_eq!(code(as_super_user), Code::FailedPrecondition);
    let as_owner = app
        .grant_full("olivia", "eddie", "owner", PROJECT, pb::Effect::Allow, None)
        .await;
    assert_eq!(code(as_owner), Code::FailedPrecondition);
    assert_eq!(owners(&app, PROJECT).await, vec!["olivia"]);
    assert!(!app.check("adam", "delete", PROJECT).await);
    assert!(!app.check("eddie", "delete", PROJECT).await);
}

async fn the_owner_grant_of_a_project_cannot_be_deleted(b: Backend) {
    let app = openfn_project(b).await;
    let id = owner_grant_id(&app, PROJECT).await;
    assert_eq!(code(app.revoke(&id).await), Code::FailedPrecondition);
    assert_eq!(
        code(revoke_as(&app, "olivia", &id).await),
        Code::FailedPrecondition
    );
    assert_eq!(owners(&app, PROJECT).await, vec!["olivia"]);
    assert!(app.check("olivia", "delete", PROJECT).await);
}

async fn transferring_ownership_moves_the_owner_role_and_the_old_owner_loses_it(b: Backend) {
    let app = openfn_project(b).await;
    // An admin is not the owner and may not hand ownership around.
    assert_eq!(
        code(transfer(&app, "adam", PROJECT, "adam", "").await),
        Code::PermissionDenied
    );
    assert_eq!(owners(&app, PROJECT).await, vec!["olivia"]);

    let g = transfer(&app, "olivia", PROJECT, "eddie", "")
        .await
        .expect("the owner transfers");
    assert_eq!(g.role_id, "owner");
    assert_eq!(owners(&app, PROJECT).await, vec!["eddie"]);
    assert!(app.check("eddie", "delete", PROJECT).await);
    assert!(app.check("eddie", "transfer", PROJECT).await);
    // Without a role to keep, the old owner keeps nothing on the project.
    for (action, r) in [
        ("delete", PROJECT),
        ("share", PROJECT),
        ("view", PROJECT),
        ("edit", WORKFLOW),
        ("view", RUN),
    ] {
        assert_eq!(
            app.reason("olivia", action, r).await,
            pb::Reason::NoGrant,
            "old owner {action} {r}"
        );
    }
    assert_eq!(
        code(delete_resource_as(&app, "olivia", PROJECT).await),
        Code::PermissionDenied
    );
}

async fn an_old_owner_kept_as_admin_has_admin_rights_only(b: Backend) {
    let app = openfn_project(b).await;
    transfer(&app, "olivia", PROJECT, "adam", "admin")
        .await
        .expect("the owner transfers, staying admin");
    assert_eq!(owners(&app, PROJECT).await, vec!["adam"]);
    for (row, action, resource, expected) in MATRIX {
        // Olivia is now in the admin column, adam in the owner column.
        assert_eq!(
            app.check("olivia", action, resource).await,
            expected[1],
            "{row}: old owner as admin"
        );
        assert_eq!(
            app.check("adam", action, resource).await,
            expected[0],
            "{row}: new owner"
        );
    }
    assert!(!app.check("olivia", "transfer", PROJECT).await);
    assert_eq!(
        code(transfer(&app, "olivia", PROJECT, "olivia", "").await),
        Code::PermissionDenied
    );
}

// ---- the super user ----------------------------------------------------

async fn the_super_user_administers_users_and_projects_and_is_audited_as_super_user(b: Backend) {
    let app = spawn_app_on(b).await;
    // User management.
    app.user("sam").await;
    app.user("tess").await;
    // A project needs its one owner named.
    let unowned = app.resource_as("", "project:p2", None, false).await;
    assert_eq!(code(unowned), Code::InvalidArgument);
    app.owned_resource("project:p2", None, "sam").await;
    // Assign users.
    app.grant("tess", "editor", "project:p2").await;
    assert!(!app.check("tess", "edit", "project:p2").await);
    assert!(app.check("tess", "view", "project:p2").await);
    // A change made by a collaborator is audited under its own name.
    app.user("uri").await;
    app.grant_full(
        "sam",
        "uri",
        "viewer",
        "project:p2",
        pb::Effect::Allow,
        None,
    )
    .await
    .expect("the owner adds a collaborator");
    // Delete a project.
    delete_resource_as(&app, "", "project:p2")
        .await
        .expect("the super user deletes a project");

    // Only operator keys act as the super user.
    let admin_key = app
        .admin()
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "mallory".into(),
            display_name: "mallory".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(admin_key), Code::InvalidArgument);

    let events = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            actor: "super_user".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    let mut seen: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.action.clone(), e.target.clone()))
        .collect();
    seen.sort();
    for e in &events {
        assert_eq!(e.actor, "super_user");
        assert_eq!(e.caller, "test-operator");
    }
    for (action, target) in [
        ("principal.create", "principal:sam"),
        ("principal.create", "principal:tess"),
        ("principal.create", "principal:uri"),
        ("resource.create", "resource:project:p2"),
        ("resource.delete", "resource:project:p2"),
    ] {
        assert!(
            seen.iter().any(|(a, t)| a == action && t == target),
            "{action} {target} audited as super_user; got {seen:?}"
        );
    }
    let super_user_grants = events.iter().filter(|e| e.action == "grant.create").count();
    assert_eq!(super_user_grants, 1, "tess's grant, not uri's: {seen:?}");
    assert!(!seen.iter().any(|(_, t)| t == "principal:mallory"));

    let by_sam = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            actor: "sam".into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    assert_eq!(by_sam.len(), 1);
    assert_eq!(by_sam[0].action, "grant.create");
    assert!(by_sam[0].after_json.contains("uri"));
}

/// "Edit digest and alerts for themselves ✔️ / for others ❌" for every
/// role, the owner included. Each collaborator's digest and alert settings
/// are an `alert_settings` resource under the project whose `user`
/// attribute names its collaborator (a fact the platform states when it
/// creates it). The tenant's `collaborators` team holds, on the whole
/// tenant, `settings_editor` when `resource.user == subject.id` and a deny
/// of it when `resource.user != subject.id`: the owner's and admins' wide
/// roles on the project cannot edit someone else's settings, and project
/// admins cannot revoke the tenant-wide deny.
async fn digest_and_alert_settings_are_edited_by_their_collaborator_alone(b: Backend) {
    let app = openfn_project(b).await;
    app.team("collaborators").await;
    for (user, _) in COLLABORATORS {
        app.add_member("collaborators", user).await.expect("member");
        app.resource_with(
            &format!("alert_settings:{user}"),
            Some(PROJECT),
            &[("user", user)],
        )
        .await
        .expect("settings resource");
    }
    app.role(
        "settings_editor",
        &["alert_settings.edit"],
        &[],
        &["tenant"],
    )
    .await
    .expect("role");
    app.conditional_grant(
        "",
        "team:collaborators",
        "settings_editor",
        "tenant",
        pb::Effect::Allow,
        "resource.user == subject.id",
    )
    .await
    .expect("allow own");
    let deny = app
        .conditional_grant(
            "",
            "team:collaborators",
            "settings_editor",
            "tenant",
            pb::Effect::Deny,
            "resource.type == 'alert_settings' && resource.user != subject.id",
        )
        .await
        .expect("deny others");

    for (me, _) in COLLABORATORS {
        for (other, _) in COLLABORATORS {
            let r = format!("alert_settings:{other}");
            let edit = app.check_full(me, "edit", &r).await;
            assert_eq!(
                edit.allowed,
                me == other,
                "{me} edits {other}'s settings: {edit:?}"
            );
            if me != other {
                let e = edit.explanation.expect("explanation");
                assert_eq!(
                    edit.reason,
                    pb::Reason::ExplicitDeny as i32,
                    "{me} on {other}: {e:?}"
                );
                assert_eq!(e.grant_id, deny.id);
            }
            // "View Project Collaborators (... digest and alerts)": all of them.
            assert!(
                app.check(me, "view", &r).await,
                "{me} views {other}'s settings"
            );
        }
        assert_eq!(
            app.list(me, "edit", "alert_settings").await,
            [me],
            "{me} lists the settings it may edit"
        );
        assert_eq!(
            app.subjects(&format!("alert_settings:{me}"), "edit").await,
            [me]
        );
    }

    // The attribute is the platform's: no collaborator can re-point it, not
    // even the owner; the super user can.
    let moved = app
        .operator()
        .set_resource_attributes(pb::SetResourceAttributesRequest {
            tenant_id: TENANT.into(),
            actor_id: "olivia".into(),
            resource: Some(res("alert_settings:adam")),
            attributes: [("user".to_owned(), "olivia".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(moved.code(), Code::PermissionDenied, "{moved:?}");
    assert!(!app.check("olivia", "edit", "alert_settings:adam").await);
    // Project admins cannot lift the tenant-wide deny either.
    let lifted = revoke_as(&app, "adam", &deny.id).await.unwrap_err();
    assert_eq!(lifted.code(), Code::PermissionDenied, "{lifted:?}");
    // Nor write a grant whose condition is not CEL.
    let typo = app
        .conditional_grant(
            "",
            "vera",
            "viewer",
            PROJECT,
            pb::Effect::Allow,
            "resource.user = subject.id",
        )
        .await
        .unwrap_err();
    assert_eq!(typo.code(), Code::InvalidArgument, "{typo:?}");
    // The super user re-points it (a settings record handed over), audited.
    app.operator()
        .set_resource_attributes(pb::SetResourceAttributesRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("alert_settings:adam")),
            attributes: [("user".to_owned(), "eddie".to_owned())].into(),
            ..Default::default()
        })
        .await
        .expect("super user sets attributes");
    assert!(app.check("eddie", "edit", "alert_settings:adam").await);
    assert!(!app.check("adam", "edit", "alert_settings:adam").await);
    let got = app
        .operator()
        .get_resource(pb::GetResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("alert_settings:adam")),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner()
        .resource
        .expect("resource");
    assert_eq!(
        got.attributes.get("user").map(String::as_str),
        Some("eddie")
    );
}

on_every_backend!(
    each_collaborator_gets_exactly_the_seed_table_permissions,
    owner_admin_and_editor_create_workflows_in_the_project_but_not_viewers,
    only_owner_and_admin_add_or_remove_collaborators,
    only_the_owner_deletes_the_project,
    a_second_owner_grant_on_a_project_is_refused,
    the_owner_grant_of_a_project_cannot_be_deleted,
    transferring_ownership_moves_the_owner_role_and_the_old_owner_loses_it,
    an_old_owner_kept_as_admin_has_admin_rights_only,
    the_super_user_administers_users_and_projects_and_is_audited_as_super_user,
    digest_and_alert_settings_are_edited_by_their_collaborator_alone,
);

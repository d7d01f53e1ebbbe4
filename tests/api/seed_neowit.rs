//! Neowit (seed 000, "Manage access"): workflows are admin-only. Whoever holds
//! the Admin role of the organization can do everything with every workflow;
//! everyone else can do nothing with any of them and sees none. Service
//! accounts are admin-equivalent. Promoting a user to Admin is org-wide.
//! Non-admin API callers are refused.
//!
//! The organization is the tenant; Neowit's Admin role is `admin` granted
//! tenant-wide. A non-admin Neowit user is modelled with a custom `member`
//! role that covers the rest of the product (buildings and sensors) but no
//! workflow, so "denied" is about workflows, not about being a stranger.
//! Seed activities map onto actions: see/open = `workflow.view`, create /
//! duplicate = `workflow.create` (an admin write), rename / edit the draft /
//! save or revert a version = `workflow.edit`, delete = `workflow.delete`,
//! test run = `workflow.execute`, execution history = `run.view`, cancel a
//! running execution = `run.manage`, org workflow policy = UpdateTenant
//! (`tenant.manage`).

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::{Code, Status};

/// Every workflow of the organization: two at the top, one in a folder.
const WORKFLOWS: [&str; 3] = ["workflow:w1", "workflow:w2", "workflow:w3"];
/// Their runs (execution history).
const RUNS: [&str; 2] = ["run:r1", "run:r3"];
/// What a user with access can do to any workflow.
const WORKFLOW_ACTIONS: [&str; 5] = ["view", "edit", "execute", "create", "delete"];

/// An organization with workflows, runs and a building, and the non-admin
/// `member` role.
async fn neowit_org(b: Backend) -> TestApp {
    let app = spawn_app_on(b).await;
    app.resource("workflow:w1", None).await;
    app.resource("workflow:w2", None).await;
    app.resource("folder:automations", None).await;
    app.resource("workflow:w3", Some("folder:automations"))
        .await;
    app.resource("run:r1", Some("workflow:w1")).await;
    app.resource("run:r3", Some("workflow:w3")).await;
    app.resource("building:hq", None).await;
    app.role(
        "member",
        &["building.view", "sensor.view"],
        &[],
        &["tenant", "*"],
    )
    .await
    .expect("member role");
    app
}

/// BatchCheck of every (action, resource) pair for `subject`, at least as
/// fresh as `token`.
async fn batch(
    app: &TestApp,
    subject: &str,
    pairs: &[(&str, &str)],
    token: &str,
) -> Vec<pb::BatchCheckResult> {
    app.checker()
        .batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items: pairs
                .iter()
                .map(|(action, r)| pb::BatchCheckItem {
                    principal_id: subject.into(),
                    action: (*action).into(),
                    resource: Some(res(r)),
                })
                .collect(),
            consistency_token: token.into(),
            explain: false,
            context: Default::default(),
            typed_context: Default::default(),
        })
        .await
        .expect("batch check")
        .into_inner()
        .results
}

/// Every (action, workflow) and (view/manage, run) pair.
fn everything() -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    for w in WORKFLOWS {
        for a in WORKFLOW_ACTIONS {
            v.push((a, w));
        }
    }
    for r in RUNS {
        v.push(("view", r));
        v.push(("manage", r));
    }
    v
}

async fn check_at(app: &TestApp, subject: &str, action: &str, r: &str, token: &str) -> bool {
    app.checker()
        .check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: subject.into(),
            action: action.into(),
            resource: Some(res(r)),
            consistency_token: token.into(),
            ..Default::default()
        })
        .await
        .expect("check")
        .into_inner()
        .allowed
}

async fn list_at(
    app: &TestApp,
    subject: &str,
    action: &str,
    rtype: &str,
    token: &str,
) -> Vec<String> {
    let mut ids = app
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
        .into_inner()
        .resource_ids;
    ids.sort();
    ids
}

async fn delete_as(app: &TestApp, actor: &str, r: &str) -> Result<u64, Status> {
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

/// Changes the organization's settings (its workflow policy) as `actor`,
/// keeping every value.
async fn change_org_policy_as(app: &TestApp, actor: &str) -> Result<String, Status> {
    let t = app
        .admin()
        .get_tenant(pb::GetTenantRequest {
            tenant_id: TENANT.into(),
            actor_id: String::new(),
        })
        .await
        .expect("tenant")
        .into_inner()
        .tenant
        .expect("tenant");
    app.operator()
        .update_tenant(pb::UpdateTenantRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            display_name: t.display_name,
            single_owner_types: t.single_owner_types,
            creator_owner_types: t.creator_owner_types,
            audit_retention_days: t.audit_retention_days,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().consistency_token)
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter()
        .map(|r| r.split_once(':').expect("type:id").1.to_owned())
        .collect()
}

// ---- admins do everything -------------------------------------------

async fn an_organization_admin_can_do_everything_with_every_workflow(b: Backend) {
    let app = neowit_org(b).await;
    app.user("ada").await;
    app.grant("ada", "admin", "tenant").await;
    let pairs = everything();
    for (result, (action, r)) in batch(&app, "ada", &pairs, "").await.iter().zip(&pairs) {
        assert!(result.allowed, "admin {action} {r}");
    }
    assert_eq!(
        list_at(&app, "ada", "view", "workflow", "").await,
        ids(&WORKFLOWS)
    );
    assert_eq!(
        list_at(&app, "ada", "execute", "workflow", "").await,
        ids(&WORKFLOWS)
    );
    // Create and duplicate, at the top and in a folder, then delete.
    app.resource_as("ada", "workflow:w4", None, false)
        .await
        .expect("admin creates a workflow");
    app.resource_as("ada", "workflow:w1-copy", Some("folder:automations"), false)
        .await
        .expect("admin duplicates a workflow");
    assert!(app.check("ada", "edit", "workflow:w1-copy").await);
    delete_as(&app, "ada", "workflow:w2")
        .await
        .expect("admin deletes a workflow");
    assert_eq!(
        app.reason("ada", "view", "workflow:w2").await,
        pb::Reason::UnknownResource
    );
    // The organization's workflow policy.
    change_org_policy_as(&app, "ada")
        .await
        .expect("admin changes the org policy");
    // "admins have full access to everything in Neowit, not just workflows"
    assert!(app.check("ada", "edit", "building:hq").await);
}

// ---- everyone else does nothing ------------------------------------

async fn users_without_admin_are_denied_every_workflow_and_list_none(b: Backend) {
    let app = neowit_org(b).await;
    app.user("mo").await;
    app.grant("mo", "member", "tenant").await;
    app.user("nobody").await;
    // The member is a real user of the product...
    assert!(app.check("mo", "view", "building:hq").await);
    let pairs = everything();
    for user in ["mo", "nobody"] {
        for (result, (action, r)) in batch(&app, user, &pairs, "").await.iter().zip(&pairs) {
            assert!(!result.allowed, "{user} {action} {r}");
            assert_eq!(
                result.reason,
                pb::Reason::NoGrant as i32,
                "{user} {action} {r}"
            );
        }
        for action in WORKFLOW_ACTIONS {
            assert!(
                app.list(user, action, "workflow").await.is_empty(),
                "{user} lists no workflow to {action}"
            );
        }
        assert!(app.list(user, "view", "run").await.is_empty());
        assert!(app
            .subjects("workflow:w1", "view")
            .await
            .iter()
            .all(|s| s != user));
    }
}

async fn non_admin_api_callers_are_refused(b: Backend) {
    let app = neowit_org(b).await;
    app.user("mo").await;
    app.grant("mo", "member", "tenant").await;
    app.user("ada").await;
    app.grant("ada", "admin", "tenant").await;
    app.service_account("sa-backup").await;
    app.grant("sa-backup", "admin", "tenant").await;
    // The API surface as writes: create, delete, change the org policy.
    assert_eq!(
        code(app.resource_as("mo", "workflow:w9", None, false).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            app.resource_as("mo", "workflow:w9", Some("folder:automations"), false)
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(delete_as(&app, "mo", "workflow:w1").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            app.resource_as("mo", "run:r9", Some("workflow:w1"), false)
                .await
        ),
        Code::PermissionDenied,
        "no test run"
    );
    assert_eq!(
        code(change_org_policy_as(&app, "mo").await),
        Code::PermissionDenied
    );
    assert!(!app.check("mo", "view", "workflow:w1").await);
    // An export script: every workflow definition, as each caller.
    let export: Vec<(&str, &str)> = WORKFLOWS.iter().map(|w| ("view", *w)).collect();
    for (caller, allowed) in [("ada", true), ("sa-backup", true), ("mo", false)] {
        let answers = batch(&app, caller, &export, "").await;
        assert!(
            answers.iter().all(|a| a.allowed == allowed),
            "{caller}: {answers:?}"
        );
    }
}

// ---- service accounts --------------------------------------------------

async fn a_service_account_with_admin_is_admin_equivalent(b: Backend) {
    let app = neowit_org(b).await;
    app.service_account("sa-scheduler").await;
    app.grant("sa-scheduler", "admin", "tenant").await;
    let pairs = everything();
    for (result, (action, r)) in batch(&app, "sa-scheduler", &pairs, "")
        .await
        .iter()
        .zip(&pairs)
    {
        assert!(result.allowed, "service account {action} {r}");
    }
    assert_eq!(
        list_at(&app, "sa-scheduler", "execute", "workflow", "").await,
        ids(&WORKFLOWS)
    );
    // Owns scheduled triggers and acts in admin writes.
    app.resource_as(
        "sa-scheduler",
        "trigger:nightly",
        Some("workflow:w1"),
        false,
    )
    .await
    .expect("service account creates a trigger");
    app.resource_as("sa-scheduler", "workflow:w5", None, false)
        .await
        .expect("service account creates a workflow");
    app.resource_as("sa-scheduler", "run:r5", Some("workflow:w5"), false)
        .await
        .expect("service account runs it");
    app.user("helper").await;
    app.grant_full(
        "sa-scheduler",
        "helper",
        "member",
        "tenant",
        pb::Effect::Allow,
        None,
    )
    .await
    .expect("service account grants like an admin");
    delete_as(&app, "sa-scheduler", "workflow:w5")
        .await
        .expect("service account deletes a workflow");
}

// ---- promotion is org-wide ---------------------------------------------

async fn promoting_a_user_to_admin_opens_every_workflow_at_once(b: Backend) {
    let app = neowit_org(b).await;
    app.user("pat").await;
    app.grant("pat", "member", "tenant").await;
    let pairs = everything();
    assert!(batch(&app, "pat", &pairs, "")
        .await
        .iter()
        .all(|r| !r.allowed));

    let promotion = app
        .operator()
        .create_grant(pb::CreateGrantRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: ADMIN.into(),
            subject: Some(subj("pat")),
            role_id: "admin".into(),
            scope: None,
            effect: pb::Effect::Allow as i32,
            expire_time: None,
            condition: Default::default(),
        })
        .await
        .expect("the account admin promotes pat")
        .into_inner();
    let token = promotion.consistency_token;
    assert!(!token.is_empty());
    // The very next request, with the write's token, sees the promotion on
    // every workflow and run.
    assert!(check_at(&app, "pat", "execute", "workflow:w3", &token).await);
    let answers = batch(&app, "pat", &pairs, &token).await;
    for (result, (action, r)) in answers.iter().zip(&pairs) {
        assert!(result.allowed, "promoted {action} {r}");
    }
    assert_eq!(
        list_at(&app, "pat", "edit", "workflow", &token).await,
        ids(&WORKFLOWS)
    );
    assert!(check_at(&app, "pat", "edit", "building:hq", &token).await);

    // Demotion is org-wide too.
    let grant_id = promotion.grant.expect("grant").id;
    let token = app.revoke(&grant_id).await.expect("demote");
    assert!(!check_at(&app, "pat", "view", "workflow:w1", &token).await);
    assert!(batch(&app, "pat", &pairs, &token)
        .await
        .iter()
        .all(|r| !r.allowed));
    assert!(list_at(&app, "pat", "view", "workflow", &token)
        .await
        .is_empty());
    assert!(check_at(&app, "pat", "view", "building:hq", &token).await);
}

on_every_backend!(
    an_organization_admin_can_do_everything_with_every_workflow,
    users_without_admin_are_denied_every_workflow_and_list_none,
    non_admin_api_callers_are_refused,
    a_service_account_with_admin_is_admin_equivalent,
    promoting_a_user_to_admin_opens_every_workflow_at_once,
);

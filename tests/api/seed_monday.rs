//! Seed 004 (monday.com workflow permissions), encoded through the public API.
//!
//! The model used throughout:
//! - account roles are custom roles granted on a workspace: `member` may view
//!   everything in the workspace and create workflows (`workflow.create`,
//!   inheriting `viewer`); `guest` may only view (inherits `viewer`). Being a
//!   workspace member means holding one of them on the workspace;
//! - a workflow is created by its author acting as themselves, so the tenant's
//!   creator-owner rule makes the author its `owner`; further owners are
//!   "crowned" by granting `owner` on the workflow;
//! - a private workflow is a private resource: only its owners and the members
//!   invited to it (`viewer` granted on the workflow itself) see it;
//! - a draft is a private `draft` child of its workflow, created by its author,
//!   who becomes its owner; nobody else sees it.

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::Code;

const WS: &str = "workspace:marketing";

/// Creates the account roles `member` (view + create workflows) and `guest`
/// (view only), as the account admin.
async fn account_roles(app: &TestApp) {
    app.role("member", &["workflow.create"], &["viewer"], &["*"])
        .await
        .expect("member role");
    app.role("guest", &[], &["viewer"], &["*"])
        .await
        .expect("guest role");
}

/// The closed workspace `marketing` with its members: `maya` and `olga`
/// (`member`), `sam` (`member`), and `nina`, an account user who is not in it.
async fn marketing(app: &TestApp) {
    account_roles(app).await;
    for u in ["maya", "olga", "sam", "ivan", "nina"] {
        app.user(u).await;
    }
    app.resource(WS, None).await;
    for u in ["maya", "olga", "sam", "ivan"] {
        app.grant(u, "member", WS).await;
    }
}

fn reason_of(r: &pb::CheckResponse) -> pb::Reason {
    pb::Reason::try_from(r.reason).expect("known reason")
}

async fn main_workflow_is_visible_to_every_workspace_member_but_editable_only_by_its_owner(
    b: Backend,
) {
    let app = spawn_app_on(b).await;
    marketing(&app).await;
    // The creator (a member who may create workflows) becomes the owner.
    app.resource_as("maya", "workflow:launch", Some(WS), false)
        .await
        .expect("a member may create a workflow in the workspace");
    let owner = app.check_full("maya", "edit", "workflow:launch").await;
    assert!(owner.allowed, "the creator edits: {owner:?}");
    let e = owner.explanation.expect("explanation");
    assert_eq!(e.role_id, "owner");
    assert_eq!(e.scope, Some(res("workflow:launch")));

    // Every workspace member sees it, read-only.
    for u in ["olga", "sam", "ivan"] {
        assert!(app.check(u, "view", "workflow:launch").await, "{u} views");
        assert!(!app.check(u, "edit", "workflow:launch").await, "{u} edits");
        assert_eq!(
            app.reason(u, "edit", "workflow:launch").await,
            pb::Reason::NoGrant
        );
    }
    // A user of the account outside this (closed) workspace does not see it.
    assert!(!app.check("nina", "view", "workflow:launch").await);
    assert_eq!(
        app.reason("nina", "view", "workflow:launch").await,
        pb::Reason::NoGrant
    );
    // Listing agrees.
    assert_eq!(app.list("sam", "view", "workflow").await, vec!["launch"]);
    assert!(app.list("sam", "edit", "workflow").await.is_empty());
    assert_eq!(app.list("maya", "edit", "workflow").await, vec!["launch"]);
    assert!(app.list("nina", "view", "workflow").await.is_empty());
}

async fn main_workflow_in_an_open_workspace_is_visible_to_everyone_in_the_account(b: Backend) {
    let app = spawn_app_on(b).await;
    marketing(&app).await;
    // An open workspace: every account user (team `everyone`) is a guest of it.
    app.team("everyone").await;
    for u in ["maya", "olga", "sam", "ivan", "nina"] {
        app.add_member("everyone", u).await.unwrap();
    }
    app.resource("workspace:company", None).await;
    app.grant("team:everyone", "guest", "workspace:company")
        .await;
    app.grant("maya", "member", "workspace:company").await;
    app.resource_as(
        "maya",
        "workflow:all_hands",
        Some("workspace:company"),
        false,
    )
    .await
    .unwrap();
    app.resource_as("maya", "workflow:launch", Some(WS), false)
        .await
        .unwrap();

    // nina is in no workspace herself, yet sees the open workspace's workflow...
    let r = app.check_full("nina", "view", "workflow:all_hands").await;
    assert!(r.allowed, "{r:?}");
    assert_eq!(r.explanation.unwrap().via_teams, vec!["everyone"]);
    // ...read-only...
    assert!(!app.check("nina", "edit", "workflow:all_hands").await);
    // ...and not the closed workspace's.
    assert!(!app.check("nina", "view", "workflow:launch").await);
    assert_eq!(
        app.list("nina", "view", "workflow").await,
        vec!["all_hands"]
    );
    assert_eq!(
        app.list("sam", "view", "workflow").await,
        vec!["all_hands", "launch"]
    );
}

async fn owner_can_crown_other_members_as_additional_owners(b: Backend) {
    let app = spawn_app_on(b).await;
    marketing(&app).await;
    app.resource_as("maya", "workflow:launch", Some(WS), false)
        .await
        .unwrap();
    // A member who is not an owner cannot crown anyone, not even themself.
    let r = app
        .grant_full(
            "sam",
            "sam",
            "owner",
            "workflow:launch",
            pb::Effect::Allow,
            None,
        )
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    assert!(!app.check("sam", "edit", "workflow:launch").await);

    // The owner crowns olga: workflows are not single-owner.
    app.grant_full(
        "maya",
        "olga",
        "owner",
        "workflow:launch",
        pb::Effect::Allow,
        None,
    )
    .await
    .expect("an owner may crown another member");
    assert!(app.check("olga", "edit", "workflow:launch").await);
    assert!(
        app.check("maya", "edit", "workflow:launch").await,
        "the first owner stays an owner"
    );
    // The new owner can crown too.
    app.grant_full(
        "olga",
        "sam",
        "owner",
        "workflow:launch",
        pb::Effect::Allow,
        None,
    )
    .await
    .expect("an additional owner may crown");
    assert!(app.check("sam", "edit", "workflow:launch").await);
    // ivan, never crowned, still only views.
    assert!(app.check("ivan", "view", "workflow:launch").await);
    assert!(!app.check("ivan", "edit", "workflow:launch").await);
    assert_eq!(
        app.subjects("workflow:launch", "edit").await,
        vec!["maya", "olga", "sam"]
    );
}

async fn private_workflow_is_visible_only_to_owners_and_invited_members(b: Backend) {
    let app = spawn_app_on(b).await;
    marketing(&app).await;
    app.resource_as("maya", "workflow:launch", Some(WS), false)
        .await
        .unwrap();
    app.resource_as("maya", "workflow:secret", Some(WS), true)
        .await
        .expect("a member may create a private workflow");
    // maya invites ivan (read-only) and crowns olga.
    app.grant_full(
        "maya",
        "ivan",
        "viewer",
        "workflow:secret",
        pb::Effect::Allow,
        None,
    )
    .await
    .expect("the owner invites a member");
    app.grant_full(
        "maya",
        "olga",
        "owner",
        "workflow:secret",
        pb::Effect::Allow,
        None,
    )
    .await
    .expect("the owner crowns a member");

    // Owners see and edit it.
    for u in ["maya", "olga"] {
        assert!(app.check(u, "view", "workflow:secret").await, "{u} views");
        assert!(app.check(u, "edit", "workflow:secret").await, "{u} edits");
    }
    // The invited member sees it read-only.
    assert!(app.check("ivan", "view", "workflow:secret").await);
    assert!(!app.check("ivan", "edit", "workflow:secret").await);
    // and cannot invite others.
    let r = app
        .grant_full(
            "ivan",
            "sam",
            "viewer",
            "workflow:secret",
            pb::Effect::Allow,
            None,
        )
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    // Other workspace members do not see it: their workspace grant stops at
    // the private boundary.
    let r = app.check_full("sam", "view", "workflow:secret").await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::PrivateBoundary);
    assert_eq!(r.explanation.unwrap().scope, Some(res(WS)));

    // Private hides even from administrators: a tenant-wide admin grant
    // stops at the boundary too (unlike a restricted resource's).
    app.user("acc").await;
    app.grant("acc", "admin", "tenant").await;
    let r = app.check_full("acc", "view", "workflow:secret").await;
    assert!(!r.allowed, "{r:?}");
    assert_eq!(reason_of(&r), pb::Reason::PrivateBoundary);
    assert!(app.check("acc", "view", "workflow:launch").await);

    // ListAccessible agrees with Check.
    assert_eq!(app.list("sam", "view", "workflow").await, vec!["launch"]);
    assert_eq!(
        app.list("ivan", "view", "workflow").await,
        vec!["launch", "secret"]
    );
    assert!(app.list("ivan", "edit", "workflow").await.is_empty());
    assert_eq!(app.list("olga", "edit", "workflow").await, vec!["secret"]);
    assert_eq!(
        app.list("maya", "edit", "workflow").await,
        vec!["launch", "secret"]
    );
    assert_eq!(
        app.subjects("workflow:secret", "view").await,
        vec!["ivan", "maya", "olga"]
    );
}

async fn a_draft_is_seen_only_by_its_author_not_by_other_owners(b: Backend) {
    let app = spawn_app_on(b).await;
    marketing(&app).await;
    app.resource_as("maya", "workflow:launch", Some(WS), false)
        .await
        .unwrap();
    app.grant_full(
        "maya",
        "olga",
        "owner",
        "workflow:launch",
        pb::Effect::Allow,
        None,
    )
    .await
    .unwrap();
    // Each owner opens a draft: a private child owned by its author.
    app.resource_as("maya", "draft:launch_maya", Some("workflow:launch"), true)
        .await
        .expect("an owner may start a draft");
    app.resource_as("olga", "draft:launch_olga", Some("workflow:launch"), true)
        .await
        .expect("another owner may start a draft");

    let mine = app.check_full("maya", "edit", "draft:launch_maya").await;
    assert!(mine.allowed, "{mine:?}");
    let e = mine.explanation.unwrap();
    assert_eq!(e.role_id, "owner");
    assert_eq!(e.scope, Some(res("draft:launch_maya")));
    assert!(app.check("olga", "view", "draft:launch_olga").await);

    // An owner cannot see another owner's draft...
    let r = app.check_full("olga", "view", "draft:launch_maya").await;
    assert!(!r.allowed);
    assert_eq!(reason_of(&r), pb::Reason::PrivateBoundary);
    assert!(!app.check("maya", "view", "draft:launch_olga").await);
    // ...and viewers see neither, only the live version.
    for d in ["draft:launch_maya", "draft:launch_olga"] {
        assert!(!app.check("sam", "view", d).await, "sam sees {d}");
    }
    for u in ["maya", "olga", "sam"] {
        assert!(app.check(u, "view", "workflow:launch").await, "{u} live");
    }
    assert_eq!(app.list("maya", "view", "draft").await, vec!["launch_maya"]);
    assert_eq!(app.list("olga", "view", "draft").await, vec!["launch_olga"]);
    assert!(app.list("sam", "view", "draft").await.is_empty());
    assert_eq!(
        app.subjects("draft:launch_maya", "view").await,
        vec!["maya"]
    );

    // A non-owner cannot enter editing mode (start a draft) at all.
    let r = app
        .resource_as("sam", "draft:launch_sam", Some("workflow:launch"), true)
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
}

async fn only_account_roles_allowed_to_create_workflows_can_create_them(b: Backend) {
    let app = spawn_app_on(b).await;
    marketing(&app).await;
    app.user("gus").await;
    app.grant("gus", "guest", WS).await;
    app.resource_as("maya", "workflow:launch", Some(WS), false)
        .await
        .unwrap();

    // A guest sees workflows but the account does not let guests create them.
    assert!(app.check("gus", "view", "workflow:launch").await);
    let r = app
        .resource_as("gus", "workflow:gus_flow", Some(WS), false)
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    assert!(!app.check("gus", "view", "workflow:gus_flow").await);
    assert_eq!(
        app.reason("gus", "view", "workflow:gus_flow").await,
        pb::Reason::UnknownResource,
        "a refused creation leaves nothing behind"
    );

    // The account admin withdraws workflow creation from members too.
    app.admin()
        .update_role(pb::UpdateRoleRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: ADMIN.into(),
            role: Some(pb::Role {
                id: "member".into(),
                display_name: "member".into(),
                inherits: vec!["viewer".into()],
                effective_at: vec!["*".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the account admin may change account roles");
    let r = app
        .resource_as("sam", "workflow:sam_flow", Some(WS), false)
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    // Existing workflows and visibility are unaffected.
    assert!(app.check("sam", "view", "workflow:launch").await);
    assert!(app.check("maya", "edit", "workflow:launch").await);

    // A member may not change the account's restriction themselves.
    let r = app
        .admin()
        .update_role(pb::UpdateRoleRequest {
            request_id: String::new(),
            tenant_id: TENANT.into(),
            actor_id: "sam".into(),
            role: Some(pb::Role {
                id: "member".into(),
                display_name: "member".into(),
                permissions: vec!["workflow.create".into()],
                inherits: vec!["viewer".into()],
                effective_at: vec!["*".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
}

async fn boards_are_offered_only_from_accessible_workspaces_and_private_boards_to_their_members(
    b: Backend,
) {
    let app = spawn_app_on(b).await;
    marketing(&app).await;
    app.resource("board:roadmap", Some(WS)).await;
    app.private_resource("board:payroll", Some(WS)).await;
    app.grant("maya", "editor", "board:payroll").await;
    app.resource("workspace:finance", None).await;
    app.resource("board:budget", Some("workspace:finance"))
        .await;
    app.grant("nina", "member", "workspace:finance").await;

    // sam: only boards of his workspace, and not the private one.
    assert_eq!(app.list("sam", "view", "board").await, vec!["roadmap"]);
    assert_eq!(
        app.reason("sam", "view", "board:payroll").await,
        pb::Reason::PrivateBoundary
    );
    assert_eq!(
        app.reason("sam", "view", "board:budget").await,
        pb::Reason::NoGrant
    );
    // maya is a member of the private board: a workflow she owns may use it.
    assert_eq!(
        app.list("maya", "view", "board").await,
        vec!["payroll", "roadmap"]
    );
    assert_eq!(app.list("nina", "view", "board").await, vec!["budget"]);
}

/// "If there is a workflow configured involving actions from a workspace
/// that you do not have access to, you will not be able to edit it": the
/// workflow links to the board it acts on, and editing it needs viewing the
/// board.
async fn a_workflow_acting_on_another_workspaces_board_is_edited_only_by_who_may_use_the_board(
    b: Backend,
) {
    let app = spawn_app_on(b).await;
    marketing(&app).await;
    app.resource_as("maya", "workflow:launch", Some(WS), false)
        .await
        .expect("maya creates the workflow, and owns it");
    app.grant("olga", "owner", "workflow:launch").await;
    app.resource("workspace:finance", None).await;
    app.resource("board:budget", Some("workspace:finance"))
        .await;
    app.grant("nina", "member", "workspace:finance").await;
    let acts_on_budget: &[(&str, &str, &[&str])] = &[("board:budget", "view", &["edit"])];

    // Nobody links what they may not use: maya cannot see the budget board.
    let r = app
        .set_links("maya", "workflow:launch", acts_on_budget)
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    assert!(app.check("maya", "edit", "workflow:launch").await);
    // The platform records what the workflow acts on.
    app.set_links("", "workflow:launch", acts_on_budget)
        .await
        .expect("the super user links the workflow to the board");

    // Now its owners may not edit it, and the answer says why.
    let d = app.check_full("maya", "edit", "workflow:launch").await;
    assert!(!d.allowed);
    assert_eq!(reason_of(&d), pb::Reason::LinkDenied);
    let e = d.explanation.expect("explanation");
    assert_eq!(e.linked_resource, Some(res("board:budget")));
    assert_eq!(e.linked_action, "view");
    assert!(e.detail.contains("board:budget"), "{}", e.detail);
    // Viewing the workflow is not gated.
    assert!(app.check("maya", "view", "workflow:launch").await);
    assert!(app.check("sam", "view", "workflow:launch").await);
    // Access to the board alone gives nothing on the workflow.
    assert_eq!(
        app.reason("nina", "edit", "workflow:launch").await,
        pb::Reason::NoGrant
    );
    // Lists and subject lists agree.
    assert!(app.list("maya", "edit", "workflow").await.is_empty());
    assert!(app.subjects("workflow:launch", "edit").await.is_empty());

    // Once maya may use the finance workspace, she may edit it; olga still
    // may not.
    app.grant("maya", "guest", "workspace:finance").await;
    assert!(app.check("maya", "edit", "workflow:launch").await);
    assert!(!app.check("olga", "edit", "workflow:launch").await);
    assert_eq!(app.list("maya", "edit", "workflow").await, vec!["launch"]);
    assert_eq!(app.subjects("workflow:launch", "edit").await, vec!["maya"]);
    let batch = app
        .checker()
        .batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items: ["maya", "olga", "nina", "sam"]
                .iter()
                .map(|p| pb::BatchCheckItem {
                    principal_id: (*p).into(),
                    action: "edit".into(),
                    resource: Some(res("workflow:launch")),
                })
                .collect(),
            ..Default::default()
        })
        .await
        .expect("batch")
        .into_inner();
    let allowed: Vec<bool> = batch.results.iter().map(|r| r.allowed).collect();
    assert_eq!(allowed, [true, false, false, false]);

    // Nobody hands out what a link keeps from them: olga may not give nina
    // (who may use the board) editing of the workflow; maya may.
    let r = app
        .operator()
        .create_grant(pb::CreateGrantRequest {
            tenant_id: TENANT.into(),
            actor_id: "olga".into(),
            subject: Some(subj("nina")),
            role_id: "editor".into(),
            scope: Some(res("workflow:launch")),
            ..Default::default()
        })
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    app.operator()
        .create_grant(pb::CreateGrantRequest {
            tenant_id: TENANT.into(),
            actor_id: "maya".into(),
            subject: Some(subj("nina")),
            role_id: "editor".into(),
            scope: Some(res("workflow:launch")),
            ..Default::default()
        })
        .await
        .expect("maya, who passes the link, shares editing");
    assert!(app.check("nina", "edit", "workflow:launch").await);

    // Nobody lifts a link they could not pass: olga owns the workflow but
    // may not see the board; maya may.
    let r = app.set_links("olga", "workflow:launch", &[]).await;
    assert_eq!(code(r), Code::PermissionDenied);
    assert!(!app.check("olga", "edit", "workflow:launch").await);

    // A board that is gone cannot be used: editing is denied until the link
    // is lifted.
    app.operator()
        .delete_resource(pb::DeleteResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("board:budget")),
            ..Default::default()
        })
        .await
        .expect("delete the board");
    let d = app.check_full("maya", "edit", "workflow:launch").await;
    assert_eq!(reason_of(&d), pb::Reason::LinkDenied);
    assert!(
        d.explanation
            .expect("explanation")
            .detail
            .contains("does not exist"),
        "the denial says the board is gone"
    );
    // Nobody takes the deleted board's name while a link still names it:
    // the new board's owner would pass the link alone.
    let taken = app
        .operator()
        .create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("board:budget")),
            parent: Some(res("workspace:finance")),
            ..Default::default()
        })
        .await;
    assert_eq!(code(taken), Code::FailedPrecondition);
    // A link to nothing protects nothing: an owner may lift it.
    app.set_links("olga", "workflow:launch", &[])
        .await
        .expect("an owner lifts the link to a deleted board");
    assert!(app.check("olga", "edit", "workflow:launch").await);
    app.resource("board:budget", Some("workspace:finance"))
        .await;
}

on_every_backend!(
    a_workflow_acting_on_another_workspaces_board_is_edited_only_by_who_may_use_the_board,
    main_workflow_is_visible_to_every_workspace_member_but_editable_only_by_its_owner,
    main_workflow_in_an_open_workspace_is_visible_to_everyone_in_the_account,
    owner_can_crown_other_members_as_additional_owners,
    private_workflow_is_visible_only_to_owners_and_invited_members,
    a_draft_is_seen_only_by_its_author_not_by_other_owners,
    only_account_roles_allowed_to_create_workflows_can_create_them,
    boards_are_offered_only_from_accessible_workspaces_and_private_boards_to_their_members,
);

//! `AdminService/PreviewChange` through the server: any admin write is
//! answered with whether it would be accepted (the write's own error when
//! not) and who would gain or lose which access, and nothing is written.
//! That the reported access is exactly what the write then changes is a
//! property over random changes (`src/admin/apply_tests.rs`,
//! `a_preview_reports_exactly_what_the_write_then_does`); here the call,
//! its pages, its visibility and that it writes nothing.

use crate::helpers::*;
use crate::on_every_backend;
use pb::preview_change_request::Change;
use portcullis::grpc::pb;
use tonic::Code;

fn grant_req(actor: &str, subject: &str, role: &str, on: &str) -> pb::CreateGrantRequest {
    pb::CreateGrantRequest {
        tenant_id: TENANT.into(),
        actor_id: actor.into(),
        subject: Some(subj(subject)),
        role_id: role.into(),
        scope: scope(on),
        effect: pb::Effect::Allow as i32,
        ..Default::default()
    }
}

async fn preview(
    app: &TestApp,
    change: Change,
    page_size: u32,
    page_token: &str,
) -> pb::PreviewChangeResponse {
    app.operator()
        .preview_change(pb::PreviewChangeRequest {
            change: Some(change),
            page_size,
            page_token: page_token.into(),
        })
        .await
        .expect("preview")
        .into_inner()
}

async fn revision(app: &TestApp) -> String {
    app.check_full(ADMIN, "view", "workspace:ops")
        .await
        .consistency_token
}

async fn a_preview_answers_like_the_write_and_writes_nothing(b: Backend) {
    let app = spawn_app_on(b).await;
    for u in ["ada", "bob", "eve"] {
        app.user(u).await;
    }
    app.resource("workspace:ops", None).await;
    for i in 0..3 {
        app.resource(&format!("workflow:w{i}"), Some("workspace:ops"))
            .await;
    }
    app.private_resource("workflow:secret", Some("workspace:ops"))
        .await;
    app.grant("ada", "admin", "workspace:ops").await;
    app.grant("ada", "editor", "workflow:secret").await;
    let before = revision(&app).await;

    // Accepted: bob would gain viewing of the workspace and its three
    // public workflows (not the private one).
    let p = preview(
        &app,
        Change::CreateGrant(grant_req("ada", "bob", "viewer", "workspace:ops")),
        0,
        "",
    )
    .await;
    assert!(p.accepted, "{p:?}");
    let gained: Vec<(&str, &str, &str)> = p
        .access_changes
        .iter()
        .map(|c| {
            assert!(c.gained, "{c:?}");
            (
                c.principal_id.as_str(),
                c.action.as_str(),
                c.resource.as_str(),
            )
        })
        .collect();
    assert_eq!(
        gained,
        [
            ("bob", "view", "workflow:w0"),
            ("bob", "view", "workflow:w1"),
            ("bob", "view", "workflow:w2"),
            ("bob", "view", "workspace:ops"),
        ]
    );
    assert_eq!((p.gained, p.lost, p.complete), (4, 0, true));
    // Nothing was written: no new revision, bob still may not view.
    assert_eq!(revision(&app).await, before);
    assert!(!app.check("bob", "view", "workflow:w0").await);

    // In pages of 3: the same four, then the end.
    let first = preview(
        &app,
        Change::CreateGrant(grant_req("ada", "bob", "viewer", "workspace:ops")),
        3,
        "",
    )
    .await;
    assert_eq!(first.access_changes.len(), 3);
    assert!(!first.next_page_token.is_empty());
    let second = preview(
        &app,
        Change::CreateGrant(grant_req("ada", "bob", "viewer", "workspace:ops")),
        3,
        &first.next_page_token,
    )
    .await;
    assert_eq!(second.access_changes.len(), 1);
    assert!(second.next_page_token.is_empty());

    // Refused: the write's own error, and still nothing written.
    let denied = preview(
        &app,
        Change::CreateGrant(grant_req("eve", "eve", "admin", "workspace:ops")),
        0,
        "",
    )
    .await;
    assert!(!denied.accepted);
    assert_eq!(denied.error_code, Code::PermissionDenied as i32);
    let real = app
        .admin()
        .create_grant(grant_req("eve", "eve", "admin", "workspace:ops"))
        .await
        .unwrap_err();
    assert_eq!(real.code(), Code::PermissionDenied);
    assert_eq!(denied.error_message, real.message());
    assert!(denied.access_changes.is_empty());
    let invalid = preview(
        &app,
        Change::CreateGrant(grant_req("ada", "bob", "no such role!", "workspace:ops")),
        0,
        "",
    )
    .await;
    assert_eq!(
        invalid.error_code,
        Code::InvalidArgument as i32,
        "{invalid:?}"
    );
    assert_eq!(revision(&app).await, before);

    // Losses too: suspending ada loses everything she holds.
    let suspend = preview(
        &app,
        Change::SetPrincipalStatus(pb::SetPrincipalStatusRequest {
            tenant_id: TENANT.into(),
            principal_id: "ada".into(),
            status: pb::PrincipalStatus::Suspended as i32,
            ..Default::default()
        }),
        0,
        "",
    )
    .await;
    assert!(suspend.accepted);
    assert!(suspend.lost > 0 && suspend.gained == 0, "{suspend:?}");
    assert!(suspend
        .access_changes
        .iter()
        .any(|c| c.resource == "workflow:secret" && !c.gained));

    // An acting principal sees only what it may view: the team's manager
    // removing bob from `ops` (which alone views a private workflow) is
    // told nothing of it; the super user sees bob lose it.
    app.team("ops").await;
    app.add_member("ops", "bob").await.expect("member");
    app.private_resource("workflow:hidden", Some("workspace:ops"))
        .await;
    app.grant("team:ops", "viewer", "workflow:hidden").await;
    app.user("tm").await;
    app.role("team_manager", &["tenant.manage_teams"], &[], &["tenant"])
        .await
        .expect("role");
    app.grant("tm", "team_manager", "tenant").await;
    let leave = |actor: &str| {
        Change::RemoveTeamMember(pb::RemoveTeamMemberRequest {
            tenant_id: TENANT.into(),
            actor_id: actor.into(),
            team_id: "ops".into(),
            member: Some(subj("bob")),
            ..Default::default()
        })
    };
    let as_su = preview(&app, leave(""), 0, "").await;
    assert!(as_su.accepted, "{as_su:?}");
    assert_eq!(
        as_su
            .access_changes
            .iter()
            .map(|c| (
                c.principal_id.as_str(),
                c.action.as_str(),
                c.resource.as_str(),
                c.gained
            ))
            .collect::<Vec<_>>(),
        [("bob", "view", "workflow:hidden", false)]
    );
    let as_tm = preview(&app, leave("tm"), 0, "").await;
    assert!(as_tm.accepted, "{as_tm:?}");
    assert!(as_tm.access_changes.is_empty(), "{as_tm:?}");
    assert_eq!((as_tm.gained, as_tm.lost), (0, 0));

    // The call's own reach is checked as for the write: no change named,
    // a malformed page token, and a write with no actor on the admin key.
    for (req, field) in [
        (
            pb::PreviewChangeRequest {
                change: None,
                ..Default::default()
            },
            "change",
        ),
        (
            pb::PreviewChangeRequest {
                change: Some(Change::CreateGrant(grant_req(
                    "ada",
                    "bob",
                    "viewer",
                    "workspace:ops",
                ))),
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::PreviewChangeRequest {
                change: Some(Change::CreateGrant(grant_req(
                    "",
                    "bob",
                    "viewer",
                    "workspace:ops",
                ))),
                ..Default::default()
            },
            "actor_id",
        ),
    ] {
        let e = app.admin().preview_change(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {e:?}");
    }
}

on_every_backend!(a_preview_answers_like_the_write_and_writes_nothing);

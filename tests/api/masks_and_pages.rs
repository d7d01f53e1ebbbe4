//! Partial updates (`update_mask`) and the pages of ListRoles,
//! ListTeamMembers and GetAccessOverview.

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

async fn tenant(app: &TestApp) -> pb::Tenant {
    app.operator()
        .get_tenant(pb::GetTenantRequest {
            tenant_id: TENANT.into(),
            actor_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap()
}

async fn an_update_mask_changes_only_the_named_tenant_settings(b: Backend) {
    let app = spawn_app_on(b).await;
    let before = tenant(&app).await;
    app.operator()
        .update_tenant(pb::UpdateTenantRequest {
            tenant_id: TENANT.into(),
            display_name: "Renamed".into(),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .unwrap();
    let after = tenant(&app).await;
    assert_eq!(after.display_name, "Renamed");
    assert_eq!(after.audit_retention_days, before.audit_retention_days);
    assert_eq!(after.single_owner_types, before.single_owner_types);
    assert_eq!(after.creator_owner_types, before.creator_owner_types);
    // An unknown path is refused, naming the mask.
    let s = app
        .operator()
        .update_tenant(pb::UpdateTenantRequest {
            tenant_id: TENANT.into(),
            update_mask: mask(&["revision"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    let details = s.get_error_details();
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "update_mask"
    );
    assert_eq!(tenant(&app).await, after, "nothing changed");
}

async fn role(app: &TestApp, id: &str) -> pb::Role {
    app.operator()
        .get_role(pb::GetRoleRequest {
            tenant_id: TENANT.into(),
            role_id: id.into(),
            actor_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap()
}

async fn an_update_mask_changes_only_the_named_role_fields(b: Backend) {
    let app = spawn_app_on(b).await;
    app.role("runner", &["workflow.execute"], &["viewer"], &["*"])
        .await
        .unwrap();
    app.operator()
        .update_role(pb::UpdateRoleRequest {
            tenant_id: TENANT.into(),
            role: Some(pb::Role {
                id: "runner".into(),
                display_name: "Runs workflows".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = role(&app, "runner").await;
    assert_eq!(r.display_name, "Runs workflows");
    assert_eq!(r.permissions, ["workflow.execute"]);
    assert_eq!(r.inherits, ["viewer"]);
    assert_eq!(r.effective_at, ["*"]);
    // The role after the change must be valid: no permissions and no
    // inherited roles is refused, and nothing changes.
    let s = app
        .operator()
        .update_role(pb::UpdateRoleRequest {
            tenant_id: TENANT.into(),
            role: Some(pb::Role {
                id: "runner".into(),
                ..Default::default()
            }),
            update_mask: mask(&["permissions", "inherits"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(
        s.get_error_details()
            .bad_request()
            .unwrap()
            .field_violations[0]
            .field,
        "role.permissions"
    );
    assert_eq!(role(&app, "runner").await, r);
    // Without a mask the whole definition is replaced, as before.
    app.operator()
        .update_role(pb::UpdateRoleRequest {
            tenant_id: TENANT.into(),
            role: Some(pb::Role {
                id: "runner".into(),
                permissions: vec!["workflow.view".into()],
                effective_at: vec!["workflow".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = role(&app, "runner").await;
    assert_eq!(r.display_name, "");
    assert!(r.inherits.is_empty());
}

/// Every page of a list, following `next_page_token` with `page_size`.
async fn all_pages<T, F, Fut>(page_size: u32, mut call: F) -> (Vec<T>, usize)
where
    F: FnMut(u32, String) -> Fut,
    Fut: std::future::Future<Output = (Vec<T>, String)>,
{
    let (mut out, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let (items, next) = call(page_size, token).await;
        assert!(
            items.len() <= page_size as usize,
            "a page holds at most page_size"
        );
        pages += 1;
        out.extend(items);
        if next.is_empty() {
            return (out, pages);
        }
        token = next;
        assert!(pages < 100, "pages never end");
    }
}

async fn roles_members_and_access_overviews_come_in_pages(b: Backend) {
    let app = spawn_app_on(b).await;
    for r in ["r1", "r2", "r3"] {
        app.role(r, &["workflow.view"], &[], &["*"]).await.unwrap();
    }
    app.user("alice").await;
    app.team("t").await;
    for m in ["alice", "team:u", ADMIN] {
        if m == "team:u" {
            app.team("u").await;
        }
        app.add_member("t", m).await.unwrap();
    }
    for ws in ["a", "b", "c"] {
        app.resource(&format!("workspace:{ws}"), None).await;
        app.grant("alice", "viewer", &format!("workspace:{ws}"))
            .await;
    }
    app.grant("team:t", "editor", "workspace:b").await;

    // Roles: 5 predefined + 3 custom, the same order as one big page.
    let op = app.operator();
    let (paged, pages) = all_pages(3, |page_size, page_token| {
        let mut op = op.clone();
        async move {
            let r = op
                .list_roles(pb::ListRolesRequest {
                    tenant_id: TENANT.into(),
                    page_size,
                    page_token,
                    actor_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.roles.into_iter().map(|r| r.id).collect::<Vec<_>>(),
                r.next_page_token,
            )
        }
    })
    .await;
    let (whole, _) = all_pages(1_000, |page_size, page_token| {
        let mut op = op.clone();
        async move {
            let r = op
                .list_roles(pb::ListRolesRequest {
                    tenant_id: TENANT.into(),
                    page_size,
                    page_token,
                    actor_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.roles.into_iter().map(|r| r.id).collect::<Vec<_>>(),
                r.next_page_token,
            )
        }
    })
    .await;
    assert_eq!(paged, whole);
    assert_eq!(whole.len(), 8);
    assert_eq!(pages, 3);

    // Team members: principals first, then teams, each in id order.
    let (members, pages) = all_pages(2, |page_size, page_token| {
        let mut op = op.clone();
        async move {
            let r = op
                .list_team_members(pb::ListTeamMembersRequest {
                    tenant_id: TENANT.into(),
                    team_id: "t".into(),
                    page_size,
                    page_token,
                    actor_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            (r.members, r.next_page_token)
        }
    })
    .await;
    assert_eq!(members, [subj("alice"), subj(ADMIN), subj("team:u")]);
    assert_eq!(pages, 2);

    // Alice's access overview: 3 direct grants and 1 through team t.
    let (entries, pages) = all_pages(1, |page_size, page_token| {
        let mut op = op.clone();
        async move {
            let r = op
                .get_access_overview(pb::GetAccessOverviewRequest {
                    tenant_id: TENANT.into(),
                    principal_id: "alice".into(),
                    page_size,
                    page_token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (r.entries, r.next_page_token)
        }
    })
    .await;
    assert_eq!(entries.len(), 4);
    assert_eq!(pages, 4);
    let mut ids: Vec<&str> = entries
        .iter()
        .map(|e| e.grant.as_ref().unwrap().id.as_str())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "no entry twice");
    // A token that is not one of ours is refused.
    let s = op
        .clone()
        .get_access_overview(pb::GetAccessOverviewRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            page_token: "bm90LWEtdG9rZW4".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
}

on_every_backend!(
    an_update_mask_changes_only_the_named_tenant_settings,
    an_update_mask_changes_only_the_named_role_fields,
    roles_members_and_access_overviews_come_in_pages
);

//! The service surface: API keys and scopes, health, reflection (v1 and
//! v1alpha), revision tokens, and bad input answered with INVALID_ARGUMENT
//! naming the field and leaving the store unchanged.

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::Code;

#[tokio::test]
async fn calls_without_a_key_or_with_an_unknown_key_are_unauthenticated() {
    let app = spawn_app().await;
    let mut bare = pb::check_service_client::CheckServiceClient::new(app.channel.clone());
    let req = pb::CheckRequest {
        tenant_id: TENANT.into(),
        principal_id: "alice".into(),
        action: "view".into(),
        resource: Some(res("workflow:w1")),
        ..Default::default()
    };
    assert_eq!(code(bare.check(req.clone()).await), Code::Unauthenticated);
    let mut wrong = app.checker_with_key("not-a-configured-key-at-all");
    assert_eq!(code(wrong.check(req.clone()).await), Code::Unauthenticated);
    assert!(app.checker().check(req).await.is_ok());
}

#[tokio::test]
async fn a_check_key_cannot_call_the_admin_service_and_an_admin_key_cannot_create_tenants() {
    let app = spawn_app().await;
    let mut as_checker = app.admin_with_key(CHECK_KEY);
    let r = as_checker
        .get_tenant(pb::GetTenantRequest {
            tenant_id: TENANT.into(),
            actor_id: String::new(),
        })
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    let r = app
        .admin()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "other".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    let r = app
        .admin()
        .list_tenants(pb::ListTenantsRequest::default())
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    let listed = app
        .operator()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.into_inner().tenants.len(), 1);
}

#[tokio::test]
async fn admin_writes_with_an_admin_key_must_name_the_acting_principal() {
    let app = spawn_app().await;
    let r = app
        .admin()
        .create_team(pb::CreateTeamRequest {
            tenant_id: TENANT.into(),
            team_id: "eng".into(),
            ..Default::default()
        })
        .await;
    let status = r.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("actor_id"),
        "{}",
        status.message()
    );
    // Naming the account admin works.
    app.admin()
        .create_team(pb::CreateTeamRequest {
            tenant_id: TENANT.into(),
            actor_id: ADMIN.into(),
            team_id: "eng".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn health_is_serving_and_reflection_v1_and_v1alpha_list_every_service() {
    use tokio_stream::StreamExt;
    let app = spawn_app().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    for service in [
        "",
        "portcullis.v1.CheckService",
        "portcullis.v1.AdminService",
    ] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }

    use tonic_reflection::pb::v1 as r1;
    let mut v1 = r1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let req = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = v1
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        resp.message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for s in [
        "portcullis.v1.CheckService",
        "portcullis.v1.ListAccessibleService",
        "portcullis.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == s),
            "v1 reflection lacks {s}: {names:?}"
        );
    }

    use tonic_reflection::pb::v1alpha as ra;
    let mut va = ra::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let req = ra::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            ra::server_reflection_request::MessageRequest::FileContainingSymbol(
                "portcullis.v1.CheckService".into(),
            ),
        ),
    };
    let mut stream = va
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(
            resp.message_response,
            Some(ra::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
        ),
        "v1alpha reflection did not describe CheckService"
    );
}

async fn every_write_bumps_the_revision_and_failed_writes_do_not(b: Backend) {
    let app = spawn_app_on(b).await;
    let r1: i64 = app.user("alice").await.parse().unwrap();
    let r2: i64 = app.resource("workspace:ops", None).await.parse().unwrap();
    assert!(r2 > r1);
    // A refused write (duplicate) leaves the revision where it was.
    let dup = app.resource_as("", "workspace:ops", None, false).await;
    assert_eq!(code(dup), Code::AlreadyExists);
    let r3: i64 = app.team("eng").await.parse().unwrap();
    assert_eq!(r3, r2 + 1);
    let answer = app.check_full("alice", "view", "workspace:ops").await;
    assert_eq!(answer.consistency_token, r3.to_string());
}

async fn a_consistency_token_from_a_revoke_never_sees_the_revoked_grant(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    app.resource("workflow:w1", None).await;
    let g = app.grant("alice", "viewer", "workflow:w1").await;
    let token = app.revoke(&g.id).await.unwrap();
    let r = app
        .checker()
        .check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            action: "view".into(),
            resource: Some(res("workflow:w1")),
            consistency_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.allowed);
    assert!(r.consistency_token.parse::<i64>().unwrap() >= token.parse::<i64>().unwrap());
    // A token ahead of the tenant's revision is not one of its tokens:
    // INVALID_ARGUMENT naming it, never a decision.
    let ahead = app
        .checker()
        .check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            action: "view".into(),
            resource: Some(res("workflow:w1")),
            consistency_token: "999999".into(),
            ..Default::default()
        })
        .await;
    let status = ahead.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("`consistency_token`"),
        "{status:?}"
    );
}

on_every_backend!(
    every_write_bumps_the_revision_and_failed_writes_do_not,
    a_consistency_token_from_a_revoke_never_sees_the_revoked_grant
);

#[tokio::test]
async fn a_check_in_an_unknown_tenant_is_denied_with_a_reason() {
    let app = spawn_app().await;
    let r = app
        .checker()
        .check(pb::CheckRequest {
            tenant_id: "nobody".into(),
            principal_id: "alice".into(),
            action: "view".into(),
            resource: Some(res("workflow:w1")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.allowed);
    assert_eq!(r.reason, pb::Reason::UnknownTenant as i32);
}

/// Sends a request and asserts INVALID_ARGUMENT naming `field`.
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, tonic::Status>, field: &str) {
    let s = r.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(s.code(), Code::InvalidArgument, "{field}: {}", s.message());
    assert!(
        s.message().contains(&format!("`{field}`")),
        "message `{}` does not name `{field}`",
        s.message()
    );
}

#[tokio::test]
async fn malformed_check_requests_are_invalid_arguments_naming_the_field() {
    let app = spawn_app().await;
    let base = pb::CheckRequest {
        tenant_id: TENANT.into(),
        principal_id: "alice".into(),
        action: "view".into(),
        resource: Some(res("workflow:w1")),
        ..Default::default()
    };
    let mut c = app.checker();
    let cases: Vec<(pb::CheckRequest, &str)> = vec![
        (
            pb::CheckRequest {
                tenant_id: String::new(),
                ..base.clone()
            },
            "tenant_id",
        ),
        (
            pb::CheckRequest {
                tenant_id: "x".repeat(257),
                ..base.clone()
            },
            "tenant_id",
        ),
        (
            pb::CheckRequest {
                principal_id: "a\u{0}b".into(),
                ..base.clone()
            },
            "principal_id",
        ),
        (
            pb::CheckRequest {
                action: "View!".into(),
                ..base.clone()
            },
            "action",
        ),
        (
            pb::CheckRequest {
                resource: None,
                ..base.clone()
            },
            "resource",
        ),
        (
            pb::CheckRequest {
                resource: Some(res("tenant:acme")),
                ..base.clone()
            },
            "resource.type",
        ),
        (
            pb::CheckRequest {
                resource: Some(pb::ResourceRef {
                    r#type: "workflow".into(),
                    id: String::new(),
                }),
                ..base.clone()
            },
            "resource.id",
        ),
        (
            pb::CheckRequest {
                consistency_token: "yesterday".into(),
                ..base.clone()
            },
            "consistency_token",
        ),
    ];
    for (req, field) in cases {
        assert_invalid(c.check(req).await, field);
    }
}

#[tokio::test]
async fn batch_sizes_and_page_sizes_out_of_range_are_refused() {
    let app = spawn_app().await;
    let item = pb::BatchCheckItem {
        principal_id: "alice".into(),
        action: "view".into(),
        resource: Some(res("workflow:w1")),
    };
    let mut c = app.checker();
    let empty = c
        .batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        })
        .await;
    assert_invalid(empty, "items");
    let too_many = c
        .batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items: vec![item.clone(); 5_001],
            ..Default::default()
        })
        .await;
    assert_invalid(too_many, "items");
    let mut bad_item = item.clone();
    bad_item.action = String::new();
    let bad = c
        .batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items: vec![item.clone(), bad_item],
            ..Default::default()
        })
        .await;
    assert_invalid(bad, "items[1].action");
    let full = c
        .batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items: vec![item; 5_000],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.results.len(), 5_000);
    assert!(full
        .results
        .iter()
        .all(|r| !r.allowed && r.reason == pb::Reason::UnknownPrincipal as i32));

    let mut l = app.lister();
    let r = l
        .list_accessible(pb::ListAccessibleRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            action: "view".into(),
            resource_type: "workflow".into(),
            page_size: 10_001,
            ..Default::default()
        })
        .await;
    assert_invalid(r, "page_size");
    let r = l
        .list_accessible(pb::ListAccessibleRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            action: "view".into(),
            resource_type: "workflow".into(),
            page_token: "!!not-a-token!!".into(),
            ..Default::default()
        })
        .await;
    assert_invalid(r, "page_token");
    let r = app
        .operator()
        .list_principals(pb::ListPrincipalsRequest {
            tenant_id: TENANT.into(),
            page_size: 1_001,
            ..Default::default()
        })
        .await;
    assert_invalid(r, "page_size");
}

#[tokio::test]
async fn malformed_admin_requests_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let mut op = app.operator();
    let r = op
        .create_role(pb::CreateRoleRequest {
            tenant_id: TENANT.into(),
            role: Some(pb::Role {
                id: "reviewer".into(),
                permissions: vec!["workflow.view".into(), "workflow".into()],
                effective_at: vec!["*".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    assert_invalid(r, "role.permissions");
    let r = op
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "bob".into(),
            status: 99,
            ..Default::default()
        })
        .await;
    assert_invalid(r, "status");
    let r = op
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "bob".into(),
            kind: 7,
            ..Default::default()
        })
        .await;
    assert_invalid(r, "kind");
    let r = op
        .create_grant(pb::CreateGrantRequest {
            tenant_id: TENANT.into(),
            subject: None,
            role_id: "viewer".into(),
            ..Default::default()
        })
        .await;
    assert_invalid(r, "subject");
    app.user("bob").await;
    let r = op
        .create_grant(pb::CreateGrantRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj("bob")),
            role_id: "viewer".into(),
            expire_time: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await;
    assert_invalid(r, "expire_time");
    let r = op
        .create_grant(pb::CreateGrantRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj("bob")),
            role_id: "viewer".into(),
            effect: 5,
            ..Default::default()
        })
        .await;
    assert_invalid(r, "effect");
    // None of the refused writes left anything behind.
    let grants = op
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj("bob")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(grants.grants.is_empty());
}

async fn a_refused_write_leaves_no_resource_no_grant_and_no_audit_event(b: Backend) {
    let app = spawn_app_on(b).await;
    let before = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .len();
    // A project has a single owner; as super user it must be named, and the
    // named owner must exist. Both refusals come after the resource row would
    // have been written, so the transaction must roll it back.
    let r = app.resource_as("", "project:p1", None, false).await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = app
        .operator()
        .create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("project:p1")),
            owner_id: "ghost".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(r), Code::NotFound);
    let r = app
        .operator()
        .get_resource(pb::GetResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("project:p1")),
            actor_id: String::new(),
        })
        .await;
    assert_eq!(code(r), Code::NotFound);
    let after = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .len();
    assert_eq!(before, after);
}

on_every_backend!(a_refused_write_leaves_no_resource_no_grant_and_no_audit_event);

#[tokio::test]
async fn cache_counters_show_hits_after_repeated_checks_and_need_an_operator_key() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.resource("workflow:w1", None).await;
    app.grant("alice", "viewer", "workflow:w1").await;
    for _ in 0..3 {
        assert!(app.check("alice", "view", "workflow:w1").await);
    }
    let stats = app
        .replica_with_key(OPERATOR_KEY)
        .get_cache_stats(pb::GetCacheStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let indexes = stats.indexes.unwrap();
    assert_eq!(indexes.entries, 1, "one tenant indexed");
    assert_eq!(
        indexes.misses, 1,
        "the first check reads the tenant into its index"
    );
    assert_eq!(indexes.hits, 2, "the next two are answered from it");
    let subjects = stats.subjects.unwrap();
    assert_eq!(subjects.misses, 0, "no principal read through");
    let denied = app
        .replica_with_key(ADMIN_KEY)
        .get_cache_stats(pb::GetCacheStatsRequest {})
        .await;
    assert_eq!(code(denied), Code::PermissionDenied);
}

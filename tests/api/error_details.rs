//! Errors carry machine-readable details (the gRPC richer error model):
//! `google.rpc.ErrorInfo` with a reason, and `google.rpc.BadRequest` naming
//! the field of an invalid argument, so clients never parse messages.

use crate::helpers::*;
use crate::on_every_backend;
use portcullis::grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

/// The `ErrorInfo` reason of a failed call.
fn reason<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    let s = r.expect_err("expected an error");
    let details = s.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {s:?}"));
    assert_eq!(info.domain, "portcullis.v1");
    (s.code(), info.reason.clone())
}

async fn an_invalid_argument_names_its_field_in_a_bad_request_detail(b: Backend) {
    let app = spawn_app_on(b).await;
    let s = app
        .operator()
        .create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(pb::ResourceRef {
                r#type: "Not A Type".into(),
                id: "x".into(),
            }),
            ..Default::default()
        })
        .await
        .expect_err("a malformed type is refused");
    assert_eq!(s.code(), Code::InvalidArgument);
    let details = s.get_error_details();
    let violations = &details
        .bad_request()
        .expect("a BadRequest detail")
        .field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "resource.type");
    assert!(!violations[0].description.is_empty());
    assert_eq!(details.error_info().unwrap().reason, "invalid_argument");
}

async fn every_kind_of_refusal_says_its_reason_in_an_error_info_detail(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    app.resource("workspace:w", None).await;
    // NOT_FOUND.
    let r = app
        .operator()
        .get_principal(pb::GetPrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "nobody".into(),
            actor_id: String::new(),
        })
        .await;
    assert_eq!(reason(r), (Code::NotFound, "not_found".into()));
    // ALREADY_EXISTS.
    let r = app
        .operator()
        .create_team(pb::CreateTeamRequest {
            tenant_id: TENANT.into(),
            team_id: "t".into(),
            ..Default::default()
        })
        .await;
    r.unwrap();
    let r = app
        .operator()
        .create_team(pb::CreateTeamRequest {
            tenant_id: TENANT.into(),
            team_id: "t".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(reason(r), (Code::AlreadyExists, "already_exists".into()));
    // PERMISSION_DENIED: alice holds nothing.
    let r = app
        .operator()
        .create_team(pb::CreateTeamRequest {
            tenant_id: TENANT.into(),
            actor_id: "alice".into(),
            team_id: "u".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        reason(r),
        (Code::PermissionDenied, "permission_denied".into())
    );
    // FAILED_PRECONDITION names the invariant.
    let r = app
        .operator()
        .delete_role(pb::DeleteRoleRequest {
            tenant_id: TENANT.into(),
            role_id: "viewer".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(reason(r), (Code::FailedPrecondition, "locked_role".into()));
    // UNAUTHENTICATED, refused before any handler runs.
    let r = app
        .admin_with_key("not-a-key")
        .get_tenant(pb::GetTenantRequest {
            tenant_id: TENANT.into(),
            actor_id: String::new(),
        })
        .await;
    assert_eq!(reason(r), (Code::Unauthenticated, "unauthenticated".into()));
}

async fn the_super_user_id_is_reserved(b: Backend) {
    let app = spawn_app_on(b).await;
    let field_of = |s: tonic::Status| {
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        s.get_error_details()
            .bad_request()
            .unwrap()
            .field_violations[0]
            .field
            .clone()
    };
    let s = app
        .operator()
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "super_user".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(field_of(s), "principal_id");
    let s = app
        .operator()
        .create_team(pb::CreateTeamRequest {
            tenant_id: TENANT.into(),
            actor_id: "super_user".into(),
            team_id: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(field_of(s), "actor_id");
}

on_every_backend!(
    the_super_user_id_is_reserved,
    an_invalid_argument_names_its_field_in_a_bad_request_detail,
    every_kind_of_refusal_says_its_reason_in_an_error_info_detail
);

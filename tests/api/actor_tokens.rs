//! A proven actor, optionally: a key with `require_actor_token` writes only
//! with a short-lived token signed by the platform naming the actor, so a
//! leaked console key alone cannot act as anyone.

use crate::helpers::*;
use portcullis::auth::Bearer;
use portcullis::config::{ApiKey, KeyScope, Secret};
use portcullis::grpc::pb;
use rcgen::{KeyPair, PKCS_ED25519};
use tonic::Code;

const CONSOLE_KEY: &str = "console-key-0123456789ab";

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed with `key` for `sub` in `tenant`, valid `[iat, exp)`.
fn token(key: &KeyPair, sub: &str, tenant: &str, iat: u64, exp: u64) -> String {
    let claims = serde_json::json!({ "sub": sub, "tenant": tenant, "iat": iat, "exp": exp });
    let enc = jsonwebtoken::EncodingKey::from_ed_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &enc,
    )
    .unwrap()
}

async fn a_key_that_requires_actor_tokens_acts_only_as_the_proven_actor(b: Backend) {
    let platform = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let stranger = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(&b, dir.path()).await;
    let mut cfg = test_config(&url);
    let pem = dir.path().join("platform.pub.pem");
    std::fs::write(&pem, platform.public_key_pem()).unwrap();
    cfg.actor_tokens.public_key_file = Some(pem);
    cfg.api_keys.push(ApiKey {
        name: "console".into(),
        key: Secret::new(CONSOLE_KEY),
        scope: KeyScope::Admin,
        tenants: Vec::new(),
        require_actor_token: true,
    });
    cfg.validate().unwrap();
    let (_, channel, _stop, _) = serve(&cfg, true).await;
    let mut op = pb::admin_service_client::AdminServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(OPERATOR_KEY).unwrap(),
    );
    create_tenant(&mut op, TENANT).await;

    let write = |token: Option<String>, actor: &str, team: &str| {
        let channel = channel.clone();
        let (actor, team) = (actor.to_owned(), team.to_owned());
        async move {
            let bearer = Bearer::new(CONSOLE_KEY).unwrap();
            let mut c =
                pb::admin_service_client::AdminServiceClient::with_interceptor(channel, bearer);
            let mut req = tonic::Request::new(pb::CreateTeamRequest {
                tenant_id: TENANT.into(),
                actor_id: actor,
                team_id: team,
                ..Default::default()
            });
            if let Some(t) = token {
                req.metadata_mut()
                    .insert("x-portcullis-actor-token", t.parse().unwrap());
            }
            c.create_team(req).await.map(|_| ()).map_err(|s| s.code())
        }
    };
    let now = now_s();
    let good = |sub: &str| Some(token(&platform, sub, TENANT, now, now + 60));
    // The proven actor (the tenant's first admin) may write.
    assert_eq!(write(good(ADMIN), ADMIN, "t1").await, Ok(()));
    // The key alone, or any token that does not prove that actor, may not.
    let refused = [
        (None, "no token"),
        (good("someone-else"), "a token for another actor"),
        (
            Some(token(&platform, ADMIN, "globex", now, now + 60)),
            "a token for another tenant",
        ),
        (
            Some(token(&platform, ADMIN, TENANT, now - 600, now - 300)),
            "an expired token",
        ),
        (
            Some(token(&platform, ADMIN, TENANT, now, now + 3_600)),
            "a token living an hour",
        ),
        (
            Some(token(&stranger, ADMIN, TENANT, now, now + 60)),
            "a token signed by another key",
        ),
        (Some("not-a-jwt".to_owned()), "garbage"),
    ];
    for (i, (t, what)) in refused.into_iter().enumerate() {
        assert_eq!(
            write(t, ADMIN, &format!("r{i}")).await,
            Err(Code::Unauthenticated),
            "{what}"
        );
    }
    // Reads too: the key alone reads nothing; with a proven actor it reads
    // what that actor may see.
    let read = |token: Option<String>, actor: &str| {
        let channel = channel.clone();
        let actor = actor.to_owned();
        async move {
            let bearer = Bearer::new(CONSOLE_KEY).unwrap();
            let mut c =
                pb::admin_service_client::AdminServiceClient::with_interceptor(channel, bearer);
            let mut req = tonic::Request::new(pb::ListTeamsRequest {
                tenant_id: TENANT.into(),
                actor_id: actor,
                ..Default::default()
            });
            if let Some(t) = token {
                req.metadata_mut()
                    .insert("x-portcullis-actor-token", t.parse().unwrap());
            }
            c.list_teams(req)
                .await
                .map(|r| r.into_inner().teams.len())
                .map_err(|s| s.code())
        }
    };
    assert_eq!(read(good(ADMIN), ADMIN).await, Ok(1));
    assert_eq!(read(None, "").await, Err(Code::Unauthenticated));
    assert_eq!(read(None, ADMIN).await, Err(Code::Unauthenticated));
    assert_eq!(
        read(good("someone-else"), ADMIN).await,
        Err(Code::Unauthenticated)
    );
    // Nor does it reach the check services, which name no actor.
    let mut checks = pb::check_service_client::CheckServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(CONSOLE_KEY).unwrap(),
    );
    let r = checks
        .check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: ADMIN.into(),
            action: "view".into(),
            resource: Some(res("workspace:nowhere")),
            ..Default::default()
        })
        .await;
    assert_eq!(
        r.map(|_| ()).map_err(|s| s.code()),
        Err(Code::PermissionDenied)
    );
    // Keys without the option keep today's model: the caller asserts the actor.
    let mut admin = pb::admin_service_client::AdminServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(ADMIN_KEY).unwrap(),
    );
    admin
        .create_team(pb::CreateTeamRequest {
            tenant_id: TENANT.into(),
            actor_id: ADMIN.into(),
            team_id: "t2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

crate::on_every_backend!(a_key_that_requires_actor_tokens_acts_only_as_the_proven_actor);

#[test]
fn a_key_that_requires_actor_tokens_needs_a_public_key_configured() {
    let mut cfg = test_config("sqlite://x.db?mode=rwc");
    cfg.api_keys[1].require_actor_token = true;
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("actor_tokens.public_key_file"), "{err}");
}

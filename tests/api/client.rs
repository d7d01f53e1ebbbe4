//! The client example for sibling services (`portcullis::client`): one
//! shared channel, a deadline per call, retries on UNAVAILABLE only.

use crate::helpers::*;
use portcullis::app::App;
use portcullis::client::{with_retries, CheckClient, RetryPolicy};
use portcullis::grpc::pb;
use std::time::Duration;
use tonic::{Code, Status};

#[tokio::test]
async fn the_client_checks_over_one_channel() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.resource("workflow:w1", None).await;
    app.grant("alice", "viewer", "workflow:w1").await;
    let client = CheckClient::connect(
        &format!("http://{}", app.addr),
        CHECK_KEY,
        RetryPolicy::default(),
    )
    .expect("client");
    // Clones share the channel: concurrent calls multiplex on it.
    let calls = (0..20).map(|i| {
        let c = client.clone();
        let action = if i % 2 == 0 { "view" } else { "edit" };
        tokio::spawn(async move {
            (
                action,
                c.check(TENANT, "alice", action, "workflow", "w1").await,
            )
        })
    });
    for call in calls {
        let (action, allowed) = call.await.expect("task");
        assert_eq!(allowed.expect("check"), action == "view");
    }
    // A refusal is an answer, not retried.
    let (r, attempts) = client
        .check_counted(pb::CheckRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn the_client_retries_while_the_server_is_unavailable() {
    // A port nothing listens on yet: connections are refused (UNAVAILABLE)
    // until the server comes up there.
    let port = crate::process::free_port().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    let cfg = test_config(&url);
    let policy = RetryPolicy {
        deadline: Duration::from_secs(2),
        attempts: 8,
        backoff: Duration::from_millis(50),
    };
    let client = CheckClient::connect(&format!("http://127.0.0.1:{port}"), CHECK_KEY, policy)
        .expect("client");
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let app = App::build(&cfg, true).await.expect("build");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the reserved port");
        app.serve(listener, std::future::pending()).await
    });
    let (r, attempts) = client
        .check_counted(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            action: "view".into(),
            resource: Some(res("workflow:w1")),
            ..Default::default()
        })
        .await;
    let d = r.expect("answered once the server is up");
    assert!(!d.allowed, "unknown tenant: denied");
    assert!(attempts > 1, "retried while unavailable: {attempts}");
    server.abort();
}

#[tokio::test]
async fn only_unavailable_is_retried_and_every_attempt_has_a_deadline() {
    let policy = RetryPolicy {
        deadline: Duration::from_millis(50),
        attempts: 5,
        backoff: Duration::from_millis(1),
    };
    for code in [
        Code::InvalidArgument,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::Internal,
    ] {
        let (r, attempts) =
            with_retries(policy, || async { Err::<(), _>(Status::new(code, "x")) }).await;
        assert_eq!(r.unwrap_err().code(), code);
        assert_eq!(attempts, 1, "{code:?} is not retried");
    }
    let (r, attempts) =
        with_retries(policy, || async { Err::<(), _>(Status::unavailable("x")) }).await;
    assert_eq!(r.unwrap_err().code(), Code::Unavailable);
    assert_eq!(attempts, 5, "UNAVAILABLE is retried up to the limit");
    let (r, attempts) = with_retries(policy, || async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<(), Status>(())
    })
    .await;
    assert_eq!(r.unwrap_err().code(), Code::DeadlineExceeded);
    assert_eq!(attempts, 1);
}

/// The client covers what a sibling service calls: BatchCheck, every page
/// of ListAccessible, ListSubjects and Watch (resumable), with an admin key
/// for the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_covers_batches_lists_subjects_and_the_change_feed() {
    use portcullis::client::Client;
    let app = spawn_app().await;
    app.user("alice").await;
    app.resource("folder:f", None).await;
    for i in 0..1_205 {
        app.resource(&format!("workflow:w{i:04}"), Some("folder:f"))
            .await;
    }
    app.grant("alice", "viewer", "folder:f").await;
    let addr = format!("http://{}", app.addr);
    let client = Client::connect(&addr, CHECK_KEY, RetryPolicy::default()).expect("client");

    let batch = client
        .batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items: ["view", "edit"]
                .iter()
                .map(|a| pb::BatchCheckItem {
                    principal_id: "alice".into(),
                    action: (*a).into(),
                    resource: Some(res("workflow:w0001")),
                })
                .collect(),
            ..Default::default()
        })
        .await
        .expect("batch");
    let allowed: Vec<bool> = batch.results.iter().map(|r| r.allowed).collect();
    assert_eq!(allowed, [true, false]);

    let all = client
        .list_all_accessible(TENANT, "alice", "view", "workflow")
        .await
        .expect("every page");
    assert_eq!(
        all.resource_ids.len(),
        1_205,
        "two pages of 1,000 and the rest"
    );
    assert!(all.next_page_token.is_empty());
    assert!(!all.consistency_token.is_empty());
    let subjects = client
        .list_subjects(pb::ListSubjectsRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("workflow:w0007")),
            action: "view".into(),
            ..Default::default()
        })
        .await
        .expect("subjects");
    assert!(subjects.principal_ids.contains(&"alice".to_owned()));

    // The change feed needs an admin key; resuming from a revision replays
    // what came after it.
    let refused = client.watch(TENANT, "").await.expect_err("check key");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let admin = Client::connect(&addr, ADMIN_KEY, RetryPolicy::default()).expect("client");
    let before = app.resource("workflow:x1", None).await;
    let after = app.resource("workflow:x2", None).await;
    let mut feed = admin.watch(TENANT, &before).await.expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(10), feed.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("a revision");
    assert_eq!(first.revision, after);
}

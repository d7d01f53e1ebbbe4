//! The change feed (issue 12): `WatchService.Watch` through the real
//! server on every backend. A client that disconnects and resumes from the
//! last revision it received sees every change exactly once, in order; the
//! stream carries the same row-level changes the replicas apply; access is
//! an admin key's, for its tenants.

use crate::helpers::{code, spawn_app_on, Backend, Bearer, TestApp, ADMIN_KEY, CHECK_KEY, TENANT};
use crate::on_every_backend;
use portcullis::grpc::pb;
use portcullis::grpc::pb::watch_service_client::WatchServiceClient;
use prost_types::value::Kind;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

type Client = WatchServiceClient<InterceptedService<Channel, Bearer>>;

fn client(app: &TestApp, key: &str) -> Client {
    WatchServiceClient::new(InterceptedService::new(
        app.channel.clone(),
        Bearer::new(key).expect("ascii"),
    ))
}

async fn watch(c: &mut Client, after: &str) -> Streaming<pb::WatchResponse> {
    c.watch(pb::WatchRequest {
        tenant_id: TENANT.into(),
        after_revision: after.into(),
    })
    .await
    .expect("watch")
    .into_inner()
}

/// The next revision on the stream, with the `op` of each of its changes.
async fn next(s: &mut Streaming<pb::WatchResponse>) -> (i64, Vec<String>) {
    let r = tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("a revision within 10 s")
        .expect("no error")
        .expect("the stream goes on");
    let ops = r
        .changes
        .iter()
        .map(|c| match c.fields.get("op").and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(op)) => op.clone(),
            other => panic!("a change without `op`: {other:?}"),
        })
        .collect();
    (r.revision.parse().expect("a revision"), ops)
}

fn rev(token: &str) -> i64 {
    token.parse().expect("a revision token")
}

async fn a_watch_resumes_after_a_disconnect_and_sees_every_change_once(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let start = app.resource("workspace:ws", None).await;
    let mut c = client(&app, ADMIN_KEY);
    let mut s = watch(&mut c, &start).await;

    // Writes while the stream is open.
    let mut expected: Vec<(i64, &str)> = vec![
        (
            rev(&app.resource("folder:f1", Some("workspace:ws")).await),
            "resource",
        ),
        (rev(&app.user("alice").await), "principal"),
        (rev(&app.team("ops").await), "team"),
    ];
    app.grant("alice", "editor", "folder:f1").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut s).await);
    }
    let grant = next(&mut s).await;
    assert!(grant.1.contains(&"grant".to_owned()), "{grant:?}");
    let last = grant.0;
    seen.push(grant);
    drop(s); // the client goes away

    // Writes while nobody watches.
    expected.push((last, "grant"));
    expected.push((
        rev(&app.resource("workflow:w1", Some("folder:f1")).await),
        "resource",
    ));
    app.add_member("ops", "alice").await.expect("member");
    let moved = app
        .operator()
        .move_resource(pb::MoveResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(crate::helpers::res("workflow:w1")),
            new_parent: Some(crate::helpers::res("workspace:ws")),
            ..Default::default()
        })
        .await
        .expect("move")
        .into_inner()
        .consistency_token;

    // Resume after the last revision received.
    let mut s = watch(&mut c, &last.to_string()).await;
    loop {
        let r = next(&mut s).await;
        let done = r.0 == rev(&moved);
        seen.push(r);
        if done {
            break;
        }
    }
    let revisions: Vec<i64> = seen.iter().map(|(r, _)| *r).collect();
    let want: Vec<i64> = ((rev(&start) + 1)..=rev(&moved)).collect();
    assert_eq!(revisions, want, "every revision once, in order");
    for (r, op) in &expected {
        let (_, ops) = seen.iter().find(|(x, _)| x == r).expect("seen");
        assert!(
            ops.iter().any(|o| o == op),
            "revision {r}: {ops:?} has `{op}`"
        );
    }
    assert!(seen
        .iter()
        .any(|(_, ops)| ops.contains(&"member_added".to_owned())));
    assert!(seen
        .last()
        .is_some_and(|(_, ops)| ops.contains(&"moved".to_owned())));

    // Nothing more until the next write; then exactly it.
    assert!(
        tokio::time::timeout(Duration::from_millis(600), s.message())
            .await
            .is_err(),
        "no revision without a write"
    );
    let again = rev(&app.resource("workflow:w2", None).await);
    assert_eq!(next(&mut s).await.0, again);

    // From the empty revision: only what comes next.
    let mut fresh = watch(&mut c, "").await;
    let after = rev(&app.user("bob").await);
    assert_eq!(
        next(&mut fresh).await,
        (after, vec!["principal".to_owned()])
    );

    // From revision 0: the whole history, the tenant's creation first.
    let mut all = watch(&mut c, "0").await;
    let (first, ops) = next(&mut all).await;
    assert_eq!(first, 1);
    assert!(ops.contains(&"tenant".to_owned()), "{ops:?}");
}

async fn a_watch_is_an_admin_keys_and_names_bad_input(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let head = app.resource("workspace:ws", None).await;
    let ask = |after: &str, tenant: &str| pb::WatchRequest {
        tenant_id: tenant.into(),
        after_revision: after.into(),
    };
    let refused = client(&app, CHECK_KEY).watch(ask("", TENANT)).await;
    assert_eq!(
        code(refused),
        Code::PermissionDenied,
        "a check key may not watch"
    );
    let mut c = client(&app, ADMIN_KEY);
    let ahead = (rev(&head) + 5).to_string();
    let e = c.watch(ask(&ahead, TENANT)).await.expect_err("ahead");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("after_revision"), "{e:?}");
    let e = c
        .watch(ask("yesterday", TENANT))
        .await
        .expect_err("garbage");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("after_revision"), "{e:?}");
    assert_eq!(code(c.watch(ask("", "nobody-co")).await), Code::NotFound);

    // Streams are bounded per tenant; a closed one gives its place back.
    let max = portcullis::grpc::watch::MAX_STREAMS_PER_TENANT;
    let mut open = Vec::new();
    for _ in 0..max {
        open.push(watch(&mut c, "").await);
    }
    let e = c.watch(ask("", TENANT)).await.expect_err("one too many");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match c.watch(ask("", TENANT)).await {
            Ok(_) => break,
            Err(e)
                if e.code() == Code::ResourceExhausted
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the closed stream's place was not given back: {e:?}"),
        }
    }
}

async fn a_watch_ends_when_the_server_shuts_down(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let mut c = client(&app, ADMIN_KEY);
    let head = app.resource("workspace:ws", None).await;
    let mut s = watch(&mut c, &head).await;
    drop(app); // SIGTERM, as far as the server can tell
    let end = tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("the stream ends within 10 s, not at the end of the grace period");
    let e = end.expect_err("ended with a status");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains(&format!("after_revision {head}")),
        "{e:?}"
    );
}

on_every_backend!(
    a_watch_ends_when_the_server_shuts_down,
    a_watch_resumes_after_a_disconnect_and_sees_every_change_once,
    a_watch_is_an_admin_keys_and_names_bad_input,
);

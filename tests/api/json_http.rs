//! Check, BatchCheck, ListAccessible and ListSubjects as JSON over plain
//! HTTP/1.1 on the gRPC port (issue 12), from a client that is nothing but
//! a TCP socket: the answers are the gRPC answers, errors are Connect
//! errors with HTTP statuses, and nothing else is reachable this way.

use crate::helpers::*;
use portcullis::grpc::pb;
use serde_json::{json, Value};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `POST path` with a JSON body over HTTP/1.1; (status, JSON body).
async fn post(addr: SocketAddr, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("JSON ({e}): {head}\n{body}"));
    (status, v)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

const CHECK: &str = "/portcullis.v1.CheckService/Check";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_over_http_answers_as_grpc_does() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("bob").await;
    app.resource("folder:f", None).await;
    app.resource("workflow:w1", Some("folder:f")).await;
    app.resource("workflow:w2", None).await;
    let g = app.grant("alice", "editor", "folder:f").await;
    let addr = app.addr;

    // Check: the same answer as over gRPC, for each question.
    for (who, action, r) in [
        ("alice", "edit", "w1"),
        ("alice", "edit", "w2"),
        ("bob", "view", "w1"),
        ("nobody", "view", "w1"),
    ] {
        let body = json!({"tenantId": TENANT, "principalId": who, "action": action,
                          "resource": {"type": "workflow", "id": r}, "explain": true});
        let (status, v) = post(addr, CHECK, Some(CHECK_KEY), &body.to_string()).await;
        assert_eq!(status, 200, "{v}");
        let grpc = app.check_full(who, action, &format!("workflow:{r}")).await;
        assert_eq!(v["allowed"], grpc.allowed, "{who} {action} {r}: {v}");
        assert_eq!(
            v["reason"],
            portcullis::grpc::reason_name(grpc.reason),
            "{v}"
        );
        assert_ne!(v["reason"], "REASON_UNSPECIFIED", "a known reason: {v}");
    }
    // Field names as in the proto are read too; the explanation is mapped.
    let (_, v) = post(
        addr,
        CHECK,
        Some(CHECK_KEY),
        r#"{"tenant_id":"acme","principal_id":"alice","action":"edit","resource":{"type":"workflow","id":"w1"},"explain":true}"#,
    )
    .await;
    assert_eq!(v["explanation"]["grantId"], g.id.as_str(), "{v}");
    assert_eq!(
        v["explanation"]["scope"],
        json!({"type": "folder", "id": "f"})
    );

    // A condition reads the typed context of a JSON call; without it the
    // answer names the missing field.
    app.conditional_grant(
        "",
        "bob",
        "viewer",
        "workflow:w2",
        pb::Effect::Allow,
        "request.mfa == true",
    )
    .await
    .expect("conditional grant");
    let ask = |typed: serde_json::Value| {
        json!({"tenantId": TENANT, "principalId": "bob", "action": "view",
               "resource": {"type": "workflow", "id": "w2"}, "typedContext": typed})
        .to_string()
    };
    let (status, v) = post(addr, CHECK, Some(CHECK_KEY), &ask(json!({"mfa": true}))).await;
    assert_eq!((status, v["allowed"].clone()), (200, json!(true)), "{v}");
    let (status, v) = post(addr, CHECK, Some(CHECK_KEY), &ask(json!({}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["reason"], "REASON_CONDITION_CONTEXT_MISSING", "{v}");
    assert_eq!(v["explanation"]["missingContext"], json!(["mfa"]), "{v}");
    let (status, v) = post(addr, CHECK, Some(CHECK_KEY), &ask(json!("not an object"))).await;
    assert_eq!(status, 400, "{v}");

    let (status, v) = post(
        addr,
        "/portcullis.v1.CheckService/BatchCheck",
        Some(CHECK_KEY),
        &json!({"tenantId": TENANT, "items": [
            {"principalId": "alice", "action": "view", "resource": {"type": "workflow", "id": "w1"}},
            {"principalId": "bob", "action": "view", "resource": {"type": "workflow", "id": "w1"}}]})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["allowed"], true);
    assert_eq!(v["results"][1]["allowed"], false);

    let (status, v) = post(
        addr,
        "/portcullis.v1.ListAccessibleService/ListAccessible",
        Some(CHECK_KEY),
        &json!({"tenantId": TENANT, "principalId": "alice", "action": "view",
                "resourceType": "workflow", "pageSize": 10})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let grpc = app.list("alice", "view", "workflow").await;
    let mut listed: Vec<String> = serde_json::from_value(v["resourceIds"].clone()).expect("ids");
    listed.sort();
    assert_eq!(listed, grpc);
    assert_eq!(v["nextPageToken"], "");

    let (status, v) = post(
        addr,
        "/portcullis.v1.ListAccessibleService/ListSubjects",
        Some(CHECK_KEY),
        &json!({"tenantId": TENANT, "resource": {"type": "workflow", "id": "w1"}, "action": "edit"})
            .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["principalIds"], json!(["alice"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_errors_are_connect_errors_and_only_the_four_calls_are_served() {
    let app = spawn_app().await;
    let addr = app.addr;
    let ok = json!({"tenantId": TENANT, "principalId": "alice", "action": "view",
                    "resource": {"type": "workflow", "id": "w1"}})
    .to_string();
    let (status, v) = post(addr, CHECK, None, &ok).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("unauthenticated")),
        "{v}"
    );
    let (status, v) = post(addr, CHECK, Some("not-a-key-0123456789"), &ok).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("unauthenticated")),
        "{v}"
    );

    let (status, v) = post(
        addr,
        CHECK,
        Some(CHECK_KEY),
        r#"{"tenantId":"acme","principalId":"alice","action":"view","resource":{"type":"workflow","id":"w1"},"colour":"red"}"#,
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("invalid_argument")),
        "{v}"
    );
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("colour")),
        "{v}"
    );
    let (status, v) = post(addr, CHECK, Some(CHECK_KEY), "{not json").await;
    assert_eq!(status, 400, "{v}");
    // Validation is the gRPC service's own: the field is named.
    let (status, v) = post(
        addr,
        CHECK,
        Some(CHECK_KEY),
        r#"{"tenantId":"acme","principalId":"","action":"view","resource":{"type":"workflow","id":"w1"}}"#,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("principal_id")),
        "{v}"
    );
    // Admin writes are not reachable as JSON, with any key.
    let (status, v) = post(
        addr,
        "/portcullis.v1.AdminService/CreateGrant",
        Some(OPERATOR_KEY),
        r#"{"tenantId":"acme","subject":{"principalId":"mallory"},"roleId":"owner"}"#,
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (501, Some("unimplemented")),
        "{v}"
    );
    assert!(!app.check("mallory", "view", "workflow:w1").await);
}

//! What operators watch: the Prometheus endpoint, request ids, and
//! OpenTelemetry traces that continue the caller's trace — checked against a
//! real server (and, for traces, a real `portcullis serve` process exporting
//! to an OTLP receiver this test runs on loopback).

use crate::helpers::*;
use crate::process::{database_env, free_port, test_keys_env, ServerProcess};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use portcullis::app::App;
use portcullis::grpc::pb;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over HTTP/1.1; the body.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_owned(), body.to_owned())
}

/// The value of the sample `line_prefix` (name and labels, exactly).
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test]
async fn the_metrics_endpoint_reports_rpcs_decisions_cache_and_database() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    let mut cfg = test_config(&url);
    cfg.metrics.addr = Some("127.0.0.1:0".parse().expect("addr"));
    let app = App::build(&cfg, true).await.expect("build");
    let metrics = app.metrics_addr().expect("metrics bound");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut op = pb::admin_service_client::AdminServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(OPERATOR_KEY).expect("key"),
    );
    op.create_tenant(pb::CreateTenantRequest {
        tenant_id: TENANT.into(),
        display_name: "Acme".into(),
        ..Default::default()
    })
    .await
    .expect("tenant");
    for (p, r) in [("alice", "workflow:w1")] {
        op.create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: p.into(),
            kind: pb::PrincipalKind::User as i32,
            status: pb::PrincipalStatus::Active as i32,
            display_name: p.into(),
            ..Default::default()
        })
        .await
        .expect("principal");
        op.create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res(r)),
            ..Default::default()
        })
        .await
        .expect("resource");
        op.create_grant(pb::CreateGrantRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj(p)),
            role_id: "viewer".into(),
            scope: Some(res(r)),
            ..Default::default()
        })
        .await
        .expect("grant");
    }
    let mut checker = pb::check_service_client::CheckServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(CHECK_KEY).expect("key"),
    );
    let check = |action: &str| pb::CheckRequest {
        tenant_id: TENANT.into(),
        principal_id: "alice".into(),
        action: action.into(),
        resource: Some(res("workflow:w1")),
        ..Default::default()
    };
    for _ in 0..3 {
        assert!(
            checker
                .check(check("view"))
                .await
                .expect("check")
                .into_inner()
                .allowed
        );
    }
    assert!(
        !checker
            .check(check("edit"))
            .await
            .expect("check")
            .into_inner()
            .allowed
    );
    let bad = checker.check(check("Not An Action")).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // A method nobody serves, twice: counted as `unknown`, never by its name.
    for _ in 0..2 {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("ready");
        let codec: tonic_prost::ProstCodec<pb::CheckRequest, pb::CheckResponse> =
            tonic_prost::ProstCodec::default();
        let r = grpc
            .unary(
                tonic::Request::new(pb::CheckRequest::default()),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/portcullis.v1.CheckService/MadeUpMethod",
                ),
                codec,
            )
            .await;
        // Refused before routing (no key) or by it: either way not served.
        let code = r.unwrap_err().code();
        assert!(
            matches!(
                code,
                tonic::Code::Unimplemented | tonic::Code::Unauthenticated
            ),
            "{code:?}"
        );
    }

    let (head, body) = http_get(metrics, "/metrics").await;
    assert!(!body.contains("MadeUpMethod"), "{body}");
    let unknown: f64 = body
        .lines()
        .filter(|l| {
            l.starts_with(
                r#"portcullis_grpc_server_handled_total{grpc_service="unknown",grpc_method="unknown","#,
            )
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    assert_eq!(unknown, 2.0, "{body}");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: application/openmetrics-text"));
    let check_ok = sample(
        &body,
        r#"portcullis_grpc_server_handled_total{grpc_service="portcullis.v1.CheckService",grpc_method="Check",grpc_code="OK"}"#,
    );
    assert_eq!(check_ok, Some(4.0), "{body}");
    let invalid = sample(
        &body,
        r#"portcullis_grpc_server_handled_total{grpc_service="portcullis.v1.CheckService",grpc_method="Check",grpc_code="INVALID_ARGUMENT"}"#,
    );
    assert_eq!(invalid, Some(1.0));
    let latency_count = sample(
        &body,
        r#"portcullis_grpc_server_handling_seconds_count{grpc_service="portcullis.v1.CheckService",grpc_method="Check"}"#,
    );
    assert_eq!(latency_count, Some(5.0));
    assert_eq!(
        sample(
            &body,
            r#"portcullis_decisions_total{result="allow",reason="REASON_GRANTED"}"#
        ),
        Some(3.0)
    );
    assert!(body.contains(r#"portcullis_decisions_total{result="deny""#));
    assert!(sample(&body, r#"portcullis_cache_hits_total{cache="indexes"}"#).unwrap_or(0.0) >= 2.0);
    assert!(
        sample(&body, r#"portcullis_cache_misses_total{cache="indexes"}"#).unwrap_or(0.0) >= 1.0
    );
    assert!(sample(&body, r#"portcullis_cache_entries{cache="subjects"}"#).is_some());
    assert!(sample(
        &body,
        r#"portcullis_cache_evictions_total{cache="resources"}"#
    )
    .is_some());
    assert!(sample(&body, r#"portcullis_db_pool_connections{state="idle"}"#).is_some());
    assert_eq!(
        sample(&body, "portcullis_db_pool_max_connections"),
        Some(5.0)
    );
    assert!(
        sample(
            &body,
            r#"portcullis_db_query_duration_seconds_count{outcome="ok"}"#
        )
        .unwrap_or(0.0)
            > 5.0
    );
    assert!(sample(&body, "portcullis_cache_sync_age_seconds").is_some());
    assert_eq!(sample(&body, "portcullis_revision_lag"), Some(0.0));
    // The decision log is off here: nothing to drop, and the counter shows.
    assert_eq!(
        sample(&body, "portcullis_decision_log_dropped_total"),
        Some(0.0)
    );
    assert!(sample(&body, "portcullis_grpc_in_flight").is_some());
    assert_eq!(
        sample(
            &body,
            &format!(
                r#"portcullis_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    // The standard process metrics, read from /proc: this process's own
    // (the server runs in the test process).
    let rss = sample(&body, "process_resident_memory_bytes").expect("resident memory");
    assert!(rss > 1e6, "resident {rss}");
    assert!(sample(&body, "process_cpu_seconds_total").is_some_and(|s| s > 0.0));
    assert!(sample(&body, "process_open_fds").is_some_and(|n| n >= 3.0));
    assert!(sample(&body, "process_max_fds").is_some_and(|n| n >= 3.0));
    assert!(sample(&body, "process_threads").is_some_and(|n| n >= 1.0));
    let started = sample(&body, "process_start_time_seconds").expect("start time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started} vs {now}"
    );
    // Latency buckets reach past the default 10 s call timeout.
    assert!(
        body.contains(r#"le="13.1072""#),
        "a bucket past 10 s in the latency histogram"
    );
    // Prometheus naming: snake_case, the `portcullis_` prefix (but for the
    // standard `process_*`), counters end in `_total`, units in the name.
    for line in body.lines().filter(|l| l.starts_with("# TYPE")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().expect("name"), parts.next().expect("type"));
        assert!(
            name.starts_with("portcullis_") || name.starts_with("process_"),
            "{line}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{line}"
        );
        if kind == "histogram" {
            assert!(name.ends_with("_seconds"), "{line}");
        }
    }
    assert!(body.trim_end().ends_with("# EOF"));
    // A path that is not a method does not create a label value.
    let (head, _) = http_get(metrics, "/nothing").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app().await;
    let mut c = app.checker();
    let mut req = tonic::Request::new(pb::CheckRequest {
        tenant_id: TENANT.into(),
        principal_id: ADMIN.into(),
        action: "view".into(),
        resource: Some(res("workflow:w1")),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("x-request-id", "caller-chosen-42".parse().expect("ascii"));
    let resp = c.check(req).await.expect("check");
    assert_eq!(
        resp.metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("caller-chosen-42")
    );
    // Made up when the caller sends none, on errors too.
    let err = c.check(pb::CheckRequest::default()).await.unwrap_err();
    let id = err
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id on an error")
        .to_owned();
    let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
    assert_eq!(parsed.get_version_num(), 7, "time-ordered: {id}");
    let again = c.check(pb::CheckRequest::default()).await.unwrap_err();
    assert_ne!(
        again
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(id.as_str()),
        "each call has its own id"
    );
}

// ---- traces -------------------------------------------------------------------

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The value of attribute `key` (a span's or a log record's) as text.
fn attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            Value::BoolValue(b) => Some(b.to_string()),
            _ => None,
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_continues_into_portcullis() {
    // The OTLP receiver.
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let envs = [
        database_env(&url),
        test_keys_env(),
        (
            "PORTCULLIS_TRACING__OTLP_ENDPOINT",
            format!("http://{otlp}"),
        ),
        ("PORTCULLIS_LOG__FILTER", "portcullis=debug,info".to_owned()),
        // Export every 100 ms rather than every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let server = ServerProcess::start(&envs, &[]).await;
    server.create_test_tenant().await;

    // A caller in the middle of its own trace.
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_ID: &str = "00f067aa0ba902b7";
    let mut req = tonic::Request::new(pb::CheckRequest {
        tenant_id: TENANT.into(),
        principal_id: ADMIN.into(),
        action: "manage".into(),
        resource: Some(res("workspace:ws1")),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT_ID}-01")
            .parse()
            .expect("ascii"),
    );
    req.metadata_mut()
        .insert("x-request-id", "trace-test-1".parse().expect("ascii"));
    server.checker().check(req).await.expect("check");

    let deadline = Instant::now() + Duration::from_secs(20);
    let span = loop {
        let found = receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| hex(&s.trace_id) == TRACE_ID)
            .cloned();
        if let Some(s) = found {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no span with the caller's trace id arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        hex(&span.parent_span_id),
        PARENT_ID,
        "the caller's span is the parent"
    );
    assert_eq!(span.name, "portcullis.v1.CheckService/Check");
    assert_eq!(
        attribute(&span.attributes, "tenant").as_deref(),
        Some(TENANT)
    );
    assert_eq!(
        attribute(&span.attributes, "request_id").as_deref(),
        Some("trace-test-1")
    );
    assert!(
        attribute(&span.attributes, "decision").is_some(),
        "{span:?}"
    );
    assert!(
        matches!(
            attribute(&span.attributes, "cache").as_deref(),
            Some("hit" | "miss")
        ),
        "whether the cache answered: {span:?}"
    );
    assert_eq!(
        attribute(&span.attributes, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    // The call's log lines carry its request id.
    let line = server
        .wait_for_log("\"request_id\":\"trace-test-1\"", Duration::from_secs(5))
        .await
        .expect("a log line for the call");
    assert!(line.contains("\"tenant\":\"acme\""), "{line}");
    server
        .wait_for_log("call finished", Duration::from_secs(5))
        .await
        .expect("calls are logged");
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains("call finished") && l.contains("\"request_id\":\"trace-test-1\"")),
        "the call's own line carries its id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_never_blocks_calls() {
    let dead = free_port().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("u.db").display());
    let envs = [
        database_env(&url),
        test_keys_env(),
        (
            "PORTCULLIS_TRACING__OTLP_ENDPOINT",
            format!("http://127.0.0.1:{dead}"),
        ),
        ("PORTCULLIS_TRACING__EXPORT_TIMEOUT_MS", "3000".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ];
    let server = ServerProcess::start(&envs, &[]).await;
    server.create_test_tenant().await;
    let mut c = server.checker();
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        c.check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: ADMIN.into(),
            action: "view".into(),
            resource: Some(res("workspace:ws1")),
            ..Default::default()
        })
        .await
        .expect("check");
        slowest = slowest.max(t.elapsed());
    }
    eprintln!(
        "unreachable collector: 200 checks, slowest {} ms",
        slowest.as_millis()
    );
    // An export waits up to 3 s; no call waited for one.
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
}

/// The decision log: with `decision_log.sink = "file"`, every decision of
/// Check and BatchCheck is a JSON line (tenant, caller, principal, action,
/// resource, answer, reason, grant, condition, missing context, revision,
/// request id); with `sample_rate = 0` none is; a bad setting is refused
/// naming it.
#[tokio::test]
async fn decisions_are_logged_as_json_lines_and_sampled() {
    let path = std::sync::Arc::new(Mutex::new(None));
    let keep = path.clone();
    let app = spawn_configured(Backend::Sqlite, move |cfg, dir| {
        let p = dir.join("decisions.jsonl");
        *keep.lock().unwrap() = Some(p.clone());
        cfg.decision_log.sink = "file".into();
        cfg.decision_log.path = Some(p);
    })
    .await;
    let path = path.lock().unwrap().clone().expect("path");
    create_tenant(&mut app.operator(), TENANT).await;
    app.user("alice").await;
    app.resource("workflow:w1", None).await;
    let g = app
        .conditional_grant(
            "",
            "alice",
            "viewer",
            "workflow:w1",
            pb::Effect::Allow,
            "request.mfa == true",
        )
        .await
        .expect("grant");
    let allowed = app
        .check_with(
            "alice",
            "view",
            "workflow:w1",
            serde_json::json!({"mfa": true}),
        )
        .await;
    assert!(allowed.allowed);
    assert!(!app.check("alice", "view", "workflow:w1").await);
    app.checker()
        .batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items: ["alice", "nobody"]
                .iter()
                .map(|p| pb::BatchCheckItem {
                    principal_id: (*p).into(),
                    action: "view".into(),
                    resource: Some(res("workflow:w1")),
                })
                .collect(),
            typed_context: Some(typed(serde_json::json!({"mfa": true}))),
            ..Default::default()
        })
        .await
        .expect("batch");
    // The writer is asynchronous: wait for the four lines.
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= 4 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let first = &lines[0];
    assert_eq!(first["tenant"], TENANT);
    assert_eq!(first["caller"], "test-check");
    assert_eq!(first["principal"], "alice");
    assert_eq!(first["action"], "view");
    assert_eq!(first["resource"], "workflow:w1");
    assert_eq!(first["allowed"], true);
    assert_eq!(first["reason"], "REASON_GRANTED");
    assert_eq!(first["grant_id"], g.id.as_str());
    assert_eq!(first["condition"], "request.mfa == true");
    assert_eq!(first["condition_outcome"], "held");
    assert!(first["revision"].as_i64().unwrap() > 0);
    assert!(!first["request_id"].as_str().unwrap_or_default().is_empty());
    assert_eq!(lines[1]["reason"], "REASON_CONDITION_CONTEXT_MISSING");
    assert_eq!(lines[1]["missing_context"], serde_json::json!(["mfa"]));
    assert_eq!(lines[1]["condition_outcome"], "context_missing");
    assert_eq!(
        lines[3].get("condition_outcome"),
        None,
        "no condition decided"
    );
    assert_eq!(lines[2]["allowed"], true);
    assert_eq!(lines[3]["principal"], "nobody");
    assert_eq!(lines[3]["reason"], "REASON_UNKNOWN_PRINCIPAL");
    assert_eq!(
        lines[2]["request_id"], lines[3]["request_id"],
        "one batch, one request"
    );

    // Sampled at 0: nothing written.
    let quiet_path = std::sync::Arc::new(Mutex::new(None));
    let keep = quiet_path.clone();
    let quiet = spawn_configured(Backend::Sqlite, move |cfg, dir| {
        let p = dir.join("none.jsonl");
        *keep.lock().unwrap() = Some(p.clone());
        cfg.decision_log.sink = "file".into();
        cfg.decision_log.path = Some(p);
        cfg.decision_log.sample_rate = 0.0;
    })
    .await;
    create_tenant(&mut quiet.operator(), TENANT).await;
    for _ in 0..20 {
        quiet.check(ADMIN, "view", "workflow:none").await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text =
        std::fs::read_to_string(quiet_path.lock().unwrap().clone().unwrap()).unwrap_or_default();
    assert!(text.is_empty(), "{text}");

    // Settings are checked.
    let mut bad = portcullis::config::Config::default();
    bad.decision_log.sink = "file".into();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("decision_log.path"), "{e}");
    bad.decision_log.sink = "syslog".into();
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("decision_log.sink"));
    // OTLP needs a collector: its own, or the one traces go to.
    bad.decision_log.sink = "otlp".into();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("decision_log.otlp_endpoint"), "{e}");
    bad.tracing.otlp_endpoint = Some("http://127.0.0.1:4317".into());
    bad.validate().expect("the tracing collector serves");
    bad.grant_usage.flush_interval_ms = 10;
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("grant_usage.flush_interval_ms"), "{e}");
}

/// Every grant of the tenant with when it last decided a check.
async fn last_uses(app: &TestApp) -> std::collections::HashMap<String, Option<i64>> {
    app.operator()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list grants")
        .into_inner()
        .grants
        .into_iter()
        .map(|g| (g.id, g.last_use_time.map(|t| t.seconds)))
        .collect()
}

/// Access reviews: `ListGrants` shows when each grant last decided a
/// check (the allow that allowed, the deny that denied), written in batches
/// every `grant_usage.flush_interval_ms`; a grant nobody uses shows none.
async fn grants_show_when_they_last_decided_a_check(b: Backend) {
    let app = spawn_configured(b, |cfg, _| {
        cfg.grant_usage.flush_interval_ms = 100;
    })
    .await;
    create_tenant(&mut app.operator(), TENANT).await;
    for u in ["alice", "bob"] {
        app.user(u).await;
    }
    app.resource("workspace:ws", None).await;
    app.resource("workflow:w1", Some("workspace:ws")).await;
    app.resource("workflow:w2", Some("workspace:ws")).await;
    let used = app.grant("alice", "viewer", "workspace:ws").await.id;
    let idle = app.grant("bob", "editor", "workspace:ws").await.id;
    let deny = app.deny("alice", "editor", "workflow:w1").await.id;
    let before = last_uses(&app).await;
    for g in [&used, &idle, &deny] {
        assert_eq!(before.get(g), Some(&None), "{before:?}");
    }

    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(app.check("alice", "view", "workflow:w2").await);
    assert_eq!(
        app.reason("alice", "edit", "workflow:w1").await,
        pb::Reason::ExplicitDeny
    );
    // A denial no grant decided marks nothing.
    assert_eq!(
        app.reason("alice", "delete", "workflow:w2").await,
        pb::Reason::NoGrant
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let uses = loop {
        let uses = last_uses(&app).await;
        if uses[&used].is_some() && uses[&deny].is_some() {
            break uses;
        }
        assert!(Instant::now() < deadline, "never written: {uses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for g in [&used, &deny] {
        let at = uses[g].expect("used");
        assert!(
            (start - 1..=start + 60).contains(&at),
            "{g}: {at} vs {start}"
        );
    }
    assert_eq!(uses[&idle], None, "bob's grant decided nothing");
}

crate::on_every_backend!(grants_show_when_they_last_decided_a_check);

// ---- decision log over OpenTelemetry logs --------------------------------------

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

#[derive(Clone, Default)]
struct LogReceiver {
    records: Arc<Mutex<Vec<LogRecord>>>,
}

#[tonic::async_trait]
impl LogsService for LogReceiver {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut records = self.records.lock().unwrap();
        for rl in req.into_inner().resource_logs {
            for sl in rl.scope_logs {
                records.extend(sl.log_records);
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// With `decision_log.sink = "otlp"`, each decision is an OpenTelemetry
/// log record (event `portcullis.decision`, the JSON line as its body, each
/// field an attribute) exported in batches to the collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_exported_as_opentelemetry_log_records() {
    let receiver = LogReceiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(LogsServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let app = spawn_configured(Backend::Sqlite, move |cfg, _| {
        cfg.decision_log.sink = "otlp".into();
        cfg.decision_log.otlp_endpoint = Some(format!("http://{otlp}"));
    })
    .await;
    create_tenant(&mut app.operator(), TENANT).await;
    app.user("alice").await;
    app.resource("workflow:w1", None).await;
    let g = app.grant("alice", "viewer", "workflow:w1").await.id;
    assert!(app.check("alice", "view", "workflow:w1").await);
    assert!(!app.check("alice", "edit", "workflow:w1").await);

    let deadline = Instant::now() + Duration::from_secs(15);
    let records = loop {
        let records = receiver.records.lock().unwrap().clone();
        if records.len() >= 2 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{} records exported",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let allowed = records
        .iter()
        .find(|r| attribute(&r.attributes, "action").as_deref() == Some("view"))
        .expect("the allowed check");
    assert_eq!(allowed.event_name, "portcullis.decision");
    assert_eq!(
        attribute(&allowed.attributes, "tenant").as_deref(),
        Some(TENANT)
    );
    assert_eq!(
        attribute(&allowed.attributes, "principal").as_deref(),
        Some("alice")
    );
    assert_eq!(
        attribute(&allowed.attributes, "resource").as_deref(),
        Some("workflow:w1")
    );
    assert_eq!(
        attribute(&allowed.attributes, "allowed").as_deref(),
        Some("true")
    );
    assert_eq!(
        attribute(&allowed.attributes, "reason").as_deref(),
        Some("REASON_GRANTED")
    );
    assert_eq!(attribute(&allowed.attributes, "grant_id"), Some(g));
    let body = match allowed.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("body {other:?}"),
    };
    let line: serde_json::Value = serde_json::from_str(&body).expect("the JSON line");
    assert_eq!(line["principal"], "alice");
    let denied = records
        .iter()
        .find(|r| attribute(&r.attributes, "action").as_deref() == Some("edit"))
        .expect("the denied check");
    assert_eq!(
        attribute(&denied.attributes, "allowed").as_deref(),
        Some("false")
    );
    assert_eq!(
        attribute(&denied.attributes, "reason").as_deref(),
        Some("REASON_NO_GRANT")
    );
}

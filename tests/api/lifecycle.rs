//! Faults and restarts, with real `portcullis serve` processes and, for
//! PostgreSQL, a private instance of the test's own (never the shared one):
//! - `kill -9` in the middle of a write load: every acknowledged write and its
//!   audit event is there after a restart, and writes that were cut off are
//!   retried with their request id and applied once (SQLite and PostgreSQL);
//! - the store stopped in the middle of a load: warm checks answer within the
//!   staleness bound, then fail closed; everything else is UNAVAILABLE, never
//!   a wrong allow; readiness goes NOT_SERVING and comes back by itself; no
//!   write is acknowledged that did not commit;
//! - SIGTERM: health NOT_SERVING, new calls refused, calls in flight finish,
//!   exit within the grace period.

use crate::helpers::*;
use crate::process::{database_env, test_keys_env, PrivatePostgres, ServerProcess};
use portcullis::grpc::pb;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

fn env(k: &'static str, v: impl ToString) -> (&'static str, String) {
    (k, v.to_string())
}

// ---- crash and restart ----------------------------------------------------

/// One write of the load: create principal `u{i}`, then grant it `viewer`
/// on the tenant, each with its own request id.
#[derive(Debug, Default)]
struct Ledger {
    /// Request id → revision, for writes acknowledged with OK.
    acknowledged: BTreeMap<String, String>,
    /// Writes that got an error (cut off by the crash), to retry.
    cut_off: Vec<(usize, &'static str)>,
}

fn principal_req(i: usize) -> pb::CreatePrincipalRequest {
    pb::CreatePrincipalRequest {
        tenant_id: TENANT.into(),
        principal_id: format!("u{i}"),
        kind: pb::PrincipalKind::User as i32,
        status: pb::PrincipalStatus::Active as i32,
        display_name: format!("User {i}"),
        request_id: format!("p-{i}"),
        ..Default::default()
    }
}

fn grant_req(i: usize) -> pb::CreateGrantRequest {
    pb::CreateGrantRequest {
        tenant_id: TENANT.into(),
        subject: Some(subj(&format!("u{i}"))),
        role_id: "viewer".into(),
        scope: None,
        request_id: format!("g-{i}"),
        ..Default::default()
    }
}

/// Sends write `(i, kind)`; the revision when acknowledged.
async fn send(
    channel: &tonic::transport::Channel,
    i: usize,
    kind: &'static str,
) -> Result<String, tonic::Status> {
    let mut op = pb::admin_service_client::AdminServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(OPERATOR_KEY).expect("key"),
    );
    let call = async {
        match kind {
            "principal" => op
                .create_principal(principal_req(i))
                .await
                .map(|r| r.into_inner().consistency_token),
            _ => op
                .create_grant(grant_req(i))
                .await
                .map(|r| r.into_inner().consistency_token),
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), call).await {
        Ok(r) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded("test timeout")),
    }
}

async fn crash_and_restart(url: String, label: &str) {
    let envs = [database_env(&url), test_keys_env()];
    let mut server = ServerProcess::start(&envs, &[]).await;
    server.create_test_tenant().await;

    // Four writers, each creating principals and granting them, until the
    // server dies under them.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let channel = server.channel();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (ledger, acked, next, channel) =
            (ledger.clone(), acked.clone(), next.clone(), channel.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                for kind in ["principal", "grant"] {
                    let result = send(&channel, i, kind).await;
                    let id = format!("{}-{i}", &kind[..1]);
                    match result {
                        Ok(revision) => {
                            ledger.lock().unwrap().acknowledged.insert(id, revision);
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            // The grant of a principal that was cut off is
                            // retried with it.
                            let mut l = ledger.lock().unwrap();
                            l.cut_off.push((i, kind));
                            if kind == "principal" {
                                l.cut_off.push((i, "grant"));
                            }
                            return;
                        }
                    }
                }
            }
        }));
    }
    // Kill it mid-load, once a good number of writes are acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 150 {
        assert!(Instant::now() < deadline, "the write load made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let pid = server.pid();
    for w in writers {
        w.await.expect("writer");
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(!ledger.cut_off.is_empty(), "the writers saw the crash");

    // Restart on the same database.
    let restarted = ServerProcess::start(&envs, &[]).await;
    let mut op = restarted.operator();
    // Every acknowledged write is there, with its audit event (same revision).
    let mut audited = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = op
            .list_audit_events(pb::ListAuditEventsRequest {
                tenant_id: TENANT.into(),
                page_size: 1_000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("audit")
            .into_inner();
        audited.extend(page.events.iter().map(|e| e.revision.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut found = 0;
    for (id, revision) in &ledger.acknowledged {
        let i: usize = id[2..].parse().expect("index");
        let present = if id.starts_with('p') {
            op.get_principal(pb::GetPrincipalRequest {
                tenant_id: TENANT.into(),
                principal_id: format!("u{i}"),
                actor_id: String::new(),
            })
            .await
            .is_ok()
        } else {
            grants_of(&mut op, i).await == 1
        };
        assert!(
            present,
            "acknowledged write {id} (revision {revision}) lost after kill -9"
        );
        assert!(
            audited.contains(revision),
            "acknowledged write {id}: no audit event at revision {revision}"
        );
        found += 1;
    }
    // The writes cut off may or may not have committed; retried with their
    // request id, each is applied exactly once.
    let cut_off = ledger.cut_off.len();
    for &(i, kind) in &ledger.cut_off {
        send(&restarted.channel(), i, kind)
            .await
            .unwrap_or_else(|e| panic!("retry of {kind} {i}: {e:?}"));
        if kind == "grant" {
            assert_eq!(grants_of(&mut op, i).await, 1, "grant {i} applied once");
        }
    }
    // Retrying an acknowledged write changes nothing either.
    for (id, revision) in ledger.acknowledged.iter().take(20) {
        let i: usize = id[2..].parse().expect("index");
        let kind = if id.starts_with('p') {
            "principal"
        } else {
            "grant"
        };
        let again = send(&restarted.channel(), i, kind).await.expect("retry");
        assert_eq!(&again, revision, "a retry returns the first answer");
    }
    eprintln!(
        "crash/restart ({label}): kill -9 of pid {pid} under 4 writers; {} writes acknowledged, {found} found with their audit events after restart; {cut_off} cut off, retried with their request ids, each applied once",
        ledger.acknowledged.len()
    );
}

async fn grants_of(
    op: &mut pb::admin_service_client::AdminServiceClient<Authed>,
    i: usize,
) -> usize {
    op.list_grants(pb::ListGrantsRequest {
        tenant_id: TENANT.into(),
        subject: Some(subj(&format!("u{i}"))),
        ..Default::default()
    })
    .await
    .expect("grants")
    .into_inner()
    .grants
    .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    crash_and_restart(url, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_on_postgres() {
    let pg = PrivatePostgres::start_new()
        .await
        .expect("private PostgreSQL");
    crash_and_restart(pg.url(), "PostgreSQL").await;
}

// ---- store outage -----------------------------------------------------------

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    unavailable: usize,
}

impl Tally {
    fn add(&mut self, r: &Result<bool, tonic::Status>) {
        match r {
            Ok(_) => self.ok += 1,
            Err(s) if s.code() == Code::Unavailable => self.unavailable += 1,
            Err(s) => panic!("only answers or UNAVAILABLE, got {s:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_fails_closed_and_recovers_by_itself() {
    const POLL_MS: u64 = 100;
    const STALENESS_MS: u64 = 1_500;
    let pg = PrivatePostgres::start_new()
        .await
        .expect("private PostgreSQL");
    // A password in the URL (trust auth ignores it) to show it never
    // reaches the logs, not even in the outage's connection errors.
    const DB_PASSWORD: &str = "pg-secret-pw-4711";
    let url = pg
        .url()
        .replace("postgres@", &format!("postgres:{DB_PASSWORD}@"));
    let envs = [
        database_env(&url),
        test_keys_env(),
        env("PORTCULLIS_LOG__FILTER", "portcullis=debug,info"),
        env("PORTCULLIS_CACHE__POLL_INTERVAL_MS", POLL_MS),
        env("PORTCULLIS_CACHE__MAX_STALENESS_MS", STALENESS_MS),
        env("PORTCULLIS_DATABASE__CONNECT_TIMEOUT_MS", 500),
    ];
    let server = ServerProcess::start(&envs, &[]).await;
    server.create_test_tenant().await;
    let mut op = server.operator();
    for id in ["alice", "bob"] {
        op.create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: id.into(),
            kind: pb::PrincipalKind::User as i32,
            status: pb::PrincipalStatus::Active as i32,
            display_name: id.into(),
            ..Default::default()
        })
        .await
        .expect("principal");
    }
    op.create_resource(pb::CreateResourceRequest {
        tenant_id: TENANT.into(),
        resource: Some(res("workflow:w1")),
        ..Default::default()
    })
    .await
    .expect("resource");
    op.create_grant(pb::CreateGrantRequest {
        tenant_id: TENANT.into(),
        subject: Some(subj("alice")),
        role_id: "viewer".into(),
        scope: Some(res("workflow:w1")),
        ..Default::default()
    })
    .await
    .expect("grant");
    let server = Arc::new(server);
    let check = {
        let server = server.clone();
        move |subject: String| {
            let mut c = server.checker();
            async move {
                let r = c
                    .check(pb::CheckRequest {
                        tenant_id: TENANT.into(),
                        principal_id: subject,
                        action: "view".into(),
                        resource: Some(res("workflow:w1")),
                        ..Default::default()
                    })
                    .await;
                r.map(|r| r.into_inner().allowed)
            }
        }
    };
    // Warm the cache: alice may view, bob may not.
    assert!(check("alice".into()).await.expect("warm"));
    assert!(!check("bob".into()).await.expect("warm"));

    // The load: warm checks (alice, bob), checks of a new subject each time
    // ("cold": unknown to the tenant, which its index answers from memory
    // like any other question) and writes, all the while; every answer must
    // be right.
    let stop = Arc::new(AtomicBool::new(false));
    type Log = Arc<Mutex<Vec<(Instant, &'static str, Result<bool, tonic::Status>)>>>;
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for worker in 0..3 {
        let (stop, log, check, server) = (stop.clone(), log.clone(), check.clone(), server.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let started = Instant::now();
                let (kind, r) = match worker {
                    0 => ("warm-alice", check("alice".into()).await),
                    1 => ("warm-bob", check("bob".into()).await),
                    _ => {
                        if n % 2 == 0 {
                            ("cold", check(format!("cold-{n}")).await)
                        } else {
                            let r = server
                                .operator()
                                .create_principal(pb::CreatePrincipalRequest {
                                    tenant_id: TENANT.into(),
                                    principal_id: format!("w{n}"),
                                    kind: pb::PrincipalKind::User as i32,
                                    status: pb::PrincipalStatus::Active as i32,
                                    display_name: "w".into(),
                                    request_id: format!("w{n}"),
                                    ..Default::default()
                                })
                                .await;
                            ("write", r.map(|_| true))
                        }
                    }
                };
                log.lock().unwrap().push((started, kind, r));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // Readiness and liveness, sampled all the while.
    let health_log: Arc<Mutex<Vec<(Instant, i32, i32)>>> = Arc::new(Mutex::new(Vec::new()));
    let prober = {
        let (stop, health_log, server) = (stop.clone(), health_log.clone(), server.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let ready = server.health_status("").await.expect("health answers");
                let live = server
                    .health_status(portcullis::app::LIVENESS_SERVICE)
                    .await
                    .expect("health answers");
                health_log
                    .lock()
                    .unwrap()
                    .push((Instant::now(), ready, live));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let down_at = Instant::now();
    pg.stop().await.expect("stop PostgreSQL");
    // Calls sent between `down_at` and here may still have reached it.
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(STALENESS_MS + 1_500)).await;
    let up_at = Instant::now();
    pg.start().await.expect("start PostgreSQL");
    // Back to SERVING by itself.
    let deadline = Instant::now() + Duration::from_secs(15);
    let recovered_at = loop {
        if server.health_status("").await.expect("health") == SERVING {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "readiness did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.expect("load");
    }
    prober.await.expect("prober");

    let log = std::mem::take(&mut *log.lock().unwrap());
    let ms = |t: Instant, from: Instant| t.saturating_duration_since(from).as_millis() as u64;
    let mut during = Tally::default();
    let mut warm_ok_during = 0;
    let mut last_warm_ok_ms = 0;
    let mut acked_writes = Vec::new();
    // `at` is when each call was sent.
    for (at, kind, r) in &log {
        // Never a wrong answer, whatever the store does.
        match (*kind, r) {
            ("warm-alice", Ok(allowed)) => assert!(*allowed, "alice is a viewer"),
            ("warm-bob" | "cold", Ok(allowed)) => assert!(!*allowed, "{kind} is never allowed"),
            _ => {}
        }
        let in_outage = *at > stopped_at && *at < up_at;
        if in_outage {
            during.add(r);
            match (*kind, r) {
                ("warm-alice" | "warm-bob", Ok(_)) => {
                    warm_ok_during += 1;
                    last_warm_ok_ms = last_warm_ok_ms.max(ms(*at, stopped_at));
                }
                ("write", Ok(_)) => panic!("{kind} answered OK with the store down"),
                _ => {}
            }
            // Past the staleness bound (and a poll of slack), warm checks
            // fail closed. Counted from when the stop returned: a poll may
            // still reach the store while it shuts down.
            if ms(*at, stopped_at) > STALENESS_MS + 2 * POLL_MS + 200 {
                assert!(
                    r.as_ref().err().map(|s| s.code()) == Some(Code::Unavailable),
                    "{kind} at {} ms after the store stopped: {r:?}",
                    ms(*at, stopped_at)
                );
            }
        }
        if *kind == "write" && r.is_ok() {
            acked_writes.push(*at);
        }
    }
    assert!(
        warm_ok_during > 0,
        "warm checks keep answering within the staleness bound"
    );
    assert!(
        last_warm_ok_ms <= STALENESS_MS + 2 * POLL_MS + 200,
        "a warm check answered {last_warm_ok_ms} ms after the store stopped"
    );
    // Readiness: NOT_SERVING during the outage, liveness SERVING throughout.
    let health = std::mem::take(&mut *health_log.lock().unwrap());
    let first_not_ready = health
        .iter()
        .find(|(at, ready, _)| *at > down_at && *ready == NOT_SERVING)
        .map(|(at, _, _)| ms(*at, down_at))
        .expect("readiness went NOT_SERVING during the outage");
    assert!(health.iter().all(|(_, _, live)| *live == SERVING));
    // Every write acknowledged is in the store; writes that failed either
    // committed or not, and a retry with their request id settles it once.
    let mut op = server.operator();
    let written = op
        .list_principals(pb::ListPrincipalsRequest {
            tenant_id: TENANT.into(),
            page_size: 1_000,
            ..Default::default()
        })
        .await
        .expect("principals")
        .into_inner()
        .principals
        .into_iter()
        .filter(|p| p.id.starts_with('w'))
        .count();
    assert!(written >= acked_writes.len());
    // And the service is whole again.
    assert!(check("alice".into()).await.expect("after recovery"));
    // A wrong key is refused without being echoed.
    const WRONG_KEY: &str = "wrong-key-0123456789-abcdef";
    let refused = pb::check_service_client::CheckServiceClient::with_interceptor(
        server.channel(),
        Bearer::new(WRONG_KEY).expect("key"),
    )
    .check(pb::CheckRequest::default())
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(!refused.message().contains(WRONG_KEY));
    // No secret in any log line: keys, the wrong key, the database password.
    let logs = server.logs();
    assert!(logs.len() > 20, "the outage was logged");
    for line in &logs {
        for secret in [OPERATOR_KEY, ADMIN_KEY, CHECK_KEY, WRONG_KEY, DB_PASSWORD] {
            assert!(!line.contains(secret), "secret in the log: {line}");
        }
    }
    eprintln!(
        "store outage (private PostgreSQL stopped {} ms): {} calls during it, {} answered ({} warm, the last {} ms in), {} UNAVAILABLE, 0 wrong; readiness NOT_SERVING after {} ms, SERVING again {} ms after restart; {} writes acknowledged, all present; {} log lines, no secret in any",
        ms(up_at, down_at),
        during.ok + during.unavailable,
        during.ok,
        warm_ok_during,
        last_warm_ok_ms,
        during.unavailable,
        first_not_ready,
        ms(recovered_at, up_at),
        acked_writes.len(),
        logs.len(),
    );
}

// ---- graceful shutdown --------------------------------------------------------

fn heavy_batch(salt: usize) -> pb::BatchCheckRequest {
    pb::BatchCheckRequest {
        tenant_id: TENANT.into(),
        items: (0..5_000)
            .map(|i| pb::BatchCheckItem {
                principal_id: format!("s{salt}-{i}"),
                action: "view".into(),
                resource: Some(res(&format!("workflow:w{i}"))),
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_calls_in_flight_and_refuses_new_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let envs = [
        database_env(&url),
        test_keys_env(),
        env("PORTCULLIS_GRPC__SHUTDOWN_GRACE_MS", 10_000),
        // The heavy batches take seconds on a loaded machine; the default
        // 10 s call limit is not what this test is about.
        env("PORTCULLIS_GRPC__REQUEST_TIMEOUT_MS", 60_000),
        // Without the index, every item of a batch reads the store: calls
        // that stay in flight long enough to be drained.
        env("PORTCULLIS_CACHE__MAX_BYTES", 0),
    ];
    let mut server = ServerProcess::start(&envs, &[]).await;
    server.create_test_tenant().await;
    assert_eq!(server.health_status("").await.expect("health"), SERVING);

    // How long one heavy cold batch takes here.
    let t = Instant::now();
    server
        .checker()
        .batch_check(heavy_batch(99))
        .await
        .expect("warm-up batch");
    let one = t.elapsed();
    eprintln!("one heavy batch: {} ms", one.as_millis());
    // Calls in flight: heavy cold batches.
    let in_flight: Vec<_> = (0..4)
        .map(|i| {
            let mut c = server.checker();
            tokio::spawn(async move { c.batch_check(heavy_batch(i)).await })
        })
        .collect();
    tokio::time::sleep(one / 4).await;
    let signalled = Instant::now();
    server.sigterm();
    // Health turns NOT_SERVING and new calls are refused while they finish.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = server
            .health_status("")
            .await
            .expect("health still answers");
        if status == NOT_SERVING {
            break;
        }
        assert!(Instant::now() < deadline, "health did not turn NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let refused = server
        .checker()
        .check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: ADMIN.into(),
            action: "view".into(),
            resource: Some(res("workflow:w1")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let still_running = in_flight.iter().filter(|t| !t.is_finished()).count();
    for t in in_flight {
        let results = t
            .await
            .expect("task")
            .expect("a call in flight at SIGTERM finishes")
            .into_inner()
            .results;
        assert_eq!(results.len(), 5_000);
    }
    let status = server
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exits after draining");
    assert!(status.success(), "{status:?}");
    eprintln!(
        "graceful shutdown: 4 calls in flight at SIGTERM ({still_running} still running when a new call was refused), all finished; exit {:?} after {} ms",
        status.code(),
        signalled.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_grace_period() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
    let envs = [
        database_env(&url),
        test_keys_env(),
        env("PORTCULLIS_GRPC__SHUTDOWN_GRACE_MS", 200),
    ];
    let mut server = ServerProcess::start(&envs, &[]).await;
    server.create_test_tenant().await;
    // More work in flight than the grace period allows.
    let in_flight: Vec<_> = (0..8)
        .map(|i| {
            let mut c = server.checker();
            tokio::spawn(async move { c.batch_check(heavy_batch(i)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let signalled = Instant::now();
    server.sigterm();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits");
    let took = signalled.elapsed();
    for t in in_flight {
        let _ = t.await;
    }
    eprintln!(
        "grace period 200 ms: exit {:?} after {} ms",
        status.code(),
        took.as_millis()
    );
    assert!(
        took < Duration::from_millis(200 + 100 + 800),
        "exit within the grace period (plus 100 ms for connections to close, and process teardown): {took:?}"
    );
}

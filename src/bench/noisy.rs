//! The noisy-neighbour scenario (`portcullis bench --scenario noisy`): one
//! tenant builds the most expensive role graph the server accepts and
//! hammers it, while another tenant's checks and the health service are
//! measured. It shows that
//! - a role graph past the limits (8 roles per level, each inheriting all 8
//!   of the level below, 9 levels deep) is refused when written;
//! - a decision over the deepest and widest graph that is accepted stays
//!   cheap (each inherited role is judged once per question);
//! - while four maximal `BatchCheck`s and a load of normal checks of that
//!   tenant run without pause, the other tenant's checks keep their latency
//!   and no health check is missed.

use super::{check_req, row, Client, Row};
use crate::auth::Bearer;
use crate::engine::authorizer::MAX_BATCH;
use crate::grpc::pb;
use pb::admin_service_client::AdminServiceClient;
use pb::check_service_client::CheckServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The noisy tenant.
const NOISY: &str = "noisy";
/// Workflows of the noisy tenant.
const NOISY_WORKFLOWS: usize = 200;
/// The principal holding the adversarial roles.
const VICTIM: &str = "mallory";
/// A health check slower than this counts as missed (Kubernetes' default
/// probe timeout is one second).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

type Admin = AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// How far a role graph of `width` roles per level got before a write was
/// refused.
struct Graph {
    width: usize,
    levels: usize,
    top: String,
    refusal: String,
}

fn role(id: &str, permissions: Vec<String>, inherits: Vec<String>) -> pb::Role {
    pb::Role {
        id: id.to_owned(),
        display_name: id.to_owned(),
        permissions,
        inherits,
        effective_at: vec!["*".into()],
        ..Default::default()
    }
}

/// Creates levels of `width` roles, each inheriting every role of the level
/// below, until the server refuses one (or `max_levels`).
async fn build_graph(admin: &mut Admin, width: usize, max_levels: usize) -> Result<Graph, String> {
    let mut below: Vec<String> = Vec::new();
    let mut refusal = "none".to_owned();
    let mut levels = 0;
    'levels: for level in 0..max_levels {
        let mut this = Vec::new();
        for i in 0..width {
            let id = format!("w{width}_l{level}_r{i}");
            let r = admin
                .create_role(pb::CreateRoleRequest {
                    tenant_id: NOISY.into(),
                    role: Some(role(
                        &id,
                        vec![format!("workflow.a{level}_{i}")],
                        below.clone(),
                    )),
                    ..Default::default()
                })
                .await;
            match r {
                Ok(_) => this.push(id),
                Err(s) => {
                    refusal = format!("{:?}: {}", s.code(), s.message());
                    break 'levels;
                }
            }
        }
        below = this;
        levels = level + 1;
    }
    Ok(Graph {
        width,
        levels,
        top: below.first().cloned().unwrap_or_default(),
        refusal,
    })
}

/// Sets up the noisy tenant; returns the graphs it built.
async fn seed_noisy(admin: &mut Admin) -> Result<Vec<Graph>, String> {
    let e = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
    admin
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: NOISY.into(),
            display_name: "Noisy".into(),
            creator_owner_types: vec!["project".into()],
            ..Default::default()
        })
        .await
        .map_err(e)?;
    admin
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: NOISY.into(),
            principal_id: VICTIM.into(),
            kind: pb::PrincipalKind::User as i32,
            status: pb::PrincipalStatus::Active as i32,
            ..Default::default()
        })
        .await
        .map_err(e)?;
    let resource = |t: &str, id: &str| pb::ResourceRef {
        r#type: t.into(),
        id: id.into(),
    };
    admin
        .create_resource(pb::CreateResourceRequest {
            tenant_id: NOISY.into(),
            resource: Some(resource("workspace", "ws")),
            ..Default::default()
        })
        .await
        .map_err(e)?;
    for i in 0..NOISY_WORKFLOWS {
        admin
            .create_resource(pb::CreateResourceRequest {
                tenant_id: NOISY.into(),
                resource: Some(resource("workflow", &format!("wf{i}"))),
                parent: Some(resource("workspace", "ws")),
                ..Default::default()
            })
            .await
            .map_err(e)?;
    }
    // The graph (8 wide, 9 deep) and a narrower, deeper one.
    let mut graphs = Vec::new();
    for (width, max_levels) in [(8, 9), (4, 16)] {
        let g = build_graph(admin, width, max_levels).await?;
        admin
            .create_grant(pb::CreateGrantRequest {
                tenant_id: NOISY.into(),
                subject: Some(pb::SubjectRef {
                    kind: Some(pb::subject_ref::Kind::PrincipalId(VICTIM.into())),
                }),
                role_id: g.top.clone(),
                scope: Some(resource("workspace", "ws")),
                effect: pb::Effect::Allow as i32,
                ..Default::default()
            })
            .await
            .map_err(e)?;
        graphs.push(g);
    }
    Ok(graphs)
}

/// An adversarial question: a random workflow, and an action only the
/// deepest roles give, or one no role gives (every role is looked at).
fn adversarial(rng: &mut StdRng) -> (String, String) {
    let wf = format!("wf{}", rng.random_range(0..NOISY_WORKFLOWS));
    let action = if rng.random_bool(0.5) {
        format!("a0_{}", rng.random_range(0..4))
    } else {
        "delete".to_owned()
    };
    (wf, action)
}

fn noisy_check(wf: &str, action: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant_id: NOISY.into(),
        ..check_req(VICTIM, wf, action)
    }
}

fn noisy_batch(rng: &mut StdRng) -> pb::BatchCheckRequest {
    let items = (0..MAX_BATCH)
        .map(|_| {
            let (wf, action) = adversarial(rng);
            pb::BatchCheckItem {
                principal_id: VICTIM.into(),
                action,
                resource: Some(pb::ResourceRef {
                    r#type: "workflow".into(),
                    id: wf,
                }),
            }
        })
        .collect();
    pb::BatchCheckRequest {
        tenant_id: NOISY.into(),
        items,
        ..Default::default()
    }
}

/// Checks of the quiet tenant (`bench`) at `concurrency` in flight for
/// `duration`.
async fn quiet_load(
    client: Client,
    users: Arc<Vec<String>>,
    workflows: Arc<Vec<String>>,
    concurrency: usize,
    duration: Duration,
) -> Result<Vec<u32>, String> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let (mut c, users, workflows) = (client.clone(), users.clone(), workflows.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + i as u64);
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let u = &users[rng.random_range(0..users.len())];
                let w = &workflows[rng.random_range(0..workflows.len())];
                let t = Instant::now();
                c.check(check_req(u, w, "view"))
                    .await
                    .map_err(|s| format!("quiet tenant check: {s}"))?;
                lat.push(t.elapsed().as_micros() as u32);
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok(lat)
}

/// Health checks every 20 ms until `stop`; latencies and misses (an error, a
/// status other than SERVING, or no answer within [`HEALTH_TIMEOUT`]).
async fn probe_health(channel: Channel, stop: Arc<AtomicBool>) -> (Vec<u32>, usize) {
    let mut health = HealthClient::new(channel);
    let (mut lat, mut missed) = (Vec::new(), 0);
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let answer = tokio::time::timeout(
            HEALTH_TIMEOUT,
            health.check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await;
        lat.push(t.elapsed().as_micros() as u32);
        let serving = matches!(
            answer,
            Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32
        );
        missed += usize::from(!serving);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (lat, missed)
}

/// What the noisy tenant's load saw.
#[derive(Default)]
struct Noise {
    batches: AtomicUsize,
    batch_micros: std::sync::Mutex<Vec<u32>>,
    checks: AtomicUsize,
    busy: AtomicUsize,
}

/// Four loops of maximal adversarial `BatchCheck`s and `checkers` loops of
/// adversarial single checks on the noisy tenant, until `stop`.
fn start_noise(
    channels: &[Channel],
    bearer: &Bearer,
    checkers: usize,
    stop: &Arc<AtomicBool>,
    noise: &Arc<Noise>,
) -> Vec<tokio::task::JoinHandle<Result<(), String>>> {
    let mut tasks = Vec::new();
    for i in 0..4 + checkers {
        let mut c = CheckServiceClient::with_interceptor(
            channels[i % channels.len()].clone(),
            bearer.clone(),
        );
        let (stop, noise) = (stop.clone(), noise.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(1_000 + i as u64);
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let r = if i < 4 {
                    c.batch_check(noisy_batch(&mut rng)).await.map(|_| ())
                } else {
                    let (wf, action) = adversarial(&mut rng);
                    c.check(noisy_check(&wf, &action)).await.map(|_| ())
                };
                match r {
                    Ok(()) if i < 4 => {
                        noise.batches.fetch_add(1, Ordering::Relaxed);
                        let us = t.elapsed().as_micros() as u32;
                        noise
                            .batch_micros
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(us);
                    }
                    Ok(()) => {
                        noise.checks.fetch_add(1, Ordering::Relaxed);
                    }
                    // Its share used up: the noisy tenant is asked to back off.
                    Err(s) if s.code() == Code::ResourceExhausted => {
                        noise.busy.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(s) => return Err(format!("noisy tenant: {s}")),
                }
            }
            Ok(())
        }));
    }
    tasks
}

async fn channel(addr: &str) -> Result<Channel, String> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// The measured side: the quiet tenant's checks and the health probes, from
/// a thread and runtime of their own (as from another service), so that
/// generating the noisy load does not delay them on the client side.
#[derive(Clone)]
struct Quiet {
    addr: String,
    bearer: Bearer,
    users: Arc<Vec<String>>,
    workflows: Arc<Vec<String>>,
    duration: Duration,
}

impl Quiet {
    /// Quiet checks at 4 in flight and health checks every 20 ms for the
    /// duration: the check latencies, the health latencies and the misses.
    async fn measure(self) -> Result<(Vec<u32>, Vec<u32>, usize), String> {
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let r = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(self.run()));
            let _ = done.send(r);
        });
        result
            .await
            .map_err(|_| "the measuring thread died".to_owned())?
    }

    async fn run(self) -> Result<(Vec<u32>, Vec<u32>, usize), String> {
        let checks = CheckServiceClient::with_interceptor(channel(&self.addr).await?, self.bearer);
        let stop = Arc::new(AtomicBool::new(false));
        let prober = tokio::spawn(probe_health(channel(&self.addr).await?, stop.clone()));
        let lat = quiet_load(checks, self.users, self.workflows, 4, self.duration).await;
        stop.store(true, Ordering::SeqCst);
        let (health, missed) = prober.await.map_err(|e| e.to_string())?;
        Ok((lat?, health, missed))
    }
}

/// Runs the scenario against the server at `addr`, whose `bench` tenant
/// holds the standard dataset (`users` and `workflows` of it are asked
/// about).
pub async fn run(
    addr: &str,
    bearer: &Bearer,
    users: Vec<String>,
    workflows: Vec<String>,
    duration: Duration,
) -> Result<Vec<Row>, String> {
    // The noisy tenant's calls come over connections of their own, as they
    // would from another service.
    let noisy_channels = vec![channel(addr).await?, channel(addr).await?];
    let mut admin = AdminServiceClient::with_interceptor(noisy_channels[0].clone(), bearer.clone());
    let started = Instant::now();
    let graphs = seed_noisy(&mut admin).await?;
    println!(
        "seeded tenant `{NOISY}` through the API in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for g in &graphs {
        println!(
            "role graph {} wide: {} levels accepted (top role `{}`); next write: {}",
            g.width, g.levels, g.top, g.refusal
        );
    }
    let (users, workflows) = (Arc::new(users), Arc::new(workflows));
    let mut rows = Vec::new();

    // Alone: one adversarial question at a time, then one maximal batch.
    let mut c = CheckServiceClient::with_interceptor(noisy_channels[0].clone(), bearer.clone());
    let mut rng = StdRng::seed_from_u64(9);
    let (mut lat, t0) = (Vec::new(), Instant::now());
    while t0.elapsed() < duration / 2 {
        let (wf, action) = adversarial(&mut rng);
        let t = Instant::now();
        c.check(noisy_check(&wf, &action))
            .await
            .map_err(|s| s.to_string())?;
        lat.push(t.elapsed().as_micros() as u32);
    }
    rows.push(row(
        "Check over the deepest accepted role graph, alone",
        lat,
        t0.elapsed(),
        "1 in flight".into(),
    ));
    let (mut lat, t0) = (Vec::new(), Instant::now());
    while t0.elapsed() < duration / 2 {
        let t = Instant::now();
        c.batch_check(noisy_batch(&mut rng))
            .await
            .map_err(|s| s.to_string())?;
        lat.push(t.elapsed().as_micros() as u32);
    }
    rows.push(row(
        &format!("BatchCheck of {MAX_BATCH} over that graph, alone"),
        lat,
        t0.elapsed(),
        "1 in flight".into(),
    ));

    // The quiet tenant with nobody else.
    let t0 = Instant::now();
    let quiet = Quiet {
        addr: addr.to_owned(),
        bearer: bearer.clone(),
        users: users.clone(),
        workflows: workflows.clone(),
        duration,
    };
    let (lat, _, _) = quiet.clone().measure().await?;
    rows.push(row(
        "Quiet tenant Check, 4 in flight, no other load",
        lat,
        t0.elapsed(),
        String::new(),
    ));

    // And while the noisy tenant pushes as hard as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let noise = Arc::new(Noise::default());
    let noisy_tasks = start_noise(&noisy_channels, bearer, 32, &stop, &noise);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let measured = quiet.measure().await;
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    for t in noisy_tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let (quiet_lat, health_lat, missed) = measured?;
    let batches =
        std::mem::take(&mut *noise.batch_micros.lock().unwrap_or_else(|p| p.into_inner()));
    rows.push(row(
        &format!("Noisy tenant BatchCheck of {MAX_BATCH}, 4 loops"),
        batches,
        elapsed,
        format!(
            "with {} adversarial checks; {} calls refused `tenant_busy`",
            noise.checks.load(Ordering::Relaxed),
            noise.busy.load(Ordering::Relaxed)
        ),
    ));
    rows.push(row(
        "Quiet tenant Check, 4 in flight, under that load",
        quiet_lat,
        elapsed,
        String::new(),
    ));
    rows.push(row(
        "Health check every 20 ms, under that load",
        health_lat,
        elapsed,
        format!("{missed} missed (error, not SERVING, or over 1 s)"),
    ));
    Ok(rows)
}

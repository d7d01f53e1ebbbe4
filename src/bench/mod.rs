//! bench: `portcullis bench` seeds a dataset, starts a real server process
//! (pinned to one core with `taskset` when available), drives it over gRPC
//! and prints throughput, latency percentiles and the server's peak memory.

mod conditions;
pub mod dataset;
mod import;
mod index;
mod noisy;
mod served;

use crate::auth::Bearer;
use crate::grpc::pb;
use crate::store::sql::SqlStore;
use crate::store::Catalog;
use dataset::{Dataset, Shape};
use pb::check_service_client::CheckServiceClient;
use pb::list_accessible_service_client::ListAccessibleServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// `standard` or `large`.
    pub dataset: String,
    /// `standard` (the phases below) or `noisy` (see [`noisy`]).
    pub scenario: String,
    /// Database URL; a fresh SQLite file when `None`.
    pub database_url: Option<String>,
    /// Seconds per throughput phase.
    pub duration: Duration,
    /// Requests in flight in the throughput phase.
    pub concurrency: usize,
    /// HTTP/2 connections.
    pub connections: usize,
    /// CPU core for the server (`taskset -c`); `None` leaves it unpinned.
    pub server_core: Option<usize>,
}

/// One measured phase.
#[derive(Debug, Clone)]
pub struct Row {
    /// Phase name.
    pub name: String,
    /// Calls made.
    pub calls: usize,
    /// Calls per second.
    pub per_second: f64,
    /// Latencies in microseconds, sorted.
    pub latencies: Vec<u32>,
    /// A note (answer sizes, allowed ratio).
    pub note: String,
}

impl Row {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies[i]) / 1000.0
    }
}

fn row(name: &str, mut latencies: Vec<u32>, elapsed: Duration, note: String) -> Row {
    latencies.sort_unstable();
    Row {
        name: name.to_owned(),
        calls: latencies.len(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies,
        note,
    }
}

/// A server child process, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

fn start_server(url: &str, key: &str, core: Option<usize>) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let taskset = core.filter(|_| Command::new("taskset").arg("--version").output().is_ok());
    let mut cmd = match taskset {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    cmd.arg("serve")
        .arg("--no-migrate")
        .env("PORTCULLIS_DATABASE__URL", url)
        .env("PORTCULLIS_GRPC__ADDR", "127.0.0.1:0")
        .env(
            "PORTCULLIS_API_KEYS",
            format!("[{{name=\"bench\",key=\"{key}\",scope=\"operator\"}}]"),
        )
        .env("PORTCULLIS_LOG__FORMAT", "json")
        .env(
            "PORTCULLIS_LOG__FILTER",
            "warn,portcullis::app=info,portcullis::cache::indexes=info,portcullis::admin::bulk=info",
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let stderr = child.stderr.take().ok_or("no server stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if line.contains("serving gRPC") {
            let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
            addr = v["fields"]["addr"].as_str().map(str::to_owned);
            break;
        }
        eprintln!("server: {line}");
    }
    // Keep draining the server's log so that it never blocks on a full pipe;
    // show when a tenant's index is built.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("tenant index") || line.contains("tenant import") {
                eprintln!("server: {line}");
            }
        }
    });
    let addr = addr.ok_or("the server exited before serving")?;
    Ok(Server { child, addr })
}

type Client = CheckServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;
type Lister =
    ListAccessibleServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

const TENANT: &str = "bench";

fn check_req(user: &str, workflow: &str, action: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant_id: TENANT.into(),
        principal_id: user.into(),
        action: action.into(),
        resource: Some(pb::ResourceRef {
            r#type: "workflow".into(),
            id: workflow.into(),
        }),
        ..Default::default()
    }
}

const ACTIONS: [&str; 3] = ["view", "edit", "execute"];

/// Runs the whole benchmark and prints its table.
pub async fn run(opts: BenchOptions) -> Result<Vec<Row>, String> {
    if !["standard", "noisy", "index", "import", "conditions"].contains(&opts.scenario.as_str()) {
        return Err(format!(
            "unknown scenario `{}` (standard, noisy, index, import or conditions)",
            opts.scenario
        ));
    }
    let shape = match opts.dataset.as_str() {
        "standard" => Shape::STANDARD,
        "large" => Shape::LARGE,
        other => return Err(format!("unknown dataset `{other}` (standard or large)")),
    };
    if opts.scenario == "index" {
        let rows = index::run(shape, opts.database_url.as_deref()).await?;
        print_table(&opts, &rows, None);
        return Ok(rows);
    }
    let url = match &opts.database_url {
        Some(u) => u.clone(),
        None => {
            let path = std::env::temp_dir().join(format!("portcullis-bench-{}.db", opts.dataset));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}?mode=rwc", path.display())
        }
    };
    let store = SqlStore::connect(&url, 4, std::time::Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    if opts.scenario == "conditions" {
        drop(store);
        let rows = conditions::run(&url, opts.server_core, opts.concurrency, opts.duration).await?;
        print_table(&opts, &rows, None);
        return Ok(rows);
    }
    if opts.scenario == "import" {
        drop(store);
        let rows = import::run(shape, &url, opts.server_core).await?;
        print_table(&opts, &rows, None);
        return Ok(rows);
    }
    let first_pk = store.max_resource_pk().await.map_err(|e| e.to_string())?;
    let mut data: Dataset = dataset::generate(TENANT, shape, first_pk, 42);
    if store
        .tenant(TENANT)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!(
            "the database at {url} already holds tenant `{TENANT}`; use an empty one"
        ));
    }
    let started = Instant::now();
    store
        .bulk_load(&data.bulk)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "seeded `{}`: {} resources ({} workflows), {} principals, {} teams, {} grants in {:.1} s",
        opts.dataset,
        data.bulk.resources.len(),
        data.workflows.len(),
        data.bulk.principals.len(),
        data.bulk.teams.len(),
        data.bulk.grants.len(),
        started.elapsed().as_secs_f64()
    );
    drop(store);

    let key = crate::auth::generate_key();
    let server = start_server(&url, &key, opts.server_core)?;
    let bearer = Bearer::new(&key).ok_or("bad key")?;
    let mut channels = Vec::new();
    for _ in 0..opts.connections.max(1) {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        channels.push(ch);
    }
    let client = |i: usize| -> Client {
        CheckServiceClient::with_interceptor(channels[i % channels.len()].clone(), bearer.clone())
    };
    let lister = ListAccessibleServiceClient::with_interceptor(channels[0].clone(), bearer.clone());
    if opts.scenario == "noisy" {
        let users = data.hot_users.clone();
        let rows = noisy::run(&server.addr, &bearer, users, data.workflows, opts.duration).await?;
        let (hwm, rss) = server.memory();
        print_table(&opts, &rows, Some((hwm, rss)));
        return Ok(rows);
    }
    let mut rows = vec![served::first_call(&data, &mut client(0)).await?];
    let (_, after_load) = server.memory();

    let homes = warm(&mut data, &mut client(0), &lister).await?;

    rows.push(check_load(&data, &homes, &client, opts.concurrency, opts.duration).await?);
    let mut single = check_load(&data, &homes, &client, 1, opts.duration / 2).await?;
    single.name = "Check, warm, 1 in flight".into();
    rows.push(single);
    rows.push(batch_load(&data, client(0), opts.duration / 2).await?);
    rows.push(list_load(&lister, &data.user_500, 50).await?);
    rows.push(list_load(&lister, &data.user_5000, 20).await?);
    rows.push(served::first_page(&lister, &data.user_5000, 50).await?);
    rows.push(served::paging(&lister, &data.admin, 50_000, 5).await?);
    rows.push(cold_checks(&data, client(0)).await?);
    // 1% of the warm check rate as writes.
    let rate = rows[1].per_second / 100.0;
    let admin = pb::admin_service_client::AdminServiceClient::with_interceptor(
        channels[0].clone(),
        bearer.clone(),
    );
    rows.push(served::mixed(&data, &homes, &client, admin.clone(), rate, opts.duration).await?);
    rows.push(served::denied_everywhere(&data, &lister, admin, 200).await?);
    println!(
        "server resident after the tenant's first call: {:.1} MiB ({} resources)",
        after_load as f64 / 1024.0,
        data.bulk.resources.len()
    );

    let (hwm, rss) = server.memory();
    print_table(&opts, &rows, Some((hwm, rss)));
    let mut operator = pb::operator_service_client::OperatorServiceClient::with_interceptor(
        channels[0].clone(),
        bearer.clone(),
    );
    if let Ok(s) = operator.get_cache_stats(pb::GetCacheStatsRequest {}).await {
        let s = s.into_inner();
        for (name, c) in [
            ("subjects", s.subjects),
            ("resources", s.resources),
            ("roles", s.roles),
            ("indexes", s.indexes),
        ] {
            let c = c.unwrap_or_default();
            println!(
                "cache {name}: {} hits, {} misses, {} evictions, {} entries",
                c.hits, c.misses, c.evictions, c.entries
            );
        }
    }
    Ok(rows)
}

/// Warms the cache: every hot user once, each checked workflow once; returns
/// each hot user's visible workflows. Checks ask about (at most) 10,000
/// workflows spread over the tenant (`data.workflows` is cut down to them).
async fn warm(
    data: &mut Dataset,
    c: &mut Client,
    lister: &Lister,
) -> Result<std::sync::Arc<Vec<Vec<String>>>, String> {
    // Checks ask about (at most) 10,000 workflows spread over the tenant;
    // warm the cache with every hot user once and each of those once.
    let step = (data.workflows.len() / 10_000).max(1);
    data.workflows = data.workflows.iter().step_by(step).cloned().collect();
    for chunk in data.workflows.chunks(1_000) {
        let items = chunk
            .iter()
            .map(|w| pb::BatchCheckItem {
                principal_id: data.hot_users[0].clone(),
                action: "view".into(),
                resource: Some(pb::ResourceRef {
                    r#type: "workflow".into(),
                    id: w.clone(),
                }),
            })
            .collect();
        c.batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    // Each hot user's visible workflows: half of the checks ask about those,
    // as a service does after showing a list.
    let mut homes = Vec::new();
    let mut l = lister.clone();
    for u in &data.hot_users {
        c.check(check_req(u, &data.workflows[0], "view"))
            .await
            .map_err(|e| e.to_string())?;
        let visible = l
            .list_accessible(pb::ListAccessibleRequest {
                tenant_id: TENANT.into(),
                principal_id: u.clone(),
                action: "view".into(),
                resource_type: "workflow".into(),
                page_size: 10_000,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .resource_ids;
        homes.push(visible);
    }
    Ok(std::sync::Arc::new(homes))
}

async fn check_load(
    data: &Dataset,
    homes: &std::sync::Arc<Vec<Vec<String>>>,
    client: &dyn Fn(usize) -> Client,
    concurrency: usize,
    duration: Duration,
) -> Result<Row, String> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let mut c = client(i);
        let users = data.hot_users.clone();
        let workflows = data.workflows.clone();
        let homes = homes.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut lat = Vec::new();
            let mut allowed = 0usize;
            while Instant::now() < deadline {
                let u = rng.random_range(0..users.len());
                let home = &homes[u];
                let wf = if !home.is_empty() && rng.random_bool(0.5) {
                    &home[rng.random_range(0..home.len())]
                } else {
                    &workflows[rng.random_range(0..workflows.len())]
                };
                let req = check_req(&users[u], wf, ACTIONS[rng.random_range(0..ACTIONS.len())]);
                let t = Instant::now();
                let r = c.check(req).await.map_err(|e| e.to_string())?;
                lat.push(t.elapsed().as_micros() as u32);
                allowed += usize::from(r.into_inner().allowed);
            }
            Ok::<_, String>((lat, allowed))
        }));
    }
    let mut lat = Vec::new();
    let mut allowed = 0;
    for t in tasks {
        let (l, a) = t.await.map_err(|e| e.to_string())??;
        lat.extend(l);
        allowed += a;
    }
    let elapsed = start.elapsed();
    let note = format!(
        "{:.0}% allowed",
        100.0 * allowed as f64 / lat.len().max(1) as f64
    );
    Ok(row(
        &format!("Check, warm, {concurrency} in flight"),
        lat,
        elapsed,
        note,
    ))
}

async fn batch_load(data: &Dataset, mut c: Client, duration: Duration) -> Result<Row, String> {
    let mut rng = StdRng::seed_from_u64(7);
    let start = Instant::now();
    let mut lat = Vec::new();
    while start.elapsed() < duration {
        let items = (0..100)
            .map(|_| pb::BatchCheckItem {
                principal_id: data.hot_users[rng.random_range(0..data.hot_users.len())].clone(),
                action: ACTIONS[rng.random_range(0..ACTIONS.len())].into(),
                resource: Some(pb::ResourceRef {
                    r#type: "workflow".into(),
                    id: data.workflows[rng.random_range(0..data.workflows.len())].clone(),
                }),
            })
            .collect();
        let t = Instant::now();
        c.batch_check(pb::BatchCheckRequest {
            tenant_id: TENANT.into(),
            items,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        lat.push(t.elapsed().as_micros() as u32);
    }
    Ok(row(
        "BatchCheck of 100, 1 in flight",
        lat,
        start.elapsed(),
        String::new(),
    ))
}

async fn list_load(lister: &Lister, user: &str, times: usize) -> Result<Row, String> {
    let mut lister = lister.clone();
    let start = Instant::now();
    let mut lat = Vec::new();
    let mut size = 0;
    for _ in 0..times {
        let t = Instant::now();
        let r = lister
            .list_accessible(pb::ListAccessibleRequest {
                tenant_id: TENANT.into(),
                principal_id: user.into(),
                action: "view".into(),
                resource_type: "workflow".into(),
                page_size: 10_000,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        lat.push(t.elapsed().as_micros() as u32);
        size = r.resource_ids.len();
    }
    Ok(row(
        &format!("ListAccessible, {size} workflows"),
        lat,
        start.elapsed(),
        format!("user `{user}`"),
    ))
}

async fn cold_checks(data: &Dataset, mut c: Client) -> Result<Row, String> {
    let start = Instant::now();
    let mut lat = Vec::new();
    for (i, u) in data.cold_users.iter().take(500).enumerate() {
        let wf = &data.workflows[(i * 7919) % data.workflows.len()];
        let t = Instant::now();
        c.check(check_req(u, wf, "view"))
            .await
            .map_err(|e| e.to_string())?;
        lat.push(t.elapsed().as_micros() as u32);
    }
    Ok(row(
        "Check, first for a principal (cold)",
        lat,
        start.elapsed(),
        "each principal asked once".into(),
    ))
}

fn print_table(opts: &BenchOptions, rows: &[Row], server_kib: Option<(u64, u64)>) {
    println!();
    if server_kib.is_some() {
        println!(
            "dataset `{}`, {} connections, {:?} per throughput phase, server core {:?}",
            opts.dataset, opts.connections, opts.duration, opts.server_core
        );
    } else {
        println!("dataset `{}`, in process", opts.dataset);
    }
    println!();
    println!("| phase | calls | calls/s | p50 ms | p90 ms | p99 ms | p99.9 ms | note |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            r.name,
            r.calls,
            r.per_second,
            r.pct(0.50),
            r.pct(0.90),
            r.pct(0.99),
            r.pct(0.999),
            r.note
        );
    }
    if let Some((hwm_kib, rss_kib)) = server_kib {
        println!();
        println!(
            "server memory: peak resident {:.1} MiB, resident at end {:.1} MiB",
            hwm_kib as f64 / 1024.0,
            rss_kib as f64 / 1024.0
        );
    }
}

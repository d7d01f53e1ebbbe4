//! metrics: Prometheus metrics (prometheus-client), served as text on their
//! own port (`metrics.addr`, path `/metrics`), apart from gRPC so that
//! NetworkPolicy can open them to the monitoring namespace only.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `portcullis_grpc_server_handled_total` | counter | `grpc_service`, `grpc_method`, `grpc_code` |
//! | `portcullis_grpc_server_handling_seconds` | histogram | `grpc_service`, `grpc_method` |
//! | `portcullis_decisions_total` | counter | `result` (`allow`/`deny`), `reason` |
//! | `portcullis_decision_log_dropped_total` | counter | |
//! | `portcullis_db_query_duration_seconds` | histogram | `outcome` (`ok`/`error`) |
//! | `portcullis_db_pool_connections` | gauge | `state` (`idle`/`in_use`) |
//! | `portcullis_db_pool_max_connections` | gauge | |
//! | `portcullis_cache_hits_total`, `_misses_total`, `_evictions_total` | counter | `cache` |
//! | `portcullis_cache_entries` | gauge | `cache` |
//! | `portcullis_cache_sync_age_seconds` | gauge | |
//! | `portcullis_revision_lag` | gauge | |
//! | `portcullis_grpc_in_flight` | gauge | |
//! | `portcullis_build_info` | gauge (1) | `version` |

use crate::cache::{CacheStats, CounterSnapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Labels of an RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    grpc_service: String,
    grpc_method: String,
}

/// Labels of a finished RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandledLabels {
    grpc_service: String,
    grpc_method: String,
    grpc_code: &'static str,
}

/// Labels of a decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    result: &'static str,
    reason: &'static str,
}

/// Labels of a database statement.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    outcome: &'static str,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 50 µs to ~13 s: past the default call timeout (10 s), so that the
    // slowest calls land in a bucket of their own rather than in `+Inf`.
    exponential_buckets(0.000_05, 2.0, 19)
}

/// A served method (or `unknown`): its labels, its span name and, once
/// used, its metric handles, so that recording a call hashes no labels.
#[derive(Debug)]
pub struct Method {
    /// The service, `package.Service`.
    pub service: String,
    /// The method.
    pub method: String,
    /// `package.Service/Method`, the name of the call's span.
    pub name: String,
    handling: OnceLock<Histogram>,
    handled: [OnceLock<Counter>; CODES.len() + 1],
}

impl Method {
    fn new(service: &str, method: &str) -> Self {
        Self {
            service: service.to_owned(),
            method: method.to_owned(),
            name: format!("{service}/{method}"),
            handling: OnceLock::new(),
            handled: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

/// The methods the server serves, by path, from the encoded descriptor set
/// of its services; any other path is labelled `unknown`, so callers cannot
/// grow the label set.
fn known_methods(descriptors: &[u8]) -> HashMap<String, Arc<Method>> {
    use prost::Message;
    let mut known = HashMap::new();
    let mut add = |service: &str, method: &str| {
        known.insert(
            format!("/{service}/{method}"),
            Arc::new(Method::new(service, method)),
        );
    };
    if let Ok(set) = prost_types::FileDescriptorSet::decode(descriptors) {
        for file in &set.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                for m in &service.method {
                    add(&name, m.name());
                }
            }
        }
    }
    for (service, method) in [
        ("grpc.health.v1.Health", "Check"),
        ("grpc.health.v1.Health", "Watch"),
        (
            "grpc.reflection.v1.ServerReflection",
            "ServerReflectionInfo",
        ),
        (
            "grpc.reflection.v1alpha.ServerReflection",
            "ServerReflectionInfo",
        ),
    ] {
        add(service, method);
    }
    known
}

/// The metrics the server records as it works.
#[derive(Clone)]
pub struct Metrics {
    known: Arc<HashMap<String, Arc<Method>>>,
    unknown: Arc<Method>,
    handled: Family<HandledLabels, Counter>,
    handling: Family<RpcLabels, Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    queries: Family<QueryLabels, Histogram>,
    log_dropped: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// gRPC status code names, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl Metrics {
    /// Empty metrics for the services described by `descriptors` (an
    /// encoded `FileDescriptorSet`).
    pub fn new(descriptors: &[u8]) -> Self {
        Self {
            known: Arc::new(known_methods(descriptors)),
            unknown: Arc::new(Method::new("unknown", "unknown")),
            handled: Family::default(),
            handling: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            decisions: Family::default(),
            queries: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            log_dropped: Counter::default(),
        }
    }

    /// The counter of decisions the decision log dropped (its writer was
    /// behind), for the log to count into.
    pub fn decision_log_dropped(&self) -> Counter {
        self.log_dropped.clone()
    }

    /// The method of a path (`/package.Service/Method`), or `unknown` for a
    /// path the server does not serve.
    pub fn method(&self, path: &str) -> &Arc<Method> {
        self.known.get(path).unwrap_or(&self.unknown)
    }

    /// Records a finished call of `m`: its gRPC status code and duration.
    pub fn rpc(&self, m: &Method, code: i32, seconds: f64) {
        // Codes past the known ones count as `UNKNOWN`, in the last slot.
        let slot = usize::try_from(code)
            .ok()
            .filter(|c| *c < CODES.len())
            .unwrap_or(CODES.len());
        m.handled[slot]
            .get_or_init(|| {
                let labels = HandledLabels {
                    grpc_service: m.service.clone(),
                    grpc_method: m.method.clone(),
                    grpc_code: CODES.get(slot).copied().unwrap_or("UNKNOWN"),
                };
                self.handled.get_or_create(&labels).clone()
            })
            .inc();
        m.handling
            .get_or_init(|| {
                let labels = RpcLabels {
                    grpc_service: m.service.clone(),
                    grpc_method: m.method.clone(),
                };
                self.handling.get_or_create(&labels).clone()
            })
            .observe(seconds);
    }

    /// Records a decision and its reason code.
    pub fn decision(&self, allowed: bool, reason: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                result: if allowed { "allow" } else { "deny" },
                reason,
            })
            .inc();
    }

    /// Records a database statement.
    pub fn query(&self, seconds: f64, failed: bool) {
        self.queries
            .get_or_create(&QueryLabels {
                outcome: if failed { "error" } else { "ok" },
            })
            .observe(seconds);
    }

    /// The registry to scrape: these metrics and the live gauges read from
    /// `sources` at scrape time.
    pub fn registry(&self, sources: Sources) -> Registry {
        // `process_*` as every Prometheus client names them, unprefixed.
        let mut root = Registry::default();
        root.register_collector(Box::new(Process));
        let r = root.sub_registry_with_prefix("portcullis");
        r.register(
            "grpc_server_handled",
            "RPCs completed, by method and gRPC status code",
            self.handled.clone(),
        );
        r.register_with_unit(
            "grpc_server_handling",
            "RPC latency, from the request headers to the last byte of the answer",
            Unit::Seconds,
            self.handling.clone(),
        );
        r.register(
            "decisions",
            "Check and BatchCheck decisions, by result and reason",
            self.decisions.clone(),
        );
        r.register(
            "decision_log_dropped",
            "Decisions the decision log dropped because its writer was behind",
            self.log_dropped.clone(),
        );
        r.register_with_unit(
            "db_query_duration",
            "Database statement latency",
            Unit::Seconds,
            self.queries.clone(),
        );
        r.register_collector(Box::new(Live(sources)));
        root
    }
}

/// The standard `process_*` metrics, read from `/proc/self` at scrape time
/// (Linux; elsewhere nothing is reported).
#[derive(Debug)]
struct Process;

/// Clock ticks per second of `/proc`'s times (`sysconf(_SC_CLK_TCK)`, which
/// is 100 on every Linux this runs on; reading it would take `unsafe`).
const CLOCK_TICKS: f64 = 100.0;

/// What the process metrics are made of.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    start_time_seconds: f64,
    open_fds: i64,
    max_fds: i64,
    threads: i64,
}

impl ProcessStats {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // `pid (comm) state ...`: fields counted from the state, after the
        // command name (which may hold spaces and parentheses).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
                .map(|k| k * 1024)
        };
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
            })
            .unwrap_or(0);
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / CLOCK_TICKS,
            resident_bytes: kib("VmRSS:")?,
            virtual_bytes: kib("VmSize:")?,
            start_time_seconds: boot + field(22)? / CLOCK_TICKS,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64),
            max_fds,
            threads: field(20)? as i64,
        })
    }
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let e = &mut encoder;
        single(
            e,
            "process_cpu_seconds",
            "User and system CPU time spent",
            None,
            ConstCounter::new(p.cpu_seconds),
        )?;
        single(
            e,
            "process_resident_memory_bytes",
            "Resident memory size",
            None,
            ConstGauge::new(p.resident_bytes),
        )?;
        single(
            e,
            "process_virtual_memory_bytes",
            "Virtual memory size",
            None,
            ConstGauge::new(p.virtual_bytes),
        )?;
        single(
            e,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch",
            None,
            ConstGauge::new(p.start_time_seconds),
        )?;
        single(
            e,
            "process_open_fds",
            "Open file descriptors",
            None,
            ConstGauge::new(p.open_fds),
        )?;
        single(
            e,
            "process_max_fds",
            "Most open file descriptors allowed",
            None,
            ConstGauge::new(p.max_fds),
        )?;
        single(
            e,
            "process_threads",
            "OS threads",
            None,
            ConstGauge::new(p.threads),
        )
    }
}

/// A value read at scrape time.
pub type Gauge<T> = Arc<dyn Fn() -> T + Send + Sync>;

/// Where the live gauges come from, handed in by `app` (so that metrics know
/// no store, cache or gRPC type).
#[derive(Clone)]
pub struct Sources {
    /// Counters of every cache.
    pub cache: Gauge<CacheStats>,
    /// Time since the cache last read every tenant's revision.
    pub sync_age: Gauge<std::time::Duration>,
    /// Revisions the most lagging tenant was behind at the last poll.
    pub revision_lag: Gauge<u64>,
    /// Database connections: (open, idle, most).
    pub pool: Gauge<(u32, u32, u32)>,
    /// RPCs in flight.
    pub in_flight: Gauge<u32>,
}

/// Values read at scrape time.
struct Live(Sources);

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

fn family<M: EncodeMetric, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(L, M)],
) -> Result<(), std::fmt::Error> {
    let Some((_, first)) = rows.first() else {
        return Ok(());
    };
    let mut f = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, metric) in rows {
        metric.encode(f.encode_family(labels)?)?;
    }
    Ok(())
}

fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: M,
) -> Result<(), std::fmt::Error> {
    let m = encoder.encode_descriptor(name, help, unit, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let stats = (self.0.cache)();
        let caches: [(&'static str, CounterSnapshot); 4] = [
            ("subjects", stats.subjects),
            ("resources", stats.resources),
            ("roles", stats.roles),
            ("indexes", stats.indexes),
        ];
        let counter = |pick: fn(&CounterSnapshot) -> u64| {
            caches
                .iter()
                .map(|(name, c)| (CacheLabel { cache: name }, ConstCounter::new(pick(c))))
                .collect::<Vec<_>>()
        };
        family(
            e,
            "cache_hits",
            "Cache lookups answered from memory",
            &counter(|c| c.hits),
        )?;
        family(
            e,
            "cache_misses",
            "Cache lookups that read the store",
            &counter(|c| c.misses),
        )?;
        family(
            e,
            "cache_evictions",
            "Cache entries dropped for capacity",
            &counter(|c| c.evictions),
        )?;
        let entries: Vec<_> = caches
            .iter()
            .map(|(name, c)| {
                (
                    CacheLabel { cache: name },
                    ConstGauge::new(c.entries as i64),
                )
            })
            .collect();
        family(e, "cache_entries", "Entries held by each cache", &entries)?;
        let (size, idle, max) = (self.0.pool)();
        family(
            e,
            "db_pool_connections",
            "Database connections of the pool, by state",
            &[
                (
                    StateLabel { state: "idle" },
                    ConstGauge::new(i64::from(idle)),
                ),
                (
                    StateLabel { state: "in_use" },
                    ConstGauge::new(i64::from(size.saturating_sub(idle))),
                ),
            ],
        )?;
        single(
            e,
            "db_pool_max_connections",
            "Most connections the pool opens",
            None,
            ConstGauge::new(i64::from(max)),
        )?;
        single(
            e,
            "cache_sync_age",
            "Time since this replica last read every tenant's revision from the store",
            Some(&Unit::Seconds),
            ConstGauge::new((self.0.sync_age)().as_secs_f64()),
        )?;
        single(
            e,
            "revision_lag",
            "Most revisions any tenant was behind the newest write when last polled, before catching up",
            None,
            ConstGauge::new((self.0.revision_lag)() as i64),
        )?;
        single(
            e,
            "grpc_in_flight",
            "RPCs being handled now (health checks excluded)",
            None,
            ConstGauge::new(i64::from((self.0.in_flight)())),
        )?;
        family(
            e,
            "build_info",
            "Always 1; the labels describe the build",
            &[(
                VersionLabel {
                    version: env!("CARGO_PKG_VERSION"),
                },
                ConstGauge::new(1),
            )],
        )
    }
}

/// The text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    render(&registry),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

//! app: wires config, store, authorizer and gRPC services together.
//! `App::build` connects and migrates; `App::serve` serves a listener until
//! the shutdown future completes, so tests bind port 0 and need no sleeps.

use crate::admin::{Admin, OnCommit};
use crate::auth::Credentials;
use crate::cache::{CacheSettings, CacheStats, CachedStore};
use crate::config::{Config, GrpcConfig, KeyScope};
use crate::engine::authorizer::Authorizer;
use crate::error::{Error, Result};
use crate::grpc::admin::AdminApi;
use crate::grpc::admission::Admission;
use crate::grpc::check::CheckApi;
use crate::grpc::fairness::TenantShares;
use crate::grpc::json::JsonLayer;
use crate::grpc::observe::Observe;
use crate::grpc::operator::OperatorApi;
use crate::grpc::pb;
use crate::grpc::watch::WatchApi;
use crate::metrics::{Gauge, Metrics, Sources};
use crate::store::sql::SqlStore;
use crate::tls::ReloadingTls;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// Largest request message accepted (a full BatchCheck fits easily).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Largest TenantService message (an apply carries a whole tenant file; an
/// import sends many messages).
pub const MAX_TENANT_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Health service names: `""` and each Portcullis service report
/// readiness (the store is reachable and the server is not shutting down);
/// `liveness` reports SERVING for as long as the process serves.
pub const LIVENESS_SERVICE: &str = "liveness";

const READINESS_SERVICES: [&str; 6] = [
    "",
    "portcullis.v1.CheckService",
    "portcullis.v1.ListAccessibleService",
    "portcullis.v1.AdminService",
    "portcullis.v1.OperatorService",
    "portcullis.v1.WatchService",
];

/// Why the server could not start or keep serving: configuration, the
/// store, a listener. Distinct from [`Error`], which answers requests.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration value is unusable; `field` names it.
    #[error("invalid `{field}`: {message}")]
    Config {
        /// The setting.
        field: String,
        /// Why.
        message: String,
    },
    /// The store could not be reached or migrated.
    #[error("store: {0}")]
    Store(Error),
    /// An address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Server(String),
}

impl StartupError {
    fn config(field: &str, message: impl Into<String>) -> Self {
        StartupError::Config {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// A built application, ready to serve.
#[derive(Debug)]
pub struct App {
    store: SqlStore,
    log_db: LogDb,
    actor_tokens: Option<crate::auth::ActorTokens>,
    credentials: Credentials,
    cache: CacheSettings,
    grpc: GrpcConfig,
    tls: Option<Arc<ReloadingTls>>,
    metrics: Metrics,
    metrics_listener: Option<TcpListener>,
    /// Plaintext grpc.health.v1 only, for probes that cannot speak TLS.
    health_listener: Option<TcpListener>,
    /// The database as the startup line names it (password redacted).
    database: String,
    /// Where decisions are logged (off by default).
    decision_log: crate::config::DecisionLogConfig,
    grant_usage: crate::config::GrantUsageConfig,
    tracing_cfg: crate::config::TracingConfig,
}

impl App {
    /// Connects to the store and, unless `migrate` is false, migrates it.
    pub async fn build(config: &Config, migrate: bool) -> Result<Self, StartupError> {
        let mut store = SqlStore::connect(
            config.database.url.expose(),
            config.database.max_connections,
            Duration::from_millis(config.database.connect_timeout_ms),
        )
        .await
        .map_err(StartupError::Store)?;
        let metrics = Metrics::new(pb::FILE_DESCRIPTOR_SET);
        let m = metrics.clone();
        store.observe_queries(move |seconds, failed| m.query(seconds, failed));
        if migrate {
            store.migrate().await.map_err(StartupError::Store)?;
        }
        let metrics_listener = bind_extra("metrics", config.metrics.addr).await?;
        let health_listener = bind_extra("health", config.grpc.health_addr).await?;
        let actor_tokens = match &config.actor_tokens.public_key_file {
            None => None,
            Some(path) => {
                let pem = read_pem("actor_tokens.public_key_file", path)?;
                let t = &config.actor_tokens;
                Some(
                    crate::auth::ActorTokens::new(
                        &t.algorithm,
                        &pem,
                        t.issuer.as_deref(),
                        t.max_lifetime_s,
                    )
                    .map_err(|e| StartupError::config("actor_tokens.public_key_file", e))?,
                )
            }
        };
        Ok(Self {
            store,
            log_db: LogDb {
                url: config.database.url.clone(),
                timeout: Duration::from_millis(config.database.connect_timeout_ms),
            },
            actor_tokens,
            credentials: Credentials::new(&config.api_keys, &config.tls.clients),
            cache: config.cache.settings(),
            grpc: config.grpc.clone(),
            tls: {
                let tls =
                    ReloadingTls::load(&config.tls).map_err(|e| StartupError::config("tls", e))?;
                if let Some(t) = &tls {
                    t.watch(Duration::from_millis(config.tls.reload_interval_ms));
                }
                tls
            },
            metrics,
            metrics_listener,
            health_listener,
            decision_log: config.decision_log.clone(),
            grant_usage: config.grant_usage.clone(),
            tracing_cfg: config.tracing.clone(),
            database: config.database.redacted_url(),
        })
    }

    /// Where `GET /metrics` is served, when configured.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The store (for tests and tools).
    pub fn store(&self) -> &SqlStore {
        &self.store
    }

    /// Serves every service on `listener` until `shutdown` completes, then
    /// lets calls in flight finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let startup = self.startup_line(&listener);
        let (health, health_service) = tonic_health::server::health_reporter();
        let (reflection_v1, reflection_v1alpha) = reflection()?;

        let cache = CachedStore::new(self.store.clone(), self.cache);
        // Know every tenant's revision before the first check.
        cache.catch_up(None).await.map_err(StartupError::Store)?;
        let (poll_stop, poll_stopped) = tokio::sync::oneshot::channel::<()>();
        // Subscribed before the poller starts, so no change is missed.
        let cache_reachable = cache.reachable();
        let poller = spawn_poller(cache.clone(), self.log_db.clone(), poll_stopped).await?;
        let authz = Arc::new(Authorizer::new(cache.clone()));
        let shares = TenantShares::new(
            self.grpc.max_in_flight_per_tenant,
            self.grpc.max_queued_per_tenant,
        );
        let (check_api, (uses_stop, uses_flusher)) = self.check_api(authz, shares.clone()).await?;
        let (on_commit, cache_stats) = cache_hooks(&cache);
        let admin_api = AdminApi::new(
            Admin::new(self.store.clone(), on_commit),
            self.actor_tokens.clone(),
            shares,
        );
        let operator = InterceptedService::new(
            pb::operator_service_server::OperatorServiceServer::new(OperatorApi::new(
                cache_stats.clone(),
            )),
            self.credentials.interceptor(KeyScope::Operator),
        );
        let check = InterceptedService::new(
            pb::check_service_server::CheckServiceServer::new(check_api.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            self.credentials.interceptor(KeyScope::Check),
        );
        let list = InterceptedService::new(
            pb::list_accessible_service_server::ListAccessibleServiceServer::new(check_api)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            self.credentials.interceptor(KeyScope::Check),
        );
        let tenant = InterceptedService::new(
            pb::tenant_service_server::TenantServiceServer::new(admin_api.clone())
                .max_decoding_message_size(MAX_TENANT_MESSAGE_BYTES),
            self.credentials.interceptor(KeyScope::Admin),
        );
        let admin = InterceptedService::new(
            pb::admin_service_server::AdminServiceServer::new(admin_api)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            self.credentials.interceptor(KeyScope::Admin),
        );
        let (watch_stop, watch_stopped) = tokio::sync::watch::channel(false);
        let watch = InterceptedService::new(
            pb::watch_service_server::WatchServiceServer::new(WatchApi::new(
                self.store.clone(),
                self.cache.poll_interval,
                watch_stopped,
            )),
            self.credentials.interceptor(KeyScope::Admin),
        );

        let admission = Admission::with_bulk_timeout(
            self.grpc.max_in_flight,
            Duration::from_millis(self.grpc.request_timeout_ms),
            Duration::from_millis(self.grpc.bulk_request_timeout_ms),
        );
        let grace = Duration::from_millis(self.grpc.shutdown_grace_ms);
        let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = self.metrics_listener.map(|listener| {
            let registry = Arc::new(self.metrics.registry(sources(
                &self.store,
                &cache,
                cache_stats.clone(),
                &admission,
            )));
            tokio::spawn(crate::metrics::serve(listener, registry, async {
                let _ = metrics_stopped.await;
            }))
        });
        let (shutting_down, readiness) = start_health(&health, cache_reachable).await;

        startup();
        let draining = Arc::new(tokio::sync::Notify::new());
        let signal = drain(
            shutdown,
            Drain {
                shutting_down,
                health: health.clone(),
                admission: admission.clone(),
                draining: draining.clone(),
                watches: watch_stop,
                grace,
            },
        );
        let (health_stop, health_server) =
            spawn_health_port(self.health_listener, health_service.clone());
        let router = tonic::transport::Server::builder()
            // HTTP/1.1 as well as HTTP/2, for the JSON form of the calls.
            .accept_http1(true)
            .layer(Observe::new(self.metrics.clone()))
            .layer(admission.clone())
            .layer(JsonLayer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(check)
            .add_service(list)
            .add_service(admin)
            .add_service(tenant)
            .add_service(watch)
            .add_service(operator);
        let mut server: std::pin::Pin<
            Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send + '_>,
        > = match self.tls {
            // TLS ours (src/tls.rs), so that its files can be reloaded.
            Some(tls) => {
                Box::pin(router.serve_with_incoming_shutdown(tls.incoming(listener), signal))
            }
            // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add
            // ~40 ms to every message that spans several segments (batches,
            // lists).
            None => Box::pin(router.serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                signal,
            )),
        };
        // The grace period bounds the whole shutdown, however slow the
        // connections are to close.
        let served = tokio::select! {
            r = &mut server => r.map_err(|e| StartupError::Server(e.to_string())),
            () = grace_over(&draining, grace) => Ok(()),
        };
        readiness.abort();
        let _ = metrics_stop.send(());
        let _ = poll_stop.send(());
        let _ = health_stop.send(());
        // The last uses gathered reach the store (bounded: a store that is
        // down costs them, not the shutdown).
        let _ = uses_stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), uses_flusher).await;
        if let Some(h) = health_server {
            let _ = h.await;
        }
        stop_background(metrics_server, poller).await;
        served
    }
}

impl App {
    /// The check services with what they record on the side: the decision
    /// log, and the grant uses (with the stop of their flusher and its task).
    async fn check_api(
        &self,
        authz: Arc<Authorizer<CachedStore<SqlStore>>>,
        shares: TenantShares,
    ) -> Result<(CheckApi<CachedStore<SqlStore>>, Flusher), StartupError> {
        let dropped = self.metrics.decision_log_dropped();
        let decisions =
            crate::decision_log::DecisionLog::start(&self.decision_log, &self.tracing_cfg, dropped)
                .await
                .map_err(|e| StartupError::config("decision_log", e.to_string()))?;
        let uses = crate::grant_use::GrantUse::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let flusher = uses.spawn(
            self.store.clone(),
            Duration::from_millis(self.grant_usage.flush_interval_ms),
            stopped,
        );
        let api = CheckApi::new(authz, self.metrics.clone(), shares)
            .with_decision_log(decisions)
            .with_grant_use(uses);
        Ok((api, (stop, flusher)))
    }

    /// What the startup line says (the version, revision, backend, the
    /// database with secrets redacted, every address), to be logged once
    /// the server is about to serve. Tests and tools read the bound address
    /// from it.
    fn startup_line(&self, listener: &TcpListener) -> impl FnOnce() {
        let addr =
            |a: Option<std::net::SocketAddr>| a.map_or_else(|| "off".to_owned(), |a| a.to_string());
        let grpc = addr(listener.local_addr().ok());
        let metrics = addr(self.metrics_addr());
        let health = addr(
            self.health_listener
                .as_ref()
                .and_then(|l| l.local_addr().ok()),
        );
        let tls = self.tls.is_some();
        let database = self.database.clone();
        move || {
            tracing::info!(
                addr = %grpc,
                tls,
                metrics_addr = %metrics,
                health_addr = %health,
                version = env!("CARGO_PKG_VERSION"),
                revision = env!("PORTCULLIS_GIT_REVISION"),
                backend = if database.starts_with("sqlite:") { "sqlite" } else { "postgres" },
                database = %database,
                "serving gRPC"
            );
        }
    }
}

/// The listener of an extra port (`what`: metrics, health), when configured.
async fn bind_extra(
    what: &str,
    addr: Option<std::net::SocketAddr>,
) -> Result<Option<TcpListener>, StartupError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| StartupError::Bind {
            addr: format!("{what} address {addr}"),
            source,
        })
}

/// The plaintext health port, when configured: the same health service (so
/// it turns NOT_SERVING at shutdown like the main port), nothing else. It
/// stops when the sender is used (last, after the main port).
fn spawn_health_port(
    listener: Option<TcpListener>,
    service: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> (
    tokio::sync::oneshot::Sender<()>,
    Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = listener.map(|listener| {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        )
    });
    (stop, server)
}

/// Health turns SERVING and readiness then follows the store: SERVING while
/// polls reach it (the store is migrated, App::build, before anything
/// reports SERVING). The flag is held while readiness is set, so that the
/// store coming back cannot turn readiness SERVING again once shutdown has
/// set NOT_SERVING.
async fn start_health(
    health: &HealthReporter,
    reachable: tokio::sync::watch::Receiver<bool>,
) -> (Arc<tokio::sync::Mutex<bool>>, tokio::task::JoinHandle<()>) {
    let shutting_down = Arc::new(tokio::sync::Mutex::new(false));
    health
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    set_readiness(health, ServingStatus::Serving).await;
    let readiness = tokio::spawn(follow_store(
        health.clone(),
        reachable,
        shutting_down.clone(),
    ));
    (shutting_down, readiness)
}

/// Completes a little after the grace period that starts when draining
/// begins.
async fn grace_over(draining: &tokio::sync::Notify, grace: Duration) {
    draining.notified().await;
    tokio::time::sleep(grace + Duration::from_millis(100)).await;
    tracing::warn!("grace period over; exiting");
}

/// The reflection services (v1 and v1alpha, for older grpcurl) over
/// Portcullis's, health's and reflection's own descriptors.
#[allow(clippy::type_complexity)]
fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    StartupError,
> {
    let failed =
        |e: tonic_reflection::server::Error| StartupError::Server(format!("reflection: {e}"));
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(failed)?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(failed)?;
    Ok((v1, v1alpha))
}

/// What the admin layer tells the cache after each commit, and how the
/// cache's counters are read.
fn cache_hooks(cache: &CachedStore<SqlStore>) -> (OnCommit, Gauge<CacheStats>) {
    let (c1, c2) = (cache.clone(), cache.clone());
    (
        Arc::new(move |tenant, revision, inv| {
            let c = c1.clone();
            // A task of its own: a caller that gives up after the commit does
            // not leave this replica's index behind its own write.
            let applying =
                tokio::spawn(async move { c.applied_locally(&tenant, revision, &inv).await });
            Box::pin(async move {
                let _ = applying.await;
            })
        }),
        Arc::new(move || c2.stats()),
    )
}

/// The grant-use flusher: the sender that stops it and its task.
type Flusher = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<crate::error::Result<()>>,
);

/// What the shutdown sequence acts on.
struct Drain {
    shutting_down: Arc<tokio::sync::Mutex<bool>>,
    health: HealthReporter,
    admission: Admission,
    draining: Arc<tokio::sync::Notify>,
    /// Turned true at shutdown: watch streams end (they are not calls in
    /// flight, which the grace period waits for).
    watches: tokio::sync::watch::Sender<bool>,
    grace: Duration,
}

/// Waits for `shutdown`, then turns health NOT_SERVING, refuses new calls
/// and waits (at most the grace period) for the calls in flight.
async fn drain(shutdown: impl Future<Output = ()>, d: Drain) {
    shutdown.await;
    {
        let mut down = d.shutting_down.lock().await;
        *down = true;
        set_readiness(&d.health, ServingStatus::NotServing).await;
    }
    d.health
        .set_service_status(LIVENESS_SERVICE, ServingStatus::NotServing)
        .await;
    d.admission.close();
    d.watches.send_replace(true);
    d.draining.notify_one();
    tracing::info!(
        in_flight = d.admission.in_flight(),
        grace_ms = d.grace.as_millis() as u64,
        "shutting down: health NOT_SERVING, new calls refused, finishing calls in flight"
    );
    if tokio::time::timeout(d.grace, d.admission.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = d.admission.in_flight(),
            "grace period over with calls in flight"
        );
    }
}

/// Where the cache poller reads the revision log: the store's database over
/// a connection of its own.
#[derive(Debug, Clone)]
struct LogDb {
    url: crate::config::Secret,
    timeout: Duration,
}

/// Runs the cache poller on a thread and runtime of its own, reading the
/// revision log over a database connection of its own: however busy the
/// workers are with calls, and however many pooled connections the calls
/// hold, the log is polled on schedule, so a loaded replica never trips its
/// staleness bound (and answers `UNAVAILABLE`) only because the poller could
/// not get a turn. Returns once the poller's connection is open; the returned
/// receiver completes when the poller has stopped.
async fn spawn_poller(
    cache: CachedStore<SqlStore>,
    db: LogDb,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<tokio::sync::oneshot::Receiver<()>, StartupError> {
    let failed = |e: std::io::Error| StartupError::Server(format!("cache poller: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    let (ready, connected) = tokio::sync::oneshot::channel::<Result<()>>();
    let (done, stopped) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("portcullis-poller".to_owned())
        .spawn(move || {
            let watched = cache.clone();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(async move {
                    match SqlStore::connect(db.url.expose(), 1, db.timeout).await {
                        Ok(log) => {
                            let _ = ready.send(Ok(()));
                            cache
                                .poll(log, async {
                                    let _ = stop.await;
                                })
                                .await;
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                })
            }));
            if ran.is_err() {
                tracing::error!("cache poller panicked; readiness NOT_SERVING");
            }
            // Stopped, by shutdown or not: nothing refreshes this replica any
            // more, so it must not report ready.
            watched.mark_unreachable();
            let _ = done.send(());
        })
        .map_err(failed)?;
    connected
        .await
        .map_err(|_| StartupError::Server("cache poller: ended at start".to_owned()))?
        .map_err(StartupError::Store)?;
    Ok(stopped)
}

/// Whatever is left after the server is bounded too: the metrics endpoint
/// and the poller (already told to stop) get a moment, then are dropped.
async fn stop_background(
    metrics_server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    poller: tokio::sync::oneshot::Receiver<()>,
) {
    if let Some(m) = metrics_server {
        if tokio::time::timeout(Duration::from_millis(500), m)
            .await
            .is_err()
        {
            tracing::warn!("metrics endpoint still busy; dropping it");
        }
    }
    if tokio::time::timeout(Duration::from_millis(500), poller)
        .await
        .is_err()
    {
        // Its thread ends with its next poll (or with the process).
        tracing::warn!("cache poller still busy; leaving it");
    }
}

/// What the metrics endpoint reads at scrape time.
fn sources(
    store: &SqlStore,
    cache: &CachedStore<SqlStore>,
    cache_stats: Gauge<CacheStats>,
    admission: &Admission,
) -> Sources {
    let (store, c1, c2, a) = (
        store.clone(),
        cache.clone(),
        cache.clone(),
        admission.clone(),
    );
    Sources {
        cache: cache_stats,
        sync_age: Arc::new(move || c1.sync_age()),
        revision_lag: Arc::new(move || c2.revision_lag()),
        pool: Arc::new(move || store.pool_stats()),
        in_flight: Arc::new(move || a.in_flight()),
    }
}

async fn set_readiness(health: &HealthReporter, status: ServingStatus) {
    for service in READINESS_SERVICES {
        health.set_service_status(service, status).await;
    }
}

/// Turns readiness NOT_SERVING while polls fail to reach the store, and
/// SERVING again when they succeed (never once shutdown began).
async fn follow_store(
    health: HealthReporter,
    mut reachable: tokio::sync::watch::Receiver<bool>,
    shutting_down: Arc<tokio::sync::Mutex<bool>>,
) {
    while reachable.changed().await.is_ok() {
        let up = *reachable.borrow_and_update();
        let down = shutting_down.lock().await;
        if *down {
            return;
        }
        let status = if up {
            tracing::info!("store reachable again: readiness SERVING");
            ServingStatus::Serving
        } else {
            tracing::warn!("store unreachable: readiness NOT_SERVING");
            ServingStatus::NotServing
        };
        set_readiness(&health, status).await;
    }
}

fn read_pem(field: &str, path: &std::path::Path) -> Result<Vec<u8>, StartupError> {
    std::fs::read(path)
        .map_err(|e| StartupError::config(field, format!("cannot read `{}`: {e}", path.display())))
}

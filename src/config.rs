//! config: one serde tree, read in layers: built-in defaults, then an optional
//! TOML file, then `PORTCULLIS_*` environment variables (`__` nests:
//! `PORTCULLIS_GRPC__ADDR=0.0.0.0:50051`). Validated as a whole at start.

use crate::error::{Error, Result};
use figment::providers::{Env, Format, Json, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The prefix of the configuration's environment variables.
const ENV_PREFIX: &str = "PORTCULLIS_";

/// `PORTCULLIS_*` variables that are not configuration: the configuration
/// file's path, the CLI's server and key, and the test suite's and deploy
/// checks' own (matched as prefixes, after `PORTCULLIS_`).
const NOT_CONFIGURATION: &[&str] = &[
    "CONFIG", "ADDR", "KEY", "CA_FILE", "TEST_", "DEPLOY_", "REQUIRE_",
];

/// A configuration error as a user can act on it: an unknown key is named
/// where it was written (the variable, or the key in the file), with the
/// nearest known key.
fn explain(e: figment::Error) -> Error {
    use figment::error::Kind;
    let first = e.into_iter().next();
    let Some(e) = first else {
        return Error::invalid("config", "invalid configuration");
    };
    let from_env = e
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains("environment"));
    let source = e
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .map(|s| format!(" in {s}"))
        .unwrap_or_default();
    match &e.kind {
        Kind::UnknownField(field, expected) => {
            // figment's path ends with the unknown key itself.
            let mut path = e.path.clone();
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            let hint = nearest(field, expected)
                .map(|n| {
                    let mut p = path.clone();
                    p.pop();
                    p.push(n.to_owned());
                    format!("; did you mean {}?", name(&p, from_env))
                })
                .unwrap_or_default();
            // From the environment, the variable as it was set
            // (`PORTCULLIS_DATABSE__URL` for the unknown `databse`).
            let written = if from_env {
                let stem = format!("{ENV_PREFIX}{}", path.join("__").to_uppercase());
                std::env::vars()
                    .map(|(k, _)| k)
                    .filter(|k| {
                        k.to_uppercase() == stem
                            || k.to_uppercase().starts_with(&format!("{stem}__"))
                    })
                    .min()
                    .map_or_else(|| name(&path, true), |k| format!("`{k}`"))
            } else {
                name(&path, false)
            };
            Error::invalid(
                path.join("."),
                format!("unknown key {written}{source}{hint}"),
            )
        }
        _ => {
            let field = if e.path.is_empty() {
                "config".to_owned()
            } else {
                e.path.join(".")
            };
            Error::invalid(field, format!("{}{source}", e.kind))
        }
    }
}

/// How a key path is written: `PORTCULLIS_DATABASE__URL` or `database.url`.
fn name(path: &[String], from_env: bool) -> String {
    if from_env {
        format!("`{ENV_PREFIX}{}`", path.join("__").to_uppercase())
    } else {
        format!("`{}`", path.join("."))
    }
}

/// The known key nearest to `field` by edit distance, when near enough to
/// be a typo of it.
fn nearest<'a>(field: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(field, k), *k))
        .min()
        .filter(|(d, k)| *d <= (k.len().max(field.len()) / 2).max(2))
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What an API key may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// CheckService and ListAccessibleService.
    Check,
    /// Also AdminService (except tenant creation and listing).
    Admin,
    /// Everything; acts as the instance super user when no actor is named.
    Operator,
}

/// One API key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Name recorded in the audit trail as the caller.
    pub name: String,
    /// The bearer token.
    pub key: Secret,
    /// What it may call.
    pub scope: KeyScope,
    /// The tenants it may reach; empty for every tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Writes through this key must prove their `actor_id` with a token
    /// signed by the platform (`[actor_tokens]`), so that the key alone
    /// cannot act as anyone.
    #[serde(default)]
    pub require_actor_token: bool,
}

/// How a proven actor is checked: the platform signs a short-lived JWT
/// (`sub` = the acting principal, `tenant` = its tenant) and the caller
/// sends it in the `x-portcullis-actor-token` header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorTokenConfig {
    /// PEM public key that verifies the tokens (Ed25519 for `EdDSA`, RSA
    /// for `RS256`).
    pub public_key_file: Option<PathBuf>,
    /// `EdDSA` or `RS256`.
    pub algorithm: String,
    /// The `iss` claim required, when set.
    pub issuer: Option<String>,
    /// Longest lifetime accepted (`exp` minus `iat`), in seconds.
    pub max_lifetime_s: u64,
}

impl Default for ActorTokenConfig {
    fn default() -> Self {
        Self {
            public_key_file: None,
            algorithm: "EdDSA".to_owned(),
            issuer: None,
            max_lifetime_s: 300,
        }
    }
}

/// A calling service identified by its client certificate (mutual TLS).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIdentity {
    /// Name recorded in the audit trail as the caller.
    pub name: String,
    /// A DNS or URI subject alternative name (such as a SPIFFE id) or the
    /// subject common name that the certificate must carry.
    pub subject: String,
    /// What it may call.
    pub scope: KeyScope,
    /// The tenants it may reach; empty for every tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
}

/// TLS for the gRPC listener (rustls). Off unless both `cert_file` and
/// `key_file` are set; mutual TLS when `client_ca_file` is set too.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the server.
    pub key_file: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// With a client CA: accept clients without a certificate (they must
    /// then present an API key). Default: a certificate is required.
    #[serde(default)]
    pub client_auth_optional: bool,
    /// Identities that client certificates may prove.
    #[serde(default)]
    pub clients: Vec<ClientIdentity>,
    /// How often the certificate, key and client CA files are checked for
    /// changes (a renewed certificate is then used for new connections);
    /// 0 turns reloading off.
    #[serde(default = "default_tls_reload_ms")]
    pub reload_interval_ms: u64,
}

fn default_tls_reload_ms() -> u64 {
    10_000
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            client_auth_optional: false,
            clients: Vec::new(),
            reload_interval_ms: default_tls_reload_ms(),
        }
    }
}

/// The gRPC listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// Most calls (other than health checks) handled at once; more are
    /// refused at once with `RESOURCE_EXHAUSTED` rather than queued.
    pub max_in_flight: u32,
    /// Longest a call may run; a shorter `grpc-timeout` from the caller wins.
    pub request_timeout_ms: u64,
    /// Longest a whole-tenant call (TenantService: import, export, apply,
    /// delete) may run.
    #[serde(default = "default_bulk_timeout")]
    pub bulk_request_timeout_ms: u64,
    /// Most calls of one tenant at work at once (its share of the server);
    /// more wait in the tenant's own queue.
    #[serde(default = "default_tenant_share")]
    pub max_in_flight_per_tenant: u32,
    /// Most calls of one tenant waiting for its share; more are refused at
    /// once with `RESOURCE_EXHAUSTED` (`tenant_busy`).
    #[serde(default = "default_tenant_queue")]
    pub max_queued_per_tenant: u32,
    /// On SIGTERM, how long calls in flight may take to finish before the
    /// process exits anyway.
    pub shutdown_grace_ms: u64,
    /// An extra plaintext listener serving grpc.health.v1 only, for probes
    /// (the kubelet's, a container health check) that cannot speak the TLS
    /// of `addr`; off by default.
    #[serde(default)]
    pub health_addr: Option<SocketAddr>,
}

fn default_bulk_timeout() -> u64 {
    600_000
}

fn default_tenant_share() -> u32 {
    16
}

fn default_tenant_queue() -> u32 {
    128
}

/// The database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://portcullis.db?mode=rwc` (default) or `postgres://…`.
    pub url: Secret,
    /// A file holding the URL (a Kubernetes secret volume, say); when set,
    /// it replaces `url`.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Pool size.
    pub max_connections: u32,
    /// Apply migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// Longest wait for a connection (new or from the pool) before a call
    /// answers `UNAVAILABLE`.
    pub connect_timeout_ms: u64,
}

/// The cache of resolved role bindings and its cross-replica polling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most principals (with resolved bindings) kept in memory.
    pub max_subjects: u64,
    /// Most resource ancestries kept in memory.
    pub max_resources: u64,
    /// Most tenant role tables kept in memory.
    pub max_tenants: u64,
    /// Milliseconds between polls of the revision log; bounds how long
    /// another replica's write may go unseen without a consistency token.
    pub poll_interval_ms: u64,
    /// Longest the replica answers from memory without having reached the
    /// store; past it, checks answer `UNAVAILABLE` rather than risk a stale
    /// allow, and readiness reports `NOT_SERVING`.
    pub max_staleness_ms: u64,
    /// Most bytes of per-tenant permission indexes kept in memory (0 turns
    /// the index off); a cold tenant's index is evicted whole and rebuilt
    /// on demand, and a tenant whose index alone is larger is answered from
    /// the caches above instead.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_max_bytes() -> u64 {
    1 << 30
}

impl DatabaseConfig {
    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        let raw = self.url.expose();
        match url::Url::parse(raw) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                // Query parameters may carry secrets too (`password=`,
                // `sslpassword=`).
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = k.contains("password");
                        (
                            k.into_owned(),
                            if secret {
                                "***".to_owned()
                            } else {
                                v.into_owned()
                            },
                        )
                    })
                    .collect();
                if !pairs.is_empty() {
                    u.query_pairs_mut().clear().extend_pairs(pairs);
                }
                u.to_string()
            }
            Err(_) => "(unparsable URL)".to_owned(),
        }
    }
}

impl CacheConfig {
    /// As cache settings.
    pub fn settings(&self) -> crate::cache::CacheSettings {
        crate::cache::CacheSettings {
            max_subjects: self.max_subjects,
            max_resources: self.max_resources,
            max_tenants: self.max_tenants,
            poll_interval: std::time::Duration::from_millis(self.poll_interval_ms),
            max_staleness: std::time::Duration::from_millis(self.max_staleness_ms),
            max_bytes: self.max_bytes,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, such as `info` or `portcullis=debug`.
    pub filter: String,
    /// `json`, `text`, or `auto` (text on a terminal, JSON otherwise).
    pub format: String,
}

/// Traces (OpenTelemetry), off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// OTLP/gRPC collector, such as `http://otel-collector:4317`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Longest an export may take before its spans are dropped.
    pub export_timeout_ms: u64,
}

/// The Prometheus endpoint, off unless `addr` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Listen address of `GET /metrics`, such as `0.0.0.0:9090`.
    pub addr: Option<SocketAddr>,
}

/// The decision log (every decision of `Check` and `BatchCheck` as a JSON
/// line), off by default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// `off`, `stdout`, `file` or `otlp`.
    pub sink: String,
    /// With `file`: the file decisions are appended to.
    pub path: Option<PathBuf>,
    /// With `otlp`: the OTLP/gRPC collector the records go to (default:
    /// `tracing.otlp_endpoint`).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Share of decisions written, 0.0 to 1.0.
    pub sample_rate: f64,
    /// Decisions queued for the writer; past it new ones are dropped (and
    /// counted), never waited for.
    pub buffer: usize,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            sink: "off".to_owned(),
            path: None,
            otlp_endpoint: None,
            sample_rate: 1.0,
            buffer: 10_000,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC.
    pub grpc: GrpcConfig,
    /// Database.
    pub database: DatabaseConfig,
    /// API keys; when empty, `serve` binds loopback only and makes an
    /// operator key for the session.
    pub api_keys: Vec<ApiKey>,
    /// A file holding the API keys, as a JSON array or a TOML file with an
    /// `api_keys` array (a Kubernetes secret volume, say); not together
    /// with `api_keys`.
    #[serde(default)]
    pub api_keys_file: Option<PathBuf>,
    /// TLS and client certificates.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Cache.
    pub cache: CacheConfig,
    /// Logging.
    pub log: LogConfig,
    /// Traces.
    pub tracing: TracingConfig,
    /// Metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Proven actors (for keys with `require_actor_token`).
    #[serde(default)]
    pub actor_tokens: ActorTokenConfig,
    /// The decision log.
    #[serde(default)]
    pub decision_log: DecisionLogConfig,
    /// When grants were last used.
    #[serde(default)]
    pub grant_usage: GrantUsageConfig,
}

/// When each grant last decided a check, gathered in memory and written in
/// batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantUsageConfig {
    /// How often the uses gathered are written, 100 to 3,600,000 ms.
    pub flush_interval_ms: u64,
}

impl Default for GrantUsageConfig {
    fn default() -> Self {
        Self {
            flush_interval_ms: 30_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc: GrpcConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
                max_in_flight: 512,
                request_timeout_ms: 10_000,
                bulk_request_timeout_ms: default_bulk_timeout(),
                max_in_flight_per_tenant: default_tenant_share(),
                max_queued_per_tenant: default_tenant_queue(),
                shutdown_grace_ms: 20_000,
                health_addr: None,
            },
            database: DatabaseConfig {
                url: Secret::new("sqlite://portcullis.db?mode=rwc"),
                url_file: None,
                max_connections: 16,
                migrate_on_start: true,
                connect_timeout_ms: 5_000,
            },
            api_keys: Vec::new(),
            api_keys_file: None,
            tls: TlsConfig::default(),
            cache: CacheConfig {
                max_subjects: 100_000,
                max_resources: 1_000_000,
                max_tenants: 10_000,
                poll_interval_ms: 250,
                max_staleness_ms: 5_000,
                max_bytes: default_max_bytes(),
            },
            log: LogConfig {
                filter: "info".to_owned(),
                format: "auto".to_owned(),
            },
            tracing: TracingConfig {
                otlp_endpoint: None,
                service_name: "portcullis".to_owned(),
                export_timeout_ms: 3_000,
            },
            metrics: MetricsConfig::default(),
            actor_tokens: ActorTokenConfig::default(),
            decision_log: DecisionLogConfig::default(),
            grant_usage: GrantUsageConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then `file` (when given; TOML, or JSON when it ends in
    /// `.json`), then `PORTCULLIS_*` variables, then the secrets named by
    /// `*_file` keys. An unknown key or variable is an error naming it and
    /// the nearest known one.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(Error::invalid(
                    "config",
                    format!("file `{}` does not exist", f.display()),
                ));
            }
            fig = if f.extension().is_some_and(|e| e == "json") {
                fig.merge(Json::file(f))
            } else {
                fig.merge(Toml::file(f))
            };
        }
        // A list or table in JSON (`PORTCULLIS_API_KEYS='[{"name": …}]'`) is
        // read as JSON; figment's own syntax for variables is TOML's inline
        // one, which is read as before.
        let mut json = std::collections::HashSet::new();
        for (name, value) in std::env::vars() {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let trimmed = value.trim_start();
            if !(trimmed.starts_with('[') || trimmed.starts_with('{')) {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&value) {
                let path = key.to_lowercase().replace("__", ".");
                fig = fig.merge(Serialized::default(&path, v));
                json.insert(path);
            }
        }
        // The filter sees the key after the prefix, with `__` as `.`.
        let env = Env::prefixed(ENV_PREFIX).split("__").filter(move |k| {
            let k = k.as_str().to_lowercase();
            !json.contains(&k)
                && !NOT_CONFIGURATION
                    .iter()
                    .any(|p| k.starts_with(&p.to_lowercase()))
        });
        let mut cfg: Config = fig.merge(env).extract().map_err(explain)?;
        cfg.read_secret_files()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Replaces values named by `*_file` keys with the files' contents.
    fn read_secret_files(&mut self) -> Result<()> {
        let read = |field: &str, path: &Path| {
            std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(field, format!("cannot read `{}`: {e}", path.display()))
            })
        };
        if let Some(path) = &self.database.url_file {
            self.database.url = Secret::new(read("database.url_file", path)?.trim());
        }
        if let Some(path) = &self.api_keys_file {
            if !self.api_keys.is_empty() {
                return Err(Error::invalid(
                    "api_keys_file",
                    "set either `api_keys` or `api_keys_file`, not both",
                ));
            }
            let text = read("api_keys_file", path)?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Keys {
                api_keys: Vec<ApiKey>,
            }
            let parsed = if text.trim_start().starts_with('[') {
                serde_json::from_str::<Vec<ApiKey>>(&text).map_err(|e| e.to_string())
            } else {
                toml::from_str::<Keys>(&text)
                    .map(|k| k.api_keys)
                    .map_err(|e| e.to_string())
            };
            self.api_keys = parsed.map_err(|e| {
                Error::invalid(
                    "api_keys_file",
                    format!(
                        "`{}`: not a JSON array of keys nor a TOML file with `api_keys`: {e}",
                        path.display()
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// Checks every value; the first bad one is named.
    pub fn validate(&self) -> Result<()> {
        self.validate_decision_log()?;
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(Error::invalid(
                "database.url",
                "must start with `sqlite:` or `postgres://`",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(Error::invalid(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if !(100..=60_000).contains(&self.database.connect_timeout_ms) {
            return Err(Error::invalid(
                "database.connect_timeout_ms",
                "must be between 100 and 60000",
            ));
        }
        if self.api_keys.iter().any(|k| k.require_actor_token)
            && self.actor_tokens.public_key_file.is_none()
        {
            return Err(Error::invalid(
                "actor_tokens.public_key_file",
                "must be set when a key has `require_actor_token`",
            ));
        }
        if !["EdDSA", "RS256"].contains(&self.actor_tokens.algorithm.as_str()) {
            return Err(Error::invalid(
                "actor_tokens.algorithm",
                "must be `EdDSA` or `RS256`",
            ));
        }
        self.validate_credentials()?;
        self.validate_tls()?;
        self.validate_limits()
    }

    /// API keys and certificate identities: unique names, long keys, valid
    /// tenant lists.
    fn validate_decision_log(&self) -> Result<()> {
        let d = &self.decision_log;
        if !["off", "stdout", "file", "otlp"].contains(&d.sink.as_str()) {
            return Err(Error::invalid(
                "decision_log.sink",
                "must be `off`, `stdout`, `file` or `otlp`",
            ));
        }
        if d.sink == "otlp" && d.otlp_endpoint.is_none() && self.tracing.otlp_endpoint.is_none() {
            return Err(Error::invalid(
                "decision_log.otlp_endpoint",
                "must be set with sink `otlp` (or `tracing.otlp_endpoint`)",
            ));
        }
        if d.sink == "file" && d.path.is_none() {
            return Err(Error::invalid(
                "decision_log.path",
                "must be set with sink `file`",
            ));
        }
        if !(0.0..=1.0).contains(&d.sample_rate) {
            return Err(Error::invalid(
                "decision_log.sample_rate",
                "must be between 0.0 and 1.0",
            ));
        }
        if !(1..=1_000_000).contains(&d.buffer) {
            return Err(Error::invalid(
                "decision_log.buffer",
                "must be 1 to 1,000,000",
            ));
        }
        if !(100..=3_600_000).contains(&self.grant_usage.flush_interval_ms) {
            return Err(Error::invalid(
                "grant_usage.flush_interval_ms",
                "must be 100 to 3,600,000",
            ));
        }
        Ok(())
    }

    fn validate_credentials(&self) -> Result<()> {
        let mut names = std::collections::HashSet::new();
        for (i, k) in self.api_keys.iter().enumerate() {
            if k.name.is_empty() || !names.insert(k.name.as_str()) {
                return Err(Error::invalid(
                    format!("api_keys[{i}].name"),
                    "must be non-empty and unique",
                ));
            }
            if k.key.expose().len() < 16 {
                return Err(Error::invalid(
                    format!("api_keys[{i}].key"),
                    "must be at least 16 characters",
                ));
            }
        }
        for (i, c) in self.tls.clients.iter().enumerate() {
            if c.name.is_empty() || !names.insert(c.name.as_str()) {
                return Err(Error::invalid(
                    format!("tls.clients[{i}].name"),
                    "must be non-empty and unique among keys and identities",
                ));
            }
            if c.subject.is_empty() {
                return Err(Error::invalid(
                    format!("tls.clients[{i}].subject"),
                    "must be non-empty",
                ));
            }
        }
        for (field, tenants) in self
            .api_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("api_keys[{i}].tenants"), &k.tenants))
            .chain(
                self.tls
                    .clients
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("tls.clients[{i}].tenants"), &c.tenants)),
            )
        {
            for t in tenants {
                crate::model::validate_id(&field, t)?;
            }
        }
        Ok(())
    }

    /// TLS files come in pairs; client certificates need TLS and a CA.
    fn validate_tls(&self) -> Result<()> {
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(Error::invalid(
                "tls",
                "`cert_file` and `key_file` must be set together",
            ));
        }
        if self.tls.cert_file.is_none()
            && (self.tls.client_ca_file.is_some() || !self.tls.clients.is_empty())
        {
            return Err(Error::invalid(
                "tls.client_ca_file",
                "client certificates need TLS: set `tls.cert_file` and `tls.key_file`",
            ));
        }
        if !self.tls.clients.is_empty() && self.tls.client_ca_file.is_none() {
            return Err(Error::invalid(
                "tls.clients",
                "certificate identities need `tls.client_ca_file`",
            ));
        }
        Ok(())
    }

    /// Limits, cache settings, telemetry and logs.
    fn validate_limits(&self) -> Result<()> {
        if self.grpc.max_in_flight == 0 {
            return Err(Error::invalid("grpc.max_in_flight", "must be at least 1"));
        }
        if self.grpc.max_in_flight_per_tenant == 0 {
            return Err(Error::invalid(
                "grpc.max_in_flight_per_tenant",
                "must be at least 1",
            ));
        }
        if self.grpc.request_timeout_ms < 10 {
            return Err(Error::invalid(
                "grpc.request_timeout_ms",
                "must be at least 10",
            ));
        }
        if self.grpc.bulk_request_timeout_ms < self.grpc.request_timeout_ms {
            return Err(Error::invalid(
                "grpc.bulk_request_timeout_ms",
                "must be at least `grpc.request_timeout_ms`",
            ));
        }
        if self.cache.max_staleness_ms < 2 * self.cache.poll_interval_ms {
            return Err(Error::invalid(
                "cache.max_staleness_ms",
                "must be at least twice `cache.poll_interval_ms`",
            ));
        }
        if !(10..=1_000).contains(&self.cache.poll_interval_ms) {
            return Err(Error::invalid(
                "cache.poll_interval_ms",
                "must be between 10 and 1000",
            ));
        }
        if self.cache.max_subjects == 0
            || self.cache.max_resources == 0
            || self.cache.max_tenants == 0
        {
            return Err(Error::invalid("cache", "capacities must be at least 1"));
        }
        if let Some(e) = &self.tracing.otlp_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(Error::invalid(
                    "tracing.otlp_endpoint",
                    "must be an `http://` or `https://` URL",
                ));
            }
        }
        if !["json", "text", "auto"].contains(&self.log.format.as_str()) {
            return Err(Error::invalid(
                "log.format",
                "must be `json`, `text` or `auto`",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(url: &str) -> String {
        let mut c = Config::default();
        c.database.url = Secret::new(url);
        c.database.redacted_url()
    }

    #[test]
    fn the_database_url_is_logged_without_its_secrets() {
        let r = redacted("postgres://app:s3cret@db.internal:5432/authz?sslmode=verify-full&password=other&sslpassword=k");
        assert!(
            !r.contains("s3cret") && !r.contains("other") && !r.contains("=k"),
            "{r}"
        );
        assert!(r.contains("app:***@db.internal:5432/authz"), "{r}");
        assert!(r.contains("sslmode=verify-full"), "{r}");
        assert_eq!(
            redacted("sqlite://portcullis.db?mode=rwc"),
            "sqlite://portcullis.db?mode=rwc"
        );
        assert_eq!(redacted("postgres://db/authz"), "postgres://db/authz");
    }
}

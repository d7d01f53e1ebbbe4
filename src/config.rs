//! config: one serde tree, read in layers: built-in defaults, then an optional
//! TOML file, then `PORTCULLIS_*` environment variables (`__` nests:
//! `PORTCULLIS_GRPC__ADDR=0.0.0.0:50051`). Validated as a whole at start.

use crate::error::{Error, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

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
pub struct ApiKey {
    /// Name recorded in the audit trail as the caller.
    pub name: String,
    /// The bearer token.
    pub key: Secret,
    /// What it may call.
    pub scope: KeyScope,
}

/// The gRPC listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrpcConfig {
    /// Listen address.
    pub addr: SocketAddr,
}

/// The database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseConfig {
    /// `sqlite://portcullis.db?mode=rwc` (default) or `postgres://…`.
    pub url: Secret,
    /// Pool size.
    pub max_connections: u32,
    /// Apply migrations when `serve` starts.
    pub migrate_on_start: bool,
}

/// The cache of resolved role bindings and its cross-replica polling.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

impl CacheConfig {
    /// As cache settings.
    pub fn settings(&self) -> crate::cache::CacheSettings {
        crate::cache::CacheSettings {
            max_subjects: self.max_subjects,
            max_resources: self.max_resources,
            max_tenants: self.max_tenants,
            poll_interval: std::time::Duration::from_millis(self.poll_interval_ms),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogConfig {
    /// `tracing` filter, such as `info` or `portcullis=debug`.
    pub filter: String,
    /// `json`, `text`, or `auto` (text on a terminal, JSON otherwise).
    pub format: String,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// gRPC.
    pub grpc: GrpcConfig,
    /// Database.
    pub database: DatabaseConfig,
    /// API keys; when empty, `serve` binds loopback only and makes an
    /// operator key for the session.
    pub api_keys: Vec<ApiKey>,
    /// Cache.
    pub cache: CacheConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc: GrpcConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            },
            database: DatabaseConfig {
                url: Secret::new("sqlite://portcullis.db?mode=rwc"),
                max_connections: 16,
                migrate_on_start: true,
            },
            api_keys: Vec::new(),
            cache: CacheConfig {
                max_subjects: 100_000,
                max_resources: 1_000_000,
                max_tenants: 10_000,
                poll_interval_ms: 250,
            },
            log: LogConfig {
                filter: "info".to_owned(),
                format: "auto".to_owned(),
            },
        }
    }
}

impl Config {
    /// Defaults, then `file` (when given), then `PORTCULLIS_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(Error::invalid(
                    "config",
                    format!("file `{}` does not exist", f.display()),
                ));
            }
            fig = fig.merge(Toml::file(f));
        }
        let cfg: Config = fig
            .merge(Env::prefixed("PORTCULLIS_").split("__"))
            .extract()
            .map_err(|e| Error::invalid("config", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value; the first bad one is named.
    pub fn validate(&self) -> Result<()> {
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
        if !["json", "text", "auto"].contains(&self.log.format.as_str()) {
            return Err(Error::invalid(
                "log.format",
                "must be `json`, `text` or `auto`",
            ));
        }
        Ok(())
    }
}

//! cli: the operator's commands of the `portcullis` binary beyond `serve`
//! and `migrate`. Those that talk to a server do so over gRPC, like any
//! other caller (address, key and TLS from flags or `PORTCULLIS_ADDR`,
//! `PORTCULLIS_KEY`, `PORTCULLIS_CA_FILE`); the others read the
//! configuration or the database. Human-readable output by default,
//! `--output json` for scripts; the exit status says whether it worked
//! (and, for `check`, whether the answer was an allow).

mod tenant;

pub use tenant::{apply, schema, split, test};

/// `portcullis tenant …` commands.
pub mod tenants {
    pub use super::tenant::{delete, erase, export, import};
}

use crate::client::{Client, RetryPolicy};
use crate::config::{Config, Secret};
use crate::grpc::pb;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How output is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// Where the server is and how to reach it.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// The server: `http://host:port`, or `https://…` for TLS.
    #[arg(
        long,
        env = "PORTCULLIS_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// An API key (`Bearer`); not needed for `health`.
    #[arg(long, env = "PORTCULLIS_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// PEM CA bundle that the server's certificate must chain to (with
    /// `https://`); the system's roots are not used.
    #[arg(long, env = "PORTCULLIS_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Deadline of each call, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
}

/// What went wrong, for the one line the binary prints before exiting 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The flags or the configuration.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached or set up.
    #[error("cannot reach the server: {0}")]
    Connect(String),
    /// The server answered with an error status.
    #[error("{:?}: {}", .0.code(), .0.message())]
    Call(#[from] tonic::Status),
    /// The database.
    #[error("database: {0}")]
    Store(#[from] crate::error::Error),
}

impl Conn {
    async fn channel(&self) -> Result<Channel, CliError> {
        let mut endpoint = Endpoint::from_shared(self.addr.clone())
            .map_err(|e| CliError::Usage(format!("--addr `{}`: {e}", self.addr)))?
            .connect_timeout(Duration::from_millis(self.timeout_ms))
            .timeout(Duration::from_millis(self.timeout_ms));
        if self.addr.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| CliError::Usage(format!("--ca-file `{}`: {e}", ca.display())))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| CliError::Connect(e.to_string()))?;
        }
        endpoint
            .connect()
            .await
            .map_err(|e| CliError::Connect(format!("{}: {e}", self.addr)))
    }

    /// The Rust client over this connection: the key, and the deadline on
    /// every call, without retries (an operator sees the first answer).
    async fn client(&self) -> Result<Client, CliError> {
        let key = self.key.as_deref().ok_or_else(|| {
            CliError::Usage("an API key is needed: --key or PORTCULLIS_KEY".to_owned())
        })?;
        let policy = RetryPolicy {
            deadline: Duration::from_millis(self.timeout_ms),
            attempts: 1,
            backoff: Duration::ZERO,
        };
        Client::from_channel(self.channel().await?, key, policy).map_err(CliError::Usage)
    }
}

/// `type:id` as a resource reference.
pub fn parse_resource(s: &str) -> Result<pb::ResourceRef, String> {
    match s.split_once(':') {
        Some((t, id)) if !t.is_empty() && !id.is_empty() => Ok(pb::ResourceRef {
            r#type: t.to_owned(),
            id: id.to_owned(),
        }),
        _ => Err(format!("`{s}`: expected `type:id`, such as `workflow:w1`")),
    }
}

pub(crate) fn print(output: Output, text: String, value: serde_json::Value) {
    match output {
        Output::Text => println!("{text}"),
        Output::Json => println!("{value}"),
    }
}

/// `portcullis check`: one decision. `Ok(true)` when allowed.
pub async fn check(
    conn: &Conn,
    tenant: String,
    principal: String,
    action: String,
    resource: pb::ResourceRef,
    explain: bool,
    output: Output,
) -> Result<bool, CliError> {
    let shown = format!("{}:{}", resource.r#type, resource.id);
    let r = conn
        .client()
        .await?
        .check_request(pb::CheckRequest {
            tenant_id: tenant,
            principal_id: principal.clone(),
            action: action.clone(),
            resource: Some(resource),
            explain,
            ..Default::default()
        })
        .await?;
    let reason = crate::grpc::reason_name(r.reason);
    let verdict = if r.allowed { "ALLOWED" } else { "DENIED" };
    let mut text = format!("{verdict}: {principal} {action} {shown} ({reason})");
    let explanation = r.explanation.as_ref().map(|e| {
        let scope = e.scope.as_ref().map_or("the tenant".to_owned(), |s| {
            format!("{}:{}", s.r#type, s.id)
        });
        let via = if e.via_teams.is_empty() {
            String::new()
        } else {
            format!(" through team {}", e.via_teams.join(" → "))
        };
        if !e.grant_id.is_empty() {
            text.push_str(&format!(
                "\n  grant {} ({} on {scope}{via}) gives {}",
                e.grant_id, e.role_id, e.permission
            ));
        }
        if !e.detail.is_empty() {
            text.push_str(&format!("\n  {}", e.detail));
        }
        json!({
            "grant_id": e.grant_id,
            "role_id": e.role_id,
            "permission": e.permission,
            "scope": e.scope.as_ref().map(|s| json!({"type": s.r#type, "id": s.id})),
            "via_teams": e.via_teams,
            "detail": e.detail,
        })
    });
    print(
        output,
        text,
        json!({
            "allowed": r.allowed,
            "reason": reason,
            "consistency_token": r.consistency_token,
            "explanation": explanation,
        }),
    );
    Ok(r.allowed)
}

/// `portcullis list`: every resource of a type the principal may act on,
/// all pages.
pub async fn list(
    conn: &Conn,
    tenant: String,
    principal: String,
    action: String,
    resource_type: String,
    output: Output,
) -> Result<(), CliError> {
    let all = conn
        .client()
        .await?
        .list_all_accessible(&tenant, &principal, &action, &resource_type)
        .await?;
    let (ids, consistency) = (all.resource_ids, all.consistency_token);
    let text = ids
        .iter()
        .map(|id| format!("{resource_type}:{id}"))
        .collect::<Vec<_>>()
        .join("\n");
    print(
        output,
        text,
        json!({"resource_type": resource_type, "ids": ids, "consistency_token": consistency}),
    );
    Ok(())
}

/// `portcullis health`: `Ok(true)` when `service` reports SERVING.
pub async fn health(conn: &Conn, service: String, output: Output) -> Result<bool, CliError> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut c = tonic_health::pb::health_client::HealthClient::new(conn.channel().await?);
    let status = c
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.clone(),
        })
        .await?
        .into_inner()
        .status;
    let name = ServingStatus::try_from(status).map_or("UNKNOWN", |s| s.as_str_name());
    let shown = if service.is_empty() {
        "server"
    } else {
        &service
    };
    print(
        output,
        format!("{shown}: {name}"),
        json!({"service": service, "status": name}),
    );
    Ok(status == ServingStatus::Serving as i32)
}

/// `portcullis keygen`: a new API key (256 random bits) and the
/// configuration entry that would hold it.
pub fn keygen(name: &str, scope: &str, output: Output) {
    let key = crate::auth::generate_key();
    print(
        output,
        format!(
            "{key}\n\n# as a configuration entry:\n[[api_keys]]\nname = \"{name}\"\nkey = \"{key}\"\nscope = \"{scope}\""
        ),
        json!({"key": key, "entry": {"name": name, "key": key, "scope": scope}}),
    );
}

/// `portcullis config check`: the effective configuration (defaults, file,
/// variables, secret files), validated, with every secret redacted.
pub fn config_check(config: &Config, output: Output) -> Result<(), CliError> {
    let mut shown = config.clone();
    shown.database.url = Secret::new(config.database.redacted_url());
    for k in &mut shown.api_keys {
        k.key = Secret::new("***");
    }
    match output {
        Output::Json => {
            let v = serde_json::to_value(&shown).map_err(|e| CliError::Usage(e.to_string()))?;
            println!("{v}");
        }
        Output::Text => {
            let t = toml::to_string_pretty(&shown).map_err(|e| CliError::Usage(e.to_string()))?;
            println!("# effective configuration (secrets redacted)\n{t}");
        }
    }
    Ok(())
}

/// `portcullis migrate status`: each migration and whether the database has
/// it. `Ok(true)` when none is pending.
pub async fn migrate_status(config: &Config, output: Output) -> Result<bool, CliError> {
    let store = crate::store::sql::SqlStore::connect(
        config.database.url.expose(),
        1,
        Duration::from_millis(config.database.connect_timeout_ms),
    )
    .await?;
    let status = store.migration_status().await?;
    let pending = status.iter().filter(|(_, applied)| !applied).count();
    let text = status
        .iter()
        .map(|(name, applied)| format!("{} {name}", if *applied { "applied" } else { "pending" }))
        .chain(std::iter::once(format!(
            "{} of {} applied, {pending} pending ({})",
            status.len() - pending,
            status.len(),
            config.database.redacted_url()
        )))
        .collect::<Vec<_>>()
        .join("\n");
    print(
        output,
        text,
        json!({
            "database": config.database.redacted_url(),
            "migrations": status.iter().map(|(n, a)| json!({"name": n, "applied": a})).collect::<Vec<_>>(),
            "pending": pending,
        }),
    );
    Ok(pending == 0)
}

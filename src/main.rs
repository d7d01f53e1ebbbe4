//! The `portcullis` binary: `serve`, `migrate`, and the operator's commands
//! (`src/cli.rs`).

use clap::{Parser, Subcommand};
use portcullis::app::{App, StartupError};
use portcullis::cli::{self, CliError, Conn, Output};
use portcullis::config::{ApiKey, Config, KeyScope, Secret};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: faster for the many small allocations of a call, and it gives
/// freed memory back to the system (glibc's allocator kept the ~1 GiB that
/// building a million-resource tenant's index passes through).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "portcullis", version, about = "gRPC authorization service")]
struct Cli {
    /// TOML configuration file (environment variables `PORTCULLIS_*` override it).
    #[arg(long, short, env = "PORTCULLIS_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve gRPC (migrating the database first unless --no-migrate).
    Serve {
        /// Do not apply migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply database migrations and exit (`migrate status`: list them).
    Migrate {
        #[command(subcommand)]
        cmd: Option<MigrateCmd>,
    },
    /// The configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Ask a server for one decision (exit 0 when allowed, 3 when denied).
    Check {
        #[command(flatten)]
        conn: Conn,
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// Principal asking.
        principal: String,
        /// Action, such as `view`.
        action: String,
        /// Resource as `type:id`, such as `workflow:w1`.
        #[arg(value_parser = cli::parse_resource)]
        resource: portcullis::grpc::pb::ResourceRef,
        /// Say which grant decided, or why none did.
        #[arg(long)]
        explain: bool,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// List every resource of a type the principal may act on (all pages).
    List {
        #[command(flatten)]
        conn: Conn,
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// Principal.
        principal: String,
        /// Action, such as `view`.
        action: String,
        /// Resource type, such as `workflow`.
        resource_type: String,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Ask a server's health service (exit 0 when SERVING, 1 otherwise): a
    /// container health check.
    Health {
        #[command(flatten)]
        conn: Conn,
        /// Health service name: empty for the server's readiness,
        /// `liveness` for the process.
        #[arg(long, default_value = "")]
        service: String,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Make a new API key.
    Keygen {
        /// Name of the key in the configuration entry printed with it.
        #[arg(long, default_value = "new-key")]
        name: String,
        /// `check`, `admin` or `operator`.
        #[arg(long, default_value = "check", value_parser = ["check", "admin", "operator"])]
        scope: String,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Whole tenants: export, import, delete, erase a name, the file schema.
    Tenant {
        #[command(subcommand)]
        cmd: TenantCmd,
    },
    /// Make a tenant what a tenant file says (`--dry-run`: print the
    /// changes and who gains or loses which access, write nothing; exit 1
    /// when the apply would be refused).
    Apply {
        #[command(flatten)]
        conn: Conn,
        /// The tenant file (TOML, or JSON for `.json`).
        file: PathBuf,
        /// Tenant (default: the file's `tenant.id`).
        #[arg(long, short)]
        tenant: Option<String>,
        /// The acting principal (each change is authorized as them); none
        /// for an operator key acting as super user.
        #[arg(long)]
        actor: Option<String>,
        /// Plan and check only.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Check tenant files' assertions in an embedded in-memory instance, no
    /// server needed (exit 0 when every file loads and every assertion
    /// holds, 1 otherwise): the CI step for a repository of tenant files.
    Test {
        /// Tenant files, or files of assertions naming a `tenant_file`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    #[cfg(feature = "bench")]
    /// Seed a benchmark dataset into an empty database, start a server on it
    /// and measure it over gRPC (run it under `taskset -c 1`).
    Bench {
        /// `standard` (10,000 workflows, 2,000 users) or `large` (1,000,000
        /// resources, 100,000 principals).
        #[arg(long, default_value = "standard")]
        dataset: String,
        /// `standard` (checks, batches, lists, cold checks), `noisy` (one
        /// tenant's adversarial role graph and load against another tenant's
        /// checks and the health service), `index`, `import` or `conditions`
        /// (a Check with a condition against one without).
        #[arg(long, default_value = "standard")]
        scenario: String,
        /// An empty database; a fresh SQLite file in the temp directory by default.
        #[arg(long)]
        database_url: Option<String>,
        /// Seconds of the throughput phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Requests in flight in the throughput phase.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// HTTP/2 connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// CPU core the server is pinned to with `taskset`; -1 to not pin.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        server_core: i64,
    },
}

#[derive(Subcommand)]
enum MigrateCmd {
    /// Each migration and whether the database has it (exit 0 when none is
    /// pending, 1 otherwise).
    Status {
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Subcommand)]
enum TenantCmd {
    /// Write a tenant as a file (TOML by default).
    Export {
        #[command(flatten)]
        conn: Conn,
        /// Tenant.
        tenant: String,
        /// The acting principal (needs tenant.manage); none for an operator key.
        #[arg(long)]
        actor: Option<String>,
        /// Write here instead of standard output (JSON for `.json`).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Create a tenant from a file (operator key), in one transaction.
    Import {
        #[command(flatten)]
        conn: Conn,
        /// The tenant file.
        file: PathBuf,
        /// The new tenant's id (default: the file's `tenant.id`).
        #[arg(long, short)]
        tenant: Option<String>,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Delete a tenant and everything in it (operator key).
    Delete {
        #[command(flatten)]
        conn: Conn,
        /// Tenant.
        tenant: String,
        /// Confirm.
        #[arg(long, required = true)]
        yes: bool,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Replace a principal's display name by a pseudonym everywhere.
    Erase {
        #[command(flatten)]
        conn: Conn,
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// The principal.
        principal: String,
        /// The acting principal; none for an operator key.
        #[arg(long)]
        actor: Option<String>,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Print the JSON Schema of tenant files.
    Schema,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Load and validate the configuration; print it with secrets redacted.
    Check {
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

/// The commands that need no configuration: they talk to a server or make
/// a key. `None` for the others.
async fn without_config(command: &Cmd) -> Option<Result<bool, CliError>> {
    Some(match command {
        Cmd::Check {
            conn,
            tenant,
            principal,
            action,
            resource,
            explain,
            output,
        } => {
            cli::check(
                conn,
                tenant.clone(),
                principal.clone(),
                action.clone(),
                resource.clone(),
                *explain,
                *output,
            )
            .await
        }
        Cmd::List {
            conn,
            tenant,
            principal,
            action,
            resource_type,
            output,
        } => cli::list(
            conn,
            tenant.clone(),
            principal.clone(),
            action.clone(),
            resource_type.clone(),
            *output,
        )
        .await
        .map(|()| true),
        Cmd::Health {
            conn,
            service,
            output,
        } => cli::health(conn, service.clone(), *output).await,
        Cmd::Keygen {
            name,
            scope,
            output,
        } => {
            cli::keygen(name, scope, *output);
            Ok(true)
        }
        Cmd::Tenant { cmd } => match cmd {
            TenantCmd::Export {
                conn,
                tenant,
                actor,
                file,
                json,
            } => {
                cli::tenants::export(conn, tenant.clone(), actor.clone(), file.clone(), *json).await
            }
            TenantCmd::Import {
                conn,
                file,
                tenant,
                output,
            } => cli::tenants::import(conn, file, tenant.clone(), *output).await,
            TenantCmd::Delete {
                conn,
                tenant,
                yes: _,
                output,
            } => cli::tenants::delete(conn, tenant.clone(), *output).await,
            TenantCmd::Erase {
                conn,
                tenant,
                principal,
                actor,
                output,
            } => {
                cli::tenants::erase(
                    conn,
                    tenant.clone(),
                    principal.clone(),
                    actor.clone(),
                    *output,
                )
                .await
            }
            TenantCmd::Schema => Ok(cli::schema()),
        },
        Cmd::Apply {
            conn,
            file,
            tenant,
            actor,
            dry_run,
            output,
        } => cli::apply(conn, file, tenant.clone(), actor.clone(), *dry_run, *output).await,
        Cmd::Test { files, output } => cli::test(files, *output).await,
        _ => return None,
    })
}

/// The exit status of a command that ran: 0 when it worked (and, for
/// `check`, allowed), 3 for a `check` that was denied, 1 for any other "no".
fn exit(command_is_check: bool, result: Result<bool, CliError>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if command_is_check => ExitCode::from(3),
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_check = matches!(cli.command, Cmd::Check { .. });
    if let Some(result) = without_config(&cli.command).await {
        return exit(is_check, result);
    }
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match portcullis::telemetry::init(&config.log, &config.tracing) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("portcullis: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(feature = "bench")]
    if let Cmd::Bench {
        dataset,
        scenario,
        database_url,
        seconds,
        concurrency,
        connections,
        server_core,
    } = cli.command
    {
        let opts = portcullis::bench::BenchOptions {
            dataset,
            scenario,
            database_url,
            duration: std::time::Duration::from_secs(seconds),
            concurrency,
            connections,
            server_core: usize::try_from(server_core).ok(),
        };
        return match portcullis::bench::run(opts).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portcullis bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = match cli.command {
        #[cfg(feature = "bench")]
        Cmd::Bench { .. } => Ok(()),
        Cmd::Config {
            cmd: ConfigCmd::Check { output },
        } => return exit(false, cli::config_check(&config, output).map(|()| true)),
        Cmd::Migrate {
            cmd: Some(MigrateCmd::Status { output }),
        } => return exit(false, cli::migrate_status(&config, output).await),
        Cmd::Check { .. }
        | Cmd::List { .. }
        | Cmd::Health { .. }
        | Cmd::Keygen { .. }
        | Cmd::Tenant { .. }
        | Cmd::Apply { .. }
        | Cmd::Test { .. } => Ok(()),
        Cmd::Migrate { cmd: None } => migrate(&config).await,
        Cmd::Serve { no_migrate } => {
            let migrate = !no_migrate && config.database.migrate_on_start;
            serve(&mut config, migrate).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            eprintln!("portcullis: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config) -> Result<(), StartupError> {
    App::build(config, true).await?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(config: &mut Config, migrate: bool) -> Result<(), StartupError> {
    // Listened for from the start: a SIGTERM that arrives while the server
    // migrates, binds or starts serving is a graceful shutdown, not the
    // default kill.
    let shutdown = shutdown_signal();
    if config.api_keys.is_empty() {
        // Quick start: no keys configured, so only this machine may call, with
        // a key made for this run and shown once.
        let loopback = SocketAddr::from(([127, 0, 0, 1], config.grpc.addr.port()));
        if config.grpc.addr != loopback {
            tracing::warn!(requested = %config.grpc.addr, "no API keys configured: binding loopback only");
        }
        config.grpc.addr = loopback;
        let key = portcullis::auth::generate_key();
        println!("No API keys configured. Operator key for this run (shown once):\n\n  {key}\n");
        config.api_keys.push(ApiKey {
            name: "generated-operator".to_owned(),
            key: Secret::new(key),
            scope: KeyScope::Operator,
            tenants: Vec::new(),
            require_actor_token: false,
        });
    }
    let app = App::build(config, migrate).await?;
    let listener = tokio::net::TcpListener::bind(config.grpc.addr)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.grpc.addr.to_string(),
            source,
        })?;
    app.serve(listener, shutdown).await
}

/// Completes on the first SIGTERM or Ctrl-C received after this call: the
/// handlers are registered here, not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, interrupt) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

//! Process harness: a PostgreSQL server of the test's own and real
//! `portcullis serve` child processes, for crash/restart, store-outage and
//! graceful-shutdown tests.
//!
//! - [`PrivatePostgres`]: `initdb` into a fresh temporary directory and a
//!   `pg_ctl`-managed server on a free loopback port that the test may stop
//!   (`-m immediate`, a crash-like outage, or `-m fast`) and start again on the
//!   same port. Never the shared server on 5432. Dropping it stops the server
//!   and removes the directory. As root (CI) the binaries run as the
//!   `postgres` user through `runuser`, since `initdb` and `pg_ctl` refuse root.
//! - [`ServerProcess`]: `portcullis serve` as a child process with a clean
//!   `PORTCULLIS_*` environment, a JSON log collected line by line, and the
//!   bound address read from its `serving gRPC` line. It can be killed with
//!   SIGKILL, sent SIGTERM, and waited for. Dropping it kills and reaps it.
//!
//! ```ignore
//! let pg = PrivatePostgres::start_new().await.expect("private PostgreSQL");
//! let server = ServerProcess::start(&[database_env(&pg.url()), test_keys_env()], &[]).await;
//! server.create_test_tenant().await;
//! pg.stop().await.expect("outage");           // the store goes away, crash-like
//! // ... what does the server answer now? ...
//! pg.start().await.expect("back");            // same port, same URL
//! ```
//!
//! The tests at the bottom prove the harness itself. `TEST_LOG=1` echoes every
//! server log line to the test's stderr.
#![allow(dead_code)]

use crate::helpers::{res, subj, Authed, Bearer, ADMIN_KEY, CHECK_KEY, OPERATOR_KEY, TENANT};
use portcullis::grpc::pb;
use portcullis::grpc::pb::admin_service_client::AdminServiceClient;
use portcullis::grpc::pb::check_service_client::CheckServiceClient;
use portcullis::grpc::pb::list_accessible_service_client::ListAccessibleServiceClient;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

/// How long [`ServerProcess::start`] waits for the `serving gRPC` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1: bound to port 0, read, and released. Another
/// process could take it before the caller binds it; on loopback in a test
/// run that is rare enough.
pub async fn free_port() -> u16 {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn free_port_now() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether `pid` is a live process (not absent, not a zombie awaiting its
/// parent's wait). Reads `/proc`, so Linux only.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether a TCP connection to `addr` is refused right now.
pub fn refuses_connections(addr: SocketAddr) -> bool {
    matches!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

// ---- PrivatePostgres ---------------------------------------------------------

/// Why a [`PrivatePostgres`] operation failed: a message naming what is
/// missing or what went wrong, with the tool's output or the server log.
/// `Debug` prints the message as is, so `.expect(...)` shows it readably.
pub struct PgError(pub String);

impl std::fmt::Debug for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgError {}

/// Everything needed to run `pg_ctl` on the instance; cheap to clone into a
/// blocking task.
#[derive(Clone, Debug)]
struct PgCtl {
    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    bindir: PathBuf,
    /// The temporary directory: holds `data/`, `log` and the Unix socket.
    base: PathBuf,
    port: u16,
    /// Run the binaries as the `postgres` user through `runuser` (we are root).
    as_postgres: bool,
    /// Serve TLS only (`ssl=on` with `server.crt`/`server.key` of the
    /// instance directory; plaintext TCP connections are rejected).
    tls: bool,
}

impl PgCtl {
    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.base.join("log")
    }

    /// A command running `program` from the server binaries: directly, or as
    /// `runuser -u postgres -- <bindir>/<program>` when root. Runs in the
    /// instance directory (the `postgres` user may not be able to enter the
    /// caller's) with no `PG*` variables that could point it elsewhere.
    fn command(&self, program: &str) -> Command {
        let bin = self.bindir.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("PG")) {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(&self.base).stdin(Stdio::null());
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, PgError> {
        self.command(program).args(args).output().map_err(|e| {
            PgError(format!(
                "cannot run `{program}` from {}: {e}",
                self.bindir.display()
            ))
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn failure(&self, what: &str, out: &Output) -> PgError {
        PgError(format!(
            "{what} failed ({}):\n{}{}\n--- server log {} ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_path().display(),
            self.log()
        ))
    }

    fn initdb(&self) -> Result<(), PgError> {
        let data = self.data();
        let data = data.to_str().expect("UTF-8 temp path");
        let out = self.run(
            "initdb",
            &[
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failure("initdb", &out))
        }
    }

    fn is_running(&self) -> bool {
        let data = self.data();
        // Exit status 0: running; 3: not running; 4: no data directory.
        self.run("pg_ctl", &["status", "-D", data.to_str().expect("UTF-8")])
            .is_ok_and(|o| o.status.success())
    }

    fn start(&self) -> Result<(), PgError> {
        if self.is_running() {
            return Ok(());
        }
        let data = self.data();
        let log = self.log_path();
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60 -c shared_buffers=16MB",
            self.port,
            self.base.display()
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.base.join("server.crt").display(),
                self.base.join("server.key").display()
            ));
        }
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("UTF-8"),
                "-l",
                log.to_str().expect("UTF-8"),
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failure(&format!("pg_ctl start on port {}", self.port), &out))
        }
    }

    fn stop(&self, mode: &str) -> Result<(), PgError> {
        if !self.is_running() {
            return Ok(());
        }
        let data = self.data();
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("UTF-8"),
                "-m",
                mode,
                "-w",
                "-t",
                "30",
                "stop",
            ],
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failure(&format!("pg_ctl stop -m {mode}"), &out))
        }
    }

    /// The postmaster's pid from `data/postmaster.pid`, if the file exists.
    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

/// The directory with `initdb` and `pg_ctl`: `pg_config --bindir` when it has
/// them (it may come from a client-only package), else the highest
/// `/usr/lib/postgresql/<version>/bin` that has them.
fn find_bindir() -> Result<PathBuf, PgError> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(d) = from_pg_config.as_deref().filter(|d| has_tools(d)) {
        return Ok(d.to_path_buf());
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let version = name
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<_>>>()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d).ok_or_else(|| {
        PgError(format!(
            "PostgreSQL server binaries not found: no `initdb` and `pg_ctl` in {} nor in any \
             /usr/lib/postgresql/<version>/bin (install the PostgreSQL server, e.g. \
             `apt-get install postgresql`)",
            match &from_pg_config {
                Some(d) => format!("`pg_config --bindir` ({})", d.display()),
                None => "`pg_config --bindir` (no `pg_config` on PATH)".to_owned(),
            }
        ))
    })
}

fn running_as_root() -> Result<bool, PgError> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| PgError(format!("cannot run `id -u`: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A PostgreSQL server of the test's own: its own data directory (a fresh
/// temporary directory) and its own loopback port, never the shared server.
///
/// [`PrivatePostgres::new`] runs `initdb`; [`start`](Self::start) and
/// [`stop`](Self::stop) may alternate any number of times and the server
/// always comes back on the same port, so [`url`](Self::url) stays valid.
/// Dropping it stops the server (`-m immediate`, then SIGKILL to the
/// postmaster if that failed) and removes the directory.
///
/// The superuser `postgres` connects without a password (`trust`) over TCP
/// on 127.0.0.1 only; `max_connections` is 60, the locale `C` (bytewise
/// collation, like SQLite's default), the encoding UTF-8. For a fresh database
/// per test on it, `helpers::fresh_database(&Backend::Postgres(pg.url()), dir)`
/// works as with the shared server.
pub struct PrivatePostgres {
    ctl: PgCtl,
    /// Removed on drop, after the server is stopped.
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for PrivatePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivatePostgres")
            .field("port", &self.ctl.port)
            .field("dir", &self.ctl.base)
            .finish()
    }
}

impl PrivatePostgres {
    /// Initializes a new instance (`initdb` into a fresh temporary directory,
    /// with a free loopback port chosen for it) without starting it.
    ///
    /// Errors name what is missing: the server binaries, `runuser` or the
    /// `postgres` user (as root), or `initdb`'s own complaint.
    pub async fn new() -> Result<PrivatePostgres, PgError> {
        tokio::task::spawn_blocking(Self::new_blocking)
            .await
            .map_err(|e| PgError(format!("initdb task: {e}")))?
    }

    /// A new instance that speaks TLS only, with `cert_pem` (the chain) and
    /// `key_pem` as its certificate: `pg_hba.conf` admits `hostssl` TCP
    /// connections and rejects plaintext ones, so a connection that works
    /// is encrypted. Started.
    pub async fn start_new_tls(cert_pem: &str, key_pem: &str) -> Result<PrivatePostgres, PgError> {
        let mut pg = Self::new().await?;
        let base = pg.ctl.base.clone();
        let write = |name: &str, text: &str| -> Result<(), PgError> {
            let path = base.join(name);
            std::fs::write(&path, text)
                .map_err(|e| PgError(format!("cannot write {}: {e}", path.display())))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| PgError(format!("chmod {}: {e}", path.display())))?;
            if pg.ctl.as_postgres {
                let ok = Command::new("chown")
                    .arg("postgres")
                    .arg(&path)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(PgError(format!("chown postgres {}", path.display())));
                }
            }
            Ok(())
        };
        write("server.crt", cert_pem)?;
        write("server.key", key_pem)?;
        let hba = pg.ctl.data().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .map_err(|e| PgError(format!("cannot write {}: {e}", hba.display())))?;
        pg.ctl.tls = true;
        pg.start().await?;
        Ok(pg)
    }

    /// [`new`](Self::new), then [`start`](Self::start).
    pub async fn start_new() -> Result<PrivatePostgres, PgError> {
        let pg = Self::new().await?;
        pg.start().await?;
        Ok(pg)
    }

    fn new_blocking() -> Result<PrivatePostgres, PgError> {
        let bindir = find_bindir()?;
        let as_postgres = running_as_root()?;
        let dir = if as_postgres {
            // The `postgres` user must be able to reach the directory: use
            // /tmp (world-searchable) rather than a TMPDIR that may be private
            // to root.
            let ok = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                return Err(PgError(
                    "running as root, and initdb refuses root, but there is no `postgres` user \
                     to run PostgreSQL as"
                        .to_owned(),
                ));
            }
            tempfile::Builder::new()
                .prefix("portcullis-pg-")
                .tempdir_in("/tmp")
        } else {
            tempfile::Builder::new().prefix("portcullis-pg-").tempdir()
        }
        .map_err(|e| PgError(format!("cannot create a temporary directory: {e}")))?;
        let base = dir.path().to_path_buf();
        if as_postgres {
            let out = Command::new("chown")
                .arg("postgres")
                .arg(&base)
                .output()
                .map_err(|e| PgError(format!("cannot run `chown`: {e}")))?;
            if !out.status.success() {
                return Err(PgError(format!(
                    "chown postgres {}: {}",
                    base.display(),
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let runuser = Command::new("runuser")
                .args(["-u", "postgres", "--", "true"])
                .output();
            if !runuser.is_ok_and(|o| o.status.success()) {
                return Err(PgError(
                    "running as root, and initdb refuses root, but `runuser -u postgres -- true` \
                     does not work (is util-linux's `runuser` installed?)"
                        .to_owned(),
                ));
            }
        }
        let port = free_port_now().map_err(|e| PgError(format!("no free port: {e}")))?;
        let ctl = PgCtl {
            bindir,
            base,
            port,
            as_postgres,
            tls: false,
        };
        ctl.initdb()?;
        Ok(PrivatePostgres {
            ctl,
            dir: Some(dir),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(PgCtl) -> Result<T, PgError> + Send + 'static,
    ) -> Result<T, PgError> {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || f(ctl))
            .await
            .map_err(|e| PgError(format!("pg_ctl task: {e}")))?
    }

    /// Starts the server on its port (`pg_ctl start -w`: returns once it
    /// accepts connections, at most 30 s). A no-op when it is running. After
    /// [`stop`](Self::stop) this is a restart with crash recovery.
    pub async fn start(&self) -> Result<(), PgError> {
        self.blocking(|c| c.start()).await
    }

    /// Stops the server like a crash (`pg_ctl stop -m immediate`): every
    /// connection is cut at once, nothing is checkpointed. A no-op when it is
    /// not running.
    pub async fn stop(&self) -> Result<(), PgError> {
        self.blocking(|c| c.stop("immediate")).await
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`: sessions are
    /// terminated, then a shutdown checkpoint). A no-op when it is not running.
    pub async fn stop_fast(&self) -> Result<(), PgError> {
        self.blocking(|c| c.stop("fast")).await
    }

    /// Whether the server is running (`pg_ctl status`; blocks for the few
    /// milliseconds that takes).
    pub fn is_running(&self) -> bool {
        self.ctl.is_running()
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`, valid across restarts.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.ctl.port)
    }

    /// The server's TCP port (the same after every restart).
    pub fn port(&self) -> u16 {
        self.ctl.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ctl.port))
    }

    /// The instance directory (data directory `data/`, server log `log`, the
    /// Unix socket); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.ctl.base
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        self.ctl.log()
    }

    /// The postmaster's pid while it runs (from `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.ctl.postmaster_pid().filter(|&p| pid_alive(p))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pid = self.ctl.postmaster_pid();
        if let Err(e) = self.ctl.stop("immediate") {
            eprintln!("PrivatePostgres: {e}");
        }
        // Never leave a server running, whatever pg_ctl said.
        if let Some(pid) = pid.filter(|&p| pid_alive(p)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        drop(self.dir.take());
    }
}

// ---- ServerProcess -----------------------------------------------------------

/// `PORTCULLIS_DATABASE__URL=<url>`, for [`ServerProcess::start`]. For SQLite
/// use `sqlite://<path>?mode=rwc`.
pub fn database_env(url: &str) -> (&'static str, String) {
    ("PORTCULLIS_DATABASE__URL", url.to_owned())
}

/// `PORTCULLIS_API_KEYS` with the harness keys (`helpers::OPERATOR_KEY`,
/// `ADMIN_KEY`, `CHECK_KEY`), so that [`ServerProcess::operator`] and the other
/// client helpers authenticate. Without any key, `serve` binds loopback and
/// prints a generated operator key on stdout ([`ServerProcess::stdout`]).
pub fn test_keys_env() -> (&'static str, String) {
    (
        "PORTCULLIS_API_KEYS",
        format!(
            r#"[{{name="test-operator",key="{OPERATOR_KEY}",scope="operator"}},{{name="test-admin",key="{ADMIN_KEY}",scope="admin"}},{{name="test-check",key="{CHECK_KEY}",scope="check"}}]"#
        ),
    )
}

/// Why [`ServerProcess::try_start`] failed, with everything the process wrote.
/// `Debug` prints it readably (for `.expect`).
pub struct StartFailure {
    /// What went wrong (exited before serving, timed out, could not connect).
    pub reason: String,
    /// The exit status, when the process exited (it is killed on time-out).
    pub status: Option<ExitStatus>,
    /// Every stderr line (the JSON log, and plain `portcullis: ...` errors).
    pub logs: Vec<String>,
    /// Every stdout line.
    pub stdout: Vec<String>,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "portcullis serve: {} (exit: {:?})",
            self.reason, self.status
        )?;
        writeln!(f, "--- its stderr ---")?;
        for l in &self.logs {
            writeln!(f, "{l}")?;
        }
        if !self.stdout.is_empty() {
            writeln!(f, "--- its stdout ---")?;
            for l in &self.stdout {
                writeln!(f, "{l}")?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Lines read from one of the child's pipes, and a signal that moves on every
/// new line and closes at end of file.
#[derive(Clone)]
struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    changed: tokio::sync::watch::Receiver<usize>,
}

impl Lines {
    /// Reads `pipe` on a thread until end of file (so the child never blocks
    /// on a full pipe), echoing to stderr with `echo` as prefix when set.
    fn collect(pipe: impl std::io::Read + Send + 'static, echo: Option<String>) -> Lines {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, changed) = tokio::sync::watch::channel(0usize);
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(prefix) = &echo {
                    eprintln!("{prefix} {line}");
                }
                sink.lock().expect("log lock").push(line);
                tx.send_modify(|n| *n += 1);
            }
            // Dropping `tx` closes the signal: end of file.
        });
        Lines { lines, changed }
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().expect("log lock").clone()
    }

    /// Waits up to `timeout` for end of file (every line read).
    async fn closed(&self, timeout: Duration) {
        let mut changed = self.changed.clone();
        let _ =
            tokio::time::timeout(timeout, async { while changed.changed().await.is_ok() {} }).await;
    }

    /// The first line (from the start) for which `f` gives `Some`, waiting
    /// for new lines up to `timeout`. `Err(true)` at end of file, `Err(false)`
    /// on time-out.
    async fn find<T>(&self, timeout: Duration, f: impl Fn(&str) -> Option<T>) -> Result<T, bool> {
        let mut changed = self.changed.clone();
        let search = async {
            loop {
                // Mark the current count seen before looking, so that a line
                // pushed after the look wakes the wait below.
                changed.borrow_and_update();
                if let Some(v) = self
                    .lines
                    .lock()
                    .expect("log lock")
                    .iter()
                    .find_map(|l| f(l))
                {
                    return Ok(v);
                }
                if changed.changed().await.is_err() {
                    let lines = self.lines.lock().expect("log lock");
                    return lines.iter().find_map(|l| f(l)).ok_or(true);
                }
            }
        };
        tokio::time::timeout(timeout, search)
            .await
            .unwrap_or(Err(false))
    }
}

/// The value of the first `addr` field anywhere in a JSON log line.
fn addr_in(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m
            .get("addr")
            .and_then(|a| a.as_str().map(str::to_owned))
            .or_else(|| m.values().find_map(addr_in)),
        serde_json::Value::Array(a) => a.iter().find_map(addr_in),
        _ => None,
    }
}

/// The address a `serving gRPC` log line reports.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("serving gRPC") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    addr_in(&v)?.parse().ok()
}

/// The failure of a start: waits (a little) for `child` to exit, killing it
/// if it does not, and for both pipes to be read to the end.
async fn start_failure(
    mut child: std::process::Child,
    reason: String,
    stderr: &Lines,
    stdout: &Lines,
) -> StartFailure {
    // End of file on stderr means the process is exiting: give it a moment
    // to be reaped, then make sure it is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = child.try_wait().ok().flatten();
    while status.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = child.try_wait().ok().flatten();
    }
    if status.is_none() {
        let _ = child.kill();
        status = child.wait().ok();
    }
    stderr.closed(Duration::from_secs(5)).await;
    stdout.closed(Duration::from_secs(5)).await;
    StartFailure {
        reason,
        status,
        logs: stderr.snapshot(),
        stdout: stdout.snapshot(),
    }
}

/// A real `portcullis serve` child process (the binary Cargo built for this
/// test run), serving on an ephemeral loopback port.
///
/// Its environment has no inherited `PORTCULLIS_*` or `RUST_LOG` variable;
/// it gets `PORTCULLIS_GRPC__ADDR=127.0.0.1:0` and `PORTCULLIS_LOG__FORMAT=json`,
/// then the caller's variables (which override those two). Every stderr line
/// is kept ([`logs`](Self::logs), [`wait_for_log`](Self::wait_for_log)).
/// Dropping it kills (SIGKILL) and reaps it.
pub struct ServerProcess {
    child: std::process::Child,
    addr: SocketAddr,
    channel: Channel,
    stderr: Lines,
    stdout: Lines,
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess")
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .finish()
    }
}

/// How the harness's channels are configured: bounded connects and calls.
fn endpoint(addr: SocketAddr) -> tonic::transport::Endpoint {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
}

impl ServerProcess {
    /// Starts `portcullis <args>` (`serve` when `args` is empty) with `envs`
    /// and waits (at most [`START_TIMEOUT`]) until it logs `serving gRPC`,
    /// then connects to it. Panics with the collected log when the process
    /// exits first, times out (it is then killed) or cannot be connected to.
    ///
    /// Configuration is by environment, e.g.
    /// `database_env("sqlite:///tmp/x.db?mode=rwc")`, [`test_keys_env`],
    /// `("PORTCULLIS_CACHE__POLL_INTERVAL_MS", "300".into())`.
    pub async fn start(envs: &[(&str, String)], args: &[&str]) -> ServerProcess {
        match Self::try_start(envs, args).await {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`start`](Self::start), but a failure to start is returned (with the
    /// exit status and the whole log) instead of panicking: for tests of a
    /// server that must refuse to start.
    pub async fn try_start(
        envs: &[(&str, String)],
        args: &[&str],
    ) -> Result<ServerProcess, StartFailure> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("PORTCULLIS_") || k == "RUST_LOG")
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("PORTCULLIS_GRPC__ADDR", "127.0.0.1:0")
            .env("PORTCULLIS_LOG__FORMAT", "json");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.args(if args.is_empty() {
            &["serve"][..]
        } else {
            args
        })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| StartFailure {
            reason: format!("cannot spawn {}: {e}", env!("CARGO_BIN_EXE_portcullis")),
            status: None,
            logs: vec![],
            stdout: vec![],
        })?;
        let echo = std::env::var_os("TEST_LOG").map(|_| format!("[portcullis {}]", child.id()));
        let stderr = Lines::collect(child.stderr.take().expect("piped stderr"), echo.clone());
        let stdout = Lines::collect(child.stdout.take().expect("piped stdout"), echo);

        let fail = |child, reason| start_failure(child, reason, &stderr, &stdout);
        let addr = match stderr.find(START_TIMEOUT, serving_addr).await {
            Ok(addr) => addr,
            Err(true) => return Err(fail(child, "exited before serving".to_owned()).await),
            Err(false) => {
                let _ = child.kill();
                let reason = format!("no `serving gRPC` line within {START_TIMEOUT:?}");
                return Err(fail(child, reason).await);
            }
        };
        let channel = match endpoint(addr).connect().await {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                return Err(fail(child, format!("cannot connect to {addr}: {e}")).await);
            }
        };
        Ok(ServerProcess {
            child,
            addr,
            channel,
            stderr,
            stdout,
        })
    }

    /// The address it serves on (from its `serving gRPC` line).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A channel to it, connected when the process started (cheap to clone;
    /// calls on it fail once the process is gone). Calls time out after 30 s.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A new connection to it (for example to see whether it still accepts
    /// connections).
    pub async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        endpoint(self.addr).connect().await
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far: the JSON log (plus any plain-text error).
    pub fn logs(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// Every stdout line so far (the generated key when no key is configured).
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    /// The first stderr line (from the start of the log) that contains
    /// `needle`, waiting up to `timeout` for it to be written. `None` on
    /// time-out or when the process closed its stderr (exited) without it.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.stderr
            .find(timeout, |l| l.contains(needle).then(|| l.to_owned()))
            .await
            .ok()
    }

    /// Kills it with SIGKILL (a crash) and reaps it; returns its exit status.
    /// Its port refuses connections afterwards.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let _ = self.child.kill();
        self.child.wait().expect("reap the killed server")
    }

    /// Sends SIGTERM (`kill -TERM <pid>`): the server should shut down
    /// gracefully; await it with [`wait_exit`](Self::wait_exit). Nothing is
    /// sent when the process has already been reaped (its pid may be reused).
    pub fn sigterm(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run `kill`");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    /// Waits up to `timeout` for the process to exit and returns its status
    /// (it is reaped); `None` if it is still running then. Polls every 10 ms
    /// (a child's exit gives no awaitable event without tokio's `process`
    /// feature).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep((deadline - now).min(Duration::from_millis(10))).await;
        }
    }

    /// Whether the process is still running (not yet exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    // ---- clients (with `test_keys_env()` configured) ----------------------

    /// Admin client with the operator key.
    pub fn operator(&self) -> AdminServiceClient<Authed> {
        AdminServiceClient::with_interceptor(self.channel(), bearer(OPERATOR_KEY))
    }

    /// Admin client with the admin key.
    pub fn admin(&self) -> AdminServiceClient<Authed> {
        AdminServiceClient::with_interceptor(self.channel(), bearer(ADMIN_KEY))
    }

    /// Check client with the check key.
    pub fn checker(&self) -> CheckServiceClient<Authed> {
        CheckServiceClient::with_interceptor(self.channel(), bearer(CHECK_KEY))
    }

    /// List client with the check key.
    pub fn lister(&self) -> ListAccessibleServiceClient<Authed> {
        ListAccessibleServiceClient::with_interceptor(self.channel(), bearer(CHECK_KEY))
    }

    /// `grpc.health.v1.Health` client (no key needed).
    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel())
    }

    /// The health status of `service` (`""`: the whole server), e.g.
    /// `Ok(ServingStatus::Serving as i32)`.
    pub async fn health_status(&self, service: &str) -> Result<i32, tonic::Status> {
        self.health()
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .map(|r| r.into_inner().status)
    }

    /// Creates the harness tenant `helpers::TENANT` with its account admin
    /// `helpers::ADMIN` (as `spawn_app_on` does); returns the revision.
    pub async fn create_test_tenant(&self) -> String {
        crate::helpers::create_tenant(&mut self.operator(), TENANT)
            .await
            .consistency_token
    }
}

fn bearer(key: &str) -> Bearer {
    Bearer::new(key).expect("ascii key")
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- the harness's own tests -------------------------------------------------

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tonic_health::pb::health_check_response::ServingStatus;

/// A one-connection pool on `url`, bounded in time.
async fn pg_connect(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(1)
        .min_connections(0)
        .connect_timeout(Duration::from_millis(1500))
        .acquire_timeout(Duration::from_millis(1500))
        .sqlx_logging(false);
    Database::connect(opts).await
}

async fn select_one(db: &DatabaseConnection) -> Result<i32, sea_orm::DbErr> {
    let row = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT 1 AS one",
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::Custom("no row".into()))?;
    row.try_get::<i32>("", "one")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_stops_and_comes_back_on_the_same_port() {
    let t0 = Instant::now();
    let pg = PrivatePostgres::start_new()
        .await
        .expect("a private PostgreSQL");
    assert_ne!(pg.port(), 5432, "never the shared server");
    let url = pg.url();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );
    assert!(pg.is_running());
    let first_pid = pg.postmaster_pid().expect("a postmaster");
    let db = pg_connect(&url)
        .await
        .expect("connect to the private server");
    assert_eq!(select_one(&db).await.expect("SELECT 1"), 1);
    eprintln!("initdb + start + SELECT 1: {:?}", t0.elapsed());

    // A crash-like outage: the open connection dies, new ones are refused.
    let t = Instant::now();
    pg.stop().await.expect("stop -m immediate");
    eprintln!("stop -m immediate: {:?}", t.elapsed());
    assert!(!pg.is_running());
    assert!(!pid_alive(first_pid), "the postmaster is gone");
    assert!(refuses_connections(pg.addr()));
    let t = Instant::now();
    let err = pg_connect(&url).await.expect_err("no server to connect to");
    eprintln!("connect while stopped failed in {:?}: {err}", t.elapsed());
    let t = Instant::now();
    select_one(&db)
        .await
        .expect_err("the open connection was cut");
    eprintln!("query on the cut connection failed in {:?}", t.elapsed());
    pg.stop()
        .await
        .expect("stopping a stopped server is a no-op");

    // Back on the same port: the same URL works again.
    let t = Instant::now();
    pg.start().await.expect("start again (crash recovery)");
    eprintln!("restart after immediate stop: {:?}", t.elapsed());
    assert!(pg.is_running());
    assert_eq!(pg.url(), url);
    let db2 = pg_connect(&url).await.expect("connect after restart");
    assert_eq!(select_one(&db2).await.expect("SELECT 1 after restart"), 1);
    pg.start()
        .await
        .expect("starting a running server is a no-op");
    db2.close().await.ok();
    db.close().await.ok();

    // A clean stop and start work too.
    pg.stop_fast().await.expect("stop -m fast");
    assert!(!pg.is_running());
    assert!(refuses_connections(pg.addr()));
    pg.start().await.expect("start after a clean stop");
    let db3 = pg_connect(&url).await.expect("connect after clean restart");
    assert_eq!(select_one(&db3).await.expect("SELECT 1"), 1);
    db3.close().await.ok();

    // Drop stops the server and removes its directory.
    let dir = pg.dir().to_path_buf();
    let addr = pg.addr();
    let pid = pg.postmaster_pid().expect("a postmaster");
    assert!(dir.join("data").is_dir());
    drop(pg);
    assert!(!pid_alive(pid), "dropping stops the postmaster");
    assert!(refuses_connections(addr));
    assert!(!dir.exists(), "dropping removes {}", dir.display());
    eprintln!("whole test: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_process_serves_health_and_dies_with_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let t = Instant::now();
    let mut server = ServerProcess::start(&[database_env(&url), test_keys_env()], &[]).await;
    eprintln!("serve started in {:?} on {}", t.elapsed(), server.addr());
    assert!(server.addr().ip().is_loopback());
    assert_ne!(server.addr().port(), 0);
    assert!(server.is_running());
    assert!(
        server.logs().iter().any(|l| l.contains("serving gRPC")),
        "the log is kept: {:?}",
        server.logs()
    );
    assert!(
        server.logs().iter().all(|l| l.starts_with('{')),
        "the log is JSON: {:?}",
        server.logs()
    );
    for service in [
        "",
        "portcullis.v1.CheckService",
        "portcullis.v1.AdminService",
    ] {
        assert_eq!(
            server.health_status(service).await.expect("health check"),
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    // The test keys are configured: an operator call succeeds.
    server.create_test_tenant().await;

    let pid = server.pid();
    let addr = server.addr();
    let status = server.kill9();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    assert_eq!(
        server.wait_exit(Duration::from_secs(1)).await,
        Some(status),
        "the process is gone"
    );
    assert!(!server.is_running());
    assert!(!pid_alive(pid), "pid {pid} is reaped");
    assert!(refuses_connections(addr), "{addr} refuses connections");
    assert!(
        server.health_status("").await.is_err(),
        "the old channel fails"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_process_exits_on_sigterm_and_is_killed_on_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let mut server = ServerProcess::start(&[database_env(&url), test_keys_env()], &[]).await;
    let t = Instant::now();
    server.sigterm();
    let status = server
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("the server exits on SIGTERM");
    eprintln!("exited {:?} after SIGTERM in {:?}", status, t.elapsed());
    assert!(
        status.success(),
        "a graceful exit: {status:?}\n{:#?}",
        server.logs()
    );
    assert!(
        server
            .wait_for_log("shutting down", Duration::from_secs(1))
            .await
            .is_some(),
        "it logged its shutdown: {:#?}",
        server.logs()
    );
    assert!(refuses_connections(server.addr()));

    // Dropping a running server kills and reaps it.
    let server = ServerProcess::start(&[database_env(&url), test_keys_env()], &[]).await;
    let (pid, addr) = (server.pid(), server.addr());
    assert!(pid_alive(pid));
    drop(server);
    assert!(!pid_alive(pid), "dropping kills and reaps pid {pid}");
    assert!(refuses_connections(addr));
}

#[tokio::test]
async fn a_server_process_that_cannot_start_reports_its_log() {
    let t = Instant::now();
    let failure =
        ServerProcess::try_start(&[("PORTCULLIS_GRPC__ADDR", "not-an-address".into())], &[])
            .await
            .expect_err("a bad address is a configuration error");
    eprintln!("failed to start in {:?}: {failure}", t.elapsed());
    assert_eq!(failure.reason, "exited before serving");
    assert_eq!(
        failure.status.and_then(|s| s.code()),
        Some(2),
        "configuration errors exit with 2: {failure}"
    );
    assert!(
        failure.logs.iter().any(|l| l.contains("configuration")),
        "the log says why: {failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_process_runs_on_the_private_postgres() {
    let pg = PrivatePostgres::start_new()
        .await
        .expect("a private PostgreSQL");
    let mut server = ServerProcess::start(&[database_env(&pg.url()), test_keys_env()], &[]).await;
    server.create_test_tenant().await;
    let op = server.operator();
    op.clone()
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            kind: pb::PrincipalKind::User as i32,
            status: pb::PrincipalStatus::Active as i32,
            display_name: "Alice".into(),
            ..Default::default()
        })
        .await
        .expect("create principal");
    op.clone()
        .create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("workspace:ws")),
            ..Default::default()
        })
        .await
        .expect("create resource");
    let revision = op
        .clone()
        .create_grant(pb::CreateGrantRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj("alice")),
            role_id: "viewer".into(),
            scope: Some(res("workspace:ws")),
            effect: pb::Effect::Allow as i32,
            ..Default::default()
        })
        .await
        .expect("create grant")
        .into_inner()
        .consistency_token;
    for (action, allowed) in [("view", true), ("edit", false)] {
        let answer = server
            .checker()
            .check(pb::CheckRequest {
                tenant_id: TENANT.into(),
                principal_id: "alice".into(),
                action: action.into(),
                resource: Some(res("workspace:ws")),
                consistency_token: revision.clone(),
                ..Default::default()
            })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(
            answer.allowed, allowed,
            "alice {action} workspace:ws: {answer:?}"
        );
    }
    // The server's tables are in the private instance.
    let db = pg_connect(&pg.url()).await.expect("connect");
    let tenants = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'",
        ))
        .await
        .expect("count tables")
        .expect("a row")
        .try_get::<i64>("", "n")
        .expect("n");
    assert!(tenants > 0, "migrated tables in the private server");
    db.close().await.ok();
    server.kill9();
}

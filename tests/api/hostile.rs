//! Hostile input against every RPC (the issue: "property tests over every
//! request type — random and oversized strings, control characters and other
//! Unicode, SQL metacharacters, deep and wide trees, cycles, huge batches and
//! page sizes, missing fields, malformed tokens").
//!
//! The random tests seed one world on a real server (tenants, principals in
//! every status, teams, a custom role, a resource tree whose ids are SQL and
//! path metacharacters, allow and deny grants) and send generated requests of
//! every RPC whose string fields come from [`hostile`] mixed with ids that
//! exist, so that some requests are well-formed. For every call:
//! - it answers within 10 s;
//! - the code is OK or a client error (INVALID_ARGUMENT, NOT_FOUND,
//!   FAILED_PRECONDITION, PERMISSION_DENIED, ALREADY_EXISTS; RESOURCE_EXHAUSTED
//!   or OUT_OF_RANGE only for a message over 4 MiB), never UNKNOWN, INTERNAL
//!   or UNAVAILABLE, and the health check still answers SERVING afterwards;
//! - an INVALID_ARGUMENT names, in backticks, a field of the request (read
//!   from the embedded descriptor set), and when this file's [`Expect`] knows
//!   a field to be malformed from the documented limits, the call is refused
//!   with INVALID_ARGUMENT naming one of the malformed fields;
//! - a refused write leaves every table byte for byte as it was
//!   ([`Snapshotter`]);
//! - a well-formed Check, BatchCheck, ListAccessible or ListSubjects answers
//!   OK and agrees with a small model of the seeded world ([`World`]); a Check
//!   asked twice answers the same;
//! - every RPC the descriptor set lists was exercised (a new RPC fails the
//!   test until it is added here).
//!
//! Half the generated requests are built only from values of the world, so
//! that many are well-formed and many decisions are allowed. A consistency
//! token ahead of the tenant's revision must be INVALID_ARGUMENT naming
//! `consistency_token` (tokens are per tenant).
//!
//! Then fixed scenarios: deep trees (the depth limit), a wide tree (2,000
//! children, every page size), cycles (resources, teams, roles), huge
//! requests (batch, message and page-size limits), every required field of
//! every write omitted in turn, malformed credentials; and three bugs this
//! suite found, fixed: undecodable bytes were INTERNAL, a token ahead of the
//! store was UNAVAILABLE, a malformed permission was echoed in full.
//!
//! Knobs: `HOSTILE_CASES` (cases of each random test), `PROPTEST_RNG_SEED`
//! (printed on failure).
//!
//! Requests name every field and end in `..Default::default()`, so that a
//! field added to the protos later still compiles.
#![allow(clippy::needless_update)]

use crate::helpers::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use pb::admin_service_client::AdminServiceClient;
use portcullis::grpc::pb;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest::test_runner::{Config as RunnerConfig, RngSeed, TestCaseError, TestRunner};
use prost_types::Timestamp;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tonic::{Code, Status};

/// Every call must answer within this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The documented request message limit.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Actions every tenant knows (README, "The model").
const BUILTIN: [&str; 12] = [
    "view",
    "edit",
    "execute",
    "create",
    "delete",
    "share",
    "manage",
    "transfer",
    "manage_members",
    "manage_teams",
    "manage_roles",
    "view_audit",
];
/// What the predefined `editor` role gives on folders and workflows.
const EDITOR: [&str; 5] = ["view", "edit", "execute", "create", "delete"];
/// What `account_admin` gives on a workspace.
const ACCOUNT_ADMIN_ON_WORKSPACE: [&str; 4] = ["create", "delete", "share", "manage"];

// Ids of the seeded world that are themselves hostile (and valid).
const OBRIEN: &str = "o'brien; DROP TABLE principals;--";
const HAN: &str = "用户_%";
const SALE: &str = "50%_off";
const PASSWD: &str = "../etc/passwd";
const INJECT: &str = "' OR 1=1 --";
const RTL: &str = "w\u{202e}priv";
const WEIRD_TENANT: &str = "t'; DROP TABLE tenants;--";

/// Runs a test body on SQLite and on PostgreSQL (when configured) in a
/// multi-threaded runtime, which `block_in_place` (the proptest runner is
/// synchronous) needs.
macro_rules! hostile_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                Box::pin(super::$name($crate::helpers::Backend::Sqlite)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(portcullis_pg), ignore = "PostgreSQL: set PORTCULLIS_TEST_DATABASE_URL when building and running the tests")]
            async fn postgres() {
                if let Some(b) = $crate::helpers::Backend::postgres() {
                    Box::pin(super::$name(b)).await
                }
            }
        }
    )*};
}

hostile_tests!(
    check_service_random,
    list_service_random,
    admin_service_random,
    deep_trees,
    wide_tree,
    cycles,
    huge_requests,
    missing_fields,
);

// ---- plumbing ---------------------------------------------------------------

fn backend_name(b: &Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    }
}

/// Runs `f` to completion from synchronous code inside the test's runtime.
fn block<F: Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// A call bounded by [`CALL_TIMEOUT`]; a hang becomes DEADLINE_EXCEEDED,
/// which no check accepts.
async fn bounded<T>(
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

/// At most `max` bytes of `s` (on a character boundary), for messages.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &s[..end], s.len())
}

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

fn ensure(ok: bool, msg: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(fail(msg()))
    }
}

/// The field an INVALID_ARGUMENT names: ``invalid `field`: …``.
fn named_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("invalid `")?
        .split_once('`')
        .map(|(f, _)| f)
}

/// The request field a named field belongs to: `items[3].action` → `items`.
fn field_root(field: &str) -> &str {
    field.split(['.', '[']).next().unwrap_or(field)
}

fn env_u32(name: &str) -> Option<u32> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Cases of a random test: `HOSTILE_CASES`, or `default`.
fn cases(default: u32) -> u32 {
    env_u32("HOSTILE_CASES").unwrap_or(default)
}

/// Runs `cases` generated values through `test` with a seeded proptest
/// runner (failures shrink, nothing is persisted) and panics on a failure.
fn run_cases<S>(
    label: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let config = RunnerConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{label} failed (PROPTEST_RNG_SEED={seed}): {e}");
    }
}

/// What the embedded descriptor set says about the API.
struct Api {
    /// `Service/Method` → the request message's field names.
    fields: HashMap<String, Vec<String>>,
    /// Service → its methods.
    rpcs: BTreeMap<String, Vec<String>>,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let set: prost_types::FileDescriptorSet =
            prost::Message::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut messages: HashMap<String, Vec<String>> = HashMap::new();
        for f in &set.file {
            for m in &f.message_type {
                messages.insert(
                    format!(".{}.{}", f.package(), m.name()),
                    // A oneof is named like a field (`change`).
                    m.field
                        .iter()
                        .map(|x| x.name().to_owned())
                        .chain(m.oneof_decl.iter().map(|o| o.name().to_owned()))
                        .collect(),
                );
            }
        }
        let mut fields = HashMap::new();
        let mut rpcs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in &set.file {
            for s in &f.service {
                for m in &s.method {
                    fields.insert(
                        format!("{}/{}", s.name(), m.name()),
                        messages.get(m.input_type()).cloned().unwrap_or_default(),
                    );
                    rpcs.entry(s.name().to_owned())
                        .or_default()
                        .push(m.name().to_owned());
                }
            }
        }
        Api { fields, rpcs }
    })
}

// ---- the store, byte for byte ----------------------------------------------------

/// Reads every table of the server's database (all but `seaql_migrations`)
/// through its own connection, every column cast to text, every row in a
/// total order: two snapshots are equal exactly when the data is.
struct Snapshotter {
    conn: DatabaseConnection,
    /// (table, SELECT of all its rows, number of columns).
    queries: Vec<(String, String, usize)>,
}

impl Snapshotter {
    async fn connect(database_url: &str) -> Self {
        let mut opts = ConnectOptions::new(database_url.to_owned());
        opts.max_connections(1).sqlx_logging(false);
        let conn = sea_orm::Database::connect(opts)
            .await
            .expect("snapshot connection");
        let backend = conn.get_database_backend();
        let tables_sql = match backend {
            DbBackend::Sqlite => {
                "SELECT name AS n FROM sqlite_master WHERE type = 'table' \
                 AND name <> 'seaql_migrations' ORDER BY name"
            }
            DbBackend::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS n FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 AND table_name <> 'seaql_migrations' ORDER BY 1"
            }
            other => panic!("unexpected backend {other:?}"),
        };
        let names = |rows: Vec<sea_orm::QueryResult>| -> Vec<String> {
            rows.iter()
                .map(|r| r.try_get::<String>("", "n").expect("a name"))
                .collect()
        };
        let tables = names(
            conn.query_all(Statement::from_string(backend, tables_sql))
                .await
                .expect("list tables"),
        );
        assert!(
            tables.len() >= 8,
            "expected the schema's tables, found {tables:?}"
        );
        let mut queries = Vec::new();
        for t in tables {
            let quoted = t.replace('\'', "''");
            let columns_sql = match backend {
                DbBackend::Sqlite => {
                    format!("SELECT name AS n FROM pragma_table_info('{quoted}') ORDER BY cid")
                }
                _ => format!(
                    "SELECT CAST(column_name AS TEXT) AS n FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = '{quoted}' \
                     ORDER BY ordinal_position"
                ),
            };
            let columns = names(
                conn.query_all(Statement::from_string(backend, columns_sql))
                    .await
                    .expect("list columns"),
            );
            assert!(!columns.is_empty(), "table {t} has no columns");
            let select: Vec<String> = columns
                .iter()
                .map(|c| format!("CAST(\"{}\" AS TEXT)", c.replace('"', "\"\"")))
                .collect();
            let order: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
            let sql = format!(
                "SELECT {} FROM \"{}\" ORDER BY {}",
                select.join(", "),
                t.replace('"', "\"\""),
                order.join(", ")
            );
            queries.push((t, sql, columns.len()));
        }
        Self { conn, queries }
    }

    /// Every row of every table, rendered `table [col, col, …]`.
    async fn snapshot(&self) -> Vec<String> {
        let backend = self.conn.get_database_backend();
        let mut out = Vec::new();
        for (table, sql, columns) in &self.queries {
            let rows = self
                .conn
                .query_all(Statement::from_string(backend, sql.clone()))
                .await
                .unwrap_or_else(|e| panic!("snapshot of {table}: {e}"));
            out.push(format!("{table}: {} rows", rows.len()));
            for row in rows {
                let values: Vec<Option<String>> = (0..*columns)
                    .map(|i| {
                        row.try_get_by_index::<Option<String>>(i)
                            .unwrap_or_else(|e| panic!("snapshot of {table}, column {i}: {e}"))
                    })
                    .collect();
                out.push(format!("{table} {values:?}"));
            }
        }
        out
    }
}

/// The rows only in `before` (-) and only in `after` (+).
fn diff(before: &[String], after: &[String]) -> String {
    let b: BTreeSet<&String> = before.iter().collect();
    let a: BTreeSet<&String> = after.iter().collect();
    let mut out = String::new();
    for x in b.difference(&a).take(12) {
        out += &format!("  - {}\n", clip(x, 400));
    }
    for x in a.difference(&b).take(12) {
        out += &format!("  + {}\n", clip(x, 400));
    }
    out
}

// ---- expectations --------------------------------------------------------------

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Ids: 1 to 256 bytes, no control characters.
fn bad_id(s: &str) -> bool {
    s.is_empty() || s.len() > 256 || has_control(s)
}

/// Names (types, actions, roles): `[a-z][a-z0-9_]*`, at most 63 bytes.
fn bad_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() > 63
        || !chars.next().is_some_and(|c| c.is_ascii_lowercase())
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Resource types: names other than `tenant`.
fn bad_type(s: &str) -> bool {
    bad_name(s) || s == "tenant"
}

/// Permission patterns: `<type>.<action>`, `*` allowed on either side.
fn bad_permission(p: &str) -> bool {
    match p.split_once('.') {
        None => true,
        Some((t, a)) => [t, a].iter().any(|s| *s != "*" && bad_name(s)),
    }
}

/// The cursor of a page token that looks like one Portcullis makes.
fn cursor(token: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("k1:").map(str::to_owned))
}

/// What a generated request must get, from the documented limits.
#[derive(Debug, Default, Clone)]
struct Expect {
    /// Fields that are certainly malformed: the call must be INVALID_ARGUMENT
    /// naming one of them.
    invalid: BTreeSet<String>,
    /// Fields the server may refuse for reasons this file does not model.
    maybe: BTreeSet<String>,
    /// The key may not call this RPC: PERMISSION_DENIED.
    denied: bool,
    /// A consistency token ahead of the tenant's revision (see
    /// `a_consistency_token_ahead_of_the_store_is_a_client_error`).
    future_token: bool,
    /// The request is over the message limit.
    oversize: bool,
    /// Well-formed reads of the check services must answer OK.
    strict: bool,
}

impl Expect {
    fn strict() -> Self {
        Self {
            strict: true,
            ..Self::default()
        }
    }
    fn bad(&mut self, field: impl Into<String>) {
        self.invalid.insert(field.into());
    }
    fn id(&mut self, field: &str, v: &str) {
        if bad_id(v) {
            self.bad(field);
        }
    }
    fn opt_id(&mut self, field: &str, v: &str) {
        if !v.is_empty() {
            self.id(field, v);
        }
    }
    fn name(&mut self, field: &str, v: &str) {
        if bad_name(v) {
            self.bad(field);
        }
    }
    fn opt_name(&mut self, field: &str, v: &str) {
        if !v.is_empty() {
            self.name(field, v);
        }
    }
    fn display(&mut self, field: &str, v: &str) {
        if v.len() > 1024 || has_control(v) {
            self.bad(field);
        }
    }
    fn resource(&mut self, field: &str, r: Option<&pb::ResourceRef>, required: bool) {
        match r {
            None if required => self.bad(field),
            None => {}
            Some(r) => {
                if bad_type(&r.r#type) {
                    self.bad(format!("{field}.type"));
                }
                self.id(&format!("{field}.id"), &r.id);
            }
        }
    }
    fn subject(&mut self, field: &str, s: Option<&pb::SubjectRef>) {
        use pb::subject_ref::Kind;
        match s.and_then(|s| s.kind.as_ref()) {
            None => self.bad(field),
            Some(Kind::PrincipalId(p)) => self.id(&format!("{field}.principal_id"), p),
            Some(Kind::TeamId(t)) => self.id(&format!("{field}.team_id"), t),
        }
    }
    fn types(&mut self, field: &str, v: &[String]) {
        if v.len() > 64 || v.iter().any(|t| bad_type(t)) {
            self.bad(field);
        }
    }
    /// A resource's links: at most 16, each to a resource, needing a named
    /// action and gating 1 to 16 named actions, no resource linked twice
    /// for one action.
    fn links(&mut self, field: &str, v: &[pb::ResourceLink]) {
        if v.len() > 16 {
            self.bad(field);
            return;
        }
        let mut pairs = BTreeSet::new();
        for (i, l) in v.iter().enumerate() {
            let at = format!("{field}[{i}]");
            self.resource(&format!("{at}.resource"), l.resource.as_ref(), true);
            self.name(&format!("{at}.action"), &l.action);
            if l.on.is_empty() || l.on.len() > 16 {
                self.bad(format!("{at}.on"));
            }
            for (j, a) in l.on.iter().enumerate() {
                self.name(&format!("{at}.on[{j}]"), a);
            }
            let key = l
                .resource
                .as_ref()
                .map(|r| (r.r#type.clone(), r.id.clone(), l.action.clone()));
            if !pairs.insert(key) {
                self.bad(field);
            }
        }
    }
    /// A resource's attributes: at most 16, names like role names but not
    /// `type` or `id`, values of at most 256 bytes.
    fn attributes(&mut self, field: &str, a: &HashMap<String, String>) {
        if a.len() > 16
            || a.iter()
                .any(|(k, v)| bad_name(k) || k == "type" || k == "id" || v.len() > 256)
        {
            self.bad(field);
        }
    }
    fn in_range(&mut self, field: &str, v: i32, range: std::ops::RangeInclusive<i32>) {
        if !range.contains(&v) {
            self.bad(field);
        }
    }
    fn retention(&mut self, days: u32) {
        if days > 3650 {
            self.bad("audit_retention_days");
        }
    }
    /// A page size up to `max` and a page token; audit tokens hold a number.
    fn page(&mut self, size: u32, max: u32, token: &str, numeric: bool) {
        if size > max {
            self.bad("page_size");
        }
        if token.is_empty() {
            return;
        }
        match cursor(token) {
            None => self.bad("page_token"),
            Some(c) if numeric && c.parse::<i64>().is_err() => self.bad("page_token"),
            // A forged token that decodes: the server may take it as a cursor
            // or refuse it (a length limit, say).
            Some(_) => {
                self.maybe.insert("page_token".to_owned());
            }
        }
    }
    /// A timestamp between 1970 and 9999; returns it in milliseconds.
    fn time(&mut self, field: &str, t: Option<&Timestamp>) -> Option<i64> {
        let t = t?;
        if !(0..1_000_000_000).contains(&t.nanos) || !(0..=253_402_300_799).contains(&t.seconds) {
            self.bad(field);
            return None;
        }
        Some(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
    }
    fn context(&mut self, c: &HashMap<String, String>) {
        if c.len() > 64
            || c.iter()
                .any(|(k, v)| k.is_empty() || k.len() > 256 || v.len() > 1024)
        {
            self.bad("context");
        }
    }
    /// A revision token: empty, or a non-negative decimal revision.
    fn consistency(&mut self, w: &World, tenant: &str, token: &str) {
        if token.is_empty() {
            return;
        }
        match token.parse::<i64>() {
            Ok(n) if n >= 0 => {
                if w.revision(tenant).is_some_and(|r| n > r) {
                    self.future_token = true;
                }
            }
            _ => self.bad("consistency_token"),
        }
    }
    /// The fields every write has: tenant, actor (only operator keys may
    /// omit it), request id.
    fn write(&mut self, key: Key, tenant: &str, actor: &str, request_id: &str) {
        self.id("tenant_id", tenant);
        if actor.is_empty() {
            if key != Key::Operator {
                self.bad("actor_id");
            }
        } else {
            self.id("actor_id", actor);
        }
        self.opt_id("request_id", request_id);
    }
    fn role(&mut self, r: Option<&pb::Role>) {
        let Some(r) = r else {
            self.bad("role");
            return;
        };
        if r.permissions.iter().any(|p| bad_permission(p)) {
            self.bad("role.permissions");
        }
        if r.excluded_permissions.iter().any(|p| bad_permission(p)) {
            self.bad("role.excluded_permissions");
        }
        self.name("role.id", &r.id);
        self.display("role.display_name", &r.display_name);
        if (r.permissions.is_empty() && r.inherits.is_empty())
            || r.permissions.len() > 256
            || r.excluded_permissions.len() > 256
        {
            self.bad("role.permissions");
        }
        if r.inherits.len() > 32 || r.inherits.iter().any(|i| bad_name(i) || *i == r.id) {
            self.bad("role.inherits");
        }
        if r.effective_at.is_empty() || r.effective_at.iter().any(|e| e != "*" && bad_name(e)) {
            self.bad("role.effective_at");
        }
    }
}

// ---- the probe: sends, judges, counts ------------------------------------------

/// Counts of one test, for its summary line.
#[derive(Default)]
struct Tally {
    sent: u64,
    codes: BTreeMap<String, u64>,
    rpcs: BTreeMap<String, u64>,
    /// Fields named by INVALID_ARGUMENT answers.
    fields: BTreeMap<String, u64>,
    /// Rules named by FAILED_PRECONDITION answers.
    rules: BTreeMap<String, u64>,
    /// Refused writes after which the store was compared and unchanged.
    unchanged: u64,
    /// Decisions compared with the model (allowed ones).
    decisions: u64,
    allowed: u64,
    /// Full listings compared with the model, and the ids they held.
    lists: u64,
    listed: u64,
    /// Longest error message seen.
    longest_message: usize,
    notes: Vec<String>,
}

/// A test's server, snapshot connection and counters.
struct Probe<'a> {
    app: &'a TestApp,
    label: String,
    db: Snapshotter,
    tally: RefCell<Tally>,
    /// The store as of the last refused write, while no write succeeded since.
    clean: RefCell<Option<Vec<String>>>,
    started: Instant,
}

const ALLOWED_CODES: [Code; 6] = [
    Code::Ok,
    Code::InvalidArgument,
    Code::NotFound,
    Code::FailedPrecondition,
    Code::PermissionDenied,
    Code::AlreadyExists,
];

impl<'a> Probe<'a> {
    async fn new(app: &'a TestApp, name: &str, b: &Backend) -> Probe<'a> {
        Probe {
            app,
            label: format!("hostile::{name} [{}]", backend_name(b)),
            db: Snapshotter::connect(&app.database_url).await,
            tally: RefCell::new(Tally::default()),
            clean: RefCell::new(None),
            started: Instant::now(),
        }
    }

    /// Counts a call made outside [`Probe::judge`] (fixed scenarios).
    fn count<T>(&self, rpc: &str, r: &Result<T, Status>) {
        let mut t = self.tally.borrow_mut();
        t.sent += 1;
        *t.codes.entry(format!("{:?}", code_of(r))).or_default() += 1;
        *t.rpcs.entry(rpc.to_owned()).or_default() += 1;
    }

    fn note(&self, s: impl Into<String>) {
        self.tally.borrow_mut().notes.push(s.into());
    }

    /// Counts a call's answer and checks it against `e`.
    fn judge<T>(&self, rpc: &str, e: &Expect, r: &Result<T, Status>) -> Result<(), TestCaseError> {
        let (code, msg) = match r {
            Ok(_) => (Code::Ok, ""),
            Err(s) => (s.code(), s.message()),
        };
        {
            let mut t = self.tally.borrow_mut();
            t.sent += 1;
            *t.codes.entry(format!("{code:?}")).or_default() += 1;
            *t.rpcs.entry(rpc.to_owned()).or_default() += 1;
            t.longest_message = t.longest_message.max(msg.len());
        }
        let shown = || format!("{rpc} answered {code:?} `{}`", clip(msg, 300));
        if e.oversize {
            return ensure(
                matches!(code, Code::ResourceExhausted | Code::OutOfRange),
                || {
                    format!(
                        "{}: expected RESOURCE_EXHAUSTED or OUT_OF_RANGE for a request over 4 MiB",
                        shown()
                    )
                },
            );
        }
        if e.denied {
            return ensure(code == Code::PermissionDenied, || {
                format!("{}: expected PERMISSION_DENIED for this key", shown())
            });
        }
        if e.future_token && e.invalid.is_empty() {
            // Tokens are per tenant: one ahead of the tenant's revision is not
            // one of its own (README), a client error naming the field.
            return ensure(
                code == Code::InvalidArgument && msg.contains("`consistency_token`"),
                || {
                    format!(
                        "{}: expected INVALID_ARGUMENT naming `consistency_token` for a token ahead of the store",
                        shown()
                    )
                },
            );
        }
        ensure(ALLOWED_CODES.contains(&code), || {
            format!("{}: never acceptable for any input", shown())
        })?;
        match code {
            Code::InvalidArgument => {
                let field = named_field(msg).ok_or_else(|| {
                    fail(format!(
                        "{}: the message names no field in backticks",
                        shown()
                    ))
                })?;
                *self
                    .tally
                    .borrow_mut()
                    .fields
                    .entry(field.to_owned())
                    .or_default() += 1;
                let fields = api().fields.get(rpc).cloned().unwrap_or_default();
                ensure(fields.iter().any(|f| f == field_root(field)), || {
                    format!(
                        "{}: `{field}` is not a field of the request {fields:?}",
                        shown()
                    )
                })?;
                if !e.invalid.is_empty() {
                    ensure(e.invalid.contains(field) || e.maybe.contains(field), || {
                        format!("{}: expected one of {:?} to be named", shown(), e.invalid)
                    })?;
                } else {
                    ensure(!e.strict || e.maybe.contains(field), || {
                        format!("{}: the request is well-formed", shown())
                    })?;
                }
            }
            _ if !e.invalid.is_empty() => {
                return Err(fail(format!(
                    "{}: expected INVALID_ARGUMENT naming one of {:?}",
                    shown(),
                    e.invalid
                )))
            }
            Code::FailedPrecondition => {
                let rule = msg.split_once(':').map_or("", |(r, _)| r);
                ensure(
                    !rule.is_empty() && rule.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    || format!("{}: FAILED_PRECONDITION names no rule", shown()),
                )?;
                *self
                    .tally
                    .borrow_mut()
                    .rules
                    .entry(rule.to_owned())
                    .or_default() += 1;
            }
            _ => {}
        }
        ensure(
            !e.strict || !e.invalid.is_empty() || code == Code::Ok || !e.maybe.is_empty(),
            || format!("{}: a well-formed request must answer OK", shown()),
        )
    }

    /// A read: judged.
    async fn read<T>(
        &self,
        rpc: &str,
        e: &Expect,
        fut: impl Future<Output = Result<T, Status>>,
    ) -> Result<Result<T, Status>, TestCaseError> {
        let r = fut.await;
        self.judge(rpc, e, &r)?;
        Ok(r)
    }

    /// A write: judged, and when refused, the store must be unchanged.
    async fn write<T>(
        &self,
        rpc: &str,
        e: &Expect,
        fut: impl Future<Output = Result<T, Status>>,
    ) -> Result<Result<T, Status>, TestCaseError> {
        let cached = self.clean.borrow_mut().take();
        let before = match cached {
            Some(s) => s,
            None => self.db.snapshot().await,
        };
        let r = fut.await;
        self.judge(rpc, e, &r)?;
        if let Err(status) = &r {
            let after = self.db.snapshot().await;
            if after != before {
                return Err(fail(format!(
                    "{rpc} was refused ({:?} `{}`) but changed the store:\n{}",
                    status.code(),
                    clip(status.message(), 200),
                    diff(&before, &after)
                )));
            }
            self.tally.borrow_mut().unchanged += 1;
            *self.clean.borrow_mut() = Some(after);
        }
        Ok(r)
    }

    /// The server still answers its health check with SERVING.
    async fn serving(&self) -> Result<(), TestCaseError> {
        use tonic_health::pb::health_check_response::ServingStatus;
        let mut h = tonic_health::pb::health_client::HealthClient::new(self.app.channel.clone());
        let r = tokio::time::timeout(
            CALL_TIMEOUT,
            h.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await;
        match r {
            Ok(Ok(resp)) if resp.get_ref().status == ServingStatus::Serving as i32 => Ok(()),
            other => Err(fail(format!(
                "the health check no longer answers SERVING: {other:?}"
            ))),
        }
    }

    /// A call that must be refused with `code` (naming `needle`: the field
    /// of an INVALID_ARGUMENT, the rule of a FAILED_PRECONDITION) and leave
    /// the store unchanged.
    async fn refused<T: fmt::Debug>(
        &self,
        label: &str,
        code: Code,
        needle: &str,
        fut: impl Future<Output = Result<T, Status>>,
    ) -> Status {
        let before = self.db.snapshot().await;
        let r = fut.await;
        {
            let mut t = self.tally.borrow_mut();
            t.sent += 1;
            let c = r.as_ref().err().map_or(Code::Ok, Status::code);
            *t.codes.entry(format!("{c:?}")).or_default() += 1;
            let len = r.as_ref().err().map_or(0, |s| s.message().len());
            t.longest_message = t.longest_message.max(len);
        }
        let status = match r {
            Ok(v) => panic!(
                "{}: {label}: expected {code:?}, got OK {}",
                self.label,
                clip(&format!("{v:?}"), 500)
            ),
            Err(s) => s,
        };
        assert_eq!(
            status.code(),
            code,
            "{}: {label}: `{}`",
            self.label,
            clip(status.message(), 500)
        );
        match code {
            Code::InvalidArgument => assert_eq!(
                named_field(status.message()),
                Some(needle),
                "{}: {label}: `{}`",
                self.label,
                clip(status.message(), 500)
            ),
            Code::FailedPrecondition => assert!(
                status.message().starts_with(&format!("{needle}:")),
                "{}: {label}: expected rule `{needle}`, got `{}`",
                self.label,
                clip(status.message(), 500)
            ),
            _ => assert!(
                status.message().contains(needle),
                "{}: {label}: expected `{needle}` in `{}`",
                self.label,
                clip(status.message(), 500)
            ),
        }
        let after = self.db.snapshot().await;
        assert!(
            before == after,
            "{}: {label}: refused ({code:?}) but changed the store:\n{}",
            self.label,
            diff(&before, &after)
        );
        self.tally.borrow_mut().unchanged += 1;
        status
    }

    /// Checks that every RPC of `services` was exercised, that the server
    /// still serves, and prints the summary line.
    async fn finish(&self, services: &[&str]) {
        if let Err(e) = self.serving().await {
            panic!("{}: {e}", self.label);
        }
        let t = self.tally.borrow();
        for s in services {
            for m in &api().rpcs[*s] {
                let key = format!("{s}/{m}");
                assert!(
                    t.rpcs.get(&key).copied().unwrap_or(0) > 0,
                    "{}: {key} was never exercised; extend tests/api/hostile.rs",
                    self.label
                );
            }
        }
        let mut line = format!(
            "{}: {} requests in {:.1?}; codes {:?}",
            self.label,
            t.sent,
            self.started.elapsed(),
            t.codes
        );
        if !t.rpcs.is_empty() {
            line += &format!("; per RPC {:?}", t.rpcs);
        }
        if t.unchanged > 0 {
            line += &format!(
                "; {} refused writes left the store unchanged (all {} tables)",
                t.unchanged,
                self.db.queries.len()
            );
        }
        if t.decisions > 0 {
            line += &format!(
                "; {} decisions agree with the model ({} allowed)",
                t.decisions, t.allowed
            );
        }
        if !t.fields.is_empty() {
            line += &format!("; INVALID_ARGUMENT fields {:?}", t.fields);
        }
        if !t.rules.is_empty() {
            line += &format!("; FAILED_PRECONDITION rules {:?}", t.rules);
        }
        if t.lists > 0 {
            line += &format!(
                "; {} full listings agree with the model ({} ids)",
                t.lists, t.listed
            );
        }
        if t.longest_message > 0 {
            line += &format!("; longest error message {} bytes", t.longest_message);
        }
        for n in &t.notes {
            line += &format!("; {n}");
        }
        eprintln!("{line}");
    }
}

// ---- hostile strings -----------------------------------------------------------

const CONTROL: &[&str] = &[
    "\0", "\u{1}", "\u{7}", "\t", "\n", "\r", "\u{1b}", "\u{7f}", "\u{85}", "\u{9f}",
];
const ODD: &[&str] = &[
    "tenant",
    "View",
    "Folder",
    "workflow.view",
    "\u{202e}gpj.exe\u{202c}",
    "e\u{301}\u{302}\u{303}\u{304}\u{305}",
    "😀",
    "👩\u{200d}👩\u{200d}👧\u{200d}👦",
    "🏳\u{fe0f}\u{200d}🌈",
    "\u{ffff}",
    "\u{fffe}",
    "\u{fffd}",
    "\u{feff}bom",
    "\u{200b}",
    "\u{2028}",
    "\u{10ffff}",
    "\u{e000}",
    "İstanbul",
    "ß",
    "ｆｕｌｌ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "Ω≈ç√",
];
const SQL: &[&str] = &[
    "' OR 1=1 --",
    "' OR '1'='1",
    "%",
    "_",
    "%%",
    "a%",
    "_a",
    "\\",
    "\\%",
    ";DROP TABLE grant;",
    "'; DROP TABLE tenants; --",
    "\"",
    "''",
    "\" OR \"\"=\"",
    "1; SELECT pg_sleep(30); --",
    "' UNION SELECT * FROM principals --",
    "$1",
    "?",
    "NULL",
    "*",
    "/* */",
    "`",
    "${jndi:ldap://x}",
    "{{7*7}}",
];
const PATHS: &[&str] = &[
    "/",
    "../",
    "..",
    ".",
    "./../../etc/passwd",
    ":",
    "::",
    "a:b",
    "folder:f1",
    "workflow:w1",
    "/1/2/",
    "//",
    "\\\\server\\share",
    "C:\\",
    "~",
    "%2e%2e%2f",
    "?x=1#y",
];
const NUMERIC: &[&str] = &[
    "0",
    "-1",
    "+1",
    "1e9",
    "0x10",
    "١٢",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
];
/// Repeated to make long strings.
const UNITS: &[&str] = &["a", "é", "😀", "'", "%", "\0", "e\u{301}", "/", "\u{202e}"];

/// One short hostile string from the lists above.
fn atom() -> BoxedStrategy<String> {
    let all: Vec<String> = ODD
        .iter()
        .chain(SQL)
        .chain(PATHS)
        .chain(NUMERIC)
        .map(|s| (*s).to_owned())
        .collect();
    select(all).boxed()
}

/// Strings around the documented byte limits (63, 256, 1024).
fn boundary() -> BoxedStrategy<String> {
    select(vec![
        "a".repeat(63),
        "a".repeat(64),
        "a".repeat(255),
        "a".repeat(256),
        "a".repeat(257),
        "é".repeat(128),
        "é".repeat(129),
        "😀".repeat(64),
        "😀".repeat(65),
        "x".repeat(1024),
        "x".repeat(1025),
    ])
    .boxed()
}

/// A hostile string of at most about `max` bytes: empty, control characters,
/// odd Unicode, SQL and path metacharacters, numbers, boundary lengths, long
/// runs, arbitrary text.
fn hostile_upto(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        1 => Just(String::new()),
        3 => atom(),
        2 => (atom(), atom()).prop_map(|(a, b)| a + &b),
        2 => (select(CONTROL), "[a-z]{0,6}", "[a-z]{0,6}").prop_map(|(c, a, b)| format!("{a}{c}{b}")),
        2 => boundary(),
        1 => (1..=max, select(UNITS)).prop_map(|(n, u)| u.repeat((n / u.len()).max(1))),
        2 => any::<String>(),
        1 => vec(any::<char>(), 0..32).prop_map(String::from_iter),
    ]
    .boxed()
}

/// A hostile string of up to about 100 KB.
fn hostile() -> BoxedStrategy<String> {
    hostile_upto(100_000)
}

/// Builds a strategy for a field in one of two modes: `h` (hostile) mixes
/// hostile strings in; otherwise only values of the seeded world (and
/// well-formed numbers and tokens) are used, so that the request is
/// well-formed.
///
/// Mostly a value of `pool`, sometimes hostile, sometimes a pool value with a
/// hostile suffix.
fn pick_upto(pool: &[String], max: usize, h: bool) -> BoxedStrategy<String> {
    if !h {
        return select(pool.to_vec()).boxed();
    }
    prop_oneof![
        5 => select(pool.to_vec()),
        2 => hostile_upto(max),
        1 => (select(pool.to_vec()), atom()).prop_map(|(a, b)| a + &b),
    ]
    .boxed()
}

fn pick(pool: &[String], h: bool) -> BoxedStrategy<String> {
    pick_upto(pool, 100_000, h)
}

/// Empty (unset) or [`pick`].
fn pick_opt(pool: &[String], h: bool) -> BoxedStrategy<String> {
    prop_oneof![1 => Just(String::new()), 3 => pick(pool, h)].boxed()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn display_name(h: bool) -> BoxedStrategy<String> {
    let nice = select(strings(&["", "A name", "名前 ☃", "O'Brien & Sons"]));
    if !h {
        return nice.boxed();
    }
    prop_oneof![2 => nice, 1 => hostile()].boxed()
}

fn resource_ref(p: &Pools, max: usize, h: bool) -> BoxedStrategy<pb::ResourceRef> {
    (pick_upto(&p.types, max, h), pick_upto(&p.ids, max, h))
        .prop_map(|(t, id)| pb::ResourceRef {
            r#type: t,
            id,
            ..Default::default()
        })
        .boxed()
}

/// A resource reference; missing with weight `none` (in clean mode, only
/// when `optional`).
fn opt_resource(
    p: &Pools,
    optional: bool,
    max: usize,
    h: bool,
) -> BoxedStrategy<Option<pb::ResourceRef>> {
    let some = resource_ref(p, max, h).prop_map(Some);
    match (optional, h) {
        (false, false) => some.boxed(),
        (false, true) => prop_oneof![1 => Just(None), 8 => some].boxed(),
        (true, _) => prop_oneof![3 => Just(None), 8 => some].boxed(),
    }
}

fn subject_ref(p: &Pools, h: bool) -> BoxedStrategy<Option<pb::SubjectRef>> {
    use pb::subject_ref::Kind;
    let principal = pick(&p.principals, h).prop_map(|x| {
        Some(pb::SubjectRef {
            kind: Some(Kind::PrincipalId(x)),
            ..Default::default()
        })
    });
    let team = pick(&p.teams, h).prop_map(|x| {
        Some(pb::SubjectRef {
            kind: Some(Kind::TeamId(x)),
            ..Default::default()
        })
    });
    if !h {
        return prop_oneof![4 => principal, 3 => team].boxed();
    }
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(pb::SubjectRef { kind: None, ..Default::default() })),
        4 => principal,
        3 => team,
    ]
    .boxed()
}

/// Any i32, mostly the enum's values `0..=max` (only those in clean mode).
fn enum_value(max: i32, h: bool) -> BoxedStrategy<i32> {
    if !h {
        return (0..=max).boxed();
    }
    prop_oneof![5 => 0..=max, 1 => Just(max + 1), 1 => Just(-1), 1 => any::<i32>()].boxed()
}

/// Resource attributes: a valid one, or (hostile) too many, a reserved or
/// malformed name, an oversized value.
fn links(p: &Pools, h: bool) -> BoxedStrategy<Vec<pb::ResourceLink>> {
    let one = |to: Option<pb::ResourceRef>, action: &str, on: &[&str]| pb::ResourceLink {
        resource: to,
        action: action.to_owned(),
        on: on.iter().map(|a| (*a).to_owned()).collect(),
    };
    let target = resource_ref(p, 100_000, h);
    let valid = prop_oneof![
        2 => Just(Vec::new()),
        3 => target.clone().prop_map(move |r| vec![one(Some(r), "view", &["edit"])]),
        1 => (target.clone(), target.clone()).prop_map(move |(a, b)| vec![
            one(Some(a), "view", &["edit", "execute"]),
            one(Some(b), "edit", &["execute"]),
        ]),
    ];
    if !h {
        return valid.boxed();
    }
    prop_oneof![
        6 => valid,
        1 => Just(vec![one(None, "view", &["edit"])]),
        1 => target.clone().prop_map(move |r| vec![one(Some(r), "Bad Name", &["edit"])]),
        1 => target.clone().prop_map(move |r| vec![one(Some(r), "view", &[])]),
        1 => target.clone().prop_map(move |r| vec![one(Some(r), "view", &["edit", "no way"])]),
        1 => target.clone().prop_map(move |r| vec![
            one(Some(r.clone()), "view", &["edit"]),
            one(Some(r), "view", &["execute"]),
        ]),
        1 => target.prop_map(move |r| (0..17).map(|_| one(Some(r.clone()), "view", &["edit"])).collect()),
    ]
    .boxed()
}

fn attributes(h: bool) -> BoxedStrategy<HashMap<String, String>> {
    let one = |k: &str, v: String| HashMap::from([(k.to_owned(), v)]);
    let valid = prop_oneof![
        Just(HashMap::new()),
        Just(one("user", "alice".into())),
        Just(one("tier", "gold".into())),
    ];
    if !h {
        return valid.boxed();
    }
    prop_oneof![
        4 => valid,
        1 => Just(one("id", "x".into())),
        1 => Just(one("Bad Name", "x".into())),
        1 => Just(one("user", "v".repeat(300))),
        1 => Just((0..17).map(|i| (format!("a{i}"), String::new())).collect()),
    ]
    .boxed()
}

fn page_size(max: u32, h: bool) -> BoxedStrategy<u32> {
    if !h {
        return prop_oneof![3 => Just(0u32), 3 => 1u32..=4, 1 => Just(max)].boxed();
    }
    prop_oneof![
        3 => Just(0u32),
        3 => 1u32..=4,
        1 => Just(max),
        1 => Just(max + 1),
        1 => Just(u32::MAX),
        1 => any::<u32>(),
    ]
    .boxed()
}

/// Page tokens: empty, forged (`k1:` + a cursor, as Portcullis makes them),
/// garbage, base64 of garbage, huge.
fn page_token(ids: &[String], numeric: bool, h: bool) -> BoxedStrategy<String> {
    if !h {
        return Just(String::new()).boxed();
    }
    let forged = if numeric {
        prop_oneof![any::<i64>().prop_map(|n| n.to_string()), hostile_upto(600)].boxed()
    } else {
        pick_upto(ids, 600, true)
    };
    prop_oneof![
        5 => Just(String::new()),
        2 => forged.prop_map(|c| URL_SAFE_NO_PAD.encode(format!("k1:{c}"))),
        2 => hostile_upto(5_000),
        1 => vec(any::<u8>(), 0..96).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        1 => vec(any::<u8>(), 0..96).prop_map(|b| STANDARD.encode(b)),
        1 => (1025usize..20_000).prop_map(|n| "A".repeat(n)),
    ]
    .boxed()
}

/// Consistency tokens: empty, revisions the tenants had (all of them at or
/// below the current one in clean mode), numbers of every shape, garbage.
fn consistency_token(w: &World, h: bool) -> BoxedStrategy<String> {
    let past = select(w.revisions()).prop_map(|r| r.to_string());
    if !h {
        return prop_oneof![3 => Just(String::new()), 1 => past].boxed();
    }
    prop_oneof![
        6 => Just(String::new()),
        3 => past,
        2 => select(strings(NUMERIC)),
        1 => (0i64..=i64::MAX).prop_map(|n| n.to_string()),
        2 => hostile_upto(10_000),
        1 => vec(any::<u8>(), 0..48).prop_map(|b| STANDARD.encode(b)),
    ]
    .boxed()
}

fn request_id(h: bool) -> BoxedStrategy<String> {
    let few = select(strings(&["req-1", "req-2", INJECT]));
    if !h {
        return prop_oneof![4 => Just(String::new()), 1 => few].boxed();
    }
    prop_oneof![4 => Just(String::new()), 1 => few, 1 => hostile()].boxed()
}

/// Timestamps: unset, future, past, anything.
fn timestamp(now_s: i64, h: bool) -> BoxedStrategy<Option<Timestamp>> {
    let future = (now_s + 86_400..now_s + 86_400 * 3650)
        .prop_map(|seconds| Some(Timestamp { seconds, nanos: 0 }));
    if !h {
        return prop_oneof![3 => Just(None), 1 => future].boxed();
    }
    prop_oneof![
        3 => Just(None),
        2 => future,
        1 => (0..now_s).prop_map(|seconds| Some(Timestamp { seconds, nanos: 0 })),
        1 => (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| Some(Timestamp { seconds, nanos })),
    ]
    .boxed()
}

fn type_list(p: &Pools, h: bool) -> BoxedStrategy<Vec<String>> {
    if !h {
        return vec(select(p.types.clone()), 0..3).boxed();
    }
    prop_oneof![
        4 => vec(pick(&p.types, true), 0..4),
        1 => Just(vec!["workflow".to_owned(); 65]),
    ]
    .boxed()
}

fn retention(h: bool) -> BoxedStrategy<u32> {
    if !h {
        return prop_oneof![Just(0u32), 1u32..=3650].boxed();
    }
    prop_oneof![Just(0u32), 1u32..=3650, Just(3651u32), any::<u32>()].boxed()
}

fn permission(p: &Pools, h: bool) -> BoxedStrategy<String> {
    let mut types = p.types.clone();
    types.push("*".into());
    let mut actions = p.actions.clone();
    actions.push("*".into());
    let pattern = (pick_upto(&types, 300, h), pick_upto(&actions, 300, h))
        .prop_map(|(t, a)| format!("{t}.{a}"));
    if !h {
        return pattern.boxed();
    }
    // At most 4 KB: a longer malformed pattern is echoed into an error
    // message the client cannot read (`a_malformed_permission_is_not_echoed_in_full`).
    prop_oneof![
        4 => pattern,
        1 => select(strings(&["*.*", "*.", ".*", "*", "a.b.c", "Workflow.view", "workflow .view", "tenant.manage_members"])),
        1 => hostile_upto(4_000),
    ]
    .boxed()
}

fn role_def(p: &Pools, h: bool) -> BoxedStrategy<Option<pb::Role>> {
    let mut ids = p.roles.clone();
    ids.extend(strings(&["new_role", "other_role"]));
    let effective: BoxedStrategy<String> = if h {
        prop_oneof![
            3 => select(strings(&["tenant", "*", "workflow", "folder"])),
            1 => hostile_upto(2_000),
        ]
        .boxed()
    } else {
        select(strings(&["tenant", "*", "workflow", "folder"])).boxed()
    };
    let (perms, effective_at) = if h { (0..4, 0..3) } else { (1..4, 1..3) };
    let role = (
        pick(&ids, h),
        display_name(h),
        vec(permission(p, h), perms),
        vec(permission(p, h), 0..2),
        vec(pick_upto(&ids, 2_000, h), 0..3),
        vec(effective, effective_at),
    )
        .prop_map(
            |(id, display_name, permissions, excluded_permissions, inherits, effective_at)| {
                Some(pb::Role {
                    id,
                    display_name,
                    permissions,
                    excluded_permissions,
                    inherits,
                    effective_at,
                    locked: false,
                    ..Default::default()
                })
            },
        );
    if !h {
        return role.boxed();
    }
    prop_oneof![
        1 => Just(None),
        8 => role,
        1 => pick(&ids, true).prop_map(|id| Some(pb::Role {
            id,
            permissions: (0..257).map(|i| format!("t{i}.view")).collect(),
            effective_at: vec!["*".into()],
            ..Default::default()
        })),
    ]
    .boxed()
}

// ---- the seeded world and its model ----------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Active,
    Invited,
    Suspended,
    Removed,
}

/// What a tenant of the seeded world holds, and who may do what on it.
#[derive(Debug, Default)]
struct TenantModel {
    revision: i64,
    principals: BTreeMap<String, St>,
    resources: BTreeSet<(String, String)>,
    actions: BTreeSet<String>,
    /// (subject, action, type, id) allowed.
    allowed: BTreeSet<[String; 4]>,
    /// Denied by an explicit deny grant.
    denied: BTreeSet<[String; 4]>,
}

impl TenantModel {
    fn allow(&mut self, subject: &str, actions: &[&str], rtype: &str, id: &str) {
        for a in actions {
            self.allowed
                .insert([subject, a, rtype, id].map(str::to_owned));
        }
    }
}

/// Values of each kind that exist in the seeded world (plus a few that
/// don't), to mix with hostile strings.
#[derive(Debug, Clone)]
struct Pools {
    tenants: Vec<String>,
    actors: Vec<String>,
    principals: Vec<String>,
    teams: Vec<String>,
    roles: Vec<String>,
    types: Vec<String>,
    ids: Vec<String>,
    actions: Vec<String>,
    grants: Vec<String>,
}

struct World {
    tenants: BTreeMap<String, TenantModel>,
    pools: Pools,
    now_s: i64,
}

impl World {
    /// Every (tenant, subject, action, type, id) the model allows.
    fn allowed(&self) -> Vec<[String; 5]> {
        self.tenants
            .iter()
            .flat_map(|(t, m)| {
                m.allowed.iter().map(move |[s, a, ty, id]| {
                    [t.clone(), s.clone(), a.clone(), ty.clone(), id.clone()]
                })
            })
            .collect()
    }

    fn revision(&self, tenant: &str) -> Option<i64> {
        self.tenants.get(tenant).map(|t| t.revision)
    }

    fn revisions(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.tenants.values().map(|t| t.revision).collect();
        v.extend([0, 1]);
        v.extend(self.tenants.values().map(|t| t.revision - 1));
        v
    }

    /// The model's answer to a well-formed check: allowed, and the reason
    /// when the model knows it.
    fn decide(&self, t: &str, s: &str, a: &str, ty: &str, id: &str) -> (bool, Option<pb::Reason>) {
        use pb::Reason as R;
        let Some(m) = self.tenants.get(t) else {
            return (false, Some(R::UnknownTenant));
        };
        match m.principals.get(s) {
            None => return (false, Some(R::UnknownPrincipal)),
            Some(St::Invited) => return (false, Some(R::PrincipalInvited)),
            Some(St::Suspended) => return (false, Some(R::PrincipalSuspended)),
            Some(St::Removed) => return (false, Some(R::PrincipalRemoved)),
            Some(St::Active) => {}
        }
        if !m.resources.contains(&(ty.to_owned(), id.to_owned())) {
            return (false, Some(R::UnknownResource));
        }
        if !m.actions.contains(a) {
            return (false, Some(R::UnknownPermission));
        }
        let key = [s, a, ty, id].map(str::to_owned);
        if m.allowed.contains(&key) {
            (true, Some(R::Granted))
        } else if m.denied.contains(&key) {
            (false, Some(R::ExplicitDeny))
        } else {
            (false, None)
        }
    }

    /// Compares a decision with the model.
    fn verify(
        &self,
        t: &str,
        s: &str,
        a: &str,
        r: &pb::ResourceRef,
        allowed: bool,
        reason: i32,
    ) -> Result<(), String> {
        let (want, why) = self.decide(t, s, a, &r.r#type, &r.id);
        let shown = || {
            format!(
                "{}/{}/{}/{}:{} answered allowed={allowed} reason={:?}",
                clip(t, 60),
                clip(s, 60),
                clip(a, 60),
                clip(&r.r#type, 60),
                clip(&r.id, 60),
                pb::Reason::try_from(reason)
            )
        };
        if allowed != want {
            return Err(format!(
                "{}; the model says allowed={want} ({why:?})",
                shown()
            ));
        }
        if let Some(why) = why {
            if reason != why as i32 {
                return Err(format!("{}; the model says {why:?}", shown()));
            }
        }
        Ok(())
    }

    /// Ids of `ty` the subject may `a`, ascending.
    fn accessible(&self, t: &str, s: &str, a: &str, ty: &str) -> Vec<String> {
        let Some(m) = self.tenants.get(t) else {
            return Vec::new();
        };
        let ids: BTreeSet<String> = m
            .allowed
            .iter()
            .filter(|[ss, aa, tt, _]| ss == s && aa == a && tt == ty)
            .map(|[_, _, _, id]| id.clone())
            .collect();
        ids.into_iter().collect()
    }

    /// Principals who may `a` on the resource, ascending.
    fn subjects(&self, t: &str, r: &pb::ResourceRef, a: &str) -> Vec<String> {
        let Some(m) = self.tenants.get(t) else {
            return Vec::new();
        };
        let who: BTreeSet<String> = m
            .allowed
            .iter()
            .filter(|[_, aa, tt, id]| aa == a && *tt == r.r#type && *id == r.id)
            .map(|[s, ..]| s.clone())
            .collect();
        who.into_iter().collect()
    }
}

/// Creates the world the random tests probe, and its model.
async fn seed(app: &TestApp) -> World {
    use pb::PrincipalKind::User;
    use pb::PrincipalStatus as S;
    let mut op = app.operator();
    app.user("alice").await;
    app.principal("bob", User, S::Active).await;
    app.principal("carol", User, S::Invited).await;
    app.user("dave").await;
    app.user(OBRIEN).await;
    app.user(HAN).await;
    app.team("eng").await;
    app.team("t%").await;
    app.add_member("eng", "carol").await.expect("member");
    app.add_member("t%", "alice").await.expect("member");
    app.role("runner", &["workflow.run"], &[], &["*"])
        .await
        .expect("custom role");
    app.resource("workspace:ws1", None).await;
    app.resource("folder:f1", Some("workspace:ws1")).await;
    app.resource("workflow:w1", Some("folder:f1")).await;
    app.resource(&format!("workflow:{SALE}"), Some("workspace:ws1"))
        .await;
    app.private_resource(&format!("folder:{PASSWD}"), Some("workspace:ws1"))
        .await;
    app.resource(
        &format!("workflow:{INJECT}"),
        Some(&format!("folder:{PASSWD}")),
    )
    .await;
    app.resource("folder:f_", None).await;
    app.private_resource(&format!("workflow:{RTL}"), Some("folder:f1"))
        .await;
    app.owned_resource("project:p1", None, "alice").await;
    let mut grants = vec![
        app.grant("alice", "editor", "folder:f1").await.id,
        app.deny("alice", "viewer", "workflow:w1").await.id,
        app.grant("bob", "editor", "workspace:ws1").await.id,
        app.grant("team:eng", "viewer", "workspace:ws1").await.id,
        app.grant("team:t%", "viewer", &format!("workflow:{INJECT}"))
            .await
            .id,
        app.grant(OBRIEN, "viewer", &format!("workflow:{SALE}"))
            .await
            .id,
        app.grant(HAN, "editor", &format!("folder:{PASSWD}"))
            .await
            .id,
    ];
    grants.push("0190a0a0-0000-7000-8000-000000000000".into());
    app.set_status("", "bob", S::Suspended)
        .await
        .expect("suspend");
    app.set_status("", "dave", S::Removed)
        .await
        .expect("remove");

    // Another tenant where `alice` is someone else, and one whose id is hostile.
    op.create_tenant(pb::CreateTenantRequest {
        tenant_id: "globex".into(),
        display_name: "Globex".into(),
        first_admin: Some(pb::FirstAdmin {
            principal_id: "globex-admin".into(),
            display_name: "G".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("globex");
    op.create_principal(pb::CreatePrincipalRequest {
        tenant_id: "globex".into(),
        principal_id: "alice".into(),
        status: S::Active as i32,
        ..Default::default()
    })
    .await
    .expect("globex alice");
    op.create_resource(pb::CreateResourceRequest {
        tenant_id: "globex".into(),
        resource: Some(res("workspace:ws1")),
        ..Default::default()
    })
    .await
    .expect("globex ws1");
    op.create_grant(pb::CreateGrantRequest {
        tenant_id: "globex".into(),
        subject: Some(subj("alice")),
        role_id: "owner".into(),
        scope: Some(res("workspace:ws1")),
        ..Default::default()
    })
    .await
    .expect("globex grant");
    op.create_tenant(pb::CreateTenantRequest {
        tenant_id: WEIRD_TENANT.into(),
        display_name: "Weird".into(),
        first_admin: Some(pb::FirstAdmin {
            principal_id: "root".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("weird tenant");

    // The model.
    let mut acme = TenantModel::default();
    for (p, s) in [
        (ADMIN, St::Active),
        ("alice", St::Active),
        ("bob", St::Suspended),
        ("carol", St::Invited),
        ("dave", St::Removed),
        (OBRIEN, St::Active),
        (HAN, St::Active),
    ] {
        acme.principals.insert(p.to_owned(), s);
    }
    for (t, id) in [
        ("workspace", "ws1"),
        ("folder", "f1"),
        ("workflow", "w1"),
        ("workflow", SALE),
        ("folder", PASSWD),
        ("workflow", INJECT),
        ("folder", "f_"),
        ("workflow", RTL),
        ("project", "p1"),
    ] {
        acme.resources.insert((t.to_owned(), id.to_owned()));
    }
    acme.actions = BUILTIN
        .iter()
        .chain(&["run"])
        .map(|s| (*s).to_owned())
        .collect();
    let acme_actions: Vec<&str> = BUILTIN.iter().copied().chain(["run"]).collect();
    acme.allow(ADMIN, &ACCOUNT_ADMIN_ON_WORKSPACE, "workspace", "ws1");
    acme.allow("alice", &EDITOR, "folder", "f1");
    acme.allow("alice", &EDITOR[1..], "workflow", "w1");
    acme.denied
        .insert(["alice", "view", "workflow", "w1"].map(str::to_owned));
    acme.allow("alice", &["view"], "workflow", INJECT);
    acme.allow("alice", &acme_actions, "project", "p1");
    acme.allow(OBRIEN, &["view"], "workflow", SALE);
    acme.allow(HAN, &EDITOR, "folder", PASSWD);
    acme.allow(HAN, &EDITOR, "workflow", INJECT);

    let mut globex = TenantModel::default();
    globex.principals.insert("globex-admin".into(), St::Active);
    globex.principals.insert("alice".into(), St::Active);
    globex.resources.insert(("workspace".into(), "ws1".into()));
    globex.actions = BUILTIN.iter().map(|s| (*s).to_owned()).collect();
    globex.allow("alice", &BUILTIN, "workspace", "ws1");
    globex.allow(
        "globex-admin",
        &ACCOUNT_ADMIN_ON_WORKSPACE,
        "workspace",
        "ws1",
    );

    let mut weird = TenantModel::default();
    weird.principals.insert("root".into(), St::Active);
    weird.actions = BUILTIN.iter().map(|s| (*s).to_owned()).collect();

    let mut tenants = BTreeMap::new();
    tenants.insert(TENANT.to_owned(), acme);
    tenants.insert("globex".to_owned(), globex);
    tenants.insert(WEIRD_TENANT.to_owned(), weird);
    for (t, m) in tenants.iter_mut() {
        let r = app
            .checker()
            .check(pb::CheckRequest {
                tenant_id: t.clone(),
                principal_id: "nobody".into(),
                action: "view".into(),
                resource: Some(res("workspace:ws1")),
                ..Default::default()
            })
            .await
            .expect("revision")
            .into_inner();
        m.revision = r.consistency_token.parse().expect("decimal revision");
    }

    let pools = Pools {
        tenants: strings(&[TENANT, "globex", WEIRD_TENANT, "initech"]),
        actors: strings(&[ADMIN, "alice", "bob", "ghost"]),
        principals: strings(&[
            ADMIN,
            "alice",
            "bob",
            "carol",
            "dave",
            OBRIEN,
            HAN,
            "globex-admin",
            "root",
            "ghost",
        ]),
        teams: strings(&["eng", "t%", "ghost-team"]),
        roles: strings(&[
            "viewer",
            "editor",
            "admin",
            "owner",
            "account_admin",
            "runner",
            "ghost_role",
        ]),
        types: strings(&["workspace", "folder", "workflow", "project", "draft"]),
        ids: strings(&[
            "ws1", "f1", "w1", SALE, PASSWD, INJECT, "f_", RTL, "p1", "ghost",
        ]),
        actions: BUILTIN
            .iter()
            .chain(&["run", "frobnicate"])
            .map(|s| (*s).to_owned())
            .collect(),
        grants,
    };
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    World {
        tenants,
        pools,
        now_s,
    }
}

// ---- CheckService ------------------------------------------------------------------

/// One generated CheckService call.
#[derive(Clone)]
enum CheckCall {
    One(pb::CheckRequest),
    Batch(pb::BatchCheckRequest),
}

impl fmt::Debug for CheckCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CheckCall::One(r) => format!("{r:?}"),
            CheckCall::Batch(r) => format!("{r:?}"),
        };
        f.write_str(&clip(&s, 4_000))
    }
}

fn context(h: bool) -> BoxedStrategy<HashMap<String, String>> {
    if !h {
        return Just(HashMap::new()).boxed();
    }
    prop_oneof![
        6 => Just(HashMap::new()),
        2 => vec((hostile_upto(2_000), hostile_upto(2_000)), 1..4).prop_map(|v| v.into_iter().collect()),
        1 => Just((0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect()),
        1 => Just((0..64).map(|i| (format!("k{i}"), "v".to_owned())).collect()),
    ]
    .boxed()
}

fn check_request(w: &World, h: bool) -> BoxedStrategy<pb::CheckRequest> {
    let p = &w.pools;
    let random = (
        pick(&p.tenants, h),
        pick(&p.principals, h),
        pick(&p.actions, h),
        opt_resource(p, false, 100_000, h),
    );
    // Well-formed questions are half about something the model allows.
    let question = if h {
        random.boxed()
    } else {
        prop_oneof![
            1 => random,
            1 => select(w.allowed()).prop_map(|[t, s, a, ty, id]| (t, s, a, Some(pb::ResourceRef { r#type: ty, id, ..Default::default() }))),
        ]
        .boxed()
    };
    (question, context(h), consistency_token(w, h), any::<bool>())
        .prop_map(
            |((tenant_id, subject_id, action, resource), context, consistency_token, explain)| {
                pb::CheckRequest {
                    tenant_id,
                    principal_id: subject_id,
                    action,
                    resource,
                    context,
                    consistency_token,
                    explain,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

fn batch_request(w: &World, h: bool) -> BoxedStrategy<pb::BatchCheckRequest> {
    let p = &w.pools;
    let item = (
        pick_upto(&p.principals, 2_000, h),
        pick_upto(&p.actions, 2_000, h),
        opt_resource(p, false, 2_000, h),
    )
        .prop_map(|(subject_id, action, resource)| pb::BatchCheckItem {
            principal_id: subject_id,
            action,
            resource,
            ..Default::default()
        });
    let items = if h {
        prop_oneof![1 => Just(Vec::new()), 12 => vec(item, 1..16)].boxed()
    } else {
        let allowed = select(w.allowed()).prop_map(|[_, s, a, ty, id]| pb::BatchCheckItem {
            principal_id: s,
            action: a,
            resource: Some(pb::ResourceRef {
                r#type: ty,
                id,
                ..Default::default()
            }),
            ..Default::default()
        });
        vec(prop_oneof![item, allowed], 1..16).boxed()
    };
    (
        pick(&p.tenants, h),
        items,
        consistency_token(w, h),
        any::<bool>(),
    )
        .prop_map(
            |(tenant_id, items, consistency_token, explain)| pb::BatchCheckRequest {
                tenant_id,
                items,
                consistency_token,
                explain,
                ..Default::default()
            },
        )
        .boxed()
}

fn expect_check(w: &World, r: &pb::CheckRequest) -> Expect {
    let mut e = Expect::strict();
    e.id("tenant_id", &r.tenant_id);
    e.id("principal_id", &r.principal_id);
    e.name("action", &r.action);
    e.resource("resource", r.resource.as_ref(), true);
    e.context(&r.context);
    e.consistency(w, &r.tenant_id, &r.consistency_token);
    e.oversize = prost::Message::encoded_len(r) > MAX_MESSAGE;
    e
}

fn expect_batch(w: &World, r: &pb::BatchCheckRequest) -> Expect {
    let mut e = Expect::strict();
    e.id("tenant_id", &r.tenant_id);
    if r.items.is_empty() || r.items.len() > 5_000 {
        e.bad("items");
    }
    for (i, it) in r.items.iter().enumerate() {
        e.id(&format!("items[{i}].principal_id"), &it.principal_id);
        e.name(&format!("items[{i}].action"), &it.action);
        e.resource(&format!("items[{i}].resource"), it.resource.as_ref(), true);
    }
    e.consistency(w, &r.tenant_id, &r.consistency_token);
    e.oversize = prost::Message::encoded_len(r) > MAX_MESSAGE;
    e
}

impl Probe<'_> {
    async fn check_case(&self, w: &World, call: CheckCall) -> Result<(), TestCaseError> {
        match call {
            CheckCall::One(req) => {
                let rpc = "CheckService/Check";
                let e = expect_check(w, &req);
                let r = self
                    .read(rpc, &e, bounded(self.app.checker().check(req.clone())))
                    .await?;
                if let Ok(first) = r {
                    let resource = req.resource.clone().unwrap_or_default();
                    w.verify(
                        &req.tenant_id,
                        &req.principal_id,
                        &req.action,
                        &resource,
                        first.allowed,
                        first.reason,
                    )
                    .map_err(fail)?;
                    let revision = w.revision(&req.tenant_id).unwrap_or(0).to_string();
                    ensure(first.consistency_token == revision, || {
                        format!(
                            "Check answered at revision {} instead of {revision}",
                            first.consistency_token
                        )
                    })?;
                    ensure(first.explanation.is_some() == req.explain, || {
                        format!(
                            "explain={} but explanation {:?}",
                            req.explain, first.explanation
                        )
                    })?;
                    {
                        let mut t = self.tally.borrow_mut();
                        t.decisions += 1;
                        t.allowed += u64::from(first.allowed);
                    }
                    // The same question again: the same answer.
                    let again = self
                        .read(rpc, &e, bounded(self.app.checker().check(req.clone())))
                        .await?
                        .map_err(|s| fail(format!("the same Check, asked again, failed: {s:?}")))?;
                    ensure(
                        (
                            again.allowed,
                            again.reason,
                            &again.consistency_token,
                            &again.explanation,
                        ) == (
                            first.allowed,
                            first.reason,
                            &first.consistency_token,
                            &first.explanation,
                        ),
                        || format!("the same Check answered {first:?}, then {again:?}"),
                    )?;
                }
            }
            CheckCall::Batch(req) => {
                let rpc = "CheckService/BatchCheck";
                let e = expect_batch(w, &req);
                let r = self
                    .read(
                        rpc,
                        &e,
                        bounded(self.app.checker().batch_check(req.clone())),
                    )
                    .await?;
                if let Ok(answer) = r {
                    ensure(answer.results.len() == req.items.len(), || {
                        format!(
                            "{} results for {} items",
                            answer.results.len(),
                            req.items.len()
                        )
                    })?;
                    for (i, (it, res)) in req.items.iter().zip(&answer.results).enumerate() {
                        let resource = it.resource.clone().unwrap_or_default();
                        w.verify(
                            &req.tenant_id,
                            &it.principal_id,
                            &it.action,
                            &resource,
                            res.allowed,
                            res.reason,
                        )
                        .map_err(|m| fail(format!("BatchCheck item {i}: {m}")))?;
                        ensure(res.explanation.is_some() == req.explain, || {
                            format!(
                                "item {i}: explain={} but explanation {:?}",
                                req.explain, res.explanation
                            )
                        })?;
                        let mut t = self.tally.borrow_mut();
                        t.decisions += 1;
                        t.allowed += u64::from(res.allowed);
                    }
                    let revision = w.revision(&req.tenant_id).unwrap_or(0).to_string();
                    ensure(answer.consistency_token == revision, || {
                        format!(
                            "BatchCheck answered at revision {} instead of {revision}",
                            answer.consistency_token
                        )
                    })?;
                }
            }
        }
        self.serving().await
    }
}

async fn check_service_random(b: Backend) {
    let app = spawn_app_on(b.clone()).await;
    let world = seed(&app).await;
    let probe = Probe::new(&app, "check_service_random", &b).await;
    let strategy = prop_oneof![
        3 => check_request(&world, true).prop_map(CheckCall::One),
        3 => check_request(&world, false).prop_map(CheckCall::One),
        1 => batch_request(&world, true).prop_map(CheckCall::Batch),
        1 => batch_request(&world, false).prop_map(CheckCall::Batch),
    ];
    run_cases(&probe.label, cases(600), strategy, |call| {
        block(probe.check_case(&world, call))
    });
    probe.finish(&["CheckService"]).await;
}

// ---- ListAccessibleService -----------------------------------------------------

/// One generated ListAccessibleService call.
#[derive(Clone)]
enum ListCall {
    Accessible(pb::ListAccessibleRequest),
    Subjects(pb::ListSubjectsRequest),
}

impl fmt::Debug for ListCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ListCall::Accessible(r) => format!("{r:?}"),
            ListCall::Subjects(r) => format!("{r:?}"),
        };
        f.write_str(&clip(&s, 4_000))
    }
}

fn list_accessible_request(w: &World, h: bool) -> BoxedStrategy<pb::ListAccessibleRequest> {
    let p = &w.pools;
    let random = (
        pick(&p.tenants, h),
        pick(&p.principals, h),
        pick(&p.actions, h),
        pick(&p.types, h),
    );
    let question = if h {
        random.boxed()
    } else {
        prop_oneof![1 => random, 1 => select(w.allowed()).prop_map(|[t, s, a, ty, _]| (t, s, a, ty))].boxed()
    };
    (
        question,
        page_size(10_000, h),
        page_token(&p.ids, false, h),
        consistency_token(w, h),
    )
        .prop_map(
            |(
                (tenant_id, subject_id, action, resource_type),
                page_size,
                page_token,
                consistency_token,
            )| {
                pb::ListAccessibleRequest {
                    tenant_id,
                    principal_id: subject_id,
                    action,
                    resource_type,
                    page_size,
                    page_token,
                    consistency_token,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

fn list_subjects_request(w: &World, h: bool) -> BoxedStrategy<pb::ListSubjectsRequest> {
    let p = &w.pools;
    let random = (
        pick(&p.tenants, h),
        opt_resource(p, false, 100_000, h),
        pick(&p.actions, h),
    );
    let question = if h {
        random.boxed()
    } else {
        prop_oneof![
            1 => random,
            1 => select(w.allowed()).prop_map(|[t, _, a, ty, id]| (t, Some(pb::ResourceRef { r#type: ty, id, ..Default::default() }), a)),
        ]
        .boxed()
    };
    (
        question,
        page_size(10_000, h),
        page_token(&p.principals, false, h),
        consistency_token(w, h),
    )
        .prop_map(
            |((tenant_id, resource, action), page_size, page_token, consistency_token)| {
                pb::ListSubjectsRequest {
                    tenant_id,
                    resource,
                    action,
                    page_size,
                    page_token,
                    consistency_token,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

/// Ids of `want` after the request's cursor, if it had one.
fn after_cursor(want: Vec<String>, token: &str) -> Vec<String> {
    match cursor(token) {
        Some(c) if !token.is_empty() => want.into_iter().filter(|x| *x > c).collect(),
        _ => want,
    }
}

impl Probe<'_> {
    async fn list_case(&self, w: &World, call: ListCall) -> Result<(), TestCaseError> {
        match call {
            ListCall::Accessible(req) => {
                let rpc = "ListAccessibleService/ListAccessible";
                let mut e = Expect::strict();
                e.id("tenant_id", &req.tenant_id);
                e.id("principal_id", &req.principal_id);
                e.name("action", &req.action);
                if bad_type(&req.resource_type) {
                    e.bad("resource_type");
                }
                e.page(req.page_size, 10_000, &req.page_token, false);
                e.consistency(w, &req.tenant_id, &req.consistency_token);
                e.oversize = prost::Message::encoded_len(&req) > MAX_MESSAGE;
                let r = self
                    .read(
                        rpc,
                        &e,
                        bounded(self.app.lister().list_accessible(req.clone())),
                    )
                    .await?;
                let Ok(mut page) = r else {
                    return self.serving().await;
                };
                let limit = if req.page_size == 0 {
                    1_000
                } else {
                    req.page_size as usize
                };
                let revision = w.revision(&req.tenant_id).unwrap_or(0).to_string();
                let mut got = Vec::new();
                for pages in 1.. {
                    ensure(page.resource_ids.len() <= limit, || {
                        format!(
                            "a page of {} ids for page_size {}",
                            page.resource_ids.len(),
                            req.page_size
                        )
                    })?;
                    ensure(page.consistency_token == revision, || {
                        format!(
                            "ListAccessible answered at revision {} instead of {revision}",
                            page.consistency_token
                        )
                    })?;
                    got.extend(page.resource_ids);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    ensure(pages < 200, || "more than 200 pages".to_owned())?;
                    let next = pb::ListAccessibleRequest {
                        page_token: page.next_page_token.clone(),
                        ..req.clone()
                    };
                    page = self
                        .read(
                            rpc,
                            &Expect::strict(),
                            bounded(self.app.lister().list_accessible(next)),
                        )
                        .await?
                        .map_err(|s| fail(format!("the next page was refused: {s:?}")))?;
                }
                let want = after_cursor(
                    w.accessible(
                        &req.tenant_id,
                        &req.principal_id,
                        &req.action,
                        &req.resource_type,
                    ),
                    &req.page_token,
                );
                ensure(got == want, || {
                    format!("ListAccessible listed {got:?}; the model says {want:?}")
                })?;
                let mut t = self.tally.borrow_mut();
                t.lists += 1;
                t.listed += got.len() as u64;
            }
            ListCall::Subjects(req) => {
                let rpc = "ListAccessibleService/ListSubjects";
                let mut e = Expect::strict();
                e.id("tenant_id", &req.tenant_id);
                e.resource("resource", req.resource.as_ref(), true);
                e.name("action", &req.action);
                e.page(req.page_size, 10_000, &req.page_token, false);
                e.consistency(w, &req.tenant_id, &req.consistency_token);
                e.oversize = prost::Message::encoded_len(&req) > MAX_MESSAGE;
                let r = self
                    .read(
                        rpc,
                        &e,
                        bounded(self.app.lister().list_subjects(req.clone())),
                    )
                    .await?;
                let Ok(mut page) = r else {
                    return self.serving().await;
                };
                let limit = if req.page_size == 0 {
                    1_000
                } else {
                    req.page_size as usize
                };
                let mut got = Vec::new();
                for pages in 1.. {
                    ensure(page.principal_ids.len() <= limit, || {
                        format!(
                            "a page of {} ids for page_size {}",
                            page.principal_ids.len(),
                            req.page_size
                        )
                    })?;
                    got.extend(page.principal_ids);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    ensure(pages < 200, || "more than 200 pages".to_owned())?;
                    let next = pb::ListSubjectsRequest {
                        page_token: page.next_page_token.clone(),
                        ..req.clone()
                    };
                    page = self
                        .read(
                            rpc,
                            &Expect::strict(),
                            bounded(self.app.lister().list_subjects(next)),
                        )
                        .await?
                        .map_err(|s| fail(format!("the next page was refused: {s:?}")))?;
                }
                let resource = req.resource.clone().unwrap_or_default();
                let want = after_cursor(
                    w.subjects(&req.tenant_id, &resource, &req.action),
                    &req.page_token,
                );
                ensure(got == want, || {
                    format!("ListSubjects listed {got:?}; the model says {want:?}")
                })?;
                let mut t = self.tally.borrow_mut();
                t.lists += 1;
                t.listed += got.len() as u64;
            }
        }
        self.serving().await
    }
}

async fn list_service_random(b: Backend) {
    let app = spawn_app_on(b.clone()).await;
    let world = seed(&app).await;
    let probe = Probe::new(&app, "list_service_random", &b).await;
    let strategy = prop_oneof![
        1 => list_accessible_request(&world, true).prop_map(ListCall::Accessible),
        1 => list_accessible_request(&world, false).prop_map(ListCall::Accessible),
        1 => list_subjects_request(&world, true).prop_map(ListCall::Subjects),
        1 => list_subjects_request(&world, false).prop_map(ListCall::Subjects),
    ];
    run_cases(&probe.label, cases(400), strategy, |call| {
        block(probe.list_case(&world, call))
    });
    probe.finish(&["ListAccessibleService"]).await;
}

// ---- AdminService --------------------------------------------------------------

/// The API key a generated admin call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Operator,
    Admin,
    Check,
}

impl Key {
    fn secret(self) -> &'static str {
        match self {
            Key::Operator => OPERATOR_KEY,
            Key::Admin => ADMIN_KEY,
            Key::Check => CHECK_KEY,
        }
    }
}

macro_rules! admin_rpcs {
    ($($v:ident($req:ident, $resp:ident) = $m:ident, $write:literal;)+) => {
        /// A request of any AdminService RPC.
        #[derive(Clone, Debug)]
        enum Req { $($v(pb::$req),)+ }

        /// Its answer.
        #[allow(dead_code)]
        enum Resp { $($v(pb::$resp),)+ }

        impl Req {
            fn rpc(&self) -> &'static str {
                match self { $(Req::$v(_) => stringify!($v),)+ }
            }
            fn is_write(&self) -> bool {
                match self { $(Req::$v(_) => $write,)+ }
            }
            fn encoded_len(&self) -> usize {
                match self { $(Req::$v(r) => prost::Message::encoded_len(r),)+ }
            }
            async fn send(self, c: &mut AdminServiceClient<Authed>) -> Result<Resp, Status> {
                match self { $(Req::$v(r) => bounded(c.$m(r)).await.map(Resp::$v),)+ }
            }
        }
    };
}

admin_rpcs! {
    CreateTenant(CreateTenantRequest, CreateTenantResponse) = create_tenant, true;
    GetTenant(GetTenantRequest, GetTenantResponse) = get_tenant, false;
    ListTenants(ListTenantsRequest, ListTenantsResponse) = list_tenants, false;
    UpdateTenant(UpdateTenantRequest, UpdateTenantResponse) = update_tenant, true;
    CreateResource(CreateResourceRequest, CreateResourceResponse) = create_resource, true;
    GetResource(GetResourceRequest, GetResourceResponse) = get_resource, false;
    ListResources(ListResourcesRequest, ListResourcesResponse) = list_resources, false;
    MoveResource(MoveResourceRequest, MoveResourceResponse) = move_resource, true;
    SetResourcePrivate(SetResourcePrivateRequest, SetResourcePrivateResponse) = set_resource_private, true;
    SetResourceAttributes(SetResourceAttributesRequest, SetResourceAttributesResponse) = set_resource_attributes, true;
    SetResourceRestricted(SetResourceRestrictedRequest, SetResourceRestrictedResponse) = set_resource_restricted, true;
    SetResourceLinks(SetResourceLinksRequest, SetResourceLinksResponse) = set_resource_links, true;
    PreviewChange(PreviewChangeRequest, PreviewChangeResponse) = preview_change, false;
    DeleteResource(DeleteResourceRequest, DeleteResourceResponse) = delete_resource, true;
    TransferOwnership(TransferOwnershipRequest, TransferOwnershipResponse) = transfer_ownership, true;
    CreatePrincipal(CreatePrincipalRequest, CreatePrincipalResponse) = create_principal, true;
    GetPrincipal(GetPrincipalRequest, GetPrincipalResponse) = get_principal, false;
    ListPrincipals(ListPrincipalsRequest, ListPrincipalsResponse) = list_principals, false;
    SetPrincipalStatus(SetPrincipalStatusRequest, SetPrincipalStatusResponse) = set_principal_status, true;
    AcceptInvitation(AcceptInvitationRequest, AcceptInvitationResponse) = accept_invitation, true;
    CreateTeam(CreateTeamRequest, CreateTeamResponse) = create_team, true;
    ListTeams(ListTeamsRequest, ListTeamsResponse) = list_teams, false;
    DeleteTeam(DeleteTeamRequest, DeleteTeamResponse) = delete_team, true;
    AddTeamMember(AddTeamMemberRequest, AddTeamMemberResponse) = add_team_member, true;
    RemoveTeamMember(RemoveTeamMemberRequest, RemoveTeamMemberResponse) = remove_team_member, true;
    ListTeamMembers(ListTeamMembersRequest, ListTeamMembersResponse) = list_team_members, false;
    CreateRole(CreateRoleRequest, CreateRoleResponse) = create_role, true;
    GetRole(GetRoleRequest, GetRoleResponse) = get_role, false;
    ListRoles(ListRolesRequest, ListRolesResponse) = list_roles, false;
    UpdateRole(UpdateRoleRequest, UpdateRoleResponse) = update_role, true;
    DeleteRole(DeleteRoleRequest, DeleteRoleResponse) = delete_role, true;
    CreateGrant(CreateGrantRequest, CreateGrantResponse) = create_grant, true;
    DeleteGrant(DeleteGrantRequest, DeleteGrantResponse) = delete_grant, true;
    ListGrants(ListGrantsRequest, ListGrantsResponse) = list_grants, false;
    GetAccessOverview(GetAccessOverviewRequest, GetAccessOverviewResponse) = get_access_overview, false;
    ListAuditEvents(ListAuditEventsRequest, ListAuditEventsResponse) = list_audit_events, false;
}

/// One generated AdminService call.
#[derive(Clone)]
struct AdminCall {
    key: Key,
    req: Req,
}

impl fmt::Debug for AdminCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&clip(&format!("{:?} {:?}", self.key, self.req), 4_000))
    }
}

/// Generated requests of every AdminService RPC, writes weighted up.
fn admin_requests(w: &World, h: bool) -> BoxedStrategy<Req> {
    let p = &w.pools;
    let now_s = w.now_s;
    let t = || pick(&p.tenants, h);
    let a = || pick_opt(&p.actors, h);
    let rr = || resource_ref(p, 100_000, h).prop_map(Some);
    let orr = || opt_resource(p, true, 100_000, h);
    let first_admin = prop::option::of((pick(&p.principals, h), enum_value(2, h), display_name(h)))
        .prop_map(|fa| {
            fa.map(|(principal_id, kind, display_name)| pb::FirstAdmin {
                principal_id,
                kind,
                display_name,
                ..Default::default()
            })
        });
    let arms: Vec<(u32, BoxedStrategy<Req>)> = vec![
        (
            2,
            (
                t(),
                display_name(h),
                type_list(p, h),
                type_list(p, h),
                retention(h),
                first_admin,
                request_id(h),
            )
                .prop_map(
                    |(
                        tenant_id,
                        display_name,
                        single_owner_types,
                        creator_owner_types,
                        audit_retention_days,
                        first_admin,
                        request_id,
                    )| {
                        Req::CreateTenant(pb::CreateTenantRequest {
                            tenant_id,
                            display_name,
                            single_owner_types,
                            creator_owner_types,
                            audit_retention_days,
                            first_admin,
                            request_id,
                            ..Default::default()
                        })
                    },
                )
                .boxed(),
        ),
        (
            1,
            t().prop_map(|tenant_id| {
                Req::GetTenant(pb::GetTenantRequest {
                    tenant_id,
                    ..Default::default()
                })
            })
            .boxed(),
        ),
        (
            1,
            (page_size(1_000, h), page_token(&p.tenants, false, h))
                .prop_map(|(page_size, page_token)| {
                    Req::ListTenants(pb::ListTenantsRequest {
                        page_size,
                        page_token,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            2,
            (
                t(),
                a(),
                display_name(h),
                type_list(p, h),
                type_list(p, h),
                retention(h),
                request_id(h),
            )
                .prop_map(
                    |(
                        tenant_id,
                        actor_id,
                        display_name,
                        single_owner_types,
                        creator_owner_types,
                        audit_retention_days,
                        request_id,
                    )| {
                        Req::UpdateTenant(pb::UpdateTenantRequest {
                            tenant_id,
                            actor_id,
                            display_name,
                            single_owner_types,
                            creator_owner_types,
                            audit_retention_days,
                            request_id,
                            ..Default::default()
                        })
                    },
                )
                .boxed(),
        ),
        (
            4,
            (
                t(),
                a(),
                opt_resource(p, false, 100_000, h),
                orr(),
                any::<bool>(),
                pick_opt(&p.principals, h),
                request_id(h),
                prop_oneof![3 => Just(Vec::new()), 1 => links(p, h)],
            )
                .prop_map(
                    |(
                        tenant_id,
                        actor_id,
                        resource,
                        parent,
                        private,
                        owner_id,
                        request_id,
                        links,
                    )| {
                        Req::CreateResource(pb::CreateResourceRequest {
                            tenant_id,
                            actor_id,
                            resource,
                            parent,
                            private,
                            owner_id,
                            request_id,
                            links,
                            ..Default::default()
                        })
                    },
                )
                .boxed(),
        ),
        (
            1,
            (t(), opt_resource(p, false, 100_000, h))
                .prop_map(|(tenant_id, resource)| {
                    Req::GetResource(pb::GetResourceRequest {
                        tenant_id,
                        resource,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (
                t(),
                orr(),
                page_size(1_000, h),
                page_token(&p.ids, false, h),
            )
                .prop_map(|(tenant_id, parent, page_size, page_token)| {
                    Req::ListResources(pb::ListResourcesRequest {
                        tenant_id,
                        parent,
                        page_size,
                        page_token,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            3,
            (
                t(),
                a(),
                opt_resource(p, false, 100_000, h),
                orr(),
                request_id(h),
            )
                .prop_map(|(tenant_id, actor_id, resource, new_parent, request_id)| {
                    Req::MoveResource(pb::MoveResourceRequest {
                        tenant_id,
                        actor_id,
                        resource,
                        new_parent,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            2,
            (
                t(),
                a(),
                opt_resource(p, false, 100_000, h),
                any::<bool>(),
                request_id(h),
            )
                .prop_map(|(tenant_id, actor_id, resource, private, request_id)| {
                    Req::SetResourcePrivate(pb::SetResourcePrivateRequest {
                        tenant_id,
                        actor_id,
                        resource,
                        private,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (
                t(),
                a(),
                opt_resource(p, false, 100_000, h),
                any::<bool>(),
                request_id(h),
            )
                .prop_map(|(tenant_id, actor_id, resource, restricted, request_id)| {
                    Req::SetResourceRestricted(pb::SetResourceRestrictedRequest {
                        tenant_id,
                        actor_id,
                        resource,
                        restricted,
                        request_id,
                    })
                })
                .boxed(),
        ),
        (
            1,
            (
                t(),
                a(),
                opt_resource(p, false, 100_000, h),
                links(p, h),
                request_id(h),
            )
                .prop_map(|(tenant_id, actor_id, resource, links, request_id)| {
                    Req::SetResourceLinks(pb::SetResourceLinksRequest {
                        tenant_id,
                        actor_id,
                        resource,
                        links,
                        request_id,
                    })
                })
                .boxed(),
        ),
        (
            1,
            (
                t(),
                a(),
                opt_resource(p, false, 100_000, h),
                attributes(h),
                request_id(h),
            )
                .prop_map(|(tenant_id, actor_id, resource, attributes, request_id)| {
                    Req::SetResourceAttributes(pb::SetResourceAttributesRequest {
                        tenant_id,
                        actor_id,
                        resource,
                        attributes,
                        request_id,
                    })
                })
                .boxed(),
        ),
        (
            1,
            (t(), a(), opt_resource(p, false, 100_000, h), request_id(h))
                .prop_map(|(tenant_id, actor_id, resource, request_id)| {
                    Req::DeleteResource(pb::DeleteResourceRequest {
                        tenant_id,
                        actor_id,
                        resource,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            2,
            (
                t(),
                a(),
                rr(),
                pick(&p.principals, h),
                pick_opt(&p.roles, h),
                request_id(h),
            )
                .prop_map(
                    |(
                        tenant_id,
                        actor_id,
                        resource,
                        new_owner_id,
                        previous_owner_role_id,
                        request_id,
                    )| {
                        Req::TransferOwnership(pb::TransferOwnershipRequest {
                            tenant_id,
                            actor_id,
                            resource,
                            new_owner_id,
                            previous_owner_role_id,
                            request_id,
                            ..Default::default()
                        })
                    },
                )
                .boxed(),
        ),
        (
            3,
            (
                t(),
                a(),
                pick(&p.principals, h),
                enum_value(2, h),
                display_name(h),
                enum_value(4, h),
                request_id(h),
            )
                .prop_map(
                    |(
                        tenant_id,
                        actor_id,
                        principal_id,
                        kind,
                        display_name,
                        status,
                        request_id,
                    )| {
                        Req::CreatePrincipal(pb::CreatePrincipalRequest {
                            tenant_id,
                            actor_id,
                            principal_id,
                            kind,
                            display_name,
                            status,
                            request_id,
                            ..Default::default()
                        })
                    },
                )
                .boxed(),
        ),
        (
            1,
            (t(), pick(&p.principals, h))
                .prop_map(|(tenant_id, principal_id)| {
                    Req::GetPrincipal(pb::GetPrincipalRequest {
                        tenant_id,
                        principal_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (
                t(),
                page_size(1_000, h),
                page_token(&p.principals, false, h),
            )
                .prop_map(|(tenant_id, page_size, page_token)| {
                    Req::ListPrincipals(pb::ListPrincipalsRequest {
                        tenant_id,
                        page_size,
                        page_token,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            2,
            (
                t(),
                a(),
                pick(&p.principals, h),
                enum_value(4, h),
                request_id(h),
            )
                .prop_map(|(tenant_id, actor_id, principal_id, status, request_id)| {
                    Req::SetPrincipalStatus(pb::SetPrincipalStatusRequest {
                        tenant_id,
                        actor_id,
                        principal_id,
                        status,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (t(), a(), pick(&p.principals, h), request_id(h))
                .prop_map(|(tenant_id, actor_id, principal_id, request_id)| {
                    Req::AcceptInvitation(pb::AcceptInvitationRequest {
                        tenant_id,
                        actor_id,
                        principal_id,
                        request_id,
                    })
                })
                .boxed(),
        ),
        (
            2,
            (t(), a(), pick(&p.teams, h), display_name(h), request_id(h))
                .prop_map(|(tenant_id, actor_id, team_id, display_name, request_id)| {
                    Req::CreateTeam(pb::CreateTeamRequest {
                        tenant_id,
                        actor_id,
                        team_id,
                        display_name,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (t(), page_size(1_000, h), page_token(&p.teams, false, h))
                .prop_map(|(tenant_id, page_size, page_token)| {
                    Req::ListTeams(pb::ListTeamsRequest {
                        tenant_id,
                        page_size,
                        page_token,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (t(), a(), pick(&p.teams, h), request_id(h))
                .prop_map(|(tenant_id, actor_id, team_id, request_id)| {
                    Req::DeleteTeam(pb::DeleteTeamRequest {
                        tenant_id,
                        actor_id,
                        team_id,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            3,
            (
                t(),
                a(),
                pick(&p.teams, h),
                subject_ref(p, h),
                request_id(h),
            )
                .prop_map(|(tenant_id, actor_id, team_id, member, request_id)| {
                    Req::AddTeamMember(pb::AddTeamMemberRequest {
                        tenant_id,
                        actor_id,
                        team_id,
                        member,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            2,
            (
                t(),
                a(),
                pick(&p.teams, h),
                subject_ref(p, h),
                request_id(h),
            )
                .prop_map(|(tenant_id, actor_id, team_id, member, request_id)| {
                    Req::RemoveTeamMember(pb::RemoveTeamMemberRequest {
                        tenant_id,
                        actor_id,
                        team_id,
                        member,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (t(), pick(&p.teams, h))
                .prop_map(|(tenant_id, team_id)| {
                    Req::ListTeamMembers(pb::ListTeamMembersRequest {
                        tenant_id,
                        team_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            3,
            (t(), a(), role_def(p, h), request_id(h))
                .prop_map(|(tenant_id, actor_id, role, request_id)| {
                    Req::CreateRole(pb::CreateRoleRequest {
                        tenant_id,
                        actor_id,
                        role,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (t(), pick(&p.roles, h))
                .prop_map(|(tenant_id, role_id)| {
                    Req::GetRole(pb::GetRoleRequest {
                        tenant_id,
                        role_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            t().prop_map(|tenant_id| {
                Req::ListRoles(pb::ListRolesRequest {
                    tenant_id,
                    ..Default::default()
                })
            })
            .boxed(),
        ),
        (
            2,
            (t(), a(), role_def(p, h), request_id(h))
                .prop_map(|(tenant_id, actor_id, role, request_id)| {
                    Req::UpdateRole(pb::UpdateRoleRequest {
                        tenant_id,
                        actor_id,
                        role,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (t(), a(), pick(&p.roles, h), any::<bool>(), request_id(h))
                .prop_map(|(tenant_id, actor_id, role_id, cascade, request_id)| {
                    Req::DeleteRole(pb::DeleteRoleRequest {
                        tenant_id,
                        actor_id,
                        role_id,
                        cascade,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            4,
            (
                t(),
                a(),
                subject_ref(p, h),
                pick(&p.roles, h),
                orr(),
                enum_value(2, h),
                timestamp(now_s, h),
                request_id(h),
            )
                .prop_map(
                    |(
                        tenant_id,
                        actor_id,
                        subject,
                        role_id,
                        scope,
                        effect,
                        expire_time,
                        request_id,
                    )| {
                        Req::CreateGrant(pb::CreateGrantRequest {
                            tenant_id,
                            actor_id,
                            subject,
                            role_id,
                            scope,
                            effect,
                            expire_time,
                            request_id,
                            ..Default::default()
                        })
                    },
                )
                .boxed(),
        ),
        (
            2,
            (t(), a(), pick(&p.grants, h), request_id(h))
                .prop_map(|(tenant_id, actor_id, grant_id, request_id)| {
                    Req::DeleteGrant(pb::DeleteGrantRequest {
                        tenant_id,
                        actor_id,
                        grant_id,
                        request_id,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (
                t(),
                a(),
                pick(&p.grants, h),
                request_id(h),
                page_size(10_000, h),
                prop::bool::weighted(if h { 0.8 } else { 1.0 }),
            )
                .prop_map(
                    |(tenant_id, actor_id, grant_id, request_id, page_size, named)| {
                        Req::PreviewChange(pb::PreviewChangeRequest {
                            change: named.then_some(
                                pb::preview_change_request::Change::DeleteGrant(
                                    pb::DeleteGrantRequest {
                                        tenant_id,
                                        actor_id,
                                        grant_id,
                                        request_id,
                                    },
                                ),
                            ),
                            page_size,
                            page_token: String::new(),
                        })
                    },
                )
                .boxed(),
        ),
        (
            1,
            (
                t(),
                prop_oneof![2 => Just(None), 3 => subject_ref(p, h)],
                orr(),
                page_size(1_000, h),
                page_token(&p.grants, false, h),
            )
                .prop_map(|(tenant_id, subject, scope, page_size, page_token)| {
                    Req::ListGrants(pb::ListGrantsRequest {
                        tenant_id,
                        subject,
                        scope,
                        page_size,
                        page_token,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            1,
            (t(), pick(&p.principals, h), pick_opt(&p.types, h))
                .prop_map(|(tenant_id, principal_id, scope_type)| {
                    Req::GetAccessOverview(pb::GetAccessOverviewRequest {
                        tenant_id,
                        principal_id,
                        scope_type,
                        ..Default::default()
                    })
                })
                .boxed(),
        ),
        (
            2,
            (
                t(),
                pick_opt(&strings(&[ADMIN, "alice", "super_user"]), h),
                pick_opt(
                    &strings(&["grant.create", "resource.create", "principal.set_status"]),
                    h,
                ),
                pick_opt(
                    &strings(&[
                        "principal:",
                        "resource:folder:",
                        "grant:",
                        "resource:workflow:' OR",
                        "%",
                        "_",
                    ]),
                    h,
                ),
                timestamp(now_s, h),
                timestamp(now_s, h),
                page_size(1_000, h),
                page_token(&[], true, h),
            )
                .prop_map(
                    |(
                        tenant_id,
                        actor,
                        action,
                        target_prefix,
                        start_time,
                        end_time,
                        page_size,
                        page_token,
                    )| {
                        Req::ListAuditEvents(pb::ListAuditEventsRequest {
                            tenant_id,
                            actor,
                            action,
                            target_prefix,
                            start_time,
                            end_time,
                            page_size,
                            page_token,
                            ..Default::default()
                        })
                    },
                )
                .boxed(),
        ),
    ];
    Union::new_weighted(arms).boxed()
}

/// What the documented limits say about an admin request sent with `key`.
fn expect_admin(req: &Req, key: Key, now_ms: i64) -> Expect {
    let mut e = Expect {
        oversize: req.encoded_len() > MAX_MESSAGE,
        ..Expect::default()
    };
    let operator_only = matches!(req, Req::CreateTenant(_) | Req::ListTenants(_));
    if key == Key::Check || (key == Key::Admin && operator_only) {
        e.denied = true;
        return e;
    }
    match req {
        Req::CreateTenant(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.opt_id("request_id", &r.request_id);
            e.display("display_name", &r.display_name);
            e.types("single_owner_types", &r.single_owner_types);
            e.types("creator_owner_types", &r.creator_owner_types);
            e.retention(r.audit_retention_days);
            if let Some(a) = &r.first_admin {
                e.id("first_admin.principal_id", &a.principal_id);
                e.in_range("first_admin.kind", a.kind, 0..=2);
                e.display("first_admin.display_name", &a.display_name);
            }
        }
        Req::GetTenant(r) => e.id("tenant_id", &r.tenant_id),
        Req::ListTenants(r) => e.page(r.page_size, 1_000, &r.page_token, false),
        Req::UpdateTenant(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.display("display_name", &r.display_name);
            e.types("single_owner_types", &r.single_owner_types);
            e.types("creator_owner_types", &r.creator_owner_types);
            e.retention(r.audit_retention_days);
        }
        Req::CreateResource(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.resource("resource", r.resource.as_ref(), true);
            e.resource("parent", r.parent.as_ref(), false);
            e.opt_id("owner_id", &r.owner_id);
            e.links("links", &r.links);
        }
        Req::GetResource(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.resource("resource", r.resource.as_ref(), true);
        }
        Req::ListResources(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.resource("parent", r.parent.as_ref(), false);
            e.page(r.page_size, 1_000, &r.page_token, false);
        }
        Req::MoveResource(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.resource("resource", r.resource.as_ref(), true);
            e.resource("new_parent", r.new_parent.as_ref(), false);
        }
        Req::SetResourcePrivate(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.resource("resource", r.resource.as_ref(), true);
        }
        Req::SetResourceRestricted(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.resource("resource", r.resource.as_ref(), true);
        }
        Req::SetResourceLinks(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.resource("resource", r.resource.as_ref(), true);
            e.links("links", &r.links);
        }
        Req::SetResourceAttributes(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.resource("resource", r.resource.as_ref(), true);
            e.attributes("attributes", &r.attributes);
        }
        Req::DeleteResource(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.resource("resource", r.resource.as_ref(), true);
        }
        Req::TransferOwnership(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.resource("resource", r.resource.as_ref(), true);
            e.id("new_owner_id", &r.new_owner_id);
            e.opt_name("previous_owner_role_id", &r.previous_owner_role_id);
        }
        Req::CreatePrincipal(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.id("principal_id", &r.principal_id);
            e.in_range("kind", r.kind, 0..=2);
            // A new principal is invited or active (or unspecified).
            e.in_range("status", r.status, 0..=2);
            e.display("display_name", &r.display_name);
        }
        Req::GetPrincipal(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.id("principal_id", &r.principal_id);
        }
        Req::ListPrincipals(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.page(r.page_size, 1_000, &r.page_token, false);
        }
        Req::SetPrincipalStatus(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.id("principal_id", &r.principal_id);
            e.in_range("status", r.status, 1..=4);
        }
        Req::AcceptInvitation(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.id("principal_id", &r.principal_id);
        }
        Req::CreateTeam(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.id("team_id", &r.team_id);
            e.display("display_name", &r.display_name);
        }
        Req::ListTeams(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.page(r.page_size, 1_000, &r.page_token, false);
        }
        Req::DeleteTeam(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.id("team_id", &r.team_id);
        }
        Req::AddTeamMember(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.id("team_id", &r.team_id);
            e.subject("member", r.member.as_ref());
        }
        Req::RemoveTeamMember(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.id("team_id", &r.team_id);
            e.subject("member", r.member.as_ref());
        }
        Req::ListTeamMembers(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.id("team_id", &r.team_id);
        }
        Req::CreateRole(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.role(r.role.as_ref());
        }
        Req::GetRole(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.name("role_id", &r.role_id);
        }
        Req::ListRoles(r) => e.id("tenant_id", &r.tenant_id),
        Req::UpdateRole(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.role(r.role.as_ref());
        }
        Req::DeleteRole(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.name("role_id", &r.role_id);
        }
        Req::CreateGrant(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.subject("subject", r.subject.as_ref());
            e.name("role_id", &r.role_id);
            e.resource("scope", r.scope.as_ref(), false);
            e.in_range("effect", r.effect, 0..=2);
            if e.time("expire_time", r.expire_time.as_ref())
                .is_some_and(|ms| ms <= now_ms + 60_000)
            {
                // "Must be in the future": refused once the write gets that far.
                e.maybe.insert("expire_time".to_owned());
            }
        }
        Req::DeleteGrant(r) => {
            e.write(key, &r.tenant_id, &r.actor_id, &r.request_id);
            e.id("grant_id", &r.grant_id);
        }
        Req::PreviewChange(r) => {
            // The write's own refusals are answers; the call's reach
            // (tenant, actor, request id) and its page are the call's.
            e.page(r.page_size, 10_000, &r.page_token, true);
            match &r.change {
                Some(pb::preview_change_request::Change::DeleteGrant(w)) => {
                    // Named within the change: `delete_grant.actor_id`.
                    let mut inner = Expect::default();
                    inner.write(key, &w.tenant_id, &w.actor_id, &w.request_id);
                    for f in inner.invalid {
                        e.bad(format!("delete_grant.{f}"));
                    }
                    e.maybe
                        .extend(inner.maybe.into_iter().map(|f| format!("delete_grant.{f}")));
                }
                _ => e.bad("change"),
            }
        }
        Req::ListGrants(r) => {
            e.id("tenant_id", &r.tenant_id);
            if let Some(s) = &r.subject {
                e.subject("subject", Some(s));
            }
            e.resource("scope", r.scope.as_ref(), false);
            e.page(r.page_size, 1_000, &r.page_token, false);
        }
        Req::GetAccessOverview(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.id("principal_id", &r.principal_id);
            e.opt_name("scope_type", &r.scope_type);
        }
        Req::ListAuditEvents(r) => {
            e.id("tenant_id", &r.tenant_id);
            e.opt_id("actor", &r.actor);
            e.opt_id("action", &r.action);
            e.opt_id("target_prefix", &r.target_prefix);
            e.time("start_time", r.start_time.as_ref());
            e.time("end_time", r.end_time.as_ref());
            e.page(r.page_size, 1_000, &r.page_token, true);
        }
    }
    e
}

fn millis(t: Option<&Timestamp>) -> Option<i64> {
    t.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Checks an admin answer against its request: page sizes, filters, ids.
fn verify_admin(req: &Req, resp: &Resp) -> Result<(), TestCaseError> {
    let limit = |size: u32| if size == 0 { 100 } else { size as usize };
    match (req, resp) {
        (Req::GetTenant(r), Resp::GetTenant(x)) => ensure(
            x.tenant.as_ref().is_some_and(|t| t.id == r.tenant_id),
            || format!("GetTenant answered {:?}", x.tenant),
        ),
        (Req::ListTenants(r), Resp::ListTenants(x)) => {
            ensure(x.tenants.len() <= limit(r.page_size), || {
                format!("{} tenants for page_size {}", x.tenants.len(), r.page_size)
            })
        }
        (Req::GetResource(r), Resp::GetResource(x)) => ensure(
            x.resource
                .as_ref()
                .is_some_and(|res| res.r#ref == r.resource),
            || format!("GetResource answered {:?}", x.resource),
        ),
        (Req::ListResources(r), Resp::ListResources(x)) => {
            ensure(x.resources.len() <= limit(r.page_size), || {
                format!(
                    "{} resources for page_size {}",
                    x.resources.len(),
                    r.page_size
                )
            })?;
            ensure(x.resources.iter().all(|res| res.parent == r.parent), || {
                format!(
                    "ListResources of parent {:?} answered {:?}",
                    r.parent, x.resources
                )
            })
        }
        (Req::GetPrincipal(r), Resp::GetPrincipal(x)) => ensure(
            x.principal.as_ref().is_some_and(|p| p.id == r.principal_id),
            || format!("GetPrincipal answered {:?}", x.principal),
        ),
        (Req::ListPrincipals(r), Resp::ListPrincipals(x)) => {
            ensure(x.principals.len() <= limit(r.page_size), || {
                format!(
                    "{} principals for page_size {}",
                    x.principals.len(),
                    r.page_size
                )
            })
        }
        (Req::ListTeams(r), Resp::ListTeams(x)) => {
            ensure(x.teams.len() <= limit(r.page_size), || {
                format!("{} teams for page_size {}", x.teams.len(), r.page_size)
            })
        }
        (Req::GetRole(r), Resp::GetRole(x)) => ensure(
            x.role.as_ref().is_some_and(|role| role.id == r.role_id),
            || format!("GetRole answered {:?}", x.role),
        ),
        (Req::ListGrants(r), Resp::ListGrants(x)) => {
            ensure(x.grants.len() <= limit(r.page_size), || {
                format!("{} grants for page_size {}", x.grants.len(), r.page_size)
            })?;
            ensure(
                x.grants.iter().all(|g| {
                    (r.subject.is_none() || g.subject == r.subject)
                        && (r.scope.is_none() || g.scope == r.scope)
                }),
                || {
                    format!(
                        "ListGrants filtered by {:?} / {:?} answered {:?}",
                        r.subject, r.scope, x.grants
                    )
                },
            )
        }
        (Req::ListAuditEvents(r), Resp::ListAuditEvents(x)) => {
            ensure(x.events.len() <= limit(r.page_size), || {
                format!("{} events for page_size {}", x.events.len(), r.page_size)
            })?;
            ensure(x.events.windows(2).all(|p| p[0].id > p[1].id), || {
                "audit events are not newest first".to_owned()
            })?;
            let start = millis(r.start_time.as_ref());
            let end = millis(r.end_time.as_ref());
            for ev in &x.events {
                let at = millis(ev.time.as_ref()).unwrap_or_default();
                let ok = (r.actor.is_empty() || ev.actor == r.actor)
                    && (r.action.is_empty() || ev.action == r.action)
                    && ev.target.starts_with(&r.target_prefix)
                    && start.is_none_or(|s| at >= s)
                    && end.is_none_or(|e| at < e);
                ensure(ok, || {
                    format!(
                        "audit event {} ({} {} {} at {at}) does not match the filter of {}",
                        ev.id,
                        ev.actor,
                        ev.action,
                        ev.target,
                        clip(&format!("{r:?}"), 600)
                    )
                })?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl Probe<'_> {
    async fn admin_case(&self, w: &World, call: AdminCall) -> Result<(), TestCaseError> {
        let AdminCall { key, req } = call;
        let rpc = format!("AdminService/{}", req.rpc());
        let e = expect_admin(&req, key, w.now_s * 1000);
        let mut client = self.app.admin_with_key(key.secret());
        let r = if req.is_write() {
            self.write(&rpc, &e, req.clone().send(&mut client)).await?
        } else {
            self.read(&rpc, &e, req.clone().send(&mut client)).await?
        };
        if let Ok(resp) = &r {
            verify_admin(&req, resp)?;
        }
        self.serving().await
    }
}

async fn admin_service_random(b: Backend) {
    let app = spawn_app_on(b.clone()).await;
    let world = seed(&app).await;
    let probe = Probe::new(&app, "admin_service_random", &b).await;
    let strategy = (
        prop_oneof![17 => Just(Key::Operator), 2 => Just(Key::Admin), 1 => Just(Key::Check)],
        prop_oneof![1 => admin_requests(&world, true), 1 => admin_requests(&world, false)],
    )
        .prop_map(|(key, req)| AdminCall { key, req });
    run_cases(&probe.label, cases(700), strategy, |call| {
        block(probe.admin_case(&world, call))
    });
    probe.finish(&["AdminService"]).await;
}

// ---- deep trees ----------------------------------------------------------------

fn create_req(r: &str, parent: Option<&str>) -> pb::CreateResourceRequest {
    pb::CreateResourceRequest {
        tenant_id: TENANT.into(),
        resource: Some(res(r)),
        parent: parent.map(res),
        ..Default::default()
    }
}

fn move_req(r: &str, new_parent: Option<&str>) -> pb::MoveResourceRequest {
    pb::MoveResourceRequest {
        tenant_id: TENANT.into(),
        resource: Some(res(r)),
        new_parent: new_parent.map(res),
        ..Default::default()
    }
}

/// A chain down to `MAX_TREE_DEPTH` levels (the top-level resource counts as
/// level one) answers checks and lists at the bottom; one level more is
/// refused on create (`parent`) and on move (`new_parent`), the store
/// unchanged.
async fn deep_trees(b: Backend) {
    use portcullis::model::MAX_TREE_DEPTH as MAX;
    const { assert!(MAX >= 8, "the test assumes a limit of at least 8 levels") };
    let app = spawn_app_on(b.clone()).await;
    let p = Probe::new(&app, "deep_trees", &b).await;
    app.user("alice").await;
    app.user("bob").await;
    let level = |n: usize| {
        if n == 1 {
            "workspace:deep".to_owned()
        } else {
            format!("folder:d{n:02}")
        }
    };
    app.resource(&level(1), None).await;
    for n in 2..=MAX {
        app.resource(&level(n), Some(&level(n - 1))).await;
    }
    let mid = MAX / 2;
    app.grant("alice", "editor", &level(1)).await;
    app.deny("alice", "viewer", &level(MAX - 2)).await;
    app.grant("bob", "viewer", &level(mid)).await;
    let bottom = level(MAX);
    let folders = |levels: std::ops::RangeInclusive<usize>| -> Vec<String> {
        levels.map(|n| format!("d{n:02}")).collect()
    };

    assert!(
        app.check("alice", "edit", &bottom).await,
        "editor at level 1 reaches level {MAX}"
    );
    assert_eq!(
        app.reason("alice", "view", &bottom).await,
        pb::Reason::ExplicitDeny
    );
    assert!(app.check("alice", "view", &level(MAX - 3)).await);
    assert!(app.check("bob", "view", &bottom).await);
    assert!(!app.check("bob", "view", &level(mid - 1)).await);
    assert_eq!(app.list("alice", "edit", "folder").await, folders(2..=MAX));
    assert_eq!(
        app.list("alice", "view", "folder").await,
        folders(2..=MAX - 3)
    );
    assert_eq!(app.list("bob", "view", "folder").await, folders(mid..=MAX));
    assert_eq!(app.subjects(&bottom, "view").await, vec!["bob".to_owned()]);
    assert_eq!(
        app.subjects(&bottom, "edit").await,
        vec!["alice".to_owned()]
    );

    let mut op = app.operator();
    p.refused(
        "a folder one level below the deepest",
        Code::InvalidArgument,
        "parent",
        bounded(op.create_resource(create_req("folder:too-deep", Some(&bottom)))),
    )
    .await;
    p.refused(
        "a workflow one level below the deepest",
        Code::InvalidArgument,
        "parent",
        bounded(op.create_resource(create_req("workflow:too-deep", Some(&bottom)))),
    )
    .await;
    bounded(op.create_resource(create_req("workflow:leaf", Some(&level(MAX - 1)))))
        .await
        .expect("a workflow at the deepest level");
    assert!(app.check("alice", "execute", "workflow:leaf").await);

    app.resource("folder:m1", None).await;
    app.resource("folder:m2", Some("folder:m1")).await;
    p.refused(
        "a two-level subtree moved under the last level but one",
        Code::InvalidArgument,
        "new_parent",
        bounded(op.move_resource(move_req("folder:m1", Some(&level(MAX - 1))))),
    )
    .await;
    p.refused(
        "a leaf moved under the deepest level",
        Code::InvalidArgument,
        "new_parent",
        bounded(op.move_resource(move_req("folder:m2", Some(&bottom)))),
    )
    .await;
    bounded(op.move_resource(move_req("folder:m1", Some(&level(MAX - 2)))))
        .await
        .expect("a move that ends exactly at the limit");
    assert!(app.check("alice", "edit", "folder:m2").await);
    assert_eq!(
        app.reason("alice", "view", "folder:m2").await,
        pb::Reason::ExplicitDeny
    );
    assert!(app
        .list("alice", "edit", "folder")
        .await
        .contains(&"m2".to_owned()));
    p.note(format!(
        "a chain of {MAX} levels answers at the bottom; level {} refused on create (2) and move (2)",
        MAX + 1
    ));
    p.finish(&[]).await;
}

// ---- wide trees ----------------------------------------------------------------

/// 2,000 children under one folder: ListAccessible pages through all of them
/// exactly once, ascending, at every page size; so do ListResources and
/// BatchCheck. The ids start with characters whose order differs between
/// byte order and locale collations.
async fn wide_tree(b: Backend) {
    const CHILDREN: usize = 2_000;
    const PREFIXES: [&str; 12] = [
        "a", "B", "_", "%", "é", "😀", "Z", "'", " ", "~", "\u{ffff}", "0",
    ];
    let app = spawn_app_on(b.clone()).await;
    let p = Probe::new(&app, "wide_tree", &b).await;
    app.user("alice").await;
    app.user("bob").await;
    app.resource("workspace:ws", None).await;
    app.resource("folder:wide", Some("workspace:ws")).await;
    app.resource("folder:other", Some("workspace:ws")).await;
    for i in 0..5 {
        app.resource(&format!("workflow:other{i}"), Some("folder:other"))
            .await;
    }
    let ids: Vec<String> = (0..CHILDREN)
        .map(|i| format!("{}{i:04}", PREFIXES[i % PREFIXES.len()]))
        .collect();
    // Created by 8 concurrent clients (writes to a tenant serialize in the
    // store; this overlaps the rest of each call).
    let started = Instant::now();
    let mut creators = tokio::task::JoinSet::new();
    for chunk in ids.chunks(CHILDREN.div_ceil(8)) {
        let chunk = chunk.to_vec();
        let mut client = AdminServiceClient::with_interceptor(
            app.channel.clone(),
            Bearer::new(OPERATOR_KEY).expect("ascii key"),
        );
        creators.spawn(async move {
            for id in chunk {
                bounded(
                    client.create_resource(create_req(
                        &format!("workflow:{id}"),
                        Some("folder:wide"),
                    )),
                )
                .await
                .unwrap_or_else(|s| panic!("creating child {id}: {s:?}"));
            }
        });
    }
    while let Some(done) = creators.join_next().await {
        done.expect("a creator task");
    }
    let created_in = started.elapsed();
    {
        let mut t = p.tally.borrow_mut();
        t.sent += CHILDREN as u64;
        *t.codes.entry("Ok".to_owned()).or_default() += CHILDREN as u64;
        *t.rpcs
            .entry("AdminService/CreateResource".to_owned())
            .or_default() += CHILDREN as u64;
    }
    app.grant("alice", "viewer", "folder:wide").await;
    let mut want = ids.clone();
    want.sort();

    for page_size in [0u32, 250, 333, 10_000] {
        let limit = if page_size == 0 {
            1_000
        } else {
            page_size as usize
        };
        let (mut got, mut token, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = bounded(app.lister().list_accessible(pb::ListAccessibleRequest {
                tenant_id: TENANT.into(),
                principal_id: "alice".into(),
                action: "view".into(),
                resource_type: "workflow".into(),
                page_size,
                page_token: token.clone(),
                ..Default::default()
            }))
            .await;
            p.count("ListAccessibleService/ListAccessible", &page);
            let page = page.unwrap_or_else(|s| panic!("page {pages} of size {page_size}: {s:?}"));
            pages += 1;
            assert!(
                page.resource_ids.len() <= limit,
                "a page over page_size {page_size}"
            );
            got.extend(page.resource_ids);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
            assert!(
                pages <= CHILDREN,
                "page_size {page_size}: paging does not end"
            );
        }
        let distinct: BTreeSet<&String> = got.iter().collect();
        assert_eq!(
            distinct.len(),
            got.len(),
            "page_size {page_size}: an id listed twice"
        );
        assert_eq!(
            got.len(),
            CHILDREN,
            "page_size {page_size}: not every child listed"
        );
        assert_eq!(
            got, want,
            "page_size {page_size}: every child exactly once, ascending"
        );
        p.note(format!(
            "ListAccessible page_size {page_size}: {pages} pages"
        ));
    }

    for page_size in [1_000u32, 77] {
        let (mut got, mut token, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = bounded(app.operator().list_resources(pb::ListResourcesRequest {
                tenant_id: TENANT.into(),
                parent: Some(res("folder:wide")),
                page_size,
                page_token: token.clone(),
                ..Default::default()
            }))
            .await;
            p.count("AdminService/ListResources", &page);
            let page = page.unwrap_or_else(|s| panic!("ListResources page {pages}: {s:?}"));
            pages += 1;
            assert!(page.resources.len() <= page_size as usize);
            got.extend(
                page.resources
                    .into_iter()
                    .map(|r| r.r#ref.unwrap_or_default().id),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
            assert!(pages <= CHILDREN, "ListResources paging does not end");
        }
        assert_eq!(
            got, want,
            "ListResources page_size {page_size}: every child once, in order"
        );
        p.note(format!(
            "ListResources page_size {page_size}: {pages} pages"
        ));
    }

    let items = ids
        .iter()
        .map(|id| pb::BatchCheckItem {
            principal_id: "alice".into(),
            action: "view".into(),
            resource: Some(res(&format!("workflow:{id}"))),
            ..Default::default()
        })
        .collect();
    let answer = bounded(app.checker().batch_check(pb::BatchCheckRequest {
        tenant_id: TENANT.into(),
        items,
        ..Default::default()
    }))
    .await;
    p.count("CheckService/BatchCheck", &answer);
    let answer = answer.expect("a batch of every child");
    assert_eq!(answer.results.len(), CHILDREN);
    assert!(
        answer.results.iter().all(|r| r.allowed),
        "alice may view every child"
    );
    assert_eq!(
        app.subjects(&format!("workflow:{}", ids[7]), "view").await,
        vec!["alice".to_owned()]
    );
    assert!(app.list("bob", "view", "workflow").await.is_empty());
    p.note(format!("{CHILDREN} children created in {created_in:.1?}"));
    p.finish(&[]).await;
}

// ---- cycles --------------------------------------------------------------------

fn member_req(team: &str, member: &str) -> pb::AddTeamMemberRequest {
    pb::AddTeamMemberRequest {
        tenant_id: TENANT.into(),
        team_id: team.into(),
        member: Some(subj(member)),
        ..Default::default()
    }
}

fn role_req(id: &str, permissions: &[&str], inherits: &[&str]) -> pb::Role {
    pb::Role {
        id: id.into(),
        display_name: id.into(),
        permissions: strings(permissions),
        inherits: strings(inherits),
        effective_at: vec!["*".into()],
        ..Default::default()
    }
}

/// Resource parenting, team nesting and role inheritance refuse cycles,
/// with the rule named and the store unchanged, and decisions through the
/// long chains still answer.
async fn cycles(b: Backend) {
    let app = spawn_app_on(b.clone()).await;
    let p = Probe::new(&app, "cycles", &b).await;
    let mut op = app.operator();
    app.user("u").await;
    app.resource("folder:c1", None).await;
    app.resource("folder:c2", Some("folder:c1")).await;
    app.resource("folder:c3", Some("folder:c2")).await;
    app.resource("workflow:wf", Some("folder:c3")).await;
    for (label, r, np) in [
        (
            "a folder moved under its grandchild",
            "folder:c1",
            "folder:c3",
        ),
        ("a folder moved under its child", "folder:c2", "folder:c3"),
        ("a folder moved under itself", "folder:c1", "folder:c1"),
        (
            "a folder moved under a workflow inside it",
            "folder:c1",
            "workflow:wf",
        ),
    ] {
        p.refused(
            label,
            Code::FailedPrecondition,
            "resource_cycle",
            bounded(op.move_resource(move_req(r, Some(np)))),
        )
        .await;
    }

    app.team("a").await;
    app.team("b").await;
    app.team("c").await;
    app.add_member("a", "team:b").await.expect("b in a");
    app.add_member("b", "team:c").await.expect("c in b");
    app.add_member("c", "u").await.expect("u in c");
    for (label, team, member) in [
        ("team a in b, which is in a", "b", "team:a"),
        ("team a in c, which is in b, which is in a", "c", "team:a"),
        ("a team in itself", "a", "team:a"),
    ] {
        p.refused(
            label,
            Code::FailedPrecondition,
            "team_cycle",
            bounded(op.add_team_member(member_req(team, member))),
        )
        .await;
    }

    app.role("r_a", &["workflow.view"], &[], &["*"])
        .await
        .expect("r_a");
    app.role("r_b", &[], &["r_a"], &["*"]).await.expect("r_b");
    app.role("r_c", &[], &["r_b"], &["*"]).await.expect("r_c");
    for (label, role) in [
        (
            "r_a inheriting r_b, which inherits r_a",
            role_req("r_a", &["workflow.view"], &["r_b"]),
        ),
        (
            "r_a inheriting r_c, which inherits r_b, which inherits r_a",
            role_req("r_a", &["workflow.view"], &["r_c"]),
        ),
    ] {
        p.refused(
            label,
            Code::FailedPrecondition,
            "role_cycle",
            bounded(op.update_role(pb::UpdateRoleRequest {
                tenant_id: TENANT.into(),
                role: Some(role),
                ..Default::default()
            })),
        )
        .await;
    }
    p.refused(
        "a new role inheriting itself",
        Code::InvalidArgument,
        "role.inherits",
        bounded(op.create_role(pb::CreateRoleRequest {
            tenant_id: TENANT.into(),
            role: Some(role_req("r_d", &[], &["r_d"])),
            ..Default::default()
        })),
    )
    .await;

    // Through the longest chains that exist: u in c in b in a; r_c → r_b → r_a.
    app.grant("team:a", "r_c", "folder:c1").await;
    assert!(app.check("u", "view", "workflow:wf").await);
    assert!(!app.check("u", "edit", "workflow:wf").await);
    assert_eq!(
        app.list("u", "view", "workflow").await,
        vec!["wf".to_owned()]
    );
    assert_eq!(
        app.subjects("workflow:wf", "view").await,
        vec!["u".to_owned()]
    );
    p.finish(&[]).await;
}

// ---- huge requests ---------------------------------------------------------------

fn code_of<T>(r: &Result<T, Status>) -> Code {
    r.as_ref().err().map_or(Code::Ok, Status::code)
}

/// BatchCheck at 5,000 items and over; requests over the 4 MiB message
/// limit; page sizes above the maxima; a context of 65 entries.
async fn huge_requests(b: Backend) {
    let app = spawn_app_on(b.clone()).await;
    let p = Probe::new(&app, "huge_requests", &b).await;
    app.user("alice").await;
    app.resource("workspace:ws1", None).await;
    app.resource("folder:f1", Some("workspace:ws1")).await;
    app.grant("alice", "viewer", "folder:f1").await;
    let item = |i: usize| pb::BatchCheckItem {
        principal_id: "alice".into(),
        action: "view".into(),
        resource: Some(res(if i.is_multiple_of(3) {
            "folder:f1"
        } else {
            "workspace:ws1"
        })),
        ..Default::default()
    };
    let batch = |n: usize| pb::BatchCheckRequest {
        tenant_id: TENANT.into(),
        items: (0..n).map(item).collect(),
        ..Default::default()
    };
    let answer = bounded(app.checker().batch_check(batch(5_000)))
        .await
        .expect("a batch of 5,000");
    assert_eq!(answer.results.len(), 5_000);
    for (i, r) in answer.results.iter().enumerate() {
        assert_eq!(r.allowed, i % 3 == 0, "item {i} answered out of order");
    }
    p.refused(
        "a batch of 5,001",
        Code::InvalidArgument,
        "items",
        bounded(app.checker().batch_check(batch(5_001))),
    )
    .await;
    p.refused(
        "an empty batch",
        Code::InvalidArgument,
        "items",
        bounded(app.checker().batch_check(batch(0))),
    )
    .await;

    // Over the message limit: a clean error, nothing written, still serving.
    let big = "a".repeat(MAX_MESSAGE + 1);
    let check = |subject_id: String| pb::CheckRequest {
        tenant_id: TENANT.into(),
        principal_id: subject_id,
        action: "view".into(),
        resource: Some(res("folder:f1")),
        ..Default::default()
    };
    let over_check = code_of(&bounded(app.checker().check(check(big.clone()))).await);
    let before = p.db.snapshot().await;
    let over_write = code_of(
        &bounded(app.operator().create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(pb::ResourceRef {
                r#type: "folder".into(),
                id: big.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await,
    );
    assert!(
        before == p.db.snapshot().await,
        "an oversized write changed the store"
    );
    let fat = pb::BatchCheckRequest {
        tenant_id: TENANT.into(),
        items: (0..5_000)
            .map(|i| pb::BatchCheckItem {
                principal_id: format!("{i}{}", "x".repeat(1_000)),
                ..item(i)
            })
            .collect(),
        ..Default::default()
    };
    assert!(prost::Message::encoded_len(&fat) > MAX_MESSAGE);
    let over_batch = code_of(&bounded(app.checker().batch_check(fat)).await);
    for (what, code) in [
        ("Check", over_check),
        ("CreateResource", over_write),
        ("BatchCheck", over_batch),
    ] {
        assert!(
            matches!(code, Code::ResourceExhausted | Code::OutOfRange),
            "{what} over 4 MiB answered {code:?}"
        );
    }
    p.note(format!(
        "over 4 MiB: Check {over_check:?}, CreateResource {over_write:?}, BatchCheck {over_batch:?}"
    ));
    if let Err(e) = p.serving().await {
        panic!("after oversized requests: {e}");
    }
    assert!(
        app.check("alice", "view", "folder:f1").await,
        "still answering correctly"
    );
    // Just under the limit: refused by validation like any long id.
    p.refused(
        "a principal id of almost 4 MiB",
        Code::InvalidArgument,
        "principal_id",
        bounded(app.checker().check(check("a".repeat(MAX_MESSAGE - 1_024)))),
    )
    .await;

    // Page sizes: the maxima answer, one more is refused.
    let accessible = |page_size: u32| pb::ListAccessibleRequest {
        tenant_id: TENANT.into(),
        principal_id: "alice".into(),
        action: "view".into(),
        resource_type: "folder".into(),
        page_size,
        ..Default::default()
    };
    let subjects = |page_size: u32| pb::ListSubjectsRequest {
        tenant_id: TENANT.into(),
        resource: Some(res("folder:f1")),
        action: "view".into(),
        page_size,
        ..Default::default()
    };
    bounded(app.lister().list_accessible(accessible(10_000)))
        .await
        .expect("ListAccessible at 10,000");
    bounded(app.lister().list_subjects(subjects(10_000)))
        .await
        .expect("ListSubjects at 10,000");
    for size in [10_001, u32::MAX] {
        p.refused(
            "ListAccessible over the maximum",
            Code::InvalidArgument,
            "page_size",
            bounded(app.lister().list_accessible(accessible(size))),
        )
        .await;
        p.refused(
            "ListSubjects over the maximum",
            Code::InvalidArgument,
            "page_size",
            bounded(app.lister().list_subjects(subjects(size))),
        )
        .await;
    }
    let mut op = app.operator();
    for size in [1_000, 1_001, u32::MAX] {
        let t = || TENANT.to_owned();
        let results = [
            (
                "ListTenants",
                code_of(
                    &bounded(op.list_tenants(pb::ListTenantsRequest {
                        page_size: size,
                        ..Default::default()
                    }))
                    .await,
                ),
            ),
            (
                "ListResources",
                code_of(
                    &bounded(op.list_resources(pb::ListResourcesRequest {
                        tenant_id: t(),
                        page_size: size,
                        ..Default::default()
                    }))
                    .await,
                ),
            ),
            (
                "ListPrincipals",
                code_of(
                    &bounded(op.list_principals(pb::ListPrincipalsRequest {
                        tenant_id: t(),
                        page_size: size,
                        ..Default::default()
                    }))
                    .await,
                ),
            ),
            (
                "ListTeams",
                code_of(
                    &bounded(op.list_teams(pb::ListTeamsRequest {
                        tenant_id: t(),
                        page_size: size,
                        ..Default::default()
                    }))
                    .await,
                ),
            ),
            (
                "ListGrants",
                code_of(
                    &bounded(op.list_grants(pb::ListGrantsRequest {
                        tenant_id: t(),
                        page_size: size,
                        ..Default::default()
                    }))
                    .await,
                ),
            ),
            (
                "ListAuditEvents",
                code_of(
                    &bounded(op.list_audit_events(pb::ListAuditEventsRequest {
                        tenant_id: t(),
                        page_size: size,
                        ..Default::default()
                    }))
                    .await,
                ),
            ),
        ];
        for (rpc, code) in results {
            let want = if size <= 1_000 {
                Code::Ok
            } else {
                Code::InvalidArgument
            };
            assert_eq!(code, want, "{rpc} with page_size {size}");
        }
    }
    p.refused(
        "ListAuditEvents over the maximum, naming the field",
        Code::InvalidArgument,
        "page_size",
        bounded(op.list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            page_size: 1_001,
            ..Default::default()
        })),
    )
    .await;

    // Context: 64 entries answer, 65 are refused.
    let with_context = |n: usize| pb::CheckRequest {
        context: (0..n).map(|i| (format!("k{i}"), "v".to_owned())).collect(),
        ..check("alice".into())
    };
    assert!(
        bounded(app.checker().check(with_context(64)))
            .await
            .expect("64 entries")
            .allowed
    );
    p.refused(
        "a context of 65 entries",
        Code::InvalidArgument,
        "context",
        bounded(app.checker().check(with_context(65))),
    )
    .await;
    p.finish(&[]).await;
}

// ---- missing fields --------------------------------------------------------------

/// Every write, with each required field omitted in turn: INVALID_ARGUMENT
/// naming it, the store unchanged; with the admin key and no actor:
/// `actor_id`. The full request then succeeds, so the omission was the cause.
async fn missing_fields(b: Backend) {
    let app = spawn_app_on(b.clone()).await;
    let p = Probe::new(&app, "missing_fields", &b).await;
    app.user("alice").await;
    app.resource("workspace:ws1", None).await;
    app.owned_resource("project:p1", None, "alice").await;
    let mut omitted = 0u32;

    // Each expansion is its own boxed future: one async fn with all of them
    // inline has a poll frame too large for a test thread's stack (debug).
    macro_rules! omit {
        ($method:ident, $base:expr, actor: $actor:literal, { $($field:literal => |$r:ident| $clear:expr),+ $(,)? }) => {
            Box::pin(async {
                let base = $base;
                $(
                    let mut req = base.clone();
                    {
                        let $r = &mut req;
                        $clear;
                    }
                    Box::pin(p.refused(
                        concat!(stringify!($method), " without ", $field),
                        Code::InvalidArgument,
                        $field,
                        bounded(app.operator().$method(req)),
                    ))
                    .await;
                    omitted += 1;
                )+
                if $actor {
                    Box::pin(p.refused(
                        concat!(stringify!($method), " with the admin key and no actor"),
                        Code::InvalidArgument,
                        "actor_id",
                        bounded(app.admin().$method(base.clone())),
                    ))
                    .await;
                    omitted += 1;
                }
                // The full request succeeds and shows in the snapshot (so an
                // unchanged snapshot above means something).
                let before = p.db.snapshot().await;
                let done = bounded(app.operator().$method(base))
                    .await
                    .unwrap_or_else(|s| panic!("{} with every field: {s:?}", stringify!($method)));
                assert!(
                    p.db.snapshot().await != before,
                    "{} succeeded but the snapshot did not change",
                    stringify!($method)
                );
                done
            })
            .await
        };
    }

    let tenant = || TENANT.to_owned();
    omit!(create_tenant, pb::CreateTenantRequest {
        tenant_id: "fresh".into(),
        display_name: "Fresh".into(),
        first_admin: Some(pb::FirstAdmin { principal_id: "fa".into(), display_name: "FA".into(), ..Default::default() }),
        ..Default::default()
    }, actor: false, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "first_admin.principal_id" => |r| r.first_admin.as_mut().expect("set").principal_id.clear(),
    });
    p.refused(
        "CreateTenant with the admin key",
        Code::PermissionDenied,
        "operator",
        bounded(app.admin().create_tenant(pb::CreateTenantRequest {
            tenant_id: "fresh2".into(),
            ..Default::default()
        })),
    )
    .await;
    omit!(update_tenant, pb::UpdateTenantRequest {
        tenant_id: tenant(),
        display_name: "Acme".into(),
        single_owner_types: strings(&["project"]),
        creator_owner_types: strings(&["project", "workflow", "draft"]),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
    });
    omit!(create_principal, pb::CreatePrincipalRequest {
        tenant_id: tenant(),
        principal_id: "newbie".into(),
        display_name: "Newbie".into(),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "principal_id" => |r| r.principal_id.clear(),
    });
    omit!(accept_invitation, pb::AcceptInvitationRequest {
        tenant_id: tenant(),
        principal_id: "newbie".into(),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "principal_id" => |r| r.principal_id.clear(),
    });
    omit!(set_principal_status, pb::SetPrincipalStatusRequest {
        tenant_id: tenant(),
        principal_id: "newbie".into(),
        status: pb::PrincipalStatus::Suspended as i32,
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "principal_id" => |r| r.principal_id.clear(),
        "status" => |r| r.status = 0,
    });
    // Back to active: newbie takes ownership below.
    app.set_status("", "newbie", pb::PrincipalStatus::Active)
        .await
        .expect("reactivate");
    omit!(create_team, pb::CreateTeamRequest {
        tenant_id: tenant(),
        team_id: "squad".into(),
        display_name: "Squad".into(),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "team_id" => |r| r.team_id.clear(),
    });
    omit!(add_team_member, member_req("squad", "newbie"), actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "team_id" => |r| r.team_id.clear(),
        "member" => |r| r.member = None,
        "member" => |r| r.member = Some(pb::SubjectRef::default()),
        "member.principal_id" => |r| r.member = Some(subj("")),
    });
    omit!(remove_team_member, pb::RemoveTeamMemberRequest {
        tenant_id: tenant(),
        team_id: "squad".into(),
        member: Some(subj("newbie")),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "team_id" => |r| r.team_id.clear(),
        "member" => |r| r.member = None,
        "member.team_id" => |r| r.member = Some(subj("team:")),
    });
    omit!(delete_team, pb::DeleteTeamRequest {
        tenant_id: tenant(),
        team_id: "squad".into(),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "team_id" => |r| r.team_id.clear(),
    });
    let auditor = |display: &str| pb::Role {
        id: "auditor".into(),
        display_name: display.into(),
        permissions: strings(&["tenant.view_audit"]),
        effective_at: strings(&["tenant"]),
        ..Default::default()
    };
    omit!(create_role, pb::CreateRoleRequest {
        tenant_id: tenant(),
        role: Some(auditor("Auditor")),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "role" => |r| r.role = None,
        "role.id" => |r| r.role.as_mut().expect("set").id.clear(),
        "role.permissions" => |r| r.role.as_mut().expect("set").permissions.clear(),
        "role.effective_at" => |r| r.role.as_mut().expect("set").effective_at.clear(),
    });
    omit!(update_role, pb::UpdateRoleRequest {
        tenant_id: tenant(),
        role: Some(auditor("Auditors")),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "role" => |r| r.role = None,
        "role.id" => |r| r.role.as_mut().expect("set").id.clear(),
        "role.permissions" => |r| r.role.as_mut().expect("set").permissions.clear(),
        "role.effective_at" => |r| r.role.as_mut().expect("set").effective_at.clear(),
    });
    omit!(create_resource, create_req("folder:fresh", Some("workspace:ws1")), actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "resource" => |r| r.resource = None,
        "resource.type" => |r| r.resource.as_mut().expect("set").r#type.clear(),
        "resource.id" => |r| r.resource.as_mut().expect("set").id.clear(),
        "parent.type" => |r| r.parent.as_mut().expect("set").r#type.clear(),
        "parent.id" => |r| r.parent.as_mut().expect("set").id.clear(),
    });
    omit!(move_resource, move_req("folder:fresh", None), actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "resource" => |r| r.resource = None,
        "resource.id" => |r| r.resource.as_mut().expect("set").id.clear(),
        "new_parent.id" => |r| r.new_parent = Some(pb::ResourceRef { r#type: "workspace".into(), ..Default::default() }),
    });
    omit!(set_resource_private, pb::SetResourcePrivateRequest {
        tenant_id: tenant(),
        resource: Some(res("folder:fresh")),
        private: true,
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "resource" => |r| r.resource = None,
    });
    omit!(set_resource_restricted, pb::SetResourceRestrictedRequest {
        tenant_id: tenant(),
        resource: Some(res("folder:fresh")),
        restricted: true,
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "resource" => |r| r.resource = None,
    });
    omit!(set_resource_links, pb::SetResourceLinksRequest {
        tenant_id: tenant(),
        resource: Some(res("folder:fresh")),
        links: vec![link(("workspace:ws1", "view", &["edit"]))],
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "resource" => |r| r.resource = None,
        "links[0].resource" => |r| r.links[0].resource = None,
        "links[0].action" => |r| r.links[0].action.clear(),
        "links[0].on" => |r| r.links[0].on.clear(),
    });
    omit!(set_resource_attributes, pb::SetResourceAttributesRequest {
        tenant_id: tenant(),
        resource: Some(res("folder:fresh")),
        attributes: [("user".to_owned(), "alice".to_owned())].into(),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "resource" => |r| r.resource = None,
    });
    let grant = omit!(create_grant, pb::CreateGrantRequest {
        tenant_id: tenant(),
        subject: Some(subj("newbie")),
        role_id: "viewer".into(),
        scope: Some(res("folder:fresh")),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "subject" => |r| r.subject = None,
        "subject" => |r| r.subject = Some(pb::SubjectRef::default()),
        "subject.team_id" => |r| r.subject = Some(subj("team:")),
        "role_id" => |r| r.role_id.clear(),
        "scope.id" => |r| r.scope.as_mut().expect("set").id.clear(),
    })
    .grant
    .expect("the created grant");
    omit!(delete_grant, pb::DeleteGrantRequest {
        tenant_id: tenant(),
        grant_id: grant.id,
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "grant_id" => |r| r.grant_id.clear(),
    });
    omit!(transfer_ownership, pb::TransferOwnershipRequest {
        tenant_id: tenant(),
        resource: Some(res("project:p1")),
        new_owner_id: "newbie".into(),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "resource" => |r| r.resource = None,
        "new_owner_id" => |r| r.new_owner_id.clear(),
    });
    omit!(delete_role, pb::DeleteRoleRequest {
        tenant_id: tenant(),
        role_id: "auditor".into(),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "role_id" => |r| r.role_id.clear(),
    });
    omit!(delete_resource, pb::DeleteResourceRequest {
        tenant_id: tenant(),
        resource: Some(res("folder:fresh")),
        ..Default::default()
    }, actor: true, {
        "tenant_id" => |r| r.tenant_id.clear(),
        "resource" => |r| r.resource = None,
    });
    p.note(format!(
        "{omitted} omissions over 18 writes refused naming the field, store unchanged; every full request then succeeded"
    ));
    p.finish(&[]).await;
}

// ---- credentials, wire format, tokens ----------------------------------------------

/// Malformed `authorization` headers: UNAUTHENTICATED on every service; the
/// server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_credentials_are_unauthenticated() {
    use pb::check_service_client::CheckServiceClient;
    use pb::list_accessible_service_client::ListAccessibleServiceClient;
    let app = spawn_app().await;
    let headers: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Basic {CHECK_KEY}")),
        Some(CHECK_KEY.into()),
        Some(format!("Token {CHECK_KEY}")),
        Some(format!("BEARER {CHECK_KEY}")),
        Some(format!("Bearer {CHECK_KEY}x")),
        Some(format!("Bearer x{CHECK_KEY}")),
        Some(format!("Bearer {}", &CHECK_KEY[1..])),
        Some("Bearer ' OR 1=1 --".into()),
        Some("Bearer %00".into()),
        Some(format!("Bearer {}", "k".repeat(8_000))),
    ];
    let mut sent = 0;
    for h in &headers {
        let value = h.clone();
        let auth = move |mut req: tonic::Request<()>| -> Result<tonic::Request<()>, Status> {
            if let Some(v) = &value {
                req.metadata_mut()
                    .insert("authorization", v.parse().expect("an ASCII header"));
            }
            Ok(req)
        };
        let check = bounded(
            CheckServiceClient::with_interceptor(app.channel.clone(), auth.clone()).check(
                pb::CheckRequest {
                    tenant_id: TENANT.into(),
                    principal_id: ADMIN.into(),
                    action: "view".into(),
                    resource: Some(res("workspace:w")),
                    ..Default::default()
                },
            ),
        )
        .await;
        let list = bounded(
            ListAccessibleServiceClient::with_interceptor(app.channel.clone(), auth.clone())
                .list_accessible(pb::ListAccessibleRequest {
                    tenant_id: TENANT.into(),
                    principal_id: ADMIN.into(),
                    action: "view".into(),
                    resource_type: "workspace".into(),
                    ..Default::default()
                }),
        )
        .await;
        let admin = bounded(
            AdminServiceClient::with_interceptor(app.channel.clone(), auth).get_tenant(
                pb::GetTenantRequest {
                    tenant_id: TENANT.into(),
                    ..Default::default()
                },
            ),
        )
        .await;
        for (rpc, code) in [
            ("Check", code_of(&check)),
            ("ListAccessible", code_of(&list)),
            ("GetTenant", code_of(&admin)),
        ] {
            sent += 1;
            assert_eq!(
                code,
                Code::Unauthenticated,
                "{rpc} with authorization {:?}",
                h.as_deref().map(|s| clip(s, 60))
            );
        }
    }
    // A header over the server's HTTP/2 header-list limit (16 KiB) never
    // reaches the service; whatever the transport answers, the server and
    // the connection keep serving.
    let huge = format!("Bearer {}", "k".repeat(64 * 1024));
    // On a connection of its own: a header this size may make the server
    // reset the connection, which must not fail the calls after it.
    let own = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let huge_code = code_of(
        &bounded(
            CheckServiceClient::with_interceptor(
                own,
                move |mut req: tonic::Request<()>| -> Result<tonic::Request<()>, Status> {
                    req.metadata_mut()
                        .insert("authorization", huge.parse().expect("an ASCII header"));
                    Ok(req)
                },
            )
            .check(pb::CheckRequest {
                tenant_id: TENANT.into(),
                ..Default::default()
            }),
        )
        .await,
    );
    assert_ne!(huge_code, Code::Ok, "a 64 KiB key authenticated");
    assert_ne!(
        huge_code,
        Code::DeadlineExceeded,
        "a 64 KiB header hung the call"
    );
    sent += 1;
    // Keys of too small a scope.
    let denied = [
        code_of(
            &bounded(
                app.admin_with_key(CHECK_KEY)
                    .get_tenant(pb::GetTenantRequest {
                        tenant_id: TENANT.into(),
                        ..Default::default()
                    }),
            )
            .await,
        ),
        code_of(&bounded(app.admin().list_tenants(pb::ListTenantsRequest::default())).await),
        code_of(
            &bounded(
                app.replica_with_key(ADMIN_KEY)
                    .get_cache_stats(pb::GetCacheStatsRequest::default()),
            )
            .await,
        ),
    ];
    assert_eq!(denied, [Code::PermissionDenied; 3]);
    sent += 3;
    let mut h = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let status = bounded(h.check(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    }))
    .await
    .expect("health")
    .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    eprintln!(
        "hostile::malformed_credentials_are_unauthenticated: {sent} requests, {} malformed headers × 3 services UNAUTHENTICATED, 3 small-scope keys PERMISSION_DENIED, a 64 KiB header {huge_code:?}",
        headers.len()
    );
}

/// `CheckRequest` with its string fields as raw bytes, to send what a
/// well-behaved client never would.
#[derive(Clone, PartialEq, prost::Message)]
struct RawCheckRequest {
    #[prost(bytes = "vec", tag = "1")]
    tenant_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    principal_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    action: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    resource: Vec<u8>,
}

/// `CheckRequest` with a number where `tenant_id` (a string) belongs.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireCheckRequest {
    #[prost(uint64, tag = "1")]
    tenant_id: u64,
}

/// Sends any message as a `CheckService/Check` request.
async fn raw_check<M>(app: &TestApp, msg: M) -> Result<pb::CheckResponse, Status>
where
    M: prost::Message + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {CHECK_KEY}").parse().expect("ascii"),
    );
    let codec: tonic_prost::ProstCodec<M, pb::CheckResponse> = tonic_prost::ProstCodec::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/portcullis.v1.CheckService/Check");
    bounded(grpc.unary(req, path, codec)).await
}

/// Bytes that are not a valid `CheckRequest` (invalid UTF-8 in a string,
/// truncated or mistyped fields) are a client error, not INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_argument() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.resource("folder:f1", None).await;
    let good = RawCheckRequest {
        tenant_id: TENANT.into(),
        principal_id: b"alice".to_vec(),
        action: b"view".to_vec(),
        resource: prost::Message::encode_to_vec(&res("folder:f1")),
    };
    raw_check(&app, good.clone())
        .await
        .expect("the raw encoding of a good request answers");
    let bad_id = {
        let mut v = vec![0x0a, 6];
        v.extend(b"folder");
        v.extend([0x12, 2, 0xff, 0xfe]);
        v
    };
    let cases: Vec<(&str, Result<pb::CheckResponse, Status>)> = vec![
        (
            "invalid UTF-8 in tenant_id",
            raw_check(
                &app,
                RawCheckRequest {
                    tenant_id: vec![0xff, 0xfe, b'a'],
                    ..good.clone()
                },
            )
            .await,
        ),
        (
            "an overlong encoding of '/' in principal_id",
            raw_check(
                &app,
                RawCheckRequest {
                    principal_id: vec![0xc0, 0xaf],
                    ..good.clone()
                },
            )
            .await,
        ),
        (
            "a UTF-16 surrogate in action",
            raw_check(
                &app,
                RawCheckRequest {
                    action: vec![0xed, 0xa0, 0x80],
                    ..good.clone()
                },
            )
            .await,
        ),
        (
            "invalid UTF-8 inside resource.id",
            raw_check(
                &app,
                RawCheckRequest {
                    resource: bad_id,
                    ..good.clone()
                },
            )
            .await,
        ),
        (
            "a truncated resource",
            raw_check(
                &app,
                RawCheckRequest {
                    resource: vec![0x0a, 0x10, b'f'],
                    ..good.clone()
                },
            )
            .await,
        ),
        (
            "a varint where tenant_id belongs",
            raw_check(&app, WrongWireCheckRequest { tenant_id: 7 }).await,
        ),
    ];
    let mut wrong = Vec::new();
    for (label, r) in &cases {
        let code = code_of(r);
        if code != Code::InvalidArgument {
            wrong.push(format!(
                "{label}: {code:?} {:?}",
                r.as_ref().err().map(Status::message)
            ));
        }
    }
    assert!(assert_serving(&app).await);
    assert!(
        wrong.is_empty(),
        "not INVALID_ARGUMENT:\n{}",
        wrong.join("\n")
    );
}

async fn assert_serving(app: &TestApp) -> bool {
    let mut h = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    bounded(h.check(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    }))
    .await
    .is_ok_and(|r| {
        r.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    })
}

/// A consistency token ahead of the tenant's revision (garbage, or a token
/// of another tenant, whose revisions are counted separately) can never be
/// satisfied: retrying does not help, so UNAVAILABLE ("retry") is the wrong
/// answer; a client error naming `consistency_token` is the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistency_token_ahead_of_the_store_is_a_client_error() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.resource("folder:f1", None).await;
    // A busier tenant's token.
    let mut op = app.operator();
    op.create_tenant(pb::CreateTenantRequest {
        tenant_id: "busy".into(),
        ..Default::default()
    })
    .await
    .expect("busy tenant");
    let mut token = String::new();
    for i in 0..20 {
        token = op
            .create_team(pb::CreateTeamRequest {
                tenant_id: "busy".into(),
                team_id: format!("t{i}"),
                ..Default::default()
            })
            .await
            .expect("a write")
            .into_inner()
            .consistency_token;
    }
    let mut wrong = Vec::new();
    for token in [token, "1000000".to_owned(), i64::MAX.to_string()] {
        let check = bounded(app.checker().check(pb::CheckRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            action: "view".into(),
            resource: Some(res("folder:f1")),
            consistency_token: token.clone(),
            ..Default::default()
        }))
        .await;
        let list = bounded(app.lister().list_accessible(pb::ListAccessibleRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            action: "view".into(),
            resource_type: "folder".into(),
            consistency_token: token.clone(),
            ..Default::default()
        }))
        .await;
        for (rpc, r) in [
            ("Check", check.map(|_| ())),
            ("ListAccessible", list.map(|_| ())),
        ] {
            let ok = matches!(&r, Err(s) if matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange)
                && s.message().contains("consistency_token"));
            if !ok {
                wrong.push(format!("{rpc} with token {token}: {r:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A malformed permission pattern is named in the error, not echoed in
/// full: a `grpc-message` over the client's HTTP/2 header-list limit (16 KiB
/// in hyper) turns the clean INVALID_ARGUMENT into an h2 protocol error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_permission_is_not_echoed_in_full() {
    let app = spawn_app().await;
    let mut wrong = Vec::new();
    for len in [1_000, 20_000, 100_000] {
        let long = "x".repeat(len);
        for (field, role) in [
            ("role.permissions", role_req("r", &[&long], &[])),
            (
                "role.excluded_permissions",
                pb::Role {
                    excluded_permissions: vec![long.clone()],
                    ..role_req("r", &["workflow.view"], &[])
                },
            ),
        ] {
            let r = bounded(app.operator().create_role(pb::CreateRoleRequest {
                tenant_id: TENANT.into(),
                role: Some(role),
                ..Default::default()
            }))
            .await;
            let ok = matches!(&r, Err(s) if s.code() == Code::InvalidArgument
                && named_field(s.message()) == Some(field)
                && s.message().len() < 4_096);
            if !ok {
                wrong.push(format!(
                    "a {len}-byte pattern in `{field}`: {:?} `{}`",
                    code_of(&r),
                    clip(r.as_ref().err().map_or("", Status::message), 120)
                ));
            }
        }
    }
    assert!(
        assert_serving(&app).await,
        "the server no longer answers its health check"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A hostile caller's typed context: too deep, too many values, too many
/// keys, a key in both contexts, a non-finite number: each refused naming
/// the field, and nothing of it reaches a condition.
#[tokio::test]
async fn a_typed_context_past_its_bounds_is_refused_naming_the_field() {
    let app = spawn_app().await;
    app.user("ada").await;
    app.resource("workspace:w", None).await;
    let mut deep = serde_json::json!(1);
    for _ in 0..200 {
        deep = serde_json::json!({ "x": deep });
    }
    let many: Vec<u32> = (0..1_000).collect();
    let keys: serde_json::Map<String, serde_json::Value> = (0..65)
        .map(|i| (format!("k{i}"), serde_json::json!(i)))
        .collect();
    for (what, typed_ctx, strings, field) in [
        (
            "deep",
            serde_json::json!({ "d": deep }),
            vec![],
            "typed_context",
        ),
        (
            "many values",
            serde_json::json!({ "l": many }),
            vec![],
            "typed_context",
        ),
        (
            "many keys",
            serde_json::Value::Object(keys),
            vec![],
            "context",
        ),
        (
            "a key in both",
            serde_json::json!({ "mfa": true }),
            vec![("mfa".to_owned(), "true".to_owned())],
            "typed_context",
        ),
        (
            "a long string",
            serde_json::json!({ "s": "x".repeat(2_000) }),
            vec![],
            "typed_context",
        ),
    ] {
        let e = app
            .checker()
            .check(pb::CheckRequest {
                tenant_id: TENANT.into(),
                principal_id: "ada".into(),
                action: "view".into(),
                resource: Some(res("workspace:w")),
                context: strings.into_iter().collect(),
                typed_context: Some(typed(typed_ctx)),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        assert!(e.message().contains(field), "{what}: {e:?}");
    }
    let nan = prost_types::Struct {
        fields: [(
            "n".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
            },
        )]
        .into(),
    };
    let e = app
        .lister()
        .list_accessible(pb::ListAccessibleRequest {
            tenant_id: TENANT.into(),
            principal_id: "ada".into(),
            action: "view".into(),
            resource_type: "workspace".into(),
            typed_context: Some(nan),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("typed_context"), "{e:?}");
}

//! Test harness: each test gets its own server on an ephemeral loopback port
//! with its own database (a temporary SQLite file, or a fresh PostgreSQL
//! database when `PORTCULLIS_TEST_DATABASE_URL` is set), and a client whose
//! helpers read like the domain: `app.grant("alice", "editor", "folder:f1")`,
//! `app.check("alice", "edit", "workflow:w1")`.
#![allow(dead_code)]

use pb::admin_service_client::AdminServiceClient;
use pb::check_service_client::CheckServiceClient;
use pb::list_accessible_service_client::ListAccessibleServiceClient;
use pb::operator_service_client::OperatorServiceClient;
use portcullis::app::App;
use portcullis::config::{ApiKey, Config, KeyScope, Secret};
use portcullis::grpc::pb;
use sea_orm::ConnectionTrait;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

pub const OPERATOR_KEY: &str = "operator-key-0123456789";
pub const ADMIN_KEY: &str = "admin-key-0123456789abc";
pub const CHECK_KEY: &str = "check-key-0123456789abc";
/// The tenant every `TestApp` starts with.
pub const TENANT: &str = "acme";
/// Its first account administrator.
pub const ADMIN: &str = "root-admin";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh database on the PostgreSQL server at this base URL.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `PORTCULLIS_TEST_DATABASE_URL` is set.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("PORTCULLIS_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!("PORTCULLIS_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
                None
            }
        }
    }
}

/// Runs a test body once on SQLite and once on PostgreSQL (when configured):
/// `on_every_backend!(name_of_async_fn_taking_backend, ...)`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test]
                #[cfg_attr(not(portcullis_pg), ignore = "PostgreSQL: set PORTCULLIS_TEST_DATABASE_URL when building and running the tests")]
                async fn postgres() {
                    if let Some(b) = $crate::helpers::Backend::postgres() {
                        super::$name(b).await
                    }
                }
            }
        )*
    };
}

pub use portcullis::auth::Bearer;

pub type Authed = InterceptedService<Channel, Bearer>;

/// A running server and clients for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub channel: Channel,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}

/// The configuration tests use, on `database_url`.
pub fn test_config(database_url: &str) -> Config {
    let mut cfg = Config::default();
    cfg.database.url = Secret::new(database_url);
    cfg.database.max_connections = 5;
    cfg.api_keys = vec![
        ApiKey {
            name: "test-operator".into(),
            key: Secret::new(OPERATOR_KEY),
            scope: KeyScope::Operator,
            tenants: Vec::new(),
            require_actor_token: false,
        },
        ApiKey {
            name: "test-admin".into(),
            key: Secret::new(ADMIN_KEY),
            scope: KeyScope::Admin,
            tenants: Vec::new(),
            require_actor_token: false,
        },
        ApiKey {
            name: "test-check".into(),
            key: Secret::new(CHECK_KEY),
            scope: KeyScope::Check,
            tenants: Vec::new(),
            require_actor_token: false,
        },
    ];
    cfg
}

/// A fresh database URL for `backend`.
pub async fn fresh_database(backend: &Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("portcullis.db").display()),
        Backend::Postgres(base) => {
            let name = format!("pc_test_{}", uuid::Uuid::now_v7().simple());
            let db = sea_orm::Database::connect(base.as_str())
                .await
                .expect("connect to PostgreSQL");
            drop_stale_test_databases(&db).await;
            db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            db.close().await.ok();
            let (prefix, rest) = base.rsplit_once('/').expect("database URL has a path");
            let query = rest
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("{prefix}/{name}{query}")
        }
    }
}

/// Drops, once per test process, the `pc_test_*` databases that earlier
/// runs left behind: those whose name (a UUIDv7, which starts with its
/// creation time) is more than an hour old, so that no database of a run
/// still going is touched.
async fn drop_stale_test_databases(db: &sea_orm::DatabaseConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let rows = db
            .query_all(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT datname FROM pg_database WHERE datname LIKE 'pc\\_test\\_%'",
            ))
            .await
            .unwrap_or_default();
        let hour_ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            .saturating_sub(3_600_000);
        for row in rows {
            let Ok(name) = row.try_get::<String>("", "datname") else {
                continue;
            };
            let created = name
                .strip_prefix("pc_test_")
                .and_then(|hex| uuid::Uuid::parse_str(hex).ok())
                .and_then(|u| u.get_timestamp())
                .map(|t| {
                    let (s, n) = t.to_unix();
                    s * 1000 + u64::from(n) / 1_000_000
                });
            if created.is_some_and(|c| c < hour_ago) {
                let _ = db
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    })
    .await;
}

/// A server on SQLite with tenant `acme` and its account admin `root-admin`.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Sqlite).await
}

/// A server on `backend` with tenant `acme` and its account admin `root-admin`.
pub async fn spawn_app_on(backend: Backend) -> TestApp {
    let app = spawn_bare(backend).await;
    create_tenant(&mut app.operator(), TENANT).await;
    app
}

/// Creates `tenant` with its account admin [`ADMIN`], through `op` (an
/// operator's client); the answer.
pub async fn create_tenant(
    op: &mut AdminServiceClient<Authed>,
    tenant: &str,
) -> pb::CreateTenantResponse {
    op.create_tenant(pb::CreateTenantRequest {
        tenant_id: tenant.into(),
        display_name: tenant.into(),
        first_admin: Some(pb::FirstAdmin {
            principal_id: ADMIN.into(),
            kind: 0,
            display_name: "Root Admin".into(),
        }),
        ..Default::default()
    })
    .await
    .expect("create tenant")
    .into_inner()
}

/// Builds an app from `cfg` (migrating when asked), serves it on an
/// ephemeral loopback port, and connects to it. Sending on (or dropping) the
/// returned sender shuts it down.
pub async fn serve(
    cfg: &Config,
    migrate: bool,
) -> (
    SocketAddr,
    Channel,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let app = App::build(cfg, migrate).await.expect("build app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.serve(listener, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    (addr, channel, tx, server)
}

/// A server on `backend` with no tenant.
pub async fn spawn_bare(backend: Backend) -> TestApp {
    spawn_configured(backend, |_, _| {}).await
}

/// A server on `backend` with no tenant, its configuration changed by
/// `tweak` (given the test's temporary directory).
pub async fn spawn_configured(
    backend: Backend,
    tweak: impl FnOnce(&mut Config, &std::path::Path),
) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(&backend, dir.path()).await;
    let mut cfg = test_config(&database_url);
    tweak(&mut cfg, dir.path());
    let (addr, channel, tx, server) = serve(&cfg, true).await;
    TestApp {
        addr,
        channel,
        database_url,
        shutdown: Some(tx),
        server: Some(server),
        _dir: dir,
    }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn typed(v: serde_json::Value) -> prost_types::Struct {
    fn value(v: serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match v {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Kind::StringValue(s),
            serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
                values: a.into_iter().map(value).collect(),
            }),
            serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
                fields: o.into_iter().map(|(k, v)| (k, value(v))).collect(),
            }),
        };
        prost_types::Value { kind: Some(kind) }
    }
    match value(v) {
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StructValue(s)),
        } => s,
        _ => panic!("a typed context is a JSON object"),
    }
}

/// Parses `type:id` into a resource reference.
/// A link as a request carries it: `(linked resource, action needed
/// there, actions it gates)`.
pub fn link((to, action, on): (&str, &str, &[&str])) -> pb::ResourceLink {
    pb::ResourceLink {
        resource: Some(res(to)),
        action: action.into(),
        on: on.iter().map(|a| (*a).to_owned()).collect(),
    }
}

pub fn res(s: &str) -> pb::ResourceRef {
    let (t, id) = s.split_once(':').expect("`type:id`");
    pb::ResourceRef {
        r#type: t.into(),
        id: id.into(),
    }
}

/// `team:x` is a team; anything else is a principal id.
pub fn subj(s: &str) -> pb::SubjectRef {
    use pb::subject_ref::Kind;
    pb::SubjectRef {
        kind: Some(match s.strip_prefix("team:") {
            Some(t) => Kind::TeamId(t.into()),
            None => Kind::PrincipalId(s.into()),
        }),
    }
}

/// `tenant` is the whole tenant; anything else is `type:id`.
pub fn scope(s: &str) -> Option<pb::ResourceRef> {
    (s != "tenant").then(|| res(s))
}

/// The gRPC code of a result.
pub fn code<T: std::fmt::Debug>(r: Result<T, Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

impl TestApp {
    fn bearer(key: &str) -> Bearer {
        Bearer::new(key).expect("ascii key")
    }

    /// Admin client with the operator key.
    pub fn operator(&self) -> AdminServiceClient<Authed> {
        AdminServiceClient::with_interceptor(self.channel.clone(), Self::bearer(OPERATOR_KEY))
    }

    /// Admin client with the admin key.
    pub fn admin(&self) -> AdminServiceClient<Authed> {
        AdminServiceClient::with_interceptor(self.channel.clone(), Self::bearer(ADMIN_KEY))
    }

    /// OperatorService client (replica calls) with any key.
    pub fn replica_with_key(&self, key: &str) -> OperatorServiceClient<Authed> {
        OperatorServiceClient::with_interceptor(self.channel.clone(), Self::bearer(key))
    }

    /// Admin client with any key.
    pub fn admin_with_key(&self, key: &str) -> AdminServiceClient<Authed> {
        AdminServiceClient::with_interceptor(self.channel.clone(), Self::bearer(key))
    }

    /// Check client with the check key.
    pub fn checker(&self) -> CheckServiceClient<Authed> {
        CheckServiceClient::with_interceptor(self.channel.clone(), Self::bearer(CHECK_KEY))
    }

    /// Check client with any key.
    pub fn checker_with_key(&self, key: &str) -> CheckServiceClient<Authed> {
        CheckServiceClient::with_interceptor(self.channel.clone(), Self::bearer(key))
    }

    /// List client with the check key.
    pub fn lister(&self) -> ListAccessibleServiceClient<Authed> {
        ListAccessibleServiceClient::with_interceptor(self.channel.clone(), Self::bearer(CHECK_KEY))
    }

    // ---- writes as the super user (operator key, no actor) -------------

    /// Creates an active user.
    pub async fn user(&self, id: &str) -> String {
        self.principal(id, pb::PrincipalKind::User, pb::PrincipalStatus::Active)
            .await
    }

    /// Creates an active service account.
    pub async fn service_account(&self, id: &str) -> String {
        self.principal(
            id,
            pb::PrincipalKind::ServiceAccount,
            pb::PrincipalStatus::Active,
        )
        .await
    }

    /// Creates a principal of any kind and initial status.
    pub async fn principal(
        &self,
        id: &str,
        kind: pb::PrincipalKind,
        status: pb::PrincipalStatus,
    ) -> String {
        self.operator()
            .create_principal(pb::CreatePrincipalRequest {
                tenant_id: TENANT.into(),
                principal_id: id.into(),
                kind: kind as i32,
                status: status as i32,
                display_name: id.into(),
                ..Default::default()
            })
            .await
            .expect("create principal")
            .into_inner()
            .consistency_token
    }

    /// Creates a resource (`type:id`) under `parent` (`type:id`, or None).
    pub async fn resource(&self, r: &str, parent: Option<&str>) -> String {
        self.resource_as("", r, parent, false)
            .await
            .expect("create resource")
    }

    /// Creates a private resource.
    pub async fn private_resource(&self, r: &str, parent: Option<&str>) -> String {
        self.resource_as("", r, parent, true)
            .await
            .expect("create resource")
    }

    /// Creates a resource acting as `actor` ("" for the super user).
    pub async fn resource_as(
        &self,
        actor: &str,
        r: &str,
        parent: Option<&str>,
        private: bool,
    ) -> Result<String, Status> {
        self.operator()
            .create_resource(pb::CreateResourceRequest {
                links: Default::default(),
                request_id: String::new(),
                tenant_id: TENANT.into(),
                actor_id: actor.into(),
                resource: Some(res(r)),
                parent: parent.map(res),
                private,
                owner_id: String::new(),
                attributes: Default::default(),
                restricted: Default::default(),
            })
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    /// Creates a resource with an explicit owner.
    pub async fn owned_resource(&self, r: &str, parent: Option<&str>, owner: &str) -> String {
        self.operator()
            .create_resource(pb::CreateResourceRequest {
                tenant_id: TENANT.into(),
                resource: Some(res(r)),
                parent: parent.map(res),
                owner_id: owner.into(),
                ..Default::default()
            })
            .await
            .expect("create resource")
            .into_inner()
            .consistency_token
    }

    /// Creates a team.
    pub async fn team(&self, id: &str) -> String {
        self.operator()
            .create_team(pb::CreateTeamRequest {
                tenant_id: TENANT.into(),
                team_id: id.into(),
                display_name: id.into(),
                ..Default::default()
            })
            .await
            .expect("create team")
            .into_inner()
            .consistency_token
    }

    /// Adds `member` (`team:x` or a principal id) to `team`.
    pub async fn add_member(&self, team: &str, member: &str) -> Result<String, Status> {
        self.operator()
            .add_team_member(pb::AddTeamMemberRequest {
                tenant_id: TENANT.into(),
                team_id: team.into(),
                member: Some(subj(member)),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    /// Removes a member from a team.
    pub async fn remove_member(&self, team: &str, member: &str) -> Result<String, Status> {
        self.operator()
            .remove_team_member(pb::RemoveTeamMemberRequest {
                tenant_id: TENANT.into(),
                team_id: team.into(),
                member: Some(subj(member)),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    /// Grants `role` to `subject` on `scope` (`tenant` or `type:id`).
    pub async fn grant(&self, subject: &str, role: &str, scope_: &str) -> pb::Grant {
        self.grant_full("", subject, role, scope_, pb::Effect::Allow, None)
            .await
            .expect("grant")
    }

    /// A deny grant.
    pub async fn deny(&self, subject: &str, role: &str, scope_: &str) -> pb::Grant {
        self.grant_full("", subject, role, scope_, pb::Effect::Deny, None)
            .await
            .expect("deny grant")
    }

    /// Any grant, acting as `actor` ("" for the super user).
    pub async fn grant_full(
        &self,
        actor: &str,
        subject: &str,
        role: &str,
        scope_: &str,
        effect: pb::Effect,
        expire_time: Option<prost_types::Timestamp>,
    ) -> Result<pb::Grant, Status> {
        self.operator()
            .create_grant(pb::CreateGrantRequest {
                request_id: String::new(),
                tenant_id: TENANT.into(),
                actor_id: actor.into(),
                subject: Some(subj(subject)),
                role_id: role.into(),
                scope: scope(scope_),
                effect: effect as i32,
                expire_time,
                condition: Default::default(),
            })
            .await
            .map(|r| r.into_inner().grant.expect("grant in response"))
    }

    /// A grant with a CEL condition, acting as `actor` ("" for the super user).
    pub async fn conditional_grant(
        &self,
        actor: &str,
        subject: &str,
        role: &str,
        scope_: &str,
        effect: pb::Effect,
        condition: &str,
    ) -> Result<pb::Grant, Status> {
        self.operator()
            .create_grant(pb::CreateGrantRequest {
                tenant_id: TENANT.into(),
                actor_id: actor.into(),
                subject: Some(subj(subject)),
                role_id: role.into(),
                scope: scope(scope_),
                effect: effect as i32,
                condition: condition.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().grant.expect("grant in response"))
    }

    /// Creates `r` under `parent` with attributes, as the super user.
    pub async fn resource_with(
        &self,
        r: &str,
        parent: Option<&str>,
        attributes: &[(&str, &str)],
    ) -> Result<pb::Resource, Status> {
        self.operator()
            .create_resource(pb::CreateResourceRequest {
                tenant_id: TENANT.into(),
                resource: Some(res(r)),
                parent: parent.map(res),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().resource.expect("resource in response"))
    }

    /// Creates a restricted resource as the super user (only tenant-wide
    /// owner and admin grants reach in from above).
    pub async fn restricted_resource(&self, r: &str, parent: Option<&str>) -> String {
        self.operator()
            .create_resource(pb::CreateResourceRequest {
                tenant_id: TENANT.into(),
                resource: Some(res(r)),
                parent: parent.map(res),
                restricted: true,
                ..Default::default()
            })
            .await
            .expect("restricted resource")
            .into_inner()
            .consistency_token
    }

    /// Restricts a resource or lifts its restriction, acting as `actor`.
    pub async fn set_restricted(
        &self,
        actor: &str,
        r: &str,
        restricted: bool,
    ) -> Result<pb::Resource, Status> {
        self.operator()
            .set_resource_restricted(pb::SetResourceRestrictedRequest {
                tenant_id: TENANT.into(),
                actor_id: actor.into(),
                resource: Some(res(r)),
                restricted,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().resource.expect("resource"))
    }

    /// Replaces the resources `r` acts on, acting as `actor` (the super
    /// user when empty); each link is `(linked resource, action needed
    /// there, actions here it gates)`.
    pub async fn set_links(
        &self,
        actor: &str,
        r: &str,
        links: &[(&str, &str, &[&str])],
    ) -> Result<pb::Resource, Status> {
        self.operator()
            .set_resource_links(pb::SetResourceLinksRequest {
                tenant_id: TENANT.into(),
                actor_id: actor.into(),
                resource: Some(res(r)),
                links: links.iter().map(|l| link(*l)).collect(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().resource.expect("resource"))
    }

    /// Revokes a grant; returns the revision token.
    pub async fn revoke(&self, grant_id: &str) -> Result<String, Status> {
        self.operator()
            .delete_grant(pb::DeleteGrantRequest {
                tenant_id: TENANT.into(),
                grant_id: grant_id.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    /// Sets a principal's status acting as `actor` ("" for the super user).
    pub async fn set_status(
        &self,
        actor: &str,
        principal: &str,
        status: pb::PrincipalStatus,
    ) -> Result<String, Status> {
        self.operator()
            .set_principal_status(pb::SetPrincipalStatusRequest {
                request_id: String::new(),
                tenant_id: TENANT.into(),
                actor_id: actor.into(),
                principal_id: principal.into(),
                status: status as i32,
                invitation_expire_time: Default::default(),
            })
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    /// The invited principal `id` accepts its invitation (acting as itself).
    pub async fn accept(&self, id: &str) -> Result<String, Status> {
        self.operator()
            .accept_invitation(pb::AcceptInvitationRequest {
                tenant_id: TENANT.into(),
                actor_id: id.into(),
                principal_id: id.into(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    /// Creates a custom role.
    pub async fn role(
        &self,
        id: &str,
        permissions: &[&str],
        inherits: &[&str],
        effective_at: &[&str],
    ) -> Result<String, Status> {
        self.operator()
            .create_role(pb::CreateRoleRequest {
                tenant_id: TENANT.into(),
                role: Some(pb::Role {
                    id: id.into(),
                    display_name: id.into(),
                    permissions: permissions.iter().map(|s| s.to_string()).collect(),
                    inherits: inherits.iter().map(|s| s.to_string()).collect(),
                    effective_at: effective_at.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token)
    }

    // ---- questions ---------------------------------------------------

    /// The full answer to a check, with explanation.
    pub async fn check_full(&self, subject: &str, action: &str, r: &str) -> pb::CheckResponse {
        self.check_in(subject, action, r, None).await
    }

    /// The full answer to a check carrying a typed context (a JSON object).
    pub async fn check_with(
        &self,
        subject: &str,
        action: &str,
        r: &str,
        context: serde_json::Value,
    ) -> pb::CheckResponse {
        self.check_in(subject, action, r, Some(typed(context)))
            .await
    }

    async fn check_in(
        &self,
        subject: &str,
        action: &str,
        r: &str,
        typed_context: Option<prost_types::Struct>,
    ) -> pb::CheckResponse {
        self.checker()
            .check(pb::CheckRequest {
                tenant_id: TENANT.into(),
                principal_id: subject.into(),
                action: action.into(),
                resource: Some(res(r)),
                explain: true,
                typed_context,
                ..Default::default()
            })
            .await
            .expect("check")
            .into_inner()
    }

    /// Every id of `rtype` the subject may `action` on with a typed context,
    /// following all pages, sorted.
    pub async fn list_with(
        &self,
        subject: &str,
        action: &str,
        rtype: &str,
        context: serde_json::Value,
    ) -> Vec<String> {
        let mut ids = self
            .list_in((subject, action, rtype), 0, Some(typed(context)))
            .await;
        ids.sort();
        ids
    }

    /// Every principal who may `action` on `r` with a typed context, sorted.
    pub async fn subjects_with(
        &self,
        r: &str,
        action: &str,
        context: serde_json::Value,
    ) -> Vec<String> {
        self.subjects_in(r, action, Some(typed(context))).await
    }

    /// Whether `subject` may `action` on `r` (`type:id`).
    pub async fn check(&self, subject: &str, action: &str, r: &str) -> bool {
        self.check_full(subject, action, r).await.allowed
    }

    /// The reason of a check's answer.
    pub async fn reason(&self, subject: &str, action: &str, r: &str) -> pb::Reason {
        pb::Reason::try_from(self.check_full(subject, action, r).await.reason)
            .expect("known reason")
    }

    /// Every id of `rtype` the subject may `action` on, following all pages,
    /// sorted (the server lists in the tree's order, which the random-worlds
    /// property checks; examples compare the set).
    pub async fn list(&self, subject: &str, action: &str, rtype: &str) -> Vec<String> {
        let mut ids = self.list_paged(subject, action, rtype, 0).await;
        ids.sort();
        ids
    }

    /// Every id, in the order listed, following pages of `page_size`.
    pub async fn list_paged(
        &self,
        subject: &str,
        action: &str,
        rtype: &str,
        page_size: u32,
    ) -> Vec<String> {
        self.list_in((subject, action, rtype), page_size, None)
            .await
    }

    async fn list_in(
        &self,
        (subject, action, rtype): (&str, &str, &str),
        page_size: u32,
        typed_context: Option<prost_types::Struct>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .lister()
                .list_accessible(pb::ListAccessibleRequest {
                    tenant_id: TENANT.into(),
                    principal_id: subject.into(),
                    action: action.into(),
                    resource_type: rtype.into(),
                    page_size,
                    page_token: token.clone(),
                    typed_context: typed_context.clone(),
                    ..Default::default()
                })
                .await
                .expect("list accessible")
                .into_inner();
            out.extend(page.resource_ids);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// Every principal who may `action` on `r`, following all pages.
    pub async fn subjects(&self, r: &str, action: &str) -> Vec<String> {
        self.subjects_in(r, action, None).await
    }

    async fn subjects_in(
        &self,
        r: &str,
        action: &str,
        typed_context: Option<prost_types::Struct>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .lister()
                .list_subjects(pb::ListSubjectsRequest {
                    tenant_id: TENANT.into(),
                    resource: Some(res(r)),
                    action: action.into(),
                    page_token: token.clone(),
                    typed_context: typed_context.clone(),
                    ..Default::default()
                })
                .await
                .expect("list subjects")
                .into_inner();
            out.extend(page.principal_ids);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }
}

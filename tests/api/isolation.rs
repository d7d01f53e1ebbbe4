//! Tenant isolation, RPC by RPC. Two tenants, `acme` and `globex`, are built
//! with the same shape under their own prefixes (`acme-user` / `globex-user`,
//! team `acme-team` / `globex-team`, role `acme_role` / `globex_role`,
//! `folder:acme-f` / `folder:globex-f`, a grant id of each...), plus a few ids
//! that exist in both with different grants (`shared`, `shared-team`,
//! `shared_role`, `folder:shared-f`, `workflow:shared-w`). Then:
//!
//! 1. a key limited to one tenant, naming the other, is refused with the very
//!    status it gets for a tenant that exists nowhere (so the refusal says
//!    nothing of whether the other tenant exists), for every RPC; instance-wide
//!    RPCs are refused to tenant-limited keys; nothing is written;
//! 2. in `acme`, a reference to an id that exists only in `globex` (principal,
//!    resource, type, action, team, role, grant id, actor) gets the very answer
//!    an id that exists nowhere gets, and a refused write changes nothing;
//!    an `acme` id in the same place is accepted (so the field is really read);
//! 3. nothing `acme` can read mentions `globex` (and the other way round), and
//!    ids present in both tenants answer with their own tenant's data only;
//! 4. the unrestricted operator key, and each limited key in its own tenant,
//!    still reach every RPC: the refusals are about the key, not the tenant.
//!
//! Every RPC is listed in [`every_rpc`]; [`the_rpc_table_names_every_rpc_of_the_api`]
//! checks that list against the `.proto` files. "The same answer" is
//! [`assert_alike`]: code, message, details and body, after replacing each
//! side's own reference by a placeholder. "Nothing written" is
//! [`World::snapshot`]: every row of every table, compared before and after.
//! `ISOLATION_SHOW=1` prints every compared answer, normalized.

use crate::helpers::*;
use crate::on_every_backend;
use pb::admin_service_client::AdminServiceClient;
use pb::check_service_client::CheckServiceClient;
use pb::list_accessible_service_client::ListAccessibleServiceClient;
use portcullis::config::{ApiKey, KeyScope, Secret};
use portcullis::grpc::pb;
use portcullis::store::entity;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use tonic::transport::Channel;
use tonic::{Code, Status};

// ---- keys ----------------------------------------------------------------

/// An API key of the test server.
#[derive(Debug)]
struct Key {
    name: &'static str,
    secret: &'static str,
    scope: KeyScope,
    /// Empty for every tenant.
    tenants: &'static [&'static str],
}

const ACME_ONLY: Key = Key {
    name: "acme-only",
    secret: "acme-only-key-0123456789",
    scope: KeyScope::Admin,
    tenants: &["acme"],
};
const ACME_CHECK: Key = Key {
    name: "acme-check",
    secret: "acme-check-key-0123456789",
    scope: KeyScope::Check,
    tenants: &["acme"],
};
const ACME_OPERATOR: Key = Key {
    name: "acme-operator",
    secret: "acme-operator-key-0123456789",
    scope: KeyScope::Operator,
    tenants: &["acme"],
};
const GLOBEX_ADMIN: Key = Key {
    name: "globex-admin",
    secret: "globex-admin-key-0123456789",
    scope: KeyScope::Admin,
    tenants: &["globex"],
};
/// The unrestricted keys of `helpers::test_config`.
const OPERATOR: Key = Key {
    name: "test-operator",
    secret: OPERATOR_KEY,
    scope: KeyScope::Operator,
    tenants: &[],
};
const ADMIN: Key = Key {
    name: "test-admin",
    secret: ADMIN_KEY,
    scope: KeyScope::Admin,
    tenants: &[],
};
const CHECK: Key = Key {
    name: "test-check",
    secret: CHECK_KEY,
    scope: KeyScope::Check,
    tenants: &[],
};

/// A tenant id that exists nowhere.
const NO_TENANT: &str = "no-such-tenant";
/// The prefix of ids that exist nowhere.
const GHOST: &str = "ghost";
/// A well-formed grant id that exists nowhere.
const GHOST_GRANT: &str = "01900000-0000-7000-8000-000000000000";

// ---- names ---------------------------------------------------------------

/// The ids of one tenant's fixture: `Names::of("globex", ..).user()` is
/// `globex-user`. `Names::of("ghost", ..)` names ids that exist nowhere.
#[derive(Debug, Clone)]
struct Names {
    t: String,
    /// Id of the grant of `<t>-team` (editor on `folder:<t>-f`).
    grant: String,
}

impl Names {
    fn of(t: &str, grant: &str) -> Self {
        Self {
            t: t.to_owned(),
            grant: grant.to_owned(),
        }
    }
    fn id(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.t)
    }
    fn name(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.t)
    }
    fn admin(&self) -> String {
        self.id("admin")
    }
    fn boss(&self) -> String {
        self.id("boss")
    }
    fn user(&self) -> String {
        self.id("user")
    }
    fn user2(&self) -> String {
        self.id("user2")
    }
    fn user3(&self) -> String {
        self.id("user3")
    }
    fn invited(&self) -> String {
        self.id("invited")
    }
    fn team(&self) -> String {
        self.id("team")
    }
    fn subteam(&self) -> String {
        self.id("subteam")
    }
    fn doomed_team(&self) -> String {
        self.id("doomed-team")
    }
    fn role(&self) -> String {
        self.name("role")
    }
    fn role2(&self) -> String {
        self.name("role2")
    }
    fn doomed_role(&self) -> String {
        self.name("doomed_role")
    }
    /// An action only this tenant's roles name.
    fn deploy(&self) -> String {
        self.name("deploy")
    }
    /// A resource type only this tenant uses.
    fn kind(&self) -> String {
        self.name("kind")
    }
    fn ws(&self) -> String {
        format!("workspace:{}", self.id("ws"))
    }
    fn folder(&self) -> String {
        format!("folder:{}", self.id("f"))
    }
    fn folder2(&self) -> String {
        format!("folder:{}", self.id("f2"))
    }
    fn workflow(&self) -> String {
        format!("workflow:{}", self.id("w"))
    }
    fn movable(&self) -> String {
        format!("workflow:{}", self.id("m"))
    }
    fn doomed(&self) -> String {
        format!("workflow:{}", self.id("doomed"))
    }
    /// A resource of this tenant's own type.
    fn thing(&self) -> String {
        format!("{}:{}", self.kind(), self.id("k"))
    }
}

// ---- the server ------------------------------------------------------------

/// A server with the two tenants, and a database connection for snapshots.
struct World {
    ch: Channel,
    db: DatabaseConnection,
    acme: Names,
    globex: Names,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// What a call answered: the response's debug text, or the status.
type Reply = Result<String, Status>;
type Fut = Pin<Box<dyn Future<Output = Reply> + Send>>;

fn reply<T: std::fmt::Debug>(r: Result<tonic::Response<T>, Status>) -> Reply {
    r.map(|r| format!("{:?}", r.into_inner()))
}

fn code_of(r: &Reply) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// Who calls, where, acting as whom, naming which fixture ids.
#[derive(Clone)]
struct Ctx {
    ch: Channel,
    key: &'static Key,
    tenant: String,
    actor: String,
    n: Names,
}

impl Ctx {
    fn bearer(&self) -> Bearer {
        Bearer::new(self.key.secret).expect("ascii key")
    }
    fn admin(&self) -> AdminServiceClient<Authed> {
        AdminServiceClient::with_interceptor(self.ch.clone(), self.bearer())
    }
    fn checker(&self) -> CheckServiceClient<Authed> {
        CheckServiceClient::with_interceptor(self.ch.clone(), self.bearer())
    }
    fn lister(&self) -> ListAccessibleServiceClient<Authed> {
        ListAccessibleServiceClient::with_interceptor(self.ch.clone(), self.bearer())
    }
    fn replica(&self) -> pb::operator_service_client::OperatorServiceClient<Authed> {
        pb::operator_service_client::OperatorServiceClient::with_interceptor(
            self.ch.clone(),
            self.bearer(),
        )
    }
    fn tenants(&self) -> pb::tenant_service_client::TenantServiceClient<Authed> {
        pb::tenant_service_client::TenantServiceClient::with_interceptor(
            self.ch.clone(),
            self.bearer(),
        )
    }
    fn watcher(&self) -> pb::watch_service_client::WatchServiceClient<Authed> {
        pb::watch_service_client::WatchServiceClient::with_interceptor(
            self.ch.clone(),
            self.bearer(),
        )
    }
    fn t(&self) -> String {
        self.tenant.clone()
    }
    fn a(&self) -> String {
        self.actor.clone()
    }
}

impl World {
    async fn new(b: Backend) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = fresh_database(&b, dir.path()).await;
        let mut cfg = test_config(&url);
        for k in [&ACME_ONLY, &ACME_CHECK, &ACME_OPERATOR, &GLOBEX_ADMIN] {
            cfg.api_keys.push(ApiKey {
                name: k.name.into(),
                key: Secret::new(k.secret),
                scope: k.scope,
                tenants: k.tenants.iter().map(|t| t.to_string()).collect(),
                require_actor_token: false,
            });
        }
        let (_addr, ch, stop, _server) = serve(&cfg, true).await;
        let db = sea_orm::Database::connect(url.as_str())
            .await
            .expect("connect for snapshots");
        let mut w = World {
            ch,
            db,
            acme: Names::of("acme", ""),
            globex: Names::of("globex", ""),
            _stop: stop,
            _dir: dir,
        };
        w.acme = w.populate("acme").await;
        w.globex = w.populate("globex").await;
        w
    }

    fn ctx(&self, key: &'static Key, tenant: &str, actor: &str, n: &Names) -> Ctx {
        Ctx {
            ch: self.ch.clone(),
            key,
            tenant: tenant.to_owned(),
            actor: actor.to_owned(),
            n: n.clone(),
        }
    }

    fn names(&self, t: &str) -> &Names {
        match t {
            "acme" => &self.acme,
            "globex" => &self.globex,
            _ => panic!("no fixture for `{t}`"),
        }
    }

    /// Builds tenant `t` as the super user (and a few writes as its own
    /// principals, so that the audit trail has actors).
    async fn populate(&self, t: &str) -> Names {
        let n = Names::of(t, "");
        let c = self.ctx(&OPERATOR, t, "", &n);
        let mut op = c.admin();
        op.create_tenant(pb::CreateTenantRequest {
            tenant_id: t.into(),
            display_name: format!("Tenant {t}"),
            first_admin: Some(pb::FirstAdmin {
                principal_id: n.admin(),
                kind: 0,
                display_name: n.admin(),
            }),
            ..Default::default()
        })
        .await
        .expect("create tenant");
        let base = op.clone();
        let principal = |id: String, status: pb::PrincipalStatus, actor: String| {
            let mut op = base.clone();
            let t = t.to_owned();
            async move {
                op.create_principal(pb::CreatePrincipalRequest {
                    tenant_id: t,
                    actor_id: actor,
                    display_name: id.clone(),
                    principal_id: id,
                    status: status as i32,
                    ..Default::default()
                })
                .await
                .expect("create principal");
            }
        };
        use pb::PrincipalStatus::{Active, Invited};
        for p in [n.boss(), n.user(), n.user2(), n.user3(), "shared".into()] {
            principal(p, Active, String::new()).await;
        }
        principal(n.id("invited"), Invited, String::new()).await;
        let grant = |subject: String, role: &str, scope_: &str, effect: pb::Effect| {
            let mut op = base.clone();
            let req = pb::CreateGrantRequest {
                tenant_id: t.into(),
                subject: Some(subj(&subject)),
                role_id: role.into(),
                scope: scope(scope_),
                effect: effect as i32,
                ..Default::default()
            };
            async move {
                op.create_grant(req)
                    .await
                    .expect("create grant")
                    .into_inner()
                    .grant
                    .expect("grant")
                    .id
            }
        };
        use pb::Effect::{Allow, Deny};
        grant(n.boss(), "owner", "tenant", Allow).await;

        for team in [n.team(), n.subteam(), n.doomed_team(), "shared-team".into()] {
            op.create_team(pb::CreateTeamRequest {
                tenant_id: t.into(),
                display_name: team.clone(),
                team_id: team,
                ..Default::default()
            })
            .await
            .expect("create team");
        }
        let shared_members: Vec<String> = if t == "acme" {
            vec![n.user()]
        } else {
            vec!["shared".into(), n.user()]
        };
        let mut memberships = vec![
            (n.team(), n.user()),
            (n.team(), format!("team:{}", n.subteam())),
            (n.subteam(), n.user2()),
            (n.doomed_team(), n.user3()),
        ];
        memberships.extend(
            shared_members
                .into_iter()
                .map(|m| ("shared-team".into(), m)),
        );
        for (team, member) in memberships {
            op.add_team_member(pb::AddTeamMemberRequest {
                tenant_id: t.into(),
                team_id: team,
                member: Some(subj(&member)),
                ..Default::default()
            })
            .await
            .expect("add member");
        }

        let shared_perms: &[&str] = if t == "acme" {
            &["folder.view"]
        } else {
            &["*.view", "*.edit", "*.execute"]
        };
        let deploy = format!("workflow.{}", n.deploy());
        for (id, perms) in [
            (n.role(), vec![deploy.as_str(), "*.view"]),
            (n.role2(), vec!["folder.view"]),
            (n.doomed_role(), vec!["workflow.view"]),
            ("shared_role".into(), shared_perms.to_vec()),
        ] {
            op.create_role(pb::CreateRoleRequest {
                tenant_id: t.into(),
                role: Some(pb::Role {
                    display_name: id.clone(),
                    id,
                    permissions: perms.iter().map(|p| p.to_string()).collect(),
                    effective_at: vec!["*".into(), "tenant".into()],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("create role");
        }

        let shared_parent = if t == "acme" { Some(n.ws()) } else { None };
        for (r, parent, owner) in [
            (n.ws(), None, None),
            (n.folder(), Some(n.ws()), None),
            (n.folder2(), Some(n.ws()), None),
            (n.workflow(), Some(n.folder()), Some(n.user())),
            (n.movable(), Some(n.folder()), None),
            (n.doomed(), Some(n.folder()), None),
            (n.thing(), Some(n.folder()), None),
            ("folder:shared-f".into(), shared_parent, None),
            (
                "workflow:shared-w".into(),
                Some("folder:shared-f".into()),
                None,
            ),
        ] {
            op.create_resource(pb::CreateResourceRequest {
                tenant_id: t.into(),
                resource: Some(res(&r)),
                parent: parent.as_deref().map(res),
                owner_id: owner.unwrap_or_default(),
                ..Default::default()
            })
            .await
            .expect("create resource");
        }

        let team_grant = grant(format!("team:{}", n.team()), "editor", &n.folder(), Allow).await;
        grant(n.user2(), &n.role(), "tenant", Allow).await;
        grant(format!("team:{}", n.subteam()), "viewer", &n.ws(), Allow).await;
        grant(n.user(), "viewer", &n.folder2(), Deny).await;
        if t == "acme" {
            grant(
                "team:shared-team".into(),
                "shared_role",
                "folder:shared-f",
                Allow,
            )
            .await;
        } else {
            grant("shared".into(), "editor", "tenant", Allow).await;
            grant("shared".into(), "shared_role", "tenant", Allow).await;
            grant("team:shared-team".into(), "admin", "folder:shared-f", Allow).await;
        }

        // Writes by the tenant's own principals, and one with a request id.
        principal(n.id("hired"), Invited, n.boss()).await;
        op.create_team(pb::CreateTeamRequest {
            tenant_id: t.into(),
            actor_id: n.admin(),
            team_id: n.id("admins-team"),
            display_name: "Admins".into(),
            ..Default::default()
        })
        .await
        .expect("create team as admin");
        op.create_principal(pb::CreatePrincipalRequest {
            tenant_id: t.into(),
            principal_id: n.id("late"),
            display_name: "Late".into(),
            request_id: format!("req-{t}"),
            ..Default::default()
        })
        .await
        .expect("create principal with a request id");
        Names::of(t, &team_grant)
    }

    /// Every row of every table (of one tenant, or all), in a stable order.
    async fn snapshot(&self, tenant: Option<&str>) -> BTreeSet<String> {
        use entity::*;
        let db = &self.db;
        let mut out = BTreeSet::new();
        macro_rules! dump {
            ($($m:ident),*) => {$(
                let mut q = $m::Entity::find();
                if let Some(t) = tenant {
                    q = q.filter($m::Column::TenantId.eq(t));
                }
                for row in q.all(db).await.expect("snapshot") {
                    out.insert(format!("{}: {row:?}", stringify!($m)));
                }
            )*};
        }
        dump!(
            resource,
            principal,
            team,
            team_member,
            role,
            grant,
            audit_event,
            change,
            request
        );
        let mut q = tenant::Entity::find();
        if let Some(t) = tenant {
            q = q.filter(tenant::Column::Id.eq(t));
        }
        for row in q.all(db).await.expect("snapshot") {
            out.insert(format!("tenant: {row:?}"));
        }
        let mut q = tombstone::Entity::find();
        if let Some(t) = tenant {
            q = q.filter(tombstone::Column::Id.eq(t));
        }
        for row in q.all(db).await.expect("snapshot") {
            out.insert(format!("tombstone: {row:?}"));
        }
        out
    }
}

/// Fails with the rows that differ.
fn assert_unchanged(what: &str, before: &BTreeSet<String>, after: &BTreeSet<String>) {
    if before != after {
        let gone: Vec<&String> = before.difference(after).collect();
        let new: Vec<&String> = after.difference(before).collect();
        panic!("{what}: the store changed\n  rows gone: {gone:#?}\n  rows new: {new:#?}");
    }
}

// ---- "the same answer" -----------------------------------------------------

/// The whole of an answer as text (code, message, details and binary
/// metadata, or the response body), with each of `refs` replaced by `<REF>`.
fn normalize(r: &Reply, refs: &[&str]) -> String {
    let text = match r {
        Ok(body) => format!("OK {body}"),
        Err(s) => {
            let mut meta: Vec<String> = s
                .metadata()
                .iter()
                .filter_map(|kv| match kv {
                    // `date` and the per-call `x-request-id` differ between any two calls.
                    tonic::metadata::KeyAndValueRef::Ascii(k, v)
                        if k.as_str() != "date" && k.as_str() != "x-request-id" =>
                    {
                        Some(format!("{}={v:?}", k.as_str()))
                    }
                    tonic::metadata::KeyAndValueRef::Binary(k, v) => {
                        Some(format!("{}={v:?}", k.as_str()))
                    }
                    _ => None,
                })
                .collect();
            meta.sort();
            // The details decoded (they repeat the message, so compare them
            // as text with the references replaced, not as bytes).
            use tonic_types::StatusExt;
            format!(
                "{:?}: {} | details {:?} | metadata {meta:?}",
                s.code(),
                s.message(),
                s.check_error_details()
            )
        }
    };
    refs.iter().fold(text, |t, r| t.replace(r, "<REF>"))
}

/// Asserts that `a` (made with references `a_refs`) and `b` (made with
/// `b_refs`) are the same answer once each side's own references are replaced
/// by a placeholder. List longer references first.
fn assert_alike(what: &str, a: &Reply, a_refs: &[&str], b: &Reply, b_refs: &[&str]) -> String {
    let (na, nb) = (normalize(a, a_refs), normalize(b, b_refs));
    if std::env::var_os("ISOLATION_SHOW").is_some() {
        eprintln!("{what}\n    => {na}");
    }
    assert_eq!(
        na, nb,
        "{what}: the answers differ, so the call tells {a_refs:?} from {b_refs:?}"
    );
    na
}

// ---- every RPC -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Svc {
    Check,
    List,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    /// A write only the super user makes (an operator key, no actor).
    SuperUserWrite,
    /// A write previewed: the write's context and actor, nothing written.
    Preview,
    /// Operator only, on one tenant.
    CreateTenant,
    /// Operator only, deleting the tenant (last in the table).
    DeleteTenant,
    /// Operator only, spanning every tenant.
    Instance,
}

/// One RPC, called with a valid request built from the context. In the order
/// of the table, as the super user or as `<t>-boss`, each call succeeds on a
/// freshly built tenant (see [`the_unrestricted_operator_key_reaches_every_rpc_of_both_tenants`]).
struct Rpc {
    name: &'static str,
    svc: Svc,
    access: Access,
    call: fn(Ctx) -> Fut,
}

macro_rules! call {
    (|$c:ident| $body:block) => {{
        fn f($c: Ctx) -> Fut {
            Box::pin(async move $body)
        }
        f as fn(Ctx) -> Fut
    }};
}

fn rpc(name: &'static str, svc: Svc, access: Access, call: fn(Ctx) -> Fut) -> Rpc {
    Rpc {
        name,
        svc,
        access,
        call,
    }
}

fn every_rpc() -> Vec<Rpc> {
    use Access::*;
    use Svc::*;
    vec![
        rpc(
            "AdminService/CreateTenant",
            Admin,
            CreateTenant,
            call!(|c| {
                reply(
                    c.admin()
                        .create_tenant(pb::CreateTenantRequest {
                            tenant_id: c.t(),
                            display_name: "Taken over".into(),
                            first_admin: Some(pb::FirstAdmin {
                                principal_id: c.n.user(),
                                kind: 0,
                                display_name: "Intruder".into(),
                            }),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/GetTenant",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .get_tenant(pb::GetTenantRequest {
                            tenant_id: c.t(),
                            actor_id: String::new(),
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/ListTenants",
            Admin,
            Instance,
            call!(|c| {
                reply(
                    c.admin()
                        .list_tenants(pb::ListTenantsRequest::default())
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/UpdateTenant",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .update_tenant(pb::UpdateTenantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            display_name: "Renamed".into(),
                            single_owner_types: vec!["project".into()],
                            creator_owner_types: vec![
                                "project".into(),
                                "workflow".into(),
                                "draft".into(),
                            ],
                            audit_retention_days: 90,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/CreateResource",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .create_resource(pb::CreateResourceRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&format!("workflow:{}", c.n.id("new")))),
                            parent: Some(res(&c.n.folder())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/GetResource",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .get_resource(pb::GetResourceRequest {
                            tenant_id: c.t(),
                            resource: Some(res(&c.n.folder())),
                            actor_id: String::new(),
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/ListResources",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .list_resources(pb::ListResourcesRequest {
                            tenant_id: c.t(),
                            parent: Some(res(&c.n.folder())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/MoveResource",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .move_resource(pb::MoveResourceRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.movable())),
                            new_parent: Some(res(&c.n.folder2())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/SetResourcePrivate",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .set_resource_private(pb::SetResourcePrivateRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.folder2())),
                            private: true,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/SetResourceRestricted",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .set_resource_restricted(pb::SetResourceRestrictedRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.folder2())),
                            restricted: true,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/SetResourceLinks",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .set_resource_links(pb::SetResourceLinksRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.ws())),
                            links: vec![pb::ResourceLink {
                                resource: Some(res(&c.n.folder())),
                                action: "view".into(),
                                on: vec!["edit".into()],
                            }],
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/SetResourceAttributes",
            Admin,
            SuperUserWrite,
            call!(|c| {
                reply(
                    c.admin()
                        .set_resource_attributes(pb::SetResourceAttributesRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.folder2())),
                            attributes: [("user".to_owned(), "x".to_owned())].into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/DeleteResource",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .delete_resource(pb::DeleteResourceRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.doomed())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/TransferOwnership",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .transfer_ownership(pb::TransferOwnershipRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.workflow())),
                            new_owner_id: c.n.user2(),
                            previous_owner_role_id: "viewer".into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/CreatePrincipal",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .create_principal(pb::CreatePrincipalRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            principal_id: c.n.id("new"),
                            display_name: "New".into(),
                            status: pb::PrincipalStatus::Active as i32,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/GetPrincipal",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .get_principal(pb::GetPrincipalRequest {
                            tenant_id: c.t(),
                            principal_id: c.n.user(),
                            actor_id: String::new(),
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/ListPrincipals",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .list_principals(pb::ListPrincipalsRequest {
                            tenant_id: c.t(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/SetPrincipalStatus",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .set_principal_status(pb::SetPrincipalStatusRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            principal_id: c.n.user3(),
                            status: pb::PrincipalStatus::Suspended as i32,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/AcceptInvitation",
            Admin,
            Write,
            call!(|c| {
                // The operator accepts for the tenant's invited principal;
                // a principal actor accepts its own (already active: no-op).
                let principal_id = if c.a().is_empty() {
                    c.n.id("invited")
                } else {
                    c.a()
                };
                reply(
                    c.admin()
                        .accept_invitation(pb::AcceptInvitationRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            principal_id,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/CreateTeam",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .create_team(pb::CreateTeamRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: c.n.id("new-team"),
                            display_name: "New team".into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/ListTeams",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .list_teams(pb::ListTeamsRequest {
                            tenant_id: c.t(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/DeleteTeam",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .delete_team(pb::DeleteTeamRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: c.n.doomed_team(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/AddTeamMember",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .add_team_member(pb::AddTeamMemberRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: c.n.team(),
                            member: Some(subj(&c.n.user2())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/RemoveTeamMember",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .remove_team_member(pb::RemoveTeamMemberRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: c.n.team(),
                            member: Some(subj(&c.n.user())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/ListTeamMembers",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .list_team_members(pb::ListTeamMembersRequest {
                            tenant_id: c.t(),
                            team_id: c.n.team(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/CreateRole",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .create_role(pb::CreateRoleRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            role: Some(role_def(&c.n.name("new_role"), &["workflow.view"], &[])),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/GetRole",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .get_role(pb::GetRoleRequest {
                            tenant_id: c.t(),
                            role_id: c.n.role(),
                            actor_id: String::new(),
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/ListRoles",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .list_roles(pb::ListRolesRequest {
                            tenant_id: c.t(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/UpdateRole",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .update_role(pb::UpdateRoleRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            role: Some(role_def(
                                &c.n.role2(),
                                &["folder.view", "folder.edit"],
                                &[],
                            )),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/DeleteRole",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .delete_role(pb::DeleteRoleRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            role_id: c.n.doomed_role(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/CreateGrant",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .create_grant(pb::CreateGrantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            subject: Some(subj(&c.n.user())),
                            role_id: "viewer".into(),
                            scope: Some(res(&c.n.folder())),
                            effect: pb::Effect::Allow as i32,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/PreviewChange",
            Admin,
            Preview,
            call!(|c| {
                reply(
                    c.admin()
                        .preview_change(pb::PreviewChangeRequest {
                            change: Some(pb::preview_change_request::Change::CreateGrant(
                                pb::CreateGrantRequest {
                                    tenant_id: c.t(),
                                    actor_id: c.a(),
                                    subject: Some(subj(&c.n.user())),
                                    role_id: "editor".into(),
                                    scope: Some(res(&c.n.folder())),
                                    effect: pb::Effect::Allow as i32,
                                    ..Default::default()
                                },
                            )),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/DeleteGrant",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.admin()
                        .delete_grant(pb::DeleteGrantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            grant_id: c.n.grant.clone(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/ListGrants",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .list_grants(pb::ListGrantsRequest {
                            tenant_id: c.t(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/GetAccessOverview",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .get_access_overview(pb::GetAccessOverviewRequest {
                            tenant_id: c.t(),
                            principal_id: c.n.user(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "AdminService/ListAuditEvents",
            Admin,
            Read,
            call!(|c| {
                reply(
                    c.admin()
                        .list_audit_events(pb::ListAuditEventsRequest {
                            tenant_id: c.t(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "WatchService/Watch",
            Admin,
            Read,
            call!(|c| {
                // The first revision of the whole history (or the refusal).
                let opened = c
                    .watcher()
                    .watch(pb::WatchRequest {
                        tenant_id: c.t(),
                        after_revision: "0".into(),
                    })
                    .await;
                match opened {
                    Err(s) => Err(s),
                    Ok(r) => {
                        let mut stream = r.into_inner();
                        match tokio::time::timeout(
                            std::time::Duration::from_secs(5),
                            stream.message(),
                        )
                        .await
                        {
                            Ok(Ok(Some(m))) => Ok(format!("{m:?}")),
                            Ok(Ok(None)) => Ok("the stream ended".to_owned()),
                            Ok(Err(s)) => Err(s),
                            Err(_) => Ok("no revision within 5 s".to_owned()),
                        }
                    }
                }
            }),
        ),
        rpc(
            "OperatorService/GetCacheStats",
            Admin,
            Instance,
            call!(|c| {
                reply(
                    c.replica()
                        .get_cache_stats(pb::GetCacheStatsRequest {})
                        .await,
                )
            }),
        ),
        rpc(
            "CheckService/Check",
            Check,
            Read,
            call!(|c| {
                reply(
                    c.checker()
                        .check(pb::CheckRequest {
                            tenant_id: c.t(),
                            principal_id: c.n.user(),
                            action: "view".into(),
                            resource: Some(res(&c.n.folder())),
                            explain: true,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "CheckService/BatchCheck",
            Check,
            Read,
            call!(|c| {
                let item = |s: String, a: String, r: String| pb::BatchCheckItem {
                    principal_id: s,
                    action: a,
                    resource: Some(res(&r)),
                };
                reply(
                    c.checker()
                        .batch_check(pb::BatchCheckRequest {
                            tenant_id: c.t(),
                            items: vec![
                                item(c.n.user(), "view".into(), c.n.folder()),
                                item(c.n.user2(), "edit".into(), c.n.workflow()),
                                item(c.n.user2(), c.n.deploy(), c.n.workflow()),
                            ],
                            explain: true,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "ListAccessibleService/ListAccessible",
            List,
            Read,
            call!(|c| {
                reply(
                    c.lister()
                        .list_accessible(pb::ListAccessibleRequest {
                            tenant_id: c.t(),
                            principal_id: c.n.user(),
                            action: "view".into(),
                            resource_type: "workflow".into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "ListAccessibleService/ListSubjects",
            List,
            Read,
            call!(|c| {
                reply(
                    c.lister()
                        .list_subjects(pb::ListSubjectsRequest {
                            tenant_id: c.t(),
                            resource: Some(res(&c.n.folder())),
                            action: "view".into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "TenantService/ImportTenant",
            Admin,
            CreateTenant,
            call!(|c| {
                use pb::import_tenant_request::Part;
                let stream = vec![
                    pb::ImportTenantRequest {
                        part: Some(Part::Header(pb::ImportHeader {
                            tenant_id: c.t(),
                            settings: Some(pb::Tenant {
                                display_name: "Taken over".into(),
                                ..Default::default()
                            }),
                            request_id: String::new(),
                        })),
                    },
                    pb::ImportTenantRequest {
                        part: Some(Part::Records(pb::TenantRecords {
                            principals: vec![pb::Principal {
                                id: c.n.user(),
                                display_name: "Intruder".into(),
                                status: pb::PrincipalStatus::Active as i32,
                                ..Default::default()
                            }],
                            grants: vec![pb::Grant {
                                subject: Some(subj(&c.n.user())),
                                role_id: "account_admin".into(),
                                ..Default::default()
                            }],
                            ..Default::default()
                        })),
                    },
                ];
                reply(c.tenants().import_tenant(tokio_stream::iter(stream)).await)
            }),
        ),
        rpc(
            "TenantService/ExportTenant",
            Admin,
            Read,
            call!(|c| {
                let opened = c
                    .tenants()
                    .export_tenant(pb::ExportTenantRequest {
                        tenant_id: c.t(),
                        actor_id: c.a(),
                    })
                    .await;
                match opened {
                    Err(s) => Err(s),
                    Ok(r) => {
                        let mut stream = r.into_inner();
                        let mut all = Vec::new();
                        while let Some(m) = stream.message().await? {
                            all.push(m);
                        }
                        Ok(format!("{all:?}"))
                    }
                }
            }),
        ),
        rpc(
            "TenantService/ApplyTenant",
            Admin,
            Write,
            call!(|c| {
                // The tenant as it is (read by the unrestricted operator),
                // applied back: no change, but every check of the call.
                let mut op = pb::tenant_service_client::TenantServiceClient::with_interceptor(
                    c.ch.clone(),
                    Bearer::new(OPERATOR_KEY).expect("ascii key"),
                );
                let (mut settings, mut records) = (None, pb::TenantRecords::default());
                if let Ok(r) = op
                    .export_tenant(pb::ExportTenantRequest {
                        tenant_id: c.t(),
                        actor_id: String::new(),
                    })
                    .await
                {
                    let mut stream = r.into_inner();
                    while let Ok(Some(m)) = stream.message().await {
                        match m.part {
                            Some(pb::export_tenant_response::Part::Header(h)) => {
                                settings = h.settings
                            }
                            Some(pb::export_tenant_response::Part::Records(r)) => {
                                records.roles.extend(r.roles);
                                records.principals.extend(r.principals);
                                records.teams.extend(r.teams);
                                records.members.extend(r.members);
                                records.resources.extend(r.resources);
                                records.grants.extend(r.grants);
                            }
                            None => {}
                        }
                    }
                }
                reply(
                    c.tenants()
                        .apply_tenant(pb::ApplyTenantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            settings: Some(settings.unwrap_or_else(|| pb::Tenant {
                                display_name: "x".into(),
                                ..Default::default()
                            })),
                            records: Some(records),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        rpc(
            "TenantService/ErasePrincipal",
            Admin,
            Write,
            call!(|c| {
                reply(
                    c.tenants()
                        .erase_principal(pb::ErasePrincipalRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            principal_id: c.n.user2(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        // Last: it deletes the tenant.
        rpc(
            "TenantService/DeleteTenant",
            Admin,
            DeleteTenant,
            call!(|c| {
                reply(
                    c.tenants()
                        .delete_tenant(pb::DeleteTenantRequest {
                            tenant_id: c.t(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
    ]
}

fn role_def(id: &str, permissions: &[&str], inherits: &[&str]) -> pb::Role {
    pb::Role {
        id: id.into(),
        display_name: id.into(),
        permissions: permissions.iter().map(|s| s.to_string()).collect(),
        inherits: inherits.iter().map(|s| s.to_string()).collect(),
        effective_at: vec!["*".into(), "tenant".into()],
        ..Default::default()
    }
}

/// What `key` must get from `rpc` in a tenant it may reach.
fn expected_in_own_tenant(rpc: &Rpc, key: &Key) -> Code {
    let operator = key.scope == KeyScope::Operator;
    match rpc.access {
        _ if rpc.svc == Svc::Admin && key.scope == KeyScope::Check => Code::PermissionDenied,
        Access::CreateTenant | Access::DeleteTenant | Access::Instance | Access::SuperUserWrite
            if !operator =>
        {
            Code::PermissionDenied
        }
        Access::Instance if !key.tenants.is_empty() => Code::PermissionDenied,
        // The tenant is there already.
        Access::CreateTenant => Code::AlreadyExists,
        _ => Code::Ok,
    }
}

// ---- 1. a key limited to one tenant, naming another --------------------------

async fn a_key_limited_to_one_tenant_gets_for_another_the_refusal_of_a_tenant_that_does_not_exist(
    b: Backend,
) {
    let w = World::new(b).await;
    let rpcs = every_rpc();
    let (mut attempts, mut baseline) = (0, 0);
    // (key, the existing tenant it may not reach, actor it claims there)
    let cases: [(&'static Key, &str, String); 4] = [
        (&ACME_CHECK, "globex", String::new()),
        (&ACME_ONLY, "globex", w.globex.boss()),
        (&ACME_OPERATOR, "globex", String::new()),
        (&GLOBEX_ADMIN, "acme", w.acme.boss()),
    ];
    // One snapshot around all the calls of an RPC: the store must not move.
    for rpc in &rpcs {
        let before = w.snapshot(None).await;
        for (key, other, actor) in &cases {
            // Ids that exist in the tenant the key may not reach.
            let n = w.names(other);
            let what = format!("{} with key `{}`", rpc.name, key.name);
            if rpc.access == Access::Instance {
                let r = (rpc.call)(w.ctx(key, other, actor, n)).await;
                attempts += 1;
                assert_eq!(code_of(&r), Code::PermissionDenied, "{what}: {r:?}");
                let msg = normalize(&r, &[]);
                assert!(!msg.contains(other), "{what} mentions `{other}`: {msg}");
            } else {
                let there = (rpc.call)(w.ctx(key, other, actor, n)).await;
                let nowhere = (rpc.call)(w.ctx(key, NO_TENANT, actor, n)).await;
                attempts += 1;
                baseline += 1;
                assert_eq!(
                    code_of(&there),
                    Code::PermissionDenied,
                    "{what} in `{other}`: {there:?}"
                );
                assert_alike(&what, &there, &[other], &nowhere, &[NO_TENANT]);
            }
        }
        assert_unchanged(rpc.name, &before, &w.snapshot(None).await);
    }
    // The refused CreateTenant created neither tenant.
    let tenants = w
        .ctx(&OPERATOR, "", "", &w.acme)
        .admin()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list tenants")
        .into_inner()
        .tenants;
    let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["acme", "globex"]);
    println!(
        "isolation: {} RPCs x {} tenant-limited keys: {attempts} calls into the other tenant, \
         all PERMISSION_DENIED, and {baseline} into a missing tenant answered alike; nothing written",
        rpcs.len(),
        cases.len()
    );
}

// ---- 2. references into another tenant ---------------------------------------

/// A call in `acme` with one field set to the probed id (everything else an
/// `acme` id). `pick` names the id in a tenant's fixture: the probe compares
/// `pick(globex)` (exists only there) with `pick(ghost)` (exists nowhere), and
/// then checks that `pick(acme)` is accepted in the same place.
struct Probe {
    rpc: &'static str,
    field: &'static str,
    svc: Svc,
    write: bool,
    pick: fn(&Names) -> String,
    call: fn(Ctx, String) -> Fut,
}

macro_rules! probe_call {
    (|$c:ident, $x:ident| $body:block) => {{
        fn f($c: Ctx, $x: String) -> Fut {
            Box::pin(async move $body)
        }
        f as fn(Ctx, String) -> Fut
    }};
}

fn probe(
    rpc: &'static str,
    field: &'static str,
    pick: fn(&Names) -> String,
    call: fn(Ctx, String) -> Fut,
) -> Probe {
    let svc = match rpc.split('/').next() {
        Some("CheckService") => Svc::Check,
        Some("ListAccessibleService") => Svc::List,
        _ => Svc::Admin,
    };
    let name = rpc.rsplit('/').next().unwrap_or(rpc);
    let write = svc == Svc::Admin && !name.starts_with("Get") && !name.starts_with("List");
    Probe {
        rpc,
        field,
        svc,
        write,
        pick,
        call,
    }
}

fn check_req(c: &Ctx, subject: String, action: String, r: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant_id: c.t(),
        principal_id: subject,
        action,
        resource: Some(res(r)),
        explain: true,
        ..Default::default()
    }
}

fn batch_req(c: &Ctx, second: (String, String, String)) -> pb::BatchCheckRequest {
    pb::BatchCheckRequest {
        tenant_id: c.t(),
        items: vec![
            pb::BatchCheckItem {
                principal_id: c.n.user(),
                action: "view".into(),
                resource: Some(res(&c.n.folder())),
            },
            pb::BatchCheckItem {
                principal_id: second.0,
                action: second.1,
                resource: Some(res(&second.2)),
            },
        ],
        explain: true,
        ..Default::default()
    }
}

fn audit_req(c: &Ctx, actor: String, target_prefix: String) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        tenant_id: c.t(),
        actor,
        target_prefix,
        page_size: 1000,
        ..Default::default()
    }
}

fn team_subj(id: &str) -> pb::SubjectRef {
    subj(&format!("team:{id}"))
}

/// Every reference an `acme` request can make into `globex`, in an order in
/// which each `acme` control (applied after the probe) leaves the next
/// probes valid.
fn foreign_references() -> Vec<Probe> {
    vec![
        // CheckService
        probe(
            "CheckService/Check",
            "principal_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.checker()
                        .check(check_req(&c, x, "view".into(), &c.n.folder()))
                        .await,
                )
            }),
        ),
        probe(
            "CheckService/Check",
            "resource",
            Names::folder,
            probe_call!(|c, x| {
                reply(
                    c.checker()
                        .check(check_req(&c, c.n.user(), "view".into(), &x))
                        .await,
                )
            }),
        ),
        probe(
            "CheckService/Check",
            "resource.type",
            Names::thing,
            probe_call!(|c, x| {
                reply(
                    c.checker()
                        .check(check_req(&c, c.n.user(), "view".into(), &x))
                        .await,
                )
            }),
        ),
        probe(
            "CheckService/Check",
            "action",
            Names::deploy,
            probe_call!(|c, x| {
                reply(
                    c.checker()
                        .check(check_req(&c, c.n.user2(), x, &c.n.workflow()))
                        .await,
                )
            }),
        ),
        probe(
            "CheckService/BatchCheck",
            "items[1].principal_id",
            Names::user,
            probe_call!(|c, x| {
                let req = batch_req(&c, (x, "view".into(), c.n.folder()));
                reply(c.checker().batch_check(req).await)
            }),
        ),
        probe(
            "CheckService/BatchCheck",
            "items[1].resource",
            Names::folder,
            probe_call!(|c, x| {
                let req = batch_req(&c, (c.n.user(), "view".into(), x));
                reply(c.checker().batch_check(req).await)
            }),
        ),
        probe(
            "CheckService/BatchCheck",
            "items[1].action",
            Names::deploy,
            probe_call!(|c, x| {
                let req = batch_req(&c, (c.n.user2(), x, c.n.workflow()));
                reply(c.checker().batch_check(req).await)
            }),
        ),
        // ListAccessibleService
        probe(
            "ListAccessibleService/ListAccessible",
            "principal_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.lister()
                        .list_accessible(pb::ListAccessibleRequest {
                            tenant_id: c.t(),
                            principal_id: x,
                            action: "view".into(),
                            resource_type: "workflow".into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "ListAccessibleService/ListAccessible",
            "resource_type",
            Names::kind,
            probe_call!(|c, x| {
                reply(
                    c.lister()
                        .list_accessible(pb::ListAccessibleRequest {
                            tenant_id: c.t(),
                            principal_id: c.n.user(),
                            action: "view".into(),
                            resource_type: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "ListAccessibleService/ListAccessible",
            "action",
            Names::deploy,
            probe_call!(|c, x| {
                reply(
                    c.lister()
                        .list_accessible(pb::ListAccessibleRequest {
                            tenant_id: c.t(),
                            principal_id: c.n.user2(),
                            action: x,
                            resource_type: "workflow".into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "ListAccessibleService/ListSubjects",
            "resource",
            Names::folder,
            probe_call!(|c, x| {
                reply(
                    c.lister()
                        .list_subjects(pb::ListSubjectsRequest {
                            tenant_id: c.t(),
                            resource: Some(res(&x)),
                            action: "view".into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "ListAccessibleService/ListSubjects",
            "action",
            Names::deploy,
            probe_call!(|c, x| {
                reply(
                    c.lister()
                        .list_subjects(pb::ListSubjectsRequest {
                            tenant_id: c.t(),
                            resource: Some(res(&c.n.workflow())),
                            action: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        // AdminService reads
        probe(
            "AdminService/GetResource",
            "resource",
            Names::folder,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .get_resource(pb::GetResourceRequest {
                            tenant_id: c.t(),
                            resource: Some(res(&x)),
                            actor_id: String::new(),
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/ListResources",
            "parent",
            Names::folder,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .list_resources(pb::ListResourcesRequest {
                            tenant_id: c.t(),
                            parent: Some(res(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "TenantService/ErasePrincipal",
            "principal_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.tenants()
                        .erase_principal(pb::ErasePrincipalRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            principal_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/GetPrincipal",
            "principal_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .get_principal(pb::GetPrincipalRequest {
                            tenant_id: c.t(),
                            principal_id: x,
                            actor_id: String::new(),
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/ListTeamMembers",
            "team_id",
            Names::team,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .list_team_members(pb::ListTeamMembersRequest {
                            tenant_id: c.t(),
                            team_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/GetRole",
            "role_id",
            Names::role,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .get_role(pb::GetRoleRequest {
                            tenant_id: c.t(),
                            role_id: x,
                            actor_id: String::new(),
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/ListGrants",
            "subject.principal_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .list_grants(pb::ListGrantsRequest {
                            tenant_id: c.t(),
                            subject: Some(subj(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/ListGrants",
            "subject.team_id",
            Names::team,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .list_grants(pb::ListGrantsRequest {
                            tenant_id: c.t(),
                            subject: Some(team_subj(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/ListGrants",
            "scope",
            Names::folder,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .list_grants(pb::ListGrantsRequest {
                            tenant_id: c.t(),
                            scope: Some(res(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/GetAccessOverview",
            "principal_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .get_access_overview(pb::GetAccessOverviewRequest {
                            tenant_id: c.t(),
                            principal_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/ListAuditEvents",
            "actor",
            Names::boss,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .list_audit_events(audit_req(&c, x, String::new()))
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/ListAuditEvents",
            "target_prefix (principal)",
            |n| format!("principal:{}", n.user()),
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .list_audit_events(audit_req(&c, String::new(), x))
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/ListAuditEvents",
            "target_prefix (grant)",
            |n| format!("grant:{}", n.grant),
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .list_audit_events(audit_req(&c, String::new(), x))
                        .await,
                )
            }),
        ),
        // AdminService writes
        probe(
            "AdminService/CreateResource",
            "parent",
            Names::folder,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .create_resource(pb::CreateResourceRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&format!("workflow:{}", c.n.id("via-parent")))),
                            parent: Some(res(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/CreateResource",
            "owner_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .create_resource(pb::CreateResourceRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&format!("workflow:{}", c.n.id("via-owner")))),
                            parent: Some(res(&c.n.folder())),
                            owner_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/MoveResource",
            "resource",
            Names::movable,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .move_resource(pb::MoveResourceRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&x)),
                            new_parent: Some(res(&c.n.folder2())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/MoveResource",
            "new_parent",
            Names::folder2,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .move_resource(pb::MoveResourceRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.workflow())),
                            new_parent: Some(res(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/DeleteResource",
            "resource",
            Names::doomed,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .delete_resource(pb::DeleteResourceRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/TransferOwnership",
            "resource",
            Names::workflow,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .transfer_ownership(pb::TransferOwnershipRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&x)),
                            new_owner_id: c.n.user2(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/TransferOwnership",
            "new_owner_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .transfer_ownership(pb::TransferOwnershipRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.workflow())),
                            new_owner_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/TransferOwnership",
            "previous_owner_role_id",
            Names::role,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .transfer_ownership(pb::TransferOwnershipRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&c.n.workflow())),
                            new_owner_id: c.n.user2(),
                            previous_owner_role_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/AddTeamMember",
            "team_id",
            Names::team,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .add_team_member(pb::AddTeamMemberRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: x,
                            member: Some(subj(&c.n.user2())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/AddTeamMember",
            "member.principal_id",
            Names::user3,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .add_team_member(pb::AddTeamMemberRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: c.n.subteam(),
                            member: Some(subj(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/AddTeamMember",
            "member.team_id",
            Names::subteam,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .add_team_member(pb::AddTeamMemberRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: "shared-team".into(),
                            member: Some(team_subj(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/RemoveTeamMember",
            "team_id",
            Names::team,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .remove_team_member(pb::RemoveTeamMemberRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: x,
                            member: Some(subj(&c.n.user())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        // `globex-user` is a member of globex's `shared-team`.
        probe(
            "AdminService/RemoveTeamMember",
            "member.principal_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .remove_team_member(pb::RemoveTeamMemberRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: "shared-team".into(),
                            member: Some(subj(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/SetPrincipalStatus",
            "principal_id",
            Names::user3,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .set_principal_status(pb::SetPrincipalStatusRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            principal_id: x,
                            status: pb::PrincipalStatus::Suspended as i32,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/AcceptInvitation",
            "principal_id",
            Names::invited,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .accept_invitation(pb::AcceptInvitationRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            principal_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/DeleteTeam",
            "team_id",
            Names::doomed_team,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .delete_team(pb::DeleteTeamRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            team_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/CreateRole",
            "role.inherits",
            Names::role,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .create_role(pb::CreateRoleRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            role: Some(role_def(&c.n.name("heir"), &[], &[&x])),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/UpdateRole",
            "role.id",
            Names::role2,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .update_role(pb::UpdateRoleRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            role: Some(role_def(&x, &["folder.view", "folder.edit"], &[])),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/UpdateRole",
            "role.inherits",
            Names::role,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .update_role(pb::UpdateRoleRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            role: Some(role_def(&c.n.role2(), &["folder.view"], &[&x])),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/DeleteRole",
            "role_id",
            Names::doomed_role,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .delete_role(pb::DeleteRoleRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            role_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/CreateGrant",
            "subject.principal_id",
            Names::user,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .create_grant(pb::CreateGrantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            subject: Some(subj(&x)),
                            role_id: "viewer".into(),
                            scope: Some(res(&c.n.folder2())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/CreateGrant",
            "subject.team_id",
            Names::team,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .create_grant(pb::CreateGrantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            subject: Some(team_subj(&x)),
                            role_id: "viewer".into(),
                            scope: Some(res(&c.n.folder2())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/CreateGrant",
            "role_id",
            Names::role,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .create_grant(pb::CreateGrantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            subject: Some(subj(&c.n.user())),
                            role_id: x,
                            scope: Some(res(&c.n.folder2())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/CreateGrant",
            "scope",
            Names::folder,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .create_grant(pb::CreateGrantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            subject: Some(subj(&c.n.user3())),
                            role_id: "viewer".into(),
                            scope: Some(res(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        probe(
            "AdminService/DeleteGrant",
            "grant_id",
            |n| n.grant.clone(),
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .delete_grant(pb::DeleteGrantRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            grant_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        // Last: a private `folder:acme-f2` would stop `acme-boss` above.
        probe(
            "AdminService/SetResourcePrivate",
            "resource",
            Names::folder2,
            probe_call!(|c, x| {
                reply(
                    c.admin()
                        .set_resource_private(pb::SetResourcePrivateRequest {
                            tenant_id: c.t(),
                            actor_id: c.a(),
                            resource: Some(res(&x)),
                            private: true,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
    ]
}

/// The (key, actor) pairs a probe of `svc` is made with in `acme`.
fn acme_callers(svc: Svc, acme: &Names) -> Vec<(&'static Key, String)> {
    match svc {
        Svc::Check | Svc::List => vec![(&CHECK, String::new()), (&ACME_CHECK, String::new())],
        Svc::Admin => vec![
            (&OPERATOR, String::new()),
            (&ACME_OPERATOR, String::new()),
            (&ACME_ONLY, acme.boss()),
        ],
    }
}

async fn ids_of_another_tenant_are_answered_like_ids_that_exist_nowhere(b: Backend) {
    let w = World::new(b).await;
    let ghost = Names::of(GHOST, GHOST_GRANT);
    let mut attempts = 0;
    let mut rpcs = BTreeSet::new();

    // Actors: every write of acme, naming a globex principal as the actor
    // (its account admin, or `globex-boss` who owns all of globex), is
    // refused exactly like a write naming an actor that exists nowhere.
    for rpc in every_rpc().iter().filter(|r| r.access == Access::Write) {
        let before = w.snapshot(None).await;
        for (foreign, none) in [
            (w.globex.boss(), ghost.boss()),
            (w.globex.admin(), ghost.admin()),
        ] {
            for key in [&ACME_ONLY, &ADMIN, &OPERATOR, &ACME_OPERATOR] {
                let what = format!(
                    "{} with actor_id `{foreign}` and key `{}`",
                    rpc.name, key.name
                );
                let a = (rpc.call)(w.ctx(key, "acme", &foreign, &w.acme)).await;
                let z = (rpc.call)(w.ctx(key, "acme", &none, &w.acme)).await;
                attempts += 1;
                assert_eq!(code_of(&a), Code::PermissionDenied, "{what}: {a:?}");
                let alike = assert_alike(&what, &a, &[&foreign, "globex"], &z, &[&none, GHOST]);
                assert!(alike.contains("actor `<REF>`"), "{what}: {alike}");
            }
        }
        let what = format!("{} with a globex actor", rpc.name);
        assert_unchanged(&what, &before, &w.snapshot(None).await);
        rpcs.insert(rpc.name);
    }

    // Every other reference.
    let probes = foreign_references();
    for p in &probes {
        let (foreign, none, own) = ((p.pick)(&w.globex), (p.pick)(&ghost), (p.pick)(&w.acme));
        let callers = acme_callers(p.svc, &w.acme);
        let mut refused = None;
        let before = w.snapshot(None).await;
        for (key, actor) in &callers {
            let what = format!(
                "{} `{}` = `{foreign}` with key `{}`",
                p.rpc, p.field, key.name
            );
            let a = (p.call)(w.ctx(key, "acme", actor, &w.acme), foreign.clone()).await;
            let z = (p.call)(w.ctx(key, "acme", actor, &w.acme), none.clone()).await;
            attempts += 1;
            if p.write {
                assert_ne!(code_of(&a), Code::Ok, "{what} was accepted: {a:?}");
            }
            let alike = assert_alike(&what, &a, &[&foreign, "globex"], &z, &[&none, GHOST]);
            if p.write {
                // Refused because of the probed field, not before reaching it.
                assert!(
                    alike.contains("<REF>") && code_of(&a) != Code::PermissionDenied,
                    "{what}: refused for another reason: {alike}"
                );
            }
            refused.get_or_insert(alike);
        }
        let what = format!("{} `{}` = `{foreign}`", p.rpc, p.field);
        assert_unchanged(&what, &before, &w.snapshot(None).await);
        // Control: the acme id in the same place is accepted, and answered
        // differently, so the probe did reach the field.
        let (key, actor) = &callers[0];
        let mine = (p.call)(w.ctx(key, "acme", actor, &w.acme), own.clone()).await;
        let what = format!("{} `{}` = `{own}` (control)", p.rpc, p.field);
        assert_eq!(code_of(&mine), Code::Ok, "{what}: {mine:?}");
        assert_ne!(
            normalize(&mine, &[&own, "acme"]),
            refused.expect("at least one caller"),
            "{what}: answered as for an id that exists nowhere"
        );
        rpcs.insert(p.rpc);
    }
    println!(
        "isolation: {} RPCs, {} references into globex (fields) and {} writes with a globex actor, \
         {attempts} cross-tenant attempts: each answered like an id that exists nowhere, nothing written",
        rpcs.len(),
        probes.len(),
        every_rpc().iter().filter(|r| r.access == Access::Write).count()
    );
}

// ---- 2b. ids used by another tenant are free in this one -------------------

fn created<T: std::fmt::Debug>(r: Result<tonic::Response<T>, Status>) -> Reply {
    // Revision tokens and creation times differ from one write to the next.
    r.map(|r| {
        let text = format!("{:?}", r.into_inner());
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("create_time: Some(") {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let end = tail.find(')').map(|e| e + 1).unwrap_or(tail.len());
            out.push_str("create_time: <time>");
            rest = &tail[end..];
        }
        out.push_str(rest);
        const TOKEN: &str = "consistency_token: \"";
        match out.find(TOKEN) {
            Some(i) => {
                let tail = &out[i + TOKEN.len()..];
                let end = tail.find('"').unwrap_or(0);
                format!("{}consistency_token: <rev>{}", &out[..i], &tail[end + 1..])
            }
            None => out,
        }
    })
}

async fn ids_used_by_another_tenant_are_free_in_this_one(b: Backend) {
    let w = World::new(b).await;
    let ghost = Names::of(GHOST, GHOST_GRANT);
    let globex_before = w.snapshot(Some("globex")).await;
    type Create = (&'static str, fn(&Names) -> String, fn(Ctx, String) -> Fut);
    let creations: Vec<Create> = vec![
        (
            "CreatePrincipal principal_id",
            Names::user,
            probe_call!(|c, x| {
                created(
                    c.admin()
                        .create_principal(pb::CreatePrincipalRequest {
                            tenant_id: c.t(),
                            display_name: "Someone".into(),
                            principal_id: x,
                            status: pb::PrincipalStatus::Active as i32,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        (
            "CreateTeam team_id",
            Names::team,
            probe_call!(|c, x| {
                created(
                    c.admin()
                        .create_team(pb::CreateTeamRequest {
                            tenant_id: c.t(),
                            team_id: x,
                            display_name: "Some team".into(),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        (
            "CreateRole role.id",
            Names::role,
            probe_call!(|c, x| {
                created(
                    c.admin()
                        .create_role(pb::CreateRoleRequest {
                            tenant_id: c.t(),
                            role: Some(role_def(&x, &["workflow.view"], &[])),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        (
            "CreateResource resource",
            Names::folder,
            probe_call!(|c, x| {
                created(
                    c.admin()
                        .create_resource(pb::CreateResourceRequest {
                            tenant_id: c.t(),
                            resource: Some(res(&x)),
                            parent: Some(res(&c.n.ws())),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        (
            "CreateResource resource.type",
            Names::thing,
            probe_call!(|c, x| {
                created(
                    c.admin()
                        .create_resource(pb::CreateResourceRequest {
                            tenant_id: c.t(),
                            resource: Some(res(&x)),
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
        // globex used `req-globex` for a write; in acme it is a new request id.
        (
            "CreatePrincipal request_id",
            |n| format!("req-{}", n.t),
            probe_call!(|c, x| {
                created(
                    c.admin()
                        .create_principal(pb::CreatePrincipalRequest {
                            tenant_id: c.t(),
                            display_name: "By request".into(),
                            principal_id: format!("by-{x}"),
                            request_id: x,
                            ..Default::default()
                        })
                        .await,
                )
            }),
        ),
    ];
    for (what, pick, call) in &creations {
        let (foreign, none) = (pick(&w.globex), pick(&ghost));
        let c = w.ctx(&OPERATOR, "acme", "", &w.acme);
        let a = call(c.clone(), foreign.clone()).await;
        let z = call(c, none.clone()).await;
        assert_eq!(code_of(&a), Code::Ok, "{what} `{foreign}` in acme: {a:?}");
        assert_alike(what, &a, &[&foreign, "globex"], &z, &[&none, GHOST]);
    }
    assert_unchanged(
        "globex, after acme took its ids",
        &globex_before,
        &w.snapshot(Some("globex")).await,
    );
    println!(
        "isolation: {} kinds of id taken in globex created in acme like fresh ids; globex unchanged",
        creations.len()
    );
}

// ---- 3. nothing of one tenant shows in another ----------------------------

/// Everything the operator can read of tenant `t`, as (what, text).
async fn everything_readable(w: &World, t: &str) -> Vec<(String, String)> {
    let n = w.names(t);
    let c = w.ctx(&OPERATOR, t, "", n);
    let (mut admin, mut checker, mut lister) = (c.admin(), c.checker(), c.lister());
    let mut out: Vec<(String, String)> = Vec::new();
    macro_rules! see {
        ($what:expr, $call:expr) => {{
            let what: String = $what;
            let r = $call
                .await
                .unwrap_or_else(|e| panic!("{what}: {e:?}"))
                .into_inner();
            out.push((what, format!("{r:?}")));
            r
        }};
    }
    let tid = || t.to_owned();
    see!(
        format!("GetTenant {t}"),
        admin.get_tenant(pb::GetTenantRequest {
            tenant_id: tid(),
            actor_id: String::new()
        })
    );
    let principals = see!(
        "ListPrincipals".into(),
        admin.list_principals(pb::ListPrincipalsRequest {
            tenant_id: tid(),
            page_size: 1000,
            ..Default::default()
        })
    );
    assert!(principals.next_page_token.is_empty());
    let principals: Vec<String> = principals.principals.into_iter().map(|p| p.id).collect();
    let teams = see!(
        "ListTeams".into(),
        admin.list_teams(pb::ListTeamsRequest {
            tenant_id: tid(),
            page_size: 1000,
            ..Default::default()
        })
    );
    let teams: Vec<String> = teams.teams.into_iter().map(|t| t.id).collect();
    let roles = see!(
        "ListRoles".into(),
        admin.list_roles(pb::ListRolesRequest {
            tenant_id: tid(),
            ..Default::default()
        })
    );
    for r in roles.roles {
        see!(
            format!("GetRole {}", r.id),
            admin.get_role(pb::GetRoleRequest {
                tenant_id: tid(),
                role_id: r.id.clone(),
                actor_id: String::new(),
            })
        );
    }
    see!(
        "ListGrants".into(),
        admin.list_grants(pb::ListGrantsRequest {
            tenant_id: tid(),
            page_size: 1000,
            ..Default::default()
        })
    );
    let mut token = String::new();
    loop {
        let page = see!(
            "ListAuditEvents".into(),
            admin.list_audit_events(pb::ListAuditEventsRequest {
                tenant_id: tid(),
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    // The whole resource tree, from the top.
    let mut resources: Vec<String> = Vec::new();
    let mut parents: Vec<Option<String>> = vec![None];
    while let Some(parent) = parents.pop() {
        let page = see!(
            format!("ListResources under {parent:?}"),
            admin.list_resources(pb::ListResourcesRequest {
                tenant_id: tid(),
                parent: parent.as_deref().map(res),
                page_size: 1000,
                ..Default::default()
            })
        );
        for r in page.resources {
            let r = r.r#ref.expect("ref");
            let key = format!("{}:{}", r.r#type, r.id);
            resources.push(key.clone());
            parents.push(Some(key));
        }
    }
    for p in &principals {
        see!(
            format!("GetPrincipal {p}"),
            admin.get_principal(pb::GetPrincipalRequest {
                tenant_id: tid(),
                principal_id: p.clone(),
                actor_id: String::new(),
            })
        );
        see!(
            format!("GetAccessOverview {p}"),
            admin.get_access_overview(pb::GetAccessOverviewRequest {
                tenant_id: tid(),
                principal_id: p.clone(),
                ..Default::default()
            })
        );
        see!(
            format!("ListGrants of {p}"),
            admin.list_grants(pb::ListGrantsRequest {
                tenant_id: tid(),
                subject: Some(subj(p)),
                page_size: 1000,
                ..Default::default()
            })
        );
        see!(
            format!("ListAuditEvents by {p}"),
            admin.list_audit_events(pb::ListAuditEventsRequest {
                tenant_id: tid(),
                actor: p.clone(),
                page_size: 1000,
                ..Default::default()
            })
        );
    }
    for team in &teams {
        see!(
            format!("ListTeamMembers {team}"),
            admin.list_team_members(pb::ListTeamMembersRequest {
                tenant_id: tid(),
                team_id: team.clone(),
                ..Default::default()
            })
        );
        see!(
            format!("ListGrants of team {team}"),
            admin.list_grants(pb::ListGrantsRequest {
                tenant_id: tid(),
                subject: Some(team_subj(team)),
                page_size: 1000,
                ..Default::default()
            })
        );
    }
    // Only actions this tenant knows: an unknown one is echoed back in the
    // explanation, which would be the request's text, not a leak.
    let (deploy, kind) = (n.deploy(), n.kind());
    let actions = [
        "view",
        "edit",
        "execute",
        "delete",
        "share",
        "transfer",
        deploy.as_str(),
    ]
    .map(String::from);
    for r in &resources {
        see!(
            format!("GetResource {r}"),
            admin.get_resource(pb::GetResourceRequest {
                tenant_id: tid(),
                resource: Some(res(r)),
                actor_id: String::new(),
            })
        );
        see!(
            format!("ListGrants on {r}"),
            admin.list_grants(pb::ListGrantsRequest {
                tenant_id: tid(),
                scope: Some(res(r)),
                page_size: 1000,
                ..Default::default()
            })
        );
        for a in &actions {
            see!(
                format!("ListSubjects {a} {r}"),
                lister.list_subjects(pb::ListSubjectsRequest {
                    tenant_id: tid(),
                    resource: Some(res(r)),
                    action: a.clone(),
                    ..Default::default()
                })
            );
        }
    }
    let mut items = Vec::new();
    for p in &principals {
        for r in &resources {
            for a in &actions {
                items.push(pb::BatchCheckItem {
                    principal_id: p.clone(),
                    action: a.clone(),
                    resource: Some(res(r)),
                });
            }
        }
        for ty in ["workspace", "folder", "workflow", kind.as_str()] {
            for a in ["view", "edit", deploy.as_str()] {
                see!(
                    format!("ListAccessible {p} {a} {ty}"),
                    lister.list_accessible(pb::ListAccessibleRequest {
                        tenant_id: tid(),
                        principal_id: p.clone(),
                        action: a.into(),
                        resource_type: ty.into(),
                        ..Default::default()
                    })
                );
            }
        }
    }
    assert!(items.len() <= 5000, "{} items", items.len());
    see!(
        format!("BatchCheck of {} items", items.len()),
        checker.batch_check(pb::BatchCheckRequest {
            tenant_id: tid(),
            items,
            explain: true,
            ..Default::default()
        })
    );
    out
}

async fn nothing_one_tenant_reads_shows_the_other(b: Backend) {
    let w = World::new(b).await;
    let mut reads = 0;
    for (t, other) in [("acme", "globex"), ("globex", "acme")] {
        for (what, text) in everything_readable(&w, t).await {
            reads += 1;
            assert!(
                !text.contains(other),
                "{what} in `{t}` shows something of `{other}`: {text}"
            );
        }
    }

    // Ids present in both tenants answer with their own tenant's data.
    let c = |t: &str| w.ctx(&OPERATOR, t, "", w.names(t));
    let check = |t: &'static str, s: &'static str, a: &'static str, r: &'static str| {
        let c = c(t);
        async move {
            c.checker()
                .check(check_req(&c, s.into(), a.into(), r))
                .await
                .expect("check")
                .into_inner()
        }
    };
    // `shared` is editor on all of globex and nothing in acme.
    let there = check("globex", "shared", "edit", "workflow:shared-w").await;
    assert!(there.allowed, "{there:?}");
    let here = check("acme", "shared", "edit", "workflow:shared-w").await;
    assert!(!here.allowed, "{here:?}");
    assert_eq!(here.reason, pb::Reason::NoGrant as i32, "{here:?}");
    // The acme `shared-team` holds `shared_role` (folder.view) on shared-f;
    // globex's holds `admin` there.
    assert!(
        check("acme", "acme-user", "view", "folder:shared-f")
            .await
            .allowed
    );
    assert!(
        !check("acme", "acme-user", "edit", "workflow:shared-w")
            .await
            .allowed
    );
    assert!(
        check("globex", "globex-user", "edit", "workflow:shared-w")
            .await
            .allowed
    );

    let accessible = |t: &'static str, s: &'static str| {
        let c = c(t);
        async move {
            c.lister()
                .list_accessible(pb::ListAccessibleRequest {
                    tenant_id: c.t(),
                    principal_id: s.into(),
                    action: "edit".into(),
                    resource_type: "workflow".into(),
                    ..Default::default()
                })
                .await
                .expect("list accessible")
                .into_inner()
                .resource_ids
        }
    };
    assert!(accessible("acme", "shared").await.is_empty());
    assert!(accessible("globex", "shared")
        .await
        .contains(&"shared-w".to_owned()));

    let subjects = |t: &'static str| {
        let c = c(t);
        async move {
            c.lister()
                .list_subjects(pb::ListSubjectsRequest {
                    tenant_id: c.t(),
                    resource: Some(res("workflow:shared-w")),
                    action: "edit".into(),
                    ..Default::default()
                })
                .await
                .expect("list subjects")
                .into_inner()
                .principal_ids
        }
    };
    let acme_editors = subjects("acme").await;
    assert!(
        !acme_editors.iter().any(|p| p == "shared"),
        "{acme_editors:?}"
    );
    let globex_editors = subjects("globex").await;
    assert!(
        globex_editors.contains(&"shared".to_owned())
            && globex_editors.contains(&"globex-user".to_owned()),
        "{globex_editors:?}"
    );

    let overview = |t: &'static str| {
        let c = c(t);
        async move {
            c.admin()
                .get_access_overview(pb::GetAccessOverviewRequest {
                    tenant_id: c.t(),
                    principal_id: "shared".into(),
                    ..Default::default()
                })
                .await
                .expect("overview")
                .into_inner()
        }
    };
    assert!(overview("acme").await.entries.is_empty());
    // Editor and `shared_role` on the tenant, `admin` through `shared-team`.
    assert_eq!(overview("globex").await.entries.len(), 3);

    let members = |t: &'static str| {
        let c = c(t);
        async move {
            c.admin()
                .list_team_members(pb::ListTeamMembersRequest {
                    tenant_id: c.t(),
                    team_id: "shared-team".into(),
                    ..Default::default()
                })
                .await
                .expect("members")
                .into_inner()
                .members
        }
    };
    assert_eq!(members("acme").await, vec![subj("acme-user")]);
    assert_eq!(
        members("globex").await,
        vec![subj("globex-user"), subj("shared")]
    );

    let shared_role = |t: &'static str| {
        let c = c(t);
        async move {
            c.admin()
                .get_role(pb::GetRoleRequest {
                    tenant_id: c.t(),
                    role_id: "shared_role".into(),
                    actor_id: String::new(),
                })
                .await
                .expect("role")
                .into_inner()
                .role
                .expect("role")
                .permissions
        }
    };
    assert_eq!(shared_role("acme").await, ["folder.view"]);
    assert_eq!(
        shared_role("globex").await,
        ["*.view", "*.edit", "*.execute"]
    );

    let parent = |t: &'static str| {
        let c = c(t);
        async move {
            c.admin()
                .get_resource(pb::GetResourceRequest {
                    tenant_id: c.t(),
                    resource: Some(res("folder:shared-f")),
                    actor_id: String::new(),
                })
                .await
                .expect("resource")
                .into_inner()
                .resource
                .expect("resource")
                .parent
        }
    };
    assert_eq!(parent("acme").await, Some(res("workspace:acme-ws")));
    assert_eq!(parent("globex").await, None);
    println!("isolation: {reads} reads of both tenants, none shows the other tenant");
}

// ---- 4. the keys do reach their own tenants ---------------------------------

async fn run_table(w: &World, key: &'static Key, t: &str, actor: &str, only_reads: bool) -> usize {
    let mut calls = 0;
    for rpc in every_rpc() {
        if only_reads && rpc.access != Access::Read {
            continue;
        }
        let r = (rpc.call)(w.ctx(key, t, actor, w.names(t))).await;
        calls += 1;
        assert_eq!(
            code_of(&r),
            expected_in_own_tenant(&rpc, key),
            "{} in `{t}` with key `{}`: {r:?}",
            rpc.name,
            key.name
        );
    }
    calls
}

async fn the_unrestricted_operator_key_reaches_every_rpc_of_both_tenants(b: Backend) {
    let w = World::new(b).await;
    let mut calls = 0;
    for t in ["acme", "globex"] {
        calls += run_table(&w, &OPERATOR, t, "", false).await;
    }
    println!("isolation: the operator key made {calls} calls into both tenants, all answered");
}

async fn each_limited_key_reaches_every_rpc_of_its_own_tenant(b: Backend) {
    let w = World::new(b).await;
    let mut calls = 0;
    calls += run_table(&w, &GLOBEX_ADMIN, "globex", &w.globex.boss(), false).await;
    calls += run_table(&w, &ACME_ONLY, "acme", "", true).await;
    calls += run_table(&w, &ACME_CHECK, "acme", "", true).await;
    // Last: its table ends by deleting the tenant.
    calls += run_table(&w, &ACME_OPERATOR, "acme", "", false).await;
    println!(
        "isolation: tenant-limited keys made {calls} calls into their own tenants, all answered"
    );
}

on_every_backend!(
    a_key_limited_to_one_tenant_gets_for_another_the_refusal_of_a_tenant_that_does_not_exist,
    ids_of_another_tenant_are_answered_like_ids_that_exist_nowhere,
    ids_used_by_another_tenant_are_free_in_this_one,
    nothing_one_tenant_reads_shows_the_other,
    the_unrestricted_operator_key_reaches_every_rpc_of_both_tenants,
    each_limited_key_reaches_every_rpc_of_its_own_tenant,
);

// ---- the tables cover the API -------------------------------------------------

/// `Service/Rpc` for every rpc declared in the `.proto` files.
fn rpcs_in_protos() -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/portcullis/v1");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("proto dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "proto") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read proto");
        let mut service = None;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().map(str::to_owned);
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let name = rest.split('(').next().expect("rpc name").trim();
                let service = service.as_deref().expect("rpc inside a service");
                out.insert(format!("{service}/{name}"));
            }
        }
    }
    out
}

#[test]
fn the_rpc_table_names_every_rpc_of_the_api() {
    let declared = rpcs_in_protos();
    let table: BTreeSet<String> = every_rpc().iter().map(|r| r.name.to_owned()).collect();
    assert_eq!(every_rpc().len(), table.len(), "an RPC is listed twice");
    assert_eq!(
        declared, table,
        "every_rpc() must list exactly the RPCs of the protos"
    );
    for p in foreign_references() {
        assert!(declared.contains(p.rpc), "probe of unknown RPC {}", p.rpc);
    }
    assert_eq!(declared.len(), 47);
}

// ---- a side channel -----------------------------------------------------------

/// The ids of `tenant`'s audit events, newest first.
async fn audit_ids(w: &World, tenant: &str) -> Vec<u64> {
    w.ctx(&OPERATOR, tenant, "", w.names(tenant))
        .admin()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: tenant.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("audit events")
        .into_inner()
        .events
        .iter()
        .map(|e| e.id)
        .collect()
}

/// Audit event ids (and the page tokens made from them) are shown to every
/// administrator of a tenant. The step between two consecutive events of
/// `acme` must not depend on what `globex` did in between.
#[tokio::test]
async fn audit_event_ids_do_not_count_the_writes_of_other_tenants() {
    let w = World::new(Backend::Sqlite).await;
    let write = |t: &'static str, id: String| {
        let c = w.ctx(&OPERATOR, t, "", w.names(t));
        async move {
            c.admin()
                .create_principal(pb::CreatePrincipalRequest {
                    tenant_id: c.t(),
                    principal_id: id,
                    display_name: "Someone".into(),
                    ..Default::default()
                })
                .await
                .expect("create principal");
        }
    };
    write("acme", "step-a".into()).await;
    write("acme", "step-b".into()).await;
    let quiet = audit_ids(&w, "acme").await;
    for i in 0..5 {
        write("globex", format!("busy-{i}")).await;
    }
    write("acme", "step-c".into()).await;
    let busy = audit_ids(&w, "acme").await;
    let (quiet_step, busy_step) = (quiet[0] - quiet[1], busy[0] - busy[1]);
    assert_eq!(
        quiet_step, busy_step,
        "acme's audit ids moved by {busy_step} across 5 globex writes, by {quiet_step} without"
    );
}

//! Unit tests of the admin rules over the in-memory store.
//!
//! Every test builds a tiny [`World`]: the tenant `acme`, created by the
//! super user with the default settings (`project` is single-owner;
//! projects, workflows and drafts are owned by their creator) and with one
//! first account administrator, `root`. Helpers create principals, teams,
//! resources and grants as the super user; [`World::refused`] runs a write
//! that must fail and checks that it changed nothing (revision, rows, audit
//! trail, commit callbacks).

use super::grants::{CreateGrant, DeleteGrant};
use super::invariants::account_admins;
use super::members::{
    AcceptInvitation, AddTeamMember, CreatePrincipal, CreateTeam, DeleteTeam, RemoveTeamMember,
    SetPrincipalStatus,
};
use super::resources::{
    CreateResource, DeleteResource, MoveResource, SetResourcePrivate, TransferOwnership,
};
use super::roles::{CreateRole, DeleteRole, UpdateRole};
use super::tenants::{CreateTenant, UpdateTenant};
use super::{Admin, Command, Written};
use crate::error::{Error, Result};
use crate::model::roles::PREDEFINED_ROLE_IDS;
use crate::model::{
    now_millis, Actor, AuditEvent, Effect, Grant, Millis, Permission, Principal, PrincipalKind,
    PrincipalStatus, Resource, ResourceRef, Role, RoleTable, Scope, SubjectRef, Team, Tenant,
    MAX_TREE_DEPTH,
};
use crate::store::memory::MemStore;
use crate::store::{
    AuditFilter, Catalog, Delta, Invalidation, Keyset, RequestKey, RevisionLog, Store, WriteContext,
};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

const TENANT: &str = "acme";
const HOUR: Millis = 3_600_000;

/// Where the admin property tests keep the seeds of past failures (replayed
/// first on every run): beside this file, not in a top-level folder.
fn regressions() -> Option<Box<dyn proptest::test_runner::FailurePersistence>> {
    Some(Box::new(
        proptest::test_runner::FileFailurePersistence::Direct(
            "src/admin/tests.proptest-regressions",
        ),
    ))
}

// ---------------------------------------------------------------- builders

fn user(id: &str) -> Principal {
    Principal {
        id: id.to_owned(),
        kind: PrincipalKind::User,
        status: PrincipalStatus::Active,
        display_name: id.to_owned(),
        created_at: 0,
        invitation_expires_at: Default::default(),
    }
}

fn team(id: &str) -> Team {
    Team {
        id: id.to_owned(),
        display_name: id.to_owned(),
    }
}

fn principal(id: &str) -> SubjectRef {
    SubjectRef::Principal(id.to_owned())
}

fn team_ref(id: &str) -> SubjectRef {
    SubjectRef::Team(id.to_owned())
}

fn res(rtype: &str, id: &str) -> ResourceRef {
    ResourceRef {
        rtype: rtype.to_owned(),
        id: id.to_owned(),
    }
}

fn on(r: &ResourceRef) -> Scope {
    Scope::Resource(r.clone())
}

/// A custom role effective everywhere, with `permissions` and `inherits`.
fn custom_role(id: &str, permissions: &[&str], inherits: &[&str]) -> Role {
    Role {
        id: id.to_owned(),
        display_name: id.to_owned(),
        permissions: permissions
            .iter()
            .map(|p| Permission::parse("role.permissions", p).unwrap())
            .collect(),
        excluded_permissions: Vec::new(),
        inherits: inherits.iter().map(|s| (*s).to_owned()).collect(),
        condition: None,
        effective_at: vec!["tenant".to_owned(), "*".to_owned()],
        locked: false,
    }
}

fn allow(subject: SubjectRef, role: &str, scope: Scope) -> CreateGrant {
    CreateGrant {
        subject,
        role_id: role.to_owned(),
        scope,
        effect: Effect::Allow,
        expires_at: None,
        condition: None,
    }
}

fn create(r: &ResourceRef, parent: Option<&ResourceRef>) -> CreateResource {
    CreateResource {
        links: Default::default(),
        resource: r.clone(),
        parent: parent.cloned(),
        private: false,
        owner: None,
        attributes: Default::default(),
        restricted: Default::default(),
    }
}

fn set_status(id: &str, status: PrincipalStatus) -> SetPrincipalStatus {
    SetPrincipalStatus {
        principal_id: id.to_owned(),
        status,
        invitation_expires_at: Default::default(),
    }
}

fn ctx(actor: Actor) -> WriteContext {
    WriteContext {
        tenant_id: TENANT.to_owned(),
        caller: "test".to_owned(),
        actor,
        request: None,
    }
}

fn as_principal(id: &str) -> Actor {
    Actor::Principal(id.to_owned())
}

/// Asserts that an error matches a pattern, printing it otherwise.
macro_rules! assert_err {
    ($err:expr, $pat:pat if $guard:expr) => {{
        let err = &$err;
        assert!(
            matches!(err, $pat if $guard),
            "expected {} if {}, got {err:?}",
            stringify!($pat),
            stringify!($guard)
        );
    }};
    ($err:expr, $pat:pat) => {{
        let err = &$err;
        assert!(
            matches!(err, $pat),
            "expected {}, got {err:?}",
            stringify!($pat)
        );
    }};
}

// ---------------------------------------------------------------- the world

/// What the commit callback heard: tenant, revision, invalidation.
type Commits = Arc<Mutex<Vec<(String, i64, Invalidation)>>>;

/// Everything a write could change, read through the `Store` and `Catalog`
/// ports.
#[derive(Debug, PartialEq)]
struct Snapshot {
    revision: Option<i64>,
    tenant: Option<Tenant>,
    principals: Vec<Principal>,
    teams: Vec<(Team, Option<Vec<SubjectRef>>)>,
    roles: Vec<Role>,
    grants: Vec<Grant>,
    resources: Vec<Resource>,
    audit: Vec<AuditEvent>,
}

struct World {
    admin: Admin<MemStore>,
    commits: Commits,
}

impl World {
    /// The tenant `acme` with the default settings and `root` as its only
    /// account administrator.
    async fn new() -> Self {
        let commits: Commits = Arc::default();
        let heard = commits.clone();
        let admin = Admin::new(
            MemStore::new(),
            Arc::new(move |t: String, revision: i64, inv: Invalidation| {
                heard.lock().unwrap().push((t, revision, inv));
                Box::pin(async {})
            }),
        );
        let w = Self { admin, commits };
        w.su(CreateTenant {
            tenant: Tenant {
                id: TENANT.to_owned(),
                display_name: "Acme".to_owned(),
                single_owner_types: vec!["project".to_owned()],
                creator_owner_types: vec![
                    "project".to_owned(),
                    "workflow".to_owned(),
                    "draft".to_owned(),
                ],
                audit_retention_days: 90,
                created_at: now_millis(),
                actions: Vec::new(),
                implied_actions: Vec::new(),
            },
            first_admin: Some(user("root")),
        })
        .await
        .unwrap();
        w
    }

    fn store(&self) -> &MemStore {
        self.admin.store()
    }

    async fn write<C: Command>(&self, actor: Actor, cmd: C) -> Result<Written<C::Output>> {
        self.admin.write(&ctx(actor), cmd).await
    }

    /// Runs a write as the super user.
    async fn su<C: Command>(&self, cmd: C) -> Result<Written<C::Output>> {
        self.write(Actor::SuperUser, cmd).await
    }

    /// Runs a write that must be refused; checks that it changed nothing and
    /// returns the error.
    async fn refused<C: Command>(&self, actor: Actor, cmd: C) -> Error {
        let before = self.snapshot().await;
        let heard = self.commits.lock().unwrap().len();
        let err = match self.write(actor, cmd).await {
            Ok(w) => panic!("the write was not refused (revision {})", w.revision),
            Err(e) => e,
        };
        assert_eq!(
            self.snapshot().await,
            before,
            "a refused write changed the tenant"
        );
        assert_eq!(
            self.commits.lock().unwrap().len(),
            heard,
            "a refused write was reported as committed"
        );
        err
    }

    async fn revision(&self) -> i64 {
        self.store()
            .tenant_revision(TENANT, None)
            .await
            .unwrap()
            .unwrap()
    }

    async fn snapshot(&self) -> Snapshot {
        let s = self.store();
        let mut teams = Vec::new();
        for t in s.list_teams(TENANT, Keyset::ALL).await.unwrap() {
            let members = s.team_members(TENANT, &t.id, Keyset::ALL).await.unwrap();
            teams.push((t, members));
        }
        let mut resources = Vec::new();
        let mut parents: Vec<Option<ResourceRef>> = vec![None];
        while let Some(parent) = parents.pop() {
            for r in s
                .list_children(TENANT, parent.as_ref(), Keyset::ALL)
                .await
                .unwrap()
            {
                parents.push(Some(r.resource.clone()));
                resources.push(r);
            }
        }
        Snapshot {
            revision: s.tenant_revision(TENANT, None).await.unwrap(),
            tenant: Catalog::tenant(s, TENANT).await.unwrap(),
            principals: s.list_principals(TENANT, Keyset::ALL).await.unwrap(),
            teams,
            roles: s.custom_roles(TENANT).await.unwrap(),
            grants: self.grants().await,
            resources,
            audit: self.audit().await,
        }
    }

    /// Every grant of the tenant.
    async fn grants(&self) -> Vec<Grant> {
        self.store()
            .list_grants(TENANT, None, None, Keyset::ALL)
            .await
            .unwrap()
    }

    /// Grants held directly by a subject.
    async fn grants_of(&self, s: &SubjectRef) -> Vec<Grant> {
        self.store()
            .list_grants(TENANT, Some(s), None, Keyset::ALL)
            .await
            .unwrap()
    }

    /// Grants sitting on a resource, as `(holder, role)`.
    async fn grants_on(&self, r: &ResourceRef) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .store()
            .list_grants(TENANT, None, Some(r), Keyset::ALL)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.subject.id().to_owned(), g.role_id))
            .collect();
        out.sort();
        out
    }

    /// The audit trail, newest first.
    async fn audit(&self) -> Vec<AuditEvent> {
        let filter = AuditFilter {
            tenant: TENANT.to_owned(),
            ..AuditFilter::default()
        };
        self.store().list_audit(&filter, 1000).await.unwrap()
    }

    /// The tenant's durable account administrators, as the invariant counts
    /// them.
    async fn durable_admins(&self) -> Vec<String> {
        durable_admins_of(self.store()).await
    }

    async fn principal(&self, id: &str) {
        self.su(CreatePrincipal {
            principal: user(id),
        })
        .await
        .unwrap();
    }

    /// A new principal with a durable tenant-wide `account_admin` grant.
    async fn account_admin(&self, id: &str) -> Grant {
        self.principal(id).await;
        self.grant(principal(id), "account_admin", Scope::Tenant)
            .await
    }

    async fn team(&self, id: &str) {
        self.su(CreateTeam { team: team(id) }).await.unwrap();
    }

    async fn join(&self, team_id: &str, member: SubjectRef) {
        self.su(AddTeamMember {
            team_id: team_id.to_owned(),
            member,
        })
        .await
        .unwrap();
    }

    async fn grant(&self, subject: SubjectRef, role: &str, scope: Scope) -> Grant {
        self.su(allow(subject, role, scope)).await.unwrap().output
    }

    async fn revoke(&self, g: &Grant) {
        self.su(DeleteGrant {
            grant_id: g.id.clone(),
        })
        .await
        .unwrap();
    }

    async fn suspend(&self, id: &str) {
        self.su(set_status(id, PrincipalStatus::Suspended))
            .await
            .unwrap();
    }

    /// A resource created by the super user (no owner).
    async fn resource(&self, rtype: &str, id: &str, parent: Option<&ResourceRef>) -> ResourceRef {
        let r = res(rtype, id);
        self.su(create(&r, parent)).await.unwrap();
        r
    }

    /// A top-level project owned by `owner`.
    async fn project(&self, id: &str, owner: &str) -> ResourceRef {
        let r = res("project", id);
        self.su(CreateResource {
            owner: Some(owner.to_owned()),
            ..create(&r, None)
        })
        .await
        .unwrap();
        r
    }

    /// `root`'s direct, durable `account_admin` grant (from tenant creation).
    async fn roots_durable_grant(&self) -> Grant {
        self.grants_of(&principal("root"))
            .await
            .into_iter()
            .find(|g| {
                g.role_id == "account_admin"
                    && g.scope == Scope::Tenant
                    && g.effect == Effect::Allow
                    && g.expires_at.is_none()
            })
            .unwrap()
    }
}

async fn durable_admins_of(store: &MemStore) -> Vec<String> {
    let holders = store.tenant_holders(TENANT).await.unwrap();
    let roles = RoleTable::new(store.custom_roles(TENANT).await.unwrap());
    account_admins(holders, &roles, now_millis(), true)
}

// ---------------------------------------------------------------- authorization

#[tokio::test]
async fn a_member_without_manage_members_cannot_create_a_principal() {
    let w = World::new().await;
    w.principal("alice").await;
    // An editor of the whole tenant still may not administer its members.
    w.grant(principal("alice"), "editor", Scope::Tenant).await;
    let err = w
        .refused(
            as_principal("alice"),
            CreatePrincipal {
                principal: user("bob"),
            },
        )
        .await;
    assert_err!(err, Error::PermissionDenied(_));
}

#[tokio::test]
async fn the_super_user_can_create_a_principal() {
    let w = World::new().await;
    let before = w.revision().await;
    let written = w
        .su(CreatePrincipal {
            principal: user("bob"),
        })
        .await
        .unwrap();
    assert_eq!(written.output, user("bob"));
    assert_eq!(written.revision, before + 1);
    assert_eq!(
        w.store().principal(TENANT, "bob").await.unwrap(),
        Some(user("bob"))
    );
}

#[tokio::test]
async fn an_account_admin_can_create_a_principal() {
    let w = World::new().await;
    w.write(
        as_principal("root"),
        CreatePrincipal {
            principal: user("bob"),
        },
    )
    .await
    .unwrap();
    assert!(w.store().principal(TENANT, "bob").await.unwrap().is_some());
}

#[tokio::test]
async fn a_suspended_account_admin_is_refused() {
    let w = World::new().await;
    w.account_admin("alice").await;
    w.suspend("alice").await;
    let err = w
        .refused(
            as_principal("alice"),
            CreatePrincipal {
                principal: user("bob"),
            },
        )
        .await;
    assert_err!(err, Error::PermissionDenied(_));
}

#[tokio::test]
async fn a_grant_on_a_folder_lets_its_holder_create_a_workflow_inside_it_but_not_at_the_top() {
    let w = World::new().await;
    w.principal("alice").await;
    let folder = w.resource("folder", "f1", None).await;
    w.grant(principal("alice"), "editor", on(&folder)).await;

    let inside = res("workflow", "wf1");
    w.write(as_principal("alice"), create(&inside, Some(&folder)))
        .await
        .unwrap();
    assert_eq!(
        w.store()
            .resource(TENANT, &inside)
            .await
            .unwrap()
            .unwrap()
            .parent,
        Some(folder)
    );

    let err = w
        .refused(as_principal("alice"), create(&res("workflow", "wf2"), None))
        .await;
    assert_err!(err, Error::PermissionDenied(_));
}

// ---------------------------------------------------------------- last_account_admin

/// The writes that could take away the tenant's last account administrator.
/// Each one is prepared so that `root` is the only durable admin and holds
/// it by exactly the path the write cuts.
#[derive(Debug, Clone, Copy)]
enum LastAdminWrite {
    /// `root` suspends himself.
    SuspendHimself,
    /// The super user marks `root` removed.
    RemoveHim,
    /// `root` is admin only through team `admins`, which is deleted.
    DeleteHisTeam,
    /// `root` is admin only through team `admins`, and is taken out of it.
    RemoveHimFromHisTeam,
    /// `root` is admin only through the custom role `superadmin` (which
    /// inherits `account_admin`), deleted with cascade.
    DeleteHisRole,
    /// A deny grant of `account_admin` on `root`.
    DenyHim,
    /// `root` also holds an expiring `account_admin` grant; his durable one
    /// is revoked.
    RevokeHisDurableGrantKeepingAnExpiringOne,
}

impl LastAdminWrite {
    async fn prepare(self, w: &World) {
        match self {
            Self::SuspendHimself | Self::RemoveHim | Self::DenyHim => {}
            Self::DeleteHisTeam | Self::RemoveHimFromHisTeam => {
                w.team("admins").await;
                w.join("admins", principal("root")).await;
                w.grant(team_ref("admins"), "account_admin", Scope::Tenant)
                    .await;
                w.revoke(&w.roots_durable_grant().await).await;
            }
            Self::DeleteHisRole => {
                w.su(CreateRole {
                    role: custom_role("superadmin", &[], &["account_admin"]),
                })
                .await
                .unwrap();
                w.grant(principal("root"), "superadmin", Scope::Tenant)
                    .await;
                w.revoke(&w.roots_durable_grant().await).await;
            }
            Self::RevokeHisDurableGrantKeepingAnExpiringOne => {
                w.su(CreateGrant {
                    expires_at: Some(now_millis() + HOUR),
                    ..allow(principal("root"), "account_admin", Scope::Tenant)
                })
                .await
                .unwrap();
            }
        }
        assert_eq!(w.durable_admins().await, ["root"], "{self:?}: prepared");
    }

    async fn attempt(self, w: &World) -> Result<()> {
        match self {
            Self::SuspendHimself => w
                .write(
                    as_principal("root"),
                    set_status("root", PrincipalStatus::Suspended),
                )
                .await
                .map(drop),
            Self::RemoveHim => w
                .su(set_status("root", PrincipalStatus::Removed))
                .await
                .map(drop),
            Self::DeleteHisTeam => w
                .su(DeleteTeam {
                    team_id: "admins".to_owned(),
                })
                .await
                .map(drop),
            Self::RemoveHimFromHisTeam => w
                .su(RemoveTeamMember {
                    team_id: "admins".to_owned(),
                    member: principal("root"),
                })
                .await
                .map(drop),
            Self::DeleteHisRole => w
                .su(DeleteRole {
                    role_id: "superadmin".to_owned(),
                    cascade: true,
                })
                .await
                .map(drop),
            Self::DenyHim => w
                .su(CreateGrant {
                    effect: Effect::Deny,
                    ..allow(principal("root"), "account_admin", Scope::Tenant)
                })
                .await
                .map(drop),
            Self::RevokeHisDurableGrantKeepingAnExpiringOne => {
                let g = w.roots_durable_grant().await;
                w.su(DeleteGrant { grant_id: g.id }).await.map(drop)
            }
        }
    }

    /// With `root` the only admin, the write is refused and changes nothing.
    async fn is_refused(self) {
        let w = World::new().await;
        self.prepare(&w).await;
        let before = w.snapshot().await;
        let err = self.attempt(&w).await.expect_err("the write went through");
        assert_err!(
            err,
            Error::FailedPrecondition {
                rule: "last_account_admin",
                ..
            }
        );
        assert_eq!(w.snapshot().await, before, "{self:?} changed the tenant");
        assert_eq!(w.durable_admins().await, ["root"]);
    }

    /// With a second durable admin, the same write goes through.
    async fn succeeds_with_a_second_admin(self) {
        let w = World::new().await;
        self.prepare(&w).await;
        w.account_admin("alice").await;
        let before = w.revision().await;
        self.attempt(&w).await.unwrap();
        assert_eq!(w.revision().await, before + 1);
        assert_eq!(w.durable_admins().await, ["alice"]);
    }
}

#[tokio::test]
async fn the_last_account_admin_cannot_suspend_himself() {
    LastAdminWrite::SuspendHimself.is_refused().await;
}

#[tokio::test]
async fn the_only_account_admin_cannot_be_removed() {
    LastAdminWrite::RemoveHim.is_refused().await;
}

#[tokio::test]
async fn the_team_through_which_the_only_admin_holds_account_admin_cannot_be_deleted() {
    LastAdminWrite::DeleteHisTeam.is_refused().await;
}

#[tokio::test]
async fn the_only_admin_cannot_be_removed_from_the_team_that_makes_him_admin() {
    LastAdminWrite::RemoveHimFromHisTeam.is_refused().await;
}

#[tokio::test]
async fn a_custom_role_that_is_the_only_path_to_admin_cannot_be_deleted_even_with_cascade() {
    LastAdminWrite::DeleteHisRole.is_refused().await;
}

#[tokio::test]
async fn account_admin_cannot_be_denied_to_the_only_admin() {
    LastAdminWrite::DenyHim.is_refused().await;
}

#[tokio::test]
async fn an_expiring_account_admin_grant_does_not_keep_the_tenant_administrable() {
    LastAdminWrite::RevokeHisDurableGrantKeepingAnExpiringOne
        .is_refused()
        .await;
}

#[tokio::test]
async fn with_a_second_durable_admin_the_first_can_suspend_himself() {
    LastAdminWrite::SuspendHimself
        .succeeds_with_a_second_admin()
        .await;
}

#[tokio::test]
async fn with_a_second_durable_admin_the_first_can_be_removed() {
    LastAdminWrite::RemoveHim
        .succeeds_with_a_second_admin()
        .await;
}

#[tokio::test]
async fn with_a_second_durable_admin_the_admins_team_can_be_deleted() {
    LastAdminWrite::DeleteHisTeam
        .succeeds_with_a_second_admin()
        .await;
}

#[tokio::test]
async fn with_a_second_durable_admin_the_first_can_leave_the_admins_team() {
    LastAdminWrite::RemoveHimFromHisTeam
        .succeeds_with_a_second_admin()
        .await;
}

#[tokio::test]
async fn with_a_second_durable_admin_the_admin_role_can_be_deleted_with_cascade() {
    LastAdminWrite::DeleteHisRole
        .succeeds_with_a_second_admin()
        .await;
}

#[tokio::test]
async fn with_a_second_durable_admin_the_first_can_be_denied_account_admin() {
    LastAdminWrite::DenyHim.succeeds_with_a_second_admin().await;
}

#[tokio::test]
async fn with_a_second_durable_admin_the_durable_grant_can_be_revoked() {
    LastAdminWrite::RevokeHisDurableGrantKeepingAnExpiringOne
        .succeeds_with_a_second_admin()
        .await;
}

#[tokio::test]
async fn the_only_admin_cannot_join_a_team_that_is_denied_account_admin() {
    let w = World::new().await;
    w.team("blocked").await;
    w.su(CreateGrant {
        effect: Effect::Deny,
        ..allow(team_ref("blocked"), "account_admin", Scope::Tenant)
    })
    .await
    .unwrap();
    let err = w
        .refused(
            Actor::SuperUser,
            AddTeamMember {
                team_id: "blocked".to_owned(),
                member: principal("root"),
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "last_account_admin",
            ..
        }
    );
}

// ---------------------------------------------------------------- single_owner

#[tokio::test]
async fn a_project_created_by_the_super_user_needs_an_owner() {
    let w = World::new().await;
    let err = w
        .refused(Actor::SuperUser, create(&res("project", "p1"), None))
        .await;
    assert_err!(err, Error::InvalidArgument { field, .. } if field == "owner_id");
}

#[tokio::test]
async fn a_project_created_by_a_principal_is_owned_by_him() {
    let w = World::new().await;
    w.principal("alice").await;
    w.grant(principal("alice"), "editor", Scope::Tenant).await;
    let p1 = res("project", "p1");
    w.write(as_principal("alice"), create(&p1, None))
        .await
        .unwrap();
    assert_eq!(
        w.grants_on(&p1).await,
        [("alice".to_owned(), "owner".to_owned())]
    );
}

#[tokio::test]
async fn a_project_cannot_get_a_second_owner_grant() {
    let w = World::new().await;
    w.principal("alice").await;
    w.principal("bob").await;
    let p1 = w.project("p1", "alice").await;
    let err = w
        .refused(Actor::SuperUser, allow(principal("bob"), "owner", on(&p1)))
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "single_owner",
            ..
        }
    );
}

#[tokio::test]
async fn the_owner_grant_of_a_project_cannot_be_deleted() {
    let w = World::new().await;
    w.principal("alice").await;
    let p1 = w.project("p1", "alice").await;
    let owner = w.grants_of(&principal("alice")).await.remove(0);
    assert_eq!(owner.scope, on(&p1));
    let err = w
        .refused(Actor::SuperUser, DeleteGrant { grant_id: owner.id })
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "single_owner",
            ..
        }
    );
}

#[tokio::test]
async fn transferring_ownership_moves_the_owner_grant() {
    let w = World::new().await;
    w.principal("alice").await;
    w.principal("bob").await;
    let p1 = w.project("p1", "alice").await;
    let written = w
        .su(TransferOwnership {
            resource: p1.clone(),
            new_owner: "bob".to_owned(),
            previous_owner_role: None,
        })
        .await
        .unwrap();
    assert_eq!(written.output.subject, principal("bob"));
    assert_eq!(written.output.role_id, "owner");
    assert_eq!(
        w.grants_on(&p1).await,
        [("bob".to_owned(), "owner".to_owned())]
    );
}

#[tokio::test]
async fn transferring_ownership_can_leave_the_previous_owner_a_role() {
    let w = World::new().await;
    w.principal("alice").await;
    w.principal("bob").await;
    let p1 = w.project("p1", "alice").await;
    w.su(TransferOwnership {
        resource: p1.clone(),
        new_owner: "bob".to_owned(),
        previous_owner_role: Some("editor".to_owned()),
    })
    .await
    .unwrap();
    assert_eq!(
        w.grants_on(&p1).await,
        [
            ("alice".to_owned(), "editor".to_owned()),
            ("bob".to_owned(), "owner".to_owned()),
        ]
    );
}

#[tokio::test]
async fn transferring_ownership_cannot_leave_the_previous_owner_the_owner_role() {
    let w = World::new().await;
    w.principal("alice").await;
    w.principal("bob").await;
    let p1 = w.project("p1", "alice").await;
    let err = w
        .refused(
            Actor::SuperUser,
            TransferOwnership {
                resource: p1,
                new_owner: "bob".to_owned(),
                previous_owner_role: Some("owner".to_owned()),
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition { .. } | Error::InvalidArgument { .. }
    );
}

#[tokio::test]
async fn ownership_cannot_be_transferred_to_a_suspended_principal() {
    let w = World::new().await;
    w.principal("alice").await;
    w.principal("bob").await;
    let p1 = w.project("p1", "alice").await;
    w.suspend("bob").await;
    let err = w
        .refused(
            Actor::SuperUser,
            TransferOwnership {
                resource: p1,
                new_owner: "bob".to_owned(),
                previous_owner_role: None,
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "owner_must_be_active",
            ..
        }
    );
}

#[tokio::test]
async fn a_type_cannot_become_single_owner_while_one_of_its_resources_has_two_owners() {
    let w = World::new().await;
    w.principal("alice").await;
    w.principal("bob").await;
    let ws = w.resource("workspace", "w1", None).await;
    w.grant(principal("alice"), "owner", on(&ws)).await;
    w.grant(principal("bob"), "owner", on(&ws)).await;
    let err = w
        .refused(
            Actor::SuperUser,
            UpdateTenant {
                single_owner_types: Some(vec!["project".to_owned(), "workspace".to_owned()]),
                ..UpdateTenant::default()
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "single_owner",
            ..
        }
    );
}

// ---------------------------------------------------------------- cycles and depth

#[tokio::test]
async fn a_team_cannot_be_a_member_of_itself() {
    let w = World::new().await;
    w.team("a").await;
    let err = w
        .refused(
            Actor::SuperUser,
            AddTeamMember {
                team_id: "a".to_owned(),
                member: team_ref("a"),
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "team_cycle",
            ..
        }
    );
}

#[tokio::test]
async fn a_team_cannot_contain_a_team_that_contains_it() {
    let w = World::new().await;
    w.team("a").await;
    w.team("b").await;
    w.join("b", team_ref("a")).await;
    let err = w
        .refused(
            Actor::SuperUser,
            AddTeamMember {
                team_id: "a".to_owned(),
                member: team_ref("b"),
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "team_cycle",
            ..
        }
    );
}

#[tokio::test]
async fn a_role_cannot_inherit_a_role_that_inherits_it() {
    let w = World::new().await;
    w.su(CreateRole {
        role: custom_role("reader", &["workflow.view"], &[]),
    })
    .await
    .unwrap();
    w.su(CreateRole {
        role: custom_role("runner", &["workflow.execute"], &["reader"]),
    })
    .await
    .unwrap();
    let err = w
        .refused(
            Actor::SuperUser,
            UpdateRole {
                role: custom_role("reader", &["workflow.view"], &["runner"]),
                only: None,
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "role_cycle",
            ..
        }
    );
}

#[tokio::test]
async fn a_folder_cannot_move_under_its_own_child() {
    let w = World::new().await;
    let f1 = w.resource("folder", "f1", None).await;
    let f2 = w.resource("folder", "f2", Some(&f1)).await;
    let err = w
        .refused(
            Actor::SuperUser,
            MoveResource {
                resource: f1,
                new_parent: Some(f2),
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "resource_cycle",
            ..
        }
    );
}

/// A chain of `levels` nested folders `c1 > c2 > …`; returns the deepest.
async fn folder_chain(w: &World, levels: usize) -> ResourceRef {
    let mut parent: Option<ResourceRef> = None;
    for i in 1..=levels {
        parent = Some(
            w.resource("folder", &format!("c{i}"), parent.as_ref())
                .await,
        );
    }
    parent.unwrap()
}

#[tokio::test]
async fn a_resource_cannot_be_created_below_the_depth_limit() {
    let w = World::new().await;
    let deepest = folder_chain(&w, MAX_TREE_DEPTH).await;
    assert_eq!(
        w.store()
            .ancestry(TENANT, &deepest)
            .await
            .unwrap()
            .unwrap()
            .len(),
        MAX_TREE_DEPTH
    );
    let err = w
        .refused(
            Actor::SuperUser,
            create(&res("folder", "too_deep"), Some(&deepest)),
        )
        .await;
    assert_err!(err, Error::InvalidArgument { field, .. } if field == "parent");
}

#[tokio::test]
async fn a_subtree_cannot_be_moved_below_the_depth_limit() {
    let w = World::new().await;
    let deepest = folder_chain(&w, MAX_TREE_DEPTH - 1).await;
    let x = w.resource("folder", "x", None).await;
    w.resource("folder", "y", Some(&x)).await;
    // x alone would fit at the last level; with its child it would not.
    let err = w
        .refused(
            Actor::SuperUser,
            MoveResource {
                resource: x,
                new_parent: Some(deepest),
            },
        )
        .await;
    assert_err!(err, Error::InvalidArgument { field, .. } if field == "new_parent");
}

// ---------------------------------------------------------------- roles

#[tokio::test]
async fn predefined_roles_cannot_be_created_updated_or_deleted() {
    let w = World::new().await;
    for id in PREDEFINED_ROLE_IDS {
        let role = custom_role(id, &["workflow.view"], &[]);
        let err = w
            .refused(Actor::SuperUser, CreateRole { role: role.clone() })
            .await;
        assert_err!(
            err,
            Error::FailedPrecondition {
                rule: "locked_role",
                ..
            }
        );
        let err = w
            .refused(Actor::SuperUser, UpdateRole { role, only: None })
            .await;
        assert_err!(
            err,
            Error::FailedPrecondition {
                rule: "locked_role",
                ..
            }
        );
        let err = w
            .refused(
                Actor::SuperUser,
                DeleteRole {
                    role_id: (*id).to_owned(),
                    cascade: true,
                },
            )
            .await;
        assert_err!(
            err,
            Error::FailedPrecondition {
                rule: "locked_role",
                ..
            }
        );
    }
}

#[tokio::test]
async fn a_role_inherited_by_another_cannot_be_deleted() {
    let w = World::new().await;
    w.su(CreateRole {
        role: custom_role("reader", &["workflow.view"], &[]),
    })
    .await
    .unwrap();
    w.su(CreateRole {
        role: custom_role("runner", &["workflow.execute"], &["reader"]),
    })
    .await
    .unwrap();
    let err = w
        .refused(
            Actor::SuperUser,
            DeleteRole {
                role_id: "reader".to_owned(),
                cascade: true,
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "role_in_use",
            ..
        }
    );
}

#[tokio::test]
async fn a_granted_role_cannot_be_deleted_without_cascade() {
    let w = World::new().await;
    w.principal("alice").await;
    w.su(CreateRole {
        role: custom_role("runner", &["workflow.execute"], &[]),
    })
    .await
    .unwrap();
    let f1 = w.resource("folder", "f1", None).await;
    w.grant(principal("alice"), "runner", on(&f1)).await;
    let err = w
        .refused(
            Actor::SuperUser,
            DeleteRole {
                role_id: "runner".to_owned(),
                cascade: false,
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "role_in_use",
            ..
        }
    );
}

#[tokio::test]
async fn deleting_a_role_with_cascade_deletes_its_grants_and_counts_them() {
    let w = World::new().await;
    w.principal("alice").await;
    w.team("ops").await;
    w.su(CreateRole {
        role: custom_role("runner", &["workflow.execute"], &[]),
    })
    .await
    .unwrap();
    let f1 = w.resource("folder", "f1", None).await;
    w.grant(principal("alice"), "runner", on(&f1)).await;
    w.grant(team_ref("ops"), "runner", Scope::Tenant).await;
    let kept = w.grant(principal("alice"), "viewer", on(&f1)).await;
    let written = w
        .su(DeleteRole {
            role_id: "runner".to_owned(),
            cascade: true,
        })
        .await
        .unwrap();
    assert_eq!(written.output, 2);
    assert!(w.grants().await.iter().all(|g| g.role_id != "runner"));
    assert!(w.grants().await.contains(&kept));
    assert!(w.store().custom_roles(TENANT).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_role_cannot_inherit_an_unknown_role() {
    let w = World::new().await;
    let err = w
        .refused(
            Actor::SuperUser,
            CreateRole {
                role: custom_role("runner", &["workflow.execute"], &["ghost"]),
            },
        )
        .await;
    assert_err!(err, Error::InvalidArgument { field, .. } if field == "role.inherits");
}

// ---------------------------------------------------------------- grants

#[tokio::test]
async fn a_grant_of_an_unknown_role_is_not_found() {
    let w = World::new().await;
    w.principal("alice").await;
    let err = w
        .refused(
            Actor::SuperUser,
            allow(principal("alice"), "ghost", Scope::Tenant),
        )
        .await;
    assert_err!(err, Error::NotFound { .. });
}

#[tokio::test]
async fn a_grant_cannot_expire_in_the_past() {
    let w = World::new().await;
    w.principal("alice").await;
    let err = w
        .refused(
            Actor::SuperUser,
            CreateGrant {
                expires_at: Some(now_millis() - HOUR),
                ..allow(principal("alice"), "viewer", Scope::Tenant)
            },
        )
        .await;
    assert_err!(err, Error::InvalidArgument { field, .. } if field == "expire_time");
}

#[tokio::test]
async fn a_grant_on_a_missing_resource_is_not_found() {
    let w = World::new().await;
    w.principal("alice").await;
    let err = w
        .refused(
            Actor::SuperUser,
            allow(principal("alice"), "viewer", on(&res("folder", "ghost"))),
        )
        .await;
    assert_err!(err, Error::NotFound { .. });
}

// ---------------------------------------------------------------- resources

#[tokio::test]
async fn a_resource_cannot_be_created_twice() {
    let w = World::new().await;
    let f1 = w.resource("folder", "f1", None).await;
    let err = w.refused(Actor::SuperUser, create(&f1, None)).await;
    assert_err!(err, Error::AlreadyExists { .. });
}

#[tokio::test]
async fn deleting_a_resource_deletes_its_subtree_and_the_grants_on_it() {
    let w = World::new().await;
    w.principal("alice").await;
    let f1 = w.resource("folder", "f1", None).await;
    let f2 = w.resource("folder", "f2", Some(&f1)).await;
    let wf = w.resource("workflow", "wf1", Some(&f2)).await;
    let other = w.resource("folder", "other", None).await;
    w.grant(principal("alice"), "editor", on(&f1)).await;
    w.grant(principal("alice"), "viewer", on(&wf)).await;
    let kept = w.grant(principal("alice"), "viewer", on(&other)).await;

    let written = w
        .su(DeleteResource {
            resource: f1.clone(),
        })
        .await
        .unwrap();
    assert_eq!(written.output, 3);
    for r in [&f1, &f2, &wf] {
        assert_eq!(w.store().resource(TENANT, r).await.unwrap(), None);
    }
    assert_eq!(w.grants_of(&principal("alice")).await, [kept]);
    assert_err!(
        w.store()
            .list_grants(TENANT, None, Some(&f1), Keyset::ALL)
            .await
            .unwrap_err(),
        Error::NotFound { .. }
    );
}

#[tokio::test]
async fn moving_a_folder_changes_the_ancestry_of_its_grandchildren() {
    let w = World::new().await;
    let f1 = w.resource("folder", "f1", None).await;
    let f2 = w.resource("folder", "f2", Some(&f1)).await;
    let wf = w.resource("workflow", "wf1", Some(&f2)).await;
    let f3 = w.resource("folder", "f3", None).await;
    w.su(MoveResource {
        resource: f2.clone(),
        new_parent: Some(f3.clone()),
    })
    .await
    .unwrap();
    let path: Vec<ResourceRef> = w
        .store()
        .ancestry(TENANT, &wf)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|n| n.resource.clone())
        .collect();
    assert_eq!(path, [wf, f2, f3]);
}

// ---------------------------------------------------------------- request ids

fn with_request(actor: Actor, id: &str, fingerprint: &str) -> WriteContext {
    WriteContext {
        request: Some(RequestKey {
            id: id.to_owned(),
            fingerprint: fingerprint.to_owned(),
        }),
        ..ctx(actor)
    }
}

#[tokio::test]
async fn a_retried_request_id_returns_the_first_output_and_revision_without_writing() {
    let w = World::new().await;
    let c = with_request(Actor::SuperUser, "req-1", "create bob");
    let first = w
        .admin
        .write(
            &c,
            CreatePrincipal {
                principal: user("bob"),
            },
        )
        .await
        .unwrap();
    let after_first = w.snapshot().await;
    let heard = w.commits.lock().unwrap().len();

    // Run as is, the command would now fail (bob exists): it is not run.
    let again = w
        .admin
        .write(
            &c,
            CreatePrincipal {
                principal: user("bob"),
            },
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(w.snapshot().await, after_first);
    assert_eq!(w.commits.lock().unwrap().len(), heard);
}

#[tokio::test]
async fn a_request_id_reused_for_another_request_is_refused() {
    let w = World::new().await;
    w.admin
        .write(
            &with_request(Actor::SuperUser, "req-1", "create bob"),
            CreatePrincipal {
                principal: user("bob"),
            },
        )
        .await
        .unwrap();
    let before = w.snapshot().await;
    let err = w
        .admin
        .write(
            &with_request(Actor::SuperUser, "req-1", "create carol"),
            CreatePrincipal {
                principal: user("carol"),
            },
        )
        .await
        .unwrap_err();
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "request_id_reused",
            ..
        }
    );
    assert_eq!(w.snapshot().await, before);
}

// ---------------------------------------------------------------- audit and on_commit

impl World {
    /// Runs a write as the super user and checks what it recorded: one more
    /// revision, one audit event with `action` at that revision, and one
    /// commit callback with that revision and the invalidation the revision
    /// log holds for it. Returns the write and its invalidation.
    async fn committed<C: Command>(
        &self,
        action: &str,
        cmd: C,
    ) -> (Written<C::Output>, Invalidation) {
        let before = self.revision().await;
        let events = self.audit().await.len();
        let heard = self.commits.lock().unwrap().len();
        let written = self.su(cmd).await.unwrap();
        assert_eq!(written.revision, before + 1, "{action}: revision");
        assert_eq!(
            self.revision().await,
            written.revision,
            "{action}: revision"
        );

        let audit = self.audit().await;
        assert_eq!(audit.len(), events + 1, "{action}: one audit event");
        assert_eq!(audit[0].action, action);
        assert_eq!(
            audit[0].revision, written.revision,
            "{action}: audit revision"
        );
        assert_eq!(audit[0].actor, "super_user");

        let commits = self.commits.lock().unwrap().clone();
        assert_eq!(commits.len(), heard + 1, "{action}: one callback");
        let (tenant, revision, inv) = commits.last().unwrap().clone();
        assert_eq!(tenant, TENANT);
        assert_eq!(revision, written.revision, "{action}: callback revision");
        let logged = self
            .store()
            .changes(TENANT, before, written.revision)
            .await
            .unwrap();
        assert_eq!(
            logged,
            [(written.revision, inv.clone())],
            "{action}: invalidation"
        );
        (written, inv)
    }
}

#[tokio::test]
async fn every_committed_write_records_one_audit_event_and_calls_on_commit() {
    let w = World::new().await;
    // The tenant's creation is revision 1, audited and heard.
    let audit = w.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].action.as_str(), audit[0].revision),
        ("tenant.create", 1)
    );
    let commits = w.commits.lock().unwrap().clone();
    assert_eq!(commits.len(), 1);
    let (tenant, revision, inv) = &commits[0];
    assert_eq!((tenant.as_str(), *revision), (TENANT, 1));
    assert!(inv.everything);
    // Its row-level changes: the tenant, its first admin and the grant.
    assert!(matches!(
        &inv.deltas[..],
        [
            Delta::Tenant { .. },
            Delta::Principal { .. },
            Delta::Grant { .. }
        ]
    ));

    let (_, inv) = w
        .committed(
            "principal.create",
            CreatePrincipal {
                principal: user("alice"),
            },
        )
        .await;
    assert_eq!(inv.principals, ["alice"]);
    w.committed(
        "principal.create",
        CreatePrincipal {
            principal: user("bob"),
        },
    )
    .await;
    w.committed("team.create", CreateTeam { team: team("ops") })
        .await;
    let (_, inv) = w
        .committed(
            "team.add_member",
            AddTeamMember {
                team_id: "ops".to_owned(),
                member: principal("alice"),
            },
        )
        .await;
    assert_eq!(inv.principals, ["alice"]);
    let (_, inv) = w
        .committed(
            "role.create",
            CreateRole {
                role: custom_role("runner", &["workflow.execute"], &[]),
            },
        )
        .await;
    assert!(inv.roles);
    w.committed(
        "role.update",
        UpdateRole {
            role: custom_role("runner", &["workflow.execute", "workflow.view"], &[]),
            only: None,
        },
    )
    .await;
    let f1 = res("folder", "f1");
    let (_, inv) = w.committed("resource.create", create(&f1, None)).await;
    assert_eq!(inv.resources, std::slice::from_ref(&f1));
    assert_eq!(
        inv.deltas,
        [Delta::Resource {
            links: Default::default(),
            resource: f1.clone(),
            parent: None,
            private: false,
            attributes: Default::default(),
            restricted: Default::default(),
        }]
    );
    let f2 = res("folder", "f2");
    w.committed("resource.create", create(&f2, None)).await;
    let (_, inv) = w
        .committed(
            "resource.move",
            MoveResource {
                resource: f2.clone(),
                new_parent: Some(f1.clone()),
            },
        )
        .await;
    assert_eq!(inv.subtrees, std::slice::from_ref(&f2));
    assert_eq!(
        inv.deltas,
        [Delta::Moved {
            resource: f2.clone(),
            parent: Some(f1.clone()),
        }]
    );
    w.committed(
        "resource.set_private",
        SetResourcePrivate {
            resource: f2.clone(),
            private: true,
        },
    )
    .await;
    let (g, inv) = w
        .committed("grant.create", allow(team_ref("ops"), "runner", on(&f1)))
        .await;
    assert_eq!(inv.principals, ["alice"]);
    w.committed(
        "grant.delete",
        DeleteGrant {
            grant_id: g.output.id,
        },
    )
    .await;
    let p1 = res("project", "p1");
    w.committed(
        "resource.create",
        CreateResource {
            owner: Some("alice".to_owned()),
            ..create(&p1, None)
        },
    )
    .await;
    w.committed(
        "resource.transfer_ownership",
        TransferOwnership {
            resource: p1,
            new_owner: "bob".to_owned(),
            previous_owner_role: None,
        },
    )
    .await;
    w.committed(
        "team.remove_member",
        RemoveTeamMember {
            team_id: "ops".to_owned(),
            member: principal("alice"),
        },
    )
    .await;
    w.committed(
        "team.delete",
        DeleteTeam {
            team_id: "ops".to_owned(),
        },
    )
    .await;
    let (_, inv) = w
        .committed(
            "role.delete",
            DeleteRole {
                role_id: "runner".to_owned(),
                cascade: false,
            },
        )
        .await;
    assert!(inv.everything);
    w.committed("resource.delete", DeleteResource { resource: f1 })
        .await;
    w.committed(
        "principal.set_status",
        set_status("bob", PrincipalStatus::Suspended),
    )
    .await;
    w.committed(
        "tenant.update",
        UpdateTenant {
            display_name: Some("Acme Corp".to_owned()),
            ..UpdateTenant::default()
        },
    )
    .await;
    assert_eq!(w.audit().await.len() as i64, w.revision().await);
}

// ---------------------------------------------------------------- property

const PEOPLE: [&str; 3] = ["root", "alice", "bob"];
const TEAMS: [&str; 2] = ["t0", "t1"];

/// A principal or a team of the small world, by index.
#[derive(Debug, Clone, Copy)]
enum Who {
    Person(usize),
    Team(usize),
}

impl Who {
    fn subject(self) -> SubjectRef {
        match self {
            Who::Person(i) => principal(PEOPLE[i]),
            Who::Team(i) => team_ref(TEAMS[i]),
        }
    }
}

/// One admin write of the super user.
#[derive(Debug, Clone)]
enum Op {
    /// Grant `account_admin` on the tenant (for an hour when `expiring`).
    GrantAdmin {
        to: Who,
        expiring: bool,
    },
    /// Deny `account_admin` to a principal.
    DenyAdmin(usize),
    /// Revoke one of the tenant-wide grants.
    Revoke(prop::sample::Index),
    SetStatus(usize, PrincipalStatus),
    CreateTeam(usize),
    DeleteTeam(usize),
    AddMember(usize, Who),
    RemoveMember(usize, Who),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        (0..PEOPLE.len()).prop_map(Who::Person),
        (0..TEAMS.len()).prop_map(Who::Team),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop_oneof![
        Just(PrincipalStatus::Active),
        Just(PrincipalStatus::Suspended),
        Just(PrincipalStatus::Removed),
        Just(PrincipalStatus::Invited),
    ];
    prop_oneof![
        4 => (who(), any::<bool>()).prop_map(|(to, expiring)| Op::GrantAdmin { to, expiring }),
        1 => (0..PEOPLE.len()).prop_map(Op::DenyAdmin),
        3 => any::<prop::sample::Index>().prop_map(Op::Revoke),
        3 => (0..PEOPLE.len(), status).prop_map(|(p, s)| Op::SetStatus(p, s)),
        1 => (0..TEAMS.len()).prop_map(Op::CreateTeam),
        2 => (0..TEAMS.len()).prop_map(Op::DeleteTeam),
        3 => (0..TEAMS.len(), who()).prop_map(|(t, m)| Op::AddMember(t, m)),
        3 => (0..TEAMS.len(), who()).prop_map(|(t, m)| Op::RemoveMember(t, m)),
    ]
}

impl Op {
    /// Runs the write; whether it succeeded does not matter.
    async fn run(&self, w: &World) -> Result<()> {
        match self {
            Op::GrantAdmin { to, expiring } => w
                .su(CreateGrant {
                    expires_at: expiring.then(|| now_millis() + HOUR),
                    ..allow(to.subject(), "account_admin", Scope::Tenant)
                })
                .await
                .map(drop),
            Op::DenyAdmin(p) => w
                .su(CreateGrant {
                    effect: Effect::Deny,
                    ..allow(principal(PEOPLE[*p]), "account_admin", Scope::Tenant)
                })
                .await
                .map(drop),
            Op::Revoke(i) => {
                let tenant_wide: Vec<Grant> = w
                    .grants()
                    .await
                    .into_iter()
                    .filter(|g| g.scope == Scope::Tenant)
                    .collect();
                if tenant_wide.is_empty() {
                    return Ok(());
                }
                let g = &tenant_wide[i.index(tenant_wide.len())];
                w.su(DeleteGrant {
                    grant_id: g.id.clone(),
                })
                .await
                .map(drop)
            }
            Op::SetStatus(p, s) => w.su(set_status(PEOPLE[*p], *s)).await.map(drop),
            Op::CreateTeam(t) => w
                .su(CreateTeam {
                    team: team(TEAMS[*t]),
                })
                .await
                .map(drop),
            Op::DeleteTeam(t) => w
                .su(DeleteTeam {
                    team_id: TEAMS[*t].to_owned(),
                })
                .await
                .map(drop),
            Op::AddMember(t, m) => w
                .su(AddTeamMember {
                    team_id: TEAMS[*t].to_owned(),
                    member: m.subject(),
                })
                .await
                .map(drop),
            Op::RemoveMember(t, m) => w
                .su(RemoveTeamMember {
                    team_id: TEAMS[*t].to_owned(),
                    member: m.subject(),
                })
                .await
                .map(drop),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: regressions(),
        ..ProptestConfig::default()
    })]

    /// Whatever the super user does to grants, statuses, teams and
    /// memberships, the tenant keeps a durable account administrator after
    /// every write, committed or refused.
    #[test]
    fn the_tenant_always_keeps_a_durable_account_admin(ops in prop::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let w = World::new().await;
            for p in &PEOPLE[1..] {
                w.principal(p).await;
            }
            for t in TEAMS {
                w.team(t).await;
            }
            for (i, op) in ops.iter().enumerate() {
                let outcome = op.run(&w).await;
                let admins = durable_admins_of(w.store()).await;
                prop_assert!(
                    !admins.is_empty(),
                    "no durable account admin after write {i} ({op:?} -> {outcome:?}) of {ops:?}"
                );
            }
            Ok(())
        })?;
    }
}

// ------------------------------------------------------------ delegation
// Issue 10: nobody hands out more than they hold, no side doors, removal
// removes.

fn deny(subject: SubjectRef, role: &str, scope: Scope) -> CreateGrant {
    CreateGrant {
        effect: Effect::Deny,
        ..allow(subject, role, scope)
    }
}

fn denied(err: &Error) -> bool {
    matches!(err, Error::PermissionDenied(_))
}

/// `alice` may share folder `f` (and edit and view in it), nothing else.
async fn world_with_a_folder_sharer() -> (World, ResourceRef) {
    let w = World::new().await;
    w.principal("alice").await;
    w.principal("bob").await;
    let ws = w.resource("workspace", "ws", None).await;
    let f = w.resource("folder", "f", Some(&ws)).await;
    w.su(CreateRole {
        role: custom_role("sharer", &["*.share", "*.view", "*.edit"], &[]),
    })
    .await
    .unwrap();
    w.grant(principal("alice"), "sharer", on(&f)).await;
    (w, f)
}

#[tokio::test]
async fn a_sharer_cannot_grant_a_role_holding_more_than_she_holds() {
    let (w, f) = world_with_a_folder_sharer().await;
    for (who, role) in [("alice", "owner"), ("bob", "admin"), ("bob", "editor")] {
        let err = w
            .refused(as_principal("alice"), allow(principal(who), role, on(&f)))
            .await;
        assert!(denied(&err), "{who} {role}: {err:?}");
    }
    // What she holds she may hand on.
    w.write(
        as_principal("alice"),
        allow(principal("bob"), "viewer", on(&f)),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_workspace_admin_cannot_make_himself_owner_or_take_a_project() {
    let w = World::new().await;
    w.principal("carl").await;
    w.principal("dora").await;
    let ws = w.resource("workspace", "ws", None).await;
    let p = w.project("p", "dora").await;
    w.su(MoveResource {
        resource: p.clone(),
        new_parent: Some(ws.clone()),
    })
    .await
    .unwrap();
    w.grant(principal("carl"), "admin", on(&ws)).await;
    let err = w
        .refused(
            as_principal("carl"),
            allow(principal("carl"), "owner", on(&ws)),
        )
        .await;
    assert!(denied(&err), "{err:?}");
    let err = w
        .refused(
            as_principal("carl"),
            TransferOwnership {
                resource: p,
                new_owner: "carl".to_owned(),
                previous_owner_role: None,
            },
        )
        .await;
    assert!(denied(&err), "{err:?}");
}

#[tokio::test]
async fn an_account_admin_assigns_roles_to_others_but_cannot_raise_herself() {
    let w = World::new().await;
    w.principal("erin").await;
    let ws = w.resource("workspace", "ws", None).await;
    // The seeds' account administrator assigns workspace roles it does not
    // hold itself (the `tenant.delegate` waiver), and the audit says so.
    w.write(
        as_principal("root"),
        allow(principal("erin"), "editor", on(&ws)),
    )
    .await
    .unwrap();
    let last = w.audit().await.into_iter().next().unwrap();
    assert_eq!(last.action, "grant.create");
    assert!(
        last.after_json.contains("\"delegated\":true"),
        "{}",
        last.after_json
    );
    // Not to itself.
    for scope in [Scope::Tenant, on(&ws)] {
        let err = w
            .refused(
                as_principal("root"),
                allow(principal("root"), "owner", scope),
            )
            .await;
        assert!(denied(&err), "{err:?}");
    }
}

#[tokio::test]
async fn a_role_manager_cannot_widen_the_role_it_holds() {
    let w = World::new().await;
    w.principal("finn").await;
    w.su(CreateRole {
        role: custom_role("role_manager", &["tenant.manage_roles"], &[]),
    })
    .await
    .unwrap();
    w.grant(principal("finn"), "role_manager", Scope::Tenant)
        .await;
    let err = w
        .refused(
            as_principal("finn"),
            UpdateRole {
                role: custom_role("role_manager", &["*.*"], &[]),
                only: None,
            },
        )
        .await;
    assert!(denied(&err), "{err:?}");
    // An edit that gives nothing new is fine.
    w.write(
        as_principal("finn"),
        UpdateRole {
            role: custom_role("role_manager", &["tenant.manage_roles"], &[]),
            only: None,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn holding_part_of_account_admin_does_not_make_an_account_admin() {
    let w = World::new().await;
    w.principal("mia").await;
    w.su(CreateRole {
        role: custom_role("member_manager", &["tenant.manage_members"], &[]),
    })
    .await
    .unwrap();
    w.grant(principal("mia"), "member_manager", Scope::Tenant)
        .await;
    // Mia may manage members, but she is no account administrator: root
    // is still the only one, and she cannot suspend him.
    assert_eq!(w.durable_admins().await, ["root"]);
    let err = w
        .refused(
            as_principal("mia"),
            set_status("root", PrincipalStatus::Suspended),
        )
        .await;
    assert!(
        matches!(
            err,
            Error::FailedPrecondition {
                rule: "last_account_admin",
                ..
            }
        ),
        "{err:?}"
    );
    // A role that includes all of account_admin does count.
    w.principal("olga").await;
    w.grant(principal("olga"), "owner", Scope::Tenant).await;
    assert_eq!(w.durable_admins().await, ["olga", "root"]);
}

#[tokio::test]
async fn a_team_manager_cannot_join_a_powerful_team() {
    let w = World::new().await;
    w.principal("gus").await;
    w.su(CreateRole {
        role: custom_role("team_manager", &["tenant.manage_teams"], &[]),
    })
    .await
    .unwrap();
    w.grant(principal("gus"), "team_manager", Scope::Tenant)
        .await;
    w.team("owners").await;
    w.grant(team_ref("owners"), "owner", Scope::Tenant).await;
    let err = w
        .refused(
            as_principal("gus"),
            AddTeamMember {
                team_id: "owners".to_owned(),
                member: principal("gus"),
            },
        )
        .await;
    assert!(denied(&err), "{err:?}");
    // A team holding nothing he lacks is fine.
    w.team("empty").await;
    w.write(
        as_principal("gus"),
        AddTeamMember {
            team_id: "empty".to_owned(),
            member: principal("gus"),
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_sharer_cannot_deny_those_above_her_and_tenant_admins_recover() {
    let (w, f) = world_with_a_folder_sharer().await;
    // root administers the tenant; a tenant-wide admin, hal, too.
    w.principal("hal").await;
    w.grant(principal("hal"), "admin", Scope::Tenant).await;
    for target in ["root", "hal"] {
        let err = w
            .refused(
                as_principal("alice"),
                deny(principal(target), "viewer", on(&f)),
            )
            .await;
        assert!(denied(&err), "{target}: {err:?}");
    }
    // She may hide the folder, but a tenant-wide admin can undo it.
    w.write(
        as_principal("alice"),
        SetResourcePrivate {
            resource: f.clone(),
            private: true,
        },
    )
    .await
    .unwrap();
    w.write(
        as_principal("hal"),
        SetResourcePrivate {
            resource: f.clone(),
            private: false,
        },
    )
    .await
    .unwrap();
    // A deny she may set (on bob, who holds nothing) a tenant-wide admin lifts.
    let d = w
        .write(
            as_principal("alice"),
            deny(principal("bob"), "viewer", on(&f)),
        )
        .await
        .unwrap()
        .output;
    w.write(as_principal("hal"), DeleteGrant { grant_id: d.id })
        .await
        .unwrap();
}

#[tokio::test]
async fn making_a_resource_public_needs_what_the_grants_above_give_there() {
    let (w, f) = world_with_a_folder_sharer().await;
    let ws = res("workspace", "ws");
    w.resource("workflow", "wf", Some(&f)).await;
    // Bob edits the whole workspace (delete and execute included), more
    // than alice holds on her folder.
    w.grant(principal("bob"), "editor", on(&ws)).await;
    let private = |p: bool| SetResourcePrivate {
        resource: f.clone(),
        private: p,
    };
    w.write(as_principal("alice"), private(true)).await.unwrap();
    let err = w.refused(as_principal("alice"), private(false)).await;
    assert!(denied(&err), "{err:?}");
    assert!(
        w.store()
            .resource(TENANT, &f)
            .await
            .unwrap()
            .unwrap()
            .private
    );
    // A tenant-wide admin recovers it.
    w.principal("hal").await;
    w.grant(principal("hal"), "admin", Scope::Tenant).await;
    w.write(as_principal("hal"), private(false)).await.unwrap();
    // Holding what comes in (editor on the folder), alice may open it.
    w.write(as_principal("alice"), private(true)).await.unwrap();
    w.grant(principal("alice"), "editor", on(&f)).await;
    w.write(as_principal("alice"), private(false))
        .await
        .unwrap();
}

#[tokio::test]
async fn moving_a_resource_under_new_grants_needs_what_they_give_there() {
    let w = World::new().await;
    for p in ["alice", "carol", "dan"] {
        w.principal(p).await;
    }
    let ws = w.resource("workspace", "ws", None).await;
    let a = w.resource("folder", "a", Some(&ws)).await;
    let b = w.resource("folder", "b", Some(&ws)).await;
    let c = w.resource("folder", "c", Some(&ws)).await;
    let wf = w.resource("workflow", "wf", Some(&a)).await;
    w.su(CreateRole {
        role: custom_role("mover", &["*.manage", "*.create", "*.view"], &[]),
    })
    .await
    .unwrap();
    w.grant(principal("alice"), "mover", on(&ws)).await;
    w.grant(principal("carol"), "admin", on(&b)).await;
    w.grant(principal("dan"), "viewer", on(&c)).await;
    let to = |p: &ResourceRef| MoveResource {
        resource: wf.clone(),
        new_parent: Some(p.clone()),
    };
    // Under b, carol would administer the workflow: more than alice holds.
    let err = w.refused(as_principal("alice"), to(&b)).await;
    assert!(denied(&err), "{err:?}");
    // Under c, dan would view it, which alice may do herself.
    w.write(as_principal("alice"), to(&c)).await.unwrap();
    // Grants the workflow had already (on the workspace) do not count again.
    w.write(as_principal("alice"), to(&a)).await.unwrap();
    // Moving out from under a deny lifts it there: a deny on herself (found
    // by the delegation property test) stays where it is.
    w.su(deny(principal("alice"), "viewer", on(&a)))
        .await
        .unwrap();
    let err = w.refused(as_principal("alice"), to(&c)).await;
    assert!(denied(&err), "{err:?}");
    assert_eq!(
        w.store()
            .resource(TENANT, &wf)
            .await
            .unwrap()
            .unwrap()
            .parent,
        Some(a.clone())
    );
}

#[tokio::test]
async fn declaring_an_action_needs_it_on_every_type() {
    let w = World::new().await;
    let declare = |a: &str| UpdateTenant {
        actions: Some(vec![a.to_owned()]),
        ..UpdateTenant::default()
    };
    // Tina manages the tenant's settings (`tenant.manage`), but does not
    // hold `workflow.sync`, which owners and admins would get.
    for (id, perms) in [
        ("settings", &["tenant.manage"][..]),
        ("role_manager", &["tenant.manage_roles"][..]),
    ] {
        w.su(CreateRole {
            role: custom_role(id, perms, &[]),
        })
        .await
        .unwrap();
    }
    let tenant_only = |mut r: Role| {
        r.effective_at = vec!["tenant".to_owned()];
        r
    };
    for id in ["settings", "role_manager"] {
        let r = w.store().custom_roles(TENANT).await.unwrap();
        let r = r.into_iter().find(|r| r.id == id).unwrap();
        w.su(UpdateRole {
            role: tenant_only(r),
            only: None,
        })
        .await
        .unwrap();
    }
    w.principal("tina").await;
    w.grant(principal("tina"), "settings", Scope::Tenant).await;
    let err = w.refused(as_principal("tina"), declare("sync")).await;
    assert!(denied(&err), "{err:?}");
    // Naming a new action in a role declares it too: the same rule.
    w.principal("rolf").await;
    w.grant(principal("rolf"), "role_manager", Scope::Tenant)
        .await;
    let err = w
        .refused(
            as_principal("rolf"),
            CreateRole {
                role: custom_role("approver", &["invoice.approve"], &[]),
            },
        )
        .await;
    assert!(denied(&err), "{err:?}");
    // An owner holds it everywhere; an account administrator configures it
    // for others under the audited waiver.
    w.principal("olga").await;
    w.grant(principal("olga"), "owner", Scope::Tenant).await;
    w.write(as_principal("olga"), declare("sync"))
        .await
        .unwrap();
    w.grant(principal("olga"), "viewer", Scope::Tenant).await;
    assert!(may_on_tenant(&w, "olga", "workflow", "sync").await);
    w.write(
        as_principal("root"),
        CreateRole {
            role: custom_role("approver", &["invoice.approve"], &[]),
        },
    )
    .await
    .unwrap();
    let last = w.audit().await.into_iter().next().unwrap();
    assert!(
        last.after_json.contains("\"delegated\":true"),
        "{}",
        last.after_json
    );
}

#[tokio::test]
async fn only_a_removed_principal_is_invited_again() {
    let w = World::new().await;
    w.principal("sam").await;
    w.grant(principal("sam"), "editor", Scope::Tenant).await;
    w.suspend("sam").await;
    // Suspended -> invited -> accepted would skip the reactivation's checks.
    let err = w
        .refused(
            Actor::SuperUser,
            set_status("sam", PrincipalStatus::Invited),
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "not_removed",
            ..
        }
    );
    w.su(set_status("sam", PrincipalStatus::Removed))
        .await
        .unwrap();
    w.su(set_status("sam", PrincipalStatus::Invited))
        .await
        .unwrap();
}

#[tokio::test]
async fn recovery_does_not_override_a_deny_of_the_actors_own() {
    let (w, f) = world_with_a_folder_sharer().await;
    // Bob may share folders tenant-wide, but is denied it on this folder.
    w.su(CreateRole {
        role: custom_role("folder_sharer", &["folder.share"], &[]),
    })
    .await
    .unwrap();
    w.grant(principal("bob"), "folder_sharer", Scope::Tenant)
        .await;
    w.su(deny(principal("bob"), "folder_sharer", on(&f)))
        .await
        .unwrap();
    let err = w
        .refused(
            as_principal("bob"),
            SetResourcePrivate {
                resource: f.clone(),
                private: true,
            },
        )
        .await;
    assert!(denied(&err), "{err:?}");
}

#[tokio::test]
async fn an_admin_cannot_deny_the_single_owner_of_a_project() {
    let w = World::new().await;
    w.principal("ivy").await;
    w.principal("hal").await;
    w.grant(principal("hal"), "admin", Scope::Tenant).await;
    let p = w.project("p", "ivy").await;
    let err = w
        .refused(
            as_principal("hal"),
            deny(principal("ivy"), "viewer", on(&p)),
        )
        .await;
    assert!(denied(&err), "{err:?}");
}

#[tokio::test]
async fn removal_revokes_grants_and_memberships_and_is_not_undone_by_reactivation() {
    let w = World::new().await;
    w.principal("jo").await;
    let ws = w.resource("workspace", "ws", None).await;
    w.grant(principal("jo"), "editor", on(&ws)).await;
    w.team("t").await;
    w.join("t", principal("jo")).await;
    w.su(set_status("jo", PrincipalStatus::Removed))
        .await
        .unwrap();
    assert!(w.grants_of(&principal("jo")).await.is_empty());
    let members = w
        .store()
        .team_members(TENANT, "t", Keyset::ALL)
        .await
        .unwrap()
        .unwrap();
    assert!(members.is_empty());
    let last = w.audit().await.into_iter().next().unwrap();
    assert!(
        last.after_json.contains("\"revoked\""),
        "{}",
        last.after_json
    );
    // Straight back to active is refused; a new invitation starts clean.
    let err = w
        .refused(Actor::SuperUser, set_status("jo", PrincipalStatus::Active))
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "principal_removed",
            ..
        }
    );
    w.su(set_status("jo", PrincipalStatus::Invited))
        .await
        .unwrap();
    w.write(
        as_principal("jo"),
        AcceptInvitation {
            principal_id: "jo".to_owned(),
        },
    )
    .await
    .unwrap();
    assert!(w.grants_of(&principal("jo")).await.is_empty());
}

#[tokio::test]
async fn the_owner_of_a_project_cannot_be_removed_before_a_transfer() {
    let w = World::new().await;
    w.principal("kim").await;
    w.project("p", "kim").await;
    let err = w
        .refused(
            Actor::SuperUser,
            set_status("kim", PrincipalStatus::Removed),
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "single_owner",
            ..
        }
    );
}

#[tokio::test]
async fn a_resource_cannot_be_given_a_suspended_owner() {
    let w = World::new().await;
    w.principal("lee").await;
    w.suspend("lee").await;
    let err = w
        .refused(
            Actor::SuperUser,
            CreateResource {
                owner: Some("lee".to_owned()),
                ..create(&res("project", "p"), None)
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "owner_must_be_active",
            ..
        }
    );
}

#[tokio::test]
async fn reactivating_a_principal_needs_the_power_to_grant_what_it_holds() {
    let (w, f) = world_with_a_folder_sharer().await;
    // alice may manage members, but bob holds more than she does.
    w.su(CreateRole {
        role: custom_role("member_manager", &["tenant.manage_members"], &[]),
    })
    .await
    .unwrap();
    w.grant(principal("alice"), "member_manager", Scope::Tenant)
        .await;
    w.grant(principal("bob"), "owner", on(&f)).await;
    w.suspend("bob").await;
    let err = w
        .refused(
            as_principal("alice"),
            set_status("bob", PrincipalStatus::Active),
        )
        .await;
    assert!(denied(&err), "{err:?}");
}

// ------------------------------------------------- the delegation property
mod delegation_property {
    use super::*;

    /// One admin write of the delegation property's random worlds.
    #[derive(Debug, Clone)]
    enum Op {
        Grant(usize, usize, usize, bool),
        Revoke(usize),
        Join(usize, usize),
        Leave(usize, usize),
        EditCustom(Vec<usize>),
        Status(usize, bool),
        /// Make the folder (`true`) or the workflow private or public.
        Private(bool, bool),
        /// Move the workflow under the workspace (`true`) or the folder.
        Move(bool),
    }

    const PEOPLE: [&str; 4] = ["a", "b", "c", "d"];
    const TEAMS: [&str; 2] = ["t1", "t2"];
    const ROLES: [&str; 7] = [
        "viewer", "editor", "admin", "owner", "sharer", "manager", "custom",
    ];
    const PATTERNS: [&str; 6] = [
        "*.view",
        "workflow.edit",
        "folder.share",
        "*.share",
        "tenant.manage_teams",
        "*.*",
    ];

    fn subject_of(i: usize) -> SubjectRef {
        if i < PEOPLE.len() {
            principal(PEOPLE[i])
        } else {
            team_ref(TEAMS[(i - PEOPLE.len()) % TEAMS.len()])
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..6usize, 0..ROLES.len(), 0..4usize, any::<bool>())
                .prop_map(|(s, r, sc, d)| Op::Grant(s, r, sc, d)),
            2 => (0..64usize).prop_map(Op::Revoke),
            2 => (0..2usize, 0..6usize).prop_map(|(t, m)| Op::Join(t, m)),
            1 => (0..2usize, 0..6usize).prop_map(|(t, m)| Op::Leave(t, m)),
            1 => proptest::collection::vec(0..PATTERNS.len(), 1..3).prop_map(Op::EditCustom),
            1 => (0..4usize, any::<bool>()).prop_map(|(p, a)| Op::Status(p, a)),
            1 => (any::<bool>(), any::<bool>()).prop_map(|(f, p)| Op::Private(f, p)),
            1 => any::<bool>().prop_map(Op::Move),
        ]
    }

    /// Everything a principal is allowed: (resource, action) pairs, the tenant
    /// being the resource `tenant:acme`.
    async fn allowed(
        store: &MemStore,
        who: &str,
        scopes: &[Option<ResourceRef>],
    ) -> std::collections::BTreeSet<(String, String)> {
        use crate::engine::{decide, Question, Subject};
        let subject = Store::subject(store, TENANT, who).await.unwrap();
        let roles = Store::roles(store, TENANT).await.unwrap();
        let actions: Vec<String> = roles.actions().map(str::to_owned).collect();
        let mut out = std::collections::BTreeSet::new();
        for s in scopes {
            let (rtype, path) = match s {
                None => ("tenant".to_owned(), Vec::new()),
                Some(r) => (
                    r.rtype.clone(),
                    Store::ancestry(store, TENANT, r)
                        .await
                        .unwrap()
                        .unwrap()
                        .to_vec(),
                ),
            };
            for a in &actions {
                let q = Question {
                    rtype: &rtype,
                    action: a,
                    path: Some(&path),
                    context: crate::model::condition::RequestContext::none(),
                };
                if decide(
                    Subject::Principal(subject.principal.as_ref()),
                    &subject.bindings,
                    &roles,
                    q,
                    now_millis(),
                )
                .allowed
                {
                    let name = s
                        .as_ref()
                        .map_or("tenant:acme".to_owned(), |r| r.to_string());
                    out.insert((name, a.clone()));
                }
            }
        }
        out
    }

    async fn apply(w: &World, actor: Actor, op: Op, scopes: &[Option<ResourceRef>]) -> Result<i64> {
        let scope_of = |i: usize| scopes[i].clone().map_or(Scope::Tenant, Scope::Resource);
        match op {
            Op::Grant(s, r, sc, d) => {
                let g = if d {
                    deny(subject_of(s), ROLES[r], scope_of(sc))
                } else {
                    allow(subject_of(s), ROLES[r], scope_of(sc))
                };
                w.write(actor, g).await.map(|x| x.revision)
            }
            Op::Revoke(i) => {
                let grants = w.grants().await;
                let g = &grants[i % grants.len()];
                w.write(
                    actor,
                    DeleteGrant {
                        grant_id: g.id.clone(),
                    },
                )
                .await
                .map(|x| x.revision)
            }
            Op::Join(t, m) => w
                .write(
                    actor,
                    AddTeamMember {
                        team_id: TEAMS[t].to_owned(),
                        member: subject_of(m),
                    },
                )
                .await
                .map(|x| x.revision),
            Op::Leave(t, m) => w
                .write(
                    actor,
                    RemoveTeamMember {
                        team_id: TEAMS[t].to_owned(),
                        member: subject_of(m),
                    },
                )
                .await
                .map(|x| x.revision),
            Op::EditCustom(ps) => {
                let perms: Vec<&str> = ps.iter().map(|i| PATTERNS[*i]).collect();
                w.write(
                    actor,
                    UpdateRole {
                        role: custom_role("custom", &perms, &[]),
                        only: None,
                    },
                )
                .await
                .map(|x| x.revision)
            }
            Op::Status(p, active) => {
                let status = if active {
                    PrincipalStatus::Active
                } else {
                    PrincipalStatus::Suspended
                };
                w.write(actor, set_status(PEOPLE[p], status))
                    .await
                    .map(|x| x.revision)
            }
            Op::Private(folder, private) => {
                let resource = if folder {
                    res("folder", "f")
                } else {
                    res("workflow", "w")
                };
                w.write(actor, SetResourcePrivate { resource, private })
                    .await
                    .map(|x| x.revision)
            }
            Op::Move(to_workspace) => {
                let to = if to_workspace {
                    res("workspace", "ws")
                } else {
                    res("folder", "f")
                };
                w.write(
                    actor,
                    MoveResource {
                        resource: res("workflow", "w"),
                        new_parent: Some(to),
                    },
                )
                .await
                .map(|x| x.revision)
            }
        }
    }

    /// Principals allowed `<rtype>.share` tenant-wide: they may undo privacy
    /// themselves, so what they regain when a resource of that type becomes
    /// public is not a gain through the actor.
    async fn may_unhide(store: &MemStore, rtype: &str) -> Vec<&'static str> {
        use crate::engine::{decide, Question, Subject};
        let roles = Store::roles(store, TENANT).await.unwrap();
        let mut out = Vec::new();
        for p in PEOPLE {
            let subject = Store::subject(store, TENANT, p).await.unwrap();
            let q = Question {
                rtype,
                action: "share",
                path: Some(&[]),
                context: crate::model::condition::RequestContext::none(),
            };
            if decide(
                Subject::Principal(subject.principal.as_ref()),
                &subject.bindings,
                &roles,
                q,
                now_millis(),
            )
            .allowed
            {
                out.push(p);
            }
        }
        out
    }

    async fn run_delegation_case(
        fixed: (usize, usize, usize, usize),
        setup: Vec<Op>,
        ops: Vec<(usize, Op)>,
    ) {
        let w = World::new().await;
        for p in PEOPLE {
            w.principal(p).await;
        }
        for t in TEAMS {
            w.team(t).await;
        }
        let ws = w.resource("workspace", "ws", None).await;
        let f = w.resource("folder", "f", Some(&ws)).await;
        let wf = w.resource("workflow", "w", Some(&f)).await;
        for (id, perms) in [
            ("sharer", &["*.share", "*.view", "workflow.edit"][..]),
            (
                "manager",
                &[
                    "tenant.manage_teams",
                    "tenant.manage_members",
                    "tenant.manage_roles",
                ][..],
            ),
            ("custom", &["*.view"][..]),
        ] {
            w.su(CreateRole {
                role: custom_role(id, perms, &[]),
            })
            .await
            .unwrap();
        }
        let scopes = [None, Some(ws.clone()), Some(f.clone()), Some(wf.clone())];
        // Every world has a manager of teams, members and roles, a holder of
        // the editable custom role, and a team holding something; then more.
        let (manager, holder, team_role, team_scope) = fixed;
        let base = [
            Op::Grant(manager, 5, 0, false),
            Op::Grant(holder, 6, 0, false),
            Op::Grant(PEOPLE.len(), team_role, team_scope, false),
        ];
        for op in base.into_iter().chain(setup) {
            let _ = apply(&w, Actor::SuperUser, op, &scopes).await;
        }
        for (actor_index, op) in ops {
            let actor = PEOPLE[actor_index];
            let mut before = std::collections::BTreeMap::new();
            for p in PEOPLE {
                before.insert(p, allowed(w.store(), p, &scopes).await);
            }
            // Un-hiding a resource: those who could undo the privacy
            // themselves (tenant-wide `share`) are not counted, and the actor
            // may open to others what it then reaches itself (the recovery
            // of tenant-wide owners and admins).
            let unhiding = match &op {
                Op::Private(folder, false) => {
                    Some(may_unhide(w.store(), if *folder { "folder" } else { "workflow" }).await)
                }
                _ => None,
            };
            let Ok(_) = apply(&w, as_principal(actor), op.clone(), &scopes).await else {
                continue;
            };
            let last = w.audit().await.into_iter().next().unwrap();
            if last.after_json.contains("\"delegated\":true") {
                continue;
            }
            let actor_after = allowed(w.store(), actor, &scopes).await;
            for p in PEOPLE {
                if unhiding.as_ref().is_some_and(|u| u.contains(&p)) {
                    continue;
                }
                let after = allowed(w.store(), p, &scopes).await;
                let gained: Vec<_> = after.difference(&before[p]).collect();
                let beyond: Vec<_> = gained
                    .iter()
                    .filter(|x| !before[actor].contains(**x))
                    .filter(|x| unhiding.is_none() || !actor_after.contains(**x))
                    .collect();
                assert!(
                    beyond.is_empty(),
                    "{actor} did {op:?}: {p} gained {beyond:?}, which {actor} was not allowed"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: regressions(),
            ..ProptestConfig::default()
        })]

        /// Whenever an admin write succeeds, everything anyone gains by it was
        /// allowed to its actor before (writes let through by the audited
        /// `tenant.delegate` waiver aside).
        #[test]
        fn nobody_gains_through_a_write_what_its_actor_could_not_do(
            fixed in (0..PEOPLE.len(), 0..PEOPLE.len(), 0..ROLES.len(), 0..4usize),
            setup in proptest::collection::vec(op(), 2..10),
            ops in proptest::collection::vec((0..PEOPLE.len(), op()), 1..12),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(run_delegation_case(fixed, setup, ops));
        }
    }
}

// ------------------------------------------------------------ bounded work

#[tokio::test]
async fn a_role_graph_past_the_inheritance_limits_is_refused_when_written() {
    let w = World::new().await;
    // Eight roles per level, each inheriting all eight of the level below:
    // the closure of a level-k role is 1 + 8k roles.
    let name = |level: usize, i: usize| format!("l{level}r{i}");
    let mut refused_at = None;
    'levels: for level in 0..8 {
        for i in 0..8 {
            let below: Vec<String> = if level == 0 {
                Vec::new()
            } else {
                (0..8).map(|j| name(level - 1, j)).collect()
            };
            let below: Vec<&str> = below.iter().map(String::as_str).collect();
            let perms: &[&str] = if level == 0 { &["workflow.view"] } else { &[] };
            let r = w
                .write(
                    Actor::SuperUser,
                    CreateRole {
                        role: custom_role(&name(level, i), perms, &below),
                    },
                )
                .await;
            if let Err(e) = r {
                assert_err!(e, Error::InvalidArgument { field, .. } if field == "role.inherits");
                refused_at = Some(level);
                break 'levels;
            }
        }
    }
    // 1 + 8 * 3 = 25 roles fit in 32; 1 + 8 * 4 = 33 do not.
    assert_eq!(refused_at, Some(4));
}

#[test]
fn matching_a_diamond_shaped_role_graph_judges_each_role_once() {
    use crate::model::RoleMatch;
    // Built directly (writes would refuse it): 8 levels of 8 roles, each
    // inheriting all of the level below, the bottom one granting
    // `workflow.view`. Without memoizing, a match walks 8^7 paths.
    let mut roles = Vec::new();
    for level in 0..8 {
        for i in 0..8 {
            let below: Vec<String> = if level == 0 {
                Vec::new()
            } else {
                (0..8).map(|j| format!("l{}r{j}", level - 1)).collect()
            };
            let below: Vec<&str> = below.iter().map(String::as_str).collect();
            let perms: &[&str] = if level == 0 && i == 7 {
                &["workflow.view"]
            } else {
                &[]
            };
            let mut r = custom_role(&format!("l{level}r{i}"), perms, &below);
            if perms.is_empty() && below.is_empty() {
                r.permissions = vec![Permission::parse("p", "thing.poke").unwrap()];
            }
            roles.push(r);
        }
    }
    let table = RoleTable::new(roles);
    assert_eq!(
        table.role_match("l7r0", "workspace", "workflow", "view"),
        RoleMatch::Matched("workflow.view".to_owned())
    );
    assert_eq!(
        table.role_match("l7r0", "workspace", "workflow", "edit"),
        RoleMatch::NoMatch
    );
}

#[tokio::test]
async fn teams_cannot_nest_past_the_limit() {
    let w = World::new().await;
    let limit = crate::model::MAX_TEAM_NESTING;
    for i in 0..=limit {
        w.team(&format!("t{i}")).await;
    }
    // t0 ⊃ t1 ⊃ … ⊃ t{limit-1}: `limit` teams in a chain.
    for i in 1..limit {
        w.su(AddTeamMember {
            team_id: format!("t{}", i - 1),
            member: team_ref(&format!("t{i}")),
        })
        .await
        .unwrap();
    }
    let err = w
        .refused(
            Actor::SuperUser,
            AddTeamMember {
                team_id: format!("t{}", limit - 1),
                member: team_ref(&format!("t{limit}")),
            },
        )
        .await;
    assert_err!(
        err,
        Error::FailedPrecondition {
            rule: "team_nesting_limit",
            ..
        }
    );
}

// ------------------------------------------------------- deleting subtrees

#[tokio::test]
async fn an_editor_cannot_delete_a_folder_holding_a_private_workflow_she_cannot_see() {
    let w = World::new().await;
    w.principal("mia").await;
    w.principal("ned").await;
    let ws = w.resource("workspace", "ws", None).await;
    let f = w.resource("folder", "f", Some(&ws)).await;
    w.grant(principal("mia"), "editor", on(&ws)).await;
    let secret = res("workflow", "secret");
    w.su(CreateResource {
        private: true,
        owner: Some("ned".to_owned()),
        ..create(&secret, Some(&f))
    })
    .await
    .unwrap();
    let err = w
        .refused(
            as_principal("mia"),
            DeleteResource {
                resource: f.clone(),
            },
        )
        .await;
    assert_err!(err, Error::PermissionDenied(why) if why.contains("workflow:secret"));
    // Once it is moved out, the folder is hers to delete.
    w.write(
        Actor::SuperUser,
        MoveResource {
            resource: secret.clone(),
            new_parent: None,
        },
    )
    .await
    .unwrap();
    let deleted = w
        .write(as_principal("mia"), DeleteResource { resource: f })
        .await
        .unwrap()
        .output;
    assert_eq!(deleted, 1);
}

#[tokio::test]
async fn a_deny_inside_a_subtree_stops_its_deletion() {
    let w = World::new().await;
    w.principal("oz").await;
    let ws = w.resource("workspace", "ws", None).await;
    let f = w.resource("folder", "f", Some(&ws)).await;
    w.resource("workflow", "w", Some(&f)).await;
    w.grant(principal("oz"), "editor", on(&ws)).await;
    w.su(deny(principal("oz"), "editor", on(&f))).await.unwrap();
    let err = w
        .refused(
            as_principal("oz"),
            DeleteResource {
                resource: ws.clone(),
            },
        )
        .await;
    assert_err!(err, Error::PermissionDenied(_));
}

// ------------------------------------------------------ action vocabulary

/// Whether `who` may `<rtype>.<action>` on the tenant itself, as `Check`
/// would decide it from the store.
async fn may_on_tenant(w: &World, who: &str, rtype: &str, action: &str) -> bool {
    use crate::engine::{decide, Question, Subject};
    let s = Store::subject(w.store(), TENANT, who).await.unwrap();
    let roles = Store::roles(w.store(), TENANT).await.unwrap();
    let q = Question {
        rtype,
        action,
        path: Some(&[]),
        context: crate::model::condition::RequestContext::none(),
    };
    decide(
        Subject::Principal(s.principal.as_ref()),
        &s.bindings,
        &roles,
        q,
        now_millis(),
    )
    .allowed
}

#[tokio::test]
async fn an_action_stays_known_after_the_last_role_naming_it_stops_naming_it() {
    let w = World::new().await;
    w.principal("pia").await;
    w.grant(principal("pia"), "owner", Scope::Tenant).await;
    w.su(CreateRole {
        role: custom_role("syncer", &["project.sync"], &[]),
    })
    .await
    .unwrap();
    assert!(may_on_tenant(&w, "pia", "project", "sync").await);
    w.su(UpdateRole {
        role: custom_role("syncer", &["project.view"], &[]),
        only: None,
    })
    .await
    .unwrap();
    assert!(
        may_on_tenant(&w, "pia", "project", "sync").await,
        "`*.*` still covers `sync`"
    );
    w.su(DeleteRole {
        role_id: "syncer".to_owned(),
        cascade: true,
    })
    .await
    .unwrap();
    assert!(may_on_tenant(&w, "pia", "project", "sync").await);
    // A tenant declares actions no role names yet.
    assert!(!may_on_tenant(&w, "pia", "workflow", "archive").await);
    w.su(UpdateTenant {
        actions: Some(vec!["archive".to_owned(), "sync".to_owned()]),
        ..UpdateTenant::default()
    })
    .await
    .unwrap();
    assert!(may_on_tenant(&w, "pia", "workflow", "archive").await);
}

//! The cache in front of the store gives exactly the answers the store gives.
//!
//! The decision cache (src/cache.rs) holds principals with their resolved
//! bindings, resource ancestries and role tables, and is kept exact by the
//! revision log: the replica that writes drops what the write made stale before
//! the write returns; every replica polls the log every
//! `cache.poll_interval_ms`; a consistency token makes a replica catch up
//! first; expiry is compared with the clock on every decision.
//!
//! - A property: after every operation of a random interleaving of admin
//!   writes, every answer of the (warm) server (BatchCheck of the whole small
//!   world, single Checks, ListAccessible, ListSubjects) equals the answer of
//!   an uncached authorizer over the same database, without consistency
//!   tokens: the writing replica invalidates before the write returns.
//! - The same with two in-process replicas on one database, writes spread over
//!   both, both asked with the latest write's token (the revision log replay).
//! - Two real `portcullis serve` processes on one PostgreSQL database: a revoke,
//!   a suspension and a new tenant written on one replica are seen by the other
//!   at once with the write's token, and within the poll bound without it.
//! - Expiry needs no write: a cached grant stops granting when it expires.
//! - Warm checks need no database; cold ones fail closed (UNAVAILABLE).
//!
//! Property cases: `PROPTEST_CASES` (defaults: one replica 24 on SQLite and 8
//! on PostgreSQL, two replicas 8 and 4); seed: `PROPTEST_RNG_SEED`; a failure
//! prints the smallest failing sequence of operations found by shrinking
//! (`PROPTEST_MAX_SHRINK_ITERS`, default 150 runs). `CACHE_PROPERTY_TRACE=1`
//! prints every case's operations and timing.

use crate::helpers::*;
use crate::on_every_backend;
use crate::process::{database_env, ServerProcess};
use portcullis::engine::authorizer::{Authorizer, CheckQuery, PageRequest};
use portcullis::engine::Decision;
use portcullis::grpc::convert;
use portcullis::grpc::pb;
use portcullis::grpc::pb::admin_service_client::AdminServiceClient;
use portcullis::grpc::pb::check_service_client::CheckServiceClient;
use portcullis::grpc::pb::list_accessible_service_client::ListAccessibleServiceClient;
use portcullis::model::ResourceRef;
use portcullis::store::sql::SqlStore;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use sea_orm::ConnectionTrait;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;
use tonic::Code;

// ---- shared pieces ----------------------------------------------------------

/// One answer, as the server gives it: allowed, reason, explanation.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    allowed: bool,
    reason: i32,
    explanation: Option<pb::Explanation>,
}

impl Answer {
    fn from_decision(d: Decision) -> Self {
        let (allowed, reason, explanation) = convert::decision(d, true);
        Answer {
            allowed,
            reason,
            explanation,
        }
    }

    fn from_check(r: pb::CheckResponse) -> Self {
        Answer {
            allowed: r.allowed,
            reason: r.reason,
            explanation: r.explanation,
        }
    }

    fn show(&self) -> String {
        let e = self.explanation.clone().unwrap_or_default();
        format!(
            "{} {} (grant {:?}, role {:?}, via {:?})",
            if self.allowed { "ALLOW" } else { "deny" },
            reason_name(self.reason),
            e.grant_id,
            e.role_id,
            e.via_teams
        )
    }
}

fn reason_name(r: i32) -> String {
    pb::Reason::try_from(r).map_or_else(|_| format!("reason {r}"), |r| format!("{r:?}"))
}

fn model_ref(r: &str) -> ResourceRef {
    let (rtype, id) = r.split_once(':').expect("`type:id`");
    ResourceRef {
        rtype: rtype.to_owned(),
        id: id.to_owned(),
    }
}

fn query(subject: &str, action: &str, r: &str) -> CheckQuery {
    CheckQuery {
        subject_id: subject.to_owned(),
        action: action.to_owned(),
        resource: model_ref(r),
    }
}

/// An authorizer that reads the database on every question (no cache).
async fn uncached(app: &TestApp) -> Authorizer<SqlStore> {
    uncached_at(&app.database_url).await
}

async fn uncached_at(url: &str) -> Authorizer<SqlStore> {
    let store = SqlStore::connect(url, 2, Duration::from_secs(5))
        .await
        .expect("connect the uncached store");
    Authorizer::new(store)
}

/// A timestamp `ms` milliseconds from now.
fn in_millis(ms: u64) -> prost_types::Timestamp {
    let at = SystemTime::now() + Duration::from_millis(ms);
    let d = at.duration_since(UNIX_EPOCH).expect("after 1970");
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn key(k: &str) -> Bearer {
    Bearer::new(k).expect("ascii key")
}

type Keyed = Authed;

/// A server configured by `test_config` (the harness's keys), by channel.
#[derive(Clone)]
struct Node {
    channel: Channel,
}

impl Node {
    fn of(app: &TestApp) -> Node {
        Node {
            channel: app.channel.clone(),
        }
    }

    fn admin(&self) -> AdminServiceClient<Keyed> {
        AdminServiceClient::with_interceptor(self.channel.clone(), key(OPERATOR_KEY))
    }

    async fn check(
        &self,
        subject: &str,
        action: &str,
        r: &str,
        token: &str,
    ) -> Result<pb::CheckResponse, tonic::Status> {
        CheckServiceClient::with_interceptor(self.channel.clone(), key(CHECK_KEY))
            .check(pb::CheckRequest {
                tenant_id: TENANT.into(),
                principal_id: subject.into(),
                action: action.into(),
                resource: Some(res(r)),
                consistency_token: token.into(),
                explain: true,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn batch(
        &self,
        items: &[(String, String, String)],
        token: &str,
    ) -> Result<pb::BatchCheckResponse, tonic::Status> {
        CheckServiceClient::with_interceptor(self.channel.clone(), key(CHECK_KEY))
            .batch_check(pb::BatchCheckRequest {
                tenant_id: TENANT.into(),
                items: items
                    .iter()
                    .map(|(s, a, r)| pb::BatchCheckItem {
                        principal_id: s.clone(),
                        action: a.clone(),
                        resource: Some(res(r)),
                    })
                    .collect(),
                consistency_token: token.into(),
                explain: true,
                context: Default::default(),
                typed_context: Default::default(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Every id ListAccessible gives (one page is enough for this world).
    async fn list(
        &self,
        subject: &str,
        action: &str,
        rtype: &str,
        token: &str,
    ) -> Result<Vec<String>, tonic::Status> {
        let page =
            ListAccessibleServiceClient::with_interceptor(self.channel.clone(), key(CHECK_KEY))
                .list_accessible(pb::ListAccessibleRequest {
                    tenant_id: TENANT.into(),
                    principal_id: subject.into(),
                    action: action.into(),
                    resource_type: rtype.into(),
                    page_size: 100,
                    consistency_token: token.into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
        assert!(page.next_page_token.is_empty(), "one page holds this world");
        Ok(page.resource_ids)
    }

    /// Every principal ListSubjects gives (one page is enough).
    async fn subjects(
        &self,
        r: &str,
        action: &str,
        token: &str,
    ) -> Result<Vec<String>, tonic::Status> {
        let page =
            ListAccessibleServiceClient::with_interceptor(self.channel.clone(), key(CHECK_KEY))
                .list_subjects(pb::ListSubjectsRequest {
                    tenant_id: TENANT.into(),
                    resource: Some(res(r)),
                    action: action.into(),
                    page_size: 100,
                    consistency_token: token.into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
        assert!(page.next_page_token.is_empty(), "one page holds this world");
        Ok(page.principal_ids)
    }
}

async fn check_on(
    app: &TestApp,
    subject: &str,
    action: &str,
    r: &str,
) -> Result<pb::CheckResponse, tonic::Status> {
    Node::of(app).check(subject, action, r, "").await
}

async fn batch_on(
    app: &TestApp,
    items: &[(String, String, String)],
) -> Result<pb::BatchCheckResponse, tonic::Status> {
    Node::of(app).batch(items, "").await
}

// ---- 1. the property: cached answers equal uncached answers ------------------

/// Principals asked about; `eve` exists only once an operation creates her.
const PEOPLE: [&str; 6] = [ADMIN, "ann", "bob", "cat", "dan", "eve"];
/// Index of the principal created by an operation.
const LATE: usize = 5;
const TEAMS: [&str; 3] = ["t0", "t1", "t2"];
/// Resource slots: each may exist or not, anywhere in the forest.
const SLOTS: [&str; 8] = [
    "workspace:ws0",
    "workspace:ws1",
    "folder:f0",
    "folder:f1",
    "folder:f2",
    "workflow:wf0",
    "workflow:wf1",
    "draft:d0",
];
/// `publish` is a known action only while the custom role names it.
const ACTIONS: [&str; 4] = ["view", "edit", "execute", "publish"];
const CUSTOM: &str = "reviewer";
const ROLES: [&str; 5] = ["viewer", "editor", "admin", "owner", CUSTOM];
const CUSTOM_PERMS: [&str; 4] = ["workflow.publish", "folder.view", "*.execute", "draft.edit"];
const EFFECTIVE: [&[&str]; 3] = [
    &["*"],
    &["tenant", "workspace"],
    &["folder", "workflow", "draft"],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    P(usize),
    T(usize),
}

impl Who {
    fn name(self) -> String {
        match self {
            Who::P(i) => PEOPLE[i].to_owned(),
            Who::T(t) => format!("team:{}", TEAMS[t]),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Grant {
        subject: Who,
        role: usize,
        scope: Option<usize>,
        deny: bool,
        expires: bool,
    },
    /// Revokes one of the grants created so far (already gone ones too).
    Revoke(Index),
    SetStatus {
        who: usize,
        status: pb::PrincipalStatus,
    },
    /// Creates `eve` (ALREADY_EXISTS the second time).
    CreateEve {
        active: bool,
    },
    AddMember {
        team: usize,
        member: Who,
    },
    /// Removes one of the memberships added so far (already gone ones too).
    RemoveMember(Index),
    CreateTeam(usize),
    DeleteTeam(usize),
    Move {
        slot: usize,
        parent: Option<usize>,
    },
    SetPrivate {
        slot: usize,
        private: bool,
    },
    CreateResource {
        slot: usize,
        parent: Option<usize>,
        private: bool,
    },
    DeleteResource(usize),
    /// Creates the custom role, or updates it when it exists.
    PutRole {
        perms: [bool; 4],
        inherits_viewer: bool,
        effective: usize,
    },
    DeleteRole {
        cascade: bool,
    },
    Transfer {
        slot: usize,
        to: usize,
        keep: Option<usize>,
    },
}

fn scope_name(s: Option<usize>) -> String {
    s.map_or_else(|| "tenant".to_owned(), |i| SLOTS[i].to_owned())
}

fn parent_name(s: Option<usize>) -> String {
    s.map_or_else(|| "top".to_owned(), |i| SLOTS[i].to_owned())
}

/// What the operations created so far, for revokes and removals.
#[derive(Debug, Default)]
struct Made {
    /// Grant ids, each with what it grants.
    grants: Vec<(String, String)>,
    /// (team, member) added.
    memberships: Vec<(usize, Who)>,
}

fn pick<'a, T>(v: &'a [T], i: &Index) -> Option<&'a T> {
    (!v.is_empty()).then(|| &v[i.index(v.len())])
}

impl Op {
    /// The operation in words, as it applies after what `made` holds.
    fn describe(&self, made: &Made) -> String {
        match self {
            Op::Grant {
                subject,
                role,
                scope,
                deny,
                expires,
            } => format!(
                "grant {}{} {} on {}{}",
                if *deny { "DENY " } else { "" },
                subject.name(),
                ROLES[*role],
                scope_name(*scope),
                if *expires { " (expires in a day)" } else { "" }
            ),
            Op::Revoke(i) => match pick(&made.grants, i) {
                Some((_, what)) => format!("revoke [{what}]"),
                None => "revoke (no grant made yet: nothing)".to_owned(),
            },
            Op::SetStatus { who, status } => format!("set {} {:?}", PEOPLE[*who], status),
            Op::CreateEve { active } => {
                format!(
                    "create eve ({})",
                    if *active { "active" } else { "invited" }
                )
            }
            Op::AddMember { team, member } => {
                format!("add {} to team {}", member.name(), TEAMS[*team])
            }
            Op::RemoveMember(i) => match pick(&made.memberships, i) {
                Some((team, member)) => {
                    format!("remove {} from team {}", member.name(), TEAMS[*team])
                }
                None => "remove a member (none added yet: nothing)".to_owned(),
            },
            Op::CreateTeam(t) => format!("create team {}", TEAMS[*t]),
            Op::DeleteTeam(t) => format!("delete team {}", TEAMS[*t]),
            Op::Move { slot, parent } => {
                format!("move {} under {}", SLOTS[*slot], parent_name(*parent))
            }
            Op::SetPrivate { slot, private } => format!("set {} private={private}", SLOTS[*slot]),
            Op::CreateResource {
                slot,
                parent,
                private,
            } => format!(
                "create {}{} under {}",
                SLOTS[*slot],
                if *private { " (private)" } else { "" },
                parent_name(*parent)
            ),
            Op::DeleteResource(s) => format!("delete {}", SLOTS[*s]),
            Op::PutRole {
                perms,
                inherits_viewer,
                effective,
            } => format!(
                "put role {CUSTOM} {:?}{} effective at {:?}",
                custom_perms(perms),
                if *inherits_viewer {
                    " inheriting viewer"
                } else {
                    ""
                },
                EFFECTIVE[*effective]
            ),
            Op::DeleteRole { cascade } => format!("delete role {CUSTOM} cascade={cascade}"),
            Op::Transfer { slot, to, keep } => format!(
                "transfer {} to {} (previous owners keep {:?})",
                SLOTS[*slot],
                PEOPLE[*to],
                keep.map(|k| ROLES[k])
            ),
        }
    }
}

fn custom_perms(mask: &[bool; 4]) -> Vec<String> {
    let v: Vec<String> = CUSTOM_PERMS
        .iter()
        .zip(mask)
        .filter(|(_, on)| **on)
        .map(|(p, _)| (*p).to_owned())
        .collect();
    if v.is_empty() {
        vec![CUSTOM_PERMS[0].to_owned()]
    } else {
        v
    }
}

/// One step: an operation, then the full comparison, plus single Checks of
/// the `probe` principal.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    probe: usize,
    /// With two replicas, whether the write goes to B.
    on_b: bool,
}

/// The starting forest: per slot, whether it exists, which lower existing
/// slot is its parent (if any), and whether it is private.
#[derive(Debug, Clone)]
struct Case {
    layout: Vec<(bool, Option<Index>, bool)>,
    steps: Vec<Step>,
}

impl Case {
    fn initial_parents(&self) -> Vec<Option<Option<usize>>> {
        // None: slot absent; Some(parent).
        let mut out: Vec<Option<Option<usize>>> = Vec::new();
        for (i, (present, parent, _)) in self.layout.iter().enumerate() {
            if !present {
                out.push(None);
                continue;
            }
            let candidates: Vec<usize> = (0..i).filter(|j| out[*j].is_some()).collect();
            let p = match parent {
                Some(ix) if !candidates.is_empty() => Some(candidates[ix.index(candidates.len())]),
                _ => None,
            };
            out.push(Some(p));
        }
        out
    }

    /// The starting world in words (the steps are told by the run).
    fn describe(&self) -> String {
        let mut s = String::from(
            "start: ann, bob, cat, dan active (eve absent); teams t0, t1, t2 empty; resources:\n",
        );
        for (i, p) in self.initial_parents().iter().enumerate() {
            if let Some(parent) = p {
                let _ = writeln!(
                    s,
                    "  {}{} under {}",
                    SLOTS[i],
                    if self.layout[i].2 { " (private)" } else { "" },
                    parent_name(*parent)
                );
            }
        }
        s
    }
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => (0..PEOPLE.len()).prop_map(Who::P),
        2 => (0..TEAMS.len()).prop_map(Who::T),
    ]
}

/// Mostly the predefined content roles; the custom one only exists after a
/// `PutRole`.
fn role() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 3 => Just(1), 1 => Just(2), 1 => Just(3), 2 => Just(4)]
}

fn slot() -> impl Strategy<Value = usize> {
    0..SLOTS.len()
}

fn status() -> impl Strategy<Value = pb::PrincipalStatus> {
    prop_oneof![
        3 => Just(pb::PrincipalStatus::Active),
        1 => Just(pb::PrincipalStatus::Suspended),
        1 => Just(pb::PrincipalStatus::Removed),
        1 => Just(pb::PrincipalStatus::Invited),
    ]
}

fn grant_op() -> impl Strategy<Value = Op> {
    (
        who(),
        role(),
        prop::option::weighted(0.85, slot()),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(subject, role, scope, deny, expires)| Op::Grant {
            subject,
            role,
            scope,
            deny,
            expires,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => grant_op(),
        4 => any::<Index>().prop_map(Op::Revoke),
        2 => (0..PEOPLE.len(), status()).prop_map(|(who, status)| Op::SetStatus { who, status }),
        1 => any::<bool>().prop_map(|active| Op::CreateEve { active }),
        4 => (0..TEAMS.len(), who()).prop_map(|(team, member)| Op::AddMember { team, member }),
        2 => any::<Index>().prop_map(Op::RemoveMember),
        1 => (0..TEAMS.len()).prop_map(Op::CreateTeam),
        1 => (0..TEAMS.len()).prop_map(Op::DeleteTeam),
        4 => (slot(), prop::option::weighted(0.8, slot())).prop_map(|(slot, parent)| Op::Move { slot, parent }),
        2 => (slot(), any::<bool>()).prop_map(|(slot, private)| Op::SetPrivate { slot, private }),
        2 => (slot(), prop::option::weighted(0.7, slot()), prop::bool::weighted(0.25))
            .prop_map(|(slot, parent, private)| Op::CreateResource { slot, parent, private }),
        1 => slot().prop_map(Op::DeleteResource),
        2 => (any::<[bool; 4]>(), any::<bool>(), 0..EFFECTIVE.len())
            .prop_map(|(perms, inherits_viewer, effective)| Op::PutRole { perms, inherits_viewer, effective }),
        1 => any::<bool>().prop_map(|cascade| Op::DeleteRole { cascade }),
        1 => (slot(), 0..PEOPLE.len(), prop::option::of(0..4usize))
            .prop_map(|(slot, to, keep)| Op::Transfer { slot, to, keep }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            (
                prop::bool::weighted(0.8),
                prop::option::weighted(0.75, any::<Index>()),
                prop::bool::weighted(0.2),
            ),
            SLOTS.len(),
        ),
        // A few grants first, so that there is something to keep exact.
        prop::collection::vec(
            (grant_op(), 0..PEOPLE.len(), any::<bool>()).prop_map(|(op, probe, on_b)| Step {
                op,
                probe,
                on_b,
            }),
            3..7,
        ),
        prop::collection::vec(
            (op(), 0..PEOPLE.len(), any::<bool>()).prop_map(|(op, probe, on_b)| Step {
                op,
                probe,
                on_b,
            }),
            12..32,
        ),
    )
        .prop_map(|(layout, mut steps, more)| {
            steps.extend(more);
            Case { layout, steps }
        })
}

/// Refusals the random operations may meet (cycles, missing things, the last
/// account admin...): the state simply does not change.
fn refusal_is_expected(code: Code) -> bool {
    matches!(
        code,
        Code::NotFound | Code::AlreadyExists | Code::FailedPrecondition
    )
}

/// The result of a write: `Ok(Ok(v))` done, `Ok(Err(code))` refused as
/// expected, `Err` an unexpected failure.
fn done<T>(what: &str, r: Result<T, tonic::Status>) -> Result<Result<T, Code>, String> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(s) if refusal_is_expected(s.code()) => Ok(Err(s.code())),
        Err(s) => Err(format!(
            "{what}: unexpected {:?}: {}",
            s.code(),
            s.message()
        )),
    }
}

/// Applies one operation as the super user on `node`; `made` collects what it
/// created. Returns the refusal's code, or the write's revision token.
async fn apply(node: &Node, op: &Op, made: &mut Made) -> Result<Result<String, Code>, String> {
    let mut admin = node.admin();
    let what = op.describe(made);
    let t = || TENANT.to_owned();
    let rev = |r: Result<String, tonic::Status>| done(&what, r);
    Ok(match op {
        Op::Grant {
            subject,
            role,
            scope: s,
            deny,
            expires,
        } => {
            let effect = if *deny {
                pb::Effect::Deny
            } else {
                pb::Effect::Allow
            };
            let r = admin
                .create_grant(pb::CreateGrantRequest {
                    tenant_id: t(),
                    subject: Some(subj(&subject.name())),
                    role_id: ROLES[*role].into(),
                    scope: scope(&scope_name(*s)),
                    effect: effect as i32,
                    expire_time: expires.then(|| in_millis(86_400_000)),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner());
            done(&what, r)?.map(|r| {
                if let Some(g) = r.grant {
                    made.grants.push((g.id, what.clone()));
                }
                r.consistency_token
            })
        }
        Op::Revoke(i) => match pick(&made.grants, i) {
            Some((id, _)) => rev(admin
                .delete_grant(pb::DeleteGrantRequest {
                    tenant_id: t(),
                    grant_id: id.clone(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().consistency_token))?,
            None => Err(Code::Ok),
        },
        Op::SetStatus { who, status } => rev(admin
            .set_principal_status(pb::SetPrincipalStatusRequest {
                tenant_id: t(),
                principal_id: PEOPLE[*who].into(),
                status: *status as i32,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token))?,
        Op::CreateEve { active } => {
            let status = if *active {
                pb::PrincipalStatus::Active
            } else {
                pb::PrincipalStatus::Invited
            };
            rev(admin
                .create_principal(pb::CreatePrincipalRequest {
                    tenant_id: t(),
                    principal_id: PEOPLE[LATE].into(),
                    kind: pb::PrincipalKind::User as i32,
                    status: status as i32,
                    display_name: "Eve".into(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().consistency_token))?
        }
        Op::AddMember { team, member } => {
            let r = rev(admin
                .add_team_member(pb::AddTeamMemberRequest {
                    tenant_id: t(),
                    team_id: TEAMS[*team].into(),
                    member: Some(subj(&member.name())),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().consistency_token))?;
            if r.is_ok() {
                made.memberships.push((*team, *member));
            }
            r
        }
        Op::RemoveMember(i) => match pick(&made.memberships, i) {
            Some((team, member)) => rev(admin
                .remove_team_member(pb::RemoveTeamMemberRequest {
                    tenant_id: t(),
                    team_id: TEAMS[*team].into(),
                    member: Some(subj(&member.name())),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().consistency_token))?,
            None => Err(Code::Ok),
        },
        Op::CreateTeam(i) => rev(admin
            .create_team(pb::CreateTeamRequest {
                tenant_id: t(),
                team_id: TEAMS[*i].into(),
                display_name: TEAMS[*i].into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token))?,
        Op::DeleteTeam(i) => rev(admin
            .delete_team(pb::DeleteTeamRequest {
                tenant_id: t(),
                team_id: TEAMS[*i].into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token))?,
        Op::Move { slot, parent } => rev(admin
            .move_resource(pb::MoveResourceRequest {
                tenant_id: t(),
                resource: Some(res(SLOTS[*slot])),
                new_parent: parent.map(|p| res(SLOTS[p])),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token))?,
        Op::SetPrivate { slot, private } => rev(admin
            .set_resource_private(pb::SetResourcePrivateRequest {
                tenant_id: t(),
                resource: Some(res(SLOTS[*slot])),
                private: *private,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token))?,
        Op::CreateResource {
            slot,
            parent,
            private,
        } => rev(admin
            .create_resource(pb::CreateResourceRequest {
                tenant_id: t(),
                resource: Some(res(SLOTS[*slot])),
                parent: parent.map(|p| res(SLOTS[p])),
                private: *private,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token))?,
        Op::DeleteResource(slot) => rev(admin
            .delete_resource(pb::DeleteResourceRequest {
                tenant_id: t(),
                resource: Some(res(SLOTS[*slot])),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token))?,
        Op::PutRole {
            perms,
            inherits_viewer,
            effective,
        } => {
            let role = pb::Role {
                id: CUSTOM.into(),
                display_name: "Reviewer".into(),
                permissions: custom_perms(perms),
                inherits: if *inherits_viewer {
                    vec!["viewer".into()]
                } else {
                    vec![]
                },
                effective_at: EFFECTIVE[*effective]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                ..Default::default()
            };
            let created = admin
                .create_role(pb::CreateRoleRequest {
                    tenant_id: t(),
                    role: Some(role.clone()),
                    ..Default::default()
                })
                .await;
            match created {
                Err(s) if s.code() == Code::AlreadyExists => rev(admin
                    .update_role(pb::UpdateRoleRequest {
                        tenant_id: t(),
                        role: Some(role),
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().consistency_token))?,
                other => rev(other.map(|r| r.into_inner().consistency_token))?,
            }
        }
        Op::DeleteRole { cascade } => rev(admin
            .delete_role(pb::DeleteRoleRequest {
                tenant_id: t(),
                role_id: CUSTOM.into(),
                cascade: *cascade,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().consistency_token))?,
        Op::Transfer { slot, to, keep } => {
            let r = admin
                .transfer_ownership(pb::TransferOwnershipRequest {
                    tenant_id: t(),
                    resource: Some(res(SLOTS[*slot])),
                    new_owner_id: PEOPLE[*to].into(),
                    previous_owner_role_id: keep.map(|k| ROLES[k].to_owned()).unwrap_or_default(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner());
            done(&what, r)?.map(|r| {
                if let Some(g) = r.owner_grant {
                    let to = PEOPLE[*to];
                    made.grants
                        .push((g.id, format!("owner grant of {to} on {}", SLOTS[*slot])));
                }
                r.consistency_token
            })
        }
    })
}

/// Every question of the small world.
fn grid() -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for p in PEOPLE {
        for a in ACTIONS {
            for r in SLOTS {
                v.push((p.to_owned(), a.to_owned(), r.to_owned()));
            }
        }
    }
    v
}

/// Compares every answer of the server (BatchCheck of the whole grid; single
/// Checks, ListAccessible and ListSubjects for the probe principal and
/// action) with the uncached authorizer's.
async fn compare(
    node: &Node,
    reference: &Authorizer<SqlStore>,
    (probe, action): (usize, usize),
    token: &str,
) -> Result<Vec<String>, String> {
    let items = grid();
    let mut problems = Vec::new();
    let served = node
        .batch(&items, token)
        .await
        .map_err(|s| format!("BatchCheck failed: {s:?}"))?;
    let queries: Vec<CheckQuery> = items.iter().map(|(s, a, r)| query(s, a, r)).collect();
    let (decisions, revision) = reference
        .check_many(
            TENANT,
            &queries,
            portcullis::model::condition::RequestContext::none(),
            None,
        )
        .await
        .map_err(|e| format!("uncached check_many failed: {e}"))?;
    if served.consistency_token != revision.to_string() {
        problems.push(format!(
            "BatchCheck answered at revision {}; the database is at {revision}",
            served.consistency_token
        ));
    }
    if served.results.len() != items.len() {
        return Err(format!(
            "BatchCheck answered {} of {} items",
            served.results.len(),
            items.len()
        ));
    }
    let mut expected = std::collections::HashMap::new();
    for ((item, got), want) in items.iter().zip(served.results).zip(decisions) {
        let got = Answer {
            allowed: got.allowed,
            reason: got.reason,
            explanation: got.explanation,
        };
        let want = Answer::from_decision(want);
        if got != want {
            problems.push(format!(
                "BatchCheck{item:?}: cached {} / uncached {}",
                got.show(),
                want.show()
            ));
        }
        expected.insert(item.clone(), want);
    }
    // Single Checks of the probe principal for one action on every slot; the
    // uncached single check for two of them.
    let (p, a) = (PEOPLE[probe], ACTIONS[action]);
    for (m, r) in SLOTS.iter().enumerate() {
        let got = Answer::from_check(
            node.check(p, a, r, token)
                .await
                .map_err(|s| format!("Check({p}, {a}, {r}) failed: {s:?}"))?,
        );
        let key = (p.to_owned(), a.to_owned(), (*r).to_owned());
        let want = if m % 4 == (probe + action) % 4 {
            let (d, _) = reference
                .check(
                    TENANT,
                    query(p, a, r),
                    portcullis::model::condition::RequestContext::none(),
                    None,
                )
                .await
                .map_err(|e| format!("uncached check failed: {e}"))?;
            Answer::from_decision(d)
        } else {
            expected[&key].clone()
        };
        if got != want {
            problems.push(format!(
                "Check({p}, {a}, {r}): cached {} / uncached {}",
                got.show(),
                want.show()
            ));
        }
    }
    // The list RPCs read principals and role tables through the same cache.
    let all = PageRequest {
        after: None,
        limit: 10_000,
    };
    for rtype in ["workspace", "folder", "workflow", "draft"] {
        let got = node
            .list(p, a, rtype, token)
            .await
            .map_err(|s| format!("ListAccessible failed: {s:?}"))?;
        let want = reference
            .list_accessible(
                TENANT,
                (p, a, rtype),
                all,
                portcullis::model::condition::RequestContext::none(),
                None,
            )
            .await
            .map_err(|e| format!("uncached list_accessible failed: {e}"))?
            .ids;
        // The same ids, each once; the index lists in the tree's order, the
        // uncached reference in id order.
        let mut got = got;
        got.sort();
        if got.windows(2).any(|w| w[0] == w[1]) || got != want {
            problems.push(format!(
                "ListAccessible({p}, {a}, {rtype}): cached {got:?} / uncached {want:?}"
            ));
        }
    }
    for r in [
        SLOTS[probe % SLOTS.len()],
        SLOTS[(probe + action + 3) % SLOTS.len()],
    ] {
        let got = node
            .subjects(r, a, token)
            .await
            .map_err(|s| format!("ListSubjects failed: {s:?}"))?;
        let want = reference
            .list_subjects(
                TENANT,
                (&model_ref(r), a),
                all,
                portcullis::model::condition::RequestContext::none(),
                None,
            )
            .await
            .map_err(|e| format!("uncached list_subjects failed: {e}"))?
            .ids;
        if got != want {
            problems.push(format!(
                "ListSubjects({r}, {a}): cached {got:?} / uncached {want:?}"
            ));
        }
    }
    Ok(problems)
}

/// Where the writes of a case go, and how the answers are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One server; every question without a consistency token.
    One,
    /// Two servers on one database; each write goes to its step's replica and
    /// both replicas are asked with the latest write's token.
    Two,
}

/// A server in this process on an existing database, stopped on drop.
struct InProcess {
    node: Node,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn serve_in_process(url: &str, migrate: bool, poll_ms: u64) -> InProcess {
    let mut cfg = test_config(url);
    cfg.cache.poll_interval_ms = poll_ms;
    let (_, channel, tx, _) = serve(&cfg, migrate).await;
    InProcess {
        node: Node { channel },
        stop: Some(tx),
    }
}

/// The tenant and its account admin (as `spawn_app_on` makes them), the
/// people, the teams and the initial resources; returns the last token.
async fn setup(node: &Node, c: &Case, with_tenant: bool) -> Result<String, String> {
    let mut admin = node.admin();
    let t = || TENANT.to_owned();
    let fail = |what: &str, s: tonic::Status| format!("setup: {what}: {s:?}");
    let mut token = String::new();
    if with_tenant {
        token = admin
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: t(),
                display_name: "Acme".into(),
                first_admin: Some(pb::FirstAdmin {
                    principal_id: ADMIN.into(),
                    kind: 0,
                    display_name: "Root Admin".into(),
                }),
                ..Default::default()
            })
            .await
            .map_err(|s| fail("tenant", s))?
            .into_inner()
            .consistency_token;
    }
    for p in &PEOPLE[1..LATE] {
        token = admin
            .create_principal(pb::CreatePrincipalRequest {
                tenant_id: t(),
                principal_id: (*p).into(),
                kind: pb::PrincipalKind::User as i32,
                status: pb::PrincipalStatus::Active as i32,
                display_name: (*p).into(),
                ..Default::default()
            })
            .await
            .map_err(|s| fail(p, s))?
            .into_inner()
            .consistency_token;
    }
    for team in TEAMS {
        token = admin
            .create_team(pb::CreateTeamRequest {
                tenant_id: t(),
                team_id: team.into(),
                display_name: team.into(),
                ..Default::default()
            })
            .await
            .map_err(|s| fail(team, s))?
            .into_inner()
            .consistency_token;
    }
    for (i, p) in c.initial_parents().iter().enumerate() {
        if let Some(parent) = p {
            token = admin
                .create_resource(pb::CreateResourceRequest {
                    tenant_id: t(),
                    resource: Some(res(SLOTS[i])),
                    parent: parent.map(|j| res(SLOTS[j])),
                    private: c.layout[i].2,
                    ..Default::default()
                })
                .await
                .map_err(|s| fail(SLOTS[i], s))?
                .into_inner()
                .consistency_token;
        }
    }
    Ok(token)
}

/// Builds the case on fresh servers and compares after setup and after every
/// step. `Err` holds how many steps ran (the last one failed) and what failed.
async fn run_case(b: &Backend, c: &Case, mode: Mode) -> Result<(), (usize, String)> {
    let case_started = Instant::now();
    let r = run_case_inner(b, c, mode).await;
    if std::env::var("CACHE_PROPERTY_TRACE").is_ok() {
        eprintln!(
            "case of {} steps in {:?}",
            c.steps.len(),
            case_started.elapsed()
        );
    }
    r
}

async fn run_case_inner(b: &Backend, c: &Case, mode: Mode) -> Result<(), (usize, String)> {
    // Keeps the servers (and the temporary directory) alive for the case.
    let mut _one = None;
    let mut _two = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let (nodes, url, mut token) = match mode {
        Mode::One => {
            let app = spawn_bare(b.clone()).await;
            let node = Node::of(&app);
            let url = app.database_url.clone();
            _one = Some(app);
            let token = setup(&node, c, true).await.map_err(|e| (0, e))?;
            (vec![node], url, token)
        }
        Mode::Two => {
            let url = fresh_database(b, dir.path()).await;
            // A rarely polls, B polls all the time: A catches up through
            // tokens, B through its poller racing with the checks.
            let a = serve_in_process(&url, true, 1_000).await;
            let token = setup(&a.node, c, true).await.map_err(|e| (0, e))?;
            let b = serve_in_process(&url, false, 10).await;
            let nodes = vec![a.node.clone(), b.node.clone()];
            _two = vec![a, b];
            (nodes, url, token)
        }
    };
    let reference = uncached_at(&url).await;
    let ask = |token: &str| match mode {
        Mode::One => String::new(),
        Mode::Two => token.to_owned(),
    };
    for (i, node) in nodes.iter().enumerate() {
        let problems = compare(node, &reference, (1, 0), &ask(&token))
            .await
            .map_err(|e| (0, e))?;
        if !problems.is_empty() {
            return Err((
                0,
                format!("after setup, on replica {i}:\n{}", problems.join("\n")),
            ));
        }
    }
    let mut made = Made::default();
    let mut transcript = String::new();
    for (n, step) in c.steps.iter().enumerate() {
        let what = step.op.describe(&made);
        let writer = usize::from(mode == Mode::Two && step.on_b);
        let outcome = apply(&nodes[writer], &step.op, &mut made)
            .await
            .map_err(|e| (n + 1, format!("{transcript}step {n}: {e}")))?;
        let on = match mode {
            Mode::One => "",
            Mode::Two if writer == 0 => "on A: ",
            Mode::Two => "on B: ",
        };
        let note = match &outcome {
            Ok(t) => {
                token = t.clone();
                String::new()
            }
            Err(Code::Ok) => String::new(),
            Err(code) => format!("  -> refused ({code:?})"),
        };
        let _ = writeln!(transcript, "  {n:>2}. {on}{what}{note}");
        let action = n % ACTIONS.len();
        for (i, node) in nodes.iter().enumerate() {
            let problems = compare(node, &reference, (step.probe, action), &ask(&token))
                .await
                .map_err(|e| (n + 1, format!("{transcript}{e}")))?;
            if !problems.is_empty() {
                let shown: Vec<&str> = problems.iter().take(12).map(String::as_str).collect();
                let asked = match mode {
                    Mode::One => "without a token".to_owned(),
                    Mode::Two => format!(
                        "on replica {} with token {token}",
                        if i == 0 { "A" } else { "B" }
                    ),
                };
                return Err((n + 1, format!(
                    "{transcript}after step {n}, {} answers differ, asked {asked} (single Checks for {} {}):\n{}",
                    problems.len(),
                    PEOPLE[step.probe],
                    ACTIONS[action],
                    shown.join("\n")
                )));
            }
        }
    }
    if std::env::var("CACHE_PROPERTY_TRACE").is_ok() {
        eprintln!("{}{transcript}", c.describe());
    }
    Ok(())
}

fn env_u32(name: &str) -> Option<u32> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn property(b: Backend, default_cases: u32, mode: Mode) {
    let cases = env_u32("PROPTEST_CASES").unwrap_or(default_cases);
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = case();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 0..cases {
        let case_started = Instant::now();
        let c = strategy.new_tree(&mut runner).expect("a case").current();
        let Err(first) = run_case(&b, &c, mode).await else {
            slowest = slowest.max(case_started.elapsed());
            continue;
        };
        let (smallest, tries) = shrink(&b, c, first, mode).await;
        panic!(
            "case {n} of {cases} ({mode:?}) failed (PROPTEST_RNG_SEED={seed}); smallest sequence after \
             {tries} shrink tries:\n{}\n{}",
            smallest.0.describe(),
            smallest.1
        );
    }
    eprintln!(
        "{cases} random sequences ({mode:?}): cached answers equal uncached ones after every \
         step (PROPTEST_RNG_SEED={seed}) in {:?}; slowest case {slowest:?}",
        started.elapsed()
    );
}

/// Greedy shrinking: drops the steps after the failing one, then every step
/// and every initial resource whose removal keeps some answer wrong.
async fn shrink(b: &Backend, c: Case, first: (usize, String), mode: Mode) -> ((Case, String), u32) {
    let max_tries = env_u32("PROPTEST_MAX_SHRINK_ITERS").unwrap_or(150);
    let mut tries = 0;
    let mut best = c;
    best.steps.truncate(first.0);
    let mut message = first.1;
    let mut i = best.steps.len();
    while i > 0 && tries < max_tries {
        i -= 1;
        let mut candidate = best.clone();
        candidate.steps.remove(i);
        tries += 1;
        if let Err((ran, m)) = run_case(b, &candidate, mode).await {
            candidate.steps.truncate(ran);
            i = i.min(candidate.steps.len());
            best = candidate;
            message = m;
        }
    }
    for slot in (0..SLOTS.len()).rev() {
        if !best.layout[slot].0 || tries >= max_tries {
            continue;
        }
        let mut candidate = best.clone();
        candidate.layout[slot].0 = false;
        tries += 1;
        if let Err((ran, m)) = run_case(b, &candidate, mode).await {
            candidate.steps.truncate(ran);
            best = candidate;
            message = m;
        }
    }
    ((best, message), tries)
}

async fn cached_answers_equal_uncached_answers_after_every_write_in_random_sequences(b: Backend) {
    let cases = if matches!(b, Backend::Sqlite) { 24 } else { 8 };
    property(b, cases, Mode::One).await;
}

on_every_backend!(cached_answers_equal_uncached_answers_after_every_write_in_random_sequences);

async fn two_replicas_answer_like_the_database_with_the_latest_token_in_random_sequences(
    b: Backend,
) {
    let cases = if matches!(b, Backend::Sqlite) { 8 } else { 4 };
    property(b, cases, Mode::Two).await;
}

/// As `on_every_backend!` does, but on a multi-threaded runtime, so that
/// replica B's poller really runs in parallel with the checks whose cache
/// fills it races.
mod two_replicas_answer_like_the_database_with_the_latest_token_in_random_sequences {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::two_replicas_answer_like_the_database_with_the_latest_token_in_random_sequences(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(portcullis_pg),
        ignore = "PostgreSQL: set PORTCULLIS_TEST_DATABASE_URL when building and running the tests"
    )]
    async fn postgres() {
        if let Some(b) = crate::helpers::Backend::postgres() {
            super::two_replicas_answer_like_the_database_with_the_latest_token_in_random_sequences(
                b,
            )
            .await
        }
    }
}

// ---- 2. two replicas on one PostgreSQL database ----------------------------

const REPLICA_KEY: &str = "replica-operator-key-0123456789";
/// The replicas' `cache.poll_interval_ms`.
const POLL_MS: u64 = 300;
/// How late, beyond one poll interval, a replica may see another's write.
const SLACK_MS: u64 = 750;

/// A `portcullis serve` process (killed on drop), with a name for messages.
struct Replica {
    name: &'static str,
    channel: Channel,
    _process: ServerProcess,
}

/// The replicas' configuration, by environment.
fn replica_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        database_env(url),
        (
            "PORTCULLIS_API_KEYS",
            format!(r#"[{{name="ops",key="{REPLICA_KEY}",scope="operator"}}]"#),
        ),
        ("PORTCULLIS_CACHE__POLL_INTERVAL_MS", POLL_MS.to_string()),
    ]
}

async fn start_replica(name: &'static str, url: &str) -> Replica {
    let process = ServerProcess::start(&replica_env(url), &["serve", "--no-migrate"]).await;
    Replica {
        name,
        channel: process.channel(),
        _process: process,
    }
}

impl Replica {
    fn admin(&self) -> AdminServiceClient<Keyed> {
        AdminServiceClient::with_interceptor(self.channel.clone(), key(REPLICA_KEY))
    }

    fn checker(&self) -> CheckServiceClient<Keyed> {
        CheckServiceClient::with_interceptor(self.channel.clone(), key(REPLICA_KEY))
    }

    async fn user(&self, tenant: &str, id: &str) -> String {
        self.admin()
            .create_principal(pb::CreatePrincipalRequest {
                tenant_id: tenant.into(),
                principal_id: id.into(),
                kind: pb::PrincipalKind::User as i32,
                status: pb::PrincipalStatus::Active as i32,
                display_name: id.into(),
                ..Default::default()
            })
            .await
            .expect("create principal")
            .into_inner()
            .consistency_token
    }

    async fn resource(&self, tenant: &str, r: &str) -> String {
        self.admin()
            .create_resource(pb::CreateResourceRequest {
                tenant_id: tenant.into(),
                resource: Some(res(r)),
                ..Default::default()
            })
            .await
            .expect("create resource")
            .into_inner()
            .consistency_token
    }

    /// Grants `role` on `r`; returns the grant id and the revision token.
    async fn grant(&self, tenant: &str, who: &str, role: &str, r: &str) -> (String, String) {
        let resp = self
            .admin()
            .create_grant(pb::CreateGrantRequest {
                tenant_id: tenant.into(),
                subject: Some(subj(who)),
                role_id: role.into(),
                scope: Some(res(r)),
                effect: pb::Effect::Allow as i32,
                ..Default::default()
            })
            .await
            .expect("create grant")
            .into_inner();
        (resp.grant.expect("grant").id, resp.consistency_token)
    }

    async fn revoke(&self, tenant: &str, id: &str) -> String {
        self.admin()
            .delete_grant(pb::DeleteGrantRequest {
                tenant_id: tenant.into(),
                grant_id: id.into(),
                ..Default::default()
            })
            .await
            .expect("delete grant")
            .into_inner()
            .consistency_token
    }

    async fn set_status(&self, tenant: &str, who: &str, status: pb::PrincipalStatus) -> String {
        self.admin()
            .set_principal_status(pb::SetPrincipalStatusRequest {
                tenant_id: tenant.into(),
                principal_id: who.into(),
                status: status as i32,
                ..Default::default()
            })
            .await
            .expect("set status")
            .into_inner()
            .consistency_token
    }

    async fn check(
        &self,
        tenant: &str,
        who: &str,
        action: &str,
        r: &str,
        token: &str,
    ) -> pb::CheckResponse {
        self.checker()
            .check(pb::CheckRequest {
                tenant_id: tenant.into(),
                principal_id: who.into(),
                action: action.into(),
                resource: Some(res(r)),
                consistency_token: token.into(),
                explain: true,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("check on replica {}: {s:?}", self.name))
            .into_inner()
    }
}

fn revision_of(token: &str) -> i64 {
    token.parse().expect("revision tokens are numbers")
}

/// Asks `b` without a token until the answer is a denial with `reason`;
/// returns how long after `since` it came and how many allows came first.
/// Then keeps asking for three poll intervals and fails on any allow.
async fn denial_without_token(
    b: &Replica,
    (tenant, who, action, r): (&str, &str, &str, &str),
    since: Instant,
    reason: pb::Reason,
) -> (Duration, usize) {
    let give_up = Duration::from_millis(POLL_MS + SLACK_MS + 3_000);
    let mut stale = 0;
    let delay = loop {
        let a = b.check(tenant, who, action, r, "").await;
        if !a.allowed {
            assert_eq!(
                a.reason,
                reason as i32,
                "the denial on replica B has reason {}",
                reason_name(a.reason)
            );
            break since.elapsed();
        }
        stale += 1;
        assert!(
            since.elapsed() < give_up,
            "replica B still allows {who} {action} {r} {:?} after the write on A",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let until = Instant::now() + Duration::from_millis(3 * POLL_MS);
    while Instant::now() < until {
        let a = b.check(tenant, who, action, r, "").await;
        assert!(
            !a.allowed,
            "replica B allowed {who} {action} {r} again after having denied it"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (delay, stale)
}

#[tokio::test]
#[cfg_attr(
    not(portcullis_pg),
    ignore = "PostgreSQL: set PORTCULLIS_TEST_DATABASE_URL when building and running the tests"
)]
async fn a_revoke_on_one_replica_is_seen_by_another() {
    let Some(Backend::Postgres(base)) = Backend::postgres() else {
        eprintln!("a_revoke_on_one_replica_is_seen_by_another: skipped (PostgreSQL only; PORTCULLIS_TEST_DATABASE_URL is unset)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let url = fresh_database(&Backend::Postgres(base), dir.path()).await;
    let migrate_url = url.clone();
    let migrated = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(replica_env(&migrate_url))
            .arg("migrate")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    })
    .await
    .expect("join")
    .expect("run `portcullis migrate`");
    assert!(
        migrated.success(),
        "`portcullis migrate` failed: {migrated}"
    );
    let a = start_replica("A", &url).await;
    let b = start_replica("B", &url).await;
    let bound = Duration::from_millis(POLL_MS + SLACK_MS);
    let t = "acme";

    // A new tenant written on A: B knows it with A's token.
    let created = create_tenant(&mut a.admin(), t).await;
    let tenant_token = created.consistency_token.clone();
    let known = b
        .check(t, ADMIN, "view", "workspace:ops", &tenant_token)
        .await;
    assert_eq!(
        known.reason,
        pb::Reason::UnknownResource as i32,
        "with A's token, B knows the tenant (the resource is what is unknown), got {}",
        reason_name(known.reason)
    );
    assert!(revision_of(&known.consistency_token) >= revision_of(&tenant_token));

    a.user(t, "alice").await;
    a.user(t, "sam").await;
    a.resource(t, "workspace:ops").await;
    let q = (t, "alice", "view", "workspace:ops");

    // (a) Revoke on A; B, warm, asked with the revoke's token: denied at once.
    let (g1, token) = a.grant(t, "alice", "viewer", "workspace:ops").await;
    for _ in 0..3 {
        let warm = b.check(t, "alice", "view", "workspace:ops", &token).await;
        assert!(warm.allowed, "B allows alice with the grant's token");
    }
    let warm = b.check(t, "alice", "view", "workspace:ops", "").await;
    assert!(
        warm.allowed,
        "B (caught up to the grant) still allows alice"
    );
    let revoked = a.revoke(t, &g1).await;
    let after = b.check(t, "alice", "view", "workspace:ops", &revoked).await;
    assert!(
        !after.allowed,
        "B allowed alice with the revoke's token {revoked}: {}",
        Answer::from_check(after).show()
    );
    assert_eq!(after.reason, pb::Reason::NoGrant as i32);
    assert!(revision_of(&after.consistency_token) >= revision_of(&revoked));
    let later = b.check(t, "alice", "view", "workspace:ops", "").await;
    assert!(
        !later.allowed,
        "after answering at the revoke's revision, B went back to allowing"
    );

    // (b) Again, but B is asked without a token: denied within the bound.
    let (g2, token) = a.grant(t, "alice", "viewer", "workspace:ops").await;
    assert!(
        b.check(t, "alice", "view", "workspace:ops", &token)
            .await
            .allowed
    );
    assert!(
        b.check(t, "alice", "view", "workspace:ops", "")
            .await
            .allowed
    );
    a.revoke(t, &g2).await;
    let since = Instant::now();
    let (delay, stale) = denial_without_token(&b, q, since, pb::Reason::NoGrant).await;
    eprintln!(
        "revoke on A seen by B without a token after {delay:?} ({stale} stale allows first; \
         poll interval {POLL_MS} ms)"
    );
    assert!(
        delay <= bound,
        "B first denied {delay:?} after the revoke; the bound is {bound:?}"
    );

    // Suspension, the same two ways.
    let (_, token) = a.grant(t, "sam", "viewer", "workspace:ops").await;
    assert!(
        b.check(t, "sam", "view", "workspace:ops", &token)
            .await
            .allowed
    );
    assert!(b.check(t, "sam", "view", "workspace:ops", "").await.allowed);
    let suspended = a.set_status(t, "sam", pb::PrincipalStatus::Suspended).await;
    let after = b.check(t, "sam", "view", "workspace:ops", &suspended).await;
    assert!(!after.allowed, "B allowed suspended sam with the token");
    assert_eq!(after.reason, pb::Reason::PrincipalSuspended as i32);
    let token = a.set_status(t, "sam", pb::PrincipalStatus::Active).await;
    assert!(
        b.check(t, "sam", "view", "workspace:ops", &token)
            .await
            .allowed
    );
    assert!(b.check(t, "sam", "view", "workspace:ops", "").await.allowed);
    a.set_status(t, "sam", pb::PrincipalStatus::Suspended).await;
    let since = Instant::now();
    let (delay, stale) = denial_without_token(
        &b,
        (t, "sam", "view", "workspace:ops"),
        since,
        pb::Reason::PrincipalSuspended,
    )
    .await;
    eprintln!(
        "suspension on A seen by B without a token after {delay:?} ({stale} stale allows first)"
    );
    assert!(
        delay <= bound,
        "B first denied suspended sam {delay:?} after the write; the bound is {bound:?}"
    );

    // Writes on both replicas: B revokes a grant A made (before B polled it);
    // B, the writer, denies at once; A denies with B's token.
    let (g3, token) = a.grant(t, "alice", "viewer", "workspace:ops").await;
    assert!(
        a.check(t, "alice", "view", "workspace:ops", "")
            .await
            .allowed
    );
    let revoked = b.revoke(t, &g3).await;
    assert!(revision_of(&revoked) > revision_of(&token));
    let on_b = b.check(t, "alice", "view", "workspace:ops", "").await;
    assert!(
        !on_b.allowed,
        "B revoked the grant, yet B still allows alice: {}",
        Answer::from_check(on_b).show()
    );
    let on_a = a.check(t, "alice", "view", "workspace:ops", &revoked).await;
    assert!(
        !on_a.allowed,
        "A allows alice with the token of B's revoke: {}",
        Answer::from_check(on_a).show()
    );
    assert!(
        !a.check(t, "alice", "view", "workspace:ops", "")
            .await
            .allowed
    );

    // A second tenant created on A: B knows it with the token at once, and
    // without one within the bound.
    let created = a
        .admin()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "globex".into(),
            display_name: "Globex".into(),
            first_admin: Some(pb::FirstAdmin {
                principal_id: "g-admin".into(),
                kind: 0,
                display_name: "G".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("create tenant on A")
        .into_inner();
    let known = b
        .check(
            "globex",
            "g-admin",
            "view",
            "workspace:w",
            &created.consistency_token,
        )
        .await;
    assert_eq!(
        known.reason,
        pb::Reason::UnknownResource as i32,
        "with A's token B knows tenant globex, got {}",
        reason_name(known.reason)
    );
    a.user("globex", "gina").await;
    a.resource("globex", "workspace:w").await;
    let (_, token) = a.grant("globex", "gina", "editor", "workspace:w").await;
    // editor gives `workspace.view` (not `workspace.edit`).
    let ok = b
        .check("globex", "gina", "view", "workspace:w", &token)
        .await;
    assert!(
        ok.allowed,
        "B denies gina with the grant's token: {}",
        Answer::from_check(ok.clone()).show()
    );
    // A third tenant, asked about without a token until B knows it.
    a.admin()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "initech".into(),
            display_name: "Initech".into(),
            first_admin: Some(pb::FirstAdmin {
                principal_id: "i-admin".into(),
                kind: 0,
                display_name: "I".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("create tenant on A");
    let since_third = Instant::now();
    let delay = loop {
        let r = b
            .check("initech", "i-admin", "view", "workspace:w", "")
            .await;
        if r.reason != pb::Reason::UnknownTenant as i32 {
            assert_eq!(r.reason, pb::Reason::UnknownResource as i32);
            break since_third.elapsed();
        }
        assert!(
            since_third.elapsed() < bound + Duration::from_secs(3),
            "B still does not know tenant initech"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eprintln!("a tenant created on A known to B without a token after {delay:?}");
    assert!(delay <= bound, "B learned the tenant after {delay:?}");
}

// ---- 3. expiry needs no write ------------------------------------------------

async fn expired_grants_stop_granting_while_cached(b: Backend) {
    let app = spawn_app_on(b).await;
    app.user("alice").await;
    app.user("bob").await;
    app.team("devs").await;
    app.add_member("devs", "bob").await.unwrap();
    app.resource("workspace:ops", None).await;
    app.resource("workflow:w1", Some("workspace:ops")).await;
    let direct = app
        .grant_full(
            "",
            "alice",
            "editor",
            "workspace:ops",
            pb::Effect::Allow,
            Some(in_millis(1_500)),
        )
        .await
        .unwrap();
    let via_team = app
        .grant_full(
            "",
            "team:devs",
            "viewer",
            "workspace:ops",
            pb::Effect::Allow,
            Some(in_millis(1_500)),
        )
        .await
        .unwrap();
    let expiry = Instant::now() + Duration::from_millis(1_500);
    let items = vec![
        (
            "alice".to_owned(),
            "edit".to_owned(),
            "workflow:w1".to_owned(),
        ),
        (
            "bob".to_owned(),
            "view".to_owned(),
            "workflow:w1".to_owned(),
        ),
    ];
    // Warm: both allowed, several times, by Check and BatchCheck.
    let mut revision = String::new();
    for _ in 0..3 {
        let a = check_on(&app, "alice", "edit", "workflow:w1")
            .await
            .unwrap();
        assert!(a.allowed, "alice edits while her grant lives");
        let b = check_on(&app, "bob", "view", "workflow:w1").await.unwrap();
        assert!(b.allowed, "bob views through devs while its grant lives");
        let batch = batch_on(&app, &items).await.unwrap();
        assert!(batch.results.iter().all(|r| r.allowed));
        revision = a.consistency_token;
    }
    assert!(
        Instant::now() < expiry,
        "warming took too long to see the grants live"
    );
    tokio::time::sleep(expiry - Instant::now() + Duration::from_millis(300)).await;

    let reference = uncached(&app).await;
    for (who, action, grant) in [("alice", "edit", &direct), ("bob", "view", &via_team)] {
        let a = check_on(&app, who, action, "workflow:w1").await.unwrap();
        assert!(!a.allowed, "{who}'s grant expired, yet {who} is allowed");
        assert_eq!(
            a.reason,
            pb::Reason::GrantExpired as i32,
            "{who}: {}",
            reason_name(a.reason)
        );
        assert_eq!(
            a.explanation.as_ref().map(|e| e.grant_id.as_str()),
            Some(grant.id.as_str())
        );
        assert_eq!(
            a.consistency_token, revision,
            "no write happened since warming"
        );
        let (d, _) = reference
            .check(
                TENANT,
                query(who, action, "workflow:w1"),
                portcullis::model::condition::RequestContext::none(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(Answer::from_check(a), Answer::from_decision(d));
    }
    let batch = batch_on(&app, &items).await.unwrap();
    assert_eq!(batch.consistency_token, revision);
    for r in &batch.results {
        assert!(!r.allowed);
        assert_eq!(r.reason, pb::Reason::GrantExpired as i32);
    }
}

on_every_backend!(expired_grants_stop_granting_while_cached);

// ---- 4. hot checks need no database --------------------------------------------

/// Drops every table under the running server, through a connection of its own.
async fn drop_every_table(url: &str) {
    let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
    opts.max_connections(1).sqlx_logging(false);
    let db = sea_orm::Database::connect(opts)
        .await
        .expect("connect to break the database");
    let sqlite = db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite;
    if sqlite {
        db.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .expect("foreign keys off");
    }
    for table in [
        "grants",
        "team_members",
        "teams",
        "principals",
        "roles",
        "resources",
        "audit_events",
        "changes",
        "tenants",
    ] {
        let sql = if sqlite {
            format!("DROP TABLE {table}")
        } else {
            format!("DROP TABLE {table} CASCADE")
        };
        db.execute_unprepared(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    db.close().await.ok();
}

async fn warm_checks_answer_without_the_database_and_cold_checks_fail_closed(b: Backend) {
    let app = spawn_app_on(b).await;
    for p in ["alice", "bob", "carol"] {
        app.user(p).await;
    }
    app.resource("workspace:ops", None).await;
    app.resource("folder:f", Some("workspace:ops")).await;
    app.resource("workflow:w1", Some("folder:f")).await;
    app.grant("alice", "viewer", "workspace:ops").await;
    app.grant("bob", "viewer", "workspace:ops").await;
    let expiring = app
        .grant_full(
            "",
            "carol",
            "editor",
            "workspace:ops",
            pb::Effect::Allow,
            Some(in_millis(2_000)),
        )
        .await
        .unwrap();
    let expiry = Instant::now() + Duration::from_millis(2_000);

    // A second tenant that no call has touched: its index is never built.
    create_tenant(&mut app.operator(), "cold-co").await;

    // Warm the tenant's index (alice, carol and workflow:w1 asked about).
    let warm = [
        ("alice", "view", true),
        ("alice", "edit", false),
        ("carol", "edit", true),
    ];
    let mut before = Vec::new();
    for (who, action, allowed) in warm {
        let a = check_on(&app, who, action, "workflow:w1").await.unwrap();
        assert_eq!(a.allowed, allowed, "{who} {action} before the drop");
        before.push(a);
    }
    let viewer_edit = before[1].reason;
    assert_eq!(viewer_edit, pb::Reason::NoGrant as i32);

    drop_every_table(&app.database_url).await;
    // The database is really unusable: the uncached authorizer fails.
    let reference = uncached(&app).await;
    assert!(
        reference
            .check(
                TENANT,
                query("alice", "view", "workflow:w1"),
                portcullis::model::condition::RequestContext::none(),
                None
            )
            .await
            .is_err(),
        "the uncached authorizer still answers: the tables were not dropped"
    );

    // Warm questions: the same answers, from memory.
    for ((who, action, _), was) in warm.iter().zip(&before) {
        let now = check_on(&app, who, action, "workflow:w1")
            .await
            .unwrap_or_else(|s| panic!("warm check {who} {action} failed: {s:?}"));
        assert_eq!(&now, was, "{who} {action} changed without any write");
    }
    // The whole tenant is in its index: new actions, principals and
    // resources are decided from memory too, exactly.
    let exec = check_on(&app, "alice", "execute", "workflow:w1")
        .await
        .expect("decided from memory");
    assert!(!exec.allowed);
    assert_eq!(exec.reason, pb::Reason::NoGrant as i32);
    for (who, action, r, allowed, reason) in [
        ("bob", "view", "workflow:w1", true, pb::Reason::Granted),
        (
            "zed",
            "view",
            "workflow:w1",
            false,
            pb::Reason::UnknownPrincipal,
        ),
        ("alice", "view", "workspace:ops", true, pb::Reason::Granted),
        (
            "alice",
            "view",
            "workflow:nope",
            false,
            pb::Reason::UnknownResource,
        ),
    ] {
        let got = check_on(&app, who, action, r)
            .await
            .unwrap_or_else(|s| panic!("{who} {action} {r} failed: {s:?}"));
        assert_eq!(
            (got.allowed, got.reason),
            (allowed, reason as i32),
            "{who} {action} {r}"
        );
    }
    let both = batch_on(
        &app,
        &[
            ("alice".into(), "view".into(), "workflow:w1".into()),
            ("bob".into(), "edit".into(), "workflow:w1".into()),
        ],
    )
    .await
    .expect("a batch from memory");
    let got: Vec<bool> = both.results.iter().map(|r| r.allowed).collect();
    assert_eq!(got, vec![true, false]);

    // A tenant not in memory fails closed: UNAVAILABLE, never an answer.
    let cold = app
        .checker()
        .check(pb::CheckRequest {
            tenant_id: "cold-co".into(),
            principal_id: ADMIN.into(),
            action: "view".into(),
            resource: Some(res("workspace:ops")),
            ..Default::default()
        })
        .await;
    assert_eq!(
        cold.as_ref().map_err(|s| s.code()).err(),
        Some(Code::Unavailable),
        "a check in a cold tenant answered {cold:?}"
    );

    // Expiry is decided from memory too: carol's cached grant expires.
    tokio::time::sleep(
        expiry.saturating_duration_since(Instant::now()) + Duration::from_millis(300),
    )
    .await;
    let expired = check_on(&app, "carol", "edit", "workflow:w1")
        .await
        .expect("decided from memory");
    assert!(!expired.allowed, "carol's expired grant still allows");
    assert_eq!(expired.reason, pb::Reason::GrantExpired as i32);
    assert_eq!(expired.explanation.map(|e| e.grant_id), Some(expiring.id));
}

on_every_backend!(warm_checks_answer_without_the_database_and_cold_checks_fail_closed);

//! Properties of apply and import over the in-memory store: applying the
//! plan from any tenant to any other valid tenant gives exactly the other
//! tenant, and the access the plan says changes is exactly the access that
//! `Check` answers differently afterwards.

use super::apply::{access_changes, plan, ApplyTenant};
use super::bulk::{check_dump, ImportTenant};
use super::Admin;
use crate::engine::authorizer::{Authorizer, CheckQuery};
use crate::error::Error;
use crate::model::{
    now_millis, Actor, Effect, Grant, Permission, Principal, PrincipalKind, PrincipalStatus,
    Resource, ResourceRef, Role, Scope, SubjectRef, Team, Tenant,
};
use crate::store::memory::MemStore;
use crate::store::{Catalog, TenantDump, WriteContext};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

const T: &str = "acme";

fn ctx() -> WriteContext {
    WriteContext {
        tenant_id: T.to_owned(),
        caller: "test".to_owned(),
        actor: Actor::SuperUser,
        request: None,
    }
}

fn r(s: &str) -> ResourceRef {
    let (t, id) = s.split_once(':').expect("type:id");
    ResourceRef {
        rtype: t.to_owned(),
        id: id.to_owned(),
    }
}

/// The resources any state may hold, each with the resources that may be
/// its parent (earlier ones, so that no state has a cycle).
const RESOURCES: &[(&str, &[&str])] = &[
    ("workspace:a", &[]),
    ("workspace:b", &[]),
    ("folder:f1", &["workspace:a", "workspace:b"]),
    ("folder:f2", &["workspace:a", "workspace:b", "folder:f1"]),
    ("workflow:w1", &["folder:f1", "folder:f2", "workspace:a"]),
    ("workflow:w2", &["folder:f1", "folder:f2", "workspace:b"]),
    ("connection:c1", &["workspace:a", "workspace:b"]),
];
const PEOPLE: &[&str] = &["p1", "p2", "p3"];
const ROLES: &[&str] = &["viewer", "editor", "admin", "run", "run_more"];
const ACTIONS: &[&str] = &["view", "edit", "execute", "delete", "share"];

/// A resource's choices: present, parent choice, private, link.
type ResourceChoice = (bool, usize, bool, Option<(usize, usize)>);

/// One random state's choices.
#[derive(Debug, Clone)]
struct Spec {
    /// Per resource: present, parent choice, private, a link to an earlier
    /// resource (which, the action it gates).
    resources: Vec<ResourceChoice>,
    /// Per person: present, status (0 active, 1 suspended, 2 invited).
    people: Vec<(bool, u8)>,
    /// Teams t1, t2 present; t2 inside t1; members of t1/t2 by person.
    teams: (bool, bool, bool, Vec<(bool, bool)>),
    /// Custom roles run, run_more present.
    roles: (bool, bool),
    /// Grants: (subject index, role index, scope index, deny).
    grants: Vec<(usize, usize, usize, bool)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(
            (
                any::<bool>(),
                0usize..3,
                prop::bool::weighted(0.2),
                prop::option::weighted(0.3, (0usize..RESOURCES.len(), 0usize..3)),
            ),
            RESOURCES.len(),
        ),
        prop::collection::vec(
            (
                prop::bool::weighted(0.8),
                prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8)],
            ),
            PEOPLE.len(),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec((any::<bool>(), any::<bool>()), PEOPLE.len()),
        ),
        (any::<bool>(), any::<bool>()),
        prop::collection::vec(
            (
                0usize..5,
                0usize..ROLES.len(),
                0usize..(RESOURCES.len() + 1),
                prop::bool::weighted(0.15),
            ),
            0..8,
        ),
    )
        .prop_map(|(resources, people, teams, roles, grants)| Spec {
            resources,
            people,
            teams,
            roles,
            grants,
        })
}

/// The resources of a state: each present one under its chosen parent
/// when present, with its link to an earlier one when that keeps every
/// chain within the 4 links the server follows.
fn add_resources(d: &mut TenantDump, choices: &[ResourceChoice], now: crate::model::Millis) {
    // How many links deep each resource acts (the server follows 4).
    let mut chain: std::collections::HashMap<ResourceRef, usize> = Default::default();
    for (i, (present, parent, private, link)) in choices.iter().enumerate() {
        let (me, parents) = RESOURCES[i];
        if !present {
            continue;
        }
        let parent = parents
            .get(*parent)
            .filter(|p| d.resources.iter().any(|x| x.resource == r(p)))
            .map(|p| r(p));
        let links: Vec<crate::model::Link> = link
            .filter(|(to, _)| *to < i)
            .map(|(to, _)| r(RESOURCES[to].0))
            .filter(|to| chain.get(to).is_some_and(|n| *n < 4))
            .map(|to| crate::model::Link {
                resource: to,
                action: "view".to_owned(),
                on: vec![["edit", "view", "execute"][link.map_or(0, |l| l.1)].to_owned()],
            })
            .into_iter()
            .collect();
        let depth = links.first().map_or(0, |l| chain[&l.resource] + 1);
        chain.insert(r(me), depth);
        d.resources.push(Resource {
            links,
            resource: r(me),
            parent,
            private: *private,
            created_at: now,
            attributes: Default::default(),
            restricted: Default::default(),
        });
    }
}

/// The valid tenant a spec describes (choices that would break a rule are
/// dropped, so that every state can be imported).
fn state(s: &Spec) -> TenantDump {
    let now = now_millis();
    let mut d = TenantDump::empty(
        Tenant {
            id: T.to_owned(),
            display_name: "Acme".to_owned(),
            single_owner_types: Vec::new(),
            creator_owner_types: Vec::new(),
            audit_retention_days: 90,
            created_at: now,
            actions: Vec::new(),
            implied_actions: Vec::new(),
        },
        0,
    );
    let perm = |p: &str| Permission::parse("p", p).expect("permission");
    if s.roles.0 {
        d.roles.push(Role {
            id: "run".into(),
            display_name: "Run".into(),
            permissions: vec![perm("workflow.execute"), perm("workflow.view")],
            excluded_permissions: Vec::new(),
            inherits: Vec::new(),
            effective_at: vec!["*".into()],
            locked: false,
            condition: Default::default(),
        });
        if s.roles.1 {
            d.roles.push(Role {
                id: "run_more".into(),
                display_name: "Run more".into(),
                permissions: vec![perm("connection.view")],
                excluded_permissions: Vec::new(),
                inherits: vec!["run".into()],
                effective_at: vec!["*".into()],
                locked: false,
                condition: Default::default(),
            });
        }
    }
    let person = |id: &str, status: PrincipalStatus| Principal {
        id: id.to_owned(),
        kind: PrincipalKind::User,
        status,
        display_name: id.to_owned(),
        created_at: now,
        invitation_expires_at: Default::default(),
    };
    d.principals.push(person("root", PrincipalStatus::Active));
    for (i, (present, st)) in s.people.iter().enumerate() {
        if *present {
            let status = match st {
                0 => PrincipalStatus::Active,
                1 => PrincipalStatus::Suspended,
                _ => PrincipalStatus::Invited,
            };
            d.principals.push(person(PEOPLE[i], status));
        }
    }
    let has_person = |d: &TenantDump, p: &str| d.principals.iter().any(|x| x.id == p);
    let (t1, t2, nested, ref members) = s.teams;
    for (on, id) in [(t1, "t1"), (t2, "t2")] {
        if on {
            d.teams.push(Team {
                id: id.into(),
                display_name: id.into(),
            });
        }
    }
    if t1 && t2 && nested {
        d.members.push(("t1".into(), SubjectRef::Team("t2".into())));
    }
    for (i, (in1, in2)) in members.iter().enumerate() {
        if !has_person(&d, PEOPLE[i]) {
            continue;
        }
        if t1 && *in1 {
            d.members
                .push(("t1".into(), SubjectRef::Principal(PEOPLE[i].into())));
        }
        if t2 && *in2 {
            d.members
                .push(("t2".into(), SubjectRef::Principal(PEOPLE[i].into())));
        }
    }
    add_resources(&mut d, &s.resources, now);
    d.grants.push(Grant {
        id: "root-admin".into(),
        subject: SubjectRef::Principal("root".into()),
        role_id: "account_admin".into(),
        scope: Scope::Tenant,
        effect: Effect::Allow,
        expires_at: None,
        created_at: now,
        condition: Default::default(),
    });
    for (n, (subject, role, scope, deny)) in s.grants.iter().enumerate() {
        let subject = match subject {
            0..=2 if has_person(&d, PEOPLE[*subject]) => {
                SubjectRef::Principal(PEOPLE[*subject].into())
            }
            3 if t1 => SubjectRef::Team("t1".into()),
            4 if t2 => SubjectRef::Team("t2".into()),
            _ => continue,
        };
        let role = ROLES[*role];
        if !d.roles.iter().any(|x| x.id == role) && (role == "run" || role == "run_more") {
            continue;
        }
        let scope = match RESOURCES.get(*scope) {
            None => Scope::Tenant,
            Some((res, _)) if d.resources.iter().any(|x| x.resource == r(res)) => {
                Scope::Resource(r(res))
            }
            Some(_) => continue,
        };
        d.grants.push(Grant {
            id: format!("g{n}"),
            subject,
            role_id: role.into(),
            scope,
            effect: if *deny { Effect::Deny } else { Effect::Allow },
            expires_at: None,
            created_at: now,
            condition: Default::default(),
        });
    }
    d
}

/// What apply must make equal, ignoring ids and times of grants.
fn shape(d: &TenantDump) -> String {
    let res: BTreeSet<String> = d
        .resources
        .iter()
        .map(|x| format!("{} < {:?} private={}", x.resource, x.parent, x.private))
        .collect();
    let people: BTreeSet<String> = d
        .principals
        .iter()
        .filter(|p| p.status != PrincipalStatus::Removed)
        .map(|p| format!("{} {}", p.id, p.status.as_str()))
        .collect();
    let teams: BTreeSet<&str> = d.teams.iter().map(|t| t.id.as_str()).collect();
    let members: BTreeSet<String> = d
        .members
        .iter()
        .map(|(t, m)| format!("{t} ∋ {m}"))
        .collect();
    let roles: BTreeSet<String> = d
        .roles
        .iter()
        .map(|r| format!("{} {:?} {:?}", r.id, r.permissions, r.inherits))
        .collect();
    let mut grants: Vec<String> = d
        .grants
        .iter()
        .map(|g| format!("{} {} {:?} {:?}", g.subject, g.role_id, g.scope, g.effect))
        .collect();
    grants.sort();
    format!("{res:#?}\n{people:#?}\n{teams:?}\n{members:#?}\n{roles:#?}\n{grants:#?}")
}

/// Every (principal, action, resource) `Check` allows in the store's tenant.
async fn allowed(store: &MemStore, d: &TenantDump) -> BTreeSet<(String, String, String)> {
    let authz = Authorizer::new(store.clone());
    let mut out = BTreeSet::new();
    let people: Vec<&str> = std::iter::once("root")
        .chain(PEOPLE.iter().copied())
        .collect();
    for p in people {
        for a in ACTIONS {
            for x in &d.resources {
                let q = CheckQuery {
                    subject_id: p.to_owned(),
                    action: (*a).to_owned(),
                    resource: x.resource.clone(),
                };
                let (dec, _) = authz
                    .check(T, q, crate::model::condition::RequestContext::none(), None)
                    .await
                    .expect("check");
                if dec.allowed {
                    out.insert((p.to_owned(), (*a).to_owned(), x.resource.to_string()));
                }
            }
        }
    }
    out
}

/// Ok(true) when the apply was accepted and checked; Ok(false) when the
/// rules refused a status change (and nothing was written).
async fn apply_case(from: Spec, to: Spec) -> Result<bool, TestCaseError> {
    let (base, want) = (state(&from), state(&to));
    check_dump(&base, now_millis()).map_err(|e| TestCaseError::fail(format!("base: {e}")))?;
    check_dump(&want, now_millis()).map_err(|e| TestCaseError::fail(format!("want: {e}")))?;
    let store = MemStore::new();
    let admin = Admin::new(store.clone(), Arc::new(|_, _, _| Box::pin(async {})));
    admin
        .write(&ctx(), ImportTenant { dump: base.clone() })
        .await
        .map_err(|e| TestCaseError::fail(format!("import: {e}")))?;
    let now = store.export(T).await.expect("export").expect("tenant");
    prop_assert_eq!(shape(&now), shape(&base), "import keeps every record");
    let before = allowed(&store, &now).await;
    let mut want_at = want.clone();
    want_at.revision = now.revision;
    let ops = plan(&now, &want_at).map_err(|e| TestCaseError::fail(format!("plan: {e}")))?;
    let described: Vec<String> = ops.iter().map(|o| format!("{:?}", o.describe())).collect();
    let diff = access_changes(&now, &want_at, 1_000_000).expect("access diff");
    let applied = admin
        .write(
            &ctx(),
            ApplyTenant {
                base_revision: now.revision,
                ops,
            },
        )
        .await;
    match applied {
        Ok(_) => {}
        // A status change the rules refuse (an invitation is accepted by
        // the invitee; a removed principal is invited again first): the
        // apply is refused whole, with the rule named.
        Err(Error::FailedPrecondition { rule, .. })
            if [
                "invitation_not_accepted",
                "principal_removed",
                "not_removed",
            ]
            .contains(&rule) =>
        {
            let after = store.export(T).await.expect("export").expect("tenant");
            prop_assert_eq!(
                after.revision,
                now.revision,
                "a refused apply writes nothing"
            );
            return Ok(false);
        }
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "apply refused: {e}\nplan: {described:#?}"
            )))
        }
    }
    let after = store.export(T).await.expect("export").expect("tenant");
    prop_assert_eq!(shape(&after), shape(&want), "plan: {:#?}", described);
    // The access the plan reported is the access Check now answers
    // differently (the tenant itself aside).
    let now_allowed = allowed(&store, &after).await;
    let gained: BTreeSet<_> = now_allowed.difference(&before).cloned().collect();
    let lost: BTreeSet<_> = before.difference(&now_allowed).cloned().collect();
    let acts: BTreeSet<&str> = ACTIONS.iter().copied().collect();
    let reported = |g: bool| -> BTreeSet<(String, String, String)> {
        diff.changes
            .iter()
            .filter(|c| c.gained == g && c.resource != "tenant" && acts.contains(c.action.as_str()))
            .map(|c| (c.principal.clone(), c.action.clone(), c.resource.clone()))
            .collect()
    };
    prop_assert!(diff.complete);
    prop_assert_eq!(reported(true), gained, "gained");
    prop_assert_eq!(reported(false), lost, "lost");
    Ok(true)
}

#[test]
fn applying_the_plan_gives_exactly_the_file_and_the_reported_access() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let checked = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config::with_cases(128));
    runner
        .run(&(spec(), spec()), |(from, to)| {
            if rt.block_on(apply_case(from, to))? {
                checked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let n = checked.load(Ordering::Relaxed);
    assert!(
        n >= 64,
        "only {n} of 128 random applies were accepted and checked"
    );
}

// ---- PreviewChange ------------------------------------------------------------

/// One random admin write of a preview case.
#[derive(Debug, Clone)]
enum Change {
    Grant(usize, usize, usize, bool),
    Revoke(usize),
    Status(usize, u8),
    Join(usize, bool),
    Private(usize, bool),
    Restricted(usize, bool),
    /// Set the links of a resource: none, or one to another needing `view`
    /// for the gated action.
    Links(usize, Option<(usize, &'static str)>),
    Delete(usize),
    Move(usize, usize),
}

fn change() -> impl Strategy<Value = Change> {
    let res = 0usize..RESOURCES.len();
    prop_oneof![
        4 => (0usize..5, 0usize..ROLES.len(), 0usize..(RESOURCES.len() + 1), prop::bool::weighted(0.3))
            .prop_map(|(s, r, x, d)| Change::Grant(s, r, x, d)),
        2 => (0usize..8).prop_map(Change::Revoke),
        2 => (0usize..PEOPLE.len(), 0u8..4).prop_map(|(p, s)| Change::Status(p, s)),
        2 => (0usize..PEOPLE.len(), any::<bool>()).prop_map(|(p, j)| Change::Join(p, j)),
        1 => (res.clone(), any::<bool>()).prop_map(|(r, x)| Change::Private(r, x)),
        1 => (res.clone(), any::<bool>()).prop_map(|(r, x)| Change::Restricted(r, x)),
        2 => (
            res.clone(),
            prop::option::weighted(
                0.8,
                (res.clone(), prop::sample::select(vec!["edit", "view", "delete"]))
            )
        )
            .prop_map(|(r, l)| Change::Links(r, l)),
        1 => res.clone().prop_map(Change::Delete),
        1 => (res.clone(), 0usize..(RESOURCES.len() + 1)).prop_map(|(r, p)| Change::Move(r, p)),
    ]
}

fn subject_of(i: usize) -> SubjectRef {
    match i {
        0..=2 => SubjectRef::Principal(PEOPLE[i].to_owned()),
        3 => SubjectRef::Team("t1".to_owned()),
        _ => SubjectRef::Team("t2".to_owned()),
    }
}

/// Previews `c` then makes it, with the same context: what the preview
/// said of acceptance and access must be what the write then does.
async fn preview_then_write(
    admin: &Admin<MemStore>,
    ctx: &WriteContext,
    d: &TenantDump,
    c: Change,
) -> (super::Preview, Result<(), Error>) {
    use super::grants::{CreateGrant, DeleteGrant};
    use super::members::{AddTeamMember, RemoveTeamMember, SetPrincipalStatus};
    use super::resources::{
        DeleteResource, MoveResource, SetResourcePrivate, SetResourceRestricted,
    };
    macro_rules! both {
        ($cmd:expr) => {{
            let p = admin
                .preview_change(ctx, $cmd, 1_000_000)
                .await
                .expect("preview");
            let w = admin.write(ctx, $cmd).await.map(drop);
            (p, w)
        }};
    }
    let res = |i: usize| r(RESOURCES[i].0);
    match c {
        Change::Grant(s, role, x, deny) => both!(CreateGrant {
            subject: subject_of(s),
            role_id: ROLES[role].to_owned(),
            scope: if x == RESOURCES.len() {
                Scope::Tenant
            } else {
                Scope::Resource(res(x))
            },
            effect: if deny { Effect::Deny } else { Effect::Allow },
            expires_at: None,
            condition: None,
        }),
        Change::Revoke(i) => {
            let id = d
                .grants
                .get(i)
                .map_or_else(|| "none".to_owned(), |g| g.id.clone());
            both!(DeleteGrant {
                grant_id: id.clone()
            })
        }
        Change::Status(p, s) => both!(SetPrincipalStatus {
            principal_id: PEOPLE[p].to_owned(),
            status: [
                PrincipalStatus::Active,
                PrincipalStatus::Suspended,
                PrincipalStatus::Invited,
                PrincipalStatus::Removed
            ][usize::from(s)],
            invitation_expires_at: None,
        }),
        Change::Join(p, true) => both!(AddTeamMember {
            team_id: "t1".to_owned(),
            member: SubjectRef::Principal(PEOPLE[p].to_owned()),
        }),
        Change::Join(p, false) => both!(RemoveTeamMember {
            team_id: "t1".to_owned(),
            member: SubjectRef::Principal(PEOPLE[p].to_owned()),
        }),
        Change::Private(x, on) => both!(SetResourcePrivate {
            resource: res(x),
            private: on,
        }),
        Change::Restricted(x, on) => both!(SetResourceRestricted {
            resource: res(x),
            restricted: on,
        }),
        Change::Links(x, l) => both!(super::links::SetResourceLinks {
            resource: res(x),
            links: l
                .map(|(to, on)| crate::model::Link {
                    resource: res(to),
                    action: "view".to_owned(),
                    on: vec![on.to_owned()],
                })
                .into_iter()
                .collect(),
        }),
        Change::Delete(x) => both!(DeleteResource { resource: res(x) }),
        Change::Move(x, p) => both!(MoveResource {
            resource: res(x),
            new_parent: (p < RESOURCES.len()).then(|| res(p)),
        }),
    }
}

/// Ok(true) when the change was accepted (and its access compared).
async fn preview_case(base: Spec, c: Change, actor: Option<usize>) -> Result<bool, TestCaseError> {
    let base = state(&base);
    let store = MemStore::new();
    let admin = Admin::new(store.clone(), Arc::new(|_, _, _| Box::pin(async {})));
    admin
        .write(&ctx(), ImportTenant { dump: base })
        .await
        .map_err(|e| TestCaseError::fail(format!("import: {e}")))?;
    let now = store.export(T).await.expect("export").expect("tenant");
    let ctx = WriteContext {
        actor: actor.map_or(Actor::SuperUser, |p| Actor::Principal(PEOPLE[p].to_owned())),
        ..ctx()
    };
    let before = allowed(&store, &now).await;
    let (preview, written) = preview_then_write(&admin, &ctx, &now, c).await;
    let after_dump = store.export(T).await.expect("export").expect("tenant");
    match (&preview.refused, &written) {
        (Some(p), Err(w)) => {
            prop_assert_eq!(
                p.to_string(),
                w.to_string(),
                "the preview's error is the write's"
            );
            prop_assert_eq!(after_dump.revision, now.revision);
            return Ok(false);
        }
        (None, Ok(())) => {}
        (p, w) => {
            return Err(TestCaseError::fail(format!(
                "the preview said {p:?}, the write did {w:?}"
            )))
        }
    }
    let after = allowed(&store, &after_dump).await;
    let acts: BTreeSet<&str> = ACTIONS.iter().copied().collect();
    let reported = |g: bool| -> BTreeSet<(String, String, String)> {
        preview
            .diff
            .changes
            .iter()
            .filter(|c| c.gained == g && c.resource != "tenant" && acts.contains(c.action.as_str()))
            .map(|c| (c.principal.clone(), c.action.clone(), c.resource.clone()))
            .collect()
    };
    let gained: BTreeSet<_> = after.difference(&before).cloned().collect();
    let lost: BTreeSet<_> = before.difference(&after).cloned().collect();
    prop_assert!(preview.diff.complete);
    if actor.is_none() {
        // The super user sees every difference.
        prop_assert_eq!(reported(true), gained, "gained");
        prop_assert_eq!(reported(false), lost, "lost");
    } else {
        // An actor sees differences it may view, and only real ones.
        prop_assert!(reported(true).is_subset(&gained), "gained");
        prop_assert!(reported(false).is_subset(&lost), "lost");
    }
    Ok(true)
}

#[test]
fn a_preview_reports_exactly_what_the_write_then_does() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (accepted, changed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config::with_cases(192));
    runner
        .run(
            &(
                spec(),
                change(),
                prop::option::weighted(0.3, 0usize..PEOPLE.len()),
            ),
            |(base, c, actor)| {
                if rt.block_on(preview_case(base, c, actor))? {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                changed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        )
        .unwrap();
    let n = accepted.load(Ordering::Relaxed);
    assert!(
        n >= 24,
        "only {n} of 192 random changes were accepted and compared"
    );
}

//! The storage conformance suite: one set of cases, generic over the storage
//! ports (`Store`, `RevisionLog`, `Catalog`, `WriteStore`/`WriteTx`), run
//! against every adapter: the in-memory `MemStore`, the SQL store on a fresh
//! SQLite file, and the SQL store on a fresh PostgreSQL database (when
//! `PORTCULLIS_TEST_DATABASE_URL` is set). Every case speaks only through the
//! ports, so an adapter passes exactly when it behaves like the others.

use portcullis::error::Error;
use portcullis::model::{
    self, Actor, Binding, Effect, Grant, Permission, Principal, PrincipalKind, PrincipalStatus,
    Resource, ResourceNode, ResourceRef, Role, Scope, SubjectRef, Team, Tenant,
};
use portcullis::store::{
    AuditFilter, Begun, Catalog, Descendant, Invalidation, Keyset, Record, RequestKey, RevisionLog,
    Store, TenantDump, WriteContext, WriteStore, WriteTx,
};
use std::time::Duration;

// ---- fixtures and helpers ------------------------------------------------
/// What every adapter implements.
pub trait Ports: Store + RevisionLog + Catalog + WriteStore {}
impl<S: Store + RevisionLog + Catalog + WriteStore> Ports for S {}

const T: &str = "acme";
const OTHER: &str = "globex";

fn ctx(tenant: &str) -> WriteContext {
    WriteContext {
        tenant_id: tenant.to_owned(),
        caller: "test-key".to_owned(),
        actor: Actor::SuperUser,
        request: None,
    }
}

fn ctx_with_request(tenant: &str, id: &str, fingerprint: &str) -> WriteContext {
    WriteContext {
        request: Some(RequestKey {
            id: id.to_owned(),
            fingerprint: fingerprint.to_owned(),
        }),
        ..ctx(tenant)
    }
}

fn record(action: &'static str, target: &str) -> Record {
    Record {
        action,
        target: target.to_owned(),
        ..Record::default()
    }
}

fn tenant(id: &str, retention_days: u32) -> Tenant {
    Tenant {
        id: id.to_owned(),
        display_name: format!("Tenant {id}"),
        single_owner_types: vec!["project".to_owned()],
        creator_owner_types: vec!["workflow".to_owned()],
        audit_retention_days: retention_days,
        created_at: 1_700_000_000_000,
        actions: Vec::new(),
        // Stored and read back like every setting (no action here is
        // asked about with it).
        implied_actions: vec![portcullis::model::ImpliedAction {
            action: "sync".to_owned(),
            implies: "archive".to_owned(),
        }],
    }
}

fn r(rtype: &str, id: &str) -> ResourceRef {
    ResourceRef {
        rtype: rtype.to_owned(),
        id: id.to_owned(),
    }
}

fn node(x: &ResourceRef, private: bool) -> ResourceNode {
    ResourceNode {
        links: Default::default(),
        resource: x.clone(),
        private,
        attributes: Default::default(),
        restricted: Default::default(),
    }
}

fn resource(x: &ResourceRef, parent: Option<&ResourceRef>, private: bool) -> Resource {
    Resource {
        links: Default::default(),
        resource: x.clone(),
        parent: parent.cloned(),
        private,
        created_at: 1_700_000_000_123,
        attributes: Default::default(),
        restricted: Default::default(),
    }
}

fn principal(id: &str, status: PrincipalStatus) -> Principal {
    Principal {
        id: id.to_owned(),
        kind: PrincipalKind::User,
        status,
        display_name: format!("User {id}"),
        created_at: 1_700_000_000_456,
        invitation_expires_at: Default::default(),
    }
}

fn team(id: &str) -> Team {
    Team {
        id: id.to_owned(),
        display_name: format!("Team {id}"),
    }
}

fn p(id: &str) -> SubjectRef {
    SubjectRef::Principal(id.to_owned())
}

fn tm(id: &str) -> SubjectRef {
    SubjectRef::Team(id.to_owned())
}

fn grant(id: &str, subject: SubjectRef, role: &str, scope: Scope) -> Grant {
    Grant {
        id: id.to_owned(),
        subject,
        role_id: role.to_owned(),
        scope,
        effect: Effect::Allow,
        expires_at: None,
        created_at: 1_700_000_000_789,
        condition: Default::default(),
    }
}

fn on(x: &ResourceRef) -> Scope {
    Scope::Resource(x.clone())
}

fn role(id: &str, permissions: &[&str]) -> Role {
    Role {
        id: id.to_owned(),
        display_name: format!("Role {id}"),
        permissions: permissions
            .iter()
            .map(|s| Permission::parse("role.permissions", s).expect("pattern"))
            .collect(),
        excluded_permissions: Vec::new(),
        inherits: Vec::new(),
        effective_at: vec!["*".to_owned()],
        locked: false,
        condition: Default::default(),
    }
}

fn all() -> Keyset<'static> {
    Keyset {
        after: None,
        limit: 1000,
    }
}

fn page(after: Option<&str>, limit: u64) -> Keyset<'_> {
    Keyset { after, limit }
}

/// The error of a result that must have failed.
fn err<T>(r: portcullis::error::Result<T>) -> Error {
    match r {
        Ok(_) => panic!("expected an error, got a success"),
        Err(e) => e,
    }
}

/// Opens a write that must open (not be replayed, not fail).
async fn open<S: Ports>(s: &S, c: &WriteContext, creating: bool) -> S::Tx {
    match s.begin(c, creating).await {
        Ok(Begun::Open(tx)) => tx,
        Ok(Begun::Replayed { revision, .. }) => {
            panic!("write of `{}` replayed revision {revision}", c.tenant_id)
        }
        Err(e) => panic!("begin on `{}`: {e}", c.tenant_id),
    }
}

/// Runs one write: `begin`, the primitives of `f`, `commit` with `rec`;
/// what `f` returned and the write's revision.
async fn write_with<S: Ports, O>(
    s: &S,
    c: &WriteContext,
    creating: bool,
    rec: Record,
    f: impl AsyncFnOnce(&mut S::Tx) -> O,
) -> (O, i64) {
    let mut tx = open(s, c, creating).await;
    let revision = tx.revision();
    let out = f(&mut tx).await;
    tx.commit(rec).await.expect("commit");
    (out, revision)
}

/// Runs one write on `tenant` as the super user, recorded as `test.write`.
async fn write<S: Ports, O>(s: &S, tenant: &str, f: impl AsyncFnOnce(&mut S::Tx) -> O) -> (O, i64) {
    write_with(s, &ctx(tenant), false, record("test.write", "test:x"), f).await
}

/// Creates a tenant (revision 1) with an audit retention of 30 days.
async fn create_tenant<S: Ports>(s: &S, id: &str) {
    create_tenant_with(s, tenant(id, 30)).await;
}

async fn create_tenant_with<S: Ports>(s: &S, t: Tenant) {
    let rec = Record {
        invalidation: Invalidation::everything(),
        ..record("tenant.create", &format!("tenant:{}", t.id))
    };
    let (_, rev) = write_with(s, &ctx(&t.id), true, rec, async |tx: &mut S::Tx| {
        tx.insert_tenant(&t).await.expect("insert tenant")
    })
    .await;
    assert_eq!(rev, 1, "a new tenant's first write is its revision 1");
}

/// The tree most cases use, in tenant `t`:
/// `folder:f1` / `project:p1` / `workflow:w1`, `folder:f1` / `workflow:w2`,
/// and `folder:f2` at the top.
async fn seed_tree<S: Ports>(s: &S, t: &str) {
    let (f1, p1, w1, w2, f2) = tree();
    write(s, t, async |tx: &mut S::Tx| {
        tx.insert_resource(&resource(&f1, None, false))
            .await
            .expect("f1");
        tx.insert_resource(&resource(&p1, Some(&f1), false))
            .await
            .expect("p1");
        tx.insert_resource(&resource(&w1, Some(&p1), false))
            .await
            .expect("w1");
        tx.insert_resource(&resource(&w2, Some(&f1), false))
            .await
            .expect("w2");
        tx.insert_resource(&resource(&f2, None, false))
            .await
            .expect("f2");
    })
    .await;
}

fn tree() -> (
    ResourceRef,
    ResourceRef,
    ResourceRef,
    ResourceRef,
    ResourceRef,
) {
    (
        r("folder", "f1"),
        r("project", "p1"),
        r("workflow", "w1"),
        r("workflow", "w2"),
        r("folder", "f2"),
    )
}

fn ids_of(holders: &[(Principal, Vec<Binding>)]) -> Vec<&str> {
    holders.iter().map(|(p, _)| p.id.as_str()).collect()
}

/// `(grant id, via_teams)` of bindings, sorted by grant id.
fn binding_keys(bindings: &[Binding]) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = bindings
        .iter()
        .map(|b| (b.grant.id.clone(), b.via_teams.clone()))
        .collect();
    v.sort();
    v
}

fn chain(teams: &[&str]) -> Vec<String> {
    teams.iter().map(|s| (*s).to_owned()).collect()
}

fn grant_ids(grants: &[Grant]) -> Vec<&str> {
    grants.iter().map(|g| g.id.as_str()).collect()
}

fn sorted_grant_ids(grants: &[Grant]) -> Vec<String> {
    let mut v: Vec<String> = grants.iter().map(|g| g.id.clone()).collect();
    v.sort();
    v
}

// ---- cases -----------------------------------------------------------------

async fn a_write_on_a_missing_tenant_is_not_found<S: Ports>(s: &S) {
    let e = err(s.begin(&ctx("nowhere"), false).await);
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert_eq!(s.tenant_revision("nowhere", None).await.expect("rev"), None);
    assert_eq!(
        s.tenant_revision("nowhere", Some(3)).await.expect("rev"),
        None
    );
    assert_eq!(s.tenant("nowhere").await.expect("tenant"), None);
    assert!(s.tenant_revisions().await.expect("revisions").is_empty());
}

async fn a_new_tenant_is_revision_1_and_each_write_bumps_it<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), Some(1));
    assert_eq!(s.tenant(T).await.expect("tenant"), Some(tenant(T, 30)));

    let mut tx = open(s, &ctx(T), false).await;
    assert_eq!(tx.revision(), 2);
    assert_eq!(tx.tenant().await.expect("tenant"), Some(tenant(T, 30)));
    let before = model::now_millis();
    assert!(
        (tx.now() - before).abs() < 60_000,
        "now is the write's time"
    );
    let mut changed = tenant(T, 7);
    changed.display_name = "Renamed".to_owned();
    changed.actions = vec!["archive".to_owned(), "sync".to_owned()];
    tx.update_tenant(&changed).await.expect("update");
    assert_eq!(tx.tenant().await.expect("tenant"), Some(changed.clone()));
    tx.commit(record("tenant.update", "tenant:acme"))
        .await
        .expect("commit");
    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), Some(2));
    assert_eq!(s.tenant(T).await.expect("tenant"), Some(changed));

    // Creating it again is refused (by `begin`, or at the latest by
    // `insert_tenant`) and changes nothing.
    match s.begin(&ctx(T), true).await {
        Err(_) => {}
        Ok(Begun::Replayed { .. }) => panic!("a new creation was replayed"),
        Ok(Begun::Open(mut tx)) => {
            let again = tx.insert_tenant(&tenant(T, 30)).await;
            assert!(again.is_err(), "an existing tenant was created again");
        }
    }
    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), Some(2));

    // Tenants are listed in id order, in keyset pages.
    create_tenant(s, "zeta").await;
    create_tenant(s, "beta").await;
    let ids = |v: Vec<Tenant>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_tenants(all()).await.expect("list")),
        ["acme", "beta", "zeta"]
    );
    assert_eq!(
        ids(s.list_tenants(page(None, 2)).await.expect("list")),
        ["acme", "beta"]
    );
    assert_eq!(
        ids(s.list_tenants(page(Some("beta"), 2)).await.expect("list")),
        ["zeta"]
    );
    let mut revs = s.tenant_revisions().await.expect("revisions");
    revs.sort();
    assert_eq!(
        revs,
        [
            ("acme".to_owned(), 2),
            ("beta".to_owned(), 1),
            ("zeta".to_owned(), 1)
        ]
    );
}

async fn a_dropped_write_leaves_nothing_behind<S: Ports>(s: &S) {
    // A creation dropped before its commit leaves no tenant.
    {
        let mut tx = open(s, &ctx(T), true).await;
        tx.insert_tenant(&tenant(T, 30)).await.expect("insert");
        assert_eq!(tx.tenant().await.expect("tenant"), Some(tenant(T, 30)));
    }
    assert_eq!(s.tenant(T).await.expect("tenant"), None);
    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), None);

    create_tenant(s, T).await;
    let (f1, p1, ..) = tree();
    {
        let mut tx = open(s, &ctx(T), false).await;
        assert_eq!(tx.revision(), 2);
        tx.insert_principal(&principal("alice", PrincipalStatus::Active))
            .await
            .expect("principal");
        tx.insert_team(&team("eng")).await.expect("team");
        tx.add_member("eng", &p("alice")).await.expect("member");
        tx.insert_resource(&resource(&f1, None, false))
            .await
            .expect("f1");
        tx.insert_resource(&resource(&p1, Some(&f1), false))
            .await
            .expect("p1");
        tx.insert_role(&role("runner", &["workflow.execute"]))
            .await
            .expect("role");
        tx.insert_grant(&grant("g1", tm("eng"), "runner", on(&p1)))
            .await
            .expect("grant");
        // The write sees its own changes ...
        assert!(tx.principal("alice").await.expect("read").is_some());
        assert_eq!(
            tx.ancestry(&p1).await.expect("read"),
            Some(vec![node(&p1, false), node(&f1, false)])
        );
        assert_eq!(tx.bindings("alice").await.expect("read").len(), 1);
        // ... and nobody else does.
        assert_eq!(s.principal(T, "alice").await.expect("read"), None);
        // Dropped without a commit.
    }
    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), Some(1));
    assert_eq!(s.principal(T, "alice").await.expect("read"), None);
    assert!(s.list_teams(T, all()).await.expect("read").is_empty());
    assert_eq!(s.resource(T, &f1).await.expect("read"), None);
    assert_eq!(s.ancestry(T, &p1).await.expect("read"), None);
    assert!(s.custom_roles(T).await.expect("read").is_empty());
    assert!(s
        .list_grants(T, None, None, all())
        .await
        .expect("read")
        .is_empty());
    assert_eq!(s.list_audit(&filter(T), 100).await.expect("audit").len(), 1);
    assert_eq!(s.changes(T, 0, 100).await.expect("changes").len(), 1);

    // The next write takes the revision the dropped one would have had.
    let (_, rev) = write(s, T, async |tx: &mut S::Tx| {
        assert!(tx.principal("alice").await.expect("read").is_none());
    })
    .await;
    assert_eq!(rev, 2);
    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), Some(2));
}

async fn a_second_writer_of_a_tenant_waits_for_the_first<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    let mut first = open(s, &ctx(T), false).await;
    first
        .insert_principal(&principal("alice", PrincipalStatus::Active))
        .await
        .expect("principal");
    let second = tokio::time::timeout(Duration::from_millis(200), s.begin(&ctx(T), false)).await;
    assert!(
        second.is_err(),
        "a second writer opened while the first was open"
    );
    first
        .commit(record("test.write", "test:x"))
        .await
        .expect("commit");
    let mut tx = open(s, &ctx(T), false).await;
    assert_eq!(tx.revision(), 3);
    assert!(tx.principal("alice").await.expect("read").is_some());
}

async fn a_retried_request_id_is_replayed_and_a_reused_one_refused<S: Ports>(s: &S) {
    // A retried creation replays too.
    let create = ctx_with_request(T, "req-create", "fp-create");
    let rec = Record {
        outcome: "{\"tenant\":\"acme\"}".to_owned(),
        ..record("tenant.create", "tenant:acme")
    };
    write_with(s, &create, true, rec, async |tx: &mut S::Tx| {
        tx.insert_tenant(&tenant(T, 30)).await.expect("insert")
    })
    .await;
    match s.begin(&create, true).await.expect("replay") {
        Begun::Replayed { outcome, revision } => {
            assert_eq!(outcome, "{\"tenant\":\"acme\"}");
            assert_eq!(revision, 1);
        }
        Begun::Open(_) => panic!("a retried creation was applied twice"),
    }

    let c = ctx_with_request(T, "req-1", "fp-1");
    let rec = Record {
        outcome: "{\"count\":1}".to_owned(),
        ..record("principal.create", "principal:alice")
    };
    let (_, rev) = write_with(s, &c, false, rec, async |tx: &mut S::Tx| {
        tx.insert_principal(&principal("alice", PrincipalStatus::Active))
            .await
            .expect("principal")
    })
    .await;
    assert_eq!(rev, 2);
    // Another write in between.
    write(s, T, async |_tx: &mut S::Tx| {}).await;

    for _ in 0..2 {
        match s.begin(&c, false).await.expect("replay") {
            Begun::Replayed { outcome, revision } => {
                assert_eq!(outcome, "{\"count\":1}");
                assert_eq!(revision, 2);
            }
            Begun::Open(_) => panic!("a retried request id was applied twice"),
        }
    }
    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), Some(3));
    assert_eq!(s.list_audit(&filter(T), 100).await.expect("audit").len(), 3);

    let reused = ctx_with_request(T, "req-1", "fp-other");
    match err(s.begin(&reused, false).await) {
        Error::FailedPrecondition { rule, .. } => assert_eq!(rule, "request_id_reused"),
        e => panic!("expected request_id_reused, got {e}"),
    }
    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), Some(3));

    // Request ids are per tenant.
    create_tenant(s, OTHER).await;
    let elsewhere = ctx_with_request(OTHER, "req-1", "fp-other");
    let (_, rev) = write_with(
        s,
        &elsewhere,
        false,
        record("test.write", "x"),
        async |_tx: &mut S::Tx| {},
    )
    .await;
    assert_eq!(rev, 2);
}

fn filter(tenant: &str) -> AuditFilter {
    AuditFilter {
        tenant: tenant.to_owned(),
        ..AuditFilter::default()
    }
}

async fn every_write_is_audited_and_list_audit_filters_newest_first<S: Ports>(s: &S) {
    let start = model::now_millis();
    create_tenant(s, T).await;
    let alice = WriteContext {
        caller: "admin-key".to_owned(),
        actor: Actor::Principal("alice".to_owned()),
        ..ctx(T)
    };
    let writes: [(&WriteContext, &'static str, &str); 4] = [
        (&alice, "grant.create", "grant:g_1"),
        (&alice, "grant.create", "grant:gx1"),
        (&ctx(T), "grant.delete", "grant:g%1"),
        (&alice, "team.create", "team:eng"),
    ];
    for (c, action, target) in writes {
        let rec = Record {
            action,
            target: target.to_owned(),
            before: format!("{{\"before\":\"{target}\"}}"),
            after: format!("{{\"after\":\"{target}\"}}"),
            ..Record::default()
        };
        write_with(s, c, false, rec, async |_tx: &mut S::Tx| {}).await;
    }
    let end = model::now_millis();

    let events = s.list_audit(&filter(T), 100).await.expect("audit");
    let revs: Vec<i64> = events.iter().map(|e| e.revision).collect();
    assert_eq!(revs, [5, 4, 3, 2, 1], "newest first");
    for pair in events.windows(2) {
        assert!(pair[0].id > pair[1].id, "event ids grow with revisions");
    }
    for e in &events {
        assert!(e.at >= start && e.at <= end, "at is the write's time");
    }
    let create = &events[4];
    assert_eq!(
        (
            create.caller.as_str(),
            create.actor.as_str(),
            create.action.as_str(),
            create.target.as_str()
        ),
        ("test-key", "super_user", "tenant.create", "tenant:acme")
    );
    let e = &events[3];
    assert_eq!(
        (
            e.caller.as_str(),
            e.actor.as_str(),
            e.action.as_str(),
            e.target.as_str()
        ),
        ("admin-key", "alice", "grant.create", "grant:g_1")
    );
    assert_eq!(e.before_json, "{\"before\":\"grant:g_1\"}");
    assert_eq!(e.after_json, "{\"after\":\"grant:g_1\"}");

    let query = async |f: AuditFilter, limit: u64| -> Vec<i64> {
        s.list_audit(&f, limit)
            .await
            .expect("audit")
            .into_iter()
            .map(|e| e.revision)
            .collect()
    };
    let f = |edit: &dyn Fn(&mut AuditFilter)| {
        let mut f = filter(T);
        edit(&mut f);
        f
    };
    assert_eq!(
        query(f(&|f| f.actor = Some("alice".into())), 100).await,
        [5, 3, 2]
    );
    assert_eq!(
        query(f(&|f| f.actor = Some("super_user".into())), 100).await,
        [4, 1]
    );
    assert_eq!(
        query(f(&|f| f.action = Some("grant.create".into())), 100).await,
        [3, 2]
    );
    assert_eq!(
        query(f(&|f| f.target_prefix = Some("grant:".into())), 100).await,
        [4, 3, 2]
    );
    // The prefix is literal: `_` and `%` are no wildcards.
    assert_eq!(
        query(f(&|f| f.target_prefix = Some("grant:g_".into())), 100).await,
        [2]
    );
    assert_eq!(
        query(f(&|f| f.target_prefix = Some("grant:g%".into())), 100).await,
        [4]
    );
    assert_eq!(
        query(f(&|f| f.target_prefix = Some("nothing".into())), 100).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        query(f(&|f| f.since = Some(start)), 100).await,
        [5, 4, 3, 2, 1]
    );
    assert_eq!(
        query(f(&|f| f.since = Some(end + 1)), 100).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        query(f(&|f| f.until = Some(start)), 100).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        query(f(&|f| f.until = Some(end + 1)), 100).await,
        [5, 4, 3, 2, 1]
    );
    assert_eq!(
        query(f(&|f| f.before_revision = Some(4)), 100).await,
        [3, 2, 1]
    );
    assert_eq!(query(filter(T), 2).await, [5, 4]);
    assert_eq!(query(f(&|f| f.before_revision = Some(4)), 2).await, [3, 2]);
    assert_eq!(
        query(
            f(&|f| {
                f.actor = Some("alice".into());
                f.action = Some("grant.create".into());
                f.before_revision = Some(3);
            }),
            100
        )
        .await,
        [2]
    );
    assert!(s
        .list_audit(&filter(OTHER), 100)
        .await
        .expect("audit")
        .is_empty());
}

async fn audit_events_past_retention_are_pruned<S: Ports>(s: &S) {
    // With a retention of 0 days, a commit prunes every earlier event.
    create_tenant_with(s, tenant(T, 0)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    write(s, T, async |_tx: &mut S::Tx| {}).await;
    let revs: Vec<i64> = s
        .list_audit(&filter(T), 100)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.revision)
        .collect();
    assert_eq!(revs, [2]);
    // The revision log is not the audit log: it keeps both.
    assert_eq!(s.changes(T, 0, 2).await.expect("changes").len(), 2);
}

async fn the_revision_log_holds_each_write_invalidation<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    create_tenant(s, OTHER).await;
    let invalidations = [
        Invalidation {
            principals: vec!["alice".to_owned(), "bob".to_owned()],
            ..Invalidation::default()
        },
        Invalidation {
            roles: true,
            ..Invalidation::default()
        },
        Invalidation {
            subtrees: vec![r("folder", "f1")],
            resources: vec![r("workflow", "w1")],
            ..Invalidation::default()
        },
    ];
    for inv in &invalidations {
        let rec = Record {
            invalidation: inv.clone(),
            ..record("test.write", "x")
        };
        write_with(s, &ctx(T), false, rec, async |_tx: &mut S::Tx| {}).await;
    }
    let changes = s.changes(T, 0, 4).await.expect("changes");
    let revs: Vec<i64> = changes.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, [1, 2, 3, 4]);
    // The tenant's creation: everything, and the tenant row itself.
    assert_eq!(
        changes[0].1,
        Invalidation {
            deltas: vec![portcullis::store::Delta::Tenant {
                tenant: tenant(T, 30)
            }],
            ..Invalidation::everything()
        }
    );
    assert_eq!(changes[1].1, invalidations[0]);
    assert_eq!(changes[2].1, invalidations[1]);
    assert_eq!(changes[3].1, invalidations[2]);
    // `(after, upto]`.
    let window: Vec<i64> = s
        .changes(T, 1, 3)
        .await
        .expect("changes")
        .iter()
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(window, [2, 3]);
    assert!(s.changes(T, 4, 10).await.expect("changes").is_empty());
    assert!(s.changes(T, 3, 3).await.expect("changes").is_empty());
    assert_eq!(s.changes(OTHER, 0, 10).await.expect("changes").len(), 1);
    assert!(s
        .changes("nowhere", 0, 10)
        .await
        .expect("changes")
        .is_empty());
    let mut revs = s.tenant_revisions().await.expect("revisions");
    revs.sort();
    assert_eq!(revs, [(T.to_owned(), 4), (OTHER.to_owned(), 1)]);
}

async fn resources_form_a_tree_with_ancestry_children_and_privacy<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    let (f1, p1, w1, w2, f2) = tree();

    assert_eq!(
        s.ancestry(T, &w1).await.expect("ancestry").as_deref(),
        Some(&vec![node(&w1, false), node(&p1, false), node(&f1, false)])
    );
    assert_eq!(
        s.ancestry(T, &f2).await.expect("ancestry").as_deref(),
        Some(&vec![node(&f2, false)])
    );
    assert_eq!(
        s.ancestry(T, &r("workflow", "nope"))
            .await
            .expect("ancestry"),
        None
    );
    assert_eq!(
        s.resource(T, &w1).await.expect("resource"),
        Some(resource(&w1, Some(&p1), false))
    );
    assert_eq!(
        s.resource(T, &f1).await.expect("resource"),
        Some(resource(&f1, None, false))
    );
    assert_eq!(
        s.resource(T, &r("workflow", "nope"))
            .await
            .expect("resource"),
        None
    );

    // Children in (type, id) order, keyed `type:id`.
    let refs = |v: Vec<Resource>| {
        v.into_iter()
            .map(|x| x.resource.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        refs(s.list_children(T, None, all()).await.expect("top")),
        ["folder:f1", "folder:f2"]
    );
    assert_eq!(
        refs(s.list_children(T, None, page(None, 1)).await.expect("top")),
        ["folder:f1"]
    );
    assert_eq!(
        refs(
            s.list_children(T, None, page(Some("folder:f1"), 1))
                .await
                .expect("top")
        ),
        ["folder:f2"]
    );
    assert!(s
        .list_children(T, None, page(Some("folder:f2"), 5))
        .await
        .expect("top")
        .is_empty());
    let children = s
        .list_children(T, Some(&f1), all())
        .await
        .expect("children");
    assert_eq!(refs(children.clone()), ["project:p1", "workflow:w2"]);
    assert_eq!(children[0], resource(&p1, Some(&f1), false));
    assert_eq!(
        refs(
            s.list_children(T, Some(&f1), page(Some("project:p1"), 10))
                .await
                .expect("children")
        ),
        ["workflow:w2"]
    );
    assert_eq!(
        refs(
            s.list_children(T, Some(&f1), page(Some("project:zzz"), 10))
                .await
                .expect("children")
        ),
        ["workflow:w2"]
    );
    assert!(s
        .list_children(T, Some(&w1), all())
        .await
        .expect("leaf")
        .is_empty());
    let e = err(s.list_children(T, Some(&r("folder", "nope")), all()).await);
    assert!(matches!(e, Error::NotFound { .. }), "{e}");

    // Privacy shows in every ancestry through the resource.
    write(s, T, async |tx: &mut S::Tx| {
        tx.set_private(&p1, true).await.expect("private");
        assert_eq!(
            tx.ancestry(&w1).await.expect("ancestry"),
            Some(vec![node(&w1, false), node(&p1, true), node(&f1, false)])
        );
        assert_eq!(
            tx.resource(&p1).await.expect("resource").map(|x| x.private),
            Some(true)
        );
        let mut of_type = tx.resources_of_type("workflow").await.expect("type");
        of_type.sort();
        assert_eq!(of_type, [w1.clone(), w2.clone()]);
        let mut of_type = tx.resources_of_type("folder").await.expect("type");
        of_type.sort();
        assert_eq!(of_type, [f1.clone(), f2.clone()]);
        assert!(tx
            .resources_of_type("dashboard")
            .await
            .expect("type")
            .is_empty());
        assert_eq!(
            tx.resource_types().await.expect("types"),
            ["folder", "project", "workflow"]
        );
    })
    .await;
    assert_eq!(
        s.ancestry(T, &w1).await.expect("ancestry").as_deref(),
        Some(&vec![node(&w1, false), node(&p1, true), node(&f1, false)])
    );
    assert_eq!(
        s.resource(T, &p1)
            .await
            .expect("resource")
            .map(|x| x.private),
        Some(true)
    );
    write(s, T, async |tx: &mut S::Tx| {
        tx.set_private(&p1, false).await.expect("public")
    })
    .await;
    assert_eq!(
        s.resource(T, &p1)
            .await
            .expect("resource")
            .map(|x| x.private),
        Some(false)
    );
}

async fn moving_a_subtree_changes_the_ancestry_below_it<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    let (f1, p1, w1, w2, f2) = tree();
    write(s, T, async |tx: &mut S::Tx| {
        tx.set_private(&f2, true).await.expect("private");
        tx.move_subtree(&p1, Some(&f2)).await.expect("move");
        assert_eq!(
            tx.ancestry(&w1).await.expect("ancestry"),
            Some(vec![node(&w1, false), node(&p1, false), node(&f2, true)])
        );
    })
    .await;
    assert_eq!(
        s.ancestry(T, &w1).await.expect("ancestry").as_deref(),
        Some(&vec![node(&w1, false), node(&p1, false), node(&f2, true)])
    );
    assert_eq!(
        s.resource(T, &p1)
            .await
            .expect("resource")
            .and_then(|x| x.parent),
        Some(f2.clone())
    );
    let kids = s
        .list_children(T, Some(&f1), all())
        .await
        .expect("children");
    assert_eq!(kids.iter().map(|x| &x.resource).collect::<Vec<_>>(), [&w2]);
    let kids = s
        .list_children(T, Some(&f2), all())
        .await
        .expect("children");
    assert_eq!(kids.iter().map(|x| &x.resource).collect::<Vec<_>>(), [&p1]);

    // To the top.
    write(s, T, async |tx: &mut S::Tx| {
        tx.move_subtree(&p1, None).await.expect("move")
    })
    .await;
    assert_eq!(
        s.ancestry(T, &w1).await.expect("ancestry").as_deref(),
        Some(&vec![node(&w1, false), node(&p1, false)])
    );
    assert_eq!(
        s.resource(T, &p1)
            .await
            .expect("resource")
            .and_then(|x| x.parent),
        None
    );
    let top = s.list_children(T, None, all()).await.expect("top");
    assert_eq!(
        top.iter()
            .map(|x| x.resource.to_string())
            .collect::<Vec<_>>(),
        ["folder:f1", "folder:f2", "project:p1"]
    );

    // And back under a deeper parent: the whole subtree follows.
    write(s, T, async |tx: &mut S::Tx| {
        tx.move_subtree(&p1, Some(&w2)).await.expect("move")
    })
    .await;
    assert_eq!(
        s.ancestry(T, &w1).await.expect("ancestry").as_deref(),
        Some(&vec![
            node(&w1, false),
            node(&p1, false),
            node(&w2, false),
            node(&f1, false)
        ])
    );
}

async fn resource_rows_are_the_whole_tree_in_one_read<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    create_tenant(s, "other").await;
    seed_tree(s, T).await;
    seed_tree(s, "other").await;
    let (f1, p1, w1, w2, f2) = tree();
    write(s, T, async |tx: &mut S::Tx| {
        tx.set_private(&f2, true).await.expect("private");
        tx.move_subtree(&p1, Some(&f2)).await.expect("move");
    })
    .await;
    let mut rows = s.resource_rows(T).await.expect("rows");
    rows.sort();
    assert_eq!(
        rows,
        vec![
            (f1.clone(), None, false),
            (f2.clone(), None, true),
            (p1.clone(), Some(f2.clone()), false),
            (w1.clone(), Some(p1.clone()), false),
            (w2.clone(), Some(f1.clone()), false),
        ]
    );
    // Rows build the index's tree, whose ancestries are the store's.
    let tree = portcullis::index::tree::Tree::from_rows(rows).expect("a tree");
    for x in [&f1, &p1, &w1, &w2, &f2] {
        assert_eq!(
            tree.ancestry(x),
            s.ancestry(T, x)
                .await
                .expect("ancestry")
                .map(|a| a.to_vec()),
            "{x}"
        );
    }
    assert!(s.resource_rows("nobody").await.expect("rows").is_empty());
}

async fn the_revision_log_holds_each_write_row_changes<S: Ports>(s: &S) {
    use portcullis::index::tree::{Step, Tree};
    use portcullis::store::Delta;
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    let (f1, p1, w1, w2, f2) = tree();
    let (_, rev) = write(s, T, async |tx: &mut S::Tx| {
        tx.set_private(&f2, true).await.expect("private");
        tx.move_subtree(&p1, Some(&f2)).await.expect("move");
        tx.insert_resource(&resource(&r("workflow", "w3"), Some(&w1), false))
            .await
            .expect("w3");
        tx.insert_principal(&principal("ann", PrincipalStatus::Active))
            .await
            .expect("ann");
        tx.insert_grant(&grant("g1", p("ann"), "viewer", on(&w1)))
            .await
            .expect("grant");
        assert_eq!(tx.deltas().len(), 5);
    })
    .await;
    write(s, T, async |tx: &mut S::Tx| {
        tx.delete_subtree(&w2).await.expect("delete");
        tx.set_principal_status("ann", PrincipalStatus::Suspended, None)
            .await
            .expect("status");
    })
    .await;
    let log = s.changes(T, 0, rev + 1).await.expect("log");
    assert_eq!(log.len() as i64, rev + 1, "one row per revision");
    let second = &log[rev as usize - 1].1.deltas;
    assert_eq!(
        second[..2],
        [
            Delta::Private {
                resource: f2.clone(),
                private: true
            },
            Delta::Moved {
                resource: p1.clone(),
                parent: Some(f2.clone())
            },
        ]
    );
    assert!(matches!(&second[4], Delta::Grant { grant } if grant.id == "g1"));
    assert_eq!(
        log.last().unwrap().1.deltas,
        [
            Delta::SubtreeDeleted {
                resource: w2.clone()
            },
            Delta::Status {
                principal_id: "ann".into(),
                status: PrincipalStatus::Suspended,
                invitation_expires_at: Default::default(),
            },
        ]
    );
    // Replaying the log from the start rebuilds the store's tree.
    let mut replayed = Tree::new();
    for (_, inv) in &log {
        for d in &inv.deltas {
            assert!(replayed.apply(d), "{d:?} fits");
        }
    }
    let stored = Tree::from_rows(s.resource_rows(T).await.expect("rows")).expect("tree");
    let walk = |t: &Tree| {
        let mut out = Vec::new();
        t.walk(None, |path| {
            out.push(path.iter().map(|n| (*n).clone()).collect::<Vec<_>>());
            Step::Descend
        });
        out
    };
    assert_eq!(walk(&replayed), walk(&stored));
    assert!(!replayed.contains(&w2) && replayed.contains(&f1));
}

async fn replaying_the_revision_log_rebuilds_the_tenant_index<S: Ports>(s: &S) {
    use portcullis::index::tenant::{Stale, TenantIndex};
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    seed_teams(s).await;
    let (f1, p1, w1, w2, f2) = tree();
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_role(&role("runner", &["workflow.execute"]))
            .await
            .expect("role");
        tx.insert_grant(&grant("g1", p("alice"), "viewer", on(&f1)))
            .await
            .expect("g1");
        tx.insert_grant(&grant("g2", tm("all"), "runner", on(&w1)))
            .await
            .expect("g2");
        tx.insert_grant(&grant("g3", tm("eng"), "editor", on(&w2)))
            .await
            .expect("g3");
        tx.insert_grant(&grant("g4", tm("solo"), "viewer", Scope::Tenant))
            .await
            .expect("g4");
        tx.insert_grant(&grant("g5", p("bob"), "runner", on(&p1)))
            .await
            .expect("g5");
    })
    .await;
    // Cascades: a subtree with a grant on it, a team with members and a
    // grant, every grant of a role; a move and a status change.
    write(s, T, async |tx: &mut S::Tx| {
        tx.move_subtree(&p1, Some(&f2)).await.expect("move");
        tx.delete_subtree(&w2).await.expect("delete");
        tx.delete_team("solo").await.expect("team");
        tx.delete_grants_of_role("runner").await.expect("grants");
        tx.set_principal_status("carol", PrincipalStatus::Suspended, None)
            .await
            .expect("status");
    })
    .await;
    let rev = s
        .tenant_revision(T, None)
        .await
        .expect("rev")
        .expect("tenant");
    let log = s.changes(T, 0, rev).await.expect("log");
    let mut index = TenantIndex::empty();
    index.advance(&log).expect("the log applies");
    assert_eq!(index.revision(), rev);
    let ids = |bs: Vec<Binding>| {
        let mut v: Vec<(String, usize)> = bs
            .into_iter()
            .map(|b| (b.grant.id.clone(), b.via_teams.len()))
            .collect();
        v.sort();
        v
    };
    for who in ["root", "alice", "bob", "carol", "nobody"] {
        assert_eq!(
            ids(index.bindings(who)),
            ids(s.bindings(T, who).await.expect("bindings")),
            "{who}"
        );
        assert_eq!(
            index.principal(who),
            s.principal(T, who).await.expect("principal").as_ref(),
            "{who}"
        );
    }
    let mut all = s.list_grants(T, None, None, all()).await.expect("grants");
    all.sort_by(|a, b| a.id.cmp(&b.id));
    for scope in [Scope::Tenant, on(&f1), on(&p1), on(&w1), on(&f2)] {
        let mut mine: Vec<&str> = index.grants_on(&scope).map(|g| g.id.as_str()).collect();
        mine.sort();
        let theirs: Vec<&str> = all
            .iter()
            .filter(|g| g.scope == scope)
            .map(|g| g.id.as_str())
            .collect();
        assert_eq!(mine, theirs, "{scope:?}");
    }
    assert!(index.role_table().get("runner").is_some());
    assert_eq!(
        index.tree().ancestry(&w1),
        s.ancestry(T, &w1).await.expect("a").map(|a| a.to_vec())
    );
    // Built from one snapshot instead, the index holds the same: bindings
    // in the same order (the store's), principals, grants, roles, ancestry.
    let rows = s.snapshot(T).await.expect("snapshot").expect("tenant");
    assert_eq!(rows.revision, rev);
    let built = TenantIndex::from_rows(rows).expect("a tree");
    assert_eq!(built.revision(), rev);
    assert_eq!(built.resources(), index.resources());
    for who in ["root", "alice", "bob", "carol", "nobody"] {
        assert_eq!(built.bindings(who), index.bindings(who), "{who}");
        assert_eq!(
            built.bindings(who),
            s.bindings(T, who).await.expect("bindings"),
            "{who}: the store's order"
        );
        assert_eq!(built.principal(who), index.principal(who), "{who}");
    }
    for scope in [Scope::Tenant, on(&f1), on(&p1), on(&w1), on(&f2)] {
        let ids = |i: &TenantIndex| {
            let mut v: Vec<String> = i.grants_on(&scope).map(|g| g.id.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&built), ids(&index), "{scope:?}");
    }
    assert_eq!(
        built.holders([&Scope::Tenant, &on(&w1)]),
        index.holders([&Scope::Tenant, &on(&w1)])
    );
    assert_eq!(built.tree().ancestry(&p1), index.tree().ancestry(&p1));
    assert_eq!(
        built.role_table().get("runner").is_some(),
        index.role_table().get("runner").is_some()
    );
    assert!(s.snapshot("no-such-tenant").await.expect("read").is_none());
    // A log with a hole is refused: the index must be rebuilt.
    let mut partial = TenantIndex::empty();
    let holed: Vec<_> = log.iter().filter(|(r, _)| *r != 2).cloned().collect();
    assert_eq!(partial.advance(&holed), Err(Stale::Gap { at: 1, next: 3 }));
}

async fn subtree_height_and_descendants_see_the_whole_subtree<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    let (f1, p1, w1, w2, f2) = tree();
    write(s, T, async |tx: &mut S::Tx| {
        tx.set_private(&p1, true).await.expect("private");
        assert_eq!(tx.subtree_height(&f1).await.expect("height"), 3);
        assert_eq!(tx.subtree_height(&p1).await.expect("height"), 2);
        assert_eq!(tx.subtree_height(&w1).await.expect("height"), 1);
        assert_eq!(tx.subtree_height(&f2).await.expect("height"), 1);
        let mut d = tx.descendants(&f1).await.expect("descendants");
        d.sort_by(|a, b| a.resource.cmp(&b.resource));
        assert_eq!(
            d,
            [
                Descendant {
                    linked: Default::default(),
                    resource: p1.clone(),
                    depth: 1,
                    private: true
                },
                Descendant {
                    linked: Default::default(),
                    resource: w1.clone(),
                    depth: 2,
                    private: false
                },
                Descendant {
                    linked: Default::default(),
                    resource: w2.clone(),
                    depth: 1,
                    private: false
                },
            ]
        );
        assert_eq!(
            tx.descendants(&p1).await.expect("descendants"),
            [Descendant {
                linked: false,
                resource: w1.clone(),
                depth: 1,
                private: false
            }]
        );
        assert!(tx.descendants(&w1).await.expect("descendants").is_empty());
        // Its own new resources count.
        let deep = r("step", "s1");
        tx.insert_resource(&resource(&deep, Some(&w1), false))
            .await
            .expect("s1");
        assert_eq!(tx.subtree_height(&f1).await.expect("height"), 4);
        assert!(tx
            .descendants(&f1)
            .await
            .expect("descendants")
            .iter()
            .any(|x| x.resource == deep && x.depth == 3));
    })
    .await;
}

async fn deleting_a_subtree_deletes_its_resources_and_their_grants<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    let (f1, p1, w1, w2, f2) = tree();
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_principal(&principal("alice", PrincipalStatus::Active))
            .await
            .expect("alice");
        for (id, scope) in [
            ("g-f1", on(&f1)),
            ("g-p1", on(&p1)),
            ("g-w1", on(&w1)),
            ("g-w2", on(&w2)),
            ("g-f2", on(&f2)),
            ("g-tenant", Scope::Tenant),
        ] {
            tx.insert_grant(&grant(id, p("alice"), "viewer", scope))
                .await
                .expect("grant");
        }
    })
    .await;
    let (deleted, _) = write(s, T, async |tx: &mut S::Tx| {
        let n = tx.delete_subtree(&p1).await.expect("delete");
        assert_eq!(tx.resource(&w1).await.expect("read"), None);
        assert_eq!(tx.grant("g-w1").await.expect("read"), None);
        n
    })
    .await;
    assert_eq!(deleted, 2);
    assert_eq!(s.resource(T, &p1).await.expect("read"), None);
    assert_eq!(s.resource(T, &w1).await.expect("read"), None);
    assert_eq!(s.ancestry(T, &w1).await.expect("read"), None);
    assert!(s.resource(T, &f1).await.expect("read").is_some());
    assert!(s.resource(T, &w2).await.expect("read").is_some());
    let left = s.list_grants(T, None, None, all()).await.expect("grants");
    assert_eq!(grant_ids(&left), ["g-f1", "g-f2", "g-tenant", "g-w2"]);
    let b = s.bindings(T, "alice").await.expect("bindings");
    assert_eq!(binding_keys(&b).len(), 4);

    // A whole tree from the top.
    let (deleted, _) = write(s, T, async |tx: &mut S::Tx| {
        tx.delete_subtree(&f1).await.expect("delete")
    })
    .await;
    assert_eq!(deleted, 2);
    let left = s.list_grants(T, None, None, all()).await.expect("grants");
    assert_eq!(grant_ids(&left), ["g-f2", "g-tenant"]);
    let top = s.list_children(T, None, all()).await.expect("top");
    assert_eq!(top.iter().map(|x| &x.resource).collect::<Vec<_>>(), [&f2]);
}

async fn principals_are_listed_in_id_order_and_keep_their_status<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    write(s, T, async |tx: &mut S::Tx| {
        for id in ["carol", "alice", "bob"] {
            tx.insert_principal(&principal(id, PrincipalStatus::Invited))
                .await
                .expect("insert");
        }
        let mut sa = principal("robot", PrincipalStatus::Active);
        sa.kind = PrincipalKind::ServiceAccount;
        tx.insert_principal(&sa).await.expect("insert");
        tx.set_principal_status("bob", PrincipalStatus::Active, None)
            .await
            .expect("status");
        assert_eq!(
            tx.principal("bob").await.expect("read").map(|p| p.status),
            Some(PrincipalStatus::Active)
        );
    })
    .await;
    let ids = |v: Vec<Principal>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_principals(T, all()).await.expect("list")),
        ["alice", "bob", "carol", "robot"]
    );
    assert_eq!(
        ids(s.list_principals(T, page(None, 2)).await.expect("list")),
        ["alice", "bob"]
    );
    assert_eq!(
        ids(s
            .list_principals(T, page(Some("bob"), 2))
            .await
            .expect("list")),
        ["carol", "robot"]
    );
    assert_eq!(
        s.principal(T, "alice").await.expect("read"),
        Some(principal("alice", PrincipalStatus::Invited))
    );
    assert_eq!(
        s.principal(T, "bob").await.expect("read"),
        Some(principal("bob", PrincipalStatus::Active))
    );
    assert_eq!(
        s.principal(T, "robot").await.expect("read").map(|p| p.kind),
        Some(PrincipalKind::ServiceAccount)
    );
    assert_eq!(s.principal(T, "nobody").await.expect("read"), None);
    for status in [
        PrincipalStatus::Suspended,
        PrincipalStatus::Removed,
        PrincipalStatus::Active,
    ] {
        write(s, T, async |tx: &mut S::Tx| {
            tx.set_principal_status("carol", status, None)
                .await
                .expect("status")
        })
        .await;
        assert_eq!(
            s.principal(T, "carol")
                .await
                .expect("read")
                .map(|p| p.status),
            Some(status)
        );
    }
}

/// `eng` ∋ alice; `platform` ∋ team `eng`; `all` ∋ team `platform` and bob;
/// `solo` ∋ carol.
async fn seed_teams<S: Ports>(s: &S) {
    write(s, T, async |tx: &mut S::Tx| {
        for id in ["alice", "bob", "carol"] {
            tx.insert_principal(&principal(id, PrincipalStatus::Active))
                .await
                .expect("principal");
        }
        for id in ["eng", "platform", "all", "solo"] {
            tx.insert_team(&team(id)).await.expect("team");
        }
        tx.add_member("eng", &p("alice")).await.expect("member");
        tx.add_member("platform", &tm("eng")).await.expect("member");
        tx.add_member("all", &tm("platform")).await.expect("member");
        tx.add_member("all", &p("bob")).await.expect("member");
        tx.add_member("solo", &p("carol")).await.expect("member");
    })
    .await;
}

async fn teams_nest_and_membership_chains_run_from_the_direct_team<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_teams(s).await;
    let teams = |v: Vec<Team>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        teams(s.list_teams(T, all()).await.expect("teams")),
        ["all", "eng", "platform", "solo"]
    );
    assert_eq!(
        teams(s.list_teams(T, page(Some("eng"), 1)).await.expect("teams")),
        ["platform"]
    );
    assert_eq!(
        s.team_members(T, "all", all()).await.expect("members"),
        Some(vec![p("bob"), tm("platform")])
    );
    assert_eq!(
        s.team_members(T, "all", page(Some("principal:bob"), 10))
            .await
            .expect("members"),
        Some(vec![tm("platform")])
    );
    assert_eq!(
        s.team_members(T, "all", page(None, 1))
            .await
            .expect("members"),
        Some(vec![p("bob")])
    );
    assert_eq!(
        s.team_members(T, "nope", all()).await.expect("members"),
        None
    );
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_team(&team("empty")).await.expect("team")
    })
    .await;
    assert_eq!(
        s.team_members(T, "empty", all()).await.expect("members"),
        Some(vec![])
    );

    write(s, T, async |tx: &mut S::Tx| {
        assert_eq!(tx.team("eng").await.expect("team"), Some(team("eng")));
        assert_eq!(tx.team("nope").await.expect("team"), None);
        assert_eq!(
            tx.team_members("all").await.expect("members"),
            [p("bob"), tm("platform")]
        );
        assert!(tx.team_members("nope").await.expect("members").is_empty());
        assert_eq!(tx.teams_of(&p("alice")).await.expect("teams"), ["eng"]);
        assert_eq!(tx.teams_of(&tm("eng")).await.expect("teams"), ["platform"]);
        assert!(tx.teams_of(&tm("all")).await.expect("teams").is_empty());
        let mut inside = tx.principals_in_team("all").await.expect("inside");
        inside.sort();
        assert_eq!(
            inside,
            [
                ("alice".to_owned(), chain(&["eng", "platform", "all"])),
                ("bob".to_owned(), chain(&["all"])),
            ]
        );
        assert_eq!(
            tx.principals_in_team("platform").await.expect("inside"),
            [("alice".to_owned(), chain(&["eng", "platform"]))]
        );
        assert!(tx
            .principals_in_team("nope")
            .await
            .expect("inside")
            .is_empty());

        // The shortest chain wins.
        tx.add_member("all", &p("alice")).await.expect("member");
        let mut inside = tx.principals_in_team("all").await.expect("inside");
        inside.sort();
        assert_eq!(
            inside,
            [
                ("alice".to_owned(), chain(&["all"])),
                ("bob".to_owned(), chain(&["all"]))
            ]
        );
        assert_eq!(
            tx.teams_of(&p("alice")).await.expect("teams"),
            ["all", "eng"]
        );
        assert!(tx.remove_member("all", &p("alice")).await.expect("remove"));
        assert!(!tx.remove_member("all", &p("alice")).await.expect("remove"));
        assert!(!tx.remove_member("nope", &p("alice")).await.expect("remove"));
    })
    .await;
    assert_eq!(
        s.team_members(T, "all", all()).await.expect("members"),
        Some(vec![p("bob"), tm("platform")])
    );
}

async fn bindings_come_through_teams_with_their_chains<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    seed_teams(s).await;
    let (f1, p1, w1, ..) = tree();
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_grant(&grant("g-all", tm("all"), "viewer", Scope::Tenant))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-eng", tm("eng"), "editor", on(&f1)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-alice", p("alice"), "owner", on(&w1)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-bob", p("bob"), "viewer", on(&p1)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-solo", tm("solo"), "viewer", on(&p1)))
            .await
            .expect("grant");
        let b = tx.bindings("alice").await.expect("bindings");
        assert_eq!(b.len(), 3);
    })
    .await;
    let expect_alice = vec![
        ("g-alice".to_owned(), vec![]),
        ("g-all".to_owned(), chain(&["eng", "platform", "all"])),
        ("g-eng".to_owned(), chain(&["eng"])),
    ];
    let b = s.bindings(T, "alice").await.expect("bindings");
    assert_eq!(binding_keys(&b), expect_alice);
    let g = b.iter().find(|b| b.grant.id == "g-eng").expect("g-eng");
    assert_eq!(*g.grant, grant("g-eng", tm("eng"), "editor", on(&f1)));
    assert_eq!(
        binding_keys(&s.bindings(T, "bob").await.expect("bindings")),
        [
            ("g-all".to_owned(), chain(&["all"])),
            ("g-bob".to_owned(), vec![])
        ]
    );
    assert!(s.bindings(T, "nobody").await.expect("bindings").is_empty());

    // The shortest chain wins in bindings too.
    write(s, T, async |tx: &mut S::Tx| {
        tx.add_member("all", &p("alice")).await.expect("member");
        let b = tx.bindings("alice").await.expect("bindings");
        assert_eq!(
            binding_keys(&b),
            [
                ("g-alice".to_owned(), vec![]),
                ("g-all".to_owned(), chain(&["all"])),
                ("g-eng".to_owned(), chain(&["eng"])),
            ]
        );
    })
    .await;
}

async fn deleting_a_team_removes_its_memberships_and_grants<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    seed_teams(s).await;
    let (f1, ..) = tree();
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_grant(&grant("g-all", tm("all"), "viewer", Scope::Tenant))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-plat-1", tm("platform"), "editor", on(&f1)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-plat-2", tm("platform"), "viewer", Scope::Tenant))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-eng", tm("eng"), "editor", on(&f1)))
            .await
            .expect("grant");
    })
    .await;
    let (deleted, _) = write(s, T, async |tx: &mut S::Tx| {
        let n = tx.delete_team("platform").await.expect("delete");
        assert_eq!(tx.team("platform").await.expect("read"), None);
        n
    })
    .await;
    assert_eq!(deleted, 2);
    let teams: Vec<String> = s
        .list_teams(T, all())
        .await
        .expect("teams")
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(teams, ["all", "eng", "solo"]);
    assert_eq!(
        s.team_members(T, "platform", all()).await.expect("members"),
        None
    );
    assert_eq!(
        s.team_members(T, "all", all()).await.expect("members"),
        Some(vec![p("bob")])
    );
    assert_eq!(
        s.team_members(T, "eng", all()).await.expect("members"),
        Some(vec![p("alice")])
    );
    assert_eq!(
        grant_ids(&s.list_grants(T, None, None, all()).await.expect("grants")),
        ["g-all", "g-eng"]
    );
    assert!(s
        .list_grants(T, Some(&tm("platform")), None, all())
        .await
        .expect("grants")
        .is_empty());
    // Alice is no longer inside `all`.
    assert_eq!(
        binding_keys(&s.bindings(T, "alice").await.expect("bindings")),
        [("g-eng".to_owned(), chain(&["eng"]))]
    );
    write(s, T, async |tx: &mut S::Tx| {
        assert!(tx.teams_of(&tm("eng")).await.expect("teams").is_empty());
        assert_eq!(
            tx.principals_in_team("all").await.expect("inside"),
            [("bob".to_owned(), chain(&["all"]))]
        );
        // A team without grants deletes none.
        assert_eq!(tx.delete_team("solo").await.expect("delete"), 0);
        assert!(tx.teams_of(&p("carol")).await.expect("teams").is_empty());
    })
    .await;
}

async fn custom_roles_are_kept_in_id_order<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_role(&role("zeta", &["workflow.view"]))
            .await
            .expect("role");
        let mut alpha = role("alpha", &["workflow.execute", "credential.*"]);
        alpha.excluded_permissions =
            vec![Permission::parse("p", "credential.delete").expect("pattern")];
        alpha.inherits = vec!["zeta".to_owned()];
        alpha.effective_at = vec!["project".to_owned(), "tenant".to_owned()];
        tx.insert_role(&alpha).await.expect("role");
        let ids: Vec<String> = tx
            .custom_roles()
            .await
            .expect("roles")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["alpha", "zeta"]);
    })
    .await;
    let roles = s.custom_roles(T).await.expect("roles");
    assert_eq!(
        roles.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["alpha", "zeta"]
    );
    let alpha = &roles[0];
    assert_eq!(
        alpha
            .permissions
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        ["workflow.execute", "credential.*"]
    );
    assert_eq!(
        alpha
            .excluded_permissions
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        ["credential.delete"]
    );
    assert_eq!(alpha.inherits, ["zeta"]);
    assert_eq!(alpha.effective_at, ["project", "tenant"]);
    assert!(!alpha.locked);
    let table = s.roles(T).await.expect("table");
    assert!(table.get("alpha").is_some());
    assert!(
        table.get("owner").is_some_and(|r| r.locked),
        "predefined roles are in the table"
    );
    assert!(table.knows_action("execute"));

    let mut changed = role("zeta", &["workflow.edit"]);
    changed.display_name = "Zeta 2".to_owned();
    write(s, T, async |tx: &mut S::Tx| {
        tx.update_role(&changed).await.expect("update")
    })
    .await;
    assert_eq!(s.custom_roles(T).await.expect("roles")[1], changed);
    assert_eq!(
        s.roles(T)
            .await
            .expect("table")
            .get("zeta")
            .map(|r| r.display_name.clone()),
        Some("Zeta 2".to_owned())
    );

    write(s, T, async |tx: &mut S::Tx| {
        tx.delete_role("alpha").await.expect("delete")
    })
    .await;
    assert_eq!(s.custom_roles(T).await.expect("roles"), [changed]);
    assert!(s.roles(T).await.expect("table").get("alpha").is_none());
    assert!(s.custom_roles(OTHER).await.expect("roles").is_empty());
}

async fn grants_are_found_by_id_scope_subject_and_role<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    let (f1, p1, w1, w2, f2) = tree();
    let mut expiring = grant("g3", p("bob"), "editor", on(&w1));
    expiring.expires_at = Some(4_000_000_000_000);
    expiring.effect = Effect::Deny;
    write(s, T, async |tx: &mut S::Tx| {
        for id in ["alice", "bob"] {
            tx.insert_principal(&principal(id, PrincipalStatus::Active))
                .await
                .expect("principal");
        }
        tx.insert_team(&team("eng")).await.expect("team");
        tx.insert_grant(&grant("g1", p("alice"), "viewer", Scope::Tenant))
            .await
            .expect("g1");
        tx.insert_grant(&grant("g2", p("alice"), "editor", on(&f1)))
            .await
            .expect("g2");
        tx.insert_grant(&expiring).await.expect("g3");
        tx.insert_grant(&grant("g4", tm("eng"), "viewer", on(&p1)))
            .await
            .expect("g4");
        tx.insert_grant(&grant("g5", p("bob"), "viewer", on(&f2)))
            .await
            .expect("g5");
        tx.insert_grant(&grant("g6", p("bob"), "viewer", on(&w2)))
            .await
            .expect("g6");

        assert_eq!(tx.grant("g3").await.expect("grant"), Some(expiring.clone()));
        assert_eq!(tx.grant("nope").await.expect("grant"), None);
        assert_eq!(
            sorted_grant_ids(&tx.grants_on(&Scope::Tenant).await.expect("on")),
            ["g1"]
        );
        assert_eq!(
            sorted_grant_ids(&tx.grants_on(&on(&f1)).await.expect("on")),
            ["g2"]
        );
        assert!(tx
            .grants_on(&on(&p1))
            .await
            .expect("on")
            .iter()
            .all(|g| g.id == "g4"));
        assert_eq!(
            sorted_grant_ids(&tx.grants_in_subtree(&f1).await.expect("subtree")),
            ["g2", "g3", "g4", "g6"]
        );
        assert_eq!(
            sorted_grant_ids(&tx.grants_in_subtree(&p1).await.expect("subtree")),
            ["g3", "g4"]
        );
        let e = err(tx.grants_in_subtree(&r("folder", "nope")).await);
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        let e = err(tx.grants_on(&on(&r("folder", "nope"))).await);
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        let e = err(tx.descendants(&r("folder", "nope")).await);
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        let e = err(tx.subtree_height(&r("folder", "nope")).await);
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        assert_eq!(
            sorted_grant_ids(&tx.grants_of(&p("alice")).await.expect("of")),
            ["g1", "g2"]
        );
        assert_eq!(
            sorted_grant_ids(&tx.grants_of(&tm("eng")).await.expect("of")),
            ["g4"]
        );
        assert!(tx.grants_of(&tm("alice")).await.expect("of").is_empty());
        assert_eq!(tx.count_grants_of_role("viewer").await.expect("count"), 4);
        assert_eq!(tx.count_grants_of_role("editor").await.expect("count"), 2);
        assert_eq!(tx.count_grants_of_role("owner").await.expect("count"), 0);
        let editors = tx.grants_of_role("editor").await.expect("grants of role");
        assert_eq!(editors.len(), 2);
        assert!(editors.iter().all(|g| g.role_id == "editor"));
        assert!(editors.windows(2).all(|w| w[0].id < w[1].id), "in id order");
        // A grant needs an existing scope.
        let e = err(tx
            .insert_grant(&grant("g9", p("alice"), "viewer", on(&r("folder", "nope"))))
            .await);
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
    })
    .await;

    // Catalog: in id order, filtered, in keyset pages.
    let list = async |subject: Option<&SubjectRef>,
                      scope: Option<&ResourceRef>,
                      after: Option<&str>,
                      limit: u64| {
        grant_ids(
            &s.list_grants(T, subject, scope, page(after, limit))
                .await
                .expect("list"),
        )
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        list(None, None, None, 100).await,
        ["g1", "g2", "g3", "g4", "g5", "g6"]
    );
    assert_eq!(list(None, None, None, 2).await, ["g1", "g2"]);
    assert_eq!(list(None, None, Some("g2"), 2).await, ["g3", "g4"]);
    assert_eq!(
        list(Some(&p("bob")), None, None, 100).await,
        ["g3", "g5", "g6"]
    );
    assert_eq!(list(Some(&p("bob")), None, Some("g3"), 1).await, ["g5"]);
    assert_eq!(list(None, Some(&w1), None, 100).await, ["g3"]);
    assert_eq!(
        list(Some(&p("alice")), Some(&w1), None, 100).await,
        Vec::<String>::new()
    );
    assert_eq!(list(Some(&tm("eng")), Some(&p1), None, 100).await, ["g4"]);
    let e = err(s
        .list_grants(T, None, Some(&r("folder", "nope")), all())
        .await);
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let listed = s
        .list_grants(T, Some(&p("bob")), Some(&w1), all())
        .await
        .expect("list");
    assert_eq!(listed, [expiring.clone()]);

    // Deletion by id and by role.
    let (n, _) = write(s, T, async |tx: &mut S::Tx| {
        tx.delete_grants(&["g2".to_owned(), "nope".to_owned(), "g3".to_owned()])
            .await
            .expect("delete")
    })
    .await;
    assert_eq!(n, 2);
    assert_eq!(list(None, None, None, 100).await, ["g1", "g4", "g5", "g6"]);
    let (n, _) = write(s, T, async |tx: &mut S::Tx| {
        let n = tx.delete_grants_of_role("viewer").await.expect("delete");
        assert_eq!(tx.count_grants_of_role("viewer").await.expect("count"), 0);
        n
    })
    .await;
    assert_eq!(n, 4);
    assert!(list(None, None, None, 100).await.is_empty());
    let (n, _) = write(s, T, async |tx: &mut S::Tx| {
        tx.delete_grants_of_role("viewer").await.expect("delete")
    })
    .await;
    assert_eq!(n, 0);
}

async fn a_subject_has_bindings_only_while_active<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_principal(&principal("alice", PrincipalStatus::Active))
            .await
            .expect("alice");
        tx.insert_principal(&principal("ivan", PrincipalStatus::Invited))
            .await
            .expect("ivan");
        tx.insert_team(&team("eng")).await.expect("team");
        tx.add_member("eng", &p("alice")).await.expect("member");
        tx.add_member("eng", &p("ivan")).await.expect("member");
        tx.insert_grant(&grant("g1", p("alice"), "viewer", Scope::Tenant))
            .await
            .expect("g1");
        tx.insert_grant(&grant("g2", tm("eng"), "editor", Scope::Tenant))
            .await
            .expect("g2");
        tx.insert_grant(&grant("g3", p("ivan"), "viewer", Scope::Tenant))
            .await
            .expect("g3");
    })
    .await;
    let alice = s.subject(T, "alice").await.expect("subject");
    assert_eq!(
        alice.principal,
        Some(principal("alice", PrincipalStatus::Active))
    );
    assert_eq!(
        binding_keys(&alice.bindings),
        [
            ("g1".to_owned(), vec![]),
            ("g2".to_owned(), chain(&["eng"]))
        ]
    );
    let ivan = s.subject(T, "ivan").await.expect("subject");
    assert_eq!(
        ivan.principal.as_ref().map(|p| p.status),
        Some(PrincipalStatus::Invited)
    );
    assert!(
        ivan.bindings.is_empty(),
        "an inactive principal has no bindings"
    );
    // The catalog shows them whatever the status.
    assert_eq!(s.bindings(T, "ivan").await.expect("bindings").len(), 2);
    let nobody = s.subject(T, "nobody").await.expect("subject");
    assert_eq!(nobody.principal, None);
    assert!(nobody.bindings.is_empty());

    write(s, T, async |tx: &mut S::Tx| {
        tx.set_principal_status("alice", PrincipalStatus::Suspended, None)
            .await
            .expect("status")
    })
    .await;
    let alice = s.subject(T, "alice").await.expect("subject");
    assert_eq!(
        alice.principal.as_ref().map(|p| p.status),
        Some(PrincipalStatus::Suspended)
    );
    assert!(alice.bindings.is_empty());
    assert_eq!(s.bindings(T, "alice").await.expect("bindings").len(), 2);
}

/// The resources of each result: its first node.
fn firsts(v: &[Vec<ResourceNode>]) -> Vec<String> {
    v.iter()
        .map(|path| {
            path.first()
                .map(|n| n.resource.id.clone())
                .unwrap_or_default()
        })
        .collect()
}

async fn resources_in_scopes_pages_the_tenant_and_covers_resource_scopes<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    let (f1, p1, w1, w2, f2) = tree();
    let (w3, w4, w5) = (
        r("workflow", "w3"),
        r("workflow", "w4"),
        r("workflow", "w5"),
    );
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_resource(&resource(&w3, Some(&f2), true))
            .await
            .expect("w3");
        tx.insert_resource(&resource(&w4, None, false))
            .await
            .expect("w4");
        tx.insert_resource(&resource(&w5, Some(&p1), false))
            .await
            .expect("w5");
    })
    .await;
    let scopes = |v: &[Scope]| v.to_vec();

    // The tenant: every resource of the type, in id order, in keyset pages.
    let all_w = s
        .resources_in_scopes(T, &[Scope::Tenant], "workflow", None, 100)
        .await
        .expect("scopes");
    assert_eq!(firsts(&all_w), ["w1", "w2", "w3", "w4", "w5"]);
    assert_eq!(
        all_w[0],
        vec![node(&w1, false), node(&p1, false), node(&f1, false)]
    );
    assert_eq!(all_w[2], vec![node(&w3, true), node(&f2, false)]);
    assert_eq!(all_w[3], vec![node(&w4, false)]);
    let first = s
        .resources_in_scopes(T, &[Scope::Tenant], "workflow", None, 2)
        .await
        .expect("page");
    assert_eq!(firsts(&first), ["w1", "w2"]);
    let next = s
        .resources_in_scopes(T, &[Scope::Tenant], "workflow", Some("w2"), 2)
        .await
        .expect("page");
    assert_eq!(firsts(&next), ["w3", "w4"]);
    let last = s
        .resources_in_scopes(T, &[Scope::Tenant], "workflow", Some("w4"), 2)
        .await
        .expect("page");
    assert_eq!(firsts(&last), ["w5"]);
    // The tenant scope wins over resource scopes next to it.
    let mixed = s
        .resources_in_scopes(T, &scopes(&[on(&f2), Scope::Tenant]), "workflow", None, 3)
        .await
        .expect("mixed");
    assert_eq!(firsts(&mixed), ["w1", "w2", "w3"]);
    assert!(s
        .resources_in_scopes(T, &[Scope::Tenant], "dashboard", None, 10)
        .await
        .expect("none")
        .is_empty());

    // Resource scopes: complete, each resource once, the scope itself included.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let under_f1 = s
        .resources_in_scopes(T, &[on(&f1)], "workflow", None, 1)
        .await
        .expect("f1");
    assert_eq!(sorted(firsts(&under_f1)), ["w1", "w2", "w5"]);
    for path in &under_f1 {
        let expected = s
            .ancestry(T, &path[0].resource)
            .await
            .expect("ancestry")
            .expect("exists");
        assert_eq!(path, &*expected, "each result is the resource's ancestry");
    }
    let overlapping = s
        .resources_in_scopes(
            T,
            &scopes(&[on(&p1), on(&f1), on(&w1), on(&f2)]),
            "workflow",
            None,
            1,
        )
        .await
        .expect("overlap");
    assert_eq!(sorted(firsts(&overlapping)), ["w1", "w2", "w3", "w5"]);
    let itself = s
        .resources_in_scopes(T, &[on(&w4)], "workflow", None, 10)
        .await
        .expect("itself");
    assert_eq!(firsts(&itself), ["w4"]);
    let projects = s
        .resources_in_scopes(T, &[on(&f1), on(&f2)], "project", None, 10)
        .await
        .expect("projects");
    assert_eq!(firsts(&projects), ["p1"]);
    let folders = s
        .resources_in_scopes(T, &[on(&w1)], "folder", None, 10)
        .await
        .expect("folders");
    assert!(folders.is_empty(), "ancestors are not in a scope");
    let unknown = s
        .resources_in_scopes(T, &[on(&r("folder", "nope"))], "workflow", None, 10)
        .await
        .expect("unknown");
    assert!(unknown.is_empty());
    assert!(s
        .resources_in_scopes(T, &[], "workflow", None, 10)
        .await
        .expect("no scope")
        .is_empty());
    let _ = w2;
}

async fn holders_on_a_path_expand_teams_in_principal_id_order<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    seed_tree(s, T).await;
    let (f1, p1, w1, w2, f2) = tree();
    write(s, T, async |tx: &mut S::Tx| {
        for id in ["zed", "amy", "bob", "carl", "dan", "eve"] {
            tx.insert_principal(&principal(id, PrincipalStatus::Active))
                .await
                .expect("principal");
        }
        tx.set_principal_status("eve", PrincipalStatus::Suspended, None)
            .await
            .expect("status");
        tx.insert_team(&team("t1")).await.expect("team");
        tx.insert_team(&team("outer")).await.expect("team");
        tx.add_member("t1", &p("bob")).await.expect("member");
        tx.add_member("t1", &p("amy")).await.expect("member");
        tx.add_member("outer", &tm("t1")).await.expect("member");
        tx.insert_grant(&grant("g-zed", p("zed"), "admin", Scope::Tenant))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-eve", p("eve"), "viewer", Scope::Tenant))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-t1", tm("t1"), "editor", on(&f1)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-outer", tm("outer"), "viewer", on(&w1)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-carl", p("carl"), "owner", on(&p1)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-dan", p("dan"), "viewer", on(&f2)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("g-dan2", p("dan"), "viewer", on(&w2)))
            .await
            .expect("grant");
        let holders = tx.tenant_holders().await.expect("holders");
        assert_eq!(ids_of(&holders), ["eve", "zed"]);
    })
    .await;
    let path = s.ancestry(T, &w1).await.expect("ancestry").expect("exists");
    let holders = s.holders_on_path(T, &path).await.expect("holders");
    assert_eq!(ids_of(&holders), ["amy", "bob", "carl", "eve", "zed"]);
    let amy = &holders[0];
    assert_eq!(amy.0, principal("amy", PrincipalStatus::Active));
    assert_eq!(
        binding_keys(&amy.1),
        [
            ("g-outer".to_owned(), chain(&["t1", "outer"])),
            ("g-t1".to_owned(), chain(&["t1"]))
        ]
    );
    assert_eq!(binding_keys(&holders[2].1), [("g-carl".to_owned(), vec![])]);
    assert_eq!(binding_keys(&holders[4].1), [("g-zed".to_owned(), vec![])]);
    // Only the bindings on the path's scopes.
    let on_w2 = s
        .holders_on_path(T, &s.ancestry(T, &w2).await.expect("a").expect("e"))
        .await
        .expect("holders");
    assert_eq!(ids_of(&on_w2), ["amy", "bob", "dan", "eve", "zed"]);
    assert_eq!(binding_keys(&on_w2[2].1), [("g-dan2".to_owned(), vec![])]);
    assert_eq!(
        binding_keys(&on_w2[0].1),
        [("g-t1".to_owned(), chain(&["t1"]))]
    );
    // The empty path is the tenant.
    let tenant_wide = s.tenant_holders(T).await.expect("holders");
    assert_eq!(ids_of(&tenant_wide), ["eve", "zed"]);
    assert_eq!(
        s.holders_on_path(T, &[]).await.expect("holders"),
        tenant_wide
    );
    // An unknown resource has no holders.
    let ghost = [node(&r("folder", "nope"), false)];
    assert!(s
        .holders_on_path(T, &ghost)
        .await
        .expect("holders")
        .is_empty());
}

async fn a_consistency_token_ahead_of_the_tenant_is_invalid<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    write(s, T, async |_tx: &mut S::Tx| {}).await;
    assert_eq!(s.tenant_revision(T, Some(1)).await.expect("rev"), Some(2));
    assert_eq!(s.tenant_revision(T, Some(2)).await.expect("rev"), Some(2));
    match err(s.tenant_revision(T, Some(3)).await) {
        Error::InvalidArgument { field, .. } => assert_eq!(field, "consistency_token"),
        e => panic!("expected INVALID_ARGUMENT, got {e}"),
    }
    assert_eq!(
        s.tenant_revision("nowhere", Some(3)).await.expect("rev"),
        None
    );
}

async fn two_tenants_never_see_each_others_rows<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    create_tenant(s, OTHER).await;
    let (f1, p1, ..) = tree();
    // The same ids in both tenants, arranged differently.
    write(s, T, async |tx: &mut S::Tx| {
        tx.insert_principal(&principal("alice", PrincipalStatus::Active))
            .await
            .expect("alice");
        tx.insert_team(&team("eng")).await.expect("team");
        tx.add_member("eng", &p("alice")).await.expect("member");
        tx.insert_resource(&resource(&f1, None, false))
            .await
            .expect("f1");
        tx.insert_resource(&resource(&p1, Some(&f1), false))
            .await
            .expect("p1");
        tx.insert_role(&role("runner", &["workflow.execute"]))
            .await
            .expect("role");
        tx.insert_grant(&grant("a-1", tm("eng"), "runner", on(&p1)))
            .await
            .expect("grant");
        tx.insert_grant(&grant("a-2", p("alice"), "viewer", Scope::Tenant))
            .await
            .expect("grant");
    })
    .await;
    write(s, OTHER, async |tx: &mut S::Tx| {
        tx.insert_principal(&principal("alice", PrincipalStatus::Suspended))
            .await
            .expect("alice");
        tx.insert_resource(&resource(&p1, None, true))
            .await
            .expect("p1");
        assert_eq!(tx.team("eng").await.expect("read"), None);
        assert!(tx.principals_in_team("eng").await.expect("read").is_empty());
        assert!(tx.custom_roles().await.expect("read").is_empty());
        assert!(tx.grant("a-1").await.expect("read").is_none());
        assert!(tx.bindings("alice").await.expect("read").is_empty());
        assert!(tx.tenant_holders().await.expect("read").is_empty());
        assert_eq!(
            tx.resources_of_type("folder").await.expect("read"),
            Vec::<ResourceRef>::new()
        );
        assert_eq!(tx.count_grants_of_role("runner").await.expect("read"), 0);
        tx.insert_grant(&grant("b-1", p("alice"), "owner", on(&p1)))
            .await
            .expect("grant");
    })
    .await;

    assert_eq!(s.tenant_revision(T, None).await.expect("rev"), Some(2));
    assert_eq!(s.tenant_revision(OTHER, None).await.expect("rev"), Some(2));
    assert_eq!(
        s.ancestry(T, &p1).await.expect("a").as_deref(),
        Some(&vec![node(&p1, false), node(&f1, false)])
    );
    assert_eq!(
        s.ancestry(OTHER, &p1).await.expect("a").as_deref(),
        Some(&vec![node(&p1, true)])
    );
    assert_eq!(s.resource(OTHER, &f1).await.expect("r"), None);
    assert_eq!(
        s.principal(OTHER, "alice")
            .await
            .expect("p")
            .map(|p| p.status),
        Some(PrincipalStatus::Suspended)
    );
    assert_eq!(s.list_principals(OTHER, all()).await.expect("p").len(), 1);
    assert!(s.list_teams(OTHER, all()).await.expect("t").is_empty());
    assert_eq!(s.team_members(OTHER, "eng", all()).await.expect("m"), None);
    assert_eq!(
        grant_ids(&s.list_grants(T, None, None, all()).await.expect("g")),
        ["a-1", "a-2"]
    );
    assert_eq!(
        grant_ids(&s.list_grants(OTHER, None, None, all()).await.expect("g")),
        ["b-1"]
    );
    assert_eq!(
        grant_ids(
            &s.list_grants(OTHER, None, Some(&p1), all())
                .await
                .expect("g")
        ),
        ["b-1"]
    );
    let e = err(s.list_children(OTHER, Some(&f1), all()).await);
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert_eq!(
        binding_keys(&s.bindings(T, "alice").await.expect("b")).len(),
        2
    );
    assert_eq!(
        binding_keys(&s.bindings(OTHER, "alice").await.expect("b")),
        [("b-1".to_owned(), vec![])]
    );
    assert!(s
        .subject(OTHER, "alice")
        .await
        .expect("s")
        .bindings
        .is_empty());
    assert_eq!(s.subject(T, "alice").await.expect("s").bindings.len(), 2);
    assert!(s.custom_roles(OTHER).await.expect("r").is_empty());
    assert!(s.roles(OTHER).await.expect("r").get("runner").is_none());
    assert!(s.roles(T).await.expect("r").get("runner").is_some());
    assert_eq!(ids_of(&s.tenant_holders(T).await.expect("h")), ["alice"]);
    assert!(s.tenant_holders(OTHER).await.expect("h").is_empty());
    let other_path = s.ancestry(OTHER, &p1).await.expect("a").expect("e");
    let holders = s.holders_on_path(OTHER, &other_path).await.expect("h");
    assert_eq!(ids_of(&holders), ["alice"]);
    assert_eq!(binding_keys(&holders[0].1), [("b-1".to_owned(), vec![])]);
    assert_eq!(
        firsts(
            &s.resources_in_scopes(OTHER, &[Scope::Tenant], "folder", None, 10)
                .await
                .expect("s")
        ),
        Vec::<String>::new()
    );
    assert_eq!(s.list_audit(&filter(OTHER), 10).await.expect("a").len(), 2);
    assert_eq!(s.changes(OTHER, 0, 10).await.expect("c").len(), 2);

    // Deleting in one tenant leaves the other alone.
    write(s, T, async |tx: &mut S::Tx| {
        assert_eq!(tx.delete_subtree(&f1).await.expect("delete"), 2);
        assert_eq!(tx.delete_team("eng").await.expect("delete"), 0);
        assert_eq!(tx.delete_grants_of_role("viewer").await.expect("delete"), 1);
        assert_eq!(
            tx.delete_grants(&["b-1".to_owned()]).await.expect("delete"),
            0
        );
        tx.delete_role("runner").await.expect("role");
    })
    .await;
    assert!(s.resource(OTHER, &p1).await.expect("r").is_some());
    assert_eq!(
        grant_ids(&s.list_grants(OTHER, None, None, all()).await.expect("g")),
        ["b-1"]
    );
    assert!(s
        .list_grants(T, None, None, all())
        .await
        .expect("g")
        .is_empty());
}

// ---- backends ----------------------------------------------------------------

use crate::helpers::{fresh_database, Backend};
use portcullis::store::memory::MemStore;
use portcullis::store::sql::SqlStore;

/// The SQL store on a fresh SQLite file in `dir`, migrated.
async fn sqlite_store(dir: &tempfile::TempDir) -> SqlStore {
    let path = dir.path().join("conformance.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SqlStore::connect(&url, 4, Duration::from_secs(5))
        .await
        .expect("connect to SQLite");
    store.migrate().await.expect("migrate SQLite");
    store
}

/// The SQL store on a fresh database of the PostgreSQL server of `backend`
/// (made by the harness's `fresh_database`), migrated.
async fn postgres_store(backend: &Backend, dir: &tempfile::TempDir) -> SqlStore {
    let url = fresh_database(backend, dir.path()).await;
    let store = SqlStore::connect(&url, 4, Duration::from_secs(5))
        .await
        .expect("connect to PostgreSQL");
    store.migrate().await.expect("migrate PostgreSQL");
    store
}

// ---- whole tenants ---------------------------------------------------------

/// A dump with every kind of record (roles, principals, teams and nested
/// membership, a tree with a private resource, tenant-wide, resource,
/// team, deny and expiring grants).
fn whole_tenant(id: &str) -> TenantDump {
    let (f1, p1, w1, w2, f2) = tree();
    let mut runner = role("runner", &["workflow.execute"]);
    runner.inherits = vec!["viewer".to_owned()];
    let mut deny = grant("g-deny", p("bob"), "editor", on(&w2));
    deny.effect = Effect::Deny;
    let mut expiring = grant("g-exp", p("carol"), "viewer", on(&f2));
    expiring.expires_at = Some(4_102_444_800_000);
    let mut d = TenantDump::empty(tenant(id, 30), 0);
    d.roles = vec![role("base", &["workflow.view"]), runner];
    d.principals = vec![
        principal("alice", PrincipalStatus::Active),
        principal("bob", PrincipalStatus::Suspended),
        principal("carol", PrincipalStatus::Invited),
    ];
    d.teams = vec![team("eng"), team("ops")];
    d.members = vec![
        ("eng".to_owned(), p("alice")),
        ("eng".to_owned(), tm("ops")),
        ("ops".to_owned(), p("bob")),
    ];
    d.resources = vec![
        resource(&f1, None, false),
        resource(&f2, None, false),
        resource(&p1, Some(&f1), true),
        resource(&w1, Some(&p1), false),
        resource(&w2, Some(&f1), false),
    ];
    d.grants = vec![
        grant("g-admin", p("alice"), "account_admin", Scope::Tenant),
        grant("g-team", tm("eng"), "runner", on(&f1)),
        grant("g-owner", p("alice"), "owner", on(&p1)),
        deny,
        expiring,
    ];
    d
}

/// `d` as compared between tenants: in export's order, its tenant id,
/// revision and the tenant's creation time left out.
fn comparable(d: TenantDump) -> TenantDump {
    let created: std::collections::HashMap<ResourceRef, i64> = d
        .resources
        .iter()
        .map(|r| (r.resource.clone(), r.created_at))
        .collect();
    let mut d = TenantDump::from_rows(d.rows(), |r| created[r]);
    d.tenant.id = String::new();
    d.tenant.created_at = 0;
    d.revision = 0;
    d
}

async fn a_dump_inserted_in_one_write_reads_back_exactly<S: Ports>(s: &S) {
    let want = whole_tenant(T);
    let rec = Record {
        invalidation: Invalidation::everything(),
        ..record("tenant.import", "tenant:acme")
    };
    let (_, rev) = write_with(s, &ctx(T), true, rec, async |tx: &mut S::Tx| {
        tx.insert_tenant(&want.tenant).await.expect("tenant");
        tx.insert_dump(&want).await.expect("dump");
    })
    .await;
    assert_eq!(rev, 1);
    let got = s.export(T).await.expect("export").expect("the tenant");
    assert_eq!(got.revision, 1);
    assert_eq!(
        comparable(got.clone()),
        comparable(want.clone()),
        "every record, ids and times kept"
    );
    // The same dump as another tenant: the same rows, apart.
    let mut other = want.clone();
    other.tenant.id = OTHER.to_owned();
    for g in &mut other.grants {
        g.id = format!("{}-other", g.id);
    }
    write_with(
        s,
        &ctx(OTHER),
        true,
        record("tenant.import", "tenant:globex"),
        async |tx: &mut S::Tx| {
            tx.insert_tenant(&other.tenant).await.expect("tenant");
            tx.insert_dump(&other).await.expect("dump");
        },
    )
    .await;
    let got_other = s.export(OTHER).await.expect("export").expect("the tenant");
    assert_eq!(comparable(got_other), comparable(other));
    assert_eq!(s.export(T).await.expect("export").expect("tenant"), got);
    // Reads through the other ports see the inserted rows.
    let (f1, p1, w1, ..) = tree();
    let path = s.ancestry(T, &w1).await.expect("ancestry").expect("w1");
    assert_eq!(
        *path,
        vec![node(&w1, false), node(&p1, true), node(&f1, false)]
    );
    let alice = s.subject(T, "alice").await.expect("alice");
    assert_eq!(
        alice.bindings.len(),
        3,
        "direct grants and the team's: {:?}",
        alice.bindings
    );
    let rows = s.snapshot(T).await.expect("snapshot").expect("rows");
    assert_eq!(rows.resources.len(), 5);
    assert!(s.export("nowhere").await.expect("export").is_none());
}

async fn a_deleted_tenant_is_gone_and_its_id_continues_after_it<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    create_tenant(s, OTHER).await;
    seed_tree(s, T).await;
    seed_tree(s, OTHER).await;
    let rec = Record {
        invalidation: Invalidation {
            everything: true,
            deleted: true,
            ..Invalidation::default()
        },
        ..record("tenant.delete", "tenant:acme")
    };
    let (_, deleted_at) = write_with(s, &ctx(T), false, rec, async |tx: &mut S::Tx| {
        tx.delete_tenant().await.expect("delete")
    })
    .await;
    assert_eq!(deleted_at, 3);
    assert_eq!(s.tenant_revision(T, None).await.expect("revision"), None);
    assert!(s.tenant(T).await.expect("tenant").is_none());
    assert!(s.export(T).await.expect("export").is_none());
    assert!(s.snapshot(T).await.expect("snapshot").is_none());
    assert_eq!(s.tombstone(T).await.expect("tombstone"), Some(deleted_at));
    assert!(!s
        .tenant_revisions()
        .await
        .expect("revisions")
        .iter()
        .any(|(t, _)| t == T));
    let (f1, ..) = tree();
    assert!(s.ancestry(T, &f1).await.expect("ancestry").is_none());
    // The other tenant is untouched.
    assert_eq!(
        s.tenant_revision(OTHER, None).await.expect("revision"),
        Some(2)
    );
    assert!(s.ancestry(OTHER, &f1).await.expect("ancestry").is_some());
    assert_eq!(s.tombstone(OTHER).await.expect("tombstone"), None);
    // Created again, the id continues after the deletion.
    let rec = Record {
        invalidation: Invalidation::everything(),
        ..record("tenant.create", "tenant:acme")
    };
    let (_, again) = write_with(s, &ctx(T), true, rec, async |tx: &mut S::Tx| {
        tx.insert_tenant(&tenant(T, 30)).await.expect("tenant")
    })
    .await;
    assert_eq!(again, deleted_at + 1);
    assert_eq!(
        s.tenant_revision(T, None).await.expect("revision"),
        Some(again)
    );
    assert!(
        s.ancestry(T, &f1).await.expect("ancestry").is_none(),
        "nothing of the old tenant"
    );
}

async fn erasing_a_name_rewrites_the_record_the_audit_trail_and_the_log<S: Ports>(s: &S) {
    create_tenant(s, T).await;
    let mut alice = principal("alice", PrincipalStatus::Active);
    alice.display_name = "Alice Secretname".to_owned();
    let rec = Record {
        after: serde_json::to_string(&alice).expect("json"),
        invalidation: Invalidation {
            principals: vec!["alice".to_owned()],
            ..Invalidation::default()
        },
        ..record("principal.create", "principal:alice")
    };
    write_with(s, &ctx(T), false, rec, async |tx: &mut S::Tx| {
        tx.insert_principal(&alice).await.expect("alice")
    })
    .await;
    let bob = principal("bob", PrincipalStatus::Active);
    let rec = Record {
        after: serde_json::to_string(&bob).expect("json"),
        ..record("principal.create", "principal:bob")
    };
    write_with(s, &ctx(T), false, rec, async |tx: &mut S::Tx| {
        tx.insert_principal(&bob).await.expect("bob")
    })
    .await;
    let (n, rev) = write(s, T, async |tx: &mut S::Tx| {
        tx.erase_display_name("alice", "erased-1")
            .await
            .expect("erase")
    })
    .await;
    assert_eq!(n, 1, "the one audit event showing the name");
    let p = s.principal(T, "alice").await.expect("read").expect("alice");
    assert_eq!(p.display_name, "erased-1");
    assert_eq!(p.status, PrincipalStatus::Active);
    let events = s.list_audit(&filter(T), 100).await.expect("audit");
    for e in &events {
        assert!(
            !e.after_json.contains("Secretname") && !e.before_json.contains("Secretname"),
            "{e:?}"
        );
    }
    assert!(
        events.iter().any(|e| e.after_json.contains("User bob")),
        "others keep their names"
    );
    for (_, inv) in s.changes(T, 0, rev).await.expect("log") {
        let text = serde_json::to_string(&inv).expect("json");
        assert!(!text.contains("Secretname"), "{text}");
    }
}

/// Runs every case on every backend: `<case>::memory`, `<case>::sqlite` and
/// `<case>::postgres` (which says on stderr that it is skipped when
/// `PORTCULLIS_TEST_DATABASE_URL` is unset).
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn memory() {
                    super::$case(&super::MemStore::new()).await
                }

                #[tokio::test]
                async fn sqlite() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    super::$case(&super::sqlite_store(&dir).await).await
                }

                #[tokio::test]
                #[cfg_attr(not(portcullis_pg), ignore = "PostgreSQL: set PORTCULLIS_TEST_DATABASE_URL when building and running the tests")]
                async fn postgres() {
                    let Some(backend) = super::Backend::postgres() else {
                        eprintln!(concat!(
                            "conformance::",
                            stringify!($case),
                            "::postgres: skipped (PORTCULLIS_TEST_DATABASE_URL is unset)"
                        ));
                        return;
                    };
                    let dir = tempfile::tempdir().expect("temp dir");
                    super::$case(&super::postgres_store(&backend, &dir).await).await
                }
            }
        )*
    };
}

conformance!(
    a_write_on_a_missing_tenant_is_not_found,
    a_new_tenant_is_revision_1_and_each_write_bumps_it,
    a_dropped_write_leaves_nothing_behind,
    a_second_writer_of_a_tenant_waits_for_the_first,
    a_retried_request_id_is_replayed_and_a_reused_one_refused,
    every_write_is_audited_and_list_audit_filters_newest_first,
    audit_events_past_retention_are_pruned,
    the_revision_log_holds_each_write_invalidation,
    resources_form_a_tree_with_ancestry_children_and_privacy,
    moving_a_subtree_changes_the_ancestry_below_it,
    resource_rows_are_the_whole_tree_in_one_read,
    the_revision_log_holds_each_write_row_changes,
    replaying_the_revision_log_rebuilds_the_tenant_index,
    subtree_height_and_descendants_see_the_whole_subtree,
    deleting_a_subtree_deletes_its_resources_and_their_grants,
    principals_are_listed_in_id_order_and_keep_their_status,
    teams_nest_and_membership_chains_run_from_the_direct_team,
    bindings_come_through_teams_with_their_chains,
    deleting_a_team_removes_its_memberships_and_grants,
    custom_roles_are_kept_in_id_order,
    grants_are_found_by_id_scope_subject_and_role,
    a_subject_has_bindings_only_while_active,
    resources_in_scopes_pages_the_tenant_and_covers_resource_scopes,
    holders_on_a_path_expand_teams_in_principal_id_order,
    a_consistency_token_ahead_of_the_tenant_is_invalid,
    two_tenants_never_see_each_others_rows,
    a_dump_inserted_in_one_write_reads_back_exactly,
    a_deleted_tenant_is_gone_and_its_id_continues_after_it,
    erasing_a_name_rewrites_the_record_the_audit_trail_and_the_log,
);

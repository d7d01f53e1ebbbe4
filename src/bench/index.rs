//! The index scenario (`portcullis bench --scenario index`): the permission
//! index of issue 11 measured in process, before it serves calls. It builds
//! the resource tree of a generated dataset (no database, no server) and
//! times lists from it: the first page of 100, a whole list of ~500 and
//! ~5,000, paging through 50,000 at 1,000 a page under a tenant-wide grant,
//! and a tenant-wide grant with every workspace denied (zero results). It
//! also reports the tree's build time and resident memory per resource.

use super::dataset::{self, Dataset, Shape};
use super::{row, Row};
use crate::index::list::{accessible, ListQuery};
use crate::index::tree::Tree;
use crate::model::{
    Binding, Effect, Grant, Principal, PrincipalKind, PrincipalStatus, ResourceRef, RoleTable,
    Scope, SubjectRef,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn binding(subject: &str, role: &str, scope: Scope, effect: Effect) -> Binding {
    Binding {
        grant: Arc::new(Grant {
            id: format!("{subject}-{role}-{scope}"),
            subject: SubjectRef::Principal(subject.to_owned()),
            role_id: role.to_owned(),
            scope,
            effect,
            expires_at: None,
            condition: None,
            created_at: 0,
        }),
        via_teams: Vec::new(),
    }
}

/// Times `f` `times` times.
fn timed(name: &str, times: usize, note: String, mut f: impl FnMut()) -> Row {
    let start = Instant::now();
    let mut lat = Vec::with_capacity(times);
    for _ in 0..times {
        let t = Instant::now();
        f();
        lat.push(t.elapsed().as_micros() as u32);
    }
    row(name, lat, start.elapsed(), note)
}

/// Seeds `data` into the empty database at `url`, then reads the tenant's
/// resources back and builds the tree from them, as a replica does for a
/// cold tenant; prints how long each part took.
async fn from_store(url: &str, data: &Dataset) -> Result<(), String> {
    use crate::store::sql::SqlStore;
    use crate::store::Catalog;
    let store = SqlStore::connect(url, 4, std::time::Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    if store
        .tenant("bench")
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!(
            "the database at {url} already holds tenant `bench`; use an empty one"
        ));
    }
    let started = Instant::now();
    store
        .bulk_load(&data.bulk)
        .await
        .map_err(|e| e.to_string())?;
    println!("index: seeded in {:.1} s", started.elapsed().as_secs_f64());
    for _ in 0..2 {
        let started = Instant::now();
        let rows = store
            .resource_rows("bench")
            .await
            .map_err(|e| e.to_string())?;
        let read = started.elapsed();
        let tree = Tree::from_rows(rows).map_err(|e| e.to_string())?;
        println!(
            "index: cold tenant of {} resources read from the store in {} ms and built into the tree in {} ms ({} ms in all)",
            tree.len(),
            read.as_millis(),
            (started.elapsed() - read).as_millis(),
            started.elapsed().as_millis()
        );
    }
    Ok(())
}

/// Runs the scenario on `shape` (first through the database at `url`, when
/// given); prints the build lines and returns the rows.
pub async fn run(shape: Shape, url: Option<&str>) -> Result<Vec<Row>, String> {
    let data: Dataset = dataset::generate("bench", shape, 0, 42);
    if let Some(url) = url {
        from_store(url, &data).await?;
    }
    let by_pk: HashMap<i64, &ResourceRef> = data
        .bulk
        .resources
        .iter()
        .map(|r| (r.pk, &r.resource))
        .collect();
    let rows: Vec<(ResourceRef, Option<ResourceRef>, bool)> = data
        .bulk
        .resources
        .iter()
        .map(|r| {
            let parent = r
                .parent_pk
                .and_then(|p| by_pk.get(&p))
                .map(|p| (*p).clone());
            (r.resource.clone(), parent, r.private)
        })
        .collect();
    let workspaces: Vec<ResourceRef> = rows
        .iter()
        .filter(|(_, p, _)| p.is_none())
        .map(|(r, _, _)| r.clone())
        .collect();
    drop(by_pk);
    let before = resident_kib();
    let started = Instant::now();
    let tree = Tree::from_rows(rows).map_err(|e| e.to_string())?;
    let built = started.elapsed();
    let after = resident_kib();
    let per_resource = (after.saturating_sub(before) * 1024) as f64 / tree.len() as f64;
    println!(
        "index: {} resources built into the tree in {:.0} ms; resident memory +{:.1} MiB ({per_resource:.0} bytes per resource)",
        tree.len(),
        built.as_secs_f64() * 1000.0,
        after.saturating_sub(before) as f64 / 1024.0
    );

    let roles = RoleTable::new(Vec::new());
    let principal = |id: &str| Principal {
        id: id.to_owned(),
        kind: PrincipalKind::User,
        status: PrincipalStatus::Active,
        display_name: id.to_owned(),
        invitation_expires_at: None,
        created_at: 0,
    };
    let direct = |id: &str| -> Vec<Binding> {
        data.bulk
            .grants
            .iter()
            .filter(|(g, _)| g.subject == SubjectRef::Principal(id.to_owned()))
            .map(|(g, _)| Binding {
                grant: Arc::new(g.clone()),
                via_teams: Vec::new(),
            })
            .collect()
    };
    let mut rows_out = Vec::new();
    let now = crate::model::now_millis();
    let reps = 200;

    for user in [&data.user_500, &data.user_5000] {
        let p = principal(user);
        let bs = direct(user);
        let q = ListQuery {
            principal: Some(&p),
            bindings: &bs,
            rtype: "workflow",
            action: "view",
            now,
            context: crate::model::condition::RequestContext::none(),
        };
        let whole = accessible(&tree, &roles, q, None, usize::MAX - 1);
        let first = accessible(&tree, &roles, q, None, 100);
        rows_out.push(timed(
            &format!("first page of 100, user `{user}`"),
            reps,
            format!("{} walked", first.visited),
            || {
                std::hint::black_box(accessible(&tree, &roles, q, None, 100));
            },
        ));
        rows_out.push(timed(
            &format!("all {} workflows, user `{user}`", whole.resources.len()),
            reps / 4,
            format!("{} walked", whole.visited),
            || {
                std::hint::black_box(accessible(&tree, &roles, q, None, 10_000));
            },
        ));
    }

    // A tenant-wide viewer: page through the first 50,000 at 1,000 a page.
    let p = principal("everyone");
    let bs = vec![binding("everyone", "viewer", Scope::Tenant, Effect::Allow)];
    let q = ListQuery {
        principal: Some(&p),
        bindings: &bs,
        rtype: "workflow",
        action: "view",
        now,
        context: crate::model::condition::RequestContext::none(),
    };
    let mut pages = 0;
    let mut listed = 0;
    rows_out.push(timed(
        "paging through 50,000 at 1,000 a page, tenant-wide viewer",
        10,
        "total per run of 50 pages".into(),
        || {
            let mut after: Option<Vec<ResourceRef>> = None;
            pages = 0;
            listed = 0;
            while listed < 50_000 {
                let page = accessible(&tree, &roles, q, after.as_deref(), 1_000);
                listed += page.resources.len();
                pages += 1;
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        },
    ));
    println!("index: the paging run listed {listed} workflows in {pages} pages");

    // The same viewer denied in every workspace: nothing to list.
    let mut bs = bs.clone();
    for ws in &workspaces {
        bs.push(binding(
            "everyone",
            "viewer",
            Scope::Resource(ws.clone()),
            Effect::Deny,
        ));
    }
    let q = ListQuery {
        principal: Some(&p),
        bindings: &bs,
        rtype: "workflow",
        action: "view",
        now,
        context: crate::model::condition::RequestContext::none(),
    };
    let none = accessible(&tree, &roles, q, None, 1_000);
    if !none.resources.is_empty() {
        return Err("the denied viewer listed something".to_owned());
    }
    rows_out.push(timed(
        &format!(
            "tenant-wide allow, every workspace denied ({} denies)",
            workspaces.len()
        ),
        reps,
        format!("0 listed, {} walked", none.visited),
        || {
            std::hint::black_box(accessible(&tree, &roles, q, None, 1_000));
        },
    ));
    Ok(rows_out)
}

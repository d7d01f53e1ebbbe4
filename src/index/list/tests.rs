use super::*;
use crate::engine::decide;
use crate::model::condition::RequestContext;
use crate::model::{Grant, PrincipalKind, Role};
use proptest::prelude::*;

fn r(t: &str, id: &str) -> ResourceRef {
    ResourceRef {
        rtype: t.to_owned(),
        id: id.to_owned(),
    }
}

fn alice(status: PrincipalStatus) -> Principal {
    Principal {
        id: "alice".to_owned(),
        kind: PrincipalKind::User,
        display_name: "Alice".to_owned(),
        status,
        created_at: 0,
        invitation_expires_at: Default::default(),
    }
}

fn roles() -> RoleTable {
    let wf_viewer = Role {
        id: "wf_viewer".to_owned(),
        display_name: "Workflow viewer".to_owned(),
        permissions: vec![crate::model::Permission::parse("p", "workflow.view").unwrap()],
        excluded_permissions: Vec::new(),
        inherits: Vec::new(),
        effective_at: vec!["folder".to_owned()],
        locked: false,
        condition: None,
    };
    RoleTable::new(vec![wf_viewer])
}

const ROLES: [&str; 5] = ["viewer", "editor", "admin", "owner", "wf_viewer"];

/// A random forest of workspaces, folders and workflows.
fn forest() -> impl Strategy<Value = Vec<(ResourceRef, Option<ResourceRef>, bool)>> {
    proptest::collection::vec(
        (
            0..3usize,
            any::<prop::sample::Index>(),
            any::<bool>(),
            prop::bool::weighted(0.15),
        ),
        1..50,
    )
    .prop_map(|specs| {
        let types = ["workspace", "folder", "workflow"];
        let mut rows: Vec<(ResourceRef, Option<ResourceRef>, bool)> = Vec::new();
        for (i, (t, parent, top, private)) in specs.into_iter().enumerate() {
            let me = r(types[t], &format!("n{:02}", (i * 37) % 100));
            let parent = if top || rows.is_empty() {
                None
            } else {
                Some(rows[parent.index(rows.len())].0.clone())
            };
            rows.push((me, parent, private));
        }
        rows
    })
}

/// Grants of alice: (scope: None for the tenant or a row index, role, deny,
/// expired).
fn grants() -> impl Strategy<Value = Vec<(Option<prop::sample::Index>, usize, bool, bool)>> {
    proptest::collection::vec(
        (
            prop::option::weighted(0.8, any::<prop::sample::Index>()),
            0..ROLES.len(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.1),
        ),
        0..6,
    )
}

fn bindings(
    rows: &[(ResourceRef, Option<ResourceRef>, bool)],
    specs: &[(Option<usize>, usize, bool, bool)],
    now: Millis,
) -> Vec<Binding> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (scope, role, deny, expired))| Binding {
            grant: std::sync::Arc::new(Grant {
                id: format!("g{i}"),
                subject: crate::model::SubjectRef::Principal("alice".to_owned()),
                role_id: ROLES[*role].to_owned(),
                scope: match scope {
                    None => Scope::Tenant,
                    Some(ix) => Scope::Resource(rows[*ix].0.clone()),
                },
                effect: if *deny { Effect::Deny } else { Effect::Allow },
                expires_at: expired.then_some(now - 1),
                condition: None,
                created_at: 0,
            }),
            via_teams: Vec::new(),
        })
        .collect()
}

/// What `Check` allows, resource by resource, in the tree's order.
fn brute_force(tree: &Tree, roles: &RoleTable, q: ListQuery<'_>) -> Vec<ResourceRef> {
    let mut out = Vec::new();
    tree.walk(None, |path| {
        let node = path.last().unwrap();
        if node.resource.rtype == q.rtype {
            let node_first: Vec<ResourceNode> = path.iter().rev().map(|n| (*n).clone()).collect();
            let question = Question {
                rtype: q.rtype,
                action: q.action,
                path: Some(&node_first),
                context: q.context,
            };
            if decide(
                Subject::Principal(q.principal),
                q.bindings,
                roles,
                question,
                q.now,
            )
            .allowed
            {
                out.push(node.resource.clone());
            }
        }
        Step::Descend
    });
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Paged through at any page size, the index lists exactly what `Check`
    /// allows, in the tree's order, each page at most the page size.
    #[test]
    fn lists_from_the_index_are_exactly_what_check_allows(
        rows in forest(),
        specs in grants(),
        rtype in prop_oneof![Just("workflow"), Just("folder"), Just("workspace")],
        action in prop_oneof![Just("view"), Just("edit"), Just("delete")],
        limit in 1..6usize,
        budget in prop_oneof![Just(MAX_VISITS), 1..8usize],
        active in prop::bool::weighted(0.9),
    ) {
        let mut rows = rows;
        let mut seen = HashSet::new();
        rows.retain(|(me, _, _)| seen.insert(me.clone()));
        // A parent dropped as a duplicate: hang its children at the top.
        let present: HashSet<ResourceRef> = rows.iter().map(|(me, _, _)| me.clone()).collect();
        for row in &mut rows {
            if row.1.as_ref().is_some_and(|p| !present.contains(p)) {
                row.1 = None;
            }
        }
        let Ok(tree) = Tree::from_rows(rows.clone()) else {
            return Ok(());
        };
        let roles = roles();
        let now = 1_000_000;
        let specs: Vec<(Option<usize>, usize, bool, bool)> = specs
            .iter()
            .map(|(s, role, deny, expired)| (s.map(|i| i.index(rows.len())), *role, *deny, *expired))
            .collect();
        let bs = bindings(&rows, &specs, now);
        let p = alice(if active { PrincipalStatus::Active } else { PrincipalStatus::Suspended });
        let q = ListQuery { principal: Some(&p), bindings: &bs, rtype, action, now, context: RequestContext::none() };
        let want = brute_force(&tree, &roles, q);
        let mut got = Vec::new();
        let mut after: Option<Vec<ResourceRef>> = None;
        // Every page ends at its limit or its budget, and paging on gives
        // the whole list, in order, each once.
        for _ in 0..=(want.len() + rows.len()) {
            let page = accessible_within(&tree, &roles, q, after.as_deref(), limit, budget);
            prop_assert!(page.resources.len() <= limit);
            prop_assert!(page.visited <= budget);
            got.extend(page.resources);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_page_walks_only_the_covered_subtree() {
    // 2,000 workflows in one workspace and a grant on one small folder: the
    // page is found without visiting the workspace's other children.
    let mut rows = vec![
        (r("workspace", "ws"), None, false),
        (r("folder", "a"), Some(r("workspace", "ws")), false),
        (r("workflow", "in-a"), Some(r("folder", "a")), false),
    ];
    for i in 0..2_000 {
        rows.push((
            r("workflow", &format!("w{i:04}")),
            Some(r("workspace", "ws")),
            false,
        ));
    }
    let tree = Tree::from_rows(rows).unwrap();
    let bs = bindings(
        &[(r("folder", "a"), None, false)],
        &[(Some(0), 0, false, false)],
        0,
    );
    let p = alice(PrincipalStatus::Active);
    let q = ListQuery {
        principal: Some(&p),
        bindings: &bs,
        rtype: "workflow",
        action: "view",
        now: 0,
        context: RequestContext::none(),
    };
    let roles = roles();
    let page = accessible(&tree, &roles, q, None, 10);
    assert_eq!(page.resources, [r("workflow", "in-a")]);
    // The folder and its workflow, not the workspace's 2,000 others.
    assert_eq!(page.visited, 2);
    assert_eq!(page.next, None);
}

#[test]
fn a_pages_budget_counts_the_linked_decisions_it_makes() {
    // Ten workflows, each acting on two boards: deciding each costs the
    // page three (itself and its two linked decisions).
    let mut rows = vec![(r("workspace", "ws"), None, false)];
    for b in ["b1", "b2"] {
        rows.push((r("board", b), Some(r("workspace", "ws")), false));
    }
    for i in 0..10 {
        rows.push((
            r("workflow", &format!("w{i}")),
            Some(r("workspace", "ws")),
            false,
        ));
    }
    let mut tree = Tree::from_rows(rows).unwrap();
    let link = |b: &str| crate::model::Link {
        resource: r("board", b),
        action: "view".to_owned(),
        on: vec!["view".to_owned()],
    };
    for i in 0..10 {
        assert!(tree.set_links(&r("workflow", &format!("w{i}")), &[link("b1"), link("b2")]));
    }
    let bs = bindings(
        &[(r("workspace", "ws"), None, false)],
        &[(Some(0), 0, false, false)],
        0,
    );
    let p = alice(PrincipalStatus::Active);
    let q = ListQuery {
        principal: Some(&p),
        bindings: &bs,
        rtype: "workflow",
        action: "view",
        now: 0,
        context: RequestContext::none(),
    };
    let roles = roles();
    // Unbounded: every workflow (the viewer passes both links), and the
    // work counts the linked decisions: the workspace, two boards, and ten
    // workflows at three each.
    let all = accessible(&tree, &roles, q, None, 100);
    assert_eq!(all.resources.len(), 10);
    assert_eq!(all.visited, 1 + 2 + 10 * 3);
    // A budget of 12 ends the page after three workflows (1 + 2 + 3 * 3),
    // resuming after the third.
    let page = accessible_within(&tree, &roles, q, None, 100, 12);
    assert_eq!(page.resources.len(), 3, "{page:?}");
    assert!(page.next.is_some());
}

use super::*;
use proptest::prelude::*;

fn r(t: &str, id: &str) -> ResourceRef {
    ResourceRef {
        rtype: t.to_owned(),
        id: id.to_owned(),
    }
}

/// The rows of a random forest: node `i` is `(type, id)` with a parent
/// among the nodes before it (or none).
fn forest() -> impl Strategy<Value = Vec<(ResourceRef, Option<ResourceRef>, bool)>> {
    proptest::collection::vec(
        (
            0..3usize,
            0..1_000usize,
            any::<prop::sample::Index>(),
            any::<bool>(),
            any::<bool>(),
        ),
        0..60,
    )
    .prop_map(|specs| {
        let types = ["workspace", "folder", "workflow"];
        let mut rows: Vec<(ResourceRef, Option<ResourceRef>, bool)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (t, id, parent, top, private) in specs {
            let me = r(types[t], &format!("n{id}"));
            if !seen.insert(me.clone()) {
                continue;
            }
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

/// Each resource's path from the top, the resource last.
fn paths(rows: &[(ResourceRef, Option<ResourceRef>, bool)]) -> Vec<Vec<ResourceRef>> {
    let parent: HashMap<&ResourceRef, &Option<ResourceRef>> =
        rows.iter().map(|(r, p, _)| (r, p)).collect();
    let mut out: Vec<Vec<ResourceRef>> = rows
        .iter()
        .map(|(r, _, _)| {
            let mut path = vec![r.clone()];
            let mut cur = parent[r].clone();
            while let Some(p) = cur {
                cur = parent[&p].clone();
                path.push(p);
            }
            path.reverse();
            path
        })
        .collect();
    out.sort();
    out
}

/// Every path a full walk visits, in order.
fn walked(t: &Tree, after: Option<&[ResourceRef]>) -> Vec<Vec<ResourceRef>> {
    let mut out = Vec::new();
    t.walk(after, |path| {
        out.push(path.iter().map(|n| n.resource.clone()).collect());
        Step::Descend
    });
    out
}

proptest! {
    /// A walk visits every resource once, in the order of sorted paths.
    #[test]
    fn a_walk_visits_paths_in_sorted_order(rows in forest()) {
        let t = Tree::from_rows(rows.clone()).unwrap();
        prop_assert_eq!(t.len(), rows.len());
        prop_assert_eq!(walked(&t, None), paths(&rows));
    }

    /// Resuming after any visited path gives exactly the rest of the walk,
    /// and so does resuming after a path whose resource has been removed
    /// since (everything sorted after it).
    #[test]
    fn a_walk_resumes_after_any_path(rows in forest(), pick in any::<prop::sample::Index>()) {
        let t = Tree::from_rows(rows.clone()).unwrap();
        let all = walked(&t, None);
        for (i, p) in all.iter().enumerate() {
            prop_assert_eq!(&walked(&t, Some(p))[..], &all[i + 1..]);
        }
        if !rows.is_empty() {
            let gone = all[pick.index(all.len())].clone();
            let mut t2 = t.clone();
            prop_assert!(t2.remove(gone.last().unwrap()));
            let rest: Vec<_> = walked(&t2, None).into_iter().filter(|p| *p > gone).collect();
            prop_assert_eq!(walked(&t2, Some(&gone)), rest);
        }
    }

    /// A walk within one subtree, resumed after any path (before, inside or
    /// after the subtree), visits exactly the part of the full walk that is
    /// inside the subtree and after the path.
    #[test]
    fn a_walk_within_a_subtree_resumes_after_any_path(rows in forest()) {
        let t = Tree::from_rows(rows.clone()).unwrap();
        let all = walked(&t, None);
        for root in &all {
            let inside: Vec<&Vec<ResourceRef>> =
                all.iter().filter(|p| p.starts_with(root)).collect();
            let mut cursors: Vec<Option<&Vec<ResourceRef>>> = all.iter().map(Some).collect();
            cursors.push(None);
            for cursor in cursors {
                let mut got = Vec::new();
                t.walk_within(root.last().unwrap(), cursor.map(|c| &c[..]), |path| {
                    got.push(path.iter().map(|n| n.resource.clone()).collect::<Vec<_>>());
                    Step::Descend
                });
                let want: Vec<Vec<ResourceRef>> = inside
                    .iter()
                    .filter(|p| cursor.is_none_or(|c| **p > c))
                    .map(|p| (*p).clone())
                    .collect();
                prop_assert_eq!(got, want, "within {:?} after {:?}", root, cursor);
            }
        }
    }

    /// Inserting, moving, re-flagging and removing keep the tree equal to
    /// one built afresh from the same rows.
    #[test]
    fn changes_keep_the_tree_equal_to_a_fresh_one(
        rows in forest(),
        ops in proptest::collection::vec((0..4usize, any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>()), 0..20),
    ) {
        let mut t = Tree::from_rows(rows.clone()).unwrap();
        let mut model: Vec<(ResourceRef, Option<ResourceRef>, bool)> = rows;
        let mut next = 0;
        for (op, a, b, flag) in ops {
            let pick = |i: &prop::sample::Index, m: &Vec<(ResourceRef, Option<ResourceRef>, bool)>| {
                (!m.is_empty()).then(|| m[i.index(m.len())].0.clone())
            };
            match op {
                0 => {
                    next += 1;
                    let me = r("workflow", &format!("new{next}"));
                    let parent = if flag { None } else { pick(&a, &model) };
                    prop_assert!(t.insert(me.clone(), parent.as_ref(), false));
                    model.push((me, parent, false));
                }
                1 => {
                    let (Some(x), target) = (pick(&a, &model), pick(&b, &model)) else { continue };
                    let target = if flag { None } else { target };
                    // A move under itself or its own subtree is refused.
                    let under_itself = target.as_ref().is_some_and(|tg| {
                        paths(&model).iter().any(|p| p.last() == Some(tg) && p.contains(&x))
                    });
                    prop_assert_eq!(t.move_to(&x, target.as_ref()), !under_itself);
                    if !under_itself {
                        model.iter_mut().find(|(m, _, _)| *m == x).unwrap().1 = target;
                    }
                }
                2 => {
                    let Some(x) = pick(&a, &model) else { continue };
                    prop_assert!(t.set_private(&x, flag));
                    model.iter_mut().find(|(m, _, _)| *m == x).unwrap().2 = flag;
                }
                _ => {
                    let Some(x) = pick(&a, &model) else { continue };
                    prop_assert!(t.remove(&x));
                    let gone: Vec<ResourceRef> = paths(&model)
                        .into_iter()
                        .filter(|p| p.contains(&x))
                        .map(|p| p.last().unwrap().clone())
                        .collect();
                    model.retain(|(m, _, _)| !gone.contains(m));
                }
            }
        }
        let fresh = Tree::from_rows(model.clone()).unwrap();
        prop_assert_eq!(walked(&t, None), walked(&fresh, None));
        for (m, _, private) in &model {
            let a = t.ancestry(m).unwrap();
            prop_assert_eq!(&a, &fresh.ancestry(m).unwrap());
            prop_assert_eq!(a[0].private, *private);
        }
        prop_assert_eq!(t.len(), model.len());
    }
}

#[test]
fn skipping_a_node_skips_its_subtree_and_stop_ends_the_walk() {
    let t = Tree::from_rows([
        (r("workspace", "a"), None, false),
        (r("folder", "f"), Some(r("workspace", "a")), true),
        (r("workflow", "w"), Some(r("folder", "f")), false),
        (r("workflow", "x"), Some(r("workspace", "a")), false),
        (r("workspace", "b"), None, false),
    ])
    .unwrap();
    let mut seen = Vec::new();
    t.walk(None, |path| {
        let last = &path.last().unwrap().resource;
        seen.push(last.id.clone());
        if path.last().unwrap().private {
            Step::Skip
        } else if last.id == "x" {
            Step::Stop
        } else {
            Step::Descend
        }
    });
    assert_eq!(seen, ["a", "f", "x"]);
    assert_eq!(
        t.ancestry(&r("workflow", "w"))
            .unwrap()
            .iter()
            .map(|n| n.resource.id.as_str())
            .collect::<Vec<_>>(),
        ["w", "f", "a"]
    );
}

#[test]
fn rows_that_do_not_make_a_tree_are_refused() {
    let a = r("folder", "a");
    let b = r("folder", "b");
    assert_eq!(
        Tree::from_rows([(a.clone(), Some(b.clone()), false)]).unwrap_err(),
        TreeError::MissingParent(a.clone())
    );
    assert_eq!(
        Tree::from_rows([(a.clone(), None, false), (a.clone(), None, false)]).unwrap_err(),
        TreeError::Duplicate(a.clone())
    );
    assert!(matches!(
        Tree::from_rows([(a.clone(), Some(b.clone()), false), (b, Some(a), false)]),
        Err(TreeError::Cycle(_))
    ));
}

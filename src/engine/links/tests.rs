//! Unit tests of links: a workflow in one workspace acting on boards of
//! another (monday), built by hand.
//!
//! ```text
//! tenant
//! ├── workspace:w1 ── workflow:wf   (links to board:b)
//! └── workspace:w2 ── board:b       (links, in some tests, further on)
//!                 ├── board:c
//!                 └── board:d
//! ```

use super::*;
use crate::engine::{Explanation, Question, Reason, Subject};
use crate::model::condition::RequestContext;
use crate::model::{
    Binding, Condition, Effect, Grant, ImpliedAction, Principal, PrincipalKind, PrincipalStatus,
    ResourceNode, ResourceRef, RoleTable, Scope, SubjectRef,
};
use std::collections::BTreeMap;
use std::sync::Arc;

fn rref(s: &str) -> ResourceRef {
    let (t, id) = s.split_once(':').expect("type:id");
    ResourceRef {
        rtype: t.to_owned(),
        id: id.to_owned(),
    }
}

fn link(to: &str, action: &str, on: &[&str]) -> Link {
    Link {
        resource: rref(to),
        action: action.to_owned(),
        on: on.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// A tenant of resources, each under a workspace, some with links.
#[derive(Default)]
struct World {
    parent: BTreeMap<ResourceRef, Option<ResourceRef>>,
    links: BTreeMap<ResourceRef, Vec<Link>>,
}

impl World {
    fn monday() -> Self {
        let mut w = World::default();
        for ws in ["workspace:w1", "workspace:w2"] {
            w.parent.insert(rref(ws), None);
        }
        w.parent
            .insert(rref("workflow:wf"), Some(rref("workspace:w1")));
        for b in ["board:b", "board:c", "board:d", "board:e", "board:f"] {
            w.parent.insert(rref(b), Some(rref("workspace:w2")));
        }
        w.links.insert(
            rref("workflow:wf"),
            vec![link("board:b", "view", &["edit"])],
        );
        w
    }

    fn ancestry(&self, r: &ResourceRef) -> Option<Vec<ResourceNode>> {
        let mut out = Vec::new();
        let mut at = Some(r.clone());
        while let Some(x) = at {
            let parent = self.parent.get(&x)?.clone();
            out.push(ResourceNode {
                resource: x.clone(),
                private: false,
                restricted: false,
                attributes: None,
                links: self.links.get(&x).map(|l| Arc::new(l.clone())),
            });
            at = parent;
        }
        Some(out)
    }
}

fn grant(role: &str, on: &str) -> Binding {
    grant_if(role, on, None)
}

fn grant_if(role: &str, on: &str, condition: Option<&str>) -> Binding {
    Binding {
        grant: Arc::new(Grant {
            id: format!("{role}@{on}"),
            subject: SubjectRef::Principal("ana".to_owned()),
            role_id: role.to_owned(),
            scope: Scope::Resource(rref(on)),
            effect: Effect::Allow,
            expires_at: None,
            condition: condition.map(|c| Condition::compile("condition", c).expect("condition")),
            created_at: 0,
        }),
        via_teams: Vec::new(),
    }
}

fn ana() -> Principal {
    Principal {
        id: "ana".to_owned(),
        kind: PrincipalKind::User,
        status: PrincipalStatus::Active,
        display_name: "Ana".to_owned(),
        created_at: 0,
        invitation_expires_at: None,
    }
}

fn ask_in(
    world: &World,
    roles: &RoleTable,
    bindings: &[Binding],
    (action, on): (&str, &str),
    context: &RequestContext,
) -> Decision {
    let p = ana();
    let r = rref(on);
    let path = world.ancestry(&r);
    let resolve = |x: &ResourceRef| world.ancestry(x);
    decide_linked(
        Subject::Principal(Some(&p)),
        bindings.iter(),
        roles,
        Question {
            rtype: &r.rtype,
            action,
            path: path.as_deref(),
            context,
        },
        0,
        &Linked {
            bindings,
            ancestry: &resolve,
        },
    )
}

fn ask(world: &World, bindings: &[Binding], action: &str, on: &str) -> Decision {
    ask_in(
        world,
        &RoleTable::new(Vec::new()),
        bindings,
        (action, on),
        RequestContext::none(),
    )
}

#[track_caller]
fn assert_link_denied(d: &Decision, to: &str, action: &str) {
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.reason, Reason::LinkDenied, "{d:?}");
    assert_eq!(
        d.explanation.linked,
        Some((rref(to), action.to_owned())),
        "{d:?}"
    );
}

#[test]
fn editing_a_workflow_needs_viewing_the_board_it_acts_on() {
    let w = World::monday();
    let editor = [grant("editor", "workspace:w1")];
    let d = ask(&w, &editor, "edit", "workflow:wf");
    assert_link_denied(&d, "board:b", "view");
    assert!(d.explanation.detail.contains("board:b"), "{d:?}");
    // The gate is on editing only: viewing the workflow is as before.
    assert!(ask(&w, &editor, "view", "workflow:wf").allowed);
    // Whoever may view the board, by a grant anywhere above it, may edit.
    for on_board in ["workspace:w2", "board:b"] {
        let both = [editor[0].clone(), grant("viewer", on_board)];
        let d = ask(&w, &both, "edit", "workflow:wf");
        assert!(d.allowed, "{on_board}: {d:?}");
        assert_eq!(d.reason, Reason::Granted);
    }
    // A link never allows: the board's access alone gives nothing here.
    let d = ask(&w, &[grant("owner", "board:b")], "edit", "workflow:wf");
    assert_eq!(d.reason, Reason::NoGrant, "{d:?}");
}

#[test]
fn a_denial_on_the_linked_resource_is_the_answer_with_its_grant() {
    let w = World::monday();
    let mut deny = grant("viewer", "board:b");
    Arc::make_mut(&mut deny.grant).effect = Effect::Deny;
    let d = ask(
        &w,
        &[
            grant("editor", "workspace:w1"),
            grant("viewer", "workspace:w2"),
            deny,
        ],
        "edit",
        "workflow:wf",
    );
    assert_link_denied(&d, "board:b", "view");
    assert_eq!(d.explanation.grant_id, "viewer@board:b", "{d:?}");
}

#[test]
fn links_gate_the_linking_resource_only_not_what_lies_below_it() {
    let w = World::monday();
    let editor = [grant("editor", "workspace:w1")];
    let p = ana();
    let path = w.ancestry(&rref("workflow:wf"));
    let resolve = |x: &ResourceRef| w.ancestry(x);
    // A question of another type on the workflow's path (what delegation
    // and lists ask for a resource below it) is not gated by its links.
    let d = decide_linked(
        Subject::Principal(Some(&p)),
        editor.iter(),
        &RoleTable::new(Vec::new()),
        Question {
            rtype: "step",
            action: "edit",
            path: path.as_deref(),
            context: RequestContext::none(),
        },
        0,
        &Linked {
            bindings: &editor,
            ancestry: &resolve,
        },
    );
    assert!(d.allowed, "{d:?}");
    assert_link_denied(&ask(&w, &editor, "edit", "workflow:wf"), "board:b", "view");
}

#[test]
fn an_action_that_implies_a_gated_one_is_gated_too() {
    let mut w = World::monday();
    w.links.insert(
        rref("workflow:wf"),
        vec![link("board:b", "view", &["view"])],
    );
    let roles = RoleTable::new(Vec::new()).with_implications(&[ImpliedAction {
        action: "edit".into(),
        implies: "view".into(),
    }]);
    let d = ask_in(
        &w,
        &roles,
        &[grant("editor", "workspace:w1")],
        ("edit", "workflow:wf"),
        RequestContext::none(),
    );
    assert_link_denied(&d, "board:b", "view");
}

#[test]
fn a_linked_resource_that_does_not_exist_denies() {
    let mut w = World::monday();
    w.parent.remove(&rref("board:b"));
    let d = ask(
        &w,
        &[
            grant("owner", "workspace:w1"),
            grant("owner", "workspace:w2"),
        ],
        "edit",
        "workflow:wf",
    );
    assert_link_denied(&d, "board:b", "view");
    assert!(d.explanation.detail.contains("does not exist"), "{d:?}");
}

#[test]
fn links_are_followed_through_the_linked_resources_own_links_within_bounds() {
    let mut w = World::monday();
    let all = [
        grant("owner", "workspace:w1"),
        grant("owner", "workspace:w2"),
    ];
    // wf → b → c → d → e: four links deep, all passable.
    for (from, to) in [
        ("board:b", "board:c"),
        ("board:c", "board:d"),
        ("board:d", "board:e"),
    ] {
        w.links
            .insert(rref(from), vec![link(to, "view", &["view"])]);
    }
    assert!(ask(&w, &all, "edit", "workflow:wf").allowed);
    // Denied at the far end: the answer names where, and the way there.
    let mut deny = grant("viewer", "board:e");
    Arc::make_mut(&mut deny.grant).effect = Effect::Deny;
    let with_deny = [all[0].clone(), all[1].clone(), deny];
    let d = ask(&w, &with_deny, "edit", "workflow:wf");
    assert_link_denied(&d, "board:e", "view");
    assert_eq!(d.explanation.grant_id, "viewer@board:e", "{d:?}");
    assert!(
        d.explanation
            .detail
            .starts_with("`edit` on `workflow:wf` needs `view` on `board:b`"),
        "{d:?}"
    );
    // A fifth link is past the depth bound: denied whatever is held.
    w.links
        .insert(rref("board:e"), vec![link("board:f", "view", &["view"])]);
    let d = ask(&w, &all, "edit", "workflow:wf");
    assert_eq!(d.reason, Reason::LinkDenied, "{d:?}");
    assert!(d.explanation.detail.contains("deeper"), "{d:?}");
    // A cycle denies.
    w.links
        .insert(rref("board:c"), vec![link("board:b", "view", &["view"])]);
    let d = ask(&w, &all, "edit", "workflow:wf");
    assert_eq!(d.reason, Reason::LinkDenied, "{d:?}");
    assert!(d.explanation.detail.contains("cycle"), "{d:?}");
}

#[test]
fn the_number_of_linked_decisions_is_bounded() {
    let mut w = World::monday();
    // wf → 16 boards, each → 16 boards: 272 links, more than one decision
    // follows.
    let mut wide = Vec::new();
    for i in 0..16 {
        let b = format!("board:x{i}");
        w.parent.insert(rref(&b), Some(rref("workspace:w2")));
        let mut inner = Vec::new();
        for j in 0..16 {
            let c = format!("board:y{i}_{j}");
            w.parent.insert(rref(&c), Some(rref("workspace:w2")));
            inner.push(link(&c, "view", &["view"]));
        }
        w.links.insert(rref(&b), inner);
        wide.push(link(&b, "view", &["edit"]));
    }
    w.links.insert(rref("workflow:wf"), wide);
    let all = [
        grant("owner", "workspace:w1"),
        grant("owner", "workspace:w2"),
    ];
    let d = ask(&w, &all, "edit", "workflow:wf");
    assert_eq!(d.reason, Reason::LinkDenied, "{d:?}");
    assert!(d.explanation.detail.contains("at most"), "{d:?}");
    // Within the bound the same shape is allowed.
    for i in 0..16 {
        w.links
            .get_mut(&rref(&format!("board:x{i}")))
            .expect("board")
            .truncate(1);
    }
    assert!(ask(&w, &all, "edit", "workflow:wf").allowed);
}

#[test]
fn a_linked_decision_that_lacks_context_says_which_fields() {
    let w = World::monday();
    let bindings = [
        grant("editor", "workspace:w1"),
        grant_if("viewer", "workspace:w2", Some("request.mfa == true")),
    ];
    let roles = RoleTable::new(Vec::new());
    let d = ask_in(
        &w,
        &roles,
        &bindings,
        ("edit", "workflow:wf"),
        RequestContext::none(),
    );
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::ConditionContextMissing, "{d:?}");
    assert_eq!(d.explanation.missing_context, ["mfa"], "{d:?}");
    let mfa = RequestContext::new(
        [],
        [("mfa".to_owned(), serde_json::Value::Bool(true))]
            .into_iter()
            .collect(),
    )
    .expect("context");
    assert!(ask_in(&w, &roles, &bindings, ("edit", "workflow:wf"), &mfa).allowed);
}

#[test]
fn super_users_pass_links_and_denials_elsewhere_stay_their_own() {
    let w = World::monday();
    let resolve = |x: &ResourceRef| w.ancestry(x);
    let path = w.ancestry(&rref("workflow:wf"));
    let d = decide_linked(
        Subject::SuperUser,
        [].iter(),
        &RoleTable::new(Vec::new()),
        Question {
            rtype: "workflow",
            action: "edit",
            path: path.as_deref(),
            context: RequestContext::none(),
        },
        0,
        &Linked {
            bindings: &[],
            ancestry: &resolve,
        },
    );
    assert!(d.allowed);
    // No grant at all: the workflow's own denial, not the link's.
    let d = ask(&w, &[], "edit", "workflow:wf");
    assert_eq!(d.reason, Reason::NoGrant);
    assert_eq!(d.explanation.linked, None::<(ResourceRef, String)>);
    let _ = Explanation::default();
}

#[test]
fn links_to_fetch_names_what_a_store_must_read_until_nothing_is_missing() {
    let mut w = World::monday();
    w.links
        .insert(rref("board:b"), vec![link("board:c", "view", &["view"])]);
    let roles = RoleTable::new(Vec::new());
    let path = w.ancestry(&rref("workflow:wf")).expect("wf");
    let mut known = Gathered::new();
    // Viewing the workflow needs nothing, nor does editing something of
    // another type below it (its links gate the workflow itself).
    assert!(links_to_fetch(&path, ("step", "edit"), &roles, &known).is_empty());
    assert!(links_to_fetch(&path, ("workflow", "view"), &roles, &known).is_empty());
    let mut rounds = 0;
    loop {
        let want = links_to_fetch(&path, ("workflow", "edit"), &roles, &known);
        if want.is_empty() {
            break;
        }
        rounds += 1;
        for r in want {
            known.insert(r.clone(), w.ancestry(&r));
        }
    }
    assert_eq!(rounds, 2);
    let mut keys: Vec<String> = known.keys().map(|r| r.to_string()).collect();
    keys.sort();
    assert_eq!(keys, ["board:b", "board:c"]);
    // Deciding over what was gathered is deciding over the whole world.
    let all = [grant("owner", "workspace:w1"), grant("viewer", "board:b")];
    let p = ana();
    let d = decide_gathered(
        Subject::Principal(Some(&p)),
        &all,
        &roles,
        Question {
            rtype: "workflow",
            action: "edit",
            path: Some(&path),
            context: RequestContext::none(),
        },
        0,
        &known,
    );
    assert_eq!(d, ask(&w, &all, "edit", "workflow:wf"));
    assert_link_denied(&d, "board:c", "view");
    assert!(d.explanation.detail.contains("board:b"), "{d:?}");
}

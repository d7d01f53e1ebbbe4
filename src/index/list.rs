//! Lists from the index: the resources of a type on which a principal may do
//! an action, a page at a time, in the tree's order. The walk enters only the
//! subtrees the principal's allow grants cover (and the way down to grants
//! inside private resources), skips a denied subtree whole, and stops when
//! the page is full: the work for a page follows the page and the grants,
//! not the tenant. Every resource listed is confirmed with the engine's
//! [`decide_linked_counted`] (links followed, their decisions counted against the page's budget), so a list is exactly the resources `Check` allows.

use super::tree::{Step, Tree};
use crate::engine::links::decide_linked_counted;
use crate::engine::{has_conditions, Linked, Question, Subject};
use crate::model::condition::RequestContext;
use crate::model::{
    Binding, Effect, Millis, Principal, PrincipalStatus, ResourceNode, ResourceRef, RoleMatch,
    RoleTable, Scope,
};
use std::collections::{HashMap, HashSet};

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The resources, in the tree's order.
    pub resources: Vec<ResourceRef>,
    /// When more follow: the path (from the top) of the last one, to resume
    /// after.
    pub next: Option<Vec<ResourceRef>>,
    /// Resources the walk looked at (the work the page cost).
    pub visited: usize,
}

/// What is asked: who, which action on which type.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    /// The principal (`None`: not a member).
    pub principal: Option<&'a Principal>,
    /// Its bindings, direct and through teams.
    pub bindings: &'a [Binding],
    /// Resource type listed.
    pub rtype: &'a str,
    /// Action.
    pub action: &'a str,
    /// Now.
    pub now: Millis,
    /// The caller's context, which conditions read.
    pub context: &'a RequestContext,
}

/// Most resources one page looks at (a decision on a linked resource counts
/// as one more). A page that reaches it ends early, with
/// fewer resources than asked (or none), and resumes after the last resource
/// it looked at: the work of any page is bounded, whatever the tenant.
pub const MAX_VISITS: usize = 100_000;

/// The resources of `q.rtype` on which `q.principal` may `q.action`, after
/// the path `after`, at most `limit`, looking at most at [`MAX_VISITS`]
/// resources.
pub fn accessible(
    tree: &Tree,
    roles: &RoleTable,
    q: ListQuery<'_>,
    after: Option<&[ResourceRef]>,
    limit: usize,
) -> ListPage {
    accessible_within(tree, roles, q, after, limit, MAX_VISITS)
}

/// As [`accessible`], looking at most at `budget` resources (at least one).
pub fn accessible_within<'t>(
    tree: &'t Tree,
    roles: &RoleTable,
    q: ListQuery<'_>,
    after: Option<&[ResourceRef]>,
    limit: usize,
    budget: usize,
) -> ListPage {
    let empty = ListPage {
        resources: Vec::new(),
        next: None,
        visited: 0,
    };
    let Some(principal) = q.principal.filter(|p| p.status == PrincipalStatus::Active) else {
        return empty;
    };
    let Some(Reach {
        denied,
        tenant_wide,
        granted,
        on_the_way,
        tops,
    }) = Reach::of(tree, roles, q)
    else {
        return empty;
    };
    // The bindings a resource is decided among: the tenant-wide ones and
    // those on its path.
    let mut tenant_bindings: Vec<&Binding> = Vec::new();
    let mut by_scope: HashMap<&ResourceRef, Vec<&Binding>> = HashMap::new();
    for b in q.bindings {
        match &b.grant.scope {
            Scope::Tenant => tenant_bindings.push(b),
            Scope::Resource(r) => by_scope.entry(r).or_default().push(b),
        }
    }

    let mut found: Vec<&ResourceRef> = Vec::new();
    let mut node_first: Vec<ResourceNode> = Vec::new();
    let mut among: Vec<&Binding> = Vec::new();
    let mut visited = 0usize;
    let full = std::cell::Cell::new(false);
    let linked_spent = std::cell::Cell::new(0usize);
    let resolve = |r: &ResourceRef| tree.ancestry(r);
    let linked = Linked {
        bindings: q.bindings,
        ancestry: &resolve,
    };
    let mut judge = |path: &[&'t ResourceNode]| -> Step {
        let Some(node) = path.last() else {
            return Step::Skip;
        };
        if denied.contains(&node.resource) {
            return Step::Skip;
        }
        // Reached by a grant: one on a resource of the path with no private
        // boundary below it, or a tenant-wide one with none at all.
        let mut covered = false;
        let mut bounded = false;
        for n in path.iter().rev() {
            if granted.contains(&n.resource) {
                covered = true;
                break;
            }
            if n.private {
                bounded = true;
                break;
            }
        }
        covered |= tenant_wide && !bounded;
        if !covered && !on_the_way.contains(&node.resource) {
            return Step::Skip;
        }
        if covered && node.resource.rtype == q.rtype {
            node_first.clear();
            node_first.extend(path.iter().rev().map(|n| (*n).clone()));
            among.clear();
            among.extend(tenant_bindings.iter().copied());
            for n in path {
                if let Some(bs) = by_scope.get(&n.resource) {
                    among.extend(bs.iter().copied());
                }
            }
            let question = Question {
                rtype: q.rtype,
                action: q.action,
                path: Some(&node_first),
                context: q.context,
            };
            let (d, spent) = decide_linked_counted(
                Subject::Principal(Some(principal)),
                among.iter().copied(),
                roles,
                question,
                q.now,
                &linked,
            );
            // A linked decision costs the page what looking at a resource does.
            linked_spent.set(linked_spent.get() + spent);
            if d.allowed {
                found.push(&node.resource);
                if found.len() > limit {
                    full.set(true);
                    return Step::Stop;
                }
            }
        }
        Step::Descend
    };
    // Where the budget ran out: the next page resumes after it.
    let spent: std::cell::RefCell<Option<Vec<ResourceRef>>> = std::cell::RefCell::new(None);
    let mut visit = |path: &[&'t ResourceNode]| -> Step {
        let step = judge(path);
        visited += 1 + linked_spent.take();
        if step != Step::Stop && visited >= budget.max(1) {
            *spent.borrow_mut() = Some(path.iter().map(|n| n.resource.clone()).collect());
            return Step::Stop;
        }
        step
    };
    if tenant_wide {
        tree.walk(after, &mut visit);
    } else {
        for top in &tops {
            if let Some(r) = top.last() {
                tree.walk_within(r, after, &mut visit);
            }
            if full.get() || spent.borrow().is_some() {
                break;
            }
        }
    }
    let more = found.len() > limit;
    found.truncate(limit);
    let next = match found.last() {
        Some(last) if more => tree
            .ancestry(last)
            .map(|a| a.into_iter().rev().map(|n| n.resource).collect()),
        _ => spent.into_inner(),
    };
    ListPage {
        visited,
        next,
        resources: found.into_iter().cloned().collect(),
    }
}

/// Where a principal's live grants of the action sit, for one list.
struct Reach<'q> {
    /// Resources under a deny of the action (a deny counts wherever its role
    /// names the permission): their subtrees are skipped whole.
    denied: HashSet<&'q ResourceRef>,
    /// An allow on the whole tenant.
    tenant_wide: bool,
    /// Resources with an allow. All of them: a tenant-wide one does not
    /// reach inside private resources, grants in there do.
    granted: HashSet<&'q ResourceRef>,
    /// The resources on the way down to a granted one.
    on_the_way: HashSet<ResourceRef>,
    /// The granted resources no other granted one contains, as paths from
    /// the top, in order (each walked once).
    tops: Vec<Vec<ResourceRef>>,
}

impl<'q> Reach<'q> {
    /// `None` when nothing can be listed (no allow, or a tenant-wide deny).
    fn of(tree: &Tree, roles: &RoleTable, q: ListQuery<'q>) -> Option<Self> {
        let live: Vec<&Binding> = q.bindings.iter().filter(|b| b.live(q.now)).collect();
        let mut denied: HashSet<&ResourceRef> = HashSet::new();
        // A conditional deny may hold on some resources and not on others:
        // only unconditional ones skip subtrees (each resource listed is
        // decided with every deny anyway).
        for b in live
            .iter()
            .filter(|b| b.grant.effect == Effect::Deny && !has_conditions(b, roles))
        {
            let names = !matches!(
                roles.role_match(&b.grant.role_id, b.grant.scope.kind(), q.rtype, q.action),
                RoleMatch::NoMatch
            );
            match (&b.grant.scope, names) {
                (_, false) => {}
                (Scope::Tenant, true) => return None,
                (Scope::Resource(r), true) => {
                    denied.insert(r);
                }
            }
        }
        let mut tenant_wide = false;
        let mut granted: HashSet<&ResourceRef> = HashSet::new();
        for b in live.iter().filter(|b| b.grant.effect == Effect::Allow) {
            if matches!(
                roles.role_match(&b.grant.role_id, b.grant.scope.kind(), q.rtype, q.action),
                RoleMatch::Matched(_)
            ) {
                match &b.grant.scope {
                    Scope::Tenant => tenant_wide = true,
                    Scope::Resource(r) => {
                        granted.insert(r);
                    }
                }
            }
        }
        if !tenant_wide && granted.is_empty() {
            return None;
        }
        let mut on_the_way: HashSet<ResourceRef> = HashSet::new();
        let mut tops: Vec<Vec<ResourceRef>> = Vec::new();
        for r in &granted {
            let Some(ancestry) = tree.ancestry(r) else {
                continue;
            };
            let above = &ancestry[1..];
            on_the_way.extend(above.iter().map(|n| n.resource.clone()));
            if !above.iter().any(|n| granted.contains(&n.resource)) {
                tops.push(ancestry.iter().rev().map(|n| n.resource.clone()).collect());
            }
        }
        tops.sort();
        Some(Reach {
            denied,
            tenant_wide,
            granted,
            on_the_way,
            tops,
        })
    }
}

#[cfg(test)]
mod tests;

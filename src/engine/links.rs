//! Links between resources: a resource may name the resources it acts on
//! (a workflow → the boards it moves items of). Doing one of a link's `on`
//! actions on the linking resource (or an action that implies one) also
//! needs the link's action on the linked resource, decided by the same rule
//! (its own links included), as SpiceDB's arrows follow a relation. The
//! walk is bounded: at most [`MAX_LINK_DEPTH`] links deep and
//! [`MAX_LINKED_DECISIONS`] linked decisions per decision; past either, or
//! around a cycle, the answer is a denial (fail closed), explained.
//!
//! Pure: the ancestry of a linked resource comes from the caller, either
//! straight from an index ([`Linked::ancestry`]) or gathered beforehand from
//! a store with [`links_to_fetch`].

use super::{decide_among, Binding, Decision, Question, Reason, RoleTable, Subject};
use crate::model::{Link, Millis, ResourceNode, ResourceRef, MAX_LINKED_DECISIONS, MAX_LINK_DEPTH};
use std::collections::HashMap;

/// What following links needs besides the question: every binding of the
/// principal (a linked resource has another path) and the ancestry of any
/// resource of the tenant (`None`: it does not exist).
pub struct Linked<'a> {
    /// All the principal's bindings, direct and through teams.
    pub bindings: &'a [Binding],
    /// The ancestry of a resource, the resource first.
    pub ancestry: &'a dyn Fn(&ResourceRef) -> Option<Vec<ResourceNode>>,
}

/// Ancestries gathered from a store for [`Linked::ancestry`].
pub type Gathered = HashMap<ResourceRef, Option<Vec<ResourceNode>>>;

/// The ancestry of a resource among those gathered (`None`, a resource
/// that does not exist, for any other: fail closed).
pub fn gathered(known: &Gathered) -> impl Fn(&ResourceRef) -> Option<Vec<ResourceNode>> + '_ {
    |r| known.get(r).cloned().flatten()
}

/// [`decide_linked`] among all of `bindings`, the linked resources'
/// ancestries those gathered in `known` (by a caller reading a store).
pub fn decide_gathered(
    subject: Subject<'_>,
    bindings: &[Binding],
    roles: &RoleTable,
    q: Question<'_>,
    now: Millis,
    known: &Gathered,
) -> Decision {
    let resolve = gathered(known);
    let linked = Linked {
        bindings,
        ancestry: &resolve,
    };
    decide_linked(subject, bindings.iter(), roles, q, now, &linked)
}

/// The links of the resource `path` starts with that doing `action` there
/// needs: those naming the action or one it implies. Only a question about
/// the resource itself (`rtype` its type) follows them: a question of
/// another type on its path stands for a resource below it, which its links
/// do not gate.
fn gating<'p>(
    path: &'p [ResourceNode],
    (rtype, action): (&'p str, &'p str),
    roles: &'p RoleTable,
) -> impl Iterator<Item = &'p Link> + 'p {
    let links = path
        .first()
        .filter(|n| n.resource.rtype == rtype)
        .and_then(|n| n.links.as_deref());
    links.into_iter().flatten().filter(move |l| {
        l.on.iter()
            .any(|a| a == action || roles.implied(action).iter().any(|i| i == a))
    })
}

/// [`decide_among`], then, when it allows, every link the action needs:
/// the first linked resource on which the principal is denied the link's
/// action makes the answer a denial, with that resource's reason when it
/// lacked context (so that the caller can retry with it) and
/// `REASON_LINK_DENIED` otherwise. The explanation is the linked decision's
/// (its grant, its condition), its detail the chain of links from the
/// question's resource, and `linked` the resource where it was denied.
pub fn decide_linked<'b, I>(
    subject: Subject<'_>,
    bindings: I,
    roles: &RoleTable,
    q: Question<'_>,
    now: Millis,
    linked: &Linked<'_>,
) -> Decision
where
    I: Iterator<Item = &'b Binding> + Clone,
{
    decide_linked_counted(subject, bindings, roles, q, now, linked).0
}

/// [`decide_linked`], with how many linked decisions it made (for callers
/// that bound their work, such as a list's page).
pub fn decide_linked_counted<'b, I>(
    subject: Subject<'_>,
    bindings: I,
    roles: &RoleTable,
    q: Question<'_>,
    now: Millis,
    linked: &Linked<'_>,
) -> (Decision, usize)
where
    I: Iterator<Item = &'b Binding> + Clone,
{
    let d = decide_among(subject, bindings, roles, q, now);
    if !d.allowed || matches!(subject, Subject::SuperUser) {
        return (d, 0);
    }
    let Some(path) = q.path else { return (d, 0) };
    let mut walk = Walk {
        subject,
        roles,
        now,
        linked,
        chain: Vec::new(),
        budget: MAX_LINKED_DECISIONS,
    };
    let answer = match walk.follow(path, q) {
        Ok(()) => d,
        Err(denial) => *denial,
    };
    (answer, MAX_LINKED_DECISIONS - walk.budget)
}

struct Walk<'w> {
    subject: Subject<'w>,
    roles: &'w RoleTable,
    now: Millis,
    linked: &'w Linked<'w>,
    /// The linking resources from the question down to here.
    chain: Vec<ResourceRef>,
    budget: usize,
}

impl Walk<'_> {
    fn follow(&mut self, path: &[ResourceNode], q: Question<'_>) -> Result<(), Box<Decision>> {
        let Some(node) = path.first() else {
            return Ok(());
        };
        for link in gating(path, (q.rtype, q.action), self.roles) {
            let refuse = |why: String| Box::new(link_denial(&node.resource, q.action, link, why));
            if self.chain.len() + 1 > MAX_LINK_DEPTH {
                return Err(refuse(format!(
                    "links nest deeper than {MAX_LINK_DEPTH}, which no decision follows"
                )));
            }
            if link.resource == node.resource || self.chain.contains(&link.resource) {
                return Err(refuse("the links form a cycle".to_owned()));
            }
            if self.budget == 0 {
                return Err(refuse(format!(
                    "a decision follows at most {MAX_LINKED_DECISIONS} links"
                )));
            }
            self.budget -= 1;
            let Some(target) = (self.linked.ancestry)(&link.resource) else {
                return Err(refuse("it does not exist".to_owned()));
            };
            let lq = Question {
                rtype: &link.resource.rtype,
                action: &link.action,
                path: Some(&target),
                context: q.context,
            };
            let d = decide_among(
                self.subject,
                self.linked.bindings.iter(),
                self.roles,
                lq,
                self.now,
            );
            if !d.allowed {
                let mut denial = link_denial(&node.resource, q.action, link, d.explanation.detail);
                if d.reason == Reason::ConditionContextMissing {
                    denial.reason = d.reason;
                }
                denial.explanation = crate::engine::Explanation {
                    detail: denial.explanation.detail,
                    linked: denial.explanation.linked,
                    ..d.explanation
                };
                return Err(Box::new(denial));
            }
            self.chain.push(node.resource.clone());
            let deeper = self.follow(&target, lq);
            self.chain.pop();
            if let Err(mut denial) = deeper {
                // Denied further down: the chain from here, the deepest link
                // named (where it was denied).
                denial.explanation.detail = format!(
                    "`{}` on `{}` needs `{}` on `{}`, which it acts on: {}",
                    q.action, node.resource, link.action, link.resource, denial.explanation.detail
                );
                return Err(denial);
            }
        }
        Ok(())
    }
}

/// The denial of `action` on `from` because of `link`.
fn link_denial(from: &ResourceRef, action: &str, link: &Link, why: String) -> Decision {
    let mut d = Decision::deny(
        Reason::LinkDenied,
        format!(
            "`{action}` on `{from}` needs `{}` on `{}`, which it acts on, and that is denied: {why}",
            link.action, link.resource
        ),
    );
    d.explanation.linked = Some((link.resource.clone(), link.action.clone()));
    d
}

/// The linked resources whose ancestries deciding `action` on the resource
/// `path` starts with may need and `known` lacks: a store-backed caller
/// reads them, adds them to `known` and asks again until none is missing
/// (at most [`MAX_LINK_DEPTH`] rounds).
pub fn links_to_fetch(
    path: &[ResourceNode],
    (rtype, action): (&str, &str),
    roles: &RoleTable,
    known: &Gathered,
) -> Vec<ResourceRef> {
    let mut missing = Vec::new();
    let mut budget = MAX_LINKED_DECISIONS;
    let mut level: Vec<(Vec<ResourceNode>, String)> = Vec::new();
    let mut next: Vec<(Vec<ResourceNode>, String)> = Vec::new();
    for l in gating(path, (rtype, action), roles) {
        visit(l, known, &mut missing, &mut budget, &mut next);
    }
    for _ in 1..MAX_LINK_DEPTH {
        std::mem::swap(&mut level, &mut next);
        next.clear();
        for (p, a) in &level {
            let t = p.first().map_or("", |n| n.resource.rtype.as_str());
            for l in gating(p, (t, a), roles) {
                visit(l, known, &mut missing, &mut budget, &mut next);
            }
        }
    }
    missing.sort();
    missing.dedup();
    missing
}

fn visit(
    l: &Link,
    known: &Gathered,
    missing: &mut Vec<ResourceRef>,
    budget: &mut usize,
    next: &mut Vec<(Vec<ResourceNode>, String)>,
) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    match known.get(&l.resource) {
        None => missing.push(l.resource.clone()),
        Some(Some(p)) => next.push((p.clone(), l.action.clone())),
        Some(None) => {}
    }
}

#[cfg(test)]
mod tests;

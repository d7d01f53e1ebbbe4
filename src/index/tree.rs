//! One tenant's resource tree in memory: children kept sorted by
//! `(type, id)`, so that a depth-first walk visits the tenant in one stable
//! order (sorted materialized paths), "everything under X" is X's subtree,
//! and a walk can resume after any path, even one whose resource has since
//! been deleted. Pure data: no I/O.

use crate::model::{Attributes, Link, ResourceNode, ResourceRef};
use std::collections::HashMap;
use std::sync::Arc;

type NodeId = u32;

#[derive(Debug, Clone)]
struct Node {
    node: ResourceNode,
    parent: Option<NodeId>,
    /// Sorted by resource.
    children: Vec<NodeId>,
}

/// What a walk does after visiting a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Visit the node's subtree next.
    Descend,
    /// Skip the node's subtree.
    Skip,
    /// End the walk.
    Stop,
}

/// A tenant's resources as a forest.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: Vec<Option<Node>>,
    free: Vec<NodeId>,
    ids: HashMap<ResourceRef, NodeId>,
    /// Top-level resources, sorted.
    roots: Vec<NodeId>,
}

/// Why rows do not make a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// A resource appears twice.
    #[error("resource `{0}` appears twice")]
    Duplicate(ResourceRef),
    /// A resource names a parent that is not there.
    #[error("the parent of `{0}` is missing")]
    MissingParent(ResourceRef),
    /// Parents form a cycle.
    #[error("`{0}` is its own ancestor")]
    Cycle(ResourceRef),
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the tree from `(resource, parent, private)` rows in any order.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (ResourceRef, Option<ResourceRef>, bool)>,
    ) -> Result<Self, TreeError> {
        let rows: Vec<_> = rows.into_iter().collect();
        let mut t = Tree::new();
        for (r, _, private) in &rows {
            if t.ids.contains_key(r) {
                return Err(TreeError::Duplicate(r.clone()));
            }
            t.alloc(r.clone(), *private);
        }
        for (r, parent, _) in &rows {
            let id = t.ids[r];
            match parent {
                None => t.roots.push(id),
                Some(p) => {
                    let pid = *t
                        .ids
                        .get(p)
                        .ok_or_else(|| TreeError::MissingParent(r.clone()))?;
                    t.node_mut(id).parent = Some(pid);
                    t.node_mut(pid).children.push(id);
                }
            }
        }
        // Every node reachable from a root, or parents form a cycle.
        let mut reached = 0usize;
        let mut stack: Vec<NodeId> = t.roots.clone();
        while let Some(id) = stack.pop() {
            reached += 1;
            stack.extend(t.node(id).children.iter().copied());
        }
        if reached != rows.len() {
            let on_cycle = rows
                .iter()
                .map(|(r, _, _)| r)
                .find(|r| t.ancestors(t.ids[*r]).take(rows.len() + 1).count() > rows.len());
            if let Some(r) = on_cycle {
                return Err(TreeError::Cycle(r.clone()));
            }
        }
        let mut roots = std::mem::take(&mut t.roots);
        t.sort(&mut roots);
        t.roots = roots;
        for i in 0..t.nodes.len() {
            if let Some(mut children) = t.nodes[i].as_mut().map(|n| std::mem::take(&mut n.children))
            {
                t.sort(&mut children);
                t.node_mut(i as NodeId).children = children;
            }
        }
        Ok(t)
    }

    /// Resources held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the tree holds no resource.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `r` is in the tree.
    pub fn contains(&self, r: &ResourceRef) -> bool {
        self.ids.contains_key(r)
    }

    /// Adds `r` under `parent` (at the top when `None`); false when `r` is
    /// there already or the parent is not.
    pub fn insert(&mut self, r: ResourceRef, parent: Option<&ResourceRef>, private: bool) -> bool {
        if self.ids.contains_key(&r) {
            return false;
        }
        let pid = match parent {
            None => None,
            Some(p) => match self.ids.get(p) {
                Some(id) => Some(*id),
                None => return false,
            },
        };
        let id = self.alloc(r, private);
        self.attach(id, pid);
        true
    }

    /// Removes `r` and everything below it; false when `r` is not there.
    pub fn remove(&mut self, r: &ResourceRef) -> bool {
        self.remove_collect(r).is_some()
    }

    /// Removes `r` and everything below it and returns them; `None` when
    /// `r` is not there.
    pub fn remove_collect(&mut self, r: &ResourceRef) -> Option<Vec<ResourceRef>> {
        let &id = self.ids.get(r)?;
        self.detach(id);
        let mut gone = Vec::new();
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            if let Some(n) = self.nodes[id as usize].take() {
                self.ids.remove(&n.node.resource);
                stack.extend(n.children);
                self.free.push(id);
                gone.push(n.node.resource);
            }
        }
        Some(gone)
    }

    /// Moves `r` (with its subtree) under `new_parent`; false when either is
    /// not there or the move would make a cycle.
    pub fn move_to(&mut self, r: &ResourceRef, new_parent: Option<&ResourceRef>) -> bool {
        let Some(&id) = self.ids.get(r) else {
            return false;
        };
        let pid = match new_parent {
            None => None,
            Some(p) => match self.ids.get(p) {
                Some(&p) if p != id && !self.ancestors(p).any(|a| a == id) => Some(p),
                _ => return false,
            },
        };
        self.detach(id);
        self.attach(id, pid);
        true
    }

    /// Sets whether `r` is a private boundary; false when it is not there.
    pub fn set_private(&mut self, r: &ResourceRef, private: bool) -> bool {
        match self.ids.get(r) {
            Some(&id) => {
                self.node_mut(id).node.private = private;
                true
            }
            None => false,
        }
    }

    /// Sets whether `r` is restricted; false when it is not there.
    pub fn set_restricted(&mut self, r: &ResourceRef, restricted: bool) -> bool {
        match self.ids.get(r) {
            Some(&id) => {
                self.node_mut(id).node.restricted = restricted;
                true
            }
            None => false,
        }
    }

    /// Replaces the links of `r`; false when it is not there.
    pub fn set_links(&mut self, r: &ResourceRef, links: &[Link]) -> bool {
        match self.ids.get(r) {
            Some(&id) => {
                self.node_mut(id).node.links =
                    (!links.is_empty()).then(|| Arc::new(links.to_vec()));
                true
            }
            None => false,
        }
    }

    /// Replaces the attributes of `r`; false when it is not there.
    pub fn set_attributes(&mut self, r: &ResourceRef, attributes: &Attributes) -> bool {
        match self.ids.get(r) {
            Some(&id) => {
                self.node_mut(id).node.attributes =
                    (!attributes.is_empty()).then(|| Arc::new(attributes.clone()));
                true
            }
            None => false,
        }
    }

    /// Applies one row-level change of the revision log (those about
    /// resources; the others do not concern the tree). False when it does
    /// not fit the tree (a missing resource or parent): the tree no longer
    /// matches the store and must be rebuilt.
    pub fn apply(&mut self, delta: &crate::store::Delta) -> bool {
        use crate::store::Delta;
        match delta {
            Delta::Resource {
                resource,
                parent,
                private,
                restricted,
                attributes,
                links,
            } => {
                self.insert(resource.clone(), parent.as_ref(), *private)
                    && (!*restricted || self.set_restricted(resource, true))
                    && (attributes.is_empty() || self.set_attributes(resource, attributes))
                    && (links.is_empty() || self.set_links(resource, links))
            }
            Delta::Links { resource, links } => self.set_links(resource, links),
            Delta::Restricted {
                resource,
                restricted,
            } => self.set_restricted(resource, *restricted),
            Delta::Attributes {
                resource,
                attributes,
            } => self.set_attributes(resource, attributes),
            Delta::Private { resource, private } => self.set_private(resource, *private),
            Delta::Moved { resource, parent } => self.move_to(resource, parent.as_ref()),
            Delta::SubtreeDeleted { resource } => self.remove(resource),
            _ => true,
        }
    }

    /// `r` and its ancestors, `r` first; `None` when it is not there.
    pub fn ancestry(&self, r: &ResourceRef) -> Option<Vec<ResourceNode>> {
        let id = *self.ids.get(r)?;
        let mut out = vec![self.node(id).node.clone()];
        out.extend(self.ancestors(id).map(|a| self.node(a).node.clone()));
        Some(out)
    }

    /// Walks the forest depth first in sorted order, calling `visit` with
    /// the path from the top to each node (the node last); `visit` says
    /// whether to look below the node. With `after` (a path from the top,
    /// as given to `visit` earlier), the walk starts with the first node
    /// that comes after it (its own subtree first, when it is still there);
    /// the nodes on `after` itself are not visited again.
    pub fn walk<'t>(
        &'t self,
        after: Option<&[ResourceRef]>,
        visit: impl FnMut(&[&'t ResourceNode]) -> Step,
    ) {
        self.walk_from(&self.roots, Vec::new(), after.unwrap_or(&[]), visit);
    }

    /// As [`Tree::walk`], over `root` and its subtree only: what of it comes
    /// after `after` (a path from the top; nothing when it is past the
    /// subtree). Nothing when `root` is not there.
    pub fn walk_within<'t>(
        &'t self,
        root: &ResourceRef,
        after: Option<&[ResourceRef]>,
        visit: impl FnMut(&[&'t ResourceNode]) -> Step,
    ) {
        let Some(&id) = self.ids.get(root) else {
            return;
        };
        let mut above: Vec<&ResourceNode> =
            self.ancestors(id).map(|a| &self.node(a).node).collect();
        above.reverse();
        let depth = above.len();
        let after = after.unwrap_or(&[]);
        let within = after.len() > depth
            && after[..depth]
                .iter()
                .zip(&above)
                .all(|(a, n)| *a == n.resource)
            && after[depth] == *root;
        let mine: Vec<ResourceRef> = above
            .iter()
            .map(|n| n.resource.clone())
            .chain(std::iter::once(root.clone()))
            .collect();
        if within {
            self.walk_from(&[id], above, &after[depth..], visit);
        } else if after.is_empty() || *after < mine[..] {
            self.walk_from(&[id], above, &[], visit);
        }
    }

    /// The walk over the sibling list `base` (whose ancestors are `above`,
    /// top first), resuming after the path `after` relative to `base`'s
    /// level.
    fn walk_from<'t>(
        &'t self,
        base: &[NodeId],
        above: Vec<&'t ResourceNode>,
        after: &[ResourceRef],
        mut visit: impl FnMut(&[&'t ResourceNode]) -> Step,
    ) {
        struct Frame {
            /// `None`: the base list.
            parent: Option<NodeId>,
            next: usize,
        }
        let siblings_of = |parent: Option<NodeId>| -> &[NodeId] {
            match parent {
                None => base,
                Some(p) => &self.node(p).children,
            }
        };
        let depth0 = above.len();
        let mut path = above;
        let mut frames: Vec<Frame> = Vec::new();
        // Resume: re-enter the ancestors on `after` without visiting them.
        let mut parent: Option<NodeId> = None;
        for (depth, r) in after.iter().enumerate() {
            let siblings = siblings_of(parent);
            match siblings.binary_search_by(|c| self.node(*c).node.resource.cmp(r)) {
                Ok(i) => {
                    frames.push(Frame {
                        parent,
                        next: i + 1,
                    });
                    let id = siblings[i];
                    path.push(&self.node(id).node);
                    parent = Some(id);
                    if depth + 1 == after.len() {
                        // The last one was visited: its subtree comes next.
                        frames.push(Frame { parent, next: 0 });
                    }
                }
                Err(i) => {
                    frames.push(Frame { parent, next: i });
                    break;
                }
            }
        }
        if frames.is_empty() {
            frames.push(Frame {
                parent: None,
                next: 0,
            });
        }
        while let Some(frame) = frames.last_mut() {
            let Some(&id) = siblings_of(frame.parent).get(frame.next) else {
                if frames.pop().and_then(|f| f.parent).is_some() {
                    path.pop();
                }
                continue;
            };
            frame.next += 1;
            path.push(&self.node(id).node);
            match visit(&path) {
                Step::Stop => return,
                Step::Skip => {
                    path.pop();
                }
                Step::Descend => frames.push(Frame {
                    parent: Some(id),
                    next: 0,
                }),
            }
        }
        debug_assert!(path.len() >= depth0);
    }

    fn node(&self, id: NodeId) -> &Node {
        self.nodes[id as usize].as_ref().expect("live node")
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes[id as usize].as_mut().expect("live node")
    }

    fn children_of(&self, parent: Option<NodeId>) -> &[NodeId] {
        match parent {
            None => &self.roots,
            Some(p) => &self.node(p).children,
        }
    }

    fn ancestors(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let mut cur = self.node(id).parent;
        std::iter::from_fn(move || {
            let id = cur?;
            cur = self.node(id).parent;
            Some(id)
        })
    }

    fn alloc(&mut self, r: ResourceRef, private: bool) -> NodeId {
        let node = Node {
            node: ResourceNode {
                resource: r.clone(),
                private,
                restricted: false,
                attributes: None,
                links: None,
            },
            parent: None,
            children: Vec::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = Some(node);
                id
            }
            None => {
                self.nodes.push(Some(node));
                (self.nodes.len() - 1) as NodeId
            }
        };
        self.ids.insert(r, id);
        id
    }

    fn sort(&self, ids: &mut [NodeId]) {
        ids.sort_by(|a, b| {
            self.node(*a)
                .node
                .resource
                .cmp(&self.node(*b).node.resource)
        });
    }

    /// Links `id` under `parent`, in order.
    fn attach(&mut self, id: NodeId, parent: Option<NodeId>) {
        self.node_mut(id).parent = parent;
        let key = self.node(id).node.resource.clone();
        let at = self
            .children_of(parent)
            .binary_search_by(|c| self.node(*c).node.resource.cmp(&key))
            .unwrap_or_else(|i| i);
        match parent {
            None => self.roots.insert(at, id),
            Some(p) => self.node_mut(p).children.insert(at, id),
        }
    }

    /// Unlinks `id` from its parent.
    fn detach(&mut self, id: NodeId) {
        let parent = self.node(id).parent;
        let siblings = match parent {
            None => &mut self.roots,
            Some(p) => &mut self.nodes[p as usize].as_mut().expect("live node").children,
        };
        siblings.retain(|c| *c != id);
        self.node_mut(id).parent = None;
    }
}

#[cfg(test)]
mod tests;

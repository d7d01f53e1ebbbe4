//! The decision services: gathers inputs through the [`Store`] trait and asks
//! [`decide`]. No gRPC and no SQL here.

use super::links::{decide_gathered, gathered, links_to_fetch, Gathered};
use super::{
    candidate_scopes, decide_linked, Binding, Cooperate, Decision, Linked, Question, Reason,
    RoleTable, Subject,
};
use crate::error::{Error, Result};
use crate::model::condition::RequestContext;
use crate::model::{now_millis, PrincipalStatus, ResourceNode, ResourceRef, Scope};
use crate::store::{Store, SubjectEntry};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Reads into `known` the ancestries of the linked resources deciding
/// `(type, action)` on the resource `path` starts with may need (none when it has
/// no links).
pub async fn gather_links<S: Store>(
    store: &S,
    tenant: &str,
    (path, question): (&[ResourceNode], (&str, &str)),
    roles: &RoleTable,
    known: &mut Gathered,
) -> Result<()> {
    loop {
        let wanted = links_to_fetch(path, question, roles, known);
        if wanted.is_empty() {
            return Ok(());
        }
        for r in wanted {
            let a = store.ancestry(tenant, &r).await?;
            known.insert(r, a.map(|a| a.to_vec()));
        }
    }
}

/// Largest `BatchCheck`.
pub const MAX_BATCH: usize = 5_000;

/// One question for [`Authorizer::check`].
#[derive(Debug, Clone)]
pub struct CheckQuery {
    /// Principal.
    pub subject_id: String,
    /// Action.
    pub action: String,
    /// Resource.
    pub resource: ResourceRef,
}

/// A page of ids and the token of the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Ids, ascending.
    pub ids: Vec<String>,
    /// Last id of this page when more follow.
    pub next_after: Option<String>,
    /// Revision the page was computed at.
    pub revision: i64,
}

impl Page {
    /// No ids, decided at `revision`.
    fn empty(revision: i64) -> Self {
        Page {
            ids: Vec::new(),
            next_after: None,
            revision,
        }
    }
}

/// Which page of a list: ids after `after`, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    /// The last id of the previous page.
    pub after: Option<&'a str>,
    /// Page size.
    pub limit: usize,
}

/// Answers checks and lists over a store.
#[derive(Debug, Clone)]
pub struct Authorizer<S> {
    store: S,
}

impl<S: Store> Authorizer<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Decides many questions of one tenant; the answers are in order. Returns
    /// them with the revision they were decided at (0 for an unknown tenant).
    pub async fn check_many(
        &self,
        tenant: &str,
        queries: &[CheckQuery],
        context: &RequestContext,
        min_revision: Option<i64>,
    ) -> Result<(Vec<Decision>, i64)> {
        let Some(revision) = self.store.tenant_revision(tenant, min_revision).await? else {
            let d = Decision::deny(Reason::UnknownTenant, "the tenant does not exist");
            return Ok((vec![d; queries.len()], 0));
        };
        if let Some(idx) = self.store.index(tenant, revision).await? {
            let decisions = super::from_index::check_many(&idx, queries, context).await;
            return Ok((decisions, idx.revision()));
        }
        let now = now_millis();
        let roles = self.store.roles(tenant).await?;
        let mut subjects: HashMap<&str, Arc<SubjectEntry>> = HashMap::new();
        let mut paths: HashMap<&ResourceRef, Option<Arc<Vec<ResourceNode>>>> = HashMap::new();
        let mut known = Gathered::new();
        let mut out = Vec::with_capacity(queries.len());
        let mut cooperate = Cooperate::new();
        for q in queries {
            cooperate.tick().await;
            if !subjects.contains_key(q.subject_id.as_str()) {
                let s = self.store.subject(tenant, &q.subject_id).await?;
                subjects.insert(&q.subject_id, s);
            }
            if !paths.contains_key(&q.resource) {
                paths.insert(&q.resource, self.store.ancestry(tenant, &q.resource).await?);
            }
            let subject = &subjects[q.subject_id.as_str()];
            let path = paths[&q.resource].as_deref().map(Vec::as_slice);
            if let Some(p) = path {
                let question = (q.resource.rtype.as_str(), q.action.as_str());
                gather_links(&self.store, tenant, (p, question), &roles, &mut known).await?;
            }
            let question = Question {
                rtype: &q.resource.rtype,
                action: &q.action,
                path,
                context,
            };
            out.push(decide_gathered(
                Subject::Principal(subject.principal.as_ref()),
                &subject.bindings,
                &roles,
                question,
                now,
                &known,
            ));
        }
        Ok((out, revision))
    }

    /// Decides one question.
    pub async fn check(
        &self,
        tenant: &str,
        query: CheckQuery,
        context: &RequestContext,
        min_revision: Option<i64>,
    ) -> Result<(Decision, i64)> {
        let (mut d, rev) = self
            .check_many(tenant, std::slice::from_ref(&query), context, min_revision)
            .await?;
        let decision = d
            .pop()
            .ok_or_else(|| Error::Internal("empty batch answer".to_owned()))?;
        Ok((decision, rev))
    }

    /// Every resource id of `rtype` on which the principal may do `action`,
    /// after `after`, at most `limit`; exactly the ids on which
    /// [`Authorizer::check`] allows. From the tenant's index when the store
    /// keeps one (in the tree's order, `after` a path token), otherwise in
    /// id order (`after` the last id).
    pub async fn list_accessible(
        &self,
        tenant: &str,
        (subject_id, action, rtype): (&str, &str, &str),
        page: PageRequest<'_>,
        context: &RequestContext,
        min_revision: Option<i64>,
    ) -> Result<Page> {
        let PageRequest { after, limit } = page;
        let Some(revision) = self.store.tenant_revision(tenant, min_revision).await? else {
            return Ok(Page::empty(0));
        };
        if let Some(idx) = self.store.index(tenant, revision).await? {
            return super::from_index::list_accessible(
                &idx,
                (subject_id, action, rtype),
                page,
                context,
            );
        }
        if after.is_some_and(|a| a.starts_with(super::from_index::PATH_TOKEN)) {
            // A token of a list from an index (another replica's).
            return Err(Error::invalid(
                "page_token",
                "a page token of a replica that indexes this tenant; this one does not (cache.max_bytes)",
            ));
        }
        let now = now_millis();
        let subject = self.store.subject(tenant, subject_id).await?;
        let Some(principal) = subject
            .principal
            .as_ref()
            .filter(|p| p.status == PrincipalStatus::Active)
        else {
            return Ok(Page::empty(revision));
        };
        let roles = self.store.roles(tenant).await?;
        let bindings = &subject.bindings;
        let mut ids = BTreeSet::new();
        let scopes = candidate_scopes(bindings, &roles, rtype, action, now);
        if scopes.is_empty() {
            return Ok(paginate(ids, limit, revision));
        }
        // Index the bindings by scope: a candidate is decided among the
        // tenant-wide ones and those on its own path, which is all `decide`
        // would ever count.
        let mut tenant_wide: Vec<&Binding> = Vec::new();
        let mut by_scope: HashMap<&ResourceRef, Vec<&Binding>> = HashMap::new();
        for b in bindings {
            match &b.grant.scope {
                Scope::Tenant => tenant_wide.push(b),
                Scope::Resource(r) => by_scope.entry(r).or_default().push(b),
            }
        }
        let mut among: Vec<&Binding> = Vec::new();
        let mut known = Gathered::new();
        // A tenant-wide grant makes the whole tenant the candidate set: read
        // it in id order, a batch at a time, until the page is full (one more
        // id than the page tells whether another page follows).
        let tenant_wide_scan = scopes == [Scope::Tenant];
        let batch = (limit + 1).max(1_000);
        let mut cursor: Option<String> = after.map(str::to_owned);
        let mut cooperate = Cooperate::new();
        loop {
            let paths = self
                .store
                .resources_in_scopes(tenant, &scopes, rtype, cursor.as_deref(), batch)
                .await?;
            let exhausted = !tenant_wide_scan || paths.len() < batch;
            for path in &paths {
                cooperate.tick().await;
                let Some(node) = path.first() else { continue };
                if after.is_some_and(|a| node.resource.id.as_str() <= a) {
                    continue;
                }
                among.clear();
                among.extend(tenant_wide.iter().copied());
                for n in path {
                    if let Some(bs) = by_scope.get(&n.resource) {
                        among.extend(bs.iter().copied());
                    }
                }
                let q = Question {
                    rtype,
                    action,
                    path: Some(path),
                    context,
                };
                gather_links(
                    &self.store,
                    tenant,
                    (path, (rtype, action)),
                    &roles,
                    &mut known,
                )
                .await?;
                let resolve = gathered(&known);
                if decide_linked(
                    Subject::Principal(Some(principal)),
                    among.iter().copied(),
                    &roles,
                    q,
                    now,
                    &Linked {
                        bindings,
                        ancestry: &resolve,
                    },
                )
                .allowed
                {
                    ids.insert(node.resource.id.clone());
                }
            }
            if exhausted || ids.len() > limit {
                break;
            }
            cursor = paths
                .last()
                .and_then(|p| p.first())
                .map(|n| n.resource.id.clone());
        }
        Ok(paginate(ids, limit, revision))
    }

    /// Every principal who may do `action` on the resource, ascending, after
    /// `after`, at most `limit`; exactly those for whom [`Authorizer::check`]
    /// allows.
    pub async fn list_subjects(
        &self,
        tenant: &str,
        (resource, action): (&ResourceRef, &str),
        page: PageRequest<'_>,
        context: &RequestContext,
        min_revision: Option<i64>,
    ) -> Result<Page> {
        let PageRequest { after, limit } = page;
        let Some(revision) = self.store.tenant_revision(tenant, min_revision).await? else {
            return Ok(Page::empty(0));
        };
        if let Some(idx) = self.store.index(tenant, revision).await? {
            return Ok(
                super::from_index::list_subjects(&idx, (resource, action), page, context).await,
            );
        }
        let now = now_millis();
        let Some(path) = self.store.ancestry(tenant, resource).await? else {
            return Ok(Page::empty(revision));
        };
        let roles = self.store.roles(tenant).await?;
        let mut known = Gathered::new();
        let question = (resource.rtype.as_str(), action);
        gather_links(&self.store, tenant, (&path, question), &roles, &mut known).await?;
        let resolve = gathered(&known);
        let mut ids = BTreeSet::new();
        let mut cooperate = Cooperate::new();
        for (principal, bindings) in self.store.holders_on_path(tenant, &path).await? {
            cooperate.tick().await;
            if after.is_some_and(|a| principal.id.as_str() <= a) {
                continue;
            }
            let q = Question {
                rtype: &resource.rtype,
                action,
                path: Some(&path),
                context,
            };
            // The holders' bindings on the path decide the resource; a
            // link needs all of the principal's (another path).
            let all = if known.is_empty() {
                None
            } else {
                Some(self.store.subject(tenant, &principal.id).await?)
            };
            let linked = Linked {
                bindings: all.as_ref().map_or(&bindings, |s| &s.bindings),
                ancestry: &resolve,
            };
            if decide_linked(
                Subject::Principal(Some(&principal)),
                bindings.iter(),
                &roles,
                q,
                now,
                &linked,
            )
            .allowed
            {
                ids.insert(principal.id);
            }
        }
        Ok(paginate(ids, limit, revision))
    }
}

fn paginate(ids: BTreeSet<String>, limit: usize, revision: i64) -> Page {
    let more = ids.len() > limit;
    let ids: Vec<String> = ids.into_iter().take(limit).collect();
    let next_after = if more { ids.last().cloned() } else { None };
    Page {
        ids,
        next_after,
        revision,
    }
}

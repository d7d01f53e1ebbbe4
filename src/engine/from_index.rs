//! Checks and lists answered from a tenant's permission index
//! ([`TenantIndex`]): no store read. The same [`decide`] as every other
//! answer; only where the inputs come from differs.
//!
//! A list from the index is in the tree's order (depth first, children by
//! type and id), and its page token holds the path of the last resource
//! listed, so that the next page resumes right after it, even when that
//! resource has since been moved or deleted.

use super::authorizer::{CheckQuery, Page, PageRequest};
use super::{decide_linked, Binding, Cooperate, Decision, Linked, Question, Subject};
use crate::error::{Error, Result};
use crate::index::list::{accessible, ListQuery};
use crate::index::tenant::TenantIndex;
use crate::model::condition::RequestContext;
use crate::model::{now_millis, Principal, PrincipalStatus, ResourceNode, ResourceRef, Scope};
use std::collections::HashMap;
use std::ops::Bound;

/// The principal's record and, when it is active, its bindings.
fn subject<'i>(idx: &'i TenantIndex, id: &str) -> (Option<&'i Principal>, Vec<Binding>) {
    let p = idx.principal(id);
    let bindings = match p {
        Some(p) if p.status == PrincipalStatus::Active => idx.bindings(id),
        _ => Vec::new(),
    };
    (p, bindings)
}

/// Decides every question, in order.
pub(super) async fn check_many(
    idx: &TenantIndex,
    queries: &[CheckQuery],
    context: &RequestContext,
) -> Vec<Decision> {
    let now = now_millis();
    let roles = idx.roles();
    let mut subjects: HashMap<&str, (Option<&Principal>, Vec<Binding>)> = HashMap::new();
    let mut paths: HashMap<&ResourceRef, Option<Vec<ResourceNode>>> = HashMap::new();
    let mut out = Vec::with_capacity(queries.len());
    let mut cooperate = Cooperate::new();
    let resolve = |r: &ResourceRef| idx.tree().ancestry(r);
    for q in queries {
        cooperate.tick().await;
        let (principal, bindings) = subjects
            .entry(q.subject_id.as_str())
            .or_insert_with(|| subject(idx, &q.subject_id));
        let path = paths
            .entry(&q.resource)
            .or_insert_with(|| idx.tree().ancestry(&q.resource));
        let question = Question {
            rtype: &q.resource.rtype,
            action: &q.action,
            path: path.as_deref(),
            context,
        };
        out.push(decide_linked(
            Subject::Principal(*principal),
            bindings.iter(),
            roles,
            question,
            now,
            &Linked {
                bindings,
                ancestry: &resolve,
            },
        ));
    }
    out
}

/// A page of the resources of `rtype` on which the principal may do
/// `action`, in the tree's order.
pub(super) fn list_accessible(
    idx: &TenantIndex,
    (subject_id, action, rtype): (&str, &str, &str),
    page: PageRequest<'_>,
    context: &RequestContext,
) -> Result<Page> {
    let after = page.after.map(decode_cursor).transpose()?;
    let (principal, bindings) = subject(idx, subject_id);
    let q = ListQuery {
        principal,
        bindings: &bindings,
        rtype,
        action,
        now: now_millis(),
        context,
    };
    let listed = accessible(idx.tree(), idx.roles(), q, after.as_deref(), page.limit);
    Ok(Page {
        ids: listed.resources.into_iter().map(|r| r.id).collect(),
        next_after: listed.next.as_deref().map(encode_cursor),
        revision: idx.revision(),
    })
}

/// A page of the principals who may do `action` on the resource, in id
/// order: the holders of grants on its path (through teams too), each
/// decided.
pub(super) async fn list_subjects(
    idx: &TenantIndex,
    (resource, action): (&ResourceRef, &str),
    page: PageRequest<'_>,
    context: &RequestContext,
) -> Page {
    let mut out = Page {
        ids: Vec::new(),
        next_after: None,
        revision: idx.revision(),
    };
    let Some(path) = idx.tree().ancestry(resource) else {
        return out;
    };
    let scopes: Vec<Scope> = std::iter::once(Scope::Tenant)
        .chain(path.iter().map(|n| Scope::Resource(n.resource.clone())))
        .collect();
    let holders = idx.holders(&scopes);
    let from = match page.after {
        Some(a) => Bound::Excluded(a),
        None => Bound::Unbounded,
    };
    let now = now_millis();
    let mut cooperate = Cooperate::new();
    let resolve = |r: &ResourceRef| idx.tree().ancestry(r);
    for id in holders.range::<str, _>((from, Bound::Unbounded)) {
        cooperate.tick().await;
        let (principal, bindings) = subject(idx, id);
        let q = Question {
            rtype: &resource.rtype,
            action,
            path: Some(&path),
            context,
        };
        if decide_linked(
            Subject::Principal(principal),
            bindings.iter(),
            idx.roles(),
            q,
            now,
            &Linked {
                bindings: &bindings,
                ancestry: &resolve,
            },
        )
        .allowed
        {
            if out.ids.len() == page.limit {
                out.next_after = out.ids.last().cloned();
                break;
            }
            out.ids.push((*id).to_owned());
        }
    }
    out
}

/// Starts the key of a path token: a control character, which no id holds,
/// so a path token is never taken for an id token and the other way round.
pub(super) const PATH_TOKEN: char = '\u{1}';

/// The page token of a list from the index: the path of the last resource
/// listed, from the top.
fn encode_cursor(path: &[ResourceRef]) -> String {
    let pairs: Vec<(&str, &str)> = path
        .iter()
        .map(|r| (r.rtype.as_str(), r.id.as_str()))
        .collect();
    format!(
        "{PATH_TOKEN}{}",
        serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
    )
}

fn decode_cursor(token: &str) -> Result<Vec<ResourceRef>> {
    let bad = || Error::invalid("page_token", "not a page token of this list");
    let json = token.strip_prefix(PATH_TOKEN).ok_or_else(bad)?;
    let pairs: Vec<(String, String)> = serde_json::from_str(json).map_err(|_| bad())?;
    if pairs.is_empty() || pairs.len() > crate::model::MAX_TREE_DEPTH {
        return Err(bad());
    }
    Ok(pairs
        .into_iter()
        .map(|(rtype, id)| ResourceRef { rtype, id })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_the_path_it_was_made_from() {
        let path = vec![
            ResourceRef {
                rtype: "workspace".into(),
                id: "w\"1".into(),
            },
            ResourceRef {
                rtype: "workflow".into(),
                id: "f:2,]".into(),
            },
        ];
        assert_eq!(decode_cursor(&encode_cursor(&path)).unwrap(), path);
        for bad in [
            "",
            "p:[[\"a\",\"b\"]]",
            "k1:x",
            "\u{1}",
            "\u{1}[]",
            "\u{1}{\"a\":1}",
            "\u{1}[[\"a\"]]",
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }
}

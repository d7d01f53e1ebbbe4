//! Reads, generic over a connection so that writes run them inside their
//! transaction.

use super::*;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Largest `IN (…)` list sent in one statement.
const CHUNK: usize = 500;

pub(super) async fn tenant_row<C: ConnectionTrait>(
    c: &C,
    id: &str,
) -> Result<Option<tenant::Model>> {
    Ok(tenant::Entity::find_by_id(id.to_owned()).one(c).await?)
}

pub(super) async fn tenant<C: ConnectionTrait>(c: &C, id: &str) -> Result<Option<Tenant>> {
    tenant_row(c, id).await?.map(tenant_from_row).transpose()
}

pub(super) async fn list_tenants<C: ConnectionTrait>(
    c: &C,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Tenant>> {
    let mut q = tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .limit(limit);
    if let Some(a) = after {
        q = q.filter(tenant::Column::Id.gt(a));
    }
    q.all(c).await?.into_iter().map(tenant_from_row).collect()
}

pub(super) async fn principal<C: ConnectionTrait>(
    c: &C,
    t: &str,
    id: &str,
) -> Result<Option<Principal>> {
    principal::Entity::find_by_id((t.to_owned(), id.to_owned()))
        .one(c)
        .await?
        .map(principal_from_row)
        .transpose()
}

pub(super) async fn list_principals<C: ConnectionTrait>(
    c: &C,
    t: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Principal>> {
    let mut q = principal::Entity::find()
        .filter(principal::Column::TenantId.eq(t))
        .order_by_asc(principal::Column::Id)
        .limit(limit);
    if let Some(a) = after {
        q = q.filter(principal::Column::Id.gt(a));
    }
    q.all(c)
        .await?
        .into_iter()
        .map(principal_from_row)
        .collect()
}

pub(super) async fn team_row<C: ConnectionTrait>(
    c: &C,
    t: &str,
    id: &str,
) -> Result<Option<team::Model>> {
    Ok(team::Entity::find_by_id((t.to_owned(), id.to_owned()))
        .one(c)
        .await?)
}

pub(super) async fn list_teams<C: ConnectionTrait>(
    c: &C,
    t: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Team>> {
    let mut q = team::Entity::find()
        .filter(team::Column::TenantId.eq(t))
        .order_by_asc(team::Column::Id)
        .limit(limit);
    if let Some(a) = after {
        q = q.filter(team::Column::Id.gt(a));
    }
    Ok(q.all(c).await?.into_iter().map(team_from_row).collect())
}

/// Direct members in (kind, id) order after the key `kind:id`.
pub(super) async fn team_members<C: ConnectionTrait>(
    c: &C,
    t: &str,
    team: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Option<Vec<SubjectRef>>> {
    if team_row(c, t, team).await?.is_none() {
        return Ok(None);
    }
    let mut q = team_member::Entity::find()
        .filter(team_member::Column::TenantId.eq(t))
        .filter(team_member::Column::TeamId.eq(team));
    if let Some(a) = after {
        // Kinds never contain `:`.
        let (kind, id) = a.split_once(':').unwrap_or((a, ""));
        q = q.filter(
            Condition::any()
                .add(team_member::Column::MemberKind.gt(kind))
                .add(
                    Condition::all()
                        .add(team_member::Column::MemberKind.eq(kind))
                        .add(team_member::Column::MemberId.gt(id)),
                ),
        );
    }
    let rows = q
        .order_by_asc(team_member::Column::MemberKind)
        .order_by_asc(team_member::Column::MemberId)
        .limit(limit)
        .all(c)
        .await?;
    rows.into_iter()
        .map(|m| {
            SubjectRef::from_parts(&m.member_kind, m.member_id)
                .ok_or_else(|| corrupt("member kind"))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Teams the principal belongs to, directly or through other teams, each with
/// the chain from the principal's direct team to it (shortest chain wins).
pub(super) async fn teams_of<C: ConnectionTrait>(
    c: &C,
    t: &str,
    principal_id: &str,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut frontier: Vec<(SubjectRef, Vec<String>)> =
        vec![(SubjectRef::Principal(principal_id.to_owned()), vec![])];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        // Members of one kind per query; a frontier mixes at most two kinds.
        for kind in ["principal", "team"] {
            let batch: Vec<&(SubjectRef, Vec<String>)> = frontier
                .iter()
                .filter(|(s, _)| s.kind_str() == kind)
                .collect();
            for chunk in batch.chunks(CHUNK) {
                let ids: Vec<&str> = chunk.iter().map(|(s, _)| s.id()).collect();
                let chains: HashMap<&str, &Vec<String>> =
                    chunk.iter().map(|(s, ch)| (s.id(), ch)).collect();
                let rows = team_member::Entity::find()
                    .filter(team_member::Column::TenantId.eq(t))
                    .filter(team_member::Column::MemberKind.eq(kind))
                    .filter(team_member::Column::MemberId.is_in(ids))
                    .order_by_asc(team_member::Column::TeamId)
                    .all(c)
                    .await?;
                for row in rows {
                    if seen.insert(row.team_id.clone()) {
                        let mut chain = chains
                            .get(row.member_id.as_str())
                            .map(|c| (*c).clone())
                            .unwrap_or_default();
                        chain.push(row.team_id.clone());
                        out.push((row.team_id.clone(), chain.clone()));
                        next.push((SubjectRef::Team(row.team_id), chain));
                    }
                }
            }
        }
        frontier = next;
    }
    Ok(out)
}

/// Every grant the principal holds directly or through teams.
pub(super) async fn bindings<C: ConnectionTrait>(
    c: &C,
    t: &str,
    principal_id: &str,
) -> Result<Vec<Binding>> {
    let teams = teams_of(c, t, principal_id).await?;
    let chains: HashMap<&str, &Vec<String>> =
        teams.iter().map(|(id, ch)| (id.as_str(), ch)).collect();
    let mut rows = grant::Entity::find()
        .filter(grant::Column::TenantId.eq(t))
        .filter(grant::Column::SubjectKind.eq("principal"))
        .filter(grant::Column::SubjectId.eq(principal_id))
        .order_by_asc(grant::Column::Id)
        .all(c)
        .await?;
    let team_ids: Vec<&str> = teams.iter().map(|(id, _)| id.as_str()).collect();
    for chunk in team_ids.chunks(CHUNK) {
        rows.extend(
            grant::Entity::find()
                .filter(grant::Column::TenantId.eq(t))
                .filter(grant::Column::SubjectKind.eq("team"))
                .filter(grant::Column::SubjectId.is_in(chunk.iter().copied()))
                .order_by_asc(grant::Column::Id)
                .all(c)
                .await?,
        );
    }
    let grants = grants_with_scopes(c, rows).await?;
    Ok(grants
        .into_iter()
        .map(|g| {
            let via_teams = match &g.subject {
                SubjectRef::Team(id) => chains
                    .get(id.as_str())
                    .map(|c| (*c).clone())
                    .unwrap_or_default(),
                SubjectRef::Principal(_) => Vec::new(),
            };
            Binding {
                grant: Arc::new(g),
                via_teams,
            }
        })
        .collect())
}

/// Resource rows by key.
pub(super) async fn resources_by_pk<C: ConnectionTrait>(
    c: &C,
    pks: &[i64],
) -> Result<HashMap<i64, resource::Model>> {
    let mut out = HashMap::new();
    let mut unique: Vec<i64> = pks.to_vec();
    unique.sort_unstable();
    unique.dedup();
    for chunk in unique.chunks(CHUNK) {
        for r in resource::Entity::find()
            .filter(resource::Column::Pk.is_in(chunk.iter().copied()))
            .all(c)
            .await?
        {
            out.insert(r.pk, r);
        }
    }
    Ok(out)
}

/// Turns grant rows into model grants, resolving scope keys to resources.
pub(super) async fn grants_with_scopes<C: ConnectionTrait>(
    c: &C,
    rows: Vec<grant::Model>,
) -> Result<Vec<Grant>> {
    let pks: Vec<i64> = rows.iter().filter_map(|g| g.scope_pk).collect();
    let resources = resources_by_pk(c, &pks).await?;
    rows.into_iter()
        .map(|g| {
            let scope = match g.scope_pk {
                None => Scope::Tenant,
                Some(pk) => Scope::Resource(resource_ref(
                    resources.get(&pk).ok_or_else(|| corrupt("grant scope"))?,
                )),
            };
            grant_from_row(g, scope)
        })
        .collect()
}

pub(super) async fn resource_row<C: ConnectionTrait>(
    c: &C,
    t: &str,
    r: &ResourceRef,
) -> Result<Option<resource::Model>> {
    Ok(resource::Entity::find()
        .filter(resource::Column::TenantId.eq(t))
        .filter(resource::Column::Rtype.eq(r.rtype.as_str()))
        .filter(resource::Column::Rid.eq(r.id.as_str()))
        .one(c)
        .await?)
}

pub(super) async fn resource<C: ConnectionTrait>(
    c: &C,
    t: &str,
    r: &ResourceRef,
) -> Result<Option<Resource>> {
    let Some(row) = resource_row(c, t, r).await? else {
        return Ok(None);
    };
    Ok(Some(resource_from_row(c, row).await?))
}

pub(super) async fn resource_from_row<C: ConnectionTrait>(
    c: &C,
    row: resource::Model,
) -> Result<Resource> {
    let parent = match row.parent_pk {
        None => None,
        Some(pk) => Some(resource_ref(
            resources_by_pk(c, &[pk])
                .await?
                .get(&pk)
                .ok_or_else(|| corrupt("parent"))?,
        )),
    };
    Ok(Resource {
        resource: resource_ref(&row),
        parent,
        private: row.is_private,
        restricted: row.is_restricted,
        attributes: attributes_from_column(row.attributes.as_deref())?,
        links: links_from_column(row.links.as_deref())?,
        created_at: row.created_at,
    })
}

pub(super) async fn list_children<C: ConnectionTrait>(
    c: &C,
    t: &str,
    parent: Option<&ResourceRef>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Resource>> {
    let mut q = resource::Entity::find().filter(resource::Column::TenantId.eq(t));
    let parent_ref = match parent {
        None => {
            q = q.filter(resource::Column::ParentPk.is_null());
            None
        }
        Some(p) => {
            let row = resource_row(c, t, p)
                .await?
                .ok_or_else(|| Error::not_found(format!("resource `{p}`")))?;
            q = q.filter(resource::Column::ParentPk.eq(row.pk));
            Some(p.clone())
        }
    };
    if let Some(a) = after {
        // The key is `type:id`; types never contain `:`.
        let (ty, id) = a.split_once(':').unwrap_or((a, ""));
        q = q.filter(
            Condition::any().add(resource::Column::Rtype.gt(ty)).add(
                Condition::all()
                    .add(resource::Column::Rtype.eq(ty))
                    .add(resource::Column::Rid.gt(id)),
            ),
        );
    }
    let rows = q
        .order_by_asc(resource::Column::Rtype)
        .order_by_asc(resource::Column::Rid)
        .limit(limit)
        .all(c)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Resource {
                resource: resource_ref(&r),
                parent: parent_ref.clone(),
                private: r.is_private,
                restricted: r.is_restricted,
                attributes: attributes_from_column(r.attributes.as_deref())?,
                links: links_from_column(r.links.as_deref())?,
                created_at: r.created_at,
            })
        })
        .collect()
}

/// Builds the ancestry (resource first) of `row` from a map holding its ancestors.
fn ancestry_of(
    row: &resource::Model,
    by_pk: &HashMap<i64, resource::Model>,
) -> Result<Vec<ResourceNode>> {
    let mut path = vec![ResourceNode {
        resource: resource_ref(row),
        private: row.is_private,
        restricted: row.is_restricted,
        attributes: node_attributes(row.attributes.as_deref())?,
        links: node_links(row.links.as_deref())?,
    }];
    for pk in ancestor_pks(&row.ancestors)?.into_iter().rev() {
        let a = by_pk.get(&pk).ok_or_else(|| corrupt("ancestor"))?;
        path.push(ResourceNode {
            resource: resource_ref(a),
            private: a.is_private,
            restricted: a.is_restricted,
            attributes: node_attributes(a.attributes.as_deref())?,
            links: node_links(a.links.as_deref())?,
        });
    }
    Ok(path)
}

pub(super) async fn ancestry<C: ConnectionTrait>(
    c: &C,
    t: &str,
    r: &ResourceRef,
) -> Result<Option<Vec<ResourceNode>>> {
    let Some(row) = resource_row(c, t, r).await? else {
        return Ok(None);
    };
    ancestry_of_row(c, &row).await.map(Some)
}

/// The ancestry of a resource row already read.
pub(super) async fn ancestry_of_row<C: ConnectionTrait>(
    c: &C,
    row: &resource::Model,
) -> Result<Vec<ResourceNode>> {
    let by_pk = resources_by_pk(c, &ancestor_pks(&row.ancestors)?).await?;
    ancestry_of(row, &by_pk)
}

pub(super) async fn resources_in_scopes<C: ConnectionTrait>(
    c: &C,
    t: &str,
    scopes: &[Scope],
    rtype: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Vec<ResourceNode>>> {
    let mut rows: Vec<resource::Model> = Vec::new();
    if scopes.contains(&Scope::Tenant) {
        // Keyset page over the (tenant, type, id) index.
        let mut q = resource::Entity::find()
            .filter(resource::Column::TenantId.eq(t))
            .filter(resource::Column::Rtype.eq(rtype));
        if let Some(a) = after {
            q = q.filter(resource::Column::Rid.gt(a));
        }
        rows = q
            .order_by_asc(resource::Column::Rid)
            .limit(limit as u64)
            .all(c)
            .await?;
    } else {
        // The scope roots, in one query per chunk.
        let refs: Vec<&ResourceRef> = scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Resource(r) => Some(r),
                Scope::Tenant => None,
            })
            .collect();
        // Grouped by type, so that each lookup is one `rid IN (…)` on the
        // (tenant, type, id) index (an OR of pairs is far slower in SQLite).
        let mut by_type: HashMap<&str, Vec<&str>> = HashMap::new();
        for r in refs {
            by_type
                .entry(r.rtype.as_str())
                .or_default()
                .push(r.id.as_str());
        }
        let mut roots = Vec::new();
        for (ty, ids) in by_type {
            for chunk in ids.chunks(CHUNK) {
                roots.extend(
                    resource::Entity::find()
                        .filter(resource::Column::TenantId.eq(t))
                        .filter(resource::Column::Rtype.eq(ty))
                        .filter(resource::Column::Rid.is_in(chunk.iter().copied()))
                        .all(c)
                        .await?,
                );
            }
        }
        // A root inside another root's subtree adds nothing.
        let paths: Vec<String> = roots.iter().map(child_path).collect();
        let mut seen = HashSet::new();
        let mut subtrees = Vec::new();
        for (root, path) in roots.iter().zip(&paths) {
            if root.rtype == rtype && seen.insert(root.pk) {
                rows.push(root.clone());
            }
            if !paths
                .iter()
                .any(|p| p != path && path.starts_with(p.as_str()))
            {
                subtrees.push(path.as_str());
            }
        }
        // Every subtree's resources of the type: one index range scan each.
        // (One statement with an OR of the ranges makes SQLite re-test every
        // branch on every row, which is far slower for many subtrees.)
        for p in subtrees {
            let mut q = resource::Entity::find()
                .filter(resource::Column::TenantId.eq(t))
                .filter(resource::Column::Rtype.eq(rtype))
                .filter(under(p));
            if let Some(a) = after {
                q = q.filter(resource::Column::Rid.gt(a));
            }
            let found = q.all(c).await?;
            rows.extend(found.into_iter().filter(|r| seen.insert(r.pk)));
        }
    }
    let pks: Vec<i64> = rows
        .iter()
        .map(|r| ancestor_pks(&r.ancestors))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let by_pk = resources_by_pk(c, &pks).await?;
    rows.iter().map(|r| ancestry_of(r, &by_pk)).collect()
}

/// Principals holding grants on the tenant or on `path`, with those bindings.
pub(super) async fn holders_on_path<C: ConnectionTrait>(
    c: &C,
    t: &str,
    path: &[ResourceNode],
) -> Result<Vec<(Principal, Vec<Binding>)>> {
    let Some(first) = path.first() else {
        return tenant_holders(c, t).await;
    };
    let Some(row) = resource_row(c, t, &first.resource).await? else {
        return Ok(Vec::new());
    };
    let mut pks = ancestor_pks(&row.ancestors)?;
    pks.push(row.pk);
    let rows = grant::Entity::find()
        .filter(grant::Column::TenantId.eq(t))
        .filter(
            Condition::any()
                .add(grant::Column::ScopePk.is_null())
                .add(grant::Column::ScopePk.is_in(pks)),
        )
        .all(c)
        .await?;
    expand_holders(c, t, grants_with_scopes(c, rows).await?).await
}

/// Principals holding tenant-wide grants, with those bindings.
pub(super) async fn tenant_holders<C: ConnectionTrait>(
    c: &C,
    t: &str,
) -> Result<Vec<(Principal, Vec<Binding>)>> {
    let rows = grant::Entity::find()
        .filter(grant::Column::TenantId.eq(t))
        .filter(grant::Column::ScopePk.is_null())
        .all(c)
        .await?;
    expand_holders(c, t, grants_with_scopes(c, rows).await?).await
}

/// Expands team grants to the teams' members (transitively), returning each
/// principal reached with its bindings among `grants`.
async fn expand_holders<C: ConnectionTrait>(
    c: &C,
    t: &str,
    grants: Vec<Grant>,
) -> Result<Vec<(Principal, Vec<Binding>)>> {
    let mut by_principal: HashMap<String, Vec<Binding>> = HashMap::new();
    // Members of each granted team, transitively, with the chain nearest-first.
    let mut team_grants: HashMap<String, Vec<Arc<Grant>>> = HashMap::new();
    for g in grants.into_iter().map(Arc::new) {
        match &g.subject {
            SubjectRef::Principal(p) => by_principal.entry(p.clone()).or_default().push(Binding {
                grant: g.clone(),
                via_teams: Vec::new(),
            }),
            SubjectRef::Team(team) => team_grants.entry(team.clone()).or_default().push(g.clone()),
        }
    }
    for (team, gs) in &team_grants {
        for (principal, chain) in principals_in_team(c, t, team).await? {
            let entry = by_principal.entry(principal).or_default();
            for g in gs {
                entry.push(Binding {
                    grant: g.clone(),
                    via_teams: chain.clone(),
                });
            }
        }
    }
    let ids: Vec<String> = by_principal.keys().cloned().collect();
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let rows = principal::Entity::find()
            .filter(principal::Column::TenantId.eq(t))
            .filter(principal::Column::Id.is_in(chunk.iter().cloned()))
            .all(c)
            .await?;
        for row in rows {
            let p = principal_from_row(row)?;
            if let Some(b) = by_principal.remove(&p.id) {
                out.push((p, b));
            }
        }
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(out)
}

/// Principals inside a team, transitively, each with the team chain from the
/// principal's direct team up to `team` (shortest chain).
pub(super) async fn principals_in_team<C: ConnectionTrait>(
    c: &C,
    t: &str,
    team: &str,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::from([team.to_owned()]);
    // Chains are built top-down and reversed at the end.
    let mut queue: VecDeque<(String, Vec<String>)> =
        VecDeque::from([(team.to_owned(), vec![team.to_owned()])]);
    while let Some((current, chain)) = queue.pop_front() {
        let rows = team_member::Entity::find()
            .filter(team_member::Column::TenantId.eq(t))
            .filter(team_member::Column::TeamId.eq(current.as_str()))
            .all(c)
            .await?;
        for m in rows {
            if m.member_kind == "principal" {
                out.entry(m.member_id)
                    .or_insert_with(|| chain.iter().rev().cloned().collect());
            } else if seen.insert(m.member_id.clone()) {
                let mut next = chain.clone();
                next.push(m.member_id.clone());
                queue.push_back((m.member_id, next));
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Every resource of the tenant with its parent and privacy, in one query
/// (parents resolved from the keys in memory).
pub(super) async fn resource_rows<C: ConnectionTrait>(
    c: &C,
    t: &str,
) -> Result<Vec<crate::store::ResourceRow>> {
    Ok(resource_rows_by_pk(c, t).await?.resources)
}

/// What [`resource_rows_by_pk`] reads.
struct ResourceRows {
    /// The resource of each key.
    by_pk: HashMap<i64, ResourceRef>,
    /// Every resource as `(resource, parent, private)`.
    resources: Vec<crate::store::ResourceRow>,
    /// The attributes of those that have some.
    attributes: Vec<(ResourceRef, model::Attributes)>,
    /// The restricted ones.
    restricted: Vec<ResourceRef>,
    /// The links of those that have some.
    links: Vec<(ResourceRef, Vec<model::Link>)>,
}

/// Every resource of the tenant as `(resource, parent, private)`, with the
/// resource of each key.
async fn resource_rows_by_pk<C: ConnectionTrait>(c: &C, t: &str) -> Result<ResourceRows> {
    type Row = (
        i64,
        String,
        String,
        Option<i64>,
        bool,
        Option<String>,
        bool,
        Option<String>,
    );
    let rows: Vec<Row> = resource::Entity::find()
        .select_only()
        .column(resource::Column::Pk)
        .column(resource::Column::Rtype)
        .column(resource::Column::Rid)
        .column(resource::Column::ParentPk)
        .column(resource::Column::IsPrivate)
        .column(resource::Column::Attributes)
        .column(resource::Column::IsRestricted)
        .column(resource::Column::Links)
        .filter(resource::Column::TenantId.eq(t))
        .into_tuple()
        .all(c)
        .await?;
    let mut by_pk: HashMap<i64, ResourceRef> = HashMap::with_capacity(rows.len());
    let mut parents = Vec::with_capacity(rows.len());
    let mut attributes = Vec::new();
    let mut restricted = Vec::new();
    let mut links = Vec::new();
    for (pk, rtype, id, parent, private, attrs, is_restricted, linked) in rows {
        let r = ResourceRef { rtype, id };
        if linked.is_some() {
            links.push((r.clone(), links_from_column(linked.as_deref())?));
        }
        if is_restricted {
            restricted.push(r.clone());
        }
        if attrs.is_some() {
            attributes.push((r.clone(), attributes_from_column(attrs.as_deref())?));
        }
        by_pk.insert(pk, r);
        parents.push((pk, parent, private));
    }
    let out = parents
        .into_iter()
        .map(|(pk, parent, private)| {
            let parent = match parent {
                None => None,
                Some(p) => Some(by_pk.get(&p).cloned().ok_or_else(|| {
                    Error::Internal(format!("resource {pk}: parent {p} missing"))
                })?),
            };
            Ok((by_pk[&pk].clone(), parent, private))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ResourceRows {
        by_pk,
        resources: out,
        attributes,
        restricted,
        links,
    })
}

/// Every row of the tenant, read through `c` (one statement per table; the
/// caller makes it a snapshot).
pub(super) async fn tenant_rows<C: ConnectionTrait>(
    c: &C,
    t: &str,
) -> Result<Option<crate::store::TenantRows>> {
    let Some(row) = tenant_row(c, t).await? else {
        return Ok(None);
    };
    let revision = row.revision;
    let tenant = tenant_from_row(row)?;
    let ResourceRows {
        by_pk,
        resources,
        attributes,
        restricted,
        links,
    } = resource_rows_by_pk(c, t).await?;
    let principals = principal::Entity::find()
        .filter(principal::Column::TenantId.eq(t))
        .all(c)
        .await?
        .into_iter()
        .map(principal_from_row)
        .collect::<Result<Vec<_>>>()?;
    let teams = team::Entity::find()
        .filter(team::Column::TenantId.eq(t))
        .all(c)
        .await?
        .into_iter()
        .map(team_from_row)
        .collect();
    let members = team_member::Entity::find()
        .filter(team_member::Column::TenantId.eq(t))
        .all(c)
        .await?
        .into_iter()
        .map(|m| {
            SubjectRef::from_parts(&m.member_kind, m.member_id)
                .map(|s| (m.team_id, s))
                .ok_or_else(|| corrupt("member kind"))
        })
        .collect::<Result<Vec<_>>>()?;
    let roles = custom_roles(c, t).await?;
    let grants = grant::Entity::find()
        .filter(grant::Column::TenantId.eq(t))
        .all(c)
        .await?
        .into_iter()
        .map(|g| {
            let scope = match g.scope_pk {
                None => Scope::Tenant,
                Some(pk) => Scope::Resource(
                    by_pk
                        .get(&pk)
                        .cloned()
                        .ok_or_else(|| corrupt("grant scope"))?,
                ),
            };
            grant_from_row(g, scope)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(crate::store::TenantRows {
        revision,
        tenant,
        resources,
        attributes,
        restricted,
        links,
        principals,
        teams,
        members,
        roles,
        grants,
    }))
}

pub(super) async fn custom_roles<C: ConnectionTrait>(c: &C, t: &str) -> Result<Vec<Role>> {
    role::Entity::find()
        .filter(role::Column::TenantId.eq(t))
        .order_by_asc(role::Column::Id)
        .all(c)
        .await?
        .into_iter()
        .map(role_from_row)
        .collect()
}

pub(super) async fn list_grants<C: ConnectionTrait>(
    c: &C,
    t: &str,
    subject: Option<&SubjectRef>,
    scope: Option<&ResourceRef>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Grant>> {
    let mut q = grant::Entity::find().filter(grant::Column::TenantId.eq(t));
    if let Some(s) = subject {
        q = q
            .filter(grant::Column::SubjectKind.eq(s.kind_str()))
            .filter(grant::Column::SubjectId.eq(s.id()));
    }
    if let Some(r) = scope {
        let Some(row) = resource_row(c, t, r).await? else {
            return Err(Error::not_found(format!("resource `{r}`")));
        };
        q = q.filter(grant::Column::ScopePk.eq(row.pk));
    }
    if let Some(a) = after {
        q = q.filter(grant::Column::Id.gt(a));
    }
    let rows = q
        .order_by_asc(grant::Column::Id)
        .limit(limit)
        .all(c)
        .await?;
    grants_with_scopes(c, rows).await
}

pub(super) async fn grants_last_used<C: ConnectionTrait>(
    c: &C,
    t: &str,
    ids: &[String],
) -> Result<HashMap<String, model::Millis>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, Option<i64>)> = grant::Entity::find()
            .select_only()
            .column(grant::Column::Id)
            .column(grant::Column::LastUsedAt)
            .filter(grant::Column::TenantId.eq(t))
            .filter(grant::Column::Id.is_in(chunk.iter().cloned()))
            .filter(grant::Column::LastUsedAt.is_not_null())
            .into_tuple()
            .all(c)
            .await?;
        out.extend(rows.into_iter().filter_map(|(id, at)| Some((id, at?))));
    }
    Ok(out)
}

pub(super) async fn list_audit<C: ConnectionTrait>(
    c: &C,
    f: &AuditFilter,
    limit: u64,
) -> Result<Vec<AuditEvent>> {
    let mut q =
        audit_event::Entity::find().filter(audit_event::Column::TenantId.eq(f.tenant.as_str()));
    if let Some(a) = &f.actor {
        q = q.filter(audit_event::Column::Actor.eq(a.as_str()));
    }
    if let Some(a) = &f.action {
        q = q.filter(audit_event::Column::Action.eq(a.as_str()));
    }
    if let Some(p) = &f.target_prefix {
        // Escape LIKE's wildcards so that `%` and `_` in ids stay literal.
        let escaped: String = p
            .chars()
            .flat_map(|ch| match ch {
                '%' | '_' | '\\' => vec!['\\', ch],
                _ => vec![ch],
            })
            .collect();
        q = q.filter(
            audit_event::Column::Target
                .like(sea_orm::sea_query::LikeExpr::new(format!("{escaped}%")).escape('\\')),
        );
    }
    if let Some(s) = f.since {
        q = q.filter(audit_event::Column::At.gte(s));
    }
    if let Some(u) = f.until {
        q = q.filter(audit_event::Column::At.lt(u));
    }
    if let Some(b) = f.before_revision {
        q = q.filter(audit_event::Column::Revision.lt(b));
    }
    Ok(q.order_by_desc(audit_event::Column::Revision)
        .limit(limit)
        .all(c)
        .await?
        .into_iter()
        .map(audit_from_row)
        .collect())
}

//! Whole tenants: the export read, the bulk insert of an import, deletion
//! with its tombstone, and the erasure of a principal's display name.

use super::*;
use crate::model::Millis;
use crate::store::entity::{change, request, tombstone};
use crate::store::{pseudonymize_json, TenantDump};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseBackend, EntityTrait, QueryFilter, QuerySelect,
    Statement,
};
use std::collections::HashMap;

/// Rows per multi-row `INSERT`: under SQLite's 32,766 and PostgreSQL's
/// 65,535 bound parameters with the widest row (9 columns).
const BATCH: usize = 2_000;

/// Every row of the tenant with creation times (the caller makes it one
/// snapshot).
pub(super) async fn export<C: ConnectionTrait>(c: &C, t: &str) -> Result<Option<TenantDump>> {
    let Some(rows) = read::tenant_rows(c, t).await? else {
        return Ok(None);
    };
    let created: HashMap<(String, String), Millis> = resource::Entity::find()
        .select_only()
        .column(resource::Column::Rtype)
        .column(resource::Column::Rid)
        .column(resource::Column::CreatedAt)
        .filter(resource::Column::TenantId.eq(t))
        .into_tuple::<(String, String, i64)>()
        .all(c)
        .await?
        .into_iter()
        .map(|(rtype, id, at)| ((rtype, id), at))
        .collect();
    Ok(Some(TenantDump::from_rows(rows, |r| {
        created
            .get(&(r.rtype.clone(), r.id.clone()))
            .copied()
            .unwrap_or_default()
    })))
}

/// Rows per PostgreSQL `INSERT … SELECT FROM UNNEST(arrays)`: one bound
/// array per column, so the statement stays small whatever the batch.
const PG_BATCH: usize = 20_000;

/// A text array of `f` over `rows`.
fn strings<T>(rows: &[T], f: impl Fn(&T) -> String) -> sea_orm::Value {
    rows.iter().map(f).collect::<Vec<String>>().into()
}

/// Runs one statement with `values` bound.
async fn unnest<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<sea_orm::Value>) -> Result<()> {
    c.execute(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        sql,
        values,
    ))
    .await?;
    Ok(())
}

/// The revision a deleted tenant had reached.
pub(super) async fn tombstone<C: ConnectionTrait>(c: &C, t: &str) -> Result<Option<i64>> {
    Ok(tombstone::Entity::find_by_id(t.to_owned())
        .one(c)
        .await?
        .map(|r| r.revision))
}

/// The first `n` keys for new resources. PostgreSQL hands them out from the
/// table's sequence (safe beside concurrent writers); SQLite continues after
/// the largest key ever used, which no one else can take while this
/// transaction holds the database's write lock (it has written already).
async fn resource_keys<C: ConnectionTrait>(c: &C, n: usize) -> Result<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let backend = c.get_database_backend();
    if backend == DatabaseBackend::Postgres {
        // One array per statement: decoding a row per key costs more than
        // taking the keys.
        let seq: String = c
            .query_one(Statement::from_string(
                backend,
                "SELECT pg_get_serial_sequence('resources', 'pk') AS s",
            ))
            .await?
            .ok_or_else(|| Error::Internal("no resource key sequence".to_owned()))?
            .try_get("", "s")?;
        let mut keys = Vec::with_capacity(n);
        while keys.len() < n {
            let take = (n - keys.len()).min(PG_BATCH * 5);
            let row = c
                .query_one(Statement::from_sql_and_values(
                    backend,
                    "SELECT array_agg(nextval($2::regclass)) AS pks FROM generate_series(1, $1)",
                    [(take as i64).into(), seq.clone().into()],
                ))
                .await?
                .ok_or_else(|| Error::Internal("no resource keys".to_owned()))?;
            keys.extend(row.try_get::<Vec<i64>>("", "pks")?);
        }
        return Ok(keys);
    }
    let max = c
        .query_one(Statement::from_string(
            backend,
            "SELECT MAX(m) AS m FROM (SELECT MAX(pk) AS m FROM resources UNION ALL SELECT seq AS m FROM sqlite_sequence WHERE name = 'resources')",
        ))
        .await?
        .and_then(|r| r.try_get::<Option<i64>>("", "m").ok().flatten())
        .unwrap_or(0);
    Ok((1..=n as i64).map(|i| max + i).collect())
}

/// Where each resource was written: its key and its `ancestors` path.
type Placed<'a> = HashMap<&'a ResourceRef, (i64, String)>;

/// Writes every record of `d`: multi-row `INSERT`s on SQLite, `INSERT …
/// SELECT FROM UNNEST(arrays)` on PostgreSQL.
pub(super) async fn insert<C: ConnectionTrait>(
    c: &C,
    t: &str,
    now: Millis,
    d: &TenantDump,
) -> Result<()> {
    let pg = c.get_database_backend() == DatabaseBackend::Postgres;
    insert_roles_and_teams(c, t, now, d).await?;
    insert_principals(c, t, d, pg).await?;
    insert_members(c, t, d, pg).await?;
    let placed = insert_resources(c, t, d, pg).await?;
    insert_grants(c, t, d, &placed, pg).await
}

async fn insert_roles_and_teams<C: ConnectionTrait>(
    c: &C,
    t: &str,
    now: Millis,
    d: &TenantDump,
) -> Result<()> {
    for chunk in d.roles.chunks(BATCH) {
        role::Entity::insert_many(chunk.iter().map(|r| role::ActiveModel {
            tenant_id: Set(t.to_owned()),
            id: Set(r.id.clone()),
            display_name: Set(r.display_name.clone()),
            definition: Set(role_definition_json(r)),
            created_at: Set(now),
        }))
        .exec(c)
        .await?;
    }
    for chunk in d.teams.chunks(BATCH) {
        team::Entity::insert_many(chunk.iter().map(|m| team::ActiveModel {
            tenant_id: Set(t.to_owned()),
            id: Set(m.id.clone()),
            display_name: Set(m.display_name.clone()),
            created_at: Set(now),
        }))
        .exec(c)
        .await?;
    }
    Ok(())
}

async fn insert_principals<C: ConnectionTrait>(
    c: &C,
    t: &str,
    d: &TenantDump,
    pg: bool,
) -> Result<()> {
    if pg {
        for chunk in d.principals.chunks(PG_BATCH) {
            unnest(
                c,
                "INSERT INTO principals (tenant_id, id, kind, status, display_name, invitation_expires_at, created_at) \
                 SELECT $1, id, kind, status, name, CASE WHEN lapsing THEN lapses END, at \
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bigint[], $8::bigint[]) \
                 AS t(id, kind, status, name, lapsing, lapses, at)",
                vec![
                    t.into(),
                    strings(chunk, |p| p.id.clone()),
                    strings(chunk, |p| p.kind.as_str().to_owned()),
                    strings(chunk, |p| p.status.as_str().to_owned()),
                    strings(chunk, |p| p.display_name.clone()),
                    chunk
                        .iter()
                        .map(|p| p.invitation_expires_at.is_some())
                        .collect::<Vec<bool>>()
                        .into(),
                    chunk
                        .iter()
                        .map(|p| p.invitation_expires_at.unwrap_or(0))
                        .collect::<Vec<i64>>()
                        .into(),
                    chunk.iter().map(|p| p.created_at).collect::<Vec<i64>>().into(),
                ],
            )
            .await?;
        }
    } else {
        for chunk in d.principals.chunks(BATCH) {
            principal::Entity::insert_many(chunk.iter().map(|p| super::tx::principal_row(t, p)))
                .exec(c)
                .await?;
        }
    }
    Ok(())
}

async fn insert_members<C: ConnectionTrait>(
    c: &C,
    t: &str,
    d: &TenantDump,
    pg: bool,
) -> Result<()> {
    if pg {
        for chunk in d.members.chunks(PG_BATCH) {
            unnest(
                c,
                "INSERT INTO team_members (tenant_id, team_id, member_kind, member_id) \
                 SELECT $1, team, kind, id FROM UNNEST($2::text[], $3::text[], $4::text[]) AS t(team, kind, id)",
                vec![
                    t.into(),
                    strings(chunk, |(team, _)| team.clone()),
                    strings(chunk, |(_, m)| m.kind_str().to_owned()),
                    strings(chunk, |(_, m)| m.id().to_owned()),
                ],
            )
            .await?;
        }
    } else {
        for chunk in d.members.chunks(BATCH) {
            team_member::Entity::insert_many(chunk.iter().map(|(team, m)| {
                team_member::ActiveModel {
                    tenant_id: Set(t.to_owned()),
                    team_id: Set(team.clone()),
                    member_kind: Set(m.kind_str().to_owned()),
                    member_id: Set(m.id().to_owned()),
                }
            }))
            .exec(c)
            .await?;
        }
    }
    Ok(())
}

/// Resources, parents first: each gets a key and its parent's path.
async fn insert_resources<'a, C: ConnectionTrait>(
    c: &C,
    t: &str,
    d: &'a TenantDump,
    pg: bool,
) -> Result<Placed<'a>> {
    let t0 = std::time::Instant::now();
    // Keys first, so that each row names its parent's key and path.
    let keys = resource_keys(c, d.resources.len()).await?;
    let t_keys = t0.elapsed();
    let mut placed: Placed<'a> = HashMap::with_capacity(keys.len());
    let mut rows = Vec::with_capacity(d.resources.len());
    for (r, pk) in d.resources.iter().zip(keys) {
        let (parent_pk, ancestors) = match &r.parent {
            None => (None, "/".to_owned()),
            Some(p) => {
                let (ppk, ppath) = placed
                    .get(p)
                    .ok_or_else(|| Error::Internal(format!("`{p}` is not before its child")))?;
                (Some(*ppk), format!("{ppath}{ppk}/"))
            }
        };
        rows.push(resource::ActiveModel {
            pk: Set(pk),
            tenant_id: Set(t.to_owned()),
            rtype: Set(r.resource.rtype.clone()),
            rid: Set(r.resource.id.clone()),
            parent_pk: Set(parent_pk),
            ancestors: Set(ancestors.clone()),
            is_private: Set(r.private),
            is_restricted: Set(r.restricted),
            attributes: Set(attributes_column(&r.attributes)),
            links: Set(links_column(&r.links)),
            created_at: Set(r.created_at),
        });
        placed.insert(&r.resource, (pk, ancestors));
    }
    if pg {
        for chunk in rows.chunks(PG_BATCH) {
            let v = |x: &sea_orm::ActiveValue<String>| x.clone().unwrap();
            unnest(
                c,
                "INSERT INTO resources (pk, tenant_id, rtype, rid, parent_pk, ancestors, is_private, is_restricted, attributes, links, created_at) \
                 SELECT pk, $1, rtype, rid, NULLIF(parent, 0), anc, priv, restr, NULLIF(attrs, ''), NULLIF(lnk, ''), at \
                 FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bool[], $8::bool[], $9::text[], $10::text[], $11::bigint[]) \
                 AS t(pk, rtype, rid, parent, anc, priv, restr, attrs, lnk, at)",
                vec![
                    t.into(),
                    chunk.iter().map(|m| m.pk.clone().unwrap()).collect::<Vec<i64>>().into(),
                    strings(chunk, |m| v(&m.rtype)),
                    strings(chunk, |m| v(&m.rid)),
                    chunk
                        .iter()
                        .map(|m| m.parent_pk.clone().unwrap().unwrap_or(0))
                        .collect::<Vec<i64>>()
                        .into(),
                    strings(chunk, |m| v(&m.ancestors)),
                    chunk.iter().map(|m| m.is_private.clone().unwrap()).collect::<Vec<bool>>().into(),
                    chunk.iter().map(|m| m.is_restricted.clone().unwrap()).collect::<Vec<bool>>().into(),
                    strings(chunk, |m| m.attributes.clone().unwrap().unwrap_or_default()),
                    strings(chunk, |m| m.links.clone().unwrap().unwrap_or_default()),
                    chunk.iter().map(|m| m.created_at.clone().unwrap()).collect::<Vec<i64>>().into(),
                ],
            )
            .await?;
        }
    } else {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<resource::ActiveModel> = rows.by_ref().take(BATCH).collect();
            resource::Entity::insert_many(chunk).exec(c).await?;
        }
    }
    let t_res = t0.elapsed();
    tracing::debug!(
        keys_ms = t_keys.as_millis() as u64,
        resources_ms = (t_res - t_keys).as_millis() as u64,
        "tenant import phases"
    );
    Ok(placed)
}

async fn insert_grants<C: ConnectionTrait>(
    c: &C,
    t: &str,
    d: &TenantDump,
    placed: &Placed<'_>,
    pg: bool,
) -> Result<()> {
    if pg {
        for chunk in d.grants.chunks(PG_BATCH) {
            let scopes = chunk
                .iter()
                .map(|g| match &g.scope {
                    Scope::Tenant => Ok(0),
                    Scope::Resource(r) => placed
                        .get(r)
                        .map(|(pk, _)| *pk)
                        .ok_or_else(|| Error::Internal(format!("grant scope `{r}` missing"))),
                })
                .collect::<Result<Vec<i64>>>()?;
            unnest(
                c,
                "INSERT INTO grants (id, tenant_id, subject_kind, subject_id, role_id, scope_pk, effect, expires_at, condition, created_at) \
                 SELECT id, $1, kind, subject, role, NULLIF(scope, 0), effect, CASE WHEN expiring THEN expires END, NULLIF(cond, ''), at \
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::bool[], $9::bigint[], $10::text[], $11::bigint[]) \
                 AS t(id, kind, subject, role, scope, effect, expiring, expires, cond, at)",
                vec![
                    t.into(),
                    strings(chunk, |g| g.id.clone()),
                    strings(chunk, |g| g.subject.kind_str().to_owned()),
                    strings(chunk, |g| g.subject.id().to_owned()),
                    strings(chunk, |g| g.role_id.clone()),
                    scopes.into(),
                    strings(chunk, |g| g.effect.as_str().to_owned()),
                    chunk
                        .iter()
                        .map(|g| g.expires_at.is_some())
                        .collect::<Vec<bool>>()
                        .into(),
                    chunk
                        .iter()
                        .map(|g| g.expires_at.unwrap_or(0))
                        .collect::<Vec<i64>>()
                        .into(),
                    strings(chunk, |g| {
                        g.condition
                            .as_ref()
                            .map(|c| c.source().to_owned())
                            .unwrap_or_default()
                    }),
                    chunk.iter().map(|g| g.created_at).collect::<Vec<i64>>().into(),
                ],
            )
            .await?;
        }
        return Ok(());
    }
    for chunk in d.grants.chunks(BATCH) {
        let models = chunk
            .iter()
            .map(|g| {
                let scope_pk = match &g.scope {
                    Scope::Tenant => None,
                    Scope::Resource(r) => Some(
                        placed
                            .get(r)
                            .map(|(pk, _)| *pk)
                            .ok_or_else(|| Error::Internal(format!("grant scope `{r}` missing")))?,
                    ),
                };
                Ok(super::tx::grant_row(t, g, scope_pk))
            })
            .collect::<Result<Vec<_>>>()?;
        grant::Entity::insert_many(models).exec(c).await?;
    }
    Ok(())
}

/// Deletes every row of the tenant and records its tombstone at `revision`.
pub(super) async fn delete<C: ConnectionTrait>(
    c: &C,
    t: &str,
    revision: i64,
    now: Millis,
) -> Result<()> {
    grant::Entity::delete_many()
        .filter(grant::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    team_member::Entity::delete_many()
        .filter(team_member::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    team::Entity::delete_many()
        .filter(team::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    principal::Entity::delete_many()
        .filter(principal::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    role::Entity::delete_many()
        .filter(role::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    resource::Entity::delete_many()
        .filter(resource::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    request::Entity::delete_many()
        .filter(request::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    change::Entity::delete_many()
        .filter(change::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    audit_event::Entity::delete_many()
        .filter(audit_event::Column::TenantId.eq(t))
        .exec(c)
        .await?;
    tenant::Entity::delete_many()
        .filter(tenant::Column::Id.eq(t))
        .exec(c)
        .await?;
    tombstone::Entity::delete_many()
        .filter(tombstone::Column::Id.eq(t))
        .exec(c)
        .await?;
    tombstone::Entity::insert(tombstone::ActiveModel {
        id: Set(t.to_owned()),
        revision: Set(revision),
        deleted_at: Set(now),
    })
    .exec(c)
    .await?;
    Ok(())
}

/// Replaces the principal's display name by `pseudonym` everywhere it is
/// kept; returns how many audit events changed.
pub(super) async fn erase<C: ConnectionTrait>(
    c: &C,
    t: &str,
    principal_id: &str,
    pseudonym: &str,
) -> Result<u64> {
    let current: Vec<String> = read::principal(c, t, principal_id)
        .await?
        .map(|p| vec![p.display_name])
        .unwrap_or_default();
    principal::Entity::update_many()
        .col_expr(principal::Column::DisplayName, Expr::value(pseudonym))
        .filter(principal::Column::TenantId.eq(t))
        .filter(principal::Column::Id.eq(principal_id))
        .exec(c)
        .await?;
    // Only rows that mention the id can show the principal's record.
    let quoted = serde_json::to_string(principal_id).unwrap_or_default();
    let pattern = format!("%{}%", like_escape(&quoted));
    let mut changed = 0;
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(t))
        .filter(
            sea_orm::Condition::any()
                .add(Expr::col(audit_event::Column::BeforeJson).like(like(&pattern)))
                .add(Expr::col(audit_event::Column::AfterJson).like(like(&pattern))),
        )
        .all(c)
        .await?;
    for e in events {
        let before = pseudonymize_json(&e.before_json, principal_id, &current, pseudonym);
        let after = pseudonymize_json(&e.after_json, principal_id, &current, pseudonym);
        if before.is_none() && after.is_none() {
            continue;
        }
        audit_event::Entity::update_many()
            .col_expr(
                audit_event::Column::BeforeJson,
                Expr::value(before.unwrap_or(e.before_json)),
            )
            .col_expr(
                audit_event::Column::AfterJson,
                Expr::value(after.unwrap_or(e.after_json)),
            )
            .filter(audit_event::Column::Id.eq(e.id))
            .exec(c)
            .await?;
        changed += 1;
    }
    let logged = change::Entity::find()
        .filter(change::Column::TenantId.eq(t))
        .filter(Expr::col(change::Column::Invalidation).like(like(&pattern)))
        .all(c)
        .await?;
    for row in logged {
        if let Some(inv) = pseudonymize_json(&row.invalidation, principal_id, &current, pseudonym) {
            change::Entity::update_many()
                .col_expr(change::Column::Invalidation, Expr::value(inv))
                .filter(change::Column::TenantId.eq(t))
                .filter(change::Column::Revision.eq(row.revision))
                .exec(c)
                .await?;
        }
    }
    // A retried request would get its first result back, name included:
    // forget those results (the writes themselves stay).
    request::Entity::delete_many()
        .filter(request::Column::TenantId.eq(t))
        .filter(Expr::col(request::Column::Outcome).like(like(&pattern)))
        .exec(c)
        .await?;
    Ok(changed)
}

fn like(pattern: &str) -> sea_orm::sea_query::LikeExpr {
    sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')
}

/// `s` with LIKE's wildcards and the escape character escaped.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

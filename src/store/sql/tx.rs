//! The write port over SQL: one database transaction per admin write. The
//! transaction bumps the tenant's revision first (serializing the tenant's
//! writers), replays request ids seen before, and on commit records the
//! revision-log row, the audit row and the request id. SQL and mapping only:
//! which rows change, and whether they may, is decided by the admin layer.

use super::read;
use super::*;
use crate::model::{Attributes, Millis};
use crate::store::entity::{change, request};
use crate::store::{
    Begun, Delta, Descendant, Keyset, Record, WriteContext, WriteStore, WriteTx,
    REQUEST_ID_RETENTION_MS,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, NotSet, PaginatorTrait,
    QueryFilter, QuerySelect, Set, Statement, TransactionTrait,
};

/// One open admin write over SQL.
#[derive(Debug)]
pub struct SqlTx {
    txn: DatabaseTransaction,
    ctx: WriteContext,
    revision: i64,
    now: Millis,
    deltas: Vec<Delta>,
}

impl WriteStore for SqlStore {
    type Tx = SqlTx;

    async fn begin(&self, ctx: &WriteContext, creating: bool) -> Result<Begun<SqlTx>> {
        let txn = self.db.begin().await?;
        let t = ctx.tenant_id.as_str();
        let revision = if creating {
            // A tenant deleted before continues after its last revision.
            super::dump::tombstone(&txn, t).await?.unwrap_or(0) + 1
        } else {
            // The first statement, so that it takes the tenant's row lock
            // (PostgreSQL) or the write lock (SQLite) before anything is
            // read: two attempts of one request id cannot both miss each
            // other below.
            bump(&txn, t).await?
        };
        if let Some(key) = &ctx.request {
            if let Some(row) = request::Entity::find_by_id((t.to_owned(), key.id.clone()))
                .one(&txn)
                .await?
            {
                if row.fingerprint != key.fingerprint {
                    return Err(Error::precondition(
                        "request_id_reused",
                        format!("request id `{}` was used for a different request", key.id),
                    ));
                }
                // Undo the revision bump: nothing changes.
                let _ = txn.rollback().await;
                return Ok(Begun::Replayed {
                    outcome: row.outcome,
                    revision: row.revision,
                });
            }
        }
        Ok(Begun::Open(SqlTx {
            txn,
            ctx: ctx.clone(),
            revision,
            now: model::now_millis(),
            deltas: Vec::new(),
        }))
    }
}

/// Bumps the tenant revision and returns the new one.
async fn bump<C: ConnectionTrait>(c: &C, t: &str) -> Result<i64> {
    let res = tenant::Entity::update_many()
        .col_expr(
            tenant::Column::Revision,
            Expr::col(tenant::Column::Revision).add(1),
        )
        .filter(tenant::Column::Id.eq(t))
        .exec(c)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::not_found(format!("tenant `{t}`")));
    }
    read::tenant_row(c, t)
        .await?
        .map(|r| r.revision)
        .ok_or_else(|| Error::not_found(format!("tenant `{t}`")))
}

impl SqlTx {
    fn t(&self) -> &str {
        &self.ctx.tenant_id
    }

    async fn row(&self, r: &ResourceRef) -> Result<resource::Model> {
        read::resource_row(&self.txn, self.t(), r)
            .await?
            .ok_or_else(|| Error::not_found(format!("resource `{r}`")))
    }

    async fn scope_pk(&self, scope: &Scope) -> Result<Option<i64>> {
        Ok(match scope {
            Scope::Tenant => None,
            Scope::Resource(r) => Some(self.row(r).await?.pk),
        })
    }

    /// Keys of `r` and everything below it.
    async fn subtree_pks(&self, r: &ResourceRef) -> Result<Vec<i64>> {
        let row = self.row(r).await?;
        let mut pks: Vec<i64> = resource::Entity::find()
            .select_only()
            .column(resource::Column::Pk)
            .filter(resource::Column::TenantId.eq(self.t()))
            .filter(under(&child_path(&row)))
            .into_tuple::<i64>()
            .all(&self.txn)
            .await?;
        pks.push(row.pk);
        Ok(pks)
    }

    fn grant_rows(&self) -> sea_orm::Select<grant::Entity> {
        grant::Entity::find().filter(grant::Column::TenantId.eq(self.t()))
    }

    async fn grants(&self, q: sea_orm::Select<grant::Entity>) -> Result<Vec<Grant>> {
        use sea_orm::QueryOrder;
        let rows = q.order_by_asc(grant::Column::Id).all(&self.txn).await?;
        read::grants_with_scopes(&self.txn, rows).await
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl WriteTx for SqlTx {
    fn revision(&self) -> i64 {
        self.revision
    }

    fn now(&self) -> Millis {
        self.now
    }

    fn deltas(&self) -> &[Delta] {
        &self.deltas
    }

    async fn commit(self, mut record: Record) -> Result<()> {
        record.invalidation.deltas = self.deltas.clone();
        let (c, t, now, revision) = (
            &self.txn,
            self.ctx.tenant_id.as_str(),
            self.now,
            self.revision,
        );
        if let Some(key) = &self.ctx.request {
            request::ActiveModel {
                tenant_id: Set(t.to_owned()),
                request_id: Set(key.id.clone()),
                fingerprint: Set(key.fingerprint.clone()),
                revision: Set(revision),
                outcome: Set(record.outcome),
                at: Set(now),
            }
            .insert(c)
            .await?;
        }
        change::ActiveModel {
            tenant_id: Set(t.to_owned()),
            revision: Set(revision),
            at: Set(now),
            invalidation: Set(json(&record.invalidation)),
        }
        .insert(c)
        .await?;
        audit_event::ActiveModel {
            id: NotSet,
            tenant_id: Set(t.to_owned()),
            revision: Set(revision),
            at: Set(now),
            caller: Set(self.ctx.caller.clone()),
            actor: Set(self.ctx.actor.to_string()),
            action: Set(record.action.to_owned()),
            target: Set(record.target),
            before_json: Set(record.before),
            after_json: Set(record.after),
        }
        .insert(c)
        .await?;
        prune(c, t, now).await?;
        self.txn.commit().await?;
        Ok(())
    }

    async fn tenant(&mut self) -> Result<Option<Tenant>> {
        read::tenant(&self.txn, self.t()).await
    }

    async fn insert_dump(&mut self, dump: &crate::store::TenantDump) -> Result<()> {
        let (t, now) = (self.ctx.tenant_id.clone(), self.now);
        super::dump::insert(&self.txn, &t, now, dump).await
    }

    async fn snapshot(&mut self) -> Result<Option<crate::store::TenantRows>> {
        read::tenant_rows(&self.txn, self.t()).await
    }

    async fn delete_tenant(&mut self) -> Result<()> {
        let (t, now) = (self.ctx.tenant_id.clone(), self.now);
        super::dump::delete(&self.txn, &t, self.revision, now).await
    }

    async fn erase_display_name(&mut self, principal: &str, pseudonym: &str) -> Result<u64> {
        let t = self.ctx.tenant_id.clone();
        let n = super::dump::erase(&self.txn, &t, principal, pseudonym).await?;
        if let Some(p) = read::principal(&self.txn, &t, principal).await? {
            self.deltas.push(Delta::Principal { principal: p });
        }
        Ok(n)
    }

    async fn principal(&mut self, id: &str) -> Result<Option<Principal>> {
        read::principal(&self.txn, self.t(), id).await
    }

    async fn team(&mut self, id: &str) -> Result<Option<Team>> {
        Ok(read::team_row(&self.txn, self.t(), id)
            .await?
            .map(team_from_row))
    }

    async fn team_members(&mut self, team: &str) -> Result<Vec<SubjectRef>> {
        Ok(
            read::team_members(&self.txn, self.t(), team, None, Keyset::ALL.limit)
                .await?
                .unwrap_or_default(),
        )
    }

    async fn principals_in_team(&mut self, team: &str) -> Result<Vec<(String, Vec<String>)>> {
        read::principals_in_team(&self.txn, self.t(), team).await
    }

    async fn teams_of(&mut self, member: &SubjectRef) -> Result<Vec<String>> {
        use sea_orm::QueryOrder;
        Ok(team_member::Entity::find()
            .filter(team_member::Column::TenantId.eq(self.t()))
            .filter(team_member::Column::MemberKind.eq(member.kind_str()))
            .filter(team_member::Column::MemberId.eq(member.id()))
            .order_by_asc(team_member::Column::TeamId)
            .all(&self.txn)
            .await?
            .into_iter()
            .map(|m| m.team_id)
            .collect())
    }

    async fn resource(&mut self, r: &ResourceRef) -> Result<Option<Resource>> {
        read::resource(&self.txn, self.t(), r).await
    }

    async fn ancestry(&mut self, r: &ResourceRef) -> Result<Option<Vec<ResourceNode>>> {
        read::ancestry(&self.txn, self.t(), r).await
    }

    async fn subtree_height(&mut self, r: &ResourceRef) -> Result<usize> {
        let row = self.row(r).await?;
        // The most slashes in a descendant's path.
        let deepest: Option<i64> = resource::Entity::find()
            .select_only()
            .column_as(
                Expr::cust(
                    "CAST(MAX(length(ancestors) - length(replace(ancestors, '/', ''))) AS BIGINT)",
                ),
                "d",
            )
            .filter(resource::Column::TenantId.eq(self.t()))
            .filter(under(&child_path(&row)))
            .into_tuple::<Option<i64>>()
            .one(&self.txn)
            .await?
            .flatten();
        // A path of k slashes is a resource at depth k; `row` is at the depth
        // of its own ancestors' slashes.
        let own = row.ancestors.matches('/').count();
        Ok(match deepest {
            Some(d) => usize::try_from(d).unwrap_or(0).saturating_sub(own) + 1,
            None => 1,
        })
    }

    async fn descendants(&mut self, r: &ResourceRef) -> Result<Vec<Descendant>> {
        let row = self.row(r).await?;
        let own = row.ancestors.matches('/').count();
        Ok(resource::Entity::find()
            .filter(resource::Column::TenantId.eq(self.t()))
            .filter(under(&child_path(&row)))
            .all(&self.txn)
            .await?
            .into_iter()
            .map(|d| Descendant {
                depth: d.ancestors.matches('/').count().saturating_sub(own),
                resource: resource_ref(&d),
                private: d.is_private,
                linked: d.links.is_some(),
            })
            .collect())
    }

    async fn resource_types(&mut self) -> Result<Vec<String>> {
        // A loose index scan: one index seek per distinct type, not a pass
        // over every resource of the tenant (185 ms at a million).
        let backend = self.txn.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => {
                "WITH RECURSIVE t(rtype) AS (\
                 SELECT (SELECT MIN(rtype) FROM resources WHERE tenant_id = $1) \
                 UNION ALL SELECT (SELECT MIN(rtype) FROM resources WHERE tenant_id = $1 AND rtype > t.rtype) \
                 FROM t WHERE t.rtype IS NOT NULL) \
                 SELECT rtype FROM t WHERE rtype IS NOT NULL"
            }
            _ => {
                "WITH RECURSIVE t(rtype) AS (\
                 SELECT (SELECT MIN(rtype) FROM resources WHERE tenant_id = ?1) \
                 UNION ALL SELECT (SELECT MIN(rtype) FROM resources WHERE tenant_id = ?1 AND rtype > t.rtype) \
                 FROM t WHERE t.rtype IS NOT NULL) \
                 SELECT rtype FROM t WHERE rtype IS NOT NULL"
            }
        };
        let rows = self
            .txn
            .query_all(Statement::from_sql_and_values(
                backend,
                sql,
                [self.t().into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                r.try_get_by_index::<String>(0)
                    .map_err(|_| corrupt("resource type"))
            })
            .collect()
    }

    async fn resources_of_type(&mut self, rtype: &str) -> Result<Vec<ResourceRef>> {
        Ok(resource::Entity::find()
            .filter(resource::Column::TenantId.eq(self.t()))
            .filter(resource::Column::Rtype.eq(rtype))
            .all(&self.txn)
            .await?
            .iter()
            .map(resource_ref)
            .collect())
    }

    async fn custom_roles(&mut self) -> Result<Vec<Role>> {
        read::custom_roles(&self.txn, self.t()).await
    }

    async fn grant(&mut self, id: &str) -> Result<Option<Grant>> {
        let q = self.grant_rows().filter(grant::Column::Id.eq(id));
        Ok(self.grants(q).await?.pop())
    }

    async fn grants_on(&mut self, scope: &Scope) -> Result<Vec<Grant>> {
        let q = match self.scope_pk(scope).await? {
            None => self.grant_rows().filter(grant::Column::ScopePk.is_null()),
            Some(pk) => self.grant_rows().filter(grant::Column::ScopePk.eq(pk)),
        };
        self.grants(q).await
    }

    async fn grants_in_subtree(&mut self, r: &ResourceRef) -> Result<Vec<Grant>> {
        let pks = self.subtree_pks(r).await?;
        let mut out = Vec::new();
        for chunk in pks.chunks(500) {
            let q = self
                .grant_rows()
                .filter(grant::Column::ScopePk.is_in(chunk.iter().copied()));
            out.extend(self.grants(q).await?);
        }
        Ok(out)
    }

    async fn grants_of(&mut self, s: &SubjectRef) -> Result<Vec<Grant>> {
        let q = self
            .grant_rows()
            .filter(grant::Column::SubjectKind.eq(s.kind_str()))
            .filter(grant::Column::SubjectId.eq(s.id()));
        self.grants(q).await
    }

    async fn grants_of_role(&mut self, role: &str) -> Result<Vec<Grant>> {
        let q = self.grant_rows().filter(grant::Column::RoleId.eq(role));
        self.grants(q).await
    }

    async fn count_grants_of_role(&mut self, role: &str) -> Result<u64> {
        Ok(self
            .grant_rows()
            .filter(grant::Column::RoleId.eq(role))
            .count(&self.txn)
            .await?)
    }

    async fn bindings(&mut self, principal: &str) -> Result<Vec<Binding>> {
        read::bindings(&self.txn, self.t(), principal).await
    }

    async fn tenant_holders(&mut self) -> Result<Vec<(Principal, Vec<Binding>)>> {
        read::tenant_holders(&self.txn, self.t()).await
    }

    async fn insert_tenant(&mut self, t: &Tenant) -> Result<()> {
        tenant::ActiveModel {
            id: Set(t.id.clone()),
            display_name: Set(t.display_name.clone()),
            single_owner_types: Set(json(&t.single_owner_types)),
            creator_owner_types: Set(json(&t.creator_owner_types)),
            audit_retention_days: Set(t.audit_retention_days as i32),
            revision: Set(self.revision),
            created_at: Set(t.created_at),
            actions: Set(json(&t.actions)),
            implied_actions: Set(json(&t.implied_actions)),
        }
        .insert(&self.txn)
        .await?;
        self.deltas.push(Delta::Tenant { tenant: t.clone() });
        Ok(())
    }

    async fn update_tenant(&mut self, t: &Tenant) -> Result<()> {
        tenant::Entity::update_many()
            .col_expr(
                tenant::Column::DisplayName,
                Expr::value(t.display_name.clone()),
            )
            .col_expr(
                tenant::Column::SingleOwnerTypes,
                Expr::value(json(&t.single_owner_types)),
            )
            .col_expr(
                tenant::Column::CreatorOwnerTypes,
                Expr::value(json(&t.creator_owner_types)),
            )
            .col_expr(
                tenant::Column::AuditRetentionDays,
                Expr::value(t.audit_retention_days as i32),
            )
            .col_expr(tenant::Column::Actions, Expr::value(json(&t.actions)))
            .col_expr(
                tenant::Column::ImpliedActions,
                Expr::value(json(&t.implied_actions)),
            )
            .filter(tenant::Column::Id.eq(self.t()))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::Tenant { tenant: t.clone() });
        Ok(())
    }

    async fn insert_resource(&mut self, r: &Resource) -> Result<()> {
        let parent = match &r.parent {
            Some(p) => Some(self.row(p).await?),
            None => None,
        };
        resource::ActiveModel {
            pk: NotSet,
            tenant_id: Set(self.t().to_owned()),
            rtype: Set(r.resource.rtype.clone()),
            rid: Set(r.resource.id.clone()),
            parent_pk: Set(parent.as_ref().map(|p| p.pk)),
            ancestors: Set(parent
                .as_ref()
                .map(child_path)
                .unwrap_or_else(|| "/".to_owned())),
            is_private: Set(r.private),
            is_restricted: Set(r.restricted),
            attributes: Set(attributes_column(&r.attributes)),
            links: Set(links_column(&r.links)),
            created_at: Set(r.created_at),
        }
        .insert(&self.txn)
        .await?;
        self.deltas.push(Delta::Resource {
            resource: r.resource.clone(),
            parent: r.parent.clone(),
            private: r.private,
            restricted: r.restricted,
            attributes: r.attributes.clone(),
            links: r.links.clone(),
        });
        Ok(())
    }

    async fn resources_linking_to(&mut self, r: &ResourceRef) -> Result<Vec<ResourceRef>> {
        // The links column is serde_json's: the id appears in it as its JSON
        // string. Found by plain substring (no LIKE escaping), then parsed.
        let needle = serde_json::to_string(&r.id).unwrap_or_default();
        let find = match self.txn.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "strpos",
            _ => "instr",
        };
        let found = sea_orm::sea_query::Func::cust(sea_orm::sea_query::Alias::new(find))
            .arg(Expr::col(resource::Column::Links))
            .arg(Expr::val(needle));
        let rows: Vec<(String, String, Option<String>)> = resource::Entity::find()
            .select_only()
            .column(resource::Column::Rtype)
            .column(resource::Column::Rid)
            .column(resource::Column::Links)
            .filter(resource::Column::TenantId.eq(self.t()))
            .filter(resource::Column::Links.is_not_null())
            .filter(Expr::expr(found).gt(0))
            .into_tuple()
            .all(&self.txn)
            .await?;
        let mut out = Vec::new();
        for (rtype, id, links) in rows {
            if links_from_column(links.as_deref())?
                .iter()
                .any(|l| &l.resource == r)
            {
                out.push(ResourceRef { rtype, id });
            }
        }
        Ok(out)
    }

    async fn set_links(&mut self, r: &ResourceRef, links: &[model::Link]) -> Result<()> {
        let row = self.row(r).await?;
        resource::Entity::update_many()
            .col_expr(resource::Column::Links, Expr::value(links_column(links)))
            .filter(resource::Column::Pk.eq(row.pk))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::Links {
            resource: r.clone(),
            links: links.to_vec(),
        });
        Ok(())
    }

    async fn set_restricted(&mut self, r: &ResourceRef, restricted: bool) -> Result<()> {
        let row = self.row(r).await?;
        resource::Entity::update_many()
            .col_expr(resource::Column::IsRestricted, Expr::value(restricted))
            .filter(resource::Column::Pk.eq(row.pk))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::Restricted {
            resource: r.clone(),
            restricted,
        });
        Ok(())
    }

    async fn set_attributes(&mut self, r: &ResourceRef, attributes: &Attributes) -> Result<()> {
        let row = self.row(r).await?;
        resource::Entity::update_many()
            .col_expr(
                resource::Column::Attributes,
                Expr::value(attributes_column(attributes)),
            )
            .filter(resource::Column::Pk.eq(row.pk))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::Attributes {
            resource: r.clone(),
            attributes: attributes.clone(),
        });
        Ok(())
    }

    async fn set_private(&mut self, r: &ResourceRef, private: bool) -> Result<()> {
        let row = self.row(r).await?;
        resource::Entity::update_many()
            .col_expr(resource::Column::IsPrivate, Expr::value(private))
            .filter(resource::Column::Pk.eq(row.pk))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::Private {
            resource: r.clone(),
            private,
        });
        Ok(())
    }

    async fn move_subtree(
        &mut self,
        r: &ResourceRef,
        new_parent: Option<&ResourceRef>,
    ) -> Result<()> {
        let row = self.row(r).await?;
        let np = match new_parent {
            Some(p) => Some(self.row(p).await?),
            None => None,
        };
        let old_prefix = child_path(&row);
        let new_ancestors = np
            .as_ref()
            .map(child_path)
            .unwrap_or_else(|| "/".to_owned());
        let new_prefix = format!("{new_ancestors}{}/", row.pk);
        resource::Entity::update_many()
            .col_expr(
                resource::Column::ParentPk,
                Expr::value(np.as_ref().map(|p| p.pk)),
            )
            .col_expr(resource::Column::Ancestors, Expr::value(new_ancestors))
            .filter(resource::Column::Pk.eq(row.pk))
            .exec(&self.txn)
            .await?;
        let backend = self.txn.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => {
                "UPDATE resources SET ancestors = $1 || substr(ancestors, $2) WHERE tenant_id = $3 AND ancestors >= $4 AND ancestors < $5"
            }
            _ => "UPDATE resources SET ancestors = ? || substr(ancestors, ?) WHERE tenant_id = ? AND ancestors >= ? AND ancestors < ?",
        };
        let start = i32::try_from(old_prefix.len() + 1).map_err(|_| corrupt("path length"))?;
        self.txn
            .execute(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    new_prefix.into(),
                    start.into(),
                    self.t().into(),
                    old_prefix.clone().into(),
                    format!("{}0", &old_prefix[..old_prefix.len() - 1]).into(),
                ],
            ))
            .await?;
        self.deltas.push(Delta::Moved {
            resource: r.clone(),
            parent: new_parent.cloned(),
        });
        Ok(())
    }

    async fn delete_subtree(&mut self, r: &ResourceRef) -> Result<u64> {
        let pks = self.subtree_pks(r).await?;
        let mut deleted = 0;
        for chunk in pks.chunks(500) {
            grant::Entity::delete_many()
                .filter(grant::Column::TenantId.eq(self.t()))
                .filter(grant::Column::ScopePk.is_in(chunk.iter().copied()))
                .exec(&self.txn)
                .await?;
            deleted += resource::Entity::delete_many()
                .filter(resource::Column::Pk.is_in(chunk.iter().copied()))
                .exec(&self.txn)
                .await?
                .rows_affected;
        }
        self.deltas.push(Delta::SubtreeDeleted {
            resource: r.clone(),
        });
        Ok(deleted)
    }

    async fn insert_principal(&mut self, p: &Principal) -> Result<()> {
        insert_principal(&self.txn, self.t(), p).await?;
        self.deltas.push(Delta::Principal {
            principal: p.clone(),
        });
        Ok(())
    }

    async fn set_principal_status(
        &mut self,
        id: &str,
        status: PrincipalStatus,
        invitation_expires_at: Option<Millis>,
    ) -> Result<()> {
        let expiry = invitation_expires_at.filter(|_| status == PrincipalStatus::Invited);
        principal::Entity::update_many()
            .col_expr(principal::Column::Status, Expr::value(status.as_str()))
            .col_expr(principal::Column::InvitationExpiresAt, Expr::value(expiry))
            .filter(principal::Column::TenantId.eq(self.t()))
            .filter(principal::Column::Id.eq(id))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::Status {
            principal_id: id.to_owned(),
            status,
            invitation_expires_at: expiry,
        });
        Ok(())
    }

    async fn insert_team(&mut self, t: &Team) -> Result<()> {
        team::ActiveModel {
            tenant_id: Set(self.t().to_owned()),
            id: Set(t.id.clone()),
            display_name: Set(t.display_name.clone()),
            created_at: Set(self.now),
        }
        .insert(&self.txn)
        .await?;
        self.deltas.push(Delta::Team { team: t.clone() });
        Ok(())
    }

    async fn delete_team(&mut self, id: &str) -> Result<u64> {
        let t = self.t().to_owned();
        team_member::Entity::delete_many()
            .filter(team_member::Column::TenantId.eq(t.as_str()))
            .filter(
                sea_orm::Condition::any()
                    .add(team_member::Column::TeamId.eq(id))
                    .add(
                        sea_orm::Condition::all()
                            .add(team_member::Column::MemberKind.eq("team"))
                            .add(team_member::Column::MemberId.eq(id)),
                    ),
            )
            .exec(&self.txn)
            .await?;
        let grants = grant::Entity::delete_many()
            .filter(grant::Column::TenantId.eq(t.as_str()))
            .filter(grant::Column::SubjectKind.eq("team"))
            .filter(grant::Column::SubjectId.eq(id))
            .exec(&self.txn)
            .await?
            .rows_affected;
        team::Entity::delete_many()
            .filter(team::Column::TenantId.eq(t.as_str()))
            .filter(team::Column::Id.eq(id))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::TeamDeleted {
            team_id: id.to_owned(),
        });
        Ok(grants)
    }

    async fn add_member(&mut self, team: &str, member: &SubjectRef) -> Result<()> {
        team_member::ActiveModel {
            tenant_id: Set(self.t().to_owned()),
            team_id: Set(team.to_owned()),
            member_kind: Set(member.kind_str().to_owned()),
            member_id: Set(member.id().to_owned()),
        }
        .insert(&self.txn)
        .await?;
        self.deltas.push(Delta::MemberAdded {
            team_id: team.to_owned(),
            member: member.clone(),
        });
        Ok(())
    }

    async fn remove_member(&mut self, team: &str, member: &SubjectRef) -> Result<bool> {
        let removed = team_member::Entity::delete_many()
            .filter(team_member::Column::TenantId.eq(self.t()))
            .filter(team_member::Column::TeamId.eq(team))
            .filter(team_member::Column::MemberKind.eq(member.kind_str()))
            .filter(team_member::Column::MemberId.eq(member.id()))
            .exec(&self.txn)
            .await?
            .rows_affected;
        if removed > 0 {
            self.deltas.push(Delta::MemberRemoved {
                team_id: team.to_owned(),
                member: member.clone(),
            });
        }
        Ok(removed > 0)
    }

    async fn insert_role(&mut self, r: &Role) -> Result<()> {
        role::ActiveModel {
            tenant_id: Set(self.t().to_owned()),
            id: Set(r.id.clone()),
            display_name: Set(r.display_name.clone()),
            definition: Set(role_definition_json(r)),
            created_at: Set(self.now),
        }
        .insert(&self.txn)
        .await?;
        self.deltas.push(Delta::Role { role: r.clone() });
        Ok(())
    }

    async fn update_role(&mut self, r: &Role) -> Result<()> {
        role::Entity::update_many()
            .col_expr(
                role::Column::DisplayName,
                Expr::value(r.display_name.clone()),
            )
            .col_expr(
                role::Column::Definition,
                Expr::value(role_definition_json(r)),
            )
            .filter(role::Column::TenantId.eq(self.t()))
            .filter(role::Column::Id.eq(r.id.as_str()))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::Role { role: r.clone() });
        Ok(())
    }

    async fn delete_role(&mut self, id: &str) -> Result<()> {
        role::Entity::delete_many()
            .filter(role::Column::TenantId.eq(self.t()))
            .filter(role::Column::Id.eq(id))
            .exec(&self.txn)
            .await?;
        self.deltas.push(Delta::RoleDeleted {
            role_id: id.to_owned(),
        });
        Ok(())
    }

    async fn insert_grant(&mut self, g: &Grant) -> Result<()> {
        let scope_pk = self.scope_pk(&g.scope).await?;
        insert_grant(&self.txn, self.t(), g, scope_pk).await?;
        self.deltas.push(Delta::Grant { grant: g.clone() });
        Ok(())
    }

    async fn delete_grants(&mut self, ids: &[String]) -> Result<u64> {
        let mut deleted = 0;
        for chunk in ids.chunks(500) {
            deleted += grant::Entity::delete_many()
                .filter(grant::Column::TenantId.eq(self.t()))
                .filter(grant::Column::Id.is_in(chunk.iter().cloned()))
                .exec(&self.txn)
                .await?
                .rows_affected;
        }
        self.deltas.push(Delta::GrantsDeleted { ids: ids.to_vec() });
        Ok(deleted)
    }

    async fn delete_grants_of_role(&mut self, role: &str) -> Result<u64> {
        let deleted = grant::Entity::delete_many()
            .filter(grant::Column::TenantId.eq(self.t()))
            .filter(grant::Column::RoleId.eq(role))
            .exec(&self.txn)
            .await?
            .rows_affected;
        self.deltas.push(Delta::GrantsOfRoleDeleted {
            role_id: role.to_owned(),
        });
        Ok(deleted)
    }
}

/// Deletes the tenant's request ids older than a day and audit events older
/// than its retention period.
async fn prune<C: ConnectionTrait>(c: &C, t: &str, now: Millis) -> Result<()> {
    request::Entity::delete_many()
        .filter(request::Column::TenantId.eq(t))
        .filter(request::Column::At.lt(now - REQUEST_ID_RETENTION_MS))
        .exec(c)
        .await?;
    let Some(tenant) = read::tenant_row(c, t).await? else {
        return Ok(());
    };
    let horizon = now - i64::from(tenant.audit_retention_days) * 86_400_000;
    audit_event::Entity::delete_many()
        .filter(audit_event::Column::TenantId.eq(t))
        .filter(audit_event::Column::At.lt(horizon))
        .exec(c)
        .await?;
    Ok(())
}

/// The row of a principal of tenant `t`.
pub(super) fn principal_row(t: &str, p: &Principal) -> principal::ActiveModel {
    principal::ActiveModel {
        tenant_id: Set(t.to_owned()),
        id: Set(p.id.clone()),
        kind: Set(p.kind.as_str().to_owned()),
        status: Set(p.status.as_str().to_owned()),
        display_name: Set(p.display_name.clone()),
        invitation_expires_at: Set(p.invitation_expires_at),
        created_at: Set(p.created_at),
    }
}

pub(super) async fn insert_principal<C: ConnectionTrait>(
    c: &C,
    t: &str,
    p: &Principal,
) -> Result<()> {
    principal_row(t, p).insert(c).await?;
    Ok(())
}

/// The row of a grant of tenant `t` on the resource `scope_pk` (`None`:
/// the tenant).
pub(super) fn grant_row(t: &str, g: &Grant, scope_pk: Option<i64>) -> grant::ActiveModel {
    grant::ActiveModel {
        last_used_at: Default::default(),
        id: Set(g.id.clone()),
        tenant_id: Set(t.to_owned()),
        subject_kind: Set(g.subject.kind_str().to_owned()),
        subject_id: Set(g.subject.id().to_owned()),
        role_id: Set(g.role_id.clone()),
        scope_pk: Set(scope_pk),
        effect: Set(g.effect.as_str().to_owned()),
        expires_at: Set(g.expires_at),
        condition: Set(g.condition.as_ref().map(|c| c.source().to_owned())),
        created_at: Set(g.created_at),
    }
}

pub(super) async fn insert_grant<C: ConnectionTrait>(
    c: &C,
    t: &str,
    g: &Grant,
    scope_pk: Option<i64>,
) -> Result<()> {
    grant_row(t, g, scope_pk).insert(c).await?;
    Ok(())
}

/// Moves each grant's last use forward, in one transaction (one commit
/// for the whole batch).
pub(super) async fn record_grant_use(
    db: &DatabaseConnection,
    t: &str,
    uses: &[(String, Millis)],
) -> Result<()> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
    for (id, at) in uses {
        grant::Entity::update_many()
            .col_expr(grant::Column::LastUsedAt, Expr::value(*at))
            .filter(grant::Column::TenantId.eq(t))
            .filter(grant::Column::Id.eq(id.as_str()))
            .filter(
                sea_orm::Condition::any()
                    .add(grant::Column::LastUsedAt.is_null())
                    .add(grant::Column::LastUsedAt.lt(*at)),
            )
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

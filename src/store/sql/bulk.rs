//! Bulk loading of a whole tenant, for benchmarks: rows are written in large
//! batches with explicit resource keys, bypassing per-write authorization and
//! invariants (the caller builds a consistent tenant).

use super::*;
use crate::store::entity::change;
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};

/// A resource with its key and materialized ancestor path chosen by the caller.
#[derive(Debug, Clone)]
pub struct BulkResource {
    /// Key, unique in the database.
    pub pk: i64,
    /// The resource.
    pub resource: ResourceRef,
    /// Parent key.
    pub parent_pk: Option<i64>,
    /// Ancestor keys, root first, as `/1/5/` (`/` at the top).
    pub ancestors: String,
    /// Private boundary.
    pub private: bool,
}

/// A whole tenant.
#[derive(Debug, Clone, Default)]
pub struct BulkTenant {
    /// Tenant id.
    pub tenant_id: String,
    /// Resources, parents before children.
    pub resources: Vec<BulkResource>,
    /// Principals.
    pub principals: Vec<Principal>,
    /// Teams and their direct members.
    pub teams: Vec<(String, Vec<SubjectRef>)>,
    /// Grants with their scope key (`None` for the tenant).
    pub grants: Vec<(Grant, Option<i64>)>,
}

const BATCH: usize = 1_000;

impl SqlStore {
    /// Writes a whole tenant in batches. The tenant must not exist.
    pub async fn bulk_load(&self, b: &BulkTenant) -> Result<()> {
        let now = model::now_millis();
        let txn = self.db.begin().await?;
        let t = b.tenant_id.clone();
        tenant::Entity::insert(tenant::ActiveModel {
            id: Set(t.clone()),
            display_name: Set(t.clone()),
            single_owner_types: Set("[\"project\"]".into()),
            creator_owner_types: Set("[\"project\",\"workflow\",\"draft\"]".into()),
            audit_retention_days: Set(90),
            revision: Set(1),
            created_at: Set(now),
            actions: Set("[]".into()),
            implied_actions: Set("[]".into()),
        })
        .exec(&txn)
        .await?;
        change::Entity::insert(change::ActiveModel {
            tenant_id: Set(t.clone()),
            revision: Set(1),
            at: Set(now),
            invalidation: Set(
                serde_json::to_string(&Invalidation::everything()).unwrap_or_default()
            ),
        })
        .exec(&txn)
        .await?;
        for chunk in b.resources.chunks(BATCH) {
            resource::Entity::insert_many(chunk.iter().map(|r| resource::ActiveModel {
                pk: Set(r.pk),
                tenant_id: Set(t.clone()),
                rtype: Set(r.resource.rtype.clone()),
                rid: Set(r.resource.id.clone()),
                parent_pk: Set(r.parent_pk),
                ancestors: Set(r.ancestors.clone()),
                is_private: Set(r.private),
                is_restricted: Set(false),
                attributes: Set(None),
                links: Set(None),
                created_at: Set(now),
            }))
            .exec(&txn)
            .await?;
        }
        for chunk in b.principals.chunks(BATCH) {
            principal::Entity::insert_many(chunk.iter().map(|p| principal::ActiveModel {
                tenant_id: Set(t.clone()),
                id: Set(p.id.clone()),
                kind: Set(p.kind.as_str().into()),
                status: Set(p.status.as_str().into()),
                display_name: Set(p.display_name.clone()),
                invitation_expires_at: Set(p.invitation_expires_at),
                created_at: Set(now),
            }))
            .exec(&txn)
            .await?;
        }
        for chunk in b.teams.chunks(BATCH) {
            team::Entity::insert_many(chunk.iter().map(|(id, _)| team::ActiveModel {
                tenant_id: Set(t.clone()),
                id: Set(id.clone()),
                display_name: Set(id.clone()),
                created_at: Set(now),
            }))
            .exec(&txn)
            .await?;
        }
        let members: Vec<(&String, &SubjectRef)> = b
            .teams
            .iter()
            .flat_map(|(id, ms)| ms.iter().map(move |m| (id, m)))
            .collect();
        for chunk in members.chunks(BATCH) {
            team_member::Entity::insert_many(chunk.iter().map(|(team, m)| {
                team_member::ActiveModel {
                    tenant_id: Set(t.clone()),
                    team_id: Set((*team).clone()),
                    member_kind: Set(m.kind_str().into()),
                    member_id: Set(m.id().into()),
                }
            }))
            .exec(&txn)
            .await?;
        }
        for chunk in b.grants.chunks(BATCH) {
            grant::Entity::insert_many(chunk.iter().map(|(g, scope_pk)| grant::ActiveModel {
                last_used_at: Default::default(),
                id: Set(g.id.clone()),
                tenant_id: Set(t.clone()),
                subject_kind: Set(g.subject.kind_str().into()),
                subject_id: Set(g.subject.id().into()),
                role_id: Set(g.role_id.clone()),
                scope_pk: Set(*scope_pk),
                effect: Set(g.effect.as_str().into()),
                expires_at: Set(g.expires_at),
                condition: Set(g.condition.as_ref().map(|c| c.source().to_owned())),
                created_at: Set(now),
            }))
            .exec(&txn)
            .await?;
        }
        if self.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            // Explicit keys do not advance the sequence; later inserts must not collide.
            txn.execute_unprepared(
                "SELECT setval(pg_get_serial_sequence('resources', 'pk'), (SELECT COALESCE(MAX(pk), 1) FROM resources))",
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// The largest resource key in use (bulk loads continue after it).
    pub async fn max_resource_pk(&self) -> Result<i64> {
        use sea_orm::{QueryOrder, QuerySelect};
        Ok(resource::Entity::find()
            .order_by_desc(resource::Column::Pk)
            .limit(1)
            .one(&self.db)
            .await?
            .map(|r| r.pk)
            .unwrap_or(0))
    }
}

//! The SQL store: sea-orm over SQLite (embedded default) or PostgreSQL.

#[cfg(feature = "bench")]
mod bulk;
mod dump;
mod read;
mod tx;

#[cfg(feature = "bench")]
pub use bulk::{BulkResource, BulkTenant};
pub use tx::SqlTx;

use super::entity::{
    audit_event, change, grant, principal, resource, role, team, team_member, tenant,
};
use super::migration::Migrator;
use super::{AuditFilter, Catalog, Invalidation, Keyset, RevisionLog, Store, SubjectEntry};
use crate::error::{Error, Result};
use crate::model::{
    self, AuditEvent, Binding, Effect, Grant, Principal, PrincipalKind, PrincipalStatus, Resource,
    ResourceNode, ResourceRef, Role, RoleTable, Scope, SubjectRef, Team, Tenant,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        // Every storage failure is UNAVAILABLE, never a decision; the cause is
        // logged by the status mapping, not sent to the client.
        Error::Unavailable(format!("storage: {e}"))
    }
}

/// The store over one database.
#[derive(Clone, Debug)]
pub struct SqlStore {
    db: DatabaseConnection,
}

impl SqlStore {
    /// Connects to `url` (`sqlite://file.db?mode=rwc` or `postgres://…`).
    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Self> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(timeout)
            .acquire_timeout(timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                // On every connection of the pool: WAL lets checks read while
                // an admin write is in progress; FULL syncs the log at every
                // commit, so an acknowledged write survives a crash of the
                // process or of the machine.
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5))
            });
        let db = Database::connect(opts).await?;
        Ok(Self { db })
    }

    /// Applies every pending migration.
    /// Every migration the binary knows, in order, with whether the
    /// database has it applied: `(name, applied)`. Writes nothing but
    /// sea-orm's bookkeeping table, when the database has none yet.
    pub async fn migration_status(&self) -> Result<Vec<(String, bool)>> {
        use sea_orm_migration::MigrationStatus;
        Ok(Migrator::get_migration_with_status(&self.db)
            .await?
            .into_iter()
            .map(|m| (m.name().to_owned(), m.status() == MigrationStatus::Applied))
            .collect())
    }

    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await?;
        Ok(())
    }

    /// Calls `observe(seconds, failed)` after every statement (for metrics).
    /// Call before the store is cloned.
    pub fn observe_queries(&mut self, observe: impl Fn(f64, bool) + Send + Sync + 'static) {
        self.db
            .set_metric_callback(move |i| observe(i.elapsed.as_secs_f64(), i.failed));
    }

    /// Connections of the pool: (open, idle, most).
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        match &self.db {
            DatabaseConnection::SqlxPostgresPoolConnection(_) => {
                let p = self.db.get_postgres_connection_pool();
                (
                    p.size(),
                    p.num_idle() as u32,
                    p.options().get_max_connections(),
                )
            }
            DatabaseConnection::SqlxSqlitePoolConnection(_) => {
                let p = self.db.get_sqlite_connection_pool();
                (
                    p.size(),
                    p.num_idle() as u32,
                    p.options().get_max_connections(),
                )
            }
            _ => (0, 0, 0),
        }
    }

    /// The underlying connection (for tests and tools).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

impl Store for SqlStore {
    async fn tenant_revision(&self, tenant: &str, at_least: Option<i64>) -> Result<Option<i64>> {
        let rev = read::tenant_row(&self.db, tenant)
            .await?
            .map(|t| t.revision);
        super::fresh_enough(rev, at_least)
    }

    async fn subject(&self, tenant: &str, principal_id: &str) -> Result<Arc<SubjectEntry>> {
        let principal = read::principal(&self.db, tenant, principal_id).await?;
        let bindings = match &principal {
            Some(p) if p.status == PrincipalStatus::Active => {
                read::bindings(&self.db, tenant, principal_id).await?
            }
            _ => Vec::new(),
        };
        Ok(Arc::new(SubjectEntry {
            principal,
            bindings,
        }))
    }

    async fn ancestry(
        &self,
        tenant: &str,
        resource: &ResourceRef,
    ) -> Result<Option<Arc<Vec<ResourceNode>>>> {
        Ok(read::ancestry(&self.db, tenant, resource)
            .await?
            .map(Arc::new))
    }

    async fn roles(&self, tenant: &str) -> Result<Arc<RoleTable>> {
        let settings = read::tenant(&self.db, tenant).await?;
        Ok(Arc::new(RoleTable::for_tenant(
            read::custom_roles(&self.db, tenant).await?,
            settings.as_ref(),
        )))
    }

    async fn resources_in_scopes(
        &self,
        tenant: &str,
        scopes: &[Scope],
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Vec<ResourceNode>>> {
        read::resources_in_scopes(&self.db, tenant, scopes, rtype, after, limit).await
    }

    async fn holders_on_path(
        &self,
        tenant: &str,
        path: &[ResourceNode],
    ) -> Result<Vec<(Principal, Vec<Binding>)>> {
        read::holders_on_path(&self.db, tenant, path).await
    }
}

impl Catalog for SqlStore {
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        read::tenant(&self.db, id).await
    }

    async fn list_tenants(&self, page: Keyset<'_>) -> Result<Vec<Tenant>> {
        read::list_tenants(&self.db, page.after, page.limit).await
    }

    async fn resource(&self, tenant: &str, r: &ResourceRef) -> Result<Option<Resource>> {
        read::resource(&self.db, tenant, r).await
    }

    async fn list_children(
        &self,
        tenant: &str,
        parent: Option<&ResourceRef>,
        page: Keyset<'_>,
    ) -> Result<Vec<Resource>> {
        read::list_children(&self.db, tenant, parent, page.after, page.limit).await
    }

    async fn principal(&self, tenant: &str, id: &str) -> Result<Option<Principal>> {
        read::principal(&self.db, tenant, id).await
    }

    async fn list_principals(&self, tenant: &str, page: Keyset<'_>) -> Result<Vec<Principal>> {
        read::list_principals(&self.db, tenant, page.after, page.limit).await
    }

    async fn list_teams(&self, tenant: &str, page: Keyset<'_>) -> Result<Vec<Team>> {
        read::list_teams(&self.db, tenant, page.after, page.limit).await
    }

    async fn team_members(
        &self,
        tenant: &str,
        team: &str,
        page: Keyset<'_>,
    ) -> Result<Option<Vec<SubjectRef>>> {
        read::team_members(&self.db, tenant, team, page.after, page.limit).await
    }

    async fn list_grants(
        &self,
        tenant: &str,
        subject: Option<&SubjectRef>,
        scope: Option<&ResourceRef>,
        page: Keyset<'_>,
    ) -> Result<Vec<Grant>> {
        read::list_grants(&self.db, tenant, subject, scope, page.after, page.limit).await
    }

    async fn record_grant_use(&self, tenant: &str, uses: &[(String, model::Millis)]) -> Result<()> {
        tx::record_grant_use(&self.db, tenant, uses).await
    }

    async fn grants_last_used(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, model::Millis>> {
        read::grants_last_used(&self.db, tenant, ids).await
    }

    async fn list_audit(&self, filter: &AuditFilter, limit: u64) -> Result<Vec<AuditEvent>> {
        read::list_audit(&self.db, filter, limit).await
    }

    async fn bindings(&self, tenant: &str, principal_id: &str) -> Result<Vec<Binding>> {
        read::bindings(&self.db, tenant, principal_id).await
    }

    async fn custom_roles(&self, tenant: &str) -> Result<Vec<Role>> {
        read::custom_roles(&self.db, tenant).await
    }

    async fn resource_rows(&self, tenant: &str) -> Result<Vec<crate::store::ResourceRow>> {
        read::resource_rows(&self.db, tenant).await
    }

    async fn tenant_holders(&self, tenant: &str) -> Result<Vec<(Principal, Vec<Binding>)>> {
        read::tenant_holders(&self.db, tenant).await
    }

    async fn export(&self, tenant: &str) -> Result<Option<crate::store::TenantDump>> {
        let txn = self.snapshot_txn().await?;
        let dump = dump::export(&txn, tenant).await?;
        txn.commit().await?;
        Ok(dump)
    }

    async fn tombstone(&self, tenant: &str) -> Result<Option<i64>> {
        dump::tombstone(&self.db, tenant).await
    }
}

impl RevisionLog for SqlStore {
    async fn tenant_revisions(&self) -> Result<Vec<(String, i64)>> {
        use sea_orm::{EntityTrait, QuerySelect};
        Ok(tenant::Entity::find()
            .select_only()
            .column(tenant::Column::Id)
            .column(tenant::Column::Revision)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?)
    }

    async fn changes(
        &self,
        tenant: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<(i64, Invalidation)>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let rows = change::Entity::find()
            .filter(change::Column::TenantId.eq(tenant))
            .filter(change::Column::Revision.gt(after))
            .filter(change::Column::Revision.lte(upto))
            .order_by_asc(change::Column::Revision)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                serde_json::from_str(&r.invalidation)
                    .map(|inv| (r.revision, inv))
                    .map_err(|_| corrupt("change record"))
            })
            .collect()
    }

    async fn snapshot(&self, tenant: &str) -> Result<Option<crate::store::TenantRows>> {
        let txn = self.snapshot_txn().await?;
        let rows = read::tenant_rows(&txn, tenant).await?;
        txn.commit().await?;
        Ok(rows)
    }
}

impl SqlStore {
    /// A read-only transaction that sees one snapshot: PostgreSQL's
    /// REPEATABLE READ; SQLite's read transaction (which takes no isolation
    /// settings) is one already.
    async fn snapshot_txn(&self) -> Result<sea_orm::DatabaseTransaction> {
        use sea_orm::{AccessMode, DatabaseBackend, IsolationLevel, TransactionTrait};
        Ok(match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                self.db
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await?
            }
            _ => self.db.begin().await?,
        })
    }
}

// ---- row <-> model conversions -------------------------------------------

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("corrupt row in storage: {what}"))
}

fn json_list(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|_| corrupt("json list"))
}

fn tenant_from_row(t: tenant::Model) -> Result<Tenant> {
    Ok(Tenant {
        single_owner_types: json_list(&t.single_owner_types)?,
        creator_owner_types: json_list(&t.creator_owner_types)?,
        actions: json_list(&t.actions)?,
        implied_actions: serde_json::from_str(&t.implied_actions)
            .map_err(|_| corrupt("implied actions"))?,
        id: t.id,
        display_name: t.display_name,
        audit_retention_days: u32::try_from(t.audit_retention_days)
            .map_err(|_| corrupt("retention"))?,
        created_at: t.created_at,
    })
}

fn principal_from_row(p: principal::Model) -> Result<Principal> {
    Ok(Principal {
        kind: PrincipalKind::parse(&p.kind).ok_or_else(|| corrupt("principal kind"))?,
        status: PrincipalStatus::parse(&p.status).ok_or_else(|| corrupt("principal status"))?,
        id: p.id,
        display_name: p.display_name,
        invitation_expires_at: p.invitation_expires_at,
        created_at: p.created_at,
    })
}

fn team_from_row(t: team::Model) -> Team {
    Team {
        id: t.id,
        display_name: t.display_name,
    }
}

/// How a custom role's definition is stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct RoleDefinition {
    permissions: Vec<model::Permission>,
    excluded_permissions: Vec<model::Permission>,
    inherits: Vec<String>,
    effective_at: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    condition: Option<String>,
}

/// A resource's attributes as stored: a JSON object, `NULL` for none.
fn attributes_column(a: &model::Attributes) -> Option<String> {
    (!a.is_empty()).then(|| serde_json::to_string(a).unwrap_or_default())
}

fn attributes_from_column(a: Option<&str>) -> Result<model::Attributes> {
    match a {
        None => Ok(model::Attributes::new()),
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("resource attributes")),
    }
}

/// A resource's links as stored: a JSON array, `NULL` for none.
fn links_column(l: &[model::Link]) -> Option<String> {
    (!l.is_empty()).then(|| serde_json::to_string(l).unwrap_or_default())
}

fn links_from_column(l: Option<&str>) -> Result<Vec<model::Link>> {
    match l {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("resource links")),
    }
}

/// As a node of an ancestry carries them.
fn node_links(l: Option<&str>) -> Result<Option<Arc<Vec<model::Link>>>> {
    let l = links_from_column(l)?;
    Ok((!l.is_empty()).then(|| Arc::new(l)))
}

/// As a node of an ancestry carries them.
fn node_attributes(a: Option<&str>) -> Result<Option<Arc<model::Attributes>>> {
    let a = attributes_from_column(a)?;
    Ok((!a.is_empty()).then(|| Arc::new(a)))
}

fn role_from_row(r: role::Model) -> Result<Role> {
    let d: RoleDefinition =
        serde_json::from_str(&r.definition).map_err(|_| corrupt("role definition"))?;
    Ok(Role {
        id: r.id,
        display_name: r.display_name,
        permissions: d.permissions,
        excluded_permissions: d.excluded_permissions,
        inherits: d.inherits,
        effective_at: d.effective_at,
        locked: false,
        condition: d
            .condition
            .as_deref()
            .map(|c| model::Condition::compile("role.condition", c))
            .transpose()
            .map_err(|_| corrupt("role condition"))?,
    })
}

fn role_definition_json(r: &Role) -> String {
    serde_json::to_string(&RoleDefinition {
        permissions: r.permissions.clone(),
        excluded_permissions: r.excluded_permissions.clone(),
        inherits: r.inherits.clone(),
        effective_at: r.effective_at.clone(),
        condition: r.condition.as_ref().map(|c| c.source().to_owned()),
    })
    .unwrap_or_default()
}

fn grant_from_row(g: grant::Model, scope: Scope) -> Result<Grant> {
    Ok(Grant {
        subject: SubjectRef::from_parts(&g.subject_kind, g.subject_id)
            .ok_or_else(|| corrupt("grant subject"))?,
        effect: Effect::parse(&g.effect).ok_or_else(|| corrupt("grant effect"))?,
        id: g.id,
        role_id: g.role_id,
        scope,
        expires_at: g.expires_at,
        condition: g
            .condition
            .as_deref()
            .map(|c| model::Condition::compile("grant.condition", c))
            .transpose()
            .map_err(|_| corrupt("grant condition"))?,
        created_at: g.created_at,
    })
}

fn audit_from_row(a: audit_event::Model) -> AuditEvent {
    AuditEvent {
        id: a.id,
        revision: a.revision,
        at: a.at,
        caller: a.caller,
        actor: a.actor,
        action: a.action,
        target: a.target,
        before_json: a.before_json,
        after_json: a.after_json,
    }
}

fn resource_ref(r: &resource::Model) -> ResourceRef {
    ResourceRef {
        rtype: r.rtype.clone(),
        id: r.rid.clone(),
    }
}

/// Keys of the ancestors in an `ancestors` path, root first.
fn ancestor_pks(path: &str) -> Result<Vec<i64>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().map_err(|_| corrupt("ancestor path")))
        .collect()
}

/// Rows whose `ancestors` path starts with `prefix` (which ends in `/`): the
/// half-open range [`prefix`, `prefix` with its last `/` raised to `0`). Paths
/// hold only digits and `/`, and compare bytewise (see migration 3), so this is
/// an index range scan.
fn under(prefix: &str) -> sea_orm::Condition {
    use sea_orm::ColumnTrait;
    let hi = format!("{}0", &prefix[..prefix.len().saturating_sub(1)]);
    sea_orm::Condition::all()
        .add(resource::Column::Ancestors.gte(prefix))
        .add(resource::Column::Ancestors.lt(hi))
}

/// The `ancestors` value of a child of `r`.
fn child_path(r: &resource::Model) -> String {
    format!("{}{}/", r.ancestors, r.pk)
}

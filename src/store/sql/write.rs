//! Administrative writes. Each command runs in one transaction that bumps the
//! tenant's revision (which also serializes writers of a tenant), authorizes
//! the acting principal with the engine, applies the change, checks the
//! invariants and records the audit event; any failure rolls all of it back.

use super::read;
use super::*;
use crate::engine::{self, Question, Subject};
use crate::model::{Actor, Millis};
use crate::store::entity::{change, request};
use crate::store::Invalidation;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, NotSet, PaginatorTrait, QueryFilter, QuerySelect,
    Set, Statement, TransactionTrait,
};
use std::collections::HashSet;

/// Who is writing.
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// Tenant written.
    pub tenant_id: String,
    /// Name of the API key that called.
    pub caller: String,
    /// The acting principal or the super user.
    pub actor: Actor,
    /// The client's id for this write, so that a retry is applied once.
    pub request: Option<RequestKey>,
}

/// A client request id and what it was first used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The client's id (unique per tenant).
    pub id: String,
    /// A digest of the whole request, to refuse reuse for another request.
    pub fingerprint: String,
}

/// How long a request id is remembered.
pub const REQUEST_ID_RETENTION_MS: i64 = 24 * 3_600_000;

/// An administrative change.
#[derive(Debug, Clone)]
pub enum Command {
    /// Create the tenant of the context, optionally with its first account admin.
    CreateTenant {
        /// Settings.
        tenant: Tenant,
        /// First account administrator, created active.
        first_admin: Option<Principal>,
    },
    /// Replace the tenant's settings.
    UpdateTenant {
        /// New name.
        display_name: String,
        /// New single-owner types.
        single_owner_types: Vec<String>,
        /// New creator-owner types.
        creator_owner_types: Vec<String>,
        /// New retention.
        audit_retention_days: u32,
    },
    /// Register a resource.
    CreateResource {
        /// The resource.
        resource: ResourceRef,
        /// Its parent.
        parent: Option<ResourceRef>,
        /// Private from the start.
        private: bool,
        /// Explicit owner.
        owner: Option<String>,
    },
    /// Re-parent a resource and its subtree.
    MoveResource {
        /// The resource.
        resource: ResourceRef,
        /// New parent.
        new_parent: Option<ResourceRef>,
    },
    /// Change privacy.
    SetResourcePrivate {
        /// The resource.
        resource: ResourceRef,
        /// New privacy.
        private: bool,
    },
    /// Delete a subtree.
    DeleteResource {
        /// The resource.
        resource: ResourceRef,
    },
    /// Hand the owner role to another principal.
    TransferOwnership {
        /// The resource.
        resource: ResourceRef,
        /// New owner.
        new_owner: String,
        /// Role left to the previous owners.
        previous_owner_role: Option<String>,
    },
    /// Invite or add a principal.
    CreatePrincipal {
        /// The principal.
        principal: Principal,
    },
    /// Change a principal's status.
    SetPrincipalStatus {
        /// The principal.
        principal_id: String,
        /// New status.
        status: PrincipalStatus,
    },
    /// Create a team.
    CreateTeam {
        /// The team.
        team: Team,
    },
    /// Delete a team with its memberships and grants.
    DeleteTeam {
        /// The team.
        team_id: String,
    },
    /// Add a member.
    AddTeamMember {
        /// The team.
        team_id: String,
        /// The member.
        member: SubjectRef,
    },
    /// Remove a member.
    RemoveTeamMember {
        /// The team.
        team_id: String,
        /// The member.
        member: SubjectRef,
    },
    /// Create a custom role.
    CreateRole {
        /// The role.
        role: Role,
    },
    /// Replace a custom role.
    UpdateRole {
        /// The role.
        role: Role,
    },
    /// Delete a custom role.
    DeleteRole {
        /// The role.
        role_id: String,
        /// Also delete its grants.
        cascade: bool,
    },
    /// Grant a role.
    CreateGrant {
        /// Holder.
        subject: SubjectRef,
        /// Role.
        role_id: String,
        /// Scope.
        scope: Scope,
        /// Allow or deny.
        effect: Effect,
        /// Expiry.
        expires_at: Option<Millis>,
    },
    /// Revoke a grant.
    DeleteGrant {
        /// The grant.
        grant_id: String,
    },
}

/// What a command produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// A tenant.
    Tenant(Tenant),
    /// A resource.
    Resource(Resource),
    /// A principal.
    Principal(Principal),
    /// A team.
    Team(Team),
    /// A role.
    Role(Role),
    /// A grant.
    Grant(Grant),
    /// A number of deleted things.
    Count(u64),
    /// Nothing to return.
    Done,
}

/// The audit record of a command.
struct Audit {
    action: &'static str,
    target: String,
    before: String,
    after: String,
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// What a committed write produced.
#[derive(Debug, Clone)]
pub struct Written {
    /// The command's result.
    pub outcome: Outcome,
    /// The tenant revision it produced.
    pub revision: i64,
    /// What it makes stale.
    pub invalidation: Invalidation,
    /// The answer of an earlier attempt with the same request id: nothing
    /// was written now, and the cache must not treat `revision` as applied
    /// here (the revision log still carries its invalidation).
    pub replayed: bool,
}

pub(super) async fn apply(
    db: &DatabaseConnection,
    ctx: &WriteContext,
    cmd: Command,
) -> Result<Written> {
    let txn = db.begin().await?;
    let now = model::now_millis();
    match run(&txn, ctx, cmd, now).await {
        Ok(Ran::Replayed(outcome, revision)) => {
            // Undo the revision bump: nothing changes.
            let _ = txn.rollback().await;
            tracing::info!(tenant = %ctx.tenant_id, revision, "admin write replayed for a retried request id");
            Ok(Written {
                outcome,
                revision,
                invalidation: Invalidation::default(),
                replayed: true,
            })
        }
        Ok(Ran::Applied((outcome, revision, audit, invalidation))) => {
            if let Some(key) = &ctx.request {
                request::ActiveModel {
                    tenant_id: Set(ctx.tenant_id.clone()),
                    request_id: Set(key.id.clone()),
                    fingerprint: Set(key.fingerprint.clone()),
                    revision: Set(revision),
                    outcome: Set(json(&outcome)),
                    at: Set(now),
                }
                .insert(&txn)
                .await?;
            }
            change::ActiveModel {
                tenant_id: Set(ctx.tenant_id.clone()),
                revision: Set(revision),
                at: Set(now),
                invalidation: Set(json(&invalidation)),
            }
            .insert(&txn)
            .await?;
            audit_event::ActiveModel {
                id: NotSet,
                tenant_id: Set(ctx.tenant_id.clone()),
                revision: Set(revision),
                at: Set(now),
                caller: Set(ctx.caller.clone()),
                actor: Set(ctx.actor.to_string()),
                action: Set(audit.action.to_owned()),
                target: Set(audit.target),
                before_json: Set(audit.before),
                after_json: Set(audit.after),
            }
            .insert(&txn)
            .await?;
            prune(&txn, &ctx.tenant_id, now).await?;
            txn.commit().await?;
            tracing::info!(tenant = %ctx.tenant_id, actor = %ctx.actor, action = audit.action, revision, "admin write");
            Ok(Written {
                outcome,
                revision,
                invalidation,
                replayed: false,
            })
        }
        Err(e) => {
            // Dropping the transaction rolls it back too; rolling back
            // explicitly returns the connection sooner.
            let _ = txn.rollback().await;
            Err(e)
        }
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

/// Refuses a tree deeper than [`model::MAX_TREE_DEPTH`] levels.
fn check_depth(field: &str, depth: usize) -> Result<()> {
    if depth > model::MAX_TREE_DEPTH {
        return Err(Error::invalid(
            field,
            format!(
                "the resource tree would be {depth} levels deep; the limit is {}",
                model::MAX_TREE_DEPTH
            ),
        ));
    }
    Ok(())
}

/// Levels in the subtree of `row`, itself included (1 for a leaf).
async fn subtree_height<C: ConnectionTrait>(
    c: &C,
    t: &str,
    row: &resource::Model,
) -> Result<usize> {
    // The most slashes in a descendant's path.
    let deepest: Option<i64> = resource::Entity::find()
        .select_only()
        .column_as(
            Expr::cust(
                "CAST(MAX(length(ancestors) - length(replace(ancestors, '/', ''))) AS BIGINT)",
            ),
            "d",
        )
        .filter(resource::Column::TenantId.eq(t))
        .filter(under(&child_path(row)))
        .into_tuple::<Option<i64>>()
        .one(c)
        .await?
        .flatten();
    // A path of k slashes is a resource at depth k; `row` is at the depth of
    // its own ancestors' slashes.
    let own = row.ancestors.matches('/').count();
    Ok(match deepest {
        Some(d) => usize::try_from(d).unwrap_or(0).saturating_sub(own) + 1,
        None => 1,
    })
}

/// Bumps the tenant revision: the first statement of every write, so that it
/// takes the tenant's row lock (PostgreSQL) or the write lock (SQLite) before
/// anything is read.
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

/// Asks the engine whether the actor may do `<rtype>.<action>` at `path`.
async fn authorize<C: ConnectionTrait>(
    c: &C,
    ctx: &WriteContext,
    rtype: &str,
    action: &str,
    path: &[ResourceNode],
    now: Millis,
) -> Result<()> {
    let Actor::Principal(id) = &ctx.actor else {
        return Ok(());
    };
    let t = &ctx.tenant_id;
    let principal = read::principal(c, t, id).await?;
    let bindings = match &principal {
        Some(p) if p.status == PrincipalStatus::Active => read::bindings(c, t, id).await?,
        _ => Vec::new(),
    };
    let roles = RoleTable::new(read::custom_roles(c, t).await?);
    let q = Question {
        rtype,
        action,
        path: Some(path),
    };
    let d = engine::decide(
        Subject::Principal(principal.as_ref()),
        &bindings,
        &roles,
        q,
        now,
    );
    if d.allowed {
        return Ok(());
    }
    let on = path
        .first()
        .map(|n| format!("`{}`", n.resource))
        .unwrap_or_else(|| "the tenant".to_owned());
    Err(Error::PermissionDenied(format!(
        "actor `{id}` may not `{rtype}.{action}` on {on}: {}",
        d.explanation.detail
    )))
}

/// A resource row and its ancestry, or NOT_FOUND.
async fn existing<C: ConnectionTrait>(
    c: &C,
    t: &str,
    r: &ResourceRef,
) -> Result<(resource::Model, Vec<ResourceNode>)> {
    let row = read::resource_row(c, t, r)
        .await?
        .ok_or_else(|| Error::not_found(format!("resource `{r}`")))?;
    let path = read::ancestry_of_row(c, &row).await?;
    Ok((row, path))
}

/// An optional parent's row and ancestry; none (the tenant) when unset.
async fn existing_parent<C: ConnectionTrait>(
    c: &C,
    t: &str,
    parent: Option<&ResourceRef>,
) -> Result<(Option<resource::Model>, Vec<ResourceNode>)> {
    match parent {
        Some(p) => {
            let (row, path) = existing(c, t, p).await?;
            Ok((Some(row), path))
        }
        None => Ok((None, Vec::new())),
    }
}

/// The direct `owner` allow grants of principals on a resource.
fn owner_grants(t: &str, pk: i64) -> sea_orm::Select<grant::Entity> {
    grant::Entity::find()
        .filter(grant::Column::TenantId.eq(t))
        .filter(grant::Column::ScopePk.eq(pk))
        .filter(grant::Column::RoleId.eq("owner"))
        .filter(grant::Column::Effect.eq("allow"))
        .filter(grant::Column::SubjectKind.eq("principal"))
}

async fn require_principal<C: ConnectionTrait>(c: &C, t: &str, id: &str) -> Result<Principal> {
    read::principal(c, t, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("principal `{id}`")))
}

async fn require_team<C: ConnectionTrait>(c: &C, t: &str, id: &str) -> Result<team::Model> {
    read::team_row(c, t, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("team `{id}`")))
}

async fn require_subject<C: ConnectionTrait>(c: &C, t: &str, s: &SubjectRef) -> Result<()> {
    match s {
        SubjectRef::Principal(id) => require_principal(c, t, id).await.map(|_| ()),
        SubjectRef::Team(id) => require_team(c, t, id).await.map(|_| ()),
    }
}

async fn durable_admins<C: ConnectionTrait>(c: &C, t: &str, now: Millis) -> Result<usize> {
    Ok(read::account_admins(c, t, now, true).await?.len())
}

/// Refuses a write that leaves a tenant that had an account administrator
/// without one.
async fn keep_an_admin<C: ConnectionTrait>(
    c: &C,
    t: &str,
    before: usize,
    now: Millis,
) -> Result<()> {
    if before > 0 && durable_admins(c, t, now).await? == 0 {
        return Err(Error::precondition(
            "last_account_admin",
            "the tenant must keep at least one active account administrator without expiry",
        ));
    }
    Ok(())
}

async fn insert_grant<C: ConnectionTrait>(
    c: &C,
    t: &str,
    g: &Grant,
    scope_pk: Option<i64>,
) -> Result<()> {
    grant::ActiveModel {
        id: Set(g.id.clone()),
        tenant_id: Set(t.to_owned()),
        subject_kind: Set(g.subject.kind_str().to_owned()),
        subject_id: Set(g.subject.id().to_owned()),
        role_id: Set(g.role_id.clone()),
        scope_pk: Set(scope_pk),
        effect: Set(g.effect.as_str().to_owned()),
        expires_at: Set(g.expires_at),
        created_at: Set(g.created_at),
    }
    .insert(c)
    .await?;
    Ok(())
}

fn new_grant(
    subject: SubjectRef,
    role_id: &str,
    scope: Scope,
    effect: Effect,
    expires_at: Option<Millis>,
    now: Millis,
) -> Grant {
    Grant {
        id: uuid::Uuid::now_v7().to_string(),
        subject,
        role_id: role_id.to_owned(),
        scope,
        effect,
        expires_at,
        created_at: now,
    }
}

fn is_single_owner(tenant: &Tenant, rtype: &str) -> bool {
    tenant.single_owner_types.iter().any(|t| t == rtype)
}

async fn tenant_settings<C: ConnectionTrait>(c: &C, t: &str) -> Result<Tenant> {
    read::tenant(c, t)
        .await?
        .ok_or_else(|| Error::not_found(format!("tenant `{t}`")))
}

/// A command's effect, with the revision it produced.
type Applied = (Outcome, i64, Audit, Invalidation);

/// What running a command did.
enum Ran {
    /// It changed the store.
    Applied(Applied),
    /// Its request id was seen before: the first attempt's outcome and revision.
    Replayed(Outcome, i64),
}

/// The first attempt of a retried request id, if any.
async fn replay<C: ConnectionTrait>(c: &C, ctx: &WriteContext) -> Result<Option<Ran>> {
    let Some(key) = &ctx.request else {
        return Ok(None);
    };
    let Some(row) = request::Entity::find_by_id((ctx.tenant_id.clone(), key.id.clone()))
        .one(c)
        .await?
    else {
        return Ok(None);
    };
    if row.fingerprint != key.fingerprint {
        return Err(Error::precondition(
            "request_id_reused",
            format!("request id `{}` was used for a different request", key.id),
        ));
    }
    let outcome = serde_json::from_str(&row.outcome).map_err(|_| corrupt("request outcome"))?;
    Ok(Some(Ran::Replayed(outcome, row.revision)))
}

async fn run<C: ConnectionTrait>(
    c: &C,
    ctx: &WriteContext,
    cmd: Command,
    now: Millis,
) -> Result<Ran> {
    let t = ctx.tenant_id.as_str();
    if let Command::CreateTenant {
        tenant,
        first_admin,
    } = cmd
    {
        if let Some(first) = replay(c, ctx).await? {
            return Ok(first);
        }
        return create_tenant(c, ctx, tenant, first_admin, now)
            .await
            .map(Ran::Applied);
    }
    // The bump serializes the tenant's writers, so two attempts of one
    // request id cannot both miss each other here.
    let revision = bump(c, t).await?;
    if let Some(first) = replay(c, ctx).await? {
        return Ok(first);
    }
    let mut inv = Invalidation::default();
    let (outcome, audit) = match cmd {
        Command::CreateTenant { .. } => unreachable_command()?,
        Command::UpdateTenant {
            display_name,
            single_owner_types,
            creator_owner_types,
            audit_retention_days,
        } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage", &[], now).await?;
            let before = tenant_settings(c, t).await?;
            for ty in &single_owner_types {
                if !is_single_owner(&before, ty) {
                    ensure_single_owners(c, t, ty).await?;
                }
            }
            tenant::Entity::update_many()
                .col_expr(tenant::Column::DisplayName, Expr::value(display_name))
                .col_expr(
                    tenant::Column::SingleOwnerTypes,
                    Expr::value(json(&single_owner_types)),
                )
                .col_expr(
                    tenant::Column::CreatorOwnerTypes,
                    Expr::value(json(&creator_owner_types)),
                )
                .col_expr(
                    tenant::Column::AuditRetentionDays,
                    Expr::value(audit_retention_days as i32),
                )
                .filter(tenant::Column::Id.eq(t))
                .exec(c)
                .await?;
            let after = tenant_settings(c, t).await?;
            let audit = Audit {
                action: "tenant.update",
                target: format!("tenant:{t}"),
                before: json(&before),
                after: json(&after),
            };
            (Outcome::Tenant(after), audit)
        }
        Command::CreateResource {
            resource,
            parent,
            private,
            owner,
        } => {
            let (parent_row, parent_path) = existing_parent(c, t, parent.as_ref()).await?;
            authorize(c, ctx, &resource.rtype, "create", &parent_path, now).await?;
            check_depth("parent", parent_path.len() + 1)?;
            if read::resource_row(c, t, &resource).await?.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!("resource `{resource}`"),
                });
            }
            let settings = tenant_settings(c, t).await?;
            let single = is_single_owner(&settings, &resource.rtype);
            let creator_owned = single
                || settings
                    .creator_owner_types
                    .iter()
                    .any(|x| x == &resource.rtype);
            let owner = match (owner, &ctx.actor) {
                (Some(o), _) => Some(o),
                (None, Actor::Principal(p)) if creator_owned => Some(p.clone()),
                _ => None,
            };
            if single && owner.is_none() {
                return Err(Error::invalid(
                    "owner_id",
                    format!(
                        "`{}` has a single owner: name it when acting as super user",
                        resource.rtype
                    ),
                ));
            }
            let row = resource::ActiveModel {
                pk: NotSet,
                tenant_id: Set(t.to_owned()),
                rtype: Set(resource.rtype.clone()),
                rid: Set(resource.id.clone()),
                parent_pk: Set(parent_row.as_ref().map(|p| p.pk)),
                ancestors: Set(parent_row
                    .as_ref()
                    .map(child_path)
                    .unwrap_or_else(|| "/".to_owned())),
                is_private: Set(private),
                created_at: Set(now),
            }
            .insert(c)
            .await?;
            let mut after =
                serde_json::json!({ "resource": &resource, "parent": &parent, "private": private });
            inv.resources.push(resource.clone());
            if let Some(o) = owner {
                inv.principals.push(o.clone());
                require_principal(c, t, &o).await?;
                let g = new_grant(
                    SubjectRef::Principal(o),
                    "owner",
                    Scope::Resource(resource.clone()),
                    Effect::Allow,
                    None,
                    now,
                );
                insert_grant(c, t, &g, Some(row.pk)).await?;
                after["owner_grant"] = serde_json::to_value(&g).unwrap_or_default();
            }
            let created = Resource {
                resource: resource.clone(),
                parent,
                private,
                created_at: now,
            };
            let audit = Audit {
                action: "resource.create",
                target: format!("resource:{resource}"),
                before: String::new(),
                after: after.to_string(),
            };
            (Outcome::Resource(created), audit)
        }
        Command::MoveResource {
            resource,
            new_parent,
        } => {
            let (row, path) = existing(c, t, &resource).await?;
            authorize(c, ctx, &resource.rtype, "manage", &path, now).await?;
            let (np_row, np_path) = existing_parent(c, t, new_parent.as_ref()).await?;
            authorize(c, ctx, &resource.rtype, "create", &np_path, now).await?;
            if let Some(np) = &np_row {
                if np.pk == row.pk || np.ancestors.contains(&format!("/{}/", row.pk)) {
                    return Err(Error::precondition(
                        "resource_cycle",
                        format!("`{resource}` cannot move under itself or its descendants"),
                    ));
                }
            }
            let height = subtree_height(c, t, &row).await?;
            check_depth("new_parent", np_path.len() + height)?;
            let before = read::resource_from_row(c, row.clone()).await?;
            let old_prefix = child_path(&row);
            let new_ancestors = np_row
                .as_ref()
                .map(child_path)
                .unwrap_or_else(|| "/".to_owned());
            let new_prefix = format!("{new_ancestors}{}/", row.pk);
            resource::Entity::update_many()
                .col_expr(
                    resource::Column::ParentPk,
                    Expr::value(np_row.as_ref().map(|p| p.pk)),
                )
                .col_expr(resource::Column::Ancestors, Expr::value(new_ancestors))
                .filter(resource::Column::Pk.eq(row.pk))
                .exec(c)
                .await?;
            let backend = c.get_database_backend();
            let sql = match backend {
                sea_orm::DatabaseBackend::Postgres => {
                    "UPDATE resources SET ancestors = $1 || substr(ancestors, $2) WHERE tenant_id = $3 AND ancestors >= $4 AND ancestors < $5"
                }
                _ => "UPDATE resources SET ancestors = ? || substr(ancestors, ?) WHERE tenant_id = ? AND ancestors >= ? AND ancestors < ?",
            };
            let start = i32::try_from(old_prefix.len() + 1).map_err(|_| corrupt("path length"))?;
            c.execute(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    new_prefix.into(),
                    start.into(),
                    t.into(),
                    old_prefix.clone().into(),
                    format!("{}0", &old_prefix[..old_prefix.len() - 1]).into(),
                ],
            ))
            .await?;
            let after = read::resource(c, t, &resource)
                .await?
                .ok_or_else(|| corrupt("moved resource"))?;
            inv.subtrees.push(resource.clone());
            let audit = Audit {
                action: "resource.move",
                target: format!("resource:{resource}"),
                before: json(&before),
                after: json(&after),
            };
            (Outcome::Resource(after), audit)
        }
        Command::SetResourcePrivate { resource, private } => {
            let (row, path) = existing(c, t, &resource).await?;
            authorize(c, ctx, &resource.rtype, "share", &path, now).await?;
            let before = read::resource_from_row(c, row.clone()).await?;
            resource::Entity::update_many()
                .col_expr(resource::Column::IsPrivate, Expr::value(private))
                .filter(resource::Column::Pk.eq(row.pk))
                .exec(c)
                .await?;
            let after = Resource {
                private,
                ..before.clone()
            };
            inv.subtrees.push(resource.clone());
            let audit = Audit {
                action: "resource.set_private",
                target: format!("resource:{resource}"),
                before: json(&before),
                after: json(&after),
            };
            (Outcome::Resource(after), audit)
        }
        Command::DeleteResource { resource } => {
            let (row, path) = existing(c, t, &resource).await?;
            authorize(c, ctx, &resource.rtype, "delete", &path, now).await?;
            let before = read::resource_from_row(c, row.clone()).await?;
            let mut pks: Vec<i64> = resource::Entity::find()
                .filter(resource::Column::TenantId.eq(t))
                .filter(under(&child_path(&row)))
                .all(c)
                .await?
                .into_iter()
                .map(|r| r.pk)
                .collect();
            pks.push(row.pk);
            inv.subtrees.push(resource.clone());
            for chunk in pks.chunks(500) {
                let holders = grant::Entity::find()
                    .filter(grant::Column::TenantId.eq(t))
                    .filter(grant::Column::ScopePk.is_in(chunk.iter().copied()))
                    .all(c)
                    .await?;
                for g in holders {
                    if let Some(s) = SubjectRef::from_parts(&g.subject_kind, g.subject_id) {
                        inv.principals.extend(principals_of(c, t, &s).await?);
                    }
                }
            }
            let mut deleted = 0;
            for chunk in pks.chunks(500) {
                grant::Entity::delete_many()
                    .filter(grant::Column::TenantId.eq(t))
                    .filter(grant::Column::ScopePk.is_in(chunk.iter().copied()))
                    .exec(c)
                    .await?;
                deleted += resource::Entity::delete_many()
                    .filter(resource::Column::Pk.is_in(chunk.iter().copied()))
                    .exec(c)
                    .await?
                    .rows_affected;
            }
            let audit = Audit {
                action: "resource.delete",
                target: format!("resource:{resource}"),
                before: json(&before),
                after: serde_json::json!({ "deleted_resources": deleted }).to_string(),
            };
            (Outcome::Count(deleted), audit)
        }
        Command::TransferOwnership {
            resource,
            new_owner,
            previous_owner_role,
        } => {
            let (row, path) = existing(c, t, &resource).await?;
            authorize(c, ctx, &resource.rtype, "transfer", &path, now).await?;
            let owner = require_principal(c, t, &new_owner).await?;
            if owner.status != PrincipalStatus::Active {
                return Err(Error::precondition(
                    "owner_must_be_active",
                    format!("`{new_owner}` is not an active member"),
                ));
            }
            if let Some(r) = &previous_owner_role {
                let roles = RoleTable::new(read::custom_roles(c, t).await?);
                if roles.get(r).is_none() {
                    return Err(Error::not_found(format!("role `{r}`")));
                }
            }
            let previous = owner_grants(t, row.pk).all(c).await?;
            grant::Entity::delete_many()
                .filter(grant::Column::Id.is_in(previous.iter().map(|g| g.id.clone())))
                .exec(c)
                .await?;
            let scope = Scope::Resource(resource.clone());
            let g = new_grant(
                SubjectRef::Principal(new_owner.clone()),
                "owner",
                scope.clone(),
                Effect::Allow,
                None,
                now,
            );
            insert_grant(c, t, &g, Some(row.pk)).await?;
            if let Some(r) = &previous_owner_role {
                for p in previous.iter().filter(|p| p.subject_id != new_owner) {
                    let kept = new_grant(
                        SubjectRef::Principal(p.subject_id.clone()),
                        r,
                        scope.clone(),
                        Effect::Allow,
                        None,
                        now,
                    );
                    insert_grant(c, t, &kept, Some(row.pk)).await?;
                }
            }
            inv.principals.push(new_owner.clone());
            inv.principals
                .extend(previous.iter().map(|g| g.subject_id.clone()));
            let before: Vec<&str> = previous.iter().map(|g| g.subject_id.as_str()).collect();
            let audit = Audit {
                action: "resource.transfer_ownership",
                target: format!("resource:{resource}"),
                before: serde_json::json!({ "owners": before }).to_string(),
                after: serde_json::json!({ "owners": [new_owner], "owner_grant": &g, "previous_owner_role": previous_owner_role }).to_string(),
            };
            (Outcome::Grant(g), audit)
        }
        Command::CreatePrincipal { principal } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_members", &[], now).await?;
            if read::principal(c, t, &principal.id).await?.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!("principal `{}`", principal.id),
                });
            }
            insert_principal(c, t, &principal).await?;
            inv.principals.push(principal.id.clone());
            let audit = Audit {
                action: "principal.create",
                target: format!("principal:{}", principal.id),
                before: String::new(),
                after: json(&principal),
            };
            (Outcome::Principal(principal), audit)
        }
        Command::SetPrincipalStatus {
            principal_id,
            status,
        } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_members", &[], now).await?;
            let before = require_principal(c, t, &principal_id).await?;
            let admins = durable_admins(c, t, now).await?;
            principal::Entity::update_many()
                .col_expr(principal::Column::Status, Expr::value(status.as_str()))
                .filter(principal::Column::TenantId.eq(t))
                .filter(principal::Column::Id.eq(principal_id.as_str()))
                .exec(c)
                .await?;
            keep_an_admin(c, t, admins, now).await?;
            inv.principals.push(principal_id.clone());
            let after = Principal {
                status,
                ..before.clone()
            };
            let audit = Audit {
                action: "principal.set_status",
                target: format!("principal:{principal_id}"),
                before: json(&before),
                after: json(&after),
            };
            (Outcome::Principal(after), audit)
        }
        Command::CreateTeam { team } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_teams", &[], now).await?;
            if read::team_row(c, t, &team.id).await?.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!("team `{}`", team.id),
                });
            }
            team::ActiveModel {
                tenant_id: Set(t.to_owned()),
                id: Set(team.id.clone()),
                display_name: Set(team.display_name.clone()),
                created_at: Set(now),
            }
            .insert(c)
            .await?;
            let audit = Audit {
                action: "team.create",
                target: format!("team:{}", team.id),
                before: String::new(),
                after: json(&team),
            };
            (Outcome::Team(team), audit)
        }
        Command::DeleteTeam { team_id } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_teams", &[], now).await?;
            let row = require_team(c, t, &team_id).await?;
            inv.principals = principals_of(c, t, &SubjectRef::Team(team_id.clone())).await?;
            let admins = durable_admins(c, t, now).await?;
            team_member::Entity::delete_many()
                .filter(team_member::Column::TenantId.eq(t))
                .filter(
                    sea_orm::Condition::any()
                        .add(team_member::Column::TeamId.eq(team_id.as_str()))
                        .add(
                            sea_orm::Condition::all()
                                .add(team_member::Column::MemberKind.eq("team"))
                                .add(team_member::Column::MemberId.eq(team_id.as_str())),
                        ),
                )
                .exec(c)
                .await?;
            let grants = grant::Entity::delete_many()
                .filter(grant::Column::TenantId.eq(t))
                .filter(grant::Column::SubjectKind.eq("team"))
                .filter(grant::Column::SubjectId.eq(team_id.as_str()))
                .exec(c)
                .await?
                .rows_affected;
            team::Entity::delete_many()
                .filter(team::Column::TenantId.eq(t))
                .filter(team::Column::Id.eq(team_id.as_str()))
                .exec(c)
                .await?;
            keep_an_admin(c, t, admins, now).await?;
            let audit = Audit {
                action: "team.delete",
                target: format!("team:{team_id}"),
                before: json(&team_from_row(row)),
                after: serde_json::json!({ "deleted_grants": grants }).to_string(),
            };
            (Outcome::Done, audit)
        }
        Command::AddTeamMember { team_id, member } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_teams", &[], now).await?;
            require_team(c, t, &team_id).await?;
            require_subject(c, t, &member).await?;
            if let SubjectRef::Team(inner) = &member {
                if inner == &team_id || teams_within(c, t, inner).await?.contains(&team_id) {
                    return Err(Error::precondition(
                        "team_cycle",
                        format!("team `{inner}` contains `{team_id}`, so it cannot also be a member of it"),
                    ));
                }
            }
            if team_member::Entity::find_by_id((
                t.to_owned(),
                team_id.clone(),
                member.kind_str().to_owned(),
                member.id().to_owned(),
            ))
            .one(c)
            .await?
            .is_some()
            {
                return Err(Error::AlreadyExists {
                    what: format!("member `{member}` of team `{team_id}`"),
                });
            }
            team_member::ActiveModel {
                tenant_id: Set(t.to_owned()),
                team_id: Set(team_id.clone()),
                member_kind: Set(member.kind_str().to_owned()),
                member_id: Set(member.id().to_owned()),
            }
            .insert(c)
            .await?;
            inv.principals = principals_of(c, t, &member).await?;
            let audit = Audit {
                action: "team.add_member",
                target: format!("team:{team_id}"),
                before: String::new(),
                after: json(&member),
            };
            (Outcome::Done, audit)
        }
        Command::RemoveTeamMember { team_id, member } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_teams", &[], now).await?;
            require_team(c, t, &team_id).await?;
            let admins = durable_admins(c, t, now).await?;
            let removed = team_member::Entity::delete_many()
                .filter(team_member::Column::TenantId.eq(t))
                .filter(team_member::Column::TeamId.eq(team_id.as_str()))
                .filter(team_member::Column::MemberKind.eq(member.kind_str()))
                .filter(team_member::Column::MemberId.eq(member.id()))
                .exec(c)
                .await?
                .rows_affected;
            if removed == 0 {
                return Err(Error::not_found(format!(
                    "member `{member}` of team `{team_id}`"
                )));
            }
            inv.principals = principals_of(c, t, &member).await?;
            keep_an_admin(c, t, admins, now).await?;
            let audit = Audit {
                action: "team.remove_member",
                target: format!("team:{team_id}"),
                before: json(&member),
                after: String::new(),
            };
            (Outcome::Done, audit)
        }
        Command::CreateRole { role } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_roles", &[], now).await?;
            refuse_locked(&role.id)?;
            if read_role_row(c, t, &role.id).await?.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!("role `{}`", role.id),
                });
            }
            check_inheritance(c, t, &role).await?;
            role::ActiveModel {
                tenant_id: Set(t.to_owned()),
                id: Set(role.id.clone()),
                display_name: Set(role.display_name.clone()),
                definition: Set(role_definition_json(&role)),
                created_at: Set(now),
            }
            .insert(c)
            .await?;
            inv.roles = true;
            let audit = Audit {
                action: "role.create",
                target: format!("role:{}", role.id),
                before: String::new(),
                after: json(&role),
            };
            (Outcome::Role(role), audit)
        }
        Command::UpdateRole { role } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_roles", &[], now).await?;
            refuse_locked(&role.id)?;
            let before = read_role_row(c, t, &role.id)
                .await?
                .ok_or_else(|| Error::not_found(format!("role `{}`", role.id)))?;
            check_inheritance(c, t, &role).await?;
            let admins = durable_admins(c, t, now).await?;
            role::Entity::update_many()
                .col_expr(
                    role::Column::DisplayName,
                    Expr::value(role.display_name.clone()),
                )
                .col_expr(
                    role::Column::Definition,
                    Expr::value(role_definition_json(&role)),
                )
                .filter(role::Column::TenantId.eq(t))
                .filter(role::Column::Id.eq(role.id.as_str()))
                .exec(c)
                .await?;
            keep_an_admin(c, t, admins, now).await?;
            inv.roles = true;
            let audit = Audit {
                action: "role.update",
                target: format!("role:{}", role.id),
                before: json(&role_from_row(before)?),
                after: json(&role),
            };
            (Outcome::Role(role), audit)
        }
        Command::DeleteRole { role_id, cascade } => {
            authorize(c, ctx, model::TENANT_TYPE, "manage_roles", &[], now).await?;
            refuse_locked(&role_id)?;
            let before = read_role_row(c, t, &role_id)
                .await?
                .ok_or_else(|| Error::not_found(format!("role `{role_id}`")))?;
            let heirs: Vec<String> = read::custom_roles(c, t)
                .await?
                .into_iter()
                .filter(|r| r.inherits.contains(&role_id))
                .map(|r| r.id)
                .collect();
            if !heirs.is_empty() {
                return Err(Error::precondition(
                    "role_in_use",
                    format!("`{role_id}` is inherited by {}", heirs.join(", ")),
                ));
            }
            let granted = grant::Entity::find()
                .filter(grant::Column::TenantId.eq(t))
                .filter(grant::Column::RoleId.eq(role_id.as_str()))
                .count(c)
                .await?;
            if granted > 0 && !cascade {
                return Err(Error::precondition(
                    "role_in_use",
                    format!("`{role_id}` is still granted {granted} times; delete with `cascade` to revoke those grants"),
                ));
            }
            let admins = durable_admins(c, t, now).await?;
            let deleted = grant::Entity::delete_many()
                .filter(grant::Column::TenantId.eq(t))
                .filter(grant::Column::RoleId.eq(role_id.as_str()))
                .exec(c)
                .await?
                .rows_affected;
            role::Entity::delete_many()
                .filter(role::Column::TenantId.eq(t))
                .filter(role::Column::Id.eq(role_id.as_str()))
                .exec(c)
                .await?;
            keep_an_admin(c, t, admins, now).await?;
            inv = Invalidation::everything();
            let audit = Audit {
                action: "role.delete",
                target: format!("role:{role_id}"),
                before: json(&role_from_row(before)?),
                after: serde_json::json!({ "deleted_grants": deleted }).to_string(),
            };
            (Outcome::Count(deleted), audit)
        }
        Command::CreateGrant {
            subject,
            role_id,
            scope,
            effect,
            expires_at,
        } => {
            let (scope_pk, path) = match &scope {
                Scope::Tenant => (None, Vec::new()),
                Scope::Resource(r) => {
                    let (row, path) = existing(c, t, r).await?;
                    (Some(row.pk), path)
                }
            };
            authorize(c, ctx, scope.kind(), "share", &path, now).await?;
            require_subject(c, t, &subject).await?;
            let roles = RoleTable::new(read::custom_roles(c, t).await?);
            if roles.get(&role_id).is_none() {
                return Err(Error::not_found(format!("role `{role_id}`")));
            }
            if expires_at.is_some_and(|e| e <= now) {
                return Err(Error::invalid("expire_time", "must be in the future"));
            }
            if let Scope::Resource(r) = &scope {
                if role_id == "owner"
                    && effect == Effect::Allow
                    && is_single_owner(&tenant_settings(c, t).await?, &r.rtype)
                {
                    return Err(Error::precondition(
                        "single_owner",
                        format!(
                            "`{}` has exactly one owner; use TransferOwnership to change it",
                            r.rtype
                        ),
                    ));
                }
            }
            let admins = durable_admins(c, t, now).await?;
            let g = new_grant(subject, &role_id, scope, effect, expires_at, now);
            insert_grant(c, t, &g, scope_pk).await?;
            keep_an_admin(c, t, admins, now).await?;
            inv.principals = principals_of(c, t, &g.subject).await?;
            let audit = Audit {
                action: "grant.create",
                target: format!("grant:{}", g.id),
                before: String::new(),
                after: json(&g),
            };
            (Outcome::Grant(g), audit)
        }
        Command::DeleteGrant { grant_id } => {
            let row = grant::Entity::find_by_id(grant_id.clone())
                .filter(grant::Column::TenantId.eq(t))
                .one(c)
                .await?
                .ok_or_else(|| Error::not_found(format!("grant `{grant_id}`")))?;
            let g = read::grants_with_scopes(c, vec![row])
                .await?
                .pop()
                .ok_or_else(|| corrupt("grant"))?;
            let path = match &g.scope {
                Scope::Tenant => Vec::new(),
                Scope::Resource(r) => existing(c, t, r).await?.1,
            };
            authorize(c, ctx, g.scope.kind(), "share", &path, now).await?;
            if let Scope::Resource(r) = &g.scope {
                if g.role_id == "owner"
                    && g.effect == Effect::Allow
                    && matches!(g.subject, SubjectRef::Principal(_))
                    && is_single_owner(&tenant_settings(c, t).await?, &r.rtype)
                {
                    return Err(Error::precondition(
                        "single_owner",
                        format!("`{r}` must keep its owner; use TransferOwnership to change it"),
                    ));
                }
            }
            let admins = durable_admins(c, t, now).await?;
            grant::Entity::delete_many()
                .filter(grant::Column::Id.eq(grant_id.as_str()))
                .exec(c)
                .await?;
            keep_an_admin(c, t, admins, now).await?;
            inv.principals = principals_of(c, t, &g.subject).await?;
            let audit = Audit {
                action: "grant.delete",
                target: format!("grant:{grant_id}"),
                before: json(&g),
                after: String::new(),
            };
            (Outcome::Done, audit)
        }
    };
    Ok(Ran::Applied((outcome, revision, audit, inv)))
}

fn unreachable_command() -> Result<(Outcome, Audit)> {
    Err(Error::Internal("create tenant handled above".to_owned()))
}

async fn create_tenant<C: ConnectionTrait>(
    c: &C,
    ctx: &WriteContext,
    tenant: Tenant,
    first_admin: Option<Principal>,
    now: Millis,
) -> Result<Applied> {
    if ctx.actor != Actor::SuperUser {
        return Err(Error::PermissionDenied(
            "only an operator creates tenants".to_owned(),
        ));
    }
    if read::tenant_row(c, &tenant.id).await?.is_some() {
        return Err(Error::AlreadyExists {
            what: format!("tenant `{}`", tenant.id),
        });
    }
    let revision = 1;
    tenant::ActiveModel {
        id: Set(tenant.id.clone()),
        display_name: Set(tenant.display_name.clone()),
        single_owner_types: Set(json(&tenant.single_owner_types)),
        creator_owner_types: Set(json(&tenant.creator_owner_types)),
        audit_retention_days: Set(tenant.audit_retention_days as i32),
        revision: Set(revision),
        created_at: Set(now),
    }
    .insert(c)
    .await?;
    let mut after = serde_json::json!({ "tenant": &tenant });
    if let Some(admin) = first_admin {
        insert_principal(c, &tenant.id, &admin).await?;
        let g = new_grant(
            SubjectRef::Principal(admin.id.clone()),
            "account_admin",
            Scope::Tenant,
            Effect::Allow,
            None,
            now,
        );
        insert_grant(c, &tenant.id, &g, None).await?;
        after["first_admin"] = serde_json::to_value(&admin).unwrap_or_default();
        after["first_admin_grant"] = serde_json::to_value(&g).unwrap_or_default();
    }
    let audit = Audit {
        action: "tenant.create",
        target: format!("tenant:{}", tenant.id),
        before: String::new(),
        after: after.to_string(),
    };
    Ok((
        Outcome::Tenant(tenant),
        revision,
        audit,
        Invalidation::everything(),
    ))
}

async fn insert_principal<C: ConnectionTrait>(c: &C, t: &str, p: &Principal) -> Result<()> {
    principal::ActiveModel {
        tenant_id: Set(t.to_owned()),
        id: Set(p.id.clone()),
        kind: Set(p.kind.as_str().to_owned()),
        status: Set(p.status.as_str().to_owned()),
        display_name: Set(p.display_name.clone()),
        created_at: Set(p.created_at),
    }
    .insert(c)
    .await?;
    Ok(())
}

fn refuse_locked(role_id: &str) -> Result<()> {
    if engine::roles::PREDEFINED_ROLE_IDS.contains(&role_id) {
        return Err(Error::precondition(
            "locked_role",
            format!("`{role_id}` is a predefined role and cannot be created, changed or deleted"),
        ));
    }
    Ok(())
}

async fn read_role_row<C: ConnectionTrait>(
    c: &C,
    t: &str,
    id: &str,
) -> Result<Option<role::Model>> {
    Ok(role::Entity::find_by_id((t.to_owned(), id.to_owned()))
        .one(c)
        .await?)
}

/// Inherited roles must exist and inheritance must not loop back.
async fn check_inheritance<C: ConnectionTrait>(c: &C, t: &str, role: &Role) -> Result<()> {
    let mut custom: Vec<Role> = read::custom_roles(c, t)
        .await?
        .into_iter()
        .filter(|r| r.id != role.id)
        .collect();
    custom.push(role.clone());
    let table = RoleTable::new(custom.clone());
    // The role table cuts cycles when it loads, so look for one on the raw
    // definitions.
    let edges: std::collections::HashMap<&str, &Vec<String>> = custom
        .iter()
        .map(|r| (r.id.as_str(), &r.inherits))
        .collect();
    for parent in &role.inherits {
        if table.get(parent).is_none() {
            return Err(Error::invalid(
                "role.inherits",
                format!("no role `{parent}`"),
            ));
        }
        let mut stack = vec![parent.as_str()];
        let mut seen = HashSet::new();
        while let Some(r) = stack.pop() {
            if r == role.id {
                return Err(Error::precondition(
                    "role_cycle",
                    format!("`{parent}` already inherits `{}`", role.id),
                ));
            }
            if seen.insert(r) {
                if let Some(next) = edges.get(r) {
                    stack.extend(next.iter().map(String::as_str));
                }
            }
        }
    }
    Ok(())
}

/// The principals a subject stands for: itself, or a team's members transitively.
async fn principals_of<C: ConnectionTrait>(c: &C, t: &str, s: &SubjectRef) -> Result<Vec<String>> {
    Ok(match s {
        SubjectRef::Principal(p) => vec![p.clone()],
        SubjectRef::Team(team) => read::principals_in_team(c, t, team)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect(),
    })
}

/// Teams nested inside `team`, transitively.
async fn teams_within<C: ConnectionTrait>(c: &C, t: &str, team: &str) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let mut stack = vec![team.to_owned()];
    while let Some(current) = stack.pop() {
        let rows = team_member::Entity::find()
            .filter(team_member::Column::TenantId.eq(t))
            .filter(team_member::Column::TeamId.eq(current.as_str()))
            .filter(team_member::Column::MemberKind.eq("team"))
            .all(c)
            .await?;
        for r in rows {
            if out.insert(r.member_id.clone()) {
                stack.push(r.member_id);
            }
        }
    }
    Ok(out)
}

/// Before a type becomes single-owner, every resource of it must have exactly
/// one owner.
async fn ensure_single_owners<C: ConnectionTrait>(c: &C, t: &str, rtype: &str) -> Result<()> {
    let rows = resource::Entity::find()
        .filter(resource::Column::TenantId.eq(t))
        .filter(resource::Column::Rtype.eq(rtype))
        .all(c)
        .await?;
    for r in rows {
        let owners = owner_grants(t, r.pk).count(c).await?;
        if owners != 1 {
            return Err(Error::precondition(
                "single_owner",
                format!("`{rtype}:{}` has {owners} owners; give it exactly one before making `{rtype}` single-owner", r.rid),
            ));
        }
    }
    Ok(())
}

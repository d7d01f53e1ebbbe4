//! The initial schema: tenants, resources (with materialized ancestor paths),
//! principals, teams and memberships, custom roles, grants and the audit trail.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    DisplayName,
    SingleOwnerTypes,
    CreatorOwnerTypes,
    AuditRetentionDays,
    Revision,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Resources {
    Table,
    Pk,
    TenantId,
    Rtype,
    Rid,
    ParentPk,
    Ancestors,
    IsPrivate,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Principals {
    Table,
    TenantId,
    Id,
    Kind,
    Status,
    DisplayName,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    TenantId,
    Id,
    DisplayName,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TeamMembers {
    Table,
    TenantId,
    TeamId,
    MemberKind,
    MemberId,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    TenantId,
    Id,
    DisplayName,
    Definition,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    TenantId,
    SubjectKind,
    SubjectId,
    RoleId,
    ScopePk,
    Effect,
    ExpiresAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    TenantId,
    Revision,
    At,
    Caller,
    Actor,
    Action,
    Target,
    BeforeJson,
    AfterJson,
}

/// An auto-increment 64-bit key: SQLite only auto-increments `integer`
/// primary keys (which are 64-bit there); PostgreSQL gets `bigserial`.
fn serial_pk<T: IntoIden>(backend: DatabaseBackend, col: T) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    match backend {
        DatabaseBackend::Sqlite => def.integer(),
        _ => def.big_integer(),
    };
    def.not_null().auto_increment().primary_key();
    def
}

fn text<T: IntoIden>(col: T) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    def.string().not_null();
    def
}

fn int64<T: IntoIden>(col: T) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    def.big_integer().not_null();
    def
}

fn int64_null<T: IntoIden>(col: T) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    def.big_integer().null();
    def
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        tenants_and_resources(m).await?;
        principals_and_teams(m).await?;
        roles_grants_and_audit(m).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            AuditEvents::Table.into_iden(),
            Grants::Table.into_iden(),
            Roles::Table.into_iden(),
            TeamMembers::Table.into_iden(),
            Teams::Table.into_iden(),
            Principals::Table.into_iden(),
            Resources::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}

/// Tenants, and resources with their indexes.
async fn tenants_and_resources(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let backend = m.get_database_backend();
    m.create_table(
        Table::create()
            .table(Tenants::Table)
            .col(text(Tenants::Id).primary_key())
            .col(text(Tenants::DisplayName))
            .col(text(Tenants::SingleOwnerTypes))
            .col(text(Tenants::CreatorOwnerTypes))
            .col(
                ColumnDef::new(Tenants::AuditRetentionDays)
                    .integer()
                    .not_null(),
            )
            .col(int64(Tenants::Revision))
            .col(int64(Tenants::CreatedAt))
            .to_owned(),
    )
    .await?;

    m.create_table(
        Table::create()
            .table(Resources::Table)
            .col(serial_pk(backend, Resources::Pk))
            .col(text(Resources::TenantId))
            .col(text(Resources::Rtype))
            .col(text(Resources::Rid))
            .col(int64_null(Resources::ParentPk))
            .col(text(Resources::Ancestors))
            .col(ColumnDef::new(Resources::IsPrivate).boolean().not_null())
            .col(int64(Resources::CreatedAt))
            .to_owned(),
    )
    .await?;
    m.create_index(
        Index::create()
            .name("resources_by_ref")
            .table(Resources::Table)
            .col(Resources::TenantId)
            .col(Resources::Rtype)
            .col(Resources::Rid)
            .unique()
            .to_owned(),
    )
    .await?;
    m.create_index(
        Index::create()
            .name("resources_by_path")
            .table(Resources::Table)
            .col(Resources::TenantId)
            .col(Resources::Ancestors)
            .to_owned(),
    )
    .await?;
    m.create_index(
        Index::create()
            .name("resources_by_parent")
            .table(Resources::Table)
            .col(Resources::TenantId)
            .col(Resources::ParentPk)
            .to_owned(),
    )
    .await?;
    Ok(())
}

/// Principals, teams and memberships.
async fn principals_and_teams(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    m.create_table(
        Table::create()
            .table(Principals::Table)
            .col(text(Principals::TenantId))
            .col(text(Principals::Id))
            .col(text(Principals::Kind))
            .col(text(Principals::Status))
            .col(text(Principals::DisplayName))
            .col(int64(Principals::CreatedAt))
            .primary_key(
                Index::create()
                    .col(Principals::TenantId)
                    .col(Principals::Id),
            )
            .to_owned(),
    )
    .await?;

    m.create_table(
        Table::create()
            .table(Teams::Table)
            .col(text(Teams::TenantId))
            .col(text(Teams::Id))
            .col(text(Teams::DisplayName))
            .col(int64(Teams::CreatedAt))
            .primary_key(Index::create().col(Teams::TenantId).col(Teams::Id))
            .to_owned(),
    )
    .await?;

    m.create_table(
        Table::create()
            .table(TeamMembers::Table)
            .col(text(TeamMembers::TenantId))
            .col(text(TeamMembers::TeamId))
            .col(text(TeamMembers::MemberKind))
            .col(text(TeamMembers::MemberId))
            .primary_key(
                Index::create()
                    .col(TeamMembers::TenantId)
                    .col(TeamMembers::TeamId)
                    .col(TeamMembers::MemberKind)
                    .col(TeamMembers::MemberId),
            )
            .to_owned(),
    )
    .await?;
    m.create_index(
        Index::create()
            .name("team_members_by_member")
            .table(TeamMembers::Table)
            .col(TeamMembers::TenantId)
            .col(TeamMembers::MemberKind)
            .col(TeamMembers::MemberId)
            .to_owned(),
    )
    .await?;
    Ok(())
}

/// Custom roles, grants and audit events.
async fn roles_grants_and_audit(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let backend = m.get_database_backend();
    m.create_table(
        Table::create()
            .table(Roles::Table)
            .col(text(Roles::TenantId))
            .col(text(Roles::Id))
            .col(text(Roles::DisplayName))
            .col(ColumnDef::new(Roles::Definition).text().not_null())
            .col(int64(Roles::CreatedAt))
            .primary_key(Index::create().col(Roles::TenantId).col(Roles::Id))
            .to_owned(),
    )
    .await?;

    m.create_table(
        Table::create()
            .table(Grants::Table)
            .col(text(Grants::Id).primary_key())
            .col(text(Grants::TenantId))
            .col(text(Grants::SubjectKind))
            .col(text(Grants::SubjectId))
            .col(text(Grants::RoleId))
            .col(int64_null(Grants::ScopePk))
            .col(text(Grants::Effect))
            .col(int64_null(Grants::ExpiresAt))
            .col(int64(Grants::CreatedAt))
            .to_owned(),
    )
    .await?;
    for (name, cols) in [
        (
            "grants_by_subject",
            vec![Grants::SubjectKind, Grants::SubjectId],
        ),
        ("grants_by_scope", vec![Grants::ScopePk]),
        ("grants_by_role", vec![Grants::RoleId]),
    ] {
        let mut idx = Index::create();
        idx.name(name).table(Grants::Table).col(Grants::TenantId);
        for c in cols {
            idx.col(c);
        }
        m.create_index(idx.to_owned()).await?;
    }

    m.create_table(
        Table::create()
            .table(AuditEvents::Table)
            .col(serial_pk(backend, AuditEvents::Id))
            .col(text(AuditEvents::TenantId))
            .col(int64(AuditEvents::Revision))
            .col(int64(AuditEvents::At))
            .col(text(AuditEvents::Caller))
            .col(text(AuditEvents::Actor))
            .col(text(AuditEvents::Action))
            .col(ColumnDef::new(AuditEvents::Target).text().not_null())
            .col(ColumnDef::new(AuditEvents::BeforeJson).text().not_null())
            .col(ColumnDef::new(AuditEvents::AfterJson).text().not_null())
            .to_owned(),
    )
    .await?;
    m.create_index(
        Index::create()
            .name("audit_events_by_tenant")
            .table(AuditEvents::Table)
            .col(AuditEvents::TenantId)
            .col(AuditEvents::Id)
            .to_owned(),
    )
    .await?;
    Ok(())
}

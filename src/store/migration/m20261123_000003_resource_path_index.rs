//! Subtree queries as index range scans: ancestor paths compare bytewise
//! (`COLLATE "C"` on PostgreSQL; SQLite's default is already binary), and an
//! index on (tenant, type, path) answers "resources of type T under S" with
//! one range scan that reads only the answer.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Resources {
    Table,
    TenantId,
    Rtype,
    Ancestors,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DatabaseBackend::Postgres {
            m.get_connection()
                .execute_unprepared(
                    r#"ALTER TABLE resources ALTER COLUMN ancestors TYPE varchar COLLATE "C""#,
                )
                .await?;
        }
        m.create_index(
            Index::create()
                .name("resources_by_type_and_path")
                .table(Resources::Table)
                .col(Resources::TenantId)
                .col(Resources::Rtype)
                .col(Resources::Ancestors)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("resources_by_type_and_path")
                .table(Resources::Table)
                .to_owned(),
        )
        .await
    }
}

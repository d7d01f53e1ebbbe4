//! The revision log: one row per tenant revision, saying what the write at
//! that revision invalidates, so that every replica can drop exactly those
//! cache entries.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Changes {
    Table,
    TenantId,
    Revision,
    At,
    Invalidation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Changes::Table)
                .col(ColumnDef::new(Changes::TenantId).string().not_null())
                .col(ColumnDef::new(Changes::Revision).big_integer().not_null())
                .col(ColumnDef::new(Changes::At).big_integer().not_null())
                .col(ColumnDef::new(Changes::Invalidation).text().not_null())
                .primary_key(
                    Index::create()
                        .col(Changes::TenantId)
                        .col(Changes::Revision),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Changes::Table).to_owned())
            .await
    }
}

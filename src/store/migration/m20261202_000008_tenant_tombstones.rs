//! Deleted tenants: the revision each had reached, so that a tenant created
//! again with the same id continues after it. A replica that still holds the
//! old tenant's index then sees a gap in the revision log and drops it, and
//! no consistency token of the old tenant can name a revision of the new one
//! that does not follow everything the old one did.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantTombstones {
    Table,
    Id,
    Revision,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TenantTombstones::Table)
                .col(
                    ColumnDef::new(TenantTombstones::Id)
                        .text()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(TenantTombstones::Revision)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(TenantTombstones::DeletedAt)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(TenantTombstones::Table).to_owned())
            .await
    }
}

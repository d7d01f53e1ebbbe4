//! Restricted resources: grants from above do not reach in, except the
//! tenant-wide grants of `owner` and `admin` (the flow builder's connections
//! shared with specific users and teams).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Resources {
    Table,
    IsRestricted,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Resources::Table)
                .add_column(
                    ColumnDef::new(Resources::IsRestricted)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Resources::Table)
                .drop_column(Resources::IsRestricted)
                .to_owned(),
        )
        .await
    }
}

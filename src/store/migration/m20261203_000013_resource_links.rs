//! Links between resources: the resources a resource acts on (a workflow's
//! boards), as a JSON array; `NULL` for none.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Resources {
    Table,
    Links,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Resources::Table)
                .add_column(ColumnDef::new(Resources::Links).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Resources::Table)
                .drop_column(Resources::Links)
                .to_owned(),
        )
        .await
    }
}

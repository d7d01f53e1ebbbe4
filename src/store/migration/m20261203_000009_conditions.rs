//! Conditions and attributes: a grant's CEL condition (a custom role keeps
//! its condition in its JSON definition) and a resource's attributes, which
//! conditions read (JSON object of strings).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Grants {
    Table,
    Condition,
}

#[derive(DeriveIden)]
enum Resources {
    Table,
    Attributes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        m.alter_table(
            Table::alter()
                .table(Grants::Table)
                .add_column(ColumnDef::new(Grants::Condition).text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Resources::Table)
                .add_column(ColumnDef::new(Resources::Attributes).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Resources::Table)
                .drop_column(Resources::Attributes)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Grants::Table)
                .drop_column(Grants::Condition)
                .to_owned(),
        )
        .await
    }
}

//! Client request ids of admin writes, so that a retried write is applied
//! once: the first attempt's response is kept for a day and returned again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Requests {
    Table,
    TenantId,
    RequestId,
    Fingerprint,
    Revision,
    Outcome,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Requests::Table)
                .col(ColumnDef::new(Requests::TenantId).string().not_null())
                .col(ColumnDef::new(Requests::RequestId).string().not_null())
                .col(ColumnDef::new(Requests::Fingerprint).string().not_null())
                .col(ColumnDef::new(Requests::Revision).big_integer().not_null())
                .col(ColumnDef::new(Requests::Outcome).text().not_null())
                .col(ColumnDef::new(Requests::At).big_integer().not_null())
                .primary_key(
                    Index::create()
                        .col(Requests::TenantId)
                        .col(Requests::RequestId),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_requests_tenant_at")
                .table(Requests::Table)
                .col(Requests::TenantId)
                .col(Requests::At)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Requests::Table).to_owned())
            .await
    }
}

//! Invitations that lapse: an invited principal's invitation may carry an
//! expiry (milliseconds since the epoch), past which it cannot be accepted.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Principals {
    Table,
    InvitationExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Principals::Table)
                .add_column(
                    ColumnDef::new(Principals::InvitationExpiresAt)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Principals::Table)
                .drop_column(Principals::InvitationExpiresAt)
                .to_owned(),
        )
        .await
    }
}

//! Table `team_members`.
use sea_orm::entity::prelude::*;

/// A row of `team_members`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "team_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub team_id: String,
    /// `principal` or `team`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub member_kind: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub member_id: String,
}

/// No declared relations: joins are written where they are used.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

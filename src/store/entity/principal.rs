//! Table `principals`.
use sea_orm::entity::prelude::*;

/// A row of `principals`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "principals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub status: String,
    pub display_name: String,
    /// When an invitation lapses; `None` for never (or not invited).
    pub invitation_expires_at: Option<i64>,
    pub created_at: i64,
}

/// No declared relations: joins are written where they are used.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! Table `roles`.
use sea_orm::entity::prelude::*;

/// A row of `roles`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "roles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub display_name: String,
    /// JSON of permissions, exclusions, inherited roles and effective scopes.
    pub definition: String,
    pub created_at: i64,
}

/// No declared relations: joins are written where they are used.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! Table `tenants`.
use sea_orm::entity::prelude::*;

/// A row of `tenants`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub display_name: String,
    /// JSON array of type names.
    pub single_owner_types: String,
    /// JSON array of type names.
    pub creator_owner_types: String,
    pub audit_retention_days: i32,
    /// Bumped by every write of the tenant; revision tokens are this number.
    pub revision: i64,
    pub created_at: i64,
    /// JSON array of the tenant's declared actions.
    pub actions: String,
    /// JSON array of `{action, implies}`.
    pub implied_actions: String,
}

/// No declared relations: joins are written where they are used.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

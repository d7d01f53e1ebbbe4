//! Table `tenant_tombstones`: deleted tenants and the revision each reached.
use sea_orm::entity::prelude::*;

/// A row of `tenant_tombstones`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_tombstones")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The revision of the deletion.
    pub revision: i64,
    pub deleted_at: i64,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

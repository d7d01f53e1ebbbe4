//! Table `audit_events`.
use sea_orm::entity::prelude::*;

/// A row of `audit_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: String,
    pub revision: i64,
    pub at: i64,
    pub caller: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before_json: String,
    pub after_json: String,
}

/// No declared relations: joins are written where they are used.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

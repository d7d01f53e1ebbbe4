//! Table `requests`: client request ids of recent admin writes.
use sea_orm::entity::prelude::*;

/// A row of `requests`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// SHA-256 (hex) of the request the id was first used for.
    pub fingerprint: String,
    /// The revision the write produced.
    pub revision: i64,
    /// JSON of the command's output, returned again to a retry.
    pub outcome: String,
    pub at: i64,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

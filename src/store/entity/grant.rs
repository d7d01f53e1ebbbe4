//! Table `grants`.
use sea_orm::entity::prelude::*;

/// A row of `grants`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// `principal` or `team`.
    pub subject_kind: String,
    pub subject_id: String,
    pub role_id: String,
    /// Resource key of the scope; `None` for the whole tenant.
    pub scope_pk: Option<i64>,
    /// `allow` or `deny`.
    pub effect: String,
    pub expires_at: Option<i64>,
    /// CEL condition; `None` for none.
    pub condition: Option<String>,
    pub created_at: i64,
    /// When the grant last decided a check (written in batches); `None`
    /// for never.
    pub last_used_at: Option<i64>,
}

/// No declared relations: joins are written where they are used.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

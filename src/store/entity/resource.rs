//! Table `resources`.
use sea_orm::entity::prelude::*;

/// A row of `resources`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "resources")]
pub struct Model {
    /// Surrogate key; ancestry paths are made of these.
    #[sea_orm(primary_key)]
    pub pk: i64,
    pub tenant_id: String,
    pub rtype: String,
    pub rid: String,
    pub parent_pk: Option<i64>,
    /// Keys of the ancestors, root first, as `/1/5/` (`/` at the top).
    pub ancestors: String,
    pub is_private: bool,
    /// Grants from above reach in only when tenant-wide `owner` or `admin`.
    pub is_restricted: bool,
    /// JSON object of attribute strings; `None` for none.
    pub attributes: Option<String>,
    /// JSON array of the resources it acts on; `None` for none.
    pub links: Option<String>,
    pub created_at: i64,
}

/// No declared relations: joins are written where they are used.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

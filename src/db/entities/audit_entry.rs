use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub at: DateTimeUtc,
    pub actor_id: Option<i32>,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i32>,
    pub case_id: Option<i32>,
    pub ip: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    /// The `hash` of the entry before this one in id order; see `audit::chain`.
    pub prev_hash: Option<String>,
    /// SHA-256 over `prev_hash` and this entry's stored fields; empty only on
    /// entries written before the chain existed.
    pub hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::vocabulary::ProviderKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "providers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    pub kind: ProviderKind,
    pub email: String,
    pub phone: String,
    pub fax: String,
    pub portal_url: String,
    #[sea_orm(column_type = "Text")]
    pub address: String,
    #[sea_orm(column_type = "Text")]
    pub notes: String,
    /// The zone the provider's days are counted in.
    pub timezone: String,
    /// A configured jurisdiction with its own periods, if any.
    pub jurisdiction: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

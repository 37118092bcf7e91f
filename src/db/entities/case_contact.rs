use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::vocabulary::{ContactChannel, ContactDirection, ContactParty};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "case_contacts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub case_id: i32,
    pub party: ContactParty,
    pub channel: ContactChannel,
    pub direction: ContactDirection,
    #[sea_orm(column_type = "Text")]
    pub summary: String,
    pub follow_up_on: Option<Date>,
    pub done_at: Option<DateTimeUtc>,
    pub done_by: Option<i32>,
    pub author_id: Option<i32>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

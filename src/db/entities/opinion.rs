use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "opinions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub case_id: i32,
    pub round: i32,
    pub clinician: String,
    #[sea_orm(column_type = "Text")]
    pub diagnosis: String,
    #[sea_orm(column_type = "Text")]
    pub treatment_plan: String,
    pub recommends_surgery: bool,
    #[sea_orm(column_type = "Text")]
    pub notes: String,
    pub recorded_at: DateTimeUtc,
    pub recorded_by: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

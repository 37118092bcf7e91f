use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::vocabulary::{Coverage, Preapproval};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "case_insurance")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub case_id: i32,
    pub payer: String,
    pub plan: String,
    pub member_id: String,
    pub second_opinion_covered: Coverage,
    pub preapproval: Preapproval,
    pub preapproval_requested_at: Option<DateTimeUtc>,
    pub preapproval_decided_at: Option<DateTimeUtc>,
    pub preapproval_reference: String,
    pub appeal_deadline: Option<Date>,
    #[sea_orm(column_type = "Text")]
    pub cost_notes: String,
    pub updated_by: Option<i32>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

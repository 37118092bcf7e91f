use sea_orm::entity::prelude::*;

use crate::vocabulary::ConsultationMode;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "case_rounds")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub case_id: i32,
    pub round: i32,
    pub specialist_id: Option<i32>,
    pub consultation_scheduled_at: Option<DateTimeUtc>,
    pub consultation_mode: Option<ConsultationMode>,
    #[sea_orm(column_type = "Text", nullable)]
    pub consultation_location: Option<String>,
    pub consultation_held_at: Option<DateTimeUtc>,
    pub diagnosis_agrees: Option<bool>,
    pub treatment_agrees: Option<bool>,
    #[sea_orm(column_type = "Text", nullable)]
    pub risk_notes: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub outcome_notes: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub cost_notes: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub comparison_summary: Option<String>,
    pub compared_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;

use crate::vocabulary::{HoldReason, Reason, Stage, Urgency};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub reference: String,
    pub patient_name: String,
    pub patient_email: String,
    pub patient_phone: Option<String>,
    pub patient_timezone: String,
    pub patient_language: String,
    pub specialty: String,
    pub reason: Reason,
    pub urgency: Urgency,
    #[sea_orm(column_type = "Text")]
    pub summary: String,
    #[sea_orm(column_type = "Text")]
    pub advocate_id: Option<i32>,
    pub stage: Stage,
    pub round: i32,
    pub stage_entered_at: DateTimeUtc,
    pub stage_due_at: Option<DateTimeUtc>,
    pub held_since: Option<DateTimeUtc>,
    pub hold_reason: Option<HoldReason>,
    #[sea_orm(column_type = "Text", nullable)]
    pub hold_note: Option<String>,
    pub held_seconds: i64,
    pub chosen_opinion: Option<crate::vocabulary::OpinionChoice>,
    #[sea_orm(column_type = "Text", nullable)]
    pub decision_reason: Option<String>,
    pub decided_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub medical_history: String,
    #[sea_orm(column_type = "Text")]
    pub medications: String,
    #[sea_orm(column_type = "Text")]
    pub patient_questions: String,
    pub nudge_token: Option<String>,
    pub nudges_stopped_at: Option<DateTimeUtc>,
    /// When the patient's identifying data and free text were erased.
    pub erased_at: Option<DateTimeUtc>,
    /// When the reminder scan should next look at the case (open cases only).
    pub remind_at: Option<DateTimeUtc>,
    /// Since when the patient or a care partner has done something in the
    /// portal that no advocate has looked at yet.
    pub portal_activity_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

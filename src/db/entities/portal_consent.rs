use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "portal_consents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub case_id: i32,
    pub round: i32,
    pub specialist_id: Option<i32>,
    pub signer_name: String,
    /// Who recorded it: `patient`, or the staff member who took a paper form.
    pub signed_by: String,
    /// `portal` or `paper`.
    pub method: String,
    pub signed_at: DateTimeUtc,
    pub ip: Option<String>,
    pub text_version: String,
    pub text_sha256: String,
    pub document_id: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

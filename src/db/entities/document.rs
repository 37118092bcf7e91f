use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::vocabulary::{DocumentKind, RecordKind};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "documents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub case_id: i32,
    pub kind: DocumentKind,
    pub record_kind: Option<RecordKind>,
    pub round: Option<i32>,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub object_key: String,
    pub wrapped_key: String,
    pub key_id: String,
    pub uploaded_by: Option<i32>,
    pub uploaded_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    pub deleted_by: Option<i32>,
    pub damaged_at: Option<DateTimeUtc>,
    /// Who sent it through the patient portal (`patient`, or a care partner).
    pub uploaded_via: Option<String>,
    /// The records request whose receipt this document was filed with.
    pub records_request_id: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::vocabulary::{RequestMethod, RequestState, RequestType};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "records_requests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub case_id: i32,
    pub provider_id: i32,
    pub request_type: RequestType,
    pub state: RequestState,
    pub method: Option<RequestMethod>,
    pub sent_at: Option<DateTimeUtc>,
    pub received_by_provider_at: Option<DateTimeUtc>,
    /// The due date before any extension.
    pub first_due_at: Option<DateTimeUtc>,
    /// The due date now (after an extension, the extended one).
    pub due_at: Option<DateTimeUtc>,
    pub extension_notice_received_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub extension_reason: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub denied_reason: Option<String>,
    pub closed_at: Option<DateTimeUtc>,
    pub created_by: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

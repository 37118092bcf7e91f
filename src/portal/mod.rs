//! The patient portal: what a patient, or a care partner they invited, may
//! see and do for their one case without a password. A personal link
//! (`links`) opens a short portal session; through it the visitor follows
//! the case, uploads records, keeps their list of questions (`questions`),
//! signs the authorization to share their records (the patient only),
//! invites care partners (`partners`) and answers the survey after the
//! decision (`survey`). Every portal change is a case write by an actor
//! scoped to that one case, so it is audited under the visitor's name and
//! marks the case for an advocate to review.

pub mod actions;
pub mod links;
pub mod partners;
pub mod questions;
pub mod survey;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, prelude::Expr};

pub use links::Visitor;

use crate::{db::entities::case, error::AppResult};

/// The audit label of a patient acting in the portal.
pub const PATIENT: &str = "patient";

/// An advocate opened the case: its portal activity has been seen. Writes
/// only when there was something to see.
pub async fn activity_seen(db: &DatabaseConnection, case_id: i32) -> AppResult<()> {
    case::Entity::update_many()
        .col_expr(case::Column::PortalActivityAt, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None))
        .filter(case::Column::Id.eq(case_id))
        .filter(case::Column::PortalActivityAt.is_not_null())
        .exec(db)
        .await?;
    Ok(())
}

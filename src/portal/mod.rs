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
const PARTNER_LABEL: &str = "care-partner:";

/// The audit label of care partner `id` acting in the portal.
pub fn partner_label(id: i32) -> String {
    format!("{PARTNER_LABEL}{id}")
}

/// Who an audit label names, in words for staff pages: the patient, a care
/// partner by name (from `names`, the case's care partners), or the label
/// itself for staff and the system.
pub fn who(label: &str, names: &std::collections::HashMap<i32, String>) -> String {
    if label == PATIENT {
        return "the patient".to_string();
    }
    match label.strip_prefix(PARTNER_LABEL).and_then(|id| id.parse::<i32>().ok()) {
        Some(id) => match names.get(&id).filter(|n| !n.is_empty()) {
            Some(name) => format!("care partner {name}"),
            None => "a care partner".to_string(),
        },
        None => label.to_string(),
    }
}

/// The names of every care partner the case has had, by id.
pub async fn partner_names(db: &DatabaseConnection, case_id: i32) -> AppResult<std::collections::HashMap<i32, String>> {
    use sea_orm::QuerySelect;
    let rows: Vec<(i32, String)> = crate::db::entities::portal_partner::Entity::find()
        .select_only()
        .column(crate::db::entities::portal_partner::Column::Id)
        .column(crate::db::entities::portal_partner::Column::Name)
        .filter(crate::db::entities::portal_partner::Column::CaseId.eq(case_id))
        .limit(200)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// What staff see of a case's portal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortalSummary {
    /// The consent of the current round, if signed.
    pub consent: Option<crate::db::entities::portal_consent::Model>,
    pub consent_required: bool,
    pub partners: Vec<crate::db::entities::portal_partner::Model>,
    /// Links that still work (not withdrawn, not expired).
    pub working_links: u64,
    /// When a link of the case was last opened.
    pub last_opened_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Portal activity no advocate has looked at yet, since when.
    pub needs_review_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// The portal of the case as staff see it (the caller has checked access).
pub async fn summary(
    db: &DatabaseConnection,
    case_row: &case::Model,
    consent_required: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<PortalSummary> {
    use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};

    use crate::db::entities::portal_link;
    let (specialist_id, _) = actions::current_specialist(db, case_row).await?;
    let working_links = portal_link::Entity::find()
        .filter(portal_link::Column::CaseId.eq(case_row.id))
        .filter(portal_link::Column::RevokedAt.is_null())
        .filter(portal_link::Column::ExpiresAt.gt(now))
        .count(db)
        .await?;
    let last_opened_at: Option<Option<chrono::DateTime<chrono::Utc>>> = portal_link::Entity::find()
        .select_only()
        .column(portal_link::Column::OpenedAt)
        .filter(portal_link::Column::CaseId.eq(case_row.id))
        .filter(portal_link::Column::OpenedAt.is_not_null())
        .order_by_desc(portal_link::Column::OpenedAt)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok(PortalSummary {
        consent: crate::cases::consent::in_force(db, case_row.id, case_row.round, specialist_id).await?,
        consent_required,
        partners: partners::current(db, case_row.id).await?,
        working_links,
        last_opened_at: last_opened_at.flatten(),
        needs_review_since: case_row.portal_activity_at,
    })
}

/// The portal of the case for staff who asked for it: checked against
/// their access and audited as a read of the case.
pub async fn summary_for(
    db: &DatabaseConnection,
    reads: &crate::audit::reads::ReadTrail,
    actor: &crate::actor::Actor,
    case_id: crate::ids::CaseId,
    consent_required: bool,
) -> AppResult<PortalSummary> {
    use crate::cases::store as case_store;
    case_store::check_access(db, actor, case_id.get(), case_store::VIEWED).await?;
    let row = case::Entity::find_by_id(case_id.get()).one(db).await?.ok_or(crate::error::AppError::NotFound)?;
    let found = summary(db, &row, consent_required, crate::db::now()).await?;
    reads
        .record(
            actor,
            case_store::VIEWED,
            crate::audit::Subject::case(case_id.get()),
            serde_json::json!({ "part": "portal" }),
        )
        .await?;
    Ok(found)
}

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

//! Erasure: a closed case keeps its pseudonymous reference, dates, stages,
//! enum values and figures (so reports stay true) and loses everything that
//! names or describes the patient — identity, contact details, free text,
//! the unsubscribe secret, the addresses and bodies of its emails, its
//! documents (rows and stored files), and its portal: links, care partners'
//! names and addresses, signers' names and the survey comment.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    prelude::Expr,
};
use serde_json::json;

use crate::{
    audit::{self, Subject},
    auth::Actor,
    cases::view::{self, CaseView},
    db::{
        self,
        entities::{
            case, case_contact, case_note, case_record, case_round, opinion, outbox_message, portal_consent,
            portal_partner, portal_survey, records_request, stage_change,
        },
    },
    documents::store::Documents,
    error::{AppError, AppResult},
    ids::CaseId,
    reminders::outbox,
};

/// Audit action of an erasure.
pub const ERASED: &str = "case.erased";

/// What an erasure did.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub case: CaseView,
    /// False when the case had already been erased (nothing was changed).
    pub erased_now: bool,
}

/// Erases the patient data of a closed case. Admins (and system actors)
/// only; an open case is refused with `case_open`. Erasing an erased case
/// changes nothing and answers the same, so retries and several instances
/// running retention are harmless.
pub async fn erase(
    db: &DatabaseConnection,
    documents: &Documents,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<Erasure> {
    let erased_now = erase_only(db, documents, actor, case_id).await?;
    Ok(Erasure { case: view::load(db, case_id.get(), db::now()).await?, erased_now })
}

/// [`erase`] without reading the case back. Returns whether this call
/// erased it (false: it was erased already).
pub async fn erase_only(
    db: &DatabaseConnection,
    documents: &Documents,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<bool> {
    let case_id = case_id.get();
    super::admins_only(db, actor, case_id, ERASED).await?;
    let txn = db::begin_write(db).await?;
    // Taking the row lock first makes a concurrent change or erasure wait for this one.
    let row = crate::cases::store::lock_case(&txn, case_id).await?;
    if row.erased_at.is_some() {
        // Nothing changes: the version bump is undone.
        txn.rollback().await?;
        return Ok(false);
    }
    let stage = row.stage;
    if !stage.is_final() {
        return Err(AppError::conflict(
            "case_open",
            format!(
                "the case is still open ({}); only a case with a decision or a withdrawal can be erased",
                stage.as_str()
            ),
        ));
    }
    let now = db::now();
    let mut counts = scrub(&txn, &row, now).await?;
    // The documents go with the patient data: their rows now, their files
    // once the erasure has committed.
    let files = crate::documents::store::erase_rows(&txn, case_id).await?;
    counts["documents"] = json!(files.len());
    audit::record(&txn, actor, ERASED, Subject::case(case_id), counts).await?;
    txn.commit().await?;
    crate::documents::store::remove_files(documents, files).await;
    Ok(true)
}

/// Blanks every identifying or free-text value of the case and its rows.
/// Returns the counts of rows touched, for the audit entry.
async fn scrub<C: ConnectionTrait>(
    conn: &C,
    row: &case::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<serde_json::Value> {
    let case_id = row.id;
    case::ActiveModel {
        id: Set(case_id),
        patient_name: Set(String::new()),
        patient_email: Set(String::new()),
        patient_phone: Set(None),
        summary: Set(String::new()),
        hold_note: Set(None),
        // An empty reason keeps the decision (which opinion, when) visible.
        decision_reason: Set(row.decision_reason.as_ref().map(|_| String::new())),
        medical_history: Set(String::new()),
        medications: Set(String::new()),
        patient_questions: Set(String::new()),
        nudge_token: Set(None),
        nudges_stopped_at: Set(row.nudges_stopped_at.or(Some(now))),
        erased_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(conn)
    .await?;
    // Only the reference stays searchable.
    crate::cases::search::index_case(conn, case_id, &crate::cases::search::case_terms("", "", None, &row.reference))
        .await?;

    let rounds = case_round::Entity::update_many()
        .col_expr(case_round::Column::ConsultationLocation, Expr::value(Option::<String>::None))
        .col_expr(case_round::Column::RiskNotes, Expr::value(Option::<String>::None))
        .col_expr(case_round::Column::OutcomeNotes, Expr::value(Option::<String>::None))
        .col_expr(case_round::Column::CostNotes, Expr::value(Option::<String>::None))
        .col_expr(case_round::Column::ComparisonSummary, Expr::value(Option::<String>::None))
        .filter(case_round::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    let opinions = opinion::Entity::update_many()
        .col_expr(opinion::Column::Clinician, Expr::value(""))
        .col_expr(opinion::Column::Diagnosis, Expr::value(""))
        .col_expr(opinion::Column::TreatmentPlan, Expr::value(""))
        .col_expr(opinion::Column::Notes, Expr::value(""))
        .filter(opinion::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    let records = case_record::Entity::update_many()
        .col_expr(case_record::Column::Note, Expr::value(""))
        .filter(case_record::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    let notes = case_note::Entity::update_many()
        .col_expr(case_note::Column::Body, Expr::value(""))
        .filter(case_note::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    let contacts = case_contact::Entity::update_many()
        .col_expr(case_contact::Column::Summary, Expr::value(""))
        .filter(case_contact::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    let history = stage_change::Entity::update_many()
        .col_expr(stage_change::Column::Note, Expr::value(Option::<String>::None))
        .filter(stage_change::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    // Emails not yet sent never will be: their recipient is gone.
    let cancelled = outbox_message::Entity::update_many()
        .col_expr(outbox_message::Column::Status, Expr::value(outbox::CANCELLED))
        .col_expr(outbox_message::Column::LeaseUntil, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None))
        .col_expr(outbox_message::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .filter(outbox_message::Column::CaseId.eq(case_id))
        .filter(outbox_message::Column::Status.is_in([outbox::QUEUED, outbox::FAILED]))
        .exec(conn)
        .await?
        .rows_affected;
    let emails = outbox_message::Entity::update_many()
        .col_expr(outbox_message::Column::RecipientEmail, Expr::value(""))
        .col_expr(outbox_message::Column::RecipientName, Expr::value(""))
        .col_expr(outbox_message::Column::BodyText, Expr::value(""))
        .col_expr(outbox_message::Column::BodyHtml, Expr::value(""))
        .col_expr(outbox_message::Column::Ics, Expr::value(Option::<String>::None))
        .col_expr(outbox_message::Column::UnsubscribeUrl, Expr::value(Option::<String>::None))
        .col_expr(outbox_message::Column::LastError, Expr::value(Option::<String>::None))
        .col_expr(outbox_message::Column::UpdatedAt, Expr::value(now))
        .filter(outbox_message::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    // The portal: links stop, care partners lose their names and addresses,
    // signatures their typed names and addresses, the survey its comment.
    crate::portal::links::withdraw_all(conn, case_id, now).await?;
    let partners = portal_partner::Entity::update_many()
        .col_expr(portal_partner::Column::Name, Expr::value(""))
        .col_expr(portal_partner::Column::Email, Expr::value(""))
        .col_expr(portal_partner::Column::RevokedAt, Expr::value(now))
        .filter(portal_partner::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    let consents = portal_consent::Entity::update_many()
        .col_expr(portal_consent::Column::SignerName, Expr::value(""))
        .col_expr(portal_consent::Column::Ip, Expr::value(Option::<String>::None))
        .col_expr(portal_consent::Column::DocumentId, Expr::value(Option::<i32>::None))
        .filter(portal_consent::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?
        .rows_affected;
    portal_survey::Entity::update_many()
        .col_expr(portal_survey::Column::Comment, Expr::value(""))
        .filter(portal_survey::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?;
    // Who insures the patient, under which member id, is theirs; the
    // pre-approval's outcome and dates stay for the figures.
    let insurance = crate::insurance::erase(conn, case_id).await?;
    // The provider's words on a request may describe the patient.
    records_request::Entity::update_many()
        .col_expr(records_request::Column::DeniedReason, Expr::value(Option::<String>::None))
        .col_expr(records_request::Column::ExtensionReason, Expr::value(Option::<String>::None))
        .filter(records_request::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?;
    Ok(json!({
        "rounds": rounds, "opinions": opinions, "records": records, "notes": notes, "contacts": contacts,
        "history": history,
        "emails": emails, "emails_cancelled": cancelled, "care_partners": partners, "consents": consents,
        "insurance": insurance,
    }))
}

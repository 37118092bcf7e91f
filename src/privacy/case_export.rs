//! Everything held about one case as one JSON document: what a patient's
//! access request needs. Read in one transaction together with its own
//! audit entry, so the document is consistent and its reading is recorded.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::json;

use crate::{
    audit::{self, Subject},
    auth::Actor,
    cases::{
        journal,
        values::{ConsultationMode, round_name},
        view::{self, CaseView, SpecialistView},
    },
    db::{
        self,
        entities::{audit_entry, case_contact, case_note, case_round, outbox_message, specialist},
    },
    error::AppResult,
    ids::CaseId,
};

/// Audit action of a case export.
pub const EXPORTED: &str = "case.exported";

/// Names this document's layout; bumped when a field changes meaning.
pub const FORMAT: &str = "secondlook-case-export";
pub const VERSION: u32 = 1;

/// Rows read per query when gathering a case's emails and audit trail.
const PAGE: u64 = 500;

#[derive(Debug, Serialize)]
pub struct CaseExport {
    pub format: &'static str,
    pub version: u32,
    pub exported_at: DateTime<Utc>,
    /// The case as staff see it: patient, details, records checklist,
    /// stage history, opinions, the current round's consultation and
    /// comparison, and the decision.
    pub case: CaseView,
    /// Every opinion round, with its specialist, consultation and comparison.
    pub rounds: Vec<RoundExport>,
    /// The case's notes, oldest first.
    pub notes: Vec<journal::NoteView>,
    /// The case's contact log, oldest first.
    pub contacts: Vec<journal::ContactView>,
    /// The case's documents, deleted ones included, each with where its
    /// content is fetched (`content`), since files do not fit in this text.
    pub documents: Vec<DocumentExport>,
    /// The patient portal: care partners (removed ones too), signed
    /// consents and the survey answer.
    pub portal: PortalExport,
    /// Requests for the case's records to the providers that hold them.
    pub records_requests: Vec<crate::records_requests::RequestView>,
    pub insurance: Option<crate::insurance::InsuranceView>,
    /// Emails queued or sent about the case.
    pub emails: Vec<EmailExport>,
    /// The case's audit trail, oldest first (including this export).
    pub audit: Vec<AuditExport>,
}

#[derive(Debug, Serialize)]
pub struct DocumentExport {
    #[serde(flatten)]
    pub document: crate::documents::store::DocumentView,
    /// The API path of the document's bytes.
    pub content: String,
}

#[derive(Debug, Serialize)]
pub struct PortalExport {
    /// Each link emailed: for whom (`partner_id`, none for the patient), when
    /// made, until when it worked, when withdrawn and last opened. Never the
    /// token's digest.
    pub links: Vec<LinkExport>,
    pub care_partners: Vec<crate::db::entities::portal_partner::Model>,
    pub consents: Vec<crate::db::entities::portal_consent::Model>,
    pub survey: Option<crate::db::entities::portal_survey::Model>,
}

#[derive(Debug, Serialize)]
pub struct LinkExport {
    pub id: i32,
    pub partner_id: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct RoundExport {
    pub round: String,
    pub specialist: Option<SpecialistView>,
    pub consultation_scheduled_at: Option<DateTime<Utc>>,
    pub consultation_mode: Option<ConsultationMode>,
    pub consultation_location: Option<String>,
    pub consultation_held_at: Option<DateTime<Utc>>,
    pub diagnosis_agrees: Option<bool>,
    pub treatment_agrees: Option<bool>,
    pub risk_notes: Option<String>,
    pub outcome_notes: Option<String>,
    pub cost_notes: Option<String>,
    pub comparison_summary: Option<String>,
    pub compared_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct EmailExport {
    pub kind: String,
    pub recipient_name: String,
    pub recipient_email: String,
    pub subject: String,
    pub body_text: String,
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct AuditExport {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i32>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

/// Exports one case. Admins only: an advocate is refused even for their
/// own case, since an access request is answered by the organisation, not
/// by the case worker.
pub async fn export(db: &sea_orm::DatabaseConnection, actor: &Actor, case_id: CaseId) -> AppResult<CaseExport> {
    let case_id = case_id.get();
    super::admins_only(db, actor, case_id, EXPORTED).await?;
    let now = db::now();
    let txn = db::begin_write(db).await?;
    audit::record(&txn, actor, EXPORTED, Subject::case(case_id), json!({ "format_version": VERSION })).await?;
    let case = view::load(&txn, case_id, now).await?;
    let rounds = rounds(&txn, case_id).await?;
    let (notes, contacts) = journal_of(&txn, case_id).await?;
    let documents = crate::documents::store::of_case(&txn, case_id, true)
        .await?
        .into_iter()
        .map(|document| DocumentExport { content: format!("/api/v1/documents/{}/content", document.id), document })
        .collect();
    let portal = portal_of(&txn, case_id).await?;
    let records_requests = crate::records_requests::all_of_case(&txn, case_id).await?;
    let insurance = crate::insurance::of_case(&txn, actor, case_id).await?;
    let emails = emails(&txn, case_id).await?;
    let audit = trail(&txn, case_id).await?;
    txn.commit().await?;
    Ok(CaseExport {
        format: FORMAT,
        version: VERSION,
        exported_at: now,
        case,
        rounds,
        notes,
        contacts,
        documents,
        portal,
        records_requests,
        insurance,
        emails,
        audit,
    })
}

async fn portal_of<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<PortalExport> {
    use crate::db::entities::{portal_consent, portal_link, portal_partner};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let links = portal_link::Entity::find()
        .filter(portal_link::Column::CaseId.eq(case_id))
        .order_by_asc(portal_link::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|l| LinkExport {
            id: l.id,
            partner_id: l.partner_id,
            created_at: l.created_at,
            expires_at: l.expires_at,
            revoked_at: l.revoked_at,
            opened_at: l.opened_at,
        })
        .collect();
    Ok(PortalExport {
        links,
        care_partners: portal_partner::Entity::find()
            .filter(portal_partner::Column::CaseId.eq(case_id))
            .order_by_asc(portal_partner::Column::Id)
            .all(conn)
            .await?,
        consents: portal_consent::Entity::find()
            .filter(portal_consent::Column::CaseId.eq(case_id))
            .order_by_asc(portal_consent::Column::Id)
            .all(conn)
            .await?,
        survey: crate::portal::survey::of_case(conn, case_id).await?,
    })
}

async fn rounds<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Vec<RoundExport>> {
    // A case has at most ten rounds.
    let rows = case_round::Entity::find()
        .filter(case_round::Column::CaseId.eq(case_id))
        .order_by_asc(case_round::Column::Round)
        .limit(PAGE)
        .all(conn)
        .await?;
    let ids: Vec<i32> = rows.iter().filter_map(|r| r.specialist_id).collect();
    let specialists = specialist::Entity::find().filter(specialist::Column::Id.is_in(ids)).all(conn).await?;
    Ok(rows
        .into_iter()
        .map(|r| RoundExport {
            round: round_name(r.round),
            specialist: r
                .specialist_id
                .and_then(|id| specialists.iter().find(|s| s.id == id))
                .cloned()
                .map(SpecialistView::from),
            consultation_scheduled_at: r.consultation_scheduled_at,
            consultation_mode: r.consultation_mode,
            consultation_location: r.consultation_location,
            consultation_held_at: r.consultation_held_at,
            diagnosis_agrees: r.diagnosis_agrees,
            treatment_agrees: r.treatment_agrees,
            risk_notes: r.risk_notes,
            outcome_notes: r.outcome_notes,
            cost_notes: r.cost_notes,
            comparison_summary: r.comparison_summary,
            compared_at: r.compared_at,
        })
        .collect())
}

async fn journal_of<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
) -> AppResult<(Vec<journal::NoteView>, Vec<journal::ContactView>)> {
    let mut notes = Vec::new();
    let mut after = 0;
    loop {
        let page = case_note::Entity::find()
            .filter(case_note::Column::CaseId.eq(case_id))
            .filter(case_note::Column::Id.gt(after))
            .order_by_asc(case_note::Column::Id)
            .limit(PAGE)
            .all(conn)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        notes.extend(page);
    }
    let mut contacts = Vec::new();
    let mut after = 0;
    loop {
        let page = case_contact::Entity::find()
            .filter(case_contact::Column::CaseId.eq(case_id))
            .filter(case_contact::Column::Id.gt(after))
            .order_by_asc(case_contact::Column::Id)
            .limit(PAGE)
            .all(conn)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        contacts.extend(page);
    }
    let ids = notes.iter().map(|n| n.author_id).chain(contacts.iter().flat_map(|c| [c.author_id, c.done_by]));
    let authors = journal::authors(conn, ids).await?;
    Ok((
        notes.into_iter().map(|n| journal::note_view(n, &authors)).collect(),
        contacts.into_iter().map(|c| journal::contact_view(c, &authors)).collect(),
    ))
}

async fn emails<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Vec<EmailExport>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = outbox_message::Entity::find()
            .filter(outbox_message::Column::CaseId.eq(case_id))
            .filter(outbox_message::Column::Id.gt(after))
            .order_by_asc(outbox_message::Column::Id)
            .limit(PAGE)
            .all(conn)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        out.extend(page.into_iter().map(|m| EmailExport {
            kind: m.kind,
            recipient_name: m.recipient_name,
            recipient_email: m.recipient_email,
            subject: m.subject,
            body_text: m.body_text,
            status: m.status,
            attempts: m.attempts,
            created_at: m.created_at,
            next_attempt_at: m.next_attempt_at,
            sent_at: m.sent_at,
        }));
    }
    Ok(out)
}

async fn trail<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Vec<AuditExport>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        // Uses the (case_id, id) index.
        let page = audit_entry::Entity::find()
            .filter(audit_entry::Column::CaseId.eq(case_id))
            .filter(audit_entry::Column::Id.gt(after))
            .order_by_asc(audit_entry::Column::Id)
            .limit(PAGE)
            .all(conn)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        out.extend(page.into_iter().map(|e| AuditExport {
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::String(e.detail)),
            at: e.at,
            actor: e.actor,
            action: e.action,
            entity: e.entity,
            entity_id: e.entity_id,
            ip: e.ip,
        }));
    }
    Ok(out)
}

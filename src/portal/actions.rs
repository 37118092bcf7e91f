//! What a portal visitor does, each a case write by an actor scoped to the
//! visitor's case, with its audit entry; and the consent on paper that
//! staff record for patients who do not use the portal.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    Visitor, questions,
    survey::{self, Answers},
};
use crate::{
    actor::Actor,
    cases::{
        Stage,
        consent::{self, Method, Signature},
        store::{self as case_store, CasePatch, CaseRules},
    },
    db::entities::{case, case_record, case_round, specialist},
    documents::store::{self as document_store, DocumentView, Documents, NewDocument, StoredFile},
    error::{AppError, AppResult, FieldErrors},
    ids::CaseId,
    validate::{check_text, limits},
    vocabulary::{DocumentKind, RecordKind, RecordStatus},
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

/// A closed case takes nothing more from the portal.
fn ensure_open(row: &case::Model) -> AppResult<()> {
    if row.stage.is_final() {
        return Err(AppError::conflict(
            "case_closed",
            "this second opinion is complete, so nothing more can be added here; write to your advocate instead",
        ));
    }
    Ok(())
}

fn refuse(what: &str) -> AppError {
    AppError::Forbidden(format!("the patient has not given you the right to {what}"))
}

/// A file sent for a checklist item (or, with none, as something else):
/// marked as sent by the visitor, and the item marked received.
pub async fn upload(
    db: &DatabaseConnection,
    documents: &Documents,
    visitor: &Visitor,
    actor: &Actor,
    record_kind: Option<RecordKind>,
    file: StoredFile,
) -> AppResult<DocumentView> {
    if !visitor.may_upload() {
        file.discard(documents).await;
        return Err(refuse("send records"));
    }
    let row = match case::Entity::find_by_id(visitor.case_id).one(db).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            file.discard(documents).await;
            return Err(AppError::NotFound);
        }
        Err(err) => {
            file.discard(documents).await;
            return Err(err.into());
        }
    };
    if let Err(closed) = ensure_open(&row) {
        file.discard(documents).await;
        return Err(closed);
    }
    // A file marks its item received only while the item is still asked
    // for: one the advocate set aside as not needed stays so.
    let still_requested = match record_kind {
        Some(kind) => case_record::Entity::find()
            .filter(case_record::Column::CaseId.eq(row.id))
            .filter(case_record::Column::Kind.eq(kind))
            .one(db)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.status == RecordStatus::Requested),
        None => false,
    };
    let new = NewDocument {
        kind: record_kind.map_or(DocumentKind::Other, DocumentKind::of_record),
        record_kind,
        round: None,
        mark_received: still_requested,
    };
    document_store::add(db, documents, actor, CaseId(visitor.case_id), new, file).await
}

/// Makes `edit` to the visitor's `part` of the case's questions (`shown`:
/// the question edited, as the page showed it). The questions for the
/// consultation stay as they were once it is held; follow-up questions
/// come after it; a closed case takes neither.
pub async fn edit_questions(
    db: &DatabaseConnection,
    rules: &CaseRules,
    visitor: &Visitor,
    actor: &Actor,
    part: questions::Part,
    edit: questions::Edit,
    shown: Option<&str>,
) -> AppResult<()> {
    if !visitor.may_edit_questions() {
        return Err(refuse("change the questions"));
    }
    let row = case::Entity::find_by_id(visitor.case_id).one(db).await?.ok_or(AppError::NotFound)?;
    ensure_open(&row)?;
    let held = matches!(row.stage, Stage::ConsultationHeld | Stage::OpinionsCompared);
    match part {
        questions::Part::Consultation if held => {
            return Err(AppError::conflict(
                "consultation_held",
                "the consultation has taken place; add what is still open as a follow-up question",
            ));
        }
        questions::Part::FollowUp if !held => {
            return Err(AppError::conflict("not_yet", "follow-up questions come after the consultation"));
        }
        _ => {}
    }
    let text = questions::edit(&row.patient_questions, part, edit, shown)?;
    let patch = CasePatch { patient_questions: Some(text), ..CasePatch::default() };
    case_store::update(db, rules, actor, CaseId(visitor.case_id), patch).await?;
    Ok(())
}

/// What the patient is asked to sign for the case's current round.
pub struct ConsentToSign {
    /// The consent in force: signed for this round and its current specialist.
    pub signed: Option<crate::db::entities::portal_consent::Model>,
    /// A consent of this round names a specialist no longer chosen.
    pub outdated: bool,
    pub text: String,
}

/// The consent of the case's current round, and the text to sign for it.
pub async fn consent_to_sign(db: &DatabaseConnection, case_id: i32) -> AppResult<ConsentToSign> {
    let row = case::Entity::find_by_id(case_id).one(db).await?.ok_or(AppError::NotFound)?;
    let (specialist_id, specialist_name) = current_specialist(db, &row).await?;
    let newest = consent::for_round(db, case_id, row.round).await?;
    let outdated = newest.as_ref().is_some_and(|c| !consent::covers(c, specialist_id));
    Ok(ConsentToSign {
        signed: newest.filter(|c| consent::covers(c, specialist_id)),
        outdated,
        text: consent::text_for(specialist_name.as_deref()),
    })
}

pub(crate) async fn current_specialist(
    db: &impl sea_orm::ConnectionTrait,
    row: &case::Model,
) -> AppResult<(Option<i32>, Option<String>)> {
    let specialist_id = case_round::Entity::find()
        .filter(case_round::Column::CaseId.eq(row.id))
        .filter(case_round::Column::Round.eq(row.round))
        .one(db)
        .await?
        .and_then(|r| r.specialist_id);
    let name = match specialist_id {
        Some(id) => specialist::Entity::find_by_id(id).one(db).await?.map(|s| s.name),
        None => None,
    };
    Ok((specialist_id, name))
}

/// The patient signs the authorization for the current round: the signed
/// text with the signature is kept as a consent document on the case.
pub async fn sign_consent(
    db: &DatabaseConnection,
    documents: &Documents,
    visitor: &Visitor,
    actor: &Actor,
    typed_name: &str,
    agreed: bool,
    shown_digest: &str,
) -> AppResult<()> {
    if !visitor.may_act_for_patient() {
        return Err(AppError::Forbidden("only the patient can sign the authorization".into()));
    }
    let typed_name = typed_name.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut errors = FieldErrors::new();
    check_text(&mut errors, "full_name", &typed_name, limits::NAME, true);
    if !agreed {
        errors.add("agree", "tick the box to say you agree");
    }
    errors.into_result()?;
    let row = case::Entity::find_by_id(visitor.case_id).one(db).await?.ok_or(AppError::NotFound)?;
    if row.stage.is_final() {
        return Err(AppError::conflict(
            "case_closed",
            "this second opinion is complete; there is nothing to authorize",
        ));
    }
    let (specialist_id, specialist_name) = current_specialist(db, &row).await?;
    let text = consent::text_for(specialist_name.as_deref());
    // The page may have shown an older text (another specialist chosen since).
    if consent::text_digest(&text) != shown_digest {
        return Err(AppError::conflict(
            "consent_text_changed",
            "the authorization changed since the page was opened (a specialist was chosen); read it again and sign",
        ));
    }
    let now = crate::db::now();
    let record = signed_record(&text, &typed_name, now, actor.ip.as_deref());
    let name = format!("Authorization to share records, signed {}.txt", now.format("%Y-%m-%d"));
    let body = futures_util::stream::iter([Ok::<Bytes, AppError>(Bytes::from(record))]);
    let file = document_store::store_file(documents, row.id, &name, body).await?;
    let signed = async {
        let w = case_store::begin_case_write(db, actor, row.id, "case.consent_signed").await?;
        let new = NewDocument { kind: DocumentKind::Consent, record_kind: None, round: Some(w.case.round), mark_received: false };
        let (document, _) = document_store::insert_row(&w, actor, &new, &file).await?;
        let round = w.case.round;
        consent::record(
            &w.txn,
            Signature {
                case_id: row.id,
                round,
                specialist_id,
                signer_name: typed_name.clone(),
                signed_by: actor.label.clone(),
                method: Method::Portal,
                signed_at: w.now,
                ip: actor.ip.clone(),
                text: text.clone(),
                document_id: Some(document.id),
            },
        )
        .await?;
        let detail = json!({ "round": round, "method": "portal", "text_version": consent::TEXT_VERSION, "document_id": document.id });
        w.commit_with(actor, Default::default(), "case.consent_signed", detail).await
    }
    .await;
    if signed.is_err() {
        file.discard(documents).await;
    }
    signed
}

/// The signed record kept as the consent document.
fn signed_record(text: &str, typed_name: &str, at: DateTime<Utc>, ip: Option<&str>) -> String {
    format!(
        "AUTHORIZATION TO SHARE MEDICAL RECORDS FOR A SECOND OPINION\n\n{text}\n\n\
         Signed electronically in the SecondLook patient portal by typing a full name and ticking \"I have read \
         this authorization and I agree to it\".\n\n\
         Full name typed: {typed_name}\nSigned at: {} UTC\nFrom address: {}\nText version: {}\nText SHA-256: {}\n",
        at.format("%Y-%m-%d %H:%M:%S"),
        ip.unwrap_or("unknown"),
        consent::TEXT_VERSION,
        consent::text_digest(text),
    )
}

/// Staff record that the patient signed the authorization on paper (the
/// scanned form can be uploaded as a consent document).
pub async fn record_paper_consent(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    signer_name: &str,
) -> AppResult<()> {
    let signer_name = signer_name.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut errors = FieldErrors::new();
    check_text(&mut errors, "signer_name", &signer_name, limits::NAME, true);
    errors.into_result()?;
    let w = case_store::begin_case_write(db, actor, case_id.get(), "case.consent_signed").await?;
    if w.case.stage.is_final() {
        return Err(AppError::conflict("case_closed", "the case is closed"));
    }
    let (specialist_id, specialist_name) = current_specialist(&w.txn, &w.case).await?;
    let round = w.case.round;
    consent::record(
        &w.txn,
        Signature {
            case_id: w.case.id,
            round,
            specialist_id,
            signer_name,
            signed_by: actor.label.clone(),
            method: Method::Paper,
            signed_at: w.now,
            ip: None,
            text: consent::text_for(specialist_name.as_deref()),
            document_id: None,
        },
    )
    .await?;
    let detail = json!({ "round": round, "method": "paper", "text_version": consent::TEXT_VERSION });
    w.commit_with(actor, Default::default(), "case.consent_signed", detail).await
}

/// The patient answers the survey of a decided case.
pub async fn answer_survey(
    db: &DatabaseConnection,
    visitor: &Visitor,
    actor: &Actor,
    answers: &Answers,
) -> AppResult<()> {
    if !visitor.may_act_for_patient() {
        return Err(AppError::Forbidden("only the patient answers the survey".into()));
    }
    answers.check()?;
    let w = case_store::begin_case_write(db, actor, visitor.case_id, "case.survey_answered").await?;
    if w.case.stage != Stage::DecisionMade {
        return Err(AppError::conflict("not_decided", "the survey opens once the decision is made"));
    }
    survey::record(&w.txn, w.case.id, answers, &actor.label, w.now).await?;
    let detail = json!({ "satisfaction": answers.satisfaction, "recommend": answers.recommend });
    w.commit_with(actor, Default::default(), "case.survey_answered", detail).await
}

/// Staff withdraw every portal link of the case: whoever holds one is
/// signed out of the portal at their next page. Returns how many worked.
pub async fn withdraw_links(db: &DatabaseConnection, actor: &Actor, case_id: CaseId) -> AppResult<u64> {
    case_store::check_access(db, actor, case_id.get(), "case.portal_links_withdrawn").await?;
    let txn = crate::db::begin_write(db).await?;
    let withdrawn = super::links::withdraw_all(&txn, case_id.get(), crate::db::now()).await?;
    crate::audit::record(
        &txn,
        actor,
        "case.portal_links_withdrawn",
        crate::audit::Subject::case(case_id.get()),
        json!({ "links": withdrawn }),
    )
    .await?;
    txn.commit().await?;
    Ok(withdrawn)
}

/// Removes a care partner: by the patient in the portal, or by staff.
pub async fn remove_partner(db: &DatabaseConnection, actor: &Actor, case_id: CaseId, partner_id: i32) -> AppResult<()> {
    let w = case_store::begin_case_write(db, actor, case_id.get(), "case.partner_removed").await?;
    let removed = super::partners::remove(&w.txn, w.case.id, partner_id, w.now).await?;
    w.commit_with(actor, Default::default(), "case.partner_removed", json!({ "partner_id": removed.id })).await
}

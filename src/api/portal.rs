//! `/api/v1/cases/{id}/portal…`: the patient portal of a case as staff
//! manage it — email the patient a link, withdraw every link, see consent,
//! links and care partners, invite and remove care partners, and record a
//! consent signed on paper. Under the case's access rules.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    error::ApiResult,
    extract::{ApiJson, Caller, Id, PartnerIdParam},
};
use crate::{
    ids::CaseId,
    portal::{self, actions, partners::Invitation},
    reminders::portal_mail,
    state::AppState,
};

/// Queues an email with a fresh link to the patient's page: 202, since it
/// goes out with the outbox.
pub async fn send_link(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    portal_mail::send_link(&state.db, &state.settings, &actor, id.get(), None).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": true, "to": "patient" }))))
}

pub async fn withdraw_links(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<Value>> {
    let withdrawn = actions::withdraw_links(&state.db, &actor, id).await?;
    Ok(Json(json!({ "withdrawn": withdrawn })))
}

pub async fn summary(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<Value>> {
    let summary =
        portal::summary_for(&state.db, &state.reads, &actor, id, state.settings.portal.consent_required).await?;
    Ok(Json(json!({
        "consent": summary.consent.map(|c| json!({
            "round": c.round, "signer_name": c.signer_name, "method": c.method, "signed_at": c.signed_at,
            "signed_by": c.signed_by, "text_version": c.text_version, "text_sha256": c.text_sha256,
            "document_id": c.document_id,
        })),
        "consent_required": summary.consent_required,
        "working_links": summary.working_links,
        "last_opened_at": summary.last_opened_at,
        "needs_review_since": summary.needs_review_since,
        "care_partners": summary.partners.iter().map(|p| json!({
            "id": p.id, "name": p.name, "email": p.email, "may_upload": p.may_upload,
            "may_edit_questions": p.may_edit_questions, "gets_reminders": p.gets_reminders,
            "invited_at": p.invited_at, "invited_by": p.invited_by,
        })).collect::<Vec<_>>(),
    })))
}

pub async fn invite_partner(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<Invitation>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let partner = portal_mail::invite(&state.db, &state.settings, &actor, id.get(), &body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": partner.id, "name": partner.name, "email": partner.email }))))
}

pub async fn remove_partner(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    PartnerIdParam(partner_id): PartnerIdParam,
) -> ApiResult<StatusCode> {
    actions::remove_partner(&state.db, &actor, id, partner_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperConsent {
    pub signer_name: String,
}

pub async fn paper_consent(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<PaperConsent>,
) -> ApiResult<StatusCode> {
    actions::record_paper_consent(&state.db, &actor, id, &body.signer_name).await?;
    Ok(StatusCode::CREATED)
}

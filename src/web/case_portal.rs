//! The case page's "Patient portal" section: whether the patient has
//! signed consent (and recording a paper one), care partners, emailing the
//! patient a link and withdrawing every link; and the mark that the
//! patient did something no advocate has looked at yet.

use axum::{extract::State, response::Response};

use super::{
    FormFields, PathId, Staff,
    case_pages::{finish, finish_with},
    error::PageResult,
};
use crate::{
    db::entities::case,
    error::AppError,
    ids::CaseId,
    portal::{self, actions, partners},
    reminders::portal_mail,
    state::AppState,
};

/// A care partner invitation as the staff and portal forms send it.
pub(super) fn invitation_from(fields: &FormFields) -> partners::Invitation {
    partners::Invitation {
        name: fields.text("name"),
        email: fields.text("email"),
        may_upload: fields.checked("may_upload"),
        may_edit_questions: fields.checked("may_edit_questions"),
        gets_reminders: fields.checked("gets_reminders"),
    }
}

/// The portal as the case page shows it.
pub struct PortalPanel {
    pub consent: Option<String>,
    pub consent_required: bool,
    pub partners: Vec<(i32, String, String, String)>,
    pub links: String,
    /// The patient's activity the advocate is seeing for the first time.
    pub new_activity: Option<String>,
}

/// Reads the panel and, when `seen`, marks the case's portal activity as
/// looked at (the page is what an advocate opens to look).
/// `row` is the case as the page read it.
pub async fn panel(state: &AppState, clock: &super::Clock, row: &case::Model, seen: bool) -> PageResult<PortalPanel> {
    let summary = portal::summary(&state.db, row, state.settings.portal.consent_required, clock.now).await?;
    if seen && summary.needs_review_since.is_some() {
        portal::activity_seen(&state.db, row.id).await?;
    }
    let consent = summary.consent.as_ref().map(|c| {
        let how = if c.method == "paper" {
            format!("on paper (recorded by {})", c.signed_by)
        } else {
            "in the portal".to_string()
        };
        format!("Signed {how} by {} on {} (text version {}).", c.signer_name, clock.at(&c.signed_at), c.text_version)
    });
    let partners = summary
        .partners
        .iter()
        .map(|p| (p.id, p.name.clone(), p.email.clone(), format!("may {}", partners::rights(p).join(", "))))
        .collect();
    let links = match (summary.working_links, summary.last_opened_at) {
        (0, None) => "No working link; every email to the patient brings a fresh one.".to_string(),
        (n, None) => format!("{n} working link{}, not opened yet.", if n == 1 { "" } else { "s" }),
        (n, Some(at)) => format!("{n} working link{}; last opened {}.", if n == 1 { "" } else { "s" }, clock.at(&at)),
    };
    Ok(PortalPanel {
        consent,
        consent_required: summary.consent_required,
        partners,
        links,
        new_activity: summary
            .needs_review_since
            .map(|at| format!("New from the patient since {}: see the activity below.", clock.at(&at))),
    })
}

pub async fn send_link(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let sent = portal_mail::send_link(&state.db, &state.settings, &staff.actor, id.get(), None).await;
    finish_with(&state, &staff, id, "portal", &fields, sent, |email| {
        format!("A link to the patient's page is on its way to {email}.")
    })
    .await
}

pub async fn withdraw_links(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let withdrawn = actions::withdraw_links(&state.db, &staff.actor, id).await;
    finish_with(&state, &staff, id, "portal", &fields, withdrawn, |n| {
        format!("{n} portal link{} withdrawn; anyone using one is signed out at once.", if *n == 1 { "" } else { "s" })
    })
    .await
}

pub async fn paper_consent(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let recorded = actions::record_paper_consent(&state.db, &staff.actor, id, &fields.text("signer_name")).await;
    finish(&state, &staff, id, "portal", &fields, recorded, "Paper consent recorded.").await
}

pub async fn invite_partner(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let invitation = invitation_from(&fields);
    let invited = portal_mail::invite(&state.db, &state.settings, &staff.actor, id.get(), &invitation).await;
    finish_with(&state, &staff, id, "portal", &fields, invited, |p| {
        format!("{} is invited; their link is on its way to {}.", p.name, p.email)
    })
    .await
}

pub async fn remove_partner(
    State(state): State<AppState>,
    staff: Staff,
    parts: axum::http::request::Parts,
    fields: FormFields,
) -> PageResult<Response> {
    let mut parts = parts;
    let id = crate::http::path_id(&mut parts, "id").await.ok_or(AppError::NotFound)?;
    let partner_id = crate::http::path_id(&mut parts, "partner_id").await.ok_or(AppError::NotFound)?;
    let removed = actions::remove_partner(&state.db, &staff.actor, CaseId(id), partner_id).await;
    finish(&state, &staff, CaseId(id), "portal", &fields, removed, "Care partner removed; their link no longer works.")
        .await
}

//! The patient portal's pages: `/p/{token}` opens a portal session from a
//! personal link (or offers a new link when it has expired), and `/portal…`
//! is the patient's or care partner's page for their one case. The portal
//! has a session cookie of its own; staff pages and the API never accept
//! it, and every portal request checks again that its link still stands.

use std::collections::HashMap;

use askama::Template;
use axum::{
    Router,
    extract::{FromRequestParts, Multipart, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tower_sessions::{Expiry, Session, SessionManagerLayer, cookie::SameSite};

use super::{FormFields, error::PageError, render};
use crate::{
    actor::Actor,
    auth::{
        sessions::DbSessionStore,
        throttle::{self, Verdict},
    },
    cases::{Stage, consent, view},
    db::entities::{case, document, portal_consent, portal_partner, user},
    error::{AppError, AppResult},
    http::{ClientIp, path_param, receive_upload},
    ids::CaseId,
    portal::{
        Visitor, actions, links, partners,
        questions::{self, Edit, Part},
        survey,
    },
    reminders::portal_mail,
    state::AppState,
    vocabulary::{ConsultationMode, RecordStatus},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

pub const PORTAL_COOKIE: &str = "secondlook_portal";
pub(crate) const LINK_KEY: &str = "portal_link_id";
const SINCE_KEY: &str = "portal_since";
const FLASH_KEY: &str = "portal_flash";
/// A portal session ends this long after its link was opened, however busy.
const LONGEST_SESSION_HOURS: i64 = 12;

pub fn router(state: &AppState) -> Router<AppState> {
    let portal = &state.settings.portal;
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone(), portal.session_idle_timeout))
        .with_name(PORTAL_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.settings.web.secure_cookies || state.settings.public_url().starts_with("https://"))
        .with_expiry(Expiry::OnSessionEnd);
    let routes = Router::new()
        .route("/p/{token}", get(open_link))
        .route("/p/{token}/renew", post(renew_link))
        .route("/portal", get(home))
        .route(
            "/portal/documents",
            post(upload)
                .layer(axum::extract::DefaultBodyLimit::max(crate::http::upload_limit(&state.settings.documents))),
        )
        .route("/portal/questions", post(edit_questions))
        .route("/portal/consent", post(sign_consent))
        .route("/portal/partners", post(invite_partner))
        .route("/portal/partners/{partner_id}/remove", post(remove_partner))
        .route("/portal/survey", post(answer_survey))
        .route("/portal/consultation.ics", get(calendar))
        .route("/portal/sign-out", post(sign_out))
        .layer(axum::middleware::from_fn_with_state(state.clone(), keep_typed_words))
        .layer(axum::middleware::from_fn(super::keep_session_alive))
        .layer(sessions);
    super::protected(routes, state)
}

/// A signed-in portal visitor.
pub struct PortalVisit {
    pub visitor: Visitor,
    pub actor: Actor,
    pub session: Session,
}

impl FromRequestParts<AppState> for PortalVisit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session =
            Session::from_request_parts(parts, state).await.map_err(|(status, message)| ended_page(status, message))?;
        let ip = ClientIp::from_request_parts(parts, state).await.map(|ClientIp(ip)| ip).unwrap_or(None);
        let link_id = session.get::<i32>(LINK_KEY).await.ok().flatten();
        let since = session.get::<i64>(SINCE_KEY).await.ok().flatten();
        let fresh = since.is_some_and(|at| Utc::now().timestamp() - at < LONGEST_SESSION_HOURS * 3600);
        let visitor = match (link_id, fresh) {
            (Some(id), true) => {
                links::visitor(&state.db, id, crate::db::now()).await.map_err(|e| PageError::App(e).into_response())?
            }
            _ => None,
        };
        let Some(visitor) = visitor else {
            let _ = session.flush().await;
            return Err(ended_page(
                StatusCode::UNAUTHORIZED,
                "Your page is closed. Open the link in your most recent email from SecondLook again; if it has \
                 expired, that page lets you ask for a new one.",
            ));
        };
        let actor = visitor.actor(ip);
        Ok(PortalVisit { visitor, actor, session })
    }
}

/// A form sent after the portal page closed (idle too long, or its link
/// withdrawn) is not saved; the page that says so shows what it held —
/// a question, a comment, a name — so the visitor can copy it and add it
/// again once back.
async fn keep_typed_words(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (bytes, response) = match super::run_keeping_form(state.settings.server.max_body_bytes, request, next).await {
        Ok(kept) => kept,
        Err(response) => return response,
    };
    if response.status() != StatusCode::UNAUTHORIZED {
        return response;
    }
    let typed: Vec<(String, String)> = form_urlencoded::parse(&bytes)
        .into_owned()
        .filter_map(|(name, value)| {
            let label = match name.as_str() {
                "question" => "Your question",
                "full_name" => "Your full name",
                "comment" => "Your comment",
                "name" => "Their name",
                "email" => "Their email address",
                _ => return None,
            };
            (!value.trim().is_empty()).then(|| (label.to_string(), value))
        })
        .collect();
    let page = LinkPage {
        state: LinkState::Ended,
        token: String::new(),
        message: "Your page closed before this could be saved, so it was not. Open the link in your most recent \
                  email from SecondLook again (or ask for a new one there) and send it once more."
            .to_string(),
        typed,
    };
    match render(&page) {
        Ok(html) => (StatusCode::UNAUTHORIZED, html).into_response(),
        Err(err) => err.into_response(),
    }
}

fn ended_page(status: StatusCode, message: &str) -> Response {
    let page =
        LinkPage { state: LinkState::Ended, token: String::new(), message: message.to_string(), typed: Vec::new() };
    match render(&page) {
        Ok(html) => (status, html).into_response(),
        Err(err) => err.into_response(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Expired,
    Withdrawn,
    Unknown,
    Asked,
    Ended,
}

#[derive(Template)]
#[template(path = "portal_link.html")]
struct LinkPage {
    state: LinkState,
    token: String,
    message: String,
    /// What a form sent after the page closed held, shown so it is not lost.
    typed: Vec<(String, String)>,
}

fn token_of(raw: Option<String>) -> String {
    raw.filter(|t| crate::secrets::is_link_token(t)).unwrap_or_default()
}

async fn open_link(State(state): State<AppState>, session: Session, parts: Parts) -> Result<Response, PageError> {
    let mut parts = parts;
    let token = token_of(path_param(&mut parts, "token").await);
    let opened = links::open(&state.db, &token, crate::db::now()).await?;
    let page_state = match opened {
        links::Opened::Open(visitor) => {
            // A new session id for each link opened: one held before names nothing.
            session.cycle_id().await.map_err(|e| AppError::broken("portal session", e))?;
            session.insert(LINK_KEY, visitor.link_id).await.map_err(|e| AppError::broken("portal session", e))?;
            session
                .insert(SINCE_KEY, Utc::now().timestamp())
                .await
                .map_err(|e| AppError::broken("portal session", e))?;
            return Ok(Redirect::to("/portal").into_response());
        }
        links::Opened::Expired(_) => LinkState::Expired,
        links::Opened::Withdrawn(_) => LinkState::Withdrawn,
        links::Opened::Unknown => LinkState::Unknown,
    };
    let status = if page_state == LinkState::Unknown { StatusCode::NOT_FOUND } else { StatusCode::GONE };
    Ok((status, render(&LinkPage { state: page_state, token, message: String::new(), typed: Vec::new() })?)
        .into_response())
}

/// An expired (or withdrawn) link asks for a new one. Whatever was typed,
/// the answer is the same. Every try counts against the link and the
/// client's address before anything is compared (so guesses are limited
/// and take the same path); a link goes only to the address on the case,
/// when it matches what was typed, a few times an hour at most.
async fn renew_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    parts: Parts,
    form: FormFields,
) -> Result<Response, PageError> {
    let mut parts = parts;
    let token = token_of(path_param(&mut parts, "token").await);
    let typed = form.text("email").trim().to_lowercase();
    if let links::Opened::Expired(link) | links::Opened::Withdrawn(link) =
        links::open(&state.db, &token, crate::db::now()).await?
        && may_try(&state, link.id, ip.as_deref()).await?
    {
        let on_file = recipient_email(&state, &link).await?;
        if on_file.is_some_and(|email| email.to_lowercase() == typed)
            && within(&state, &case_key(link.case_id), state.settings.portal.new_links_per_hour).await?
        {
            let actor = Actor { ip: ip.clone(), ..Actor::system("portal-new-link") };
            portal_mail::send_link(&state.db, &state.settings, &actor, link.case_id, link.partner_id).await?;
        }
    }
    let message = "If the address you typed is the one your advocate has for you, a new link is on its way to it. \
                   It can take a few minutes to arrive."
        .to_string();
    Ok(render(&LinkPage { state: LinkState::Asked, token: String::new(), message, typed: Vec::new() })?.into_response())
}

/// Tries of one old link, and of one client address, per hour.
const TRIES_PER_LINK: i32 = 5;
const TRIES_PER_ADDRESS: i32 = 20;

fn case_key(case_id: i32) -> String {
    format!("portal-link-case:{case_id}")
}

/// Counts a try of the old link `link_id` from `ip`; false once either has
/// had its hour's worth.
async fn may_try(state: &AppState, link_id: i32, ip: Option<&str>) -> AppResult<bool> {
    let hour = chrono::Duration::hours(1);
    let per_link = throttle::Policy { slow_down_after: i32::MAX, lock_after: TRIES_PER_LINK, window: hour };
    let per_address = throttle::Policy { slow_down_after: i32::MAX, lock_after: TRIES_PER_ADDRESS, window: hour };
    let link_ok = matches!(
        throttle::claim_attempt(&state.db, &format!("portal-link-try:{link_id}"), &per_link).await?.0,
        Verdict::Allow { .. }
    );
    let address_ok = match ip {
        Some(ip) => matches!(
            throttle::claim_attempt(&state.db, &format!("portal-link-{}", throttle::address_key(ip)), &per_address)
                .await?
                .0,
            Verdict::Allow { .. }
        ),
        None => true,
    };
    Ok(link_ok && address_ok)
}

/// Counts one more under `key`; false once it had `most` this hour.
async fn within(state: &AppState, key: &str, most: u32) -> AppResult<bool> {
    let most = i32::try_from(most).unwrap_or(i32::MAX).max(1);
    let policy = throttle::Policy { slow_down_after: i32::MAX, lock_after: most, window: chrono::Duration::hours(1) };
    Ok(matches!(throttle::claim_attempt(&state.db, key, &policy).await?.0, Verdict::Allow { .. }))
}

async fn recipient_email(
    state: &AppState,
    link: &crate::db::entities::portal_link::Model,
) -> AppResult<Option<String>> {
    Ok(match link.partner_id {
        None => case::Entity::find_by_id(link.case_id)
            .one(&state.db)
            .await?
            .filter(|c| c.erased_at.is_none())
            .map(|c| c.patient_email),
        Some(id) => portal_partner::Entity::find_by_id(id)
            .one(&state.db)
            .await?
            .filter(|p| p.revoked_at.is_none())
            .map(|p| p.email),
    })
}

/// One record on the patient's checklist.
struct RecordLine {
    kind: String,
    label: String,
    received: bool,
}

struct PartnerLine {
    id: i32,
    name: String,
    email: String,
    rights: String,
}

struct SentFile {
    name: String,
    when: String,
    by: String,
}

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage {
    first_name: String,
    viewer: String,
    is_patient: bool,
    may_upload: bool,
    may_edit_questions: bool,
    flash: Option<String>,
    problem: Option<(String, String)>,
    kept: HashMap<String, String>,
    steps: Vec<(String, &'static str)>,
    closed: Option<String>,
    next_step: String,
    held: Option<String>,
    advocate: Option<(String, String)>,
    records: Vec<RecordLine>,
    sent: Vec<SentFile>,
    upload_limit: String,
    consultation: Option<(String, String)>,
    consultation_held: bool,
    questions: Vec<String>,
    follow_ups: Vec<String>,
    consent_required: bool,
    consent: Option<String>,
    consent_text: String,
    consent_digest: String,
    /// What was signed named a specialist who is no longer the chosen one.
    consent_outdated: bool,
    may_sign: bool,
    partners: Vec<PartnerLine>,
    survey_open: bool,
    survey_done: bool,
}

impl PortalPage {
    fn kept(&self, name: &str) -> &str {
        self.kept.get(name).map(String::as_str).unwrap_or("")
    }

    /// What was typed into question `at` of `section` when a change of it
    /// was refused, else the question as it stands.
    fn kept_or<'a>(&'a self, section: &str, at: &usize, question: &'a str) -> &'a str {
        self.kept.get(&format!("{section}-{at}")).map(String::as_str).unwrap_or(question)
    }

    fn problem_in(&self, section: &str) -> Option<&str> {
        self.problem.as_ref().filter(|(s, _)| s == section).map(|(_, m)| m.as_str())
    }
}

fn when(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%A %-d %B %Y, %H:%M").to_string() + &format!(" ({})", tz.name())
}

fn next_step(stage: Stage) -> &'static str {
    match stage {
        Stage::RecordsRequested => {
            "Your advocate is gathering your medical records. Send any you have below: each one you send saves time."
        }
        Stage::SpecialistChosen => {
            "A specialist has been chosen. Your advocate is arranging the consultation; write down the questions you want answered."
        }
        Stage::ConsultationHeld => {
            "The consultation has taken place. Your advocate is waiting for the specialist's written opinion and will put it side by side with the first one."
        }
        Stage::OpinionsCompared => {
            "The two opinions have been compared. Your advocate will go through them with you so you can decide."
        }
        Stage::DecisionMade => "You have decided how to go on. Thank you for letting us help.",
        Stage::Withdrawn => "This second opinion was stopped. Your advocate can tell you more.",
    }
}

async fn page(
    state: &AppState,
    visit: &PortalVisit,
    problem: Option<(String, String)>,
    kept: HashMap<String, String>,
) -> AppResult<Html<String>> {
    let case_id = visit.visitor.case_id;
    let now = crate::db::now();
    let c = view::load(&state.db, case_id, now).await?;
    let tz: Tz = c.patient.timezone.parse().unwrap_or(Tz::UTC);
    state
        .reads
        .record(
            &visit.actor,
            crate::cases::store::VIEWED,
            crate::audit::Subject::case(case_id),
            serde_json::json!({ "part": "portal" }),
        )
        .await?;
    let steps = super::steps(c.stage).into_iter().map(|(stage, state)| (stage.label().to_string(), state)).collect();
    let records = c
        .records
        .iter()
        .filter(|r| r.status != RecordStatus::NotApplicable)
        .map(|r| RecordLine {
            kind: r.kind.as_str().to_string(),
            label: r.label.clone(),
            received: r.status == RecordStatus::Received,
        })
        .collect();
    // Who sent which file is for those who may send files.
    let sent = if visit.visitor.may_upload() {
        let names = crate::portal::partner_names(&state.db, case_id).await?;
        let me = visit.visitor.label();
        document::Entity::find()
            .filter(document::Column::CaseId.eq(case_id))
            .filter(document::Column::UploadedVia.is_not_null())
            .filter(document::Column::DeletedAt.is_null())
            // The signed authorization shows in its own section.
            .filter(document::Column::Kind.ne(crate::vocabulary::DocumentKind::Consent))
            .order_by_desc(document::Column::UploadedAt)
            .limit(50)
            .all(&state.db)
            .await?
            .into_iter()
            .map(|d| SentFile {
                name: d.name,
                when: when(d.uploaded_at, tz),
                by: d
                    .uploaded_via
                    .map(|v| if v == me { "you".to_string() } else { crate::portal::who(&v, &names) })
                    .unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let advocate = match &c.advocate {
        Some(a) => user::Entity::find_by_id(a.id).one(&state.db).await?.filter(|u| u.active).map(|u| (u.name, u.email)),
        None => None,
    };
    let consultation = c.consultation.as_ref().map(|v| {
        let place = match (v.mode, &v.location) {
            (ConsultationMode::Virtual, Some(link)) => format!("Video appointment: {link}"),
            (ConsultationMode::Virtual, None) => "Video appointment; the clinic will send the link.".to_string(),
            (_, Some(place)) => format!("In person at {place}"),
            (_, None) => "In person; the clinic will confirm the address.".to_string(),
        };
        let with = c.specialist.as_ref().map(|s| format!(" with {}", s.name)).unwrap_or_default();
        (format!("{}{with}", when(v.scheduled_at, tz)), place)
    });
    let consultation_held = matches!(c.stage, Stage::ConsultationHeld | Stage::OpinionsCompared | Stage::DecisionMade);
    let (questions, follow_ups) = questions::split(&c.patient_questions);
    let to_sign = actions::consent_to_sign(&state.db, case_id).await?;
    let consent_text = to_sign.text;
    let consent_outdated = to_sign.outdated;
    let consent = to_sign.signed.map(|s: portal_consent::Model| {
        let how = if s.method == "paper" { "on paper" } else { "here" };
        format!("Signed {how} by {} on {}.", s.signer_name, when(s.signed_at, tz))
    });
    let partners = if visit.visitor.is_patient() {
        partners::current(&state.db, case_id)
            .await?
            .into_iter()
            .map(|p| {
                let rights = partners::rights(&p).join(", ");
                PartnerLine { id: p.id, name: p.name, email: p.email, rights }
            })
            .collect()
    } else {
        Vec::new()
    };
    let survey_done = survey::of_case(&state.db, case_id).await?.is_some();
    let flash = visit.session.remove::<String>(FLASH_KEY).await.ok().flatten();
    let first_name = c.patient.name.split_whitespace().next().unwrap_or("").to_string();
    let viewer = match &visit.visitor.partner {
        None => c.patient.name.clone(),
        Some(p) => format!("{} (care partner of {})", p.name, c.patient.name),
    };
    let closed = match c.stage {
        Stage::DecisionMade | Stage::Withdrawn => Some(next_step(c.stage).to_string()),
        _ => None,
    };
    render(&PortalPage {
        first_name,
        viewer,
        is_patient: visit.visitor.is_patient(),
        may_upload: visit.visitor.may_upload() && c.closed_at.is_none(),
        may_edit_questions: visit.visitor.may_edit_questions() && c.closed_at.is_none(),
        flash,
        problem,
        kept,
        steps,
        closed,
        next_step: next_step(c.stage).to_string(),
        held: c.hold.as_ref().map(|_| {
            "Your case is paused for the moment; your advocate will pick it up again as soon as they can.".to_string()
        }),
        advocate,
        records,
        sent,
        upload_limit: crate::documents::store::size_label(state.settings.documents.max_file_bytes),
        consultation,
        consultation_held,
        questions,
        follow_ups,
        consent_required: state.settings.portal.consent_required,
        consent,
        consent_digest: consent::text_digest(&consent_text),
        consent_outdated,
        consent_text,
        may_sign: visit.visitor.may_act_for_patient() && c.closed_at.is_none(),
        partners,
        survey_open: visit.visitor.may_act_for_patient() && c.stage == Stage::DecisionMade && !survey_done,
        survey_done,
    })
    .map_err(|e| match e {
        PageError::App(e) => e,
        PageError::SignIn { .. } => AppError::Internal("the portal has no sign-in".into()),
    })
}

async fn home(State(state): State<AppState>, visit: PortalVisit) -> Result<Html<String>, PageError> {
    Ok(page(&state, &visit, None, HashMap::new()).await?)
}

/// After a change: back to the page, at the section, with a message.
async fn done(visit: &PortalVisit, section: &str, message: String) -> Response {
    if let Err(err) = visit.session.insert(FLASH_KEY, message).await {
        tracing::warn!(error = %err, "could not keep the portal message");
    }
    Redirect::to(&format!("/portal#{section}")).into_response()
}

/// A refused change: the page again, the problem in its section and what
/// was typed kept. Errors other than the visitor's own are pages of their own.
async fn refused(
    state: &AppState,
    visit: &PortalVisit,
    section: &str,
    err: AppError,
    kept: HashMap<String, String>,
) -> Response {
    let (status, message) = match &err {
        AppError::Validation(fields) => (StatusCode::UNPROCESSABLE_ENTITY, in_words(fields)),
        AppError::Conflict { message, .. } => (StatusCode::CONFLICT, message.clone()),
        AppError::Forbidden(message) => (StatusCode::FORBIDDEN, message.clone()),
        AppError::TooLarge(message) | AppError::UnsupportedType(message) => (
            if matches!(err, AppError::TooLarge(_)) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            },
            message.clone(),
        ),
        AppError::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
        AppError::RateLimited(message) => (StatusCode::TOO_MANY_REQUESTS, message.clone()),
        AppError::FilesUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the files cannot be stored right now, so nothing was saved; please try again in a moment".to_string(),
        ),
        _ => return PageError::App(err).into_response(),
    };
    match page(state, visit, Some((section.to_string(), message)), kept).await {
        Ok(html) => (status, html).into_response(),
        Err(err) => PageError::App(err).into_response(),
    }
}

/// What is wrong with a form, in words a patient reads.
fn in_words(fields: &crate::error::FieldErrors) -> String {
    fields
        .0
        .iter()
        .map(|(field, message)| {
            let what = match field.as_str() {
                "full_name" => "your full name",
                "agree" => "the agreement",
                "question" => "the question",
                "name" => "the name",
                "email" => "the email address",
                "file" => "the file",
                "record_kind" => "the record",
                "satisfaction" => "how satisfied you are",
                "recommend" => "how likely you are to recommend us",
                "comment" => "the comment",
                other => other,
            };
            format!("{what} {message}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn upload(
    State(state): State<AppState>,
    visit: PortalVisit,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let Ok(form) = form else {
        return refused(
            &state,
            &visit,
            "records",
            AppError::BadRequest("the upload could not be read".into()),
            HashMap::new(),
        )
        .await;
    };
    let mut fields = std::collections::BTreeMap::new();
    let result = async {
        if !visit.visitor.may_upload() {
            return Err(AppError::Forbidden("the patient has not given you the right to send records".into()));
        }
        let key = format!("portal-upload:{}", visit.visitor.link_id);
        if !within(&state, &key, state.settings.portal.uploads_per_hour).await? {
            return Err(AppError::conflict(
                "too_many_uploads",
                "that is a lot of files in one hour; please wait a while and send the rest",
            ));
        }
        let (new, file) = receive_upload(&state, CaseId(visit.visitor.case_id), form, &mut fields).await?;
        actions::upload(&state.db, &state.documents, &visit.visitor, &visit.actor, new.record_kind, file).await
    }
    .await;
    match result {
        Ok(added) => {
            let what = added.record_kind.map(|k| format!(" as your {}", k.label().to_lowercase())).unwrap_or_default();
            done(&visit, "records", format!("Thank you: “{}” was sent{what}. Your advocate will see it.", added.name))
                .await
        }
        Err(err) => refused(&state, &visit, "records", err, HashMap::new()).await,
    }
}

async fn edit_questions(State(state): State<AppState>, visit: PortalVisit, form: FormFields) -> Response {
    let part = if form.text("part") == "follow_up" { Part::FollowUp } else { Part::Consultation };
    let section = if part == Part::FollowUp { "follow-ups" } else { "questions" };
    let position = form.text("position").parse::<usize>().ok();
    let text = form.text("question");
    let edit = match (form.text("action").as_str(), position) {
        ("add", _) => Some(Edit::Add(text.clone())),
        ("change", Some(at)) => Some(Edit::Change(at, text.clone())),
        ("up", Some(at)) => Some(Edit::Up(at)),
        ("down", Some(at)) => Some(Edit::Down(at)),
        ("remove", Some(at)) => Some(Edit::Remove(at)),
        _ => None,
    };
    let Some(edit) = edit else {
        return refused(
            &state,
            &visit,
            section,
            AppError::BadRequest("the form did not say what to change".into()),
            HashMap::new(),
        )
        .await;
    };
    let message = match &edit {
        Edit::Add(_) => "Question added.",
        Edit::Change(..) => "Question changed.",
        Edit::Up(_) | Edit::Down(_) => "Question moved.",
        Edit::Remove(_) => "Question removed.",
    };
    let shown = form.optional("shown");
    match actions::edit_questions(&state.db, &state.rules, &visit.visitor, &visit.actor, part, edit, shown.as_deref())
        .await
    {
        Ok(()) => done(&visit, section, message.to_string()).await,
        Err(err) => {
            let key = match position {
                Some(at) if form.text("action") == "change" => format!("{section}-{at}"),
                _ => format!("{section}-new"),
            };
            refused(&state, &visit, section, err, HashMap::from([(key, text)])).await
        }
    }
}

async fn sign_consent(State(state): State<AppState>, visit: PortalVisit, form: FormFields) -> Response {
    let name = form.text("full_name");
    let signed = actions::sign_consent(
        &state.db,
        &state.documents,
        &visit.visitor,
        &visit.actor,
        &name,
        form.checked("agree"),
        &form.text("text_digest"),
    )
    .await;
    match signed {
        Ok(()) => {
            done(&visit, "consent", "Thank you: the authorization is signed. A copy is kept with your case.".into())
                .await
        }
        Err(err) => refused(&state, &visit, "consent", err, HashMap::from([("full_name".to_string(), name)])).await,
    }
}

async fn invite_partner(State(state): State<AppState>, visit: PortalVisit, form: FormFields) -> Response {
    let invitation = super::case_portal::invitation_from(&form);
    let invited = if visit.visitor.may_act_for_patient() {
        portal_mail::invite(&state.db, &state.settings, &visit.actor, visit.visitor.case_id, &invitation).await
    } else {
        Err(AppError::Forbidden("only the patient can invite care partners".into()))
    };
    match invited {
        Ok(p) => {
            done(
                &visit,
                "partners",
                format!("{} is invited: an email with their own link is on its way to {}.", p.name, p.email),
            )
            .await
        }
        Err(err) => {
            let kept = HashMap::from([
                ("partner_name".to_string(), invitation.name),
                ("partner_email".to_string(), invitation.email),
            ]);
            refused(&state, &visit, "partners", err, kept).await
        }
    }
}

async fn remove_partner(State(state): State<AppState>, visit: PortalVisit, parts: Parts) -> Response {
    let mut parts = parts;
    let partner_id = crate::http::path_id(&mut parts, "partner_id").await;
    let removed = match partner_id {
        Some(id) if visit.visitor.may_act_for_patient() => {
            actions::remove_partner(&state.db, &visit.actor, CaseId(visit.visitor.case_id), id).await
        }
        Some(_) => Err(AppError::Forbidden("only the patient can remove care partners".into())),
        None => Err(AppError::NotFound),
    };
    match removed {
        Ok(()) => done(&visit, "partners", "Removed: their link no longer works.".into()).await,
        Err(err) => refused(&state, &visit, "partners", err, HashMap::new()).await,
    }
}

async fn answer_survey(State(state): State<AppState>, visit: PortalVisit, form: FormFields) -> Response {
    let answers = survey::Answers {
        satisfaction: form.text("satisfaction").parse().unwrap_or(0),
        recommend: form.text("recommend").parse().unwrap_or(-1),
        comment: form.text("comment"),
    };
    match actions::answer_survey(&state.db, &visit.visitor, &visit.actor, &answers).await {
        Ok(()) => done(&visit, "survey", "Thank you for your answers.".into()).await,
        Err(err) => {
            refused(&state, &visit, "survey", err, HashMap::from([("comment".to_string(), answers.comment)])).await
        }
    }
}

async fn calendar(State(state): State<AppState>, visit: PortalVisit) -> Result<Response, PageError> {
    let c = view::load(&state.db, visit.visitor.case_id, crate::db::now()).await?;
    let Some(v) = c.consultation else { return Err(AppError::NotFound.into()) };
    state
        .reads
        .record(
            &visit.actor,
            crate::cases::store::VIEWED,
            crate::audit::Subject::case(c.id),
            serde_json::json!({ "part": "portal_calendar" }),
        )
        .await?;
    let with = c.specialist.as_ref().map(|s| format!(" with {}", s.name)).unwrap_or_default();
    let round = case::Entity::find_by_id(c.id).one(&state.db).await?.map_or(1, |row| row.round);
    let ics =
        crate::reminders::render::consultation_calendar(c.id, round, v.scheduled_at, &with, v.location.as_deref());
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/calendar; charset=utf-8")),
            (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"consultation.ics\"")),
        ],
        ics,
    )
        .into_response())
}

async fn sign_out(visit: PortalVisit) -> Response {
    let _ = visit.session.flush().await;
    let page = LinkPage {
        state: LinkState::Ended,
        token: String::new(),
        message: "You have left your page. To come back, open the link in your most recent email.".into(),
        typed: Vec::new(),
    };
    match render(&page) {
        Ok(html) => html.into_response(),
        Err(err) => err.into_response(),
    }
}

//! The case page's "Records requests" section: asking a provider for some
//! of the case's records, marking a request sent, recording what arrived,
//! the provider's extension, a refusal or a cancellation.

use askama::Template;
use axum::{
    extract::State,
    http::request::Parts,
    response::{Html, Response},
};

use super::{Clock, FormFields, PathId, Staff, case_pages::finish_with, error::PageResult};
use crate::{
    error::{AppError, AppResult, FieldErrors},
    http::path_id,
    ids::CaseId,
    providers::{self, ProviderView},
    records_requests::{
        self, ExtensionInput, LetterContext, NewRequest, ReceiptInput, RequestPatch, RequestView,
        letter::{Block, Letter},
    },
    state::AppState,
    vocabulary::{RecordKind, RequestMethod, RequestState, RequestType},
};

/// A request as the case page lists it.
pub struct RequestLine {
    pub id: i32,
    pub provider: String,
    pub kind: &'static str,
    pub records: String,
    pub received: String,
    pub state: RequestState,
    pub sent: Option<String>,
    pub due: Option<String>,
    pub overdue: bool,
    pub extension: Option<String>,
    pub denied_reason: Option<String>,
    /// Kinds asked for and not yet received: what a receipt can name.
    pub waiting_for: Vec<RecordKind>,
    pub open: bool,
    pub waiting: bool,
    pub extended: bool,
}

/// What the case page's section needs.
pub struct RecordsRequestsPanel {
    pub requests: Vec<RequestLine>,
    pub providers: Vec<ProviderView>,
    pub methods: &'static [RequestMethod],
}

fn names(kinds: &[RecordKind]) -> String {
    kinds.iter().map(|k| k.label()).collect::<Vec<_>>().join(", ")
}

pub fn line(clock: &Clock, r: RequestView) -> RequestLine {
    let waiting_for = r.kinds.iter().copied().filter(|k| !r.received.contains(k)).collect();
    RequestLine {
        id: r.id,
        provider: r.provider_name.clone(),
        kind: r.request_type.label(),
        records: names(&r.kinds),
        received: names(&r.received),
        state: r.state,
        sent: r.sent_at.map(|at| format!("{} by {}", clock.at(&at), r.method.map_or("", |m| m.label()).to_lowercase())),
        due: r.due_at.map(|at| {
            let zone: chrono_tz::Tz = r.provider_timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
            format!("the end of {} ({} time)", at.with_timezone(&zone).format("%a %-d %b %Y"), zone.name())
        }),
        overdue: r.overdue,
        extension: r.extension.as_ref().map(|e| {
            format!(
                "Extended on notice of {}: {} (first due {})",
                clock.date(&e.notice_received_at),
                e.reason,
                r.first_due_at.map(|d| clock.at(&d)).unwrap_or_default()
            )
        }),
        denied_reason: r.denied_reason.clone(),
        waiting_for,
        open: !matches!(r.state, RequestState::Fulfilled | RequestState::Denied | RequestState::Cancelled),
        waiting: records_requests::is_waiting(r.state),
        extended: r.extension.is_some(),
    }
}

/// Reads the section (under the case view's own access check and audit entry).
pub async fn panel(state: &AppState, clock: &Clock, case_id: i32) -> AppResult<RecordsRequestsPanel> {
    let requests =
        records_requests::all_of_case(&state.db, case_id).await?.into_iter().rev().map(|r| line(clock, r)).collect();
    let providers = providers::list(&state.db, None, 500).await?;
    Ok(RecordsRequestsPanel { requests, providers, methods: RequestMethod::ALL })
}

fn kinds_in(fields: &FormFields) -> Vec<RecordKind> {
    RecordKind::ALL.iter().copied().filter(|k| fields.checked(&format!("kind.{}", k.as_str()))).collect()
}

fn when(
    clock: &Clock,
    fields: &FormFields,
    name: &str,
    errors: &mut FieldErrors,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = fields.optional(name)?;
    match clock.parse_input(&text) {
        Ok(at) => Some(at),
        Err(problem) => {
            errors.add(name, problem);
            None
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let clock = staff.clock();
    let mut errors = FieldErrors::new();
    let provider_id = fields.text("provider_id").parse::<i32>().ok();
    if provider_id.is_none() {
        errors.add("provider_id", "choose the provider who holds the records (add it under Providers first)");
    }
    let request_type = RequestType::parse(&fields.text("type"));
    if request_type.is_none() {
        errors.add("type", "choose on what footing the records are asked for");
    }
    let method = fields.optional("method").and_then(|m| RequestMethod::parse(&m));
    let sent_at =
        if method.is_some() { when(&clock, &fields, "sent_at", &mut errors).or(Some(clock.now)) } else { None };
    let result = match (errors.into_result(), provider_id, request_type) {
        (Ok(()), Some(provider_id), Some(request_type)) => {
            let new = NewRequest {
                provider_id,
                request_type,
                kinds: kinds_in(&fields),
                method,
                sent_at,
                received_by_provider_at: None,
            };
            records_requests::create(&state.db, &state.settings.records_requests, &staff.actor, id, new).await
        }
        (Err(err), ..) => Err(err),
        _ => Err(AppError::BadRequest("the form is incomplete".into())),
    };
    finish_with(&state, &staff, id, "records-requests", &fields, result, |r| match r.state {
        RequestState::Sent => format!("Request to {} recorded as sent.", r.provider_name),
        _ => format!("Request to {} saved as a draft.", r.provider_name),
    })
    .await
}

/// The page's name for the forms of request `id`: its outcome and problems
/// show beside that request.
pub fn form_of(id: i32) -> String {
    format!("request-{id}")
}

/// The request named in the address, and its case (access checked).
async fn request_of(state: &AppState, staff: &Staff, parts: &mut Parts) -> PageResult<RequestView> {
    let id = path_id(parts, "request_id").await.ok_or(AppError::NotFound)?;
    Ok(records_requests::get(&state.db, &staff.actor, id).await?)
}

pub async fn update(
    State(state): State<AppState>,
    staff: Staff,
    mut parts: Parts,
    fields: FormFields,
) -> PageResult<Response> {
    let request = request_of(&state, &staff, &mut parts).await?;
    let clock = staff.clock();
    let mut errors = FieldErrors::new();
    let to = RequestState::parse(&fields.text("state"));
    let patch = RequestPatch {
        state: to,
        method: fields.optional("method").and_then(|m| RequestMethod::parse(&m)),
        sent_at: if to == Some(RequestState::Sent) {
            when(&clock, &fields, "sent_at", &mut errors).or(Some(clock.now))
        } else {
            None
        },
        received_by_provider_at: None,
        denied_reason: fields.optional("denied_reason"),
        denied_at: if to == Some(RequestState::Denied) {
            when(&clock, &fields, "denied_at", &mut errors)
        } else {
            None
        },
    };
    let result = match errors.into_result() {
        Ok(()) if to.is_some() => {
            records_requests::update(&state.db, &state.settings.records_requests, &staff.actor, request.id, patch).await
        }
        Ok(()) => Err(AppError::BadRequest("the form did not say what to do".into())),
        Err(err) => Err(err),
    };
    finish_with(&state, &staff, CaseId(request.case_id), &form_of(request.id), &fields, result, |r| {
        format!("Request to {}: {}.", r.provider_name, r.state.label().to_lowercase())
    })
    .await
}

pub async fn receipt(
    State(state): State<AppState>,
    staff: Staff,
    mut parts: Parts,
    fields: FormFields,
) -> PageResult<Response> {
    let request = request_of(&state, &staff, &mut parts).await?;
    let clock = staff.clock();
    let mut errors = FieldErrors::new();
    let received_at = when(&clock, &fields, "received_at", &mut errors).unwrap_or(clock.now);
    let result = match errors.into_result() {
        Ok(()) => {
            let mut document_ids: Vec<i32> = fields
                .0
                .iter()
                .filter(|(_, value)| value.as_str() == "on")
                .filter_map(|(name, _)| name.strip_prefix("doc.")?.parse().ok())
                .collect();
            document_ids.sort_unstable();
            let input = ReceiptInput { kinds: kinds_in(&fields), received_at, document_ids };
            records_requests::receive(&state.db, &staff.actor, request.id, input).await
        }
        Err(err) => Err(err),
    };
    finish_with(&state, &staff, CaseId(request.case_id), &form_of(request.id), &fields, result, |r| match r.state {
        RequestState::Fulfilled => format!("Everything asked of {} has arrived.", r.provider_name),
        _ => format!("Recorded; still waiting on {} for part of it.", r.provider_name),
    })
    .await
}

pub async fn extension(
    State(state): State<AppState>,
    staff: Staff,
    mut parts: Parts,
    fields: FormFields,
) -> PageResult<Response> {
    let request = request_of(&state, &staff, &mut parts).await?;
    let clock = staff.clock();
    let mut errors = FieldErrors::new();
    let notice = when(&clock, &fields, "notice_received_at", &mut errors);
    // A day of the provider's: noon (UTC) of it falls on that day in any
    // inhabited zone, and the request takes the end of it in the provider's.
    let new_due = match fields.optional("new_due_at") {
        None => None,
        Some(text) => match chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
            Ok(day) => day.and_hms_opt(12, 0, 0).map(|noon| noon.and_utc()),
            Err(_) => {
                errors.add("new_due_at", "is not a date");
                None
            }
        },
    };
    if notice.is_none() && !errors.0.contains_key("notice_received_at") {
        errors.add("notice_received_at", "give the date the provider's notice arrived");
    }
    if new_due.is_none() && !errors.0.contains_key("new_due_at") {
        errors.add("new_due_at", "give the new date the provider named");
    }
    let result = match (errors.into_result(), notice, new_due) {
        (Ok(()), Some(notice_received_at), Some(new_due_at)) => {
            let input = ExtensionInput { notice_received_at, reason: fields.text("reason"), new_due_at };
            records_requests::extend(&state.db, &state.settings.records_requests, &staff.actor, request.id, input).await
        }
        (Err(err), ..) => Err(err),
        _ => Err(AppError::BadRequest("the form is incomplete".into())),
    };
    finish_with(&state, &staff, CaseId(request.case_id), &form_of(request.id), &fields, result, |r| {
        let until = r.due_at.map(|d| clock.at(&d)).unwrap_or_default();
        format!("Extension recorded: {} now has until {until}.", r.provider_name)
    })
    .await
}

#[derive(Template)]
#[template(path = "records_letter.html")]
struct LetterPage {
    letter: Letter,
    case_id: i32,
    request_id: i32,
    /// The request's place on the case page, to go back to.
    form: String,
    open: bool,
}

fn letter_context<'a>(state: &'a AppState, clock: &Clock) -> LetterContext<'a> {
    LetterContext {
        settings: &state.settings.records_requests,
        organisation: &state.settings.mail.from_name,
        zone: clock.tz,
    }
}

/// The letter as a page to print.
pub async fn letter_page(State(state): State<AppState>, staff: Staff, mut parts: Parts) -> PageResult<Html<String>> {
    let id = path_id(&mut parts, "request_id").await.ok_or(AppError::NotFound)?;
    let clock = staff.clock();
    let (request, letter) =
        records_requests::letter_for(&state.db, &state.reads, &staff.actor, &letter_context(&state, &clock), id)
            .await?;
    let page = LetterPage {
        letter,
        case_id: request.case_id,
        request_id: request.id,
        form: form_of(request.id),
        open: !matches!(request.state, RequestState::Fulfilled | RequestState::Denied | RequestState::Cancelled),
    };
    Ok(Html(page.render().map_err(|err| AppError::Internal(err.to_string()))?))
}

/// Files the letter as a PDF among the case's documents.
pub async fn save_letter(
    State(state): State<AppState>,
    staff: Staff,
    mut parts: Parts,
    fields: FormFields,
) -> PageResult<Response> {
    let request = request_of(&state, &staff, &mut parts).await?;
    let clock = staff.clock();
    let context = letter_context(&state, &clock);
    let result =
        records_requests::save_letter(&state.db, &state.reads, &state.documents, &staff.actor, &context, request.id)
            .await;
    finish_with(&state, &staff, CaseId(request.case_id), &form_of(request.id), &fields, result, |d| {
        format!("The letter is saved among the documents as “{}”.", d.name)
    })
    .await
}

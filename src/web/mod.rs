//! The staff dashboard: server-rendered pages for advocates and admins,
//! signed-in with sessions stored in the database and protected against
//! cross-site forgery. Works without JavaScript.

pub mod account;
pub mod admin;
pub mod audit_log;
pub mod case_insurance;
pub mod case_pages;
pub mod case_portal;
pub mod case_records;
pub mod caseload;
pub mod charts;
pub mod directory;
pub mod documents;
pub mod error;
pub mod password_reset;
pub mod portal;
pub mod providers;
pub mod sign_in;
pub mod unsubscribe;

use std::collections::HashMap;

use askama::Template;
use axum::{
    Router,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use tower_http::{catch_panic::CatchPanicLayer, csrf::CsrfLayer, set_header::SetResponseHeaderLayer};
use tower_sessions::{Expiry, Session, SessionManagerLayer, cookie::SameSite};

use crate::auth::sessions::{DbSessionStore, USER_KEY};
use crate::{
    auth::{Actor, users},
    db::{self, entities::user},
    error::{AppError, FieldErrors},
    http::{client_ip, field_with_nul, path_id},
    state::AppState,
    validate,
};
use error::{PageError, PageResult};

pub const SIGNED_IN_AT_KEY: &str = "signed_in_at";
const FLASH_KEY: &str = "flash";
/// The page section a message belongs to, when it is shown there rather than at the top.
const FLASH_SECTION_KEY: &str = "flash_section";
pub const SESSION_COOKIE: &str = "secondlook_session";

pub fn router(state: &AppState) -> Router<AppState> {
    let web = &state.settings.web;
    // The cookie lives until the browser closes (no Max-Age); the idle
    // deadline is kept on the server, where the store stamps it anew each
    // time the session is saved. A session is saved when it changes, and
    // `keep_session_alive` changes a signed-in one at most once a minute, so
    // activity moves the deadline on without a write on every page view.
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone(), web.session_idle_timeout))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(web.secure_cookies || state.settings.public_url().starts_with("https://"))
        .with_expiry(Expiry::OnSessionEnd);
    let pages = Router::new()
        .route("/", get(caseload::home))
        .route("/login", get(sign_in::form).post(sign_in::submit))
        .route("/logout", post(sign_in::sign_out))
        .route("/forgot-password", get(password_reset::forgot_form).post(password_reset::request_link))
        .route(
            "/reset-password",
            get(|| async { Redirect::to("/forgot-password") }).post(password_reset::choose_submit),
        )
        .route("/reset-password/{token}", get(password_reset::choose_form))
        .route("/account", get(account::page))
        .route("/account/password", post(account::change_password))
        .route("/cases/new", get(case_pages::new_form).post(case_pages::create))
        .route("/cases/assign", post(caseload::assign_selected))
        .route("/cases/{id}", get(case_pages::show))
        .route("/cases/{id}/summary", get(case_pages::summary))
        .route("/cases/{id}/transition", post(case_pages::transition))
        .route("/cases/{id}/hold", post(case_pages::hold))
        .route("/cases/{id}/resume", post(case_pages::resume))
        .route("/cases/{id}/records", post(case_pages::set_records))
        .route("/cases/{id}/specialist", post(case_pages::set_specialist))
        .route("/cases/{id}/consultation", post(case_pages::set_consultation))
        .route("/cases/{id}/opinions", post(case_pages::record_opinion))
        .route("/cases/{id}/comparison", post(case_pages::set_comparison))
        .route("/cases/{id}/decision", post(case_pages::set_decision))
        .route("/cases/{id}/details", post(case_pages::update_details))
        .route("/cases/{id}/assign", post(case_pages::assign))
        .route(
            "/cases/{id}/documents",
            post(documents::upload)
                .layer(axum::extract::DefaultBodyLimit::max(crate::http::upload_limit(&state.settings.documents))),
        )
        .route("/documents/{doc_id}/download", get(documents::download))
        .route("/documents/{doc_id}/view", get(documents::view))
        .route("/documents/{doc_id}/inline", get(documents::inline))
        .route("/documents/{doc_id}/rename", post(documents::rename))
        .route("/documents/{doc_id}/delete", post(documents::delete))
        .route("/documents/{doc_id}/restore", post(documents::restore))
        .route("/cases/{id}/records-requests", post(case_records::create))
        .route("/cases/{id}/insurance", post(case_insurance::save))
        .route("/records-requests/{request_id}/update", post(case_records::update))
        .route("/records-requests/{request_id}/receipt", post(case_records::receipt))
        .route("/records-requests/{request_id}/extension", post(case_records::extension))
        .route("/records-requests/{request_id}/letter", get(case_records::letter_page).post(case_records::save_letter))
        .route("/cases/{id}/portal/link", post(case_portal::send_link))
        .route("/cases/{id}/portal/withdraw", post(case_portal::withdraw_links))
        .route("/cases/{id}/portal/consent", post(case_portal::paper_consent))
        .route("/cases/{id}/portal/partners", post(case_portal::invite_partner))
        .route("/cases/{id}/portal/partners/{partner_id}/remove", post(case_portal::remove_partner))
        .route("/cases/{id}/notes", post(case_pages::add_note))
        .route("/cases/{id}/contacts", post(case_pages::add_contact))
        .route("/cases/{id}/contacts/{contact_id}/done", post(case_pages::follow_up_done))
        .route("/providers", get(providers::list))
        .route("/providers/new", get(providers::new_form).post(providers::create))
        .route("/providers/{id}/edit", get(providers::edit_form).post(providers::update))
        .route("/specialists", get(directory::list))
        .route("/specialists/new", get(directory::new_form).post(directory::create))
        .route("/specialists/{id}/edit", get(directory::edit_form).post(directory::update))
        .route("/admin", get(admin::overview))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{id}", post(admin::update_user))
        .route("/admin/users/{id}/reset-link", post(admin::send_reset_link))
        .route("/admin/tokens", get(admin::tokens).post(admin::create_token))
        .route("/admin/tokens/{id}/revoke", post(admin::revoke_token))
        .route("/admin/outbox", get(admin::outbox_page))
        .route("/admin/outbox/{id}/retry", post(admin::retry_email))
        .route("/admin/audit", get(audit_log::page))
        .route("/admin/audit.csv", get(audit_log::csv))
        .route("/u/{token}", get(unsubscribe::confirm).post(unsubscribe::stop))
        .route("/static/upload.js", get(upload_script))
        .route("/static/app.css", get(stylesheet).layer(tower_http::compression::CompressionLayer::new()))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::refusals::pages))
        .fallback(|| async { PageError::App(AppError::NotFound) })
        .method_not_allowed_fallback(only_posted)
        .layer(axum::middleware::from_fn_with_state(state.clone(), keep_unsent_form))
        .layer(CatchPanicLayer::custom(error::panicked))
        .layer(axum::middleware::from_fn(keep_session_alive))
        .layer(sessions);
    protected(pages, state)
}

/// The protections every page has, staff and portal alike: cross-site
/// forms refused, a readable page for bare failures, nothing cached, no
/// framing, and a content policy that runs only this site's scripts.
pub fn protected(pages: Router<AppState>, state: &AppState) -> Router<AppState> {
    let mut csrf = CsrfLayer::new();
    let public_url = state.settings.public_url();
    match csrf.clone().add_trusted_origin(&public_url) {
        Ok(with_origin) => csrf = with_origin,
        Err(err) => tracing::warn!(%public_url, error = %err, "server.public_url is not a usable origin"),
    }
    pages
        .layer(csrf.with_rejection_response(forgery_refused))
        .layer(axum::middleware::map_response(error::explain_bare_failures))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
            ),
        ))
}

/// A form posted after its sender's session ended would be lost on the way
/// to the sign-in page: instead, the sign-in page carries it along, and once
/// signed in the person sends it from a page that shows what it holds.
async fn keep_unsent_form(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_string();
    // Forms sent without a session by design, some of which lead to the sign-in page on success.
    let carries_work = !matches!(path.as_str(), "/login" | "/logout" | "/forgot-password" | "/reset-password")
        && !path.starts_with("/u/");
    if !carries_work {
        return next.run(request).await;
    }
    let (bytes, response) = match run_keeping_form(state.settings.server.max_body_bytes, request, next).await {
        Ok(kept) => kept,
        Err(response) => return response,
    };
    let to_sign_in = response.status().is_redirection()
        && response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| l.starts_with("/login?"));
    if !to_sign_in {
        return response;
    }
    let fields = form_urlencoded::parse(&bytes).into_owned().collect();
    sign_in::sign_in_to_send(sign_in::Unsent { action: path, fields }).unwrap_or_else(|err| err.into_response())
}

/// The five steps of a case with how far it got: each step `done`,
/// `current` or `todo` (all `todo` for a withdrawn case).
pub fn steps(current: crate::cases::Stage) -> Vec<(crate::cases::Stage, &'static str)> {
    let at = crate::cases::Stage::PATH.iter().position(|s| *s == current);
    crate::cases::Stage::PATH
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let state = match at {
                Some(here) if i < here => "done",
                Some(here) if i == here => "current",
                _ => "todo",
            };
            (*s, state)
        })
        .collect()
}

/// Runs `request`, and for a posted form (`application/x-www-form-urlencoded`)
/// hands back its body with the answer, so a middleware can answer with
/// what the form held; anything else (or a body over `limit`) is `Err` with
/// its answer.
pub(crate) async fn run_keeping_form(
    limit: usize,
    request: Request,
    next: axum::middleware::Next,
) -> Result<(bytes::Bytes, Response), Response> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if request.method() != axum::http::Method::POST || !is_form {
        return Err(next.run(request).await);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(error::too_large(limit));
    };
    let response = next.run(Request::from_parts(parts, axum::body::Body::from(bytes.clone()))).await;
    Ok((bytes, response))
}

/// The case a page address belongs to: `/cases/7/notes` → 7.
pub fn case_in_path(path: &str) -> Option<i32> {
    path.strip_prefix("/cases/")?.split('/').next()?.parse::<i32>().ok().filter(|id| *id > 0)
}

/// A page address that only takes forms, opened directly (a bookmark, or the
/// way back after signing in again): a case's form addresses lead to the
/// case, anything else gets a page that says what happened.
async fn only_posted(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    match case_in_path(uri.path()) {
        Some(id) if method == axum::http::Method::GET => {
            axum::response::Redirect::to(&format!("/cases/{id}")).into_response()
        }
        _ => error::error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not a page to open",
            "This address only takes a submitted form. Go back to the page with the form and send it from there."
                .to_string(),
            vec![],
        ),
    }
}

const SEEN_AT_KEY: &str = "seen_at";
/// How stale the idle deadline may get before a page view renews it.
const RENEW_AFTER_SECONDS: i64 = 60;

/// Marks a signed-in session (staff, or a portal visit) as seen when its last mark is a minute old, so
/// the session layer saves it and the store moves its idle deadline on.
/// Anonymous visitors get no session. A session that cannot be read is left
/// for the page's own extractor to report.
pub(crate) async fn keep_session_alive(
    session: Session,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // The first read loads the session; one that cannot be loaded is not
    // asked again (with the database down, each try waits for a connection).
    let signed_in = match session.get::<i32>(USER_KEY).await {
        Ok(Some(_)) => true,
        Ok(None) => matches!(session.get::<i32>(portal::LINK_KEY).await, Ok(Some(_))),
        Err(_) => false,
    };
    if signed_in {
        let now = chrono::Utc::now().timestamp();
        let seen = session.get::<i64>(SEEN_AT_KEY).await.ok().flatten();
        if seen.is_none_or(|at| now - at >= RENEW_AFTER_SECONDS)
            && let Err(err) = session.insert(SEEN_AT_KEY, now).await
        {
            tracing::warn!(error = %err, "could not mark the session as seen");
        }
    }
    next.run(request).await
}

fn forgery_refused(_: tower_http::csrf::ProtectionError) -> Response {
    let body = "<!doctype html><title>Refused</title><h1>Request refused</h1>\
        <p>This form was sent from another site, so SecondLook did not act on it. \
        Go back to SecondLook and try again from there.</p>";
    (StatusCode::FORBIDDEN, Html(body)).into_response()
}

const STYLESHEET: &str = include_str!("../../static/app.css");

/// The stylesheet's entity tag: a digest of its text, so it changes exactly
/// when the stylesheet does (any instance computes the same one).
static STYLESHEET_TAG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(STYLESHEET.as_bytes());
    format!("\"{}\"", crate::secrets::hex(&digest[..12]))
});

/// Browsers keep the stylesheet for an hour, then ask again with its tag and
/// get a bodiless 304 while it is unchanged; compressed when they accept it.
/// The upload form's progress bar: the only script, and optional.
const UPLOAD_SCRIPT: &str = include_str!("../../static/upload.js");

async fn upload_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        UPLOAD_SCRIPT,
    )
        .into_response()
}

async fn stylesheet(headers: axum::http::HeaderMap) -> Response {
    let tag = STYLESHEET_TAG.as_str();
    let cache = (header::CACHE_CONTROL, "public, max-age=3600");
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag), cache]).into_response();
    }
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::ETAG, tag), cache], STYLESHEET).into_response()
}

/// Renders a template into a page.
pub fn render<T: Template>(template: &T) -> PageResult<Html<String>> {
    template.render().map(Html).map_err(|e| PageError::App(AppError::broken("template", e)))
}

/// What every page's header needs.
pub struct Nav {
    pub name: String,
    pub is_admin: bool,
    pub flash: Option<String>,
    /// Where on the page `flash` belongs; `None` for the top.
    pub flash_section: Option<String>,
}

/// The signed-in staff member of a page request.
pub struct Staff {
    pub actor: Actor,
    pub user: user::Model,
    pub session: Session,
    pub tz: Tz,
}

impl Staff {
    /// The header for a page, taking any one-time message out of the session.
    pub async fn nav(&self) -> Nav {
        // Removing marks the session changed (a write), so only when there is a message.
        let flash = match self.session.get::<String>(FLASH_KEY).await {
            Ok(Some(_)) => self.session.remove::<String>(FLASH_KEY).await.ok().flatten(),
            _ => None,
        };
        let flash_section = match flash {
            Some(_) => self.session.remove::<String>(FLASH_SECTION_KEY).await.ok().flatten(),
            None => None,
        };
        Nav { name: self.user.name.clone(), is_admin: self.actor.is_admin(), flash, flash_section }
    }

    pub async fn flash(&self, message: impl Into<String>) {
        if let Err(err) = self.session.insert(FLASH_KEY, message.into()).await {
            tracing::warn!(error = %err, "could not store a message for the next page");
        }
    }

    /// A message for the next page, shown in its `section` (where the person is).
    pub async fn flash_at(&self, section: &str, message: impl Into<String>) {
        self.flash(message).await;
        if let Err(err) = self.session.insert(FLASH_SECTION_KEY, section.to_string()).await {
            tracing::warn!(error = %err, "could not store where the message goes");
        }
    }

    pub fn clock(&self) -> Clock {
        Clock { tz: self.tz, now: db::now() }
    }

    pub fn require_admin(&self) -> PageResult<()> {
        if self.actor.is_admin() { Ok(()) } else { Err(AppError::Forbidden("This page is for admins.".into()).into()) }
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let sign_in = || PageError::SignIn { next: next.clone() };
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| PageError::App(AppError::Internal("session layer missing".into())))?;
        // A session that cannot be read is not a signed-out one: the person
        // is told to try again rather than sent to sign in.
        let unreadable = |e: tower_sessions::session::Error| PageError::App(AppError::session(e));
        let user_id = session.get::<i32>(USER_KEY).await.map_err(unreadable)?.ok_or_else(sign_in)?;
        let signed_in_at = session.get::<i64>(SIGNED_IN_AT_KEY).await.map_err(unreadable)?.unwrap_or(0);
        let lifetime = state.settings.web.session_absolute_lifetime.as_secs();
        let age = Utc::now().timestamp().saturating_sub(signed_in_at);
        let user = match users::find_active(&state.db, user_id).await? {
            Some(user) if u64::try_from(age).is_ok_and(|age| age <= lifetime) => user,
            _ => {
                let _ = session.flush().await;
                return Err(sign_in());
            }
        };
        let role = user.role;
        let ip = client_ip(parts, state.settings.server.trust_forwarded_for);
        let actor = Actor::user(user.id, &user.email, role, ip);
        crate::refusals::ActingUser::note(parts, &actor);
        let tz = user.timezone.parse().unwrap_or(Tz::UTC);
        Ok(Staff { actor, user, session, tz })
    }
}

/// The numeric `{id}` of a page address; anything else is a missing page.
/// `PathId<CaseId>`, `PathId<UserId>`…: the id's type says what it names.
pub struct PathId<T>(pub T);

impl<T: From<i32> + Send> FromRequestParts<AppState> for PathId<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        path_id(parts, "id").await.map(|id| PathId(T::from(id))).ok_or(PageError::App(AppError::NotFound))
    }
}

/// The numeric `{contact_id}` of a contact log address.
pub struct PathContactId(pub i32);

impl FromRequestParts<AppState> for PathContactId {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        path_id(parts, "contact_id").await.map(PathContactId).ok_or(PageError::App(AppError::NotFound))
    }
}

/// A submitted `application/x-www-form-urlencoded` form, as field → value.
#[derive(Debug, Default)]
pub struct FormFields(pub HashMap<String, String>);

impl FormFields {
    pub fn text(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }

    pub fn checked(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v == "on" || v == "true" || v == "yes")
    }
}

impl FromRequest<AppState> for FormFields {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // The body was read in full, within the size limit, before routing
        // (`app::read_whole_body`, which answers an oversized form itself).
        let limit = state.settings.server.max_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| {
            PageError::App(AppError::BadRequest("The form could not be read, so nothing was saved.".into()))
        })?;
        refuse_nul(&bytes)?;
        Ok(FormFields(form_urlencoded::parse(&bytes).into_owned().collect()))
    }
}

/// A form or address carrying a NUL character is refused as a whole, with
/// the field named (see `http::field_with_nul`).
fn refuse_nul(encoded: &[u8]) -> Result<(), PageError> {
    match field_with_nul(encoded) {
        Some(name) => Err(FieldErrors::single(name, "contains a character that is not allowed").into()),
        None => Ok(()),
    }
}

/// A page's query string. One that does not fit the page's parameters
/// answers a readable page (400), never a bare error.
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        refuse_nul(query.as_bytes())?;
        let parsed = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(parsed).map(PageQuery).map_err(|err| {
            let name = err.path().to_string();
            let problem = err.into_inner();
            PageError::App(AppError::BadRequest(format!("The “{name}” part of this address does not fit ({problem}).")))
        })
    }
}

/// Shows times in the signed-in user's time zone.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub tz: Tz,
    pub now: DateTime<Utc>,
}

impl Clock {
    pub fn at(&self, t: &DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).format("%a %-d %b %Y, %H:%M").to_string()
    }

    pub fn date(&self, t: &DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).format("%-d %b %Y").to_string()
    }

    pub fn opt_at(&self, t: &Option<DateTime<Utc>>) -> String {
        t.as_ref().map_or_else(|| "—".to_string(), |t| self.at(t))
    }

    /// The value of a `datetime-local` input.
    pub fn input(&self, t: &Option<DateTime<Utc>>) -> String {
        t.as_ref().map_or_else(String::new, |t| t.with_timezone(&self.tz).format("%Y-%m-%dT%H:%M").to_string())
    }

    /// Reads a `datetime-local` value given in this time zone.
    pub fn parse_input(&self, value: &str) -> Result<DateTime<Utc>, &'static str> {
        let naive = NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| "is not a date and time")?;
        if !validate::year_in_range(chrono::Datelike::year(&naive)) {
            return Err(validate::YEARS);
        }
        self.tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or("does not exist in your time zone (clocks change then)")
    }

    /// Reads a `date` value as an instant on that day in this zone: now for
    /// today, else its noon (a day in the past stays in the past).
    pub fn parse_day(&self, value: &str) -> Result<DateTime<Utc>, &'static str> {
        let day = chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| "is not a date")?;
        if !validate::year_in_range(chrono::Datelike::year(&day)) {
            return Err(validate::YEARS);
        }
        if day == self.now.with_timezone(&self.tz).date_naive() {
            return Ok(self.now);
        }
        day.and_hms_opt(12, 0, 0)
            .and_then(|noon| self.tz.from_local_datetime(&noon).earliest())
            .map(|t| t.with_timezone(&Utc))
            .ok_or("does not exist in your time zone")
    }

    /// The value of a `date` input.
    pub fn day_input(&self, t: &Option<DateTime<Utc>>) -> String {
        t.as_ref().map_or_else(String::new, |t| t.with_timezone(&self.tz).format("%Y-%m-%d").to_string())
    }

    /// The local day `days` after today: its date and the instant it begins
    /// (the first moment that exists, on a day clocks jump at midnight).
    pub fn day_start(&self, days: i64) -> (chrono::NaiveDate, DateTime<Utc>) {
        let date = self.now.with_timezone(&self.tz).date_naive() + chrono::Duration::days(days);
        // Where clocks jump forward at midnight, the day begins at the first
        // hour that exists.
        let start = (0..4)
            .filter_map(|hour| date.and_hms_opt(hour, 0, 0))
            .find_map(|local| self.tz.from_local_datetime(&local).earliest())
            .map_or(self.now + chrono::Duration::days(days), |t| t.with_timezone(&Utc));
        (date, start)
    }

    /// How a due date reads at a glance, in words as well as colour.
    pub fn due(&self, due: &Option<DateTime<Utc>>, held: bool) -> DueLabel {
        let Some(due) = due else { return DueLabel { text: "No due date".into(), class: "due-none" } };
        if held {
            return DueLabel { text: format!("On hold (was due {})", self.date(due)), class: "due-held" };
        }
        let left = *due - self.now;
        if left < chrono::Duration::zero() {
            DueLabel { text: format!("Overdue by {}", span(-left)), class: "due-overdue" }
        } else if left <= chrono::Duration::hours(48) {
            DueLabel { text: format!("Due soon: in {}", span(left)), class: "due-soon" }
        } else {
            DueLabel { text: format!("Due {}", self.date(due)), class: "due-ok" }
        }
    }
}

pub struct DueLabel {
    pub text: String,
    pub class: &'static str,
}

fn span(d: chrono::Duration) -> String {
    if d >= chrono::Duration::days(2) {
        format!("{} days", d.num_days())
    } else if d >= chrono::Duration::hours(1) {
        format!("{} h", d.num_hours())
    } else {
        format!("{} min", d.num_minutes().max(1))
    }
}

/// Values typed into a form and the problems found with them, so a refused
/// form comes back as the person left it.
#[derive(Debug, Clone, Default)]
pub struct FormState {
    /// Which form on the page these belong to.
    pub form: String,
    pub values: HashMap<String, String>,
    pub errors: std::collections::BTreeMap<String, String>,
    pub message: Option<String>,
}

impl FormState {
    pub fn refused(form: &str, fields: &FormFields, err: AppError) -> Result<Self, PageError> {
        let (errors, message) = match err {
            AppError::Validation(errors) => (errors.0, None),
            AppError::Conflict { message, fields, .. } => (fields, Some(message)),
            AppError::Forbidden(message) | AppError::RateLimited(message) => (Default::default(), Some(message)),
            other => return Err(other.into()),
        };
        Ok(Self { form: form.to_string(), values: fields.0.clone(), errors, message })
    }

    /// On a page with a single form: the value typed into `name`.
    pub fn field(&self, name: &str) -> String {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub fn problem(&self, name: &str) -> String {
        self.errors.get(name).cloned().unwrap_or_default()
    }

    pub fn has_problem(&self, name: &str) -> bool {
        self.errors.contains_key(name)
    }

    pub fn is(&self, form: &str) -> bool {
        self.form == form
    }

    /// The typed value when this form was refused, else `current`.
    pub fn value(&self, form: &str, name: &str, current: &str) -> String {
        if self.is(form) { self.values.get(name).cloned().unwrap_or_default() } else { current.to_string() }
    }

    pub fn error(&self, form: &str, name: &str) -> Option<&str> {
        if self.is(form) { self.errors.get(name).map(String::as_str) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_round_trip_through_the_users_zone() {
        let clock = Clock { tz: "America/New_York".parse().expect("zone"), now: Utc::now() };
        let t = clock.parse_input("2026-07-01T09:30").expect("valid");
        assert_eq!(t.to_rfc3339(), "2026-07-01T13:30:00+00:00");
        assert_eq!(clock.input(&Some(t)), "2026-07-01T09:30");
        // 02:30 on the spring-forward night does not exist in New York.
        assert!(clock.parse_input("2026-03-08T02:30").is_err());
        assert!(clock.parse_input("tomorrow").is_err());
    }

    #[test]
    fn a_day_begins_at_its_first_hour_where_clocks_skip_midnight() {
        // A zone and day whose midnight does not exist (clocks jump from 00:00 to 01:00).
        let gap = ["America/Santiago", "America/Havana", "America/Asuncion"]
            .iter()
            .map(|name| name.parse::<Tz>().expect("zone"))
            .find_map(|tz| {
                let first = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
                (0..365)
                    .map(|d| first + chrono::Duration::days(d))
                    .find(|day| {
                        day.and_hms_opt(0, 0, 0).is_some_and(|m| tz.from_local_datetime(&m).earliest().is_none())
                    })
                    .map(|day| (tz, day))
            })
            .expect("a zone that skips midnight in 2026");
        let (tz, day) = gap;
        let noon_before = (day - chrono::Duration::days(1)).and_hms_opt(12, 0, 0).expect("noon");
        let now = tz.from_local_datetime(&noon_before).earliest().expect("exists").with_timezone(&Utc);
        let clock = Clock { tz, now };
        let (date, start) = clock.day_start(1);
        assert_eq!(date, day);
        assert_eq!(start.with_timezone(&tz).naive_local(), day.and_hms_opt(1, 0, 0).expect("01:00"));
        let (today, today_start) = clock.day_start(0);
        assert_eq!(today_start.with_timezone(&tz).naive_local(), today.and_hms_opt(0, 0, 0).expect("midnight"));
    }

    #[test]
    fn due_labels_say_it_in_words() {
        let now = Utc::now();
        let clock = Clock { tz: Tz::UTC, now };
        assert!(clock.due(&Some(now - chrono::Duration::days(3)), false).text.starts_with("Overdue by 3 days"));
        assert!(clock.due(&Some(now + chrono::Duration::hours(5)), false).text.starts_with("Due soon"));
        assert_eq!(clock.due(&Some(now - chrono::Duration::days(3)), true).class, "due-held");
        assert_eq!(clock.due(&None, false).class, "due-none");
    }
}

//! The providers directory pages: the record holders' list and search,
//! adding one (any staff member), editing one (admins).

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{FormFields, FormState, Nav, PageQuery, PathId, Staff, error::PageResult, render};
use crate::{
    error::AppError,
    providers::{self, ProviderInput, ProviderView},
    state::AppState,
    vocabulary::ProviderKind,
};

#[derive(Debug, Default, Deserialize)]
pub struct ProvidersQuery {
    #[serde(default)]
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ListPage {
    nav: Nav,
    items: Vec<ProviderView>,
    q: String,
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    PageQuery(query): PageQuery<ProvidersQuery>,
) -> PageResult<Html<String>> {
    let items = providers::list(&state.db, query.q.as_deref(), 500).await?;
    render(&ListPage { nav: staff.nav().await, items, q: query.q.unwrap_or_default() })
}

#[derive(Template)]
#[template(path = "provider_form.html")]
struct FormPage {
    nav: Nav,
    heading: String,
    action: String,
    form: FormState,
    kinds: &'static [ProviderKind],
    jurisdictions: Vec<String>,
}

impl FormPage {
    fn new(nav: Nav, state: &AppState, heading: String, action: String, form: FormState) -> Self {
        let jurisdictions = state.settings.records_requests.jurisdictions.keys().cloned().collect();
        Self { nav, heading, action, form, kinds: ProviderKind::ALL, jurisdictions }
    }
}

fn input_from(fields: &FormFields) -> Result<ProviderInput, AppError> {
    let kind = ProviderKind::parse(&fields.text("kind"))
        .ok_or_else(|| crate::error::FieldErrors::single("kind", "choose what kind of place it is"))?;
    Ok(ProviderInput {
        name: fields.text("name"),
        kind,
        email: fields.text("email"),
        phone: fields.text("phone"),
        fax: fields.text("fax"),
        portal_url: fields.text("portal_url"),
        address: fields.text("address"),
        notes: fields.text("notes"),
        timezone: fields.optional("timezone"),
        jurisdiction: fields.optional("jurisdiction"),
    })
}

pub async fn new_form(State(state): State<AppState>, staff: Staff) -> PageResult<Html<String>> {
    let mut form = FormState::default();
    form.values.insert("timezone".into(), state.settings.cases.default_timezone.clone());
    let page = FormPage::new(staff.nav().await, &state, "Add a provider".into(), "/providers/new".into(), form);
    render(&page)
}

pub async fn edit_form(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<i32>,
) -> PageResult<Html<String>> {
    if !staff.actor.is_admin() {
        return Err(AppError::Forbidden(
            "Only admins can edit the providers directory; ask an admin to correct this entry.".into(),
        )
        .into());
    }
    let p = providers::get(&state.db, id).await?;
    let mut form = FormState::default();
    for (name, value) in [
        ("name", p.name.clone()),
        ("kind", p.kind.as_str().to_string()),
        ("email", p.email.clone()),
        ("phone", p.phone.clone()),
        ("fax", p.fax.clone()),
        ("portal_url", p.portal_url.clone()),
        ("address", p.address.clone()),
        ("notes", p.notes.clone()),
        ("timezone", p.timezone.clone()),
        ("jurisdiction", p.jurisdiction.clone().unwrap_or_default()),
    ] {
        form.values.insert(name.into(), value);
    }
    let page =
        FormPage::new(staff.nav().await, &state, format!("Edit {}", p.name), format!("/providers/{id}/edit"), form);
    render(&page)
}

async fn saved(
    state: &AppState,
    staff: &Staff,
    fields: &FormFields,
    heading: &str,
    action: String,
    result: crate::error::AppResult<ProviderView>,
) -> PageResult<Response> {
    match result {
        Ok(p) => {
            staff.flash(format!("{} saved.", p.name)).await;
            Ok(Redirect::to("/providers").into_response())
        }
        Err(err) => {
            let status = if matches!(err, AppError::Forbidden(_)) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let form = FormState::refused("provider", fields, err)?;
            let page = FormPage::new(staff.nav().await, state, heading.into(), action, form);
            Ok((status, render(&page)?).into_response())
        }
    }
}

pub async fn create(State(state): State<AppState>, staff: Staff, fields: FormFields) -> PageResult<Response> {
    let settings = &state.settings;
    let result = match input_from(&fields) {
        Ok(input) => {
            providers::create(
                &state.db,
                &settings.records_requests,
                &settings.cases.default_timezone,
                &staff.actor,
                input,
            )
            .await
        }
        Err(err) => Err(err),
    };
    saved(&state, &staff, &fields, "Add a provider", "/providers/new".into(), result).await
}

pub async fn update(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<i32>,
    fields: FormFields,
) -> PageResult<Response> {
    let settings = &state.settings;
    let result = match input_from(&fields) {
        Ok(input) => {
            let zone = &settings.cases.default_timezone;
            providers::update(&state.db, &settings.records_requests, zone, &staff.actor, id, input).await
        }
        Err(err) => Err(err),
    };
    saved(&state, &staff, &fields, "Edit provider", format!("/providers/{id}/edit"), result).await
}

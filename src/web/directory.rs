//! The specialists directory pages: list and search, add, edit.

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{FormFields, FormState, Nav, PageQuery, PathId, Staff, error::PageResult, render};
use crate::{
    cases::view::SpecialistView,
    error::AppError,
    ids::SpecialistId,
    specialists::{self, SpecialistFilter, SpecialistInput},
    state::AppState,
};

#[derive(Debug, Default, Deserialize)]
pub struct DirectoryQuery {
    #[serde(default)]
    specialty: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "specialists.html")]
struct ListPage {
    nav: Nav,
    items: Vec<SpecialistView>,
    specialty: String,
    q: String,
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    PageQuery(query): PageQuery<DirectoryQuery>,
) -> PageResult<Html<String>> {
    let filter = SpecialistFilter { specialty: query.specialty.clone(), query: query.q.clone(), limit: 500 };
    let items = specialists::list(&state.db, &filter).await?;
    render(&ListPage {
        nav: staff.nav().await,
        items,
        specialty: query.specialty.unwrap_or_default(),
        q: query.q.unwrap_or_default(),
    })
}

#[derive(Template)]
#[template(path = "specialist_form.html")]
struct FormPage {
    nav: Nav,
    heading: String,
    action: String,
    form: FormState,
}

fn input_from(fields: &FormFields) -> SpecialistInput {
    SpecialistInput {
        name: fields.text("name"),
        specialty: fields.text("specialty"),
        institution: fields.text("institution"),
        email: fields.optional("email"),
        offers_virtual: fields.checked("offers_virtual"),
    }
}

pub async fn new_form(staff: Staff) -> PageResult<Html<String>> {
    render(&FormPage {
        nav: staff.nav().await,
        heading: "Add a specialist".into(),
        action: "/specialists/new".into(),
        form: FormState::default(),
    })
}

/// Names and addresses in the directory reach other advocates' patients.
fn require_directory_editor(staff: &Staff) -> PageResult<()> {
    if staff.actor.is_admin() {
        return Ok(());
    }
    Err(AppError::Forbidden(
        "Only admins can edit the specialists directory; ask an admin to correct this entry.".into(),
    )
    .into())
}

pub async fn edit_form(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<SpecialistId>,
) -> PageResult<Html<String>> {
    require_directory_editor(&staff)?;
    let s = specialists::get(&state.db, id).await?;
    let mut form = FormState::default();
    for (name, value) in [
        ("name", s.name.clone()),
        ("specialty", s.specialty.clone()),
        ("institution", s.institution.clone()),
        ("email", s.email.clone().unwrap_or_default()),
    ] {
        form.values.insert(name.into(), value);
    }
    if s.offers_virtual {
        form.values.insert("offers_virtual".into(), "on".into());
    }
    render(&FormPage {
        nav: staff.nav().await,
        heading: format!("Edit {}", s.name),
        action: format!("/specialists/{id}/edit"),
        form,
    })
}

async fn saved(
    staff: &Staff,
    fields: &FormFields,
    heading: &str,
    action: String,
    result: crate::error::AppResult<SpecialistView>,
) -> PageResult<Response> {
    match result {
        Ok(s) => {
            staff.flash(format!("{} saved.", s.name)).await;
            Ok(Redirect::to("/specialists").into_response())
        }
        Err(err) => {
            let form = FormState::refused("specialist", fields, err)?;
            let page = FormPage { nav: staff.nav().await, heading: heading.into(), action, form };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

pub async fn create(State(state): State<AppState>, staff: Staff, fields: FormFields) -> PageResult<Response> {
    let result = specialists::create(&state.db, &staff.actor, input_from(&fields)).await;
    saved(&staff, &fields, "Add a specialist", "/specialists/new".into(), result).await
}

pub async fn update(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<SpecialistId>,
    fields: FormFields,
) -> PageResult<Response> {
    require_directory_editor(&staff)?;
    let result = specialists::update(&state.db, &staff.actor, id, input_from(&fields)).await;
    saved(&staff, &fields, "Edit specialist", format!("/specialists/{id}/edit"), result).await
}

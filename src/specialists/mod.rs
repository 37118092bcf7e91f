//! The specialists directory: who can give a second opinion, in which
//! specialty, where, and whether they see patients by video.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    actor::Actor,
    audit::{self, Subject},
    db::{self, entities::specialist},
    error::{AppError, AppResult, FieldErrors},
    ids::SpecialistId,
    validate::{check_email, check_line, like_contains, limits, search_key},
};

/// A directory entry as the API and pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct SpecialistView {
    pub id: i32,
    pub name: String,
    pub specialty: String,
    pub institution: String,
    pub email: Option<String>,
    pub offers_virtual: bool,
}

impl From<specialist::Model> for SpecialistView {
    fn from(s: specialist::Model) -> Self {
        Self {
            id: s.id,
            name: s.name,
            specialty: s.specialty,
            institution: s.institution,
            email: s.email,
            offers_virtual: s.offers_virtual,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistInput {
    pub name: String,
    pub specialty: String,
    #[serde(default)]
    pub institution: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub offers_virtual: bool,
}

impl SpecialistInput {
    fn validate(&self) -> AppResult<()> {
        let mut errors = FieldErrors::new();
        check_line(&mut errors, "name", &self.name, limits::NAME, true);
        check_line(&mut errors, "specialty", &self.specialty, limits::SPECIALTY, true);
        check_line(&mut errors, "institution", &self.institution, limits::NAME, false);
        if let Some(email) = self.email.as_deref().filter(|e| !e.is_empty()) {
            check_email(&mut errors, "email", email);
        }
        errors.into_result()
    }

    fn apply(&self, row: &mut specialist::ActiveModel) {
        row.name = Set(self.name.clone());
        row.specialty = Set(self.specialty.clone());
        row.specialty_key = Set(search_key(&[self.specialty.trim()]));
        row.institution = Set(self.institution.clone());
        row.search_key = Set(search_key(&[&self.name, &self.institution]));
        row.email = Set(self.email.clone().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()));
        row.offers_virtual = Set(self.offers_virtual);
    }
}

#[derive(Debug, Clone, Default)]
pub struct SpecialistFilter {
    /// Exact specialty, compared without regard to case.
    pub specialty: Option<String>,
    /// Part of the name or institution, compared without regard to case.
    pub query: Option<String>,
    pub limit: u64,
}

pub async fn create(db: &DatabaseConnection, actor: &Actor, input: SpecialistInput) -> AppResult<SpecialistView> {
    input.validate()?;
    let now = db::now();
    let txn = db::begin_write(db).await?;
    let mut row = specialist::ActiveModel { created_at: Set(now), updated_at: Set(now), ..Default::default() };
    input.apply(&mut row);
    let saved = row.insert(&txn).await?;
    audit::record(
        &txn,
        actor,
        "specialist.create",
        Subject::of("specialist", saved.id),
        json!({ "offers_virtual": saved.offers_virtual }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: SpecialistId,
    input: SpecialistInput,
) -> AppResult<SpecialistView> {
    let id = id.get();
    // A directory entry's name and address go into other advocates' patient
    // emails: only admins may change one (anyone may add an entry).
    // The refusal is audited where every 403 is (`refusals`).
    if !actor.is_admin() {
        return Err(AppError::Forbidden(
            "Only admins can edit the specialists directory; ask an admin to correct this entry.".into(),
        ));
    }
    input.validate()?;
    let txn = db::begin_write(db).await?;
    let existing = specialist::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound)?;
    let before = existing.clone();
    let mut row = existing.into_active_model();
    input.apply(&mut row);
    row.updated_at = Set(db::now());
    let saved = row.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        "specialist.update",
        Subject::of("specialist", id),
        json!({ "changed": changed_fields(&before, &saved) }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// Names of the fields an update changed: the audit entry says what
/// changed, not to what.
fn changed_fields(before: &specialist::Model, after: &specialist::Model) -> Vec<&'static str> {
    [
        ("name", before.name != after.name),
        ("specialty", before.specialty != after.specialty),
        ("institution", before.institution != after.institution),
        ("email", before.email != after.email),
        ("offers_virtual", before.offers_virtual != after.offers_virtual),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}

pub async fn get(db: &DatabaseConnection, id: SpecialistId) -> AppResult<SpecialistView> {
    let id = id.get();
    specialist::Entity::find_by_id(id).one(db).await?.map(Into::into).ok_or(AppError::NotFound)
}

pub async fn list(db: &DatabaseConnection, filter: &SpecialistFilter) -> AppResult<Vec<SpecialistView>> {
    crate::validate::check_search("q", filter.query.as_deref())?;
    crate::validate::check_search("specialty", filter.specialty.as_deref())?;
    let mut cond = Condition::all();
    if let Some(specialty) = filter.specialty.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        cond = cond.add(specialist::Column::SpecialtyKey.eq(search_key(&[specialty])));
    }
    if let Some(q) = filter.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        cond = cond.add(specialist::Column::SearchKey.like(like_contains(&q.to_lowercase())));
    }
    let rows = specialist::Entity::find()
        .filter(cond)
        .order_by_asc(specialist::Column::Name)
        .order_by_asc(specialist::Column::Id)
        .limit(filter.limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

//! The providers directory: the hospitals, clinics, laboratories, imaging
//! centers, pharmacies and physicians' offices that hold patients' records
//! (apart from the specialists who give opinions) — how to reach their
//! records department, the zone their days are counted in, and the
//! jurisdiction whose deadlines apply to them.

use chrono_tz::Tz;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    actor::Actor,
    audit::{self, Subject},
    config::RecordsRequestSettings,
    db::{self, entities::provider},
    error::{AppError, AppResult, FieldErrors},
    validate::{check_email, check_line, check_text, like_contains, limits},
    vocabulary::ProviderKind,
};

/// A provider as the API and pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    pub id: i32,
    pub name: String,
    pub kind: ProviderKind,
    pub email: String,
    pub phone: String,
    pub fax: String,
    pub portal_url: String,
    pub address: String,
    pub notes: String,
    pub timezone: String,
    pub jurisdiction: Option<String>,
}

impl From<provider::Model> for ProviderView {
    fn from(p: provider::Model) -> Self {
        Self {
            id: p.id,
            name: p.name,
            kind: p.kind,
            email: p.email,
            phone: p.phone,
            fax: p.fax,
            portal_url: p.portal_url,
            address: p.address,
            notes: p.notes,
            timezone: p.timezone,
            jurisdiction: p.jurisdiction,
        }
    }
}

/// A provider as staff enter it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    pub name: String,
    pub kind: ProviderKind,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub fax: String,
    #[serde(default)]
    pub portal_url: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub notes: String,
    /// The provider's time zone; the service's default when left out.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

impl ProviderInput {
    fn validate(&self, rules: &RecordsRequestSettings) -> AppResult<()> {
        let mut errors = FieldErrors::new();
        check_line(&mut errors, "name", &self.name, limits::NAME, true);
        if !self.email.trim().is_empty() {
            check_email(&mut errors, "email", &self.email);
        }
        check_line(&mut errors, "phone", &self.phone, limits::PHONE, false);
        check_line(&mut errors, "fax", &self.fax, limits::PHONE, false);
        check_line(&mut errors, "portal_url", &self.portal_url, limits::SHORT_TEXT, false);
        let url = self.portal_url.trim();
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            errors.add("portal_url", "must be a web address starting with https://");
        }
        check_text(&mut errors, "address", &self.address, limits::SHORT_TEXT, false);
        check_text(&mut errors, "notes", &self.notes, limits::LONG_TEXT, false);
        if let Some(zone) = self.timezone.as_deref().filter(|z| !z.trim().is_empty())
            && zone.trim().parse::<Tz>().is_err()
        {
            errors.add("timezone", "is not a time zone name such as America/Chicago");
        }
        if let Some(name) = self.jurisdiction.as_deref().filter(|j| !j.trim().is_empty())
            && !rules.jurisdictions.contains_key(name.trim())
        {
            let known: Vec<&str> = rules.jurisdictions.keys().map(String::as_str).collect();
            let message = if known.is_empty() {
                "no jurisdictions are configured (records_requests.jurisdictions)".to_string()
            } else {
                format!("is not a configured jurisdiction ({})", known.join(", "))
            };
            errors.add("jurisdiction", message);
        }
        if self.email.trim().is_empty()
            && self.fax.trim().is_empty()
            && url.is_empty()
            && self.address.trim().is_empty()
        {
            errors.add("email", "give at least one way to send a request: email, fax, portal or postal address");
        }
        errors.into_result()
    }

    fn apply(&self, row: &mut provider::ActiveModel, default_timezone: &str) {
        row.name = Set(self.name.trim().to_string());
        row.kind = Set(self.kind);
        row.email = Set(self.email.trim().to_string());
        row.phone = Set(self.phone.trim().to_string());
        row.fax = Set(self.fax.trim().to_string());
        row.portal_url = Set(self.portal_url.trim().to_string());
        row.address = Set(self.address.trim().to_string());
        row.notes = Set(self.notes.clone());
        let zone = self.timezone.as_deref().map(str::trim).filter(|z| !z.is_empty()).unwrap_or(default_timezone);
        row.timezone = Set(zone.to_string());
        row.jurisdiction = Set(self.jurisdiction.as_deref().map(str::trim).filter(|j| !j.is_empty()).map(String::from));
    }
}

/// Any staff member adds a provider.
pub async fn create(
    db: &DatabaseConnection,
    rules: &RecordsRequestSettings,
    default_timezone: &str,
    actor: &Actor,
    input: ProviderInput,
) -> AppResult<ProviderView> {
    input.validate(rules)?;
    let now = db::now();
    let txn = db::begin_write(db).await?;
    let mut row = provider::ActiveModel { created_at: Set(now), updated_at: Set(now), ..Default::default() };
    input.apply(&mut row, default_timezone);
    let saved = row.insert(&txn).await?;
    audit::record(&txn, actor, "provider.create", Subject::of("provider", saved.id), json!({ "kind": saved.kind }))
        .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// Only admins change an entry: its addresses go into request letters.
pub async fn update(
    db: &DatabaseConnection,
    rules: &RecordsRequestSettings,
    default_timezone: &str,
    actor: &Actor,
    id: i32,
    input: ProviderInput,
) -> AppResult<ProviderView> {
    if !actor.is_admin() {
        return Err(AppError::Forbidden(
            "Only admins can edit the providers directory; ask an admin to correct this entry.".into(),
        ));
    }
    input.validate(rules)?;
    let txn = db::begin_write(db).await?;
    let existing = provider::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound)?;
    let mut row = existing.into_active_model();
    input.apply(&mut row, default_timezone);
    row.updated_at = Set(db::now());
    let saved = row.update(&txn).await?;
    audit::record(&txn, actor, "provider.update", Subject::of("provider", id), json!({})).await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// The providers named by `ids`, by id (the names and zones that requests
/// and reminders refer to).
pub async fn by_id<C: sea_orm::ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i32>,
) -> AppResult<std::collections::HashMap<i32, provider::Model>> {
    let mut ids: Vec<i32> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    use sea_orm::ColumnTrait;
    Ok(provider::Entity::find()
        .filter(provider::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect())
}

pub async fn get(db: &DatabaseConnection, id: i32) -> AppResult<ProviderView> {
    provider::Entity::find_by_id(id).one(db).await?.map(Into::into).ok_or(AppError::NotFound)
}

/// Providers by name, optionally those whose name holds `query`.
pub async fn list(db: &DatabaseConnection, query: Option<&str>, limit: u64) -> AppResult<Vec<ProviderView>> {
    crate::validate::check_search("q", query)?;
    let mut select = provider::Entity::find();
    if let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) {
        use sea_orm::sea_query::{Expr, ExprTrait, Func};
        let name = Expr::expr(Func::lower(Expr::col(provider::Column::Name)));
        select = select.filter(name.like(like_contains(&q.to_lowercase())));
    }
    let rows = select
        .order_by_asc(provider::Column::Name)
        .order_by_asc(provider::Column::Id)
        .limit(limit.clamp(1, 500))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

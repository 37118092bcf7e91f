//! The case page's "Insurance" section: the payer and plan, whether a
//! second opinion is covered, the pre-approval and its dates, and cost
//! notes for the comparison.

use axum::{extract::State, response::Response};

use super::{Clock, FormFields, PathId, Staff, case_pages::finish_with, error::PageResult};
use crate::{
    error::{AppError, FieldErrors},
    ids::CaseId,
    insurance::{self, InsuranceInput, InsuranceView},
    state::AppState,
    vocabulary::{Coverage, Preapproval},
};

/// The form's name on the case page (and the section's id).
pub const FORM: &str = "insurance";

/// What the page shows of the case's insurance.
pub struct InsurancePanel {
    pub recorded: Option<InsuranceView>,
    pub coverages: &'static [Coverage],
    pub preapprovals: &'static [Preapproval],
}

impl InsurancePanel {
    pub fn new(recorded: Option<InsuranceView>) -> Self {
        Self { recorded, coverages: Coverage::ALL, preapprovals: Preapproval::ALL }
    }

    /// What the form holds for `name` before any change: the recorded value.
    pub fn current(&self, clock: &Clock, name: &str) -> String {
        let Some(i) = &self.recorded else {
            return match name {
                "second_opinion_covered" => Coverage::Unknown.as_str().to_string(),
                "preapproval" => Preapproval::NotRequired.as_str().to_string(),
                _ => String::new(),
            };
        };
        match name {
            "payer" => i.payer.clone(),
            "plan" => i.plan.clone(),
            // A masked id is not put in the field: sent back it would say nothing.
            "member_id" if i.member_id_masked => String::new(),
            "member_id" => i.member_id.clone(),
            "second_opinion_covered" => i.second_opinion_covered.as_str().to_string(),
            "preapproval" => i.preapproval.as_str().to_string(),
            "preapproval_requested_at" => clock.day_input(&i.preapproval_requested_at),
            "preapproval_decided_at" => clock.day_input(&i.preapproval_decided_at),
            "preapproval_reference" => i.preapproval_reference.clone(),
            "appeal_deadline" => i.appeal_deadline.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default(),
            "cost_notes" => i.cost_notes.clone(),
            _ => String::new(),
        }
    }

    /// The masked member id a non-admin is shown beside an empty field.
    pub fn masked_member_id(&self) -> Option<&str> {
        self.recorded.as_ref().filter(|i| i.member_id_masked && !i.member_id.is_empty()).map(|i| i.member_id.as_str())
    }

    /// One line for the comparison's cost section, when anything is known.
    pub fn for_comparison(&self) -> Option<String> {
        let i = self.recorded.as_ref()?;
        let mut parts = vec![format!("second opinion {}", i.second_opinion_covered.label().to_lowercase())];
        if i.preapproval != Preapproval::NotRequired {
            parts.push(format!("pre-approval {}", i.preapproval.label().to_lowercase()));
        }
        let payer = if i.payer.is_empty() { "Insurance".to_string() } else { i.payer.clone() };
        Some(format!("{payer}: {}.", parts.join(", ")))
    }
}

pub async fn save(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let clock = staff.clock();
    let recorded = insurance::of_case(&state.db, &staff.actor, id.get()).await?;
    let mut errors = FieldErrors::new();
    let chosen = Preapproval::parse(&fields.text("preapproval"));
    // A day as posted: the recorded instant when it is the recorded day (the
    // form shows days only), else that day.
    let mut day = |name: &str, recorded_at: Option<chrono::DateTime<chrono::Utc>>| match fields.optional(name) {
        None => None,
        Some(text) if Some(text.trim().to_string()) == recorded_at.map(|at| clock.day_input(&Some(at))) => recorded_at,
        Some(text) => match clock.parse_day(&text) {
            Ok(at) => Some(at),
            Err(problem) => {
                errors.add(name, problem);
                None
            }
        },
    };
    let requested_at = day("preapproval_requested_at", recorded.as_ref().and_then(|i| i.preapproval_requested_at));
    let decided_at = day("preapproval_decided_at", recorded.as_ref().and_then(|i| i.preapproval_decided_at));
    // What the form still shows of the state before goes with it: dates,
    // the deadline and the reference that do not fit the state chosen.
    let was = recorded.as_ref().map(|i| i.preapproval);
    let starts_over = chosen != was;
    let kept_date = |at: Option<chrono::DateTime<chrono::Utc>>, recorded_at: Option<chrono::DateTime<chrono::Utc>>| {
        if starts_over && at == recorded_at { None } else { at }
    };
    let requested_at = match chosen {
        Some(Preapproval::NotRequired) => None,
        Some(Preapproval::Requested) => {
            kept_date(requested_at, recorded.as_ref().and_then(|i| i.preapproval_requested_at))
        }
        _ => requested_at,
    };
    let decided_at = match chosen {
        Some(Preapproval::Approved | Preapproval::Denied) => {
            kept_date(decided_at, recorded.as_ref().and_then(|i| i.preapproval_decided_at))
        }
        Some(Preapproval::Appealed) => decided_at,
        _ => None,
    };
    let appeal_deadline = match fields.optional("appeal_deadline") {
        _ if !matches!(chosen, Some(Preapproval::Denied | Preapproval::Appealed)) => None,
        None => None,
        Some(text) => match chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
            Ok(date) => Some(date),
            Err(_) => {
                errors.add("appeal_deadline", "is not a date");
                None
            }
        },
    };
    let reference =
        if chosen == Some(Preapproval::NotRequired) { String::new() } else { fields.text("preapproval_reference") };
    let member_id = if fields.checked("member_id_clear") {
        Some(String::new())
    } else if staff.actor.is_admin() {
        Some(fields.text("member_id"))
    } else {
        // Left empty by someone who sees it masked: it stays as it is.
        fields.optional("member_id")
    };
    let coverage = Coverage::parse(&fields.text("second_opinion_covered"));
    if coverage.is_none() {
        errors.add("second_opinion_covered", "choose whether a second opinion is covered");
    }
    if chosen.is_none() {
        errors.add("preapproval", "choose where the pre-approval stands");
    }
    let result = match (errors.into_result(), coverage, chosen) {
        (Ok(()), Some(second_opinion_covered), Some(preapproval)) => {
            let input = InsuranceInput {
                payer: fields.text("payer"),
                plan: fields.text("plan"),
                member_id,
                second_opinion_covered,
                preapproval,
                preapproval_requested_at: requested_at,
                preapproval_decided_at: decided_at,
                preapproval_reference: reference,
                appeal_deadline,
                cost_notes: fields.text("cost_notes"),
                ..InsuranceInput::default()
            };
            insurance::put(&state.db, &state.rules, &staff.actor, id, input).await
        }
        (Err(err), ..) => Err(err),
        _ => Err(AppError::BadRequest("the form is incomplete".into())),
    };
    finish_with(&state, &staff, id, FORM, &fields, result, |saved| {
        if saved.resumed {
            "Insurance saved. The pre-approval is decided, so the case is off hold and its clock runs again.".into()
        } else {
            "Insurance saved.".into()
        }
    })
    .await
}

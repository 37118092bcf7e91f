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
    let mut errors = FieldErrors::new();
    let mut day = |name: &str| match fields.optional(name) {
        None => None,
        Some(text) => match clock.parse_day(&text) {
            Ok(at) => Some(at),
            Err(problem) => {
                errors.add(name, problem);
                None
            }
        },
    };
    let requested_at = day("preapproval_requested_at");
    let decided_at = day("preapproval_decided_at");
    // Dates that do not go with the state chosen are left over from the
    // state before; they go with it.
    let chosen = Preapproval::parse(&fields.text("preapproval"));
    let requested_at = requested_at.filter(|_| chosen != Some(Preapproval::NotRequired));
    let decided_at =
        decided_at.filter(|_| chosen.is_some_and(Preapproval::is_decided) || chosen == Some(Preapproval::Appealed));
    let appeal_deadline = match fields.optional("appeal_deadline") {
        None => None,
        Some(text) => match chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
            Ok(date) => Some(date),
            Err(_) => {
                errors.add("appeal_deadline", "is not a date");
                None
            }
        },
    };
    let coverage = Coverage::parse(&fields.text("second_opinion_covered"));
    if coverage.is_none() {
        errors.add("second_opinion_covered", "choose whether a second opinion is covered");
    }
    let preapproval = Preapproval::parse(&fields.text("preapproval"));
    if preapproval.is_none() {
        errors.add("preapproval", "choose where the pre-approval stands");
    }
    let result = match (errors.into_result(), coverage, preapproval) {
        (Ok(()), Some(second_opinion_covered), Some(preapproval)) => {
            let input = InsuranceInput {
                payer: fields.text("payer"),
                plan: fields.text("plan"),
                member_id: Some(fields.text("member_id")),
                second_opinion_covered,
                preapproval,
                preapproval_requested_at: requested_at,
                preapproval_decided_at: decided_at,
                preapproval_reference: fields.text("preapproval_reference"),
                appeal_deadline,
                cost_notes: fields.text("cost_notes"),
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

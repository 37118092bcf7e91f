//! `GET /api/v1/reports/overview`: the service figures `/admin` shows, for
//! dashboards and integrations. Admins only; counts and durations, no
//! patient data.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{error::ApiResult, extract::Caller};
use crate::{
    error::AppError,
    reports::{self, Outcomes},
    state::AppState,
    vocabulary::Stage,
};

#[derive(Debug, Serialize)]
pub struct OverviewAnswer {
    /// When the figures were computed; overdue means due before this.
    as_of: DateTime<Utc>,
    pipeline: Vec<PipelineStage>,
    stage_times: Vec<StageTime>,
    outcomes: Outcomes,
    workload: Vec<Workload>,
    weekly: Vec<Week>,
    /// Mean satisfaction (1–5), net promoter score and response rate of the patient survey.
    survey: crate::portal::survey::Figures,
    /// Per provider: requests sent, median days to fulfil, share answered on time, overdue now.
    records_by_provider: Vec<crate::records_requests::figures::ProviderFigures>,
    /// Pre-approvals decided, median days from request to decision, share denied.
    preapprovals: crate::insurance::PreapprovalFigures,
}

#[derive(Debug, Serialize)]
struct PipelineStage {
    stage: Stage,
    open: i64,
    overdue: i64,
}

#[derive(Debug, Serialize)]
struct StageTime {
    stage: Stage,
    /// Cases that left the stage in the last 90 days.
    completed: i64,
    median_days: Option<f64>,
    p90_days: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Workload {
    /// `null` for the cases nobody is assigned to.
    advocate_id: Option<i32>,
    name: Option<String>,
    open: i64,
    overdue: i64,
}

#[derive(Debug, Serialize)]
struct Week {
    week_start: DateTime<Utc>,
    opened: i64,
    closed: i64,
}

pub async fn overview(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<OverviewAnswer>> {
    if !actor.is_admin() {
        return Err(AppError::Forbidden("only admins can read the service figures".into()).into());
    }
    let now = crate::db::now();
    let figures = reports::overview_with(&state.db, Some(&state.timings), now).await?;
    let overdue_in = |stage: Stage| figures.overdue_per_stage.iter().find(|(s, _)| *s == stage).map_or(0, |(_, n)| *n);
    let pipeline = figures
        .open_per_stage
        .iter()
        .map(|(stage, open)| PipelineStage { stage: *stage, open: *open, overdue: overdue_in(*stage) })
        .collect();
    let stage_times = figures
        .time_in_stage
        .iter()
        .map(|t| StageTime { stage: t.stage, completed: t.count, median_days: t.median_days, p90_days: t.p90_days })
        .collect();
    let workload = figures
        .per_advocate
        .iter()
        .map(|a| Workload { advocate_id: a.advocate_id, name: a.name.clone(), open: a.open, overdue: a.overdue })
        .collect();
    let weekly =
        figures.weekly.iter().map(|w| Week { week_start: w.week_start, opened: w.opened, closed: w.closed }).collect();
    Ok(Json(OverviewAnswer {
        as_of: now,
        pipeline,
        stage_times,
        outcomes: figures.outcomes,
        workload,
        weekly,
        survey: figures.survey,
        records_by_provider: figures.records_by_provider,
        preapprovals: figures.preapprovals,
    }))
}

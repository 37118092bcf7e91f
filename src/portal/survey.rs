//! The short survey a patient answers after the decision: satisfaction
//! (1–5), how likely they are to recommend the service (0–10) and a
//! comment. One answer per case. Running totals are kept as answers arrive,
//! so the figures (mean satisfaction, net promoter score, response rate)
//! never read every answer.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    prelude::Expr, sea_query::ExprTrait,
};
use serde::{Deserialize, Serialize};

use crate::{
    db::entities::{portal_survey, tally_survey},
    error::{AppError, AppResult, FieldErrors},
    validate::{check_text, limits},
};

#[derive(Debug, Clone, Deserialize)]
pub struct Answers {
    pub satisfaction: i32,
    pub recommend: i32,
    #[serde(default)]
    pub comment: String,
}

impl Answers {
    pub fn check(&self) -> AppResult<()> {
        let mut errors = FieldErrors::new();
        if !(1..=5).contains(&self.satisfaction) {
            errors.add("satisfaction", "choose from 1 (not at all satisfied) to 5 (very satisfied)");
        }
        if !(0..=10).contains(&self.recommend) {
            errors.add("recommend", "choose from 0 (not at all likely) to 10 (extremely likely)");
        }
        check_text(&mut errors, "comment", &self.comment, limits::SHORT_TEXT * 4, false);
        errors.into_result()
    }
}

pub async fn of_case<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Option<portal_survey::Model>> {
    Ok(portal_survey::Entity::find().filter(portal_survey::Column::CaseId.eq(case_id)).one(conn).await?)
}

/// Keeps the answers of the case and adds them to the totals (inside the
/// caller's case write).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
    answers: &Answers,
    by: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    answers.check()?;
    if of_case(conn, case_id).await?.is_some() {
        return Err(AppError::conflict("already_answered", "the survey of this case has already been answered"));
    }
    portal_survey::ActiveModel {
        case_id: Set(case_id),
        satisfaction: Set(answers.satisfaction),
        recommend: Set(answers.recommend),
        comment: Set(answers.comment.trim().to_string()),
        submitted_at: Set(now),
        submitted_by: Set(by.to_string()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    let (promoter, detractor) = (i64::from(answers.recommend >= 9), i64::from(answers.recommend <= 6));
    tally_survey::Entity::update_many()
        .col_expr(tally_survey::Column::Responses, Expr::col(tally_survey::Column::Responses).add(1i64))
        .col_expr(
            tally_survey::Column::SatisfactionSum,
            Expr::col(tally_survey::Column::SatisfactionSum).add(i64::from(answers.satisfaction)),
        )
        .col_expr(tally_survey::Column::Promoters, Expr::col(tally_survey::Column::Promoters).add(promoter))
        .col_expr(tally_survey::Column::Detractors, Expr::col(tally_survey::Column::Detractors).add(detractor))
        .filter(tally_survey::Column::Id.eq(1))
        .exec(conn)
        .await?;
    Ok(())
}

/// What the survey says so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub responses: i64,
    /// Mean satisfaction, 1–5.
    pub mean_satisfaction: Option<f64>,
    /// Net promoter score: % promoters (9–10) less % detractors (0–6), −100 to 100.
    pub nps: Option<f64>,
    /// Answers per decided case, 0–1.
    pub response_rate: Option<f64>,
}

/// The figures from the kept totals and the number of decided cases.
pub fn figures(totals: &tally_survey::Model, decided_cases: i64) -> Figures {
    let responses = totals.responses;
    let per_response = |n: i64| (responses > 0).then(|| n as f64 / responses as f64);
    Figures {
        responses,
        mean_satisfaction: per_response(totals.satisfaction_sum),
        nps: per_response(totals.promoters - totals.detractors).map(|share| (share * 1000.0).round() / 10.0),
        response_rate: (decided_cases > 0).then(|| responses as f64 / decided_cases as f64),
    }
}

pub async fn totals<C: ConnectionTrait>(conn: &C) -> AppResult<tally_survey::Model> {
    Ok(tally_survey::Entity::find_by_id(1).one(conn).await?.unwrap_or(tally_survey::Model {
        id: 1,
        responses: 0,
        satisfaction_sum: 0,
        promoters: 0,
        detractors: 0,
    }))
}

/// The totals counted from every answer, to check the kept ones against
/// and to count them anew after a bulk load.
pub async fn totals_by_scan<C: ConnectionTrait>(conn: &C) -> AppResult<tally_survey::Model> {
    #[derive(Debug, sea_orm::FromQueryResult)]
    struct Counted {
        responses: i64,
        satisfaction_sum: i64,
        promoters: i64,
        detractors: i64,
    }
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) AS responses, \
               CAST(COALESCE(SUM(satisfaction), 0) AS BIGINT) AS satisfaction_sum, \
               CAST(COALESCE(SUM(CASE WHEN recommend >= 9 THEN 1 ELSE 0 END), 0) AS BIGINT) AS promoters, \
               CAST(COALESCE(SUM(CASE WHEN recommend <= 6 THEN 1 ELSE 0 END), 0) AS BIGINT) AS detractors \
               FROM portal_surveys";
    let counted =
        Counted::find_by_statement(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).one(conn).await?;
    let counted = counted.unwrap_or(Counted { responses: 0, satisfaction_sum: 0, promoters: 0, detractors: 0 });
    Ok(tally_survey::Model {
        id: 1,
        responses: counted.responses,
        satisfaction_sum: counted.satisfaction_sum,
        promoters: counted.promoters,
        detractors: counted.detractors,
    })
}

/// Counts the kept totals anew from every answer (after an import).
pub async fn rebuild(db: &sea_orm::DatabaseConnection) -> AppResult<()> {
    let counted = totals_by_scan(db).await?;
    tally_survey::Entity::update_many()
        .col_expr(tally_survey::Column::Responses, Expr::value(counted.responses))
        .col_expr(tally_survey::Column::SatisfactionSum, Expr::value(counted.satisfaction_sum))
        .col_expr(tally_survey::Column::Promoters, Expr::value(counted.promoters))
        .col_expr(tally_survey::Column::Detractors, Expr::value(counted.detractors))
        .filter(tally_survey::Column::Id.eq(1))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_the_usual_definitions() {
        let none =
            figures(&tally_survey::Model { id: 1, responses: 0, satisfaction_sum: 0, promoters: 0, detractors: 0 }, 0);
        assert_eq!(none, Figures::default());
        // Answers 5/10, 4/9, 2/3, 4/7: two promoters, one detractor.
        let four = tally_survey::Model { id: 1, responses: 4, satisfaction_sum: 15, promoters: 2, detractors: 1 };
        let f = figures(&four, 10);
        assert_eq!(f.mean_satisfaction, Some(3.75));
        assert_eq!(f.nps, Some(25.0));
        assert_eq!(f.response_rate, Some(0.4));
        let answers = Answers { satisfaction: 6, recommend: 11, comment: String::new() };
        let errors = answers.check().expect_err("out of range");
        assert!(format!("{errors:?}").contains("satisfaction") && format!("{errors:?}").contains("recommend"));
    }
}

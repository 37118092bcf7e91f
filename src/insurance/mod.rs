//! Insurance on a case: who pays, whether a second opinion is covered, and
//! the insurer's pre-approval with its dates, reference and appeal deadline,
//! plus cost notes for the comparison. Recording a decided pre-approval
//! takes a case off a hold for pre-approval by itself. Keeps the
//! pre-approval tally (decisions by outcome and days taken) in step with
//! the rows. The member id is shown in full to admins only.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, Statement,
    Value,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    actor::Actor,
    audit::{Subject, reads::ReadTrail},
    cases::{
        store::{self as case_store, CaseRules},
        tallies,
    },
    db::{self, entities::case_insurance},
    error::{AppError, AppResult, FieldErrors},
    ids::CaseId,
    validate::{check_line, check_text, limits},
    vocabulary::{Coverage, HoldReason, Preapproval},
};

/// The audit action of a change to a case's insurance.
pub const CHANGED: &str = "case.insurance";

/// The condition of denied pre-approvals with an appeal deadline, word for
/// word as the partial index on their deadlines has it (SQLite matches an
/// index's condition only by its text).
pub const APPEALABLE: &str = "preapproval = 'denied' AND appeal_deadline IS NOT NULL";

/// Longest member id or reference kept.
const MOST_ID: usize = 64;

/// A case's insurance as staff see it.
#[derive(Debug, Clone, Serialize)]
pub struct InsuranceView {
    pub case_id: i32,
    pub payer: String,
    pub plan: String,
    /// In full for admins; otherwise only its last four characters show.
    pub member_id: String,
    pub member_id_masked: bool,
    pub second_opinion_covered: Coverage,
    pub preapproval: Preapproval,
    pub preapproval_requested_at: Option<DateTime<Utc>>,
    pub preapproval_decided_at: Option<DateTime<Utc>>,
    pub preapproval_reference: String,
    pub appeal_deadline: Option<NaiveDate>,
    pub cost_notes: String,
    pub updated_at: DateTime<Utc>,
}

/// `PUT`: the whole insurance record. A `member_id` left out, or sent back
/// as the masked value a non-admin was shown, keeps the stored one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsuranceInput {
    #[serde(default)]
    pub payer: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub member_id: Option<String>,
    #[serde(default = "unknown")]
    pub second_opinion_covered: Coverage,
    #[serde(default = "not_required")]
    pub preapproval: Preapproval,
    /// Defaults to now when the pre-approval is first requested.
    #[serde(default)]
    pub preapproval_requested_at: Option<DateTime<Utc>>,
    /// Defaults to now when the pre-approval is first decided.
    #[serde(default)]
    pub preapproval_decided_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub preapproval_reference: String,
    #[serde(default)]
    pub appeal_deadline: Option<NaiveDate>,
    #[serde(default)]
    pub cost_notes: String,
    /// What a `GET` answers besides the record, ignored when sent back.
    #[serde(default, rename = "case_id")]
    pub _case_id: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "member_id_masked")]
    pub _member_id_masked: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    pub _updated_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "case_resumed")]
    pub _case_resumed: Option<serde::de::IgnoredAny>,
}

impl Default for InsuranceInput {
    fn default() -> Self {
        Self {
            payer: String::new(),
            plan: String::new(),
            member_id: None,
            second_opinion_covered: unknown(),
            preapproval: not_required(),
            preapproval_requested_at: None,
            preapproval_decided_at: None,
            preapproval_reference: String::new(),
            appeal_deadline: None,
            cost_notes: String::new(),
            _case_id: None,
            _member_id_masked: None,
            _updated_at: None,
            _case_resumed: None,
        }
    }
}

fn unknown() -> Coverage {
    Coverage::Unknown
}

fn not_required() -> Preapproval {
    Preapproval::NotRequired
}

/// The character a masked member id is hidden behind; never part of a real one.
pub const MASK: char = '•';

/// What a non-admin sees of a member id: a fixed run of dots (so not even
/// its length shows), then its last four characters when it has eight or more.
pub fn mask(member_id: &str) -> String {
    let count = member_id.chars().count();
    if count == 0 {
        return String::new();
    }
    let tail: String = if count >= 8 { member_id.chars().skip(count - 4).collect() } else { String::new() };
    format!("{}{tail}", MASK.to_string().repeat(4))
}

fn view(row: case_insurance::Model, actor: &Actor) -> InsuranceView {
    let masked = !actor.is_admin();
    InsuranceView {
        case_id: row.case_id,
        payer: row.payer,
        plan: row.plan,
        member_id: if masked { mask(&row.member_id) } else { row.member_id },
        member_id_masked: masked,
        second_opinion_covered: row.second_opinion_covered,
        preapproval: row.preapproval,
        preapproval_requested_at: row.preapproval_requested_at,
        preapproval_decided_at: row.preapproval_decided_at,
        preapproval_reference: row.preapproval_reference,
        appeal_deadline: row.appeal_deadline,
        cost_notes: row.cost_notes,
        updated_at: row.updated_at,
    }
}

/// The case's insurance, `None` when none was recorded; the read is audited.
pub async fn get(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<Option<InsuranceView>> {
    case_store::check_access(db, actor, case_id.get(), case_store::VIEWED).await?;
    let row = find(db, case_id.get()).await?;
    reads.record(actor, case_store::VIEWED, Subject::case(case_id.get()), json!({ "part": "insurance" })).await?;
    Ok(row.map(|row| view(row, actor)))
}

/// The insurance of a case the caller already read and checked, for its page
/// and its export.
pub async fn of_case<C: ConnectionTrait>(conn: &C, actor: &Actor, case_id: i32) -> AppResult<Option<InsuranceView>> {
    Ok(find(conn, case_id).await?.map(|row| view(row, actor)))
}

async fn find<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Option<case_insurance::Model>> {
    use sea_orm::{ColumnTrait, QueryFilter};
    Ok(case_insurance::Entity::find().filter(case_insurance::Column::CaseId.eq(case_id)).one(conn).await?)
}

/// Takes out what identifies the patient (payer, plan, member id,
/// reference, cost notes, appeal deadline) and keeps the pre-approval's
/// outcome and dates, which the figures count. Inside the erasure's
/// transaction; returns whether there was a row.
pub async fn erase<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<bool> {
    use sea_orm::{ColumnTrait, QueryFilter, prelude::Expr};
    let erased = case_insurance::Entity::update_many()
        .col_expr(case_insurance::Column::Payer, Expr::value(""))
        .col_expr(case_insurance::Column::Plan, Expr::value(""))
        .col_expr(case_insurance::Column::MemberId, Expr::value(""))
        .col_expr(case_insurance::Column::PreapprovalReference, Expr::value(""))
        .col_expr(case_insurance::Column::CostNotes, Expr::value(""))
        .col_expr(case_insurance::Column::AppealDeadline, Expr::value(Option::<NaiveDate>::None))
        .filter(case_insurance::Column::CaseId.eq(case_id))
        .exec(conn)
        .await?;
    Ok(erased.rows_affected > 0)
}

/// What a `PUT` came to: the insurance, and whether it took the case off hold.
#[derive(Debug, Clone)]
pub struct Saved {
    pub insurance: InsuranceView,
    pub resumed: bool,
}

fn check(input: &InsuranceInput, now: DateTime<Utc>) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    check_line(&mut errors, "payer", &input.payer, limits::NAME, false);
    check_line(&mut errors, "plan", &input.plan, limits::NAME, false);
    if let Some(member_id) = &input.member_id {
        check_line(&mut errors, "member_id", member_id, MOST_ID, false);
    }
    check_line(&mut errors, "preapproval_reference", &input.preapproval_reference, MOST_ID, false);
    check_text(&mut errors, "cost_notes", &input.cost_notes, limits::LONG_TEXT, false);
    for (field, at) in [
        ("preapproval_requested_at", input.preapproval_requested_at),
        ("preapproval_decided_at", input.preapproval_decided_at),
    ] {
        if let Some(at) = at {
            crate::validate::check_instant(&mut errors, field, &at);
            if at > now + chrono::Duration::minutes(5) {
                errors.add(field, "cannot be in the future");
            }
        }
    }
    if let Some(deadline) = input.appeal_deadline
        && !crate::validate::year_in_range(chrono::Datelike::year(&deadline))
    {
        errors.add("appeal_deadline", crate::validate::YEARS);
    }
    let p = input.preapproval;
    if p == Preapproval::NotRequired {
        if input.preapproval_requested_at.is_some() {
            errors.add("preapproval_requested_at", "goes with a pre-approval that was requested");
        }
        if !input.preapproval_reference.trim().is_empty() {
            errors.add("preapproval_reference", "goes with a pre-approval that was requested");
        }
    }
    if matches!(p, Preapproval::NotRequired | Preapproval::Requested) && input.preapproval_decided_at.is_some() {
        errors.add("preapproval_decided_at", "goes with a decided pre-approval");
    }
    if input.appeal_deadline.is_some() && !matches!(p, Preapproval::Denied | Preapproval::Appealed) {
        errors.add("appeal_deadline", "goes with a denied or appealed pre-approval");
    }
    if let (Some(requested), Some(decided)) = (input.preapproval_requested_at, input.preapproval_decided_at)
        && decided < requested
    {
        errors.add("preapproval_decided_at", "cannot be before the pre-approval was requested");
    }
    errors.into_result()
}

/// Where a row counts in the pre-approval tally: (outcome, days taken). An
/// appeal counts as the denial it answers.
fn decision_key(row: &case_insurance::Model) -> Option<(&'static str, i64)> {
    let outcome = match row.preapproval {
        Preapproval::Approved => "approved",
        Preapproval::Denied | Preapproval::Appealed => "denied",
        _ => return None,
    };
    let days = tallies::days_between(row.preapproval_requested_at?, row.preapproval_decided_at?);
    Some((outcome, days))
}

async fn count_decision<C: ConnectionTrait>(conn: &C, key: (&str, i64), n: i64) -> AppResult<()> {
    let backend = conn.get_database_backend();
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        db::placeholders(
            backend,
            "INSERT INTO tally_preapprovals (outcome, days, n) VALUES (?, ?, ?) \
             ON CONFLICT (outcome, days) DO UPDATE SET n = tally_preapprovals.n + excluded.n",
        ),
        [Value::from(key.0), Value::from(key.1), Value::from(n)],
    ))
    .await?;
    Ok(())
}

/// Records the case's insurance (replacing what was there). A decided
/// pre-approval ends a hold for pre-approval in the same write.
pub async fn put(
    db: &DatabaseConnection,
    rules: &CaseRules,
    actor: &Actor,
    case_id: CaseId,
    input: InsuranceInput,
) -> AppResult<Saved> {
    check(&input, db::now())?;
    let w = case_store::begin_case_write(db, actor, case_id.get(), CHANGED).await?;
    w.ensure_open()?;
    let before = find(&w.txn, w.case.id).await?;
    let stored_member_id = before.as_ref().map(|b| b.member_id.clone()).unwrap_or_default();
    let member_id = match input.member_id.as_deref().map(str::trim) {
        None => stored_member_id.clone(),
        Some(given) if given.contains(MASK) => {
            // Sent back as shown: the stored id stays. A mask of anything
            // else (changed meanwhile, or typed into) would store dots.
            if !stored_member_id.is_empty() && given == mask(&stored_member_id) {
                stored_member_id.clone()
            } else {
                return Err(AppError::conflict(
                    "member_id_changed",
                    "the member id was changed since it was shown; reload and type the whole id to replace it",
                ));
            }
        }
        Some(given) => given.to_string(),
    };
    let p = input.preapproval;
    let was = before.as_ref().map(|b| b.preapproval);
    // Dates left out keep what was recorded, unless the pre-approval starts
    // over (a new request) or reaches a new decision: then they are now.
    let asked_again = p == Preapproval::Requested && was.is_some_and(|w| w != Preapproval::Requested);
    let newly_decided = p.is_decided() && was != Some(p);
    // Stored to the microsecond on both databases: answered as stored.
    let micros = |at: Option<DateTime<Utc>>| at.map(|t| chrono::SubsecRound::trunc_subsecs(t, 6));
    let requested_at = micros(match p {
        Preapproval::NotRequired => None,
        _ => input
            .preapproval_requested_at
            .or(before.as_ref().and_then(|b| b.preapproval_requested_at).filter(|_| !asked_again))
            .or(Some(w.now)),
    });
    let decided_at = micros(match p {
        Preapproval::NotRequired | Preapproval::Requested => None,
        _ => input
            .preapproval_decided_at
            .or(before.as_ref().and_then(|b| b.preapproval_decided_at).filter(|_| !newly_decided))
            .or(Some(w.now)),
    });
    if let (Some(requested), Some(decided)) = (requested_at, decided_at)
        && decided < requested
    {
        return Err(FieldErrors::single("preapproval_decided_at", "cannot be before the pre-approval was requested"));
    }
    let row = case_insurance::Model {
        id: before.as_ref().map_or(0, |b| b.id),
        case_id: w.case.id,
        payer: input.payer.trim().to_string(),
        plan: input.plan.trim().to_string(),
        member_id,
        second_opinion_covered: input.second_opinion_covered,
        preapproval: p,
        preapproval_requested_at: requested_at,
        preapproval_decided_at: decided_at,
        preapproval_reference: input.preapproval_reference.trim().to_string(),
        appeal_deadline: input.appeal_deadline,
        cost_notes: input.cost_notes.clone(),
        updated_by: actor.user_id,
        updated_at: w.now,
    };
    let mut active = case_insurance::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        case_id: Set(row.case_id),
        payer: Set(row.payer.clone()),
        plan: Set(row.plan.clone()),
        member_id: Set(row.member_id.clone()),
        second_opinion_covered: Set(row.second_opinion_covered),
        preapproval: Set(row.preapproval),
        preapproval_requested_at: Set(row.preapproval_requested_at),
        preapproval_decided_at: Set(row.preapproval_decided_at),
        preapproval_reference: Set(row.preapproval_reference.clone()),
        appeal_deadline: Set(row.appeal_deadline),
        cost_notes: Set(row.cost_notes.clone()),
        updated_by: Set(row.updated_by),
        updated_at: Set(row.updated_at),
    };
    if before.is_some() {
        active.id = Set(row.id);
        active.update(&w.txn).await?;
    } else {
        active.insert(&w.txn).await?;
    }
    let (from, to) = (before.as_ref().and_then(decision_key), decision_key(&row));
    if from != to {
        if let Some(key) = from {
            count_decision(&w.txn, key, -1).await?;
        }
        if let Some(key) = to {
            count_decision(&w.txn, key, 1).await?;
        }
    }
    // The insurer answered: a case waiting for that answer goes on.
    let mut changes = Default::default();
    let mut resumed = false;
    if newly_decided
        && w.case.hold_reason == Some(HoldReason::InsurancePreapproval)
        && let Some((resume, mut detail)) = w.resumed(rules)
    {
        detail["because"] = json!("preapproval_decided");
        crate::audit::record_at(&w.txn, actor, "case.resume", Subject::case(w.case.id), detail, w.now).await?;
        changes = resume;
        resumed = true;
    }
    let detail = json!({
        "preapproval": p, "from": was, "second_opinion_covered": row.second_opinion_covered,
        "member_id_changed": before.as_ref().is_none_or(|b| b.member_id != row.member_id), "resumed": resumed,
    });
    w.commit_with(actor, changes, CHANGED, detail).await?;
    Ok(Saved { insurance: view(row, actor), resumed })
}

/// The pre-approval figures: decisions counted, median days from request
/// to decision, and the share denied.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PreapprovalFigures {
    pub decided: i64,
    pub median_days: Option<f64>,
    pub denied_share: Option<f64>,
}

#[derive(Debug, FromQueryResult)]
struct DecisionCount {
    outcome: String,
    days: i32,
    n: i64,
}

/// Reads the pre-approval tally: at most two outcomes by [`tallies::MOST_DAYS`] rows.
pub async fn figures<C: ConnectionTrait>(conn: &C) -> AppResult<PreapprovalFigures> {
    let rows = DecisionCount::find_by_statement(Statement::from_string(
        conn.get_database_backend(),
        "SELECT outcome, days, n FROM tally_preapprovals WHERE n > 0",
    ))
    .all(conn)
    .await?;
    Ok(summarise(&rows))
}

/// [`figures`] counted from every case's insurance, for checks that the
/// tally agrees with the rows; never for a page.
pub async fn figures_by_scan(db: &DatabaseConnection) -> AppResult<PreapprovalFigures> {
    let mut counted: std::collections::BTreeMap<(&'static str, i64), i64> = Default::default();
    let mut after = -1;
    loop {
        let rows = next_rows(db, after).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for key in rows.iter().filter_map(decision_key) {
            *counted.entry(key).or_default() += 1;
        }
    }
    let rows: Vec<DecisionCount> = counted
        .into_iter()
        .map(|((outcome, days), n)| DecisionCount { outcome: outcome.to_string(), days: days as i32, n })
        .collect();
    Ok(summarise(&rows))
}

async fn next_rows<C: ConnectionTrait>(conn: &C, after: i32) -> AppResult<Vec<case_insurance::Model>> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    Ok(case_insurance::Entity::find()
        .filter(case_insurance::Column::Id.gt(after))
        .order_by_asc(case_insurance::Column::Id)
        .limit(5_000)
        .all(conn)
        .await?)
}

fn summarise(rows: &[DecisionCount]) -> PreapprovalFigures {
    let counts: Vec<(i64, i64)> = rows.iter().map(|r| (i64::from(r.days), r.n)).collect();
    let decided: i64 = rows.iter().map(|r| r.n).sum();
    let denied: i64 = rows.iter().filter(|r| r.outcome == "denied").map(|r| r.n).sum();
    PreapprovalFigures {
        decided,
        median_days: tallies::median_days(&counts),
        denied_share: (decided > 0).then(|| denied as f64 / decided as f64),
    }
}

/// Counts the pre-approval tally anew from the rows (after an import or a bulk load).
pub async fn rebuild(db: &DatabaseConnection) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    txn.execute_unprepared("DELETE FROM tally_preapprovals").await?;
    let mut after = -1;
    loop {
        let rows = next_rows(&txn, after).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for key in rows.iter().filter_map(decision_key) {
            count_decision(&txn, key, 1).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_id_shows_only_its_last_four_characters() {
        assert_eq!(mask(""), "");
        assert_eq!(mask("W123456789"), "••••6789");
        assert_eq!(mask("BVH-0044-9921"), "••••9921", "the length does not show");
        // Too short to show any of it without showing half of it.
        assert_eq!(mask("AB12345"), "••••");
    }

    #[test]
    fn the_rules_of_a_preapproval_refuse_dates_that_do_not_go_with_it() {
        let now = Utc::now();
        let ok = InsuranceInput { preapproval: Preapproval::Requested, ..Default::default() };
        assert!(check(&ok, now).is_ok());
        let decided_without_decision = InsuranceInput {
            preapproval: Preapproval::Requested,
            preapproval_decided_at: Some(now),
            ..Default::default()
        };
        let refused = format!("{:?}", check(&decided_without_decision, now).expect_err("refused"));
        assert!(refused.contains("preapproval_decided_at"), "{refused}");
        let backwards = InsuranceInput {
            preapproval: Preapproval::Approved,
            preapproval_requested_at: Some(now - chrono::Duration::days(2)),
            preapproval_decided_at: Some(now - chrono::Duration::days(3)),
            ..Default::default()
        };
        assert!(check(&backwards, now).is_err());
        let deadline_too_soon = InsuranceInput {
            preapproval: Preapproval::Approved,
            appeal_deadline: NaiveDate::from_ymd_opt(2027, 1, 31),
            ..Default::default()
        };
        assert!(format!("{:?}", check(&deadline_too_soon, now)).contains("appeal_deadline"));
    }

    #[test]
    fn an_appeal_counts_as_the_denial_it_answers() {
        let at = |d: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + d * 86_400, 0).unwrap_or_default();
        let mut row = case_insurance::Model {
            id: 1,
            case_id: 1,
            payer: String::new(),
            plan: String::new(),
            member_id: String::new(),
            second_opinion_covered: Coverage::Yes,
            preapproval: Preapproval::Requested,
            preapproval_requested_at: Some(at(0)),
            preapproval_decided_at: None,
            preapproval_reference: String::new(),
            appeal_deadline: None,
            cost_notes: String::new(),
            updated_by: None,
            updated_at: at(0),
        };
        assert_eq!(decision_key(&row), None);
        row.preapproval = Preapproval::Denied;
        row.preapproval_decided_at = Some(at(6));
        assert_eq!(decision_key(&row), Some(("denied", 6)));
        row.preapproval = Preapproval::Appealed;
        assert_eq!(decision_key(&row), Some(("denied", 6)));
    }
}

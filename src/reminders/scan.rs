//! The scan: reads open cases in bounded chunks, turns them into planner
//! facts, and queues what the planner says is due. Also plans advocates'
//! digests and admins' weekly summaries.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{
    Reminders,
    outbox::{self, Draft},
    planner::{self, CaseFacts, DigestFacts, Person, Planned},
    render,
};
use crate::{
    auth::Role,
    cases::{Stage, aggregate::CaseState},
    db::entities::{case, case_round, portal_partner, specialist, user},
    error::AppResult,
    reports,
};

#[derive(Debug, Default)]
pub struct ScanReport {
    /// Reminders the planner found due and not yet queued.
    pub planned: usize,
    /// Of those, the ones this scan queued (another instance may have been first).
    pub queued: usize,
    /// In a dry run, what would have been queued.
    pub drafts: Vec<Draft>,
}

fn person(u: &user::Model) -> Person {
    Person { id: u.id, name: u.name.clone(), email: u.email.clone(), tz: u.timezone.parse().unwrap_or(Tz::UTC) }
}

pub async fn scan(reminders: &Reminders, now: DateTime<Utc>, dry_run: bool) -> AppResult<ScanReport> {
    let db = &reminders.db;
    let limit = reminders.settings.reminders.batch_size;
    let public_url = reminders.settings.public_url();
    let mut report = ScanReport::default();
    // Only the cases whose look has come, oldest first, along the partial
    // index; each look sets the next. A dry run changes nothing, so it
    // reads one chunk.
    let mut looked = 0;
    while (report.planned as u64) < limit {
        let chunk = case::Entity::find()
            .filter(case::Column::ClosedAt.is_null())
            .filter(case::Column::RemindAt.lte(now))
            .order_by_asc(case::Column::RemindAt)
            .order_by_asc(case::Column::Id)
            .limit(LOOK_CHUNK)
            .all(db)
            .await?;
        if chunk.is_empty() {
            break;
        }
        let facts = case_facts(db, &chunk).await?;
        let ids: Vec<i32> = chunk.iter().map(|c| c.id).collect();
        let queued: HashSet<String> = outbox::keys_for_cases(db, &ids).await?.into_iter().collect();
        let planned = planner::plan_cases(&reminders.rules, &facts, &queued, now);
        let room = usize::try_from(limit).unwrap_or(usize::MAX).saturating_sub(report.planned);
        let complete = planned.len() <= room;
        let mut drafts = Vec::new();
        let partners = reminded_partners(db, &ids).await?;
        let by_case: HashMap<i32, (&case::Model, &CaseFacts)> =
            chunk.iter().zip(&facts).map(|(row, fact)| (fact.case_id, (row, fact))).collect();
        for p in planned.into_iter().take(room) {
            let Some(&(row, case_facts)) = p.case_id.and_then(|id| by_case.get(&id)) else { continue };
            let unsubscribe = if p.kind.to_patient() {
                Some(format!("{public_url}/u/{}", nudge_token(db, row, dry_run).await?))
            } else {
                None
            };
            let content = render::case_content(&p, case_facts, &public_url, unsubscribe);
            // Care partners the patient chose get the appointment reminders too.
            if matches!(p.kind, planner::Kind::ConsultationSoon { .. }) {
                for partner in partners.iter().filter(|partner| partner.case_id == case_facts.case_id) {
                    let copy = Planned {
                        key: super::portal_mail::partner_copy_key(&p.key, partner.id),
                        recipient: planner::Recipient {
                            name: partner.name.clone(),
                            email: partner.email.clone(),
                            ..p.recipient.clone()
                        },
                        ..p.clone()
                    };
                    let theirs = render::for_care_partner(&content, &case_facts.patient_name, &partner.name);
                    drafts.push(render::draft(&copy, theirs)?);
                }
            }
            drafts.push(render::draft(&p, content)?);
        }
        report.planned += drafts.len();
        looked += chunk.len();
        if dry_run {
            report.drafts.extend(drafts);
            break;
        }
        // The chunk's emails and its next looks are kept together, in one
        // short write: a failure leaves the chunk due, to be planned again.
        let txn = crate::db::begin_write(db).await?;
        report.queued += outbox::enqueue_many(&txn, drafts).await?;
        if complete {
            schedule_looks(&txn, &reminders.rules, &chunk, &facts, now).await?;
        }
        txn.commit().await?;
        // Cut short by the batch limit, the chunk stays due for the next tick.
        if !complete || looked >= MAX_LOOKS_PER_SCAN {
            break;
        }
    }
    if (report.planned as u64) < limit {
        plan_people(reminders, now, dry_run, &mut report).await?;
    }
    if (report.planned as u64) < limit {
        plan_records_requests(reminders, now, dry_run, &mut report).await?;
    }
    Ok(report)
}

/// Reminders about records requests: those waiting on their provider that
/// fall due within days or are overdue (along the waiting requests' due
/// date index, at most half a year back), and receipts of the last days
/// the patient has not been told of. The outbox keys decide what is new.
async fn plan_records_requests(
    reminders: &Reminders,
    now: DateTime<Utc>,
    dry_run: bool,
    report: &mut ScanReport,
) -> AppResult<()> {
    use crate::db::entities::{records_request, records_request_kind};
    let db = &reminders.db;
    let public_url = reminders.settings.public_url();
    let limit = reminders.settings.reminders.batch_size.min(LOOK_CHUNK);
    let waiting = requests_to_raise(records_request::Entity::find(), now).limit(limit).all(db).await?;
    // Receipts recorded lately (whatever day the records came), along their index.
    let received = records_request_kind::Entity::find()
        .filter(records_request_kind::Column::RecordedAt.gte(now - Duration::days(3)))
        .order_by_asc(records_request_kind::Column::RecordedAt)
        .limit(limit)
        .all(db)
        .await?;
    let mut request_ids: Vec<i32> = received.iter().map(|k| k.request_id).collect();
    request_ids.sort_unstable();
    request_ids.dedup();
    let arrived_for = if request_ids.is_empty() {
        Vec::new()
    } else {
        records_request::Entity::find().filter(records_request::Column::Id.is_in(request_ids)).all(db).await?
    };
    let mut case_ids: Vec<i32> = waiting.iter().chain(&arrived_for).map(|r| r.case_id).collect();
    case_ids.sort_unstable();
    case_ids.dedup();
    if case_ids.is_empty() {
        return Ok(());
    }
    let cases: HashMap<i32, case::Model> = case::Entity::find()
        .filter(case::Column::Id.is_in(case_ids.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let providers = provider_names(db, waiting.iter().chain(&arrived_for).map(|r| r.provider_id)).await?;
    let advocates = active_people(db, cases.values().filter_map(|c| c.advocate_id).collect()).await?;
    let open = |case_id: i32| cases.get(&case_id).filter(|c| c.closed_at.is_none() && c.erased_at.is_none());
    let waiting_facts: Vec<planner::RequestFacts> = waiting
        .iter()
        .filter_map(|r| {
            let c = open(r.case_id)?;
            Some(planner::RequestFacts {
                request_id: r.id,
                case_id: r.case_id,
                reference: c.reference.clone(),
                provider_name: providers.get(&r.provider_id).cloned().unwrap_or_default(),
                patient_access: r.request_type == crate::vocabulary::RequestType::PatientAccess,
                due_at: r.due_at?,
                extended: r.extension_notice_received_at.is_some(),
                advocate: c.advocate_id.and_then(|id| advocates.get(&id)).cloned(),
            })
        })
        .collect();
    let mut receipts: Vec<planner::ArrivalFacts> = Vec::new();
    for k in &received {
        let Some(recorded_at) = k.recorded_at else { continue };
        let Some(r) = arrived_for.iter().find(|r| r.id == k.request_id) else { continue };
        let Some(c) = open(r.case_id) else { continue };
        match receipts.iter_mut().find(|a| a.request_id == r.id && a.recorded_at == recorded_at) {
            Some(receipt) => receipt.kinds.push(k.kind),
            None => receipts.push(planner::ArrivalFacts {
                request_id: r.id,
                case_id: r.case_id,
                provider_name: providers.get(&r.provider_id).cloned().unwrap_or_default(),
                recorded_at,
                kinds: vec![k.kind],
                patient: Person {
                    id: 0,
                    name: c.patient_name.clone(),
                    email: c.patient_email.clone(),
                    tz: c.patient_timezone.parse().unwrap_or(Tz::UTC),
                },
                nudges_stopped: c.nudges_stopped_at.is_some(),
            }),
        }
    }
    let queued: HashSet<String> = outbox::keys_for_cases(db, &case_ids).await?.into_iter().collect();
    let mut drafts = Vec::new();
    for p in planner::plan_requests(&reminders.rules, &waiting_facts, &receipts, &queued, now) {
        let content = match &p.kind {
            planner::Kind::RecordsArrived => {
                let Some(a) = receipts
                    .iter()
                    .find(|a| p.key == format!("records-arrived:{}:{}", a.request_id, a.recorded_at.timestamp()))
                else {
                    continue;
                };
                let Some(row) = cases.get(&a.case_id) else { continue };
                let unsubscribe = format!("{public_url}/u/{}", nudge_token(db, row, dry_run).await?);
                render::arrival_content(&p, a, &public_url, unsubscribe)
            }
            _ => {
                let request_id = p.key.split(':').nth(1).and_then(|id| id.parse::<i32>().ok());
                let Some(r) = waiting_facts.iter().find(|r| Some(r.request_id) == request_id) else {
                    continue;
                };
                render::request_content(&p, r, &public_url)
            }
        };
        drafts.push(render::draft(&p, content)?);
    }
    report.planned += drafts.len();
    if dry_run {
        report.drafts.extend(drafts);
    } else {
        report.queued += outbox::enqueue_many(db, drafts).await?;
    }
    Ok(())
}

/// Of `requests`, those waiting on their provider that fall due within days
/// or are overdue (at most half a year), soonest due first, along the
/// waiting requests' due date index.
fn requests_to_raise(
    requests: sea_orm::Select<crate::db::entities::records_request::Entity>,
    now: DateTime<Utc>,
) -> sea_orm::Select<crate::db::entities::records_request::Entity> {
    use crate::db::entities::records_request::Column;
    requests
        .filter(sea_orm::sea_query::Expr::cust(crate::records_requests::WAITING))
        .filter(Column::DueAt.lte(now + Duration::days(planner::REQUEST_DUE_SOON_DAYS)))
        .filter(Column::DueAt.gte(now - Duration::weeks(i64::from(planner::REQUEST_OVERDUE_WEEKS))))
        .order_by_asc(Column::DueAt)
}

/// The care partners of `case_ids` who asked for the appointment reminders.
async fn reminded_partners(db: &DatabaseConnection, case_ids: &[i32]) -> AppResult<Vec<portal_partner::Model>> {
    Ok(portal_partner::Entity::find()
        .filter(portal_partner::Column::CaseId.is_in(case_ids.to_vec()))
        .filter(portal_partner::Column::GetsReminders.eq(true))
        .filter(portal_partner::Column::RevokedAt.is_null())
        .all(db)
        .await?)
}

/// Cases read per step of a scan.
const LOOK_CHUNK: u64 = 500;
/// Cases a scan looks at before leaving the rest to the next tick, so one
/// tick stays short whatever the backlog.
const MAX_LOOKS_PER_SCAN: usize = 50_000;

/// Stores when each case of `chunk` should next be looked at, one statement
/// per [`LOOKS_PER_UPDATE`] cases. A case changed since it was read keeps
/// the sooner time its change set.
async fn schedule_looks(
    txn: &crate::db::WriteTransaction,
    rules: &planner::Rules,
    chunk: &[case::Model],
    facts: &[CaseFacts],
    now: DateTime<Utc>,
) -> AppResult<()> {
    use sea_orm::{
        ExprTrait,
        sea_query::{CaseStatement, Expr},
    };
    let looks: Vec<(&case::Model, &CaseFacts)> = chunk.iter().zip(facts).collect();
    // The database tries a CASE's branches in turn for every row, so the
    // work grows with the square of the rows per statement: short
    // statements, not one long one.
    for part in looks.chunks(LOOKS_PER_UPDATE) {
        let mut next_looks = CaseStatement::new();
        for (row, fact) in part {
            let unchanged = case::Column::Id
                .eq(row.id)
                .and(case::Column::Version.eq(row.version))
                .and(case::Column::UpdatedAt.eq(row.updated_at));
            next_looks = next_looks.case(unchanged, Expr::value(planner::next_look(rules, fact, now)));
        }
        case::Entity::update_many()
            .col_expr(case::Column::RemindAt, next_looks.finally(Expr::col(case::Column::RemindAt)).into())
            .filter(case::Column::Id.is_in(part.iter().map(|(row, _)| row.id)))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Cases whose next look one statement sets.
const LOOKS_PER_UPDATE: usize = 100;

async fn queue(
    db: &DatabaseConnection,
    planned: &Planned,
    content: render::Content,
    dry_run: bool,
    report: &mut ScanReport,
) -> AppResult<()> {
    let draft = render::draft(planned, content)?;
    report.planned += 1;
    if dry_run {
        report.drafts.push(draft);
    } else if outbox::enqueue(db, draft).await? {
        report.queued += 1;
    }
    Ok(())
}

/// The case's unsubscribe secret, made on first use for cases that predate it.
async fn nudge_token(db: &DatabaseConnection, row: &case::Model, dry_run: bool) -> AppResult<String> {
    if let Some(token) = &row.nudge_token {
        return Ok(token.clone());
    }
    let token = crate::cases::store::unsubscribe_token()?;
    if !dry_run {
        case::Entity::update_many()
            .col_expr(case::Column::NudgeToken, sea_orm::prelude::Expr::value(token.clone()))
            .filter(case::Column::Id.eq(row.id))
            .filter(case::Column::NudgeToken.is_null())
            .exec(db)
            .await?;
        // Another instance may have set one first; use whichever is stored.
        if let Some(stored) = case::Entity::find_by_id(row.id).one(db).await?.and_then(|c| c.nudge_token) {
            return Ok(stored);
        }
    }
    Ok(token)
}

/// The active staff members among `ids`, as reminders address them.
async fn active_people(db: &DatabaseConnection, ids: Vec<i32>) -> AppResult<HashMap<i32, Person>> {
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .filter(user::Column::Active.eq(true))
        .all(db)
        .await?
        .iter()
        .map(|u| (u.id, person(u)))
        .collect())
}

/// Providers' names by id.
async fn provider_names(
    db: &DatabaseConnection,
    ids: impl IntoIterator<Item = i32>,
) -> AppResult<HashMap<i32, String>> {
    Ok(crate::providers::by_id(db, ids).await?.into_iter().map(|(id, p)| (id, p.name)).collect())
}

async fn case_facts(db: &DatabaseConnection, chunk: &[case::Model]) -> AppResult<Vec<CaseFacts>> {
    let states = CaseState::load_many(db, chunk.to_vec()).await?;
    let advocates = active_people(db, chunk.iter().filter_map(|c| c.advocate_id).collect()).await?;
    let specialist_ids: Vec<i32> = states.iter().filter_map(|s| s.round.as_ref()?.specialist_id).collect();
    let specialists: HashMap<i32, String> = specialist::Entity::find()
        .filter(specialist::Column::Id.is_in(specialist_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    Ok(states
        .iter()
        .map(|state| {
            let advocate = state.row.advocate_id.and_then(|id| advocates.get(&id)).cloned();
            let specialist =
                state.round.as_ref().and_then(|r| r.specialist_id).and_then(|id| specialists.get(&id)).cloned();
            CaseFacts::of(state, advocate, specialist)
        })
        .collect())
}

/// Digests for advocates and weekly summaries for admins whose time has come.
async fn plan_people(
    reminders: &Reminders,
    now: DateTime<Utc>,
    dry_run: bool,
    report: &mut ScanReport,
) -> AppResult<()> {
    let db = &reminders.db;
    let rules = &reminders.rules;
    let public_url = reminders.settings.public_url();
    let staff = user::Entity::find().filter(user::Column::Active.eq(true)).all(db).await?;
    for member in &staff {
        let who = person(member);
        let role = Some(member.role);
        if role == Some(Role::Advocate) {
            let (key, due) = planner::digest_slot(rules, &who, now);
            if due && !outbox::key_exists(db, &key).await? {
                let content = digest_of(db, member.id, &who, now).await?;
                let facts = DigestFacts {
                    advocate: who.clone(),
                    due_today: content.due_today.len(),
                    overdue: content.overdue.len(),
                    consultations_this_week: content.consultations.len(),
                    follow_ups_due: content.follow_ups.len(),
                    portal_news: content.portal_news.len(),
                    records_requests: content.records_requests.len(),
                    appeal_deadlines: content.appeal_deadlines.len(),
                };
                for p in planner::plan_digests(rules, &[facts], &HashSet::new(), now) {
                    queue(db, &p, render::digest_content(&p, &content, &public_url), dry_run, report).await?;
                }
            }
        }
        if role == Some(Role::Admin) {
            let (key, due) = planner::weekly_slot(rules, &who, now);
            if due && !outbox::key_exists(db, &key).await? {
                let overview = reports::overview(db, now).await?;
                let overdue = overview.overdue_per_stage.iter().map(|(_, n)| n).sum();
                let decided = decided_since(db, now - Duration::days(7)).await?;
                for p in planner::plan_weekly(rules, std::slice::from_ref(&who), &HashSet::new(), now) {
                    let content = render::weekly_content(&p, &overview.open_per_stage, overdue, decided, &public_url);
                    queue(db, &p, content, dry_run, report).await?;
                }
            }
        }
    }
    Ok(())
}

async fn decided_since(db: &DatabaseConnection, since: DateTime<Utc>) -> AppResult<i64> {
    use sea_orm::PaginatorTrait;
    let n = case::Entity::find()
        .filter(case::Column::Stage.eq(Stage::DecisionMade.as_str()))
        .filter(case::Column::ClosedAt.gte(since))
        .count(db)
        .await?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

async fn digest_of(
    db: &DatabaseConnection,
    advocate_id: i32,
    who: &Person,
    now: DateTime<Utc>,
) -> AppResult<render::DigestContent> {
    let local = now.with_timezone(&who.tz);
    let end_of_day = local
        .date_naive()
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| chrono::TimeZone::from_local_datetime(&who.tz, &t).earliest())
        .map_or(now + Duration::days(1), |t| t.with_timezone(&Utc));
    // Open cases along the partial (advocate, due date) index.
    let cases = case::Entity::find()
        .filter(case::Column::AdvocateId.eq(advocate_id))
        .filter(case::Column::ClosedAt.is_null())
        .filter(case::Column::HeldSince.is_null())
        .filter(case::Column::StageDueAt.lt(end_of_day))
        .order_by_asc(case::Column::StageDueAt)
        .limit(100)
        .all(db)
        .await?;
    let label = |c: &case::Model| c.stage.label().to_string();
    let overdue = cases
        .iter()
        .filter(|c| c.stage_due_at.is_some_and(|d| d < now))
        .map(|c| (c.reference.clone(), label(c)))
        .collect();
    let due_today = cases
        .iter()
        .filter(|c| c.stage_due_at.is_some_and(|d| d >= now))
        .map(|c| (c.reference.clone(), label(c)))
        .collect();
    let mine: HashMap<i32, String> = case::Entity::find()
        .select_only()
        .column(case::Column::Id)
        .column(case::Column::Reference)
        .filter(case::Column::AdvocateId.eq(advocate_id))
        .filter(case::Column::ClosedAt.is_null())
        .into_tuple::<(i32, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let visits = case_round::Entity::find()
        .filter(case_round::Column::CaseId.is_in(mine.keys().copied().collect::<Vec<_>>()))
        .filter(case_round::Column::ConsultationHeldAt.is_null())
        .filter(case_round::Column::ConsultationScheduledAt.gte(now))
        .filter(case_round::Column::ConsultationScheduledAt.lt(now + Duration::days(7)))
        .order_by_asc(case_round::Column::ConsultationScheduledAt)
        .limit(50)
        .all(db)
        .await?;
    let consultations = visits
        .iter()
        .filter_map(|r| {
            let reference = mine.get(&r.case_id)?;
            Some(format!("{reference} — {}", render::when(r.consultation_scheduled_at?, who.tz)))
        })
        .collect();
    let today = local.date_naive();
    let follow_ups =
        crate::cases::journal::follow_ups_due(db, &crate::cases::scope::CaseScope::advocate(advocate_id), today, 50)
            .await?
            .into_iter()
            .map(|f| {
                let when =
                    if f.follow_up_on == today { "today".to_string() } else { format!("since {}", f.follow_up_on) };
                format!("{} — {}, {when}", f.reference, f.with_whom())
            })
            .collect();
    // Along the partial index of cases with portal activity, per advocate.
    let portal_news = case::Entity::find()
        .select_only()
        .column(case::Column::Reference)
        .filter(case::Column::AdvocateId.eq(advocate_id))
        .filter(case::Column::PortalActivityAt.is_not_null())
        .order_by_asc(case::Column::PortalActivityAt)
        .limit(50)
        .into_tuple::<String>()
        .all(db)
        .await?;
    let records_requests = requests_for_digest(db, advocate_id, who, now).await?;
    let appeal_deadlines = appeals_for_digest(db, advocate_id, today).await?;
    Ok(render::DigestContent {
        due_today,
        overdue,
        consultations,
        follow_ups,
        portal_news,
        records_requests,
        appeal_deadlines,
    })
}

/// The ids of the advocate's open cases, as a subquery.
fn open_cases_of(advocate_id: i32) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(case::Column::Id)
        .from(case::Entity)
        .and_where(case::Column::AdvocateId.eq(advocate_id))
        .and_where(case::Column::ClosedAt.is_null())
        .to_owned()
}

/// Denied pre-approvals of the advocate's open cases whose appeal deadline
/// is today or within the week, soonest first, along the partial index of
/// denials with a deadline: reference and the day.
async fn appeals_for_digest(db: &DatabaseConnection, advocate_id: i32, today: NaiveDate) -> AppResult<Vec<String>> {
    use crate::db::entities::case_insurance;
    let their_open_cases = open_cases_of(advocate_id);
    let denied = case_insurance::Entity::find()
        .filter(sea_orm::sea_query::Expr::cust(crate::insurance::APPEALABLE))
        .filter(case_insurance::Column::AppealDeadline.gte(today))
        .filter(case_insurance::Column::AppealDeadline.lte(today + Duration::days(7)))
        .filter(case_insurance::Column::CaseId.in_subquery(their_open_cases))
        .order_by_asc(case_insurance::Column::AppealDeadline)
        .limit(50)
        .all(db)
        .await?;
    let references: HashMap<i32, String> = case::Entity::find()
        .select_only()
        .column(case::Column::Id)
        .column(case::Column::Reference)
        .filter(case::Column::Id.is_in(denied.iter().map(|d| d.case_id).collect::<Vec<_>>()))
        .into_tuple::<(i32, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(denied
        .iter()
        .filter_map(|d| {
            let deadline = d.appeal_deadline?;
            let when = if deadline == today { "today".to_string() } else { deadline.format("%a %-d %b").to_string() };
            Some(format!("{} — appeal the denied pre-approval by {when}", references.get(&d.case_id)?))
        })
        .collect())
}

/// The advocate's records requests due within days or overdue, for the
/// digest: reference, provider, due date.
async fn requests_for_digest(
    db: &DatabaseConnection,
    advocate_id: i32,
    who: &Person,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    use crate::db::entities::records_request;
    let their_open_cases = open_cases_of(advocate_id);
    let theirs = records_request::Entity::find().filter(records_request::Column::CaseId.in_subquery(their_open_cases));
    let waiting = requests_to_raise(theirs, now).limit(50).all(db).await?;
    let case_ids: Vec<i32> = waiting.iter().map(|r| r.case_id).collect();
    let mine: HashMap<i32, String> = case::Entity::find()
        .select_only()
        .column(case::Column::Id)
        .column(case::Column::Reference)
        .filter(case::Column::Id.is_in(case_ids))
        .filter(case::Column::AdvocateId.eq(advocate_id))
        .filter(case::Column::ClosedAt.is_null())
        .into_tuple::<(i32, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let providers = provider_names(db, waiting.iter().map(|r| r.provider_id)).await?;
    Ok(waiting
        .iter()
        .filter_map(|r| {
            let reference = mine.get(&r.case_id)?;
            let due = r.due_at?;
            let when = if due < now {
                format!("overdue since {}", render::when(due, who.tz))
            } else {
                format!("due {}", render::when(due, who.tz))
            };
            Some(format!("{reference} — {}, {when}", providers.get(&r.provider_id).map_or("", String::as_str)))
        })
        .take(50)
        .collect())
}

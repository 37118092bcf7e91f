//! The scan: reads open cases in bounded chunks, turns them into planner
//! facts, and queues what the planner says is due. Also plans advocates'
//! digests and admins' weekly summaries.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
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
        for p in planned.into_iter().take(room) {
            let Some(case_facts) = facts.iter().find(|f| Some(f.case_id) == p.case_id) else { continue };
            let row = chunk.iter().find(|c| Some(c.id) == p.case_id);
            let unsubscribe = match (p.kind.to_patient(), row) {
                (true, Some(row)) => Some(format!("{public_url}/u/{}", nudge_token(db, row, dry_run).await?)),
                _ => None,
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
    Ok(report)
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

/// Stores when each case of `chunk` should next be looked at. A case changed
/// since it was read keeps the sooner time its change set.
async fn schedule_looks(
    txn: &crate::db::WriteTransaction,
    rules: &planner::Rules,
    chunk: &[case::Model],
    facts: &[CaseFacts],
    now: DateTime<Utc>,
) -> AppResult<()> {
    for (row, fact) in chunk.iter().zip(facts) {
        let next = planner::next_look(rules, fact, now);
        case::Entity::update_many()
            .col_expr(case::Column::RemindAt, sea_orm::prelude::Expr::value(next))
            .filter(case::Column::Id.eq(row.id))
            .filter(case::Column::Version.eq(row.version))
            .filter(case::Column::UpdatedAt.eq(row.updated_at))
            .exec(txn)
            .await?;
    }
    Ok(())
}

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

async fn case_facts(db: &DatabaseConnection, chunk: &[case::Model]) -> AppResult<Vec<CaseFacts>> {
    let states = CaseState::load_many(db, chunk.to_vec()).await?;
    let advocate_ids: Vec<i32> = chunk.iter().filter_map(|c| c.advocate_id).collect();
    let advocates: HashMap<i32, Person> = user::Entity::find()
        .filter(user::Column::Id.is_in(advocate_ids))
        .filter(user::Column::Active.eq(true))
        .all(db)
        .await?
        .iter()
        .map(|u| (u.id, person(u)))
        .collect();
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
    Ok(render::DigestContent { due_today, overdue, consultations, follow_ups, portal_news })
}

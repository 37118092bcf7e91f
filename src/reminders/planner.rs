//! The reminder planner: from plain facts about cases and people, what has
//! already been queued, and `now`, decides which reminders are due. No
//! database, no clock. Each reminder has a key naming its slot (case, kind,
//! stage entry, day…), so planning twice, late or on several instances
//! yields the same keys, and only the slot that is still useful now is
//! planned — never a backlog of stale ones.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::cases::{
    Stage,
    aggregate::CaseState,
    values::{ConsultationMode, RecordKind},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub due_soon_window: Duration,
    pub overdue_max: u32,
    pub digest_time: NaiveTime,
    pub records_nudge_every: Duration,
    pub records_nudge_max: u32,
    pub quiet_start: NaiveTime,
    pub quiet_end: NaiveTime,
    pub weekly_summary_day: Weekday,
}

impl Rules {
    /// The rules the settings give, checked: times of day, weekday, durations.
    pub fn from_settings(r: &crate::config::ReminderSettings) -> Result<Rules, String> {
        use crate::config::ReminderSettings as R;
        Ok(Rules {
            due_soon_window: R::span("due_soon_window", r.due_soon_window)?,
            overdue_max: r.overdue_max,
            digest_time: R::time_of_day("digest_time", &r.digest_time)?,
            records_nudge_every: R::span("records_nudge_every", r.records_nudge_every)?,
            records_nudge_max: r.records_nudge_max,
            quiet_start: R::time_of_day("quiet_start", &r.quiet_start)?,
            quiet_end: R::time_of_day("quiet_end", &r.quiet_end)?,
            weekly_summary_day: r.weekday()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i32,
    pub name: String,
    pub email: String,
    pub tz: Tz,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consultation {
    pub scheduled_at: DateTime<Utc>,
    pub virtual_visit: bool,
    pub location: Option<String>,
    pub held_at: Option<DateTime<Utc>>,
}

/// What the planner needs to know about one open case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    pub case_id: i32,
    pub reference: String,
    pub stage: Stage,
    pub round: i32,
    pub stage_entered_at: DateTime<Utc>,
    pub stage_due_at: Option<DateTime<Utc>>,
    pub held: bool,
    pub advocate: Option<Person>,
    pub patient_name: String,
    pub patient_email: String,
    pub patient_tz: Tz,
    pub nudges_stopped: bool,
    pub records_outstanding: Vec<RecordKind>,
    pub consultation: Option<Consultation>,
    pub specialist_name: Option<String>,
    pub current_round_opinion: bool,
    /// The patient's own questions for the consultation.
    pub patient_questions: Vec<String>,
}

impl CaseFacts {
    /// What the planner reads of a case: its state, plus the names the state
    /// only refers to (an active advocate, the round's specialist).
    pub fn of(state: &CaseState, advocate: Option<Person>, specialist_name: Option<String>) -> Self {
        let c = &state.row;
        let consultation = state.round.as_ref().and_then(|r| {
            Some(Consultation {
                scheduled_at: r.consultation_scheduled_at?,
                virtual_visit: r.consultation_mode == Some(ConsultationMode::Virtual),
                location: r.consultation_location.clone(),
                held_at: r.consultation_held_at,
            })
        });
        CaseFacts {
            case_id: c.id,
            reference: c.reference.clone(),
            stage: c.stage,
            round: c.round,
            stage_entered_at: c.stage_entered_at,
            stage_due_at: c.stage_due_at,
            held: state.is_held(),
            advocate,
            patient_name: c.patient_name.clone(),
            patient_email: c.patient_email.clone(),
            patient_tz: c.patient_timezone.parse().unwrap_or(Tz::UTC),
            nudges_stopped: c.nudges_stopped_at.is_some(),
            records_outstanding: state.records_outstanding(),
            consultation,
            specialist_name,
            current_round_opinion: state.has_opinion(c.round),
            patient_questions: crate::portal::questions::split(&c.patient_questions).0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    DueSoon,
    Overdue {
        day: u32,
    },
    RecordsNudge {
        number: u32,
    },
    ConsultationSoon {
        days_before: u32,
    },
    ReportRequest,
    Digest,
    WeeklySummary,
    /// A records request falls due within `REQUEST_DUE_SOON_DAYS`.
    RequestDueSoon,
    /// A records request is overdue, in its `week`th week; `complaint`
    /// when it is a patient's access request past its extension.
    RequestOverdue {
        week: u32,
        complaint: bool,
    },
    /// Records a provider sent arrived: the patient is told.
    RecordsArrived,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::DueSoon => "due_soon",
            Kind::Overdue { .. } => "overdue",
            Kind::RecordsNudge { .. } => "records_nudge",
            Kind::ConsultationSoon { .. } => "consultation_reminder",
            Kind::ReportRequest => "report_request",
            Kind::Digest => "digest",
            Kind::WeeklySummary => "weekly_summary",
            Kind::RequestDueSoon => "records_request_due_soon",
            Kind::RequestOverdue { .. } => "records_request_overdue",
            Kind::RecordsArrived => "records_arrived",
        }
    }

    pub fn to_patient(&self) -> bool {
        matches!(
            self,
            Kind::RecordsNudge { .. } | Kind::ConsultationSoon { .. } | Kind::ReportRequest | Kind::RecordsArrived
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: String,
    pub email: String,
    pub tz: Tz,
}

/// One reminder to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub key: String,
    pub kind: Kind,
    pub case_id: Option<i32>,
    pub recipient: Recipient,
    /// Not before this time (patients' quiet hours).
    pub send_after: DateTime<Utc>,
}

/// An advocate's caseload for the daily digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestFacts {
    pub advocate: Person,
    pub due_today: usize,
    pub overdue: usize,
    pub consultations_this_week: usize,
    /// Contact follow-ups due today or earlier and not yet done.
    pub follow_ups_due: usize,
    /// Cases where the patient did something in the portal not yet looked at.
    pub portal_news: usize,
    /// Records requests due within days or overdue.
    pub records_requests: usize,
    /// Denied pre-approvals whose appeal deadline falls within the week.
    pub appeal_deadlines: usize,
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// The start of quiet hours today, or the end of them if `now` falls inside.
pub fn outside_quiet_hours(rules: &Rules, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&tz);
    let time = local.time();
    let in_quiet = if rules.quiet_start > rules.quiet_end {
        time >= rules.quiet_start || time < rules.quiet_end
    } else {
        time >= rules.quiet_start && time < rules.quiet_end
    };
    if !in_quiet {
        return now;
    }
    let date = if time >= rules.quiet_end { local.date_naive() + Duration::days(1) } else { local.date_naive() };
    local_time_on(tz, date, rules.quiet_end).unwrap_or(now)
}

/// A wall-clock time on a local date; in a spring-forward gap, the first
/// instant after it.
fn local_time_on(tz: Tz, date: chrono::NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let naive = date.and_time(time);
    (0..4)
        .find_map(|hour| tz.from_local_datetime(&(naive + Duration::hours(hour))).earliest())
        .map(|t| t.with_timezone(&Utc))
}

/// Days before a records request's due date its advocate is reminded.
pub const REQUEST_DUE_SOON_DAYS: i64 = 5;
/// Weeks an overdue records request keeps being raised.
pub const REQUEST_OVERDUE_WEEKS: u32 = 26;

/// What the planner reads of a records request still waiting on its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub request_id: i32,
    pub case_id: i32,
    pub reference: String,
    pub provider_name: String,
    pub patient_access: bool,
    pub due_at: DateTime<Utc>,
    pub extended: bool,
    pub advocate: Option<Person>,
}

/// Records that arrived for a request, for telling the patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrivalFacts {
    pub request_id: i32,
    pub case_id: i32,
    pub provider_name: String,
    /// When this receipt was recorded; one email per receipt.
    pub recorded_at: DateTime<Utc>,
    pub kinds: Vec<RecordKind>,
    pub patient: Person,
    pub nudges_stopped: bool,
}

/// Plans reminders about records requests: the advocate a few days before
/// one is due and weekly once it is overdue (a later due date after an
/// extension starts afresh), and the patient when records arrived, outside
/// their quiet hours.
pub fn plan_requests(
    rules: &Rules,
    waiting: &[RequestFacts],
    arrivals: &[ArrivalFacts],
    queued: &HashSet<String>,
    now: DateTime<Utc>,
) -> Vec<Planned> {
    let mut out = Vec::new();
    for r in waiting {
        let Some(advocate) = &r.advocate else { continue };
        let to = Recipient { name: advocate.name.clone(), email: advocate.email.clone(), tz: advocate.tz };
        let (id, due) = (r.request_id, ts(r.due_at));
        let planned = if r.due_at > now && r.due_at - now <= Duration::days(REQUEST_DUE_SOON_DAYS) {
            Some((format!("request-due-soon:{id}:{due}"), Kind::RequestDueSoon))
        } else if r.due_at <= now {
            let week = u32::try_from((now - r.due_at).num_days() / 7).unwrap_or(u32::MAX);
            (week < REQUEST_OVERDUE_WEEKS).then(|| {
                let complaint = r.patient_access && r.extended;
                (format!("request-overdue:{id}:{due}:{week}"), Kind::RequestOverdue { week, complaint })
            })
        } else {
            None
        };
        if let Some((key, kind)) = planned.filter(|(key, _)| !queued.contains(key)) {
            out.push(Planned { key, kind, case_id: Some(r.case_id), recipient: to, send_after: now });
        }
    }
    for a in arrivals.iter().filter(|a| !a.nudges_stopped) {
        let key = format!("records-arrived:{}:{}", a.request_id, ts(a.recorded_at));
        if queued.contains(&key) {
            continue;
        }
        let to = Recipient { name: a.patient.name.clone(), email: a.patient.email.clone(), tz: a.patient.tz };
        let send_after = outside_quiet_hours(rules, a.patient.tz, now);
        out.push(Planned { key, kind: Kind::RecordsArrived, case_id: Some(a.case_id), recipient: to, send_after });
    }
    out
}

/// Plans reminders about cases (advocates and patients).
pub fn plan_cases(rules: &Rules, cases: &[CaseFacts], queued: &HashSet<String>, now: DateTime<Utc>) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut push = |p: Planned| {
        if !queued.contains(&p.key) {
            out.push(p);
        }
    };
    for case in cases.iter().filter(|c| !c.stage.is_final()) {
        let entered = ts(case.stage_entered_at);
        let stage = case.stage.as_str();
        let id = case.case_id;
        if let (Some(advocate), Some(due), false) = (&case.advocate, case.stage_due_at, case.held) {
            let to_advocate = Recipient { name: advocate.name.clone(), email: advocate.email.clone(), tz: advocate.tz };
            if due > now && due - now <= rules.due_soon_window {
                push(Planned {
                    key: format!("due-soon:{id}:{stage}:{entered}"),
                    kind: Kind::DueSoon,
                    case_id: Some(id),
                    recipient: to_advocate.clone(),
                    send_after: now,
                });
            } else if due <= now {
                let day = u32::try_from((now - due).num_days()).unwrap_or(u32::MAX);
                if day < rules.overdue_max {
                    push(Planned {
                        key: format!("overdue:{id}:{stage}:{entered}:{day}"),
                        kind: Kind::Overdue { day },
                        case_id: Some(id),
                        recipient: to_advocate,
                        send_after: now,
                    });
                }
            }
        }
        if case.nudges_stopped {
            continue;
        }
        let patient =
            Recipient { name: case.patient_name.clone(), email: case.patient_email.clone(), tz: case.patient_tz };
        let quiet = |at: DateTime<Utc>| outside_quiet_hours(rules, case.patient_tz, at);
        if case.stage == Stage::RecordsRequested && !case.records_outstanding.is_empty() {
            let every = rules.records_nudge_every.num_seconds().max(1);
            let number = u32::try_from((now - case.stage_entered_at).num_seconds() / every).unwrap_or(0);
            if (1..=rules.records_nudge_max).contains(&number) {
                push(Planned {
                    key: format!("records:{id}:{entered}:{number}"),
                    kind: Kind::RecordsNudge { number },
                    case_id: Some(id),
                    recipient: patient.clone(),
                    send_after: quiet(now),
                });
            }
        }
        if let Some(visit) = case.consultation.as_ref().filter(|v| v.held_at.is_none()) {
            let left = visit.scheduled_at - now;
            let days_before = if left > Duration::days(1) && left <= Duration::days(3) {
                Some(3)
            } else if left > Duration::zero() && left <= Duration::days(1) {
                Some(1)
            } else {
                None
            };
            if let Some(days_before) = days_before {
                let send_after = quiet(now);
                // Held back past the visit itself, the reminder would be useless.
                if send_after < visit.scheduled_at {
                    push(Planned {
                        key: format!("consult:{id}:{}:{}:{days_before}", case.round, ts(visit.scheduled_at)),
                        kind: Kind::ConsultationSoon { days_before },
                        case_id: Some(id),
                        recipient: patient.clone(),
                        send_after,
                    });
                }
            }
        }
        if case.stage == Stage::ConsultationHeld
            && !case.current_round_opinion
            && case.consultation.as_ref().and_then(|v| v.held_at).is_some_and(|held| now - held >= Duration::days(1))
        {
            push(Planned {
                key: format!("report:{id}:{}", case.round),
                kind: Kind::ReportRequest,
                case_id: Some(id),
                recipient: patient,
                send_after: quiet(now),
            });
        }
    }
    out
}

/// The longest the scan leaves an open case unread, so that what the case's
/// facts do not carry (an advocate's new time zone, say) still reaches it.
pub const LOOK_AT_LEAST_EVERY: Duration = Duration::days(1);

/// When [`plan_cases`] could next plan something new for `case`, if its
/// facts stay as they are: the next slot boundary after `now` (a stage
/// coming due, the next overdue day, the next records nudge, a visit three
/// days or one day away, a report a day after the visit), and no later than
/// a day from now. A change to the case brings the look forward anyway.
pub fn next_look(rules: &Rules, case: &CaseFacts, now: DateTime<Utc>) -> DateTime<Utc> {
    let mut times: Vec<DateTime<Utc>> = vec![now + LOOK_AT_LEAST_EVERY];
    if let (Some(_), Some(due), false) = (&case.advocate, case.stage_due_at, case.held) {
        times.push(due - rules.due_soon_window);
        times.push(due);
        if due <= now {
            let next_day = (now - due).num_days() + 1;
            if next_day < i64::from(rules.overdue_max) {
                times.push(due + Duration::days(next_day));
            }
        }
    }
    if !case.nudges_stopped {
        if case.stage == Stage::RecordsRequested && !case.records_outstanding.is_empty() {
            let every = rules.records_nudge_every.num_seconds().max(1);
            let next = (now - case.stage_entered_at).num_seconds().div_euclid(every) + 1;
            if next <= i64::from(rules.records_nudge_max) {
                times.push(case.stage_entered_at + Duration::seconds(next.saturating_mul(every)));
            }
        }
        if let Some(visit) = case.consultation.as_ref() {
            if visit.held_at.is_none() {
                times.push(visit.scheduled_at - Duration::days(3));
                times.push(visit.scheduled_at - Duration::days(1));
            }
            if let Some(held) = visit.held_at {
                times.push(held + Duration::days(1));
            }
        }
    }
    // Every slot begins at its boundary (inclusive); one reached exactly now
    // was planned by this look, so the next lies strictly ahead.
    times.into_iter().filter(|t| *t > now).min().unwrap_or(now + LOOK_AT_LEAST_EVERY)
}

/// The key of today's digest for `person` and whether its local time has come.
pub fn digest_slot(rules: &Rules, person: &Person, now: DateTime<Utc>) -> (String, bool) {
    let local_date = now.with_timezone(&person.tz).date_naive();
    let due = local_time_on(person.tz, local_date, rules.digest_time).is_some_and(|at| now >= at);
    (format!("digest:{}:{local_date}", person.id), due)
}

/// Plans advocates' daily digests: at the digest time on their local day,
/// and only on that day; nothing when there is nothing to say.
pub fn plan_digests(
    rules: &Rules,
    advocates: &[DigestFacts],
    queued: &HashSet<String>,
    now: DateTime<Utc>,
) -> Vec<Planned> {
    advocates
        .iter()
        .filter(|d| {
            d.due_today
                + d.overdue
                + d.consultations_this_week
                + d.follow_ups_due
                + d.portal_news
                + d.records_requests
                + d.appeal_deadlines
                > 0
        })
        .filter_map(|d| {
            let (key, due) = digest_slot(rules, &d.advocate, now);
            (due && !queued.contains(&key)).then(|| Planned {
                key,
                kind: Kind::Digest,
                case_id: None,
                recipient: Recipient {
                    name: d.advocate.name.clone(),
                    email: d.advocate.email.clone(),
                    tz: d.advocate.tz,
                },
                send_after: now,
            })
        })
        .collect()
}

/// The key of this week's summary for `person` and whether its time has come.
pub fn weekly_slot(rules: &Rules, person: &Person, now: DateTime<Utc>) -> (String, bool) {
    let week = now.with_timezone(&person.tz).iso_week();
    let due = chrono::NaiveDate::from_isoywd_opt(week.year(), week.week(), rules.weekly_summary_day)
        .and_then(|day| local_time_on(person.tz, day, rules.digest_time))
        .is_some_and(|at| now >= at);
    (format!("weekly:{}:{}-W{:02}", person.id, week.year(), week.week()), due)
}

/// Plans admins' weekly summaries: from the configured weekday and time,
/// through the rest of that (ISO) week.
pub fn plan_weekly(rules: &Rules, admins: &[Person], queued: &HashSet<String>, now: DateTime<Utc>) -> Vec<Planned> {
    admins
        .iter()
        .filter_map(|admin| {
            let (key, due) = weekly_slot(rules, admin, now);
            (due && !queued.contains(&key)).then(|| Planned {
                key,
                kind: Kind::WeeklySummary,
                case_id: None,
                recipient: Recipient { name: admin.name.clone(), email: admin.email.clone(), tz: admin.tz },
                send_after: now,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            due_soon_window: Duration::hours(24),
            overdue_max: 7,
            digest_time: NaiveTime::from_hms_opt(7, 30, 0).expect("time"),
            records_nudge_every: Duration::days(4),
            records_nudge_max: 3,
            quiet_start: NaiveTime::from_hms_opt(21, 0, 0).expect("time"),
            quiet_end: NaiveTime::from_hms_opt(8, 0, 0).expect("time"),
            weekly_summary_day: Weekday::Mon,
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("valid time")
    }

    fn tz(name: &str) -> Tz {
        name.parse().expect("zone")
    }

    fn advocate() -> Person {
        Person { id: 7, name: "Avery".into(), email: "avery@example.org".into(), tz: tz("America/New_York") }
    }

    fn case(now: DateTime<Utc>) -> CaseFacts {
        CaseFacts {
            case_id: 1,
            reference: "SO-2026-000001".into(),
            stage: Stage::RecordsRequested,
            round: 2,
            stage_entered_at: now - Duration::days(1),
            stage_due_at: Some(now + Duration::days(13)),
            held: false,
            advocate: Some(advocate()),
            patient_name: "Pat".into(),
            patient_email: "pat@example.org".into(),
            patient_tz: tz("Europe/Berlin"),
            nudges_stopped: false,
            records_outstanding: vec![RecordKind::LabResults],
            consultation: None,
            specialist_name: None,
            current_round_opinion: false,
            patient_questions: Vec::new(),
        }
    }

    /// Nothing new is planned between one look and the next: every key the
    /// planner would give at any hour before the next look, it gave already.
    #[test]
    fn nothing_new_comes_due_before_the_next_look() {
        let start = utc(2026, 6, 10, 12, 0);
        let visit = |at: DateTime<Utc>, held: Option<DateTime<Utc>>| Consultation {
            scheduled_at: at,
            virtual_visit: false,
            location: None,
            held_at: held,
        };
        let scenarios = vec![
            case(start),
            CaseFacts { stage_due_at: Some(start + Duration::hours(30)), ..case(start) },
            CaseFacts { stage_due_at: Some(start - Duration::hours(50)), ..case(start) },
            CaseFacts {
                stage: Stage::SpecialistChosen,
                records_outstanding: vec![],
                consultation: Some(visit(start + Duration::hours(80), None)),
                ..case(start)
            },
            CaseFacts {
                stage: Stage::ConsultationHeld,
                records_outstanding: vec![],
                consultation: Some(visit(start - Duration::hours(3), Some(start - Duration::hours(3)))),
                ..case(start)
            },
        ];
        for facts in scenarios {
            let mut now = start;
            let mut queued = HashSet::new();
            // Follow the case for three weeks, looking only when told to.
            while now < start + Duration::days(21) {
                for p in plan_cases(&rules(), std::slice::from_ref(&facts), &queued, now) {
                    queued.insert(p.key);
                }
                let next = next_look(&rules(), &facts, now);
                assert!(next > now && next <= now + LOOK_AT_LEAST_EVERY);
                let mut hour = now + Duration::hours(1);
                while hour < next {
                    let missed = plan_cases(&rules(), std::slice::from_ref(&facts), &queued, hour);
                    assert!(missed.is_empty(), "at {hour}, before the look at {next}: {missed:?}");
                    hour += Duration::hours(1);
                }
                now = next;
            }
        }
    }

    fn kinds(planned: &[Planned]) -> Vec<Kind> {
        planned.iter().map(|p| p.kind.clone()).collect()
    }

    #[test]
    fn a_stage_due_within_a_day_warns_the_advocate_once() {
        let now = utc(2026, 6, 10, 12, 0);
        let c = CaseFacts { stage_due_at: Some(now + Duration::hours(20)), ..case(now) };
        let planned = plan_cases(&rules(), std::slice::from_ref(&c), &HashSet::new(), now);
        assert_eq!(kinds(&planned), vec![Kind::DueSoon]);
        assert_eq!(planned[0].recipient.email, "avery@example.org");
        let queued: HashSet<String> = planned.iter().map(|p| p.key.clone()).collect();
        assert!(plan_cases(&rules(), &[c], &queued, now + Duration::hours(1)).is_empty(), "never twice");
    }

    #[test]
    fn overdue_notices_come_daily_at_most_seven_times_and_never_as_a_backlog() {
        let now = utc(2026, 6, 10, 12, 0);
        let due = now - Duration::hours(2);
        let c = CaseFacts { stage_due_at: Some(due), ..case(now) };
        let to_advocate =
            |planned: Vec<Planned>| kinds(&planned).into_iter().filter(|k| !k.to_patient()).collect::<Vec<_>>();
        let day0 = plan_cases(&rules(), std::slice::from_ref(&c), &HashSet::new(), now);
        assert_eq!(to_advocate(day0), vec![Kind::Overdue { day: 0 }]);
        // Back after five days of downtime: one notice for today, not five.
        let later = plan_cases(
            &rules(),
            std::slice::from_ref(&c),
            &HashSet::new(),
            due + Duration::days(5) + Duration::hours(1),
        );
        assert_eq!(to_advocate(later), vec![Kind::Overdue { day: 5 }]);
        let after_a_week = due + Duration::days(7) + Duration::hours(1);
        assert!(to_advocate(plan_cases(&rules(), std::slice::from_ref(&c), &HashSet::new(), after_a_week)).is_empty());
        // Held cases get no due or overdue reminders.
        let held = CaseFacts { held: true, ..c };
        assert!(kinds(&plan_cases(&rules(), &[held], &HashSet::new(), now)).iter().all(|k| k.to_patient()));
    }

    #[test]
    fn records_nudges_come_every_n_days_capped() {
        let entered = utc(2026, 6, 1, 10, 0);
        let c = CaseFacts { stage_entered_at: entered, ..case(entered) };
        let at = |days: i64| entered + Duration::days(days) + Duration::hours(1);
        assert!(
            plan_cases(&rules(), std::slice::from_ref(&c), &HashSet::new(), at(2))
                .iter()
                .all(|p| p.kind != Kind::RecordsNudge { number: 0 })
        );
        let nudges = |days| {
            plan_cases(&rules(), std::slice::from_ref(&c), &HashSet::new(), at(days))
                .into_iter()
                .filter(|p| matches!(p.kind, Kind::RecordsNudge { .. }))
                .map(|p| p.kind)
                .collect::<Vec<_>>()
        };
        assert!(nudges(2).is_empty());
        assert_eq!(nudges(4), vec![Kind::RecordsNudge { number: 1 }]);
        assert_eq!(nudges(9), vec![Kind::RecordsNudge { number: 2 }]);
        assert!(nudges(16).is_empty(), "capped at three");
        let none_missing = CaseFacts { records_outstanding: vec![], ..c.clone() };
        assert!(plan_cases(&rules(), &[none_missing], &HashSet::new(), at(4)).iter().all(|p| !p.kind.to_patient()));
        let stopped = CaseFacts { nudges_stopped: true, ..c };
        assert!(plan_cases(&rules(), &[stopped], &HashSet::new(), at(4)).iter().all(|p| !p.kind.to_patient()));
    }

    #[test]
    fn patients_are_not_emailed_at_night_in_their_own_zone() {
        // 22:30 in Tokyo (UTC+9) is 13:30 UTC.
        let now = utc(2026, 6, 10, 13, 30);
        let send = outside_quiet_hours(&rules(), tz("Asia/Tokyo"), now);
        assert_eq!(send, utc(2026, 6, 10, 23, 0), "08:00 the next morning in Tokyo");
        // 05:00 in Los Angeles (UTC-7 in June) is 12:00 UTC: wait until 08:00 the same day.
        let send = outside_quiet_hours(&rules(), tz("America/Los_Angeles"), utc(2026, 6, 10, 12, 0));
        assert_eq!(send, utc(2026, 6, 10, 15, 0));
        // Daytime in Berlin goes at once.
        assert_eq!(
            outside_quiet_hours(&rules(), tz("Europe/Berlin"), utc(2026, 6, 10, 10, 0)),
            utc(2026, 6, 10, 10, 0)
        );
    }

    #[test]
    fn quiet_hours_follow_daylight_saving_changes() {
        // Europe/Berlin springs forward on 29 March 2026: 08:00 local is 06:00 UTC, not 07:00.
        let night = utc(2026, 3, 28, 22, 30);
        assert_eq!(outside_quiet_hours(&rules(), tz("Europe/Berlin"), night), utc(2026, 3, 29, 6, 0));
        // New York falls back on 1 November 2026: 08:00 local is 13:00 UTC that day.
        let night = utc(2026, 11, 1, 5, 0);
        assert_eq!(outside_quiet_hours(&rules(), tz("America/New_York"), night), utc(2026, 11, 1, 13, 0));
    }

    #[test]
    fn consultation_reminders_come_three_days_and_one_day_before_and_not_after() {
        let visit = utc(2026, 6, 20, 14, 0);
        let c = CaseFacts {
            stage: Stage::SpecialistChosen,
            consultation: Some(Consultation {
                scheduled_at: visit,
                virtual_visit: true,
                location: None,
                held_at: None,
            }),
            records_outstanding: vec![],
            ..case(visit - Duration::days(10))
        };
        let reminder = |now| {
            plan_cases(&rules(), std::slice::from_ref(&c), &HashSet::new(), now)
                .into_iter()
                .filter(|p| matches!(p.kind, Kind::ConsultationSoon { .. }))
                .collect::<Vec<_>>()
        };
        assert!(reminder(visit - Duration::days(4)).is_empty());
        assert_eq!(
            reminder(visit - Duration::days(3) + Duration::hours(1))[0].kind,
            Kind::ConsultationSoon { days_before: 3 }
        );
        assert_eq!(reminder(visit - Duration::hours(20))[0].kind, Kind::ConsultationSoon { days_before: 1 });
        assert!(
            reminder(visit + Duration::hours(1)).is_empty(),
            "a visit that has passed is not reminded after downtime"
        );
        // The keys carry the time, so a rescheduled visit is reminded again.
        let first = reminder(visit - Duration::hours(20))[0].key.clone();
        let moved = CaseFacts {
            consultation: Some(Consultation {
                scheduled_at: visit + Duration::hours(2),
                virtual_visit: true,
                location: None,
                held_at: None,
            }),
            ..c.clone()
        };
        let again = plan_cases(&rules(), &[moved], &HashSet::from([first.clone()]), visit - Duration::hours(20));
        assert!(again.iter().any(|p| matches!(p.kind, Kind::ConsultationSoon { .. }) && p.key != first));
    }

    #[test]
    fn a_report_is_asked_for_a_day_after_the_consultation() {
        let held = utc(2026, 6, 20, 14, 0);
        let c = CaseFacts {
            stage: Stage::ConsultationHeld,
            consultation: Some(Consultation {
                scheduled_at: held,
                virtual_visit: false,
                location: None,
                held_at: Some(held),
            }),
            records_outstanding: vec![],
            stage_due_at: Some(held + Duration::days(7)),
            ..case(held)
        };
        let report = |c: &CaseFacts, now| {
            plan_cases(&rules(), std::slice::from_ref(c), &HashSet::new(), now)
                .into_iter()
                .any(|p| p.kind == Kind::ReportRequest)
        };
        assert!(!report(&c, held + Duration::hours(3)));
        assert!(report(&c, held + Duration::days(1) + Duration::hours(1)));
        let recorded = CaseFacts { current_round_opinion: true, ..c };
        assert!(!report(&recorded, held + Duration::days(2)));
    }

    #[test]
    fn digests_go_at_local_time_only_on_their_day_and_only_with_news() {
        let facts = DigestFacts {
            advocate: advocate(),
            due_today: 1,
            overdue: 0,
            consultations_this_week: 0,
            follow_ups_due: 0,
            portal_news: 0,
            records_requests: 0,
            appeal_deadlines: 0,
        };
        // 07:30 in New York on 10 June (EDT, UTC-4) is 11:30 UTC.
        assert!(
            plan_digests(&rules(), std::slice::from_ref(&facts), &HashSet::new(), utc(2026, 6, 10, 11, 0)).is_empty()
        );
        let planned = plan_digests(&rules(), std::slice::from_ref(&facts), &HashSet::new(), utc(2026, 6, 10, 11, 45));
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].key, "digest:7:2026-06-10");
        // In winter (EST, UTC-5) the same local time is 12:30 UTC.
        assert!(
            plan_digests(&rules(), std::slice::from_ref(&facts), &HashSet::new(), utc(2026, 12, 10, 12, 0)).is_empty()
        );
        assert_eq!(
            plan_digests(&rules(), std::slice::from_ref(&facts), &HashSet::new(), utc(2026, 12, 10, 12, 45)).len(),
            1
        );
        let quiet = DigestFacts { due_today: 0, ..facts };
        assert!(
            plan_digests(&rules(), std::slice::from_ref(&quiet), &HashSet::new(), utc(2026, 6, 10, 12, 0)).is_empty()
        );
        // A follow-up alone is worth a digest.
        let calling = DigestFacts { follow_ups_due: 1, ..quiet.clone() };
        assert_eq!(plan_digests(&rules(), &[calling], &HashSet::new(), utc(2026, 6, 10, 12, 0)).len(), 1);
        // So is something a patient did in the portal.
        let news = DigestFacts { portal_news: 1, ..quiet };
        assert_eq!(plan_digests(&rules(), &[news], &HashSet::new(), utc(2026, 6, 10, 12, 0)).len(), 1);
    }

    fn request(now: DateTime<Utc>, due_in: Duration) -> RequestFacts {
        RequestFacts {
            request_id: 9,
            case_id: 1,
            reference: "SO-2026-000001".into(),
            provider_name: "Mercy".into(),
            patient_access: true,
            due_at: now + due_in,
            extended: false,
            advocate: Some(advocate()),
        }
    }

    /// Plans at each hour from `start` for `hours`, queueing what is planned
    /// as the outbox would; every key planned, in order.
    fn plan_hourly(
        waiting: &[RequestFacts],
        arrivals: &[ArrivalFacts],
        start: DateTime<Utc>,
        hours: i64,
    ) -> Vec<Planned> {
        let mut queued = HashSet::new();
        let mut all = Vec::new();
        for hour in 0..hours {
            for p in plan_requests(&rules(), waiting, arrivals, &queued, start + Duration::hours(hour)) {
                assert!(queued.insert(p.key.clone()), "{} planned twice", p.key);
                all.push(p);
            }
        }
        all
    }

    #[test]
    fn a_request_is_raised_once_before_it_is_due_then_weekly_while_overdue() {
        let start = utc(2026, 6, 1, 9, 0);
        let waiting = [request(start, Duration::days(7))];
        let planned = plan_hourly(&waiting, &[], start, 24 * 30);
        let kinds: Vec<&Kind> = planned.iter().map(|p| &p.kind).collect();
        assert_eq!(kinds[0], &Kind::RequestDueSoon, "{kinds:?}");
        assert_eq!(planned[0].send_after, start + Duration::days(2), "five days before");
        assert_eq!(planned.iter().filter(|p| p.kind == Kind::RequestDueSoon).count(), 1, "exactly once");
        let overdue: Vec<u32> = planned
            .iter()
            .filter_map(|p| match p.kind {
                Kind::RequestOverdue { week, complaint } => {
                    assert!(!complaint, "not extended: no complaint route yet");
                    Some(week)
                }
                _ => None,
            })
            .collect();
        assert_eq!(overdue, vec![0, 1, 2, 3], "the day it falls due, then weekly for 23 days");
        assert!(planned.iter().all(|p| p.recipient.email == "avery@example.org"));

        // Extended: the new due date starts afresh, and past it the complaint route is offered.
        let extended =
            [RequestFacts { due_at: start + Duration::days(30), extended: true, ..request(start, Duration::days(7)) }];
        let mut queued: HashSet<String> = planned.iter().map(|p| p.key.clone()).collect();
        let later = start + Duration::days(31);
        let again = plan_requests(&rules(), &extended, &[], &queued, later);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].kind, Kind::RequestOverdue { week: 0, complaint: true });
        queued.insert(again[0].key.clone());
        assert!(plan_requests(&rules(), &extended, &[], &queued, later).is_empty(), "and only once");
        let no_one = [RequestFacts { advocate: None, ..request(start, Duration::days(1)) }];
        assert!(plan_requests(&rules(), &no_one, &[], &HashSet::new(), start).is_empty(), "unassigned: no one to tell");
    }

    #[test]
    fn the_patient_hears_of_arrived_records_once_per_receipt_outside_quiet_hours() {
        let patient = Person { id: 0, name: "Pat".into(), email: "pat@example.org".into(), tz: tz("Europe/Berlin") };
        // 23:30 in Berlin (CEST, UTC+2).
        let night = utc(2026, 6, 10, 21, 30);
        let arrival = ArrivalFacts {
            request_id: 9,
            case_id: 1,
            provider_name: "Mercy".into(),
            recorded_at: night - Duration::minutes(5),
            kinds: vec![RecordKind::LabResults],
            patient,
            nudges_stopped: false,
        };
        let planned = plan_hourly(&[], std::slice::from_ref(&arrival), night, 48);
        assert_eq!(planned.len(), 1, "one email for one receipt");
        assert_eq!(planned[0].kind, Kind::RecordsArrived);
        assert_eq!(planned[0].send_after, utc(2026, 6, 11, 6, 0), "held until 08:00 in Berlin");
        let second = ArrivalFacts { recorded_at: night + Duration::days(3), ..arrival.clone() };
        assert_eq!(plan_hourly(&[], &[arrival.clone(), second], night, 2).len(), 2, "a later receipt is news again");
        let stopped = ArrivalFacts { nudges_stopped: true, ..arrival };
        assert!(
            plan_requests(&rules(), &[], &[stopped], &HashSet::new(), night).is_empty(),
            "they asked for no emails"
        );
    }

    #[test]
    fn weekly_summaries_go_once_a_week_from_the_chosen_day() {
        let admin = Person { id: 1, name: "Ada".into(), email: "ada@example.org".into(), tz: tz("Australia/Sydney") };
        // Monday 8 June 2026, 07:30 in Sydney (UTC+10) is Sunday 21:30 UTC.
        assert!(
            plan_weekly(&rules(), std::slice::from_ref(&admin), &HashSet::new(), utc(2026, 6, 7, 21, 0)).is_empty()
        );
        let planned = plan_weekly(&rules(), std::slice::from_ref(&admin), &HashSet::new(), utc(2026, 6, 7, 21, 45));
        assert_eq!(planned[0].key, "weekly:1:2026-W24");
        let queued = HashSet::from([planned[0].key.clone()]);
        assert!(plan_weekly(&rules(), &[admin], &queued, utc(2026, 6, 10, 3, 0)).is_empty());
    }
}

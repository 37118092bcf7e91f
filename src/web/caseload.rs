//! The home page: a caseload — counts per stage, open cases by due date,
//! upcoming consultations and recent activity.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Html};
use serde::Deserialize;

use super::{DueLabel, Nav, PageQuery, Staff, error::PageResult, render};
use crate::{
    auth::users,
    cases::Stage,
    reports::{self, CaseloadFilter, CaseloadSort, PAGE_SIZE},
    state::AppState,
};

/// Shown instead of the name of a patient whose data was erased.
const ERASED: &str = "Patient data erased";

/// The patient's name as a list shows it: never a blank for an erased case.
fn shown_name(name: &str, erased_at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    if erased_at.is_some() { ERASED.to_string() } else { name.to_string() }
}

#[derive(Debug, Default, Deserialize)]
pub struct HomeQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    overdue: Option<String>,
    #[serde(default)]
    advocate: Option<i32>,
    #[serde(default)]
    page: Option<u64>,
}

pub struct Row {
    pub id: i32,
    pub reference: String,
    pub patient: String,
    pub stage: &'static str,
    pub urgency: String,
    pub due: DueLabel,
    /// Who has the case (shown to admins), or "Unassigned".
    pub advocate: String,
    /// The patient did something in the portal that no one has looked at yet.
    pub news: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    heading: String,
    stage_counts: Vec<(Stage, i64)>,
    open_stages: Vec<Stage>,
    rows: Vec<Row>,
    sort: CaseloadSort,
    q: String,
    /// The list is the result of a search, closed cases included.
    searching: bool,
    /// Why the search could not run.
    q_error: Option<String>,
    stage_filter: String,
    urgency: String,
    overdue: bool,
    advocate_id: Option<i32>,
    /// Admins: what the list can be narrowed to — the unassigned queue (0)
    /// and each advocate — as (id, name, chosen); empty for advocates.
    advocate_choices: Vec<(i32, String, bool)>,
    /// Admins: the active advocates ticked cases can be assigned to.
    assignable: Vec<(i32, String)>,
    is_admin: bool,
    page: u64,
    pages: u64,
    total: u64,
    /// `total` is only a lower bound.
    more: bool,
    /// (when, case id, reference, mode)
    upcoming: Vec<(String, i32, String, String)>,
    /// (when, case id, reference and patient, with whom and how, late)
    follow_ups: Vec<(String, i32, String, String, bool)>,
    /// (when, case id, patient and reference, action, who)
    activity: Vec<(String, i32, String, String, String)>,
    /// The day's lists, above the whole list when it is not narrowed.
    today: Option<TodayView>,
}

/// One case in today's lists: id, patient, reference, stage, due.
pub struct TodayCase {
    pub id: i32,
    pub patient: String,
    pub reference: String,
    pub stage: &'static str,
    pub due: DueLabel,
    /// The patient did something in the portal that no one has looked at yet.
    pub news: bool,
}

struct TodayView {
    /// "Monday 7 December"
    date: String,
    overdue: Vec<TodayCase>,
    overdue_more: bool,
    due_today: Vec<TodayCase>,
    due_today_more: bool,
    /// (case id, reference and patient, with whom and how, late)
    follow_ups: Vec<(i32, String, String, bool)>,
    /// (when, case id, reference and patient, how)
    consultations: Vec<(String, i32, String, String)>,
}

impl HomePage {
    fn query_string(&self, stage: &str, page: u64) -> String {
        self.address(stage, self.sort, page)
    }

    fn address(&self, stage: &str, sort: CaseloadSort, page: u64) -> String {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            pairs.append_pair("q", &self.q);
        }
        if sort != CaseloadSort::Due {
            pairs.append_pair("sort", sort.as_str());
        }
        if !stage.is_empty() {
            pairs.append_pair("stage", stage);
        }
        if !self.urgency.is_empty() {
            pairs.append_pair("urgency", &self.urgency);
        }
        if self.overdue {
            pairs.append_pair("overdue", "true");
        }
        if let Some(id) = self.advocate_id {
            pairs.append_pair("advocate", &id.to_string());
        }
        if page > 0 {
            pairs.append_pair("page", &page.to_string());
        }
        format!("/?{}", pairs.finish())
    }

    fn link_for_page(&self, page: u64) -> String {
        self.query_string(&self.stage_filter, page)
    }

    /// [`Self::link_for_page`] for the page numbers, which the template holds by reference.
    fn link_to_page(&self, page: &u64) -> String {
        self.link_for_page(*page)
    }

    fn link_for_stage(&self, stage: &Stage) -> String {
        self.query_string(stage.as_str(), 0)
    }

    /// This list, from its first page, in the order a column header sets:
    /// the reference turns between newest and oldest first.
    fn link_for_sort(&self, column: &str) -> String {
        let sort = match column {
            "reference" if self.sort == CaseloadSort::Newest => CaseloadSort::Oldest,
            "reference" => CaseloadSort::Newest,
            "patient" => CaseloadSort::Patient,
            _ => CaseloadSort::Due,
        };
        self.address(&self.stage_filter, sort, 0)
    }

    /// The column's `aria-sort`: how the list is ordered by it, if it is.
    fn aria_sort(&self, column: &str) -> &'static str {
        match (column, self.sort) {
            ("reference", CaseloadSort::Newest) => "descending",
            ("reference", CaseloadSort::Oldest) | ("patient", CaseloadSort::Patient) | ("due", CaseloadSort::Due) => {
                "ascending"
            }
            _ => "none",
        }
    }

    /// How the whole list is ordered, in words for its heading.
    fn order_words(&self) -> &'static str {
        match self.sort {
            CaseloadSort::Due => "soonest due first",
            CaseloadSort::Newest => "newest first",
            CaseloadSort::Oldest => "oldest first",
            CaseloadSort::Patient => "by patient name",
        }
    }

    /// The pages to offer by number: the first and last, and two either
    /// side of this one; `None` stands for the pages left out between.
    fn page_numbers(&self) -> Vec<Option<u64>> {
        let last = self.pages.saturating_sub(1);
        let mut pages: Vec<u64> = vec![0, last];
        pages.extend(self.page.saturating_sub(2)..=(self.page + 2).min(last));
        pages.sort_unstable();
        pages.dedup();
        let mut shown = Vec::new();
        for (i, page) in pages.iter().enumerate() {
            if i > 0 && page - pages[i - 1] > 1 {
                shown.push(None);
            }
            shown.push(Some(*page));
        }
        shown
    }

    /// Where the list is now, for a form to come back to.
    fn here(&self) -> String {
        self.query_string(&self.stage_filter, self.page)
    }
}

/// How an audit action reads in a list.
pub fn describe_action(action: &str) -> &'static str {
    match action {
        "case.create" => "case opened",
        "case.transition" => "stage changed",
        "case.hold" => "put on hold",
        "case.resume" => "resumed",
        "case.record" => "records checklist updated",
        "case.specialist" => "specialist chosen",
        "case.consultation" => "consultation updated",
        "case.opinion" => "opinion recorded",
        "case.comparison" => "opinions compared",
        "case.decision" => "decision recorded",
        "case.update" => "case details changed",
        "case.note" => "note added",
        "case.contact" => "contact logged",
        "case.follow_up_done" => "follow-up done",
        "access.denied" => "access refused",
        "mail.sent" => "email sent",
        "mail.failed" => "email failed",
        "mail.retry" => "email queued again",
        "case.nudges_stopped" => "patient stopped reminders",
        "case.exported" => "case exported",
        "case.erased" => "patient data erased",
        "document.uploaded" => "document uploaded",
        "document.downloaded" => "document downloaded",
        "document.updated" => "document renamed or refiled",
        "document.deleted" => "document deleted",
        "document.restored" => "document restored",
        "document.purged" => "deleted document purged",
        "case.consent_signed" => "consent to share records signed",
        "case.partner_invited" => "care partner invited",
        "case.partner_removed" => "care partner removed",
        "case.portal_link_sent" => "portal link emailed",
        "case.portal_links_withdrawn" => "portal links withdrawn",
        "case.survey_answered" => "survey answered",
        _ => "changed",
    }
}

pub async fn home(
    State(state): State<AppState>,
    staff: Staff,
    PageQuery(query): PageQuery<HomeQuery>,
) -> PageResult<(StatusCode, Html<String>)> {
    let stage = query.stage.as_deref().and_then(Stage::parse).filter(|s| !s.is_final());
    let urgency = query.urgency.clone().filter(|u| u == "routine" || u == "expedited");
    let advocate_id = query.advocate.filter(|_| staff.actor.is_admin());
    let filter = CaseloadFilter {
        sort: query.sort.as_deref().and_then(CaseloadSort::parse).unwrap_or_default(),
        stage,
        urgency: urgency.clone(),
        overdue: query.overdue.is_some(),
        query: query.q.clone(),
        advocate_id,
        page: query.page.unwrap_or(0),
    };
    let clock = staff.clock();
    // A search that cannot run (too long, or too broad to read) is said next
    // to the search box, over the list as it is without it.
    let (caseload, q_error) = match reports::caseload(&state.db, &state.reads, &staff.actor, &filter, clock.now).await {
        Err(crate::error::AppError::Validation(fields)) if fields.0.contains_key("q") => {
            let problem = fields.0.get("q").cloned().map(|m| format!("The search {m}."));
            let without = CaseloadFilter { query: None, ..filter.clone() };
            (reports::caseload(&state.db, &state.reads, &staff.actor, &without, clock.now).await?, problem)
        }
        other => (other?, None),
    };
    // Admins see who has each case and can narrow the list to one advocate or the unassigned queue.
    let everyone = if staff.actor.is_admin() { users::advocates(&state.db).await? } else { Vec::new() };
    let assignable: Vec<(i32, String)> =
        everyone.iter().filter(|(_, _, active)| *active).map(|(id, name, _)| (*id, name.clone())).collect();
    let advocates: Vec<(i32, String)> = everyone.into_iter().map(|(id, name, _)| (id, name)).collect();
    let advocate_name = |id: Option<i32>| match id {
        None => "Unassigned".to_string(),
        Some(id) => {
            advocates.iter().find(|(a, _)| *a == id).map_or_else(|| "another staff member".into(), |(_, n)| n.clone())
        }
    };
    let heading = match (staff.actor.is_admin(), advocate_id) {
        (false, _) => "My caseload".to_string(),
        (true, None) => "All open cases".to_string(),
        (true, Some(crate::cases::tallies::UNASSIGNED)) => "Unassigned cases".to_string(),
        (true, Some(id)) => match users::find_active(&state.db, id).await? {
            Some(u) => format!("Caseload of {}", u.name),
            None => "Caseload of a former advocate".to_string(),
        },
    };
    let narrowed = filter.stage.is_some()
        || filter.urgency.is_some()
        || filter.overdue
        || crate::validate::is_given(filter.query.as_deref())
        || filter.page > 0;
    let today = if narrowed {
        None
    } else {
        let (today, _) = clock.day_start(0);
        let (_, tomorrow_starts) = clock.day_start(1);
        let (_, after_tomorrow) = clock.day_start(2);
        let lists =
            reports::today(&state.db, &state.reads, &staff.actor, advocate_id, clock.now, tomorrow_starts).await?;
        let shown = |c: &reports::ListedCase| TodayCase {
            id: c.id,
            patient: shown_name(&c.patient_name, c.erased_at),
            reference: c.reference.clone(),
            stage: c.stage.label(),
            due: clock.due(&c.stage_due_at, false),
            news: c.portal_activity_at.is_some(),
        };
        Some(TodayView {
            date: clock.now.with_timezone(&clock.tz).format("%A %-d %B").to_string(),
            overdue: lists.overdue.iter().map(shown).collect(),
            overdue_more: lists.overdue_more,
            due_today: lists.due_today.iter().map(shown).collect(),
            due_today_more: lists.due_today_more,
            follow_ups: caseload
                .follow_ups
                .iter()
                .filter(|f| f.follow_up_on <= today)
                .map(|f| {
                    (f.case_id, format!("{} {}", f.reference, f.patient_name), f.with_whom(), f.follow_up_on < today)
                })
                .collect(),
            consultations: caseload
                .upcoming
                .iter()
                .filter(|u| u.scheduled_at < after_tomorrow)
                .map(|u| {
                    let day = if u.scheduled_at < tomorrow_starts { "Today" } else { "Tomorrow" };
                    let time = u.scheduled_at.with_timezone(&clock.tz).format("%H:%M");
                    let mode = u.mode.as_deref().map_or("", |m| if m == "virtual" { "virtual" } else { "in person" });
                    (
                        format!("{day} {time}"),
                        u.case_id,
                        format!("{} {}", u.reference, u.patient_name),
                        mode.to_string(),
                    )
                })
                .collect(),
        })
    };
    let rows = caseload
        .cases
        .iter()
        .map(|c| Row {
            id: c.id,
            reference: c.reference.clone(),
            // Erased cases are closed and rarely listed, but never as a blank.
            patient: shown_name(&c.patient_name, c.erased_at),
            stage: c.stage.label(),
            urgency: c.urgency.as_str().to_string(),
            due: match c.closed_at {
                Some(at) => DueLabel { text: format!("Closed {}", clock.date(&at)), class: "due-closed" },
                None => clock.due(&c.stage_due_at, c.held_since.is_some()),
            },
            advocate: advocate_name(c.advocate_id),
            news: c.portal_activity_at.is_some(),
        })
        .collect();
    let page = HomePage {
        today,
        sort: filter.sort,
        nav: staff.nav().await,
        heading,
        stage_counts: caseload.stage_counts,
        open_stages: Stage::PATH[..4].to_vec(),
        rows,
        searching: q_error.is_none() && crate::validate::is_given(query.q.as_deref()),
        q: query.q.clone().unwrap_or_default(),
        q_error,
        stage_filter: stage.map(|s| s.as_str().to_string()).unwrap_or_default(),
        urgency: urgency.unwrap_or_default(),
        overdue: filter.overdue,
        advocate_id,
        is_admin: staff.actor.is_admin(),
        assignable,
        advocate_choices: if staff.actor.is_admin() {
            std::iter::once((crate::cases::tallies::UNASSIGNED, "Unassigned".to_string()))
                .chain(advocates.iter().cloned())
                .map(|(id, name)| (id, name, advocate_id == Some(id)))
                .collect()
        } else {
            Vec::new()
        },
        page: filter.page,
        pages: caseload.total.div_ceil(PAGE_SIZE).max(1),
        total: caseload.total,
        more: caseload.more,
        upcoming: caseload
            .upcoming
            .iter()
            .map(|u| {
                let mode = u.mode.as_deref().map_or("", |m| if m == "virtual" { "virtual" } else { "in person" });
                (clock.at(&u.scheduled_at), u.case_id, format!("{} {}", u.reference, u.patient_name), mode.to_string())
            })
            .collect(),
        follow_ups: {
            let today = clock.now.with_timezone(&clock.tz).date_naive();
            caseload
                .follow_ups
                .iter()
                .map(|f| {
                    let when = if f.follow_up_on == today {
                        "Today".to_string()
                    } else {
                        f.follow_up_on.format("%a %-d %b").to_string()
                    };
                    (
                        when,
                        f.case_id,
                        format!("{} {}", f.reference, f.patient_name),
                        f.with_whom(),
                        f.follow_up_on < today,
                    )
                })
                .collect()
        },
        activity: caseload
            .activity
            .iter()
            .filter_map(|a| {
                let case = format!("{} {}", shown_name(&a.patient_name, a.erased_at), a.reference);
                Some((clock.at(&a.at), a.case_id?, case, describe_action(&a.action).to_string(), a.actor.clone()))
            })
            .collect(),
    };
    // The list still shows, but the search asked for was not run.
    let status = if page.q_error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, render(&page)?))
}

/// Admins: assigns the cases ticked in the list (`case.ID` fields, one page
/// at most) to one advocate, or back to the unassigned queue, each as its
/// own audited change; then back to the list as it was.
pub async fn assign_selected(
    State(state): State<AppState>,
    staff: Staff,
    fields: super::FormFields,
) -> PageResult<axum::response::Response> {
    use axum::response::{IntoResponse, Redirect};
    staff.require_admin()?;
    let back = super::sign_in::safe_next(fields.optional("back").as_deref());
    let mut chosen: Vec<i32> = fields
        .0
        .iter()
        .filter(|(_, value)| *value == "on")
        .filter_map(|(name, _)| name.strip_prefix("case.")?.parse::<i32>().ok().filter(|id| *id > 0))
        .collect();
    chosen.sort_unstable();
    let choice = fields.text("advocate_id");
    let advocate_id = match choice.trim() {
        "none" => None,
        id => match id.parse::<i32>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                staff.flash("Choose an advocate, or the unassigned queue, to assign to; nothing was assigned.").await;
                return Ok(Redirect::to(&back).into_response());
            }
        },
    };
    if chosen.is_empty() {
        staff.flash("Tick the cases to assign first; nothing was assigned.").await;
        return Ok(Redirect::to(&back).into_response());
    }
    if chosen.len() as u64 > PAGE_SIZE {
        staff.flash(format!("Assign at most {PAGE_SIZE} cases at a time; nothing was assigned.")).await;
        return Ok(Redirect::to(&back).into_response());
    }
    let mut assigned = 0;
    let mut refused = Vec::new();
    for id in &chosen {
        let patch = crate::cases::store::CasePatch::assign(advocate_id);
        match crate::cases::store::update(&state.db, &state.rules, &staff.actor, crate::ids::CaseId(*id), patch).await {
            Ok(_) => assigned += 1,
            // An unknown advocate is wrong for every case alike: say so once.
            Err(crate::error::AppError::Validation(_)) => {
                let done =
                    if assigned > 0 { format!(" ({assigned} were assigned before this one)") } else { String::new() };
                staff.flash(format!("That advocate cannot take cases (not an active advocate){done}.")).await;
                return Ok(Redirect::to(&back).into_response());
            }
            Err(crate::error::AppError::NotFound) => refused.push(id.to_string()),
            Err(other) => return Err(other.into()),
        }
    }
    let whom = match advocate_id {
        None => "the unassigned queue".to_string(),
        Some(id) => users::find_active(&state.db, id).await?.map_or_else(|| format!("user {id}"), |u| u.name),
    };
    let mut message = match assigned {
        1 => format!("1 case assigned to {whom}."),
        n => format!("{n} cases assigned to {whom}."),
    };
    if !refused.is_empty() {
        message.push_str(&format!(" Not found, so not assigned: case {}.", refused.join(", ")));
    }
    staff.flash(message).await;
    Ok(Redirect::to(&back).into_response())
}

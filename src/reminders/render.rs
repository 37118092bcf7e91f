//! What each reminder says. Every email is rendered from the same pair of
//! askama templates (`templates/email/message.txt` and `.html`) filled with
//! content chosen here. Subjects never name a diagnosis, specialty, reason
//! or stage; patient emails say what to do, not the medical details.

use askama::Template;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{
    outbox::Draft,
    planner::{CaseFacts, Kind, Planned},
};
use crate::{cases::Stage, error::AppError};

#[derive(Template)]
#[template(path = "email/message.txt")]
struct TextPart<'a> {
    c: &'a Content,
}

#[derive(Template)]
#[template(path = "email/message.html")]
struct HtmlPart<'a> {
    c: &'a Content,
}

/// The content of one email before it becomes text and HTML.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub subject: String,
    pub greeting: String,
    pub paragraphs: Vec<String>,
    pub list_title: Option<String>,
    pub items: Vec<String>,
    pub action: Option<(String, String)>,
    pub footer: Vec<String>,
    pub ics: Option<String>,
    pub unsubscribe_url: Option<String>,
}

pub const QUESTIONS_TO_ASK: [&str; 6] = [
    "Do you agree with the diagnosis I was given?",
    "Could anything else explain my symptoms?",
    "Are further tests needed before deciding?",
    "What are all my treatment options, with the risks and benefits of each?",
    "What happens if we wait?",
    "What outcomes can I expect with each option?",
];

pub const WHAT_TO_BRING: &str = "Bring photo ID, your insurance card, your list of medications, and copies of \
     your records and imaging (or the summary your advocate prepared).";

/// "today", "tomorrow" or "in N days": calendar days in `tz` from `from` to `to`.
pub fn days_ahead(from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> String {
    let days = (to.with_timezone(&tz).date_naive() - from.with_timezone(&tz).date_naive()).num_days();
    match days {
        ..=0 => "today".to_string(),
        1 => "tomorrow".to_string(),
        n => format!("in {n} days"),
    }
}

pub fn when(t: DateTime<Utc>, tz: Tz) -> String {
    format!("{} ({})", t.with_timezone(&tz).format("%A %-d %B %Y at %H:%M"), tz.name())
}

fn patient_footer(unsubscribe_url: &str) -> Vec<String> {
    vec![
        "This is an automated reminder from SecondLook, sent on behalf of your patient advocate.".to_string(),
        format!("To stop these reminders for this case, open {unsubscribe_url}"),
    ]
}

pub fn staff_footer() -> Vec<String> {
    vec!["This is an automated message from SecondLook.".to_string()]
}

/// What a case reminder says.
pub fn case_content(planned: &Planned, case: &CaseFacts, public_url: &str, unsubscribe_url: Option<String>) -> Content {
    let case_url = format!("{public_url}/cases/{}", case.case_id);
    let tz = planned.recipient.tz;
    let first_name = planned.recipient.name.split_whitespace().next().unwrap_or("there").to_string();
    let greeting = format!("Hello {first_name},");
    let stage = case.stage.label();
    let due = case.stage_due_at.map(|d| when(d, tz)).unwrap_or_default();
    let patient_unsubscribe = unsubscribe_url.clone().unwrap_or_default();
    // Every patient email leads to the patient's own page.
    let portal = Some(("Open your page".to_string(), super::portal_mail::queued_link(public_url)));
    match &planned.kind {
        Kind::DueSoon => Content {
            subject: format!("Case {} is due within a day", case.reference),
            greeting,
            paragraphs: vec![format!(
                "Case {} ({}) has to leave the stage “{stage}” by {due}.",
                case.reference, case.patient_name
            )],
            action: Some(("Open the case".into(), case_url)),
            footer: staff_footer(),
            ..Content::default()
        },
        Kind::Overdue { day } => Content {
            subject: format!("Case {} is overdue", case.reference),
            greeting,
            paragraphs: vec![
                format!(
                    "Case {} ({}) was due to leave the stage “{stage}” by {due}{}.",
                    case.reference,
                    case.patient_name,
                    if *day == 0 { String::new() } else { format!(" — {} days ago", day) }
                ),
                "Move it on, or put it on hold with the reason it is waiting.".into(),
            ],
            action: Some(("Open the case".into(), case_url)),
            footer: staff_footer(),
            ..Content::default()
        },
        Kind::RecordsNudge { .. } => Content {
            subject: "Please send your medical records".into(),
            greeting,
            paragraphs: vec![
                "Your second opinion can only start once the specialist has your records. We are still waiting for:"
                    .into(),
            ],
            list_title: Some("Still needed".into()),
            items: case.records_outstanding.iter().map(|k| k.label().to_string()).collect(),
            action: portal.clone(),
            footer: {
                let mut footer = vec![
                    "Send copies you have from your page (the button above), or ask the clinic or hospital that \
                     holds them to send copies to your advocate."
                        .to_string(),
                ];
                footer.extend(patient_footer(&patient_unsubscribe));
                footer
            },
            unsubscribe_url,
            ..Content::default()
        },
        Kind::ConsultationSoon { .. } => {
            let Some(visit) = &case.consultation else { return Content::default() };
            let with = case.specialist_name.as_deref().map(|n| format!(" with {n}")).unwrap_or_default();
            let place = if visit.virtual_visit {
                match &visit.location {
                    Some(link) => format!("It is a video appointment: {link}"),
                    None => "It is a video appointment; the link will come from the clinic.".to_string(),
                }
            } else {
                match &visit.location {
                    Some(place) => format!("It is in person at: {place}"),
                    None => "It is in person; the clinic will confirm the address.".to_string(),
                }
            };
            // Counted in the patient's calendar days from when the email goes
            // out, not from which reminder slot it fills: 30 hours ahead can
            // be "tomorrow" or "in 2 days", never "in 3 days".
            let in_days = days_ahead(planned.send_after, visit.scheduled_at, tz);
            let at = when(visit.scheduled_at, tz);
            let day = visit.scheduled_at.with_timezone(&tz).format("%A %-d %B");
            Content {
                subject: format!("Your appointment {in_days}, {day}"),
                greeting,
                paragraphs: vec![
                    format!("Your second-opinion appointment{with} is {in_days}: {at}."),
                    place,
                    WHAT_TO_BRING.to_string(),
                    "A calendar entry is attached.".to_string(),
                ],
                // The patient's own list, which they keep on their page; until
                // they write one, questions most people want answered.
                list_title: Some(
                    if case.patient_questions.is_empty() { "Questions to ask" } else { "Your questions" }.into(),
                ),
                items: if case.patient_questions.is_empty() {
                    QUESTIONS_TO_ASK.iter().map(|q| (*q).to_string()).collect()
                } else {
                    case.patient_questions.clone()
                },
                action: portal.clone(),
                footer: patient_footer(&patient_unsubscribe),
                ics: Some(calendar_entry(case, visit.scheduled_at, &with)),
                unsubscribe_url,
            }
        }
        Kind::ReportRequest => Content {
            subject: "Please send the specialist's written report".into(),
            greeting,
            paragraphs: vec![
                "Thank you for attending your second-opinion appointment.".into(),
                "When the specialist's written report reaches you, please send it from your page, so the two opinions can be put side by side.".into(),
            ],
            action: portal,
            footer: patient_footer(&patient_unsubscribe),
            unsubscribe_url,
            ..Content::default()
        },
        Kind::Digest
        | Kind::WeeklySummary
        | Kind::RequestDueSoon
        | Kind::RequestOverdue { .. }
        | Kind::RecordsArrived => Content::default(),
    }
}

/// What a reminder about a records request says to its advocate: the case
/// reference, the provider and the date — no patient name or records.
pub fn request_content(planned: &Planned, r: &super::planner::RequestFacts, public_url: &str) -> Content {
    let tz = planned.recipient.tz;
    let first_name = planned.recipient.name.split_whitespace().next().unwrap_or("there").to_string();
    let due = when(r.due_at, tz);
    let case_url = format!("{public_url}/cases/{}#records-requests", r.case_id);
    let (subject, mut paragraphs) = match &planned.kind {
        Kind::RequestDueSoon => (
            format!("Records request for case {} is due soon", r.reference),
            vec![format!(
                "The records request to {} for case {} is due by {due}. If nothing has come yet, a call to their \
                 records department now can save weeks.",
                r.provider_name, r.reference
            )],
        ),
        Kind::RequestOverdue { week, .. } => (
            format!("Records request for case {} is overdue", r.reference),
            vec![format!(
                "The records request to {} for case {} was due by {due}{}. Chase the provider, or record what came.",
                r.provider_name,
                r.reference,
                if *week == 0 { String::new() } else { format!(" — {} weeks ago", week) }
            )],
        ),
        _ => (String::new(), Vec::new()),
    };
    if let Kind::RequestOverdue { complaint: true, .. } = planned.kind {
        paragraphs.push(
            "This is the patient's own access request and the provider's extension has run out too. Patients \
             whose provider does not answer an access request can complain to the provider's privacy officer, \
             and in the United States to the Office for Civil Rights of the Department of Health and Human \
             Services. This is information, not legal advice."
                .to_string(),
        );
    }
    Content {
        subject,
        greeting: format!("Hello {first_name},"),
        paragraphs,
        action: Some(("Open the case".into(), case_url)),
        footer: staff_footer(),
        ..Content::default()
    }
}

/// What the patient is told when records they asked for arrived.
/// It names the kinds of records, not where they came from.
pub fn arrival_content(
    planned: &Planned,
    a: &super::planner::ArrivalFacts,
    public_url: &str,
    unsubscribe_url: String,
) -> Content {
    let first_name = planned.recipient.name.split_whitespace().next().unwrap_or("there").to_string();
    Content {
        subject: "Your records have arrived".into(),
        greeting: format!("Hello {first_name},"),
        paragraphs: vec!["Records we asked for on your behalf have reached your advocate:".to_string()],
        list_title: Some("Received".into()),
        items: a.kinds.iter().map(|k| k.label().to_string()).collect(),
        action: Some(("Open your page".to_string(), super::portal_mail::queued_link(public_url))),
        footer: patient_footer(&unsubscribe_url),
        unsubscribe_url: Some(unsubscribe_url),
        ..Content::default()
    }
}

/// The consultation reminder of a patient as a care partner they chose
/// gets it: addressed to the partner, about the patient's appointment, with
/// the partner's own link and no way to stop the patient's reminders.
pub fn for_care_partner(patient_content: &Content, patient_name: &str, partner_name: &str) -> Content {
    let patient = patient_name.split_whitespace().next().unwrap_or("The patient");
    let partner = partner_name.split_whitespace().next().unwrap_or("there");
    let theirs = |text: &str| {
        text.replacen("Your appointment", &format!("{patient}'s appointment"), 1).replacen(
            "Your second-opinion appointment",
            &format!("{patient}'s second-opinion appointment"),
            1,
        )
    };
    Content {
        subject: theirs(&patient_content.subject),
        greeting: format!("Hello {partner},"),
        paragraphs: patient_content.paragraphs.iter().map(|p| theirs(p)).collect(),
        list_title: patient_content
            .list_title
            .as_ref()
            .map(|t| t.replacen("Your questions", &format!("{patient}'s questions"), 1)),
        items: patient_content.items.clone(),
        action: patient_content.action.as_ref().map(|(_, link)| ("Open the page".to_string(), link.clone())),
        footer: vec![
            format!("You get this reminder because {patient} asked SecondLook to send it to you as well."),
            format!("{patient} or their advocate can stop it at any time."),
        ],
        ics: patient_content.ics.clone(),
        unsubscribe_url: None,
    }
}

/// A calendar entry for the appointment: no medical detail, a stable UID
/// so a later reminder updates the same entry.
fn calendar_entry(case: &CaseFacts, at: DateTime<Utc>, with: &str) -> String {
    let place = case.consultation.as_ref().and_then(|v| v.location.as_deref());
    consultation_calendar(case.case_id, case.round, at, with, place)
}

/// The calendar entry of the consultation of `round` of a case at `at`
/// (the same entry the reminders attach, so calendars keep one).
pub fn consultation_calendar(case_id: i32, round: i32, at: DateTime<Utc>, with: &str, place: Option<&str>) -> String {
    use icalendar::{Calendar, Component, Event, EventLike};
    let mut event = Event::new();
    event
        .uid(&format!("consultation-{case_id}-{round}-{}@secondlook", at.timestamp()))
        .summary(&format!("Second-opinion appointment{with}"))
        .description(WHAT_TO_BRING)
        .starts(at)
        .ends(at + chrono::Duration::hours(1));
    if let Some(place) = place {
        event.location(place);
    }
    Calendar::new().push(event.done()).done().to_string()
}

/// The text and HTML parts of an email.
pub fn parts(content: &Content) -> Result<(String, String), AppError> {
    let render_error = |e: askama::Error| AppError::broken("email template", e);
    let text = TextPart { c: content }.render().map_err(render_error)?;
    let html = HtmlPart { c: content }.render().map_err(render_error)?;
    Ok((text, html))
}

/// Turns content into a queueable draft (text and HTML parts rendered).
pub fn draft(planned: &Planned, content: Content) -> Result<Draft, AppError> {
    let (text, html) = parts(&content)?;
    Ok(Draft {
        key: planned.key.clone(),
        case_id: planned.case_id,
        kind: planned.kind.name().to_string(),
        recipient_email: planned.recipient.email.clone(),
        recipient_name: planned.recipient.name.clone(),
        subject: content.subject,
        body_text: text,
        body_html: html,
        ics: content.ics,
        unsubscribe_url: content.unsubscribe_url,
        send_after: planned.send_after,
    })
}

/// An advocate's digest.
pub struct DigestContent {
    pub due_today: Vec<(String, String)>,
    pub overdue: Vec<(String, String)>,
    pub consultations: Vec<String>,
    /// Contact follow-ups due today or earlier: reference, with whom and how, since when.
    pub follow_ups: Vec<String>,
    /// References of cases with portal activity no one has looked at yet.
    pub portal_news: Vec<String>,
    /// Records requests due within days or overdue: reference, provider, date.
    pub records_requests: Vec<String>,
    /// Denied pre-approvals to appeal within the week: reference, deadline.
    pub appeal_deadlines: Vec<String>,
}

pub fn digest_content(planned: &Planned, facts: &DigestContent, public_url: &str) -> Content {
    let first_name = planned.recipient.name.split_whitespace().next().unwrap_or("there");
    let date = planned.send_after.with_timezone(&planned.recipient.tz).format("%A %-d %B").to_string();
    let mut items = Vec::new();
    items.extend(facts.overdue.iter().map(|(reference, stage)| format!("Overdue: {reference} — {stage}")));
    items.extend(facts.due_today.iter().map(|(reference, stage)| format!("Due today: {reference} — {stage}")));
    items.extend(facts.consultations.iter().map(|c| format!("Consultation: {c}")));
    items.extend(facts.follow_ups.iter().map(|f| format!("Follow-up: {f}")));
    items.extend(facts.portal_news.iter().map(|r| format!("New from the patient: {r}")));
    items.extend(facts.records_requests.iter().map(|r| format!("Records request: {r}")));
    items.extend(facts.appeal_deadlines.iter().map(|a| format!("Insurance appeal: {a}")));
    Content {
        subject: format!(
            "Your caseload for {date}: {} due today, {} overdue",
            facts.due_today.len(),
            facts.overdue.len()
        ),
        greeting: format!("Hello {first_name},"),
        paragraphs: vec!["Here is what needs you today.".into()],
        list_title: Some("Today".into()),
        items,
        action: Some(("Open your caseload".into(), format!("{public_url}/"))),
        footer: staff_footer(),
        ..Content::default()
    }
}

pub fn weekly_content(
    planned: &Planned,
    open_per_stage: &[(Stage, i64)],
    overdue: i64,
    decided: i64,
    public_url: &str,
) -> Content {
    let first_name = planned.recipient.name.split_whitespace().next().unwrap_or("there");
    Content {
        subject: "SecondLook weekly summary".into(),
        greeting: format!("Hello {first_name},"),
        paragraphs: vec![format!(
            "{overdue} open cases are overdue; {decided} cases reached a decision in the last 7 days."
        )],
        list_title: Some("Open cases per stage".into()),
        items: open_per_stage.iter().map(|(stage, n)| format!("{}: {n}", stage.label())).collect(),
        action: Some(("Open the overview".into(), format!("{public_url}/admin"))),
        footer: staff_footer(),
        ..Content::default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::{
        cases::values::RecordKind,
        reminders::planner::{Consultation, Recipient},
    };

    fn visit_reminder(now: DateTime<Utc>, visit: DateTime<Utc>, zone: &str) -> Content {
        let tz: Tz = zone.parse().expect("zone");
        let patient = Recipient { name: "Pat Doe".into(), email: "pat@example.org".into(), tz };
        let case = CaseFacts {
            case_id: 1,
            reference: "SO-2026-000001".into(),
            stage: Stage::SpecialistChosen,
            round: 2,
            stage_entered_at: now - Duration::days(1),
            stage_due_at: None,
            held: false,
            advocate: None,
            patient_name: "Pat Doe".into(),
            patient_email: "pat@example.org".into(),
            patient_tz: tz,
            nudges_stopped: false,
            records_outstanding: vec![RecordKind::LabResults],
            consultation: Some(Consultation {
                scheduled_at: visit,
                virtual_visit: true,
                location: None,
                held_at: None,
            }),
            specialist_name: None,
            current_round_opinion: false,
            patient_questions: Vec::new(),
        };
        // The slot for visits one to three days ahead.
        let planned = Planned {
            key: "k".into(),
            kind: Kind::ConsultationSoon { days_before: 3 },
            case_id: Some(1),
            recipient: patient,
            send_after: now,
        };
        case_content(&planned, &case, "https://secondlook.test", Some("https://secondlook.test/u/t".into()))
    }

    #[test]
    fn an_appointment_30_hours_away_is_not_in_3_days() {
        // 17:30 in New York on Monday; the visit is 23:30 on Tuesday.
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 22, 30, 0).single().expect("time");
        let content = visit_reminder(now, now + Duration::hours(30), "America/New_York");
        assert_eq!(content.subject, "Your appointment tomorrow, Tuesday 24 November");
        assert!(
            content.paragraphs[0].contains("is tomorrow: Tuesday 24 November 2026 at 23:30"),
            "{:?}",
            content.paragraphs
        );
        // 23:00 in Tokyo; 30 hours on is 05:00 two local days later.
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).single().expect("time");
        let content = visit_reminder(now, now + Duration::hours(30), "Asia/Tokyo");
        assert_eq!(content.subject, "Your appointment in 2 days, Wednesday 25 November");
    }

    #[test]
    fn patient_reminders_lead_to_the_portal_and_partners_get_their_own_copy() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 22, 30, 0).single().expect("time");
        let visit = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).single().expect("time");
        let content = visit_reminder(now, visit, "America/New_York");
        let (label, link) = content.action.clone().expect("a button to the patient's page");
        assert_eq!(label, "Open your page");
        assert_eq!(link, "https://secondlook.test/p/PORTAL-LINK-ADDED-WHEN-SENT");
        assert_eq!(content.list_title.as_deref(), Some("Questions to ask"), "until the patient writes their own");

        let theirs = for_care_partner(&content, "Pat Doe", "Sam Rivera");
        assert_eq!(theirs.greeting, "Hello Sam,");
        assert!(theirs.subject.starts_with("Pat's appointment"), "{}", theirs.subject);
        assert!(theirs.paragraphs[0].starts_with("Pat's second-opinion appointment"), "{}", theirs.paragraphs[0]);
        assert_eq!(theirs.action.map(|(_, link)| link), Some(link), "their own link is made as it is sent");
        assert_eq!(theirs.unsubscribe_url, None, "they cannot stop the patient's reminders");
        assert!(theirs.ics.is_some());
    }

    #[test]
    fn days_ahead_counts_local_calendar_days() {
        let tz: Tz = "Europe/Berlin".parse().expect("zone");
        let at = |d, h| Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).single().expect("time");
        assert_eq!(days_ahead(at(27, 8), at(27, 20), tz), "today");
        assert_eq!(days_ahead(at(27, 22), at(28, 1), tz), "tomorrow", "23:00 to 02:00 local is the next day");
        assert_eq!(days_ahead(at(28, 12), at(31, 11), tz), "in 3 days", "across the change to summer time");
    }
}

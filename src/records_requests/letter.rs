//! The request letter a provider receives, as plain blocks of text built
//! from plain facts: the print page and the PDF both lay these out, so the
//! two never say different things. It names the patient and what is asked
//! for, never a diagnosis or specialty; a right-of-access letter states the
//! legal basis and the date the provider must answer by, a release letter
//! carries the patient's signed authorization.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::clock::Periods;
use crate::vocabulary::{RecordKind, RequestType};

/// What a letter is made from.
#[derive(Debug, Clone)]
pub struct LetterFacts {
    pub request_id: i32,
    pub request_type: RequestType,
    pub kinds: Vec<RecordKind>,
    pub written_on: NaiveDate,
    pub case_reference: String,
    pub patient_name: String,
    pub patient_email: String,
    pub patient_phone: Option<String>,
    pub advocate_name: String,
    pub advocate_email: String,
    pub organisation: String,
    pub provider_name: String,
    pub provider_address: String,
    pub provider_fax: String,
    pub provider_email: String,
    pub provider_zone: Tz,
    /// Set once the provider has it.
    pub received_by_provider_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub periods: Periods,
    /// The provider's jurisdiction, when it sets its own period.
    pub jurisdiction: Option<String>,
    pub specialist_name: Option<String>,
    pub authorization: Option<SignedAuthorization>,
}

/// The patient's signed authorization, as a release letter quotes it.
#[derive(Debug, Clone)]
pub struct SignedAuthorization {
    pub text: String,
    pub signer_name: String,
    pub signed_on: NaiveDate,
    pub on_paper: bool,
}

/// One block of a letter, in reading order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Block {
    /// Lines printed as they are (addresses).
    Lines(Vec<String>),
    Heading(String),
    Paragraph(String),
    /// A bulleted list.
    List(Vec<String>),
    /// Quoted text (the authorization).
    Quote(String),
    /// A line to sign on.
    SignatureLine(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Letter {
    pub title: String,
    pub blocks: Vec<Block>,
    /// Why the letter cannot be sent yet, if it cannot.
    pub missing: Option<String>,
}

fn long_date(day: NaiveDate) -> String {
    day.format("%-d %B %Y").to_string()
}

fn provider_day(at: DateTime<Utc>, zone: Tz) -> String {
    long_date(at.with_timezone(&zone).date_naive())
}

/// Builds the letter for a request.
pub fn letter(f: &LetterFacts) -> Letter {
    let mut blocks = Vec::new();
    let mut from = vec![f.advocate_name.clone(), format!("Patient advocate, {}", f.organisation)];
    if !f.advocate_email.is_empty() {
        from.push(f.advocate_email.clone());
    }
    blocks.push(Block::Lines(from));
    blocks.push(Block::Lines(vec![long_date(f.written_on)]));
    let mut to = vec![f.provider_name.clone(), "Attention: Health information management / records release".into()];
    to.extend(f.provider_address.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
    if !f.provider_fax.is_empty() {
        to.push(format!("Fax: {}", f.provider_fax));
    }
    if !f.provider_email.is_empty() {
        to.push(format!("Email: {}", f.provider_email));
    }
    blocks.push(Block::Lines(to));
    let reference = format!("{}-R{}", f.case_reference, f.request_id);
    let records: Vec<String> = f.kinds.iter().map(|k| k.label().to_string()).collect();
    let mut patient = vec![format!("Patient: {}", f.patient_name), format!("Email: {}", f.patient_email)];
    if let Some(phone) = f.patient_phone.as_deref().filter(|p| !p.trim().is_empty()) {
        patient.push(format!("Phone: {phone}"));
    }
    patient.push(format!("Our reference: {reference}"));
    let days = f.periods.response_days;
    let by_date = match (f.received_by_provider_at, f.due_at) {
        (Some(received), Some(due)) => {
            Some((provider_day(received, f.provider_zone), provider_day(due, f.provider_zone)))
        }
        _ => None,
    };
    let mut missing = None;
    let title = match f.request_type {
        RequestType::PatientAccess => {
            let title = format!("Request for access to my medical records — {}", f.patient_name);
            blocks.push(Block::Heading(title.clone()));
            blocks.push(Block::Lines(patient));
            blocks.push(Block::Paragraph(format!(
                "I, {}, ask for a copy of the following records of mine that you hold, in electronic form where \
                 you keep them electronically:",
                f.patient_name
            )));
            blocks.push(Block::List(records));
            blocks.push(Block::Paragraph(format!(
                "Please send them to me, or to my patient advocate, {} ({}{}), whom I designate to receive them \
                 for my second medical opinion. Please quote our reference {reference}.",
                f.advocate_name,
                f.organisation,
                if f.advocate_email.is_empty() { String::new() } else { format!(", {}", f.advocate_email) },
            )));
            blocks.push(Block::Heading("The time you have to answer".into()));
            let mut basis = format!(
                "This is a request under my right of access to my health information in the HIPAA Privacy Rule \
                 (45 CFR 164.524). A covered health care provider must act on it no later than {days} calendar \
                 days after receiving it"
            );
            if let Some(place) = &f.jurisdiction {
                basis.push_str(&format!(" ({days} days is the limit that applies in {place})"));
            }
            match &by_date {
                Some((received, due)) => {
                    basis.push_str(&format!(". You received this request on {received}, so please answer by {due}."))
                }
                None => basis.push_str(&format!(": please answer within {days} days of receiving this letter.")),
            }
            blocks.push(Block::Paragraph(basis));
            blocks.push(Block::Paragraph(format!(
                "If you cannot act in that time, you may extend it once, by no more than {} days, only by telling \
                 me in writing within the first {days} days the reason for the delay and the date by which you \
                 will act. If you deny any part of this request, please tell me in writing why, and how I may \
                 have the denial reviewed.",
                f.periods.extension_days
            )));
            title
        }
        RequestType::Authorization => {
            let title = format!("Release of medical records on the patient's authorization — {}", f.patient_name);
            blocks.push(Block::Heading(title.clone()));
            blocks.push(Block::Lines(patient));
            let specialist = f.specialist_name.clone().unwrap_or_else(|| "the specialist giving the opinion".into());
            blocks.push(Block::Paragraph(format!(
                "{} has authorized the release of the following records to {specialist}, for a second medical \
                 opinion. Their signed authorization is set out below.",
                f.patient_name
            )));
            blocks.push(Block::List(records));
            let when = match &by_date {
                Some((_, due)) => format!("by {due}"),
                None => format!("within {} days of receiving this letter", f.periods.authorization_days),
            };
            blocks.push(Block::Paragraph(format!(
                "Please send the records {when} to {}, {}{}, who coordinates the second opinion and will pass \
                 them to the specialist. Please quote our reference {reference}.",
                f.advocate_name,
                f.organisation,
                if f.advocate_email.is_empty() { String::new() } else { format!(" ({})", f.advocate_email) },
            )));
            blocks.push(Block::Heading("The patient's authorization".into()));
            match &f.authorization {
                Some(signed) => {
                    blocks.push(Block::Quote(signed.text.clone()));
                    blocks.push(Block::Paragraph(format!(
                        "Signed by {} on {}, {}.",
                        signed.signer_name,
                        long_date(signed.signed_on),
                        if signed.on_paper { "on paper" } else { "electronically in the patient's portal" }
                    )));
                }
                None => {
                    missing = Some(
                        "The patient has not signed an authorization covering the current specialist yet: \
                         record their signature (portal or paper) before sending this letter."
                            .to_string(),
                    );
                    blocks.push(Block::Paragraph("No signed authorization is on file yet.".into()));
                }
            }
            title
        }
    };
    blocks.push(Block::Paragraph("Thank you for your help.".into()));
    if f.request_type == RequestType::PatientAccess {
        // The request is the patient's own: they sign it.
        blocks.push(Block::SignatureLine(format!("Signature of {}", f.patient_name)));
    }
    Letter { title, blocks, missing }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(request_type: RequestType) -> LetterFacts {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_default();
        LetterFacts {
            request_id: 7,
            request_type,
            kinds: vec![RecordKind::LabResults, RecordKind::PathologyReport],
            written_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default(),
            case_reference: "SL-2026-0042".into(),
            patient_name: "Jordan Patient".into(),
            patient_email: "jordan@example.org".into(),
            patient_phone: None,
            advocate_name: "Alex Advocate".into(),
            advocate_email: "alex@example.org".into(),
            organisation: "SecondLook".into(),
            provider_name: "Mercy General Hospital".into(),
            provider_address: "100 Main St\nChicago IL".into(),
            provider_fax: "+1 312 555 0100".into(),
            provider_email: String::new(),
            provider_zone: chrono_tz::America::Chicago,
            received_by_provider_at: Some(at("2026-12-01T16:00:00Z")),
            due_at: Some(at("2026-12-31T05:59:59Z")),
            periods: Periods { response_days: 30, extension_days: 30, authorization_days: 14, mail_days: 5 },
            jurisdiction: None,
            specialist_name: Some("Dr. Ada Stone".into()),
            authorization: None,
        }
    }

    fn text(letter: &Letter) -> String {
        letter
            .blocks
            .iter()
            .map(|b| match b {
                Block::Lines(lines) | Block::List(lines) => lines.join("\n"),
                Block::Heading(t) | Block::Paragraph(t) | Block::Quote(t) | Block::SignatureLine(t) => t.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_right_of_access_letter_states_the_rule_and_the_day_to_answer_by_in_the_providers_calendar() {
        let letter = letter(&facts(RequestType::PatientAccess));
        let all = text(&letter);
        assert!(all.contains("45 CFR 164.524"), "{all}");
        assert!(
            all.contains("received this request on 1 December 2026, so please answer by 30 December 2026"),
            "{all}"
        );
        assert!(all.contains("extend it once, by no more than 30 days"));
        assert!(all.contains("Lab results") && all.contains("Pathology / biopsy report"));
        assert!(all.contains("SL-2026-0042-R7"));
        assert!(letter.missing.is_none());
        assert!(letter.blocks.iter().any(|b| matches!(b, Block::SignatureLine(_))), "the patient signs it");
    }

    #[test]
    fn a_draft_letter_counts_from_receipt_and_a_jurisdiction_names_its_own_limit() {
        let mut f = facts(RequestType::PatientAccess);
        f.received_by_provider_at = None;
        f.due_at = None;
        f.periods.response_days = 15;
        f.jurisdiction = Some("California".into());
        let all = text(&letter(&f));
        assert!(all.contains("no later than 15 calendar days after receiving it (15 days is the limit that applies in California): please answer within 15 days"), "{all}");
    }

    #[test]
    fn a_release_letter_quotes_the_signed_authorization_or_says_it_is_missing() {
        let unsigned = letter(&facts(RequestType::Authorization));
        assert!(unsigned.missing.is_some());
        assert!(text(&unsigned).contains("to Dr. Ada Stone, for a second medical opinion"));
        let mut f = facts(RequestType::Authorization);
        f.authorization = Some(SignedAuthorization {
            text: "I authorize my patient advocate…".into(),
            signer_name: "Jordan Patient".into(),
            signed_on: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default(),
            on_paper: true,
        });
        let signed = letter(&f);
        assert!(signed.missing.is_none());
        let all = text(&signed);
        assert!(all.contains("Signed by Jordan Patient on 30 November 2026, on paper."), "{all}");
        assert!(!all.contains("45 CFR"), "a release is not a right-of-access request");
    }
}

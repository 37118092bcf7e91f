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
    /// Of those, the ones that arrived already.
    pub received: Vec<RecordKind>,
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
    /// The extension the provider gave: when its notice arrived (`due_at` is then its new date).
    pub extension_notice_received_at: Option<DateTime<Utc>>,
    pub first_due_at: Option<DateTime<Utc>>,
    pub periods: Periods,
    /// The provider's jurisdiction, when it sets its own period.
    pub jurisdiction: Option<String>,
    pub specialist_name: Option<String>,
    pub authorization: Option<SignedAuthorization>,
}

/// The patient's signed authorization on file, as a release letter cites it.
#[derive(Debug, Clone)]
pub struct SignedAuthorization {
    /// The words signed, when they can be shown exactly as signed.
    pub text: Option<String>,
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
    let outstanding: Vec<String> =
        f.kinds.iter().filter(|k| !f.received.contains(k)).map(|k| k.label().to_string()).collect();
    let arrived: Vec<&str> = f.kinds.iter().filter(|k| f.received.contains(k)).map(|k| k.label()).collect();
    let mut patient = vec![format!("Patient: {}", f.patient_name), format!("Email: {}", f.patient_email)];
    if let Some(phone) = f.patient_phone.as_deref().filter(|p| !p.trim().is_empty()) {
        patient.push(format!("Phone: {phone}"));
    }
    patient.push(format!("Our reference: {reference}"));
    let advocate_contact = if f.advocate_email.is_empty() { String::new() } else { format!(", {}", f.advocate_email) };
    let already = (!arrived.is_empty()).then(|| format!("Already received, thank you: {}.", arrived.join(", ")));
    let days = f.periods.response_days;
    let day = |at: DateTime<Utc>| provider_day(at, f.provider_zone);
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
            blocks.push(Block::List(outstanding));
            blocks.extend(already.map(Block::Paragraph));
            blocks.push(Block::Paragraph(format!(
                "Please send them to me, or to my patient advocate, {} ({}{advocate_contact}), whom I designate \
                 to receive them for my second medical opinion. Please quote our reference {reference}.",
                f.advocate_name, f.organisation,
            )));
            blocks.push(Block::Heading("The time you have to answer".into()));
            let mut basis = "This is a request under my right of access to my health information in the HIPAA \
                             Privacy Rule (45 CFR 164.524), which requires a covered health care provider to act \
                             on it no later than 30 calendar days after receiving it"
                .to_string();
            if let Some(place) = &f.jurisdiction {
                basis.push_str(&format!("; the law that applies in {place} requires it within {days} days"));
            }
            let first_due = f.first_due_at.or(f.due_at);
            match (f.received_by_provider_at, first_due) {
                (Some(received), Some(first_due)) => basis.push_str(&format!(
                    ". You received this request on {}, so the time to answer ends on {}.",
                    day(received),
                    day(first_due)
                )),
                _ => basis.push_str(&format!(". Please answer within {days} days of receiving this letter.")),
            }
            blocks.push(Block::Paragraph(basis));
            match (f.extension_notice_received_at, f.due_at) {
                (Some(notice), Some(extended)) => blocks.push(Block::Paragraph(format!(
                    "You extended that time once, by your written notice received on {}, to {}: please answer by \
                     then. It cannot be extended again. If you deny any part of this request, please tell me in \
                     writing why, and how I may have the denial reviewed.",
                    day(notice),
                    day(extended)
                ))),
                _ => blocks.push(Block::Paragraph(format!(
                    "If you cannot act in that time, you may extend it once, by no more than {} days, only by \
                     telling me in writing within that time the reason for the delay and the date by which you \
                     will act. If you deny any part of this request, please tell me in writing why, and how I may \
                     have the denial reviewed.",
                    f.periods.extension_days
                ))),
            }
            title
        }
        RequestType::Authorization => {
            let title = format!("Release of medical records on the patient's authorization — {}", f.patient_name);
            let specialist = f.specialist_name.clone().unwrap_or_else(|| "the specialist giving the opinion".into());
            blocks.push(Block::Heading(title.clone()));
            blocks.push(Block::Lines(patient));
            blocks.push(Block::Paragraph(format!(
                "{} asks you to release the following records for a second medical opinion:",
                f.patient_name
            )));
            blocks.push(Block::List(outstanding.clone()));
            blocks.extend(already.map(Block::Paragraph));
            let when = match f.due_at {
                Some(due) => format!("by {}", day(due)),
                None => format!("within {} days of receiving this letter", f.periods.authorization_days),
            };
            blocks.push(Block::Paragraph(format!(
                "Please send them {when} to {}, patient advocate at {}{advocate_contact}, who coordinates the \
                 second opinion and will share them with {specialist}. Please quote our reference {reference}.",
                f.advocate_name, f.organisation,
            )));
            blocks.push(Block::Heading("Authorization to release health information".into()));
            blocks.push(Block::Paragraph(format!(
                "I, {patient}, authorize {provider} to release the records listed above to {advocate}, patient \
                 advocate at {organisation}, to be shared with {specialist} for the sole purpose of giving me a \
                 second medical opinion. This authorization expires one year after I sign it. I may revoke it at \
                 any time by writing to {provider}, except for records already released. My treatment, payment, \
                 enrollment or eligibility for benefits does not depend on my signing it. Records released under \
                 it may be disclosed again by those who receive them and may then no longer be protected by \
                 federal privacy rules.",
                patient = f.patient_name,
                provider = f.provider_name,
                advocate = f.advocate_name,
                organisation = f.organisation,
            )));
            match &f.authorization {
                Some(signed) => {
                    blocks.push(Block::Paragraph(format!(
                        "{} also signed an authorization for {} to share these records with the specialist, \
                         on {}, {}.",
                        signed.signer_name,
                        f.organisation,
                        long_date(signed.signed_on),
                        if signed.on_paper { "on paper" } else { "electronically in the patient's portal" }
                    )));
                    if let Some(text) = &signed.text {
                        blocks.push(Block::Quote(text.clone()));
                    }
                }
                None => {
                    missing = Some(
                        "The patient has no authorization on file that covers the current specialist and is less \
                         than a year old: record their signature (in the portal or on paper) before sending this \
                         letter."
                            .to_string(),
                    );
                }
            }
            title
        }
    };
    blocks.push(Block::Paragraph("Thank you for your help.".into()));
    // A right-of-access request is the patient's own, and a release needs
    // their signature on it: either way they sign the letter.
    blocks.push(Block::SignatureLine(format!("Signature of {}", f.patient_name)));
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
            received: Vec::new(),
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
            extension_notice_received_at: None,
            first_due_at: None,
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
            all.contains("received this request on 1 December 2026, so the time to answer ends on 30 December 2026"),
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
        assert!(all.contains("no later than 30 calendar days after receiving it; the law that applies in California requires it within 15 days. Please answer within 15 days"), "{all}");
    }

    #[test]
    fn after_an_extension_the_letter_names_the_new_date_and_asks_only_for_what_is_missing() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_default();
        let mut f = facts(RequestType::PatientAccess);
        f.received = vec![RecordKind::LabResults];
        f.first_due_at = f.due_at;
        f.due_at = Some(at("2027-01-20T05:59:59Z"));
        f.extension_notice_received_at = Some(at("2026-12-20T15:00:00Z"));
        let letter = letter(&f);
        let all = text(&letter);
        assert!(all.contains("the time to answer ends on 30 December 2026"), "the first period: {all}");
        assert!(all.contains("received on 20 December 2026, to 19 January 2027: please answer by then"), "{all}");
        assert!(all.contains("cannot be extended again") && !all.contains("you may extend it once"));
        assert!(letter.blocks.contains(&Block::List(vec!["Pathology / biopsy report".into()])), "{all}");
        assert!(all.contains("Already received, thank you: Lab results."));
    }

    #[test]
    fn a_release_letter_quotes_the_signed_authorization_or_says_it_is_missing() {
        let unsigned = letter(&facts(RequestType::Authorization));
        assert!(unsigned.missing.is_some());
        let all = text(&unsigned);
        assert!(all.contains("authorize Mercy General Hospital to release the records listed above to Alex Advocate"));
        assert!(all.contains("shared with Dr. Ada Stone") && all.contains("expires one year after I sign it"));
        let mut f = facts(RequestType::Authorization);
        f.authorization = Some(SignedAuthorization {
            text: Some("I authorize my patient advocate…".into()),
            signer_name: "Jordan Patient".into(),
            signed_on: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default(),
            on_paper: true,
        });
        let signed = letter(&f);
        assert!(signed.missing.is_none());
        let all = text(&signed);
        assert!(all.contains("Jordan Patient also signed an authorization for SecondLook to share these records with the specialist, on 30 November 2026, on paper."), "{all}");
        assert!(all.contains("I authorize my patient advocate…"));
        assert!(signed.blocks.iter().any(|b| matches!(b, Block::SignatureLine(_))), "signed on the letter too");
        assert!(!all.contains("45 CFR"), "a release is not a right-of-access request");
    }
}

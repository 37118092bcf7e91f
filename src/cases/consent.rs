//! The patient's authorization to share their records with the specialist
//! of an opinion round: the exact text they are asked to sign (versioned,
//! with its digest kept beside every signature), and the signatures — given
//! in the patient portal, or on paper and recorded by staff. Whether a
//! signature is needed before the consultation is held is a setting.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::{db::entities::portal_consent, error::AppResult, secrets::digest};

/// The version of [`TEXT`]: changed whenever a word of it changes.
pub const TEXT_VERSION: &str = "2026-12-1";

/// What the patient reads and signs. `{specialist}` is filled in.
pub const TEXT: &str = "I authorize my patient advocate at SecondLook to share copies of my medical records — \
test results, imaging, pathology and other reports, medication lists and summaries of my care that I or my \
providers send for this second opinion — with {specialist}, for the sole purpose of giving me a second medical \
opinion. I understand that this authorization covers only the records gathered for this second opinion; that I \
may revoke it at any time by telling my advocate in writing, except for records already shared; that my \
treatment, payment, enrollment or eligibility for benefits does not depend on signing it; and that records \
shared with the specialist may be protected by their own privacy obligations. This authorization expires one \
year after I sign it, or when my second opinion is complete, whichever comes first.";

/// The text as shown to a patient whose case has `specialist` chosen (or none yet).
pub fn text_for(specialist: Option<&str>) -> String {
    TEXT.replace("{specialist}", specialist.unwrap_or("the specialist my advocate chooses"))
}

/// The digest kept with a signature of `text`.
pub fn text_digest(text: &str) -> String {
    digest(text)
}

/// How a consent reached the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Signed by the patient in the portal.
    Portal,
    /// Signed on paper; a staff member recorded it.
    Paper,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Portal => "portal",
            Method::Paper => "paper",
        }
    }
}

/// A signature to record.
#[derive(Debug, Clone)]
pub struct Signature {
    pub case_id: i32,
    pub round: i32,
    pub specialist_id: Option<i32>,
    pub signer_name: String,
    /// The audit label of whoever recorded it.
    pub signed_by: String,
    pub method: Method,
    pub signed_at: DateTime<Utc>,
    pub ip: Option<String>,
    /// The text signed, exactly as shown.
    pub text: String,
    pub document_id: Option<i32>,
}

pub async fn record<C: ConnectionTrait>(conn: &C, signature: Signature) -> AppResult<portal_consent::Model> {
    Ok(portal_consent::ActiveModel {
        case_id: Set(signature.case_id),
        round: Set(signature.round),
        specialist_id: Set(signature.specialist_id),
        signer_name: Set(signature.signer_name),
        signed_by: Set(signature.signed_by),
        method: Set(signature.method.as_str().to_string()),
        signed_at: Set(signature.signed_at),
        ip: Set(signature.ip),
        text_version: Set(TEXT_VERSION.to_string()),
        text_sha256: Set(text_digest(&signature.text)),
        document_id: Set(signature.document_id),
        ..Default::default()
    }
    .insert(conn)
    .await?)
}

/// The newest consent given for `round` of the case, if any.
pub async fn for_round<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
    round: i32,
) -> AppResult<Option<portal_consent::Model>> {
    Ok(portal_consent::Entity::find()
        .filter(portal_consent::Column::CaseId.eq(case_id))
        .filter(portal_consent::Column::Round.eq(round))
        .order_by_desc(portal_consent::Column::SignedAt)
        .one(conn)
        .await?)
}

/// Whether `consent` covers sharing with `specialist_id`: one naming a
/// specialist covers that specialist only; one signed before any was
/// chosen ("the specialist my advocate chooses") covers whoever is.
pub fn covers(consent: &portal_consent::Model, specialist_id: Option<i32>) -> bool {
    consent.specialist_id.is_none() || consent.specialist_id == specialist_id
}

/// The consent of `round` that covers its current specialist, if any.
pub async fn in_force<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
    round: i32,
    specialist_id: Option<i32>,
) -> AppResult<Option<portal_consent::Model>> {
    Ok(for_round(conn, case_id, round).await?.filter(|c| covers(c, specialist_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_text_names_the_specialist_and_its_digest_follows_every_word() {
        let named = text_for(Some("Dr. Rosa Chen"));
        assert!(named.contains("with Dr. Rosa Chen, for the sole purpose"));
        assert!(!named.contains("{specialist}"));
        let unnamed = text_for(None);
        assert!(unnamed.contains("the specialist my advocate chooses"));
        assert_ne!(text_digest(&named), text_digest(&unnamed));
        assert_eq!(text_digest(&named), text_digest(&text_for(Some("Dr. Rosa Chen"))));
    }

    #[test]
    fn a_consent_naming_a_specialist_covers_that_specialist_only() {
        let at = chrono::Utc::now();
        let signed = |specialist_id| portal_consent::Model {
            id: 1,
            case_id: 1,
            round: 2,
            specialist_id,
            signer_name: "Pat".into(),
            signed_by: "patient".into(),
            method: "portal".into(),
            signed_at: at,
            ip: None,
            text_version: TEXT_VERSION.into(),
            text_sha256: String::new(),
            document_id: None,
        };
        assert!(covers(&signed(Some(4)), Some(4)));
        assert!(!covers(&signed(Some(4)), Some(5)), "another specialist was chosen since");
        assert!(covers(&signed(None), Some(5)), "signed for the specialist the advocate chooses");
    }
}

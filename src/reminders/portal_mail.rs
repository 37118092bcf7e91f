//! Emails that carry a personal portal link: a link the advocate sends
//! (or the patient asks for again), the invitation of a care partner, and
//! every reminder to the patient. Like reset emails, the queued text holds
//! a placeholder, and [`fill`] makes the link — one per email, working for
//! `portal.link_lifetime` from when it is sent — as the email is handed to
//! the mail server. So no working link is ever stored, and a link is never
//! made for an email that was not sent.

use chrono::Duration;
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::json;

use super::{
    outbox::{self, Draft},
    render::{self, Content},
};
use crate::{
    actor::Actor,
    audit::{self, Subject},
    cases::store as case_store,
    config::Settings,
    db::{
        self,
        entities::{case, outbox_message, portal_partner},
    },
    error::{AppError, AppResult},
    portal::{links, partners},
    secrets::{hex, random_bytes},
};

/// Stands in the queued text where a link's token goes.
pub const TOKEN_SLOT: &str = "PORTAL-LINK-ADDED-WHEN-SENT";
pub const LINK_KIND: &str = "portal_link";
pub const INVITE_KIND: &str = "portal_invite";
const KEY_PREFIX: &str = "portal:";

/// The link as queued: the slot where its token will be.
pub fn queued_link(public_url: &str) -> String {
    links::link(public_url, TOKEN_SLOT)
}

/// A queued key for a portal email to the patient (`partner` `None`) or a
/// care partner: unique, and naming whom the link is for.
fn key(case_id: i32, partner: Option<i32>) -> AppResult<String> {
    Ok(format!("{KEY_PREFIX}{case_id}:{}:{}", partner.unwrap_or(0), hex(&random_bytes::<8>()?)))
}

/// Marks the key of a reminder's copy for a care partner.
const PARTNER_MARK: &str = "#partner:";

/// The key of the copy of reminder `key` for care partner `partner_id`.
pub fn partner_copy_key(key: &str, partner_id: i32) -> String {
    format!("{key}{PARTNER_MARK}{partner_id}")
}

/// The care partner a queued email is for, from its key; `None` for the patient.
fn partner_of(dedupe_key: &str) -> Option<i32> {
    let id = match dedupe_key.strip_prefix(KEY_PREFIX) {
        Some(rest) => rest.split(':').nth(1)?,
        None => dedupe_key.rsplit_once(PARTNER_MARK)?.1,
    };
    id.parse::<i32>().ok().filter(|id| *id > 0)
}

fn lifetime(settings: &Settings) -> Duration {
    Duration::from_std(settings.portal.link_lifetime).unwrap_or(Duration::days(14))
}

fn lifetime_words(settings: &Settings) -> String {
    let days = lifetime(settings).num_days();
    if days >= 1 { format!("{days} days") } else { format!("{} hours", lifetime(settings).num_hours().max(1)) }
}

fn first_name(name: &str) -> String {
    name.split_whitespace().next().unwrap_or("there").to_string()
}

/// Queues an email with a fresh portal link to the case's patient, or to
/// one of its care partners. Staff need access to the case; `actor` may
/// also be the system answering an expired link's request.
pub async fn send_link(
    db: &DatabaseConnection,
    settings: &Settings,
    actor: &Actor,
    case_id: i32,
    partner_id: Option<i32>,
) -> AppResult<String> {
    case_store::check_access(db, actor, case_id, "case.portal_link_sent").await?;
    let row = case::Entity::find_by_id(case_id).one(db).await?.ok_or(AppError::NotFound)?;
    if row.erased_at.is_some() {
        return Err(AppError::conflict("case_erased", "the patient data of this case was erased"));
    }
    let (name, email) = match partner_id {
        None => (row.patient_name.clone(), row.patient_email.clone()),
        Some(id) => {
            let partner = portal_partner::Entity::find_by_id(id)
                .one(db)
                .await?
                .filter(|p| p.case_id == case_id && p.revoked_at.is_none())
                .ok_or(AppError::NotFound)?;
            (partner.name, partner.email)
        }
    };
    let content = Content {
        subject: "Your SecondLook page".to_string(),
        greeting: format!("Hello {},", first_name(&name)),
        paragraphs: vec![
            "Here is your personal link to your second-opinion page. There you can see where things stand, send \
             your medical records and keep your list of questions for the specialist."
                .to_string(),
            format!(
                "The link works for {}. It is meant for you alone: please do not forward this email.",
                lifetime_words(settings)
            ),
        ],
        action: Some(("Open my page".to_string(), queued_link(&settings.public_url()))),
        footer: vec!["This email was sent by SecondLook on behalf of your patient advocate.".to_string()],
        ..Content::default()
    };
    let txn = db::begin_write(db).await?;
    outbox::enqueue(&txn, draft(LINK_KIND, key(case_id, partner_id)?, case_id, &name, &email, content)?).await?;
    let to = if partner_id.is_some() { "care_partner" } else { "patient" };
    audit::record(
        &txn,
        actor,
        "case.portal_link_sent",
        Subject::case(case_id),
        json!({ "to": to, "partner_id": partner_id }),
    )
    .await?;
    txn.commit().await?;
    Ok(email)
}

fn draft(kind: &str, key: String, case_id: i32, name: &str, email: &str, content: Content) -> AppResult<Draft> {
    let (body_text, body_html) = render::parts(&content)?;
    Ok(Draft {
        key,
        case_id: Some(case_id),
        kind: kind.to_string(),
        recipient_email: email.to_string(),
        recipient_name: name.to_string(),
        subject: content.subject,
        body_text,
        body_html,
        ics: None,
        unsubscribe_url: None,
        send_after: db::now(),
    })
}

/// Adds a care partner to the case and queues their invitation, together.
pub async fn invite(
    db: &DatabaseConnection,
    settings: &Settings,
    actor: &Actor,
    case_id: i32,
    invitation: &partners::Invitation,
) -> AppResult<portal_partner::Model> {
    invitation.check()?;
    let w = case_store::begin_case_write(db, actor, case_id, "case.partner_invited").await?;
    if w.case.stage.is_final() {
        return Err(AppError::conflict("case_closed", "the case is closed"));
    }
    let partner = partners::add(&w.txn, case_id, invitation, &actor.label, w.now).await?;
    let patient = w.case.patient_name.clone();
    let content = Content {
        subject: format!("{} invited you to follow their second opinion", first_name(&patient)),
        greeting: format!("Hello {},", first_name(&partner.name)),
        paragraphs: vec![format!(
            "{} asked SecondLook to let you help with their second medical opinion.",
            first_name(&patient)
        )],
        list_title: Some("With your own link you can".to_string()),
        items: partners::rights(&partner).into_iter().map(String::from).collect(),
        action: Some(("Open the page".to_string(), queued_link(&settings.public_url()))),
        footer: vec![
            format!(
                "The link works for {} and is meant for you alone. {} or their advocate can stop your access at any time.",
                lifetime_words(settings),
                first_name(&patient)
            ),
            "This email was sent by SecondLook on behalf of the patient's advocate.".to_string(),
        ],
        ..Content::default()
    };
    let queued = draft(INVITE_KIND, key(case_id, Some(partner.id))?, case_id, &partner.name, &partner.email, content)?;
    outbox::enqueue(&w.txn, queued).await?;
    let detail = json!({
        "partner_id": partner.id, "may_upload": partner.may_upload,
        "may_edit_questions": partner.may_edit_questions, "gets_reminders": partner.gets_reminders,
    });
    w.commit_with(actor, Default::default(), "case.partner_invited", detail).await?;
    Ok(partner)
}

/// A queued portal email made ready to send, or why it is not worth sending.
pub enum Filled {
    Ready(Box<outbox_message::Model>),
    Pointless(String),
}

/// Whether `row` carries a portal link to be made as it is sent.
pub fn carries_link(row: &outbox_message::Model) -> bool {
    row.case_id.is_some() && row.body_text.contains(TOKEN_SLOT)
}

/// Makes the link of the portal email `row` and puts it into its text.
pub async fn fill(db: &DatabaseConnection, settings: &Settings, row: &outbox_message::Model) -> AppResult<Filled> {
    let Some(case_id) = row.case_id else { return Ok(Filled::Pointless("this email names no case".into())) };
    let partner_id = partner_of(&row.dedupe_key);
    if let Some(id) = partner_id {
        let standing = portal_partner::Entity::find_by_id(id).one(db).await?.is_some_and(|p| p.revoked_at.is_none());
        if !standing {
            return Ok(Filled::Pointless("not sent: the care partner was removed before the email went out".into()));
        }
    }
    let erased = case::Entity::find_by_id(case_id).one(db).await?.is_none_or(|c| c.erased_at.is_some());
    if erased {
        return Ok(Filled::Pointless("not sent: the case's patient data was erased".into()));
    }
    let token = links::mint(db, case_id, partner_id, lifetime(settings), db::now()).await?;
    let mut ready = row.clone();
    ready.body_text = row.body_text.replace(TOKEN_SLOT, &token);
    ready.body_html = row.body_html.replace(TOKEN_SLOT, &token);
    Ok(Filled::Ready(Box::new(ready)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_whom_the_link_is_for() {
        let patient = key(7, None).expect("random");
        let partner = key(7, Some(12)).expect("random");
        assert_ne!(patient, key(7, None).expect("random"), "every email its own key");
        assert_eq!(partner_of(&patient), None);
        assert_eq!(partner_of(&partner), Some(12));
        assert_eq!(partner_of("consultation_soon:7:1:24"), None);
        assert_eq!(partner_of(&partner_copy_key("consultation_soon:7:1:24", 5)), Some(5));
        assert!(!crate::secrets::is_link_token(TOKEN_SLOT), "the placeholder opens nothing");
    }
}

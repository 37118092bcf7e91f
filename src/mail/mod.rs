//! Email: turning an outbox row into a MIME message (plain text + HTML,
//! optional calendar attachment, stable Message-ID, one-click unsubscribe)
//! and handing it to the configured transport — SMTP through a pooled lettre
//! transport, or `.eml` files on disk.

use std::time::SystemTime;

use lettre::{
    Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Attachment, Mailbox, MultiPart, SinglePart,
        header::{ContentType, HeaderName, HeaderValue},
    },
    transport::smtp::{PoolConfig, authentication::Credentials},
};

use crate::{
    config::{MailSettings, MailTransport, SmtpTls},
    db::entities::outbox_message,
};

/// Why a message did not go out, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: connection refused or dropped, a 4xx answer, a timeout.
    #[error("temporary: {0}")]
    Temporary(String),
    /// Will not succeed as it is: a 5xx answer, an invalid address.
    #[error("permanent: {0}")]
    Permanent(String),
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// The configured transport, built once and shared: the SMTP pool only
/// helps when one transport is reused.
pub struct Mailer {
    transport: Transport,
    settings: MailSettings,
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> Result<Self, String> {
        let transport = match settings.transport {
            MailTransport::File => {
                std::fs::create_dir_all(&settings.file_dir)
                    .map_err(|e| format!("cannot create mail.file_dir {}: {e}", settings.file_dir))?;
                Transport::File(AsyncFileTransport::new(&settings.file_dir))
            }
            MailTransport::Smtp => {
                let smtp = &settings.smtp;
                let builder = match smtp.tls {
                    SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
                    SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                        .map_err(|e| format!("mail.smtp: {e}"))?,
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                        .map_err(|e| format!("mail.smtp: {e}"))?,
                };
                let mut builder = builder
                    .port(smtp.port)
                    .timeout(Some(smtp.timeout))
                    .pool_config(PoolConfig::new().max_size(smtp.pool_size.max(1)).idle_timeout(smtp.pool_idle));
                if !smtp.username.is_empty() {
                    builder = builder
                        .credentials(Credentials::new(smtp.username.clone(), smtp.password.expose().to_string()));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Self { transport, settings: settings.clone() })
    }

    /// How many messages may be handed over at once: one per pooled SMTP
    /// connection, so none waits on the pool with its timeout running.
    pub fn parallel_sends(&self) -> usize {
        match self.transport {
            Transport::Smtp(_) => usize::try_from(self.settings.smtp.pool_size.max(1)).unwrap_or(1),
            Transport::File(_) => 1,
        }
    }

    pub async fn send(&self, row: &outbox_message::Model) -> Result<(), SendError> {
        let message = compose(&self.settings, row)?;
        match &self.transport {
            // lettre bounds connecting and each command; this bounds the whole
            // exchange, so a server that stalls mid-message cannot hold a sender.
            Transport::Smtp(smtp) => match tokio::time::timeout(self.settings.smtp.timeout, smtp.send(message)).await {
                Ok(result) => result.map(|_| ()).map_err(|err| classify_smtp(&err)),
                Err(_) => Err(SendError::Temporary(format!(
                    "timed out after {:?} waiting for the SMTP server",
                    self.settings.smtp.timeout
                ))),
            },
            Transport::File(file) => file
                .send(message)
                .await
                .map(|_| ())
                .map_err(|err| SendError::Temporary(format!("writing the .eml file: {err}"))),
        }
    }
}

fn classify_smtp(err: &lettre::transport::smtp::Error) -> SendError {
    let text = err.to_string();
    if err.is_permanent() { SendError::Permanent(text) } else { SendError::Temporary(text) }
}

/// The Message-ID of an outbox row: the same on every attempt, so a message
/// sent twice after a crash is recognisably the same message.
pub fn message_id(settings: &MailSettings, row: &outbox_message::Model) -> String {
    format!("<outbox-{}-{}@{}>", row.id, row.created_at.timestamp(), settings.message_id_domain)
}

/// Header text on one line: control characters (CR, LF…) become spaces.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Builds the MIME message. Names and subjects go through lettre's header
/// encoding, so no text can add a header line of its own.
pub fn compose(settings: &MailSettings, row: &outbox_message::Model) -> Result<Message, SendError> {
    let from_address: Address =
        settings.from_address.parse().map_err(|e| SendError::Permanent(format!("mail.from_address: {e}")))?;
    let to_address: Address =
        row.recipient_email.parse().map_err(|e| SendError::Permanent(format!("recipient address: {e}")))?;
    let mut builder = Message::builder()
        .from(Mailbox::new(Some(one_line(&settings.from_name)), from_address))
        .to(Mailbox::new(Some(one_line(&row.recipient_name)), to_address))
        .subject(one_line(&row.subject))
        .message_id(Some(message_id(settings, row)))
        .date(SystemTime::from(row.created_at))
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()));
    if let Ok(reply_to) = settings.reply_to.parse::<Address>() {
        builder = builder.reply_to(Mailbox::new(None, reply_to));
    }
    if let Some(url) = &row.unsubscribe_url {
        builder = builder
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), format!("<{url}>")))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(row.body_text.clone()))
        .singlepart(SinglePart::html(row.body_html.clone()));
    let body = match &row.ics {
        Some(ics) => {
            let calendar = ContentType::parse("text/calendar; method=PUBLISH; charset=utf-8")
                .map_err(|e| SendError::Permanent(format!("calendar content type: {e}")))?;
            MultiPart::mixed()
                .multipart(alternative)
                .singlepart(Attachment::new("appointment.ics".into()).body(ics.clone(), calendar))
        }
        None => alternative,
    };
    builder.multipart(body).map_err(|e| SendError::Permanent(format!("building the message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn row() -> outbox_message::Model {
        let now = chrono::Utc::now();
        outbox_message::Model {
            id: 42,
            dedupe_key: "k".into(),
            case_id: Some(1),
            kind: "records_nudge".into(),
            recipient_email: "pat@example.org".into(),
            recipient_name: "Pat\r\nBcc: victim@example.org".into(),
            subject: "Hello\r\nBcc: victim@example.org".into(),
            body_text: "text".into(),
            body_html: "<p>html</p>".into(),
            ics: Some("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".into()),
            unsubscribe_url: Some("http://127.0.0.1:3000/u/abc".into()),
            status: "queued".into(),
            attempts: 0,
            next_attempt_at: now,
            lease_until: None,
            lease_owner: None,
            last_error: None,
            created_at: now,
            sent_at: None,
            updated_at: now,
        }
    }

    #[test]
    fn header_injection_is_impossible_by_construction() {
        let settings = Settings::defaults().expect("defaults").mail;
        let message = compose(&settings, &row()).expect("builds");
        let raw = String::from_utf8(message.formatted()).expect("utf-8");
        let header_block = raw.split("\r\n\r\n").next().expect("headers");
        assert!(!header_block.lines().any(|l| l.to_ascii_lowercase().starts_with("bcc:")), "{header_block}");
        assert!(header_block.contains("List-Unsubscribe: <http://127.0.0.1:3000/u/abc>"));
        assert!(header_block.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(header_block.contains("Auto-Submitted: auto-generated"));
        assert!(raw.contains("text/calendar"));
        assert!(raw.contains("Message-ID: <outbox-42-"), "{header_block}");
    }
}

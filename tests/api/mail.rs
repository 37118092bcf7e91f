//! Reminders and email against a real SMTP server on loopback: what arrives,
//! and what happens when the server is down, answers 4xx or 5xx, is slow,
//! is shared by two senders, or the sender is killed mid-batch.

use std::{collections::HashMap, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secondlook::{
    config::{MailTransport, Settings, SmtpTls},
    db::entities::{audit_entry, case, outbox_message},
    reminders::{
        Reminders,
        outbox::{self, Draft},
        scan,
    },
};
use serde_json::json;

use crate::{
    common::{Backend, TestApp, hours_from_now},
    smtp_server::SmtpServer,
};

crate::on_both_databases!(
    a_consultation_reminder_arrives_as_a_patient_would_want_it,
    a_server_that_is_down_keeps_emails_queued_until_it_returns,
    temporary_answers_are_retried_and_permanent_ones_fail_visibly,
    a_slow_server_times_out_without_blocking_the_web_server,
    two_senders_deliver_each_of_a_thousand_emails_once,
    two_senders_record_every_outcome_once_on_an_unbroken_audit_chain,
    a_sender_killed_mid_batch_loses_nothing,
);

/// `settings` sending through the test SMTP server on `port`, with short waits.
pub fn smtp(settings: &Settings, port: u16) -> Settings {
    let mut s = settings.clone();
    s.mail.transport = MailTransport::Smtp;
    s.mail.smtp.host = "127.0.0.1".into();
    s.mail.smtp.port = port;
    s.mail.smtp.tls = SmtpTls::None;
    s.mail.smtp.timeout = Duration::from_secs(5);
    s.reminders.retry_base = Duration::from_secs(1);
    s.reminders.lease = Duration::from_secs(30);
    s
}

/// An IANA zone where it is now around midday, so quiet hours do not hold
/// the test's emails back whatever time the suite runs.
fn daytime_zone() -> String {
    use chrono::Timelike;
    let hour = i64::from(chrono::Utc::now().hour());
    let offset = (12 - hour).rem_euclid(24);
    let offset = if offset > 12 { offset - 24 } else { offset };
    // Etc/GMT zones have inverted signs: Etc/GMT-3 is three hours ahead of UTC.
    match offset {
        0 => "Etc/UTC".to_string(),
        n if n > 0 => format!("Etc/GMT-{n}"),
        n => format!("Etc/GMT+{}", -n),
    }
}

fn draft(key: &str, email: &str) -> Draft {
    Draft {
        key: key.to_string(),
        case_id: None,
        kind: "due_soon".into(),
        recipient_email: email.to_string(),
        recipient_name: "Test Person".into(),
        subject: format!("Test {key}"),
        body_text: "text part".into(),
        body_html: "<p>html part</p>".into(),
        ics: None,
        unsubscribe_url: None,
        send_after: chrono::Utc::now() - chrono::Duration::seconds(1),
    }
}

async fn row(app: &TestApp, key: &str) -> outbox_message::Model {
    outbox_message::Entity::find()
        .filter(outbox_message::Column::DedupeKey.eq(key))
        .one(&app.db)
        .await
        .expect("query")
        .expect("row exists")
}

async fn due_again(app: &TestApp, key: &str) {
    let past =
        (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    app.sql(&format!("UPDATE outbox SET next_attempt_at = '{past}' WHERE dedupe_key = '{key}'")).await;
}

/// The decoded body of the MIME part with `content_type`.
pub fn part(raw: &str, content_type: &str) -> String {
    let start = raw.find(&format!("Content-Type: {content_type}")).unwrap_or_else(|| panic!("no {content_type} part"));
    let rest = &raw[start..];
    let (headers, body) = rest.split_once("\r\n\r\n").expect("part body");
    let boundaries: Vec<&str> = raw.split("boundary=\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    let end = boundaries.iter().filter_map(|b| body.find(&format!("\r\n--{b}"))).min().unwrap_or(body.len());
    let body = &body[..end];
    if headers.contains("Content-Transfer-Encoding: base64") {
        let joined: String = body.lines().collect();
        String::from_utf8(STANDARD.decode(joined.trim()).expect("base64")).expect("utf-8")
    } else if headers.contains("Content-Transfer-Encoding: quoted-printable") {
        quoted_printable(body)
    } else {
        body.to_string()
    }
}

fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn a_consultation_reminder_arrives_as_a_patient_would_want_it(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Mail Lind", true).await;
    let mut body = crate::common::new_case("Morgan Mail");
    body["patient"]["timezone"] = json!(daytime_zone());
    body["patient"]["email"] = json!("morgan@example.org");
    let (_, created) = app.post(&token, "/api/v1/cases", body).await;
    let id = created["id"].as_i64().expect("id");
    let moved = json!({ "to": "specialist_chosen", "specialist_id": specialist });
    assert_eq!(app.move_case(&token, id, moved).await.0, StatusCode::OK);
    let visit_at = hours_from_now(20);
    let visit = json!({ "scheduled_at": visit_at, "mode": "virtual", "location": "https://video.example/room-7" });
    assert_eq!(app.put(&token, &format!("/api/v1/cases/{id}/consultation"), visit).await.0, StatusCode::OK);

    let reminders = Reminders::new(app.db.clone(), Arc::new(smtp(&app.settings, server.port))).expect("reminders");
    reminders.tick().await;
    // A second tick (or another instance) queues and sends nothing new.
    reminders.tick().await;

    let to_patient: Vec<_> = server.messages().into_iter().filter(|m| m.recipients == ["morgan@example.org"]).collect();
    assert_eq!(to_patient.len(), 1, "exactly one reminder to the patient");
    let mail = &to_patient[0];
    let subject = mail.header("Subject").expect("subject");
    let local_day = chrono::DateTime::parse_from_rfc3339(&visit_at)
        .expect("time")
        .with_timezone(&daytime_zone().parse::<chrono_tz::Tz>().expect("zone"))
        .format("%A %-d %B")
        .to_string();
    assert_eq!(subject, format!("Your appointment tomorrow, {local_day}"));
    for private in ["Oncology", "cancer", "lymphoma"] {
        assert!(!subject.to_lowercase().contains(&private.to_lowercase()), "subject reveals {private}");
    }
    assert!(mail.header("To").is_some_and(|to| to.contains("morgan@example.org")));
    let message_id = mail.header("Message-ID").expect("Message-ID");
    let queued = outbox_message::Entity::find()
        .filter(outbox_message::Column::RecipientEmail.eq("morgan@example.org"))
        .one(&app.db)
        .await
        .expect("query")
        .expect("row");
    assert!(message_id.starts_with(&format!("<outbox-{}-", queued.id)), "{message_id}");
    assert_eq!(queued.status, "sent");
    let unsubscribe = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert_eq!(mail.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    assert_eq!(mail.header("Auto-Submitted").as_deref(), Some("auto-generated"));

    let text = part(&mail.raw, "text/plain");
    assert!(text.contains("https://video.example/room-7"), "{text}");
    assert!(text.contains("What happens if we wait?") && text.contains("Bring photo ID"), "{text}");
    assert!(text.contains("automated reminder"), "says it is automated");
    let html = part(&mail.raw, "text/html");
    assert!(html.contains("Stop these reminders") && html.contains("<li>"), "{html}");
    let ics = part(&mail.raw, "text/calendar");
    assert!(ics.contains("BEGIN:VCALENDAR") && ics.contains("BEGIN:VEVENT"), "{ics}");
    let scheduled: chrono::DateTime<chrono::Utc> = outbox_scheduled(&app, id).await;
    assert!(ics.contains(&format!("DTSTART:{}", scheduled.format("%Y%m%dT%H%M%SZ"))), "{ics}");

    // The email is on the case's timeline.
    let sent_entries = audit_entry::Entity::find()
        .filter(audit_entry::Column::CaseId.eq(i32::try_from(id).expect("id")))
        .filter(audit_entry::Column::Action.eq("mail.sent"))
        .all(&app.db)
        .await
        .expect("audit");
    assert_eq!(sent_entries.len(), 1);
    let page_client = app.signed_in("advocate@example.org").await;
    let page =
        page_client.get(format!("{}/cases/{id}", app.base)).send().await.expect("page").text().await.expect("text");
    assert!(page.contains("email sent"), "the case timeline shows the email");

    // One click from the mail client: a POST with no session and no cookies.
    let url = unsubscribe.trim_start_matches('<').trim_end_matches('>').to_string();
    assert!(url.starts_with(&format!("{}/u/", app.base)), "{url}");
    let response =
        reqwest::Client::new().post(&url).body("List-Unsubscribe=One-Click").send().await.expect("one click");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.expect("page").contains("will not receive further reminder emails"));
    let stopped =
        case::Entity::find_by_id(i32::try_from(id).expect("id")).one(&app.db).await.expect("q").expect("case");
    assert!(stopped.nudges_stopped_at.is_some());
    let later = scan::scan(&reminders, chrono::Utc::now() + chrono::Duration::hours(19), true).await.expect("scan");
    assert!(later.drafts.iter().all(|d| d.recipient_email != "morgan@example.org"), "no nudges after unsubscribing");
}

async fn outbox_scheduled(app: &TestApp, case_id: i64) -> chrono::DateTime<chrono::Utc> {
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{case_id}")).await;
    case["consultation"]["scheduled_at"].as_str().expect("scheduled").parse().expect("time")
}

async fn a_server_that_is_down_keeps_emails_queued_until_it_returns(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(mut server) = SmtpServer::start().await else { return };
    server.stop().await;
    let reminders = Reminders::new(app.db.clone(), Arc::new(smtp(&app.settings, server.port))).expect("reminders");
    assert!(outbox::enqueue(&app.db, draft("down-1", "a@example.org")).await.expect("enqueue"));
    assert!(
        !outbox::enqueue(&app.db, draft("down-1", "a@example.org")).await.expect("enqueue"),
        "the same key queues once"
    );

    let report = reminders.send_due().await.expect("send");
    assert_eq!((report.sent, report.retried, report.failed), (0, 1, 0));
    let waiting = row(&app, "down-1").await;
    assert_eq!(waiting.status, "queued");
    assert_eq!(waiting.attempts, 1);
    assert!(waiting.last_error.is_some());
    assert!(waiting.next_attempt_at > chrono::Utc::now(), "backs off before the next try");
    assert_eq!(reminders.send_due().await.expect("send").sent, 0, "not retried before its time");

    server.resume().await;
    due_again(&app, "down-1").await;
    let report = reminders.send_due().await.expect("send");
    assert_eq!(report.sent, 1);
    assert_eq!(server.messages().len(), 1);
    assert_eq!(row(&app, "down-1").await.status, "sent");
}

async fn temporary_answers_are_retried_and_permanent_ones_fail_visibly(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    let reminders = Reminders::new(app.db.clone(), Arc::new(smtp(&app.settings, server.port))).expect("reminders");
    outbox::enqueue(&app.db, draft("answer-1", "b@example.org")).await.expect("enqueue");

    server.set_mode("tempfail");
    assert_eq!(reminders.send_due().await.expect("send").retried, 1);
    let retried = row(&app, "answer-1").await;
    assert_eq!((retried.status.as_str(), retried.attempts), ("queued", 1));
    assert!(retried.last_error.as_deref().is_some_and(|e| e.contains("451")), "{:?}", retried.last_error);

    server.set_mode("permfail");
    due_again(&app, "answer-1").await;
    assert_eq!(reminders.send_due().await.expect("send").failed, 1);
    let failed = row(&app, "answer-1").await;
    assert_eq!(failed.status, "failed");
    assert!(failed.last_error.as_deref().is_some_and(|e| e.contains("550")));
    assert!(server.messages().is_empty());

    // Admins see it with the reason and can send it again.
    let admin = app.signed_in("admin@example.org").await;
    let page = admin.get(format!("{}/admin/outbox", app.base)).send().await.expect("page").text().await.expect("text");
    assert!(page.contains("550") && page.contains("Retry"), "failed emails are listed with the reason");
    let response = admin.post(format!("{}/admin/outbox/{}/retry", app.base, failed.id)).send().await.expect("retry");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    server.set_mode("accept");
    assert_eq!(reminders.send_due().await.expect("send").sent, 1);
    assert_eq!(server.messages().len(), 1);
    let advocate = app.signed_in("advocate@example.org").await;
    let refused = advocate.get(format!("{}/admin/outbox", app.base)).send().await.expect("page");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

async fn a_slow_server_times_out_without_blocking_the_web_server(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    let mut settings = smtp(&app.settings, server.port);
    settings.mail.smtp.timeout = Duration::from_secs(1);
    let reminders = Arc::new(Reminders::new(app.db.clone(), Arc::new(settings)).expect("reminders"));
    outbox::enqueue(&app.db, draft("slow-1", "c@example.org")).await.expect("enqueue");
    server.set_mode("slow 6");

    let sending = tokio::spawn({
        let reminders = reminders.clone();
        async move { reminders.send_due().await }
    });
    // While the sender waits on the server, pages and the API still answer.
    let (status, _) = app.call(None, reqwest::Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(&app.admin.token, "/api/v1/cases").await.0, StatusCode::OK);
    let report =
        tokio::time::timeout(Duration::from_secs(30), sending).await.expect("bounded").expect("task").expect("send");
    assert_eq!(report.retried, 1, "a timeout is a temporary failure: {report:?} {:?}", row(&app, "slow-1").await);
    let waiting = row(&app, "slow-1").await;
    assert_eq!(waiting.status, "queued");
    assert!(
        waiting
            .last_error
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains("timed out") || e.to_lowercase().contains("timeout")),
        "{:?}",
        waiting.last_error
    );
}

async fn two_senders_deliver_each_of_a_thousand_emails_once(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    for n in 0..1000 {
        outbox::enqueue(&app.db, draft(&format!("bulk-{n:04}"), &format!("person{n}@example.org")))
            .await
            .expect("enqueue");
    }
    let settings = Arc::new(smtp(&app.settings, server.port));
    let mut senders = Vec::new();
    for _ in 0..2 {
        // Each sender has its own pool, as a separate instance would.
        let db = secondlook::db::connect(&settings.database).await.expect("connect");
        senders.push(Arc::new(Reminders::new(db, settings.clone()).expect("reminders")));
    }
    let runs: Vec<_> = senders
        .iter()
        .map(|sender| {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                for _ in 0..20 {
                    let report = sender.send_due().await.expect("send");
                    sent += report.sent;
                    if report.sent == 0 {
                        break;
                    }
                }
                sent
            })
        })
        .collect();
    let mut per_sender = Vec::new();
    for run in runs {
        per_sender.push(run.await.expect("sender"));
    }
    assert_eq!(per_sender.iter().sum::<usize>(), 1000, "{per_sender:?}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1000);
    let mut ids: HashMap<String, usize> = HashMap::new();
    for m in &messages {
        *ids.entry(m.header("Message-ID").expect("id")).or_default() += 1;
    }
    assert_eq!(ids.len(), 1000, "each email exactly once");
}

async fn two_senders_record_every_outcome_once_on_an_unbroken_audit_chain(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    // Every tenth address cannot be mailed at all: a permanent failure in
    // the same batches as the emails that go out.
    let undeliverable = |n: usize| n % 10 == 3;
    for n in 0..300 {
        let to = if undeliverable(n) { format!("no address {n}") } else { format!("mixed{n}@example.org") };
        outbox::enqueue(&app.db, draft(&format!("mixed-{n:03}"), &to)).await.expect("enqueue");
    }
    let settings = Arc::new(smtp(&app.settings, server.port));
    let mut runs = Vec::new();
    for _ in 0..2 {
        let db = secondlook::db::connect(&settings.database).await.expect("connect");
        let sender = Reminders::new(db, settings.clone()).expect("reminders");
        runs.push(tokio::spawn(async move {
            let mut total = (0, 0, 0);
            for _ in 0..20 {
                let report = sender.send_due().await.expect("send");
                total = (total.0 + report.sent, total.1 + report.retried, total.2 + report.failed);
                if report.sent + report.retried + report.failed == 0 {
                    break;
                }
            }
            total
        }));
    }
    let mut totals = (0, 0, 0);
    for run in runs {
        let (sent, retried, failed) = run.await.expect("sender");
        totals = (totals.0 + sent, totals.1 + retried, totals.2 + failed);
    }
    assert_eq!(totals, (270, 0, 30), "(sent, retried, failed) over both senders");

    let mut arrived: HashMap<String, usize> = HashMap::new();
    for m in server.messages() {
        *arrived.entry(m.header("Subject").expect("subject")).or_default() += 1;
    }
    assert_eq!(arrived.len(), 270, "every deliverable email arrived");
    assert!(arrived.values().all(|&n| n == 1), "none arrived twice");

    let rows = outbox_message::Entity::find()
        .filter(outbox_message::Column::DedupeKey.starts_with("mixed-"))
        .all(&app.db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 300);
    for row in &rows {
        let n: usize = row.dedupe_key.trim_start_matches("mixed-").parse().expect("number");
        assert_eq!(row.attempts, 1, "{}", row.dedupe_key);
        assert!(row.lease_until.is_none(), "{} is left leased", row.dedupe_key);
        if undeliverable(n) {
            assert_eq!(row.status, "failed", "{}", row.dedupe_key);
            assert!(row.sent_at.is_none());
            assert!(row.last_error.as_deref().is_some_and(|e| e.contains("recipient address")), "{:?}", row.last_error);
        } else {
            assert_eq!(row.status, "sent", "{}", row.dedupe_key);
            assert!(row.sent_at.is_some() && row.last_error.is_none(), "{}", row.dedupe_key);
            assert!(arrived.contains_key(&format!("Test {}", row.dedupe_key)), "{} was marked sent", row.dedupe_key);
        }
    }

    // One timeline entry per email, naming what became of it, and the
    // entries written a batch at a time by two senders still chain up.
    let entries = audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.is_in(["mail.sent", "mail.failed"]))
        .all(&app.db)
        .await
        .expect("audit");
    let mut logged: HashMap<i32, Vec<String>> = HashMap::new();
    for entry in entries {
        logged.entry(entry.entity_id.expect("email id")).or_default().push(entry.action);
    }
    for row in &rows {
        let expected = if row.status == "sent" { "mail.sent" } else { "mail.failed" };
        assert_eq!(logged.get(&row.id).map(Vec::as_slice), Some(&[expected.to_string()][..]), "{}", row.dedupe_key);
    }
    let chain = secondlook::audit::verify(&app.db).await.expect("verify");
    assert_eq!(chain.first_bad, None, "{chain:?}");
    assert!(chain.verified >= 300, "{chain:?}");
}

async fn a_sender_killed_mid_batch_loses_nothing(backend: Backend) {
    const POOL: usize = 4;
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    for n in 0..120 {
        outbox::enqueue(&app.db, draft(&format!("kill-{n:03}"), &format!("k{n}@example.org"))).await.expect("enqueue");
    }
    server.set_mode("slow 0.03");
    let workdir = tempfile::tempdir().expect("workdir");
    let run_once = || {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_secondlook"));
        cmd.env_clear()
            .env("DATABASE_URL", app.settings.database.url.expose())
            .env("SECONDLOOK__MAIL__TRANSPORT", "smtp")
            .env("SECONDLOOK__MAIL__SMTP__HOST", "127.0.0.1")
            .env("SECONDLOOK__MAIL__SMTP__PORT", server.port.to_string())
            .env("SECONDLOOK__MAIL__SMTP__TLS", "none")
            .env("SECONDLOOK__MAIL__SMTP__POOL_SIZE", POOL.to_string())
            .env("SECONDLOOK__REMINDERS__LEASE", "2s")
            .env("RUST_LOG", "error")
            .current_dir(workdir.path())
            .args(["reminders", "run-once"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    let mut first = run_once().spawn().expect("sender starts");
    // Let it send some, then kill it without warning.
    for _ in 0..200 {
        if server.messages().len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().await.expect("kill");
    let delivered_before = server.messages().len();
    assert!(delivered_before > 0 && delivered_before < 120, "killed mid-batch after {delivered_before}");

    // Past the lease, a new run takes over what the dead one held.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.set_mode("accept");
    let status =
        tokio::time::timeout(Duration::from_secs(60), run_once().status()).await.expect("bounded").expect("runs");
    assert!(status.success());
    let mut seen: HashMap<String, usize> = HashMap::new();
    // The run also sends what else is due (an admin's weekly summary); count the batch.
    for m in server.messages() {
        let subject = m.header("Subject").expect("subject");
        if subject.starts_with("Test kill-") {
            *seen.entry(subject).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 120, "every email delivered");
    let doubled: usize = seen.values().map(|n| n - 1).sum();
    // Sends go out one per pooled connection at a time, each recorded right
    // after: only those in flight when killed can be repeated.
    assert!(doubled <= POOL, "at most the {POOL} sends in flight when killed are repeated ({doubled})");
}

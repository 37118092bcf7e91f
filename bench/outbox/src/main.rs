//! How fast SecondLook's outbox drains, next to what pooled lettre does on
//! its own over the same number of connections. Both send to an SMTP sink
//! of this program's own on 127.0.0.1. The two are run in turn, three
//! rounds, and the medians printed as one JSON line on stdout.
//!
//! ```text
//! cargo run --release -p secondlook-bench-outbox -- [--database URL] [--emails N] [--connections K]
//! ```
//!
//! Without `--database` each round drains a new SQLite file in a temporary
//! folder. With a PostgreSQL URL each round creates a database of its own on
//! that server (the URL's user needs CREATEDB) and drops it afterwards.

mod sink;

use std::{
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, transport::smtp::PoolConfig};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use secondlook::{
    config::{MailTransport, Settings, SmtpTls},
    db::entities::outbox_message,
    reminders::{
        Reminders,
        outbox::{self, Draft},
    },
    secrets::Secret,
};
use sink::Sink;

#[derive(Debug, Parser)]
#[command(about = "Times SecondLook's outbox drain against raw pooled lettre, to a loopback SMTP sink")]
struct Args {
    /// PostgreSQL server to drain on (a database is created per round); SQLite when absent.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Emails sent per measurement.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    emails: u64,
    /// Pooled SMTP connections, and messages in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    connections: u32,
}

/// Rounds of both measurements; the medians are reported.
const ROUNDS: usize = 3;
/// Longest any one measurement may take before the run is abandoned.
const TIME_LIMIT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("secondlook-bench-outbox: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<String, String> {
    let database = match &args.database {
        None => "sqlite",
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => "postgres",
        Some(_) => return Err("--database takes a postgres:// URL; leave it out for SQLite".into()),
    };
    let sink = Sink::start().await.map_err(|e| format!("starting the SMTP sink: {e}"))?;
    let mut lettre_rates = Vec::with_capacity(ROUNDS);
    let mut drain_rates = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always runs on the warmer machine.
        if round % 2 == 0 {
            lettre_rates.push(measure("lettre", raw_lettre(&sink, &args)).await?);
            drain_rates.push(measure("secondlook", drain(&sink, &args, round)).await?);
        } else {
            drain_rates.push(measure("secondlook", drain(&sink, &args, round)).await?);
            lettre_rates.push(measure("lettre", raw_lettre(&sink, &args)).await?);
        }
        eprintln!("round {}: lettre {:.0}/s, secondlook {:.0}/s", round + 1, lettre_rates[round], drain_rates[round]);
    }
    sink.stop().await;
    let lettre = median(&mut lettre_rates);
    let secondlook = median(&mut drain_rates);
    let line = serde_json::json!({
        "database": database,
        "emails": args.emails,
        "connections": args.connections,
        "secondlook_per_s": (secondlook * 10.0).round() / 10.0,
        "lettre_per_s": (lettre * 10.0).round() / 10.0,
        "ratio": (secondlook / lettre * 1000.0).round() / 1000.0,
    });
    Ok(line.to_string())
}

async fn measure(what: &str, run: impl Future<Output = Result<f64, String>>) -> Result<f64, String> {
    tokio::time::timeout(TIME_LIMIT, run).await.map_err(|_| format!("{what}: gave up after {TIME_LIMIT:?}"))?
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The email queued as number `n`: an advocate's reminder of typical size.
fn draft(n: u64) -> Draft {
    let body = "Case SO-2026-000123 moves to the consultation stage tomorrow. \
                Check that the records have arrived and the specialist has confirmed the time. "
        .repeat(4);
    Draft {
        key: format!("bench-{n:07}"),
        case_id: None,
        kind: "due_soon".into(),
        recipient_email: format!("advocate{n}@example.org"),
        recipient_name: "Alex Advocate".into(),
        subject: format!("Due soon: case {n}"),
        body_text: body.clone(),
        body_html: format!("<p>{body}</p><p><a href=\"http://127.0.0.1:3000/cases/{n}\">Open the case</a></p>"),
        ics: None,
        unsubscribe_url: None,
        send_after: chrono::Utc::now() - chrono::Duration::seconds(1),
    }
}

/// Defaults, sending to the sink over `connections` pooled connections.
fn settings(sink: &Sink, args: &Args) -> Result<Settings, String> {
    let mut settings = Settings::defaults().map_err(|e| e.to_string())?;
    settings.mail.transport = MailTransport::Smtp;
    settings.mail.smtp.host = "127.0.0.1".into();
    settings.mail.smtp.port = sink.addr.port();
    settings.mail.smtp.tls = SmtpTls::None;
    settings.mail.smtp.pool_size = args.connections;
    // One run drains the whole outbox, as a backlog would be drained.
    settings.reminders.batch_size = args.emails;
    Ok(settings)
}

/// Pooled lettre alone: the same messages SecondLook would build, built
/// beforehand, sent by `connections` tasks sharing one pooled transport.
async fn raw_lettre(sink: &Sink, args: &Args) -> Result<f64, String> {
    let mail = settings(sink, args)?.mail;
    let created = secondlook::db::now();
    let mut messages = Vec::with_capacity(usize::try_from(args.emails).unwrap_or(0));
    for n in 0..args.emails {
        let row = row(n, draft(n), created);
        messages.push(secondlook::mail::compose(&mail, &row).map_err(|e| e.to_string())?);
    }
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr.port())
        .timeout(Some(mail.smtp.timeout))
        .pool_config(PoolConfig::new().max_size(args.connections))
        .build();
    let queue: Arc<Mutex<Vec<Message>>> = Arc::new(Mutex::new(messages));
    let before = sink.received();
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let transport = transport.clone();
        let queue = queue.clone();
        senders.spawn(async move {
            loop {
                let next = queue.lock().map_err(|_| "message queue poisoned".to_string())?.pop();
                let Some(message) = next else { return Ok::<(), String>(()) };
                transport.send(message).await.map_err(|e| format!("lettre: {e}"))?;
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.map_err(|e| format!("sender task: {e}"))??;
    }
    let elapsed = started.elapsed();
    check_received(sink, before, args.emails)?;
    Ok(args.emails as f64 / elapsed.as_secs_f64())
}

/// An outbox row as `enqueue` would store it, for composing outside a database.
fn row(n: u64, draft: Draft, created: chrono::DateTime<chrono::Utc>) -> outbox_message::Model {
    outbox_message::Model {
        id: i32::try_from(n + 1).unwrap_or(i32::MAX),
        dedupe_key: draft.key,
        case_id: draft.case_id,
        kind: draft.kind,
        recipient_email: draft.recipient_email,
        recipient_name: draft.recipient_name,
        subject: draft.subject,
        body_text: draft.body_text,
        body_html: draft.body_html,
        ics: draft.ics,
        unsubscribe_url: draft.unsubscribe_url,
        status: outbox::QUEUED.into(),
        attempts: 0,
        next_attempt_at: draft.send_after,
        lease_until: None,
        lease_owner: None,
        last_error: None,
        created_at: created,
        sent_at: None,
        updated_at: created,
    }
}

/// SecondLook: a fresh database, the emails queued with `outbox::enqueue`,
/// then `Reminders::send_due` run until nothing is left; only the draining
/// is timed.
async fn drain(sink: &Sink, args: &Args, round: usize) -> Result<f64, String> {
    let fresh = FreshDatabase::create(args.database.as_deref(), round).await?;
    let result = drain_into(sink, args, &fresh.url).await;
    let dropped = fresh.remove().await;
    let rate = result?;
    dropped?;
    Ok(rate)
}

async fn drain_into(sink: &Sink, args: &Args, url: &str) -> Result<f64, String> {
    let mut settings = settings(sink, args)?;
    settings.database.url = Secret::new(url);
    let db = secondlook::db::connect(&settings.database).await.map_err(|e| format!("connecting: {e}"))?;
    secondlook::db::migrate(&db).await.map_err(|e| format!("migrating: {e}"))?;
    queue(&db, args.emails).await?;
    let reminders = Reminders::new(db.clone(), Arc::new(settings))?;
    let before = sink.received();
    let started = Instant::now();
    let mut sent = 0usize;
    // Each run sends at least one email or ends the loop, so this many runs always suffice.
    for _ in 0..=args.emails {
        let report = reminders.send_due().await.map_err(|e| format!("draining: {e}"))?;
        if report.retried + report.failed > 0 {
            return Err(format!("the sink refused emails: {report:?}"));
        }
        if report.sent == 0 {
            break;
        }
        sent += report.sent;
    }
    let elapsed = started.elapsed();
    drop(reminders);
    db.close().await.map_err(|e| format!("closing the database: {e}"))?;
    if sent as u64 != args.emails {
        return Err(format!("SecondLook reported {sent} of {} emails sent", args.emails));
    }
    check_received(sink, before, args.emails)?;
    Ok(args.emails as f64 / elapsed.as_secs_f64())
}

async fn queue(db: &DatabaseConnection, emails: u64) -> Result<(), String> {
    let txn = db.begin().await.map_err(|e| format!("queueing: {e}"))?;
    for n in 0..emails {
        if !outbox::enqueue(&txn, draft(n)).await.map_err(|e| format!("queueing: {e}"))? {
            return Err(format!("email {n} was already queued in a fresh database"));
        }
    }
    txn.commit().await.map_err(|e| format!("queueing: {e}"))
}

fn check_received(sink: &Sink, before: u64, expected: u64) -> Result<(), String> {
    let got = sink.received() - before;
    if got == expected { Ok(()) } else { Err(format!("the sink received {got} of {expected} emails")) }
}

/// A database of the round's own: a SQLite file in a temporary folder, or
/// a database created on the given PostgreSQL server.
struct FreshDatabase {
    url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(DatabaseConnection, String)>,
}

impl FreshDatabase {
    async fn create(server: Option<&str>, round: usize) -> Result<FreshDatabase, String> {
        let Some(server) = server else {
            let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
            return Ok(FreshDatabase { url, _dir: Some(dir), postgres: None });
        };
        let name = format!("secondlook_bench_outbox_{}_{round}", std::process::id());
        let admin = Database::connect(server).await.map_err(|e| format!("connecting to {server}: {e}"))?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .map_err(|e| format!("dropping an old {name}: {e}"))?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("creating {name}: {e}"))?;
        let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
        let Some((host, _)) = base.rsplit_once('/').filter(|(host, _)| host.contains("//") && !host.ends_with('/'))
        else {
            return Err(format!("{server} does not name a database to connect to first"));
        };
        let url = match query {
            Some(query) => format!("{host}/{name}?{query}"),
            None => format!("{host}/{name}"),
        };
        Ok(FreshDatabase { url, _dir: None, postgres: Some((admin, name)) })
    }

    async fn remove(self) -> Result<(), String> {
        if let Some((admin, name)) = self.postgres {
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                .await
                .map_err(|e| format!("dropping {name}: {e}"))?;
            admin.close().await.map_err(|e| format!("closing: {e}"))?;
        }
        Ok(())
    }
}

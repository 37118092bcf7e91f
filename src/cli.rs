//! The `secondlook` command: serve (the default), migrate, manage users (and
//! print password reset links) and tokens, load demo data, and check the
//! audit trail.

use std::{
    io::{IsTerminal, Read, Write},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    app::{self, AppState},
    auth::sessions::DbSessionStore,
    auth::{
        Actor, Role, password_resets, passwords, tokens,
        users::{self, BootstrapOutcome},
    },
    config::Settings,
    db, demo,
    documents::{
        keys::{KeySource, Keyring, MasterKey, next_key_file, write_key_file},
        store::Documents,
    },
    error::AppError,
    reminders::{Reminders, jobs, scan},
};

#[derive(Debug, Parser)]
#[command(name = "secondlook", version, about = "Second-opinion case tracking for patient advocates")]
pub struct Cli {
    /// A TOML file overriding config/default.toml (environment variables override both).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pending migrations and start the server (the default).
    Serve,
    /// Run pending database migrations and exit.
    Migrate,
    /// Manage staff accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Fill the database with a realistic sample caseload.
    DemoData(DemoArgs),
    /// Reminder emails.
    #[command(subcommand)]
    Reminders(RemindersCommand),
    /// Erasing the patient data of cases closed longer ago than retention.erase_closed_after.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Write the whole database to a new file that `import` loads into SQLite or PostgreSQL.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Load an export file into an empty database (migrated first), all or nothing.
    Import {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Copy a running SQLite database to a new file (PostgreSQL: use pg_dump).
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The summary rows the caseload and admin figures read.
    #[command(subcommand)]
    Tallies(TalliesCommand),
    /// The master key that wraps every document's own key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Documents and their stored files.
    #[command(subcommand)]
    Documents(DocumentsCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Move every document to a new master key (their files stay as they
    /// are). With the key in a file, a new key is made and replaces it;
    /// with SECONDLOOK_MASTER_KEY, give the new key there and the old one in
    /// SECONDLOOK_PREVIOUS_MASTER_KEY. Restart running instances after.
    Rotate,
    /// Print a new random master key, for SECONDLOOK_MASTER_KEY.
    Generate,
}

#[derive(Debug, Subcommand)]
pub enum DocumentsCommand {
    /// Compare the documents with the stored files: list documents whose
    /// file is missing (marked damaged) and files no document names. Exits
    /// non-zero when it finds either.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum TalliesCommand {
    /// Recount them from the case rows (after editing rows by hand, say).
    Rebuild,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Erase now what the retention setting says is due, and exit.
    RunOnce,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail's hash chain from the first entry to the last.
    /// Exits non-zero and names the first bad entry when a link is broken.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum RemindersCommand {
    /// Plan what is due now and send it (with --dry-run: only print what would be queued).
    RunOnce {
        #[arg(long)]
        dry_run: bool,
        /// Plan and queue what is due, but leave the sending to the scheduler.
        #[arg(long, conflicts_with = "dry_run")]
        plan_only: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from standard input when it is
    /// piped in, otherwise generated and printed once.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// IANA time zone used for the user's reminders.
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// Print a single-use link that lets the user choose a new password
    /// (valid for web.password_reset_valid_for). Nothing is emailed: hand the
    /// link over yourself, over a channel you trust.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Advocate,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        label: String,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many cases to create.
    #[arg(long, default_value_t = 60)]
    pub cases: u32,
    /// Seed for the random choices, for a repeatable caseload.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{0}")]
    App(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Portability(#[from] crate::portability::PortabilityError),
}

impl From<AppError> for CliError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Validation(fields) => CliError::App(
                fields.0.iter().map(|(field, message)| format!("{field}: {message}")).collect::<Vec<_>>().join("; "),
            ),
            other => CliError::App(other.to_string()),
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    init_logging();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let db = open(&settings).await?;
            println!("Database is up to date.");
            db.close().await?;
            Ok(())
        }
        Command::User(UserCommand::Add { email, name, role, timezone }) => {
            let db = open(&settings).await?;
            let (password, generated) = read_or_generate_password()?;
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Advocate => Role::Advocate,
            };
            let new = users::NewUser { email, name, role, timezone, password: password.clone() };
            let created = users::create(&db, &Actor::system("cli"), new).await?;
            println!("Created {} {} (id {}).", created.role, created.email, created.id);
            if generated {
                println!("Password (shown once): {password}");
            }
            Ok(())
        }
        Command::User(UserCommand::ResetPassword { email }) => {
            let db = open(&settings).await?;
            let valid_for = password_resets::valid_for(settings.web.password_reset_valid_for);
            let (token, expires_at) =
                password_resets::issue_printed(&db, &Actor::system("cli"), &email, valid_for).await?;
            db.close().await?;
            println!("{}", password_resets::link(&settings.public_url(), &token));
            if settings.server.public_url.trim().is_empty() {
                eprintln!(
                    "server.public_url is not set, so the link uses the listen address; set it to the address \
                     people use if that differs."
                );
            }
            eprintln!(
                "This link lets whoever opens it choose a new password for {}, once, until {} UTC. It was not \
                 emailed: give it to the person yourself, over a channel you trust.",
                email.trim().to_lowercase(),
                expires_at.format("%Y-%m-%d %H:%M")
            );
            Ok(())
        }
        Command::Token(TokenCommand::Create { email, label }) => {
            let db = open(&settings).await?;
            let token = tokens::create(&db, &Actor::system("cli"), &email, &label).await?;
            println!("{token}");
            eprintln!("Store this token now: it is not shown again. Send it as 'Authorization: Bearer <token>'.");
            Ok(())
        }
        Command::Reminders(RemindersCommand::RunOnce { dry_run, plan_only }) => {
            let db = open(&settings).await?;
            let reminders = Reminders::new(db, Arc::new(settings)).map_err(CliError::App)?;
            let report = scan::scan(&reminders, crate::db::now(), dry_run).await?;
            if dry_run {
                for draft in &report.drafts {
                    println!(
                        "{}  to {} <{}>  \"{}\"  not before {}",
                        draft.kind,
                        draft.recipient_name,
                        draft.recipient_email,
                        draft.subject,
                        draft.send_after.to_rfc3339()
                    );
                }
                println!("{} reminders would be queued (dry run: nothing queued or sent).", report.planned);
                return Ok(());
            }
            println!("{} reminders planned, {} newly queued.", report.planned, report.queued);
            if plan_only {
                return Ok(());
            }
            let sent = reminders.send_due().await?;
            println!("{} sent, {} to retry later, {} failed.", sent.sent, sent.retried, sent.failed);
            Ok(())
        }
        Command::Retention(RetentionCommand::RunOnce) => {
            let Some(keep_for) = settings.retention.erase_closed_after().map_err(CliError::App)? else {
                return Err(CliError::App(
                    "retention is off: set retention.erase_closed_after (e.g. \"2y\") to erase closed cases".into(),
                ));
            };
            let (documents, _) = Documents::open(&settings).map_err(CliError::App)?;
            let db = open(&settings).await?;
            let report = crate::privacy::retention::run(&db, &documents, keep_for, crate::db::now()).await?;
            println!(
                "Retention: cases erased: {}, already erased: {}, could not be erased: {}.",
                report.erased, report.skipped, report.failed
            );
            db.close().await?;
            if report.failed > 0 {
                return Err(CliError::App("some cases could not be erased; see the log above".into()));
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Generate) => {
            let (key, text) = MasterKey::generate()?;
            println!("{}", text.as_str());
            eprintln!("A new master key ({}). Keep it secret, and back it up apart from the database.", key.id());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let db = open(&settings).await?;
            let outcome = rotate_keys(&db, &settings).await;
            db.close().await?;
            println!("{}", outcome?);
            Ok(())
        }
        Command::Documents(DocumentsCommand::Check) => {
            let db = open(&settings).await?;
            let (documents, _) = Documents::open(&settings).map_err(CliError::App)?;
            let report = crate::documents::store::check(&db, &documents).await;
            db.close().await?;
            let report = report?;
            println!(
                "{} documents, {} stored files in the {}.",
                report.documents, report.files, documents.storage.place
            );
            for id in &report.missing {
                println!("damaged: document {id} has no stored file (now shown as damaged)");
            }
            for key in &report.orphans {
                println!("orphan: stored file {key} belongs to no document");
            }
            if report.missing.is_empty() && report.orphans.is_empty() {
                println!("Every document has its file, and every file its document.");
                Ok(())
            } else {
                Err(CliError::App(format!(
                    "{} damaged documents, {} orphan files",
                    report.missing.len(),
                    report.orphans.len()
                )))
            }
        }
        Command::Export { out } => {
            let db = open(&settings).await?;
            let counts = crate::portability::export(&db, &out).await?;
            let rows: u64 = counts.values().sum();
            let detail = serde_json::json!({ "rows": rows });
            crate::audit::record(&db, &Actor::system("cli"), "database.exported", SYSTEM_SUBJECT, detail).await?;
            println!("Exported {rows} rows from {} tables to {}.", counts.len(), out.display());
            db.close().await?;
            Ok(())
        }
        Command::Import { from } => {
            let db = open(&settings).await?;
            let counts = crate::portability::import(&db, &from).await?;
            let rows: u64 = counts.values().sum();
            let detail = serde_json::json!({ "rows": rows });
            crate::audit::record(&db, &Actor::system("cli"), "database.imported", SYSTEM_SUBJECT, detail).await?;
            println!("Imported {rows} rows into {} tables.", counts.len());
            db.close().await?;
            Ok(())
        }
        Command::Backup { out } => {
            let db = open(&settings).await?;
            crate::portability::backup(&db, &out).await?;
            let detail = serde_json::json!({});
            crate::audit::record(&db, &Actor::system("cli"), "database.backed_up", SYSTEM_SUBJECT, detail).await?;
            println!("Backed up the database to {}.", out.display());
            db.close().await?;
            Ok(())
        }
        Command::Tallies(TalliesCommand::Rebuild) => {
            let db = open(&settings).await?;
            let started = std::time::Instant::now();
            crate::cases::tallies::rebuild(&db).await?;
            crate::portal::survey::rebuild(&db).await?;
            crate::records_requests::figures::rebuild(&db).await?;
            crate::insurance::rebuild(&db).await?;
            db.close().await?;
            println!("Tallies recounted from the case rows in {:.1} s.", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => {
            let db = open(&settings).await?;
            let report = crate::audit::verify(&db).await?;
            db.close().await?;
            if report.unchained > 0 {
                println!("{} entries from before the chain existed were not checked.", report.unchained);
            }
            match report.first_bad {
                None => {
                    println!("Audit trail intact: {} entries verified.", report.verified);
                    Ok(())
                }
                Some(id) => Err(CliError::App(format!(
                    "audit trail broken at entry {id}: it was changed, or the entry before it was changed or \
                     removed ({} entries before it verified)",
                    report.verified
                ))),
            }
        }
        Command::DemoData(args) => {
            let mut settings = settings;
            // The load runs one step at a time; on one connection, the SQLite
            // page cache it enlarges is held once rather than once per
            // connection. (PostgreSQL migrations need a second connection.)
            if settings.database.is_sqlite() {
                settings.database.max_connections = Some(1);
            }
            let db = open(&settings).await?;
            // Demo accounts must not leave a fresh database without its admin.
            let created = bootstrap_admin(&db, &settings).await?;
            print_admin(created.as_ref());
            let rules = AppState::case_rules(&settings);
            let summary = demo::fill(&db, &rules, args.cases, args.seed).await?;
            println!("{summary}");
            db.close().await?;
            Ok(())
        }
    }
}

/// Moves every document to a new master key; what was done, to print.
async fn rotate_keys(db: &DatabaseConnection, settings: &Settings) -> Result<String, CliError> {
    let (ring, source) = Keyring::load(settings).map_err(CliError::App)?;
    if source == KeySource::Setting {
        let (moved, stuck) = crate::documents::store::rotate(db, &ring).await?;
        if stuck > 0 {
            return Err(CliError::App(format!(
                "moved {moved} documents to master key {}; {stuck} are wrapped by a key not given: set \
                 SECONDLOOK_PREVIOUS_MASTER_KEY to the key they were wrapped with and run this again",
                ring.current().id()
            )));
        }
        return Ok(format!("Moved {moved} documents to master key {}.", ring.current().id()));
    }
    let path = std::path::Path::new(&settings.documents.master_key_file);
    let next_path = next_key_file(path);
    // A rotation cut short left its new key: finish moving to that one.
    let next = match std::fs::read_to_string(&next_path) {
        Ok(text) => {
            MasterKey::from_base64(&text).map_err(|e| CliError::App(format!("{}: {e}", next_path.display())))?
        }
        Err(_) => {
            let (key, text) = MasterKey::generate()?;
            write_key_file(&next_path, &text)?;
            key
        }
    };
    let old = ring.current().clone();
    let ring = ring.moving_to(next.clone());
    let (moved, stuck) = crate::documents::store::rotate(db, &ring).await?;
    if stuck > 0 {
        return Err(CliError::App(format!(
            "{stuck} documents are wrapped by a master key that is not here; nothing else was changed in {}",
            path.display()
        )));
    }
    let mut retired = path.as_os_str().to_os_string();
    retired.push(format!(".retired-{}", old.id()));
    let retired = PathBuf::from(retired);
    std::fs::rename(path, &retired)?;
    std::fs::rename(&next_path, path)?;
    Ok(format!(
        "Moved {moved} documents to the new master key {new} in {path}. The old key {old} is kept in {retired}: \
         backups made before now need it, so keep it with them. Back the new key up now, and restart every \
         running instance.",
        new = next.id(),
        path = path.display(),
        old = old.id(),
        retired = retired.display()
    ))
}

/// Audit subject of whole-database operations.
const SYSTEM_SUBJECT: crate::audit::Subject =
    crate::audit::Subject { entity: "database", entity_id: None, case_id: None };

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sea_orm=warn,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn open(settings: &Settings) -> Result<DatabaseConnection, CliError> {
    let db = db::connect(&settings.database).await?;
    db::migrate(&db).await?;
    crate::cases::tallies::ensure_built(&db).await?;
    crate::cases::search::ensure_built(&db).await?;
    crate::records_requests::figures::ensure_built(&db).await?;
    Ok(db)
}

fn read_or_generate_password() -> Result<(String, bool), CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok((passwords::generate()?, true));
    }
    let mut text = String::new();
    stdin.lock().take(4096).read_to_string(&mut text)?;
    let password = text.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() { Ok((passwords::generate()?, true)) } else { Ok((password, false)) }
}

async fn serve(settings: Settings) -> Result<(), CliError> {
    if let Some(problem) = settings.unshared_documents() {
        return Err(CliError::App(problem));
    }
    let (documents, key_source) = Documents::open(&settings).map_err(CliError::App)?;
    let db = open(&settings).await?;
    let created = bootstrap_admin(&db, &settings).await?;
    let listener = TcpListener::bind(settings.server.listen)
        .await
        .map_err(|e| CliError::App(format!("cannot listen on {}: {e}", settings.server.listen)))?;
    let bound = listener.local_addr()?;
    let url =
        if settings.server.public_url.trim().is_empty() { format!("http://{bound}") } else { settings.public_url() };
    let mut banner = format!("SecondLook is running at {url}\nSign in at {url}/login\n");
    banner.push_str(&admin_banner(created.as_ref()));
    if let KeySource::Generated(path) = &key_source {
        banner.push_str(&format!(
            "\n*** A master key for documents was created in {path}. ***\n\
             *** Back it up now, apart from the database backups: without it no document can be read. ***\n\n"
        ));
    }
    // A closed stdout (a detached service) must not stop the server.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
    drop(stdout);
    let grace = settings.server.shutdown_grace;
    let state = AppState::new(db.clone(), settings, documents.clone());
    let reminders = if state.settings.reminders.enabled {
        Some(Arc::new(Reminders::new(db.clone(), state.settings.clone()).map_err(CliError::App)?))
    } else {
        jobs::check_schedule(&state.settings.reminders.schedule).map_err(CliError::App)?;
        None
    };
    let mut scheduler = jobs::start(
        reminders,
        DbSessionStore::new(db.clone(), state.settings.web.session_idle_timeout),
        &state.settings.reminders.schedule,
    )
    .await
    .map_err(CliError::App)?;
    crate::documents::jobs::schedule_purge(&scheduler, db.clone(), documents.clone()).await.map_err(CliError::App)?;
    if let Some(keep_for) = state.settings.retention.erase_closed_after().map_err(CliError::App)? {
        crate::privacy::retention::schedule(&scheduler, db.clone(), documents.clone(), keep_for)
            .await
            .map_err(CliError::App)?;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop_tx.send(());
    if let Err(err) = scheduler.shutdown().await {
        tracing::warn!(error = %err, "scheduler did not stop cleanly");
    }
    match tokio::time::timeout(grace.max(Duration::from_secs(1)), server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => return Err(CliError::App(format!("server task failed: {join}"))),
        Err(_) => tracing::warn!("requests still running after {grace:?}; stopping anyway"),
    }
    db.close().await?;
    Ok(())
}

async fn bootstrap_admin(db: &DatabaseConnection, settings: &Settings) -> Result<Option<BootstrapOutcome>, CliError> {
    let password = std::env::var("SECONDLOOK_ADMIN_PASSWORD").ok();
    let bootstrap = &settings.bootstrap;
    Ok(users::bootstrap_admin(db, &bootstrap.admin_email, &bootstrap.admin_name, password).await?)
}

/// What to tell the operator about a newly created first admin.
fn admin_banner(created: Option<&BootstrapOutcome>) -> String {
    let Some(admin) = created else { return String::new() };
    let password = match &admin.generated_password {
        Some(password) => format!("Its password (shown once, change it after signing in): {password}\n"),
        None => "Its password is the one given in SECONDLOOK_ADMIN_PASSWORD.\n".to_string(),
    };
    format!(
        "Created the first admin account: {email}\n{password}Create an API token with: secondlook token create --email {email}\n",
        email = admin.email
    )
}

fn print_admin(created: Option<&BootstrapOutcome>) {
    print!("{}", admin_banner(created));
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

//! Writing and loading the export file (layout in the module above).

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader, BufWriter, Write},
    path::Path,
};

use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    AccessMode, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityName, EntityTrait,
    IntoActiveModel, IsolationLevel, Iterable, PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::PortabilityError;
use crate::db::{
    self,
    entities::{
        api_token, audit_entry, case, case_contact, case_insurance, case_note, case_record, case_round, document,
        opinion, outbox_message, portal_consent, portal_partner, portal_survey, provider, records_request,
        records_request_kind, specialist, stage_change, user,
    },
};

pub const FORMAT: &str = "secondlook-export";
pub const VERSION: u32 = 1;

/// Rows read per query on export, and inserted per statement on import.
const BATCH: u64 = 200;

/// The tables carried, in foreign-key order (a table comes after those it refers to).
pub fn tables() -> [&'static str; 20] {
    [
        user::Entity.table_name(),
        api_token::Entity.table_name(),
        specialist::Entity.table_name(),
        provider::Entity.table_name(),
        case::Entity.table_name(),
        case_round::Entity.table_name(),
        case_insurance::Entity.table_name(),
        opinion::Entity.table_name(),
        case_record::Entity.table_name(),
        stage_change::Entity.table_name(),
        case_note::Entity.table_name(),
        case_contact::Entity.table_name(),
        document::Entity.table_name(),
        portal_partner::Entity.table_name(),
        portal_consent::Entity.table_name(),
        portal_survey::Entity.table_name(),
        records_request::Entity.table_name(),
        records_request_kind::Entity.table_name(),
        outbox_message::Entity.table_name(),
        audit_entry::Entity.table_name(),
    ]
}

/// Tables left out on purpose: signed-in sessions, sign-in throttling,
/// password reset links and portal links are short-lived (after a move
/// people simply sign in again, or ask for a new link), the health check's
/// probe row is rewritten by every `/healthz`, and the tallies and search
/// words are recomputed from the imported cases and survey answers.
pub const NOT_CARRIED: [&str; 16] = [
    "sessions",
    "sign_in_failures",
    "password_resets",
    "portal_links",
    "tally_survey",
    "health_probe",
    "tally_stage",
    "tally_hour",
    "tally_stage_time",
    "tally_due",
    "tally_outcome",
    "tally_state",
    "tally_provider_requests",
    "tally_preapprovals",
    "case_search_terms",
    "case_search_state",
];

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    schema: String,
    exported_at: DateTime<Utc>,
    tables: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Trailer {
    counts: BTreeMap<String, u64>,
}

/// The name of the newest migration this build knows: the schema an export
/// describes and an import expects.
pub fn schema() -> String {
    Migrator::migrations().last().map(|m| m.name().to_string()).unwrap_or_default()
}

/// What an export wrote or an import loaded, per table.
pub type Counts = BTreeMap<String, u64>;

/// Writes the whole database to `out` (a new file) from one consistent
/// snapshot, streaming a batch of rows at a time.
pub async fn export(db: &DatabaseConnection, out: &Path) -> Result<Counts, PortabilityError> {
    let file = create_private(out).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            PortabilityError::Refused(format!("{} already exists; choose a new file name", out.display()))
        }
        _ => PortabilityError::Refused(format!("cannot create {}: {e}", out.display())),
    })?;
    let written = write_all(db, file).await;
    if written.is_err() {
        // A partial file would only be refused on import, and it holds patient data.
        let _ = std::fs::remove_file(out);
    }
    written
}

async fn write_all(db: &DatabaseConnection, file: File) -> Result<Counts, PortabilityError> {
    let mut w = BufWriter::new(file);
    // PostgreSQL: one snapshot for every query. SQLite: the first read starts
    // a read transaction that sees one state of the database until it ends.
    let txn = match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await?
        }
        _ => db.begin().await?,
    };
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        schema: schema(),
        exported_at: db::now(),
        tables: tables().iter().map(|t| t.to_string()).collect(),
    };
    write_line(&mut w, &header)?;
    let mut counts = Counts::new();
    counts.insert(user::Entity.table_name().into(), dump::<user::Entity, _>(&txn, &mut w).await?);
    counts.insert(api_token::Entity.table_name().into(), dump::<api_token::Entity, _>(&txn, &mut w).await?);
    counts.insert(specialist::Entity.table_name().into(), dump::<specialist::Entity, _>(&txn, &mut w).await?);
    counts.insert(provider::Entity.table_name().into(), dump::<provider::Entity, _>(&txn, &mut w).await?);
    counts.insert(case::Entity.table_name().into(), dump::<case::Entity, _>(&txn, &mut w).await?);
    counts.insert(case_round::Entity.table_name().into(), dump::<case_round::Entity, _>(&txn, &mut w).await?);
    counts.insert(case_insurance::Entity.table_name().into(), dump::<case_insurance::Entity, _>(&txn, &mut w).await?);
    counts.insert(opinion::Entity.table_name().into(), dump::<opinion::Entity, _>(&txn, &mut w).await?);
    counts.insert(case_record::Entity.table_name().into(), dump::<case_record::Entity, _>(&txn, &mut w).await?);
    counts.insert(stage_change::Entity.table_name().into(), dump::<stage_change::Entity, _>(&txn, &mut w).await?);
    counts.insert(case_note::Entity.table_name().into(), dump::<case_note::Entity, _>(&txn, &mut w).await?);
    counts.insert(case_contact::Entity.table_name().into(), dump::<case_contact::Entity, _>(&txn, &mut w).await?);
    counts.insert(document::Entity.table_name().into(), dump::<document::Entity, _>(&txn, &mut w).await?);
    counts.insert(portal_partner::Entity.table_name().into(), dump::<portal_partner::Entity, _>(&txn, &mut w).await?);
    counts.insert(portal_consent::Entity.table_name().into(), dump::<portal_consent::Entity, _>(&txn, &mut w).await?);
    counts.insert(portal_survey::Entity.table_name().into(), dump::<portal_survey::Entity, _>(&txn, &mut w).await?);
    counts.insert(records_request::Entity.table_name().into(), dump::<records_request::Entity, _>(&txn, &mut w).await?);
    counts.insert(
        records_request_kind::Entity.table_name().into(),
        dump::<records_request_kind::Entity, _>(&txn, &mut w).await?,
    );
    counts.insert(outbox_message::Entity.table_name().into(), dump::<outbox_message::Entity, _>(&txn, &mut w).await?);
    counts.insert(audit_entry::Entity.table_name().into(), dump::<audit_entry::Entity, _>(&txn, &mut w).await?);
    txn.commit().await?;
    write_line(&mut w, &serde_json::json!({ "trailer": Trailer { counts: counts.clone() } }))?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(counts)
}

/// Creates a new file only its owner can read: it holds patient data.
pub(super) fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn write_line<W: Write, T: Serialize>(w: &mut W, value: &T) -> Result<(), PortabilityError> {
    serde_json::to_writer(&mut *w, value).map_err(std::io::Error::from)?;
    w.write_all(b"\n")?;
    Ok(())
}

/// The single integer primary key column every carried table has.
fn id_column<E: EntityTrait>() -> Result<E::Column, PortabilityError> {
    E::PrimaryKey::iter()
        .next()
        .map(PrimaryKeyToColumn::into_column)
        .ok_or_else(|| PortabilityError::Refused(format!("table {} has no primary key", E::default().table_name())))
}

/// Writes one table's rows in id order, a batch at a time. Returns the count.
async fn dump<E, C>(conn: &C, w: &mut impl Write) -> Result<u64, PortabilityError>
where
    E: EntityTrait,
    E::Model: Serialize,
    C: ConnectionTrait,
{
    let table = E::default().table_name();
    let id = id_column::<E>()?;
    let mut after: i64 = i64::MIN;
    let mut count = 0;
    loop {
        let rows = E::find().filter(id.gt(after)).order_by_asc(id).limit(BATCH).all(conn).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let row = serde_json::to_value(&row).map_err(std::io::Error::from)?;
            after = row.get("id").and_then(Value::as_i64).ok_or_else(|| {
                PortabilityError::Refused(format!("a row of {table} has no integer id; it cannot be exported"))
            })?;
            write_line(w, &serde_json::json!({ "table": table, "row": row }))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Loads an export file into an empty, migrated database, in one
/// transaction: any problem (wrong file, non-empty database, a cut-off
/// file, a row the database refuses) leaves the database as it was.
pub async fn import(db: &DatabaseConnection, from: &Path) -> Result<Counts, PortabilityError> {
    let file =
        File::open(from).map_err(|e| PortabilityError::Refused(format!("cannot open {}: {e}", from.display())))?;
    let mut lines = BufReader::new(file).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    let header: Header = serde_json::from_str(&first).map_err(|_| {
        PortabilityError::Refused(format!("{} is not a SecondLook export file (no header line)", from.display()))
    })?;
    check_header(&header)?;

    let txn = db::begin_write(db).await?;
    for table in tables() {
        let any = txn.query_one_raw(sea_orm::Statement::from_string(
            txn.get_database_backend(),
            format!("SELECT 1 FROM {table} LIMIT 1"),
        ));
        if any.await?.is_some() {
            return Err(PortabilityError::Refused(format!(
                "the database is not empty (table {table} has rows); import into a newly created database \
                 before starting a server on it"
            )));
        }
    }
    let known = tables();
    let mut counts = Counts::new();
    let mut pending: Vec<Value> = Vec::new();
    let mut pending_table: Option<String> = None;
    let mut trailer: Option<Trailer> = None;
    for (number, line) in lines.enumerate() {
        let line = line?;
        let at = || format!("line {}", number + 2);
        if trailer.is_some() {
            return Err(PortabilityError::Refused(format!("{}: data after the trailer", at())));
        }
        let mut value: Value = serde_json::from_str(&line)
            .map_err(|e| PortabilityError::Refused(format!("{}: not a JSON line ({e}); the file is damaged", at())))?;
        if let Some(end) = value.get_mut("trailer") {
            trailer = Some(
                serde_json::from_value(end.take())
                    .map_err(|e| PortabilityError::Refused(format!("{}: unreadable trailer ({e})", at())))?,
            );
            continue;
        }
        let table = value.get("table").and_then(Value::as_str).unwrap_or_default().to_string();
        if !known.contains(&table.as_str()) {
            return Err(PortabilityError::Refused(format!("{}: unknown table {table:?}", at())));
        }
        let row = value.get_mut("row").map(Value::take).unwrap_or(Value::Null);
        if pending_table.as_deref() != Some(table.as_str()) || pending.len() as u64 >= BATCH {
            if let Some(previous) = pending_table.take() {
                load(&txn, &previous, std::mem::take(&mut pending)).await?;
            }
            pending_table = Some(table.clone());
        }
        pending.push(row);
        *counts.entry(table).or_default() += 1;
    }
    if let Some(previous) = pending_table.take() {
        load(&txn, &previous, pending).await?;
    }
    let Some(trailer) = trailer else {
        return Err(PortabilityError::Refused(
            "the file ends without its trailer: it is incomplete (cut off while copying?); nothing was imported".into(),
        ));
    };
    for table in known {
        let expected = trailer.counts.get(table).copied().unwrap_or(0);
        let found = counts.get(table).copied().unwrap_or(0);
        if expected != found {
            return Err(PortabilityError::Refused(format!(
                "table {table}: the trailer announces {expected} rows but the file holds {found}; nothing was imported"
            )));
        }
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        // Explicit ids do not move the id sequences; new rows would collide.
        // (A case's insurance is keyed by its case and has no sequence.)
        for table in known.into_iter().filter(|t| *t != case_insurance::Entity.table_name()) {
            txn.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {table}), 1), (SELECT MAX(id) FROM {table}) IS NOT NULL)"
            ))
            .await?;
        }
    }
    // Until the figures and search words are rebuilt below, the database
    // says they are not: if a rebuild fails, the next start builds them.
    txn.execute_unprepared("DELETE FROM tally_state").await?;
    txn.execute_unprepared("DELETE FROM case_search_state").await?;
    txn.commit().await?;
    crate::cases::tallies::rebuild(db).await.map_err(|err| match err {
        crate::error::AppError::Database(db_err) => PortabilityError::Database(db_err),
        other => PortabilityError::Refused(format!("the cases were imported but their figures were not: {other}")),
    })?;
    crate::records_requests::figures::rebuild(db).await.map_err(|err| match err {
        crate::error::AppError::Database(db_err) => PortabilityError::Database(db_err),
        other => PortabilityError::Refused(format!("the records requests were imported but not counted: {other}")),
    })?;
    crate::insurance::rebuild(db).await.map_err(|err| match err {
        crate::error::AppError::Database(db_err) => PortabilityError::Database(db_err),
        other => PortabilityError::Refused(format!("the pre-approvals were imported but not counted: {other}")),
    })?;
    crate::portal::survey::rebuild(db).await.map_err(|err| match err {
        crate::error::AppError::Database(db_err) => PortabilityError::Database(db_err),
        other => PortabilityError::Refused(format!("the survey answers were imported but not counted: {other}")),
    })?;
    crate::cases::search::rebuild(db).await.map_err(|err| match err {
        crate::error::AppError::Database(db_err) => PortabilityError::Database(db_err),
        other => PortabilityError::Refused(format!("the cases were imported but cannot be searched yet: {other}")),
    })?;
    Ok(counts)
}

fn check_header(header: &Header) -> Result<(), PortabilityError> {
    if header.format != FORMAT {
        return Err(PortabilityError::Refused(format!(
            "the file's format is {:?}, not {FORMAT:?}; nothing was imported",
            header.format
        )));
    }
    if header.version != VERSION {
        return Err(PortabilityError::Refused(format!(
            "the file is version {} of the export format; this SecondLook reads version {VERSION}",
            header.version
        )));
    }
    let ours = schema();
    if header.schema != ours {
        return Err(PortabilityError::Refused(format!(
            "the file was exported at schema {}, this SecondLook is at schema {ours}; export and import with the \
             same SecondLook version",
            header.schema
        )));
    }
    Ok(())
}

/// Inserts a batch of one table's rows.
async fn load<C: ConnectionTrait>(conn: &C, table: &str, rows: Vec<Value>) -> Result<(), PortabilityError> {
    match table {
        t if t == user::Entity.table_name() => insert::<user::Entity, _>(conn, rows).await,
        t if t == api_token::Entity.table_name() => insert::<api_token::Entity, _>(conn, rows).await,
        t if t == specialist::Entity.table_name() => insert::<specialist::Entity, _>(conn, rows).await,
        t if t == case::Entity.table_name() => insert::<case::Entity, _>(conn, rows).await,
        t if t == case_round::Entity.table_name() => insert::<case_round::Entity, _>(conn, rows).await,
        t if t == case_insurance::Entity.table_name() => insert::<case_insurance::Entity, _>(conn, rows).await,
        t if t == opinion::Entity.table_name() => insert::<opinion::Entity, _>(conn, rows).await,
        t if t == case_note::Entity.table_name() => insert::<case_note::Entity, _>(conn, rows).await,
        t if t == case_contact::Entity.table_name() => insert::<case_contact::Entity, _>(conn, rows).await,
        t if t == document::Entity.table_name() => insert::<document::Entity, _>(conn, rows).await,
        t if t == portal_partner::Entity.table_name() => insert::<portal_partner::Entity, _>(conn, rows).await,
        t if t == portal_consent::Entity.table_name() => insert::<portal_consent::Entity, _>(conn, rows).await,
        t if t == portal_survey::Entity.table_name() => insert::<portal_survey::Entity, _>(conn, rows).await,
        t if t == provider::Entity.table_name() => insert::<provider::Entity, _>(conn, rows).await,
        t if t == records_request::Entity.table_name() => insert::<records_request::Entity, _>(conn, rows).await,
        t if t == records_request_kind::Entity.table_name() => {
            insert::<records_request_kind::Entity, _>(conn, rows).await
        }
        t if t == case_record::Entity.table_name() => insert::<case_record::Entity, _>(conn, rows).await,
        t if t == stage_change::Entity.table_name() => insert::<stage_change::Entity, _>(conn, rows).await,
        t if t == outbox_message::Entity.table_name() => insert::<outbox_message::Entity, _>(conn, rows).await,
        t if t == audit_entry::Entity.table_name() => insert::<audit_entry::Entity, _>(conn, rows).await,
        other => Err(PortabilityError::Refused(format!("unknown table {other:?}"))),
    }
}

async fn insert<E, C>(conn: &C, rows: Vec<Value>) -> Result<(), PortabilityError>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    let table = E::default().table_name();
    let mut models = Vec::with_capacity(rows.len());
    for row in rows {
        let model: E::Model = serde_json::from_value(row)
            .map_err(|e| PortabilityError::Refused(format!("a row of {table} does not fit this schema: {e}")))?;
        // Every column, the id included, is written as it was exported.
        models.push(model.into_active_model());
    }
    E::insert_many(models).exec_without_returning(conn).await?;
    Ok(())
}

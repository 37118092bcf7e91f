//! What people and jobs do with documents: upload, list, read, rename,
//! delete and restore, purge, check, and move to a new master key.
//!
//! An upload writes the sealed file to storage first and adds its row
//! after, in a case write of its own: a file that never arrived whole
//! leaves no row, and a row is never left pointing at nothing by an upload.
//! (A crash between the two leaves a file without a row, which
//! `secondlook documents check` lists.) The file streams through a chunk
//! at a time, so memory stays flat whatever its size.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream::BoxStream};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    cipher::{Opener, Sealer},
    keys::{KeySource, Keyring},
    sniff,
    storage::{Storage, StorageError},
};
use crate::{
    actor::Actor,
    audit::{self, Subject, reads::ReadTrail},
    cases::{
        journal::{self, Author},
        store::{self as case_store, VIEWED},
    },
    config::Settings,
    db::{
        self,
        entities::{case, case_record, document},
    },
    error::{AppError, AppResult, FieldErrors},
    ids::{CaseId, DocumentId},
    secrets::{hex, random_bytes},
    validate::{check_text, limits},
    vocabulary::{DocumentKind, RecordKind, parse_round, round_name},
};

/// Audit actions on documents.
pub const UPLOADED: &str = "document.uploaded";
pub const DOWNLOADED: &str = "document.downloaded";
pub const UPDATED: &str = "document.updated";
pub const DELETED: &str = "document.deleted";
pub const RESTORED: &str = "document.restored";
pub const PURGED: &str = "document.purged";

/// The most documents one case lists.
pub const MAX_LISTED: u64 = 500;
/// Longest document name, in characters.
const LONGEST_NAME: usize = 120;
/// After refusing a file (too large, not accepted, storage down), at most
/// this much more of it is read (for at most [`DRAIN_FOR_AT_MOST`]), so the
/// sender reads the answer instead of a reset connection.
const DRAIN_AT_MOST: u64 = 8 * 1024 * 1024;
const DRAIN_FOR_AT_MOST: Duration = Duration::from_secs(5);

/// The document storage, the keys that seal its files, and its limits.
#[derive(Debug, Clone)]
pub struct Documents {
    pub storage: Storage,
    pub keys: Keyring,
    pub max_file_bytes: u64,
    pub purge_after: Duration,
}

impl Documents {
    /// Opens the storage and the master key the settings name.
    pub fn open(settings: &Settings) -> Result<(Self, KeySource), String> {
        let storage = Storage::open(&settings.documents)?;
        let (keys, source) = Keyring::load(settings)?;
        let documents = Self {
            storage,
            keys,
            max_file_bytes: settings.documents.max_file_bytes,
            purge_after: settings.documents.purge_deleted_after,
        };
        Ok((documents, source))
    }
}

/// What an uploader says about a file.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub kind: DocumentKind,
    /// The checklist item the file is a record of.
    pub record_kind: Option<RecordKind>,
    /// The opinion round the file belongs to (a specialist's report): 1
    /// the original opinion, 2 the second…
    pub round: Option<i32>,
    /// Also mark the checklist item received.
    pub mark_received: bool,
}

/// A file sealed and stored, waiting for its row.
#[derive(Debug)]
pub struct StoredFile {
    pub name: String,
    pub content_type: &'static str,
    pub size: u64,
    pub sha256: String,
    object_key: String,
    wrapped_key: String,
    key_id: String,
}

impl StoredFile {
    /// Takes the file back out of storage, when its row will not be added.
    pub async fn discard(self, documents: &Documents) {
        if let Err(err) = documents.storage.remove(&self.object_key).await {
            tracing::warn!(error = %err, "a refused upload's file could not be removed; `documents check` lists it");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DocumentView {
    pub id: i32,
    pub case_id: i32,
    pub kind: DocumentKind,
    pub kind_label: &'static str,
    pub record_kind: Option<RecordKind>,
    /// The opinion round's word (`original`, `second`…).
    pub round: Option<String>,
    /// The records request whose records it brought.
    pub records_request_id: Option<i32>,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub uploaded_by: Option<Author>,
    /// Sent through the patient portal by `patient` or a care partner.
    pub uploaded_via: Option<String>,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its stored file is missing or does not open.
    pub damaged: bool,
    /// Shown in the browser (a sandboxed frame) rather than only downloaded.
    pub viewable: bool,
}

/// A change to a document's description; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<DocumentKind>,
    #[serde(default, with = "double_option")]
    pub record_kind: Option<Option<RecordKind>>,
    /// The opinion round's word (`original`, `second`…).
    #[serde(default, with = "double_option")]
    pub round: Option<Option<String>>,
}

/// `null` clears a link, an absent field keeps it.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// Whether `actor` may add documents to the case: asked before a file is
/// read, so a refused upload costs nothing.
pub async fn check_case(db: &DatabaseConnection, actor: &Actor, case_id: CaseId) -> AppResult<()> {
    let case_id = case_id.get();
    case_store::check_access(db, actor, case_id, UPLOADED).await?;
    let erased: Option<Option<chrono::DateTime<chrono::Utc>>> =
        case::Entity::find_by_id(case_id).select_only().column(case::Column::ErasedAt).into_tuple().one(db).await?;
    if erased.flatten().is_some() {
        return Err(erased_case());
    }
    Ok(())
}

fn erased_case() -> AppError {
    AppError::conflict("case_erased", "the patient data of this case was erased; documents cannot be added")
}

/// Seals and stores a file as it arrives. Refuses a file whose first bytes
/// are not an accepted kind (415) or that grows past the size limit (413),
/// leaving nothing stored; whatever the refusal, the rest of the file is
/// read for a while so that the sender gets the answer.
pub async fn store_file<S, E>(documents: &Documents, case_id: i32, name: &str, mut body: S) -> AppResult<StoredFile>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<AppError>,
{
    let stored = seal_and_store(documents, case_id, name, &mut body).await;
    if stored.is_err() {
        drain(body).await;
    }
    stored
}

async fn seal_and_store<S, E>(documents: &Documents, case_id: i32, name: &str, mut body: S) -> AppResult<StoredFile>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<AppError>,
{
    let name = sniff::clean_name(name);
    // The first bytes decide whether the file is taken at all.
    let mut first = Vec::with_capacity(sniff::SNIFF_BYTES);
    let mut ended = false;
    while first.len() < sniff::SNIFF_BYTES {
        match body.next().await {
            Some(piece) => first.extend_from_slice(&piece.map_err(Into::into)?),
            None => {
                ended = true;
                break;
            }
        }
    }
    let limit = documents.max_file_bytes;
    if first.len() as u64 > limit {
        return Err(too_large(limit));
    }
    let Some(content_type) = sniff::accepted_type(&first, &name) else {
        return Err(AppError::UnsupportedType(
            "this kind of file is not accepted: send a PDF, an image (JPEG, PNG, TIFF, HEIC), DICOM, a ZIP, \
             plain text, CSV or an Office document"
                .into(),
        ));
    };
    let object_key = format!("cases/{case_id}/{}", hex(&random_bytes::<16>()?));
    let (file_key, wrapped_key) = documents.keys.new_file_key()?;
    let (mut sealer, header) = Sealer::new(&file_key)?;
    let mut upload = documents.storage.start_upload(&object_key).await?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut sealed = header;
    let written: AppResult<()> = async {
        let mut piece = Bytes::from(first);
        loop {
            size += piece.len() as u64;
            if size > limit {
                return Err(too_large(limit));
            }
            hasher.update(&piece);
            sealer.push(&piece, &mut sealed)?;
            if !sealed.is_empty() {
                upload.write(&sealed).await?;
                sealed.clear();
            }
            if ended {
                break;
            }
            match body.next().await {
                Some(next) => piece = next.map_err(Into::into)?,
                None => break,
            }
        }
        Ok(())
    }
    .await;
    let finished = match written {
        Ok(()) => sealer.finish(&mut sealed),
        Err(err) => Err(err),
    };
    if let Err(err) = finished {
        upload.abort().await;
        return Err(err);
    }
    let stored: Result<(), StorageError> = async {
        upload.write(&sealed).await?;
        upload.finish().await
    }
    .await;
    stored?;
    Ok(StoredFile {
        name,
        content_type,
        size,
        sha256: hex(&hasher.finalize()),
        object_key,
        wrapped_key,
        key_id: documents.keys.current().id().to_string(),
    })
}

fn too_large(limit: u64) -> AppError {
    AppError::TooLarge(format!("the file is larger than the {} limit", size_label(limit)))
}

/// Reads and drops what is left of a refused file, within bounds.
async fn drain<S, E>(mut body: S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut read = 0;
    let _ = tokio::time::timeout(DRAIN_FOR_AT_MOST, async {
        while read < DRAIN_AT_MOST {
            match body.next().await {
                Some(Ok(more)) => read += more.len() as u64,
                _ => break,
            }
        }
    })
    .await;
}

/// "200 MiB", "64 KiB", "900 bytes".
pub fn size_label(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) || bytes >= 10 * MIB {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Checks what the uploader said against the case, adds the row and audits
/// it; marks the checklist item received when asked. The stored file is
/// removed again if the row cannot be added.
pub async fn add(
    db: &DatabaseConnection,
    documents: &Documents,
    actor: &Actor,
    case_id: CaseId,
    new: NewDocument,
    file: StoredFile,
) -> AppResult<DocumentView> {
    let case_id = case_id.get();
    let added = add_row(db, actor, case_id, &new, &file).await;
    match added {
        Ok(row) => described(db, row).await,
        Err(err) => {
            file.discard(documents).await;
            Err(err)
        }
    }
}

async fn add_row(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: i32,
    new: &NewDocument,
    file: &StoredFile,
) -> AppResult<document::Model> {
    let w = case_store::begin_case_write(db, actor, case_id, UPLOADED).await?;
    let (row, detail) = insert_row(&w, actor, new, file).await?;
    w.commit_with(actor, Default::default(), UPLOADED, detail).await?;
    Ok(row)
}

/// Adds the document row inside the case write `w` (marking the checklist
/// item received when asked) and returns it with the detail of its audit
/// entry; the caller commits.
pub(crate) async fn insert_row(
    w: &case_store::CaseWrite,
    actor: &Actor,
    new: &NewDocument,
    file: &StoredFile,
) -> AppResult<(document::Model, serde_json::Value)> {
    let case_id = w.case.id;
    check_links(&w.txn, &w.case, new.record_kind, new.round).await?;
    let mut marked = false;
    if new.mark_received {
        let Some(kind) = new.record_kind else {
            return Err(FieldErrors::single("mark_received", "needs the checklist item (record_kind) the file is"));
        };
        // Recorded as the checklist itself records it.
        if let Some(detail) = case_store::mark_record_received(w, kind).await? {
            audit::record_at(&w.txn, actor, "case.record", Subject::case(case_id), detail, w.now).await?;
            marked = true;
        }
    }
    let row = document::ActiveModel {
        case_id: Set(case_id),
        kind: Set(new.kind),
        record_kind: Set(new.record_kind),
        round: Set(new.round),
        name: Set(file.name.clone()),
        content_type: Set(file.content_type.to_string()),
        size: Set(i64::try_from(file.size).unwrap_or(i64::MAX)),
        sha256: Set(file.sha256.clone()),
        object_key: Set(file.object_key.clone()),
        wrapped_key: Set(file.wrapped_key.clone()),
        key_id: Set(file.key_id.clone()),
        uploaded_by: Set(actor.user_id),
        uploaded_at: Set(w.now),
        deleted_at: Set(None),
        deleted_by: Set(None),
        damaged_at: Set(None),
        uploaded_via: Set(matches!(actor.scope, crate::actor::Scope::OneCase(_)).then(|| actor.label.clone())),
        ..Default::default()
    }
    .insert(&w.txn)
    .await?;
    let detail = json!({
        "document_id": row.id, "kind": row.kind, "record_kind": row.record_kind, "round": row.round,
        "size": row.size, "content_type": row.content_type, "marked_received": marked,
    });
    Ok((row, detail))
}

/// A document links only to a checklist item of its case and to one of its
/// opinion rounds so far.
async fn check_links<C: ConnectionTrait>(
    conn: &C,
    case: &case::Model,
    record_kind: Option<RecordKind>,
    round: Option<i32>,
) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    if let Some(kind) = record_kind {
        let listed = case_record::Entity::find()
            .filter(case_record::Column::CaseId.eq(case.id))
            .filter(case_record::Column::Kind.eq(kind))
            .one(conn)
            .await?;
        if listed.is_none() {
            errors.add("record_kind", "is not on this case's records checklist");
        }
    }
    if let Some(round) = round
        && !(1..=case.round).contains(&round)
    {
        errors.add(
            "round",
            format!("must be an opinion round of this case, up to the {} opinion", round_name(case.round)),
        );
    }
    errors.into_result()
}

/// A case's documents, newest first; deleted ones only for admins, who may
/// restore them. The read is audited.
pub async fn list(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<Vec<DocumentView>> {
    let case_id = case_id.get();
    case_store::check_access(db, actor, case_id, VIEWED).await?;
    reads.record(actor, VIEWED, Subject::case(case_id), json!({ "part": "documents" })).await?;
    of_case(db, case_id, actor.is_admin()).await
}

/// A case's documents without an audit entry, for a caller that already
/// checked access and records the read itself (the case page).
pub async fn of_case<C: ConnectionTrait>(conn: &C, case_id: i32, with_deleted: bool) -> AppResult<Vec<DocumentView>> {
    let mut query = document::Entity::find().filter(document::Column::CaseId.eq(case_id));
    if !with_deleted {
        query = query.filter(document::Column::DeletedAt.is_null());
    }
    let rows = query
        .order_by_desc(document::Column::UploadedAt)
        .order_by_desc(document::Column::Id)
        .limit(MAX_LISTED)
        .all(conn)
        .await?;
    let authors = journal::authors(conn, rows.iter().map(|r| r.uploaded_by)).await?;
    Ok(rows.into_iter().map(|row| view(row, &authors)).collect())
}

/// One document as it is shown, its uploader named.
async fn described<C: ConnectionTrait>(conn: &C, row: document::Model) -> AppResult<DocumentView> {
    let authors = journal::authors(conn, [row.uploaded_by]).await?;
    Ok(view(row, &authors))
}

fn view(row: document::Model, authors: &[Author]) -> DocumentView {
    let uploaded_by = row.uploaded_by.and_then(|id| authors.iter().find(|a| a.id == id).cloned());
    DocumentView {
        id: row.id,
        case_id: row.case_id,
        kind: row.kind,
        kind_label: row.kind.label(),
        record_kind: row.record_kind,
        round: row.round.map(round_name),
        records_request_id: row.records_request_id,
        viewable: sniff::viewable(&row.content_type),
        name: row.name,
        content_type: row.content_type,
        size: row.size,
        sha256: row.sha256,
        uploaded_by,
        uploaded_via: row.uploaded_via.clone(),
        uploaded_at: row.uploaded_at,
        deleted_at: row.deleted_at,
        damaged: row.damaged_at.is_some(),
    }
}

/// The document with `id`, if `actor` may see its case (else not found, as
/// for any case they may not see). A deleted one only for admins.
async fn find_visible(
    db: &DatabaseConnection,
    actor: &Actor,
    id: DocumentId,
    what: &str,
) -> AppResult<document::Model> {
    let row = document::Entity::find_by_id(id.get()).one(db).await?.ok_or(AppError::NotFound)?;
    case_store::check_access(db, actor, row.case_id, what).await?;
    if row.deleted_at.is_some() && !actor.is_admin() {
        return Err(AppError::NotFound);
    }
    Ok(row)
}

/// One document's description; the read is audited.
pub async fn get(db: &DatabaseConnection, reads: &ReadTrail, actor: &Actor, id: DocumentId) -> AppResult<DocumentView> {
    let row = find_visible(db, actor, id, VIEWED).await?;
    reads
        .record(actor, VIEWED, Subject::case(row.case_id), json!({ "part": "document", "document_id": id.get() }))
        .await?;
    described(db, row).await
}

/// A document's bytes as they are opened, a chunk at a time.
pub type Content = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Opens a document to send it: audited before a byte goes out. A stored
/// file that is missing or does not open with its key marks the document
/// damaged and answers so, instead of failing the request.
pub async fn open(
    db: &DatabaseConnection,
    documents: &Documents,
    actor: &Actor,
    id: DocumentId,
) -> AppResult<(DocumentView, Content)> {
    let row = find_visible(db, actor, id, DOWNLOADED).await?;
    if !documents.keys.has(&row.key_id) {
        tracing::error!(document = row.id, key = %row.key_id, "a document is wrapped by a master key not given here");
        return Err(AppError::conflict(
            "document_key_missing",
            "this document is sealed under a master key this server was not given (after a key rotation, \
             restart every instance)",
        ));
    }
    let Some(file_key) = documents.keys.file_key(&row.key_id, &row.wrapped_key) else {
        tracing::error!(document = row.id, key = %row.key_id, "a document's wrapped key does not open");
        mark_damaged(db, row.id).await?;
        return Err(damaged());
    };
    let stream = match documents.storage.read(&row.object_key).await {
        Ok(stream) => stream,
        Err(StorageError::Missing(_)) => {
            tracing::error!(document = row.id, "a document's stored file is missing");
            mark_damaged(db, row.id).await?;
            return Err(damaged());
        }
        Err(err) => return Err(err.into()),
    };
    audit::record(
        db,
        actor,
        DOWNLOADED,
        Subject::case(row.case_id),
        json!({ "document_id": row.id, "size": row.size }),
    )
    .await?;
    let opened = opened_stream(stream, Opener::new(&file_key), row.id);
    Ok((described(db, row).await?, opened))
}

fn damaged() -> AppError {
    AppError::conflict(
        "document_damaged",
        "this document's stored file is missing or damaged, so it cannot be sent; upload it again",
    )
}

async fn mark_damaged(db: &DatabaseConnection, id: i32) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    document::Entity::update_many()
        .col_expr(document::Column::DamagedAt, sea_orm::sea_query::Expr::value(Some(db::now())))
        .filter(document::Column::Id.eq(id))
        .filter(document::Column::DamagedAt.is_null())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Decrypts `sealed` as it arrives. A piece that does not open ends the
/// stream with an error, so the receiver sees a broken transfer, never
/// altered bytes.
fn opened_stream(sealed: BoxStream<'static, Result<Bytes, StorageError>>, opener: Opener, id: i32) -> Content {
    let state = (sealed, Some(opener));
    futures_util::stream::unfold(state, move |(mut sealed, mut opener)| async move {
        let current = opener.as_mut()?;
        loop {
            match sealed.next().await {
                Some(Ok(piece)) => {
                    let mut out = Vec::new();
                    if current.push(&piece, &mut out).is_err() {
                        tracing::error!(document = id, "a document's stored file does not open");
                        return Some((Err(broken("does not open")), (sealed, None)));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), (sealed, opener)));
                    }
                }
                Some(Err(err)) => {
                    tracing::error!(document = id, error = %err, "reading a document's stored file failed");
                    return Some((Err(broken("could not be read")), (sealed, None)));
                }
                None => {
                    let last = opener.take()?;
                    let mut out = Vec::new();
                    if last.finish(&mut out).is_err() {
                        tracing::error!(document = id, "a document's stored file is cut short or altered");
                        return Some((Err(broken("is cut short")), (sealed, None)));
                    }
                    return Some((Ok(Bytes::from(out)), (sealed, None)));
                }
            }
        }
    })
    .boxed()
}

fn broken(what: &str) -> std::io::Error {
    std::io::Error::other(format!("the stored document {what}"))
}

/// Renames a document or changes what it is linked to.
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: DocumentId,
    patch: DocumentPatch,
) -> AppResult<DocumentView> {
    let mut errors = FieldErrors::new();
    if let Some(name) = &patch.name {
        check_text(&mut errors, "name", name, LONGEST_NAME.min(limits::SHORT_TEXT), true);
    }
    errors.into_result()?;
    let found = find_visible(db, actor, id, UPDATED).await?;
    let w = case_store::begin_case_write(db, actor, found.case_id, UPDATED).await?;
    let row = document::Entity::find_by_id(found.id)
        .filter(document::Column::CaseId.eq(found.case_id))
        .one(&w.txn)
        .await?
        .ok_or(AppError::NotFound)?;
    let record_kind = patch.record_kind.unwrap_or(row.record_kind);
    let round = match patch.round {
        None => row.round,
        Some(None) => None,
        Some(Some(word)) => Some(
            parse_round(&word)
                .ok_or_else(|| FieldErrors::single("round", "must be an opinion round: original, second, third…"))?,
        ),
    };
    check_links(&w.txn, &w.case, record_kind, round).await?;
    let mut changes = document::ActiveModel { id: Set(row.id), ..Default::default() };
    let mut changed = Vec::new();
    if let Some(name) = patch.name.as_deref().map(sniff::clean_name).filter(|n| *n != row.name) {
        changes.name = Set(name);
        changed.push("name");
    }
    if let Some(kind) = patch.kind.filter(|k| *k != row.kind) {
        changes.kind = Set(kind);
        changed.push("kind");
    }
    if record_kind != row.record_kind {
        changes.record_kind = Set(record_kind);
        changed.push("record_kind");
    }
    if round != row.round {
        changes.round = Set(round);
        changed.push("round");
    }
    let row = if changed.is_empty() {
        w.txn.rollback().await?;
        row
    } else {
        let row = changes.update(&w.txn).await?;
        w.commit_with(actor, Default::default(), UPDATED, json!({ "document_id": row.id, "changed": changed })).await?;
        row
    };
    described(db, row).await
}

/// Deletes a document: gone from the case at once, its file kept until the
/// purge so an admin can restore it. Deleting it again changes nothing.
pub async fn delete(db: &DatabaseConnection, actor: &Actor, id: DocumentId) -> AppResult<DocumentView> {
    set_deleted(db, actor, id, true).await
}

/// Brings a deleted document back (admins only).
pub async fn restore(db: &DatabaseConnection, actor: &Actor, id: DocumentId) -> AppResult<DocumentView> {
    if !actor.is_admin() {
        return Err(AppError::Forbidden("only an admin can restore a deleted document".into()));
    }
    set_deleted(db, actor, id, false).await
}

async fn set_deleted(db: &DatabaseConnection, actor: &Actor, id: DocumentId, delete: bool) -> AppResult<DocumentView> {
    let action = if delete { DELETED } else { RESTORED };
    let found = find_visible(db, actor, id, action).await?;
    let w = case_store::begin_case_write(db, actor, found.case_id, action).await?;
    let row = document::Entity::find_by_id(found.id).one(&w.txn).await?.ok_or(AppError::NotFound)?;
    let row = if row.deleted_at.is_some() == delete {
        w.txn.rollback().await?;
        row
    } else {
        let mut changes = document::ActiveModel { id: Set(row.id), ..Default::default() };
        changes.deleted_at = Set(delete.then_some(w.now));
        changes.deleted_by = Set(if delete { actor.user_id } else { None });
        let row = changes.update(&w.txn).await?;
        w.commit_with(actor, Default::default(), action, json!({ "document_id": row.id })).await?;
        row
    };
    described(db, row).await
}

/// Documents purged per run of [`purge_deleted`].
const PURGE_BATCH: u64 = 200;

/// Removes documents deleted longer ago than the settings keep them: the
/// file first, then the row, so a failure leaves a row to try again, never
/// a row without its file. Returns how many were purged.
pub async fn purge_deleted(
    db: &DatabaseConnection,
    documents: &Documents,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<usize> {
    let Ok(keep) = chrono::Duration::from_std(documents.purge_after) else { return Ok(0) };
    let before = now - keep;
    let due = document::Entity::find()
        .filter(document::Column::DeletedAt.lt(before))
        .order_by_asc(document::Column::DeletedAt)
        .limit(PURGE_BATCH)
        .all(db)
        .await?;
    let system = Actor::system("documents");
    let mut purged = 0;
    for row in due {
        documents.storage.remove(&row.object_key).await?;
        let txn = db::begin_write(db).await?;
        document::Entity::delete_by_id(row.id).exec(&txn).await?;
        audit::record(&txn, &system, PURGED, Subject::case(row.case_id), json!({ "document_id": row.id })).await?;
        txn.commit().await?;
        purged += 1;
    }
    Ok(purged)
}

/// What `documents check` found.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub documents: u64,
    pub files: u64,
    /// Documents whose file is missing (now marked damaged).
    pub missing: Vec<i32>,
    /// Stored files no document names.
    pub orphans: Vec<String>,
}

/// Rows read per query while checking.
const CHECK_BATCH: u64 = 1_000;

/// Compares every document with the stored files: rows whose file is gone
/// are marked damaged; files no row names are listed (an upload cut off
/// between storing its file and adding its row leaves one).
pub async fn check(db: &DatabaseConnection, documents: &Documents) -> AppResult<CheckReport> {
    let mut report = CheckReport::default();
    let mut stored = std::collections::HashSet::new();
    let mut files = documents.storage.every_file();
    while let Some(file) = files.next().await {
        let (key, _) = file?;
        report.files += 1;
        stored.insert(key);
    }
    let mut after = 0;
    loop {
        let rows: Vec<(i32, String)> = document::Entity::find()
            .select_only()
            .columns([document::Column::Id, document::Column::ObjectKey])
            .filter(document::Column::Id.gt(after))
            .order_by_asc(document::Column::Id)
            .limit(CHECK_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, key) in rows {
            report.documents += 1;
            if !stored.remove(&key) {
                report.missing.push(id);
                mark_damaged(db, id).await?;
            }
        }
    }
    report.orphans = stored.into_iter().collect();
    report.orphans.sort();
    Ok(report)
}

/// Wraps every document's key under the current master key, from the
/// previous one; the files themselves are not touched. Returns how many
/// were moved, and how many are under a key not at hand.
pub async fn rotate(db: &DatabaseConnection, keys: &Keyring) -> AppResult<(u64, u64)> {
    let current = keys.current().id().to_string();
    let (mut moved, mut stuck) = (0, 0);
    let mut after = 0;
    loop {
        let rows: Vec<(i32, String, String)> = document::Entity::find()
            .select_only()
            .columns([document::Column::Id, document::Column::KeyId, document::Column::WrappedKey])
            .filter(document::Column::KeyId.ne(current.as_str()))
            .filter(document::Column::Id.gt(after))
            .order_by_asc(document::Column::Id)
            .limit(CHECK_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        let txn = db::begin_write(db).await?;
        for (id, key_id, wrapped) in rows {
            let Some(file_key) = keys.file_key(&key_id, &wrapped) else {
                stuck += 1;
                continue;
            };
            let mut changes = document::ActiveModel { id: Set(id), ..Default::default() };
            changes.wrapped_key = Set(keys.current().wrap(&file_key)?);
            changes.key_id = Set(current.clone());
            changes.update(&txn).await?;
            moved += 1;
        }
        txn.commit().await?;
    }
    Ok((moved, stuck))
}

/// Removes a case's documents with its patient data, inside the erasure's
/// transaction; returns the stored files to remove once it commits.
pub async fn erase_rows<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Vec<String>> {
    let keys: Vec<String> = document::Entity::find()
        .select_only()
        .column(document::Column::ObjectKey)
        .filter(document::Column::CaseId.eq(case_id))
        .into_tuple()
        .all(conn)
        .await?;
    document::Entity::delete_many().filter(document::Column::CaseId.eq(case_id)).exec(conn).await?;
    Ok(keys)
}

/// Removes stored files whose rows are gone; a failure is logged (the
/// files then show as orphans in `documents check`).
pub async fn remove_files(documents: &Documents, keys: Vec<String>) {
    for key in keys {
        if let Err(err) = documents.storage.remove(&key).await {
            tracing::error!(error = %err, "an erased document's file could not be removed; `documents check` lists it");
        }
    }
}

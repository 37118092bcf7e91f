//! A case's export with its documents: a ZIP archive holding `case.json`
//! (the export document) and every document's file under `documents/`,
//! written as it is sent, so neither memory nor the disk ever holds more
//! than a chunk of it in the clear. A document whose stored file is missing
//! or damaged is replaced by a short note saying so.

use async_zip::{Compression, ZipEntryBuilder, tokio::write::ZipFileWriter};
use futures_util::{AsyncWriteExt, StreamExt};
use tokio::io::DuplexStream;

use super::case_export::{self, CaseExport};
use crate::{
    auth::Actor,
    documents::store::{self, Content, Documents},
    error::{AppError, AppResult},
    ids::{CaseId, DocumentId},
};

/// Bytes in flight between the archive's writer and the response.
const PIPE: usize = 256 * 1024;

/// The archive's file name and its bytes as they are written. Admins only,
/// like the export itself; the export and each document read are audited.
pub async fn archive(
    db: &sea_orm::DatabaseConnection,
    documents: &Documents,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<(String, Content)> {
    let export = case_export::export(db, actor, case_id).await?;
    let name = format!("{}-export.zip", export.case.reference);
    let (writer, reader) = tokio::io::duplex(PIPE);
    let (db, documents, actor) = (db.clone(), documents.clone(), actor.clone());
    tokio::spawn(async move {
        if let Err(err) = write(writer, &db, &documents, &actor, export).await {
            // The answer is already on its way: it ends cut short, which the
            // archive's missing directory makes plain to any unzip tool.
            tracing::error!(error = %err, "writing a case archive failed");
        }
    });
    let bytes = tokio_util::io::ReaderStream::new(reader).boxed();
    Ok((name, bytes))
}

async fn write(
    pipe: DuplexStream,
    db: &sea_orm::DatabaseConnection,
    documents: &Documents,
    actor: &Actor,
    export: CaseExport,
) -> AppResult<()> {
    let broken = |e: async_zip::error::ZipError| AppError::broken("case archive", e);
    let mut zip = ZipFileWriter::with_tokio(pipe);
    let json = serde_json::to_vec_pretty(&export).map_err(|e| AppError::broken("case archive", e))?;
    zip.write_entry_whole(ZipEntryBuilder::new("case.json".into(), Compression::Stored), &json)
        .await
        .map_err(broken)?;
    for entry in &export.documents {
        let document = &entry.document;
        let path = format!("documents/{:05}-{}", document.id, document.name);
        match store::open(db, documents, actor, DocumentId(document.id)).await {
            Ok((_, mut content)) => {
                let mut file = zip
                    .write_entry_stream(ZipEntryBuilder::new(path.into(), Compression::Stored))
                    .await
                    .map_err(broken)?;
                while let Some(piece) = content.next().await {
                    let piece = piece.map_err(|e| AppError::broken("case archive document", e))?;
                    file.write_all(&piece).await.map_err(|e| AppError::broken("case archive", e))?;
                }
                file.close().await.map_err(broken)?;
            }
            Err(AppError::Conflict { message, .. }) => {
                let note = format!("{} could not be included: {message}\n", document.name);
                let path = format!("documents/{:05}-{}.missing.txt", document.id, document.name);
                zip.write_entry_whole(ZipEntryBuilder::new(path.into(), Compression::Stored), note.as_bytes())
                    .await
                    .map_err(broken)?;
            }
            Err(other) => return Err(other),
        }
    }
    let mut pipe = zip.close().await.map_err(broken)?;
    pipe.close().await.map_err(|e| AppError::broken("case archive", e))?;
    Ok(())
}

//! Where sealed document files are kept: a local directory or an
//! S3-compatible service, both through `object_store`. Files are written by
//! multipart upload, so a large file goes out in parts as it arrives and an
//! upload cut short leaves no object behind.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart, aws::AmazonS3Builder,
    local::LocalFileSystem, path::Path,
};

use crate::{
    config::{DocumentSettings, DocumentStorage},
    error::AppError,
};

/// Bytes per uploaded part: S3 takes no smaller part but the last.
const PART: usize = 5 * 1024 * 1024;
/// Parts of one upload in flight at once: memory per upload stays near
/// `PART` times this.
const PARTS_IN_FLIGHT: usize = 2;

/// What went wrong reaching the files.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object under that key.
    #[error("no stored file {0}")]
    Missing(String),
    /// The storage did not answer or refused: trying again later can work.
    #[error("document storage unavailable: {0}")]
    Unavailable(#[source] object_store::Error),
}

impl From<object_store::Error> for StorageError {
    fn from(err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { path, .. } => StorageError::Missing(path),
            other => StorageError::Unavailable(other),
        }
    }
}

impl From<StorageError> for AppError {
    fn from(err: StorageError) -> Self {
        AppError::FilesUnavailable(Box::new(err))
    }
}

#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Where the files are, for messages ("local directory data/documents").
    pub place: String,
}

impl Storage {
    /// The storage the settings name; a local directory is created if need be.
    pub fn open(settings: &DocumentSettings) -> Result<Self, String> {
        match settings.storage {
            DocumentStorage::Local => {
                let dir = &settings.local_dir;
                std::fs::create_dir_all(dir).map_err(|e| format!("creating documents.local_dir {dir}: {e}"))?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("documents.local_dir {dir}: {e}"))?
                    .with_automatic_cleanup(true);
                Ok(Self { store: Arc::new(store), place: format!("local directory {dir}") })
            }
            DocumentStorage::S3 => {
                let s3 = &settings.s3;
                // A storage that is down answers within seconds, not after
                // the client's default minutes of retries.
                let retry =
                    RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..Default::default() };
                let client = ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(Duration::from_secs(60))
                    .with_allow_http(s3.allow_http);
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_retry(retry)
                    .with_client_options(client)
                    .with_allow_http(s3.allow_http);
                if !s3.endpoint.trim().is_empty() {
                    builder = builder.with_endpoint(s3.endpoint.trim());
                }
                if !s3.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(s3.secret_access_key.expose());
                }
                let store = builder.build().map_err(|e| format!("documents.s3: {e}"))?;
                Ok(Self { store: Arc::new(store), place: format!("S3 bucket {}", s3.bucket) })
            }
        }
    }

    /// Starts writing the file under `key`.
    pub async fn start_upload(&self, key: &str) -> Result<Upload, StorageError> {
        let upload = self.store.put_multipart(&Path::from(key)).await?;
        Ok(Upload { writer: WriteMultipart::new_with_chunk_size(upload, PART) })
    }

    /// The file under `key`, as it streams in.
    pub async fn read(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        let found = self.store.get(&Path::from(key)).await?;
        Ok(found.into_stream().map(|piece| piece.map_err(StorageError::from)).boxed())
    }

    /// Removes the file under `key`; a file already gone is not an error.
    pub async fn remove(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    /// Whether a file is stored under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// Every stored file's key and size, in no set order.
    pub fn every_file(&self) -> BoxStream<'static, Result<(String, u64), StorageError>> {
        self.store.list(None).map(|meta| meta.map(|m| (m.location.to_string(), m.size)).map_err(Into::into)).boxed()
    }
}

/// A file being written: parts go out as they fill.
pub struct Upload {
    writer: WriteMultipart,
}

impl Upload {
    /// Adds `data`, waiting while too many parts are still on their way.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.writer.write(data);
        Ok(())
    }

    /// Completes the file: only now does it exist under its key.
    pub async fn finish(self) -> Result<(), StorageError> {
        self.writer.finish().await?;
        Ok(())
    }

    /// Gives the upload up, leaving nothing under its key.
    pub async fn abort(self) {
        if let Err(err) = self.writer.abort().await {
            tracing::warn!(error = %err, "abandoning a document upload left parts behind");
        }
    }
}

//! The master key and the file keys it wraps. Every file is sealed with a
//! key of its own; the database keeps that key only wrapped (AES-256-GCM)
//! by a master key, named by a short id derived from it. A rotation wraps
//! the file keys again under a new master key; the files stay as they are.

use std::path::Path;

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, KeyInit},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{
    config::Settings,
    error::{AppError, AppResult},
    secrets::random_bytes,
};

const NONCE_LEN: usize = 12;

/// A file's own key, wiped from memory when dropped.
pub type FileKey = Zeroizing<[u8; 32]>;

/// A master key: wraps and unwraps file keys.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A key written as base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| "a master key is 32 random bytes written in base64 (44 characters)".to_string())?,
        );
        if bytes.len() != 32 {
            return Err(format!("a master key is 32 bytes; this one is {}", bytes.len()));
        }
        let digest = Sha256::new().chain_update(b"secondlook master key id\0").chain_update(&bytes[..]).finalize();
        let id = crate::secrets::hex(&digest[..6]);
        Ok(Self { id, cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)) })
    }

    /// A new random key, and how to write it down.
    pub fn generate() -> AppResult<(Self, Zeroizing<String>)> {
        let bytes = Zeroizing::new(random_bytes::<32>()?);
        let text = Zeroizing::new(STANDARD.encode(&bytes[..]));
        let key = Self::from_base64(&text).map_err(AppError::Internal)?;
        Ok((key, text))
    }

    /// Names the key without revealing it; stored beside each wrapped file key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `file_key` sealed under this key, as base64 of nonce and ciphertext.
    pub fn wrap(&self, file_key: &FileKey) -> AppResult<String> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), &file_key[..])
            .map_err(|_| AppError::Internal("wrapping a file key failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(STANDARD.encode(out))
    }

    /// The file key in `wrapped`; `None` when it was not wrapped by this key
    /// or was altered.
    pub fn unwrap(&self, wrapped: &str) -> Option<FileKey> {
        let raw = STANDARD.decode(wrapped).ok()?;
        if raw.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let opened = Zeroizing::new(self.cipher.decrypt(Nonce::from_slice(nonce), sealed).ok()?);
        let key: [u8; 32] = opened.as_slice().try_into().ok()?;
        Some(Zeroizing::new(key))
    }
}

/// The master key new files are wrapped with, and the one they were
/// wrapped with before a rotation, while one is under way.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    /// Keys documents may still be wrapped with: the previous key during a
    /// rotation, or the next one after a rotation that was cut short.
    others: Vec<MasterKey>,
}

/// Where the master key came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Setting,
    File(String),
    /// Generated into this file just now: it must be backed up.
    Generated(String),
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Self {
        Self { current, others: previous.into_iter().collect() }
    }

    /// The keys the settings give: `documents.master_key`, else the key
    /// file. On an SQLite database a missing key file is created with a new
    /// key (an embedded setup starts with nothing to configure); elsewhere a
    /// missing key stops start-up, since each instance must use the same.
    pub fn load(settings: &Settings) -> Result<(Self, KeySource), String> {
        let documents = &settings.documents;
        let previous = match documents.previous_master_key.expose().trim() {
            "" => None,
            text => Some(MasterKey::from_base64(text).map_err(|e| format!("documents.previous_master_key: {e}"))?),
        };
        let given = documents.master_key.expose().trim();
        if !given.is_empty() {
            let key = MasterKey::from_base64(given).map_err(|e| format!("documents.master_key: {e}"))?;
            return Ok((Self::new(key, previous), KeySource::Setting));
        }
        let path = Path::new(&documents.master_key_file);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = MasterKey::from_base64(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut ring = Self::new(key, previous);
                // A rotation cut short may have moved documents to its new key.
                let next = next_key_file(path);
                if let Ok(text) = std::fs::read_to_string(&next) {
                    ring.others.push(MasterKey::from_base64(&text).map_err(|e| format!("{}: {e}", next.display()))?);
                }
                Ok((ring, KeySource::File(path.display().to_string())))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if settings.database.is_postgres() {
                    return Err(format!(
                        "no master key for documents: set SECONDLOOK_MASTER_KEY (the same on every instance), or \
                         documents.master_key_file to a file holding it ({} does not exist)",
                        path.display()
                    ));
                }
                let (key, text) = MasterKey::generate().map_err(|e| e.to_string())?;
                write_key_file(path, &text).map_err(|e| format!("creating {}: {e}", path.display()))?;
                Ok((Self::new(key, previous), KeySource::Generated(path.display().to_string())))
            }
            Err(err) => Err(format!("reading {}: {err}", path.display())),
        }
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// This ring with `next` as its current key, every key here still at hand.
    pub fn moving_to(&self, next: MasterKey) -> Self {
        let mut others: Vec<MasterKey> = std::iter::once(&self.current).chain(&self.others).cloned().collect();
        others.retain(|k| k.id() != next.id());
        Self { current: next, others }
    }

    /// Whether a key named `key_id` is at hand.
    pub fn has(&self, key_id: &str) -> bool {
        self.current.id() == key_id || self.others.iter().any(|k| k.id() == key_id)
    }

    /// A new file key, and it wrapped under the current master key.
    pub fn new_file_key(&self) -> AppResult<(FileKey, String)> {
        let key = Zeroizing::new(random_bytes::<32>()?);
        let wrapped = self.current.wrap(&key)?;
        Ok((key, wrapped))
    }

    /// The file key wrapped by the master key named `key_id`; `None` when
    /// that key is not here or the wrapped key does not open.
    pub fn file_key(&self, key_id: &str, wrapped: &str) -> Option<FileKey> {
        std::iter::once(&self.current).chain(&self.others).find(|k| k.id() == key_id).and_then(|k| k.unwrap(wrapped))
    }
}

/// Where a rotation keeps the new key until every document is moved to it.
pub fn next_key_file(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    path.with_file_name(name)
}

/// Writes a new key file readable by its owner only; never replaces one.
pub fn write_key_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_key_opens_only_under_the_key_that_wrapped_it() {
        let (first, _) = MasterKey::generate().expect("key");
        let (second, _) = MasterKey::generate().expect("key");
        assert_ne!(first.id(), second.id());
        let ring = Keyring::new(first.clone(), None);
        let (key, wrapped) = ring.new_file_key().expect("file key");
        assert_eq!(ring.file_key(first.id(), &wrapped).as_deref(), Some(&*key));
        assert!(second.unwrap(&wrapped).is_none());
        assert!(ring.file_key(second.id(), &wrapped).is_none());
        // Moved to a new master key, the same file key opens through it.
        let rewrapped = second.wrap(&key).expect("rewrap");
        let rotated = Keyring::new(second.clone(), Some(first.clone()));
        assert_eq!(rotated.file_key(second.id(), &rewrapped).as_deref(), Some(&*key));
        assert_eq!(rotated.file_key(first.id(), &wrapped).as_deref(), Some(&*key));
        let mut altered = STANDARD.decode(&wrapped).expect("b64");
        altered[20] ^= 1;
        assert!(first.unwrap(&STANDARD.encode(altered)).is_none());
    }

    #[test]
    fn a_key_must_be_32_bytes_of_base64() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        let key = MasterKey::from_base64(&STANDARD.encode([7u8; 32])).expect("key");
        assert_eq!(key.id().len(), 12);
        assert_eq!(format!("{key:?}"), format!("MasterKey({})", key.id()));
    }
}

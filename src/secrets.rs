//! Secret material: random bytes from the operating system, one-way digests
//! of tokens and ids, and a wrapper that keeps secret settings out of logs.

use sha2::{Digest, Sha256};

use crate::error::AppError;

/// Hex SHA-256 of `text`: stored in place of tokens and session ids so a
/// copy of the database hands out nothing that works.
pub fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `buf` from the operating system's secure random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AppError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| AppError::Internal(format!("random source: {e}")))?;
    Ok(buf)
}

//! Secret material: random bytes from the operating system, one-way digests
//! of tokens and ids, and a wrapper that keeps secret settings out of logs.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// Hex SHA-256 of `text`: stored in place of tokens and session ids so a
/// copy of the database hands out nothing that works.
pub fn digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// `bytes` as lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `buf` from the operating system's secure random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AppError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| AppError::broken("random source", e))?;
    Ok(buf)
}

const LINK_TOKEN_BYTES: usize = 32;
/// Characters of a link token: base64 of [`LINK_TOKEN_BYTES`], without padding.
const LINK_TOKEN_LENGTH: usize = 43;

/// A fresh token for a link sent by email: 256 random bits, URL-safe.
pub fn link_token() -> Result<String, AppError> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<LINK_TOKEN_BYTES>()?))
}

/// Whether `token` could be one of [`link_token`]'s. Anything else —
/// typically a link a mail program cut short — names no link and is never
/// looked up.
pub fn is_link_token(token: &str) -> bool {
    token.len() == LINK_TOKEN_LENGTH && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A setting that must never reach a log or an error message — a database
/// URL with its password, the SMTP password. It prints as `Secret(…)`;
/// `expose` hands out the value where it is really used.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let url = Secret::new("postgres://app:hunter2@db/secondlook");
        assert_eq!(format!("{url:?}"), "Secret(…)");
        assert_eq!(format!("{:?}", Some(&url)), "Some(Secret(…))");
        assert_eq!(url.expose(), "postgres://app:hunter2@db/secondlook");
    }
}

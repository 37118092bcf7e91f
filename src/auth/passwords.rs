//! Password hashing with argon2id (the crate's defaults follow OWASP's
//! recommended parameters). Hashing is slow on purpose, so async callers run
//! it on the blocking pool.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    auth::random_bytes,
    error::{AppError, FieldErrors},
};

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 256;

pub fn check_strength(password: &str) -> Result<(), AppError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(FieldErrors::single("password", format!("must be at least {MIN_LENGTH} characters")));
    }
    if length > MAX_LENGTH {
        return Err(FieldErrors::single("password", format!("must be at most {MAX_LENGTH} characters")));
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, AppError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?).map_err(|e| AppError::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hash: {e}")))
}

pub async fn hash_blocking(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| AppError::broken("password hashing task", e))?
}

pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A random password for accounts created without one: 20 URL-safe characters.
pub fn generate() -> Result<String, AppError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<15>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password() {
        let stored = hash("correct horse battery staple").expect("hashes");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &stored));
        assert!(!verify("correct horse battery stapler", &stored));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate().expect("random");
        let b = generate().expect("random");
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(check_strength(&a).is_ok());
        assert!(check_strength("short").is_err());
    }
}

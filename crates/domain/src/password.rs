//! Password hashing with argon2id (the argon2 crate's defaults: OWASP's m=19 MiB, t=2, p=1).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be 8 to 1024 characters")]
    Policy,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes a new password (PHC string, argon2id v19, random salt).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(PasswordError::Policy);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Verifies a password against a stored PHC string. A malformed stored hash never verifies.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as verifying a real user's password, for an unknown user, so that login
/// timing does not reveal which usernames exist.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| {
        hash(&crate::secret::random_token(24)).unwrap_or_else(|_| String::from("$argon2id$v=19$m=19456,t=2,p=1$x$y"))
    });
    let _ = verify(password, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("anything", "not a phc string"));
        verify_dummy("whatever");
    }

    #[test]
    fn policy() {
        assert!(matches!(hash("short"), Err(PasswordError::Policy)));
        assert!(matches!(hash(&"x".repeat(1025)), Err(PasswordError::Policy)));
    }
}

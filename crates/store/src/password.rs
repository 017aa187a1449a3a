//! Password hashing with argon2id (the argon2 crate's defaults: OWASP's m=19 MiB, t=2, p=1).

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use protocol::secret::constant_time_eq;

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

/// Verifies a password against a stored PHC string (its own algorithm, version and parameters),
/// comparing in constant time. A malformed stored hash never verifies.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else { return false };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let mut out = vec![0u8; expected.len()];
    let computed = with_memory(blocks, |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), &mut out, memory).is_ok()
    });
    computed && constant_time_eq(&out, expected.as_bytes())
}

/// Argon2's working memory (19 MiB with the defaults), kept for the next verification. Allocated
/// afresh each time, it ends up in glibc's per-thread arenas: after the first free glibc raises its
/// mmap threshold to that size, so later buffers come from the heap of whichever blocking thread
/// ran them and stay resident (measured: 183 MiB after 32 concurrent sign-ins). Reused, the memory
/// is that of the most verifications ever in flight at once, which the authorize service bounds
/// to one per core.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let spare = MEMORY.lock().map(|mut pool| pool.pop()).unwrap_or_default();
    let mut memory = spare.unwrap_or_default();
    if memory.len() != blocks {
        memory.clear();
        memory.resize(blocks, Block::default());
    }
    let result = f(&mut memory);
    if let Ok(mut pool) = MEMORY.lock() {
        pool.push(memory);
    }
    result
}

/// Spends the same time as verifying a real user's password, for an unknown user, so that login
/// timing does not reveal which usernames exist.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| {
        hash(&protocol::secret::random_token(24)).unwrap_or_else(|_| String::from("$argon2id$v=19$m=19456,t=2,p=1$x$y"))
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
    fn verifies_hashes_with_other_parameters() {
        // argon2i, v=16 and other costs: each hash is checked with its own parameters
        let params = Params::new(8192, 1, 1, Some(24)).expect("params");
        for (alg, version) in [(Algorithm::Argon2i, Version::V0x10), (Algorithm::Argon2id, Version::V0x13)] {
            let h = Argon2::new(alg, version, params.clone())
                .hash_password(b"correct horse battery")
                .expect("hash")
                .to_string();
            assert!(verify("correct horse battery", &h), "{h}");
            assert!(!verify("correct horse batterx", &h), "{h}");
        }
        // RFC 9106 / the PHC reference string for "password" and salt "somesalt"
        let reference = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verify("password", reference));
        assert!(!verify("passwore", reference));
        for broken in [
            "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ",
            "$argon2id$v=7$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$scrypt$ln=15,r=8,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        ] {
            assert!(!verify("password", broken), "{broken}");
        }
    }

    #[test]
    fn policy() {
        assert!(matches!(hash("short"), Err(PasswordError::Policy)));
        assert!(matches!(hash(&"x".repeat(1025)), Err(PasswordError::Policy)));
    }
}

//! PKCE (RFC 7636) with S256 only: `plain` is refused everywhere (OAuth 2.1 §4.1.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::{constant_time_eq, sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    #[error("code_challenge is required (PKCE S256)")]
    MissingChallenge,
    #[error("code_challenge_method must be S256")]
    UnsupportedMethod,
    #[error("code_challenge must be the base64url SHA-256 of a verifier (43 characters)")]
    MalformedChallenge,
    #[error("code_verifier is required")]
    MissingVerifier,
    #[error("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")]
    MalformedVerifier,
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A token request's `code_verifier`, parsed (RFC 7636 §4.1: `43*128unreserved`); `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    pub fn parse(raw: &str) -> Result<Self, PkceError> {
        if raw.is_empty() {
            return Err(PkceError::MissingVerifier);
        }
        if !(43..=128).contains(&raw.len()) || !raw.bytes().all(is_unreserved) {
            return Err(PkceError::MalformedVerifier);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier(<redacted>)")
    }
}

/// Checks the authorization request's challenge: present, method S256 (defaulting to `plain` when
/// absent, RFC 7636 §4.3, which is then refused), and shaped like a base64url SHA-256.
pub fn validate_challenge(challenge: Option<&str>, method: Option<&str>) -> Result<String, PkceError> {
    let challenge = challenge.filter(|c| !c.is_empty()).ok_or(PkceError::MissingChallenge)?;
    match method {
        Some("S256") => {}
        _ => return Err(PkceError::UnsupportedMethod),
    }
    if challenge.len() != 43 || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(PkceError::MalformedChallenge);
    }
    Ok(challenge.to_owned())
}

/// The S256 transform of RFC 7636 §4.2.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

/// Verifies a token request's `code_verifier` against the stored S256 challenge, in constant time.
pub fn verify(verifier: Option<&str>, challenge: &str) -> Result<(), PkceError> {
    let verifier = CodeVerifier::parse(verifier.unwrap_or_default())?;
    if constant_time_eq(s256(verifier.as_str()).as_bytes(), challenge.as_bytes()) {
        Ok(())
    } else {
        Err(PkceError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn appendix_b_vector() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        assert_eq!(verify(Some(VERIFIER), CHALLENGE), Ok(()));
    }

    #[test]
    fn challenge_rules() {
        assert_eq!(validate_challenge(Some(CHALLENGE), Some("S256")).as_deref(), Ok(CHALLENGE));
        assert_eq!(validate_challenge(None, Some("S256")), Err(PkceError::MissingChallenge));
        assert_eq!(validate_challenge(Some(""), Some("S256")), Err(PkceError::MissingChallenge));
        assert_eq!(validate_challenge(Some(CHALLENGE), Some("plain")), Err(PkceError::UnsupportedMethod));
        // RFC 7636 §4.3: an absent method means plain, which we refuse
        assert_eq!(validate_challenge(Some(CHALLENGE), None), Err(PkceError::UnsupportedMethod));
        assert_eq!(validate_challenge(Some(CHALLENGE), Some("s256")), Err(PkceError::UnsupportedMethod));
        assert_eq!(validate_challenge(Some("short"), Some("S256")), Err(PkceError::MalformedChallenge));
        let padded = format!("{}=", &CHALLENGE[..42]);
        assert_eq!(validate_challenge(Some(&padded), Some("S256")), Err(PkceError::MalformedChallenge));
    }

    #[test]
    fn verifier_rules() {
        assert_eq!(verify(None, CHALLENGE), Err(PkceError::MissingVerifier));
        assert_eq!(verify(Some(""), CHALLENGE), Err(PkceError::MissingVerifier));
        assert_eq!(verify(Some(&VERIFIER[..42]), CHALLENGE), Err(PkceError::MalformedVerifier));
        assert_eq!(verify(Some(&"a".repeat(129)), CHALLENGE), Err(PkceError::MalformedVerifier));
        let bad_char = format!("{}+", &VERIFIER[..42]);
        assert_eq!(verify(Some(&bad_char), CHALLENGE), Err(PkceError::MalformedVerifier));
        assert_eq!(verify(Some(&"a".repeat(43)), CHALLENGE), Err(PkceError::Mismatch));
        assert_eq!(verify(Some(&"~".repeat(128)), &s256(&"~".repeat(128))), Ok(()));
        // the plain transform (verifier == challenge) never passes
        assert_eq!(verify(Some(CHALLENGE), CHALLENGE), Err(PkceError::Mismatch));
    }
}

//! Secrets: generated from the OS CSPRNG with a recognisable prefix, stored only as SHA-256.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a secret is for; each kind has its own prefix so that a leaked secret is recognisable
/// (by a person reading a log, or by a secret scanner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    ClientSecret,
    RegistrationAccessToken,
    InitialAccessToken,
    AuthorizationCode,
    RefreshToken,
    Session,
}

impl SecretKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::ClientSecret => "spcs_",
            Self::RegistrationAccessToken => "sprat_",
            Self::InitialAccessToken => "spiat_",
            Self::AuthorizationCode => "spac_",
            Self::RefreshToken => "sprt_",
            Self::Session => "spss_",
        }
    }
}

/// Random bytes in every secret: 256 bits.
pub const SECRET_BYTES: usize = 32;

/// A freshly generated secret in plain text. Shown once to its owner, never logged.
#[derive(Clone)]
pub struct PlainSecret(String);

impl PlainSecret {
    /// A new secret of `kind`: prefix + 256 random bits, base64url without padding.
    pub fn generate(kind: SecretKind) -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        fill_random(&mut bytes);
        let mut s = String::with_capacity(kind.prefix().len() + 43);
        s.push_str(kind.prefix());
        URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainSecret(<redacted>)")
    }
}

/// SHA-256 of a presented secret: what the database stores and indexes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_vec(self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// Constant-time comparison with a stored hash; a stored value of the wrong length never matches.
    pub fn matches(&self, stored: &[u8]) -> bool {
        constant_time_eq(&self.0, stored)
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// SHA-256 of arbitrary bytes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality of two byte strings (the length itself is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
/// When the OS has no entropy source at all; there is nothing safe to do then.
pub fn fill_random(buf: &mut [u8]) {
    #[expect(clippy::expect_used, reason = "without an OS CSPRNG no secret can be made safely")]
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A random base64url string of `bytes` random bytes (for CSRF tokens, nonces, key ids).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_long_and_distinct() {
        let a = PlainSecret::generate(SecretKind::RefreshToken);
        let b = PlainSecret::generate(SecretKind::RefreshToken);
        assert!(a.expose().starts_with("sprt_"));
        assert_eq!(a.expose().len(), "sprt_".len() + 43);
        assert_ne!(a.expose(), b.expose());
        let body = &a.expose()["sprt_".len()..];
        assert!(body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(body).expect("base64url").len(), SECRET_BYTES);
    }

    #[test]
    fn prefixes_are_distinct() {
        let kinds = [
            SecretKind::ClientSecret,
            SecretKind::RegistrationAccessToken,
            SecretKind::InitialAccessToken,
            SecretKind::AuthorizationCode,
            SecretKind::RefreshToken,
            SecretKind::Session,
        ];
        for (i, a) in kinds.iter().enumerate() {
            for b in &kinds[i + 1..] {
                assert!(!a.prefix().starts_with(b.prefix()) && !b.prefix().starts_with(a.prefix()));
            }
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = PlainSecret::generate(SecretKind::ClientSecret);
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
    }

    #[test]
    fn hash_is_sha256() {
        // FIPS 180-2 test vector
        assert_eq!(
            SecretHash::of("abc").0,
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0,
                0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
            ]
        );
    }

    #[test]
    fn comparison_handles_mismatch_and_length() {
        let h = SecretHash::of("x");
        assert!(h.matches(&h.to_vec()));
        assert!(!h.matches(&SecretHash::of("y").to_vec()));
        assert!(!h.matches(&h.0[..31]));
        assert!(!h.matches(&[]));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"ab"));
    }
}

//! Signing keys: generated with aws-lc-rs, sealed at rest with AES-256-GCM, published as JWKs.

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported signing algorithm {0:?}: ES256, EdDSA or RS256")]
    Unsupported(String),
    #[error("key generation failed")]
    Generate,
    #[error("cannot unseal signing key {0}: wrong key-encryption key or corrupted data")]
    Unseal(String),
    #[error("invalid key material: {0}")]
    Invalid(String),
}

/// A signing algorithm we issue tokens with; in configuration, its JWA name (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum SigningAlg {
    Es256,
    EdDsa,
    Rs256,
}

impl SigningAlg {
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        match s {
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            "RS256" => Ok(Self::Rs256),
            other => Err(KeyError::Unsupported(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Rs256 => Algorithm::RS256,
        }
    }

    fn encoding_key(self, pkcs8: &[u8]) -> Result<EncodingKey, KeyError> {
        match self {
            Self::Es256 => Ok(EncodingKey::from_ec_der(pkcs8)),
            Self::EdDsa => Ok(EncodingKey::from_ed_der(pkcs8)),
            // jsonwebtoken takes RSA DER as PKCS#1; its PEM reader unwraps PKCS#8 for us
            Self::Rs256 => {
                EncodingKey::from_rsa_pem(pkcs8_pem(pkcs8).as_bytes()).map_err(|e| KeyError::Invalid(e.to_string()))
            }
        }
    }
}

impl TryFrom<String> for SigningAlg {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SigningAlg> for &'static str {
    fn from(alg: SigningAlg) -> Self {
        alg.as_str()
    }
}

/// The algorithms a verifier accepts: asymmetric only, never `none` or HS*.
pub const ACCEPTED_ALGORITHMS: &[Algorithm] = &[Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256];

/// A private key ready to sign, with its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub encoding: EncodingKey,
    pub public_jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Builds a key from PKCS#8 DER; the kid is the RFC 7638 thumbprint of the public JWK.
    pub fn from_pkcs8(alg: SigningAlg, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let encoding = alg.encoding_key(pkcs8)?;
        let mut jwk = Jwk::from_encoding_key(&encoding, alg.jwt()).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| KeyError::Invalid(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match alg {
            SigningAlg::Es256 => KeyAlgorithm::ES256,
            SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
            SigningAlg::Rs256 => KeyAlgorithm::RS256,
        });
        Ok(Self { kid, alg, encoding, public_jwk: jwk })
    }

    /// A fresh key pair.
    pub fn generate(alg: SigningAlg) -> Result<(Self, Vec<u8>), KeyError> {
        let pkcs8 = generate_pkcs8(alg)?;
        Ok((Self::from_pkcs8(alg, &pkcs8)?, pkcs8))
    }
}

fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    match alg {
        SigningAlg::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate),
        // jsonwebtoken reads Ed25519 keys as PKCS#8 v1 (48 bytes)
        SigningAlg::EdDsa => {
            Ed25519KeyPair::generate_pkcs8v1(&rng).map(|d| d.as_ref().to_vec()).map_err(|_| KeyError::Generate)
        }
        SigningAlg::Rs256 => {
            let kp =
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = kp.as_der().map_err(|_| KeyError::Generate)?;
            Ok(der.as_ref().to_vec())
        }
    }
}

fn pkcs8_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

const NONCE_LEN: usize = 12;

/// Seals a private key under the key-encryption key; the kid is bound as associated data so a
/// sealed key cannot be swapped onto another row. Output: nonce || ciphertext || tag.
pub fn seal(kek: &[u8; 32], kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
    let key = RandomizedNonceKey::new(&AES_256_GCM, kek).map_err(|_| KeyError::Generate)?;
    let mut in_out = plaintext.to_vec();
    let nonce = key.seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut in_out).map_err(|_| KeyError::Generate)?;
    let mut out = nonce.as_ref().to_vec();
    out.extend_from_slice(&in_out);
    Ok(out)
}

pub fn unseal(kek: &[u8; 32], kid: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(KeyError::Unseal(kid.to_owned()));
    }
    let key = RandomizedNonceKey::new(&AES_256_GCM, kek).map_err(|_| KeyError::Unseal(kid.to_owned()))?;
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unseal(kid.to_owned()))?;
    let mut buf = ct.to_vec();
    let plain =
        key.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf).map_err(|_| KeyError::Unseal(kid.to_owned()))?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_each_algorithm() {
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
            let (key, pkcs8) = SigningKey::generate(alg).expect("generate");
            assert_eq!(key.public_jwk.common.key_id.as_deref(), Some(key.kid.as_str()));
            let again = SigningKey::from_pkcs8(alg, &pkcs8).expect("reload");
            assert_eq!(again.kid, key.kid, "kid is a stable thumbprint");
            let json = serde_json::to_value(&key.public_jwk).expect("jwk json");
            assert!(json.get("d").is_none(), "no private part in the public JWK");
        }
    }

    #[test]
    fn seal_round_trip_and_tamper() {
        let kek = [7u8; 32];
        let sealed = seal(&kek, "kid1", b"secret key").expect("seal");
        assert_eq!(unseal(&kek, "kid1", &sealed).expect("unseal"), b"secret key");
        assert!(unseal(&[8u8; 32], "kid1", &sealed).is_err(), "wrong key");
        assert!(unseal(&kek, "kid2", &sealed).is_err(), "bound to its kid");
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(unseal(&kek, "kid1", &bad).is_err(), "tampered");
        assert!(unseal(&kek, "kid1", &sealed[..10]).is_err(), "truncated");
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(SigningAlg::parse("ES256").expect("alg"), SigningAlg::Es256);
        assert!(SigningAlg::parse("HS256").is_err());
        assert!(SigningAlg::parse("none").is_err());
    }
}

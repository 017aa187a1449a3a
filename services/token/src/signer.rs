//! A JWS signer that parses its private key once. `jsonwebtoken::encode` builds the aws-lc key
//! pair from PKCS#8 on every call, and for ECDSA that parse (with its public-key check) costs as
//! much as the signature itself; on the token endpoint's hot path that doubled the CPU per token.
//! The output is an ordinary compact JWS (RFC 7515 §3.1), checked against jsonwebtoken below.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protocol::jwt::{ACCESS_TOKEN_TYP, AccessTokenClaims};
use protocol::keys::{KeyError, SigningAlg};
use serde::Serialize;

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

/// Signs access tokens with one key.
pub struct JwsSigner {
    /// base64url of `{"typ":"at+jwt","alg":…,"kid":…}`, the same for every token of this key.
    header_b64: String,
    pair: Pair,
}

#[derive(Serialize)]
struct Header<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

impl JwsSigner {
    pub fn new(alg: SigningAlg, kid: &str, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let bad = |e: &dyn std::fmt::Display| KeyError::Invalid(e.to_string());
        let pair = match alg {
            SigningAlg::Es256 => {
                Pair::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|e| bad(&e))?)
            }
            SigningAlg::EdDsa => Pair::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| bad(&e))?),
            SigningAlg::Rs256 => Pair::Rs256(RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| bad(&e))?),
        };
        let header =
            serde_json::to_vec(&Header { typ: ACCESS_TOKEN_TYP, alg: alg.as_str(), kid }).map_err(|e| bad(&e))?;
        Ok(Self { header_b64: URL_SAFE_NO_PAD.encode(header), pair })
    }

    /// `base64url(header) "." base64url(claims) "." base64url(signature)`.
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 2 + 512);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let failed = |_| KeyError::Invalid("signing failed".into());
        let signature = match &self.pair {
            Pair::Es256(p) => p.sign(&SystemRandom::new(), token.as_bytes()).map_err(failed)?.as_ref().to_vec(),
            Pair::EdDsa(p) => p.sign(token.as_bytes()).as_ref().to_vec(),
            Pair::Rs256(p) => {
                let mut sig = vec![0u8; p.public_modulus_len()];
                p.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), token.as_bytes(), &mut sig)
                    .map_err(failed)?;
                sig
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::JwkSet;
    use protocol::jwt::{Audience, Expectations};
    use protocol::keys::SigningKey;

    #[test]
    fn tokens_verify_with_jsonwebtoken_for_every_algorithm() {
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
            let (key, pkcs8) = SigningKey::generate(alg).expect("key");
            let signer = JwsSigner::new(alg, &key.kid, &pkcs8).expect("signer");
            let claims = AccessTokenClaims {
                iss: "https://as.example".into(),
                sub: "user".into(),
                aud: Audience::One("https://mcp.example/mcp".into()),
                client_id: "c".into(),
                scope: "mcp".into(),
                iat: 1_000_000,
                exp: 1_000_900,
                nbf: None,
                jti: uuid::Uuid::now_v7(),
                auth_time: None,
                gid: None,
            };
            let token = signer.sign(&claims).expect("sign");
            let set = JwkSet { keys: vec![key.public_jwk.clone()] };
            let expect = Expectations {
                issuer: "https://as.example",
                audience: Some("https://mcp.example/mcp"),
                now: 1_000_000,
                leeway: 0,
            };
            assert_eq!(protocol::jwt::verify(&token, &set, &expect), Ok(claims), "{alg:?}");
            let header = jsonwebtoken::decode_header(&token).expect("header");
            assert_eq!((header.typ.as_deref(), header.kid.as_deref()), (Some("at+jwt"), Some(key.kid.as_str())));
        }
    }
}

//! RFC 9068 JWT access tokens: the claims, signing, and the verification every resource server needs.

use std::collections::HashSet;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::{ACCEPTED_ALGORITHMS, SigningKey};

/// The JOSE `typ` of RFC 9068 §2.1.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `aud`: one resource as a string, several as an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_resources(resources: &[String]) -> Self {
        match resources {
            [one] => Self::One(one.clone()),
            many => Self::Many(many.to_vec()),
        }
    }

    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Self::One(a) => a == resource,
            Self::Many(v) => v.iter().any(|a| a == resource),
        }
    }

    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// RFC 9068 §2.2 claims, plus `gid`: the grant family the token belongs to, checked against
/// revoked grants so that revoking a family kills its access tokens without storing them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<Uuid>,
}

/// Signs claims as an RFC 9068 access token.
pub fn sign(claims: &AccessTokenClaims, key: &SigningKey) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(key.alg.jwt());
    header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's signing key is unknown")]
    UnknownKey(Option<String>),
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token was issued by another issuer")]
    Issuer,
    #[error("the token is not for this resource")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// What a verifier checks besides the signature.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// The resource the token must be for; `None` skips the audience check (introspection).
    pub audience: Option<&'a str>,
    pub now: i64,
    pub leeway: i64,
}

/// Reads the header without verifying: the kid to find a key by, after the type and algorithm checks.
pub fn peek_kid(token: &str) -> Result<Option<String>, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    check_header(&header)?;
    Ok(header.kid)
}

fn check_header(header: &Header) -> Result<(), VerifyError> {
    // RFC 9068 §4: reject tokens whose typ is not at+jwt (or application/at+jwt)
    match header.typ.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("at+jwt") | Some("application/at+jwt") => {}
        _ => return Err(VerifyError::WrongType),
    }
    if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
        return Err(VerifyError::Algorithm);
    }
    Ok(())
}

/// Verifies a token against a key set: header, signature, issuer, audience, expiry with leeway.
pub fn verify(token: &str, keys: &JwkSet, expect: &Expectations<'_>) -> Result<AccessTokenClaims, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    check_header(&header)?;
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None => None,
    }
    .ok_or_else(|| VerifyError::UnknownKey(header.kid.clone()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| VerifyError::UnknownKey(header.kid.clone()))?;
    verify_with_key(token, &header, &key, expect)
}

/// Verifies with a key already chosen (the gateway caches decoding keys by kid).
pub fn verify_with_key(
    token: &str,
    header: &Header,
    key: &DecodingKey,
    expect: &Expectations<'_>,
) -> Result<AccessTokenClaims, VerifyError> {
    check_header(header)?;
    let mut validation = Validation::new(header.alg);
    // time and audience are checked below against our clock and normalised resource
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Signature,
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => VerifyError::Algorithm,
        _ => VerifyError::Malformed,
    })?;
    let claims = data.claims;
    if claims.iss != expect.issuer {
        return Err(VerifyError::Issuer);
    }
    if let Some(aud) = expect.audience
        && !claims.aud.contains(aud)
    {
        return Err(VerifyError::Audience);
    }
    if claims.exp + expect.leeway <= expect.now {
        return Err(VerifyError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && nbf > expect.now + expect.leeway
    {
        return Err(VerifyError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningAlg;

    fn claims(now: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "user-1".into(),
            aud: Audience::One("https://mcp.example/mcp".into()),
            client_id: "c1".into(),
            scope: "mcp".into(),
            iat: now,
            exp: now + 900,
            nbf: None,
            jti: Uuid::now_v7(),
            auth_time: None,
            gid: Some(Uuid::now_v7()),
        }
    }

    fn expect(now: i64) -> Expectations<'static> {
        Expectations { issuer: "https://as.example", audience: Some("https://mcp.example/mcp"), now, leeway: 30 }
    }

    fn set(key: &SigningKey) -> JwkSet {
        JwkSet { keys: vec![key.public_jwk.clone()] }
    }

    #[test]
    fn round_trip_every_algorithm() {
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
            let (key, _) = SigningKey::generate(alg).expect("key");
            let c = claims(1_000_000);
            let token = sign(&c, &key).expect("sign");
            assert_eq!(verify(&token, &set(&key), &expect(1_000_000)), Ok(c));
            let header = jsonwebtoken::decode_header(&token).expect("header");
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        }
    }

    #[test]
    fn failures() {
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let (other, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let now = 1_000_000;
        let token = sign(&claims(now), &key).expect("sign");
        assert_eq!(verify(&token, &set(&key), &expect(now + 931)), Err(VerifyError::Expired));
        assert!(verify(&token, &set(&key), &expect(now + 929)).is_ok(), "leeway");
        assert!(matches!(verify(&token, &set(&other), &expect(now)), Err(VerifyError::UnknownKey(_))));
        let wrong_aud = Expectations { audience: Some("https://other.example/mcp"), ..expect(now) };
        assert_eq!(verify(&token, &set(&key), &wrong_aud), Err(VerifyError::Audience));
        let wrong_iss = Expectations { issuer: "https://as.example/", ..expect(now) };
        assert_eq!(verify(&token, &set(&key), &wrong_iss), Err(VerifyError::Issuer));
        assert_eq!(verify("a.b.c", &set(&key), &expect(now)), Err(VerifyError::Malformed));

        // a signature made by another key under our kid
        let mut forged_key = other.clone();
        forged_key.kid = key.kid.clone();
        let forged = sign(&claims(now), &forged_key).expect("sign");
        assert_eq!(verify(&forged, &set(&key), &expect(now)), Err(VerifyError::Signature));

        // a plain JWT (typ JWT) is not an access token
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        let plain = jsonwebtoken::encode(&header, &claims(now), &key.encoding).expect("sign");
        assert_eq!(verify(&plain, &set(&key), &expect(now)), Err(VerifyError::WrongType));

        // HS256 signed with the public key as secret: the classic confusion attack
        let mut hs = Header::new(jsonwebtoken::Algorithm::HS256);
        hs.typ = Some("at+jwt".into());
        hs.kid = Some(key.kid.clone());
        let confused =
            jsonwebtoken::encode(&hs, &claims(now), &jsonwebtoken::EncodingKey::from_secret(b"x")).expect("sign");
        assert_eq!(verify(&confused, &set(&key), &expect(now)), Err(VerifyError::Algorithm));

        // alg none
        let none = format!(
            "{}.{}.",
            base64_url(r#"{"alg":"none","typ":"at+jwt"}"#),
            base64_url(&serde_json::to_string(&claims(now)).expect("json"))
        );
        assert_eq!(verify(&none, &set(&key), &expect(now)), Err(VerifyError::Malformed));
    }

    #[test]
    fn not_before_and_many_audiences() {
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let now = 1_000_000;
        let mut c = claims(now);
        c.nbf = Some(now + 100);
        c.aud = Audience::from_resources(&["https://a.example".into(), "https://mcp.example/mcp".into()]);
        let token = sign(&c, &key).expect("sign");
        assert_eq!(verify(&token, &set(&key), &expect(now)), Err(VerifyError::NotYetValid));
        assert!(verify(&token, &set(&key), &expect(now + 80)).is_ok());
    }

    fn base64_url(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }
}

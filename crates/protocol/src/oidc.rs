//! Signing in with an OpenID provider (OpenID Connect Core 1.0): the rules on the provider's
//! discovery document and the complete validation of an ID token (§3.1.3.7), as plain functions over
//! a key set and a clock. Fetching, caching and the browser flow are the authorize service's.

use std::collections::HashSet;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::jwt::Audience;

/// The algorithms an ID token may be signed with: asymmetric only. `none` is never accepted, nor
/// HS*: an HMAC "signed" with a public key would verify for anyone who has the key.
pub const ID_TOKEN_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The parts of a provider's discovery document (OpenID Connect Discovery 1.0 §3) we use.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the provider names itself in the authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("the discovery document names another issuer ({0})")]
    IssuerMismatch(String),
    #[error("the discovery document's {0} is not an acceptable URL")]
    BadEndpoint(&'static str),
    #[error("the provider supports neither client_secret_basic nor client_secret_post")]
    NoClientAuth,
    #[error("the provider signs ID tokens with no algorithm we accept")]
    NoAlgorithm,
}

impl ProviderMetadata {
    /// Discovery §4.3: `issuer` must equal the configured issuer exactly; every endpoint must be
    /// an absolute URL of `https` (or `http` where `allow_http`).
    pub fn check(&self, expected_issuer: &str, allow_http: bool) -> Result<(), MetadataError> {
        if self.issuer != expected_issuer {
            return Err(MetadataError::IssuerMismatch(self.issuer.clone()));
        }
        let ok = |u: &str| {
            url::Url::parse(u)
                .is_ok_and(|u| (u.scheme() == "https" || (allow_http && u.scheme() == "http")) && u.host().is_some())
        };
        for (name, value) in [
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", Some(&self.token_endpoint)),
            ("jwks_uri", Some(&self.jwks_uri)),
            ("userinfo_endpoint", self.userinfo_endpoint.as_ref()),
        ] {
            if value.is_some_and(|v| !ok(v)) {
                return Err(MetadataError::BadEndpoint(name));
            }
        }
        self.client_auth()?;
        if self.algorithms().is_empty() {
            return Err(MetadataError::NoAlgorithm);
        }
        Ok(())
    }

    /// `client_secret_basic` when offered (the default when the member is absent, Discovery §3),
    /// else `client_secret_post`.
    pub fn client_auth(&self) -> Result<ClientAuth, MetadataError> {
        match &self.token_endpoint_auth_methods_supported {
            None => Ok(ClientAuth::Basic),
            Some(m) if m.iter().any(|m| m == "client_secret_basic") => Ok(ClientAuth::Basic),
            Some(m) if m.iter().any(|m| m == "client_secret_post") => Ok(ClientAuth::Post),
            Some(_) => Err(MetadataError::NoClientAuth),
        }
    }

    /// The ID token algorithms we accept from this provider: those it names that are in
    /// [`ID_TOKEN_ALGORITHMS`]; RS256 when it names none (Core §3.1.3.7, step 7).
    pub fn algorithms(&self) -> Vec<Algorithm> {
        match &self.id_token_signing_alg_values_supported {
            None => vec![Algorithm::RS256],
            Some(names) => names
                .iter()
                .filter_map(|n| n.parse::<Algorithm>().ok())
                .filter(|a| ID_TOKEN_ALGORITHMS.contains(a))
                .collect(),
        }
    }
}

/// An ID token's claims (Core §2): the ones we check, and the rest for the username and
/// admission rules.
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is malformed")]
    Malformed,
    #[error("the ID token is signed with an algorithm that is not accepted")]
    Algorithm,
    #[error("the ID token's signing key is not among the provider's keys")]
    UnknownKey(Option<String>),
    #[error("the ID token's signature is invalid")]
    Signature,
    #[error("the ID token was issued by another issuer")]
    Issuer,
    #[error("the ID token is meant for another client (aud)")]
    Audience,
    #[error("the ID token was issued to another party (azp)")]
    AuthorizedParty,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token was issued in the future: check the clocks")]
    IssuedInFuture,
    #[error("the ID token does not answer this sign-in (nonce)")]
    Nonce,
}

/// What an ID token must say besides carrying a valid signature.
#[derive(Debug, Clone)]
pub struct IdTokenExpectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// The provider's accepted algorithms ([`ProviderMetadata::algorithms`]).
    pub algorithms: &'a [Algorithm],
    pub now: i64,
    /// Clock skew tolerated on `exp` and `iat`.
    pub leeway: i64,
}

/// The `kid` of a token's header, to know whether the key set must be fetched again (a key the
/// provider rotated in) before [`verify_id_token`].
pub fn peek_kid(token: &str) -> Result<Option<String>, IdTokenError> {
    Ok(jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?.kid)
}

/// Validates an ID token completely (Core §3.1.3.7): the algorithm is one we accept and the
/// provider uses, the key is the provider's (by `kid`, or its only key of that kind), the signature
/// holds, `iss` is the provider, `aud` contains our client id, `azp` (required with several
/// audiences) is our client id, `exp` has not passed and `iat` is not in the future (both with
/// `leeway`), and `nonce` is the one this sign-in sent.
pub fn verify_id_token(
    token: &str,
    keys: &JwkSet,
    expect: &IdTokenExpectations<'_>,
) -> Result<IdTokenClaims, IdTokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    if !ID_TOKEN_ALGORITHMS.contains(&header.alg) || !expect.algorithms.contains(&header.alg) {
        return Err(IdTokenError::Algorithm);
    }
    let jwk = find_key(keys, header.kid.as_deref(), header.alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| IdTokenError::UnknownKey(header.kid.clone()))?;
    let mut validation = Validation::new(header.alg);
    // time, audience and issuer are checked below against our clock and the exact strings
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let claims = jsonwebtoken::decode::<IdTokenClaims>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => IdTokenError::Algorithm,
            _ => IdTokenError::Malformed,
        })?
        .claims;
    if claims.iss != expect.issuer {
        return Err(IdTokenError::Issuer);
    }
    if !claims.aud.contains(expect.client_id) {
        return Err(IdTokenError::Audience);
    }
    let several = matches!(&claims.aud, Audience::Many(v) if v.len() > 1);
    match claims.azp.as_deref() {
        Some(azp) if azp != expect.client_id => return Err(IdTokenError::AuthorizedParty),
        None if several => return Err(IdTokenError::AuthorizedParty),
        _ => {}
    }
    if claims.exp + expect.leeway <= expect.now {
        return Err(IdTokenError::Expired);
    }
    if claims.iat > expect.now + expect.leeway {
        return Err(IdTokenError::IssuedInFuture);
    }
    if claims.sub.is_empty() {
        return Err(IdTokenError::Malformed);
    }
    let nonce_ok =
        claims.nonce.as_deref().is_some_and(|n| crate::secret::constant_time_eq(n.as_bytes(), expect.nonce.as_bytes()));
    if !nonce_ok {
        return Err(IdTokenError::Nonce);
    }
    Ok(claims)
}

/// The key a token names: by `kid`; without one, the set's only key that fits the algorithm. A key
/// whose own `alg` or type contradicts the header's is not used (no algorithm confusion).
fn find_key<'a>(keys: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<&'a Jwk, IdTokenError> {
    let fits = |k: &&Jwk| {
        let alg_ok = k.common.key_algorithm.is_none_or(|ka| ka.to_string() == format!("{alg:?}"));
        let use_ok = k.common.public_key_use.as_ref().is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature);
        let kind_ok = match (&k.algorithm, alg) {
            (AlgorithmParameters::RSA(_), a) => {
                matches!(
                    a,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                )
            }
            (AlgorithmParameters::EllipticCurve(_), a) => matches!(a, Algorithm::ES256 | Algorithm::ES384),
            (AlgorithmParameters::OctetKeyPair(_), a) => a == Algorithm::EdDSA,
            // a symmetric key (`oct`) never verifies an ID token
            _ => false,
        };
        alg_ok && use_ok && kind_ok
    };
    let unknown = || IdTokenError::UnknownKey(kid.map(str::to_owned));
    match kid {
        Some(kid) => {
            keys.keys.iter().filter(|k| k.common.key_id.as_deref() == Some(kid)).find(fits).ok_or_else(unknown)
        }
        None => {
            let mut fitting = keys.keys.iter().filter(fits);
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Ok(only),
                _ => Err(unknown()),
            }
        }
    }
}

/// A claim as text: a string, or a number or boolean written out.
pub fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether `claim` equals `value` or, as an array, contains it (a `groups` entry).
pub fn claim_has(claims: &Map<String, Value>, claim: &str, value: &str) -> bool {
    match claims.get(claim) {
        Some(Value::String(s)) => s == value,
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(value)),
        Some(Value::Bool(b)) => b.to_string() == value,
        Some(Value::Number(n)) => n.to_string() == value,
        _ => false,
    }
}

/// `email_verified` as the provider sent it: a boolean, or (some providers) the string "true".
pub fn email_verified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// The domain of an email address, lowercased: what `allowed_email_domains` is compared with.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;

//! Identity Assertion JWT Authorization Grants (ID-JAG): what an enterprise IdP signs so that a
//! client can get an access token here without a browser trip (draft-ietf-oauth-identity-assertion-
//! authz-grant-03 §3 and §4.4, profiled by the MCP enterprise-managed authorization extension,
//! SEP-990). The client presents it as an RFC 7523 JWT bearer grant. The checks here are the
//! resource authorization server's, without I/O: the header (`typ`, algorithm), the signature
//! with a key the caller found, and the claims (RFC 7523 §3, RFC 7521 §5.2).

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scope::Scopes;

/// `grant_type` of RFC 7523 §2.1.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The JOSE `typ` an ID-JAG must carry (draft §3, RFC 8725 §3.11 explicit typing).
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";
/// `authorization_grant_profiles_supported` value (draft §6.2).
pub const GRANT_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
/// An assertion longer than this is refused before it is decoded.
pub const MAX_ASSERTION_LEN: usize = 16 * 1024;
/// `jti` and `sub` longer than this are refused: they become database keys.
const MAX_ID_LEN: usize = 512;

/// An asymmetric JWS algorithm (RFC 7518 §3.1, RFC 8037) an issuer may be trusted with. `none`
/// and the HMAC family are not representable: a shared secret would let every verifier forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum AssertionAlg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

const ALL_ALGS: [AssertionAlg; 9] = [
    AssertionAlg::Rs256,
    AssertionAlg::Rs384,
    AssertionAlg::Rs512,
    AssertionAlg::Ps256,
    AssertionAlg::Ps384,
    AssertionAlg::Ps512,
    AssertionAlg::Es256,
    AssertionAlg::Es384,
    AssertionAlg::EdDsa,
];

impl AssertionAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        ALL_ALGS.into_iter().find(|a| a.as_str() == s).ok_or_else(|| {
            format!(
                "unsupported algorithm {s:?}: one of {}",
                ALL_ALGS.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Rs384 => Algorithm::RS384,
            Self::Rs512 => Algorithm::RS512,
            Self::Ps256 => Algorithm::PS256,
            Self::Ps384 => Algorithm::PS384,
            Self::Ps512 => Algorithm::PS512,
            Self::Es256 => Algorithm::ES256,
            Self::Es384 => Algorithm::ES384,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl TryFrom<String> for AssertionAlg {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AssertionAlg> for &'static str {
    fn from(a: AssertionAlg) -> Self {
        a.as_str()
    }
}

/// Why an assertion was refused. Every one is `invalid_grant` (RFC 7523 §3.1); the message is
/// safe to send as `error_description` (it names the rule, never a key or a claim's value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdJagError {
    #[error("the assertion is not a well-formed JWT")]
    Malformed,
    #[error("the assertion is not an ID-JAG: its typ must be oauth-id-jag+jwt")]
    Type,
    #[error("the assertion's signing algorithm is not accepted for its issuer")]
    Algorithm,
    #[error("the assertion's issuer is not trusted")]
    UntrustedIssuer,
    #[error("the assertion's signing key is not published by its issuer")]
    UnknownKey,
    #[error("the assertion's signature is invalid")]
    Signature,
    #[error("the assertion has no valid {0} claim")]
    Missing(&'static str),
    #[error("the assertion is not for this authorization server (aud)")]
    Audience,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the assertion is not valid yet (nbf)")]
    NotYetValid,
    #[error("the assertion's lifetime is longer than this server accepts")]
    Lifetime,
    #[error("the assertion was issued to another client (client_id)")]
    Client,
    #[error("the assertion is bound to a key (cnf), and proof of possession is not supported here")]
    ProofOfPossession,
    #[error("the assertion was already used (jti)")]
    Replayed,
}

/// The claims as they arrive; each is checked by [`check`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawClaims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    client_id: Option<Value>,
    jti: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    nbf: Option<Value>,
    resource: Option<Value>,
    scope: Option<Value>,
    cnf: Option<Value>,
    auth_time: Option<Value>,
    email: Option<Value>,
    email_verified: Option<Value>,
    preferred_username: Option<Value>,
    name: Option<Value>,
}

/// A checked ID-JAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdJag {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub jti: String,
    pub exp: i64,
    /// At least one resource identifier (RFC 8707), as the IdP wrote them.
    pub resources: Vec<String>,
    /// What the IdP allows; `None` when the assertion says nothing about scope.
    pub scope: Option<Scopes>,
    pub auth_time: Option<i64>,
    /// Display claims, for the user the subject is linked to; never used to link.
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
}

/// What the assertion must match besides its signature.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// This authorization server's issuer identifier: the only acceptable `aud`.
    pub audience: &'a str,
    /// The authenticated client's id: `client_id` must equal it.
    pub client_id: &'a str,
    pub now: i64,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    pub skew: i64,
    /// The longest lifetime (`exp - iat`) accepted; bounds how long a `jti` must be remembered.
    pub max_lifetime: i64,
}

/// The header, after the `typ` check; the algorithm is checked against the issuer's in [`verify`].
pub fn header(assertion: &str) -> Result<Header, IdJagError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(IdJagError::Malformed);
    }
    // jsonwebtoken knows no `none`: such a header is malformed here
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| IdJagError::Malformed)?;
    // RFC 7515 §4.1.9: the `application/` prefix may be left out, and is compared case-insensitively
    let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
    match typ.as_deref() {
        Some(ID_JAG_TYP) | Some("application/oauth-id-jag+jwt") => Ok(header),
        _ => Err(IdJagError::Type),
    }
}

/// The `iss` claim read without verifying anything: only to choose whose keys verify the
/// signature (an untrusted issuer is refused before any key is fetched).
pub fn unverified_issuer(assertion: &str) -> Result<String, IdJagError> {
    use base64::Engine;
    let payload = assertion.split('.').nth(1).ok_or(IdJagError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|_| IdJagError::Malformed)?;
    let claims: RawClaims = serde_json::from_slice(&bytes).map_err(|_| IdJagError::Malformed)?;
    string(claims.iss).ok_or(IdJagError::Missing("iss"))
}

/// Verifies the signature with `key` (chosen by the header's `kid` among the issuer's keys) when
/// the header's algorithm is one the issuer is trusted with, and returns the claims unchecked.
pub fn verify(
    assertion: &str,
    header: &Header,
    key: &DecodingKey,
    allowed: &[AssertionAlg],
) -> Result<RawClaims, IdJagError> {
    if !allowed.iter().any(|a| a.jwt() == header.alg) {
        return Err(IdJagError::Algorithm);
    }
    let mut validation = Validation::new(header.alg);
    // every claim is checked by `check` against our clock and issuer
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<RawClaims>(assertion, key, &validation).map(|d| d.claims).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => IdJagError::Signature,
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
        | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName
        | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
        | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
        | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => IdJagError::Algorithm,
        _ => IdJagError::Malformed,
    })
}

/// The processing rules of RFC 7523 §3 and draft §4.4.1 on verified claims.
pub fn check(claims: RawClaims, expect: &Expect<'_>) -> Result<IdJag, IdJagError> {
    let iss = string(claims.iss).ok_or(IdJagError::Missing("iss"))?;
    let sub = identifier(claims.sub).ok_or(IdJagError::Missing("sub"))?;
    // draft §4.4.1: a string, or an array of exactly one element, equal to our issuer
    let aud_ok = match claims.aud.ok_or(IdJagError::Missing("aud"))? {
        Value::String(a) => a == expect.audience,
        Value::Array(a) => matches!(a.as_slice(), [Value::String(one)] if one == expect.audience),
        _ => false,
    };
    if !aud_ok {
        return Err(IdJagError::Audience);
    }
    let exp = numeric(claims.exp).ok_or(IdJagError::Missing("exp"))?;
    let iat = numeric(claims.iat).ok_or(IdJagError::Missing("iat"))?;
    if exp.saturating_add(expect.skew) <= expect.now {
        return Err(IdJagError::Expired);
    }
    if iat > expect.now.saturating_add(expect.skew) {
        return Err(IdJagError::IssuedInFuture);
    }
    if let Some(nbf) = claims.nbf {
        let nbf = numeric(Some(nbf)).ok_or(IdJagError::Missing("nbf"))?;
        if nbf > expect.now.saturating_add(expect.skew) {
            return Err(IdJagError::NotYetValid);
        }
    }
    // RFC 7523 §3 items 4 and 6: an exp unreasonably far ahead, or an iat unreasonably far back
    if exp.saturating_sub(iat) > expect.max_lifetime || exp < iat {
        return Err(IdJagError::Lifetime);
    }
    let jti = identifier(claims.jti).ok_or(IdJagError::Missing("jti"))?;
    let client_id = string(claims.client_id).ok_or(IdJagError::Missing("client_id"))?;
    if client_id != expect.client_id {
        return Err(IdJagError::Client);
    }
    if claims.cnf.is_some() {
        // draft §7.5.2: a key-bound ID-JAG presented without a DPoP proof is refused
        return Err(IdJagError::ProofOfPossession);
    }
    // the MCP profile makes `resource` required (ext-auth, enterprise-managed authorization §4.3)
    let resources = match claims.resource {
        Some(Value::String(r)) if !r.is_empty() => vec![r],
        Some(Value::Array(all)) if !all.is_empty() => all
            .into_iter()
            .map(|v| string(Some(v)))
            .collect::<Option<Vec<_>>>()
            .ok_or(IdJagError::Missing("resource"))?,
        _ => return Err(IdJagError::Missing("resource")),
    };
    let scope = match claims.scope {
        None => None,
        Some(Value::String(s)) => Some(Scopes::parse(&s).map_err(|_| IdJagError::Missing("scope"))?),
        Some(_) => return Err(IdJagError::Missing("scope")),
    };
    let email_verified = match claims.email_verified {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    Ok(IdJag {
        iss,
        sub,
        client_id,
        jti,
        exp,
        resources,
        scope,
        auth_time: numeric(claims.auth_time),
        email: string(claims.email),
        email_verified,
        preferred_username: string(claims.preferred_username),
        name: string(claims.name),
    })
}

/// A non-empty JSON string without NUL (which no database column can hold).
fn string(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && !s.contains('\0') => Some(s),
        _ => None,
    }
}

/// An identifier that becomes a key: bounded, no control characters.
fn identifier(v: Option<Value>) -> Option<String> {
    string(v).filter(|s| s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control))
}

/// A NumericDate (RFC 7519 §2): seconds, possibly with a fraction (dropped).
fn numeric(v: Option<Value>) -> Option<i64> {
    match v {
        // bounded well inside i64, so the cast only drops the fraction
        Some(Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.abs() < 1e15).map(|f| f.trunc() as i64))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{SigningAlg, SigningKey};
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    const AS: &str = "https://as.example";
    const NOW: i64 = 1_700_000_000;

    fn claims() -> Value {
        json!({
            "iss": "https://idp.example", "sub": "U1", "aud": AS, "client_id": "c1", "jti": "j1",
            "iat": NOW - 10, "exp": NOW + 290, "resource": "https://mcp.example/mcp", "scope": "mcp",
            "email": "u1@example.com", "email_verified": true,
        })
    }

    fn expect() -> Expect<'static> {
        Expect { audience: AS, client_id: "c1", now: NOW, skew: 60, max_lifetime: 3600 }
    }

    fn sign(key: &SigningKey, typ: Option<&str>, body: &Value) -> String {
        let mut header = Header::new(key.alg.jwt());
        header.typ = typ.map(str::to_owned);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, body, &key.encoding).expect("sign")
    }

    fn run(token: &str, key: &SigningKey, allowed: &[AssertionAlg]) -> Result<IdJag, IdJagError> {
        let h = header(token)?;
        let decoding = DecodingKey::from_jwk(&key.public_jwk).expect("key");
        check(verify(token, &h, &decoding, allowed)?, &expect())
    }

    fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut c = claims();
        change(c.as_object_mut().expect("object"));
        c
    }

    #[test]
    fn a_valid_assertion() {
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let token = sign(&key, Some(ID_JAG_TYP), &claims());
        assert_eq!(unverified_issuer(&token).expect("iss"), "https://idp.example");
        let jag = run(&token, &key, &[AssertionAlg::Es256]).expect("valid");
        assert_eq!((jag.sub.as_str(), jag.jti.as_str(), jag.client_id.as_str()), ("U1", "j1", "c1"));
        assert_eq!(jag.resources, ["https://mcp.example/mcp"]);
        assert_eq!(jag.scope, Some(Scopes::parse("mcp").expect("scope")));
        assert!(jag.email_verified);
        let upper = sign(&key, Some("Application/OAuth-ID-JAG+JWT"), &claims());
        assert!(run(&upper, &key, &[AssertionAlg::Es256]).is_ok(), "typ is case-insensitive, prefix allowed");
        let array = with(|c| {
            c.insert("aud".into(), json!([AS]));
            c.insert("resource".into(), json!(["https://a.example/x", "https://b.example/y"]));
            c.remove("scope");
        });
        let jag = run(&sign(&key, Some(ID_JAG_TYP), &array), &key, &[AssertionAlg::Es256]).expect("array aud");
        assert_eq!(jag.resources.len(), 2);
        assert_eq!(jag.scope, None);
    }

    #[test]
    fn header_rules() {
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        for typ in [None, Some("JWT"), Some("at+jwt")] {
            assert_eq!(
                run(&sign(&key, typ, &claims()), &key, &[AssertionAlg::Es256]),
                Err(IdJagError::Type),
                "{typ:?}"
            );
        }
        let token = sign(&key, Some(ID_JAG_TYP), &claims());
        assert_eq!(run(&token, &key, &[AssertionAlg::Rs256]), Err(IdJagError::Algorithm), "not allowed for the issuer");
        // HS256 with the public key's bytes as the secret: refused before any key is used
        let mut hs = Header::new(Algorithm::HS256);
        hs.typ = Some(ID_JAG_TYP.into());
        let forged = jsonwebtoken::encode(&hs, &claims(), &EncodingKey::from_secret(b"public")).expect("hs");
        assert_eq!(run(&forged, &key, &ALL_ALGS), Err(IdJagError::Algorithm));
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": ID_JAG_TYP})), b64(&claims()));
        assert_eq!(header(&none).expect_err("none"), IdJagError::Malformed);
        let (other, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let mut impostor = other.clone();
        impostor.kid = key.kid.clone();
        assert_eq!(run(&sign(&impostor, Some(ID_JAG_TYP), &claims()), &key, &ALL_ALGS), Err(IdJagError::Signature));
        assert_eq!(header(&"a".repeat(MAX_ASSERTION_LEN + 1)), Err(IdJagError::Malformed));
    }

    #[test]
    fn claim_rules() {
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let cases: Vec<(Value, IdJagError)> = vec![
            (with(|c| drop(c.insert("aud".into(), json!("https://other.example")))), IdJagError::Audience),
            (with(|c| drop(c.insert("aud".into(), json!([AS, "https://other.example"])))), IdJagError::Audience),
            (with(|c| drop(c.insert("aud".into(), json!(format!("{AS}/"))))), IdJagError::Audience),
            (with(|c| drop(c.remove("aud"))), IdJagError::Missing("aud")),
            (with(|c| drop(c.insert("exp".into(), json!(NOW - 61)))), IdJagError::Expired),
            (with(|c| drop(c.remove("exp"))), IdJagError::Missing("exp")),
            (with(|c| drop(c.insert("iat".into(), json!(NOW + 61)))), IdJagError::IssuedInFuture),
            (with(|c| drop(c.remove("iat"))), IdJagError::Missing("iat")),
            (with(|c| drop(c.insert("nbf".into(), json!(NOW + 100)))), IdJagError::NotYetValid),
            (with(|c| drop(c.insert("exp".into(), json!(NOW + 4000)))), IdJagError::Lifetime),
            (with(|c| drop(c.remove("jti"))), IdJagError::Missing("jti")),
            (with(|c| drop(c.insert("jti".into(), json!("")))), IdJagError::Missing("jti")),
            (with(|c| drop(c.remove("sub"))), IdJagError::Missing("sub")),
            (with(|c| drop(c.insert("sub".into(), json!("a\u{0}b")))), IdJagError::Missing("sub")),
            (with(|c| drop(c.insert("jti".into(), json!("x".repeat(600))))), IdJagError::Missing("jti")),
            (with(|c| drop(c.insert("client_id".into(), json!("c2")))), IdJagError::Client),
            (with(|c| drop(c.remove("client_id"))), IdJagError::Missing("client_id")),
            (with(|c| drop(c.remove("resource"))), IdJagError::Missing("resource")),
            (with(|c| drop(c.insert("resource".into(), json!([])))), IdJagError::Missing("resource")),
            (with(|c| drop(c.insert("scope".into(), json!(["mcp"])))), IdJagError::Missing("scope")),
            (with(|c| drop(c.insert("cnf".into(), json!({"jkt": "abc"})))), IdJagError::ProofOfPossession),
        ];
        for (body, want) in cases {
            let got = run(&sign(&key, Some(ID_JAG_TYP), &body), &key, &[AssertionAlg::Es256]);
            assert_eq!(got, Err(want.clone()), "{body}");
        }
        // within the skew: fine
        let late = with(|c| {
            c.insert("iat".into(), json!(NOW - 300));
            c.insert("exp".into(), json!(NOW - 30));
        });
        assert!(run(&sign(&key, Some(ID_JAG_TYP), &late), &key, &[AssertionAlg::Es256]).is_ok());
    }

    #[test]
    fn algorithm_names() {
        for a in ALL_ALGS {
            assert_eq!(AssertionAlg::parse(a.as_str()), Ok(a));
        }
        for bad in ["HS256", "none", "es256", ""] {
            assert!(AssertionAlg::parse(bad).is_err(), "{bad}");
        }
    }
}

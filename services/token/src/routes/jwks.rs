//! `GET /oauth2/jwks`: the published public keys (RFC 7517 §5), pending and retired ones included.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use server::OAuthError;

use crate::State;

/// How long verifiers may cache the set. A rotated key is published well before this elapses
/// (`sallyport keys rotate` activates it after 10 minutes by default), so no verifier with a
/// cached set meets a token signed by a key it has not seen.
pub const MAX_AGE_SECS: u64 = 300;

/// An RFC 7517 §5 JWK Set, as the keyring publishes it (jsonwebtoken's `JwkSet`).
#[derive(utoipa::ToSchema)]
#[schema(as = JwkSet)]
#[expect(dead_code, reason = "the schema of jsonwebtoken's JwkSet, which the handler serialises")]
pub struct JwkSetSchema {
    keys: Vec<JwkSchema>,
}

/// A public signing key (RFC 7517 §4): EC P-256 (`ES256`), OKP Ed25519 (`EdDSA`) or RSA (`RS256`).
#[derive(utoipa::ToSchema)]
#[schema(as = Jwk)]
#[expect(dead_code, reason = "the schema of jsonwebtoken's Jwk, which the handler serialises")]
pub struct JwkSchema {
    /// `EC`, `OKP` or `RSA`.
    kty: String,
    /// The key's RFC 7638 SHA-256 thumbprint; tokens name it in their `kid` header.
    kid: String,
    /// Always `sig`.
    #[schema(rename = "use")]
    use_: String,
    /// `ES256`, `EdDSA` or `RS256`.
    alg: String,
    /// EC and OKP: `P-256` or `Ed25519`.
    #[schema(required = false)]
    crv: String,
    /// EC and OKP: the public point's x coordinate (base64url).
    #[schema(required = false)]
    x: String,
    /// EC: the public point's y coordinate (base64url).
    #[schema(required = false)]
    y: String,
    /// RSA: the modulus (base64url).
    #[schema(required = false)]
    n: String,
    /// RSA: the exponent (base64url).
    #[schema(required = false)]
    e: String,
}

/// The published public keys: the current one, a scheduled one and recently retired ones.
#[utoipa::path(get, path = "/oauth2/jwks", operation_id = "jwks", tag = "token", responses(
    (status = 200, description = "The JWK Set; cacheable for five minutes.", body = JwkSetSchema,
        headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
))]
pub async fn jwks(state: web::Data<State>) -> Result<HttpResponse, OAuthError> {
    let set = state.keys.jwks(state.clock.now());
    let body = serde_json::to_vec(&set).map_err(OAuthError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={MAX_AGE_SECS}")))
        .body(body))
}

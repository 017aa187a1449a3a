//! `GET /oauth2/jwks`: the published public keys (RFC 7517 §5), pending and retired ones included.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use server::OAuthError;

use crate::State;

/// How long verifiers may cache the set. A rotated key is published well before this elapses
/// (`sallyport keys rotate` activates it after 10 minutes by default), so no verifier with a
/// cached set meets a token signed by a key it has not seen.
pub const MAX_AGE_SECS: u64 = 300;

pub async fn jwks(state: web::Data<State>) -> Result<HttpResponse, OAuthError> {
    let set = state.keys.jwks(state.clock.now());
    let body = serde_json::to_vec(&set).map_err(OAuthError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={MAX_AGE_SECS}")))
        .body(body))
}

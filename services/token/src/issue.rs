//! Minting RFC 9068 access tokens and the RFC 6749 §5.1 token response.
//!
//! Issuing an access token writes nothing: the JWT carries its grant id (`gid`), checked against
//! `revoked_grants`, and a `jti` that is recorded only if the token is revoked on its own.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use chrono::{DateTime, Utc};
use protocol::jwt::{AccessTokenClaims, Audience};
use serde::Serialize;
use server::OAuthError;
use uuid::Uuid;

use crate::State;

/// Who and what an access token is for.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    /// The user id, or the client id for client_credentials.
    pub sub: String,
    pub client_id: String,
    /// Normalised resource identifiers; at least one.
    pub audience: Vec<String>,
    pub scope: String,
    pub auth_time: Option<DateTime<Utc>>,
    /// The grant family; `None` for client_credentials.
    pub grant_id: Option<Uuid>,
}

/// RFC 6749 §5.1; absent members are omitted, never `null`. `Debug` shows no token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// An RFC 9068 JWT (`typ` `at+jwt`), its audience the granted resources.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// A new refresh token (rotated on every use): code and refresh grants with `offline_access`
    /// or the `refresh_token` grant registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refresh_token: Option<String>,
    /// The granted scope, space-separated; absent when none.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(required = false)]
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use protocol::redact::REDACTED;
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| REDACTED))
            .field("scope", &self.scope)
            .finish()
    }
}

/// Signs an access token for `grant` with the current key. CPU only: call it outside any
/// database transaction.
pub fn access_token(state: &State, grant: AccessGrant, now: DateTime<Utc>) -> Result<TokenResponse, OAuthError> {
    let key = state.keys.signer(now).ok_or_else(|| OAuthError::unavailable("no signing key is active"))?;
    let signer = key.signer.as_ref().ok_or_else(|| OAuthError::unavailable("no signing key is active"))?;
    let ttl = state.config.tokens.access_token_ttl_secs.as_secs();
    let iat = now.timestamp();
    let claims = AccessTokenClaims {
        iss: state.config.issuer.to_string(),
        sub: grant.sub,
        aud: Audience::from_resources(&grant.audience),
        client_id: grant.client_id,
        scope: grant.scope,
        iat,
        exp: iat.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        nbf: None,
        jti: Uuid::now_v7(),
        auth_time: grant.auth_time.map(|t| t.timestamp()),
        gid: grant.grant_id,
    };
    let access_token = signer.sign(&claims).map_err(OAuthError::internal)?;
    Ok(TokenResponse { access_token, token_type: "Bearer", expires_in: ttl, refresh_token: None, scope: claims.scope })
}

/// 200 with the JSON body; `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn json_no_store(body: &impl Serialize) -> Result<HttpResponse, OAuthError> {
    let bytes = serde_json::to_vec(body).map_err(OAuthError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use super::TokenResponse;

    #[test]
    fn debug_prints_no_token() {
        let response = TokenResponse {
            access_token: "eyJ.access-1".into(),
            token_type: "Bearer",
            expires_in: 900,
            refresh_token: Some("sprt_refresh-2".into()),
            scope: "mcp".into(),
        };
        let shown = format!("{response:?}");
        assert!(!shown.contains("access-1") && !shown.contains("refresh-2"), "{shown}");
        assert!(shown.contains("Bearer") && shown.contains("mcp"), "{shown}");
    }
}

//! `POST /oauth2/introspect` (RFC 7662): for resource servers, i.e. authenticated clients marked
//! `may_introspect`. Anything revoked, expired, unknown, or whose client is gone is
//! `{"active": false}`; nothing about a token is said to any other caller.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::ident::{self, PresentedSecret};
use protocol::jwt::Audience;
use serde::Serialize;
use server::OAuthError;
use store::{revocations, users};

use crate::State;
use crate::client_auth::authenticate;
use crate::form::Form;
use crate::inspect::{self, Found};
use crate::issue::json_no_store;

/// RFC 7662 §2.2; members of an inactive token are all absent.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    jti: Option<String>,
    /// The access token type (`Bearer`); absent for a refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    token_type: Option<&'static str>,
}

/// The introspection request (RFC 7662 §2.1), form-encoded.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "a schema: the handler reads these parameters from crate::form::Form")]
pub struct IntrospectionRequest {
    /// An access token (JWT) or a refresh token.
    token: String,
    /// `access_token` or `refresh_token`: where to look first.
    #[schema(required = false)]
    token_type_hint: String,
    /// With `client_secret_post`.
    #[schema(required = false)]
    client_id: String,
    /// With `client_secret_post`.
    #[schema(required = false)]
    client_secret: String,
}

/// RFC 7662 introspection, for resource servers: an authenticated client allowed to introspect.
#[utoipa::path(post, path = "/oauth2/introspect", operation_id = "introspect", tag = "token",
    request_body(content = IntrospectionRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token's state: `{\"active\": false}` for anything revoked, expired, unknown or not a token.", body = Introspection),
        (status = 400, description = "Malformed request (`invalid_request`).", body = ErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`).", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"sallyport\"`"))),
        (status = 403, description = "This client may not introspect (`unauthorized_client`).", body = ErrorBody),
        (status = 413, description = "The body exceeds 64 KiB (`invalid_request`).", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("client_secret_basic" = []), ()),
)]
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::read(&req, payload).await?;
    let client = authenticate(&state, req.headers(), &form).await?;
    if client.is_public() || !client.may_introspect {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "this client may not introspect tokens")
            .with_status(StatusCode::FORBIDDEN));
    }
    let token = form.require_parsed("token", PresentedSecret::parse)?;
    let hint = form.parsed("token_type_hint", |v| ident::vschar(v, ident::MAX_NAME_LEN))?;
    let now = state.clock.now();
    let inactive = Introspection::default();
    let answer = match inspect::find(&state, &token, hint, now).await? {
        Found::Nothing => inactive,
        Found::Access(claims) => {
            let mut conn = state.pool.get().await?;
            // RFC 9068 §2.2: `sub` is the user's id, or the client's for a token without a user
            let user_id = (claims.sub != claims.client_id).then(|| uuid::Uuid::parse_str(&claims.sub).ok()).flatten();
            let live =
                revocations::access_token_state(&mut conn, &claims.client_id, claims.gid, claims.jti, user_id).await?;
            if !live.is_live() {
                inactive
            } else {
                Introspection {
                    active: true,
                    scope: Some(claims.scope).filter(|s| !s.is_empty()),
                    client_id: Some(claims.client_id),
                    sub: Some(claims.sub),
                    aud: Some(claims.aud),
                    iss: Some(claims.iss),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    jti: Some(claims.jti.to_string()),
                    token_type: Some("Bearer"),
                }
            }
        }
        Found::Refresh(row) => {
            let mut live = row.used_at.is_none()
                && row.revoked_at.is_none()
                && row.expires_at > now
                && row.family_expires_at > now;
            if live {
                let mut conn = state.pool.get().await?;
                live = revocations::find_grant(&mut conn, row.grant_id).await?.is_none();
                if live && let Some(user_id) = row.user_id {
                    live = users::find(&mut conn, user_id).await?.is_some_and(|u| !u.disabled);
                }
            }
            if !live {
                inactive
            } else {
                let resources: Vec<String> = row.resources.iter().map(|r| r.as_str().to_owned()).collect();
                Introspection {
                    active: true,
                    scope: Some(row.scope.clone()).filter(|s| !s.is_empty()),
                    sub: Some(row.user_id.map_or_else(|| row.client_id.clone(), |u| u.to_string())),
                    client_id: Some(row.client_id.clone()),
                    aud: Some(Audience::from_resources(&resources)),
                    iss: Some(state.config.issuer.to_string()),
                    exp: Some(row.expires_at.timestamp()),
                    iat: Some(row.created_at.timestamp()),
                    jti: Some(row.id.to_string()),
                    // RFC 7662 §2.2: token_type is an access token type (RFC 6749 §7.1); a refresh token has none
                    token_type: None,
                }
            }
        }
    };
    json_no_store(&answer)
}

//! `POST /oauth2/revoke` (RFC 7009): a client revokes one of its tokens. A refresh token revokes
//! its whole grant family; an access token is recorded by `jti` until it expires. Unknown,
//! invalid and expired tokens get 200 as well (§2.2): the client's goal is reached either way.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::DateTime;
use protocol::error::{ErrorBody, ErrorCode};
use protocol::ident::{self, PresentedSecret};
use server::OAuthError;
use store::revocations::{self, GrantRevocation, RevokedAccessTokenRow};

use crate::State;
use crate::client_auth::authenticate;
use crate::form::Form;
use crate::grants::{Caller, keep_revoked_until, revoke_family};
use crate::inspect::{self, Found};

/// The revocation request (RFC 7009 §2.1), form-encoded.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "a schema: the handler reads these parameters from crate::form::Form")]
pub struct RevocationRequest {
    /// An access token (JWT) or a refresh token of this client.
    token: String,
    /// `access_token` or `refresh_token`: where to look first.
    #[schema(required = false)]
    token_type_hint: String,
    /// Public clients (`none`) and `client_secret_post`.
    #[schema(required = false)]
    client_id: String,
    /// `client_secret_post`.
    #[schema(required = false)]
    client_secret: String,
}

/// RFC 7009 revocation: a refresh token revokes its grant family, an access token its `jti`.
#[utoipa::path(post, path = "/oauth2/revoke", operation_id = "revoke", tag = "token",
    request_body(content = RevocationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or unknown, invalid or expired (RFC 7009 §2.2): an empty body."),
        (status = 400, description = "Malformed request, or the token was issued to another client \
            (`invalid_request`, `unauthorized_client`).", body = ErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`).", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"sallyport\"`"))),
        (status = 413, description = "The body exceeds 64 KiB (`invalid_request`).", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security((), ("client_secret_basic" = [])),
)]
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::read(&req, payload).await?;
    let client = authenticate(&state, req.headers(), &form).await?;
    let token = form.require_parsed("token", PresentedSecret::parse)?;
    let hint = form.parsed("token_type_hint", |v| ident::vschar(v, ident::MAX_NAME_LEN))?;
    let now = state.clock.now();
    // RFC 7009 §2.1: the token must have been issued to the client asking
    let not_yours = || OAuthError::new(ErrorCode::UnauthorizedClient, "the token was not issued to this client");
    match inspect::find(&state, &token, hint, now).await? {
        Found::Nothing => {}
        Found::Refresh(row) => {
            if row.client_id != client.client_id {
                return Err(not_yours());
            }
            if row.revoked_at.is_none() {
                let caller = Caller { ip: server::http::client_ip(&req, state.config.trust_forwarded_for).to_string() };
                let keep_until = keep_revoked_until(&state, row.family_expires_at);
                let mut conn = state.pool.get().await?;
                revoke_family(
                    &state,
                    &mut conn,
                    row.grant_id,
                    GrantRevocation::Revoked,
                    keep_until,
                    &row.client_id,
                    row.user_id,
                    &caller,
                )
                .await?;
            }
        }
        Found::Access(claims) => {
            if claims.client_id != client.client_id {
                return Err(not_yours());
            }
            let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
            let row =
                RevokedAccessTokenRow { jti: claims.jti, client_id: claims.client_id, revoked_at: now, expires_at };
            let mut conn = state.pool.get().await?;
            revocations::revoke_access_token(&mut conn, &row).await?;
        }
    }
    Ok(HttpResponse::Ok().finish())
}

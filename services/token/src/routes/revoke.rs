//! `POST /oauth2/revoke` (RFC 7009): a client revokes one of its tokens. A refresh token revokes
//! its whole grant family; an access token is recorded by `jti` until it expires. Unknown,
//! invalid and expired tokens get 200 as well (§2.2): the client's goal is reached either way.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::DateTime;
use protocol::error::ErrorCode;
use protocol::ident::{self, PresentedSecret};
use server::OAuthError;
use store::revocations::{self, GrantRevocation, RevokedAccessTokenRow};

use crate::State;
use crate::client_auth::authenticate;
use crate::form::Form;
use crate::grants::{Caller, keep_revoked_until, revoke_family};
use crate::inspect::{self, Found};

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

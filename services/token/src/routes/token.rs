//! `POST /oauth2/token` (RFC 6749 §3.2): parse, authenticate the client, run the grant.

use actix_web::{HttpRequest, HttpResponse, web};
use protocol::client::GrantType;
use protocol::error::ErrorCode;
use server::OAuthError;

use crate::State;
use crate::client_auth::authenticate;
use crate::form::Form;
use crate::grants::{self, Caller};
use crate::issue::json_no_store;

pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::read(&req, payload).await?;
    let grant_type = form.require("grant_type")?;
    let grant = GrantType::parse(grant_type).ok_or_else(|| {
        OAuthError::new(ErrorCode::UnsupportedGrantType, format!("grant_type {grant_type} is not supported"))
    })?;
    let client = authenticate(&state, req.headers(), &form).await?;
    let caller = Caller { ip: server::http::client_ip(&req, state.config.trust_forwarded_for).to_string() };
    let response = match grant {
        GrantType::AuthorizationCode => grants::code::exchange(&state, &client, &form, &caller).await?,
        GrantType::RefreshToken => grants::refresh::exchange(&state, &client, &form, &caller).await?,
        GrantType::ClientCredentials => grants::client_credentials::exchange(&state, &client, &form).await?,
    };
    json_no_store(&response)
}

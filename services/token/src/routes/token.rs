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
    let grant = form.require("grant_type").map(|g| (g, GrantType::parse(g)));
    let label = match grant {
        Ok((_, Some(g))) => g.as_str(),
        Ok((_, None)) => "unsupported",
        Err(_) => "none",
    };
    let result = grant_response(&req, &state, &form, grant).await;
    state.metrics.token_grant(label, result.as_ref().map_or_else(|e| e.code.as_str(), |_| "issued"));
    result
}

async fn grant_response(
    req: &HttpRequest,
    state: &State,
    form: &Form,
    grant: Result<(&str, Option<GrantType>), OAuthError>,
) -> Result<HttpResponse, OAuthError> {
    let (grant_type, grant) = grant?;
    // the JWT bearer grant exists only where an identity provider is trusted (`[identity]`)
    let grant = grant.filter(|g| *g != GrantType::JwtBearer || !state.issuers.is_empty()).ok_or_else(|| {
        OAuthError::new(ErrorCode::UnsupportedGrantType, format!("grant_type {grant_type} is not supported"))
    })?;
    let client = authenticate(state, req.headers(), form).await?;
    let caller = Caller { ip: server::http::client_ip(req, state.config.trust_forwarded_for).to_string() };
    let response = match grant {
        GrantType::AuthorizationCode => grants::code::exchange(state, &client, form, &caller).await?,
        GrantType::RefreshToken => grants::refresh::exchange(state, &client, form, &caller).await?,
        GrantType::ClientCredentials => grants::client_credentials::exchange(state, &client, form).await?,
        GrantType::JwtBearer => grants::jwt_bearer::exchange(state, &client, form).await?,
    };
    json_no_store(&response)
}

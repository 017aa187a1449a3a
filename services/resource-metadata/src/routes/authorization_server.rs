//! `GET /.well-known/oauth-authorization-server{issuer path}` (RFC 8414 §3, path insertion §3.1).

use actix_web::{HttpRequest, HttpResponse, web};
use server::OAuthError;

use crate::State;
use crate::http_cache::respond;

pub async fn get(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, OAuthError> {
    let docs = state.documents().await?;
    Ok(respond(&req, &docs.authorization_server))
}

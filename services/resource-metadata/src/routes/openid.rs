//! `/.well-known/openid-configuration`: Sallyport issues no ID tokens. Clients probe this URL after
//! RFC 8414's; a 404 (JSON, never HTML, never 200) tells them to move on.

use server::OAuthError;

pub async fn not_found() -> Result<actix_web::HttpResponse, OAuthError> {
    Err(OAuthError::not_found("this server is not an OpenID provider; see /.well-known/oauth-authorization-server"))
}

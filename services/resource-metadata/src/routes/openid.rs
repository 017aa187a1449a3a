//! `/.well-known/openid-configuration`: Sallyport issues no ID tokens. Clients probe this URL after
//! RFC 8414's; a 404 (JSON, never HTML, never 200) tells them to move on.

use protocol::ErrorBody;
use server::OAuthError;

#[utoipa::path(get, path = "/.well-known/openid-configuration", operation_id = "openid_configuration", tag = "metadata", responses(
    (status = 404, description = "Sallyport is not an OpenID provider (`not_found`): clients move on to RFC 8414.",
        body = ErrorBody),
))]
pub async fn not_found() -> Result<actix_web::HttpResponse, OAuthError> {
    Err(OAuthError::not_found("this server is not an OpenID provider; see /.well-known/oauth-authorization-server"))
}

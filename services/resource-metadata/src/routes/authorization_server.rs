//! `GET /.well-known/oauth-authorization-server{issuer path}` (RFC 8414 §3, path insertion §3.1).

use actix_web::{HttpRequest, HttpResponse, web};
use protocol::ErrorBody;
use server::OAuthError;

use crate::documents::AuthorizationServerMetadata;

use crate::State;
use crate::http_cache::respond;

/// RFC 8414 authorization-server metadata; with an issuer path, that path follows the well-known
/// segment (§3.1).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", operation_id = "authorization_server_metadata", tag = "metadata", responses(
    (status = 200, description = "The metadata; `ETag` and `Cache-Control: public, max-age=300`.",
        body = AuthorizationServerMetadata, headers(("ETag" = String, description = "A strong validator"))),
    (status = 304, description = "Not modified since the `If-None-Match` tag."),
    (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = ErrorBody,
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
))]
pub async fn get(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, OAuthError> {
    let docs = state.documents().await?;
    Ok(respond(&req, &docs.authorization_server))
}

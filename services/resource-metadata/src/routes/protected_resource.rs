//! `GET /.well-known/oauth-protected-resource[/{resource path}]` (RFC 9728 §3, path insertion §3.1).

use actix_web::{HttpRequest, HttpResponse, web};
use protocol::ErrorBody;
use server::OAuthError;

use crate::documents::ProtectedResourceMetadata;

use crate::State;
use crate::http_cache::respond;

/// The host the client asked for: the gateway's `X-Forwarded-Host` when trusted.
fn request_host(req: &HttpRequest, state: &State) -> Option<String> {
    let forwarded = state
        .config
        .trust_forwarded_for
        .then(|| req.headers().get("x-forwarded-host").and_then(|v| v.to_str().ok()))
        .flatten();
    forwarded.or_else(|| req.headers().get("host").and_then(|v| v.to_str().ok())).map(str::to_ascii_lowercase)
}

fn unknown() -> OAuthError {
    OAuthError::not_found("no protected resource is registered at this path")
}

/// RFC 9728 metadata of the resource at an origin's root, else of the only resource.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", operation_id = "protected_resource_metadata_root", tag = "metadata", responses(
    (status = 200, description = "The resource's metadata; `ETag` and `Cache-Control: public, max-age=300`.",
        body = ProtectedResourceMetadata, headers(("ETag" = String, description = "A strong validator"))),
    (status = 304, description = "Not modified since the `If-None-Match` tag."),
    (status = 404, description = "No protected resource is registered there (`not_found`).", body = ErrorBody),
    (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = ErrorBody,
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
))]
pub async fn root(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, OAuthError> {
    let docs = state.documents().await?;
    let host = request_host(&req, &state);
    docs.root_resource(host.as_deref()).map(|d| respond(&req, d)).ok_or_else(unknown)
}

/// RFC 9728 metadata of the resource whose path follows the well-known segment (§3.1).
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/{path}", operation_id = "protected_resource_metadata", tag = "metadata",
    params(("path" = String, Path, description = "The resource identifier's path, without its leading `/`.")),
    responses(
        (status = 400, description = "The path is not canonical (an encoded `/` or `\\`, a dot segment, …): the gateway \
            refuses it (`invalid_request`).", body = ErrorBody),
    (status = 200, description = "The resource's metadata; `ETag` and `Cache-Control: public, max-age=300`.",
        body = ProtectedResourceMetadata, headers(("ETag" = String, description = "A strong validator"))),
    (status = 304, description = "Not modified since the `If-None-Match` tag."),
    (status = 404, description = "No protected resource is registered there (`not_found`).", body = ErrorBody),
    (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = ErrorBody,
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
))]
pub async fn by_path(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, OAuthError> {
    let docs = state.documents().await?;
    let host = request_host(&req, &state);
    let path = format!("/{}", path.into_inner());
    docs.resource_by_path(&path, host.as_deref()).map(|d| respond(&req, d)).ok_or_else(unknown)
}

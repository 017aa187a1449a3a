//! `GET /.well-known/oauth-protected-resource[/{resource path}]` (RFC 9728 §3, path insertion §3.1).

use actix_web::{HttpRequest, HttpResponse, web};
use server::OAuthError;

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

pub async fn root(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, OAuthError> {
    let docs = state.documents().await?;
    let host = request_host(&req, &state);
    docs.root_resource(host.as_deref()).map(|d| respond(&req, d)).ok_or_else(unknown)
}

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

//! The route table.

mod introspect;
mod jwks;
mod revoke;
mod token;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::web;
use server::http::method_not_allowed;

use crate::State;

/// The token service's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(token::token, revoke::revoke, introspect::introspect, jwks::jwks))]
pub struct TokenApi;

pub fn configure(cfg: &mut web::ServiceConfig, state: Arc<State>) {
    cfg.app_data(web::Data::from(state))
        .service(
            web::resource("/oauth2/token")
                .wrap(no_store())
                .route(web::post().to(token::token))
                .default_service(method_not_allowed("POST")),
        )
        .service(
            web::resource("/oauth2/revoke")
                .wrap(no_store())
                .route(web::post().to(revoke::revoke))
                .default_service(method_not_allowed("POST")),
        )
        .service(
            web::resource("/oauth2/introspect")
                .wrap(no_store())
                .route(web::post().to(introspect::introspect))
                .default_service(method_not_allowed("POST")),
        )
        .service(
            web::resource("/oauth2/jwks")
                .route(web::get().to(jwks::jwks))
                .route(web::head().to(jwks::jwks))
                .default_service(method_not_allowed("GET, HEAD")),
        );
}

/// RFC 6749 §5.1: token responses (and errors) must not be cached, by HTTP/1.1 or 1.0 caches.
fn no_store() -> DefaultHeaders {
    DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store")).add((header::PRAGMA, "no-cache"))
}

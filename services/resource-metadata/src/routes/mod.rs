//! The route table: the well-known documents, under CORS for browser clients.

mod authorization_server;
mod openapi;
mod openid;
mod protected_resource;

use actix_cors::Cors;
use actix_web::http::{Method, header};
use actix_web::web;
use server::http::method_not_allowed;

use crate::State;

/// The metadata service's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    authorization_server::get,
    protected_resource::root,
    protected_resource::by_path,
    openid::not_found,
    openapi::get
))]
pub struct MetadataApi;

pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<State>) {
    let issuer_path = state.config.issuer.path().to_owned();
    // under the issuer's path, like the other /oauth2 endpoints: the gateway strips it
    cfg.service(
        web::resource(crate::openapi::PATH)
            .app_data(state.clone())
            .wrap(cors())
            .route(web::get().to(openapi::get))
            .route(web::head().to(openapi::get))
            .default_service(method_not_allowed("GET, HEAD")),
    );
    cfg.service(
        web::scope("/.well-known")
            .app_data(state)
            .wrap(cors())
            .service(documented("/oauth-authorization-server".to_owned() + &issuer_path, authorization_server::get))
            .service(documented("/oauth-protected-resource", protected_resource::root))
            .service(documented("/oauth-protected-resource/{path:.*}", protected_resource::by_path))
            .service(documented("/openid-configuration", openid::not_found))
            .service(documented("/openid-configuration/{path:.*}", openid::not_found)),
    );
    // the third place clients look for OpenID metadata: after the issuer's path
    if !issuer_path.is_empty() {
        cfg.service(
            documented(format!("{issuer_path}/.well-known/openid-configuration"), openid::not_found).wrap(cors()),
        );
    }
}

/// A GET/HEAD document resource; other methods get 405 JSON with `Allow`.
fn documented<F, Args>(path: impl Into<String>, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path.into())
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(method_not_allowed("GET, HEAD"))
}

/// Browser clients (the MCP Inspector) read these documents cross-origin and send
/// `MCP-Protocol-Version`, so preflights must pass; no credentials are involved.
fn cors() -> Cors {
    Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_any_header()
        .expose_headers([header::ETAG])
        .max_age(86_400)
}

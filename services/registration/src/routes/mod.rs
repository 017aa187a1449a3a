//! The route table: RFC 7591 registration and the RFC 7592 client configuration endpoint, under
//! CORS so that browser-based clients (the MCP Inspector) can register.

mod delete;
mod read;
mod register;
mod update;

use actix_cors::Cors;
use actix_web::http::Method;
use actix_web::http::header;
use actix_web::web;
use server::http::method_not_allowed;

use crate::State;

/// The registration service's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(register::register, read::read, update::update, delete::delete))]
pub struct RegistrationApi;

pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<State>) {
    cfg.service(
        web::scope("/oauth2/register")
            .app_data(state)
            .wrap(cors())
            .service(
                web::resource("").route(web::post().to(register::register)).default_service(method_not_allowed("POST")),
            )
            .service(
                web::resource("/{client_id}")
                    .route(web::get().to(read::read))
                    .route(web::put().to(update::update))
                    .route(web::delete().to(delete::delete))
                    .default_service(method_not_allowed("GET, PUT, DELETE")),
            ),
    );
}

/// Any origin may register (the credentials are bearer tokens, never cookies); browsers must be
/// able to read the challenge and the rate limit's wait.
fn cors() -> Cors {
    Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_any_header()
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
        .max_age(86_400)
}

//! The route table: RFC 7591 registration and the RFC 7592 client configuration endpoint, under
//! CORS so that browser-based clients (the MCP Inspector) can register.

mod delete;
mod read;
mod register;
mod update;

use actix_cors::Cors;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError, web};
use domain::OAuthError;

use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<State>) {
    cfg.service(
        web::scope("/oauth2/register")
            .app_data(state)
            .wrap(cors())
            .service(
                web::resource("")
                    .route(web::post().to(register::register))
                    .default_service(web::to(|| async { method_not_allowed("POST") })),
            )
            .service(
                web::resource("/{client_id}")
                    .route(web::get().to(read::read))
                    .route(web::put().to(update::update))
                    .route(web::delete().to(delete::delete))
                    .default_service(web::to(|| async { method_not_allowed("GET, PUT, DELETE") })),
            ),
    );
}

/// 405 with `Allow` and an RFC 6749 JSON body.
fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut res = OAuthError::invalid_request(format!("this endpoint accepts {allow}"))
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
        .error_response();
    res.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    res
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

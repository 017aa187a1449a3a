//! The route table (CONTRACTS.md: these exact paths).

use actix_web::web;

use crate::State;

mod authorize;
mod consent;
mod federated;
mod login;
mod logout;

pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<State>) {
    cfg.app_data(state)
        .service(
            web::resource("/oauth2/authorize")
                .route(web::get().to(authorize::get))
                .route(web::post().to(authorize::post)),
        )
        .service(web::resource("/oauth2/login").route(web::get().to(login::get)).route(web::post().to(login::post)))
        .service(web::resource("/oauth2/login/{provider}/callback").route(web::get().to(federated::callback)))
        .service(web::resource("/oauth2/consent").route(web::post().to(consent::post)))
        .service(web::resource("/oauth2/logout").route(web::post().to(logout::post)));
}

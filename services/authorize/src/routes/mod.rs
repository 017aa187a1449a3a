//! The route table (CONTRACTS.md: these exact paths).

use actix_web::web;

use crate::State;

mod authorize;
mod connections;
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
        .service(web::resource("/oauth2/logout").route(web::post().to(logout::post)))
        .service(web::resource("/oauth2/connections").route(web::get().to(connections::get)))
        .service(web::resource("/oauth2/connections/login").route(web::post().to(connections::sign_in)))
        .service(web::resource("/oauth2/connections/connect").route(web::get().to(connections::connect::connect)))
        .service(web::resource("/oauth2/connections/callback").route(web::get().to(connections::connect::callback)))
        .service(web::resource("/oauth2/connections/disconnect").route(web::post().to(connections::disconnect)))
        .service(web::resource("/oauth2/connections/revoke").route(web::post().to(connections::revoke_app)))
        .service(web::resource("/oauth2/upstream-client").route(web::get().to(connections::client_document)));
}

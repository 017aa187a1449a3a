//! `GET /oauth2/openapi.json`: the OpenAPI 3.1 document of the authorization server (crate::openapi).

use actix_web::{HttpRequest, HttpResponse, web};

use crate::State;
use crate::http_cache::respond;

/// This document: the authorization server's HTTP interface, generated from its handlers.
#[utoipa::path(get, path = "/oauth2/openapi.json", operation_id = "openapi_document", tag = "metadata", responses(
    (status = 200, description = "The OpenAPI 3.1 document, its server the issuer; `ETag` and `Cache-Control`.",
        body = Object, headers(("ETag" = String, description = "A strong validator"))),
    (status = 304, description = "Not modified since the `If-None-Match` tag."),
))]
pub async fn get(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    respond(&req, &state.openapi)
}

//! `GET|POST /oauth2/authorize` (RFC 6749 §4.1.1, §3.1: POST is allowed too). With a live session
//! and a remembered consent this is the hot path: one session query, one client-and-consent query,
//! one code insert, then the 302 with the code.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use protocol::error::ErrorCode;
use server::error::OAuthError;

use crate::params::AuthzParams;
use crate::{State, code, grants, redirect, session};

pub async fn get(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let params = AuthzParams::parse(req.query_string().as_bytes());
    run(&state, &req, params, StatusCode::FOUND).await
}

pub async fn post(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !form {
        return state.message(
            StatusCode::BAD_REQUEST,
            "This sign-in request cannot be used",
            "A POST to the authorization endpoint must be form-encoded (application/x-www-form-urlencoded).",
        );
    }
    run(&state, &req, AuthzParams::parse(&body), StatusCode::SEE_OTHER).await
}

async fn run(state: &State, req: &HttpRequest, params: AuthzParams, status: StatusCode) -> HttpResponse {
    match flow(state, req, params, status).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn flow(
    state: &State,
    req: &HttpRequest,
    params: AuthzParams,
    status: StatusCode,
) -> Result<HttpResponse, OAuthError> {
    let config = &state.config;
    let now = state.ctx.clock.now();
    let prepared = state.prepare(req, &params).await?;
    let mut conn = state.ctx.pool.get().await?;
    let session = session::current(&mut conn, req, config, now).await?;
    let (validated, remembered) = state.load(&mut conn, &params, prepared, session.as_ref().map(|s| s.user_id)).await?;
    let request = match validated {
        Ok(v) => v,
        Err(rejection) => return Ok(state.reject(rejection, status)),
    };
    let fail = |code: ErrorCode, why: &'static str| {
        redirect::to(&redirect::error_url(&request.target, &OAuthError::new(code, why), state.issuer()), status)
    };
    let Some(session) = session.filter(|_| !request.prompt.login) else {
        if request.prompt.none {
            return Ok(fail(ErrorCode::LoginRequired, "the user is not signed in"));
        }
        let login = format!("{}?{}", state.login_url, request.params.encode());
        return Ok(redirect::to(&login, status));
    };
    if request.prompt.consent || !grants::may_remember(&request) || !grants::covers(&remembered, &request) {
        if request.prompt.none {
            return Ok(fail(ErrorCode::ConsentRequired, "the user has not allowed this client yet"));
        }
        drop(conn);
        return Ok(super::consent::page(state, &request, &session));
    }
    let code = code::issue(&mut conn, &request, &session, config.code_ttl.as_secs(), now).await?;
    Ok(redirect::to(&redirect::success_url(&request.target, code.expose(), state.issuer()), status))
}

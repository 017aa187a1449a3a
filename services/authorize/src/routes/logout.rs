//! `POST /oauth2/logout`: ends the browser's session (CSRF-checked), then returns to the sign-in
//! page of the pending request when the form carried one.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use server::error::OAuthError;

use crate::csrf::{self, Purpose};
use crate::params::AuthzParams;
use crate::{State, redirect, session};

/// The logout form's fields (stable: README, "Theming the pages").
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogoutForm {
    request: String,
    csrf_token: Option<String>,
}

/// A body that is not a form counts as a form without fields: without a CSRF token it is refused
/// with 403 like a wrong token, never a 400.
pub async fn post(state: web::Data<State>, req: HttpRequest, form: Option<web::Form<LogoutForm>>) -> HttpResponse {
    match logout(&state, &req, form.map(web::Form::into_inner).unwrap_or_default()).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn logout(state: &State, req: &HttpRequest, form: LogoutForm) -> Result<HttpResponse, OAuthError> {
    let config = &state.config;
    let params = AuthzParams::parse(form.request.as_bytes());
    let encoded = params.encode();
    let mut conn = state.ctx.pool.get().await?;
    if let Some(s) = session::current(&mut conn, req, config, state.ctx.clock.now()).await? {
        if !csrf::verify(Purpose::Logout, &s.secret, &encoded, form.csrf_token.as_deref()) {
            return Ok(state.message(
                StatusCode::FORBIDDEN,
                "This form cannot be used",
                "The form expired or did not come from this site: you are still signed in.",
            ));
        }
        session::end(&mut conn, req, config).await?;
        tracing::info!(user_id = %s.user_id, "signed out");
    }
    let mut res = if params.client_id.is_some() {
        redirect::to(&format!("{}?{}", state.login_url, encoded), StatusCode::SEE_OTHER)
    } else {
        state.message(StatusCode::OK, "Signed out", "You are signed out. You can close this page.")
    };
    res.add_cookie(&session::removal(config, config.cookies().session())).map_err(OAuthError::internal)?;
    Ok(res)
}

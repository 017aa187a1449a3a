//! `GET|POST /oauth2/login`: the sign-in form for a pending authorization request, which it carries
//! in the hidden `request` field. A CSRF token bound to a pre-login cookie stops another site from
//! signing the user in to an account of its choosing (login CSRF); a per-IP limit and the per-user
//! lockout stop guessing. Success starts a session and returns to the authorization endpoint. The
//! same form, with a provider's button (`provider`), starts a sign-in there (`routes::federated`);
//! `login.password = false` hides the password form and refuses its POST.

use std::sync::atomic::Ordering;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use server::error::OAuthError;

use crate::csrf::{self, Purpose};
use crate::login::{Credentials, LoginError};
use crate::pages::{FormTargets, LoginPage, STYLE};
use crate::params::AuthzParams;
use crate::request::Validated;
use crate::{State, redirect, session};

/// The login form's fields (stable: README, "Theming the pages").
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf_token: Option<String>,
    request: String,
    /// A provider's button: sign in there instead (`login.providers[].id`).
    provider: Option<String>,
}

pub async fn get(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let params = AuthzParams::parse(req.query_string().as_bytes());
    match validated(&state, &req, &params).await {
        Ok(Ok(v)) => sign_in_page(&state, &req, &v, StatusCode::OK, "", None).await,
        Ok(Err(res)) => res,
        Err(e) => state.failure(e),
    }
}

pub async fn post(state: web::Data<State>, req: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    match sign_in(&state, &req, form.into_inner()).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

/// The request, validated; a refusal is already a response.
async fn validated(
    state: &State,
    req: &HttpRequest,
    params: &AuthzParams,
) -> Result<Result<Validated, HttpResponse>, OAuthError> {
    let prepared = state.prepare(req, params).await?;
    let mut conn = state.ctx.pool.get().await?;
    let (validated, _) = state.load(&mut conn, params, prepared, None).await?;
    Ok(validated.map_err(|r| state.reject(r, StatusCode::SEE_OTHER)))
}

async fn sign_in(state: &State, req: &HttpRequest, form: LoginForm) -> Result<HttpResponse, OAuthError> {
    let params = AuthzParams::parse(form.request.as_bytes());
    let request = match validated(state, req, &params).await? {
        Ok(v) => v,
        Err(res) => return Ok(res),
    };
    let bound = request.params.encode();
    let cookie = req.cookie(&login_cookie_name(state)).map(|c| c.value().to_owned());
    if !cookie.is_some_and(|c| csrf::verify(Purpose::Login, &c, &bound, form.csrf_token.as_deref())) {
        let why = "The sign-in form expired or did not come from this site. Please sign in again.";
        return Ok(sign_in_page(state, req, &request, StatusCode::FORBIDDEN, &form.username, Some(why)).await);
    }
    let provider = match form.provider.as_deref() {
        Some(id) => match state.providers.get(id) {
            Some(p) => Some(p.clone()),
            None => {
                let why = "There is no such way to sign in.";
                return Ok(sign_in_page(state, req, &request, StatusCode::BAD_REQUEST, "", Some(why)).await);
            }
        },
        None if !state.config.login.password => {
            let why = "Signing in with a password is turned off here: use one of the buttons.";
            return Ok(sign_in_page(state, req, &request, StatusCode::FORBIDDEN, "", Some(why)).await);
        }
        None => None,
    };
    let ip = server::http::client_ip(req, state.config.trust_forwarded_for);
    if let Err(wait) = state.login_limiter.check(ip) {
        let why = format!("Too many sign-in attempts from your network. Try again in {wait} seconds.");
        let mut res =
            sign_in_page(state, req, &request, StatusCode::TOO_MANY_REQUESTS, &form.username, Some(&why)).await;
        if let Ok(v) = wait.to_string().parse() {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
        return Ok(res);
    }
    if let Some(provider) = provider {
        return super::federated::start(state, req, &request, &provider).await;
    }
    let credentials = Credentials { username: &form.username, password: &form.password, ip: Some(ip) };
    let user = match state.authenticator.authenticate(credentials).await {
        Ok(user) => {
            state.ctx.metrics.sign_in("success");
            user
        }
        Err(LoginError::Rejected) => {
            state.ctx.metrics.sign_in("failure");
            let why = "Wrong username or password, or too many failed attempts: wait a few minutes and try again.";
            return Ok(sign_in_page(state, req, &request, StatusCode::BAD_REQUEST, &form.username, Some(why)).await);
        }
        Err(LoginError::Internal(e)) => return Err(e),
    };
    let mut conn = state.ctx.pool.get().await?;
    let now = state.ctx.clock.now();
    let (_, cookie) = session::start(&mut conn, req, &state.config, &user, now).await?;
    sweep(state, &mut conn, now).await;
    tracing::info!(user_id = %user.id, client_id = %request.target.client.client_id, "signed in");
    let back = format!("{}?{}", state.authorize_url, request.params.after_login().encode());
    let mut res = redirect::to(&back, StatusCode::SEE_OTHER);
    res.add_cookie(&cookie).map_err(OAuthError::internal)?;
    res.add_cookie(&session::removal(&state.config, &login_cookie_name(state))).map_err(OAuthError::internal)?;
    Ok(res)
}

/// Deletes sessions past their absolute expiry, at most once per `SWEEP_SECS` per process (idle
/// ones go when next seen). Housekeeping: a failure is logged, never shown.
async fn sweep(state: &State, conn: &mut diesel_async::AsyncPgConnection, now: chrono::DateTime<chrono::Utc>) {
    const SWEEP_SECS: i64 = 600;
    let last = state.last_sweep.load(Ordering::Relaxed);
    if now.timestamp() - last < SWEEP_SECS
        || state.last_sweep.compare_exchange(last, now.timestamp(), Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    match store::sessions::prune(conn, now).await {
        Ok(n) if n > 0 => tracing::info!(removed = n, "expired sessions removed"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "expired sessions could not be removed"),
    }
}

fn login_cookie_name(state: &State) -> String {
    state.config.cookies().login().to_owned()
}

/// The browser's pre-login cookie, if it has the shape of one.
pub(crate) fn login_cookie(state: &State, req: &HttpRequest) -> Option<String> {
    req.cookie(&login_cookie_name(state)).map(|c| c.value().to_owned()).filter(|v| v.len() == 43)
}

/// The pre-login cookie's secret, or a new one with the cookie to set.
pub(crate) fn login_secret(state: &State, req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    let name = login_cookie_name(state);
    match login_cookie(state, req) {
        Some(v) => (v, None),
        None => {
            let v = protocol::secret::random_token(32);
            let c = session::cookie(&state.config, &name, v.clone(), None);
            (v, Some(c))
        }
    }
}

/// The sign-in page for `request`: a button per provider, the password form unless it is off.
async fn sign_in_page(
    state: &State,
    req: &HttpRequest,
    request: &Validated,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> HttpResponse {
    let (secret, set) = login_secret(state, req);
    let encoded = request.params.encode();
    let token = csrf::token(Purpose::Login, &secret, &encoded);
    let body = LoginPage {
        style: STYLE,
        action: &state.login_url,
        client_name: request.target.client.display_name(),
        request: &encoded,
        csrf_token: &token,
        username,
        error,
        password: state.config.login.password,
        providers: state.providers.iter().map(|p| (p.id(), p.settings.name.as_str())).collect(),
    }
    .render();
    // the submission ends, through our endpoints, at the client's redirect URI, or at a provider's
    // authorization endpoint (browsers apply `form-action` to the redirects after a submission)
    let mut targets = FormTargets::new(&state.issuer_origin).with_redirect(&request.target.redirect);
    let metas = futures_util::future::join_all(state.providers.iter().map(|p| p.metadata())).await;
    for (p, meta) in state.providers.iter().zip(metas) {
        targets = match meta {
            Ok(m) => targets.with_origin(&m.authorization_endpoint),
            Err(_) => targets.with_origin(&p.settings.issuer),
        };
    }
    let mut res = state.page(status, body, &targets);
    if let Some(c) = set
        && let Err(e) = res.add_cookie(&c)
    {
        return state.failure(OAuthError::internal(e));
    }
    res
}

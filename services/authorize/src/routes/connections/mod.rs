//! `GET /oauth2/connections`: a signed-in user's accounts at the upstreams of `oauth2` routes
//! (Connect, Disconnect) and the applications they allowed (Revoke), issue 20. Without a session
//! the page signs the user in first (`POST /oauth2/connections/login`, password only) and comes
//! back. Disconnect and Revoke are POSTs with a CSRF token bound to the session and to what they
//! act on; Connect is a link (`connect`), see there why it needs no token.
//! `GET /oauth2/upstream-client` serves Sallyport's client ID metadata document.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use server::error::OAuthError;
use store::audit::kind;

use crate::connections::audit;
use crate::csrf::{self, Purpose};
use crate::login::{Credentials, LoginError};
use crate::pages::{AppView, ConnectionsPage, FormTargets, LoginPage, RouteView, STYLE};
use crate::session::Session;
use crate::{State, redirect, session};

pub mod connect;

/// `GET /oauth2/upstream-client`: public, cacheable for a while (the MCP spec lets servers cache
/// documents; it changes only with the issuer).
pub async fn client_document(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(state.client_document.clone())
}

pub async fn get(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    match page(&state, &req, None).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn page(state: &State, req: &HttpRequest, notice: Option<&str>) -> Result<HttpResponse, OAuthError> {
    let mut conn = state.ctx.pool.get().await?;
    let Some(session) = session::current(&mut conn, req, &state.config, state.ctx.clock.now()).await? else {
        return Ok(sign_in_page(state, req, "", StatusCode::OK, "", None));
    };
    let routes = state.oauth_routes(&mut conn).await?;
    let connected = store::upstream_connections::list(&mut conn, Some(session.user_id)).await?;
    let consents = store::consents::list(&mut conn, Some(session.user_id)).await?;
    let routes = routes
        .iter()
        .map(|r| {
            let found = connected.iter().find(|c| c.route == r.prefix);
            RouteView {
                prefix: r.prefix.clone(),
                connected: found.is_some(),
                scope: found.and_then(|c| c.scope.clone()),
                connect_url: state.connect_url(&r.prefix),
                csrf_token: csrf::token(Purpose::Connections, &session.secret, &format!("disconnect:{}", r.prefix)),
            }
        })
        .collect();
    let apps = consents
        .into_iter()
        .map(|(c, _)| AppView {
            csrf_token: csrf::token(Purpose::Connections, &session.secret, &format!("revoke:{}", c.client_id)),
            client_id: c.client_id,
            resource: c.resource.to_string(),
            scopes: c.scopes.to_vec().join(" "),
        })
        .collect();
    let disconnect = format!("{}/disconnect", state.connections_url);
    let revoke = format!("{}/revoke", state.connections_url);
    let body = ConnectionsPage {
        style: STYLE,
        username: &session.username,
        notice,
        routes,
        apps,
        disconnect_action: &disconnect,
        revoke_action: &revoke,
    }
    .render();
    Ok(state.page(StatusCode::OK, body, &FormTargets::new(&state.issuer_origin)))
}

/// The sign-in form of the connections pages; `then` is the route to connect afterwards (empty:
/// the connections page). Only a route prefix travels, never a URL: no open redirect.
pub(crate) fn sign_in_page(
    state: &State,
    req: &HttpRequest,
    then: &str,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> HttpResponse {
    if !state.config.login.password {
        return state.message_with_retry(
            StatusCode::FORBIDDEN,
            "Sign in through an application first",
            "This page signs in with a password only, which is turned off here. Sign in through your MCP client, then open this page again.",
            None,
        );
    }
    let (secret, set) = super::login::login_secret(state, req);
    let token = csrf::token(Purpose::Connections, &secret, &format!("login:{then}"));
    let action = format!("{}/login", state.connections_url);
    let body = LoginPage {
        style: STYLE,
        action: &action,
        client_name: "your connections",
        request: then,
        csrf_token: &token,
        username,
        error,
        password: true,
        providers: Vec::new(),
    }
    .render();
    let mut res = state.page(status, body, &FormTargets::new(&state.issuer_origin));
    if let Some(c) = set
        && let Err(e) = res.add_cookie(&c)
    {
        return state.failure(OAuthError::internal(e));
    }
    res
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignInForm {
    username: String,
    password: String,
    csrf_token: Option<String>,
    /// The route to connect after signing in, or empty.
    request: String,
}

/// `POST /oauth2/connections/login`: the same checks as `/oauth2/login` (login CSRF, the per-IP
/// limit, the per-user lockout), then back to the page or the Connect it interrupted.
pub async fn sign_in(state: web::Data<State>, req: HttpRequest, form: Option<web::Form<SignInForm>>) -> HttpResponse {
    let form = form.map(web::Form::into_inner).unwrap_or_default();
    match sign_in_inner(&state, &req, form).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn sign_in_inner(state: &State, req: &HttpRequest, form: SignInForm) -> Result<HttpResponse, OAuthError> {
    let then = form.request.as_str();
    let bound = format!("login:{then}");
    let cookie = super::login::login_cookie(state, req);
    if !cookie.is_some_and(|c| csrf::verify(Purpose::Connections, &c, &bound, form.csrf_token.as_deref())) {
        let why = "The sign-in form expired or did not come from this site. Please sign in again.";
        return Ok(sign_in_page(state, req, then, StatusCode::FORBIDDEN, &form.username, Some(why)));
    }
    if !state.config.login.password {
        return Ok(sign_in_page(state, req, then, StatusCode::FORBIDDEN, "", None));
    }
    let ip = server::http::client_ip(req, state.config.trust_forwarded_for);
    if let Err(wait) = state.login_limiter.check(ip) {
        let why = format!("Too many sign-in attempts from your network. Try again in {wait} seconds.");
        return Ok(sign_in_page(state, req, then, StatusCode::TOO_MANY_REQUESTS, &form.username, Some(&why)));
    }
    let credentials = Credentials { username: &form.username, password: &form.password, ip: Some(ip) };
    let user = match state.authenticator.authenticate(credentials).await {
        Ok(user) => user,
        Err(LoginError::Rejected) => {
            let why = "Wrong username or password, or too many failed attempts: wait a few minutes and try again.";
            return Ok(sign_in_page(state, req, then, StatusCode::BAD_REQUEST, &form.username, Some(why)));
        }
        Err(LoginError::Internal(e)) => return Err(e),
    };
    let mut conn = state.ctx.pool.get().await?;
    let (_, cookie) = session::start(&mut conn, req, &state.config, &user, state.ctx.clock.now()).await?;
    tracing::info!(user_id = %user.id, "signed in to the connections page");
    let mut res = if then.is_empty() {
        redirect::to(&state.connections_url, StatusCode::SEE_OTHER)
    } else {
        // Not a 303 into the Connect: browsers hold every redirect of a form's submission to the
        // page's CSP `form-action` (Chromium does), and the Connect ends at the upstream's
        // authorization endpoint, an origin this page cannot name (it is discovered only then),
        // so the browser would stop on the sign-in page. A page that continues by itself starts
        // a navigation of its own, which `form-action` does not govern.
        let message = format!("You are signed in. Continuing to connect your account for {then}.");
        state.continuing("Signed in", &message, &state.connect_url(then))
    };
    res.add_cookie(&cookie).map_err(OAuthError::internal)?;
    let login = state.config.cookies().login().to_owned();
    res.add_cookie(&session::removal(&state.config, &login)).map_err(OAuthError::internal)?;
    Ok(res)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DisconnectForm {
    route: String,
    csrf_token: Option<String>,
}

/// The session of a form post whose token is bound to `bound`; else the response to send.
async fn form_session(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    req: &HttpRequest,
    bound: &str,
    token: Option<&str>,
) -> Result<Result<Session, HttpResponse>, OAuthError> {
    let Some(s) = session::current(conn, req, &state.config, state.ctx.clock.now()).await? else {
        return Ok(Err(redirect::to(&state.connections_url, StatusCode::SEE_OTHER)));
    };
    if !csrf::verify(Purpose::Connections, &s.secret, bound, token) {
        return Ok(Err(state.message_with_retry(
            StatusCode::FORBIDDEN,
            "This form cannot be used",
            "The form expired or did not come from this site, so nothing changed.",
            Some(&state.connections_url),
        )));
    }
    Ok(Ok(s))
}

/// `POST /oauth2/connections/disconnect`: deletes the user's connection, then revokes its tokens
/// at the upstream (RFC 7009, when it has a revocation endpoint): the refresh token, which takes
/// its access tokens with it at most servers, then the access token.
pub async fn disconnect(
    state: web::Data<State>,
    req: HttpRequest,
    form: Option<web::Form<DisconnectForm>>,
) -> HttpResponse {
    let form = form.map(web::Form::into_inner).unwrap_or_default();
    match disconnect_inner(&state, &req, form).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn disconnect_inner(state: &State, req: &HttpRequest, form: DisconnectForm) -> Result<HttpResponse, OAuthError> {
    let mut conn = state.ctx.pool.get().await?;
    let bound = format!("disconnect:{}", form.route);
    let s = match form_session(state, &mut conn, req, &bound, form.csrf_token.as_deref()).await? {
        Ok(s) => s,
        Err(res) => return Ok(res),
    };
    let routes = state.oauth_routes(&mut conn).await?;
    let route = routes.into_iter().find(|r| r.prefix == form.route);
    let revoked = match store::upstream_connections::delete(&mut conn, s.user_id, &form.route).await? {
        None => None,
        Some(row) => Some(revoke_upstream(state, &mut conn, route.as_ref(), &row).await),
    };
    if let Some(revoked) = revoked {
        let ip = server::http::client_ip(req, state.config.trust_forwarded_for).to_string();
        let detail = serde_json::json!({ "route": form.route, "by": "user", "revoked": revoked });
        audit(&mut conn, state.ctx.clock.now(), kind::UPSTREAM_DISCONNECTED, s.user_id, Some(&ip), detail).await;
        tracing::info!(user_id = %s.user_id, route = %form.route, revoked, "upstream account disconnected");
    }
    Ok(redirect::to(&state.connections_url, StatusCode::SEE_OTHER))
}

/// RFC 7009 at the upstream for a deleted connection (`server::upstream_oauth::revoke_tokens`).
async fn revoke_upstream(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    route: Option<&server::upstream_oauth::OAuthRoute>,
    row: &store::upstream_connections::UpstreamConnectionRow,
) -> bool {
    match (state.kek(), route) {
        (Some(kek), Some(route)) => server::upstream_oauth::revoke_tokens(conn, route, row, kek).await,
        _ => false,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokeForm {
    client_id: String,
    csrf_token: Option<String>,
}

/// `POST /oauth2/connections/revoke`: forgets the user's remembered consents to an application and
/// withdraws what they authorised (its refresh tokens, and its access tokens at introspection).
pub async fn revoke_app(
    state: web::Data<State>,
    req: HttpRequest,
    form: Option<web::Form<RevokeForm>>,
) -> HttpResponse {
    let form = form.map(web::Form::into_inner).unwrap_or_default();
    match revoke_app_inner(&state, &req, form).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn revoke_app_inner(state: &State, req: &HttpRequest, form: RevokeForm) -> Result<HttpResponse, OAuthError> {
    let mut conn = state.ctx.pool.get().await?;
    let bound = format!("revoke:{}", form.client_id);
    let s = match form_session(state, &mut conn, req, &bound, form.csrf_token.as_deref()).await? {
        Ok(s) => s,
        Err(res) => return Ok(res),
    };
    let now = state.ctx.clock.now();
    let until = protocol::clock::after(now, state.config.access_token_ttl.as_secs());
    let done = store::consents::revoke_with_tokens(&mut conn, s.user_id, &form.client_id, None, now, until).await?;
    tracing::info!(user_id = %s.user_id, client_id = %form.client_id, consents = done.consents, grants = done.grants, "consent revoked by the user");
    Ok(redirect::to(&state.connections_url, StatusCode::SEE_OTHER))
}

//! `GET /oauth2/connections/connect?route=<prefix>` and `GET /oauth2/connections/callback`: a
//! signed-in user connects their account at a route's upstream (issue 20). Connect discovers the
//! upstream's authorization server and Sallyport's client there (`server::upstream_oauth`), stores
//! a pending Connect (`upstream_connects`: the SHA-256 of `state`, bound to the user and the
//! SHA-256 of the session cookie, the PKCE verifier sealed, 10 minutes) and redirects with PKCE
//! S256 (RFC 7636), `state`, `resource` (RFC 8707) and the route's scopes. The callback takes the
//! pending Connect once, checks the session and `iss` (RFC 9207 §2.4), exchanges the code with the
//! verifier and stores the tokens sealed per (user, route).
//!
//! Connect is a GET (the gateway's URL elicitation names it) and needs no CSRF token: all another
//! site can make it do is start a Connect whose callback only the same session can finish, after
//! the user approves at the upstream.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::TimeDelta;
use protocol::redact::SecretString;
use protocol::secret::{SecretHash, constant_time_eq, random_token, sha256};
use serde::Deserialize;
use server::error::OAuthError;
use server::token_client::TokenError;
use server::upstream_oauth::{self, ConnectSetupError, FetchPolicy, OAuthRoute};
use store::audit::kind;
use store::upstream_connections::{self, UpstreamConnectionRow, UpstreamTokens};
use store::upstream_connects::{self, UpstreamConnectRow};

use crate::connections::audit;
use crate::{State, redirect, session};

/// How long a Connect may take at the upstream.
const CONNECT_TTL_SECS: i64 = 600;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConnectQuery {
    route: String,
}

pub async fn connect(state: web::Data<State>, req: HttpRequest, q: web::Query<ConnectQuery>) -> HttpResponse {
    match start(&state, &req, &q.route).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn start(state: &State, req: &HttpRequest, prefix: &str) -> Result<HttpResponse, OAuthError> {
    let now = state.ctx.clock.now();
    let mut conn = state.ctx.pool.get().await?;
    let Some(s) = session::current(&mut conn, req, &state.config, now).await? else {
        return Ok(super::sign_in_page(state, req, prefix, StatusCode::OK, "", None));
    };
    let Some(route) = state.oauth_routes(&mut conn).await?.into_iter().find(|r| r.prefix == prefix) else {
        return Ok(state.message_with_retry(
            StatusCode::NOT_FOUND,
            "No such service",
            "No service behind this gateway at that path needs an account of its own. Pick one on your connections page.",
            Some(&state.connections_url),
        ));
    };
    let Some(kek) = state.kek() else {
        tracing::error!("a Connect needs keys.encryption_key to seal the verifier and the tokens");
        return Err(OAuthError::internal("keys.encryption_key is not set"));
    };
    // the outbound requests run without a pooled connection held
    drop(conn);
    let ip = server::http::client_ip(req, state.config.trust_forwarded_for).to_string();
    let found = match prepare(state, &route).await {
        Ok(found) => found,
        Err(e) => return Ok(setup_failed(state, s.user_id, &route.prefix, &ip, e).await),
    };
    let (found, client_row) = found;
    let client_id = route.explicit.client_id.clone().unwrap_or_else(|| client_row.client_id.clone());
    let state_value = random_token(32);
    let verifier = SecretString::from(random_token(32));
    let state_hash = sha256(state_value.as_bytes()).to_vec();
    let row = UpstreamConnectRow {
        verifier_enc: upstream_connects::seal_verifier(kek, &state_hash, &verifier).map_err(OAuthError::internal)?,
        state_hash,
        user_id: s.user_id,
        session_hash: SecretHash::of(&s.secret).to_vec(),
        route: route.prefix.clone(),
        issuer: found.server.issuer.clone(),
        return_to: None,
        created_at: now,
        expires_at: now + TimeDelta::seconds(CONNECT_TTL_SECS),
        resource: found.resource.clone(),
    };
    let mut conn = state.ctx.pool.get().await?;
    upstream_connects::insert(&mut conn, &row).await?;
    if let Err(e) = upstream_connects::prune(&mut conn, now).await {
        tracing::warn!(error = %e, "abandoned Connects could not be removed");
    }
    let challenge = protocol::pkce::s256(verifier.expose());
    let callback = state.config.issuer.endpoint(upstream_oauth::CALLBACK_PATH);
    let scope = found.scopes.join(" ");
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", callback.as_str()),
        ("state", state_value.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if let Some(resource) = &found.resource {
        pairs.push(("resource", resource.as_str()));
    }
    if !scope.is_empty() {
        pairs.push(("scope", scope.as_str()));
    }
    tracing::info!(user_id = %s.user_id, route = %route.prefix, issuer = %found.server.issuer, "connect started");
    Ok(redirect::to(&redirect::with_params(&found.server.authorization_endpoint, &pairs), StatusCode::SEE_OTHER))
}

/// Discovery, then Sallyport's client at the upstream (registered once).
async fn prepare(
    state: &State,
    route: &OAuthRoute,
) -> Result<(upstream_oauth::Discovered, store::upstream_clients::UpstreamClientRow), ConnectSetupError> {
    let http = FetchPolicy::for_route(route).client()?;
    let found = upstream_oauth::discover(&http, route).await?;
    let mut conn = state.ctx.pool.get().await.map_err(|e| ConnectSetupError::Unreachable(e.to_string()))?;
    let now = state.ctx.clock.now();
    let row =
        upstream_oauth::ensure_client(&mut conn, &http, route, &found, &state.config.issuer, state.kek(), now).await?;
    Ok((found, row))
}

async fn setup_failed(state: &State, user: uuid::Uuid, route: &str, ip: &str, e: ConnectSetupError) -> HttpResponse {
    tracing::warn!(error = %e, route, "connect could not start");
    let reason = match &e {
        ConnectSetupError::Unreachable(_) => "unreachable",
        ConnectSetupError::Unusable(_) => "unusable",
    };
    if let Ok(mut conn) = state.ctx.pool.get().await {
        let detail = serde_json::json!({ "route": route, "reason": reason });
        audit(&mut conn, state.ctx.clock.now(), kind::UPSTREAM_CONNECT_FAILED, user, Some(ip), detail).await;
    }
    let retry = state.connect_url(route);
    match e {
        ConnectSetupError::Unreachable(_) => state.message_with_retry(
            StatusCode::BAD_GATEWAY,
            "The service cannot be reached",
            "The service's sign-in could not be reached just now. Try again in a minute; if it keeps failing, tell the gateway's operator.",
            Some(&retry),
        ),
        ConnectSetupError::Unusable(_) => state.message_with_retry(
            StatusCode::BAD_GATEWAY,
            "This service cannot be connected",
            "The service's sign-in is not set up in a way this gateway can use. Tell the gateway's operator (the details are in its log).",
            Some(&retry),
        ),
    }
}

/// The authorization response (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 `iss`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

pub async fn callback(state: web::Data<State>, req: HttpRequest, q: web::Query<CallbackQuery>) -> HttpResponse {
    match finish(&state, &req, q.into_inner()).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn finish(state: &State, req: &HttpRequest, q: CallbackQuery) -> Result<HttpResponse, OAuthError> {
    let now = state.ctx.clock.now();
    let ip = server::http::client_ip(req, state.config.trust_forwarded_for).to_string();
    let unusable = |title: &str, why: &str| {
        state.message_with_retry(StatusCode::BAD_REQUEST, title, why, Some(&state.connections_url))
    };
    let Some(state_value) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(unusable(
            "This link cannot be used",
            "The answer of the service carries no state. Start again from your connections page.",
        ));
    };
    let mut conn = state.ctx.pool.get().await?;
    // taken before anything else: a replay, or a second tab, finds nothing
    let pending = upstream_connects::take(&mut conn, &sha256(state_value.as_bytes())).await?;
    let Some(pending) = pending.filter(|p| p.expires_at > now) else {
        return Ok(unusable(
            "This connection attempt is over",
            "It was already used, took longer than 10 minutes, or was not started here. Start again from your connections page.",
        ));
    };
    let fail = async |conn: &mut diesel_async::AsyncPgConnection, reason: &str| {
        let detail = serde_json::json!({ "route": pending.route, "issuer": pending.issuer, "reason": reason });
        audit(conn, now, kind::UPSTREAM_CONNECT_FAILED, pending.user_id, Some(&ip), detail).await;
    };
    let session = session::current(&mut conn, req, &state.config, now).await?;
    let same_session = session.as_ref().is_some_and(|s| {
        s.user_id == pending.user_id && constant_time_eq(SecretHash::of(&s.secret).as_bytes(), &pending.session_hash)
    });
    if !same_session {
        fail(&mut conn, "session_mismatch").await;
        return Ok(state.message_with_retry(
            StatusCode::FORBIDDEN,
            "This connection attempt belongs to another sign-in",
            "It was started in another browser or before you signed out, so nothing was connected. Sign in and connect again.",
            Some(&state.connect_url(&pending.route)),
        ));
    }
    let retry = state.connect_url(&pending.route);
    if let Some(error) = q.error.as_deref() {
        fail(&mut conn, error).await;
        let (title, why) = match error {
            "access_denied" => (
                "Not connected",
                "Access was declined at the service, so nothing was connected. Connect again when you want to use it.",
            ),
            "invalid_scope" => (
                "The service refused the permissions asked for",
                "The service does not grant the scopes this gateway asks for. Tell the gateway's operator; connecting again will fail the same way until they change the route's scopes.",
            ),
            _ => (
                "The service refused the connection",
                "The service answered with an error, so nothing was connected. Try again; if it keeps failing, tell the gateway's operator.",
            ),
        };
        return Ok(state.message_with_retry(StatusCode::BAD_REQUEST, title, why, Some(&retry)));
    }
    let registered = store::upstream_clients::find(&mut conn, &pending.issuer).await?;
    // RFC 9207 §2.4: when the server says it sends `iss`, it must be there and be its issuer;
    // an `iss` that is there is checked in any case (a mix-up shows up either way)
    let advertises_iss = registered
        .as_ref()
        .and_then(|r| r.metadata.get("authorization_response_iss_parameter_supported"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let iss_ok = match q.iss.as_deref() {
        Some(iss) => iss == pending.issuer,
        None => !advertises_iss,
    };
    if !iss_ok {
        fail(&mut conn, "iss_mismatch").await;
        return Ok(state.message_with_retry(
            StatusCode::BAD_REQUEST,
            "The answer came from the wrong service",
            "The answer does not name the service the connection was started with, so it was not used. Connect again.",
            Some(&retry),
        ));
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        fail(&mut conn, "no_code").await;
        return Ok(unusable("This link cannot be used", "The answer of the service carries no code. Connect again."));
    };
    let routes = state.oauth_routes(&mut conn).await?;
    let Some(route) = routes.into_iter().find(|r| r.prefix == pending.route) else {
        fail(&mut conn, "route_removed").await;
        return Ok(unusable("No such service", "The service was removed from the gateway while you connected."));
    };
    let kek = state.kek().ok_or_else(|| OAuthError::internal("keys.encryption_key is not set"))?;
    let verifier = upstream_connects::unseal_verifier(kek, &pending.state_hash, &pending.verifier_enc)
        .map_err(OAuthError::internal)?;
    let client = match server::token_client::for_route(
        &route.explicit,
        route.client_secret.as_ref(),
        registered.as_ref(),
        Some(kek),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, route = %route.prefix, "no client for the code exchange");
            fail(&mut conn, "no_client").await;
            return Ok(state.message_with_retry(
                StatusCode::BAD_GATEWAY,
                "This service cannot be connected",
                "The gateway has no usable client at the service. Connect again; if it keeps failing, tell the gateway's operator.",
                Some(&retry),
            ));
        }
    };
    drop(conn);
    let callback = state.config.issuer.endpoint(upstream_oauth::CALLBACK_PATH);
    let http = FetchPolicy::for_route(&route).client().map_err(|e| OAuthError::internal(e.to_string()))?;
    let exchanged = client.exchange_code(&http, code, &callback, verifier.expose(), pending.resource.as_deref()).await;
    let mut conn = state.ctx.pool.get().await?;
    let tokens = match exchanged {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, route = %route.prefix, "the code exchange failed");
            let (reason, status, why) = match &e {
                TokenError::Unreachable(_) => (
                    "unreachable".to_owned(),
                    StatusCode::BAD_GATEWAY,
                    "The service could not be reached to finish connecting. Try again in a minute.",
                ),
                TokenError::Refused { error, .. } => (
                    error.clone(),
                    StatusCode::BAD_GATEWAY,
                    "The service refused to finish connecting (the approval may have expired). Connect again.",
                ),
                TokenError::Invalid(_) => (
                    "invalid_response".to_owned(),
                    StatusCode::BAD_GATEWAY,
                    "The service's answer could not be used. Tell the gateway's operator.",
                ),
            };
            fail(&mut conn, &reason).await;
            return Ok(state.message_with_retry(status, "Not connected", why, Some(&retry)));
        }
    };
    let sealed =
        UpstreamTokens { access_token: tokens.access_token.clone(), refresh_token: tokens.refresh_token.clone() };
    let row = UpstreamConnectionRow {
        user_id: pending.user_id,
        route: pending.route.clone(),
        issuer: pending.issuer.clone(),
        tokens_enc: upstream_connections::seal_tokens(kek, pending.user_id, &pending.route, &sealed)
            .map_err(OAuthError::internal)?,
        has_refresh_token: tokens.refresh_token.is_some(),
        scope: tokens.scope.clone(),
        expires_at: tokens
            .expires_in
            .and_then(|s| i64::try_from(s).ok())
            .and_then(TimeDelta::try_seconds)
            .map(|d| now + d),
        generation: 0,
        created_at: now,
        updated_at: now,
    };
    upstream_connections::upsert(&mut conn, &row).await?;
    let detail = serde_json::json!({ "route": row.route, "issuer": row.issuer, "scope": row.scope });
    audit(&mut conn, now, kind::UPSTREAM_CONNECTED, row.user_id, Some(&ip), detail).await;
    tracing::info!(user_id = %row.user_id, route = %row.route, "upstream account connected");
    Ok(state.message_with_retry(
        StatusCode::OK,
        "Connected",
        &format!("Your account for {} is connected. You can return to your MCP client and try again.", row.route),
        None,
    ))
}

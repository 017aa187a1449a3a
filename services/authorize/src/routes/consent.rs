//! The consent page and `POST /oauth2/consent`. The decision is a POST with a CSRF token bound to
//! the session and the request; the request is validated again from its hidden field, so nothing
//! the browser sends is trusted. Allow remembers the grant and issues a code; deny sends
//! `access_denied` to the client (RFC 6749 §4.1.2.1).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use protocol::client::ClientSource;
use protocol::error::ErrorCode;
use serde::Deserialize;
use server::error::OAuthError;
use store::consents;

use crate::csrf::{self, Purpose};
use crate::pages::{self, ConsentPage, FormTargets, ResourceView, STYLE};
use crate::params::AuthzParams;
use crate::request::{Rejection, Validated};
use crate::session::Session;
use crate::{State, code, redirect, session};

/// The consent form's fields (stable: README, "Theming the pages").
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConsentForm {
    request: String,
    csrf_token: Option<String>,
    /// `allow` or `deny`.
    decision: Option<String>,
}

/// The consent page for a validated request and a signed-in user.
pub fn page(state: &State, request: &Validated, session: &Session) -> HttpResponse {
    let client = &request.target.client;
    let encoded = request.params.encode();
    let token = csrf::token(Purpose::Consent, &session.secret, &encoded);
    let logout_token = csrf::token(Purpose::Logout, &session.secret, &encoded);
    let resources: Vec<ResourceView> =
        request.resources.iter().map(|r| ResourceView { name: r.name.clone(), id: r.id.to_string() }).collect();
    let target_name = match resources.as_slice() {
        [one] => one.name.clone(),
        many => format!("{} services", many.len()),
    };
    let registered = &client.metadata.redirect_uris;
    let body = ConsentPage {
        style: STYLE,
        action: &state.consent_url,
        logout_action: &state.logout_url,
        client_name: client.display_name(),
        client_host: client.metadata.client_uri.as_deref().and_then(pages::host_of),
        redirect_host: pages::redirect_label(&request.target.redirect),
        target_name,
        resources,
        scopes: request.scope.to_vec(),
        self_registered: matches!(client.source, ClientSource::Dynamic | ClientSource::MetadataDocument),
        loopback_only: !registered.is_empty() && registered.iter().all(|r| r.is_loopback()),
        document_host: (client.source == ClientSource::MetadataDocument)
            .then(|| pages::host_of(&client.client_id))
            .flatten(),
        username: &session.username,
        request: &encoded,
        csrf_token: &token,
        logout_token: &logout_token,
    }
    .render();
    let targets = FormTargets::new(&state.issuer_origin).with_redirect(&request.target.redirect);
    state.page(StatusCode::OK, body, &targets)
}

pub async fn post(state: web::Data<State>, req: HttpRequest, form: web::Form<ConsentForm>) -> HttpResponse {
    match decide(&state, &req, form.into_inner()).await {
        Ok(res) => res,
        Err(e) => state.failure(e),
    }
}

async fn decide(state: &State, req: &HttpRequest, form: ConsentForm) -> Result<HttpResponse, OAuthError> {
    let config = &state.config;
    let now = state.ctx.clock.now();
    let params = AuthzParams::parse(form.request.as_bytes());
    let prepared = state.prepare(req, &params).await?;
    let mut conn = state.ctx.pool.get().await?;
    let session = session::current(&mut conn, req, config, now).await?;
    let (validated, _) = state.load(&mut conn, &params, prepared, session.as_ref().map(|s| s.user_id)).await?;
    let validated = match validated {
        Err(page @ Rejection::Page(_)) => return Ok(state.reject(page, StatusCode::SEE_OTHER)),
        other => other,
    };
    let Some(session) = session else {
        // signed out (or expired) since the page was shown: sign in again, then decide again
        return Ok(redirect::to(&format!("{}?{}", state.login_url, params.encode()), StatusCode::SEE_OTHER));
    };
    // before anything reaches the client: only a form we rendered, in this session, for this request
    if !csrf::verify(Purpose::Consent, &session.secret, &params.encode(), form.csrf_token.as_deref()) {
        tracing::warn!(session_id = %session.id, "consent refused: CSRF token missing or wrong");
        return Ok(state.message(
            StatusCode::FORBIDDEN,
            "This form cannot be used",
            "The form expired or did not come from this site, so nothing was allowed. Go back to the application and start again.",
        ));
    }
    let request = match validated {
        Ok(v) => v,
        Err(r) => return Ok(state.reject(r, StatusCode::SEE_OTHER)),
    };
    let issuer = state.issuer();
    match form.decision.as_deref() {
        Some("allow") => {
            consents::grant(
                &mut conn,
                session.user_id,
                &request.target.client.client_id,
                &request.resource_ids(),
                &request.scope,
                now,
            )
            .await?;
            let code = code::issue(&mut conn, &request, &session, config.code_ttl.as_secs(), now).await?;
            tracing::info!(user_id = %session.user_id, client_id = %request.target.client.client_id, "consent given");
            state.ctx.metrics.consent("approved");
            Ok(redirect::to(&redirect::success_url(&request.target, code.expose(), issuer), StatusCode::SEE_OTHER))
        }
        Some("deny") => {
            let denied = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            state.ctx.metrics.consent("denied");
            Ok(redirect::to(&redirect::error_url(&request.target, &denied, issuer), StatusCode::SEE_OTHER))
        }
        _ => Ok(state.message(StatusCode::BAD_REQUEST, "No decision", "Choose Allow or Deny on the consent page.")),
    }
}

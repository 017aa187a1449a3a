//! `upstream_auth = "oauth2"` routes (issue 20): the upstream wants each user's own token from its
//! own authorization server, which the user connected once (`/oauth2/connections`, the authorize
//! service). After the bearer check the gateway finds the caller's connection, sends
//! `Authorization: Bearer <upstream token>` in place of the client's (MCP authorization spec: no
//! token passthrough) and keeps the token fresh:
//!
//! - the unsealed token is cached in memory per (user, route) until shortly before it expires
//!   ([`tokens::Connections`]);
//! - an expiring token is refreshed before forwarding, once across concurrent requests and across
//!   gateways (an in-process single flight, then the row lock of `upstream_connections`);
//! - an upstream 401 refreshes once and replays the request, whose body was kept (bounded);
//! - not connected, refresh refused (`invalid_grant`) or no refresh token: the user must act. An
//!   MCP request gets the JSON-RPC error `-32042` (URL elicitation required, SEP-1036) naming the
//!   route's connect page; any other request a 403 `upstream_authorization_required`.

pub mod respond;
pub mod tokens;

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap};

use protocol::error::ErrorCode;
use protocol::redact::SecretString;
use protocol::upstream_auth::UpstreamOAuth;
use server::error::OAuthError;

use crate::Gateway;
use crate::mcp::message::Request;
use crate::principal::Principal;
use crate::proxy::{RequestBody, UpstreamResponse};
pub use tokens::{Connections, Obtained};

/// An `oauth2` route as the gateway serves it.
#[derive(Debug, PartialEq)]
pub struct OAuthRoute {
    /// The route's prefix as `upstream_connections.route` stores it (`/` for the root route).
    pub route: Arc<str>,
    /// What the route says explicitly (endpoints, a client registered by hand, the resource).
    pub explicit: UpstreamOAuth,
    /// The secret of a client registered by hand (`upstream_oauth.client_secret`).
    pub client_secret: Option<SecretString>,
    /// `{issuer}/oauth2/connections/connect?route=<prefix>`: where the user connects the account.
    pub connect_uri: String,
    /// An MCP route: the user is asked through a URL elicitation.
    pub mcp: bool,
}

impl OAuthRoute {
    pub fn new(
        prefix: &str,
        explicit: UpstreamOAuth,
        client_secret: Option<SecretString>,
        issuer: &str,
        mcp: bool,
    ) -> Self {
        let route = if prefix.is_empty() { "/" } else { prefix };
        let encoded: String = url::form_urlencoded::byte_serialize(route.as_bytes()).collect();
        Self {
            route: route.into(),
            explicit,
            client_secret,
            connect_uri: format!("{}/oauth2/connections/connect?route={encoded}", issuer.trim_end_matches('/')),
            mcp,
        }
    }
}

/// A request body on an `oauth2` route: kept (so that it can be sent again after a refresh) or,
/// larger than the MCP limit or of unknown length, streamed once.
pub enum Body {
    None,
    Kept(Bytes),
    Streamed(RequestBody),
}

impl Body {
    fn replayable(&self) -> bool {
        !matches!(self, Self::Streamed(_))
    }

    fn take(&mut self) -> RequestBody {
        match std::mem::replace(self, Self::None) {
            Self::None => RequestBody::Empty,
            Self::Kept(bytes) => {
                *self = Self::Kept(bytes.clone());
                RequestBody::full(bytes)
            }
            Self::Streamed(body) => body,
        }
    }
}

/// What became of a request on an `oauth2` route.
pub enum Sent {
    /// The upstream's answer (after at most one refresh and replay).
    Upstream(UpstreamResponse),
    /// The gateway's own answer: the user must connect, or the caller cannot use the route.
    Answer(HttpResponse),
}

/// Sends a request of an `oauth2` route with the caller's upstream token. `headers` are the
/// upstream request's headers as the proxy made them; `rpc` is the JSON-RPC request the body
/// holds, if it holds one (the user is then asked through a URL elicitation).
pub async fn send(
    gateway: &Gateway,
    req: &HttpRequest,
    oauth: &OAuthRoute,
    mut headers: HeaderMap,
    mut body: Body,
    url: &http::Uri,
    rpc: Option<&Request>,
) -> Result<Sent, OAuthError> {
    let principal = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| OAuthError::internal("an oauth2 route without a verified token"))?;
    if principal.is_machine() {
        // RFC 9068 §2.2: `sub` is the client; there is no user whose account could be used
        return Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "this route uses each user's own upstream account: a token without a user (client_credentials) cannot call it",
        )
        .with_status(actix_web::http::StatusCode::FORBIDDEN));
    }
    let act = |why| Ok(Sent::Answer(respond::connect(oauth, rpc, why)));
    // Sallyport's users are uuids; any other subject has no connection to find
    let Ok(user) = uuid::Uuid::parse_str(principal.subject()) else { return act(tokens::Why::NotConnected) };
    let connections = &gateway.connections;
    let cached = match connections.credential(oauth, user).await? {
        Obtained::Token(cached) => cached,
        Obtained::Act(why) => return act(why),
    };
    // the client's Authorization was for Sallyport (the bearer check removed it already; again, to be sure)
    headers.remove(AUTHORIZATION);
    let replay = body.replayable().then(|| headers.clone());
    cached.credential.apply(&mut headers);
    let response = gateway.proxy.send(req, headers, body.take(), url).await?;
    let Some(mut headers) = replay.filter(|_| response.status() == http::StatusCode::UNAUTHORIZED) else {
        return Ok(Sent::Upstream(response));
    };
    // the upstream refused its own token (revoked, or expired before its time): refresh once, replay
    drop(response);
    let fresh = match connections.after_rejection(oauth, user, &cached).await? {
        Obtained::Token(fresh) => fresh,
        Obtained::Act(why) => return act(why),
    };
    fresh.credential.apply(&mut headers);
    gateway.proxy.send(req, headers, body.take(), url).await.map(Sent::Upstream)
}

/// Any request of an `oauth2` route that is not an MCP POST (those go through `crate::mcp`): the
/// body is kept when it is small enough to send again (the MCP limit, 1 MiB, declared up front),
/// and a kept body that is a JSON-RPC request gets a URL elicitation when the user must act.
pub async fn forward(
    gateway: &Gateway,
    req: &HttpRequest,
    payload: actix_web::web::Payload,
    url: &http::Uri,
    route: &crate::router::Route,
    oauth: &OAuthRoute,
) -> Result<HttpResponse, OAuthError> {
    use crate::proxy::headers as proxy_headers;
    let caller = gateway.upstream_caller(req, route);
    let headers = proxy_headers::upstream_request_headers(req.headers(), &caller);
    let length = proxy_headers::content_length(req.headers());
    let body = if !proxy_headers::has_body(req.headers()) {
        Body::None
    } else if length.is_some_and(|n| n <= crate::mcp::BODY_LIMIT as u64) {
        Body::Kept(crate::mcp::read_body(req, payload).await?)
    } else {
        Body::Streamed(crate::proxy::body::request_body(payload, true, length).await?)
    };
    let rpc = match &body {
        Body::Kept(bytes) if oauth.mcp || req.method() == actix_web::http::Method::POST => {
            crate::mcp::message::parse(bytes).ok()
        }
        _ => None,
    };
    match send(gateway, req, oauth, headers, body, url, rpc.as_ref()).await? {
        Sent::Upstream(response) => {
            Ok(crate::proxy::respond(req, response, caller.strip_cookies.as_deref(), crate::proxy::body::response_body))
        }
        Sent::Answer(answer) => Ok(answer),
    }
}

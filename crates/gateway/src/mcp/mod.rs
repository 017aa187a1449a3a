//! MCP-aware routes (`mcp = true`): the gateway reads each JSON-RPC request (bounded), checks the
//! Streamable HTTP metadata headers against it, applies the route's tool policy to `tools/call`
//! (a denied tool is an unknown tool; a tool needing more scopes is a 403 step-up challenge,
//! SEP-835), filters `tools/list` answers to the tools the caller may call, and audits every
//! `tools/call`. The body itself goes upstream byte for byte.

pub mod audit;
pub mod filter;
pub mod headers;
pub mod message;
pub mod policy;
mod respond;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use protocol::error::ErrorCode;
use protocol::scope::Scopes;
use server::config::RouteSettings;
use server::error::OAuthError;

use crate::Gateway;
use crate::principal::Principal;
use crate::proxy::headers as proxy_headers;
use audit::ToolCallEvent;
use message::{Call, ParseError};
use policy::{Decision, ToolPolicy};

/// Largest request body an MCP route reads.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The compiled MCP settings of one route.
#[derive(Debug)]
pub struct McpRoute {
    pub prefix: Arc<str>,
    pub policy: Arc<ToolPolicy>,
    /// The RFC 9728 URL step-up challenges point to (`None` on a public route).
    pub resource_metadata: Option<String>,
}

impl McpRoute {
    pub fn new(route: &RouteSettings, resource_metadata: Option<String>) -> Result<Self, String> {
        Ok(Self {
            prefix: route.prefix.as_str().into(),
            policy: Arc::new(ToolPolicy::from_route(route)?),
            resource_metadata,
        })
    }
}

/// What the policy made of one request's `tools/call`s.
struct Verdict<'a> {
    /// Scopes to step up to (every scope the calls need), if any call lacks some.
    step_up: Option<Scopes>,
    denied: Vec<(&'a Call, &'static str)>,
}

fn judge<'a>(policy: &ToolPolicy, calls: &'a [Call], granted: Option<&Scopes>) -> Verdict<'a> {
    let mut verdict = Verdict { step_up: None, denied: Vec::new() };
    for call in calls {
        let Some(tool) = call.tool() else { continue };
        match policy.decide(tool, granted) {
            Decision::Allow => {}
            Decision::Deny(reason) => verdict.denied.push((call, reason)),
            Decision::NeedScopes(s) => {
                verdict.step_up = Some(verdict.step_up.map_or_else(|| s.clone(), |all| all.union(&s)));
            }
        }
    }
    verdict
}

/// Reads, judges and forwards a request on an MCP route.
pub async fn forward(
    req: &HttpRequest,
    payload: web::Payload,
    url: &http::Uri,
    route: &crate::router::Route,
    mcp: &McpRoute,
    gateway: &Gateway,
) -> Result<HttpResponse, OAuthError> {
    let caller = gateway.upstream_caller(req, route);
    // GET (the server's stream) and DELETE (session end) carry no JSON-RPC request
    if req.method() != Method::POST {
        if let Some(oauth) = &route.oauth {
            return crate::upstream_oauth::forward(gateway, req, payload, url, route, oauth).await;
        }
        return gateway.proxy.forward(req, payload, url, &caller).await;
    }
    let started = Instant::now();
    let body = read_body(req, payload).await?;
    let request = match message::parse(&body) {
        Ok(request) => request,
        Err(ParseError::NotJson) => return Ok(respond::rpc_error(400, None, -32700, "Parse error")),
        Err(ParseError::Invalid(why)) => {
            return Ok(respond::rpc_error(400, None, -32600, &format!("Invalid Request: {why}")));
        }
    };
    if let Err(mismatch) = headers::check(req.headers(), &request) {
        let id = request.calls.first().and_then(|c| c.id.clone());
        return Ok(respond::rpc_error(400, id, -32020, &format!("Header mismatch: {}", mismatch.0)));
    }
    let principal = req.extensions().get::<Principal>().cloned();
    let granted = principal.as_ref().map(Principal::scopes);
    let verdict = judge(&mcp.policy, &request.calls, granted);
    let audit = |call: &Call, allowed: bool, reason: Option<&'static str>, status: Option<u16>| {
        if let (Some(sink), Some(tool)) = (&gateway.audit, call.tool()) {
            sink.record(ToolCallEvent {
                at: gateway.clock.now(),
                caller: principal.clone(),
                // the address the gateway derived (never a client-sent X-Sallyport-Client-Ip)
                ip: caller.client_ip,
                route: Arc::clone(&mcp.prefix),
                tool: tool.into(),
                allowed,
                reason,
                upstream_status: status,
                duration: started.elapsed(),
            });
        }
    };
    if let Some(needed) = verdict.step_up {
        for call in &request.calls {
            audit(call, false, Some("insufficient_scope"), None);
        }
        return Ok(respond::step_up(mcp.resource_metadata.as_deref().unwrap_or_default(), &needed));
    }
    if !verdict.denied.is_empty() {
        for call in &request.calls {
            let reason = verdict.denied.iter().find(|(c, _)| std::ptr::eq(*c, call)).map(|(_, r)| *r);
            audit(call, false, Some(reason.unwrap_or("refused with its batch")), None);
        }
        return Ok(respond::denied(&request, &verdict.denied));
    }

    let list_ids: Vec<serde_json::Value> =
        request.calls.iter().filter(|c| c.method == "tools/list").filter_map(|c| c.id.clone()).collect();
    let filtering = !list_ids.is_empty() && !mcp.policy.is_empty();
    let mut out_headers = proxy_headers::upstream_request_headers(req.headers(), &caller);
    if filtering {
        // the answer is read and rewritten: it must arrive uncompressed
        out_headers.remove(http::header::ACCEPT_ENCODING);
    }
    let sent = match &route.oauth {
        None => gateway.proxy.send(req, out_headers, crate::proxy::RequestBody::full(body), url).await,
        Some(oauth) => {
            use crate::upstream_oauth::{Body, Sent, send};
            match send(gateway, req, oauth, out_headers, Body::Kept(body), url, Some(&request)).await {
                Ok(Sent::Upstream(response)) => Ok(response),
                Ok(Sent::Answer(answer)) => {
                    for call in &request.calls {
                        audit(call, false, Some("upstream_authorization_required"), None);
                    }
                    return Ok(answer);
                }
                Err(e) => Err(e),
            }
        }
    };
    let status = sent.as_ref().ok().map(|r| r.status().as_u16());
    for call in &request.calls {
        audit(call, true, if status.is_none() { Some("upstream unavailable") } else { None }, status);
    }
    let response = sent?;
    if !filtering {
        return Ok(crate::proxy::respond(
            req,
            response,
            caller.strip_cookies.as_deref(),
            crate::proxy::body::response_body,
        ));
    }
    let policy = Arc::clone(&mcp.policy);
    let granted = granted.cloned();
    let keep = move |name: &str| policy.decide(name, granted.as_ref()).visible();
    respond::filtered(req, response, caller.strip_cookies.as_deref(), filter::ToolsFilter { ids: list_ids, keep }).await
}

/// The request body, at most [`BODY_LIMIT`] bytes (413 beyond, before reading when declared).
pub(crate) async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Bytes, OAuthError> {
    let too_large = || OAuthError::new(ErrorCode::PayloadTooLarge, "the MCP request body is larger than 1 MiB");
    let declared = proxy_headers::content_length(req.headers());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let unreadable =
        |e: actix_web::error::PayloadError| OAuthError::invalid_request(format!("cannot read the request body: {e}"));
    // a small body usually arrives in one chunk: kept as it is, not copied into a new buffer
    let Some(first) = payload.next().await.transpose().map_err(unreadable)? else {
        return Ok(Bytes::new());
    };
    if first.len() > BODY_LIMIT {
        return Err(too_large());
    }
    let Some(second) = payload.next().await.transpose().map_err(unreadable)? else {
        return Ok(first);
    };
    let mut buf = BytesMut::with_capacity(declared.map_or(8 * 1024, |n| usize::try_from(n).unwrap_or(0)));
    buf.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if buf.len() + chunk.len() > BODY_LIMIT {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
        next = payload.next().await.transpose().map_err(unreadable)?;
    }
    Ok(buf.freeze())
}

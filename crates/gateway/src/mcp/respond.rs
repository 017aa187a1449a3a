//! The answers an MCP route gives itself: JSON-RPC errors, the SEP-835 step-up challenge, and the
//! upstream's `tools/list` answer with the caller's hidden tools taken out.

use actix_web::body::{BodyStream, MessageBody};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use protocol::error::ErrorCode;
use protocol::scope::Scopes;
use server::error::OAuthError;

use super::filter::{MAX_HELD, SseFilter, ToolsFilter};
use super::message::{Call, Request};
use crate::bearer::{ChallengeParams, Rejection};
use crate::proxy::UpstreamResponse;

fn error_object(id: Option<Value>, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": {"code": code, "message": message}})
}

/// A JSON-RPC error response with this HTTP status.
pub fn rpc_error(status: u16, id: Option<Value>, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json")
        .body(error_object(id, code, message).to_string())
}

/// 403 with one `WWW-Authenticate: Bearer error="insufficient_scope", scope="…",
/// resource_metadata="…"` naming every scope the call needs (SEP-835 step-up).
pub fn step_up(resource_metadata: &str, needed: &Scopes) -> HttpResponse {
    Rejection::InsufficientScope.response(&ChallengeParams { resource_metadata, scopes: needed })
}

/// Refused tools are unknown tools (MCP "Tools", error handling: -32602): the answer says nothing
/// of the policy. HTTP 200, as for any JSON-RPC error of a processed request. A batch holding a
/// refused call is refused whole: it cannot be forwarded in part without changing its bytes.
pub fn denied(request: &Request, denied: &[(&Call, &'static str)]) -> HttpResponse {
    let answer = |call: &Call| {
        let id = call.id.clone()?;
        Some(if denied.iter().any(|(d, _)| std::ptr::eq(*d, call)) {
            error_object(Some(id), -32602, &format!("Unknown tool: {}", call.name.as_deref().unwrap_or_default()))
        } else {
            error_object(Some(id), -32600, "Invalid Request: the batch holds a call that was refused")
        })
    };
    let answers: Vec<Value> = request.calls.iter().filter_map(answer).collect();
    let body = match (request.batch, answers.as_slice()) {
        // notifications only: nothing to answer (Streamable HTTP: 202 Accepted)
        (_, []) => return HttpResponse::Accepted().finish(),
        (false, [one]) => one.to_string(),
        _ => Value::Array(answers).to_string(),
    };
    HttpResponse::Ok().content_type("application/json").body(body)
}

fn media_type(response: &UpstreamResponse) -> String {
    let value = response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn unfilterable() -> OAuthError {
    OAuthError::new(ErrorCode::TemporarilyUnavailable, "the upstream's tool list cannot be read")
        .with_status(StatusCode::BAD_GATEWAY)
}

/// The upstream's answer to a request holding `tools/list`, filtered: a JSON answer is read whole
/// (bounded) and rewritten; an event stream is rewritten event by event as it flows.
pub async fn filtered<K>(
    req: &HttpRequest,
    response: UpstreamResponse,
    strip_cookies: Option<&server::cookies::OwnCookies>,
    filter: ToolsFilter<K>,
) -> Result<HttpResponse, OAuthError>
where
    K: Fn(&str) -> bool + 'static,
{
    let encoded = response
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let media = media_type(&response);
    match media.as_str() {
        "application/json" if !encoded => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let headers = crate::proxy::headers::client_response_headers(response.headers(), false, strip_cookies);
            let body = filter.json(&read_limited(response).await?).ok_or_else(unfilterable)?;
            let mut res = HttpResponse::new(status);
            crate::metered::mark_forwarded(&mut res);
            *res.headers_mut() = headers;
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(res.set_body(body.boxed()))
        }
        "text/event-stream" if !encoded => Ok(crate::proxy::respond(req, response, strip_cookies, |upstream, _| {
            let mut sse = SseFilter::new(filter);
            let events =
                crate::proxy::body::data_stream(upstream).map(Some).chain(futures_util::stream::once(async { None }));
            let out = events.map(move |item| match item {
                Some(Ok(chunk)) => sse.push(&chunk).map_err(|_| std::io::Error::other("an event is too long")),
                Some(Err(e)) => Err(std::io::Error::other(e.to_string())),
                None => Ok(sse.finish()),
            });
            BodyStream::new(out.filter(|r| std::future::ready(!matches!(r, Ok(b) if b.is_empty())))).boxed()
        })),
        // an error status without a tool list, or a body the filter cannot read
        _ if response.status().is_success() => Err(unfilterable()),
        _ => Ok(crate::proxy::respond(req, response, strip_cookies, crate::proxy::body::response_body)),
    }
}

async fn read_limited(upstream: UpstreamResponse) -> Result<Bytes, OAuthError> {
    let mut stream = crate::proxy::body::data_stream(upstream);
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unfilterable())?;
        if buf.len() + chunk.len() > MAX_HELD {
            return Err(unfilterable());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

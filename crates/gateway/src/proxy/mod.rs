//! The streaming reverse proxy: pooled upstream clients (hyper-util's, [`client`]), a connect
//! timeout and a time-to-headers timeout, bodies streamed both ways. Upstream failures are JSON:
//! 502 when the upstream cannot be reached or breaks off, 504 when it is too slow to answer.

pub mod body;
pub mod client;
pub mod credential;
pub mod headers;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use http::Uri;

use protocol::error::ErrorCode;
use server::cookies::OwnCookies;
use server::error::OAuthError;
use server::telemetry::propagation;

pub use body::RequestBody;
pub use client::UpstreamResponse;
pub use credential::UpstreamCredential;
pub use headers::Caller;

use crate::worker_client::WorkerClient;

/// Timeouts of the upstream connections.
#[derive(Debug, Clone, Copy)]
pub struct ProxyConfig {
    pub connect_timeout: Duration,
    /// From sending the request to the upstream's response headers; a streamed body may then
    /// last as long as it lasts (an SSE stream for hours).
    pub header_timeout: Duration,
    /// Traces on: each upstream request is a client span whose context goes on as `traceparent`.
    pub traces: bool,
}

/// The reverse proxy, shared by every worker; each worker has its own connection pool
/// ([`WorkerClient`]), so that a worker that drains at shutdown never cuts another's streams.
#[derive(Debug, Clone)]
pub struct Proxy {
    client: WorkerClient<client::UpstreamClient, std::convert::Infallible>,
    header_timeout: Duration,
    traces: bool,
}

impl Proxy {
    /// Fails when the TLS settings cannot be made (no crypto provider, the platform verifier).
    pub fn new(config: ProxyConfig) -> Result<Self, rustls::Error> {
        let tls = Arc::new(client::tls_config()?);
        let Ok(client) = WorkerClient::try_with(move || Ok(client::build(Arc::clone(&tls), config.connect_timeout)));
        Ok(Self { client, header_timeout: config.header_timeout, traces: config.traces })
    }

    /// Forwards the request to `uri` and streams the answer back.
    pub async fn forward(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        uri: &Uri,
        caller: &Caller,
    ) -> Result<HttpResponse, OAuthError> {
        let out_headers = headers::upstream_request_headers(req.headers(), caller);
        let body =
            body::request_body(payload, headers::has_body(req.headers()), headers::content_length(req.headers()))
                .await?;
        let response = self.send(req, out_headers, body, uri).await?;
        Ok(respond(req, response, caller.strip_cookies.as_deref(), body::response_body))
    }

    /// Sends a request to `uri` with these headers and body; the answer once its headers are in.
    pub async fn send(
        &self,
        req: &HttpRequest,
        mut out_headers: http::HeaderMap,
        body: RequestBody,
        uri: &Uri,
    ) -> Result<UpstreamResponse, OAuthError> {
        if !self.traces {
            return self.send_untraced(req, out_headers, body, uri).await;
        }
        use tracing::Instrument;
        let port = uri.port_u16().unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 });
        let span = propagation::client_span(req.method().as_str(), uri.host().unwrap_or_default(), port);
        propagation::inject(&span, &mut out_headers);
        let result = self.send_untraced(req, out_headers, body, uri).instrument(span.clone()).await;
        propagation::record_status(&span, result.as_ref().ok().map(|r| r.status().as_u16()));
        result
    }

    async fn send_untraced(
        &self,
        req: &HttpRequest,
        out_headers: http::HeaderMap,
        body: RequestBody,
        uri: &Uri,
    ) -> Result<UpstreamResponse, OAuthError> {
        let method = http::Method::from_bytes(req.method().as_str().as_bytes())
            .map_err(|_| OAuthError::invalid_request("unsupported method"))?;
        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        // moved in whole, never rebuilt header by header
        *request.headers_mut() = out_headers;
        // the future owns what it needs: the client is not cloned for it
        let Ok(sent) = self.client.with(|client| client.request(request));
        match tokio::time::timeout(self.header_timeout, sent).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(upstream_error(&e, uri)),
            Err(_) => {
                tracing::warn!(upstream = %host_of(uri), "upstream did not answer in time");
                Err(timeout_error())
            }
        }
    }
}

/// The client's response for an upstream answer: its status and end-to-end headers, and the body
/// `body` makes of it for the framing the status, method and length call for; an upstream
/// (`strip_cookies`) cannot set Sallyport's cookies.
pub fn respond(
    req: &HttpRequest,
    response: UpstreamResponse,
    strip_cookies: Option<&OwnCookies>,
    body: impl FnOnce(UpstreamResponse, body::Framing) -> actix_web::body::BoxBody,
) -> HttpResponse {
    let head = req.method() == actix_web::http::Method::HEAD;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let framing = body::framing(status.as_u16(), head, length);
    let mut res = HttpResponse::new(status);
    *res.headers_mut() =
        headers::client_response_headers(response.headers(), status == StatusCode::NOT_MODIFIED, strip_cookies);
    crate::metered::mark_forwarded(&mut res);
    res.set_body(body(response, framing))
}

fn host_of(uri: &Uri) -> &str {
    uri.authority().map_or("", http::uri::Authority::as_str)
}

fn timeout_error() -> OAuthError {
    OAuthError::new(ErrorCode::TemporarilyUnavailable, "the upstream service did not answer in time")
        .with_status(StatusCode::GATEWAY_TIMEOUT)
}

/// 504 for timeouts (connecting included), 502 for everything else: refused, reset, garbage, a
/// certificate the platform does not trust. The URI is left out of the log: its query may carry
/// an authorization code.
fn upstream_error(e: &hyper_util::client::legacy::Error, uri: &Uri) -> OAuthError {
    tracing::warn!(upstream = %host_of(uri), error = %client::Chain(e), "upstream request failed");
    if client::is_timeout(e) {
        return timeout_error();
    }
    OAuthError::new(ErrorCode::TemporarilyUnavailable, "the upstream service is unavailable")
        .with_status(StatusCode::BAD_GATEWAY)
}

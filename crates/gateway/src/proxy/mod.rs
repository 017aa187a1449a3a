//! The streaming reverse proxy: pooled reqwest clients, a connect timeout and a time-to-headers
//! timeout, bodies streamed both ways. Upstream failures are JSON: 502 when the upstream cannot be
//! reached or breaks off, 504 when it is too slow to answer.

pub mod body;
pub mod credential;
pub mod headers;

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use protocol::error::ErrorCode;
use server::cookies::OwnCookies;
use server::error::OAuthError;
use server::telemetry::propagation;

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
    client: WorkerClient,
    header_timeout: Duration,
    traces: bool,
}

impl Proxy {
    pub fn new(config: ProxyConfig) -> Result<Self, reqwest::Error> {
        let client = WorkerClient::new(move || {
            reqwest::Client::builder()
                .connect_timeout(config.connect_timeout)
                // a proxy passes redirects on; the client decides whether to follow them
                .redirect(reqwest::redirect::Policy::none())
                // upstreams are reached directly, whatever HTTP(S)_PROXY says
                .no_proxy()
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(90))
        })?;
        Ok(Self { client, header_timeout: config.header_timeout, traces: config.traces })
    }

    /// Forwards the request to `url` and streams the answer back.
    pub async fn forward(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        url: &reqwest::Url,
        caller: &Caller,
    ) -> Result<HttpResponse, OAuthError> {
        let out_headers = headers::upstream_request_headers(req.headers(), caller);
        let body =
            body::request_body(payload, headers::has_body(req.headers()), headers::content_length(req.headers()))
                .await?;
        let response = self.send(req, out_headers, body, url).await?;
        Ok(respond(req, response, caller.strip_cookies.as_deref(), body::response_body))
    }

    /// Sends a request to `url` with these headers and body; the answer once its headers are in.
    pub async fn send(
        &self,
        req: &HttpRequest,
        mut out_headers: reqwest::header::HeaderMap,
        body: Option<reqwest::Body>,
        url: &reqwest::Url,
    ) -> Result<reqwest::Response, OAuthError> {
        if !self.traces {
            return self.send_untraced(req, out_headers, body, url).await;
        }
        use tracing::Instrument;
        let host = url.host_str().unwrap_or_default();
        let span = propagation::client_span(req.method().as_str(), host, url.port_or_known_default().unwrap_or(0));
        propagation::inject(&span, &mut out_headers);
        let result = self.send_untraced(req, out_headers, body, url).instrument(span.clone()).await;
        propagation::record_status(&span, result.as_ref().ok().map(|r| r.status().as_u16()));
        result
    }

    async fn send_untraced(
        &self,
        req: &HttpRequest,
        out_headers: reqwest::header::HeaderMap,
        body: Option<reqwest::Body>,
        url: &reqwest::Url,
    ) -> Result<reqwest::Response, OAuthError> {
        let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
            .map_err(|_| OAuthError::invalid_request("unsupported method"))?;
        let client = self.client.get().map_err(upstream_error)?;
        let mut request = client.request(method, url.clone()).build().map_err(|e| {
            tracing::warn!(error = %e, "cannot build the upstream request");
            OAuthError::invalid_request("the request cannot be forwarded")
        })?;
        // moved in whole: `RequestBuilder::headers` would insert them one by one into a new map
        // (hashing each name again) for every request
        *request.headers_mut() = out_headers;
        *request.body_mut() = body;
        match tokio::time::timeout(self.header_timeout, client.execute(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(upstream_error(e)),
            Err(_) => {
                tracing::warn!(upstream = %host_of(url), "upstream did not answer in time");
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
    response: reqwest::Response,
    strip_cookies: Option<&OwnCookies>,
    body: impl FnOnce(reqwest::Response, body::Framing) -> actix_web::body::BoxBody,
) -> HttpResponse {
    let head = req.method() == actix_web::http::Method::HEAD;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let length = response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let framing = body::framing(status.as_u16(), head, length);
    let mut res = HttpResponse::new(status);
    *res.headers_mut() =
        headers::client_response_headers(response.headers(), status == StatusCode::NOT_MODIFIED, strip_cookies);
    crate::metered::mark_forwarded(&mut res);
    res.set_body(body(response, framing))
}

fn host_of(url: &reqwest::Url) -> String {
    url.host_str().map(|h| format!("{h}:{}", url.port_or_known_default().unwrap_or(0))).unwrap_or_default()
}

fn timeout_error() -> OAuthError {
    OAuthError::new(ErrorCode::TemporarilyUnavailable, "the upstream service did not answer in time")
        .with_status(StatusCode::GATEWAY_TIMEOUT)
}

/// 504 for timeouts (connecting included), 502 for everything else: refused, reset, garbage.
/// The URL is left out of the log: its query may carry an authorization code.
fn upstream_error(e: reqwest::Error) -> OAuthError {
    let upstream = e.url().map(host_of).unwrap_or_default();
    let timeout = e.is_timeout();
    tracing::warn!(%upstream, error = %e.without_url(), "upstream request failed");
    if timeout {
        return timeout_error();
    }
    OAuthError::new(ErrorCode::TemporarilyUnavailable, "the upstream service is unavailable")
        .with_status(StatusCode::BAD_GATEWAY)
}

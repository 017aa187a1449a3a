//! W3C Trace Context (`traceparent`, `tracestate`) across Sallyport's hops: a span per request
//! whose parent is the caller's `traceparent` only when the caller is trusted, and the current
//! span's context written into the requests this process sends on (the gateway to the services
//! and upstreams).
//!
//! Who is trusted: at the gateway (the edge), the callers of `telemetry.trusted_traceparent_sources`;
//! at a service, also the gateway when the service trusts its client-address header
//! (`trust_forwarded_for`: the service is reachable only through the gateway, which replaces
//! `traceparent` on every request it forwards). Anyone else's request starts a new trace: a client
//! cannot join its requests to someone else's trace, nor choose our trace ids.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TARGET;
use crate::config::{Settings, TrustedNet};

/// The W3C Trace Context headers (`traceparent`, `tracestate`).
pub const HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Whose `traceparent` a server adopts; present only when traces are on.
#[derive(Debug, Clone)]
pub struct TraceTrust {
    sources: Vec<TrustedNet>,
    /// A service behind the gateway (`trust_forwarded_for`) adopts whatever reaches it.
    behind_gateway: bool,
}

impl TraceTrust {
    /// The trust these settings give, or `None` when traces are off.
    pub fn from_settings(settings: &Settings) -> Option<Arc<Self>> {
        settings.telemetry.enabled().then(|| {
            Arc::new(Self {
                sources: settings.telemetry.trusted_traceparent_sources.clone(),
                behind_gateway: settings.trust_forwarded_for,
            })
        })
    }

    /// Trusts no caller (what a server holds, unused, when traces are off).
    pub fn nobody() -> Self {
        Self { sources: Vec::new(), behind_gateway: false }
    }

    /// Whether a server adopts the `traceparent` of a request from `peer`; `edge` is the gateway,
    /// whose callers are clients.
    pub fn adopts(&self, peer: Option<IpAddr>, edge: bool) -> bool {
        (!edge && self.behind_gateway) || peer.is_some_and(|ip| self.sources.iter().any(|n| n.contains(ip)))
    }
}

struct ActixHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for ActixHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct ReqwestHeaders<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for ReqwestHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        // an empty `tracestate` (no vendor entries) says nothing: none is sent
        if value.is_empty() {
            self.0.remove(key);
            return;
        }
        if let (Ok(name), Ok(value)) =
            (reqwest::header::HeaderName::from_bytes(key.as_bytes()), reqwest::header::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Writes the context of `span` as `traceparent` (and `tracestate`) into `headers`, replacing any
/// there; nothing when the span is not traced (traces off, or no exporter in this process).
pub fn inject(span: &tracing::Span, headers: &mut reqwest::header::HeaderMap) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut ReqwestHeaders(headers));
    }
}

/// The span of an outgoing HTTP request (OpenTelemetry's client kind), named for its method.
pub fn client_span(method: &str, host: &str, port: u16) -> tracing::Span {
    tracing::trace_span!(
        target: TARGET,
        "upstream",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        server.address = host,
        server.port = port,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    )
}

/// Records the answer's status on a client span (an error status from 500 up, or when none came).
pub fn record_status(span: &tracing::Span, status: Option<u16>) {
    match status {
        Some(status) => {
            span.record("http.response.status_code", status);
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
            }
        }
        None => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The shared middleware when traces are on: one server span per request, named
/// `<method> <route template>` (never the raw path: it may hold a client id), child of the
/// caller's trace when [`TraceTrust::adopts`] it.
pub async fn request_span(
    trust: Arc<TraceTrust>,
    service: &'static str,
    edge: bool,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = req.method().as_str().to_owned();
    let span = tracing::trace_span!(
        target: TARGET,
        super::REQUEST_SPAN,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = Empty,
        http.response.status_code = Empty,
        sallyport.service = service,
    );
    if trust.adopts(req.peer_addr().map(|a| a.ip()), edge) {
        let parent = TraceContextPropagator::new().extract(&ActixHeaders(req.headers()));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    super::json::remember_ids(&span);
    let result = next.call(req).instrument(span.clone()).await;
    let (status, route) = match &result {
        Ok(res) => (res.status().as_u16(), crate::metrics::http::route_label(res.request())),
        Err(e) => (e.as_response_error().status_code().as_u16(), "unknown".into()),
    };
    // the route is known only now, after the span started: rename it through OpenTelemetry
    // (`otel.name` recorded on a started span is not applied)
    span.context().span().update_name(format!("{method} {route}"));
    span.record("http.route", route.as_ref());
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    result
}

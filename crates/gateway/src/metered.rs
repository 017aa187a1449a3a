//! The gateway's per-route metrics: what became of each request (forwarded, or answered by the
//! gateway itself with 401, 403, 429, a 502/504 for its upstream, another refusal) and how long
//! the upstream took to answer. Labels are the routes' configured prefixes and the
//! authorization-server mounts, never the request path.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};
use server::metrics::GatewayRouteMetrics;
use server::metrics::http::RouteLabel;

/// Marks a response as the upstream's answer passed on (set where the proxy builds it); every
/// other response of a gateway route is the gateway's own.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded;

pub fn mark_forwarded(res: &mut HttpResponse) {
    res.extensions_mut().insert(Forwarded);
}

/// The outermost middleware of a gateway route: names the route for the request-latency
/// histogram and counts the outcome.
pub async fn count(
    route: GatewayRouteMetrics,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(label) = route.route() {
        req.extensions_mut().insert(RouteLabel(label.clone()));
    }
    let result = next.call(req).await;
    match &result {
        Ok(res) => {
            let forwarded = res.response().extensions().get::<Forwarded>().is_some();
            route.answered(res.status().as_u16(), !forwarded);
        }
        Err(e) => route.answered(e.as_response_error().status_code().as_u16(), true),
    }
    result
}

/// Times a forward from the handler's start to the upstream's response headers (or the 502/504
/// that replaced them); the gateway's own answers on the way (an MCP tool refused) are not
/// upstream time.
pub async fn time_upstream<F>(route: &GatewayRouteMetrics, forward: F) -> Result<HttpResponse, server::OAuthError>
where
    F: Future<Output = Result<HttpResponse, server::OAuthError>>,
{
    let started = Instant::now();
    let result = forward.await;
    let upstream = match &result {
        Ok(res) => res.extensions().get::<Forwarded>().is_some(),
        Err(e) => matches!(actix_web::ResponseError::status_code(e).as_u16(), 502 | 504),
    };
    if upstream {
        route.upstream_seconds(started.elapsed().as_secs_f64());
    }
    result
}

//! The authorization server's public endpoints: per-IP budgets, then straight to the service.

use actix_web::{HttpRequest, HttpResponse, web};

use server::error::OAuthError;
use server::metrics::GatewayRouteMetrics;

use crate::Gateway;
use crate::router::AsMount;

/// Any method on an AS path: forwarded (without the issuer's path) to the service that owns it.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    mount: web::Data<AsMount>,
    gateway: web::Data<Gateway>,
    metrics: web::Data<GatewayRouteMetrics>,
) -> Result<HttpResponse, OAuthError> {
    gateway.spend(mount.endpoint.budget, &req)?;
    let url = mount.upstream_url(req.path(), req.query_string());
    let caller = crate::proxy::Caller { upstream_host: Some(mount.base.host_header()), ..gateway.caller(&req) };
    crate::metered::time_upstream(&metrics, gateway.proxy.forward(&req, payload, &url, &caller)).await
}

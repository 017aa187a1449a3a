//! A configured upstream route. When it is protected, the bearer middleware has already checked
//! the token and removed the client's credentials; the proxy sends the verified identity on.

use actix_web::{HttpRequest, HttpResponse, web};

use server::error::OAuthError;
use server::metrics::GatewayRouteMetrics;

use crate::Gateway;
use crate::mcp::McpRoute;
use crate::metered::time_upstream;
use crate::router::Route;

/// Any method below the route's prefix: forwarded to the upstream, the prefix replaced by the
/// upstream URL's path.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    route: web::Data<Route>,
    gateway: web::Data<Gateway>,
    mcp: Option<web::Data<McpRoute>>,
    metrics: web::Data<GatewayRouteMetrics>,
) -> Result<HttpResponse, OAuthError> {
    // the path is canonical (routes::configure refused any other): the upstream gets the path matched
    let url = route.upstream_url(req.path(), req.query_string());
    if let Some(mcp) = mcp {
        // an MCP route with upstream_auth = "oauth2" sends the user's token from there
        return time_upstream(&metrics, crate::mcp::forward(&req, payload, &url, &route, &mcp, &gateway)).await;
    }
    if let Some(oauth) = &route.oauth {
        return time_upstream(&metrics, crate::upstream_oauth::forward(&gateway, &req, payload, &url, &route, oauth))
            .await;
    }
    time_upstream(&metrics, gateway.proxy.forward(&req, payload, &url, &gateway.upstream_caller(&req, &route))).await
}

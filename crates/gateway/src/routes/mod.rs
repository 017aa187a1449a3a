//! The route table. A path that is not canonical (`crate::path`) is refused first, before any
//! route is chosen; then come the authorization server's paths, then the configured routes,
//! longest prefix first; each is a scope matched by a segment-boundary guard on the raw path, so
//! a protected prefix catches every method and sub-path (401 before any 404 or 405).

mod auth_server;
mod upstream;

use std::sync::Arc;

use actix_web::guard::{Guard, GuardContext};
use actix_web::middleware::{Condition, from_fn};
use actix_web::web;
use server::error::OAuthError;

use crate::Gateway;
use crate::router::prefix_matches;

/// Matches paths at or below a prefix.
struct PathPrefix(String);

impl Guard for PathPrefix {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        prefix_matches(ctx.head().uri.path(), &self.0)
    }
}

/// Matches paths that are not canonical.
struct NonCanonical;

impl Guard for NonCanonical {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        crate::path::non_canonical(ctx.head().uri.path()).is_some()
    }
}

/// 400 with the reason, for any method (CORS preflights included: no route was chosen).
async fn refuse(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, OAuthError> {
    let why = crate::path::non_canonical(req.path()).unwrap_or("the path is not canonical");
    Err(OAuthError::invalid_request(why))
}

pub fn configure(cfg: &mut web::ServiceConfig, gateway: &Arc<Gateway>) {
    // the per-route count (`crate::metered`) as a scope's outermost middleware; absent with metrics
    // off. A macro: each use wraps a scope of another body type.
    macro_rules! counted {
        ($route:expr) => {{
            let route = $route.clone();
            Condition::new(
                gateway.metrics.enabled(),
                from_fn(move |req, next| crate::metered::count(route.clone(), req, next)),
            )
        }};
    }
    cfg.app_data(web::Data::from(Arc::clone(gateway)));
    cfg.service(web::scope("").guard(NonCanonical).default_service(web::to(refuse)));
    for mount in &gateway.as_mounts {
        let metrics = gateway.metrics.gateway_route(&mount.mount);
        let scope = web::scope("")
            .guard(PathPrefix(mount.mount.clone()))
            .app_data(web::Data::new(mount.clone()))
            .app_data(web::Data::new(metrics.clone()))
            .default_service(web::to(auth_server::forward));
        if mount.endpoint.public_cors {
            cfg.service(scope.wrap(gateway.public_cors.clone()).wrap(counted!(metrics)));
        } else {
            cfg.service(scope.wrap(counted!(metrics)));
        }
    }
    for entry in &gateway.routes {
        let label = if entry.route.prefix.is_empty() { "/" } else { entry.route.prefix.as_str() };
        let metrics = gateway.metrics.gateway_route(label);
        let mut scope = web::scope("")
            .guard(PathPrefix(entry.route.prefix.clone()))
            .app_data(web::Data::new(entry.route.clone()))
            .app_data(web::Data::new(metrics.clone()))
            .default_service(web::to(upstream::forward));
        if let Some(mcp) = &entry.mcp {
            scope = scope.app_data(web::Data::from(Arc::clone(mcp)));
        }
        // the last wrap runs first: the count (so that it sees every refusal), CORS and the origin
        // check, then the bearer check
        match &entry.bearer {
            Some(bearer) => cfg.service(scope.wrap(bearer.clone()).wrap(entry.cors.clone()).wrap(counted!(metrics))),
            None => cfg.service(scope.wrap(entry.cors.clone()).wrap(counted!(metrics))),
        };
    }
    // after every configured route, so that none of them pays for the table's
    cfg.service(
        web::scope("")
            .guard(crate::db_routes::Serves(Arc::clone(gateway)))
            .default_service(crate::db_routes::Dispatch(Arc::clone(gateway))),
    );
}

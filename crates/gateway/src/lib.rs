//! The gateway: routes the authorization server's public paths to its services and puts RFC 6750
//! bearer-token checks in front of protected upstreams, proxying their (streamed) responses.
//!
//! The pieces are usable on their own: [`BearerAuth`] (with [`TokenVerifier`] and [`Principal`])
//! protects any actix resource server, [`Cors`] gives it the browser `Origin` allow-list, and
//! [`proxy::Proxy`] is the streaming reverse proxy.
//!
//! Dependency rule (`.ci/check-deps`): the floors and nothing beside them; it talks to the
//! services over HTTP only (CONTRACTS.md), and reaches Postgres only to record tool calls, read the
//! routes of `gateway_routes` and read and refresh users' upstream tokens (`upstream_connections`).
//! - Sallyport crates: `protocol`, `store`, `server`.

pub mod bearer;
pub mod cors;
mod db_routes;
pub mod mcp;
mod metered;
pub mod middleware;
pub mod path;
pub mod principal;
pub mod proxy;
pub mod router;
mod routes;
pub mod upstream_oauth;
pub mod verifier;
pub mod worker_client;

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};
use protocol::Clock;
use server::config::{
    DatabaseSettings, GatewaySettings, Issuer, ResourceSettings, ServiceUrls, Settings, TelemetrySettings,
};
use server::cookies::OwnCookies;
use server::error::OAuthError;
use server::ratelimit::IpRateLimiter;
use server::service::{BuildError, Context, ServiceApp};

pub use bearer::{BearerAuth, ResourcePolicy};
pub use cors::Cors;
pub use principal::Principal;
pub use verifier::{TokenVerifier, VerifierConfig};

use proxy::{Caller, Proxy, ProxyConfig};
use router::{AsMount, Budget, Route};

/// A protected (or public) upstream route, ready to mount.
struct RouteEntry {
    route: Route,
    bearer: Option<BearerAuth>,
    cors: Cors,
    mcp: Option<Arc<mcp::McpRoute>>,
}

/// What turns a route's settings into a [`RouteEntry`]: the same for configured routes and for
/// those of the `gateway_routes` table.
struct RouteCompiler {
    verifier: Arc<TokenVerifier>,
    registry: Arc<server::registry::ResourceRegistry>,
    pool: store::db::Pool,
    issuer_origin: String,
    /// The issuer, for the connect pages of `oauth2` routes.
    issuer: String,
}

impl RouteCompiler {
    /// The bearer check, CORS and MCP policy of a route; an error names what is wrong.
    fn compile(&self, route: Route) -> Result<RouteEntry, String> {
        let bearer = match ResourcePolicy::from_route(&route.settings).filter(|_| route.settings.auth) {
            Some(policy) => Some(BearerAuth::with_registry(
                Arc::clone(&self.verifier),
                policy,
                Arc::clone(&self.registry),
                self.pool.clone(),
            )?),
            None => None,
        };
        let mut own = vec![self.issuer_origin.clone()];
        if let Some(resource) =
            route.settings.resource.as_deref().and_then(|r| protocol::uri::ResourceUri::parse(r).ok())
        {
            own.push(resource.origin());
        }
        let cors = Cors::for_resource(&route.settings.allowed_origins, &own)?;
        let mcp = match route.settings.mcp {
            true => Some(Arc::new(mcp::McpRoute::new(
                &route.settings,
                bearer.as_ref().map(|b| b.resource_metadata().to_owned()),
            )?)),
            false => None,
        };
        Ok(RouteEntry { route, bearer, cors, mcp })
    }
}

/// Per-IP budgets of the authorization server's costly endpoints.
struct Budgets {
    register: IpRateLimiter,
    token: IpRateLimiter,
    login: IpRateLimiter,
}

/// What the gateway takes from the settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub issuer: Issuer,
    pub resources: Vec<ResourceSettings>,
    /// Where the authorization server's services are.
    pub services: ServiceUrls,
    /// `sessions.cookie_name`: Sallyport's cookies never reach an upstream.
    pub cookie_name: String,
    pub gateway: GatewaySettings,

    /// `keys.encryption_key`: opens the sealed credentials of routes in the `gateway_routes` table.
    pub encryption_key: Option<server::config::EncryptionKey>,
    /// Where the tool-call audit writes (a connection of its own, besides the pool).
    pub database: DatabaseSettings,
    /// Traces on or off, and whose `traceparent` passes.
    pub telemetry: TelemetrySettings,
}

impl From<&Settings> for Config {
    fn from(s: &Settings) -> Self {
        Self {
            issuer: s.issuer.clone(),
            resources: s.resources.clone(),
            services: s.services.clone(),
            cookie_name: s.sessions.cookie_name.clone(),
            gateway: s.gateway.clone(),

            encryption_key: s.keys.encryption_key.clone(),
            database: s.database.clone(),
            telemetry: s.telemetry.clone(),
        }
    }
}

/// Everything the gateway's handlers share, across workers.
pub struct Gateway {
    /// Trust `X-Forwarded-For` from the peer (`gateway.trust_forwarded_for`).
    trust_forwarded_for: bool,
    proxy: Proxy,
    budgets: Budgets,
    as_mounts: Vec<AsMount>,
    public_cors: Cors,
    routes: Vec<RouteEntry>,
    /// Routes from the `gateway_routes` table, reloaded every few seconds.
    db_routes: Arc<db_routes::DbRoutes>,
    /// Users' upstream tokens of `oauth2` routes, cached and refreshed.
    connections: Arc<upstream_oauth::Connections>,
    /// Sallyport's cookies, which no upstream route sees or sets.
    own_cookies: Arc<OwnCookies>,
    clock: Clock,
    /// The tool-call audit of MCP routes, when on.
    audit: Option<mcp::audit::AuditSink>,
    metrics: server::metrics::Metrics,
    telemetry: TelemetrySettings,
}

impl Gateway {
    /// Builds the routing table, the proxy and the verifier; a route the middleware cannot
    /// compile (bad resource, scope or origin) is an error that names it.
    pub fn new(
        config: &Config,
        clock: Clock,
        pool: store::db::Pool,
        metrics: &server::metrics::Metrics,
    ) -> Result<Self, BuildError> {
        let g = &config.gateway;
        let proxy = Proxy::new(ProxyConfig {
            connect_timeout: g.upstream_connect_timeout_ms,
            header_timeout: g.upstream_timeout_ms,
            traces: config.telemetry.enabled(),
        })?;
        let verifier =
            Arc::new(TokenVerifier::new(VerifierConfig::from_config(config), clock.clone())?.with_metrics(metrics));
        let issuer_origin = config.issuer.origin().to_owned();
        let registry = Arc::new(server::registry::ResourceRegistry::new(&config.resources)?);
        let issuer = config.issuer.to_string();
        let compiler = RouteCompiler { verifier, registry, pool: pool.clone(), issuer_origin, issuer: issuer.clone() };
        let kek = config.encryption_key.as_ref().map(|k| *k.bytes());
        let mut routes = Vec::new();
        for mut route in router::routes_longest_first(&g.routes) {
            let prefix = route.settings.prefix.clone();
            let named = |e: String| format!("gateway route {prefix}: {e}");
            route.credential =
                proxy::UpstreamCredential::new(route.settings.upstream_auth, &route.settings.upstream_credential())
                    .map_err(named)?
                    .map(Arc::new);
            if route.settings.upstream_auth == protocol::upstream_auth::UpstreamAuth::OAuth2 {
                if kek.is_none() {
                    return Err(named(
                        "upstream_auth = \"oauth2\" needs keys.encryption_key (users' tokens are sealed under it)"
                            .into(),
                    )
                    .into());
                }
                let settings = route.settings.upstream_oauth.clone().unwrap_or_default();
                route.oauth = Some(Arc::new(upstream_oauth::OAuthRoute::new(
                    &route.prefix,
                    settings.explicit(),
                    settings.client_secret.as_ref().map(|s| s.secret().clone()),
                    &issuer,
                    route.settings.mcp,
                )));
            }
            routes.push(compiler.compile(route).map_err(named)?);
        }
        let configured_prefixes = routes.iter().map(|e| e.route.prefix.clone()).collect();
        let connections = Arc::new(
            upstream_oauth::Connections::new(pool, kek, g.token_cache_capacity, clock.clone(), metrics.clone())
                .map_err(|e| format!("upstream token client: {e}"))?,
        );
        let db_routes = Arc::new(db_routes::DbRoutes::new(
            compiler,
            configured_prefixes,
            config.encryption_key.clone(),
            metrics.clone(),
        ));
        Ok(Self {
            as_mounts: router::as_mounts(config.issuer.path(), &config.services),
            budgets: Budgets {
                register: IpRateLimiter::per_minute(g.register_per_ip_per_minute),
                token: IpRateLimiter::per_minute(g.token_per_ip_per_minute),
                login: IpRateLimiter::per_minute(g.login_per_ip_per_minute),
            },
            public_cors: Cors::public(),
            own_cookies: Arc::new(OwnCookies::new(&config.issuer, &config.cookie_name)),
            proxy,
            routes,
            db_routes,
            connections,
            trust_forwarded_for: g.trust_forwarded_for,
            clock,
            audit: None,
            metrics: metrics.clone(),
            telemetry: config.telemetry.clone(),
        })
    }

    /// Events of the tool-call audit dropped so far (queue full or the database failing).
    pub fn audit_dropped(&self) -> u64 {
        self.audit.as_ref().map_or(0, mcp::audit::AuditSink::dropped)
    }

    /// Who called, for the `X-Forwarded-*`, client-address and (behind the bearer middleware)
    /// identity headers, as one of Sallyport's services sees it.
    fn caller(&self, req: &HttpRequest) -> Caller {
        let trust = self.trust_forwarded_for;
        let peer = req.peer_addr().map(|a| a.ip());
        Caller {
            peer,
            client_ip: server::http::forwarded_client_ip(req, trust),
            scheme: if req.app_config().secure() { "https" } else { "http" },
            trust_forwarded: trust,
            identity: req.extensions().get::<Principal>().cloned(),
            strip_cookies: None,

            credential: None,
            // with traces on the proxy writes its own; off, only a trusted caller's passes
            keep_traceparent: !self.telemetry.enabled() && peer.is_some_and(|ip| self.telemetry.trusts(ip)),
            upstream_host: None,
        }
    }

    /// Who called, as an upstream route sees it: without Sallyport's cookies, with the route's
    /// upstream credential.
    fn upstream_caller(&self, req: &HttpRequest, route: &Route) -> Caller {
        Caller {
            strip_cookies: Some(Arc::clone(&self.own_cookies)),
            credential: route.credential.clone(),
            upstream_host: Some(route.upstream.host_header()),
            ..self.caller(req)
        }
    }

    /// Spends one unit of the request's per-IP budget; 429 with `Retry-After` when it is spent.
    fn spend(&self, budget: Budget, req: &HttpRequest) -> Result<(), OAuthError> {
        use actix_web::http::Method;
        let limiter = match budget {
            Budget::None => return Ok(()),
            _ if req.method() == Method::OPTIONS => return Ok(()),
            Budget::Register => &self.budgets.register,
            Budget::Token => &self.budgets.token,
            Budget::Login if req.method() == Method::POST => &self.budgets.login,
            Budget::Login => return Ok(()),
        };
        let ip = server::http::forwarded_client_ip(req, self.trust_forwarded_for);
        limiter.check(ip).map_err(OAuthError::rate_limited)
    }
}

/// Builds the gateway from its context. Its only database use is the tool-call audit of MCP
/// routes, written off the request path on a connection of its own (not the pool's). A client
/// that disconnects drops its request at once, which cancels the upstream request.
pub async fn app(ctx: Context, config: Config) -> Result<ServiceApp, BuildError> {
    let mut gateway = Gateway::new(&config, ctx.clock.clone(), ctx.pool.clone(), &ctx.metrics)?;
    let g = &config.gateway;
    // on whether or not a configured route is an MCP one: a route of the table may be (the
    // writer opens its connection at the first event)
    if g.audit_tool_calls {
        gateway.audit = Some(mcp::audit::AuditSink::start(&config.database, g.audit_queue));
    }
    // the routes of the table are there from the first request, then kept fresh in the background
    gateway.db_routes.reload().await;
    db_routes::DbRoutes::keep_fresh(&gateway.db_routes);
    upstream_oauth::Connections::follow_changes(&gateway.connections, &config.database);
    let gateway = Arc::new(gateway);
    Ok(ServiceApp::new("gateway", move |cfg| routes::configure(cfg, &gateway))
        .with_cancel_on_disconnect()
        .at_the_edge()
        .with_metrics(&ctx.metrics))
}

//! RFC 7591 dynamic client registration and RFC 7592 client management.
//!
//! `POST /oauth2/register` registers a client; `GET | PUT | DELETE /oauth2/register/{client_id}`
//! read, replace and delete it with the registration access token issued at registration.
//! Client ID metadata documents are resolved by `server::cimd`, which authorize and token call.

mod auth;
mod body;
mod information;
mod routes;

use actix_web::web;
use protocol::client::MetadataPolicy;
use protocol::secret::SecretHash;
use server::OAuthError;
use server::ratelimit::IpRateLimiter;
use server::registry::ResourceRegistry;
use server::service::{BuildError, Context, ServiceApp};

/// What the handlers share.
pub struct State {
    pub ctx: Context,
    registry: ResourceRegistry,
    /// Requests per client IP (RFC 7591 §3 leaves abuse protection to the server).
    limiter: IpRateLimiter,
    /// SHA-256 of the configured initial access token: compared with a presented one's hash in
    /// constant time, so neither its content nor its length leaks through timing.
    initial_access_token: Option<SecretHash>,
}

impl State {
    pub fn new(ctx: Context) -> Result<Self, BuildError> {
        let registry = ResourceRegistry::new(&ctx.settings.resources)?;
        let registration = &ctx.settings.registration;
        Ok(Self {
            limiter: IpRateLimiter::per_minute(registration.per_ip_per_minute),
            initial_access_token: registration.initial_access_token.as_deref().map(SecretHash::of),
            registry,
            ctx,
        })
    }

    /// Spends one unit of the caller's per-IP budget, shared by registration and RFC 7592 client
    /// management (each attempt costs a database round trip); 429 with `Retry-After` when spent.
    /// Returns the client IP it charged.
    pub fn spend_budget(&self, req: &actix_web::HttpRequest) -> Result<std::net::IpAddr, OAuthError> {
        let ip = server::http::client_ip(req, self.ctx.settings.trust_forwarded_for);
        self.limiter.check(ip).map_err(OAuthError::rate_limited)?;
        Ok(ip)
    }

    /// What a client may register right now (CONTRACTS.md): the registry's scopes change at run time.
    pub async fn policy(&self) -> Result<MetadataPolicy, OAuthError> {
        let supported = self.registry.supported_scopes(&self.ctx.pool).await?;
        Ok(MetadataPolicy::for_deployment(&self.ctx.settings.registration, &supported))
    }
}

/// Builds the service from its context.
pub async fn app(ctx: Context) -> Result<ServiceApp, BuildError> {
    let metrics = ctx.metrics.clone();
    let state = web::Data::new(State::new(ctx)?);
    Ok(ServiceApp::new("registration", move |cfg| routes::configure(cfg, state.clone())).with_metrics(&metrics))
}

//! RFC 7591 dynamic client registration and RFC 7592 client management.
//!
//! `POST /oauth2/register` registers a client; `GET | PUT | DELETE /oauth2/register/{client_id}`
//! read, replace and delete it with the registration access token issued at registration.
//! Client ID metadata documents are resolved by `server::cimd`, which authorize and token call.
//!
//! Dependency rule (`.ci/check-deps`): a service builds on the floors only; services never use one
//! another (they share Postgres and CONTRACTS.md, not code) and only `sallyport` assembles them.
//! - Sallyport crates: `protocol`, `store`, `server`.
//! - a normal dependency only of `sallyport` (every other crate: tests and benchmarks only).

mod auth;
mod body;
mod information;
mod routes;

use std::time::Duration;

use actix_web::web;
use protocol::client::MetadataPolicy;
use protocol::issuer::Issuer;
use protocol::secret::SecretHash;
use server::OAuthError;
use server::config::{RegistrationSettings, ResourceSettings, Settings};
use server::ratelimit::IpRateLimiter;
use server::registry::ResourceRegistry;
use server::service::{BuildError, Context, ServiceApp};

pub use routes::RegistrationApi;

/// What the registration service takes from the settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub issuer: Issuer,
    pub trust_forwarded_for: bool,
    pub resources: Vec<ResourceSettings>,
    pub registration: RegistrationSettings,
    /// How long a deleted client's access tokens stay refused (`tokens.access_token_ttl_secs`).
    pub access_token_ttl: Duration,
}

impl From<&Settings> for Config {
    fn from(s: &Settings) -> Self {
        Self {
            issuer: s.issuer.clone(),
            trust_forwarded_for: s.trust_forwarded_for,
            resources: s.resources.clone(),
            registration: s.registration.clone(),
            access_token_ttl: s.tokens.access_token_ttl_secs,
        }
    }
}

/// What the handlers share.
pub struct State {
    pub ctx: Context,
    pub config: Config,
    registry: ResourceRegistry,
    /// Requests per client IP (RFC 7591 §3 leaves abuse protection to the server).
    limiter: IpRateLimiter,
    /// SHA-256 of the configured initial access token: compared with a presented one's hash in
    /// constant time, so neither its content nor its length leaks through timing.
    initial_access_token: Option<SecretHash>,
}

impl State {
    pub fn new(ctx: Context, config: Config) -> Result<Self, BuildError> {
        let registry = ResourceRegistry::new(&config.resources)?;
        let registration = &config.registration;
        Ok(Self {
            limiter: IpRateLimiter::per_minute(registration.per_ip_per_minute),
            initial_access_token: registration.initial_access_token.as_deref().map(SecretHash::of),
            registry,
            ctx,
            config,
        })
    }

    /// Spends one unit of the caller's per-IP budget, shared by registration and RFC 7592 client
    /// management (each attempt costs a database round trip); 429 with `Retry-After` when spent.
    /// Returns the client IP it charged.
    pub fn spend_budget(&self, req: &actix_web::HttpRequest) -> Result<std::net::IpAddr, OAuthError> {
        let ip = server::http::client_ip(req, self.config.trust_forwarded_for);
        self.limiter.check(ip).map_err(OAuthError::rate_limited)?;
        Ok(ip)
    }

    /// What a client may register right now (CONTRACTS.md): the registry's scopes change at run time.
    pub async fn policy(&self) -> Result<MetadataPolicy, OAuthError> {
        let supported = self.registry.supported_scopes(&self.ctx.pool).await?;
        Ok(MetadataPolicy::for_deployment(&self.config.registration, &supported))
    }
}

/// Builds the service from its context and its part of the settings.
pub async fn app(ctx: Context, config: Config) -> Result<ServiceApp, BuildError> {
    let metrics = ctx.metrics.clone();
    let state = web::Data::new(State::new(ctx, config)?);
    Ok(ServiceApp::new("registration", move |cfg| routes::configure(cfg, state.clone())).with_metrics(&metrics))
}

//! RFC 8414 authorization-server metadata and RFC 9728 protected-resource metadata: cached
//! documents with ETags, CORS for browser clients, JSON 404s for everything else.
//!
//! Dependency rule (`.ci/check-deps`): a service builds on the floors only; services never use one
//! another (they share Postgres and CONTRACTS.md, not code) and only `sallyport` assembles them.
//! - Sallyport crates: `protocol`, `store`, `server` (through `server`: it reads no table itself).
//! - a normal dependency only of `sallyport` (every other crate: tests and benchmarks only).

pub mod documents;
mod http_cache;
pub mod openapi;
mod routes;

use std::sync::{Arc, RwLock};

use server::OAuthError;
use server::config::{Issuer, ResourceSettings, Settings};
use server::registry::{Resource, ResourceRegistry};
use server::service::{BuildError, Context, ServiceApp};

use crate::documents::{Document, Documents};

pub use routes::MetadataApi;

/// Documents built from one version of the registry's list.
type Built = (Arc<Vec<Resource>>, Arc<Documents>);

/// What the metadata service takes from the settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub issuer: Issuer,
    /// Trust the gateway's `X-Forwarded-Host` to pick a resource by its origin.
    pub trust_forwarded_for: bool,
    pub resources: Vec<ResourceSettings>,
    /// `service_documentation` of the authorization-server metadata.
    pub service_documentation: Option<String>,
    /// Whether the token service accepts ID-JAGs (`[[identity.trusted_issuers]]` is not empty).
    pub jwt_bearer: bool,
    /// `metadata_documents.enabled`: advertised as `client_id_metadata_document_supported`, so a
    /// client (another Sallyport among them) registers instead when documents are off.
    pub metadata_documents: bool,
}

impl From<&Settings> for Config {
    fn from(s: &Settings) -> Self {
        Self {
            issuer: s.issuer.clone(),
            trust_forwarded_for: s.trust_forwarded_for,
            resources: s.resources.clone(),
            service_documentation: s.service_documentation.clone(),
            jwt_bearer: s.identity.enabled(),
            metadata_documents: s.metadata_documents.enabled,
        }
    }
}

/// What the handlers share.
pub struct State {
    pub ctx: Context,
    pub config: Config,
    pub registry: ResourceRegistry,
    /// The documents, rebuilt whenever the registry's list changes.
    built: RwLock<Option<Built>>,
    /// The OpenAPI document, its servers this issuer.
    openapi: Document,
}

impl State {
    pub fn new(ctx: Context, config: Config) -> Result<Self, BuildError> {
        let registry = ResourceRegistry::new(&config.resources)?;
        let openapi = Document::of(&openapi::for_issuer(&config.issuer)?)?;
        Ok(Self { ctx, config, registry, built: RwLock::new(None), openapi })
    }

    /// The current documents: serialised once per registry change, not per request.
    pub async fn documents(&self) -> Result<Arc<Documents>, OAuthError> {
        let resources = self.registry.all(&self.ctx.pool).await?;
        if let Ok(guard) = self.built.read()
            && let Some((source, docs)) = guard.as_ref()
            && Arc::ptr_eq(source, &resources)
        {
            return Ok(docs.clone());
        }
        let docs = Arc::new(Documents::build(&self.config, &resources).map_err(OAuthError::internal)?);
        if let Ok(mut guard) = self.built.write() {
            *guard = Some((resources, docs.clone()));
        }
        Ok(docs)
    }
}

/// Builds the service from its context and its part of the settings.
pub async fn app(ctx: Context, config: Config) -> Result<ServiceApp, BuildError> {
    let metrics = ctx.metrics.clone();
    let state = actix_web::web::Data::new(State::new(ctx, config)?);
    Ok(ServiceApp::new("metadata", move |cfg| routes::configure(cfg, state.clone())).with_metrics(&metrics))
}

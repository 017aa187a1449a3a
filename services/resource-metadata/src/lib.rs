//! RFC 8414 authorization-server metadata and RFC 9728 protected-resource metadata: cached
//! documents with ETags, CORS for browser clients, JSON 404s for everything else.

pub mod documents;
mod http_cache;
mod routes;

use std::sync::{Arc, RwLock};

use server::OAuthError;
use server::registry::{Resource, ResourceRegistry};
use server::service::{BuildError, Context, ServiceApp};

use crate::documents::Documents;

/// Documents built from one version of the registry's list.
type Built = (Arc<Vec<Resource>>, Arc<Documents>);

/// What the handlers share.
pub struct State {
    pub ctx: Context,
    pub registry: ResourceRegistry,
    /// The documents, rebuilt whenever the registry's list changes.
    built: RwLock<Option<Built>>,
}

impl State {
    pub fn new(ctx: Context) -> Result<Self, BuildError> {
        let registry = ResourceRegistry::new(&ctx.settings.resources)?;
        Ok(Self { ctx, registry, built: RwLock::new(None) })
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
        let docs = Arc::new(Documents::build(&self.ctx.settings, &resources).map_err(OAuthError::internal)?);
        if let Ok(mut guard) = self.built.write() {
            *guard = Some((resources, docs.clone()));
        }
        Ok(docs)
    }
}

/// Builds the service from its context.
pub async fn app(ctx: Context) -> Result<ServiceApp, BuildError> {
    let metrics = ctx.metrics.clone();
    let state = actix_web::web::Data::new(State::new(ctx)?);
    Ok(ServiceApp::new("metadata", move |cfg| routes::configure(cfg, state.clone())).with_metrics(&metrics))
}

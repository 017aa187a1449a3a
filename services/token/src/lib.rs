//! Token endpoint (authorization_code, refresh_token, client_credentials), RFC 7009 revocation,
//! RFC 7662 introspection and the JWKS.
//!
//! The service keeps no state outside Postgres: signing keys live (sealed) in `signing_keys` and
//! are reloaded every few seconds, so any number of replicas run side by side.

mod background;
mod client_auth;
mod clients;
mod form;
mod grants;
mod inspect;
mod issue;
mod keyring;
mod routes;
mod rules;
mod signer;

use std::sync::Arc;

use protocol::clock::Clock;
use protocol::keys::SigningAlg;
use server::Settings;
use server::cimd::MetadataDocuments;
use server::metrics::Metrics;
use server::registry::ResourceRegistry;
use server::service::{BuildError, Context, ServiceApp};
use store::Pool;

pub use keyring::{Keyring, KeyringError, SigningKeysError};

/// What every handler shares.
pub struct State {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub clock: Clock,
    pub keys: Arc<Keyring>,
    pub registry: Arc<ResourceRegistry>,
    pub metrics: Metrics,
    clients: clients::ClientDirectory,
}

/// Builds the service. Refuses to start without `keys.encryption_key`, or when a signing key cannot
/// be unsealed with it. Creates the first signing key if none exists. `/readyz` answers not ready
/// until a key can sign (e.g. while the database is unreachable at start).
pub async fn app(ctx: Context) -> Result<ServiceApp, BuildError> {
    let kek = ctx.settings.encryption_key().ok_or(
        "keys.encryption_key is required by the token service: it seals the signing keys at rest \
         (set SALLYPORT__KEYS__ENCRYPTION_KEY to base64 of 32 random bytes)",
    )?;
    let alg = SigningAlg::parse(&ctx.settings.tokens.signing_alg)?;
    let keys = Arc::new(Keyring::new(kek, alg));
    match keys.sync(&ctx.pool, ctx.clock.now()).await {
        Ok(()) => {}
        Err(KeyringError::Database(e)) => tracing::warn!(error = %e, "signing keys not loaded yet; retrying"),
        Err(e) => return Err(Box::new(SigningKeysError(e))),
    }
    let registry = Arc::new(ResourceRegistry::new(&ctx.settings.resources)?);
    let documents = MetadataDocuments::new(ctx.settings.metadata_documents.clone())?;
    background::spawn(Arc::downgrade(&keys), ctx.pool.clone(), ctx.clock.clone(), ctx.metrics.key_times());
    let metrics = ctx.metrics;
    let state = Arc::new(State {
        settings: ctx.settings,
        pool: ctx.pool,
        clock: ctx.clock.clone(),
        keys: keys.clone(),
        registry,
        metrics: metrics.clone(),
        clients: clients::ClientDirectory::new(documents),
    });
    let clock = ctx.clock;
    Ok(ServiceApp::new("token", move |cfg| routes::configure(cfg, state.clone()))
        .with_ready(move || keys.is_ready(clock.now()))
        .with_metrics(&metrics))
}

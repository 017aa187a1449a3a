//! Token endpoint (authorization_code, refresh_token, client_credentials, and the RFC 7523 JWT
//! bearer grant with ID-JAGs of trusted identity providers), RFC 7009 revocation, RFC 7662
//! introspection and the JWKS.
//!
//! The service keeps no state outside Postgres: signing keys live (sealed) in `signing_keys` and
//! are reloaded every few seconds, so any number of replicas run side by side.
//!
//! Dependency rule (`.ci/check-deps`): a service builds on the floors only; services never use one
//! another (they share Postgres and CONTRACTS.md, not code) and only `sallyport` assembles them.
//! - Sallyport crates: `protocol`, `store`, `server`.
//! - a normal dependency only of `sallyport` (every other crate: tests and benchmarks only).

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

use protocol::client::RegistrationPolicy;
use protocol::clock::Clock;
use protocol::issuer::Issuer;
use server::cimd::MetadataDocuments;
use server::config::{
    EncryptionKey, IdentitySettings, MetadataDocumentSettings, ResourceSettings, Settings, TokenSettings,
};
use server::issuer_keys::TrustedIssuers;
use server::metrics::Metrics;
use server::registry::ResourceRegistry;
use server::service::{BuildError, Context, ServiceApp};
use store::Pool;

pub use keyring::{Keyring, KeyringError, SigningKeysError};
pub use routes::TokenApi;

/// What the token service takes from the settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub issuer: Issuer,
    pub trust_forwarded_for: bool,
    pub resources: Vec<ResourceSettings>,
    /// What a client ID metadata document may ask for (`registration.*`).
    pub registration: RegistrationPolicy,
    pub metadata_documents: MetadataDocumentSettings,
    pub tokens: TokenSettings,
    /// `keys.encryption_key`: required, it seals the signing keys at rest.
    pub encryption_key: Option<EncryptionKey>,
    /// `[identity]`: whose ID-JAGs the JWT bearer grant accepts (none: the grant is unsupported).
    pub identity: IdentitySettings,
}

impl From<&Settings> for Config {
    fn from(s: &Settings) -> Self {
        Self {
            issuer: s.issuer.clone(),
            trust_forwarded_for: s.trust_forwarded_for,
            resources: s.resources.clone(),
            registration: RegistrationPolicy::from(&s.registration),
            metadata_documents: s.metadata_documents.clone(),
            tokens: s.tokens.clone(),
            encryption_key: s.keys.encryption_key.clone(),
            identity: s.identity.clone(),
        }
    }
}

/// What every handler shares.
pub struct State {
    pub config: Config,
    pub pool: Pool,
    pub clock: Clock,
    pub keys: Arc<Keyring>,
    pub registry: Arc<ResourceRegistry>,
    pub metrics: Metrics,
    clients: clients::ClientDirectory,
    /// The identity providers of `[[identity.trusted_issuers]]` and their cached keys.
    issuers: TrustedIssuers,
}

/// Builds the service. Refuses to start without `keys.encryption_key`, or when a signing key cannot
/// be unsealed with it. Creates the first signing key if none exists. `/readyz` answers not ready
/// until a key can sign (e.g. while the database is unreachable at start).
pub async fn app(ctx: Context, config: Config) -> Result<ServiceApp, BuildError> {
    let kek = config.encryption_key.as_ref().ok_or(
        "keys.encryption_key is required by the token service: it seals the signing keys at rest \
         (set SALLYPORT__KEYS__ENCRYPTION_KEY to base64 of 32 random bytes)",
    )?;
    let keys = Arc::new(Keyring::new(*kek.bytes(), config.tokens.signing_alg));
    match keys.sync(&ctx.pool, ctx.clock.now()).await {
        Ok(()) => {}
        Err(KeyringError::Database(e)) => tracing::warn!(error = %e, "signing keys not loaded yet; retrying"),
        Err(e) => return Err(Box::new(SigningKeysError(e))),
    }
    let registry = Arc::new(ResourceRegistry::new(&config.resources)?);
    let documents = MetadataDocuments::new(config.metadata_documents.clone())?;
    let issuers = TrustedIssuers::new(&config.identity)?;
    background::spawn(Arc::downgrade(&keys), ctx.pool.clone(), ctx.clock.clone(), ctx.metrics.key_times());
    let metrics = ctx.metrics;
    let state = Arc::new(State {
        config,
        pool: ctx.pool,
        clock: ctx.clock.clone(),
        keys: keys.clone(),
        registry,
        metrics: metrics.clone(),
        clients: clients::ClientDirectory::new(documents),
        issuers,
    });
    let clock = ctx.clock;
    Ok(ServiceApp::new("token", move |cfg| routes::configure(cfg, state.clone()))
        .with_ready(move || keys.is_ready(clock.now()))
        .with_metrics(&metrics))
}

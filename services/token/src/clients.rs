//! Finding the client a request names: registered clients from `clients` through a short-lived
//! cache, client ID metadata documents through `MetadataDocuments` (which has its own cache).
//!
//! Trade-off of the cache: a client row is reused for up to [`CLIENT_TTL`] per replica, which
//! saves a query on every token request (the hot path of client_credentials then touches no
//! database at all). A deleted client, a rotated secret or a changed scope takes up to that long
//! to be seen by a replica. Refresh tokens of a deleted client are gone with it (ON DELETE
//! CASCADE), and introspection asks the database, so only new client_credentials tokens can
//! slip through in that window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::cimd::is_document_url;
use protocol::client::{Client, MetadataPolicy, RegistrationPolicy};
use protocol::error::ErrorCode;
use protocol::ident::ClientId;
use server::OAuthError;
use server::cimd::MetadataDocuments;
use server::registry::ResourceRegistry;
use store::Pool;

use crate::client_auth::{CHALLENGE, invalid_client};

/// How long a client row is reused.
pub const CLIENT_TTL: Duration = Duration::from_secs(5);

/// Client rows kept at most.
const CAPACITY: usize = 10_000;

#[derive(Clone)]
struct Cached {
    client: Arc<Client>,
    until: Instant,
}

/// Resolves `client_id`s to clients.
pub struct ClientDirectory {
    cache: quick_cache::sync::Cache<String, Cached>,
    documents: MetadataDocuments,
}

impl ClientDirectory {
    pub fn new(documents: MetadataDocuments) -> Self {
        Self { cache: quick_cache::sync::Cache::new(CAPACITY), documents }
    }

    /// The client, or 401 `invalid_client` when no such client exists. The id was parsed at the
    /// edge, so only a well-formed one reaches the cache, a fetch or a query.
    pub async fn get(
        &self,
        pool: &Pool,
        registry: &ResourceRegistry,
        registration: &RegistrationPolicy,
        client_id: &ClientId,
    ) -> Result<Arc<Client>, OAuthError> {
        let client_id = client_id.as_str();
        if is_document_url(client_id) {
            let policy = MetadataPolicy::for_deployment(registration.clone(), &registry.supported_scopes(pool).await?);
            return self.documents.resolve(pool, client_id, &policy).await.map_err(|e| match e.code {
                ErrorCode::InvalidClient => e.with_challenge(CHALLENGE),
                _ => e,
            });
        }
        if let Some(hit) = self.cache.get(client_id)
            && hit.until > Instant::now()
        {
            return Ok(hit.client);
        }
        let mut conn = pool.get().await?;
        let client = store::clients::find(&mut conn, client_id)
            .await?
            .ok_or_else(|| invalid_client("client authentication failed"))?;
        let client = Arc::new(client);
        self.cache.insert(client_id.to_owned(), Cached { client: client.clone(), until: Instant::now() + CLIENT_TTL });
        Ok(client)
    }
}

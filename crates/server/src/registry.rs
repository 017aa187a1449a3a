//! The protected-resource registry: resources from config plus the `resources` table, read by
//! authorize, token, metadata and the gateway alike.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use protocol::scope::Scopes;
use protocol::uri::ResourceUri;
use store::db::Pool;

use crate::config::ResourceSettings;
use crate::error::OAuthError;

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub id: ResourceUri,
    pub name: String,
    pub scopes: Scopes,
    pub documentation: Option<String>,
    /// Whether tokens without a user (client_credentials) are issued for it and accepted.
    pub accept_machine_tokens: bool,
}

impl Resource {
    pub fn from_settings(s: &ResourceSettings) -> Result<Self, String> {
        Ok(Self {
            id: ResourceUri::parse(&s.resource).map_err(|e| format!("{}: {e}", s.resource))?,
            name: s.name.clone(),
            scopes: Scopes::from_tokens(&s.scopes).map_err(|e| e.to_string())?,
            documentation: s.documentation.clone(),
            accept_machine_tokens: s.accept_machine_tokens,
        })
    }
}

/// How long a service trusts its copy of the `resources` table; `sallyport resource add` is seen
/// by every running service within this time.
const REFRESH: Duration = Duration::from_secs(5);

/// Resources from config and the database, cached for a few seconds.
pub struct ResourceRegistry {
    configured: Vec<Resource>,
    cached: RwLock<Option<(Instant, Arc<Vec<Resource>>)>>,
}

impl std::fmt::Debug for ResourceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceRegistry").field("configured", &self.configured).finish_non_exhaustive()
    }
}

impl ResourceRegistry {
    pub fn new(configured: &[ResourceSettings]) -> Result<Self, String> {
        let configured = configured.iter().map(Resource::from_settings).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { configured, cached: RwLock::new(None) })
    }

    /// Every resource; configuration wins over a table row with the same identifier.
    pub async fn all(&self, pool: &Pool) -> Result<Arc<Vec<Resource>>, OAuthError> {
        if let Ok(guard) = self.cached.read()
            && let Some((at, list)) = guard.as_ref()
            && at.elapsed() < REFRESH
        {
            return Ok(list.clone());
        }
        let mut conn = pool.get().await?;
        let rows = store::resources::list(&mut conn).await?;
        let mut list = self.configured.clone();
        for row in rows {
            if list.iter().any(|r| r.id == row.resource) {
                continue;
            }
            list.push(Resource {
                id: row.resource,
                name: row.name,
                scopes: row.scopes,
                documentation: row.documentation_url,
                accept_machine_tokens: row.accept_machine_tokens,
            });
        }
        let list = Arc::new(list);
        if let Ok(mut guard) = self.cached.write() {
            *guard = Some((Instant::now(), list.clone()));
        }
        Ok(list)
    }

    /// The resource with this (normalised) identifier.
    pub async fn find(&self, pool: &Pool, id: &ResourceUri) -> Result<Option<Resource>, OAuthError> {
        Ok(self.all(pool).await?.iter().find(|r| &r.id == id).cloned())
    }

    /// The resource used when a request names none: the only one, if exactly one exists.
    pub async fn default_resource(&self, pool: &Pool) -> Result<Option<Resource>, OAuthError> {
        let all = self.all(pool).await?;
        Ok(if all.len() == 1 { all.first().cloned() } else { None })
    }

    /// The union of every resource's scopes: what the deployment supports.
    pub async fn supported_scopes(&self, pool: &Pool) -> Result<Scopes, OAuthError> {
        Ok(self.all(pool).await?.iter().fold(Scopes::default(), |acc, r| acc.union(&r.scopes)))
    }

    /// Drops the cached copy (after `sallyport resource add` in the same process, and in tests).
    pub fn invalidate(&self) {
        if let Ok(mut guard) = self.cached.write() {
            *guard = None;
        }
    }
}

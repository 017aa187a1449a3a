//! Client ID metadata documents (MCP authorization, 2025-11-25): a `client_id` that is an https URL
//! names a JSON document describing a public client. Fetched safely, validated like registration
//! metadata (the rules are `protocol::cimd`), cached within bounds, and mirrored into `clients` so
//! codes and tokens can refer to it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use protocol::cimd::{CimdError, UrlRules, check_url, client_from_document};
use protocol::client::{Client, ClientSource, MetadataPolicy};
use protocol::clock::{Clock, after};
use protocol::error::ErrorCode;
use store::clients::{self, ClientRow};
use store::db::Pool;
use url::Url;

use crate::config::MetadataDocumentSettings;
use crate::error::OAuthError;
use crate::ratelimit::IpRateLimiter;

/// A cached outcome: the client a document described, or why it was refused (a failure is kept
/// for `failure_cache_secs`, so a broken or hostile URL is not fetched again on every request).
struct Cached {
    outcome: Result<Arc<Client>, CimdError>,
    until: DateTime<Utc>,
}

/// Fetches, validates and caches client metadata documents.
#[derive(Clone)]
pub struct MetadataDocuments {
    settings: MetadataDocumentSettings,
    http: reqwest::Client,
    cache: Arc<quick_cache::sync::Cache<String, Arc<Cached>>>,
    /// Fetches per client IP: each distinct URL a client names costs an outbound request.
    budget: IpRateLimiter,
    clock: Clock,
}

impl std::fmt::Debug for MetadataDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataDocuments").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl MetadataDocuments {
    pub fn new(settings: MetadataDocumentSettings) -> Result<Self, reqwest::Error> {
        let http = crate::outbound::guarded_client(settings.allow_private_hosts, settings.timeout_ms)?;
        Ok(Self {
            budget: IpRateLimiter::per_minute(settings.fetches_per_ip_per_minute),
            settings,
            http,
            cache: Arc::new(quick_cache::sync::Cache::new(10_000)),
            clock: Clock::system(),
        })
    }

    /// Uses `clock` for cache expiry and timestamps (the service's clock, which tests advance).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the URL's shape (`protocol::cimd::check_url`) under this deployment's settings: https
    /// (http only when allowed), a host, a path, no fragment, no credentials, no dot segments, a
    /// global unicast host on port 443 unless private hosts are allowed.
    pub fn check_url(&self, client_id: &str) -> Result<Url, CimdError> {
        check_url(
            UrlRules { allow_http: self.settings.allow_http, allow_private_hosts: self.settings.allow_private_hosts },
            client_id,
        )
    }

    /// The client a document describes: from the cache while fresh, else fetched, validated and
    /// mirrored into `clients`. No per-IP budget: for callers that have one of their own.
    pub async fn resolve(
        &self,
        pool: &Pool,
        client_id: &str,
        policy: &MetadataPolicy,
    ) -> Result<Arc<Client>, OAuthError> {
        self.resolve_for(pool, client_id, policy, None).await
    }

    /// Like [`MetadataDocuments::resolve`]; a fetch (not a cache hit) spends one unit of `ip`'s
    /// budget, so that one client cannot make the server fetch URL after URL.
    pub async fn resolve_for(
        &self,
        pool: &Pool,
        client_id: &str,
        policy: &MetadataPolicy,
        ip: Option<IpAddr>,
    ) -> Result<Arc<Client>, OAuthError> {
        if let Some(hit) = self.cache.get(client_id)
            && hit.until > self.clock.now()
        {
            return hit.outcome.clone().map_err(|e| OAuthError::invalid_client(e.to_string()));
        }
        if let Some(ip) = ip
            && let Err(wait) = self.budget.check(ip)
        {
            return Err(OAuthError {
                retry_after: Some(wait.max(1)),
                ..OAuthError::new(
                    ErrorCode::RateLimited,
                    "too many client metadata documents asked for from your network",
                )
            });
        }
        let (client, ttl) = match self.fetch(client_id, policy).await {
            Ok(fetched) => fetched,
            Err(e) => {
                match &e {
                    CimdError::Transport(detail) => {
                        tracing::warn!(client_id, detail, "metadata document could not be fetched")
                    }
                    _ => tracing::info!(client_id, error = %e, "metadata document refused"),
                }
                let until = after(self.clock.now(), self.settings.failure_cache_secs.as_secs());
                self.cache.insert(client_id.to_owned(), Arc::new(Cached { outcome: Err(e.clone()), until }));
                return Err(OAuthError::invalid_client(e.to_string()));
            }
        };
        let row = ClientRow::new(
            client.client_id.clone(),
            ClientSource::MetadataDocument,
            &client.metadata,
            client.created_at,
        );
        let mut conn = pool.get().await?;
        // an id held by another kind of client (made by an operator) is never overwritten by a document
        if !clients::upsert_metadata_document(&mut conn, &row).await? {
            return Err(OAuthError::invalid_client("this client_id is registered otherwise"));
        }
        let client = Arc::new(client);
        let until = after(self.clock.now(), ttl.as_secs());
        self.cache.insert(client_id.to_owned(), Arc::new(Cached { outcome: Ok(client.clone()), until }));
        Ok(client)
    }

    /// Fetches and validates without caching or storing; returns the client and how long to cache it.
    pub async fn fetch(&self, client_id: &str, policy: &MetadataPolicy) -> Result<(Client, Duration), CimdError> {
        if !self.settings.enabled {
            return Err(CimdError::Disabled);
        }
        let url = self.check_url(client_id)?;
        let res = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        if res.status() != reqwest::StatusCode::OK {
            return Err(CimdError::Fetch(format!("status {}", res.status().as_u16())));
        }
        let max = self.settings.max_bytes;
        let ttl = self.ttl(res.headers());
        let body = crate::outbound::read_bounded(res, max).await.map_err(|e| match e {
            crate::outbound::BodyError::TooLarge => CimdError::TooLarge(max),
            crate::outbound::BodyError::Transport(detail) => CimdError::Transport(detail),
        })?;
        let client = client_from_document(client_id, &body, policy, self.clock.now())?;
        Ok((client, ttl))
    }

    /// `Cache-Control: max-age` bounded by the configured minimum and maximum.
    fn ttl(&self, headers: &reqwest::header::HeaderMap) -> Duration {
        let mut secs = self.settings.cache_min_secs.as_secs();
        let mut forbidden = false;
        if let Some(value) = headers.get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()) {
            for directive in value.split(',').map(str::trim) {
                let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
                if name.eq_ignore_ascii_case("max-age")
                    && let Ok(age) = arg.trim_matches('"').parse::<u64>()
                {
                    secs = age;
                }
                if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                    forbidden = true;
                }
            }
            // a document that must not be cached is kept for the minimum only, whatever else it says
            if forbidden {
                secs = 0;
            }
        }
        Duration::from_secs(secs).clamp(self.settings.cache_min_secs, self.settings.cache_max_secs)
    }
}

/// A timeout is a reason the client may see; any other failure is `Transport`, with reqwest's
/// whole cause chain (where the actual reason is) for the log.
fn transport_error(e: reqwest::Error) -> CimdError {
    if e.is_timeout() {
        return CimdError::Fetch("timed out".into());
    }
    CimdError::Transport(crate::outbound::describe(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(allow_private: bool) -> MetadataDocuments {
        MetadataDocuments::new(MetadataDocumentSettings {
            allow_private_hosts: allow_private,
            ..MetadataDocumentSettings::default()
        })
        .expect("client")
    }

    #[test]
    fn url_rules_come_from_the_settings() {
        // the rules themselves are tested in protocol::cimd; here: which settings they take
        let d = docs(false);
        assert!(d.check_url("https://app.example.com/client.json").is_ok());
        assert_eq!(d.check_url("http://app.example.com/client.json"), Err(CimdError::BadUrl("must be https")));
        assert_eq!(d.check_url("https://127.0.0.1/c"), Err(CimdError::ForbiddenHost));
        assert_eq!(d.check_url("https://app.example.com:8443/c"), Err(CimdError::BadUrl("must use port 443")));
        assert!(docs(true).check_url("https://127.0.0.1/c").is_ok());
        assert!(docs(true).check_url("https://app.example.com:8443/c").is_ok());
        let http = MetadataDocuments::new(MetadataDocumentSettings {
            allow_http: true,
            allow_private_hosts: true,
            ..MetadataDocumentSettings::default()
        })
        .expect("client");
        assert!(http.check_url("http://127.0.0.1:8080/client.json").is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_forbidden_addresses() {
        use crate::outbound::GuardedResolver;
        use reqwest::dns::{Name, Resolve};
        // the check is the resolution: a name pointing at loopback is refused, whatever the name
        let name = || "localhost".parse::<Name>().expect("name");
        let strict = GuardedResolver { allow_private: false }.resolve(name()).await;
        assert!(strict.is_err());
        let open = GuardedResolver { allow_private: true }.resolve(name()).await.expect("allowed");
        assert!(open.into_iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn ttl_is_bounded() {
        let d = docs(false);
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(d.ttl(&h), Duration::from_secs(60));
        h.insert(reqwest::header::CACHE_CONTROL, "public, max-age=600".parse().expect("hv"));
        assert_eq!(d.ttl(&h), Duration::from_secs(600));
        h.insert(reqwest::header::CACHE_CONTROL, "max-age=99999999".parse().expect("hv"));
        assert_eq!(d.ttl(&h), Duration::from_secs(86_400));
        h.insert(reqwest::header::CACHE_CONTROL, "no-store".parse().expect("hv"));
        assert_eq!(d.ttl(&h), Duration::from_secs(60));
        h.insert(reqwest::header::CACHE_CONTROL, "no-cache, Max-Age=600".parse().expect("hv"));
        assert_eq!(d.ttl(&h), Duration::from_secs(60), "no-cache wins over max-age");
        h.insert(reqwest::header::CACHE_CONTROL, "public, MAX-AGE=\"3600\"".parse().expect("hv"));
        assert_eq!(d.ttl(&h), Duration::from_secs(3600));
    }
}

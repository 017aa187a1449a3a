//! The signing keys of trusted identity providers (`[[identity.trusted_issuers]]`): each issuer's
//! JWKS, from its configured `jwks_uri` or from its metadata (RFC 8414 §3, then OpenID Connect
//! Discovery), fetched under the outbound SSRF policy, cached for `jwks_cache_secs`, and fetched
//! again when an assertion names a `kid` the cache lacks (key rotation at the IdP) — at most once
//! per `jwks_min_refetch_secs` per issuer, so a stream of made-up kids costs the IdP nothing.
//! Only configured issuers are ever fetched: an assertion's `iss` chooses among them, never a URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use protocol::idjag::AssertionAlg;
use url::Url;

use crate::config::{IdentitySettings, TrustedIssuerSettings};
use crate::outbound;

/// Largest metadata document or JWKS read.
const MAX_BYTES: usize = 256 * 1024;

/// Why no key came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The issuer publishes no key for this `kid` and algorithm (the assertion is bad).
    #[error("the issuer publishes no such key")]
    Unknown,
    /// The issuer's keys could not be fetched (our problem or the IdP's, not the client's).
    #[error("the issuer's keys cannot be fetched: {0}")]
    Unavailable(String),
}

/// A fetched key set.
struct Fetched {
    keys: Vec<(Jwk, DecodingKey)>,
    at: Instant,
}

/// One trusted issuer and its cached keys.
pub struct TrustedIssuer {
    pub settings: TrustedIssuerSettings,
    cache: Mutex<Option<Arc<Fetched>>>,
    /// Held while fetching (one fetch per issuer at a time); holds when the last fetch started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl TrustedIssuer {
    /// The name users and operators see: `name`, else the issuer identifier.
    pub fn name(&self) -> &str {
        self.settings.name.as_deref().unwrap_or(&self.settings.issuer)
    }

    pub fn algorithms(&self) -> &[AssertionAlg] {
        &self.settings.algorithms
    }
}

/// Every trusted issuer, by issuer identifier.
pub struct TrustedIssuers {
    issuers: HashMap<String, Arc<TrustedIssuer>>,
    http: reqwest::Client,
    allow_http: bool,
    allow_private: bool,
    cache_for: Duration,
    min_refetch: Duration,
}

impl std::fmt::Debug for TrustedIssuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedIssuers").field("issuers", &self.issuers.keys()).finish_non_exhaustive()
    }
}

impl TrustedIssuers {
    pub fn new(settings: &IdentitySettings) -> reqwest::Result<Self> {
        let issuers = settings
            .trusted_issuers
            .iter()
            .map(|t| {
                let issuer = TrustedIssuer {
                    settings: t.clone(),
                    cache: Mutex::new(None),
                    fetching: tokio::sync::Mutex::new(None),
                };
                (t.issuer.clone(), Arc::new(issuer))
            })
            .collect();
        Ok(Self {
            issuers,
            http: outbound::guarded_client(settings.allow_private_hosts, settings.timeout_ms)?,
            allow_http: settings.allow_http,
            allow_private: settings.allow_private_hosts,
            cache_for: settings.jwks_cache_secs,
            min_refetch: settings.jwks_min_refetch_secs,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The trusted issuer with this identifier (byte for byte), if any.
    pub fn get(&self, iss: &str) -> Option<Arc<TrustedIssuer>> {
        self.issuers.get(iss).cloned()
    }

    /// The key that verifies a signature by `issuer` with `kid` and `alg`: from the cache while it
    /// is fresh and has it, else after one fetch (subject to the refetch limit).
    pub async fn key(
        &self,
        issuer: &TrustedIssuer,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, KeyError> {
        let cached = issuer.cache.lock().map_err(|_| KeyError::Unavailable("poisoned".into()))?.clone();
        if let Some(f) = &cached
            && f.at.elapsed() < self.cache_for
            && let Some(key) = find(f, kid, alg)
        {
            return Ok(key);
        }
        let mut last = issuer.fetching.lock().await;
        // another request may have fetched while this one waited
        let cached = issuer.cache.lock().map_err(|_| KeyError::Unavailable("poisoned".into()))?.clone();
        let fresh = cached.as_ref().filter(|f| f.at.elapsed() < self.cache_for);
        if let Some(f) = fresh
            && let Some(key) = find(f, kid, alg)
        {
            return Ok(key);
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refetch) {
            // fetched a moment ago: an unknown kid stays unknown, a failing IdP stays failing
            return match fresh {
                Some(_) => Err(KeyError::Unknown),
                None => stale_or(cached.as_deref(), kid, alg, KeyError::Unavailable("fetched too recently".into())),
            };
        }
        *last = Some(Instant::now());
        match self.fetch(&issuer.settings).await {
            Ok(keys) => {
                let fetched = Arc::new(Fetched { keys, at: Instant::now() });
                *issuer.cache.lock().map_err(|_| KeyError::Unavailable("poisoned".into()))? = Some(fetched.clone());
                find(&fetched, kid, alg).ok_or(KeyError::Unknown)
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer.settings.issuer, error = %e, "cannot fetch a trusted issuer's keys");
                // an IdP that is briefly down does not stop assertions signed with keys we have
                stale_or(cached.as_deref(), kid, alg, KeyError::Unavailable(e))
            }
        }
    }

    /// The issuer's JWKS, its usable signing keys decoded.
    async fn fetch(&self, t: &TrustedIssuerSettings) -> Result<Vec<(Jwk, DecodingKey)>, String> {
        let jwks_uri = match &t.jwks_uri {
            Some(u) => u.url().clone(),
            None => self.discover(&t.issuer).await?,
        };
        outbound::check_url(&jwks_uri, self.allow_http, self.allow_private).map_err(|e| format!("jwks_uri {e}"))?;
        let body = outbound::get_json(&self.http, &jwks_uri, MAX_BYTES).await.map_err(|e| format!("jwks: {e}"))?;
        let set: JwkSet = serde_json::from_value(body).map_err(|e| format!("jwks: not a JWK set: {e}"))?;
        Ok(set
            .keys
            .into_iter()
            .filter(|k| !matches!(k.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature))
            .filter_map(|k| DecodingKey::from_jwk(&k).ok().map(|d| (k, d)))
            .collect())
    }

    /// `jwks_uri` from the issuer's RFC 8414 metadata (path inserted after the well-known prefix,
    /// §3.1), else from its OpenID Connect Discovery document; its `issuer` must be the one
    /// configured, byte for byte (RFC 8414 §3.3).
    async fn discover(&self, issuer: &str) -> Result<Url, String> {
        let base = Url::parse(issuer).map_err(|e| format!("issuer: {e}"))?;
        let path = base.path().trim_end_matches('/');
        let mut rfc8414 = base.clone();
        rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        let mut oidc = base.clone();
        oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
        let mut errors = Vec::new();
        for url in [rfc8414, oidc] {
            if let Err(e) = outbound::check_url(&url, self.allow_http, self.allow_private) {
                return Err(format!("issuer {e}"));
            }
            match outbound::get_json(&self.http, &url, MAX_BYTES).await {
                Ok(doc) => {
                    if doc.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
                        return Err(format!("{url}: its issuer is not {issuer}"));
                    }
                    let jwks = doc.get("jwks_uri").and_then(|v| v.as_str()).ok_or(format!("{url}: no jwks_uri"))?;
                    return Url::parse(jwks).map_err(|e| format!("{url}: jwks_uri: {e}"));
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        Err(errors.join("; "))
    }
}

/// A key of the set for `kid` (or the only key fitting `alg` when the header names none) whose
/// declared algorithm, if any, is `alg`.
fn find(set: &Fetched, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let fits = |k: &Jwk| {
        k.common.key_algorithm.is_none_or(|a| a.to_string() == format!("{alg:?}"))
            && match kid {
                Some(kid) => k.common.key_id.as_deref() == Some(kid),
                None => true,
            }
    };
    let mut matching = set.keys.iter().filter(|(k, _)| fits(k));
    let first = matching.next()?;
    // without a kid, several candidate keys would make the choice arbitrary
    if kid.is_none() && matching.next().is_some() {
        return None;
    }
    Some(first.1.clone())
}

fn stale_or(
    cached: Option<&Fetched>,
    kid: Option<&str>,
    alg: Algorithm,
    err: KeyError,
) -> Result<DecodingKey, KeyError> {
    cached.and_then(|f| find(f, kid, alg)).ok_or(err)
}

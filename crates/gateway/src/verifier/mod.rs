//! Access-token verification shared by every protected route: RFC 9068 JWTs checked against the
//! token service's JWKS, remembered by SHA-256 until they expire so that a client's repeat calls
//! skip the signature, and optionally checked for revocation through introspection.
//! What depends on the route (audience, scopes) is checked by the caller on the verified token.

pub mod introspection;
pub mod jwks;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use sha2::{Digest, Sha256};

use protocol::Clock;
use protocol::jwt::{self, AccessTokenClaims, Expectations, VerifyError};
use protocol::scope::Scopes;
use protocol::uri::ResourceUri;
use server::config::RevocationCheck;

use crate::worker_client::WorkerClient;

pub use introspection::{IntrospectionConfig, Introspector};
use jwks::{Jwks, KeyError};

/// Everything a verifier needs, as plain values.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// `iss` must equal this byte for byte.
    pub issuer: String,
    /// The token service's key set, e.g. `http://token:8083/oauth2/jwks`.
    pub jwks_url: String,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Verified tokens remembered.
    pub cache_capacity: usize,
    /// An unknown kid refetches the key set at most this often.
    pub jwks_refetch_interval: Duration,
    pub revocation: RevocationCheck,
    /// How long `cached` trusts an introspection answer.
    pub revocation_cache_secs: u64,
    /// Required unless `revocation` is `Off`.
    pub introspection: Option<IntrospectionConfig>,
    /// Timeout of the JWKS and introspection requests.
    pub http_timeout: Duration,
}

impl VerifierConfig {
    /// The gateway's verifier: the configured issuer, the token service's JWKS and introspection.
    pub fn from_config(c: &crate::Config) -> Self {
        let token = c.services.token.base();
        let g = &c.gateway;
        let http_timeout = Duration::from_secs(5);
        let introspection = match (&g.introspection_client_id, &g.introspection_client_secret) {
            (Some(id), Some(secret)) => Some(IntrospectionConfig {
                url: format!("{token}/oauth2/introspect"),
                client_id: id.clone(),
                client_secret: secret.clone(),
                timeout: http_timeout,
            }),
            _ => None,
        };
        Self {
            issuer: c.issuer.to_string(),
            jwks_url: format!("{token}/oauth2/jwks"),
            leeway_secs: g.leeway_secs.as_secs(),
            cache_capacity: g.token_cache_capacity,
            jwks_refetch_interval: Duration::from_secs(5),
            revocation: g.revocation_check,
            revocation_cache_secs: g.revocation_cache_secs.as_secs(),
            introspection,
            http_timeout,
        }
    }
}

/// A token whose signature, type, issuer and lifetime were verified.
#[derive(Debug)]
pub struct VerifiedToken {
    pub claims: AccessTokenClaims,
    pub scopes: Scopes,
    /// `aud`, each value normalised as a resource identifier (RFC 8707).
    pub audiences: Vec<ResourceUri>,
    /// The identity headers for upstreams, made once per token.
    pub subject_header: HeaderValue,
    pub client_id_header: HeaderValue,
    pub scope_header: HeaderValue,
    /// `X-Sallyport-Subject-Type`: `client` for a token without a user, else `user`.
    pub subject_type_header: HeaderValue,
}

impl VerifiedToken {
    pub(crate) fn new(claims: AccessTokenClaims) -> Result<Self, Failure> {
        let scopes =
            Scopes::parse(&claims.scope).map_err(|_| Failure::Invalid("the token's scope is malformed".into()))?;
        let audiences = claims.aud.to_vec().iter().filter_map(|a| ResourceUri::parse(a).ok()).collect();
        let header = |v: &str| {
            HeaderValue::from_str(v).map_err(|_| Failure::Invalid("the token's claims cannot be forwarded".into()))
        };
        Ok(Self {
            subject_header: header(&claims.sub)?,
            client_id_header: header(&claims.client_id)?,
            scope_header: header(&scopes.to_string())?,
            subject_type_header: HeaderValue::from_static(if is_machine(&claims) { "client" } else { "user" }),
            scopes,
            audiences,
            claims,
        })
    }

    /// A token without a user (client_credentials): see [`is_machine`].
    pub fn is_machine(&self) -> bool {
        is_machine(&self.claims)
    }

    /// Whether the token is for `resource`.
    pub fn is_for(&self, resource: &ResourceUri) -> bool {
        self.audiences.iter().any(|a| a == resource)
    }
}

/// RFC 9068 §2.2: a token obtained without a resource owner has the client's identifier as `sub`;
/// a user's token has the user's id, which is never a client's.
pub fn is_machine(claims: &AccessTokenClaims) -> bool {
    claims.sub == claims.client_id
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 401 `invalid_token` with this description.
    Invalid(String),
    /// The token cannot be judged now (JWKS or introspection unreachable): 503, never a 401 that
    /// would send the client into a new authorization.
    Unavailable(String),
}

type TokenHash = [u8; 32];

/// The shared verifier.
pub struct TokenVerifier {
    issuer: String,
    leeway: i64,
    clock: Clock,
    jwks: Jwks,
    verified: quick_cache::sync::Cache<TokenHash, Arc<VerifiedToken>>,
    revocation: RevocationCheck,
    revocation_ttl: i64,
    introspector: Option<Introspector>,
    /// `cached` mode: (active, unix time of the answer) by token hash.
    answers: quick_cache::sync::Cache<TokenHash, (bool, i64)>,
    metrics: server::metrics::Metrics,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").field("issuer", &self.issuer).field("jwks", &self.jwks).finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub fn new(config: VerifierConfig, clock: Clock) -> Result<Self, String> {
        if config.revocation != RevocationCheck::Off && config.introspection.is_none() {
            return Err("a revocation check needs introspection credentials".into());
        }
        let timeout = config.http_timeout;
        let client = WorkerClient::new(move || {
            reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).no_proxy().tcp_nodelay(true)
        })
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let capacity = config.cache_capacity.max(1);
        Ok(Self {
            issuer: config.issuer,
            leeway: i64::try_from(config.leeway_secs).unwrap_or(300),
            jwks: Jwks::new(config.jwks_url, client.clone(), clock.clone(), config.jwks_refetch_interval),
            clock,
            verified: quick_cache::sync::Cache::new(capacity),
            revocation: config.revocation,
            revocation_ttl: i64::try_from(config.revocation_cache_secs).unwrap_or(i64::MAX),
            introspector: config.introspection.map(|c| Introspector::new(c, client)),
            answers: quick_cache::sync::Cache::new(capacity),
            metrics: server::metrics::Metrics::default(),
        })
    }

    /// Counts cache hits, JWKS fetches and introspection calls in `metrics`.
    pub fn with_metrics(mut self, metrics: &server::metrics::Metrics) -> Self {
        self.metrics = metrics.clone();
        self.jwks.metrics = metrics.clone();
        self
    }

    /// Verifies a bearer token: from the cache when it was verified before and has not expired,
    /// else signature, `typ`, algorithm, issuer and lifetime; then revocation as configured.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, Failure> {
        let hash: TokenHash = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.unix();
        let cached = self.verified.get(&hash);
        self.metrics.token_cache(cached.is_some());
        let verified = match cached {
            Some(v) => {
                self.check_time(&v.claims, now).inspect_err(|_| {
                    self.verified.remove(&hash);
                })?;
                v
            }
            None => {
                // boxed: the rare path holds a JWKS fetch; the common one stays a small future
                let v = Arc::new(Box::pin(self.verify_signature(token, now)).await?);
                self.verified.insert(hash, Arc::clone(&v));
                v
            }
        };
        if self.introspector.is_some() {
            Box::pin(self.check_revocation(token, &hash, now)).await?;
        }
        Ok(verified)
    }

    fn check_time(&self, claims: &AccessTokenClaims, now: i64) -> Result<(), Failure> {
        if claims.exp + self.leeway <= now {
            return Err(Failure::Invalid(VerifyError::Expired.to_string()));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + self.leeway) {
            return Err(Failure::Invalid(VerifyError::NotYetValid.to_string()));
        }
        Ok(())
    }

    async fn verify_signature(&self, token: &str, now: i64) -> Result<VerifiedToken, Failure> {
        let invalid = |e: VerifyError| Failure::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid(VerifyError::Malformed))?;
        // typ and the algorithm allow-list come first: nothing else about a token is looked at before
        let kid = jwt::peek_kid(token).map_err(invalid)?.ok_or(invalid(VerifyError::UnknownKey(None)))?;
        let entry = self.jwks.key(&kid).await.map_err(|e| match e {
            KeyError::Unknown => invalid(VerifyError::UnknownKey(Some(kid.clone()))),
            KeyError::Unavailable(m) => Failure::Unavailable(m),
        })?;
        // the key decides the algorithm: a token cannot pick another one for it
        if header.alg != entry.alg {
            return Err(invalid(VerifyError::Algorithm));
        }
        let expect = Expectations { issuer: &self.issuer, audience: None, now, leeway: self.leeway };
        let claims = jwt::verify_with_key(token, &header, &entry.key, &expect).map_err(invalid)?;
        VerifiedToken::new(claims)
    }

    async fn introspect(&self, introspector: &Introspector, token: &str) -> Result<bool, String> {
        let answer = introspector.is_active(token).await;
        self.metrics.introspection(match answer {
            Ok(true) => "active",
            Ok(false) => "inactive",
            Err(_) => "error",
        });
        answer
    }

    async fn check_revocation(&self, token: &str, hash: &TokenHash, now: i64) -> Result<(), Failure> {
        let Some(introspector) = &self.introspector else { return Ok(()) };
        let active = match self.revocation {
            RevocationCheck::Off => return Ok(()),
            RevocationCheck::Strict => self.introspect(introspector, token).await,
            RevocationCheck::Cached => match self.answers.get(hash) {
                Some((active, at)) if now - at < self.revocation_ttl => Ok(active),
                _ => {
                    let answer = self.introspect(introspector, token).await;
                    if let Ok(active) = answer {
                        self.answers.insert(*hash, (active, now));
                    }
                    answer
                }
            },
        };
        match active {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::Invalid("the token has been revoked".into())),
            Err(e) => {
                tracing::warn!(error = %e, "revocation check failed");
                Err(Failure::Unavailable("the revocation check is unavailable".into()))
            }
        }
    }
}

//! The token service's signing keys, fetched from its JWKS and kept as ready decoding keys by kid.
//! An unknown kid triggers a refetch (a new key after rotation), at most once per interval so a
//! stream of forged kids cannot turn the gateway into a load generator against the token service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use protocol::Clock;
use protocol::keys::ACCEPTED_ALGORITHMS;

use crate::worker_client::WorkerClient;

/// Documents larger than this are not key sets.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Bounds on how long a fetched key set is trusted without asking again (its `Cache-Control: max-age`).
const MIN_MAX_AGE: i64 = 60;
const MAX_MAX_AGE: i64 = 3600;
const DEFAULT_MAX_AGE: i64 = 300;

/// A verification key and the one algorithm it may be used with.
pub struct KeyEntry {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry").field("alg", &self.alg).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct KeyRing {
    keys: HashMap<String, Arc<KeyEntry>>,
    fetched_at: i64,
    max_age: i64,
}

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key set was fetched and has no such kid (or the refetch budget is spent).
    Unknown,
    /// The key set could not be fetched: the token cannot be judged now.
    Unavailable(String),
}

/// The JWKS cache.
pub struct Jwks {
    url: String,
    client: WorkerClient,
    clock: Clock,
    refetch_interval: i64,
    ring: RwLock<Arc<KeyRing>>,
    fetching: tokio::sync::Mutex<()>,
    /// Unix seconds of the last fetch attempt; `i64::MIN` before the first.
    last_attempt: AtomicI64,
    /// Whether that attempt failed: until the next one, unknown kids cannot be judged.
    last_failed: AtomicBool,
    pub(super) metrics: server::metrics::Metrics,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Jwks {
    pub fn new(url: String, client: WorkerClient, clock: Clock, refetch_interval: Duration) -> Self {
        Self {
            url,
            client,
            clock,
            refetch_interval: i64::try_from(refetch_interval.as_secs()).unwrap_or(i64::MAX),
            ring: RwLock::new(Arc::new(KeyRing::default())),
            fetching: tokio::sync::Mutex::new(()),
            last_attempt: AtomicI64::new(i64::MIN),
            last_failed: AtomicBool::new(false),
            metrics: server::metrics::Metrics::default(),
        }
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().map(|r| Arc::clone(&r)).unwrap_or_default()
    }

    /// The key for `kid`, fetching the key set when the kid is unknown or the set is stale.
    pub async fn key(&self, kid: &str) -> Result<Arc<KeyEntry>, KeyError> {
        let ring = self.ring();
        let now = self.clock.unix();
        if let Some(key) = ring.keys.get(kid) {
            // a stale set is refreshed by whoever notices first; the others go on with the old one
            // (a key the fresh set no longer has was withdrawn; a failed refresh keeps the old set)
            if now - ring.fetched_at >= ring.max_age
                && let Ok(_guard) = self.fetching.try_lock()
                && self.may_fetch(now)
                && let Ok(fresh) = self.refresh(now).await
            {
                return fresh.keys.get(kid).cloned().ok_or(KeyError::Unknown);
            }
            return Ok(Arc::clone(key));
        }
        let _guard = self.fetching.lock().await;
        // another request may have fetched it while this one waited
        if let Some(key) = self.ring().keys.get(kid) {
            return Ok(Arc::clone(key));
        }
        if !self.may_fetch(now) {
            if self.last_failed.load(Ordering::Relaxed) {
                return Err(KeyError::Unavailable("the key set could not be fetched".into()));
            }
            return Err(KeyError::Unknown);
        }
        let ring = self.refresh(now).await?;
        ring.keys.get(kid).cloned().ok_or(KeyError::Unknown)
    }

    fn may_fetch(&self, now: i64) -> bool {
        let last = self.last_attempt.load(Ordering::Relaxed);
        last == i64::MIN || now.saturating_sub(last) >= self.refetch_interval
    }

    /// Fetches the key set (the caller holds `fetching`). A failure keeps the old keys.
    async fn refresh(&self, now: i64) -> Result<Arc<KeyRing>, KeyError> {
        self.last_attempt.store(now, Ordering::Relaxed);
        let result = self.fetch(now).await;
        self.last_failed.store(result.is_err(), Ordering::Relaxed);
        self.metrics.jwks_refresh(if result.is_ok() { "ok" } else { "error" });
        match result {
            Ok(ring) => {
                let ring = Arc::new(ring);
                if let Ok(mut slot) = self.ring.write() {
                    *slot = Arc::clone(&ring);
                }
                tracing::debug!(keys = ring.keys.len(), "fetched the token service's JWKS");
                Ok(ring)
            }
            Err(message) => {
                tracing::warn!(url = %self.url, error = %message, "cannot fetch the JWKS");
                Err(KeyError::Unavailable(message))
            }
        }
    }

    async fn fetch(&self, now: i64) -> Result<KeyRing, String> {
        let client = self.client.get().map_err(|e| e.without_url().to_string())?;
        let response = client.get(&self.url).send().await.map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .map_or(DEFAULT_MAX_AGE, |a| a.clamp(MIN_MAX_AGE, MAX_MAX_AGE));
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err("the key set is too large".into());
        }
        let bytes = response.bytes().await.map_err(|e| e.without_url().to_string())?;
        if bytes.len() > MAX_JWKS_BYTES {
            return Err("the key set is too large".into());
        }
        let keys = parse_key_set(&bytes)?;
        Ok(KeyRing { keys, fetched_at: now, max_age })
    }
}

/// `max-age=N` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<i64> {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("max-age"))
        .and_then(|(_, v)| v.trim().trim_matches('"').parse().ok())
}

/// Parses `{"keys": [...]}`, keeping every usable signing key: one with a kid, meant for
/// signatures, of an accepted algorithm (never HMAC, never `none`). Unusable keys are skipped
/// one by one, so a single odd key does not hide the others.
pub fn parse_key_set(bytes: &[u8]) -> Result<HashMap<String, Arc<KeyEntry>>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(bytes).map_err(|e| format!("not a JWK set: {e}"))?;
    let mut out = HashMap::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
        let Some(kid) = jwk.common.key_id.clone() else { continue };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let Some(alg) = algorithm_of(&jwk) else { continue };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
        out.insert(kid, Arc::new(KeyEntry { alg, key }));
    }
    Ok(out)
}

/// The algorithm a key is for: its `alg` if given, else what its type implies; only algorithms
/// in the allow-list, and only when the key type fits the algorithm.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => return None,
    };
    let declared = match jwk.common.key_algorithm {
        None => implied,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(_) => return None,
    };
    (declared == implied && ACCEPTED_ALGORITHMS.contains(&declared)).then_some(declared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::keys::{SigningAlg, SigningKey};

    #[test]
    fn keeps_usable_signing_keys_only() {
        let (es, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let (ed, _) = SigningKey::generate(SigningAlg::EdDsa).expect("key");
        let mut no_kid = serde_json::to_value(&es.public_jwk).expect("json");
        no_kid.as_object_mut().expect("object").remove("kid");
        let mut enc = serde_json::to_value(&ed.public_jwk).expect("json");
        enc["use"] = "enc".into();
        enc["kid"] = "enc-key".into();
        let mut lying = serde_json::to_value(&es.public_jwk).expect("json");
        lying["alg"] = "RS256".into();
        lying["kid"] = "lying".into();
        let set = serde_json::json!({"keys": [
            es.public_jwk, ed.public_jwk, no_kid, enc, lying,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "weird", "kid": "w"},
        ]});
        let keys = parse_key_set(set.to_string().as_bytes()).expect("parses");
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        let mut want = vec![es.kid.as_str(), ed.kid.as_str()];
        want.sort();
        assert_eq!(kids, want);
        assert_eq!(keys[&es.kid].alg, Algorithm::ES256);
        assert_eq!(keys[&ed.kid].alg, Algorithm::EdDSA);
        assert!(parse_key_set(b"[]").is_err());
    }

    #[test]
    fn max_age_directive() {
        assert_eq!(max_age("public, max-age=600"), Some(600));
        assert_eq!(max_age("Max-Age=\"60\""), Some(60));
        assert_eq!(max_age("no-cache"), None);
    }
}

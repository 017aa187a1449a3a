//! The signing keys this replica knows: loaded from `signing_keys`, unsealed once, reloaded every
//! few seconds so that a key added by `sallyport keys rotate` (or by another replica's first start)
//! reaches every replica long before it signs. Which key signs and which are published is decided
//! per request against the clock, so activation happens at the same instant on every replica.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use protocol::keys::{KeyError, SigningAlg, SigningKey};
use store::Pool;
use store::signing_keys::{self, SigningKeyRow};

use crate::signer::JwsSigner;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("database: {0}")]
    Database(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("signing key {kid}: the stored public key is invalid: {message}")]
    PublicKey { kid: String, message: String },
}

impl KeyringError {
    /// A stored key does not open with the configured key-encryption key: the keys were sealed
    /// under another one (or the row is damaged).
    pub fn is_sealed_otherwise(&self) -> bool {
        matches!(self, Self::Key(KeyError::Unseal(_)))
    }
}

/// The service refused to start over the signing keys it found. Its own type, so that a caller can
/// tell the cases apart (`sallyport up` explains a database sealed under another key) without
/// reading the message.
#[derive(Debug, thiserror::Error)]
#[error("signing keys: {0}")]
pub struct SigningKeysError(pub KeyringError);

impl From<diesel::result::Error> for KeyringError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<store::db::PoolError> for KeyringError {
    fn from(e: store::db::PoolError) -> Self {
        Self::Database(e.to_string())
    }
}

/// One published key.
pub struct LoadedKey {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    pub retires_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub jwk: Jwk,
    pub decoding: DecodingKey,
    /// The private key; not kept for keys that will never sign again.
    pub signer: Option<JwsSigner>,
}

impl LoadedKey {
    fn published(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    fn signs(&self, now: DateTime<Utc>) -> bool {
        self.signer.is_some()
            && self.activates_at <= now
            && self.retires_at.is_none_or(|r| r > now)
            && self.published(now)
    }
}

/// The loaded keys, swapped whole on every reload.
pub struct Keyring {
    kek: [u8; 32],
    alg: SigningAlg,
    keys: RwLock<Arc<Vec<Arc<LoadedKey>>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl Keyring {
    /// `kek` seals the private keys at rest; `alg` is used for a key created on first start.
    pub fn new(kek: [u8; 32], alg: SigningAlg) -> Self {
        Self { kek, alg, keys: RwLock::new(Arc::new(Vec::new())) }
    }

    fn snapshot(&self) -> Arc<Vec<Arc<LoadedKey>>> {
        match self.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key that signs now: of the keys in their signing period, the one activated last.
    pub fn signer(&self, now: DateTime<Utc>) -> Option<Arc<LoadedKey>> {
        self.snapshot().iter().filter(|k| k.signs(now)).max_by_key(|k| (k.activates_at, k.created_at)).cloned()
    }

    /// When the signing key took over, and when the next scheduled key will (Unix seconds): the
    /// `signing_key_*` gauges.
    pub fn rotation_times(&self, now: DateTime<Utc>) -> (Option<i64>, Option<i64>) {
        let since = self.signer(now).map(|k| k.activates_at.timestamp());
        let next = self.snapshot().iter().filter(|k| k.activates_at > now).map(|k| k.activates_at.timestamp()).min();
        (since, next)
    }

    /// Ready when a key can sign.
    pub fn is_ready(&self, now: DateTime<Utc>) -> bool {
        self.signer(now).is_some()
    }

    /// The published public keys (RFC 7517 §5), pending ones included.
    pub fn jwks(&self, now: DateTime<Utc>) -> JwkSet {
        JwkSet { keys: self.snapshot().iter().filter(|k| k.published(now)).map(|k| k.jwk.clone()).collect() }
    }

    /// A published key by kid, to verify a token with.
    pub fn verifying_key(&self, kid: &str, now: DateTime<Utc>) -> Option<Arc<LoadedKey>> {
        self.snapshot().iter().find(|k| k.kid == kid && k.published(now)).cloned()
    }

    /// Loads the published keys, creating the first key when none is current or scheduled. The new
    /// set is in place even when a key could not be unsealed; that error is returned then.
    pub async fn sync(&self, pool: &Pool, now: DateTime<Utc>) -> Result<(), KeyringError> {
        let mut conn = pool.get().await?;
        let mut rows = signing_keys::published(&mut conn, now).await?;
        if !rows.iter().any(|r| r.retires_at.is_none()) {
            // generated outside the lock; when another replica wins the race this one is discarded
            let row = SigningKeyRow::generate(self.alg, &self.kek, now, now)?;
            if signing_keys::insert_if_none(&mut conn, &row).await? {
                tracing::info!(kid = %row.kid, alg = %row.alg, "created the first signing key");
            }
            rows = signing_keys::published(&mut conn, now).await?;
        }
        drop(conn);
        let previous: HashMap<String, Arc<LoadedKey>> =
            self.snapshot().iter().map(|k| (k.kid.clone(), k.clone())).collect();
        let mut loaded = Vec::with_capacity(rows.len());
        let mut unsealing = Ok(());
        for row in rows {
            let (key, error) = self.load(row, &previous, now)?;
            loaded.push(key);
            if let Some(e) = error {
                unsealing = Err(e.into());
            }
        }
        let loaded = Arc::new(loaded);
        match self.keys.write() {
            Ok(mut guard) => *guard = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
        unsealing
    }

    /// One row made ready: reused from the last load when unchanged, else unsealed and parsed. A key
    /// that cannot be unsealed (a wrong key-encryption key) is still published, never signs, and
    /// its error is returned beside it.
    fn load(
        &self,
        row: SigningKeyRow,
        previous: &HashMap<String, Arc<LoadedKey>>,
        now: DateTime<Utc>,
    ) -> Result<(Arc<LoadedKey>, Option<KeyError>), KeyringError> {
        let will_sign = row.retires_at.is_none_or(|r| r > now);
        if let Some(old) = previous.get(&row.kid)
            && old.retires_at == row.retires_at
            && old.expires_at == row.expires_at
            && old.activates_at == row.activates_at
            && (old.signer.is_some() || !will_sign)
        {
            return Ok((old.clone(), None));
        }
        let bad = |message: String| KeyringError::PublicKey { kid: row.kid.clone(), message };
        let jwk: Jwk = serde_json::from_value(row.public_jwk.clone()).map_err(|e| bad(e.to_string()))?;
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?;
        let (signer, error) = match will_sign.then(|| self.unseal(&row)) {
            None => (None, None),
            Some(Ok(key)) => (Some(key), None),
            Some(Err(e)) => (None, Some(e)),
        };
        let key = Arc::new(LoadedKey {
            kid: row.kid,
            created_at: row.created_at,
            activates_at: row.activates_at,
            retires_at: row.retires_at,
            expires_at: row.expires_at,
            jwk,
            decoding,
            signer,
        });
        Ok((key, error))
    }

    /// The row's private key as a signer, after checking that it belongs to the row's kid.
    fn unseal(&self, row: &SigningKeyRow) -> Result<JwsSigner, KeyError> {
        let alg = SigningAlg::parse(&row.alg)?;
        let pkcs8 = protocol::keys::unseal(&self.kek, &row.kid, &row.private_key_enc)?;
        if SigningKey::from_pkcs8(alg, &pkcs8)?.kid != row.kid {
            return Err(KeyError::Invalid(format!("key {} does not match its kid", row.kid)));
        }
        JwsSigner::new(alg, &row.kid, &pkcs8)
    }
}

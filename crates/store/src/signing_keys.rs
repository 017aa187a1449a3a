//! `signing_keys`: JWT signing keys, the private part sealed under the key-encryption key.
//!
//! Life of a key: published (in the JWKS) from `created_at`; signs from `activates_at` until
//! `retires_at`; unpublished after `expires_at`. A rotation inserts the next key with a future
//! `activates_at` and sets the current one's `retires_at` to that instant, so verifiers see a key
//! before any token is signed with it, and the old key stays published until its tokens expired.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use protocol::keys::{self, KeyError, SigningAlg, SigningKey};

use crate::schema::signing_keys;

/// Fixed advisory-lock key under which replicas and the CLI create and rotate keys one at a time.
const KEYS_LOCK_KEY: i64 = 0x5a11_9027_0002;

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 sealed by [`keys::seal`] with the kid as associated data.
    pub private_key_enc: Vec<u8>,
    pub public_jwk: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    pub retires_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retires_at", &self.retires_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where a key is in its life at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPhase {
    /// Published, not signing yet.
    Pending,
    /// May sign (the newest such key does).
    Signing,
    /// Published for verification only.
    Retired,
    /// No longer published.
    Expired,
}

impl KeyPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signing => "signing",
            Self::Retired => "retired",
            Self::Expired => "expired",
        }
    }
}

impl SigningKeyRow {
    /// A fresh key pair, sealed under `kek`, signing from `activates_at`.
    pub fn generate(
        alg: SigningAlg,
        kek: &[u8; 32],
        now: DateTime<Utc>,
        activates_at: DateTime<Utc>,
    ) -> Result<Self, KeyError> {
        let (key, pkcs8) = SigningKey::generate(alg)?;
        let private_key_enc = keys::seal(kek, &key.kid, &pkcs8)?;
        let public_jwk = serde_json::to_value(&key.public_jwk).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(Self {
            kid: key.kid,
            alg: alg.as_str().to_owned(),
            private_key_enc,
            public_jwk,
            created_at: now,
            activates_at,
            retires_at: None,
            expires_at: None,
        })
    }

    /// The private key, unsealed; fails on a wrong key-encryption key or a row that was tampered with.
    pub fn unseal(&self, kek: &[u8; 32]) -> Result<SigningKey, KeyError> {
        let alg = SigningAlg::parse(&self.alg)?;
        let pkcs8 = keys::unseal(kek, &self.kid, &self.private_key_enc)?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8)?;
        if key.kid != self.kid {
            return Err(KeyError::Invalid(format!("key {} does not match its kid", self.kid)));
        }
        Ok(key)
    }

    pub fn phase(&self, now: DateTime<Utc>) -> KeyPhase {
        if self.expires_at.is_some_and(|e| e <= now) {
            KeyPhase::Expired
        } else if self.retires_at.is_some_and(|r| r <= now) {
            KeyPhase::Retired
        } else if self.activates_at > now {
            KeyPhase::Pending
        } else {
            KeyPhase::Signing
        }
    }
}

/// The key that signs at `now`: of those in their signing phase, the one activated last.
pub fn current_signer(rows: &[SigningKeyRow], now: DateTime<Utc>) -> Option<&SigningKeyRow> {
    rows.iter().filter(|r| r.phase(now) == KeyPhase::Signing).max_by_key(|r| (r.activates_at, r.created_at))
}

/// Every key, oldest first.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "signing_keys.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table.select(SigningKeyRow::as_select()).order(signing_keys::created_at.asc()).load(conn).await
}

/// Keys still published at `now`, oldest first.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "signing_keys.published", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn published(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .filter(signing_keys::expires_at.is_null().or(signing_keys::expires_at.gt(now)))
        .select(SigningKeyRow::as_select())
        .order(signing_keys::created_at.asc())
        .load(conn)
        .await
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "signing_keys.insert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(conn: &mut AsyncPgConnection, row: &SigningKeyRow) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table).values(row).execute(conn).await.map(drop)
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "signing_keys.lock", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
async fn lock(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)").bind::<BigInt, _>(KEYS_LOCK_KEY).execute(conn).await.map(drop)
}

/// Inserts `row` only if no key is current or scheduled (none without `retires_at`): how the first
/// replica to start creates the first key while the others, waiting on the lock, find it there.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "signing_keys.insert_if_none", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert_if_none(conn: &mut AsyncPgConnection, row: &SigningKeyRow) -> QueryResult<bool> {
    conn.transaction(async |conn| {
        lock(conn).await?;
        let current: i64 =
            signing_keys::table.filter(signing_keys::retires_at.is_null()).count().get_result(conn).await?;
        if current > 0 {
            return Ok(false);
        }
        insert(conn, row).await?;
        Ok(true)
    })
    .await
}

/// Schedules `next` (its `activates_at` in the future) and retires every current key at that
/// instant; they stay published `retired_publish_secs` longer. Returns the kids retired.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "signing_keys.rotate", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    next: &SigningKeyRow,
    retired_publish_secs: u64,
) -> QueryResult<Vec<String>> {
    let retires_at = next.activates_at;
    let publish = TimeDelta::seconds(i64::try_from(retired_publish_secs).unwrap_or(i64::MAX / 1000));
    let expires_at = retires_at.checked_add_signed(publish).unwrap_or(DateTime::<Utc>::MAX_UTC);
    conn.transaction(async |conn| {
        lock(conn).await?;
        let retired = diesel::update(signing_keys::table.filter(signing_keys::retires_at.is_null()))
            .set((signing_keys::retires_at.eq(retires_at), signing_keys::expires_at.eq(expires_at)))
            .returning(signing_keys::kid)
            .get_results(conn)
            .await?;
        insert(conn, next).await?;
        Ok(retired)
    })
    .await
}

/// Removes keys unpublished before `before`.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "signing_keys.prune", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(signing_keys::table.filter(signing_keys::expires_at.lt(before))).execute(conn).await
}

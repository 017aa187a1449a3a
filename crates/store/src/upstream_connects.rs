//! `upstream_connects`: a user's Connect to an upstream account in progress (issue 20), between the
//! redirect to the upstream authorization server and its callback. `state` is stored only as its
//! SHA-256, bound to the user and to the SHA-256 of their session cookie; the PKCE verifier is
//! sealed, bound to the state's hash. The callback takes a row once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::keys::{self, KeyError};
use protocol::redact::SecretString;
use uuid::Uuid;

use crate::schema::upstream_connects;

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = upstream_connects, check_for_backend(diesel::pg::Pg))]
pub struct UpstreamConnectRow {
    pub state_hash: Vec<u8>,
    pub user_id: Uuid,
    pub session_hash: Vec<u8>,
    pub route: String,
    pub issuer: String,
    pub verifier_enc: Vec<u8>,
    pub return_to: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The upstream's resource (RFC 8707) the authorization request named; the exchange names it too.
    pub resource: Option<String>,
}

impl std::fmt::Debug for UpstreamConnectRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConnectRow")
            .field("user_id", &self.user_id)
            .field("route", &self.route)
            .field("issuer", &self.issuer)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn aad(state_hash: &[u8]) -> String {
    let hex: String = state_hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("upstream_connects/{hex}")
}

pub fn seal_verifier(kek: &[u8; 32], state_hash: &[u8], verifier: &SecretString) -> Result<Vec<u8>, KeyError> {
    keys::seal(kek, &aad(state_hash), verifier.expose().as_bytes())
}

pub fn unseal_verifier(kek: &[u8; 32], state_hash: &[u8], sealed: &[u8]) -> Result<SecretString, KeyError> {
    let aad = aad(state_hash);
    let plain = keys::unseal(kek, &aad, sealed)?;
    String::from_utf8(plain).map(SecretString::from).map_err(|_| KeyError::Unseal(aad))
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connects.insert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(conn: &mut AsyncPgConnection, row: &UpstreamConnectRow) -> QueryResult<()> {
    diesel::insert_into(upstream_connects::table).values(row.clone()).execute(conn).await.map(drop)
}

/// Deletes and returns the Connect of `state_hash`, if any (expired or not: the caller says
/// which): a second callback with the same `state` finds nothing.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connects.take", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn take(conn: &mut AsyncPgConnection, state_hash: &[u8]) -> QueryResult<Option<UpstreamConnectRow>> {
    diesel::delete(upstream_connects::table.find(state_hash))
        .returning(UpstreamConnectRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Removes Connects that never came back before `expires_at`.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connects.prune", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn prune(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(upstream_connects::table.filter(upstream_connects::expires_at.lt(now))).execute(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_verifier_opens_only_for_its_state() {
        let kek = [9u8; 32];
        let verifier = SecretString::from("v".repeat(43));
        let sealed = seal_verifier(&kek, &[1, 2, 3], &verifier).expect("seal");
        assert_eq!(unseal_verifier(&kek, &[1, 2, 3], &sealed).expect("unseal"), verifier);
        assert!(unseal_verifier(&kek, &[1, 2, 4], &sealed).is_err());
        assert!(unseal_verifier(&[1u8; 32], &[1, 2, 3], &sealed).is_err());
    }
}

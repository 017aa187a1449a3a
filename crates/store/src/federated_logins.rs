//! `federated_logins`: sign-ins with an OpenID provider between the button and the callback. Only
//! hashes: `state` and the browser's pre-login cookie are stored as SHA-256, and the PKCE verifier
//! and nonce are derived from both, never stored. The callback takes a row once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::federated_logins;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = federated_logins, check_for_backend(diesel::pg::Pg))]
pub struct FederatedLoginRow {
    pub state_hash: Vec<u8>,
    pub provider: String,
    pub browser_hash: Vec<u8>,
    pub request: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "federated_logins.insert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(conn: &mut AsyncPgConnection, row: &FederatedLoginRow) -> QueryResult<()> {
    diesel::insert_into(federated_logins::table).values(row).execute(conn).await.map(drop)
}

/// Deletes and returns the sign-in of `state_hash`, if any (expired or not: the caller says which):
/// a second callback with the same `state` finds nothing.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "federated_logins.take", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn take(conn: &mut AsyncPgConnection, state_hash: &[u8]) -> QueryResult<Option<FederatedLoginRow>> {
    diesel::delete(federated_logins::table.find(state_hash))
        .returning(FederatedLoginRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Removes sign-ins that were abandoned (never came back before `expires_at`).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "federated_logins.prune", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn prune(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(federated_logins::table.filter(federated_logins::expires_at.lt(now))).execute(conn).await
}

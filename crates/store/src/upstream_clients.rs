//! `upstream_clients`: Sallyport's own client at an upstream authorization server (issue 20), one
//! per issuer: its client ID metadata document URL, or what dynamic registration (RFC 7591) gave
//! once. The client secret and the registration access token (RFC 7592) are sealed, bound to the
//! issuer; the server's RFC 8414 metadata is kept so a refresh needs no discovery.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::keys::{self, KeyError};
use protocol::redact::SecretString;

use crate::schema::upstream_clients;

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = upstream_clients, check_for_backend(diesel::pg::Pg))]
pub struct UpstreamClientRow {
    pub issuer: String,
    pub client_id: String,
    /// `metadata_document`, `dynamic`, or `configured` (a client registered by hand on a route:
    /// the row keeps only the server's metadata for it).
    pub method: String,
    pub token_endpoint_auth_method: String,
    pub client_secret_enc: Option<Vec<u8>>,
    pub registration_access_token_enc: Option<Vec<u8>>,
    pub registration_client_uri: Option<String>,
    /// The authorization server's metadata (RFC 8414), as discovered.
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for UpstreamClientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClientRow")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .field("token_endpoint_auth_method", &self.token_endpoint_auth_method)
            .finish_non_exhaustive()
    }
}

/// What a sealed column of `issuer`'s row is bound to: `client_secret` or
/// `registration_access_token`.
fn aad(issuer: &str, column: &str) -> String {
    format!("upstream_clients/{issuer}/{column}")
}

pub fn seal_secret(kek: &[u8; 32], issuer: &str, column: &str, secret: &SecretString) -> Result<Vec<u8>, KeyError> {
    keys::seal(kek, &aad(issuer, column), secret.expose().as_bytes())
}

pub fn unseal_secret(kek: &[u8; 32], issuer: &str, column: &str, sealed: &[u8]) -> Result<SecretString, KeyError> {
    let aad = aad(issuer, column);
    let plain = keys::unseal(kek, &aad, sealed)?;
    String::from_utf8(plain).map(SecretString::from).map_err(|_| KeyError::Unseal(aad))
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_clients.find", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find(conn: &mut AsyncPgConnection, issuer: &str) -> QueryResult<Option<UpstreamClientRow>> {
    upstream_clients::table.find(issuer).select(UpstreamClientRow::as_select()).first(conn).await.optional()
}

/// Stores a registration unless one for the issuer exists already, and returns the one that is
/// stored: two replicas registering at once both end up using the same client.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_clients.insert_or_get", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert_or_get(conn: &mut AsyncPgConnection, row: &UpstreamClientRow) -> QueryResult<UpstreamClientRow> {
    let inserted = diesel::insert_into(upstream_clients::table)
        .values(row.clone())
        .on_conflict_do_nothing()
        .returning(UpstreamClientRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match inserted {
        Some(row) => Ok(row),
        None => upstream_clients::table.find(&row.issuer).select(UpstreamClientRow::as_select()).first(conn).await,
    }
}

/// The server's metadata as discovered again (endpoints move).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_clients.set_metadata", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn set_metadata(
    conn: &mut AsyncPgConnection,
    issuer: &str,
    metadata: &serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(upstream_clients::table.find(issuer))
        .set((upstream_clients::metadata.eq(metadata), upstream_clients::updated_at.eq(now)))
        .execute(conn)
        .await
        .map(drop)
}

/// Replaces the issuer's row (a registration in place of a `configured` metadata-only row).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_clients.replace", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn replace(conn: &mut AsyncPgConnection, row: &UpstreamClientRow) -> QueryResult<()> {
    use upstream_clients::dsl as c;
    diesel::insert_into(c::upstream_clients)
        .values(row.clone())
        .on_conflict(c::issuer)
        .do_update()
        .set((
            c::client_id.eq(&row.client_id),
            c::method.eq(&row.method),
            c::token_endpoint_auth_method.eq(&row.token_endpoint_auth_method),
            c::client_secret_enc.eq(&row.client_secret_enc),
            c::registration_access_token_enc.eq(&row.registration_access_token_enc),
            c::registration_client_uri.eq(&row.registration_client_uri),
            c::metadata.eq(&row.metadata),
            c::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Every registration, by issuer (`sallyport route discover`, operators).
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<UpstreamClientRow>> {
    upstream_clients::table
        .select(UpstreamClientRow::as_select())
        .order(upstream_clients::issuer.asc())
        .load(conn)
        .await
}

/// Forgets the registration (the upstream no longer knows the client, or an operator asks).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_clients.delete", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete(conn: &mut AsyncPgConnection, issuer: &str) -> QueryResult<bool> {
    diesel::delete(upstream_clients::table.find(issuer)).execute(conn).await.map(|n| n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_issuer_column_and_key() {
        let kek = [7u8; 32];
        let secret = SecretString::from("dcr-secret-1");
        let sealed = seal_secret(&kek, "https://as.example", "client_secret", &secret).expect("seal");
        assert!(!sealed.windows(12).any(|w| w == b"dcr-secret-1"));
        let opened = unseal_secret(&kek, "https://as.example", "client_secret", &sealed).expect("unseal");
        assert_eq!(opened, secret);
        assert!(unseal_secret(&kek, "https://other.example", "client_secret", &sealed).is_err());
        assert!(unseal_secret(&kek, "https://as.example", "registration_access_token", &sealed).is_err());
        assert!(unseal_secret(&[8u8; 32], "https://as.example", "client_secret", &sealed).is_err());
    }
}

//! `gateway_routes`: gateway routes added at run time (`sallyport route add`), beside the
//! configuration's `[[gateway.routes]]`. The credential a route sends upstream is sealed with
//! AES-256-GCM under the key-encryption key ([`protocol::keys::seal`], the routine that seals
//! signing keys), bound to the route's prefix; only the header names are stored in the clear.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::keys::{self, KeyError};
use protocol::redact::SecretString;

use crate::schema::gateway_routes;

/// One route as stored. `Debug` leaves out the sealed credential (it is ciphertext, but a log
/// has no use for it either).
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = gateway_routes, check_for_backend(diesel::pg::Pg))]
pub struct GatewayRouteRow {
    pub prefix: String,
    pub upstream: String,
    pub resource: Option<String>,
    pub scopes: Vec<Option<String>>,
    pub auth: bool,
    pub mcp: bool,
    pub allowed_origins: Vec<Option<String>>,
    /// `none`, `api_key` or `headers`.
    pub upstream_auth: String,
    /// The names of the headers sealed in `upstream_secret_enc`, in order (shown by the CLI).
    pub upstream_header_names: Vec<Option<String>>,
    /// The headers (names and values) as JSON, sealed by [`seal_headers`]; `None` for `none`.
    pub upstream_secret_enc: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `upstream_auth = "oauth2"`: the route's explicit settings that override discovery
    /// (`protocol::upstream_auth::UpstreamOAuth` as JSON); its client secret, if any, is sealed in
    /// `upstream_secret_enc`. `None` for the other kinds.
    pub upstream_oauth: Option<serde_json::Value>,
}

impl std::fmt::Debug for GatewayRouteRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayRouteRow")
            .field("prefix", &self.prefix)
            .field("upstream", &self.upstream)
            .field("resource", &self.resource)
            .field("upstream_auth", &self.upstream_auth)
            .field("upstream_header_names", &self.upstream_header_names)
            .finish_non_exhaustive()
    }
}

/// The associated data a route's credential is sealed with: a sealed value copied onto another
/// route's row does not open there.
fn aad(prefix: &str) -> String {
    format!("gateway_routes/{prefix}")
}

/// Seals upstream headers (name, value) for the route at `prefix`.
pub fn seal_headers(kek: &[u8; 32], prefix: &str, headers: &[(String, SecretString)]) -> Result<Vec<u8>, KeyError> {
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.expose())).collect();
    let plain = serde_json::to_vec(&pairs).map_err(|e| KeyError::Invalid(e.to_string()))?;
    keys::seal(kek, &aad(prefix), &plain)
}

/// Opens what [`seal_headers`] sealed; fails on a wrong key, another row's value or tampering.
pub fn unseal_headers(kek: &[u8; 32], prefix: &str, sealed: &[u8]) -> Result<Vec<(String, SecretString)>, KeyError> {
    let plain = keys::unseal(kek, &aad(prefix), sealed)?;
    let pairs: Vec<(String, String)> = serde_json::from_slice(&plain).map_err(|_| KeyError::Unseal(aad(prefix)))?;
    Ok(pairs.into_iter().map(|(n, v)| (n, SecretString::from(v))).collect())
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "gateway_routes.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<GatewayRouteRow>> {
    gateway_routes::table.select(GatewayRouteRow::as_select()).order(gateway_routes::prefix.asc()).load(conn).await
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "gateway_routes.find", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find(conn: &mut AsyncPgConnection, prefix: &str) -> QueryResult<Option<GatewayRouteRow>> {
    gateway_routes::table.find(prefix).select(GatewayRouteRow::as_select()).first(conn).await.optional()
}

/// Adds or replaces the route at `row.prefix` (its `created_at` kept on replacement).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "gateway_routes.upsert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn upsert(conn: &mut AsyncPgConnection, row: &GatewayRouteRow) -> QueryResult<()> {
    diesel::insert_into(gateway_routes::table)
        .values(row.clone())
        .on_conflict(gateway_routes::prefix)
        .do_update()
        .set((
            gateway_routes::upstream.eq(&row.upstream),
            gateway_routes::resource.eq(&row.resource),
            gateway_routes::scopes.eq(&row.scopes),
            gateway_routes::auth.eq(row.auth),
            gateway_routes::mcp.eq(row.mcp),
            gateway_routes::allowed_origins.eq(&row.allowed_origins),
            gateway_routes::upstream_auth.eq(&row.upstream_auth),
            gateway_routes::upstream_header_names.eq(&row.upstream_header_names),
            gateway_routes::upstream_secret_enc.eq(&row.upstream_secret_enc),
            gateway_routes::upstream_oauth.eq(&row.upstream_oauth),
            gateway_routes::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .await
        .map(drop)
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "gateway_routes.delete", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete(conn: &mut AsyncPgConnection, prefix: &str) -> QueryResult<bool> {
    diesel::delete(gateway_routes::table.find(prefix)).execute(conn).await.map(|n| n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_headers_open_only_for_their_route_and_key() {
        let kek = [3u8; 32];
        let headers = vec![("x-api-key".to_owned(), SecretString::from("k-123")), ("x-b".to_owned(), "2".into())];
        let sealed = seal_headers(&kek, "/linear", &headers).expect("seal");
        assert!(!sealed.windows(5).any(|w| w == b"k-123"), "no plaintext in the sealed value");
        let opened = unseal_headers(&kek, "/linear", &sealed).expect("unseal");
        assert_eq!(opened, headers);
        assert!(unseal_headers(&kek, "/other", &sealed).is_err(), "bound to its prefix");
        assert!(unseal_headers(&[4u8; 32], "/linear", &sealed).is_err(), "wrong key");
    }
}

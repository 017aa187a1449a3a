//! `upstream_connections`: a user's account at the upstream of an `upstream_auth = "oauth2"` route
//! (issue 20). The upstream's access and refresh tokens are sealed together with AES-256-GCM under
//! the key-encryption key ([`protocol::keys::seal`]), bound to (user, route): a database dump
//! reveals no token, and a sealed value copied onto another row does not open there.
//!
//! Refreshing is exactly once across gateways: a gateway takes the row with [`lock`] (`SELECT …
//! FOR UPDATE`) inside a transaction, and if `generation` moved since it read the row, another one
//! already refreshed and its tokens are used instead; [`replace_tokens`] stores a rotated refresh
//! token in the same transaction, before the new access token is used.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::keys::{self, KeyError};
use protocol::redact::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schema::upstream_connections;

/// What is sealed in `tokens_enc`. `Debug` (through [`SecretString`]) shows no token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamTokens {
    pub access_token: SecretString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretString>,
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = upstream_connections, check_for_backend(diesel::pg::Pg))]
pub struct UpstreamConnectionRow {
    pub user_id: Uuid,
    /// The route's prefix.
    pub route: String,
    /// The upstream authorization server that issued the tokens.
    pub issuer: String,
    /// [`UpstreamTokens`] sealed by [`seal_tokens`].
    pub tokens_enc: Vec<u8>,
    pub has_refresh_token: bool,
    /// The scope the upstream granted, as it said (RFC 6749 §5.1), if it did.
    pub scope: Option<String>,
    /// When the access token expires, if the upstream said (`expires_in`).
    pub expires_at: Option<DateTime<Utc>>,
    /// Grows by one with every refresh.
    pub generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for UpstreamConnectionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConnectionRow")
            .field("user_id", &self.user_id)
            .field("route", &self.route)
            .field("issuer", &self.issuer)
            .field("has_refresh_token", &self.has_refresh_token)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The channel on which the database tells of every update or delete of a row (the trigger of
/// migration `001400_upstream_connections_notify`): gateways drop what they cached of it.
pub const CHANGES: &str = "upstream_connections";

/// A notification on [`CHANGES`]: which row, and its new generation (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Change {
    pub user_id: Uuid,
    pub route: String,
    pub generation: Option<i64>,
}

impl Change {
    pub fn parse(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }
}

fn aad(user_id: Uuid, route: &str) -> String {
    format!("upstream_connections/{user_id}/{route}")
}

/// Seals a user's tokens for `route`.
pub fn seal_tokens(kek: &[u8; 32], user_id: Uuid, route: &str, tokens: &UpstreamTokens) -> Result<Vec<u8>, KeyError> {
    let plain = serde_json::to_vec(tokens).map_err(|e| KeyError::Invalid(e.to_string()))?;
    keys::seal(kek, &aad(user_id, route), &plain)
}

/// Opens what [`seal_tokens`] sealed; fails on a wrong key, another row's value or tampering.
pub fn unseal_tokens(kek: &[u8; 32], user_id: Uuid, route: &str, sealed: &[u8]) -> Result<UpstreamTokens, KeyError> {
    let aad = aad(user_id, route);
    let plain = keys::unseal(kek, &aad, sealed)?;
    serde_json::from_slice(&plain).map_err(|_| KeyError::Unseal(aad))
}

/// Stores a new connection or replaces the tokens of an existing one (a second Connect); the
/// generation moves on either way, so a gateway holding the old tokens re-reads.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connections.upsert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn upsert(conn: &mut AsyncPgConnection, row: &UpstreamConnectionRow) -> QueryResult<()> {
    use upstream_connections::dsl as c;
    diesel::insert_into(c::upstream_connections)
        .values(row.clone())
        .on_conflict((c::user_id, c::route))
        .do_update()
        .set((
            c::issuer.eq(&row.issuer),
            c::tokens_enc.eq(&row.tokens_enc),
            c::has_refresh_token.eq(row.has_refresh_token),
            c::scope.eq(&row.scope),
            c::expires_at.eq(row.expires_at),
            c::generation.eq(c::generation + 1),
            c::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .await
        .map(drop)
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connections.find", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    route: &str,
) -> QueryResult<Option<UpstreamConnectionRow>> {
    upstream_connections::table
        .find((user_id, route))
        .select(UpstreamConnectionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The row, locked until the end of the caller's transaction (`SELECT … FOR UPDATE`): the one
/// gateway holding it refreshes; the others wait, then see the new `generation`.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connections.lock", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn lock(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    route: &str,
) -> QueryResult<Option<UpstreamConnectionRow>> {
    upstream_connections::table
        .find((user_id, route))
        .select(UpstreamConnectionRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// After a refresh: the new sealed tokens (with the rotated refresh token, or the old one if the
/// upstream kept it), scope and expiry; returns the new generation.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connections.replace_tokens", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
#[allow(clippy::too_many_arguments)]
pub async fn replace_tokens(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    route: &str,
    tokens_enc: &[u8],
    has_refresh_token: bool,
    scope: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    use upstream_connections::dsl as c;
    diesel::update(c::upstream_connections.find((user_id, route)))
        .set((
            c::tokens_enc.eq(tokens_enc),
            c::has_refresh_token.eq(has_refresh_token),
            c::scope.eq(scope),
            c::expires_at.eq(expires_at),
            c::generation.eq(c::generation + 1),
            c::updated_at.eq(now),
        ))
        .returning(c::generation)
        .get_result(conn)
        .await
}

/// Disconnect (by the user, an operator, or after the upstream refused the refresh token): the row
/// is gone and comes back, so the caller can revoke its tokens at the upstream.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connections.delete", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    route: &str,
) -> QueryResult<Option<UpstreamConnectionRow>> {
    diesel::delete(upstream_connections::table.find((user_id, route)))
        .returning(UpstreamConnectionRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Every connection, or one user's, ordered by user then route.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "upstream_connections.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection, user_id: Option<Uuid>) -> QueryResult<Vec<UpstreamConnectionRow>> {
    let mut q = upstream_connections::table.select(UpstreamConnectionRow::as_select()).into_boxed();
    if let Some(user_id) = user_id {
        q = q.filter(upstream_connections::user_id.eq(user_id));
    }
    q.order((upstream_connections::user_id.asc(), upstream_connections::route.asc())).load(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_for_their_user_route_and_key() {
        let kek = [5u8; 32];
        let user = Uuid::new_v4();
        let tokens =
            UpstreamTokens { access_token: "upstream-at-123".into(), refresh_token: Some("upstream-rt-456".into()) };
        let sealed = seal_tokens(&kek, user, "/linear", &tokens).expect("seal");
        for plain in [&b"upstream-at-123"[..], b"upstream-rt-456"] {
            assert!(!sealed.windows(plain.len()).any(|w| w == plain), "no plaintext in the sealed value");
        }
        assert_eq!(unseal_tokens(&kek, user, "/linear", &sealed).expect("unseal"), tokens);
        assert!(unseal_tokens(&kek, user, "/github", &sealed).is_err(), "bound to its route");
        assert!(unseal_tokens(&kek, Uuid::new_v4(), "/linear", &sealed).is_err(), "bound to its user");
        assert!(unseal_tokens(&[6u8; 32], user, "/linear", &sealed).is_err(), "wrong key");
        assert!(!format!("{tokens:?}").contains("upstream-at-123"), "Debug shows no token");
    }
}

//! `revoked_grants` and `revoked_access_tokens`: revocation is recorded, issuance is not.
//!
//! Access tokens are JWTs that are never stored. A revoked grant family kills every access token
//! whose `gid` names it (and its refresh tokens); a revoked `jti` kills one access token. Rows can
//! be pruned once `expires_at` has passed: by then every token they describe has expired.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{clients, revoked_access_tokens, revoked_grants, users};

/// Why a grant family was revoked (the `reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantRevocation {
    /// RFC 6749 §4.1.2: an authorization code was presented again.
    CodeReplay,
    /// A rotated (or revoked) refresh token was presented again.
    RefreshReuse,
    /// RFC 7009: the client revoked a refresh token.
    Revoked,
}

impl GrantRevocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodeReplay => "code_replay",
            Self::RefreshReuse => "refresh_reuse",
            Self::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = revoked_grants, check_for_backend(diesel::pg::Pg))]
pub struct RevokedGrantRow {
    pub grant_id: Uuid,
    pub reason: String,
    pub revoked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = revoked_access_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RevokedAccessTokenRow {
    pub jti: Uuid,
    pub client_id: String,
    pub revoked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Revokes a whole grant family in one statement: every refresh token of it is marked revoked, its
/// `grant_families` row too (what a rotation checks, so a successor a rotation in flight inserts
/// cannot rotate either), and the family is recorded, so its access tokens die too. `keep_until`
/// must outlive every token the family could still hold. Idempotent; returns how many refresh
/// tokens were live until now.
///
/// The family's row exists whenever a refresh token of it can: the callers name a family they found
/// a token of, or (code replay) a code whose redemption, which inserts the family, has committed.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "revocations.revoke_grant", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn revoke_grant(
    conn: &mut AsyncPgConnection,
    grant_id: Uuid,
    reason: GrantRevocation,
    now: DateTime<Utc>,
    keep_until: DateTime<Utc>,
) -> QueryResult<u64> {
    let count: Count = diesel::sql_query(
        "WITH r AS (UPDATE refresh_tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL RETURNING 1), \
         f AS (UPDATE grant_families SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL), \
         g AS (INSERT INTO revoked_grants (grant_id, reason, revoked_at, expires_at) VALUES ($1, $3, $2, $4) \
         ON CONFLICT (grant_id) DO UPDATE SET expires_at = greatest(revoked_grants.expires_at, EXCLUDED.expires_at)) \
         SELECT count(*) AS n FROM r",
    )
    .bind::<diesel::sql_types::Uuid, _>(grant_id)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(reason.as_str())
    .bind::<Timestamptz, _>(keep_until)
    .get_result(conn)
    .await?;
    Ok(u64::try_from(count.n).unwrap_or(0))
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "revocations.find_grant", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_grant(conn: &mut AsyncPgConnection, grant_id: Uuid) -> QueryResult<Option<RevokedGrantRow>> {
    revoked_grants::table.find(grant_id).select(RevokedGrantRow::as_select()).first(conn).await.optional()
}

/// Records one access token as revoked until it expires. Returns false when it already was.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "revocations.revoke_access_token", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn revoke_access_token(conn: &mut AsyncPgConnection, row: &RevokedAccessTokenRow) -> QueryResult<bool> {
    diesel::insert_into(revoked_access_tokens::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// What the database knows about an access token that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTokenState {
    pub client_exists: bool,
    pub grant_revoked: bool,
    pub token_revoked: bool,
    /// The token's user is disabled (`sallyport user disable`).
    pub user_disabled: bool,
}

impl AccessTokenState {
    pub fn is_live(self) -> bool {
        self.client_exists && !self.grant_revoked && !self.token_revoked && !self.user_disabled
    }
}

/// One round trip: does the token's client still exist, is its family revoked, is it revoked
/// itself, is its user (`None` for a token without one) disabled.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "revocations.access_token_state", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn access_token_state(
    conn: &mut AsyncPgConnection,
    client_id: &str,
    grant_id: Option<Uuid>,
    jti: Uuid,
    user_id: Option<Uuid>,
) -> QueryResult<AccessTokenState> {
    let (client_exists, grant_revoked, token_revoked, user_disabled) = diesel::select((
        exists(clients::table.find(client_id)),
        exists(revoked_grants::table.filter(revoked_grants::grant_id.nullable().eq(grant_id))),
        exists(revoked_access_tokens::table.find(jti)),
        exists(users::table.filter(users::id.nullable().eq(user_id)).filter(users::disabled)),
    ))
    .get_result::<(bool, bool, bool, bool)>(conn)
    .await?;
    Ok(AccessTokenState { client_exists, grant_revoked, token_revoked, user_disabled })
}

/// Removes revocation records whose tokens have all expired before `before` (housekeeping).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "revocations.prune", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    let grants =
        diesel::delete(revoked_grants::table.filter(revoked_grants::expires_at.lt(before))).execute(conn).await?;
    let tokens = diesel::delete(revoked_access_tokens::table.filter(revoked_access_tokens::expires_at.lt(before)))
        .execute(conn)
        .await?;
    Ok(grants + tokens)
}

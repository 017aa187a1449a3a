//! `refresh_tokens`: one row per issued refresh token; a grant family shares `grant_id` and has a
//! row of its own in `grant_families` (who it belongs to, when it ends), which its tokens die with.
//!
//! Rotation marks the presented token used and inserts its successor in ONE statement, so that of
//! any number of concurrent uses exactly one succeeds, and a grant costs one durable commit.
//!
//! What a rotation writes is kept to what a rule needs (issue 19; migration
//! `2026-12-07-001100_refresh_rotation`): two index entries (the hash, the family), no foreign-key
//! check (a trigger on `grant_families` deletes a family's tokens with it) and no CHECK constraint:
//! a token hash is SHA-256, 32 bytes, which this module's edge enforces instead ([`HashLength`]).
//!
//! What a rotation re-checks besides the token, whether its family was revoked and whether its user
//! is disabled, sits on the family's row (`revoked_at`, `user_disabled`; migration
//! `2026-12-07-001300_grant_family_state`): one primary-key probe of `grant_families` instead of one
//! of `revoked_grants` and one of `users`. The writes that change either keep the row in step
//! ([`crate::revocations::revoke_grant`], [`crate::users::set_disabled`],
//! [`crate::users::end_sessions_and_grants`], [`crate::consents::revoke_with_tokens`]).

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Bytea, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::scope::Scopes;
use protocol::secret::SecretHash;
use protocol::uri::ResourceUri;
use uuid::Uuid;

use crate::column::{TextArray, scope_texts, texts};
use crate::schema::{grant_families, refresh_tokens};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshTokenRow {
    /// The token's id, only named as a successor's `parent_id` (the history of a family).
    pub id: Uuid,
    /// SHA-256 of the `sprt_` token; the primary key.
    pub token_hash: Vec<u8>,
    pub grant_id: Uuid,
    /// The token this one was rotated from.
    pub parent_id: Option<Uuid>,
    pub client_id: String,
    pub user_id: Option<Uuid>,
    /// The scope of the grant (`Scopes::to_string`); a rotated token keeps it (RFC 6749 §6).
    pub scope: String,
    /// The resources of the grant.
    #[diesel(deserialize_as = TextArray)]
    pub resources: Vec<ResourceUri>,
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Idle limit of this token, never past `family_expires_at`.
    pub expires_at: DateTime<Utc>,
    /// Absolute limit of the whole family.
    pub family_expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token hash that is not a SHA-256 (32 bytes): refused before it reaches the database, which
/// has no CHECK on the column (one would be re-planned on every rotation).
#[derive(Debug, thiserror::Error)]
#[error("a refresh token hash must be 32 bytes (SHA-256), not {0}")]
pub struct HashLength(pub usize);

/// Inserts a token, and its grant family's row when it is the family's first (one statement: the
/// family row is what deletes and revocations by user or client go through). A hash of any length
/// but 32 bytes is refused ([`HashLength`], as a query-builder error).
///
/// A new family row takes its state from what is recorded: `revoked_at` from `revoked_grants`, and
/// `user_disabled` from the user's row read under a share lock. The lock is what makes a disable
/// reach a family inserted while it runs: [`crate::users::set_disabled`] updates the user's row
/// before its families, so either this waits for the disable to commit and reads `disabled`, or the
/// disable waits for this transaction and its next statement sees the family. (A revocation that
/// runs meanwhile meets this row on the unique key instead; see [`crate::users::end_sessions_and_grants`].)
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "refresh_tokens.insert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(conn: &mut AsyncPgConnection, row: &RefreshTokenRow) -> QueryResult<()> {
    use diesel::sql_types::Uuid as SqlUuid;
    if row.token_hash.len() != 32 {
        return Err(diesel::result::Error::QueryBuilderError(Box::new(HashLength(row.token_hash.len()))));
    }
    diesel::sql_query(
        "WITH family AS (INSERT INTO grant_families (grant_id, client_id, user_id, resources, created_at, \
         family_expires_at, revoked_at, user_disabled) VALUES ($3, $5, $6, $8, $10, $12, \
         (SELECT revoked_at FROM revoked_grants WHERE grant_id = $3), \
         coalesce((SELECT disabled FROM users WHERE id = $6 FOR SHARE), false)) \
         ON CONFLICT (grant_id) DO NOTHING) \
         INSERT INTO refresh_tokens (id, token_hash, grant_id, parent_id, client_id, user_id, scope, resources, \
         auth_time, created_at, expires_at, family_expires_at, used_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind::<SqlUuid, _>(row.id)
    .bind::<Bytea, _>(&row.token_hash)
    .bind::<SqlUuid, _>(row.grant_id)
    .bind::<Nullable<SqlUuid>, _>(row.parent_id)
    .bind::<Text, _>(&row.client_id)
    .bind::<Nullable<SqlUuid>, _>(row.user_id)
    .bind::<Text, _>(&row.scope)
    .bind::<Array<Nullable<Text>>, _>(texts(&row.resources))
    .bind::<Timestamptz, _>(row.auth_time)
    .bind::<Timestamptz, _>(row.created_at)
    .bind::<Timestamptz, _>(row.expires_at)
    .bind::<Timestamptz, _>(row.family_expires_at)
    .bind::<Nullable<Timestamptz>, _>(row.used_at)
    .bind::<Nullable<Timestamptz>, _>(row.revoked_at)
    .execute(conn)
    .await
    .map(drop)
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "refresh_tokens.find_by_hash", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_by_hash(conn: &mut AsyncPgConnection, token_hash: &[u8]) -> QueryResult<Option<RefreshTokenRow>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(RefreshTokenRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Every token of a grant family, oldest first.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "refresh_tokens.family", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn family(conn: &mut AsyncPgConnection, grant_id: Uuid) -> QueryResult<Vec<RefreshTokenRow>> {
    refresh_tokens::table
        .filter(refresh_tokens::grant_id.eq(grant_id))
        .order(refresh_tokens::created_at.asc())
        .select(RefreshTokenRow::as_select())
        .load(conn)
        .await
}

/// A refresh request: the presented token, the narrowing it asks for, and its successor.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub presented_hash: SecretHash,
    pub client_id: String,
    /// Scope tokens the access token asks for; each must be in the grant's scope (empty: no narrowing).
    pub scopes: Scopes,
    /// Resources the access token asks for; each must be in the grant's resources (empty: no narrowing).
    pub resources: Vec<ResourceUri>,
    pub now: DateTime<Utc>,
    pub new_id: Uuid,
    pub new_hash: SecretHash,
    /// `now` + the idle lifetime; the successor expires then or with its family, whichever is first.
    pub idle_expires_at: DateTime<Utc>,
}

/// What a successful rotation took over from the presented token.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Rotated {
    pub grant_id: Uuid,
    pub user_id: Option<Uuid>,
    pub scope: String,
    #[diesel(deserialize_as = TextArray)]
    pub resources: Vec<ResourceUri>,
    pub auth_time: DateTime<Utc>,
    /// When the successor expires.
    pub expires_at: DateTime<Utc>,
}

/// Rotates in one statement: the presented token is marked used only if it is unused, unrevoked,
/// unexpired, the caller's, of a family not revoked and of a user not disabled (both read from the
/// family's row), and the requested narrowing fits; then its successor is inserted with the same
/// grant. `None` when any condition failed (including a concurrent use that won): the caller looks
/// at [`find_by_hash`] to say why.
///
/// A revocation that commits while a rotation is in flight marks the presented token revoked (it
/// waits for the rotation's row lock), but the successor is not in its snapshot; the family's
/// `revoked_at` stops the successor at its first use, as `revoked_grants` did before.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "refresh_tokens.rotate", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn rotate(conn: &mut AsyncPgConnection, rotation: &Rotation) -> QueryResult<Option<Rotated>> {
    let query = RotateQuery { rotation, scopes: scope_texts(&rotation.scopes), resources: texts(&rotation.resources) };
    query.get_result(conn).await.optional()
}

/// The rotation statement. A query type of its own (rather than `sql_query`) so that diesel keeps
/// it as a prepared statement per connection: one round trip per rotation instead of two. Its shape
/// is the minimal rotation's (`WITH old AS (UPDATE … RETURNING) INSERT … SELECT FROM old
/// RETURNING`): the INSERT returns what the caller needs, so no second CTE and no join of the two
/// (~13,000 instructions of executor set-up per rotation fewer, BENCHMARKS.md).
#[derive(Debug)]
struct RotateQuery<'a> {
    rotation: &'a Rotation,
    /// The narrowing as `text[]` parameters.
    scopes: Vec<Option<&'a str>>,
    resources: Vec<Option<&'a str>>,
}

impl QueryId for RotateQuery<'_> {
    type QueryId = RotateQuery<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for RotateQuery<'_> {
    type SqlType = (
        diesel::sql_types::Uuid,
        Nullable<diesel::sql_types::Uuid>,
        Text,
        Array<Nullable<Text>>,
        Timestamptz,
        Timestamptz,
    );
}

impl QueryFragment<Pg> for RotateQuery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let r = self.rotation;
        out.push_sql("WITH old AS (UPDATE refresh_tokens AS t SET used_at = ");
        out.push_bind_param::<Timestamptz, _>(&r.now)?;
        out.push_sql(" WHERE t.token_hash = ");
        out.push_bind_param::<Bytea, _>(r.presented_hash.as_bytes())?;
        out.push_sql(" AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > ");
        out.push_bind_param::<Timestamptz, _>(&r.now)?;
        out.push_sql(" AND t.family_expires_at > ");
        out.push_bind_param::<Timestamptz, _>(&r.now)?;
        out.push_sql(" AND t.client_id = ");
        out.push_bind_param::<Text, _>(&r.client_id)?;
        // RFC 6749 §6 and RFC 8707 §2.2: the access token may narrow scope and audience, never widen
        out.push_sql(" AND ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.scopes)?;
        out.push_sql(" <@ string_to_array(t.scope, ' ') AND ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.resources)?;
        out.push_sql(
            " <@ t.resources \
             AND EXISTS (SELECT 1 FROM grant_families f WHERE f.grant_id = t.grant_id \
             AND f.revoked_at IS NULL AND NOT f.user_disabled) \
             RETURNING t.id, t.grant_id, t.user_id, t.scope, t.resources, t.auth_time, t.family_expires_at) \
             INSERT INTO refresh_tokens (id, token_hash, grant_id, parent_id, client_id, user_id, scope, \
             resources, auth_time, created_at, expires_at, family_expires_at) SELECT ",
        );
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&r.new_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Bytea, _>(r.new_hash.as_bytes())?;
        out.push_sql(", old.grant_id, old.id, ");
        out.push_bind_param::<Text, _>(&r.client_id)?;
        out.push_sql(", old.user_id, old.scope, old.resources, old.auth_time, ");
        out.push_bind_param::<Timestamptz, _>(&r.now)?;
        out.push_sql(", least(");
        out.push_bind_param::<Timestamptz, _>(&r.idle_expires_at)?;
        out.push_sql(
            ", old.family_expires_at), old.family_expires_at FROM old \
             RETURNING grant_id, user_id, scope, resources, auth_time, expires_at",
        );
        Ok(())
    }
}

/// Removes the grant families that expired before `before`, and with them their tokens (the
/// trigger `grant_families_delete_tokens`; housekeeping, reuse can no longer matter). Returns how
/// many families went.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "refresh_tokens.prune", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(grant_families::table.filter(grant_families::family_expires_at.lt(before))).execute(conn).await
}

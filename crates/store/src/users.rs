//! `users`: local accounts (argon2id password hashes).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::audit::{self, NewAuditEvent};
use crate::schema::{grant_families, users};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub disabled: bool,
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRow {
    pub fn new(username: &str, password_hash: String, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            username: username.to_owned(),
            password_hash,
            disabled: false,
            failed_logins: 0,
            locked_until: None,
            created_at: now,
            updated_at: now,
        }
    }
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.insert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(conn: &mut AsyncPgConnection, row: &UserRow) -> QueryResult<()> {
    diesel::insert_into(users::table).values(row).execute(conn).await.map(drop)
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.find_by_username", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_by_username(conn: &mut AsyncPgConnection, username: &str) -> QueryResult<Option<UserRow>> {
    users::table.filter(users::username.eq(username)).select(UserRow::as_select()).first(conn).await.optional()
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.find", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table.find(id).select(UserRow::as_select()).first(conn).await.optional()
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<UserRow>> {
    users::table.select(UserRow::as_select()).order(users::username.asc()).load(conn).await
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.set_disabled", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn set_disabled(
    conn: &mut AsyncPgConnection,
    username: &str,
    disabled: bool,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |conn| {
        let id: Option<Uuid> = diesel::update(users::table.filter(users::username.eq(username)))
            .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
            .returning(users::id)
            .get_result(conn)
            .await
            .optional()?;
        let Some(id) = id else { return Ok(false) };
        // A second statement, so a second snapshot: a family inserted while the UPDATE above waited
        // for its share lock on the user's row (`refresh_tokens::insert`) is seen and marked.
        diesel::update(grant_families::table.filter(grant_families::user_id.eq(id)))
            .filter(grant_families::user_disabled.ne(disabled))
            .set(grant_families::user_disabled.eq(disabled))
            .execute(conn)
            .await?;
        Ok(true)
    })
    .await
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.set_password", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn set_password(
    conn: &mut AsyncPgConnection,
    username: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(users::table.filter(users::username.eq(username)))
        .set((
            users::password_hash.eq(hash),
            users::failed_logins.eq(0),
            users::locked_until.eq(None::<DateTime<Utc>>),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// A sign-in attempt that was let through to the password check (see [`claim_attempt`]).
#[derive(Debug, Clone, QueryableByName)]
pub struct Attempt {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub username: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub password_hash: String,
    /// This attempt's place in the run of failures; `max_failures` means it locked the user
    /// (undone by [`reset_failures`] when the password was right).
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub failed_logins: i32,
}

/// Counts a sign-in attempt as failed BEFORE its password is checked, in one UPDATE ... RETURNING,
/// so concurrent guesses cannot outrun the lockout: of any number of attempts at once at most
/// `max_failures` get a row back (the rest `None`). The attempt that reaches `max_failures` sets
/// `locked_until` itself. A lockout that has expired starts a new run from zero. Disabled and
/// unknown users get `None`.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.claim_attempt", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn claim_attempt(
    conn: &mut AsyncPgConnection,
    username: &str,
    max_failures: i32,
    now: DateTime<Utc>,
    lock_until: DateTime<Utc>,
) -> QueryResult<Option<Attempt>> {
    use diesel::sql_types::{Integer, Text, Timestamptz};
    // `locked_until <= now` is NULL for an unlocked user: the CASE then keeps the count
    diesel::sql_query(
        "UPDATE users SET \
           failed_logins = (CASE WHEN locked_until <= $2 THEN 0 ELSE failed_logins END) + 1, \
           locked_until = CASE WHEN (CASE WHEN locked_until <= $2 THEN 0 ELSE failed_logins END) + 1 >= $3 \
                          THEN $4 ELSE NULL END \
         WHERE username = $1 AND NOT disabled AND (locked_until IS NULL OR locked_until <= $2) \
         RETURNING id, username, password_hash, failed_logins",
    )
    .bind::<Text, _>(username)
    .bind::<Timestamptz, _>(now)
    .bind::<Integer, _>(max_failures)
    .bind::<Timestamptz, _>(lock_until)
    .get_result(conn)
    .await
    .optional()
}

/// A right password: the run of failures (and a lockout its own attempt set) ends.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.reset_failures", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn reset_failures(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(users::table.find(id).filter(users::failed_logins.ne(0).or(users::locked_until.is_not_null())))
        .set((users::failed_logins.eq(0), users::locked_until.eq(None::<DateTime<Utc>>)))
        .execute(conn)
        .await
        .map(drop)
}

/// Whether the user exists and is not disabled.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.is_active", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn is_active(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    users::table.find(id).select(users::disabled).first::<bool>(conn).await.optional().map(|d| d == Some(false))
}

/// What [`end_sessions_and_grants`] took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Ended {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub sessions: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub grants: i64,
}

/// Ends everything a user's sign-ins led to, in one statement: every session is deleted, and every
/// grant family of the user's codes and refresh tokens (any client) is recorded in
/// `revoked_grants` with `reason` until `revoked_until` (which must outlive the access tokens, so
/// their introspection turns inactive), its refresh tokens and its `grant_families` row are marked
/// revoked and its unused codes deleted. Used on a password change, a disable and a lockout;
/// nothing undoes it.
///
/// The grant of a code not exchanged yet gets its family row here, revoked (kept until
/// `revoked_until`, past any token of it): a redemption in flight, which this statement's snapshot
/// does not show, inserts that row too, and the unique key orders the two. Either the exchange's
/// insert waits for this one and finds the row (`ON CONFLICT DO NOTHING`: its token joins a revoked
/// family), or this one waits for the exchange and marks the row it inserted. A code that a
/// redemption holds is left to it (`SKIP LOCKED`): that redemption may be waiting for this
/// transaction, for the revoked family row above or for the user's row (it reads the user under a
/// share lock, `refresh_tokens::insert`, which a disable or a password change holds), so waiting
/// here for its code would deadlock. What the redemption issues is revoked all the same (the family
/// row, `revoked_grants`).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.end_sessions_and_grants", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn end_sessions_and_grants(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
    revoked_until: DateTime<Utc>,
) -> QueryResult<Ended> {
    use diesel::sql_types::{Text, Timestamptz};
    diesel::sql_query(
        "WITH fam AS ( \
           SELECT DISTINCT ON (grant_id) grant_id, client_id, resources FROM ( \
             SELECT grant_id, client_id, resources FROM grant_families WHERE user_id = $1 \
             UNION ALL SELECT grant_id, client_id, resources FROM authorization_codes WHERE user_id = $1) a), \
         r AS (UPDATE refresh_tokens SET revoked_at = $3 \
                WHERE grant_id IN (SELECT grant_id FROM fam) AND revoked_at IS NULL RETURNING 1), \
         f AS (INSERT INTO grant_families (grant_id, client_id, user_id, resources, created_at, family_expires_at, revoked_at) \
                SELECT grant_id, client_id, $1, resources, $3, $4, $3 FROM fam \
                ON CONFLICT (grant_id) DO UPDATE SET revoked_at = coalesce(grant_families.revoked_at, EXCLUDED.revoked_at)), \
         c AS (DELETE FROM authorization_codes WHERE code_hash IN ( \
                SELECT code_hash FROM authorization_codes \
                 WHERE grant_id IN (SELECT grant_id FROM fam) AND used_at IS NULL FOR UPDATE SKIP LOCKED) \
                RETURNING 1), \
         s AS (DELETE FROM sessions WHERE user_id = $1 RETURNING 1), \
         g AS (INSERT INTO revoked_grants (grant_id, reason, revoked_at, expires_at) \
                SELECT grant_id, $2, $3, $4 FROM fam \
                ON CONFLICT (grant_id) DO UPDATE \
                SET expires_at = greatest(revoked_grants.expires_at, EXCLUDED.expires_at) RETURNING 1) \
         SELECT (SELECT count(*) FROM s) AS sessions, (SELECT count(*) FROM g) AS grants",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<Text, _>(reason)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(revoked_until)
    .get_result(conn)
    .await
}

/// [`end_sessions_and_grants`] and its audit event (`kind`, with what was ended as detail), in one
/// transaction. `kind` is also the revocation's reason.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "users.end_access_audited", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn end_access_audited(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    kind: &str,
    ip: Option<&str>,
    now: DateTime<Utc>,
    revoked_until: DateTime<Utc>,
) -> QueryResult<Ended> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |conn| {
        let ended = end_sessions_and_grants(conn, user_id, kind, now, revoked_until).await?;
        let event = NewAuditEvent {
            occurred_at: now,
            kind,
            client_id: None,
            user_id: Some(user_id),
            ip,
            detail: serde_json::json!({ "sessions_ended": ended.sessions, "grants_revoked": ended.grants }),
        };
        audit::record(conn, &event).await?;
        Ok(ended)
    })
    .await
}

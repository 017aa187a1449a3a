//! `sessions`: browser login sessions of the authorize service. The cookie carries a `spss_` secret;
//! this table holds only its SHA-256. Expiry (idle and absolute) is judged by the caller, who owns
//! the clock.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{sessions, users};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    pub id: Uuid,
    /// SHA-256 of the cookie's secret.
    pub session_hash: Vec<u8>,
    pub user_id: Uuid,
    /// When the user proved who they are (the `auth_time` of codes and tokens).
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Refreshed at most once a minute; the idle expiry counts from here.
    pub last_seen_at: DateTime<Utc>,
    /// The absolute expiry.
    pub expires_at: DateTime<Utc>,
}

/// A session with the name of its user.
#[derive(Debug, Clone)]
pub struct SessionWithUser {
    pub session: SessionRow,
    pub username: String,
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "sessions.insert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(conn: &mut AsyncPgConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(sessions::table).values(row).execute(conn).await.map(drop)
}

/// The session with this hash, if its user exists and is not disabled (disabling a user ends their
/// sessions at once). One indexed query: the hot path of every authorization request.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "sessions.find_active", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_active(conn: &mut AsyncPgConnection, session_hash: &[u8]) -> QueryResult<Option<SessionWithUser>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::session_hash.eq(session_hash))
        .filter(users::disabled.eq(false))
        .select((SessionRow::as_select(), users::username))
        .first::<(SessionRow, String)>(conn)
        .await
        .optional()
        .map(|found| found.map(|(session, username)| SessionWithUser { session, username }))
}

/// Records activity (for the idle expiry).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "sessions.touch", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn touch(conn: &mut AsyncPgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(sessions::table.find(id)).set(sessions::last_seen_at.eq(now)).execute(conn).await.map(drop)
}

/// Ends one session (logout, a new login in the same browser, or expiry).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "sessions.delete_by_hash", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete_by_hash(conn: &mut AsyncPgConnection, session_hash: &[u8]) -> QueryResult<bool> {
    diesel::delete(sessions::table.filter(sessions::session_hash.eq(session_hash))).execute(conn).await.map(|n| n == 1)
}

/// Ends every session of a user.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "sessions.delete_for_user", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete_for_user(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn).await
}

/// Removes sessions past their absolute expiry (housekeeping; idle ones are removed when seen).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "sessions.prune", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn prune(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn).await
}

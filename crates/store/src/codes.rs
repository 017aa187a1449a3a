//! `authorization_codes`: issued by authorize, redeemed once by token.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::uri::ResourceUri;
use uuid::Uuid;

use crate::column::TextArray;
use crate::schema::authorization_codes;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// `None` inserts NULL rather than DEFAULT: the INSERT is then one fixed statement that the
// connection prepares once and reuses (a DEFAULT would make it re-prepared on every code).
#[diesel(table_name = authorization_codes, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
pub struct CodeRow {
    pub code_hash: Vec<u8>,
    pub grant_id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub code_challenge: String,
    #[diesel(deserialize_as = TextArray, serialize_as = TextArray)]
    pub resources: Vec<ResourceUri>,
    pub scope: String,
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// Takes the row by value: the derived Insertable turns its resource list into an owned `text[]`.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "codes.insert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(conn: &mut AsyncPgConnection, row: CodeRow) -> QueryResult<()> {
    diesel::insert_into(authorization_codes::table).values(row).execute(conn).await.map(drop)
}

/// What presenting a code found.
#[derive(Debug)]
pub enum Redemption {
    /// First use: the code is now marked used and is yours to check.
    Fresh(CodeRow),
    /// RFC 6749 §4.1.2: a code used before. The caller revokes what it issued.
    Replayed(CodeRow),
    Unknown,
}

/// Marks the code used and returns it, in one statement, so that of any number of concurrent
/// redemptions exactly one sees `Fresh`.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "codes.redeem", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn redeem(conn: &mut AsyncPgConnection, code_hash: &[u8], now: DateTime<Utc>) -> QueryResult<Redemption> {
    let fresh: Option<CodeRow> = diesel::update(
        authorization_codes::table
            .filter(authorization_codes::code_hash.eq(code_hash))
            .filter(authorization_codes::used_at.is_null()),
    )
    .set(authorization_codes::used_at.eq(now))
    .returning(CodeRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(row) = fresh {
        return Ok(Redemption::Fresh(row));
    }
    let seen: Option<CodeRow> = authorization_codes::table
        .filter(authorization_codes::code_hash.eq(code_hash))
        .select(CodeRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(seen.map_or(Redemption::Unknown, Redemption::Replayed))
}

/// Removes codes that expired before `before` (housekeeping).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "codes.prune", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(authorization_codes::table.filter(authorization_codes::expires_at.lt(before))).execute(conn).await
}

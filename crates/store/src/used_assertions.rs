//! `used_assertions`: the `jti` of every JWT authorization grant (ID-JAG) exchanged, so that each is
//! exchanged once across every replica (RFC 7523 §3 item 7). Rows can be pruned once `expires_at`
//! has passed: the assertion is refused as expired by then anyway.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::used_assertions;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = used_assertions, check_for_backend(diesel::pg::Pg))]
pub struct UsedAssertionRow {
    pub issuer: String,
    pub jti: String,
    pub client_id: String,
    pub used_at: DateTime<Utc>,
    /// The assertion's `exp` plus the clock skew the verifier tolerates: until then it could verify.
    pub expires_at: DateTime<Utc>,
}

/// Records the assertion as used; `false` when its (issuer, jti) was used before. One statement:
/// of any number of concurrent presentations (on any replica) exactly one sees `true`. Inside a
/// transaction a second presentation waits for the first to commit or roll back.
pub async fn consume(conn: &mut AsyncPgConnection, row: &UsedAssertionRow) -> QueryResult<bool> {
    let inserted = diesel::insert_into(used_assertions::table)
        .values(row)
        .on_conflict((used_assertions::issuer, used_assertions::jti))
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Removes the records of assertions that expired before `now`.
pub async fn prune(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(used_assertions::table.filter(used_assertions::expires_at.lt(now))).execute(conn).await
}

//! `used_assertions`: the `jti` of every JWT authorization grant (ID-JAG) exchanged, so that each is
//! exchanged once across every replica (RFC 7523 §3 item 7). Rows can be pruned once `expires_at`
//! has passed: the assertion is refused as expired by then anyway.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::federation::{self, Claims, LAST_LOGIN_GRAIN};
use crate::schema::{used_assertions, users};
use crate::users::UserRow;

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

/// What became of an assertion presented for its subject.
#[derive(Debug)]
pub enum Exchange {
    /// Its (issuer, jti) was exchanged before (here or on another replica).
    Replayed,
    /// Recorded as used; the subject's user, whatever its state (the caller refuses a disabled one).
    SignedIn(UserRow),
}

/// Records the assertion as used and signs its subject in (`federation::sign_in`), atomically: the
/// `jti` is spent exactly when the subject's user was found or created.
///
/// A known subject (every exchange but the first) takes one statement in autocommit: one round
/// trip and one commit, where a transaction around `consume` and `sign_in` takes eight (BEGIN,
/// INSERT, SAVEPOINT, SELECT, UPDATE, SELECT, RELEASE, COMMIT) and the database is this grant's
/// ceiling. A first sign-in falls back to that transaction, whose advisory lock creates one user
/// for a subject however many replicas race.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "used_assertions.exchange", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn exchange(
    conn: &mut AsyncPgConnection,
    used: &UsedAssertionRow,
    subject: &str,
    claims: &Claims<'_>,
    now: DateTime<Utc>,
) -> QueryResult<Exchange> {
    let known = KnownSubject {
        used,
        subject,
        email: claims.email,
        email_verified: claims.email_verified,
        display_name: claims.display_name,
        now,
        stale_before: now - LAST_LOGIN_GRAIN,
    };
    match known.get_result::<(bool, UserRow)>(conn).await.optional()? {
        Some((true, user)) => return Ok(Exchange::SignedIn(user)),
        Some((false, _)) => return Ok(Exchange::Replayed),
        // no link yet (as of the statement's snapshot): nothing was written
        None => {}
    }
    conn.transaction(async |conn| {
        if !consume(conn, used).await? {
            return Ok(Exchange::Replayed);
        }
        federation::sign_in(conn, &used.issuer, subject, claims, now).await.map(Exchange::SignedIn)
    })
    .await
}

/// The exchange of a known subject's assertion as one statement (data-modifying CTEs, one
/// snapshot): `used` inserts the `jti` only when the (issuer, subject) link exists, and `ON
/// CONFLICT DO NOTHING` makes exactly one of any concurrent presentations insert it (a second one
/// waits for the first to commit, then inserts nothing); `touched` refreshes the link's display
/// claims and `last_login_at` only for an inserted `jti` and only when they changed or the last
/// sign-in is older than [`LAST_LOGIN_GRAIN`]; the row says whether the `jti` was fresh, with the
/// linked user. No row: the subject is not linked, and nothing was written.
///
/// A type of its own rather than `sql_query`, so that the connection prepares it once and keeps it
/// (diesel-async prepares an uncacheable query on every call: one more round trip).
struct KnownSubject<'a> {
    used: &'a UsedAssertionRow,
    subject: &'a str,
    email: Option<&'a str>,
    email_verified: bool,
    display_name: Option<&'a str>,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
}

impl QueryId for KnownSubject<'_> {
    type QueryId = KnownSubject<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for KnownSubject<'_> {
    type SqlType = (Bool, users::SqlType);
}

impl QueryFragment<Pg> for KnownSubject<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let u = self.used;
        out.push_sql("WITH used AS (INSERT INTO used_assertions (issuer, jti, client_id, used_at, expires_at) SELECT ");
        out.push_bind_param::<Text, _>(&u.issuer)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&u.jti)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&u.client_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&u.used_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&u.expires_at)?;
        out.push_sql(" WHERE EXISTS (SELECT 1 FROM federated_identities WHERE issuer = ");
        out.push_bind_param::<Text, _>(&u.issuer)?;
        out.push_sql(" AND subject = ");
        out.push_bind_param::<Text, _>(self.subject)?;
        out.push_sql(
            ") ON CONFLICT (issuer, jti) DO NOTHING RETURNING 1), touched AS (UPDATE federated_identities SET email = ",
        );
        out.push_bind_param::<Nullable<Text>, _>(&self.email)?;
        out.push_sql(", email_verified = ");
        out.push_bind_param::<Bool, _>(&self.email_verified)?;
        out.push_sql(", display_name = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.display_name)?;
        out.push_sql(", last_login_at = ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(" WHERE issuer = ");
        out.push_bind_param::<Text, _>(&u.issuer)?;
        out.push_sql(" AND subject = ");
        out.push_bind_param::<Text, _>(self.subject)?;
        out.push_sql(" AND EXISTS (SELECT 1 FROM used) AND (email IS DISTINCT FROM ");
        out.push_bind_param::<Nullable<Text>, _>(&self.email)?;
        out.push_sql(" OR email_verified <> ");
        out.push_bind_param::<Bool, _>(&self.email_verified)?;
        out.push_sql(" OR display_name IS DISTINCT FROM ");
        out.push_bind_param::<Nullable<Text>, _>(&self.display_name)?;
        out.push_sql(" OR last_login_at < ");
        out.push_bind_param::<Timestamptz, _>(&self.stale_before)?;
        out.push_sql(") RETURNING 1) SELECT EXISTS (SELECT 1 FROM used), ");
        // the columns in the schema's order, which `UserRow` follows
        const COLUMNS: <users::table as Table>::AllColumns = users::all_columns;
        COLUMNS.walk_ast(out.reborrow())?;
        out.push_sql(
            " FROM federated_identities JOIN users ON users.id = federated_identities.user_id \
             WHERE federated_identities.issuer = ",
        );
        out.push_bind_param::<Text, _>(&u.issuer)?;
        out.push_sql(" AND federated_identities.subject = ");
        out.push_bind_param::<Text, _>(self.subject)?;
        Ok(())
    }
}

/// Removes the records of assertions that expired before `now`.
pub async fn prune(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(used_assertions::table.filter(used_assertions::expires_at.lt(now))).execute(conn).await
}

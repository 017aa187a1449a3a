//! `federated_identities`: users who sign in through an OpenID provider or arrive in an ID-JAG,
//! linked by (issuer, subject) and created just in time.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{federated_identities, users};
use crate::users::UserRow;

/// Stored as the password hash of a user created by a federated sign-in: not a PHC string, so
/// `password::verify` never accepts any password for it until an operator sets one.
pub const NO_PASSWORD: &str = "!federated";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = federated_identities, check_for_backend(diesel::pg::Pg))]
pub struct FederatedIdentityRow {
    pub issuer: String,
    pub subject: String,
    pub user_id: Uuid,
    pub provider: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: DateTime<Utc>,
}

/// What the provider said about the user this time; display claims only, never used to link.
#[derive(Debug, Clone, Default)]
pub struct Claims<'a> {
    /// `login.providers[].id` or the trusted issuer's name.
    pub provider: &'a str,
    /// The claim chosen as the username (`preferred_username`, then `email`, by default); the
    /// first sign-in creates the user under it, or under it with a `-2`, `-3`, ... suffix when a
    /// local user (or another provider's) already has it.
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub display_name: Option<&'a str>,
}

/// The user linked to (issuer, subject), created on the first sign-in; later sign-ins refresh the
/// display claims (when they changed) and `last_login_at` (to the minute). Returns the user row
/// whatever its state: the caller refuses a disabled user exactly as it does for a password
/// sign-in. One transaction, so two first sign-ins of the same subject at once create one user.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "federation.sign_in", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn sign_in(
    conn: &mut AsyncPgConnection,
    issuer: &str,
    subject: &str,
    claims: &Claims<'_>,
    now: DateTime<Utc>,
) -> QueryResult<UserRow> {
    let (issuer, subject) = (issuer.to_owned(), subject.to_owned());
    let claims = OwnedClaims::from(claims);
    conn.transaction(async |conn| {
        // a known subject (every sign-in but the first) needs no lock
        let user_id = match linked_user(conn, &issuer, &subject).await? {
            Some(user_id) => {
                refresh_claims(conn, &issuer, &subject, &claims, now).await?;
                user_id
            }
            None => {
                // the advisory lock serialises first sign-ins of one subject across replicas; the
                // primary key alone would let both create a user before one link insert fails
                diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
                    .bind::<diesel::sql_types::Text, _>(&issuer)
                    .bind::<diesel::sql_types::Text, _>(&subject)
                    .execute(conn)
                    .await?;
                match linked_user(conn, &issuer, &subject).await? {
                    // another first sign-in of the same subject won the race
                    Some(user_id) => user_id,
                    None => {
                        let user = create_user(conn, &claims.username, now).await?;
                        let row = FederatedIdentityRow {
                            issuer: issuer.clone(),
                            subject: subject.clone(),
                            user_id: user.id,
                            provider: claims.provider.clone(),
                            email: claims.email.clone(),
                            email_verified: claims.email_verified,
                            display_name: claims.display_name.clone(),
                            created_at: now,
                            last_login_at: now,
                        };
                        diesel::insert_into(federated_identities::table).values(&row).execute(conn).await?;
                        user.id
                    }
                }
            }
        };
        users::table.find(user_id).select(UserRow::as_select()).first(conn).await
    })
    .await
}

/// How stale `last_login_at` may get before a sign-in with unchanged claims writes it again: an
/// ID-JAG client exchanges assertions many times a minute, and a row rewritten each time is a WAL
/// record per grant for a timestamp nobody reads to the second.
pub(crate) const LAST_LOGIN_GRAIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

async fn linked_user(conn: &mut AsyncPgConnection, issuer: &str, subject: &str) -> QueryResult<Option<Uuid>> {
    federated_identities::table
        .find((issuer, subject))
        .select(federated_identities::user_id)
        .first::<Uuid>(conn)
        .await
        .optional()
}

/// The display claims as the provider says them now, and `last_login_at`; an UPDATE that matches
/// no row (nothing changed, last sign-in within [`LAST_LOGIN_GRAIN`]) writes nothing.
async fn refresh_claims(
    conn: &mut AsyncPgConnection,
    issuer: &str,
    subject: &str,
    claims: &OwnedClaims,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    use diesel::PgExpressionMethods;
    use federated_identities::dsl as f;
    diesel::update(f::federated_identities.find((issuer, subject)))
        .filter(
            f::email
                .is_distinct_from(&claims.email)
                .or(f::email_verified.ne(claims.email_verified))
                .or(f::display_name.is_distinct_from(&claims.display_name))
                .or(f::last_login_at.lt(now - LAST_LOGIN_GRAIN)),
        )
        .set((
            f::email.eq(&claims.email),
            f::email_verified.eq(claims.email_verified),
            f::display_name.eq(&claims.display_name),
            f::last_login_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// A new user under `wanted`, or `wanted-2`, `wanted-3`, ... when taken: a federated sign-in
/// never becomes an existing local account because the names match.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "federation.create_user", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
async fn create_user(conn: &mut AsyncPgConnection, wanted: &str, now: DateTime<Utc>) -> QueryResult<UserRow> {
    let base = if wanted.trim().is_empty() { "user" } else { wanted.trim() };
    for n in 1..=1000u32 {
        let username = if n == 1 { base.to_owned() } else { format!("{base}-{n}") };
        let row = UserRow::new(&username, NO_PASSWORD.to_owned(), now);
        let inserted = diesel::insert_into(users::table)
            .values(&row)
            .on_conflict(users::username)
            .do_nothing()
            .execute(conn)
            .await?;
        if inserted == 1 {
            return Ok(row);
        }
    }
    // only reachable when a thousand users share one name: refuse rather than loop forever
    Err(diesel::result::Error::RollbackTransaction)
}

/// Every link of a user (how they sign in, for `sallyport user list`).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "federation.for_user", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn for_user(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Vec<FederatedIdentityRow>> {
    federated_identities::table
        .filter(federated_identities::user_id.eq(user_id))
        .select(FederatedIdentityRow::as_select())
        .order(federated_identities::created_at.asc())
        .load(conn)
        .await
}

/// Every link, for listing all users at once.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "federation.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<FederatedIdentityRow>> {
    federated_identities::table
        .select(FederatedIdentityRow::as_select())
        .order(federated_identities::created_at.asc())
        .load(conn)
        .await
}

struct OwnedClaims {
    provider: String,
    username: String,
    email: Option<String>,
    email_verified: bool,
    display_name: Option<String>,
}

impl From<&Claims<'_>> for OwnedClaims {
    fn from(c: &Claims<'_>) -> Self {
        Self {
            provider: c.provider.to_owned(),
            username: c.username.to_owned(),
            email: c.email.map(str::to_owned),
            email_verified: c.email_verified,
            display_name: c.display_name.map(str::to_owned),
        }
    }
}

//! `consents`: remembered grants, (user, client, resource) -> the scopes the user allowed. The
//! authorize service skips the consent page when a request stays within them; `sallyport grant`
//! lists and revokes them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::scope::Scopes;
use protocol::uri::ResourceUri;
use uuid::Uuid;

use super::clients::ClientRow;
use crate::column::{Text as TextColumn, TextArray, scope_texts, texts};
use crate::schema::{clients, consents, users};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = consents, check_for_backend(diesel::pg::Pg))]
pub struct ConsentRow {
    pub user_id: Uuid,
    pub client_id: String,
    #[diesel(deserialize_as = TextColumn)]
    pub resource: ResourceUri,
    /// The scopes the user allowed.
    #[diesel(deserialize_as = TextArray)]
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The user's remembered grants to a client for these resources.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "consents.find", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    client_id: &str,
    resources: &[ResourceUri],
) -> QueryResult<Vec<ConsentRow>> {
    consents::table
        .filter(consents::user_id.eq(user_id))
        .filter(consents::client_id.eq(client_id))
        .filter(consents::resource.eq_any(resources.iter().map(ResourceUri::as_str)))
        .select(ConsentRow::as_select())
        .load(conn)
        .await
}

/// A client and, when a user is given, that user's remembered grants to it for these resources:
/// one round trip for the authorization endpoint's hot path. `None` when no such client exists.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "consents.client_with_consents", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn client_with_consents(
    conn: &mut AsyncPgConnection,
    client_id: &str,
    user_id: Option<Uuid>,
    resources: &[ResourceUri],
) -> QueryResult<Option<(ClientRow, Vec<ConsentRow>)>> {
    let Some(user_id) = user_id else {
        return super::clients::find_row(conn, client_id).await.map(|c| c.map(|c| (c, Vec::new())));
    };
    let rows: Vec<(ClientRow, Option<ConsentRow>)> = clients::table
        .left_join(
            consents::table.on(consents::client_id
                .eq(clients::client_id)
                .and(consents::user_id.eq(user_id))
                .and(consents::resource.eq_any(resources.iter().map(ResourceUri::as_str)))),
        )
        .filter(clients::client_id.eq(client_id))
        .select((ClientRow::as_select(), Option::<ConsentRow>::as_select()))
        .load(conn)
        .await?;
    let mut rows = rows.into_iter();
    let Some((client, first)) = rows.next() else { return Ok(None) };
    let consents = first.into_iter().chain(rows.filter_map(|(_, c)| c)).collect();
    Ok(Some((client, consents)))
}

/// Remembers that the user allowed `scopes` to the client at each resource, adding to what was
/// allowed before (a remembered grant only grows; `revoke` removes it). One atomic statement.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "consents.grant", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn grant(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    client_id: &str,
    resources: &[ResourceUri],
    scopes: &Scopes,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO consents (user_id, client_id, resource, scopes, created_at, updated_at) \
         SELECT $1, $2, r, $4, $5, $5 FROM unnest($3::text[]) AS r \
         ON CONFLICT (user_id, client_id, resource) DO UPDATE SET \
         scopes = ARRAY(SELECT DISTINCT s FROM unnest(consents.scopes || EXCLUDED.scopes) AS s ORDER BY s), \
         updated_at = EXCLUDED.updated_at",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(client_id)
    .bind::<Array<Nullable<Text>>, _>(texts(resources))
    .bind::<Array<Nullable<Text>>, _>(scope_texts(scopes))
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await
    .map(drop)
}

/// Every remembered grant (of one user, when given), with the user's name, oldest first.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "consents.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection, user_id: Option<Uuid>) -> QueryResult<Vec<(ConsentRow, String)>> {
    let mut query = consents::table.inner_join(users::table).into_boxed();
    if let Some(id) = user_id {
        query = query.filter(consents::user_id.eq(id));
    }
    query
        .order((users::username.asc(), consents::client_id.asc(), consents::resource.asc()))
        .select((ConsentRow::as_select(), users::username))
        .load(conn)
        .await
}

/// What [`revoke_with_tokens`] took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentRevocation {
    pub consents: usize,
    /// Grant families (refresh-token chains and the access tokens they carry) revoked now; those
    /// revoked before (`xmax = 0` tells a fresh insert from an upsert's update) are not counted.
    pub grants: usize,
}

#[derive(QueryableByName)]
struct Revoked {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    grants: i64,
}

/// Forgets the user's grants to a client (for one resource, or all) and, in the same transaction,
/// withdraws what those grants authorised: every grant family of the user's codes and refresh
/// tokens for the client (naming that resource, when one is given) is recorded in
/// `revoked_grants` until `revoked_until` (which must outlive the access tokens, so their
/// introspection turns inactive), its refresh tokens and its `grant_families` row are marked revoked
/// (the row inserted, revoked, for a code not exchanged yet, as in
/// [`crate::users::end_sessions_and_grants`]) and its unused codes are deleted (but for one a
/// redemption holds, left to it, as there). (Data-modifying
/// CTEs run to completion whether or not the final SELECT reads them.)
/// A consent withdrawn while the client keeps a live refresh token would withdraw nothing.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "consents.revoke_with_tokens", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn revoke_with_tokens(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    client_id: &str,
    resource: Option<&ResourceUri>,
    now: DateTime<Utc>,
    revoked_until: DateTime<Utc>,
) -> QueryResult<ConsentRevocation> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |conn| {
        let consents = revoke(conn, user_id, client_id, resource).await?;
        let revoked: Revoked = diesel::sql_query(
            "WITH fam AS ( \
               SELECT DISTINCT ON (grant_id) grant_id, resources FROM ( \
                 SELECT grant_id, resources FROM grant_families \
                  WHERE user_id = $1 AND client_id = $2 AND ($3::text IS NULL OR $3 = ANY (resources)) \
                 UNION ALL SELECT grant_id, resources FROM authorization_codes \
                  WHERE user_id = $1 AND client_id = $2 AND ($3::text IS NULL OR $3 = ANY (resources))) a), \
             r AS (UPDATE refresh_tokens SET revoked_at = $4 \
                    WHERE grant_id IN (SELECT grant_id FROM fam) AND revoked_at IS NULL RETURNING 1), \
             f AS (INSERT INTO grant_families \
                    (grant_id, client_id, user_id, resources, created_at, family_expires_at, revoked_at) \
                    SELECT grant_id, $2, $1, resources, $4, $5, $4 FROM fam \
                    ON CONFLICT (grant_id) DO UPDATE \
                    SET revoked_at = coalesce(grant_families.revoked_at, EXCLUDED.revoked_at)), \
             c AS (DELETE FROM authorization_codes WHERE code_hash IN ( \
                    SELECT code_hash FROM authorization_codes \
                     WHERE grant_id IN (SELECT grant_id FROM fam) AND used_at IS NULL FOR UPDATE SKIP LOCKED) \
                    RETURNING 1), \
             g AS (INSERT INTO revoked_grants (grant_id, reason, revoked_at, expires_at) \
                    SELECT grant_id, 'consent_revoked', $4, $5 FROM fam \
                    ON CONFLICT (grant_id) DO UPDATE \
                    SET expires_at = greatest(revoked_grants.expires_at, EXCLUDED.expires_at) \
                    RETURNING xmax = 0 AS fresh) \
             SELECT count(*) FILTER (WHERE fresh) AS grants FROM g",
        )
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(client_id)
        .bind::<Nullable<Text>, _>(resource.map(ResourceUri::as_str))
        .bind::<Timestamptz, _>(now)
        .bind::<Timestamptz, _>(revoked_until)
        .get_result(conn)
        .await?;
        Ok(ConsentRevocation { consents, grants: usize::try_from(revoked.grants).unwrap_or(0) })
    })
    .await
}

/// Forgets the user's grants to a client (for one resource, or all); returns how many went.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "consents.revoke", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    client_id: &str,
    resource: Option<&ResourceUri>,
) -> QueryResult<usize> {
    let mut query = diesel::delete(consents::table)
        .filter(consents::user_id.eq(user_id))
        .filter(consents::client_id.eq(client_id))
        .into_boxed();
    if let Some(r) = resource {
        query = query.filter(consents::resource.eq(r.as_str()));
    }
    query.execute(conn).await
}

/// Forgets every user's consent to a client (its `redirect_uris` changed: whoever receives its
/// codes now is not who the users approved). Returns how many went.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "consents.forget_client", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn forget_client(conn: &mut AsyncPgConnection, client_id: &str) -> QueryResult<usize> {
    diesel::delete(consents::table.filter(consents::client_id.eq(client_id))).execute(conn).await
}

//! `clients`: registered, operator-made and metadata-document clients.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::client::{ApplicationType, AuthMethod, Client, ClientMetadata, ClientSource, GrantType};
use protocol::scope::Scopes;
use protocol::uri::RedirectUri;

use super::audit::{self, NewAuditEvent};
use crate::column::{TextArray, texts};
use crate::schema::clients;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = clients, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct ClientRow {
    pub client_id: String,
    pub source: String,
    pub client_secret_hash: Option<Vec<u8>>,
    pub client_secret_expires_at: Option<DateTime<Utc>>,
    pub registration_token_hash: Option<Vec<u8>>,
    pub token_endpoint_auth_method: String,
    #[diesel(deserialize_as = TextArray, serialize_as = TextArray)]
    pub redirect_uris: Vec<RedirectUri>,
    #[diesel(deserialize_as = TextArray, serialize_as = TextArray)]
    pub grant_types: Vec<GrantType>,
    #[diesel(deserialize_as = TextArray, serialize_as = TextArray)]
    pub response_types: Vec<String>,
    pub application_type: String,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    #[diesel(deserialize_as = TextArray, serialize_as = TextArray)]
    pub contacts: Vec<String>,
    pub scope: String,
    pub jwks_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub may_introspect: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ClientRow {
    /// A row for new metadata. Secrets are set by the caller, as hashes.
    pub fn new(client_id: String, source: ClientSource, m: &ClientMetadata, now: DateTime<Utc>) -> Self {
        Self {
            client_id,
            source: source.as_str().to_owned(),
            client_secret_hash: None,
            client_secret_expires_at: None,
            registration_token_hash: None,
            token_endpoint_auth_method: m.token_endpoint_auth_method.as_str().to_owned(),
            redirect_uris: m.redirect_uris.clone(),
            grant_types: m.grant_types.clone(),
            response_types: m.response_types.clone(),
            application_type: m.application_type.as_str().to_owned(),
            client_name: m.client_name.clone(),
            client_uri: m.client_uri.clone(),
            logo_uri: m.logo_uri.clone(),
            tos_uri: m.tos_uri.clone(),
            policy_uri: m.policy_uri.clone(),
            contacts: m.contacts.clone(),
            scope: m.scope.to_string(),
            jwks_uri: m.jwks_uri.clone(),
            jwks: m.jwks.clone(),
            software_id: m.software_id.clone(),
            software_version: m.software_version.clone(),
            may_introspect: false,
            created_at: now,
            updated_at: now,
        }
    }
}

impl TryFrom<ClientRow> for Client {
    type Error = crate::Error;

    fn try_from(row: ClientRow) -> Result<Self, Self::Error> {
        let bad = |what: &str| crate::Error::InvalidRow(format!("client {}: stored {what} is invalid", row.client_id));
        let token_endpoint_auth_method =
            AuthMethod::parse(&row.token_endpoint_auth_method).ok_or_else(|| bad("auth method"))?;
        let source = ClientSource::parse(&row.source).ok_or_else(|| bad("source"))?;
        let application_type =
            if row.application_type == "native" { ApplicationType::Native } else { ApplicationType::Web };
        let scope = Scopes::parse(&row.scope).map_err(|_| bad("scope"))?;
        Ok(Client {
            metadata: ClientMetadata {
                redirect_uris: row.redirect_uris,
                token_endpoint_auth_method,
                grant_types: row.grant_types,
                response_types: row.response_types,
                application_type,
                client_name: row.client_name,
                client_uri: row.client_uri,
                logo_uri: row.logo_uri,
                tos_uri: row.tos_uri,
                policy_uri: row.policy_uri,
                contacts: row.contacts,
                scope,
                jwks_uri: row.jwks_uri,
                jwks: row.jwks,
                software_id: row.software_id,
                software_version: row.software_version,
            },
            client_id: row.client_id,
            source,
            secret_hash: row.client_secret_hash,
            secret_expires_at: row.client_secret_expires_at,
            may_introspect: row.may_introspect,
            created_at: row.created_at,
        })
    }
}

// The derived Insertable and AsChangeset convert the typed lists into owned `text[]` values, so
// they take a row by value: these operator and registration-management paths clone it.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.insert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(conn: &mut AsyncPgConnection, row: &ClientRow) -> QueryResult<()> {
    diesel::insert_into(clients::table).values(row.clone()).execute(conn).await.map(drop)
}

/// Inserts a client and its audit event as one statement (a data-modifying CTE): atomic like a
/// transaction, but one round trip and one commit instead of four (BEGIN, two INSERTs, COMMIT).
/// Registration is the hot path this is for. The event's `client_id` is the inserted row's.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.insert_audited", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert_audited(
    conn: &mut AsyncPgConnection,
    row: &ClientRow,
    event: &NewAuditEvent<'_>,
) -> QueryResult<()> {
    use diesel::sql_types::{Array, Bool, Bytea, Jsonb, Nullable, Text, Timestamptz, Uuid};
    type Texts = Array<Nullable<Text>>;
    diesel::sql_query(
        "WITH client AS (INSERT INTO clients (client_id, source, client_secret_hash, client_secret_expires_at, \
         registration_token_hash, token_endpoint_auth_method, redirect_uris, grant_types, response_types, \
         application_type, client_name, client_uri, logo_uri, tos_uri, policy_uri, contacts, scope, jwks_uri, jwks, \
         software_id, software_version, may_introspect, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
         $23, $24) RETURNING client_id) \
         INSERT INTO audit_events (occurred_at, kind, client_id, user_id, ip, detail) \
         SELECT $25, $26, client.client_id, $27, $28, $29 FROM client",
    )
    .bind::<Text, _>(&row.client_id)
    .bind::<Text, _>(&row.source)
    .bind::<Nullable<Bytea>, _>(&row.client_secret_hash)
    .bind::<Nullable<Timestamptz>, _>(row.client_secret_expires_at)
    .bind::<Nullable<Bytea>, _>(&row.registration_token_hash)
    .bind::<Text, _>(&row.token_endpoint_auth_method)
    .bind::<Texts, _>(texts(&row.redirect_uris))
    .bind::<Texts, _>(texts(&row.grant_types))
    .bind::<Texts, _>(texts(&row.response_types))
    .bind::<Text, _>(&row.application_type)
    .bind::<Nullable<Text>, _>(&row.client_name)
    .bind::<Nullable<Text>, _>(&row.client_uri)
    .bind::<Nullable<Text>, _>(&row.logo_uri)
    .bind::<Nullable<Text>, _>(&row.tos_uri)
    .bind::<Nullable<Text>, _>(&row.policy_uri)
    .bind::<Texts, _>(texts(&row.contacts))
    .bind::<Text, _>(&row.scope)
    .bind::<Nullable<Text>, _>(&row.jwks_uri)
    .bind::<Nullable<Jsonb>, _>(&row.jwks)
    .bind::<Nullable<Text>, _>(&row.software_id)
    .bind::<Nullable<Text>, _>(&row.software_version)
    .bind::<Bool, _>(row.may_introspect)
    .bind::<Timestamptz, _>(row.created_at)
    .bind::<Timestamptz, _>(row.updated_at)
    .bind::<Timestamptz, _>(event.occurred_at)
    .bind::<Text, _>(event.kind)
    .bind::<Nullable<Uuid>, _>(event.user_id)
    .bind::<Nullable<Text>, _>(event.ip)
    .bind::<Jsonb, _>(&event.detail)
    .execute(conn)
    .await
    .map(drop)
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.find_row", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_row(conn: &mut AsyncPgConnection, client_id: &str) -> QueryResult<Option<ClientRow>> {
    clients::table.find(client_id).select(ClientRow::as_select()).first(conn).await.optional()
}

/// The client, parsed; `None` when no such client exists.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.find", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find(conn: &mut AsyncPgConnection, client_id: &str) -> Result<Option<Client>, crate::Error> {
    find_row(conn, client_id).await?.map(Client::try_from).transpose()
}

/// Replaces a client's metadata (RFC 7592 PUT); secrets and identity columns are left alone
/// unless the caller changed them in `row`.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.update", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn update(conn: &mut AsyncPgConnection, row: &ClientRow) -> QueryResult<bool> {
    diesel::update(clients::table.find(&row.client_id)).set(row.clone()).execute(conn).await.map(|n| n == 1)
}

/// RFC 7592 update: replaces the row only while `token_hash` is still the client's registration
/// token, so a concurrent rotation or deletion makes it a no-op (`false`).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.replace", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn replace(conn: &mut AsyncPgConnection, row: &ClientRow, token_hash: &[u8]) -> QueryResult<bool> {
    diesel::update(clients::table.find(&row.client_id).filter(clients::registration_token_hash.eq(token_hash)))
        .set(row.clone())
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Swaps the registration access token hash, only from `old` (compare-and-set: of two concurrent
/// rotations with the same token, one wins and the other gets `false`).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.rotate_registration_token", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn rotate_registration_token(
    conn: &mut AsyncPgConnection,
    client_id: &str,
    old: &[u8],
    new: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(clients::table.find(client_id).filter(clients::registration_token_hash.eq(old)))
        .set((clients::registration_token_hash.eq(new), clients::updated_at.eq(now)))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Caches a metadata-document client: inserted, or refreshed when its document changed. A row of
/// another source with the same id is never touched: then nothing is written and `false` returned.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.upsert_metadata_document", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn upsert_metadata_document(conn: &mut AsyncPgConnection, row: &ClientRow) -> QueryResult<bool> {
    // the ON CONFLICT ... DO UPDATE ... WHERE filter is reached through the trait, not QueryDsl
    use diesel::query_dsl::methods::FilterDsl;
    diesel::insert_into(clients::table)
        .values(row.clone())
        .on_conflict(clients::client_id)
        .do_update()
        .set((
            clients::redirect_uris.eq(texts(&row.redirect_uris)),
            clients::grant_types.eq(texts(&row.grant_types)),
            clients::response_types.eq(texts(&row.response_types)),
            clients::application_type.eq(&row.application_type),
            clients::client_name.eq(&row.client_name),
            clients::client_uri.eq(&row.client_uri),
            clients::logo_uri.eq(&row.logo_uri),
            clients::tos_uri.eq(&row.tos_uri),
            clients::policy_uri.eq(&row.policy_uri),
            clients::contacts.eq(texts(&row.contacts)),
            clients::scope.eq(&row.scope),
            clients::jwks_uri.eq(&row.jwks_uri),
            clients::jwks.eq(&row.jwks),
            clients::software_id.eq(&row.software_id),
            clients::software_version.eq(&row.software_version),
            clients::updated_at.eq(row.updated_at),
        ))
        .filter(clients::source.eq(ClientSource::MetadataDocument.as_str()))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Deletes a client; its codes, refresh tokens and consents go with it (ON DELETE CASCADE).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.delete", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete(conn: &mut AsyncPgConnection, client_id: &str) -> QueryResult<bool> {
    diesel::delete(clients::table.find(client_id)).execute(conn).await.map(|n| n == 1)
}

/// Records every grant family of the client (its `grant_families` and the grant ids of its authorization
/// codes) in `revoked_grants` until `expires_at`, so its outstanding JWT access tokens die at
/// introspection. Returns how many families were recorded. A family already revoked keeps the
/// later of the two expiries.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.revoke_grants_of", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn revoke_grants_of(
    conn: &mut AsyncPgConnection,
    client_id: &str,
    reason: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<usize> {
    use diesel::sql_types::{Text, Timestamptz};
    diesel::sql_query(
        "INSERT INTO revoked_grants (grant_id, reason, revoked_at, expires_at) \
         SELECT grant_id, $2, $3, $4 FROM grant_families WHERE client_id = $1 \
         UNION SELECT grant_id, $2, $3, $4 FROM authorization_codes WHERE client_id = $1 \
         ON CONFLICT (grant_id) DO UPDATE SET expires_at = GREATEST(revoked_grants.expires_at, EXCLUDED.expires_at)",
    )
    .bind::<Text, _>(client_id)
    .bind::<Text, _>(reason)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(expires_at)
    .execute(conn)
    .await
}

/// Deletes a client in one transaction: locks its row (so no code or token can be written for it
/// meanwhile), revokes its grant families until `revoked_until` ([`revoke_grants_of`]), records
/// `event` (with `revoked_grants` added to its detail), and deletes the row, which cascades to its
/// codes, grant families (and so their refresh tokens) and consents. `None` when no such client exists.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.delete_revoking", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete_revoking(
    conn: &mut AsyncPgConnection,
    client_id: &str,
    now: DateTime<Utc>,
    revoked_until: DateTime<Utc>,
    mut event: NewAuditEvent<'_>,
) -> QueryResult<Option<usize>> {
    use diesel_async::AsyncConnection;
    let outcome = conn
        .transaction(async |conn| {
            // FOR UPDATE conflicts with the KEY SHARE lock every referencing insert takes
            let found: Option<String> =
                clients::table.find(client_id).select(clients::client_id).for_update().first(conn).await.optional()?;
            if found.is_none() {
                return Err(diesel::result::Error::NotFound);
            }
            let revoked = revoke_grants_of(conn, client_id, "client_deleted", now, revoked_until).await?;
            if let Some(detail) = event.detail.as_object_mut() {
                detail.insert("revoked_grants".into(), revoked.into());
            }
            audit::record(conn, &event).await?;
            diesel::delete(clients::table.find(client_id)).execute(conn).await?;
            Ok(revoked)
        })
        .await;
    match outcome {
        Ok(n) => Ok(Some(n)),
        Err(diesel::result::Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<ClientRow>> {
    clients::table.select(ClientRow::as_select()).order(clients::created_at.asc()).load(conn).await
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "clients.set_may_introspect", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn set_may_introspect(conn: &mut AsyncPgConnection, client_id: &str, allowed: bool) -> QueryResult<bool> {
    diesel::update(clients::table.find(client_id))
        .set(clients::may_introspect.eq(allowed))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

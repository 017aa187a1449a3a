//! `resources`: protected resources registered at run time (`sallyport resource add`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::scope::Scopes;
use protocol::uri::ResourceUri;

use crate::column::{Text, TextArray, scope_texts};
use crate::schema::resources;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = resources, check_for_backend(diesel::pg::Pg))]
pub struct ResourceRow {
    #[diesel(deserialize_as = Text, serialize_as = String)]
    pub resource: ResourceUri,
    pub name: String,
    #[diesel(deserialize_as = TextArray, serialize_as = TextArray)]
    pub scopes: Scopes,
    pub documentation_url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Tokens without a user (client_credentials) are issued for it and accepted by the gateway.
    pub accept_machine_tokens: bool,
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "resources.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<ResourceRow>> {
    resources::table.select(ResourceRow::as_select()).order(resources::resource.asc()).load(conn).await
}

/// Adds or replaces a resource (an operator's command: the derived Insertable takes an owned row).
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "resources.upsert", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn upsert(conn: &mut AsyncPgConnection, row: &ResourceRow) -> QueryResult<()> {
    diesel::insert_into(resources::table)
        .values(row.clone())
        .on_conflict(resources::resource)
        .do_update()
        .set((
            resources::name.eq(&row.name),
            resources::scopes.eq(scope_texts(&row.scopes)),
            resources::documentation_url.eq(&row.documentation_url),
            resources::accept_machine_tokens.eq(row.accept_machine_tokens),
        ))
        .execute(conn)
        .await
        .map(drop)
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "resources.delete", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete(conn: &mut AsyncPgConnection, resource: &ResourceUri) -> QueryResult<bool> {
    diesel::delete(resources::table.find(resource.as_str())).execute(conn).await.map(|n| n == 1)
}

//! `resources`: protected resources registered at run time (`sallyport resource add`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::resources;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = resources, check_for_backend(diesel::pg::Pg))]
pub struct ResourceRow {
    pub resource: String,
    pub name: String,
    pub scopes: Vec<Option<String>>,
    pub documentation_url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Tokens without a user (client_credentials) are issued for it and accepted by the gateway.
    pub accept_machine_tokens: bool,
}

pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<ResourceRow>> {
    resources::table.select(ResourceRow::as_select()).order(resources::resource.asc()).load(conn).await
}

/// Adds or replaces a resource.
pub async fn upsert(conn: &mut AsyncPgConnection, row: &ResourceRow) -> QueryResult<()> {
    diesel::insert_into(resources::table)
        .values(row)
        .on_conflict(resources::resource)
        .do_update()
        .set((
            resources::name.eq(&row.name),
            resources::scopes.eq(&row.scopes),
            resources::documentation_url.eq(&row.documentation_url),
            resources::accept_machine_tokens.eq(row.accept_machine_tokens),
        ))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn delete(conn: &mut AsyncPgConnection, resource: &str) -> QueryResult<bool> {
    diesel::delete(resources::table.find(resource)).execute(conn).await.map(|n| n == 1)
}

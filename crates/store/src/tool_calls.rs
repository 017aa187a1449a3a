//! `tool_calls`: every `tools/call` the gateway saw on an MCP route, one narrow row each (issue 15).
//! The gateway writes thousands a second in batches, so the row has typed columns and no jsonb;
//! `sallyport audit list` shows them among the other events as `mcp.tool_call` ([`crate::audit::list`]).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::audit::Filter;
use crate::schema::tool_calls;

/// One call, borrowed from the gateway's event.
#[derive(Debug, Clone)]
pub struct NewToolCall<'a> {
    pub occurred_at: DateTime<Utc>,
    /// The token's `sub` when it is neither `user_id` nor `client_id` (see [`split_subject`]).
    pub subject: Option<&'a str>,
    pub user_id: Option<Uuid>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub route: &'a str,
    pub tool: &'a str,
    pub allowed: bool,
    /// Why it was refused, or why an allowed call failed (`upstream unavailable`).
    pub reason: Option<&'a str>,
    pub upstream_status: Option<i16>,
    pub duration_ms: i32,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tool_calls, check_for_backend(diesel::pg::Pg))]
pub struct ToolCallRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub subject: Option<String>,
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub route: String,
    pub tool: String,
    pub allowed: bool,
    pub reason: Option<String>,
    pub upstream_status: Option<i16>,
    pub duration_ms: i32,
}

impl ToolCallRow {
    /// The token's `sub`: the user, or for a client's own token the client.
    pub fn subject(&self) -> Option<String> {
        self.subject.clone().or_else(|| self.user_id.map(|u| u.to_string())).or_else(|| self.client_id.clone())
    }
}

/// A token's `sub` as a row stores it: a user's `sub` is their UUID and becomes `user_id`; a
/// client's own token (client_credentials) has its client id as `sub`, which `client_id` already
/// holds. Only a `sub` that is neither is kept as text, so the usual row stores no subject at all.
pub fn split_subject<'a>(subject: Option<&'a str>, client_id: Option<&str>) -> (Option<Uuid>, Option<&'a str>) {
    let Some(sub) = subject else { return (None, None) };
    if Some(sub) == client_id {
        return (None, None);
    }
    match Uuid::try_parse(sub) {
        // only the canonical spelling reads back the same from `user_id`
        Ok(user) if user.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == sub => (Some(user), None),
        Ok(user) => (Some(user), Some(sub)),
        Err(_) => (None, Some(sub)),
    }
}

/// Many calls in one statement: one array per column through `unnest`, so the statement is the same
/// whatever the batch size and Postgres plans eleven parameters instead of eleven per row.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "tool_calls.record_many", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn record_many(conn: &mut AsyncPgConnection, calls: &[NewToolCall<'_>]) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Bool, Int2, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    fn column<'a, T>(calls: &[NewToolCall<'a>], f: impl Fn(&NewToolCall<'a>) -> T) -> Vec<T> {
        calls.iter().map(f).collect()
    }
    diesel::sql_query(
        "INSERT INTO tool_calls (occurred_at, subject, user_id, client_id, ip, route, tool, allowed, reason, \
         upstream_status, duration_ms) \
         SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind::<Array<Timestamptz>, _>(column(calls, |c| c.occurred_at))
    .bind::<Array<Nullable<Text>>, _>(column(calls, |c| c.subject))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(calls, |c| c.user_id))
    .bind::<Array<Nullable<Text>>, _>(column(calls, |c| c.client_id))
    .bind::<Array<Nullable<Text>>, _>(column(calls, |c| c.ip))
    .bind::<Array<Text>, _>(column(calls, |c| c.route))
    .bind::<Array<Text>, _>(column(calls, |c| c.tool))
    .bind::<Array<Bool>, _>(column(calls, |c| c.allowed))
    .bind::<Array<Nullable<Text>>, _>(column(calls, |c| c.reason))
    .bind::<Array<Nullable<Int2>>, _>(column(calls, |c| c.upstream_status))
    .bind::<Array<Int4>, _>(column(calls, |c| c.duration_ms))
    .execute(conn)
    .await
}

/// The `COPY` a [`Copier`] prepares.
const COPY: &str = "COPY tool_calls (occurred_at, subject, user_id, client_id, ip, route, tool, allowed, reason, \
                    upstream_status, duration_ms) FROM STDIN (FORMAT binary)";

/// A connection of its own that writes calls in batches, each one binary `COPY` (one statement,
/// so a batch is written whole or not at all). Postgres neither parses text nor plans a statement
/// per batch, and inserts the heap tuples together; diesel has no `COPY`, hence tokio-postgres
/// underneath ([`crate::db::connect_raw`]).
pub struct Copier {
    client: tokio_postgres::Client,
    copy: tokio_postgres::Statement,
}

impl Copier {
    pub async fn connect(url: &str, connect_timeout: std::time::Duration) -> Result<Self, crate::db::DbError> {
        let client = crate::db::connect_raw(url, connect_timeout).await?;
        let copy = client
            .prepare(COPY)
            .await
            .map_err(|e| crate::db::DbError::Connect { url: crate::db::redact_url(url), message: e.to_string() })?;
        Ok(Self { client, copy })
    }

    /// Whether the connection is gone (a new one is needed).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Writes the calls; returns how many rows went in.
    #[tracing::instrument(target = "sallyport::trace", level = "trace", name = "tool_calls.copy", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn write(&self, calls: &[NewToolCall<'_>]) -> Result<u64, tokio_postgres::Error> {
        use futures_util::SinkExt;
        let mut rows = BytesMut::new();
        encode_binary(calls, &mut rows);
        let sink = self.client.copy_in::<_, Bytes>(&self.copy).await?;
        futures_util::pin_mut!(sink);
        sink.send(rows.freeze()).await?;
        sink.finish().await
    }

    /// The backend's process id (for measuring its CPU).
    pub async fn backend_pid(&self) -> Result<i32, tokio_postgres::Error> {
        Ok(self.client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0))
    }
}

/// 2000-01-01T00:00:00Z, Postgres's epoch, in microseconds since the Unix epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The rows in Postgres's binary `COPY` format (the `COPY` page of its manual, "Binary Format"):
/// a signature and two zero words, then per row the number of fields and each field as its length
/// (-1 for NULL) and its value in the type's binary representation, then -1.
pub fn encode_binary(calls: &[NewToolCall<'_>], out: &mut BytesMut) {
    out.reserve(19 + calls.len() * 160 + 2);
    out.put_slice(b"PGCOPY\n\xff\r\n\0");
    out.put_i32(0); // flags: no OIDs
    out.put_i32(0); // no header extension
    for c in calls {
        out.put_i16(11);
        out.put_i32(8);
        out.put_i64(c.occurred_at.timestamp_micros() - PG_EPOCH_MICROS);
        put_text(out, c.subject);
        match c.user_id {
            Some(user) => {
                out.put_i32(16);
                out.put_slice(user.as_bytes());
            }
            None => out.put_i32(-1),
        }
        put_text(out, c.client_id);
        put_text(out, c.ip);
        put_text(out, Some(c.route));
        put_text(out, Some(c.tool));
        out.put_i32(1);
        out.put_u8(u8::from(c.allowed));
        put_text(out, c.reason);
        match c.upstream_status {
            Some(status) => {
                out.put_i32(2);
                out.put_i16(status);
            }
            None => out.put_i32(-1),
        }
        out.put_i32(4);
        out.put_i32(c.duration_ms);
    }
    out.put_i16(-1);
}

/// A text field. Postgres refuses a NUL in text, and one refused value would cost the whole batch,
/// so a client that names its tool `"a\u0000b"` gets U+FFFD there instead of hiding the calls
/// batched with its own from the audit.
fn put_text(out: &mut BytesMut, text: Option<&str>) {
    let Some(text) = text else {
        out.put_i32(-1);
        return;
    };
    let text: Cow<'_, str> = if text.contains('\0') { text.replace('\0', "\u{FFFD}").into() } else { text.into() };
    // a request body is at most 1 MiB; a longer text is cut where a character ends
    let mut end = text.len().min(i32::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.put_i32(i32::try_from(end).unwrap_or(i32::MAX));
    out.put_slice(&text.as_bytes()[..end]);
}

/// The newest calls matching `filter`, newest first. `--since` reads the BRIN index on time,
/// `--tool` the tool index; without them the primary key is walked backwards until `limit`.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "tool_calls.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection, filter: &Filter) -> QueryResult<Vec<ToolCallRow>> {
    let mut query = tool_calls::table.into_boxed();
    if let Some(user) = filter.user_id {
        query = query.filter(tool_calls::user_id.eq(user));
    }
    if let Some(client) = &filter.client_id {
        query = query.filter(tool_calls::client_id.eq(client.clone()));
    }
    if let Some(tool) = &filter.tool {
        query = query.filter(tool_calls::tool.eq(tool.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(tool_calls::occurred_at.ge(since));
    }
    query.order(tool_calls::id.desc()).limit(filter.limit).select(ToolCallRow::as_select()).load(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "0190b2c4-0000-7000-8000-000000000001";

    #[test]
    fn only_a_subject_no_column_holds_is_stored() {
        let alice = Uuid::try_parse(ALICE).ok();
        assert_eq!(split_subject(Some(ALICE), Some("app")), (alice, None), "a user");
        assert_eq!(split_subject(Some("app"), Some("app")), (None, None), "a client's own token");
        assert_eq!(split_subject(None, None), (None, None), "a public route");
        assert_eq!(split_subject(Some("ext|42"), Some("app")), (None, Some("ext|42")), "another issuer's sub");
        let upper = "0190B2C4-0000-7000-8000-000000000001";
        assert_eq!(split_subject(Some(upper), Some("app")), (alice, Some(upper)), "spelt as it came");
    }
}

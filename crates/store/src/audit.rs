//! `audit_events`: who did what to which client or user. Never holds a secret. The gateway's
//! tool calls have a table of their own ([`crate::tool_calls`]); [`list`] reads both.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::audit_events;
use crate::tool_calls::ToolCallRow;

/// The `kind` of each audit event about clients.
pub mod kind {
    /// RFC 7591 registration.
    pub const CLIENT_REGISTERED: &str = "client.registered";
    /// Created by an operator (`sallyport client add`).
    pub const CLIENT_CREATED: &str = "client.created";
    /// RFC 7592 update, or an operator's change.
    pub const CLIENT_UPDATED: &str = "client.updated";
    /// The registration access token was rotated (RFC 7592 read with rotation on).
    pub const REGISTRATION_TOKEN_ROTATED: &str = "client.registration_token_rotated";
    /// RFC 7592 delete, or `sallyport client remove`.
    pub const CLIENT_DELETED: &str = "client.deleted";
    /// `sallyport user passwd`: the user's sessions and grants were ended.
    pub const USER_PASSWORD_CHANGED: &str = "user.password_changed";
    /// `sallyport user disable`: the user's sessions and grants were ended.
    pub const USER_DISABLED: &str = "user.disabled";
    /// `sallyport user enable`: nothing that was ended comes back.
    pub const USER_ENABLED: &str = "user.enabled";
    /// `login.max_failures` wrong passwords in a row: locked, sessions and grants ended.
    pub const USER_LOCKED_OUT: &str = "user.locked_out";
    /// A sign-in through an OpenID provider (`detail.provider`, `issuer`, `subject`, `created`: the
    /// first sign-in made the user).
    pub const USER_FEDERATED_SIGN_IN: &str = "user.federated_sign_in";
    /// A sign-in through an OpenID provider that was refused (`detail.provider`, `detail.reason`).
    pub const USER_FEDERATED_SIGN_IN_FAILED: &str = "user.federated_sign_in_failed";
    /// A user connected their account at an `oauth2` route's upstream (`detail.route`, `issuer`,
    /// `scope`).
    pub const UPSTREAM_CONNECTED: &str = "upstream.connected";
    /// A user's upstream account was disconnected (`detail.route`, `detail.by`: `user` or
    /// `operator`, `detail.revoked`: whether the upstream confirmed RFC 7009 revocation).
    pub const UPSTREAM_DISCONNECTED: &str = "upstream.disconnected";
    /// A Connect that did not end in a connection (`detail.route`, `detail.reason`).
    pub const UPSTREAM_CONNECT_FAILED: &str = "upstream.connect_failed";
    /// A `tools/call` through an MCP route of the gateway, allowed or not (`detail.tool`, `detail.decision`):
    /// a row of `tool_calls`, listed by [`super::list`] as an event of this kind.
    pub const TOOL_CALL: &str = "mcp.tool_call";
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent<'a> {
    pub occurred_at: DateTime<Utc>,
    pub kind: &'a str,
    pub client_id: Option<&'a str>,
    pub user_id: Option<Uuid>,
    pub ip: Option<&'a str>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
pub struct AuditEventRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub kind: String,
    pub client_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "audit.record", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn record(conn: &mut AsyncPgConnection, event: &NewAuditEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_events::table).values(event).execute(conn).await.map(drop)
}

/// What `sallyport audit list` asks for; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
    /// Tool-call events of this tool.
    pub tool: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// The newest events matching `filter`, newest first: these and the gateway's tool calls
/// ([`crate::tool_calls`], shown as [`kind::TOOL_CALL`]), which share one sequence of ids.
#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "audit.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(conn: &mut AsyncPgConnection, filter: &Filter) -> QueryResult<Vec<AuditEventRow>> {
    let mut rows = if filter.tool.is_some() { Vec::new() } else { events(conn, filter).await? };
    rows.extend(crate::tool_calls::list(conn, filter).await?.into_iter().map(AuditEventRow::from));
    rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.id));
    rows.truncate(usize::try_from(filter.limit).unwrap_or(0));
    Ok(rows)
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "audit.events", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
async fn events(conn: &mut AsyncPgConnection, filter: &Filter) -> QueryResult<Vec<AuditEventRow>> {
    let mut query = audit_events::table.into_boxed();
    if let Some(user) = filter.user_id {
        query = query.filter(audit_events::user_id.eq(user));
    }
    if let Some(client) = &filter.client_id {
        query = query.filter(audit_events::client_id.eq(client.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::occurred_at.ge(since));
    }
    query.order(audit_events::id.desc()).limit(filter.limit).select(AuditEventRow::as_select()).load(conn).await
}

/// A tool call as the event it was before it had a table of its own, so listings read alike.
impl From<ToolCallRow> for AuditEventRow {
    fn from(call: ToolCallRow) -> Self {
        let detail = serde_json::json!({
            "route": call.route,
            "tool": call.tool,
            "subject": call.subject(),
            "decision": if call.allowed { "allowed" } else { "denied" },
            "reason": call.reason,
            "upstream_status": call.upstream_status,
            "duration_ms": call.duration_ms,
        });
        Self {
            id: call.id,
            occurred_at: call.occurred_at,
            kind: kind::TOOL_CALL.to_owned(),
            client_id: call.client_id,
            user_id: call.user_id,
            ip: call.ip,
            detail,
        }
    }
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "audit.for_client", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn for_client(conn: &mut AsyncPgConnection, client_id: &str) -> QueryResult<Vec<AuditEventRow>> {
    audit_events::table
        .filter(audit_events::client_id.eq(client_id))
        .order(audit_events::id.asc())
        .select(AuditEventRow::as_select())
        .load(conn)
        .await
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "audit.for_user", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn for_user(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Vec<AuditEventRow>> {
    audit_events::table
        .filter(audit_events::user_id.eq(user_id))
        .order(audit_events::id.asc())
        .select(AuditEventRow::as_select())
        .load(conn)
        .await
}

#[tracing::instrument(target = "sallyport::trace", level = "trace", name = "audit.recent", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn recent(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<AuditEventRow>> {
    audit_events::table.order(audit_events::id.desc()).limit(limit).select(AuditEventRow::as_select()).load(conn).await
}

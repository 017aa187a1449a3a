//! `sallyport audit list [--user NAME|ID] [--client ID] [--tool NAME] [--since WHEN] [--limit N] [--json]`:
//! the audit log, newest first: client changes and every `tools/call` the gateway saw on an MCP
//! route (who, which tool, allowed or denied and why, the upstream's status, how long it took).

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use diesel_async::AsyncPgConnection;
use serde_json::json;
use store::audit::{self, AuditEventRow, Filter};
use store::users;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    List {
        /// Only this user's events (a username or a user id).
        #[arg(long)]
        user: Option<String>,
        /// Only events of this client id.
        #[arg(long)]
        client: Option<String>,
        /// Only calls of this tool.
        #[arg(long)]
        tool: Option<String>,
        /// Only events since this time: RFC 3339 (2026-12-07T10:00:00Z) or an age (30m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: AuditCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    let AuditCommand::List { user, client, tool, since, limit, json } = cmd;
    let filter = Filter {
        user_id: match user {
            Some(user) => Some(user_id(&mut conn, &user).await?),
            None => None,
        },
        client_id: client,
        tool,
        since: since.as_deref().map(|s| parse_since(s, Utc::now())).transpose()?,
        limit: limit.clamp(1, 100_000),
    };
    let rows = audit::list(&mut conn, &filter).await?;
    if rows.is_empty() && !json {
        println!("no audit events");
    }
    for row in &rows {
        println!("{}", if json { as_json(row).to_string() } else { as_line(row) });
    }
    Ok(())
}

async fn user_id(conn: &mut AsyncPgConnection, user: &str) -> anyhow::Result<uuid::Uuid> {
    if let Ok(id) = user.parse() {
        return Ok(id);
    }
    match users::find_by_username(conn, user).await? {
        Some(u) => Ok(u.id),
        None => bail!("no user {user}"),
    }
}

/// An RFC 3339 time, or an age before `now` in s, m, h or d.
pub fn parse_since(raw: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    let split = raw.len().saturating_sub(1);
    let (n, unit) = raw.split_at(split);
    let n: i64 = n.parse().with_context(|| format!("--since {raw}: an RFC 3339 time or an age like 30m, 2h, 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--since {raw}: the unit is s, m, h or d"),
    };
    Ok(now - chrono::Duration::seconds(secs))
}

fn as_json(row: &AuditEventRow) -> serde_json::Value {
    json!({
        "id": row.id,
        "occurred_at": row.occurred_at.to_rfc3339(),
        "kind": row.kind,
        "client_id": row.client_id,
        "user_id": row.user_id,
        "ip": row.ip,
        "detail": row.detail,
    })
}

/// Tab-separated: time, kind, user or client, client id, then the tool call's route, tool,
/// decision (and why), upstream status and duration, or the event's detail.
fn as_line(row: &AuditEventRow) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let who = row.user_id.map(|u| u.to_string()).or_else(|| row.detail["subject"].as_str().map(str::to_owned));
    let rest = if row.kind == audit::kind::TOOL_CALL {
        let d = &row.detail;
        let decision = match d["reason"].as_str() {
            Some(reason) => format!("{} ({reason})", d["decision"].as_str().unwrap_or("-")),
            None => d["decision"].as_str().unwrap_or("-").to_owned(),
        };
        format!(
            "{}\t{}\t{decision}\t{}\t{}ms",
            d["route"].as_str().unwrap_or("-"),
            d["tool"].as_str().unwrap_or("-"),
            d["upstream_status"].as_u64().map_or_else(|| "-".to_owned(), |s| s.to_string()),
            d["duration_ms"].as_u64().unwrap_or(0)
        )
    } else {
        row.detail.to_string()
    };
    format!(
        "{}\t{}\t{}\t{}\t{rest}",
        row.occurred_at.format("%Y-%m-%d %H:%M:%S"),
        row.kind,
        dash(who),
        dash(row.client_id.clone())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z").expect("time").with_timezone(&Utc);
        assert_eq!(
            parse_since("2026-12-07T10:00:00Z", now).expect("rfc 3339").to_rfc3339(),
            "2026-12-07T10:00:00+00:00"
        );
        assert_eq!(parse_since("30m", now).expect("age").to_rfc3339(), "2026-12-07T11:30:00+00:00");
        assert_eq!(parse_since("2d", now).expect("age").to_rfc3339(), "2026-12-05T12:00:00+00:00");
        assert!(parse_since("2w", now).is_err());
        assert!(parse_since("yesterday", now).is_err());
    }
}

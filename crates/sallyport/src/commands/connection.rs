//! `sallyport connection list [--user NAME] [--json] | revoke --user NAME --route PREFIX`: users'
//! accounts at the upstreams of `oauth2` routes (issue 20). The tokens are never shown (they are
//! sealed; the listing has none to show). Revoking deletes the connection, revokes its tokens at
//! the upstream (RFC 7009, when it has a revocation endpoint) and is audited; the user's next
//! request through the route asks them to connect again.

use anyhow::{Context, bail};
use clap::Subcommand;
use diesel_async::AsyncPgConnection;
use server::Settings;
use store::audit::{self, NewAuditEvent, kind};
use store::{upstream_connections, users};

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// List connections: user, route, upstream issuer, scope, expiry, refresh token or not.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// One JSON array instead of tab-separated lines.
        #[arg(long)]
        json: bool,
    },
    /// Disconnect a user's account at a route's upstream, revoking its tokens there.
    Revoke {
        #[arg(long)]
        user: String,
        #[arg(long)]
        route: String,
    },
}

pub async fn run(cmd: ConnectionCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    match cmd {
        ConnectionCommand::List { user, json } => {
            let rows = list(&mut conn, user.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no connections");
            } else {
                for r in rows {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        r["user"].as_str().unwrap_or_default(),
                        r["route"].as_str().unwrap_or_default(),
                        r["issuer"].as_str().unwrap_or_default(),
                        r["scope"].as_str().unwrap_or("-"),
                        r["expires_at"].as_str().unwrap_or("-"),
                        if r["refresh_token"].as_bool().unwrap_or(false) { "refresh" } else { "no refresh" },
                    );
                }
            }
        }
        ConnectionCommand::Revoke { user, route } => {
            let revoked = revoke(&mut conn, &settings, &user, &route).await?;
            let at = if revoked { "revoked at the upstream" } else { "not confirmed revoked at the upstream" };
            println!("disconnected {user} from {route} ({at})");
        }
    }
    Ok(())
}

/// Every connection (or one user's) as JSON objects, without tokens.
pub async fn list(conn: &mut AsyncPgConnection, user: Option<&str>) -> anyhow::Result<Vec<serde_json::Value>> {
    let id = match user {
        Some(name) => Some(users::find_by_username(conn, name).await?.with_context(|| format!("no user {name}"))?.id),
        None => None,
    };
    let names: std::collections::HashMap<uuid::Uuid, String> =
        users::list(conn).await?.into_iter().map(|u| (u.id, u.username)).collect();
    let rows = upstream_connections::list(conn, id).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "user": names.get(&r.user_id).cloned().unwrap_or_else(|| r.user_id.to_string()),
                "route": r.route,
                "issuer": r.issuer,
                "scope": r.scope,
                "expires_at": r.expires_at.map(|t| t.to_rfc3339()),
                "refresh_token": r.has_refresh_token,
                "connected_at": r.created_at.to_rfc3339(),
                "updated_at": r.updated_at.to_rfc3339(),
            })
        })
        .collect())
}

/// Deletes the connection and revokes its tokens at the upstream; whether the upstream confirmed.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    user: &str,
    route: &str,
) -> anyhow::Result<bool> {
    let route = route.trim_end_matches('/');
    let id = users::find_by_username(conn, user).await?.with_context(|| format!("no user {user}"))?.id;
    let Some(row) = upstream_connections::delete(conn, id, route).await? else {
        bail!("{user} has no connection at {route}");
    };
    let kek = settings.keys.encryption_key.as_ref().map(|k| k.bytes());
    let routes = server::upstream_oauth::routes(conn, &settings.gateway.routes, kek)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let revoked = match (routes.iter().find(|r| r.prefix == route), kek) {
        (Some(r), Some(kek)) => server::upstream_oauth::revoke_tokens(conn, r, &row, kek).await,
        _ => false,
    };
    let event = NewAuditEvent {
        occurred_at: chrono::Utc::now(),
        kind: kind::UPSTREAM_DISCONNECTED,
        client_id: None,
        user_id: Some(id),
        ip: None,
        detail: serde_json::json!({ "route": route, "by": "operator", "revoked": revoked }),
    };
    audit::record(conn, &event).await?;
    Ok(revoked)
}

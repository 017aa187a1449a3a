//! `sallyport user add | list | disable | enable | passwd`: local accounts with argon2id hashes, and
//! the users OpenID providers brought (listed with how they sign in; disabled like any other).
//! A new password and a disable end the user's sessions and revoke every grant family of theirs
//! (refresh tokens at once, access tokens at introspection); enabling revives none of them.

use std::io::BufRead;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use store::audit::{self, NewAuditEvent, kind};
use store::users;

/// Verifiers may accept a token this long past `exp`; a revocation must outlive that too.
const VERIFIER_LEEWAY_SECS: u64 = 300;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from stdin with --password-stdin, else generated and printed.
    Add {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Stop a user from signing in; their sessions end and every grant of theirs is revoked.
    Disable { username: String },
    /// Let a disabled user sign in again (what the disable revoked stays revoked).
    Enable { username: String },
    /// Set a new password (read from stdin with --password-stdin, else generated and printed); the
    /// user's sessions end and every grant of theirs is revoked.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-+".contains(&b))
}

/// The password from stdin (first line) or a generated one, with whether it was generated.
fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
    } else {
        Ok((protocol::secret::random_token(15), true))
    }
}

pub async fn run(cmd: UserCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    let now = chrono::Utc::now();
    match cmd {
        UserCommand::Add { username, password_stdin } => {
            if !valid_username(&username) {
                bail!("a username is 1 to 64 characters of letters, digits and . _ @ - +");
            }
            if users::find_by_username(&mut conn, &username).await?.is_some() {
                bail!("user {username} exists already");
            }
            let (password, generated) = read_password(password_stdin)?;
            let hash = store::password::hash(&password)?;
            users::insert(&mut conn, &users::UserRow::new(&username, hash, now)).await?;
            println!("created user {username}");
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::List => {
            for line in list(&mut conn).await? {
                println!("{line}");
            }
        }
        UserCommand::Disable { username } => {
            let until = revoked_until(&settings, now);
            let ended = disable(&mut conn, &username, now, until).await?;
            println!("disabled {username}; {}", ended_text(ended));
        }
        UserCommand::Enable { username } => {
            enable(&mut conn, &username, now).await?;
            println!("enabled {username}; sessions and grants ended before stay ended");
        }
        UserCommand::Passwd { username, password_stdin } => {
            let (password, generated) = read_password(password_stdin)?;
            let hash = store::password::hash(&password)?;
            let ended = passwd(&mut conn, &username, &hash, now, revoked_until(&settings, now)).await?;
            println!("password changed for {username}; {}", ended_text(ended));
            if generated {
                println!("password: {password}");
            }
        }
    }
    Ok(())
}

/// One line per user: name, id, state, how they sign in (`password` and/or `provider:<id>` for
/// each OpenID provider linked, comma-separated; `-` for none), creation date.
pub async fn list(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<String>> {
    let links = store::federation::list(conn).await?;
    let mut lines = Vec::new();
    for u in users::list(conn).await? {
        let state = if u.disabled { "disabled" } else { "active" };
        let mut methods: Vec<String> = Vec::new();
        if u.password_hash != store::federation::NO_PASSWORD {
            methods.push("password".into());
        }
        for link in links.iter().filter(|l| l.user_id == u.id) {
            let m = format!("provider:{}", link.provider);
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        let methods = if methods.is_empty() { "-".to_owned() } else { methods.join(",") };
        lines.push(format!(
            "{}\t{}\t{state}\t{methods}\tcreated {}",
            u.username,
            u.id,
            u.created_at.format("%Y-%m-%d")
        ));
    }
    Ok(lines)
}

fn revoked_until(settings: &server::Settings, now: DateTime<Utc>) -> DateTime<Utc> {
    protocol::clock::after(now, settings.tokens.access_token_ttl_secs.as_secs().saturating_add(VERIFIER_LEEWAY_SECS))
}

fn ended_text(ended: users::Ended) -> String {
    format!(
        "ended {} session(s) and revoked {} grant(s) (their refresh and access tokens)",
        ended.sessions, ended.grants
    )
}

async fn user_id(conn: &mut AsyncPgConnection, username: &str) -> anyhow::Result<uuid::Uuid> {
    match users::find_by_username(conn, username).await? {
        Some(u) => Ok(u.id),
        None => bail!("no user {username}"),
    }
}

/// Disables the user and ends their sessions and grants, in one transaction with its audit event.
pub async fn disable(
    conn: &mut AsyncPgConnection,
    username: &str,
    now: DateTime<Utc>,
    revoked_until: DateTime<Utc>,
) -> anyhow::Result<users::Ended> {
    let id = user_id(conn, username).await?;
    let ended = conn
        .transaction(async |conn| {
            users::set_disabled(conn, username, true, now).await?;
            users::end_access_audited(conn, id, kind::USER_DISABLED, None, now, revoked_until).await
        })
        .await?;
    Ok(ended)
}

/// Lets the user sign in again; nothing ended by a disable comes back.
pub async fn enable(conn: &mut AsyncPgConnection, username: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    let id = user_id(conn, username).await?;
    conn.transaction(async |conn| {
        users::set_disabled(conn, username, false, now).await?;
        let event = NewAuditEvent {
            occurred_at: now,
            kind: kind::USER_ENABLED,
            client_id: None,
            user_id: Some(id),
            ip: None,
            detail: serde_json::json!({}),
        };
        audit::record(conn, &event).await
    })
    .await?;
    Ok(())
}

/// Sets a new password hash (which also ends a lockout) and ends the user's sessions and grants.
pub async fn passwd(
    conn: &mut AsyncPgConnection,
    username: &str,
    hash: &str,
    now: DateTime<Utc>,
    revoked_until: DateTime<Utc>,
) -> anyhow::Result<users::Ended> {
    let id = user_id(conn, username).await?;
    let ended = conn
        .transaction(async |conn| {
            users::set_password(conn, username, hash, now).await?;
            users::end_access_audited(conn, id, kind::USER_PASSWORD_CHANGED, None, now, revoked_until).await
        })
        .await?;
    Ok(ended)
}

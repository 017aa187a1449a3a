//! `sallyport grant list [--user NAME] | revoke --user NAME --client ID [--resource URI]`: the
//! consents users remembered. Revoking one makes the consent page appear again next time; tokens
//! already issued live on until they expire or are revoked at the token service.

use anyhow::{Context, bail};
use clap::Subcommand;
use diesel_async::AsyncPgConnection;
use domain::store::{consents, users};
use domain::uri::ResourceUri;

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// List remembered consents: user, client, resource, scopes, last changed.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Forget a user's consent to a client (for one resource, or all of them).
    Revoke {
        #[arg(long)]
        user: String,
        #[arg(long)]
        client: String,
        #[arg(long)]
        resource: Option<String>,
    },
}

pub async fn run(cmd: GrantCommand) -> anyhow::Result<()> {
    let settings = super::settings()?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    match cmd {
        GrantCommand::List { user } => {
            let lines = list(&mut conn, user.as_deref()).await?;
            if lines.is_empty() {
                println!("no remembered consents");
            }
            for line in lines {
                println!("{line}");
            }
        }
        GrantCommand::Revoke { user, client, resource } => {
            let n = revoke(&mut conn, &user, &client, resource.as_deref()).await?;
            println!("revoked {n} consent{}", if n == 1 { "" } else { "s" });
        }
    }
    Ok(())
}

async fn user_id(conn: &mut AsyncPgConnection, name: &str) -> anyhow::Result<uuid::Uuid> {
    match users::find_by_username(conn, name).await? {
        Some(u) => Ok(u.id),
        None => bail!("no user {name}"),
    }
}

/// One tab-separated line per consent.
pub async fn list(conn: &mut AsyncPgConnection, user: Option<&str>) -> anyhow::Result<Vec<String>> {
    let id = match user {
        Some(name) => Some(user_id(conn, name).await?),
        None => None,
    };
    let rows = consents::list(conn, id).await?;
    Ok(rows
        .into_iter()
        .map(|(c, username)| {
            let scopes = c.scope_tokens().collect::<Vec<_>>().join(" ");
            let scopes = if scopes.is_empty() { "-".to_owned() } else { scopes };
            format!("{username}\t{}\t{}\t{scopes}\t{}", c.client_id, c.resource, c.updated_at.format("%Y-%m-%d %H:%M"))
        })
        .collect())
}

/// Deletes the matching consents; none matching is an error, so a typo does not pass for success.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    user: &str,
    client: &str,
    resource: Option<&str>,
) -> anyhow::Result<usize> {
    let id = user_id(conn, user).await?;
    let resource = resource
        .map(|r| ResourceUri::parse(r).with_context(|| format!("resource {r} is not a valid resource URI")))
        .transpose()?;
    let n = consents::revoke(conn, id, client, resource.as_ref().map(ResourceUri::as_str)).await?;
    if n == 0 {
        bail!("{user} has no remembered consent for client {client}");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use domain::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
    use domain::scope::Scopes;
    use domain::store::clients;

    #[tokio::test(flavor = "multi_thread")]
    async fn list_and_revoke() {
        let db = testkit::TestDb::new().await;
        let mut conn = db.conn().await;
        let alice = users::UserRow::new("alice", "$argon2id$x".into(), Utc::now());
        users::insert(&mut conn, &alice).await.expect("user");
        let bob = users::UserRow::new("bob", "$argon2id$x".into(), Utc::now());
        users::insert(&mut conn, &bob).await.expect("user");
        let policy = MetadataPolicy {
            max_redirect_uris: 1,
            default_scopes: Scopes::default(),
            allowed_scopes: Scopes::default(),
        };
        let m = ClientMetadataRequest {
            redirect_uris: Some(vec!["http://127.0.0.1/cb".into()]),
            token_endpoint_auth_method: Some("none".into()),
            ..Default::default()
        }
        .validate(&policy)
        .expect("metadata");
        clients::insert(&mut conn, &clients::ClientRow::new("c1".into(), ClientSource::Admin, &m, Utc::now()))
            .await
            .expect("client");
        let r = |s: &str| vec![s.to_owned()];
        let now = Utc::now();
        consents::grant(&mut conn, alice.id, "c1", &r("https://a.example/mcp"), &r("mcp"), now).await.expect("g");
        consents::grant(&mut conn, alice.id, "c1", &r("https://b.example"), &[], now).await.expect("g");
        consents::grant(&mut conn, bob.id, "c1", &r("https://a.example/mcp"), &r("mcp"), now).await.expect("g");
        // a second grant adds to the first
        consents::grant(&mut conn, alice.id, "c1", &r("https://a.example/mcp"), &r("admin"), now).await.expect("g");

        let all = list(&mut conn, None).await.expect("list");
        assert_eq!(all.len(), 3);
        assert!(all[0].starts_with("alice\tc1\thttps://a.example/mcp\tadmin mcp\t"), "{all:?}");
        assert!(all[1].starts_with("alice\tc1\thttps://b.example\t-\t"), "{all:?}");
        assert_eq!(list(&mut conn, Some("bob")).await.expect("list").len(), 1);
        assert!(list(&mut conn, Some("nobody")).await.is_err());

        assert_eq!(revoke(&mut conn, "alice", "c1", Some("HTTPS://A.example/mcp/")).await.expect("revoke"), 1);
        assert!(revoke(&mut conn, "alice", "c1", Some("https://a.example/mcp")).await.is_err(), "already gone");
        assert_eq!(revoke(&mut conn, "alice", "c1", None).await.expect("revoke"), 1);
        assert!(revoke(&mut conn, "alice", "nope", None).await.is_err());
        assert_eq!(list(&mut conn, None).await.expect("list").len(), 1, "bob's stays");
    }
}

//! `sallyport grant list [--user NAME] | revoke --user NAME --client ID [--resource URI]`: the
//! consents users remembered. Revoking one makes the consent page appear again next time and
//! revokes what it authorised: the client's refresh tokens for that user stop working at once, its
//! access tokens at introspection (a gateway with revocation checks off accepts them until `exp`).

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use diesel_async::AsyncPgConnection;
use protocol::clock::after;
use protocol::uri::ResourceUri;
use store::consents::{self, ConsentRevocation};
use store::users;

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

pub async fn run(cmd: GrantCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
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
            let now = Utc::now();
            let until = after(now, settings.tokens.access_token_ttl_secs.as_secs());
            let r = revoke(&mut conn, &user, &client, resource.as_deref(), now, until).await?;
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            println!(
                "revoked {} consent{} and {} grant{} (their refresh and access tokens)",
                r.consents,
                plural(r.consents),
                r.grants,
                plural(r.grants)
            );
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

/// Deletes the matching consents and revokes the tokens they led to; no consent matching is an
/// error, so a typo does not pass for success.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    user: &str,
    client: &str,
    resource: Option<&str>,
    now: DateTime<Utc>,
    revoked_until: DateTime<Utc>,
) -> anyhow::Result<ConsentRevocation> {
    let id = user_id(conn, user).await?;
    let resource = resource
        .map(|r| ResourceUri::parse(r).with_context(|| format!("resource {r} is not a valid resource URI")))
        .transpose()?;
    let resource = resource.as_ref().map(ResourceUri::as_str);
    let revoked = consents::revoke_with_tokens(conn, id, client, resource, now, revoked_until).await?;
    if revoked.consents == 0 && revoked.grants == 0 {
        bail!("{user} has no remembered consent for client {client}");
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
    use protocol::scope::Scopes;
    use protocol::secret::SecretHash;
    use store::{clients, codes, refresh_tokens, revocations};
    use uuid::Uuid;

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

        // what the grants led to: a refresh-token family per (user, resource) and an unused code
        let family = |user: Uuid, resource: &str| refresh_tokens::RefreshTokenRow {
            id: Uuid::new_v4(),
            token_hash: SecretHash::of(&Uuid::new_v4().to_string()).as_bytes().to_vec(),
            grant_id: Uuid::new_v4(),
            parent_id: None,
            client_id: "c1".into(),
            user_id: Some(user),
            scope: "mcp".into(),
            resources: vec![Some(resource.into())],
            auth_time: now,
            created_at: now,
            expires_at: after(now, 3600),
            family_expires_at: after(now, 3600),
            used_at: None,
            revoked_at: None,
        };
        let alice_a = family(alice.id, "https://a.example/mcp");
        let alice_b = family(alice.id, "https://b.example");
        let bob_a = family(bob.id, "https://a.example/mcp");
        for t in [&alice_a, &alice_b, &bob_a] {
            refresh_tokens::insert(&mut conn, t).await.expect("refresh token");
        }
        let code = codes::CodeRow {
            code_hash: SecretHash::of("code").as_bytes().to_vec(),
            grant_id: Uuid::new_v4(),
            client_id: "c1".into(),
            user_id: alice.id,
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_sent: true,
            code_challenge: "x".repeat(43),
            resources: vec![Some("https://a.example/mcp".into())],
            scope: "mcp".into(),
            auth_time: now,
            created_at: now,
            expires_at: after(now, 60),
            used_at: None,
        };
        codes::insert(&mut conn, &code).await.expect("code");

        let until = after(now, 900);
        let r = revoke(&mut conn, "alice", "c1", Some("HTTPS://A.example/mcp/"), now, until).await.expect("revoke");
        assert_eq!((r.consents, r.grants), (1, 2), "alice's consent, her refresh family and her code's grant");
        for (token, revoked) in [(&alice_a, true), (&alice_b, false), (&bob_a, false)] {
            let rows = refresh_tokens::family(&mut conn, token.grant_id).await.expect("family");
            assert_eq!(rows[0].revoked_at.is_some(), revoked, "alice's token for a only: {rows:?}");
        }
        for gid in [alice_a.grant_id, code.grant_id] {
            let row = revocations::find_grant(&mut conn, gid).await.expect("find").expect("recorded");
            assert_eq!(row.reason, "consent_revoked");
            assert!((row.expires_at - until).num_milliseconds().abs() < 1, "kept as long as access tokens live");
        }
        assert!(revocations::find_grant(&mut conn, bob_a.grant_id).await.expect("find").is_none());
        let redeemed = codes::redeem(&mut conn, SecretHash::of("code").as_bytes(), now).await.expect("redeem");
        assert!(matches!(redeemed, codes::Redemption::Unknown), "the unused code is gone: {redeemed:?}");

        assert!(
            revoke(&mut conn, "alice", "c1", Some("https://a.example/mcp"), now, until).await.is_err(),
            "already gone"
        );
        let r = revoke(&mut conn, "alice", "c1", None, now, until).await.expect("revoke");
        assert_eq!((r.consents, r.grants), (1, 1), "the consent for b and its family; a's is not counted twice");
        assert!(revoke(&mut conn, "alice", "nope", None, now, until).await.is_err());
        assert_eq!(list(&mut conn, None).await.expect("list").len(), 1, "bob's stays");
    }
}

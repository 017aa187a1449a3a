//! `sallyport client add | list | show | remove | allow-introspect`: clients made by an operator,
//! such as resource servers that call introspection or confidential back-end clients. A generated
//! secret is printed once; only its SHA-256 is stored. Every change is an audit event.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use protocol::client::{Client, ClientInformation, ClientMetadataRequest, ClientSource, MetadataPolicy};
use protocol::clock::after;
use protocol::scope::Scopes;
use protocol::secret::{PlainSecret, SecretKind};
use server::Settings;
use server::registry::ResourceRegistry;
use store::audit::{self, NewAuditEvent, kind};
use store::clients::{self, ClientRow};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client: confidential by default (a secret is generated and printed once), or --public.
    Add(AddArgs),
    /// List every client: id, source, auth method, introspection, name, created.
    List,
    /// Print a client's metadata as JSON (never its secret: only a hash is stored).
    Show { client_id: String },
    /// Delete a client and revoke its codes, refresh tokens and outstanding access tokens.
    Remove { client_id: String },
    /// Let a client (a resource server) call token introspection, or stop it with --revoke.
    AllowIntrospect {
        client_id: String,
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The name shown to users on the consent page.
    #[arg(long)]
    pub name: String,
    /// A public client (no secret; token endpoint auth method `none`).
    #[arg(long, conflicts_with = "auth_method")]
    pub public: bool,
    /// How a confidential client authenticates at the token endpoint.
    #[arg(long, value_parser = ["client_secret_basic", "client_secret_post"])]
    pub auth_method: Option<String>,
    /// A redirect URI (repeat for several).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// A grant type (repeat for several). Default: authorization_code and refresh_token with a
    /// redirect URI, else client_credentials.
    #[arg(long = "grant-type")]
    pub grant_types: Vec<String>,
    /// Space-separated scopes; default: the deployment's default scopes.
    #[arg(long)]
    pub scope: Option<String>,
    /// Choose the client id (letters, digits, `.`, `_`, `~`, `-`); default: a random UUID.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Allow this client to call token introspection (a resource server).
    #[arg(long)]
    pub may_introspect: bool,
}

/// An operator's client id: a URL would be taken for a metadata document, and odd characters make
/// `registration_client_uri` and command lines awkward.
fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// The RFC 7591 metadata request the arguments describe.
fn metadata_request(args: &AddArgs) -> anyhow::Result<ClientMetadataRequest> {
    let method = if args.public {
        "none".to_owned()
    } else {
        args.auth_method.clone().unwrap_or_else(|| "client_secret_basic".into())
    };
    let grant_types = match (args.grant_types.is_empty(), args.redirect_uris.is_empty(), args.public) {
        (false, _, _) => args.grant_types.clone(),
        (true, false, _) => vec!["authorization_code".into(), "refresh_token".into()],
        (true, true, false) => vec!["client_credentials".into()],
        (true, true, true) => bail!("a public client needs at least one --redirect-uri"),
    };
    Ok(ClientMetadataRequest {
        redirect_uris: Some(args.redirect_uris.clone()),
        token_endpoint_auth_method: Some(method),
        grant_types: Some(grant_types),
        client_name: Some(args.name.clone()),
        scope: args.scope.clone(),
        ..Default::default()
    })
}

pub async fn run(cmd: ClientCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    match cmd {
        ClientCommand::Add(args) => {
            let registry = ResourceRegistry::new(&settings.resources).map_err(anyhow::Error::msg)?;
            let supported = registry.supported_scopes(&pool).await?;
            let policy = MetadataPolicy::for_deployment(&settings.registration, &supported);
            add(&mut conn, &policy, &args).await?;
        }
        ClientCommand::List => list(&mut conn).await?,
        ClientCommand::Show { client_id } => show(&mut conn, &client_id).await?,
        ClientCommand::Remove { client_id } => remove(&mut conn, &settings, &client_id).await?,
        ClientCommand::AllowIntrospect { client_id, revoke } => {
            allow_introspect(&mut conn, &client_id, !revoke).await?;
        }
    }
    Ok(())
}

async fn add(conn: &mut AsyncPgConnection, policy: &MetadataPolicy, args: &AddArgs) -> anyhow::Result<()> {
    let client_id = args.client_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if !valid_client_id(&client_id) {
        bail!("a client id is 1 to 128 letters, digits and . _ ~ - (not starting with -)");
    }
    if let Some(scope) = &args.scope {
        let requested = Scopes::parse(scope).context("--scope")?;
        let unknown = requested.difference(&policy.allowed_scopes);
        if !unknown.is_empty() {
            bail!(
                "scope {unknown} is not offered by any protected resource this command knows (offered: {}); \
                 register the resource first, with `sallyport resource add` or in the configuration's [[resources]]",
                if policy.allowed_scopes.is_empty() { "none".to_owned() } else { policy.allowed_scopes.to_string() }
            );
        }
    }
    let metadata = metadata_request(args)?.validate(policy).map_err(|e| anyhow::anyhow!("{e}"))?;
    if clients::find_row(conn, &client_id).await?.is_some() {
        bail!("client {client_id} exists already");
    }
    let now = chrono::Utc::now();
    let secret =
        metadata.token_endpoint_auth_method.is_confidential().then(|| PlainSecret::generate(SecretKind::ClientSecret));
    let mut row = ClientRow::new(client_id.clone(), ClientSource::Admin, &metadata, now);
    row.client_secret_hash = secret.as_ref().map(|s| s.hash().to_vec());
    row.may_introspect = args.may_introspect;
    let mut detail = metadata.audit_detail();
    if let Some(obj) = detail.as_object_mut() {
        obj.insert("via".into(), "cli".into());
        obj.insert("may_introspect".into(), args.may_introspect.into());
    }
    let event = NewAuditEvent {
        occurred_at: now,
        kind: kind::CLIENT_CREATED,
        client_id: Some(&client_id),
        user_id: None,
        ip: None,
        detail,
    };
    conn.transaction(async |conn| {
        clients::insert(conn, &row).await?;
        audit::record(conn, &event).await
    })
    .await?;
    let auth = metadata.token_endpoint_auth_method.as_str();
    println!("created client {client_id} ({auth}, scope \"{}\")", metadata.scope);
    println!("client_id: {client_id}");
    if let Some(secret) = secret {
        println!("client_secret: {}", secret.expose());
        println!("store the secret now: only its SHA-256 is kept and it cannot be shown again");
    }
    Ok(())
}

async fn list(conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
    let rows = clients::list(conn).await?;
    if rows.is_empty() {
        println!("no clients");
    }
    for r in rows {
        let introspect = if r.may_introspect { "may-introspect" } else { "-" };
        let name = r.client_name.as_deref().unwrap_or("-");
        let created = r.created_at.format("%Y-%m-%d");
        println!("{}\t{}\t{}\t{introspect}\t{name}\t{created}", r.client_id, r.source, r.token_endpoint_auth_method);
    }
    Ok(())
}

async fn find(conn: &mut AsyncPgConnection, client_id: &str) -> anyhow::Result<Client> {
    match clients::find(conn, client_id).await? {
        Some(c) => Ok(c),
        None => bail!("no client {client_id}"),
    }
}

async fn show(conn: &mut AsyncPgConnection, client_id: &str) -> anyhow::Result<()> {
    let client = find(conn, client_id).await?;
    let mut json = serde_json::to_value(ClientInformation::of(&client))?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("source".into(), client.source.as_str().into());
        obj.insert("may_introspect".into(), client.may_introspect.into());
        obj.insert("has_secret".into(), client.secret_hash.is_some().into());
    }
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

async fn remove(conn: &mut AsyncPgConnection, settings: &Settings, client_id: &str) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let revoked_until = after(now, settings.tokens.access_token_ttl_secs.as_secs());
    let event = NewAuditEvent {
        occurred_at: now,
        kind: kind::CLIENT_DELETED,
        client_id: Some(client_id),
        user_id: None,
        ip: None,
        detail: serde_json::json!({"via": "cli"}),
    };
    match clients::delete_revoking(conn, client_id, now, revoked_until, event).await? {
        Some(n) => println!("removed client {client_id}; revoked {n} grant famil{}", if n == 1 { "y" } else { "ies" }),
        None => bail!("no client {client_id}"),
    }
    Ok(())
}

async fn allow_introspect(conn: &mut AsyncPgConnection, client_id: &str, allowed: bool) -> anyhow::Result<()> {
    let client = find(conn, client_id).await?;
    if allowed && client.is_public() {
        bail!("client {client_id} is public: introspection needs a client that authenticates with a secret");
    }
    let event = NewAuditEvent {
        occurred_at: chrono::Utc::now(),
        kind: kind::CLIENT_UPDATED,
        client_id: Some(client_id),
        user_id: None,
        ip: None,
        detail: serde_json::json!({"via": "cli", "may_introspect": allowed}),
    };
    conn.transaction(async |conn| {
        clients::set_may_introspect(conn, client_id, allowed).await?;
        audit::record(conn, &event).await
    })
    .await?;
    let verb = if allowed { "may now call" } else { "may no longer call" };
    println!("client {client_id} {verb} introspection");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> AddArgs {
        AddArgs {
            name: "x".into(),
            public: false,
            auth_method: None,
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            scope: None,
            client_id: None,
            may_introspect: false,
        }
    }

    #[test]
    fn client_ids() {
        assert!(valid_client_id("resource-server.1"));
        assert!(valid_client_id("0193a2b4-5c6d-7e8f-9012-3456789abcde"));
        for bad in ["", "-x", "https://a.example/c", "a b", "a/b", &"a".repeat(129)] {
            assert!(!valid_client_id(bad), "{bad}");
        }
    }

    #[test]
    fn grant_defaults() {
        let confidential = metadata_request(&args()).expect("request");
        assert_eq!(confidential.grant_types, Some(vec!["client_credentials".to_owned()]));
        assert_eq!(confidential.token_endpoint_auth_method.as_deref(), Some("client_secret_basic"));
        let web = metadata_request(&AddArgs { redirect_uris: vec!["https://a.example/cb".into()], ..args() })
            .expect("request");
        assert_eq!(web.grant_types, Some(vec!["authorization_code".to_owned(), "refresh_token".to_owned()]));
        assert!(metadata_request(&AddArgs { public: true, ..args() }).is_err(), "public needs a redirect");
        let public =
            metadata_request(&AddArgs { public: true, redirect_uris: vec!["http://127.0.0.1/cb".into()], ..args() })
                .expect("request");
        assert_eq!(public.token_endpoint_auth_method.as_deref(), Some("none"));
    }
}

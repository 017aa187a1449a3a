//! `sallyport resource add | list | remove`: protected resources registered at run time, in the
//! `resources` table beside those of the configuration. Every running service sees a change
//! within a few seconds (the registry's cache); a resource in the configuration wins over a row
//! with the same identifier, so such a row can be neither added nor removed here.

use anyhow::{Context, bail};
use clap::Subcommand;
use diesel_async::AsyncPgConnection;
use protocol::scope::Scopes;
use protocol::uri::{ResourceUri, validate_info_url};
use server::Settings;
use server::registry::Resource;
use store::resources::{self, ResourceRow};

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Register a protected resource (or replace the one with this identifier).
    Add {
        /// Its identifier: an absolute URI without fragment, e.g. https://mcp.example.com/mcp.
        resource: String,
        /// The name shown on the consent page and in its RFC 9728 metadata.
        #[arg(long)]
        name: String,
        /// A scope it offers (repeat for several).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Its documentation (RFC 9728 `resource_documentation`).
        #[arg(long)]
        documentation: Option<String>,
        /// Accept tokens without a user (client_credentials of clients made with `client add`);
        /// without it every token must name a signed-in user.
        #[arg(long)]
        accept_machine_tokens: bool,
    },
    /// List every protected resource: identifier, where it is defined, scopes, name.
    List,
    /// Remove a resource added with `resource add`.
    Remove { resource: String },
}

pub async fn run(cmd: ResourceCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    match cmd {
        ResourceCommand::Add { resource, name, scopes, documentation, accept_machine_tokens } => {
            let docs = documentation.as_deref();
            let row = add(&mut conn, &settings, &resource, &name, &scopes, docs, accept_machine_tokens).await?;
            let machine = if row.accept_machine_tokens { "accepted" } else { "refused" };
            println!(
                "registered resource {} (scopes: {}; tokens without a user: {machine})",
                row.resource,
                shown(&row.scopes)
            );
        }
        ResourceCommand::List => {
            let lines = list(&mut conn, &settings).await?;
            if lines.is_empty() {
                println!("no protected resources");
            }
            for line in lines {
                println!("{line}");
            }
        }
        ResourceCommand::Remove { resource } => {
            let id = remove(&mut conn, &settings, &resource).await?;
            println!("removed resource {id}; tokens already issued for it live on until they expire");
        }
    }
    Ok(())
}

fn shown(scopes: &Scopes) -> String {
    if scopes.is_empty() { "-".into() } else { scopes.to_string() }
}

fn configured(settings: &Settings, id: &ResourceUri) -> anyhow::Result<bool> {
    for r in &settings.resources {
        if &Resource::from_settings(r).map_err(anyhow::Error::msg)?.id == id {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Validates and stores a resource; its identifier is kept normalised (the form every service
/// compares with).
pub async fn add(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    resource: &str,
    name: &str,
    scopes: &[String],
    documentation: Option<&str>,
    accept_machine_tokens: bool,
) -> anyhow::Result<ResourceRow> {
    let id = ResourceUri::parse(resource).with_context(|| format!("{resource} is not a valid resource URI"))?;
    if configured(settings, &id)? {
        bail!("{id} is defined in the configuration ([[resources]]), which wins over the database: change it there");
    }
    let name = name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    let scopes = Scopes::from_tokens(scopes).context("--scope")?;
    if let Some(url) = documentation {
        validate_info_url(url).with_context(|| format!("--documentation {url}"))?;
    }
    let row = ResourceRow {
        resource: id,
        name: name.to_owned(),
        scopes,
        documentation_url: documentation.map(str::to_owned),
        created_at: chrono::Utc::now(),
        accept_machine_tokens,
    };
    resources::upsert(conn, &row).await?;
    Ok(row)
}

/// One tab-separated line per resource: identifier, `config` or `database`, scopes, name.
pub async fn list(conn: &mut AsyncPgConnection, settings: &Settings) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for r in &settings.resources {
        let scopes = if r.scopes.is_empty() { "-".to_owned() } else { r.scopes.join(" ") };
        lines.push(format!("{}\tconfig\t{scopes}\t{}", r.resource, r.name));
    }
    for row in resources::list(conn).await? {
        let shadowed = configured(settings, &row.resource).unwrap_or(false);
        let source = if shadowed { "database (overridden by config)" } else { "database" };
        lines.push(format!("{}\t{source}\t{}\t{}", row.resource, shown(&row.scopes), row.name));
    }
    Ok(lines)
}

pub async fn remove(conn: &mut AsyncPgConnection, settings: &Settings, resource: &str) -> anyhow::Result<String> {
    let id = ResourceUri::parse(resource).with_context(|| format!("{resource} is not a valid resource URI"))?;
    if !resources::delete(conn, &id).await? {
        if configured(settings, &id)? {
            bail!("{id} is defined in the configuration ([[resources]]): remove it there");
        }
        bail!("no resource {id}");
    }
    Ok(id.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::config::ResourceSettings;

    #[tokio::test(flavor = "multi_thread")]
    async fn add_list_remove() {
        let db = testkit::TestDb::new().await;
        let mut conn = db.conn().await;
        let mut settings = testkit::settings(&db);
        settings.resources = vec![ResourceSettings {
            resource: "https://mcp.example/mcp".into(),
            name: "Configured".into(),
            scopes: vec!["mcp".into()],
            documentation: None,
            accept_machine_tokens: false,
        }];

        let row = add(&mut conn, &settings, "HTTPS://Files.example/api/", "Files", &["files".into()], None, false)
            .await
            .expect("add");
        assert_eq!(row.resource.as_str(), "https://files.example/api", "stored normalised");
        // adding again replaces
        add(
            &mut conn,
            &settings,
            "https://files.example/api",
            "Files v2",
            &["files".into(), "files:write".into()],
            None,
            true,
        )
        .await
        .expect("replace");
        let lines = list(&mut conn, &settings).await.expect("list");
        assert_eq!(
            lines,
            [
                "https://mcp.example/mcp\tconfig\tmcp\tConfigured",
                "https://files.example/api\tdatabase\tfiles files:write\tFiles v2"
            ]
        );

        for (uri, name, scopes, doc, why) in [
            ("not a uri", "x", vec![], None, "an invalid URI"),
            ("https://a.example/x#frag", "x", vec![], None, "a fragment"),
            ("https://a.example/x", " ", vec![], None, "an empty name"),
            ("https://a.example/x", "x", vec!["bad\"scope".to_owned()], None, "a bad scope"),
            ("https://a.example/x", "x", vec![], Some("javascript:alert(1)"), "a bad documentation URL"),
            ("https://mcp.example/mcp/", "x", vec![], None, "a configured resource"),
        ] {
            assert!(add(&mut conn, &settings, uri, name, &scopes, doc, false).await.is_err(), "{why} is refused");
        }

        let registry = server::registry::ResourceRegistry::new(&settings.resources).expect("registry");
        let pool = db.pool();
        let all = registry.all(&pool).await.expect("registry");
        assert_eq!(all.len(), 2, "the services see it: {all:?}");
        assert!(registry.supported_scopes(&pool).await.expect("scopes").contains("files:write"));
        let files = all.iter().find(|r| r.name == "Files v2").expect("files");
        assert!(files.accept_machine_tokens, "--accept-machine-tokens reaches the registry");
        assert!(!all[0].accept_machine_tokens, "off unless said");

        assert!(remove(&mut conn, &settings, "https://mcp.example/mcp").await.is_err(), "configured");
        assert_eq!(
            remove(&mut conn, &settings, "https://FILES.example/api").await.expect("remove"),
            "https://files.example/api"
        );
        assert!(remove(&mut conn, &settings, "https://files.example/api").await.is_err(), "already gone");
        assert_eq!(list(&mut conn, &settings).await.expect("list").len(), 1);
    }
}

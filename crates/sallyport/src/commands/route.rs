//! `sallyport route add | list | show | remove`: gateway routes in the `gateway_routes` table,
//! beside `[[gateway.routes]]` of the configuration (which wins over a row with the same prefix,
//! so such a row can be neither added nor removed here). Every gateway serves a change within a
//! few seconds. A route's upstream credential (`--upstream-auth api_key | headers`) is sealed
//! under `keys.encryption_key` before it is stored and is never printed again: `show` redacts it.

use anyhow::{Context, bail};
use clap::Subcommand;
use diesel_async::AsyncPgConnection;
use protocol::redact::{REDACTED, SecretString};
use protocol::scope::Scopes;
use protocol::upstream_auth::{UpstreamAuth, UpstreamOAuth, check_credential};
use protocol::uri::ResourceUri;
use server::Settings;
use server::config::HttpUrl;
use store::audit::{self, NewAuditEvent};
use store::gateway_routes::{self, GatewayRouteRow};

/// Audit kinds of route changes (no secret in their detail).
const ROUTE_ADDED: &str = "route.added";
const ROUTE_REMOVED: &str = "route.removed";

#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// The path prefix on the gateway, e.g. /mcp/linear.
    pub prefix: String,
    /// The upstream URL the prefix maps to.
    #[arg(long)]
    pub upstream: String,
    /// The protected resource's identifier (RFC 8707); required unless --no-auth.
    #[arg(long)]
    pub resource: Option<String>,
    /// A scope every request needs (repeat for several).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// A public upstream: no bearer check.
    #[arg(long)]
    pub no_auth: bool,
    /// An MCP endpoint (JSON-RPC read for the tool-call audit).
    #[arg(long)]
    pub mcp: bool,
    /// A browser origin allowed to call the route (repeat for several).
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
    /// What the gateway sends upstream instead of the client's Authorization: none, api_key
    /// (one --header or --header-env) or headers (one or more).
    #[arg(long, default_value = "none")]
    pub upstream_auth: String,
    /// NAME=VALUE, a header of the upstream credential (the value lands in shell history and
    /// process lists: prefer --header-env).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// NAME=VARIABLE, a header of the upstream credential whose value is read from the
    /// environment variable VARIABLE.
    #[arg(long = "header-env")]
    pub header_envs: Vec<String>,
    /// --upstream-auth oauth2: the upstream authorization server's issuer (else discovered from
    /// the upstream, RFC 9728).
    #[arg(long)]
    pub oauth_issuer: Option<String>,
    /// --upstream-auth oauth2: for a server without metadata, with --oauth-token-endpoint and
    /// --oauth-client-id.
    #[arg(long)]
    pub oauth_authorization_endpoint: Option<String>,
    #[arg(long)]
    pub oauth_token_endpoint: Option<String>,
    /// RFC 7009, used by Disconnect.
    #[arg(long)]
    pub oauth_revocation_endpoint: Option<String>,
    /// --upstream-auth oauth2: a client registered by hand at the upstream (else Sallyport's client
    /// ID metadata document, or dynamic registration).
    #[arg(long)]
    pub oauth_client_id: Option<String>,
    /// The environment variable holding that client's secret (sealed, never printed).
    #[arg(long)]
    pub oauth_client_secret_env: Option<String>,
    /// A scope to ask the upstream for (repeat for several; default: its scopes_supported).
    #[arg(long = "oauth-scope")]
    pub oauth_scopes: Vec<String>,
    /// The upstream's resource identifier (RFC 8707; default: from its metadata, else --upstream).
    #[arg(long)]
    pub oauth_resource: Option<String>,
    /// Let discovery, registration and tokens reach loopback and private addresses.
    #[arg(long)]
    pub oauth_allow_private_hosts: bool,
}

impl AddArgs {
    fn any_oauth(&self) -> bool {
        self.oauth_issuer.is_some()
            || self.oauth_authorization_endpoint.is_some()
            || self.oauth_token_endpoint.is_some()
            || self.oauth_revocation_endpoint.is_some()
            || self.oauth_client_id.is_some()
            || self.oauth_client_secret_env.is_some()
            || !self.oauth_scopes.is_empty()
            || self.oauth_resource.is_some()
            || self.oauth_allow_private_hosts
    }
}

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Add a route (or replace the one with this prefix).
    Add(Box<AddArgs>),
    /// Every route: prefix, where it is defined, upstream, upstream_auth.
    List,
    /// One route, its credential redacted.
    Show { prefix: String },
    /// Remove a route added with `route add`.
    Remove { prefix: String },
    /// An `oauth2` route: discover its upstream's authorization server, print what was found and
    /// register Sallyport's client there (once per authorization server).
    Discover { prefix: String },
}

pub async fn run(cmd: RouteCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    match cmd {
        RouteCommand::Add(args) => {
            let headers = credential_headers(&args, |name| std::env::var(name).ok())?;
            let secret = oauth_secret(&args, |name| std::env::var(name).ok())?;
            let row = add_with_secret(&mut conn, &settings, &args, &headers, secret.as_ref()).await?;
            println!(
                "added route {} -> {} (upstream_auth: {}); every gateway serves it within a few seconds",
                row.prefix, row.upstream, row.upstream_auth
            );
        }
        RouteCommand::List => {
            let lines = list(&mut conn, &settings).await?;
            if lines.is_empty() {
                println!("no gateway routes");
            }
            for line in lines {
                println!("{line}");
            }
        }
        RouteCommand::Show { prefix } => println!("{}", show(&mut conn, &settings, &prefix).await?),
        RouteCommand::Remove { prefix } => {
            let prefix = remove(&mut conn, &settings, &prefix).await?;
            println!("removed route {prefix}; every gateway stops serving it within a few seconds");
        }
        RouteCommand::Discover { prefix } => println!("{}", discover(&mut conn, &settings, &prefix).await?),
    }
    Ok(())
}

/// The credential's headers from `--header NAME=VALUE` and `--header-env NAME=VARIABLE`.
pub fn credential_headers(
    args: &AddArgs,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<(String, SecretString)>> {
    let mut headers = Vec::new();
    for h in &args.headers {
        // the value is never repeated in an error
        let (name, value) = h.split_once('=').context("--header takes NAME=VALUE")?;
        headers.push((name.to_owned(), SecretString::from(value)));
    }
    for h in &args.header_envs {
        let (name, var) = h.split_once('=').context("--header-env takes NAME=VARIABLE")?;
        let value =
            env(var).with_context(|| format!("--header-env {name}: the environment variable {var} is not set"))?;
        headers.push((name.to_owned(), SecretString::from(value)));
    }
    Ok(headers)
}

/// The prefix as the gateway matches it: no trailing slash, canonical.
fn normalised(prefix: &str) -> anyhow::Result<String> {
    if !prefix.starts_with('/') {
        bail!("{prefix}: a prefix starts with '/'");
    }
    if let Some(why) = gateway::path::non_canonical(prefix) {
        bail!("{prefix}: {why}");
    }
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        bail!("the root prefix / belongs in the configuration, not the database");
    }
    Ok(p.to_owned())
}

fn configured(settings: &Settings, prefix: &str) -> bool {
    settings.gateway.routes.iter().any(|r| r.prefix.trim_end_matches('/') == prefix)
}

/// `--oauth-client-secret-env`: the secret, read from the environment.
pub fn oauth_secret(args: &AddArgs, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<SecretString>> {
    args.oauth_client_secret_env
        .as_deref()
        .map(|var| {
            env(var)
                .map(SecretString::from)
                .with_context(|| format!("--oauth-client-secret-env: the environment variable {var} is not set"))
        })
        .transpose()
}

/// Validates and stores a route, its credential sealed (no oauth2 client secret).
#[cfg(test)]
pub async fn add(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    args: &AddArgs,
    headers: &[(String, SecretString)],
) -> anyhow::Result<GatewayRouteRow> {
    add_with_secret(conn, settings, args, headers, None).await
}

/// The explicit settings of an `oauth2` route, checked as the configuration's are.
fn oauth_settings(args: &AddArgs, secret: Option<&SecretString>) -> anyhow::Result<UpstreamOAuth> {
    let url = |name: &str, v: &Option<String>| -> anyhow::Result<Option<String>> {
        v.as_deref()
            .map(|u| HttpUrl::parse(u).map(|u| u.as_str().to_owned()).map_err(|e| anyhow::anyhow!("--{name}: {e}")))
            .transpose()
    };
    let explicit = UpstreamOAuth {
        issuer: url("oauth-issuer", &args.oauth_issuer)?,
        authorization_endpoint: url("oauth-authorization-endpoint", &args.oauth_authorization_endpoint)?,
        token_endpoint: url("oauth-token-endpoint", &args.oauth_token_endpoint)?,
        revocation_endpoint: url("oauth-revocation-endpoint", &args.oauth_revocation_endpoint)?,
        client_id: args.oauth_client_id.clone(),
        scopes: Scopes::from_tokens(&args.oauth_scopes).context("--oauth-scope")?.to_vec(),
        resource: args
            .oauth_resource
            .as_deref()
            .map(|r| {
                ResourceUri::parse(r).map(|r| r.as_str().to_owned()).with_context(|| format!("--oauth-resource {r}"))
            })
            .transpose()?,
        allow_private_hosts: args.oauth_allow_private_hosts,
    };
    if secret.is_some() && explicit.client_id.is_none() {
        bail!("--oauth-client-secret-env needs the --oauth-client-id it belongs to");
    }
    if explicit.authorization_endpoint.is_some() != explicit.token_endpoint.is_some() {
        bail!("--oauth-authorization-endpoint and --oauth-token-endpoint are given together, or both discovered");
    }
    if explicit.authorization_endpoint.is_some() && explicit.client_id.is_none() {
        bail!("explicit endpoints without metadata need the --oauth-client-id registered there");
    }
    if args.no_auth {
        bail!("--upstream-auth oauth2 sends each user's own upstream token: the route cannot be --no-auth");
    }
    Ok(explicit)
}

/// [`add`], with the client secret of an `oauth2` route (sealed in `upstream_secret_enc`).
pub async fn add_with_secret(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    args: &AddArgs,
    headers: &[(String, SecretString)],
    oauth_secret: Option<&SecretString>,
) -> anyhow::Result<GatewayRouteRow> {
    let prefix = normalised(&args.prefix)?;
    if configured(settings, &prefix) {
        bail!(
            "{prefix} is a route of the configuration ([[gateway.routes]]), which wins over the database: change it there"
        );
    }
    let shadows = |p: &str| gateway::router::prefix_matches(p, &prefix) || gateway::router::prefix_matches(&prefix, p);
    if gateway::router::AS_ENDPOINTS.iter().any(|e| shadows(e.path)) {
        bail!("{prefix} would catch the authorization server's own paths");
    }
    let upstream = HttpUrl::parse(&args.upstream).map_err(|e| anyhow::anyhow!("--upstream: {e}"))?;
    let resource = match (&args.resource, args.no_auth) {
        (Some(r), _) => Some(ResourceUri::parse(r).with_context(|| format!("--resource {r}"))?.as_str().to_owned()),
        (None, false) => bail!("--resource is required (or --no-auth for a public upstream)"),
        (None, true) => None,
    };
    let scopes = Scopes::from_tokens(&args.scopes).context("--scope")?;
    let own: Vec<String> = resource.iter().filter_map(|r| ResourceUri::parse(r).ok()).map(|r| r.origin()).collect();
    gateway::Cors::for_resource(&args.allowed_origins, &own).map_err(|e| anyhow::anyhow!("--allowed-origin: {e}"))?;
    let kind = UpstreamAuth::parse(&args.upstream_auth)
        .with_context(|| format!("--upstream-auth {}: one of none, api_key, headers, oauth2", args.upstream_auth))?;
    if kind != UpstreamAuth::OAuth2 && (args.any_oauth() || oauth_secret.is_some()) {
        bail!("the --oauth-* options belong to --upstream-auth oauth2");
    }
    let oauth = (kind == UpstreamAuth::OAuth2).then(|| oauth_settings(args, oauth_secret)).transpose()?;
    let names = check_credential(kind, headers.iter().map(|(n, v)| (n.as_str(), v.expose())))
        .map_err(|e| anyhow::anyhow!("--upstream-auth {}: {e}", kind.as_str()))?;
    let sealed = if names.is_empty() {
        None
    } else {
        let key = settings
            .keys
            .encryption_key
            .as_ref()
            .context("an upstream credential is sealed under keys.encryption_key, which is not set")?;
        let lowered: Vec<(String, SecretString)> =
            names.iter().zip(headers).map(|(n, (_, v))| (n.clone(), v.clone())).collect();
        Some(gateway_routes::seal_headers(key.bytes(), &prefix, &lowered)?)
    };
    let sealed = match oauth_secret {
        None => sealed,
        Some(secret) => {
            let key = settings
                .keys
                .encryption_key
                .as_ref()
                .context("an upstream client secret is sealed under keys.encryption_key, which is not set")?;
            Some(server::upstream_oauth::seal_client_secret(key.bytes(), &prefix, secret).map_err(anyhow::Error::msg)?)
        }
    };
    let now = chrono::Utc::now();
    let row = GatewayRouteRow {
        prefix,
        upstream: upstream.as_str().to_owned(),
        resource,
        scopes: scopes.iter().map(|s| Some(s.to_owned())).collect(),
        auth: !args.no_auth,
        mcp: args.mcp,
        allowed_origins: args.allowed_origins.iter().cloned().map(Some).collect(),
        upstream_auth: kind.as_str().to_owned(),
        upstream_header_names: names.into_iter().map(Some).collect(),
        upstream_secret_enc: sealed,
        created_at: now,
        updated_at: now,
        upstream_oauth: oauth.as_ref().map(serde_json::to_value).transpose()?,
    };
    gateway_routes::upsert(conn, &row).await?;
    let detail = serde_json::json!({
        "prefix": row.prefix, "upstream": row.upstream, "upstream_auth": row.upstream_auth,
        "headers": row.upstream_header_names,
    });
    record(conn, ROUTE_ADDED, detail).await?;
    Ok(row)
}

async fn record(conn: &mut AsyncPgConnection, kind: &str, detail: serde_json::Value) -> anyhow::Result<()> {
    let event =
        NewAuditEvent { occurred_at: chrono::Utc::now(), kind, client_id: None, user_id: None, ip: None, detail };
    audit::record(conn, &event).await?;
    Ok(())
}

/// One tab-separated line per route: prefix, `config` or `database`, upstream, upstream_auth.
pub async fn list(conn: &mut AsyncPgConnection, settings: &Settings) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for r in &settings.gateway.routes {
        lines.push(format!("{}\tconfig\t{}\t{}", r.prefix, r.upstream, r.upstream_auth.as_str()));
    }
    for row in gateway_routes::list(conn).await? {
        let source = if configured(settings, &row.prefix) { "database (overridden by config)" } else { "database" };
        lines.push(format!("{}\t{source}\t{}\t{}", row.prefix, row.upstream, row.upstream_auth));
    }
    Ok(lines)
}

/// A route as `key: value` lines; credential values are shown as `<redacted>`.
pub async fn show(conn: &mut AsyncPgConnection, settings: &Settings, prefix: &str) -> anyhow::Result<String> {
    let prefix = prefix.trim_end_matches('/');
    let texts = |v: &[Option<String>]| {
        let v: Vec<&str> = v.iter().flatten().map(String::as_str).collect();
        if v.is_empty() { "-".to_owned() } else { v.join(" ") }
    };
    if let Some(r) = settings.gateway.routes.iter().find(|r| r.prefix.trim_end_matches('/') == prefix) {
        let headers: Vec<String> = r.upstream_credential().iter().map(|(n, _)| format!("{n}: {REDACTED}")).collect();
        return Ok(format!(
            "prefix: {}\nsource: config\nupstream: {}\nresource: {}\nauth: {}\nmcp: {}\nscopes: {}\nupstream_auth: {}\nupstream headers: {}",
            r.prefix,
            r.upstream,
            r.resource.as_deref().unwrap_or("-"),
            r.auth,
            r.mcp,
            if r.scopes.is_empty() { "-".to_owned() } else { r.scopes.join(" ") },
            r.upstream_auth.as_str(),
            if headers.is_empty() { "-".to_owned() } else { headers.join(", ") },
        ));
    }
    let row = gateway_routes::find(conn, prefix).await?.with_context(|| format!("no route {prefix}"))?;
    let headers: Vec<String> = row.upstream_header_names.iter().flatten().map(|n| format!("{n}: {REDACTED}")).collect();
    let oauth = match &row.upstream_oauth {
        None => String::new(),
        Some(v) => {
            let secret = if row.upstream_secret_enc.is_some() { REDACTED } else { "-" };
            format!("\nupstream_oauth: {v}\nupstream client secret: {secret}")
        }
    };
    Ok(format!(
        "prefix: {}\nsource: database\nupstream: {}\nresource: {}\nauth: {}\nmcp: {}\nscopes: {}\nallowed origins: {}\nupstream_auth: {}\nupstream headers: {}\ncreated: {}\nupdated: {}",
        row.prefix,
        row.upstream,
        row.resource.as_deref().unwrap_or("-"),
        row.auth,
        row.mcp,
        texts(&row.scopes),
        texts(&row.allowed_origins),
        row.upstream_auth,
        if headers.is_empty() { "-".to_owned() } else { headers.join(", ") },
        row.created_at.to_rfc3339(),
        row.updated_at.to_rfc3339(),
    ) + &oauth)
}

/// `route discover`: what discovery finds for an `oauth2` route, and Sallyport's client there
/// (registered now if it was not).
pub async fn discover(conn: &mut AsyncPgConnection, settings: &Settings, prefix: &str) -> anyhow::Result<String> {
    use server::upstream_oauth::{self, FetchPolicy};
    let prefix = prefix.trim_end_matches('/');
    let kek = settings.keys.encryption_key.as_ref().map(|k| k.bytes());
    let routes =
        upstream_oauth::routes(conn, &settings.gateway.routes, kek).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let route = routes
        .into_iter()
        .find(|r| r.prefix == prefix)
        .with_context(|| format!("{prefix} is not a route with upstream_auth = oauth2"))?;
    let http = FetchPolicy::for_route(&route).client()?;
    let found = upstream_oauth::discover(&http, &route).await?;
    let client =
        upstream_oauth::ensure_client(conn, &http, &route, &found, &settings.issuer, kek, chrono::Utc::now()).await?;
    let s = &found.server;
    Ok(format!(
        "route: {}\nfound through: {}\nresource: {}\nscopes: {}\nissuer: {}\nauthorization_endpoint: {}\ntoken_endpoint: {}\nrevocation_endpoint: {}\nregistration_endpoint: {}\niss parameter (RFC 9207): {}\nclient ID metadata documents: {}\nclient: {} ({}, {})\nconnect: {}",
        route.prefix,
        found.source,
        found.resource.as_deref().unwrap_or("-"),
        if found.scopes.is_empty() { "-".to_owned() } else { found.scopes.join(" ") },
        s.issuer,
        s.authorization_endpoint,
        s.token_endpoint,
        s.revocation_endpoint.as_deref().unwrap_or("-"),
        s.registration_endpoint.as_deref().unwrap_or("-"),
        s.authorization_response_iss_parameter_supported,
        s.client_id_metadata_document_supported,
        route.explicit.client_id.as_deref().unwrap_or(&client.client_id),
        if route.explicit.client_id.is_some() { "configured" } else { client.method.as_str() },
        client.token_endpoint_auth_method,
        upstream_oauth::connect_uri(&settings.issuer, &route.prefix),
    ))
}

pub async fn remove(conn: &mut AsyncPgConnection, settings: &Settings, prefix: &str) -> anyhow::Result<String> {
    let prefix = prefix.trim_end_matches('/');
    if !gateway_routes::delete(conn, prefix).await? {
        if configured(settings, prefix) {
            bail!("{prefix} is a route of the configuration ([[gateway.routes]]): remove it there");
        }
        bail!("no route {prefix}");
    }
    record(conn, ROUTE_REMOVED, serde_json::json!({ "prefix": prefix })).await?;
    Ok(prefix.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: RouteCommand,
    }

    fn add_args(line: &str) -> AddArgs {
        let words = std::iter::once("route").chain(line.split_whitespace());
        match Cli::try_parse_from(words).expect("parses").cmd {
            RouteCommand::Add(args) => *args,
            other => panic!("not add: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn add_list_show_remove_with_the_credential_sealed() {
        let db = testkit::TestDb::new().await;
        let mut conn = db.conn().await;
        let mut settings = testkit::settings(&db);
        settings.gateway.routes = vec![server::config::RouteSettings {
            prefix: "/mcp".into(),
            upstream: HttpUrl::parse("http://127.0.0.1:9000/mcp").expect("url"),
            resource: Some("http://gw.example/mcp".into()),
            scopes: vec![],
            method_scopes: Default::default(),
            auth: true,
            allowed_origins: vec![],
            allow_form_token: false,
            allow_query_token: false,
            mcp: true,
            tools: Default::default(),
            tool_scopes: Default::default(),
            upstream_auth: Default::default(),
            upstream_api_key: None,
            upstream_headers: Default::default(),
            upstream_oauth: None,
        }];

        let args = add_args(
            "add /linear/ --upstream https://mcp.linear.example/mcp --resource http://gw.example/linear --scope mcp \
             --upstream-auth api_key --header-env X-API-Key=LINEAR_KEY",
        );
        let env = |var: &str| (var == "LINEAR_KEY").then(|| "lin_api_very_secret".to_owned());
        let headers = credential_headers(&args, env).expect("headers");
        let row = add(&mut conn, &settings, &args, &headers).await.expect("add");
        assert_eq!(row.prefix, "/linear", "stored as the gateway matches it");
        assert_eq!(row.upstream_header_names, [Some("x-api-key".to_owned())]);
        let sealed = row.upstream_secret_enc.as_deref().expect("sealed");
        let key = settings.keys.encryption_key.as_ref().expect("key");
        let opened = gateway_routes::unseal_headers(key.bytes(), "/linear", sealed).expect("opens");
        assert_eq!(opened[0].1.expose(), "lin_api_very_secret");

        let shown = show(&mut conn, &settings, "/linear").await.expect("show");
        assert!(shown.contains("upstream_auth: api_key") && shown.contains("x-api-key: <redacted>"), "{shown}");
        assert!(!shown.contains("lin_api_very_secret"), "show redacts: {shown}");
        let lines = list(&mut conn, &settings).await.expect("list");
        assert_eq!(
            lines,
            [
                "/mcp\tconfig\thttp://127.0.0.1:9000/mcp\tnone",
                "/linear\tdatabase\thttps://mcp.linear.example/mcp\tapi_key"
            ]
        );
        let audit = store::audit::list(&mut conn, &store::audit::Filter { limit: 50, ..Default::default() })
            .await
            .expect("audit");
        assert!(audit.iter().any(|e| e.kind == ROUTE_ADDED), "the change is audited");
        assert!(!format!("{audit:?}").contains("lin_api_very_secret"), "never in the audit");

        // headers: several, from the command line
        let args = add_args(
            "add /sentry --upstream http://127.0.0.1:9100 --no-auth --upstream-auth headers \
             --header Authorization=Bearer%20x --header X-Org=acme",
        );
        let headers = credential_headers(&args, |_| None).expect("headers");
        add(&mut conn, &settings, &args, &headers).await.expect("add headers");
        let shown = show(&mut conn, &settings, "/sentry").await.expect("show");
        assert!(shown.contains("authorization: <redacted>, x-org: <redacted>"), "{shown}");

        for (line, why) in [
            ("add /mcp --upstream http://a:1 --resource http://gw.example/mcp", "a configured prefix"),
            ("add mcp2 --upstream http://a:1 --resource http://gw.example/x", "no leading slash"),
            ("add /a/../b --upstream http://a:1 --resource http://gw.example/x", "dot segments"),
            ("add / --upstream http://a:1 --no-auth", "the root"),
            ("add /oauth2 --upstream http://a:1 --no-auth", "the AS's paths"),
            ("add /x --upstream ftp://a:1 --no-auth", "a non-http upstream"),
            ("add /x --upstream http://a:1", "no resource with auth"),
            ("add /x --upstream http://a:1 --no-auth --upstream-auth api_key", "api_key without a key"),
            ("add /x --upstream http://a:1 --no-auth --upstream-auth basic --header a=b", "an unknown kind"),
            ("add /x --upstream http://a:1 --no-auth --header X-A=1", "headers with none"),
            ("add /x --upstream http://a:1 --no-auth --upstream-auth headers --header Host=evil", "Host"),
        ] {
            let args = add_args(line);
            let headers = credential_headers(&args, |_| None).expect("headers");
            let e = add(&mut conn, &settings, &args, &headers).await.expect_err(why);
            assert!(!e.to_string().contains("evil"), "{why}: the value is not repeated: {e}");
        }
        let args = add_args("add /x --upstream http://a:1 --no-auth --upstream-auth api_key --header-env X=UNSET");
        assert!(credential_headers(&args, |_| None).is_err(), "an unset variable");
        let mut keyless = settings.clone();
        keyless.keys.encryption_key = None;
        let args = add_args("add /y --upstream http://a:1 --no-auth --upstream-auth api_key --header X=1");
        let headers = credential_headers(&args, |_| None).expect("headers");
        assert!(add(&mut conn, &keyless, &args, &headers).await.is_err(), "nothing is stored unsealed");

        assert!(remove(&mut conn, &settings, "/mcp").await.is_err(), "configured");
        assert_eq!(remove(&mut conn, &settings, "/linear/").await.expect("remove"), "/linear");
        assert!(remove(&mut conn, &settings, "/linear").await.is_err(), "already gone");
        assert!(show(&mut conn, &settings, "/linear").await.is_err());
        assert_eq!(list(&mut conn, &settings).await.expect("list").len(), 2);
    }
}

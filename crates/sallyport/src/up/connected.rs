//! The `/mcp-connected` demo of `sallyport up` (issue 20): a second, separate Sallyport plays a
//! third-party MCP server that has an authorization server of its own (its own issuer on the next
//! loopback port, its own database beside `up`'s, its own demo user and demo MCP server). The main
//! gateway fronts it with `upstream_auth = "oauth2"`: a newcomer's MCP client pointed at
//! `/mcp-connected` gets the URL elicitation, connects the account once in the browser, and the
//! retried tool call goes through with the upstream's token, which the client never sees.

use std::net::{SocketAddr, TcpListener};

use anyhow::Context as _;
use server::Settings;
use server::config::{ResourceSettings, RouteSettings, UpstreamAuth, UpstreamOAuthSettings};

use super::{REVOCATION_CHECK, database, system};
use crate::up::{Options, System};

pub const PREFIX: &str = "/mcp-connected";

pub struct Connected {
    pub system: System,
}

/// The port after `up`'s when it is free (a stable issuer across runs keeps users' connections
/// valid), else any free one.
fn listener(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    // `--listen 127.0.0.1:0` (tests) asks for any port: so does the second Sallyport
    let next = listen.port().checked_add(1).filter(|_| listen.port() != 0).map(|p| SocketAddr::new(listen.ip(), p));
    if let Some(l) = next.and_then(|addr| TcpListener::bind(addr).ok()) {
        return Ok(l);
    }
    TcpListener::bind(SocketAddr::new(listen.ip(), 0)).context("cannot bind a loopback port")
}

/// Starts the second Sallyport on a database `<up's database>_upstream` of the same server.
pub async fn start(
    base: &Settings,
    database_url: &str,
    listen: SocketAddr,
    workers: usize,
) -> anyhow::Result<Connected> {
    let url = database::sibling(database_url, "_upstream").await?;
    let mut settings = base.clone();
    // nothing of the operator's configuration is about this demo issuer
    settings.gateway.routes.clear();
    settings.resources.clear();
    settings.login.providers.clear();
    settings.login.password = true;
    settings.identity.trusted_issuers.clear();
    // the main issuer's client ID metadata document is on a loopback http URL
    settings.metadata_documents.enabled = true;
    settings.metadata_documents.allow_http = true;
    settings.metadata_documents.allow_private_hosts = true;
    settings.registration.initial_access_token = None;
    // browsers keep cookies per host, not per port: the two issuers on 127.0.0.1 need their own names
    settings.sessions.cookie_name = format!("{}_upstream", base.sessions.cookie_name);
    let system = System::start(Options {
        gateway: listener(listen)?,
        database_url: url,
        base: settings,
        demo_password: None,
        workers,
        revocation_check: REVOCATION_CHECK,
        clock: protocol::Clock::system(),
    })
    .await
    .context("cannot start the second Sallyport")?;
    Ok(Connected { system })
}

/// `base` with the `/mcp-connected` route to the second Sallyport's demo MCP server, and its
/// resource on the main issuer.
pub fn with_route(mut base: Settings, upstream: &System, listen: SocketAddr) -> anyhow::Result<Settings> {
    let resource = format!("http://{listen}{PREFIX}");
    if base.gateway.routes.iter().any(|r| r.prefix == PREFIX) {
        return Ok(base);
    }
    base.resources.push(ResourceSettings {
        resource: resource.clone(),
        name: "Demo MCP server behind an account of its own".into(),
        scopes: vec!["mcp".into()],
        documentation: None,
        accept_machine_tokens: false,
    });
    base.gateway.routes.push(RouteSettings {
        upstream_auth: UpstreamAuth::OAuth2,
        // everything discovered, from the loopback address the second Sallyport listens on
        upstream_oauth: Some(UpstreamOAuthSettings { allow_private_hosts: true, ..Default::default() }),
        ..system::demo_mcp_route(PREFIX, &upstream.mcp_url, &resource)?
    });
    Ok(base)
}

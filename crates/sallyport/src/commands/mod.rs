//! The subcommands, one module each.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use server::Settings;

mod audit;
mod client;
mod connection;
mod demo;
mod grant;
mod keys;
mod migrate;
mod resource;
mod route;
// public for the end-to-end tests, which disable a federated user as the verb does
pub mod user;

#[derive(Debug, Parser)]
#[command(name = "sallyport", version, about = "Sallyport: an OAuth 2.1 authorization server for MCP servers")]
pub struct Cli {
    /// Where `sallyport up` keeps its key-encryption key and, without another database, its own
    /// PostgreSQL cluster; the other commands find both there.
    #[arg(long, global = true, default_value = ".sallyport")]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (under an advisory lock).
    Migrate(migrate::Args),
    /// Manage local users.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage clients made by an operator (resource servers, confidential back ends).
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Manage JWT signing keys (rotation with overlap).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage protected resources (beside those in the configuration).
    #[command(subcommand)]
    Resource(resource::ResourceCommand),
    /// Manage gateway routes (beside those in the configuration) and their upstream credentials.
    #[command(subcommand)]
    Route(route::RouteCommand),
    /// The audit log: client changes and the tool calls the gateway saw.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Users' accounts at the upstreams of oauth2 routes: list, revoke.
    #[command(subcommand)]
    Connection(connection::ConnectionCommand),
    /// List and revoke the consents users remembered.
    #[command(subcommand)]
    Grant(grant::GrantCommand),
    /// Run the demo MCP server alone (Streamable HTTP, one `echo` tool).
    DemoMcp(demo::Args),
    /// Run the whole system on this machine: services, gateway and a demo MCP server.
    Up(crate::up::Args),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.data_dir.as_path();
    match cli.command {
        Command::Migrate(args) => migrate::run(args, dir).await,
        Command::User(cmd) => user::run(cmd, dir).await,
        Command::Client(cmd) => client::run(cmd, dir).await,
        Command::Resource(cmd) => resource::run(cmd, dir).await,
        Command::Route(cmd) => route::run(cmd, dir).await,
        Command::Grant(cmd) => grant::run(cmd, dir).await,
        Command::Connection(cmd) => connection::run(cmd, dir).await,
        Command::Audit(cmd) => audit::run(cmd, dir).await,
        Command::DemoMcp(args) => demo::run(args).await,
        Command::Up(args) => crate::up::run(args, dir).await,
        Command::Keys(cmd) => keys::run(cmd, dir).await,
    }
}

/// Loads and validates the configuration (the message names the key that is wrong), then takes
/// the database and key of a `sallyport up` in `data_dir` unless configured otherwise.
pub fn settings(data_dir: &Path) -> anyhow::Result<Settings> {
    let mut settings = Settings::load().context("invalid configuration")?;
    server::telemetry::init(&settings.log);
    crate::data_dir::apply_to_admin(&mut settings, data_dir)?;
    Ok(settings)
}

/// A pool that is known to answer.
pub async fn pool(settings: &Settings) -> anyhow::Result<store::Pool> {
    let pool = store::db::pool(&settings.database)?;
    store::db::check(&pool, &settings.database.url).await?;
    Ok(pool)
}

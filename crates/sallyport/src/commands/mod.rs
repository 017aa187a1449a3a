//! The subcommands, one module each.

use anyhow::Context;
use clap::{Parser, Subcommand};
use domain::Settings;

mod audit;
mod client;
mod demo;
mod grant;
mod keys;
mod migrate;
mod resource;
mod user;

#[derive(Debug, Parser)]
#[command(name = "sallyport", version, about = "Sallyport: an OAuth 2.1 authorization server for MCP servers")]
pub struct Cli {
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
    /// The audit log: client changes and the tool calls the gateway saw.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// List and revoke the consents users remembered.
    #[command(subcommand)]
    Grant(grant::GrantCommand),
    /// Run the demo MCP server alone (Streamable HTTP, one `echo` tool).
    DemoMcp(demo::Args),
    /// Run the whole system on this machine: services, gateway and a demo MCP server.
    Up(crate::up::Args),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate(args) => migrate::run(args).await,
        Command::User(cmd) => user::run(cmd).await,
        Command::Client(cmd) => client::run(cmd).await,
        Command::Resource(cmd) => resource::run(cmd).await,
        Command::Grant(cmd) => grant::run(cmd).await,
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::DemoMcp(args) => demo::run(args).await,
        Command::Up(args) => crate::up::run(args).await,
        Command::Keys(cmd) => keys::run(cmd).await,
    }
}

/// Loads and validates the configuration; the message names the key that is wrong.
pub fn settings() -> anyhow::Result<Settings> {
    let settings = Settings::load().context("invalid configuration")?;
    domain::telemetry::init(&settings.log);
    Ok(settings)
}

/// A pool that is known to answer.
pub async fn pool(settings: &Settings) -> anyhow::Result<domain::Pool> {
    let pool = domain::db::pool(&settings.database)?;
    domain::db::check(&pool, &settings.database.url).await?;
    Ok(pool)
}

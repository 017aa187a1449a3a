//! `sallyport up`: the whole system on one machine, one command.

mod cluster;
pub mod connected;
mod database;
pub mod system;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use server::Settings;
use server::config::{EncryptionKey, KeySettings, RevocationCheck};

use crate::data_dir;

pub use system::{Options, System};

/// How `up`'s gateway checks revocation: it asks introspection (with a client `up` provisions for
/// itself) and remembers each answer for `gateway.revocation_cache_secs`, so a replayed code, a
/// reused refresh token, a revoked grant or a disabled user stops working within that time.
pub const REVOCATION_CHECK: RevocationCheck = RevocationCheck::Cached;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the gateway listens; the issuer is then `http://<listen>` and the demo MCP server `http://<listen>/mcp`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Run a cluster of its own in the data directory even when a server answers on 127.0.0.1:5432
    /// (`DATABASE_URL` still wins).
    #[arg(long)]
    pub own_cluster: bool,
    /// HTTP workers per service.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

/// The key that seals signing keys: from configuration, else kept in the data directory (0600).
fn encryption_key(settings: &Settings, data_dir: &Path) -> anyhow::Result<EncryptionKey> {
    if let Some(k) = &settings.keys.encryption_key {
        return Ok(k.clone());
    }
    if let Some(k) = data_dir::read_key(data_dir)? {
        return Ok(k);
    }
    let mut key = [0u8; 32];
    protocol::secret::fill_random(&mut key);
    let key = EncryptionKey::from_bytes(key);
    let path = data_dir::key_path(data_dir);
    write_private(&path, &key.encode()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

/// The data directory, created and made absolute once: every path `up` hands to a child process
/// (initdb, postgres) derives from it, and a relative one would be read against their working directory.
fn absolute_data_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// One `up` per data directory: the lock is held while `up` runs and released by the kernel however
/// it ends, so a cluster found running while we hold it was left by a killed `up`.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("up.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another `sallyport up` runs with the data directory {}: stop it first, or give this one another \
             --data-dir",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

/// The token service refused the database's signing keys because they do not open with the
/// configured key-encryption key.
fn sealed_under_another_key(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.downcast_ref::<token::SigningKeysError>().is_some_and(|k| k.0.is_sealed_otherwise()))
}

pub async fn run(args: Args, data_dir: &Path) -> anyhow::Result<()> {
    let loaded = Settings::load().context("invalid configuration")?;
    // one process, one exporter: every span of `up` is service `sallyport` (attribute
    // `sallyport.service` on request spans says which of its servers answered)
    let traces = server::telemetry::init_traced(&loaded.log, &loaded.telemetry, "sallyport")
        .map_err(|e| anyhow::anyhow!("telemetry: {e}"))?;
    // the issuer is http://<listen>: only a loopback address makes that an issuer clients can use
    // and may take over http (RFC 8252 §8.3); other hosts need https and the services deployed
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "--listen {}: `sallyport up` serves on a loopback address only (its issuer is http://<listen>); \
             to serve other hosts, deploy the services behind https (README, Deploy)",
            args.listen
        );
    }
    let gateway = server::http::bind(args.listen)?;
    let data_dir = absolute_data_dir(data_dir)?;
    let _lock = lock_data_dir(&data_dir)?;
    let key_source = match &loaded.keys.encryption_key {
        Some(_) => "keys.encryption_key (configuration)".to_owned(),
        None => data_dir::key_path(&data_dir).display().to_string(),
    };
    let keys = KeySettings { encryption_key: Some(encryption_key(&loaded, &data_dir)?), ..loaded.keys.clone() };
    let base = Settings { keys, ..loaded };
    let (database_url, found) = database::obtain(&base, &data_dir, args.own_cluster).await?;
    // issue 20's demo: a second, separate Sallyport (its own issuer, database, demo user and demo
    // MCP server) plays a third-party MCP server with an authorization server of its own, behind
    // the route /mcp-connected whose users connect their account there once
    let connected = connected::start(&base, &database_url, gateway.local_addr()?, args.workers).await;
    let base = match &connected {
        Ok(upstream) => connected::with_route(base, &upstream.system, gateway.local_addr()?)?,
        Err(_) => base,
    };
    let started = System::start(Options {
        gateway,
        database_url: database_url.clone(),
        base,
        demo_password: std::env::var("SALLYPORT_DEMO_PASSWORD").ok().filter(|p| !p.is_empty()),
        workers: args.workers,
        revocation_check: REVOCATION_CHECK,
        clock: protocol::Clock::system(),
    })
    .await;
    let system = match started {
        Ok(system) => system,
        Err(e) if sealed_under_another_key(&e) => {
            return Err(e.context(format!(
                "this database's signing keys were sealed with another key than {key_source}: run `sallyport up` \
                 from the directory (or with the --data-dir) used when the database was set up, or point \
                 DATABASE_URL at a fresh database"
            )));
        }
        Err(e) => return Err(e),
    };
    println!("Sallyport is up.");
    println!();
    println!("  MCP server (point your MCP client here):  {}", system.mcp_url);
    println!("  issuer:                                   {}", system.issuer);
    println!("  authorization-server metadata:            {}/.well-known/oauth-authorization-server", system.issuer);
    println!("  protected-resource metadata:              {}/.well-known/oauth-protected-resource/mcp", system.issuer);
    println!("  demo login:                               {} / {}", system.demo_user, system.demo_password);
    println!("  database:                                 {} ({found})", store::db::redact_url(&database_url));
    println!();
    match &connected {
        Ok(upstream) => {
            println!("  MCP server behind an account of its own:  {}/mcp-connected", system.issuer);
            println!("    its authorization server:               {}", upstream.system.issuer);
            println!(
                "    login there (Connect):                  {} / {}",
                upstream.system.demo_user, upstream.system.demo_password
            );
            println!("    your connections:                       {}/oauth2/connections", system.issuer);
        }
        Err(e) => println!("  (no /mcp-connected demo: {e:#})"),
    }
    println!();
    println!("Ctrl-C stops everything.");
    crate::signal::shutdown_signal().await;
    println!("stopping…");
    system.stop().await;
    if let Ok(upstream) = connected {
        upstream.system.stop().await;
    }
    // the spans of the last requests are still queued
    let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    Ok(())
}

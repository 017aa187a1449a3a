//! Where `sallyport up` gets its Postgres: `DATABASE_URL` (or `database.url`), else a server on
//! 127.0.0.1:5432 (database `sallyport`, created when missing), else a cluster of its own in the data
//! directory, kept between runs.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use server::Settings;
use store::local_pg;

use super::cluster;
use crate::data_dir;

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Creates database `name` on the server at `base` unless it exists.
async fn ensure_database(base: &str, name: &str) -> anyhow::Result<String> {
    let admin = format!("{base}/postgres");
    let mut conn = AsyncPgConnection::establish(&admin)
        .await
        .with_context(|| format!("cannot connect to {}", store::db::redact_url(&admin)))?;
    let found: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(name)
        .get_result(&mut conn)
        .await?;
    if !found.exists {
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    }
    Ok(format!("{base}/{name}"))
}

/// A database beside `url`'s on the same server, named after it with `suffix`, created when
/// missing; its URL (credentials and parameters kept).
pub async fn sibling(url: &str, suffix: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("the database URL")?;
    let name = format!("{}{suffix}", parsed.path().trim_start_matches('/'));
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        anyhow::bail!("database name {name:?}: only letters, digits and _ can name a sibling database");
    }
    let mut admin = parsed.clone();
    admin.set_path("/postgres");
    let mut conn = AsyncPgConnection::establish(admin.as_str())
        .await
        .with_context(|| format!("cannot connect to {}", store::db::redact_url(admin.as_str())))?;
    let found: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(&name)
        .get_result(&mut conn)
        .await?;
    if !found.exists {
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    }
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

fn no_binaries(data_dir: &Path, probed: bool) -> anyhow::Error {
    let local = if probed { ", nothing answers on 127.0.0.1:5432" } else { "" };
    anyhow::anyhow!(
        "no database: DATABASE_URL is not set{local}, and PostgreSQL's server programs (initdb, postgres) are not \
         installed. Either set DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/DATABASE (an existing database), \
         or install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; \
         macOS: brew install postgresql; elsewhere name their directory in {}) and `sallyport up` runs a cluster \
         of its own in {}",
        local_pg::BINDIR_VAR,
        data_dir::cluster_dir(data_dir).display()
    )
}

/// Makes (once), cleans up after a killed `up`, and starts the cluster of `data_dir`; returns its
/// URL without a database and the banner's words for it.
fn run_own_cluster(data_dir: &Path) -> Result<(String, String), String> {
    let place = cluster::place(data_dir)?;
    let dir = &place.dir;
    local_pg::init_cluster(dir)?;
    // `up` holds the data directory's lock, so a postmaster still running there was left by an `up`
    // that was killed with its watchdog: stop it (its data stays) rather than fail on its lock file
    if let Some(stale) = local_pg::running(dir) {
        eprintln!(
            "stopping the cluster (pid {}) a previous `sallyport up` left running in {}",
            stale.pid,
            dir.display()
        );
        if !local_pg::stop(dir, stale) {
            return Err(format!("the cluster left running in {} (pid {}) does not stop", dir.display(), stale.pid));
        }
    }
    let port = local_pg::free_port().map_err(|e| e.to_string())?;
    let base = local_pg::start_cluster(dir, port, true, std::process::id(), local_pg::OnExit::Keep)?;
    let found = match place.moved_because {
        Some(why) => format!("its own cluster in {}, {why}", dir.display()),
        None => format!("its own cluster in {}", dir.display()),
    };
    Ok((base, found))
}

/// The database URL to use, and how it was found (for the start-up banner). `data_dir` is absolute.
pub async fn obtain(settings: &Settings, data_dir: &Path, own_cluster: bool) -> anyhow::Result<(String, String)> {
    if let Some((url, source)) = data_dir::configured_database(settings) {
        return Ok((url, source.into()));
    }
    if !own_cluster && data_dir::local_server_answers() {
        let url = ensure_database("postgres://postgres@127.0.0.1:5432", "sallyport").await?;
        return Ok((url, "the server on 127.0.0.1:5432".into()));
    }
    if local_pg::find_bin("initdb").is_none() || local_pg::find_bin("postgres").is_none() {
        return Err(no_binaries(data_dir, !own_cluster));
    }
    let blocking_dir = data_dir.to_owned();
    let (base, found) = tokio::task::spawn_blocking(move || run_own_cluster(&blocking_dir))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot run a cluster of its own for `sallyport up`: {e}"))?;
    // the first sessions may be refused while the cluster finishes recovery
    let mut last = None;
    for _ in 0..50 {
        match ensure_database(&base, "sallyport").await {
            Ok(url) => return Ok((url, found)),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("the local cluster does not answer")))
}

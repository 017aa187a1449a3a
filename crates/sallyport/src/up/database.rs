//! Where `sallyport up` gets its Postgres: `DATABASE_URL`, else a server on 127.0.0.1:5432 (database
//! `sallyport`, created when missing), else a cluster of its own in the data directory, kept between runs.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::local_pg;

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
        .with_context(|| format!("cannot connect to {}", domain::db::redact_url(&admin)))?;
    let found: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(name)
        .get_result(&mut conn)
        .await?;
    if !found.exists {
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    }
    Ok(format!("{base}/{name}"))
}

/// The database URL to use, and how it was found (for the start-up banner).
pub async fn obtain(data_dir: &Path) -> anyhow::Result<(String, String)> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok((url, "DATABASE_URL".into()));
    }
    let local: SocketAddr = ([127, 0, 0, 1], 5432).into();
    if TcpStream::connect_timeout(&local, Duration::from_millis(300)).is_ok() {
        let url = ensure_database("postgres://postgres@127.0.0.1:5432", "sallyport").await?;
        return Ok((url, "the server on 127.0.0.1:5432".into()));
    }
    let dir = data_dir.join("postgres");
    if local_pg::find_bin("initdb").is_none() {
        bail!(
            "no database: set DATABASE_URL, run PostgreSQL on 127.0.0.1:5432, or install PostgreSQL's initdb \
             (Debian: apt-get install postgresql) so that sallyport can run its own cluster"
        );
    }
    let blocking_dir = dir.clone();
    let base = tokio::task::spawn_blocking(move || -> Result<String, String> {
        local_pg::init_cluster(&blocking_dir)?;
        let port = local_pg::free_port().map_err(|e| e.to_string())?;
        local_pg::start_cluster(&blocking_dir, port, true, std::process::id(), local_pg::OnExit::Keep)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("cannot run a local cluster in {}: {e}", dir.display()))?;
    // the first sessions may be refused while the cluster finishes recovery
    let mut last = None;
    for _ in 0..50 {
        match ensure_database(&base, "sallyport").await {
            Ok(url) => return Ok((url, format!("its own cluster in {}", dir.display()))),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("the local cluster does not answer")))
}

//! A Postgres for tests: `DATABASE_URL` if set; else 127.0.0.1:5432 as `postgres` if it answers;
//! else an ephemeral cluster from `initdb` on a free port, stopped when the test process exits
//! (`SALLYPORT_TEST_PG=ephemeral` forces that last one).
//! Each test gets its own database, cloned from a template migrated once per migration set.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};

/// The server every test database lives on: an admin URL whose database may be swapped.
struct PgServer {
    /// e.g. `postgres://postgres@127.0.0.1:5432`, without a database.
    base: String,
    /// The ephemeral cluster's directory (its watchdog removes it).
    _dir: Option<PathBuf>,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();

fn server() -> &'static PgServer {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return PgServer { base: url, _dir: None };
        }
        let local: SocketAddr = ([127, 0, 0, 1], 5432).into();
        // SALLYPORT_TEST_PG=ephemeral forces the initdb path (to test it on a machine with a server)
        let forced = std::env::var("SALLYPORT_TEST_PG").is_ok_and(|v| v == "ephemeral");
        if !forced && TcpStream::connect_timeout(&local, Duration::from_millis(300)).is_ok() {
            return PgServer { base: "postgres://postgres@127.0.0.1:5432".into(), _dir: None };
        }
        ephemeral().unwrap_or_else(|e| {
            panic!("no Postgres for tests: set DATABASE_URL, run one on 127.0.0.1:5432, or install initdb ({e})")
        })
    })
}

/// The URL of database `name` on the test server (keeping any query parameters of `DATABASE_URL`).
pub fn db_url(name: &str) -> String {
    match url::Url::parse(&server().base) {
        Ok(mut u) => {
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
        Err(_) => format!("{}/{name}", server().base),
    }
}

/// The admin URL (database `postgres`) of the test server.
pub fn admin_url() -> String {
    db_url("postgres")
}

fn ephemeral() -> Result<PgServer, String> {
    use store::local_pg;
    let dir = tempfile::Builder::new().prefix("sallyport-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    local_pg::init_cluster(&dir)?;
    let port = local_pg::free_port().map_err(|e| e.to_string())?;
    let base = local_pg::start_cluster(&dir, port, false, std::process::id(), local_pg::OnExit::Remove)?;
    // accepting TCP is not yet accepting sessions: give recovery a moment
    std::thread::sleep(Duration::from_millis(300));
    Ok(PgServer { base, _dir: Some(dir) })
}

/// Name of the template for the current migrations: changing a migration makes a new template.
fn template_name() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files: Vec<PathBuf> = walk(&root);
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.strip_prefix(&root).unwrap_or(&f).to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap_or_default());
    }
    let digest = h.finalize();
    format!("sallyport_tpl_{}", digest.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

async fn admin() -> AsyncPgConnection {
    let url = admin_url();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match AsyncPgConnection::establish(&url).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to the test Postgres at {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Creates the migrated template once, under an advisory lock shared by every test process.
async fn ensure_template(conn: &mut AsyncPgConnection) -> String {
    static DONE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let name = template_name();
        diesel::sql_query("SELECT pg_advisory_lock($1)")
            .bind::<BigInt, _>(0x5a11_7e57_i64)
            .execute(conn)
            .await
            .expect("lock");
        let found: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(&name)
            .get_result(conn)
            .await
            .expect("query pg_database");
        if !found.exists {
            let building = format!("{name}_build");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(conn)
                .await
                .expect("drop");
            diesel::sql_query(format!("CREATE DATABASE {building}")).execute(conn).await.expect("create template");
            let url = db_url(&building);
            store::db::migrate(&url).await.expect("migrate the template");
            // rename last, so a template that exists is always complete
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                .execute(conn)
                .await
                .expect("rename");
        }
        diesel::sql_query("SELECT pg_advisory_unlock($1)")
            .bind::<BigInt, _>(0x5a11_7e57_i64)
            .execute(conn)
            .await
            .expect("unlock");
        name
    })
    .await
    .clone()
}

/// A database of one's own, migrated, dropped when this value is dropped.
pub struct TestDb {
    pub url: String,
    pub name: String,
    pool: store::Pool,
}

impl TestDb {
    /// # Panics
    /// When no Postgres can be had: the test cannot run.
    pub async fn new() -> Self {
        let mut conn = admin().await;
        let template = ensure_template(&mut conn).await;
        let name = format!("sallyport_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = db_url(&name);
        let settings = server::config::DatabaseSettings { url: url.clone(), pool_size: 8, ..Default::default() };
        let pool = store::db::pool(&settings).expect("pool");
        Self { url, name, pool }
    }

    /// A pool on this database.
    pub fn pool(&self) -> store::Pool {
        self.pool.clone()
    }

    /// One connection, for arranging and inspecting rows.
    pub async fn conn(&self) -> store::db::PooledConn {
        self.pool.get().await.expect("connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        self.pool.close();
        // Drop cannot await; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url()).await {
                    // and the sibling `sallyport up` makes beside its database for `/mcp-connected`
                    for db in [name.clone(), format!("{name}_upstream")] {
                        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

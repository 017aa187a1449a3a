//! The async connection pool and the embedded migrations.

use std::ops::Deref;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use diesel_async::AsyncPgConnection as Conn;
// the redaction rule is protocol's (settings print through it too); messages about a database use it here
pub use protocol::redact::redact_url;

type Deadpool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;
pub type PooledConn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

/// Told how long each checkout waited for a connection, and of each that waited in vain
/// (`database.acquire_timeout_ms`): the server's metrics implement it, the store knows no metrics.
pub trait AcquireObserver: Send + Sync {
    fn acquired(&self, waited: Duration);
    fn timed_out(&self);
}

/// The connection pool: deadpool's (everything of it through `Deref`), with [`Pool::get`] timed
/// for an observer when one is set. Cheap to clone; clones share connections and observer.
#[derive(Clone)]
pub struct Pool {
    inner: Deadpool,
    observer: Arc<OnceLock<Box<dyn AcquireObserver>>>,
}

impl Pool {
    /// A connection, waiting at most `database.acquire_timeout_ms` for one. Without an observer
    /// this is deadpool's `get` and nothing more.
    pub async fn get(&self) -> Result<PooledConn, PoolError> {
        let Some(observer) = self.observer.get() else { return self.inner.get().await };
        let start = Instant::now();
        let conn = self.inner.get().await;
        match &conn {
            Ok(_) => observer.acquired(start.elapsed()),
            Err(PoolError::Timeout(_)) => observer.timed_out(),
            // a failed connect is the database's trouble, counted where it is reported
            Err(_) => {}
        }
        conn
    }

    /// Sets the observer of every checkout, for this pool and its clones; `false` when one was
    /// already set (the first stays).
    pub fn observe(&self, observer: impl AcquireObserver + 'static) -> bool {
        self.observer.set(Box::new(observer)).is_ok()
    }
}

impl Deref for Pool {
    type Target = Deadpool;
    fn deref(&self) -> &Deadpool {
        &self.inner
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.inner.status())
            .field("observed", &self.observer.get().is_some())
            .finish()
    }
}

/// Every migration in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// How many migrations the binary carries.
pub const MIGRATIONS_COUNT: usize = 13;

/// Arbitrary but fixed: the advisory-lock key under which replicas take turns migrating.
const MIGRATION_LOCK_KEY: i64 = 0x5a11_9027_0001;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot build the database pool: {0}")]
    Build(String),
    #[error("cannot connect to the database at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Where every pooled connection's I/O task runs. tokio-postgres drives a connection from a task
/// spawned on the runtime that opened it; opened by an actix worker, that task dies with the
/// worker. At SIGTERM an idle worker stops first, and a request still running on another worker
/// on a connection it had opened would fail. A runtime of their own, alive as long as the
/// process, makes a pooled connection as long-lived as the pool.
static CONNECTIONS: LazyLock<Option<tokio::runtime::Runtime>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sallyport-db")
        .enable_all()
        .build()
        .inspect_err(|e| tracing::warn!(error = %e, "no runtime for database connections: they live on the workers"))
        .ok()
});

type Establishing = std::pin::Pin<Box<dyn Future<Output = diesel::ConnectionResult<AsyncPgConnection>> + Send>>;

/// Opens a connection with its I/O task on [`CONNECTIONS`].
fn establish(url: &str) -> Establishing {
    let url = url.to_owned();
    Box::pin(async move {
        let Some(runtime) = CONNECTIONS.as_ref() else {
            return AsyncPgConnection::establish(&url).await;
        };
        runtime
            .spawn(async move { AsyncPgConnection::establish(&url).await })
            .await
            .unwrap_or_else(|e| Err(diesel::ConnectionError::BadConnection(format!("connection task: {e}"))))
    })
}

/// One connection outside the pool, as tokio-postgres gives it, for what diesel cannot say: the
/// binary `COPY` of the tool-call audit ([`crate::tool_calls::Copier`]). Like a pooled
/// connection, its I/O task runs on [`CONNECTIONS`], so it outlives any worker.
pub async fn connect_raw(url: &str, connect_timeout: Duration) -> Result<tokio_postgres::Client, DbError> {
    let connect_err = |message: String| DbError::Connect { url: redact_url(url), message };
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| connect_err(e.to_string()))?;
    config.connect_timeout(connect_timeout);
    let connect = async move {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a raw database connection ended");
            }
        });
        Ok::<_, tokio_postgres::Error>(client)
    };
    let connected = match CONNECTIONS.as_ref() {
        Some(runtime) => runtime.spawn(connect).await.map_err(|e| connect_err(format!("connection task: {e}")))?,
        None => connect.await,
    };
    connected.map_err(|e| connect_err(e.to_string()))
}

/// A connection of its own (not the pool's: it is held for as long as the process follows the
/// channel) that has run `LISTEN channel`; read what arrives with
/// [`AsyncPgConnection::notifications_stream`]. Its I/O task runs on [`CONNECTIONS`]. `channel` is
/// one of the store's constants, quoted as an identifier.
pub async fn listen(url: &str, connect_timeout: Duration, channel: &str) -> Result<AsyncPgConnection, DbError> {
    let connect_err = |message: String| DbError::Connect { url: redact_url(url), message };
    let mut conn = tokio::time::timeout(connect_timeout, establish(url))
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    diesel::sql_query(format!("LISTEN \"{}\"", channel.replace('"', "\"\""))).execute(&mut conn).await?;
    Ok(conn)
}

/// How to build the pool; the server's `[database]` settings convert into it.
#[derive(Clone)]
pub struct PoolOptions {
    pub url: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
    pub acquire_timeout_ms: u64,
}

/// Builds the pool. Connections are made lazily; [`check`] proves the database answers.
pub fn pool(options: impl Into<PoolOptions>) -> Result<Pool, DbError> {
    let settings = options.into();
    let mut manager_config = ManagerConfig::default();
    // The pool hands out connections thousands of times per second; a ping on every checkout
    // would double the round trips. A dead connection fails its first query and is dropped.
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(|url| establish(url));
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(&settings.url, manager_config);
    let acquire = Duration::from_millis(settings.acquire_timeout_ms);
    let connect = Duration::from_millis(settings.connect_timeout_ms);
    let inner = Deadpool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(acquire))
        .create_timeout(Some(connect))
        .recycle_timeout(Some(connect))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Build(e.to_string()))?;
    Ok(Pool { inner, observer: Arc::default() })
}

/// Gets one connection and runs `SELECT 1`: readiness, and a clear start-up error.
pub async fn check(pool: &Pool, url: &str) -> Result<(), DbError> {
    let connect_err = |message: String| DbError::Connect { url: redact_url(url), message };
    let mut conn = pool.get().await.map_err(|e| connect_err(e.to_string()))?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await.map_err(|e| connect_err(e.to_string()))?;
    Ok(())
}

/// Applies pending migrations under a session advisory lock, so replicas that start together
/// migrate one at a time (the others wait, then find nothing to do). Returns the versions applied.
pub async fn migrate(url: &str) -> Result<Vec<String>, DbError> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| DbError::Connect { url: redact_url(url), message: e.to_string() })?;
    diesel::sql_query("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(MIGRATION_LOCK_KEY).execute(&mut conn).await?;
    let (conn, result) = tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        let applied = harness
            .run_pending_migrations(MIGRATIONS)
            .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| DbError::Migration(e.to_string()));
        (harness.into_inner(), applied)
    })
    .await
    .map_err(|e| DbError::Migration(format!("migration task failed: {e}")))?;
    let mut conn = conn;
    diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(MIGRATION_LOCK_KEY).execute(&mut conn).await?;
    result
}

/// Reverts every applied migration (the test of `down.sql`, and `sallyport migrate --revert-all`).
pub async fn revert_all(url: &str) -> Result<usize, DbError> {
    let conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| DbError::Connect { url: redact_url(url), message: e.to_string() })?;
    tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        harness.revert_all_migrations(MIGRATIONS).map(|v| v.len()).map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Migration(format!("migration task failed: {e}")))?
}

/// Versions of migrations not yet applied.
pub async fn pending(url: &str) -> Result<Vec<String>, DbError> {
    let conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| DbError::Connect { url: redact_url(url), message: e.to_string() })?;
    tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        harness
            .pending_migrations(MIGRATIONS)
            .map(|v| v.iter().map(|m| m.name().version().to_string()).collect())
            .map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Migration(format!("migration task failed: {e}")))?
}

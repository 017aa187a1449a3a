//! What every Sallyport test shares: a real Postgres (from `DATABASE_URL`, a local server, or an
//! ephemeral cluster), a database per test cloned from a migrated template, and services started
//! on free 127.0.0.1 ports so tests speak HTTP as clients do; the reader of the HTML forms a
//! browser test fills in (the bench's browser scenario uses it too); and an enterprise identity
//! provider that signs ID-JAGs (the token tests, the end-to-end tests and the bench use it).
//!
//! Dependency rule (`.ci/check-deps`): test helpers never ship in a service, the gateway or the
//! `sallyport` command.
//! - Sallyport crates: `protocol`, `store`, `server`.
//! - a normal dependency only of `bench` (every other crate: tests and benchmarks only).

pub mod forms;
pub mod idp;
pub mod oidc;
mod postgres;
mod server;

pub use self::server::{TestServer, spawn, spawn_app, spawn_app_on, spawn_on};
pub use postgres::{TestDb, admin_url, db_url};

use ::server::Settings;
use ::server::config::{EncryptionKey, Issuer, LogFormat};

/// Settings for a test: this database, a fixed key-encryption key, a loopback issuer, and metadata
/// documents allowed from the local test servers.
pub fn settings(db: &TestDb) -> Settings {
    let mut s = Settings { issuer: Issuer::parse("http://127.0.0.1:9").expect("issuer"), ..Settings::default() };
    s.database.url = db.url.clone();
    s.database.pool_size = 8;
    s.keys.encryption_key = Some(EncryptionKey::from_bytes([42u8; 32]));
    s.metadata_documents.allow_private_hosts = true;
    s.metadata_documents.allow_http = true;
    s.metadata_documents.timeout_ms = std::time::Duration::from_secs(1);
    s.listen.workers = 2;
    s
}

/// Installs a test log subscriber once (`RUST_LOG` decides what shows).
pub fn init_logging() {
    ::server::telemetry::init(&::server::config::LogSettings { format: LogFormat::Text, filter: "warn".into() });
}

/// A service context on this database; each service takes its part of the settings beside it.
/// Its metrics are on, served on the service's own port (the test settings' defaults).
pub fn context(db: &TestDb) -> ::server::service::Context {
    context_with(db, &settings(db))
}

/// A service context whose metrics follow these settings (`metrics.enabled`, `listen.admin`).
pub fn context_with(db: &TestDb, settings: &Settings) -> ::server::service::Context {
    let pool = db.pool();
    let metrics = ::server::metrics::Metrics::new(settings, Some(&pool));
    ::server::service::Context { pool, clock: protocol::Clock::system(), metrics }
}

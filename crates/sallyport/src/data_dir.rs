//! What `sallyport up` keeps in its data directory (`--data-dir`, default `.sallyport`), and how the
//! admin verbs run beside it find the same database and key-encryption key without being told.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use server::Settings;
use server::config::{DEFAULT_DATABASE_URL, EncryptionKey};
use store::local_pg;

/// The key-encryption key `up` generates when none is configured (mode 0600).
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("encryption-key")
}

/// `up`'s own cluster (a directory, or as root possibly a link to where the `postgres` user keeps it).
pub fn cluster_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("postgres")
}

/// The key in `<data-dir>/encryption-key`, if that file exists.
pub fn read_key(data_dir: &Path) -> anyhow::Result<Option<EncryptionKey>> {
    let path = key_path(data_dir);
    let key = match std::fs::read_to_string(&path) {
        Ok(k) => k.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match EncryptionKey::parse(&key) {
        Ok(key) => Ok(Some(key)),
        Err(_) => anyhow::bail!(
            "{} is not a key-encryption key (base64 of 32 bytes); restore it, or delete it to start afresh with \
             a new database (signing keys sealed with the old key cannot be read)",
            path.display()
        ),
    }
}

/// A database named by the operator: `DATABASE_URL`, or `database.url` from the file or environment.
/// Without one, `up` and the admin verbs look for a database themselves.
pub fn configured_database(settings: &Settings) -> Option<(String, &'static str)> {
    if std::env::var_os("DATABASE_URL").is_some() {
        return Some((settings.database.url.clone(), "DATABASE_URL"));
    }
    (settings.database.url != DEFAULT_DATABASE_URL).then(|| (settings.database.url.clone(), "database.url"))
}

/// Whether a server answers on 127.0.0.1:5432.
pub fn local_server_answers() -> bool {
    let local: SocketAddr = ([127, 0, 0, 1], 5432).into();
    TcpStream::connect_timeout(&local, Duration::from_millis(300)).is_ok()
}

/// For the admin verbs: the database and key of the `up` beside them, unless configured.
///
/// The database: the configured one; else the cluster `up` runs in the data directory (it runs only
/// when `up` chose it); else the server on 127.0.0.1:5432 — the places `up` looks, in an order that
/// finds the one it took.
pub fn apply_to_admin(settings: &mut Settings, data_dir: &Path) -> anyhow::Result<()> {
    if settings.keys.encryption_key.is_none() {
        // only `keys rotate` needs it (and says where it looked): a damaged file stops no other verb
        settings.keys.encryption_key = read_key(data_dir).ok().flatten();
    }
    if configured_database(settings).is_some() {
        return Ok(());
    }
    let cluster = cluster_dir(data_dir);
    if let Some(pg) = local_pg::running(&cluster) {
        settings.database.url = format!("postgres://postgres@127.0.0.1:{}/sallyport", pg.port);
        return Ok(());
    }
    if !local_server_answers() {
        let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        anyhow::bail!(
            "no database: DATABASE_URL is not set, nothing answers on 127.0.0.1:5432, and no cluster of \
             `sallyport up` runs in {}: start `sallyport up` (in the same directory, or with the same --data-dir), \
             or set DATABASE_URL",
            cluster_dir(&dir).display()
        );
    }
    Ok(())
}

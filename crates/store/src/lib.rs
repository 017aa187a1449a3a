//! The database: the one Postgres schema, one module per table with its row types (never sent over
//! the wire) and queries, the pool, the embedded migrations, password hashing, and the local
//! Postgres cluster `sallyport up` and the tests start. Query functions take
//! `&mut AsyncPgConnection` so they compose inside a transaction; rows become protocol types at
//! this crate's edge. Each query function is a span for traces, named `<module>.<function>` with
//! `db.system = "postgresql"` and none of its arguments (`skip_all`: a parameter may be a token's
//! hash or a user's name); at level TRACE under target `sallyport::trace`, it costs a level compare
//! while traces are off (`server::telemetry`).
//!
//! Dependency rule (`.ci/check-deps`): the database knows the protocol's types, not the web.
//! - Sallyport crates: `protocol`.
//! - never, even indirectly: `actix-web`.

pub mod audit;
pub mod clients;
pub mod codes;
mod column;
pub mod consents;
pub mod db;
pub mod federated_logins;
pub mod federation;
pub mod gateway_routes;
pub mod local_pg;
pub mod password;
pub mod refresh_tokens;
pub mod resources;
pub mod revocations;
pub mod schema;
pub mod sessions;
pub mod signing_keys;
pub mod tool_calls;
pub mod upstream_clients;
pub mod upstream_connections;
pub mod upstream_connects;
pub mod used_assertions;
pub mod users;

pub use column::InvalidColumn;
pub use db::Pool;

/// A query failed, or a stored row holds what its protocol type cannot (a bug or a hand-edited row:
/// never the client's fault, so the server answers it as an internal error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("{0}")]
    InvalidRow(String),
}

//! Sallyport's shared language: protocol rules as plain functions, the one Postgres schema and its
//! queries, configuration, and what every service's HTTP server has in common.

pub mod cimd;
pub mod client;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod db;
pub mod error;
pub mod http;
pub mod ident;
pub mod jwt;
pub mod keys;
pub mod local_pg;
pub mod password;
pub mod pkce;
pub mod ratelimit;
pub mod redact;
pub mod registry;
pub mod schema;
pub mod scope;
pub mod secret;
pub mod service;
pub mod ssrf;
pub mod store;
pub mod telemetry;
pub mod uri;

pub use clock::Clock;
pub use config::Settings;
pub use db::Pool;
pub use error::{ErrorCode, OAuthError};

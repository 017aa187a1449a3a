//! What every Sallyport service process shares: configuration, the actix server (`serve`, health
//! endpoints, access log, extractor errors, the client IP), the renderable OAuth error, how a
//! service is assembled and run, logging, rate limits, Sallyport's own cookies, the resource
//! registry, the fetcher and cache of client ID metadata documents, the SSRF-guarded HTTP client of
//! every outbound fetch, the signing keys of trusted identity providers, the Prometheus metrics, and
//! OpenTelemetry traces (`telemetry`).
//!
//! Dependency rule (`.ci/check-deps`): it builds on the two floors below it, and neither of them
//! on it (their own rules say so).
//! - Sallyport crates: `protocol`, `store`.

pub mod cimd;
pub mod config;
pub mod cookies;
pub mod error;
pub mod http;
pub mod issuer_keys;
pub mod metrics;
pub mod outbound;
pub mod ratelimit;
pub mod registry;
pub mod service;
pub mod telemetry;
pub mod token_client;
pub mod upstream_oauth;

pub use config::Settings;
pub use error::OAuthError;

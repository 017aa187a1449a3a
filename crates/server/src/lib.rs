//! What every Sallyport service process shares: configuration, the actix server (`serve`, health
//! endpoints, access log, extractor errors, the client IP), the renderable OAuth error, how a
//! service is assembled and run, logging, rate limits, Sallyport's own cookies, the resource
//! registry, the fetcher and cache of client ID metadata documents, and the Prometheus metrics.
//!
//! It builds on `protocol` and `store`; neither may depend on it (`.ci/check-deps` enforces it).

pub mod cimd;
pub mod config;
pub mod cookies;
pub mod error;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod registry;
pub mod service;
pub mod telemetry;

pub use config::Settings;
pub use error::OAuthError;

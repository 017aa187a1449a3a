//! The token service over HTTP against a real Postgres: every grant driven by the `oauth2` crate,
//! every failure the issue names, concurrency, revocation, introspection and key rotation.

#[path = "api/client_auth.rs"]
mod client_auth;
#[path = "api/client_credentials.rs"]
mod client_credentials;
#[path = "api/code.rs"]
mod code;
#[path = "api/idjag.rs"]
mod idjag;
#[path = "api/introspect.rs"]
mod introspect;
#[path = "api/keys.rs"]
mod keys;
#[path = "api/malformed.rs"]
mod malformed;
#[path = "api/metrics.rs"]
mod metrics;
#[path = "api/refresh.rs"]
mod refresh;
#[path = "api/revoke.rs"]
mod revoke;
#[path = "api/support.rs"]
mod support;

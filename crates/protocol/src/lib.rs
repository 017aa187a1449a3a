//! The OAuth vocabulary as plain types and pure functions: the parsers of every identifier and
//! string a request carries, URIs and resource identifiers, scopes, PKCE, client metadata and its
//! validation, JWT claims and keys, secrets, their hashing and their redaction from `Debug`, the
//! RFC 6749 §5.2 error codes and shape, and the checks on client ID metadata documents with the
//! address policy of outbound fetches.
//!
//! Dependency rule (`.ci/check-deps`): no web framework, database, async runtime or HTTP client,
//! so every rule here is testable without a server or a database and an OAuth client can reuse it.
//! (`utoipa` is allowed: schema types and derive macros only, so the OpenAPI document describes
//! these very request and response types.)
//! - Sallyport crates: none.
//! - never, even indirectly: `actix-web`, `diesel`, `diesel-async`, `tokio`, `reqwest`.

pub mod cimd;
pub mod client;
pub mod clock;
pub mod error;
pub mod ident;
pub mod idjag;
pub mod issuer;
pub mod jwt;
pub mod keys;
pub mod oidc;
pub mod pkce;
pub mod redact;
pub mod scope;
pub mod secret;
pub mod ssrf;
pub mod upstream_auth;
pub mod upstream_discovery;
pub mod uri;

pub use clock::Clock;
pub use error::{ErrorBody, ErrorCode, ErrorResponse};

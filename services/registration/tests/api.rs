//! The registration service over real HTTP against a real Postgres: RFC 7591 registration with the
//! client shapes seen in the field, every refusal, RFC 7592 management, policy (rate limit,
//! initial access token, scopes, CORS), audit events, and client ID metadata documents served by
//! a local test server.

#[path = "api/common.rs"]
mod common;
#[path = "api/malformed.rs"]
mod malformed;
#[path = "api/management.rs"]
mod management;
#[path = "api/metadata_documents.rs"]
mod metadata_documents;
#[path = "api/policy.rs"]
mod policy;
#[path = "api/refusals.rs"]
mod refusals;
#[path = "api/register.rs"]
mod register;

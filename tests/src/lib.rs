//! End-to-end tests live in `tests/`: the whole system started as `sallyport up` starts it, and the
//! MCP flow through the gateway driven by the official Rust MCP SDK's OAuth client.
//!
//! Dependency rule (`.ci/check-deps`): everything it drives is a dev-dependency.
//! - Sallyport crates: none.
//! - a normal dependency of no other crate (tests and benchmarks only).

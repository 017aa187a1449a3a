//! The `sallyport` command's library: its subcommands, the demo MCP server and `sallyport up`,
//! so that tests and benchmarks start the whole system exactly as the command does.
//!
//! Dependency rule (`.ci/check-deps`): the one crate that assembles the others; test helpers and
//! the bench are not part of the command.
//! - Sallyport crates: `protocol`, `store`, `server`, `gateway`, `registration`, `authorize`,
//!   `token`, `resource-metadata`.
//! - a normal dependency of no other crate (tests and benchmarks only).

pub mod commands;
pub mod data_dir;
pub mod demo_mcp;
pub mod openapi;
pub mod provision;
pub mod signal;
pub mod up;

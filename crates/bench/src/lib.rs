//! `sallyport-bench`: one honest way to measure Sallyport's hot paths. A load generator (fixed
//! workers, fixed duration after a warm-up, HDR latency histograms) runs named scenarios against a
//! running stack or one it starts itself, and reports requests/s, p50/p90/p99/max, errors and the
//! services' resident memory as Markdown and JSON. See BENCHMARKS.md.
//!
//! Dependency rule (`.ci/check-deps`): it runs each service binary as a process of its own, so it
//! needs only the floors (to seed the database and write the config); it ships in no other crate.
//! - Sallyport crates: `protocol`, `store`, `server`, `testkit`.
//! - a normal dependency of no other crate (tests and benchmarks only).

pub mod app;
pub mod audit_write;
pub mod cli;
pub mod client;
pub mod conn;
pub mod cpu;
pub mod endpoints;
pub mod memory;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod stack;
pub mod upstream;

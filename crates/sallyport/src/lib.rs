//! The `sallyport` command's library: its subcommands, the demo MCP server and `sallyport up`,
//! so that tests and benchmarks start the whole system exactly as the command does.

pub mod commands;
pub mod data_dir;
pub mod demo_mcp;
pub mod provision;
pub mod signal;
pub mod up;

//! End-to-end tests live in `tests/`: the whole system started as `sallyport up` starts it, and the
//! MCP flow through the gateway driven by the official Rust MCP SDK's OAuth client.

//! `sallyport demo-mcp`: the demo MCP server on its own, for docker-compose and Kubernetes.

use std::net::SocketAddr;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// `Host` values to accept (DNS-rebinding protection of the MCP transport); repeatable.
    #[arg(long = "allowed-host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
    pub allowed_hosts: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::demo_mcp::run_standalone(args.listen, args.allowed_hosts).await
}

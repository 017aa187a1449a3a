//! The demo MCP server that `sallyport up` puts behind the gateway: Streamable HTTP with one `echo`
//! tool, built with the official Rust MCP SDK. It knows nothing of OAuth; it only reads the identity
//! headers the gateway adds.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to send back.
    pub message: String,
}

/// A server with one tool.
#[derive(Debug, Clone)]
pub struct Demo {
    tool_router: ToolRouter<Self>,
}

impl Default for Demo {
    fn default() -> Self {
        Self { tool_router: Self::tool_router() }
    }
}

#[tool_router]
impl Demo {
    /// Returns the message, and who the gateway says is calling.
    #[tool(description = "Echo a message back, with the caller's identity as the gateway reports it")]
    fn echo(
        &self,
        Parameters(EchoArgs { message }): Parameters<EchoArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> String {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        format!(
            "{message}\n(subject {}, client {}, scope {})",
            header("x-sallyport-subject"),
            header("x-sallyport-client-id"),
            header("x-sallyport-scope")
        )
    }
}

#[tool_handler(router = self.tool_router, name = "sallyport-demo", version = "0.1.0", instructions = "A demo MCP server behind Sallyport")]
impl ServerHandler for Demo {}

/// Serves the demo on `listener` until `stop` is cancelled. Any path answers; the gateway maps `/mcp` here.
pub async fn serve(listener: TcpListener, allowed_hosts: Vec<String>, stop: CancellationToken) -> std::io::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    config.allowed_hosts = allowed_hosts;
    serve_with(listener, config, stop, Demo::default).await
}

/// Serves any MCP server over Streamable HTTP on `listener` until `stop` is cancelled (the demo,
/// and the servers tests put behind the gateway).
pub async fn serve_with<S: ServerHandler>(
    listener: TcpListener,
    mut config: StreamableHttpServerConfig,
    stop: CancellationToken,
    server: fn() -> S,
) -> std::io::Result<()> {
    config.cancellation_token = stop.clone();
    let service: StreamableHttpService<S, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server()), Arc::new(LocalSessionManager::default()), config);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = stop.cancelled() => return Ok(()),
        };
        let svc = TowerToHyperService::new(service.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// `sallyport demo-mcp --listen ADDR`: the demo on its own (docker-compose runs it this way).
pub async fn run_standalone(listen: SocketAddr, allowed_hosts: Vec<String>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    println!("demo MCP server on http://{listen}/mcp");
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        crate::signal::shutdown_signal().await;
        on_signal.cancel();
    });
    serve(listener, allowed_hosts, stop).await?;
    Ok(())
}

//! `sallyport-gateway`: load config, open the pool, build the app, serve.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::service::run("gateway", |s| s.listen.gateway, gateway::app).await
}

//! `sallyport-gateway`: load config, open the pool, build the app, serve.

// Proxying allocates and frees a few dozen small blocks per request across threads; glibc's
// malloc/free took 12 % of the gateway's CPU (BENCHMARKS.md, issue 19).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::service::run("gateway", |s| s.listen.gateway, gateway::app).await
}

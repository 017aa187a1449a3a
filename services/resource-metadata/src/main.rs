//! `sallyport-metadata`: load config, open the pool, build the app, serve.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::service::run("metadata", |s| s.listen.metadata, resource_metadata::app).await
}

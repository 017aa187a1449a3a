//! `sallyport-authorize`: load config, open the pool, build the app, serve.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::service::run("authorize", |s| s.listen.authorize, authorize::app).await
}

//! `sallyport-registration`: load config, open the pool, build the app, serve.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::service::run("registration", |s| s.listen.registration, registration::app).await
}

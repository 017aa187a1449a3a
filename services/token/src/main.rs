//! `sallyport-token`: load config, open the pool, build the app, serve.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::service::run("token", |s| s.listen.token, token::app).await
}

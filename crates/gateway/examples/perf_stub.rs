//! What the gateway's overhead is measured against: a trivial upstream (`ok` for any path) that
//! also plays the token service's JWKS, and a token it signed for `<issuer>/mcp` printed on stdout.
//!
//! ```sh
//! cargo run --release -p sallyport-gateway --example perf_stub -- 127.0.0.1:9101 http://127.0.0.1:9100
//! ```

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use protocol::jwt::{AccessTokenClaims, Audience};
use protocol::keys::{SigningAlg, SigningKey};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9101".into());
    let issuer = args.next().unwrap_or_else(|| "http://127.0.0.1:9100".into());
    let (key, _) = SigningKey::generate(SigningAlg::Es256).map_err(std::io::Error::other)?;
    let now = chrono::Utc::now().timestamp();
    let claims = AccessTokenClaims {
        iss: issuer.clone(),
        sub: "bench-user".into(),
        aud: Audience::One(format!("{issuer}/mcp")),
        client_id: "bench-client".into(),
        scope: "mcp".into(),
        iat: now,
        exp: now + 86_400,
        nbf: None,
        jti: uuid::Uuid::now_v7(),
        auth_time: None,
        gid: None,
    };
    println!("{}", protocol::jwt::sign(&claims, &key).map_err(std::io::Error::other)?);
    let jwks = Arc::new(serde_json::json!({ "keys": [key.public_jwk] }).to_string());
    HttpServer::new(move || {
        let jwks = Arc::clone(&jwks);
        App::new()
            .route(
                "/oauth2/jwks",
                web::get().to(move || {
                    let jwks = Arc::clone(&jwks);
                    async move { HttpResponse::Ok().content_type("application/json").body(jwks.as_str().to_owned()) }
                }),
            )
            .default_service(web::to(|| async { HttpResponse::Ok().content_type("text/plain").body("ok") }))
    })
    .workers(1)
    .bind(listen)?
    .run()
    .await
}

//! The gateway's middleware on the hot path, in process (no sockets between client and app):
//! `BearerAuth` and `Cors` around a trivial handler, for a browser request with a valid (cached)
//! token, one without a token (401) and a CORS preflight. The token verifier fetches its key set
//! once from a local stub; every measured request is then a cache hit, as on a busy gateway.
//!
//! `cargo bench -p sallyport-gateway --bench middleware`
//!
//! With `MIDDLEWARE_ITERATIONS=N` it runs each request N times and exits, for instruction counts
//! that do not depend on the machine's load: run it under
//! `valgrind --tool=callgrind` with two values of N; the difference of the totals divided by the
//! difference of the Ns is the cost of one round of the three requests.

use std::hint::black_box;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::test::{TestRequest, init_service};
use actix_web::{App, HttpResponse, HttpServer, web};
use criterion::Criterion;
use gateway::{BearerAuth, Cors, Principal, ResourcePolicy, TokenVerifier, VerifierConfig};
use protocol::Clock;
use protocol::jwt::{AccessTokenClaims, Audience};
use protocol::keys::{SigningAlg, SigningKey};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const ORIGIN: &str = "http://localhost:6274";
const ISSUER: &str = "https://auth.example.com";

/// The token service's key set, served on a free port of 127.0.0.1.
fn jwks_stub(key: &SigningKey) -> String {
    let body = serde_json::json!({ "keys": [key.public_jwk] }).to_string();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://127.0.0.1:{}/oauth2/jwks", listener.local_addr().expect("addr").port());
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/oauth2/jwks",
            web::get().to(move || {
                let body = body.clone();
                async move { HttpResponse::Ok().content_type("application/json").body(body) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    url
}

fn main() {
    let system = actix_web::rt::System::new();
    let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
    let app =
        system.block_on(async {
            let config = VerifierConfig {
                issuer: ISSUER.into(),
                jwks_url: jwks_stub(&key),
                leeway_secs: 60,
                cache_capacity: 1_000,
                jwks_refetch_interval: std::time::Duration::from_secs(5),
                revocation: Default::default(),
                revocation_cache_secs: 0,
                introspection: None,
                http_timeout: std::time::Duration::from_secs(5),
            };
            let verifier = Arc::new(TokenVerifier::new(config, Clock::system()).expect("verifier"));
            let policy = ResourcePolicy { resource: RESOURCE.into(), scopes: vec!["mcp".into()], ..Default::default() };
            let auth = BearerAuth::new(verifier, policy).expect("policy");
            let cors = Cors::for_resource(&[ORIGIN.into()], &["https://mcp.example.com".into()]).expect("cors");
            init_service(App::new().service(web::scope("/mcp").wrap(auth).wrap(cors).default_service(web::to(
                |p: Principal| async move { HttpResponse::Ok().body(p.subject().to_owned()) },
            ))))
            .await
        });
    let now = Clock::system().unix();
    let claims = AccessTokenClaims {
        iss: ISSUER.into(),
        sub: "user-1".into(),
        aud: Audience::One(RESOURCE.into()),
        client_id: "client-1".into(),
        scope: "mcp".into(),
        iat: now,
        exp: now + 3600,
        nbf: None,
        jti: uuid::Uuid::now_v7(),
        auth_time: None,
        gid: Some(uuid::Uuid::now_v7()),
    };
    let bearer = format!("Bearer {}", protocol::jwt::sign(&claims, &key).expect("sign"));

    let round = || async {
        let ok = TestRequest::get()
            .uri("/mcp/tools")
            .insert_header((header::AUTHORIZATION, bearer.as_str()))
            .insert_header((header::ORIGIN, ORIGIN))
            .to_request();
        let ok = app.call(ok).await.expect("ok");
        let none = TestRequest::get().uri("/mcp/tools").to_request();
        let none = app.call(none).await.expect("401");
        let preflight = TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/mcp/tools")
            .insert_header((header::ORIGIN, ORIGIN))
            .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
            .to_request();
        let preflight = app.call(preflight).await.expect("preflight");
        (black_box(ok.status()), black_box(none.status()), black_box(preflight.status()))
    };
    // the first round fetches the key set and fills the token cache; it also checks the answers
    let first = system.block_on(round());
    assert_eq!(first, (StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::NO_CONTENT));

    if let Some(n) = std::env::var("MIDDLEWARE_ITERATIONS").ok().and_then(|n| n.parse::<u64>().ok()) {
        system.block_on(async {
            for _ in 0..n {
                round().await;
            }
        });
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    c.bench_function("bearer + cors: valid token, no token, preflight", |b| {
        b.iter(|| system.block_on(round()));
    });
    c.final_summary();
}

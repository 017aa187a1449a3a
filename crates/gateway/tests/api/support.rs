//! The stack a gateway test runs against, all on free loopback ports: the gateway itself (built by
//! `gateway::app` exactly as in production), a stub token service (JWKS, introspection, echo), echo
//! stubs for the other three services, and an upstream with echo, SSE, slow and hanging endpoints.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use jsonwebtoken::jwk::Jwk;
use serde_json::{Value, json};
use uuid::Uuid;

use protocol::Clock;
use protocol::jwt::{AccessTokenClaims, Audience};
use protocol::keys::{SigningAlg, SigningKey};
use server::config::{HttpUrl, Issuer, RevocationCheck, RouteSettings, Settings};
use testkit::{TestDb, TestServer};

pub const INTROSPECTION_ID: &str = "gateway-client";
pub const INTROSPECTION_SECRET: &str = "gateway-secret-0123456789";
pub const BROWSER_ORIGIN: &str = "http://localhost:6274";

/// Sets a flag when dropped: proof that a handler's future or a response stream was cancelled.
pub struct DropFlag(pub Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A bare TCP upstream that takes one request and never answers: `started` once the request
/// head arrived, `closed` once the gateway closed that connection (EOF or reset).
pub struct SilentUpstream {
    pub url: String,
    pub started: Arc<AtomicBool>,
    pub closed: Arc<AtomicBool>,
}

impl SilentUpstream {
    pub async fn start() -> Self {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (started, closed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (s, c) = (Arc::clone(&started), Arc::clone(&closed));
        tokio::spawn(async move {
            let Ok(Ok((mut socket, _))) = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let mut seen = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => {
                        c.store(true, Ordering::SeqCst);
                        return;
                    }
                    Ok(Ok(n)) => {
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            s.store(true, Ordering::SeqCst);
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Self { url, started, closed }
    }
}

/// What the stub token service publishes and has seen.
#[derive(Default)]
pub struct TokenStub {
    pub keys: Mutex<Vec<Jwk>>,
    pub jwks_fetches: AtomicUsize,
    pub introspections: AtomicUsize,
    /// jtis introspection reports inactive.
    pub revoked: Mutex<HashSet<String>>,
    /// Introspection answers 500.
    pub broken: AtomicBool,
    /// The JWKS answers 500.
    pub jwks_down: AtomicBool,
}

/// What the upstream has seen and done.
#[derive(Default)]
pub struct UpstreamState {
    /// SSE events produced so far by `/mcp/sse`.
    pub events_sent: AtomicUsize,
    /// Set when a `/mcp/forever` stream is dropped.
    pub stream_dropped: Arc<AtomicBool>,
}

pub struct Stack {
    pub gateway: TestServer,
    /// Kept alive for the test's length (a dropped server stops).
    _upstream: TestServer,
    _token_service: TestServer,
    _services: Vec<TestServer>,
    pub up: Arc<UpstreamState>,
    pub stub: Arc<TokenStub>,
    pub key: SigningKey,
    pub clock: Clock,
    pub settings: Settings,
    pub http: reqwest::Client,
    _db: TestDb,
}

/// URLs known before the gateway is built, for tests that change the settings.
pub struct Urls {
    pub gateway: String,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(|_, _| {}).await
    }

    /// Starts everything; `customise` may change the settings before the gateway is built.
    pub async fn start_with(customise: impl FnOnce(&mut Settings, &Urls)) -> Self {
        testkit::init_logging();
        let db = TestDb::new().await;
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let stub = Arc::new(TokenStub::default());
        stub.keys.lock().expect("lock").push(key.public_jwk.clone());
        let up = Arc::new(UpstreamState::default());
        let upstream = spawn_upstream(Arc::clone(&up));
        let token_service = spawn_token_stub(Arc::clone(&stub));
        let services: Vec<TestServer> = ["registration", "authorize", "metadata"].into_iter().map(spawn_echo).collect();

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let gw = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let mut settings = testkit::settings(&db);
        settings.issuer = Issuer::parse(&gw).expect("issuer");
        settings.services.registration = http_url(&services[0].url);
        settings.services.authorize = http_url(&services[1].url);
        settings.services.metadata = http_url(&services[2].url);
        settings.services.token = http_url(&token_service.url);
        settings.gateway.upstream_timeout_ms = Duration::from_secs(2);
        settings.gateway.upstream_connect_timeout_ms = Duration::from_secs(1);
        settings.gateway.routes = default_routes(&gw, &upstream.url);
        let urls = Urls { gateway: gw.clone() };
        customise(&mut settings, &urls);

        let mut ctx = testkit::context_with(&db, &settings);
        let clock = Clock::system();
        ctx.clock = clock.clone();
        let app = gateway::app(ctx, (&settings).into()).await.expect("gateway builds");
        let gateway = testkit::spawn_app_on(listener, &app, Some(db.pool()));
        let http =
            reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self {
            gateway,
            _upstream: upstream,
            _token_service: token_service,
            _services: services,
            up,
            stub,
            key,
            clock,
            settings,
            http,
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    /// Another gateway replica over the same database and settings (a second process, as far as
    /// the database can tell).
    pub async fn replica(&self) -> TestServer {
        let app = gateway::app(testkit::context_with(&self._db, &self.settings), (&self.settings).into())
            .await
            .expect("the replica builds");
        testkit::spawn_app(&app, Some(self._db.pool()))
    }

    /// The test database's pool (e.g. for `resources` rows the registry reads).
    pub fn pool(&self) -> store::db::Pool {
        self._db.pool()
    }

    /// The claims of a valid token for `/mcp` with scope `mcp`.
    pub fn claims(&self) -> AccessTokenClaims {
        let now = self.clock.unix();
        AccessTokenClaims {
            iss: self.settings.issuer.to_string(),
            sub: "user-1".into(),
            aud: Audience::One(self.url("/mcp")),
            client_id: "client-1".into(),
            scope: "mcp".into(),
            iat: now,
            exp: now + 900,
            nbf: None,
            jti: Uuid::now_v7(),
            auth_time: None,
            gid: Some(Uuid::now_v7()),
        }
    }

    /// A signed token from `claims()` as changed by `change`.
    pub fn token_with(&self, change: impl FnOnce(&mut AccessTokenClaims)) -> String {
        let mut claims = self.claims();
        change(&mut claims);
        protocol::jwt::sign(&claims, &self.key).expect("sign")
    }

    pub fn token(&self) -> String {
        self.token_with(|_| {})
    }

    /// GET with a bearer token.
    pub async fn get_with(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }
}

/// A URL a test made (a local server's): valid by construction.
pub fn http_url(url: &str) -> HttpUrl {
    HttpUrl::parse(url).expect("an http URL")
}

fn route(prefix: &str, upstream: String, resource: Option<String>, scopes: &[&str]) -> RouteSettings {
    RouteSettings {
        prefix: prefix.into(),
        upstream: http_url(&upstream),
        resource,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        method_scopes: BTreeMap::new(),
        auth: true,
        allowed_origins: vec![BROWSER_ORIGIN.into()],
        allow_form_token: false,
        allow_query_token: false,
        mcp: false,
        tools: Default::default(),
        tool_scopes: Default::default(),
        upstream_auth: Default::default(),
        upstream_api_key: None,
        upstream_headers: Default::default(),
        upstream_oauth: None,
    }
}

/// `/mcp` (scope `mcp`, `DELETE` also needs `mcp:admin`), `/mcp/admin` (scope `admin`, its own
/// resource), `/public` (no auth), `/query` and `/form` (tokens in the query or a form allowed).
fn default_routes(gw: &str, up: &str) -> Vec<RouteSettings> {
    let mut mcp = route("/mcp", format!("{up}/mcp"), Some(format!("{gw}/mcp")), &["mcp"]);
    mcp.method_scopes.insert("DELETE".into(), vec!["mcp:admin".into()]);
    let admin = route("/mcp/admin/", format!("{up}/admin"), Some(format!("{gw}/mcp/admin")), &["admin"]);
    let mut public = route("/public", format!("{up}/public"), None, &[]);
    public.auth = false;
    let mut query = route("/query", format!("{up}/q"), Some(format!("{gw}/query")), &["mcp"]);
    query.allow_query_token = true;
    let mut form = route("/form", format!("{up}/f"), Some(format!("{gw}/form")), &["mcp"]);
    form.allow_form_token = true;
    vec![mcp, admin, public, query, form]
}

/// Revocation through introspection with the stub's credentials.
pub fn revocation(settings: &mut Settings, mode: RevocationCheck) {
    settings.gateway.revocation_check = mode;
    settings.gateway.introspection_client_id = Some(INTROSPECTION_ID.into());
    settings.gateway.introspection_client_secret = Some(INTROSPECTION_SECRET.into());
}

/// What a request looked like when it arrived: method, path, query, headers, body.
async fn echo(req: HttpRequest, mut payload: web::Payload, name: web::Data<String>) -> HttpResponse {
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = payload.next().await {
        body.extend_from_slice(&chunk);
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers.entry(k.as_str().to_owned()).or_default().push(v.to_str().unwrap_or("<binary>").to_owned());
    }
    let received = json!({
        "service": name.as_str(),
        "method": req.method().as_str(),
        "path": req.path(),
        "query": req.query_string(),
        "headers": headers,
        "body_len": body.len(),
        "body": String::from_utf8_lossy(&body[..body.len().min(4096)]),
    });
    HttpResponse::Ok().insert_header(("x-upstream", "yes")).json(received)
}

/// `serve` installs its own default service (a JSON 404): the stubs catch everything with a scope.
fn catch_all() -> actix_web::Scope {
    web::scope("").default_service(web::to(echo))
}

fn spawn_echo(name: &'static str) -> TestServer {
    testkit::spawn(None, move |cfg| {
        cfg.app_data(web::Data::new(name.to_owned())).service(catch_all());
    })
}

fn spawn_token_stub(stub: Arc<TokenStub>) -> TestServer {
    testkit::spawn(None, move |cfg| {
        cfg.app_data(web::Data::from(Arc::clone(&stub)))
            .app_data(web::Data::new("token".to_owned()))
            .route("/oauth2/jwks", web::get().to(jwks))
            .route("/oauth2/introspect", web::post().to(introspect))
            .service(catch_all());
    })
}

async fn jwks(stub: web::Data<TokenStub>) -> HttpResponse {
    stub.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if stub.jwks_down.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().finish();
    }
    let keys = stub.keys.lock().expect("lock").clone();
    HttpResponse::Ok().insert_header(("cache-control", "public, max-age=300")).json(json!({ "keys": keys }))
}

async fn introspect(
    req: HttpRequest,
    form: web::Form<BTreeMap<String, String>>,
    stub: web::Data<TokenStub>,
) -> HttpResponse {
    stub.introspections.fetch_add(1, Ordering::SeqCst);
    if stub.broken.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().finish();
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{INTROSPECTION_ID}:{INTROSPECTION_SECRET}"))
    );
    if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    // the stub trusts the token's claims without checking them: only revocation is its business here
    let jti = form
        .get("token")
        .and_then(|t| t.split('.').nth(1))
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|c| c["jti"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let active = !stub.revoked.lock().expect("lock").contains(&jti);
    HttpResponse::Ok().json(json!({ "active": active }))
}

fn spawn_upstream(state: Arc<UpstreamState>) -> TestServer {
    testkit::spawn(None, move |cfg| {
        cfg.app_data(web::Data::from(Arc::clone(&state)))
            .app_data(web::Data::new("upstream".to_owned()))
            .route("/mcp/sse", web::get().to(sse))
            .route("/mcp/forever", web::get().to(forever))
            .route("/mcp/slow", web::get().to(slow))
            .route("/mcp/count", web::post().to(count))
            .route(
                "/mcp/redirect",
                web::get().to(|| async { HttpResponse::Found().insert_header(("location", "/elsewhere")).finish() }),
            )
            .route("/mcp/hop", web::get().to(hop))
            .route("/public/set-cookies", web::get().to(set_cookies))
            .route(
                "/mcp/cors",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .insert_header(("access-control-allow-origin", "http://upstream-choice"))
                        .insert_header(("access-control-allow-credentials", "true"))
                        .finish()
                }),
            )
            .service(catch_all());
    })
}

/// Five events, 300 ms apart.
async fn sse(state: web::Data<UpstreamState>) -> HttpResponse {
    let state = state.into_inner();
    let events = futures_util::stream::unfold(0usize, move |i| {
        let state = Arc::clone(&state);
        async move {
            if i == 5 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            state.events_sent.fetch_add(1, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(Bytes::from(format!("id: {i}\ndata: {{\"n\":{i}}}\n\n"))), i + 1))
        }
    });
    HttpResponse::Ok().content_type("text/event-stream").insert_header(("cache-control", "no-cache")).streaming(events)
}

/// An event every 50 ms for a long time; the flag is set when the stream is dropped.
async fn forever(state: web::Data<UpstreamState>) -> HttpResponse {
    let flag = DropFlag(Arc::clone(&state.stream_dropped));
    let events = futures_util::stream::unfold((0usize, flag), |(i, flag)| async move {
        if i == 1_000 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((Ok::<_, std::io::Error>(Bytes::from(format!("data: {i}\n\n"))), (i + 1, flag)))
    });
    HttpResponse::Ok().content_type("text/event-stream").streaming(events)
}

async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(5)).await;
    HttpResponse::Ok().finish()
}

/// Counts a streamed body of any size.
async fn count(mut payload: web::Payload) -> HttpResponse {
    let mut n = 0usize;
    let mut sum = 0u64;
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else { return HttpResponse::BadRequest().finish() };
        n += chunk.len();
        sum += chunk.iter().map(|b| u64::from(*b)).sum::<u64>();
    }
    HttpResponse::Ok().json(json!({ "bytes": n, "sum": sum }))
}

/// An upstream that tries to plant Sallyport's session (every spelling) next to a cookie of its own.
async fn set_cookies() -> HttpResponse {
    let mut res = HttpResponse::Ok();
    for cookie in [
        "upstream_pref=1; Path=/",
        "sallyport_session=spss_planted; Path=/oauth2",
        "__Secure-sallyport_session=spss_planted; Secure; Path=/oauth2",
        "__Host-sallyport_session_login=planted; Secure; Path=/",
        "=sallyport_session=spss_nameless",
    ] {
        res.append_header(("set-cookie", cookie));
    }
    res.body("cookies")
}

/// Hop-by-hop headers in a response.
async fn hop() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("keep-alive", "timeout=5"))
        .insert_header(("proxy-authenticate", "Basic"))
        .insert_header(("trailer", "x-t"))
        .insert_header(("x-end-to-end", "kept"))
        .body("hop")
}

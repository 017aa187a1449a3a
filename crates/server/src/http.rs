//! What every service's HTTP server shares: health endpoints, request ids and access logs, JSON
//! errors for 404, 405 and malformed input, the client IP, and `serve` itself.

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Condition, DefaultHeaders, Next};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use protocol::error::ErrorCode;
use store::db::Pool;

use crate::error::OAuthError;
use crate::metrics::Metrics;
use crate::telemetry::propagation::TraceTrust;

/// A readiness probe beyond the database (e.g. "signing keys loaded").
pub type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// How a service's server runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
    /// Let actix stop on SIGTERM/SIGINT itself (off when one process runs several servers).
    pub handle_signals: bool,
    /// The pool `/readyz` checks.
    pub pool: Option<Pool>,
    pub ready: Option<ReadyCheck>,
    /// Traces on: a span per request, and whose `traceparent` it continues (`TraceTrust::from_settings`).
    pub traces: Option<Arc<TraceTrust>>,
}

impl ServeOptions {
    pub fn new(pool: Option<Pool>) -> Self {
        Self { workers: 0, shutdown_timeout_secs: 30, handle_signals: true, pool, ready: None, traces: None }
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request id unique across processes without a `getrandom` call per request (a syscall on the
/// hot path of every service): 64 random bits drawn once per process, then a counter.
fn new_request_id() -> String {
    static PREFIX: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:016x}-{:012x}", *PREFIX, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Request ids (kept from the caller when sane, else made up) and one access-log line per request.
/// The query string is never logged: it may hold an authorization code.
async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // a HeaderValue from the start: the caller's is shared, not copied, and a made-up one is moved
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| {
            let v = v.as_bytes();
            !v.is_empty() && v.len() <= 64 && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        })
        .cloned()
        .or_else(|| HeaderValue::try_from(new_request_id()).ok());
    let mut res = next.call(req).await?;
    let status = res.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if let Some(v) = id {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    let logged = res.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (method, path) = (res.request().method(), res.request().path());
    match status {
        500.. => tracing::error!(request_id = %logged, %method, %path, status, micros, "request"),
        400..=499 => tracing::info!(request_id = %logged, %method, %path, status, micros, "request"),
        _ => tracing::debug!(request_id = %logged, %method, %path, status, micros, "request"),
    }
    Ok(res)
}

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`), `ready` or `not ready` (`/readyz`).
    pub status: &'static str,
    /// Not ready only: whether the database answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub database: Option<bool>,
    /// Not ready only: whether the database carries this binary's migrations.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub schema: Option<bool>,
    /// Not ready only: whether the service's own dependencies (the token service's signing keys) are in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub dependencies: Option<bool>,
}

fn health_json(status: StatusCode, health: &Health) -> HttpResponse {
    match serde_json::to_vec(health) {
        Ok(body) => HttpResponse::build(status).content_type("application/json").body(body),
        Err(e) => OAuthError::internal(e).error_response(),
    }
}

/// Liveness: the process answers HTTP (every service, the gateway and `sallyport up`).
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health", responses(
    (status = 200, description = "The process is alive.", body = Health),
))]
async fn healthz() -> HttpResponse {
    health_json(StatusCode::OK, &Health { status: "ok", database: None, schema: None, dependencies: None })
}

/// Readiness: the database answers and is migrated, and the service's own dependencies are in place.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health", responses(
    (status = 200, description = "Ready to serve.", body = Health),
    (status = 503, description = "Not ready: which check failed.", body = Health),
))]
async fn readyz(state: web::Data<HealthState>) -> HttpResponse {
    let (db_ok, schema_ok) = match &state.pool {
        Some(pool) => {
            tokio::time::timeout(Duration::from_secs(2), database_state(pool)).await.unwrap_or((false, false))
        }
        None => (true, true),
    };
    let extra_ok = state.ready.as_ref().is_none_or(|f| f());
    if db_ok && schema_ok && extra_ok {
        health_json(StatusCode::OK, &Health { status: "ready", database: None, schema: None, dependencies: None })
    } else {
        let health = Health {
            status: "not ready",
            database: Some(db_ok),
            schema: Some(schema_ok),
            dependencies: Some(extra_ok),
        };
        health_json(StatusCode::SERVICE_UNAVAILABLE, &health)
    }
}

/// The health endpoints' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz), components(schemas(Health)))]
pub struct HealthApi;

#[derive(diesel::QueryableByName)]
struct Applied {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Whether the database answers, and whether it carries at least this binary's migrations: a
/// service on an unmigrated (or older) schema would fail every request, so it is not ready. One
/// query answers both: the database's own error (no such table) still proves it answers.
async fn database_state(pool: &Pool) -> (bool, bool) {
    use diesel::result::DatabaseErrorKind;
    use diesel_async::RunQueryDsl;
    let Ok(mut conn) = pool.get().await else { return (false, false) };
    match diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
        .get_result::<Applied>(&mut conn)
        .await
    {
        Ok(a) => (true, usize::try_from(a.n).is_ok_and(|n| n >= store::db::MIGRATIONS_COUNT)),
        Err(diesel::result::Error::DatabaseError(kind, _))
            if !matches!(kind, DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand) =>
        {
            (true, false)
        }
        Err(_) => (false, false),
    }
}

struct HealthState {
    pool: Option<Pool>,
    ready: Option<ReadyCheck>,
}

/// 404 for every path no route claims: JSON, never an HTML page (clients probe well-known URLs).
pub async fn not_found() -> Result<HttpResponse, OAuthError> {
    Err(OAuthError::not_found("no such endpoint"))
}

/// The default service of a resource that serves only the methods in `allow`: 405 with `Allow`
/// (RFC 9110 §15.5.6) and an RFC 6749 JSON body.
pub fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move {
        let mut res = OAuthError::invalid_request(format!("this endpoint accepts {allow}"))
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
            .error_response();
        res.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        res
    })
}

/// Maps actix's extractor errors to RFC 6749 `invalid_request` (or 413 for a body over the limit).
pub fn extractor_error(err: impl std::fmt::Display, payload_too_large: bool) -> actix_web::Error {
    if payload_too_large {
        OAuthError::new(ErrorCode::PayloadTooLarge, "the request body is too large").into()
    } else {
        OAuthError::invalid_request(format!("malformed request: {err}")).into()
    }
}

/// The shared extractor configuration: malformed forms and queries are OAuth errors, not text.
pub fn extractor_configs(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::FormConfig::default().limit(64 * 1024).error_handler(|err, _| {
        let too_large = matches!(err, actix_web::error::UrlencodedError::Overflow { .. });
        extractor_error(&err, too_large)
    }))
    .app_data(web::QueryConfig::default().error_handler(|err, _| extractor_error(err, false)))
    .app_data(web::JsonConfig::default().limit(64 * 1024).error_handler(|err, _| {
        let too_large = matches!(
            err,
            actix_web::error::JsonPayloadError::Overflow { .. }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
        );
        extractor_error(&err, too_large)
    }))
    .app_data(web::PayloadConfig::default().limit(64 * 1024));
}

/// Starts a service on `listener`: health endpoints, access logs, JSON 404s, then the service's routes.
pub fn serve<F>(listener: TcpListener, options: ServeOptions, configure: F) -> std::io::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    serve_with(listener, options, true, configure)
}

/// Like [`serve`]. With `allow_half_closed` false, a request's handler is dropped as soon as its
/// client closes the connection (actix otherwise runs it to the end first): the gateway needs
/// that to cancel the upstream request of a client that left before the answer.
pub fn serve_with<F>(
    listener: TcpListener,
    options: ServeOptions,
    allow_half_closed: bool,
    configure: F,
) -> std::io::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    serve_counted(listener, options, allow_half_closed, "service", false, Metrics::default(), configure)
}

/// Like [`serve_with`], counting and timing every request as `service` in `metrics` (and serving
/// them at `/metrics` when they are not on `listen.admin`), and with traces on, a span per
/// request (`edge`: the gateway, whose callers are clients).
pub fn serve_counted<F>(
    listener: TcpListener,
    options: ServeOptions,
    allow_half_closed: bool,
    service: &'static str,
    edge: bool,
    metrics: Metrics,
    configure: F,
) -> std::io::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let health = web::Data::new(HealthState { pool: options.pool.clone(), ready: options.ready.clone() });
    let traces = options.traces.clone();
    let mut server = HttpServer::new(move || {
        let counted = metrics.clone();
        let observe = actix_web::middleware::from_fn(move |req, next| {
            crate::metrics::http::observe(counted.clone(), service, req, next)
        });
        // traces off: not even this middleware; on: the outermost, so that the span covers the rest
        let trust = traces.clone().unwrap_or_else(|| Arc::new(TraceTrust::nobody()));
        let traced = actix_web::middleware::from_fn(move |req, next| {
            crate::telemetry::propagation::request_span(trust.clone(), service, edge, req, next)
        });
        App::new()
            .wrap(Condition::new(metrics.enabled(), observe))
            .wrap(actix_web::middleware::from_fn(access_log))
            .wrap(DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
            .wrap(Condition::new(traces.is_some(), traced))
            .app_data(health.clone())
            .configure(extractor_configs)
            .service(web::resource("/healthz").route(web::get().to(healthz)).default_service(method_not_allowed("GET")))
            .service(web::resource("/readyz").route(web::get().to(readyz)).default_service(method_not_allowed("GET")))
            .configure(|cfg| crate::metrics::http::configure_service_port(cfg, &metrics))
            .configure(configure.clone())
            .default_service(web::to(not_found))
    })
    .h1_allow_half_closed(allow_half_closed)
    // a response head and a short body go out as separate writes: without TCP_NODELAY, Nagle and the
    // peer's delayed ACK stall the second one for ~40 ms (seen through the gateway by sallyport-bench)
    .tcp_nodelay(true)
    .shutdown_timeout(options.shutdown_timeout_secs)
    .listen(listener)?;
    if options.workers > 0 {
        server = server.workers(options.workers);
    }
    if !options.handle_signals {
        server = server.disable_signals();
    }
    Ok(server.run())
}

/// The header in which the gateway hands the services the client address it derived. The gateway
/// overwrites it on every request it forwards (a client-sent copy never passes: it drops every
/// `X-Sallyport-*` header it receives), so it holds exactly one address.
pub const CLIENT_IP_HEADER: &str = "x-sallyport-client-ip";

/// The client's address as a service behind the gateway sees it: the peer, or with
/// `trust_forwarded` (the service is reachable only through the gateway) the one address in
/// [`CLIENT_IP_HEADER`]. `X-Forwarded-For` is never read here: behind an ingress, its rightmost
/// entry is the ingress, and earlier entries are whatever the client wrote.
pub fn client_ip(req: &HttpRequest, trust_forwarded: bool) -> IpAddr {
    if trust_forwarded
        && let Some(ip) = req.headers().get(CLIENT_IP_HEADER).and_then(|v| v.to_str().ok()?.trim().parse().ok())
    {
        return ip;
    }
    peer_ip(req)
}

/// The client's address as the gateway derives it: the peer, or with `trust_forwarded` (an ingress
/// in front of the gateway appends the address it saw) the rightmost `X-Forwarded-For` entry, the
/// one the nearest trusted proxy wrote.
pub fn forwarded_client_ip(req: &HttpRequest, trust_forwarded: bool) -> IpAddr {
    if trust_forwarded
        && let Some(ip) = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .last()
    {
        return ip;
    }
    peer_ip(req)
}

fn peer_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr().map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip())
}

/// Binds a listener, with a message that names the address when it is taken.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn request_ids_are_distinct_and_pass_the_id_filter() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 29);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'), "{id}");
        }
        let prefixes: std::collections::HashSet<&str> = ids.iter().map(|id| &id[..16]).collect();
        assert_eq!(prefixes.len(), 1, "one random prefix per process");
    }

    #[test]
    fn the_gateway_trusts_forwarded_for_only_when_told() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.9:5000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "1.1.1.1, 2.2.2.2"))
            .to_http_request();
        assert_eq!(forwarded_client_ip(&req, false), "10.0.0.9".parse::<IpAddr>().expect("ip"));
        assert_eq!(forwarded_client_ip(&req, true), "2.2.2.2".parse::<IpAddr>().expect("ip"));
        let junk = TestRequest::default()
            .peer_addr("10.0.0.9:5000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "not-an-ip"))
            .to_http_request();
        assert_eq!(forwarded_client_ip(&junk, true), "10.0.0.9".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn services_read_only_the_gateways_header() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.9:5000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "1.1.1.1, 2.2.2.2"))
            .insert_header((CLIENT_IP_HEADER, "2001:db8::7"))
            .to_http_request();
        assert_eq!(client_ip(&req, false), "10.0.0.9".parse::<IpAddr>().expect("ip"));
        assert_eq!(client_ip(&req, true), "2001:db8::7".parse::<IpAddr>().expect("ip"));
        let forwarded_only = TestRequest::default()
            .peer_addr("10.0.0.9:5000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "1.1.1.1"))
            .to_http_request();
        assert_eq!(client_ip(&forwarded_only, true), "10.0.0.9".parse::<IpAddr>().expect("ip"), "XFF is not read");
    }
}

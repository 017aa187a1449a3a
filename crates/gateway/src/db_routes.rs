//! Routes of the `gateway_routes` table (`sallyport route add`), beside the configured ones, which
//! win over a row with the same prefix. Every gateway reloads the table every [`RELOAD`], so a
//! route added or removed is served or gone everywhere within that time; a row is compiled (bearer
//! check, CORS, MCP policy, its credential unsealed) once when it changes, not per request.
//!
//! Actix's route table is fixed when the server starts, so these routes sit behind one catch-all
//! scope mounted after every configured route: configured routes never pay for them. Each worker
//! keeps its own copy of the compiled services (actix services are per thread) and rebuilds it
//! when the table's generation moves on.

use std::cell::RefCell;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse, Transform, fn_service};
use actix_web::guard::{Guard, GuardContext};
use actix_web::{Error, FromRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;

use protocol::upstream_auth::UpstreamAuth;
use server::config::{EncryptionKey, HttpUrl, RouteSettings};
use server::metrics::{GatewayRouteMetrics, Metrics};
use store::gateway_routes::GatewayRouteRow;

use crate::proxy::UpstreamCredential;
use crate::router::{Route, prefix_matches};
use crate::{Gateway, RouteCompiler, RouteEntry};

/// How often each gateway reads the table: `sallyport route add` is served everywhere within this.
const RELOAD: Duration = Duration::from_secs(2);

/// A compiled route of the table.
struct DbEntry {
    entry: RouteEntry,
    metrics: GatewayRouteMetrics,
}

/// One load of the table, longest prefix first.
#[derive(Default)]
struct Table {
    generation: u64,
    /// (prefix, updated_at) of every row, to tell whether anything changed.
    fingerprint: Vec<(String, chrono::DateTime<chrono::Utc>)>,
    entries: Vec<Arc<DbEntry>>,
}

pub struct DbRoutes {
    compiler: RouteCompiler,
    /// Prefixes of the configured routes (normalised): a row with one of them is ignored.
    configured: Vec<String>,
    encryption_key: Option<EncryptionKey>,
    metrics: Metrics,
    table: RwLock<Arc<Table>>,
}

impl DbRoutes {
    pub(crate) fn new(
        compiler: RouteCompiler,
        configured: Vec<String>,
        encryption_key: Option<EncryptionKey>,
        metrics: Metrics,
    ) -> Self {
        Self { compiler, configured, encryption_key, metrics, table: RwLock::new(Arc::default()) }
    }

    fn current(&self) -> Arc<Table> {
        self.table.read().map(|t| Arc::clone(&t)).unwrap_or_default()
    }

    /// Whether a route of the table serves `path`.
    fn serves(&self, path: &str) -> bool {
        self.table.read().is_ok_and(|t| t.entries.iter().any(|e| prefix_matches(path, &e.entry.route.prefix)))
    }

    /// Reads the table and, when it changed, compiles it. A row that does not compile (or whose
    /// credential does not open) is left out with a warning; the others are served. When the
    /// database cannot be read the routes loaded last stay.
    pub async fn reload(&self) {
        let rows = match self.compiler.pool.get().await {
            Ok(mut conn) => store::gateway_routes::list(&mut conn).await,
            Err(e) => {
                tracing::warn!(error = %e, "gateway routes: no database connection; the routes loaded last stay");
                return;
            }
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "gateway routes cannot be read; the routes loaded last stay");
                return;
            }
        };
        let fingerprint: Vec<_> = rows.iter().map(|r| (r.prefix.clone(), r.updated_at)).collect();
        let previous = self.current();
        if previous.fingerprint == fingerprint && previous.generation > 0 {
            return;
        }
        let mut entries = Vec::new();
        for row in rows {
            let prefix = row.prefix.trim_end_matches('/').to_owned();
            if self.configured.contains(&prefix) {
                tracing::warn!(prefix = %row.prefix, "gateway route in the database ignored: the configuration has it");
                continue;
            }
            match self.compile(&row) {
                Ok(entry) => entries.push(Arc::new(entry)),
                Err(e) => tracing::warn!(prefix = %row.prefix, error = %e, "gateway route in the database ignored"),
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.entry.route.prefix.len()));
        let table = Arc::new(Table { generation: previous.generation + 1, fingerprint, entries });
        if let Ok(mut t) = self.table.write() {
            *t = table;
        }
    }

    fn compile(&self, row: &GatewayRouteRow) -> Result<DbEntry, String> {
        let settings = settings_of(row)?;
        let mut route = Route::new(&settings);
        route.credential = match (settings.upstream_auth, &row.upstream_secret_enc) {
            (UpstreamAuth::None | UpstreamAuth::OAuth2, _) => None,
            (kind, Some(sealed)) => {
                let key = self
                    .encryption_key
                    .as_ref()
                    .ok_or("its credential is sealed and keys.encryption_key is not set")?;
                let headers = store::gateway_routes::unseal_headers(key.bytes(), &row.prefix, sealed).map_err(|_| {
                    "its credential does not open: sealed under another keys.encryption_key, or copied from another row"
                        .to_owned()
                })?;
                UpstreamCredential::new(kind, &headers)?.map(Arc::new)
            }
            (_, None) => return Err("upstream_auth needs a credential and the row has none".into()),
        };
        if settings.upstream_auth == UpstreamAuth::OAuth2 {
            route.oauth = Some(Arc::new(self.oauth_route(row, &route.prefix, &settings)?));
        }
        let label = if route.prefix.is_empty() { "/".to_owned() } else { route.prefix.clone() };
        Ok(DbEntry { metrics: self.metrics.gateway_route(&label), entry: self.compiler.compile(route)? })
    }

    /// An `oauth2` row: its explicit settings (`upstream_oauth`, JSON of
    /// `protocol::upstream_auth::UpstreamOAuth`) and the secret of a client registered by hand,
    /// sealed in `upstream_secret_enc` as the one pair `client_secret` (`store::gateway_routes::seal_headers`).
    fn oauth_route(
        &self,
        row: &GatewayRouteRow,
        prefix: &str,
        settings: &RouteSettings,
    ) -> Result<crate::upstream_oauth::OAuthRoute, String> {
        if !settings.auth {
            return Err(
                "upstream_auth = \"oauth2\" sends each user's own upstream token, so the route needs auth".into()
            );
        }
        let key = self.encryption_key.as_ref().ok_or("upstream_auth = \"oauth2\" needs keys.encryption_key")?;
        let explicit = match &row.upstream_oauth {
            Some(json) => serde_json::from_value(json.clone()).map_err(|e| format!("upstream_oauth: {e}"))?,
            None => Default::default(),
        };
        let secret = match &row.upstream_secret_enc {
            None => None,
            Some(sealed) => {
                let pairs = store::gateway_routes::unseal_headers(key.bytes(), &row.prefix, sealed)
                    .map_err(|_| "its client secret does not open under keys.encryption_key".to_owned())?;
                pairs.into_iter().find(|(name, _)| name == "client_secret").map(|(_, secret)| secret)
            }
        };
        Ok(crate::upstream_oauth::OAuthRoute::new(prefix, explicit, secret, &self.compiler.issuer, settings.mcp))
    }

    /// Reloads every [`RELOAD`] while the gateway lives.
    pub fn keep_fresh(this: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(this);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD).await;
                let Some(routes) = weak.upgrade() else { return };
                routes.reload().await;
            }
        });
    }
}

/// The settings a row stands for, checked as the configuration's are.
fn settings_of(row: &GatewayRouteRow) -> Result<RouteSettings, String> {
    if !row.prefix.starts_with('/') || crate::path::non_canonical(&row.prefix).is_some() {
        return Err(format!("prefix {}: not a canonical path", row.prefix));
    }
    let texts = |v: &[Option<String>]| v.iter().flatten().cloned().collect::<Vec<_>>();
    Ok(RouteSettings {
        prefix: row.prefix.clone(),
        upstream: HttpUrl::parse(&row.upstream).map_err(|e| format!("upstream: {e}"))?,
        resource: row.resource.clone(),
        scopes: texts(&row.scopes),
        method_scopes: Default::default(),
        auth: row.auth,
        allowed_origins: texts(&row.allowed_origins),
        allow_form_token: false,
        allow_query_token: false,
        mcp: row.mcp,
        tools: Default::default(),
        tool_scopes: Default::default(),
        upstream_auth: UpstreamAuth::parse(&row.upstream_auth)
            .ok_or_else(|| format!("upstream_auth {}: unknown", row.upstream_auth))?,
        upstream_api_key: None,
        upstream_headers: Default::default(),
        upstream_oauth: None,
    })
    .and_then(|s| match (&s.resource, s.auth) {
        (None, true) => Err("a resource is required when auth is on".into()),
        _ => Ok(s),
    })
}

/// Matches the paths a route of the table serves.
pub struct Serves(pub Arc<Gateway>);

impl Guard for Serves {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        self.0.db_routes.serves(ctx.head().uri.path())
    }
}

type Handler = Rc<dyn Fn(ServiceRequest) -> LocalBoxFuture<'static, Result<ServiceResponse, Error>>>;

/// The catch-all service of the table's routes (one per worker).
pub struct Dispatch(pub Arc<Gateway>);

impl ServiceFactory<ServiceRequest> for Dispatch {
    type Response = ServiceResponse;
    type Error = Error;
    type Config = ();
    type Service = DispatchService;
    type InitError = ();
    type Future = Ready<Result<DispatchService, ()>>;

    fn new_service(&self, (): ()) -> Self::Future {
        ready(Ok(DispatchService { gateway: Arc::clone(&self.0), built: RefCell::new((0, Vec::new())) }))
    }
}

pub struct DispatchService {
    gateway: Arc<Gateway>,
    /// The worker's services of the table's routes, of the generation named.
    built: RefCell<(u64, Vec<(String, Handler)>)>,
}

impl Service<ServiceRequest> for DispatchService {
    type Response = ServiceResponse;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse, Error>>;

    actix_web::dev::always_ready!();

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let table = self.gateway.db_routes.current();
        let handler = {
            let mut built = self.built.borrow_mut();
            if built.0 != table.generation {
                let handlers = table.entries.iter().map(|e| (e.entry.route.prefix.clone(), handler(&self.gateway, e)));
                *built = (table.generation, handlers.collect());
            }
            built.1.iter().find(|(prefix, _)| prefix_matches(req.path(), prefix)).map(|(_, h)| Rc::clone(h))
        };
        match handler {
            Some(handler) => handler(req),
            // removed between the guard and here
            None => Box::pin(async move { Ok(req.into_response(HttpResponse::NotFound().finish())) }),
        }
    }
}

/// The route's service as a configured route has it: CORS, then the bearer check, then the proxy.
fn handler(gateway: &Arc<Gateway>, db: &Arc<DbEntry>) -> Handler {
    let inner = {
        let (gateway, db) = (Arc::clone(gateway), Arc::clone(db));
        fn_service(move |req: ServiceRequest| {
            let (gateway, db) = (Arc::clone(&gateway), Arc::clone(&db));
            async move { forward(req, &db, &gateway).await }
        })
    };
    let cors = &db.entry.cors;
    match &db.entry.bearer {
        Some(bearer) => match bearer.new_transform(inner).into_inner() {
            Ok(authed) => boxed(cors.new_transform(authed).into_inner()),
            Err(()) => gone(),
        },
        None => boxed(cors.new_transform(inner).into_inner()),
    }
}

fn boxed<S, B>(service: Result<S, ()>) -> Handler
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    let Ok(service) = service else { return gone() };
    let service = Rc::new(service);
    Rc::new(move |req| -> LocalBoxFuture<'static, Result<ServiceResponse, Error>> {
        let service = Rc::clone(&service);
        Box::pin(async move { service.call(req).await.map(ServiceResponse::map_into_boxed_body) })
    })
}

/// A route whose middleware could not be built (never: they build infallibly).
fn gone() -> Handler {
    Rc::new(|req: ServiceRequest| -> LocalBoxFuture<'static, Result<ServiceResponse, Error>> {
        Box::pin(async move { Ok(req.into_response(HttpResponse::NotFound().finish())) })
    })
}

async fn forward(req: ServiceRequest, db: &DbEntry, gateway: &Gateway) -> Result<ServiceResponse, Error> {
    let (http, mut payload) = req.into_parts();
    let payload = web::Payload::from_request(&http, &mut payload).await?;
    let route = &db.entry.route;
    let url = route.upstream_url(http.path(), http.query_string());
    let result = match (&db.entry.mcp, &route.oauth) {
        (Some(mcp), _) => {
            crate::metered::time_upstream(&db.metrics, crate::mcp::forward(&http, payload, &url, route, mcp, gateway))
                .await
        }
        (None, Some(oauth)) => {
            let forwarded = crate::upstream_oauth::forward(gateway, &http, payload, &url, route, oauth);
            crate::metered::time_upstream(&db.metrics, forwarded).await
        }
        (None, None) => {
            let caller = gateway.upstream_caller(&http, route);
            crate::metered::time_upstream(&db.metrics, gateway.proxy.forward(&http, payload, &url, &caller)).await
        }
    };
    let response = result.unwrap_or_else(|e| e.error_response());
    Ok(ServiceResponse::new(http, response))
}

//! How a service is assembled and run: a `Context` in, a `ServiceApp` out, and `run` for the thin
//! binaries. `sallyport up` and the tests build the same `ServiceApp`s.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::web;
use protocol::clock::Clock;
use store::db::Pool;

use crate::config::Settings;
use crate::http::{ReadyCheck, ServeOptions, bind, serve_counted};
use crate::metrics::Metrics;
use crate::telemetry::propagation::TraceTrust;

/// What every service is built from, beside its own part of the settings.
#[derive(Clone)]
pub struct Context {
    pub pool: Pool,
    pub clock: Clock,
    /// The process's metrics (one registry for every service it runs).
    pub metrics: Metrics,
}

/// The routes of one service.
pub type Configure = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A service ready to serve: its name, routes and readiness check.
#[derive(Clone)]
pub struct ServiceApp {
    pub name: &'static str,
    pub configure: Configure,
    pub ready: Option<ReadyCheck>,
    /// Drop a request's handler as soon as its client disconnects (no HTTP/1 half-close): a proxy
    /// must cancel the upstream request of a client that is gone.
    pub cancel_on_disconnect: bool,
    /// Where its requests are counted.
    pub metrics: Metrics,
    /// The gateway: its callers are clients, whose `traceparent` it adopts only from
    /// `telemetry.trusted_traceparent_sources`.
    pub edge: bool,
}

impl ServiceApp {
    pub fn new(name: &'static str, configure: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static) -> Self {
        Self {
            name,
            configure: Arc::new(configure),
            ready: None,
            cancel_on_disconnect: false,
            metrics: Metrics::default(),
            edge: false,
        }
    }

    /// Serves clients directly (the gateway), not behind the gateway.
    pub fn at_the_edge(mut self) -> Self {
        self.edge = true;
        self
    }

    pub fn with_cancel_on_disconnect(mut self) -> Self {
        self.cancel_on_disconnect = true;
        self
    }

    /// Counts its requests (and serves `/metrics` on its port unless `listen.admin` is set).
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = metrics.clone();
        self
    }

    pub fn with_ready(mut self, ready: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.ready = Some(Arc::new(ready));
        self
    }

    /// Serves it on `listener` with the shared middleware and health endpoints.
    pub fn serve(
        &self,
        listener: std::net::TcpListener,
        mut options: ServeOptions,
    ) -> std::io::Result<actix_web::dev::Server> {
        options.ready = self.ready.clone();
        let configure = self.configure.clone();
        serve_counted(
            listener,
            options,
            !self.cancel_on_disconnect,
            self.name,
            self.edge,
            self.metrics.clone(),
            move |cfg| configure(cfg),
        )
    }
}

pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// The whole life of a service binary: configuration, logging, pool, optional migrations, the app,
/// and serving until SIGTERM (which drains in-flight requests). Failures print one clear message.
/// The service is built from its own config type `C`, taken from the loaded settings.
pub async fn run<C, B, Fut>(name: &'static str, listen: fn(&Settings) -> SocketAddr, build: B) -> ExitCode
where
    C: for<'a> From<&'a Settings>,
    B: FnOnce(Context, C) -> Fut,
    Fut: Future<Output = Result<ServiceApp, BuildError>>,
{
    match run_inner(name, listen, build).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sallyport-{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner<C, B, Fut>(
    name: &'static str,
    listen: fn(&Settings) -> SocketAddr,
    build: B,
) -> Result<(), BuildError>
where
    C: for<'a> From<&'a Settings>,
    B: FnOnce(Context, C) -> Fut,
    Fut: Future<Output = Result<ServiceApp, BuildError>>,
{
    let settings = Settings::load()?;
    let traces = crate::telemetry::init_traced(&settings.log, &settings.telemetry, &format!("sallyport-{name}"))?;
    if settings.database.migrate_on_start {
        store::db::migrate(&settings.database.url).await?;
    }
    let pool = store::db::pool(&settings.database)?;
    store::db::check(&pool, &settings.database.url).await?;
    let addr = listen(&settings);
    let workers = settings.listen.workers;
    let shutdown_timeout_secs = settings.listen.shutdown_timeout_secs.as_secs();
    let metrics = Metrics::new(&settings, Some(&pool));
    let ctx = Context { pool: pool.clone(), clock: Clock::system(), metrics };
    let admin = match settings.listen.admin.filter(|_| ctx.metrics.enabled()) {
        Some(addr) => {
            let server = crate::metrics::http::serve_admin(bind(addr)?, ctx.metrics.clone())?;
            tracing::info!(service = name, %addr, "metrics at /metrics");
            let handle = server.handle();
            tokio::spawn(server);
            Some(handle)
        }
        None => None,
    };
    let app = build(ctx, C::from(&settings)).await?;
    let listener = bind(addr)?;
    tracing::info!(service = name, %addr, "listening");
    let options = ServeOptions {
        workers,
        shutdown_timeout_secs,
        handle_signals: true,
        pool: Some(pool),
        ready: None,
        traces: TraceTrust::from_settings(&settings).filter(|_| traces.enabled()),
    };
    app.serve(listener, options)?.await?;
    if let Some(admin) = admin {
        admin.stop(true).await;
    }
    // the spans of the last requests are still queued
    let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    tracing::info!(service = name, "stopped");
    Ok(())
}

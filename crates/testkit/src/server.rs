//! Services started on free ports, exactly as production starts them (`server::http::serve`).

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use actix_web::web;
use server::http::{ServeOptions, serve};
use server::service::ServiceApp;
use store::Pool;

/// How long [`TestServer::stop`] lets in-flight requests finish (a drop stops at once).
const DRAIN_SECS: u64 = 5;

/// A running service; stopped when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub url: String,
    pub port: u16,
    handle: ServerHandle,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Stops as SIGTERM does: no new connections, in-flight requests may finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // the stop command is sent at once; waiting for it is not possible in drop
        drop(self.handle.stop(false));
    }
}

/// Starts a service with these routes on a free port of 127.0.0.1.
///
/// # Panics
/// When no port can be bound: the test cannot run at all then.
pub fn spawn<F>(pool: Option<Pool>, configure: F) -> TestServer
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    spawn_on(listener, pool, configure)
}

/// Like [`spawn`], on a listener the caller bound (to know the URL before building the service).
///
/// # Panics
/// When the listener has no local address.
pub fn spawn_on<F>(listener: TcpListener, pool: Option<Pool>, configure: F) -> TestServer
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let port = listener.local_addr().expect("local addr").port();
    let options = ServeOptions {
        workers: 2,
        shutdown_timeout_secs: DRAIN_SECS,
        handle_signals: false,
        pool,
        ready: None,
        traces: None,
    };
    let server = serve(listener, options, configure).expect("start server");
    let handle = server.handle();
    tokio::spawn(server);
    TestServer { url: format!("http://127.0.0.1:{port}"), port, handle }
}

/// Starts a built service (its routes and readiness check) on a free port of 127.0.0.1.
///
/// # Panics
/// When no port can be bound.
pub fn spawn_app(app: &ServiceApp, pool: Option<Pool>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    spawn_app_on(listener, app, pool)
}

/// Like [`spawn_app`], on a listener the caller bound.
///
/// # Panics
/// When the listener has no local address or the server cannot start.
pub fn spawn_app_on(listener: TcpListener, app: &ServiceApp, pool: Option<Pool>) -> TestServer {
    let port = listener.local_addr().expect("local addr").port();
    let options = ServeOptions {
        workers: 2,
        shutdown_timeout_secs: DRAIN_SECS,
        handle_signals: false,
        pool,
        ready: None,
        traces: None,
    };
    let server = app.serve(listener, options).expect("start server");
    let handle = server.handle();
    tokio::spawn(server);
    TestServer { url: format!("http://127.0.0.1:{port}"), port, handle }
}

//! The upstream client: hyper-util's pooled HTTP/1.1 client, TLS by rustls with the platform's
//! roots (the verifier reqwest uses), and nothing else. reqwest, which the hop used before, adds
//! layers a reverse proxy has no use for and pays for them on every request: its redirect policy
//! parses the request's URL (even with `Policy::none()`), the response's URL is parsed again,
//! the header map is cloned for redirects, and follow-redirect and retry services wrap the call:
//! about a fifth of the gateway's instructions per proxied request (BENCHMARKS.md, issue 19).
//!
//! What the proxy keeps from reqwest's settings: a connect timeout over TCP and the TLS handshake
//! (504 when it fires), `TCP_NODELAY`, idle pooled connections closed after 4 s (before the upstream closes them), TCP keep-alive
//! (15 s, probes every 15 s, 3 of them) and a 30 s TCP user timeout, so that a dead upstream under
//! a quiet event stream is noticed; no redirect is ever followed (a proxy passes them on) and no
//! `HTTP(S)_PROXY` is read (upstreams are reached directly).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::body::RequestBody;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream's answer once its headers are in; the body streams.
pub type UpstreamResponse = http::Response<hyper::body::Incoming>;

/// One pool of upstream connections (each worker has its own: `crate::worker_client`).
pub type UpstreamClient = hyper_util::client::legacy::Client<Connector, RequestBody>;

/// How long an idle pooled connection is kept: less than the 5 s after which actix (Sallyport's
/// own services), Node's `http` and uvicorn close an idle keep-alive connection, so the gateway
/// drops it first. Reused later, it could be closed by the server just as a request is written on
/// it, which HTTP/1.1 cannot retry safely for a POST (RFC 9112 §9.3.1): a 502 for the client.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// The TLS settings of every upstream connection, made once: rustls's TLS 1.3 and 1.2 with the
/// process's crypto provider (aws-lc-rs unless one was installed, as reqwest chooses), the
/// platform verifier (the system's roots; `rustls-platform-verifier`, as reqwest uses) and ALPN
/// `http/1.1`, the one protocol the client speaks.
pub fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A new client (a pool of its own) with these TLS settings and connect timeout.
pub fn build(tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> UpstreamClient {
    let mut http = HttpConnector::new();
    // `https` URIs pass through to the TLS layer above
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(15)));
    http.set_keepalive_interval(Some(Duration::from_secs(15)));
    http.set_keepalive_retries(Some(3));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    http.set_tcp_user_timeout(Some(Duration::from_secs(30)));
    let https = HttpsConnector::from((http, tls));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(Connector { https, timeout: connect_timeout })
}

/// The TLS connector with one timeout over the whole connect, TCP and TLS handshake: the
/// `HttpConnector`'s own timeout covers the TCP connect alone.
#[derive(Clone)]
pub struct Connector {
    https: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

/// The connect timeout fired.
#[derive(Debug)]
pub struct ConnectTimedOut;

impl std::fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connecting to the upstream timed out")
    }
}

impl std::error::Error for ConnectTimedOut {}

type Connection = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Connection;
    type Error = BoxError;
    // boxed: one allocation per new connection, not per request (pooled ones skip the connector)
    type Future = Pin<Box<dyn Future<Output = Result<Connection, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.https.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.https.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}

/// Whether a client error is a timeout: the connect timeout, or the system's (`ETIMEDOUT`).
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<ConnectTimedOut>()
            || e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// An error with its causes, `a: b: c`, for the log (hyper-util's own says only "client error
/// (Connect)"). No URL is in any of them.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_found_among_the_causes() {
        #[derive(Debug)]
        struct Wrap(BoxError);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        assert!(is_timeout(&Wrap(Box::new(ConnectTimedOut))));
        assert!(is_timeout(&Wrap(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)))));
        let refused = Wrap(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        assert!(!is_timeout(&refused));
        assert_eq!(Chain(&refused).to_string(), "client error (Connect): connection refused");
    }

    #[test]
    fn the_tls_settings_offer_http_1_1_only() {
        let config = tls_config().expect("tls");
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}

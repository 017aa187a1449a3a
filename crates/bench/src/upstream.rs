//! A trivial upstream: answers every GET with a tiny `ok`, and every POST as an MCP server answers
//! a `tools/call` (a small JSON-RPC result carrying the request's id). The gateway scenario proxies
//! to it and calls it directly for the baseline, the mcp scenario posts tool calls to it; the tests
//! use it as a stub server with chosen statuses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Picks the status of the n-th request (counting from 1).
pub type Responder = Arc<dyn Fn(u64) -> u16 + Send + Sync>;

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, respond: Responder) {
    let counter = Arc::new(AtomicU64::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // out of file descriptors and the like: wait a moment rather than spin
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (respond, counter) = (respond.clone(), counter.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                let status = StatusCode::from_u16(respond(n)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                async move {
                    let mut res = if req.method() == Method::POST {
                        let mut body = req.into_body();
                        let request = crate::conn::read_body(&mut body).await.unwrap_or_default();
                        let mut res = Response::new(tool_result(&request));
                        res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        res
                    } else {
                        Response::new(String::from("ok\n"))
                    };
                    *res.status_mut() = status;
                    Ok::<_, Infallible>(res)
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// What an MCP server answers to a `tools/call` (MCP 2025-11-25, "Tools"): a JSON-RPC result with
/// the request's id (null when the body has none) and one text content block.
fn tool_result(request: &[u8]) -> String {
    let id = serde_json::from_slice::<serde_json::Value>(request)
        .ok()
        .and_then(|mut v| v.get_mut("id").map(serde_json::Value::take))
        .unwrap_or_default();
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"3 open issues match"}}],"isError":false}}}}"#
    )
}

/// `sallyport-bench upstream --listen ADDR`: a 200 to everything, until killed.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!("sallyport-bench upstream: listening on {}", listener.local_addr()?);
    serve(listener, Arc::new(|_| 200)).await;
    Ok(())
}

/// A stub on a free loopback port, for tests: its address and the serving task.
pub async fn spawn(respond: Responder) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((addr, tokio::spawn(serve(listener, respond))))
}

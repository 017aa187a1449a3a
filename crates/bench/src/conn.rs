//! The timed workers' HTTP client: one HTTP/1.1 keep-alive connection per worker and target,
//! driven by hyper directly (as wrk does with its connections). The load generator shares two
//! cores with the stack it measures, so it must spend as little CPU per request as it can; a
//! pooled general-purpose client spent more CPU per request than the metadata service it loaded.
//! A connection the server closed between requests is reopened; one that fails during a request
//! counts as an error.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// A request body sent in one piece, with its exact length (hyper then sends `Content-Length`).
#[derive(Debug, Default)]
pub struct Payload(Option<Bytes>);

impl Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One connection to one origin.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Payload>>,
}

impl Conn {
    /// A connection to `url`'s origin, opened on first use.
    pub fn to(url: &Url) -> anyhow::Result<Self> {
        let addr = url.socket_addrs(|| None)?.into_iter().next().ok_or_else(|| anyhow::anyhow!("{url}: no address"))?;
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        Ok(Self { addr, host: HeaderValue::from_str(&host)?, sender: None })
    }

    async fn open(&self) -> Result<SendRequest<Payload>, String> {
        let stream =
            TcpStream::connect(self.addr).await.map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {}: {e}", self.addr))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends one request (`target` is the path and query) and reads the whole response.
    pub async fn send(
        &mut self,
        method: Method,
        target: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<Reply, String> {
        let what = || format!("{method} {}", target.split('?').next().unwrap_or_default());
        // reuse the connection unless the server closed it since the last response
        let reusable = match self.sender.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match reusable {
            Some(s) => s,
            None => self.open().await.map_err(|e| format!("{}: {e}", what()))?,
        };
        let mut builder = Request::builder().method(method.clone()).uri(target).header(HOST, self.host.clone());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Payload(body)).map_err(|e| format!("{}: bad request: {e}", what()))?;
        let response = sender.send_request(request).await.map_err(|e| format!("{}: {}", what(), brief(&e)))?;
        let (parts, mut incoming) = response.into_parts();
        let body = read_body(&mut incoming).await.map_err(|e| format!("{}: {}", what(), brief(&e)))?;
        self.sender = Some(sender);
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }

    pub async fn get(&mut self, target: &str, headers: &[(HeaderName, HeaderValue)]) -> Result<Reply, String> {
        self.send(Method::GET, target, headers, None).await
    }
}

pub(crate) async fn read_body(incoming: &mut Incoming) -> Result<Bytes, hyper::Error> {
    let mut chunks: Vec<Bytes> = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *incoming).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            chunks.push(data);
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

fn brief(e: &hyper::Error) -> &'static str {
    if e.is_incomplete_message() {
        "connection closed before the response"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_canceled() {
        "request canceled"
    } else if e.is_parse() {
        "malformed response"
    } else {
        "connection failed"
    }
}

/// "POST /oauth2/token: 400 invalid_grant": a refused request, with the OAuth error code if any.
pub fn refused(what: &str, reply: &Reply) -> String {
    format!("{what}: {}{}", reply.status.as_u16(), crate::client::error_code(&reply.body))
}

/// The path and query of a URL: what goes on the request line.
pub fn target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread")]
    async fn keeps_the_connection_and_reopens_a_closed_one() {
        let (addr, server) = crate::upstream::spawn(Arc::new(|n| if n == 2 { 404 } else { 200 })).await.expect("stub");
        let url = Url::parse(&format!("http://{addr}/x?q=1")).expect("url");
        let mut conn = Conn::to(&url).expect("conn");
        let first = conn.get(&target(&url), &[]).await.expect("first");
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(&first.body[..], b"ok\n");
        let second = conn.send(Method::POST, "/y", &[], Some(Bytes::from_static(b"a=1"))).await.expect("second");
        assert_eq!(second.status, StatusCode::NOT_FOUND);
        assert_eq!(refused("POST /y", &second), "POST /y: 404");
        server.abort();
        let _ = server.await;
        // the serving task is gone but its connection task may still answer; either way no panic,
        // and a fresh connection to a closed port is an error that names the request
        let mut fresh = Conn::to(&url).expect("conn");
        let e = fresh.get("/z?secret=1", &[]).await.expect_err("nothing listens");
        assert!(e.starts_with("GET /z: cannot connect"), "{e}");
    }

    #[test]
    fn payload_length_and_targets() {
        let p = Payload(Some(Bytes::from_static(b"abc")));
        assert_eq!(p.size_hint().exact(), Some(3));
        assert!(!p.is_end_stream());
        assert!(Payload::default().is_end_stream());
        let url = Url::parse("http://127.0.0.1:1/a/b?c=d").expect("url");
        assert_eq!(target(&url), "/a/b?c=d");
        let reply = Reply {
            status: StatusCode::BAD_REQUEST,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"error":"invalid_grant"}"#),
        };
        assert_eq!(refused("POST /oauth2/token", &reply), "POST /oauth2/token: 400 invalid_grant");
    }
}

//! Bodies in both directions, streamed. actix's request payload lives on one worker thread while
//! the upstream connection's task is spawned apart from the request, so a small local task pumps
//! the payload into a bounded channel (backpressure: the client is read only as fast as the
//! upstream takes it). The response body is hyper's, handed to actix as it is.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::body::{BodySize, BoxBody, MessageBody, SizedStream};
use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use protocol::error::ErrorCode;
use server::error::OAuthError;

use super::client::UpstreamResponse;

/// Request bodies up to this size with a declared length are read whole and sent in one piece:
/// cheaper than the pump for the small JSON-RPC messages MCP sends. Larger or chunked bodies stream.
pub const BUFFER_LIMIT: u64 = 64 * 1024;

/// Chunks in flight between the client and the upstream.
const PUMP_DEPTH: usize = 8;

/// The body of an upstream request. Its size hint is what hyper frames the request by when no
/// `Content-Length` came with it: exact for `Empty` and `Full`, unknown (chunked) for `Pumped`.
#[derive(Debug)]
pub enum RequestBody {
    Empty,
    /// Sent in one piece (`None` once sent).
    Full(Option<Bytes>),
    /// The client's payload as the pump passes it on.
    Pumped(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl RequestBody {
    pub fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match &mut *self {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Pumped(rx) => rx.poll_recv(cx).map(|item| item.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Empty | Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty | Self::Full(None) => SizeHint::with_exact(0),
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Pumped(_) => SizeHint::default(),
        }
    }
}

/// The upstream request's body for a client payload.
pub async fn request_body(
    mut payload: web::Payload,
    has_body: bool,
    length: Option<u64>,
) -> Result<RequestBody, OAuthError> {
    if !has_body {
        return Ok(RequestBody::Empty);
    }
    if let Some(len) = length.filter(|n| *n <= BUFFER_LIMIT) {
        let mut buf = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| OAuthError::invalid_request(format!("cannot read the request body: {e}")))?;
            if buf.len() + chunk.len() > usize::try_from(BUFFER_LIMIT).unwrap_or(usize::MAX) {
                return Err(OAuthError::new(ErrorCode::PayloadTooLarge, "the request body is longer than declared"));
            }
            buf.extend_from_slice(&chunk);
        }
        return Ok(RequestBody::full(buf.freeze()));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PUMP_DEPTH);
    actix_web::rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            // the upstream request is gone (answered early, timed out or cancelled): stop reading
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    Ok(RequestBody::Pumped(rx))
}

/// How the client's response is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// 204, 304 and 1xx: no body at all.
    Empty,
    /// A `HEAD` response: the upstream's length, no bytes.
    Head(Option<u64>),
    /// A body of known length.
    Sized(u64),
    /// Chunked, each upstream chunk passed on as it arrives (Server-Sent Events).
    Stream,
}

/// Decides the framing of a response from its status, the request method and the upstream's length.
pub fn framing(status: u16, head: bool, length: Option<u64>) -> Framing {
    match (status, head) {
        (100..=199 | 204 | 304, _) => Framing::Empty,
        (_, true) => Framing::Head(length),
        _ => length.map_or(Framing::Stream, Framing::Sized),
    }
}

/// The client's response body: the upstream's byte stream, passed on chunk by chunk. Dropping it
/// (the client went away) drops the upstream response, which closes that upstream connection.
pub fn response_body(upstream: UpstreamResponse, framing: Framing) -> BoxBody {
    let body = upstream.into_body();
    match framing {
        Framing::Empty | Framing::Head(None) => ().boxed(),
        Framing::Head(Some(len)) => {
            SizedStream::new(len, futures_util::stream::empty::<Result<Bytes, hyper::Error>>()).boxed()
        }
        Framing::Sized(len) => UpstreamBody { body, size: BodySize::Sized(len) }.boxed(),
        Framing::Stream => UpstreamBody { body, size: BodySize::Stream }.boxed(),
    }
}

/// The data of an upstream response as a stream of chunks (trailers dropped), for a body the
/// gateway rewrites as it flows.
pub fn data_stream(upstream: UpstreamResponse) -> http_body_util::BodyDataStream<Incoming> {
    http_body_util::BodyDataStream::new(upstream.into_body())
}

/// hyper's response body as actix's: its data frames, in the framing decided for the client.
struct UpstreamBody {
    body: Incoming,
    size: BodySize,
}

impl MessageBody for UpstreamBody {
    type Error = hyper::Error;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, hyper::Error>>> {
        loop {
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                // an empty chunk would end a chunked body early (actix writes it as `0\r\n\r\n`);
                // trailers are not passed on (the framing to the client may not be chunked)
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                    _ => {}
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_rules() {
        assert_eq!(framing(204, false, None), Framing::Empty);
        assert_eq!(framing(304, false, Some(10)), Framing::Empty);
        assert_eq!(framing(200, true, Some(10)), Framing::Head(Some(10)));
        assert_eq!(framing(200, false, Some(10)), Framing::Sized(10));
        assert_eq!(framing(200, false, None), Framing::Stream);
    }
}

//! Bodies in both directions, streamed. actix's request payload lives on one worker thread while
//! reqwest's connection task may run anywhere, so a small local task pumps the payload into a
//! bounded channel (backpressure: the client is read only as fast as the upstream takes it).

use actix_web::body::{BodyStream, BoxBody, MessageBody, SizedStream};
use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use protocol::error::ErrorCode;
use server::error::OAuthError;

/// Request bodies up to this size with a declared length are read whole and sent in one piece:
/// cheaper than the pump for the small JSON-RPC messages MCP sends. Larger or chunked bodies stream.
pub const BUFFER_LIMIT: u64 = 64 * 1024;

/// Chunks in flight between the client and the upstream.
const PUMP_DEPTH: usize = 8;

/// The upstream request's body for a client payload.
pub async fn request_body(
    mut payload: web::Payload,
    has_body: bool,
    length: Option<u64>,
) -> Result<Option<reqwest::Body>, OAuthError> {
    if !has_body {
        return Ok(None);
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
        return Ok(Some(reqwest::Body::from(buf.freeze())));
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
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(Some(reqwest::Body::wrap_stream(stream)))
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
pub fn response_body(upstream: reqwest::Response, framing: Framing) -> BoxBody {
    let stream = upstream.bytes_stream();
    match framing {
        Framing::Empty | Framing::Head(None) => ().boxed(),
        Framing::Head(Some(len)) => {
            SizedStream::new(len, futures_util::stream::empty::<Result<Bytes, reqwest::Error>>()).boxed()
        }
        Framing::Sized(len) => SizedStream::new(len, stream).boxed(),
        Framing::Stream => BodyStream::new(stream).boxed(),
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

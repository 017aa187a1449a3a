//! The JSON request body of registration and update, read by hand so that every failure is an
//! OAuth error: a body that is not `application/json` is `invalid_client_metadata` (RFC 7591 §3.1),
//! one over the limit is 413 with a JSON body, never actix's plain-text default.

use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{self, BytesMut};
use futures_util::StreamExt;
use protocol::ErrorCode;
use server::OAuthError;

/// The largest registration body accepted. Real clients send well under 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

fn too_large() -> OAuthError {
    OAuthError::new(ErrorCode::PayloadTooLarge, format!("the request body exceeds {MAX_BODY_BYTES} bytes"))
}

/// Whether the request declares a JSON body: `application/json`, parameters such as `charset` allowed.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the whole body of a JSON request, refusing other content types (400
/// `invalid_client_metadata`) and bodies over [`MAX_BODY_BYTES`] (413), whether declared by
/// `Content-Length` or discovered while streaming a chunked body.
pub async fn read_json(headers: &HeaderMap, mut payload: web::Payload) -> Result<web::Bytes, OAuthError> {
    if !is_json(headers) {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the request body must be a JSON object sent as application/json",
        ));
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(MAX_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| OAuthError::invalid_request(format!("the request body could not be read: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn with_type(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).expect("header value"));
        h
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(&with_type("application/json")));
        assert!(is_json(&with_type("application/json; charset=utf-8")));
        assert!(is_json(&with_type("Application/JSON;charset=UTF-8")));
        assert!(!is_json(&with_type("text/plain")));
        assert!(!is_json(&with_type("application/x-www-form-urlencoded")));
        assert!(!is_json(&with_type("application/jsonp")));
        assert!(!is_json(&HeaderMap::new()));
    }
}

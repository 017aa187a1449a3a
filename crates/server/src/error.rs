//! The OAuth error a handler returns: RFC 6749 §5.2 JSON (protocol's `ErrorResponse`) with the
//! status each RFC assigns, rendered through actix's `ResponseError` (which must be implemented
//! where the type is defined, hence here and not in protocol).
//!
//! Internal failures become an opaque `server_error`; their detail goes to the log, never the body.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use protocol::error::{ErrorCode, ErrorResponse, json_body};

/// An OAuth error response. Build it with the constructors; render it through actix's `ResponseError`.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Option<Cow<'static, str>>,
    /// A `WWW-Authenticate` challenge to send with it (RFC 6749 §5.2 Basic, RFC 6750 §3 Bearer).
    pub challenge: Option<String>,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Overrides the code's status where an RFC asks for another (e.g. 401 for a bad registration token).
    pub status: Option<StatusCode>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: Some(description.into()), challenge: None, retry_after: None, status: None }
    }

    pub fn bare(code: ErrorCode) -> Self {
        Self { code, description: None, challenge: None, retry_after: None, status: None }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub fn invalid_target(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }

    pub fn not_found(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, description)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self { retry_after: Some(retry_after_secs.max(1)), ..Self::new(ErrorCode::RateLimited, "too many requests") }
    }

    /// An internal failure: logged with its cause, answered as an opaque 500.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::ServerError, "the server could not complete the request")
    }

    /// The database or another dependency is unavailable right now: 503 with `Retry-After`.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self {
            retry_after: Some(1),
            ..Self::new(ErrorCode::TemporarilyUnavailable, "the service is temporarily unavailable")
        }
    }

    pub fn with_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.challenge = Some(challenge.into());
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The JSON body, for callers that render it themselves.
    pub fn body_json(&self) -> String {
        json_body(self.code, self.description.as_deref())
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => write!(f, "{}: {d}", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

impl std::error::Error for OAuthError {}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
            .unwrap_or_else(|| StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        // RFC 6749 §5.1/§5.2: error responses from the token endpoint must not be cached either.
        res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let Some(challenge) = &self.challenge
            && let Ok(value) = HeaderValue::from_str(challenge)
        {
            res.insert_header((header::WWW_AUTHENTICATE, value));
        }
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.body(self.body_json())
    }
}

/// A protocol rule's refusal, answered with its code's status.
impl From<ErrorResponse> for OAuthError {
    fn from(e: ErrorResponse) -> Self {
        Self { code: e.code, description: e.description, challenge: None, retry_after: None, status: None }
    }
}

impl From<store::Error> for OAuthError {
    fn from(e: store::Error) -> Self {
        Self::internal(e)
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        Self::internal(e)
    }
}

impl From<store::db::PoolError> for OAuthError {
    fn from(e: store::db::PoolError) -> Self {
        Self::unavailable(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: &OAuthError) -> serde_json::Value {
        let res = e.error_response();
        let bytes = res.into_body().try_into_bytes().expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(OAuthError::invalid_client("x").status_code(), StatusCode::UNAUTHORIZED);
        assert_eq!(OAuthError::invalid_grant("x").status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(OAuthError::bare(ErrorCode::InsufficientScope).status_code(), StatusCode::FORBIDDEN);
        assert_eq!(OAuthError::bare(ErrorCode::InvalidToken).status_code(), StatusCode::UNAUTHORIZED);
        assert_eq!(OAuthError::rate_limited(3).status_code(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            OAuthError::invalid_request("x").with_status(StatusCode::UNAUTHORIZED).status_code(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn body_is_rfc6749_json_without_nulls() {
        let e = OAuthError::invalid_grant("code expired");
        assert_eq!(body_of(&e), serde_json::json!({"error": "invalid_grant", "error_description": "code expired"}));
        let bare = OAuthError::bare(ErrorCode::AccessDenied);
        assert_eq!(body_of(&bare), serde_json::json!({"error": "access_denied"}));
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e = OAuthError::internal("relation \"clients\" does not exist at 10.0.0.5");
        let body = body_of(&e).to_string();
        assert!(!body.contains("clients"));
        assert!(!body.contains("10.0.0.5"));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn headers_carry_challenge_and_retry_after() {
        let res = OAuthError::invalid_client("bad secret").with_challenge("Basic realm=\"sallyport\"").error_response();
        assert_eq!(res.headers().get(header::WWW_AUTHENTICATE).expect("challenge"), "Basic realm=\"sallyport\"");
        assert_eq!(res.headers().get(header::CACHE_CONTROL).expect("cache"), "no-store");
        let res = OAuthError::rate_limited(0).error_response();
        assert_eq!(res.headers().get(header::RETRY_AFTER).expect("retry"), "1");
    }

    #[test]
    fn protocol_refusals_keep_code_and_description() {
        let e = OAuthError::from(ErrorResponse::new(ErrorCode::InvalidRedirectUri, "not https"));
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(body_of(&e), serde_json::json!({"error": "invalid_redirect_uri", "error_description": "not https"}));
    }
}

//! The one OAuth error type: RFC 6749 §5.2 JSON with the status each RFC assigns.
//!
//! Internal failures become an opaque `server_error`; their detail goes to the log, never the body.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 8707 §2 and OIDC prompt errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    UnsupportedResponseType,
    UnsupportedTokenType,
    ServerError,
    TemporarilyUnavailable,
    InvalidClientMetadata,
    InvalidRedirectUri,
    InvalidToken,
    InsufficientScope,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    NotFound,
    RateLimited,
    PayloadTooLarge,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
            Self::PayloadTooLarge => "invalid_request",
        }
    }

    /// The status each RFC assigns: 401 for client authentication and bearer tokens
    /// (RFC 6749 §5.2, RFC 6750 §3.1), 403 for scope, 5xx for server trouble, else 400.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
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
        serde_json::to_string(&Body { error: self.code.as_str(), error_description: self.description.as_deref() })
            .unwrap_or_else(|_| r#"{"error":"server_error"}"#.to_owned())
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
        self.status.unwrap_or_else(|| self.code.status())
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

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        Self::internal(e)
    }
}

impl From<crate::db::PoolError> for OAuthError {
    fn from(e: crate::db::PoolError) -> Self {
        Self::unavailable(e)
    }
}

/// Escapes a value for a quoted-string in `WWW-Authenticate` (RFC 9110 §5.6.4).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // header values cannot carry control characters
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
    fn quoting_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), "\"x y\"");
    }
}

//! OAuth error codes with the status each RFC assigns, and the RFC 6749 §5.2 error shape.

use std::borrow::Cow;
use std::fmt;

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
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope => 403,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            Self::NotFound => 404,
            Self::RateLimited => 429,
            Self::PayloadTooLarge => 413,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RFC 6749 §5.2 error shape, `{"error": ..., "error_description": ...}`: what a protocol rule
/// answers when it refuses. The server turns it into a response with the code's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub code: ErrorCode,
    pub description: Option<Cow<'static, str>>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl ErrorResponse {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: Some(description.into()) }
    }

    pub fn bare(code: ErrorCode) -> Self {
        Self { code, description: None }
    }

    /// The JSON body: `error`, and `error_description` only when there is one (no nulls).
    pub fn to_json(&self) -> String {
        json_body(self.code, self.description.as_deref())
    }
}

/// The RFC 6749 §5.2 JSON body for `code` and an optional description.
pub fn json_body(code: ErrorCode, description: Option<&str>) -> String {
    serde_json::to_string(&Body { error: code.as_str(), error_description: description })
        .unwrap_or_else(|_| r#"{"error":"server_error"}"#.to_owned())
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => write!(f, "{}: {d}", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

impl std::error::Error for ErrorResponse {}

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

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(ErrorCode::InvalidClient.status(), 401);
        assert_eq!(ErrorCode::InvalidGrant.status(), 400);
        assert_eq!(ErrorCode::InsufficientScope.status(), 403);
        assert_eq!(ErrorCode::InvalidToken.status(), 401);
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::TemporarilyUnavailable.status(), 503);
        // RFC 6749 has no code for an oversized body: it is an invalid_request with 413
        assert_eq!(
            (ErrorCode::PayloadTooLarge.as_str(), ErrorCode::PayloadTooLarge.status()),
            ("invalid_request", 413)
        );
    }

    #[test]
    fn body_is_rfc6749_json_without_nulls() {
        let body = |e: &ErrorResponse| serde_json::from_str::<serde_json::Value>(&e.to_json()).expect("json");
        let e = ErrorResponse::new(ErrorCode::InvalidGrant, "code expired");
        assert_eq!(body(&e), serde_json::json!({"error": "invalid_grant", "error_description": "code expired"}));
        assert_eq!(body(&ErrorResponse::bare(ErrorCode::AccessDenied)), serde_json::json!({"error": "access_denied"}));
        assert_eq!(e.to_string(), "invalid_grant: code expired");
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), "\"x y\"");
    }
}

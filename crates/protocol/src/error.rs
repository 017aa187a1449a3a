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
    /// Every code, for the OpenAPI document's list of the `error` values a client may meet.
    pub const ALL: [Self; 22] = [
        Self::InvalidRequest,
        Self::InvalidClient,
        Self::InvalidGrant,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::InvalidScope,
        Self::InvalidTarget,
        Self::AccessDenied,
        Self::UnsupportedResponseType,
        Self::UnsupportedTokenType,
        Self::ServerError,
        Self::TemporarilyUnavailable,
        Self::InvalidClientMetadata,
        Self::InvalidRedirectUri,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::LoginRequired,
        Self::ConsentRequired,
        Self::InteractionRequired,
        Self::NotFound,
        Self::RateLimited,
        Self::PayloadTooLarge,
    ];

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

/// The RFC 6749 §5.2 error response body: what every endpoint answers when it refuses a request.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// The error code (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 8707 §2).
    #[schema(value_type = ErrorCode)]
    pub error: &'a str,
    /// A human-readable explanation, never internal detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error_description: Option<&'a str>,
}

/// The `error` values, as the JSON carries them (`as_str`, so the schema cannot name a code the
/// server never sends).
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut codes: Vec<&'static str> = Self::ALL.iter().map(|c| c.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(codes))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

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
    serde_json::to_string(&ErrorBody { error: code.as_str(), error_description: description })
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
    fn every_code_is_listed() {
        // exhaustive: a new variant fails to compile here until ALL lists it too
        let position = |c: ErrorCode| match c {
            ErrorCode::InvalidRequest => 0,
            ErrorCode::InvalidClient => 1,
            ErrorCode::InvalidGrant => 2,
            ErrorCode::UnauthorizedClient => 3,
            ErrorCode::UnsupportedGrantType => 4,
            ErrorCode::InvalidScope => 5,
            ErrorCode::InvalidTarget => 6,
            ErrorCode::AccessDenied => 7,
            ErrorCode::UnsupportedResponseType => 8,
            ErrorCode::UnsupportedTokenType => 9,
            ErrorCode::ServerError => 10,
            ErrorCode::TemporarilyUnavailable => 11,
            ErrorCode::InvalidClientMetadata => 12,
            ErrorCode::InvalidRedirectUri => 13,
            ErrorCode::InvalidToken => 14,
            ErrorCode::InsufficientScope => 15,
            ErrorCode::LoginRequired => 16,
            ErrorCode::ConsentRequired => 17,
            ErrorCode::InteractionRequired => 18,
            ErrorCode::NotFound => 19,
            ErrorCode::RateLimited => 20,
            ErrorCode::PayloadTooLarge => 21,
        };
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), i);
        }
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), "\"x y\"");
    }
}

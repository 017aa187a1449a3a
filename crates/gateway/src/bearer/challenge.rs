//! RFC 6750 §3 answers: exactly one `WWW-Authenticate` challenge, `Bearer` first, carrying the
//! RFC 9728 `resource_metadata` URL so that MCP clients can discover the authorization server.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use protocol::error::{ErrorCode, quote};
use protocol::scope::Scopes;
use server::error::OAuthError;

/// Why a request to a protected resource was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No bearer token at all: 401 without an error code (RFC 6750 §3.1).
    NoToken,
    /// 400 `invalid_request`: malformed, or more than one method used.
    InvalidRequest(Cow<'static, str>),
    /// 401 `invalid_token`: bad signature, expired, revoked, another audience...
    InvalidToken(String),
    /// 403 `insufficient_scope`.
    InsufficientScope,
    /// 413: a form body too large to look for a token in.
    TooLarge,
    /// 503: the token cannot be judged now.
    Unavailable,
}

/// What the challenges of one protected resource say.
#[derive(Debug, Clone)]
pub struct ChallengeParams<'a> {
    pub resource_metadata: &'a str,
    /// The full set the request needs (base scopes plus the method's).
    pub scopes: &'a Scopes,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` value, if this rejection has one.
    pub fn challenge(&self, params: &ChallengeParams<'_>) -> Option<String> {
        let (error, description): (&str, &str) = match self {
            Self::NoToken => return Some(bearer(None, params)),
            Self::InvalidRequest(d) => ("invalid_request", d),
            Self::InvalidToken(d) => ("invalid_token", d),
            Self::InsufficientScope => ("insufficient_scope", "the token lacks a scope this request needs"),
            Self::TooLarge | Self::Unavailable => return None,
        };
        Some(bearer(Some((error, description)), params))
    }

    /// The complete response: the challenge plus an RFC 6749 §5.2-style JSON body.
    pub fn response(&self, params: &ChallengeParams<'_>) -> HttpResponse {
        let mut error = match self {
            Self::NoToken => {
                // RFC 6750 §3.1: no error code for a request without credentials; the body only explains
                let mut res = HttpResponse::build(self.status());
                res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
                if let Some(challenge) = self.challenge(params).and_then(|c| HeaderValue::from_str(&c).ok()) {
                    res.insert_header((header::WWW_AUTHENTICATE, challenge));
                }
                return res.content_type("application/json").body(
                    r#"{"error":"unauthorized","error_description":"this resource needs an access token: see WWW-Authenticate"}"#,
                );
            }
            Self::InvalidRequest(d) => OAuthError::invalid_request(d.clone()),
            Self::InvalidToken(d) => OAuthError::new(ErrorCode::InvalidToken, d.clone()),
            Self::InsufficientScope => OAuthError::new(
                ErrorCode::InsufficientScope,
                format!("this request needs the scopes: {}", params.scopes),
            ),
            Self::TooLarge => OAuthError::new(ErrorCode::PayloadTooLarge, "the request body is too large"),
            Self::Unavailable => OAuthError {
                retry_after: Some(1),
                ..OAuthError::new(ErrorCode::TemporarilyUnavailable, "the token cannot be verified right now")
            },
        };
        if let Some(challenge) = self.challenge(params) {
            error = error.with_challenge(challenge);
        }
        error.error_response()
    }
}

/// `Bearer [error="...", error_description="...", ]resource_metadata="...", scope="..."`.
fn bearer(error: Option<(&str, &str)>, params: &ChallengeParams<'_>) -> String {
    let mut parts = Vec::with_capacity(4);
    if let Some((code, description)) = error {
        parts.push(format!("error={}", quote(code)));
        parts.push(format!("error_description={}", quote(description)));
    }
    parts.push(format!("resource_metadata={}", quote(params.resource_metadata)));
    if !params.scopes.is_empty() {
        parts.push(format!("scope={}", quote(&params.scopes.to_string())));
    }
    format!("Bearer {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(scopes: &Scopes) -> ChallengeParams<'_> {
        ChallengeParams { resource_metadata: "https://gw.example/.well-known/oauth-protected-resource/mcp", scopes }
    }

    #[test]
    fn no_token_has_no_error_code() {
        let scopes = Scopes::parse("mcp tools:call").expect("scopes");
        assert_eq!(
            Rejection::NoToken.challenge(&params(&scopes)).as_deref(),
            Some(
                r#"Bearer resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp", scope="mcp tools:call""#
            )
        );
        let none = Scopes::default();
        assert_eq!(
            Rejection::NoToken.challenge(&params(&none)).as_deref(),
            Some(r#"Bearer resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp""#)
        );
    }

    #[test]
    fn errors_carry_code_description_and_metadata() {
        let scopes = Scopes::parse("mcp").expect("scopes");
        let c =
            Rejection::InvalidToken("the token has \"expired\"".into()).challenge(&params(&scopes)).expect("challenge");
        assert_eq!(
            c,
            r#"Bearer error="invalid_token", error_description="the token has \"expired\"", resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp", scope="mcp""#
        );
        let c = Rejection::InsufficientScope.challenge(&params(&scopes)).expect("challenge");
        assert!(c.starts_with(r#"Bearer error="insufficient_scope""#) && c.ends_with(r#"scope="mcp""#), "{c}");
        assert_eq!(Rejection::Unavailable.challenge(&params(&scopes)), None);
        assert_eq!(Rejection::InsufficientScope.status(), StatusCode::FORBIDDEN);
        assert_eq!(Rejection::InvalidRequest("x".into()).status(), StatusCode::BAD_REQUEST);
    }
}

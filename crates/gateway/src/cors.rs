//! CORS and the `Origin` allow-list, as one middleware. Public documents and endpoints answer any
//! origin with `Access-Control-Allow-Origin: *` and no credentials; a protected resource answers
//! only its allowed origins and its own, and refuses any other browser origin with 403 — the
//! DNS-rebinding protection the MCP transport asks of servers. Preflights are answered here,
//! before authentication (a browser never sends credentials on a preflight).

use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use protocol::error::ErrorCode;
use server::error::OAuthError;

use crate::middleware::{Around, Middleware, Next};

/// Request headers browser clients may send (MCP's Streamable HTTP and the OAuth endpoints);
/// `mcp-method` and `mcp-name` are the request metadata of the 2026-07-28 transport revision.
pub const ALLOWED_HEADERS: &str =
    "authorization, content-type, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, last-event-id";
/// Response headers browser clients must be able to read (the challenge, the MCP session).
pub const EXPOSED_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version";
/// Methods of the authorization server's public endpoints.
pub const PUBLIC_METHODS: &str = "GET, POST, PUT, DELETE";
/// Methods of a protected resource.
pub const RESOURCE_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// How long a browser may reuse a preflight answer (Chromium caps it at two hours).
const MAX_AGE: &str = "7200";

/// Which origins get CORS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Every origin, answered with `*` (never with credentials).
    Any,
    /// These serialised origins (`scheme://host[:port]`, normalised), answered by reflection.
    List(Vec<String>),
}

/// What [`Cors`] answers and refuses.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Origins,
    /// Same-origin callers: never refused.
    own: Vec<String>,
    /// Refuse other origins with 403 (protected resources), instead of merely not answering CORS.
    enforce: bool,
    methods: &'static str,
}

/// The middleware factory; cheap to clone (one per worker).
pub type Cors = Middleware<CorsPolicy>;

/// `scheme://host[:port]` in its serialised form (lowercase host, default port dropped); `None`
/// for an opaque origin (`null`, `file:`) or something that is no origin.
pub fn normalise_origin(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

impl Middleware<CorsPolicy> {
    /// `*` for every origin, no credentials: well-known documents, registration, token, revocation.
    pub fn public() -> Self {
        Self(Arc::new(CorsPolicy { origins: Origins::Any, own: Vec::new(), enforce: false, methods: PUBLIC_METHODS }))
    }

    /// A protected resource: `allowed` browser origins (`*` allows all, dropping the rebinding
    /// protection) plus the resource's `own` origins; any other origin is refused with 403.
    pub fn for_resource(allowed: &[String], own: &[String]) -> Result<Self, String> {
        let normalise = |list: &[String]| -> Result<Vec<String>, String> {
            list.iter().map(|o| normalise_origin(o).ok_or_else(|| format!("{o} is not an http(s) origin"))).collect()
        };
        let origins = if allowed.iter().any(|o| o == "*") { Origins::Any } else { Origins::List(normalise(allowed)?) };
        Ok(Self(Arc::new(CorsPolicy { origins, own: normalise(own)?, enforce: true, methods: RESOURCE_METHODS })))
    }
}

/// How a request's origin stands with a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// No `Origin` header: not a browser's cross-origin call.
    NoOrigin,
    /// Answer CORS with this `Access-Control-Allow-Origin` value.
    Allowed(HeaderValue),
    Refused,
}

impl CorsPolicy {
    fn standing(&self, headers: &HeaderMap) -> Standing {
        let Some(origin) = headers.get(header::ORIGIN) else { return Standing::NoOrigin };
        if self.origins == Origins::Any {
            return Standing::Allowed(HeaderValue::from_static("*"));
        }
        let Some(normalised) = origin.to_str().ok().and_then(normalise_origin) else { return Standing::Refused };
        let listed = matches!(&self.origins, Origins::List(list) if list.contains(&normalised));
        if listed || self.own.contains(&normalised) { Standing::Allowed(origin.clone()) } else { Standing::Refused }
    }

    fn preflight(&self, allow_origin: HeaderValue) -> HttpResponse {
        let mut res = HttpResponse::NoContent();
        if allow_origin != "*" {
            res.insert_header((header::VARY, "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"));
        }
        res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, self.methods))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
            .finish()
    }
}

fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn refused() -> HttpResponse {
    OAuthError::new(ErrorCode::AccessDenied, "requests from this origin are not allowed")
        .with_status(StatusCode::FORBIDDEN)
        .error_response()
}

/// Replaces whatever CORS headers the upstream sent with this policy's.
fn decorate(headers: &mut HeaderMap, allow_origin: HeaderValue) {
    let upstream: Vec<HeaderName> =
        headers.keys().filter(|k| k.as_str().starts_with("access-control-")).cloned().collect();
    for name in upstream {
        headers.remove(name);
    }
    if allow_origin != "*" {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
}

impl Around for CorsPolicy {
    async fn around<S, B>(
        self: Rc<Self>,
        req: ServiceRequest,
        next: Next<S>,
    ) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error>
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
        B: MessageBody + 'static,
    {
        let allow_origin = match self.standing(req.headers()) {
            Standing::Allowed(origin) if is_preflight(&req) => {
                let res = self.preflight(origin);
                return Ok(req.into_response(res).map_into_right_body());
            }
            Standing::Refused if self.enforce || is_preflight(&req) => {
                return Ok(req.into_response(refused()).map_into_right_body());
            }
            Standing::Allowed(origin) => Some(origin),
            Standing::NoOrigin if self.origins == Origins::Any => Some(HeaderValue::from_static("*")),
            Standing::NoOrigin | Standing::Refused => None,
        };
        let mut res = next.call(req).await?;
        if let Some(origin) = allow_origin {
            decorate(res.headers_mut(), origin);
        }
        Ok(res.map_into_left_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("value"));
        }
        h
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(normalise_origin("HTTP://LocalHost:6274").as_deref(), Some("http://localhost:6274"));
        assert_eq!(normalise_origin("https://a.example:443").as_deref(), Some("https://a.example"));
        assert_eq!(normalise_origin("null"), None);
        assert_eq!(normalise_origin("file:///x"), None);
    }

    #[test]
    fn resource_standing() {
        let cors = Cors::for_resource(&["http://localhost:6274".into()], &["https://gw.example".into()]).expect("cors");
        let p = &cors.0;
        assert_eq!(p.standing(&headers(None)), Standing::NoOrigin);
        assert_eq!(
            p.standing(&headers(Some("http://localhost:6274"))),
            Standing::Allowed(HeaderValue::from_static("http://localhost:6274"))
        );
        assert!(matches!(p.standing(&headers(Some("https://gw.example"))), Standing::Allowed(_)));
        assert_eq!(p.standing(&headers(Some("http://evil.example"))), Standing::Refused);
        assert_eq!(p.standing(&headers(Some("http://localhost:6275"))), Standing::Refused);
        assert_eq!(p.standing(&headers(Some("null"))), Standing::Refused);
        let any = Cors::for_resource(&["*".into()], &[]).expect("cors");
        assert_eq!(
            any.0.standing(&headers(Some("http://x.example"))),
            Standing::Allowed(HeaderValue::from_static("*"))
        );
        assert!(Cors::for_resource(&["not an origin".into()], &[]).is_err());
    }

    #[test]
    fn upstream_cors_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("http://other"));
        decorate(&mut h, HeaderValue::from_static("*"));
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert_eq!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).expect("acao"), "*");
        assert_eq!(h.get(header::ACCESS_CONTROL_EXPOSE_HEADERS).expect("aceh"), EXPOSED_HEADERS);
    }
}

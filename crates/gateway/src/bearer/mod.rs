//! The RFC 6750 bearer-token middleware, for any actix resource server: wrap a scope or resource in
//! [`BearerAuth`] and every request, whatever its method or path, must carry a valid access token
//! for the resource, with the scopes it needs, before it reaches the service inside (so a 401
//! always comes before a 404 or 405). On success the client's `Authorization` header is removed,
//! client-sent `X-Sallyport-*` headers are replaced by the verified identity, and the handler can
//! take a [`crate::Principal`]. Pair it with [`crate::Cors`] for the browser `Origin` allow-list.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use actix_web::{App, web};
//! # use gateway::{BearerAuth, Cors, Principal, ResourcePolicy, TokenVerifier, VerifierConfig};
//! # fn build(config: VerifierConfig) -> Result<(), String> {
//! let verifier = Arc::new(TokenVerifier::new(config, protocol::Clock::system())?);
//! let policy = ResourcePolicy { resource: "https://mcp.example.com/mcp".into(), scopes: vec!["mcp".into()], ..Default::default() };
//! let auth = BearerAuth::new(verifier, policy)?;
//! let cors = Cors::for_resource(&["http://localhost:6274".into()], &["https://mcp.example.com".into()])?;
//! let app = App::new().service(
//!     web::scope("/mcp").wrap(auth).wrap(cors).default_service(web::to(|p: Principal| async move { p.subject().to_owned() })),
//! );
//! # Ok(()) }
//! ```

pub mod challenge;
pub mod extract;

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, Uri};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use protocol::scope::Scopes;
use protocol::uri::ResourceUri;
use server::config::RouteSettings;
use server::registry::ResourceRegistry;
use store::db::Pool;

use crate::middleware::{Around, Middleware, Next};
use crate::principal::Principal;
use crate::proxy::headers::IDENTITY_PREFIX;
use crate::verifier::{Failure, TokenVerifier, VerifiedToken};
pub use challenge::{ChallengeParams, Rejection};

/// Largest form body searched for an `access_token` (RFC 6750 §2.2).
const FORM_LIMIT: usize = 64 * 1024;

static SUBJECT: HeaderName = HeaderName::from_static("x-sallyport-subject");
static CLIENT_ID: HeaderName = HeaderName::from_static("x-sallyport-client-id");
static SCOPE: HeaderName = HeaderName::from_static("x-sallyport-scope");
static SUBJECT_TYPE: HeaderName = HeaderName::from_static("x-sallyport-subject-type");

/// What a protected resource requires, as plain values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourcePolicy {
    /// The resource identifier (RFC 8707) tokens must carry in `aud`; normalised before comparing.
    pub resource: String,
    /// Scopes every request needs.
    pub scopes: Vec<String>,
    /// Extra scopes per method, e.g. `DELETE = ["admin"]`.
    pub method_scopes: BTreeMap<String, Vec<String>>,
    /// RFC 6750 §2.2 form-body tokens (off by default).
    pub allow_form_token: bool,
    /// RFC 6750 §2.3 query tokens (off by default: MCP forbids tokens in URLs).
    pub allow_query_token: bool,
    /// Tokens without a user (client_credentials) pass (off by default: 401 "this resource needs a
    /// user"). With [`BearerAuth::with_registry`] the resource registry's flag counts too.
    pub accept_machine_tokens: bool,
}

impl ResourcePolicy {
    /// The policy of a gateway route with authentication on.
    pub fn from_route(route: &RouteSettings) -> Option<Self> {
        Some(Self {
            resource: route.resource.clone()?,
            scopes: route.scopes.clone(),
            method_scopes: route.method_scopes.clone(),
            allow_form_token: route.allow_form_token,
            allow_query_token: route.allow_query_token,
            // the resource's setting, read from the registry (see BearerAuth::with_registry)
            accept_machine_tokens: false,
        })
    }
}

/// The RFC 9728 §3.1 metadata URL of a resource: the well-known segment between origin and path.
pub fn resource_metadata_url(resource: &ResourceUri) -> String {
    let mut url = format!("{}/.well-known/oauth-protected-resource{}", resource.origin(), resource.path());
    if let Some((_, query)) = resource.as_str().split_once('?') {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A compiled [`ResourcePolicy`]: what [`BearerAuth`] checks.
#[derive(Clone)]
pub struct BearerPolicy {
    verifier: Arc<TokenVerifier>,
    resource: ResourceUri,
    resource_metadata: String,
    scopes: Scopes,
    /// Base scopes plus the method's, by method.
    method_scopes: HashMap<Method, Scopes>,
    allow_form_token: bool,
    allow_query_token: bool,
    accept_machine_tokens: bool,
    /// Where `[[resources]]` and `sallyport resource add` say whether machine tokens are accepted;
    /// asked only when one arrives (the registry caches for seconds).
    registry: Option<(Arc<ResourceRegistry>, Pool)>,
}

/// The middleware factory; cheap to clone (one per worker).
pub type BearerAuth = Middleware<BearerPolicy>;

impl std::fmt::Debug for BearerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerPolicy").field("resource", &self.resource).finish_non_exhaustive()
    }
}

impl Middleware<BearerPolicy> {
    /// Validates and compiles the policy.
    pub fn new(verifier: Arc<TokenVerifier>, policy: ResourcePolicy) -> Result<Self, String> {
        Self::build(verifier, policy, None)
    }

    /// Like [`BearerAuth::new`], and a token without a user also passes when the resource
    /// registry (configuration and `resources` table) says the resource accepts one.
    pub fn with_registry(
        verifier: Arc<TokenVerifier>,
        policy: ResourcePolicy,
        registry: Arc<ResourceRegistry>,
        pool: Pool,
    ) -> Result<Self, String> {
        Self::build(verifier, policy, Some((registry, pool)))
    }

    fn build(
        verifier: Arc<TokenVerifier>,
        policy: ResourcePolicy,
        registry: Option<(Arc<ResourceRegistry>, Pool)>,
    ) -> Result<Self, String> {
        let resource =
            ResourceUri::parse(&policy.resource).map_err(|e| format!("resource {}: {e}", policy.resource))?;
        let scopes = Scopes::from_tokens(&policy.scopes).map_err(|e| format!("scopes: {e}"))?;
        let mut method_scopes = HashMap::new();
        for (method, extra) in &policy.method_scopes {
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("method_scopes: {method} is not an HTTP method"))?;
            let extra = Scopes::from_tokens(extra).map_err(|e| format!("method_scopes.{method}: {e}"))?;
            method_scopes.insert(m, scopes.union(&extra));
        }
        Ok(Self(Arc::new(BearerPolicy {
            verifier,
            resource_metadata: resource_metadata_url(&resource),
            resource,
            scopes,
            method_scopes,
            allow_form_token: policy.allow_form_token,
            allow_query_token: policy.allow_query_token,
            accept_machine_tokens: policy.accept_machine_tokens,
            registry,
        })))
    }

    /// The RFC 9728 URL the challenges point to.
    pub fn resource_metadata(&self) -> &str {
        &self.0.resource_metadata
    }
}

impl BearerPolicy {
    fn required(&self, method: &Method) -> &Scopes {
        self.method_scopes.get(method).unwrap_or(&self.scopes)
    }

    /// Whether a token without a user may pass: the policy's flag, or the registry's for the resource.
    async fn accepts_machine_tokens(&self) -> Result<bool, Rejection> {
        if self.accept_machine_tokens {
            return Ok(true);
        }
        let Some((registry, pool)) = &self.registry else { return Ok(false) };
        match registry.find(pool, &self.resource).await {
            Ok(found) => Ok(found.is_some_and(|r| r.accept_machine_tokens)),
            Err(e) => {
                tracing::warn!(error = %e, "the resource registry cannot be read");
                Err(Rejection::Unavailable)
            }
        }
    }

    fn reject(&self, req: ServiceRequest, rejection: &Rejection) -> ServiceResponse {
        let params =
            ChallengeParams { resource_metadata: &self.resource_metadata, scopes: self.required(req.method()) };
        let response = rejection.response(&params);
        req.into_response(response)
    }

    async fn authenticate(&self, req: &mut ServiceRequest) -> Result<Arc<VerifiedToken>, Rejection> {
        let invalid = |e: &'static str| Rejection::InvalidRequest(e.into());
        // the body first (it needs the request mutably); the header token is then borrowed, not copied
        let form_token = if self.allow_form_token { Box::pin(take_form_token(req)).await? } else { None };
        let query = if req.query_string().is_empty() {
            None
        } else {
            extract::take_param(req.query_string()).map_err(invalid)?
        };
        if query.is_some() && !self.allow_query_token {
            return Err(invalid("access tokens in the query string are not accepted by this resource"));
        }
        let header_token = extract::from_header(req.headers()).map_err(invalid)?;
        let token = {
            let mut tokens =
                [header_token, query.as_ref().map(|(t, _)| t.as_str()), form_token.as_deref()].into_iter().flatten();
            let token = tokens.next().ok_or(Rejection::NoToken)?;
            if tokens.next().is_some() {
                // RFC 6750 §3.1: more than one method for including an access token
                return Err(invalid("the request carries the access token in more than one way"));
            }
            token
        };
        let verified = self.verifier.verify(token).await.map_err(|f| match f {
            Failure::Invalid(description) => Rejection::InvalidToken(description),
            Failure::Unavailable(_) => Rejection::Unavailable,
        })?;
        // RFC 8707: a token for another resource is no token for this one
        if !verified.is_for(&self.resource) {
            return Err(Rejection::InvalidToken("the token is not for this resource".into()));
        }
        if verified.is_machine() && !self.accepts_machine_tokens().await? {
            return Err(Rejection::InvalidToken("this resource needs a user".into()));
        }
        if !self.required(req.method()).is_subset(&verified.scopes) {
            return Err(Rejection::InsufficientScope);
        }
        if let Some((_, rest)) = query {
            let path_and_query = if rest.is_empty() { req.path().to_owned() } else { format!("{}?{rest}", req.path()) };
            // the token leaves the URL before the request goes on, or the request does not go on
            req.head_mut().uri = path_and_query.parse::<Uri>().map_err(|_| invalid("the request URI is malformed"))?;
        }
        Ok(verified)
    }
}

/// RFC 6750 §2.2: a token in a form-encoded body of a method with body semantics. The body is
/// read (bounded), the parameter removed, and the rest put back for the service.
async fn take_form_token(req: &mut ServiceRequest) -> Result<Option<String>, Rejection> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form || matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(None);
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Rejection::InvalidRequest(format!("cannot read the request body: {e}").into()))?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(Rejection::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let taken = match std::str::from_utf8(&body) {
        Ok(text) => extract::take_param(text).map_err(|e| Rejection::InvalidRequest(e.into()))?,
        Err(_) => None,
    };
    let (token, body) = match taken {
        Some((token, rest)) => (Some(token), Bytes::from(rest)),
        None => (None, body),
    };
    if let Ok(len) = HeaderValue::from_str(&body.len().to_string()) {
        req.headers_mut().insert(header::CONTENT_LENGTH, len);
    }
    req.set_payload(Payload::from(body));
    Ok(token)
}

/// The client's credentials and identity claims never pass; the verified identity does.
fn forward_identity(req: &mut ServiceRequest, token: &VerifiedToken) {
    let headers = req.headers_mut();
    headers.remove(header::AUTHORIZATION);
    let sent: Vec<HeaderName> = headers.keys().filter(|k| k.as_str().starts_with(IDENTITY_PREFIX)).cloned().collect();
    for name in sent {
        headers.remove(name);
    }
    headers.insert(SUBJECT.clone(), token.subject_header.clone());
    headers.insert(CLIENT_ID.clone(), token.client_id_header.clone());
    headers.insert(SCOPE.clone(), token.scope_header.clone());
    headers.insert(SUBJECT_TYPE.clone(), token.subject_type_header.clone());
}

impl Around for BearerPolicy {
    async fn around<S, B>(
        self: Rc<Self>,
        mut req: ServiceRequest,
        next: Next<S>,
    ) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error>
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
        B: MessageBody + 'static,
    {
        match self.authenticate(&mut req).await {
            Ok(token) => {
                forward_identity(&mut req, &token);
                req.extensions_mut().insert(Principal::new(token));
                next.call(req).await.map(ServiceResponse::map_into_left_body)
            }
            Err(rejection) => Ok(self.reject(req, &rejection).map_into_right_body()),
        }
    }
}

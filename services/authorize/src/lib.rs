//! Login, consent and authorization codes (RFC 6749 §4.1, RFC 7636, RFC 8707, RFC 9207).
//!
//! The one part of Sallyport a person sees: `GET|POST /oauth2/authorize`, `GET|POST /oauth2/login`
//! (and `GET /oauth2/login/{provider}/callback` for OpenID providers, `federation`),
//! `POST /oauth2/consent` and `POST /oauth2/logout`. The pending authorization request travels
//! through the login and consent forms in a hidden field and is validated again at every step, so
//! nothing the browser sends is trusted.
//!
//! Dependency rule (`.ci/check-deps`): a service builds on the floors only; services never use one
//! another (they share Postgres and CONTRACTS.md, not code) and only `sallyport` assembles them.
//! - Sallyport crates: `protocol`, `store`, `server`.
//! - a normal dependency only of `sallyport` (every other crate: tests and benchmarks only).

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use diesel_async::AsyncPgConnection;
use protocol::cimd::is_document_url;
use protocol::client::{Client, MetadataPolicy, RegistrationPolicy};
use protocol::error::ErrorCode;
use protocol::issuer::Issuer;
use server::cimd::MetadataDocuments;
use server::config::{LoginSettings, MetadataDocumentSettings, ResourceSettings, SessionSettings, Settings};
use server::cookies::OwnCookies;
use server::error::OAuthError;
use server::ratelimit::IpRateLimiter;
use server::registry::ResourceRegistry;
use server::service::{BuildError, Context, ServiceApp};
use store::consents::{self, ConsentRow};
use uuid::Uuid;

pub mod login;

mod code;
mod connections;
mod csrf;
mod federation;
mod grants;
mod pages;
mod params;
mod redirect;
mod request;
mod routes;
mod session;

pub use login::{AuthenticatedUser, Authenticator, Credentials, LocalPasswords, LoginError};

use crate::pages::{FormTargets, MessagePage};
use crate::params::AuthzParams;
use crate::request::{Rejection, Validated};

/// What the authorize service takes from the settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub issuer: Issuer,
    pub trust_forwarded_for: bool,
    pub resources: Vec<ResourceSettings>,
    /// What a client ID metadata document may ask for (`registration.*`).
    pub registration: RegistrationPolicy,
    pub metadata_documents: MetadataDocumentSettings,
    pub login: LoginSettings,
    pub sessions: SessionSettings,
    /// `tokens.code_ttl_secs`.
    pub code_ttl: Duration,
    /// `tokens.access_token_ttl_secs`: a lockout's revocations outlive every access token.
    pub access_token_ttl: Duration,
    /// `gateway.routes`: those with `upstream_auth = "oauth2"` are listed on `/oauth2/connections`.
    pub routes: Vec<server::config::RouteSettings>,
    /// `keys.encryption_key`: seals the PKCE verifier of a Connect and the upstream tokens.
    pub encryption_key: Option<server::config::EncryptionKey>,
}

impl From<&Settings> for Config {
    fn from(s: &Settings) -> Self {
        Self {
            issuer: s.issuer.clone(),
            trust_forwarded_for: s.trust_forwarded_for,
            resources: s.resources.clone(),
            registration: RegistrationPolicy::from(&s.registration),
            metadata_documents: s.metadata_documents.clone(),
            login: s.login.clone(),
            sessions: s.sessions.clone(),
            code_ttl: s.tokens.code_ttl_secs,
            access_token_ttl: s.tokens.access_token_ttl_secs,
            routes: s.gateway.routes.clone(),
            encryption_key: s.keys.encryption_key.clone(),
        }
    }
}

impl Config {
    /// The names and path of the session and login cookies.
    pub fn cookies(&self) -> OwnCookies {
        OwnCookies::new(&self.issuer, &self.sessions.cookie_name)
    }
}

/// Builds the service with local password login.
pub async fn app(ctx: Context, config: Config) -> Result<ServiceApp, BuildError> {
    let authenticator = LocalPasswords::counted(
        ctx.pool.clone(),
        ctx.clock.clone(),
        config.login.clone(),
        config.access_token_ttl,
        ctx.metrics.clone(),
    );
    app_with(ctx, config, authenticator).await
}

/// Builds the service with another way to prove who the user is.
pub async fn app_with(
    ctx: Context,
    config: Config,
    authenticator: Arc<dyn Authenticator>,
) -> Result<ServiceApp, BuildError> {
    let metrics = ctx.metrics.clone();
    let state = actix_web::web::Data::new(State::new(ctx, config, authenticator)?);
    Ok(ServiceApp::new("authorize", move |cfg| routes::configure(cfg, state.clone())).with_metrics(&metrics))
}

/// What [`State::prepare`] found without holding a connection.
pub(crate) struct Prepared {
    all: Arc<Vec<server::registry::Resource>>,
    /// The client of a metadata-document `client_id`, or why it was refused.
    document: Option<Result<Arc<Client>, String>>,
}

/// What every handler shares.
pub(crate) struct State {
    pub ctx: Context,
    pub config: Config,
    pub registry: ResourceRegistry,
    pub documents: MetadataDocuments,
    pub authenticator: Arc<dyn Authenticator>,
    pub login_limiter: IpRateLimiter,
    /// `login.providers`: the OpenID providers users may sign in with.
    pub providers: federation::Providers,
    /// Unix seconds of the last sweep of expired sessions (done on sign-in, now and then).
    pub last_sweep: std::sync::atomic::AtomicI64,
    /// Unix seconds of the last removal of abandoned federated sign-ins.
    pub last_federated_prune: std::sync::atomic::AtomicI64,
    /// The CSP source of the pages' stylesheet.
    pub style: String,
    pub issuer_origin: String,
    pub authorize_url: String,
    pub login_url: String,
    pub consent_url: String,
    pub logout_url: String,
    pub connections_url: String,
    /// Sallyport's client ID metadata document at upstream authorization servers, serialised once.
    pub client_document: String,
}

impl State {
    fn new(ctx: Context, config: Config, authenticator: Arc<dyn Authenticator>) -> Result<Self, BuildError> {
        let issuer = &config.issuer;
        Ok(Self {
            registry: ResourceRegistry::new(&config.resources)?,
            documents: MetadataDocuments::new(config.metadata_documents.clone())?.with_clock(ctx.clock.clone()),
            authenticator,
            login_limiter: IpRateLimiter::per_minute(config.login.per_ip_per_minute),
            providers: federation::Providers::new(&config.login.providers, issuer)?,
            last_sweep: std::sync::atomic::AtomicI64::new(0),
            last_federated_prune: std::sync::atomic::AtomicI64::new(0),
            style: pages::style_source(),
            issuer_origin: issuer.origin().to_owned(),
            authorize_url: issuer.endpoint("/oauth2/authorize"),
            login_url: issuer.endpoint("/oauth2/login"),
            consent_url: issuer.endpoint("/oauth2/consent"),
            logout_url: issuer.endpoint("/oauth2/logout"),
            connections_url: issuer.endpoint("/oauth2/connections"),
            client_document: server::upstream_oauth::client_document(issuer).to_string(),
            ctx,
            config,
        })
    }

    pub fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// CONTRACTS.md: what a client ID metadata document may ask for.
    async fn metadata_policy(&self) -> Result<MetadataPolicy, OAuthError> {
        let supported = self.registry.supported_scopes(&self.ctx.pool).await?;
        Ok(MetadataPolicy::for_deployment(self.config.registration.clone(), &supported))
    }

    /// The part of loading a request that may need pool connections of its own (the resource
    /// registry's refresh, a client ID metadata document): done before the request takes its
    /// connection, so a request never waits for a second one while holding the first. A document
    /// fetch spends the client IP's budget (`metadata_documents.fetches_per_ip_per_minute`).
    pub async fn prepare(&self, req: &actix_web::HttpRequest, params: &AuthzParams) -> Result<Prepared, OAuthError> {
        let all = self.registry.all(&self.ctx.pool).await?;
        let document = match params.client_id.as_deref() {
            Some(id) if is_document_url(id) => {
                let policy = self.metadata_policy().await?;
                let ip = server::http::client_ip(req, self.config.trust_forwarded_for);
                Some(match self.documents.resolve_for(&self.ctx.pool, id, &policy, Some(ip)).await {
                    Ok(client) => Ok(client),
                    Err(e) if e.code == ErrorCode::InvalidClient => {
                        let why = e.description.unwrap_or_default();
                        Err(format!("The application could not be verified: {why}."))
                    }
                    Err(e) => return Err(e),
                })
            }
            _ => None,
        };
        Ok(Prepared { all, document })
    }

    /// Loads the client (one query, joined with `user`'s remembered consents for the requested
    /// resources) and validates the request. `Err` only for internal failures.
    pub async fn load(
        &self,
        conn: &mut AsyncPgConnection,
        params: &AuthzParams,
        prepared: Prepared,
        user: Option<Uuid>,
    ) -> Result<(Result<Validated, Rejection>, Vec<ConsentRow>), OAuthError> {
        let ids = request::requested_resource_ids(params, &prepared.all);
        let (client, consents) = match (params.client_id.as_deref(), prepared.document) {
            (None, _) => (None, Vec::new()),
            (Some(_), Some(Err(why))) => return Ok((Err(Rejection::Page(why.into())), Vec::new())),
            (Some(id), Some(Ok(client))) => {
                let found = match user {
                    Some(u) => consents::find(conn, u, id, &ids).await?,
                    None => Vec::new(),
                };
                (Some(client), found)
            }
            (Some(id), None) => match consents::client_with_consents(conn, id, user, &ids).await? {
                Some((row, found)) => (Some(Arc::new(Client::try_from(row)?)), found),
                None => (None, Vec::new()),
            },
        };
        let validated = request::target(params, client).and_then(|t| request::validate(params, t, &prepared.all));
        Ok((validated, consents))
    }

    /// A page with the security headers.
    pub fn page(&self, status: StatusCode, body: Result<String, askama::Error>, targets: &FormTargets) -> HttpResponse {
        pages::html(status, body, &self.style, targets)
    }

    /// A page with a title and a sentence.
    pub fn message(&self, status: StatusCode, title: &str, message: &str) -> HttpResponse {
        self.message_with_retry(status, title, message, None)
    }

    /// A page with a title, a sentence and, when given, a "try again" link.
    pub fn message_with_retry(
        &self,
        status: StatusCode,
        title: &str,
        message: &str,
        retry: Option<&str>,
    ) -> HttpResponse {
        use askama::Template;
        let body = MessagePage { style: pages::STYLE, title, message, retry, next: None }.render();
        self.page(status, body, &FormTargets::new(&self.issuer_origin))
    }

    /// A page that goes on to `next` by itself (a meta refresh: a navigation of its own, not the
    /// redirect of a form's submission), with a "Continue" link for a browser that does not.
    pub fn continuing(&self, title: &str, message: &str, next: &str) -> HttpResponse {
        use askama::Template;
        let body = MessagePage { style: pages::STYLE, title, message, retry: None, next: Some(next) }.render();
        self.page(StatusCode::OK, body, &FormTargets::new(&self.issuer_origin))
    }

    /// A refused request: a page when the redirect URI is not trusted, else the error at it.
    pub fn reject(&self, rejection: Rejection, status: StatusCode) -> HttpResponse {
        match rejection {
            Rejection::Page(why) => self.message(
                StatusCode::BAD_REQUEST,
                "This sign-in link cannot be used",
                &format!("{why} Go back to the application and start again."),
            ),
            Rejection::Redirect(target, error) => {
                redirect::to(&redirect::error_url(&target, &error, self.issuer()), status)
            }
        }
    }

    /// An internal failure, as a page (the detail is in the log, never on the page).
    pub fn failure(&self, error: OAuthError) -> HttpResponse {
        let status = actix_web::ResponseError::status_code(&error);
        let title = if status.is_server_error() { "Something went wrong" } else { "This request cannot be used" };
        let mut res = self.message(status, title, error.description.as_deref().unwrap_or("Please try again."));
        if let Some(secs) = error.retry_after
            && let Ok(v) = secs.to_string().parse()
        {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
        res
    }
}

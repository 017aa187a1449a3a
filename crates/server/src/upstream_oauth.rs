//! The connect side of `upstream_auth = "oauth2"` routes (issue 20): which routes need a user's
//! upstream account, discovery of each upstream's authorization server, and Sallyport's client
//! identity there. Discovery follows the MCP authorization spec's order (`protocol::
//! upstream_discovery`): the RFC 9728 `resource_metadata` of the upstream's 401, else its
//! well-known URLs; then RFC 8414 metadata, else OpenID discovery. What a route gives explicitly
//! overrides what is discovered. Every fetch goes through the SSRF policy (`outbound`): private and
//! loopback hosts only for a route with `allow_private_hosts`.
//!
//! The client identity, in the issue's order: a client configured on the route; Sallyport's client
//! ID metadata document (`{issuer}/oauth2/upstream-client`) when the upstream advertises
//! `client_id_metadata_document_supported`; else RFC 7591 registration, once per upstream
//! authorization server. Either way the server's metadata lands in `upstream_clients`, where the
//! gateway's refresh finds its token endpoint (`token_client::for_route`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use protocol::redact::SecretString;
use protocol::upstream_auth::{UpstreamAuth, UpstreamOAuth};
use protocol::upstream_discovery::{
    AuthorizationServerMetadata, ClientIdentity, ResourceMetadata, authorization_server_metadata_urls,
    protected_resource_metadata_urls, resource_metadata_from_challenges,
};
use serde::{Deserialize, Serialize};
use store::upstream_clients::{self, UpstreamClientRow};
use url::Url;

use crate::config::RouteSettings;
use crate::outbound::{BodyError, check_url, describe, guarded_client, read_bounded};

/// The path of Sallyport's client ID metadata document under the issuer.
pub const CLIENT_DOCUMENT_PATH: &str = "/oauth2/upstream-client";
/// The path of the connect callback under the issuer (its `redirect_uri` at every upstream).
pub const CALLBACK_PATH: &str = "/oauth2/connections/callback";
/// The path of the connect page of one route (`?route=<prefix>`): the gateway's URL elicitation.
pub const CONNECT_PATH: &str = "/oauth2/connections/connect";
/// The largest discovery document or registration answer read.
const MAX_BYTES: usize = 64 * 1024;
/// What a human sees as Sallyport's name at the upstream.
pub const CLIENT_NAME: &str = "Sallyport gateway";

/// One route whose users connect their own upstream account.
#[derive(Debug, Clone)]
pub struct OAuthRoute {
    /// The route's prefix on the gateway (`/linear`): the key of a user's connection.
    pub prefix: String,
    /// The upstream MCP server's URL.
    pub upstream: Url,
    pub explicit: UpstreamOAuth,
    /// The secret of a client configured on the route (`Debug` redacts it).
    pub client_secret: Option<SecretString>,
}

impl OAuthRoute {
    /// A configuration route with `upstream_auth = "oauth2"`.
    pub fn from_settings(route: &RouteSettings) -> Option<Self> {
        if route.upstream_auth != UpstreamAuth::OAuth2 {
            return None;
        }
        let settings = route.upstream_oauth.clone().unwrap_or_default();
        Some(Self {
            prefix: route.prefix.clone(),
            upstream: Url::parse(route.upstream.as_str()).ok()?,
            explicit: settings.explicit(),
            client_secret: settings.client_secret.as_ref().map(|s| s.secret().clone()),
        })
    }

    /// A route of `gateway_routes` with `upstream_auth = 'oauth2'`: its explicit settings as JSON,
    /// its client secret sealed in `upstream_secret_enc` ([`seal_client_secret`]).
    pub fn from_row(row: &store::gateway_routes::GatewayRouteRow, kek: Option<&[u8; 32]>) -> Result<Self, String> {
        let explicit: UpstreamOAuth = match &row.upstream_oauth {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{}: upstream_oauth: {e}", row.prefix))?,
            None => UpstreamOAuth::default(),
        };
        let client_secret = match &row.upstream_secret_enc {
            None => None,
            Some(sealed) => {
                let kek =
                    kek.ok_or_else(|| format!("{}: the client secret is sealed and no key is set", row.prefix))?;
                Some(unseal_client_secret(kek, &row.prefix, sealed)?)
            }
        };
        Ok(Self {
            prefix: row.prefix.clone(),
            upstream: Url::parse(&row.upstream).map_err(|_| format!("{}: the upstream is not a URL", row.prefix))?,
            explicit,
            client_secret,
        })
    }
}

/// Seals an `oauth2` route's client secret for `gateway_routes.upstream_secret_enc`: the same
/// envelope as static credentials (`seal_headers`), one pair named `client_secret`.
pub fn seal_client_secret(kek: &[u8; 32], prefix: &str, secret: &SecretString) -> Result<Vec<u8>, String> {
    store::gateway_routes::seal_headers(kek, prefix, &[("client_secret".to_owned(), secret.clone())])
        .map_err(|e| e.to_string())
}

pub fn unseal_client_secret(kek: &[u8; 32], prefix: &str, sealed: &[u8]) -> Result<SecretString, String> {
    let pairs = store::gateway_routes::unseal_headers(kek, prefix, sealed)
        .map_err(|_| format!("{prefix}: the client secret does not open under keys.encryption_key"))?;
    pairs
        .into_iter()
        .find(|(n, _)| n == "client_secret")
        .map(|(_, v)| v)
        .ok_or_else(|| format!("{prefix}: no client secret in the sealed value"))
}

/// Every `oauth2` route, the configuration's first, then the database's (a prefix the
/// configuration has is not taken from the database, as the gateway does).
pub async fn routes(
    conn: &mut AsyncPgConnection,
    configured: &[RouteSettings],
    kek: Option<&[u8; 32]>,
) -> Result<Vec<OAuthRoute>, crate::OAuthError> {
    let mut out: Vec<OAuthRoute> = configured.iter().filter_map(OAuthRoute::from_settings).collect();
    for row in store::gateway_routes::list(conn).await? {
        if row.upstream_auth != UpstreamAuth::OAuth2.as_str() || out.iter().any(|r| r.prefix == row.prefix) {
            continue;
        }
        match OAuthRoute::from_row(&row, kek) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(error = %e, "an oauth2 route of the database is left out"),
        }
    }
    Ok(out)
}

/// Why discovery or registration failed; the text is for the log and the operator (it names
/// hosts), a user's page says less.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectSetupError {
    /// No answer, a 5xx, a timeout: try again later.
    #[error("the upstream is unreachable: {0}")]
    Unreachable(String),
    /// The upstream answered, but not as the specifications say, or the policy refuses it.
    #[error("the upstream's authorization server cannot be used: {0}")]
    Unusable(String),
}

/// The outbound policy of a route's discovery.
#[derive(Debug, Clone, Copy)]
pub struct FetchPolicy {
    /// Loopback and private addresses (and http on loopback) allowed.
    pub allow_private: bool,
    pub timeout: Duration,
}

impl FetchPolicy {
    pub fn for_route(route: &OAuthRoute) -> Self {
        Self { allow_private: route.explicit.allow_private_hosts, timeout: Duration::from_secs(10) }
    }

    /// The HTTP client of this policy (redirects off, guarded resolver).
    pub fn client(&self) -> Result<reqwest::Client, ConnectSetupError> {
        guarded_client(self.allow_private, self.timeout).map_err(|e| ConnectSetupError::Unreachable(describe(e)))
    }

    fn check(&self, url: &Url) -> Result<(), ConnectSetupError> {
        check_url(url, self.allow_private, self.allow_private)
            .map_err(|why| ConnectSetupError::Unusable(format!("{url} {why}")))
    }
}

/// What discovery found for a route.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The upstream's resource identifier (RFC 8707) tokens are asked for: the route's, else its
    /// RFC 9728 metadata's. `None` when the authorization server was configured and no resource
    /// was: a server that does not know the upstream's URL as a resource refuses it (RFC 8707 §2
    /// `invalid_target`, node-oidc-provider does), so none is sent.
    pub resource: Option<String>,
    /// The scopes to ask for: the route's, else the protected resource's `scopes_supported`.
    pub scopes: Vec<String>,
    /// The authorization server, checked.
    pub server: AuthorizationServerMetadata,
    /// Its metadata as published (stored in `upstream_clients.metadata`).
    pub metadata: serde_json::Value,
    /// Where the authorization server came from: `resource_metadata` (the 401), `well_known`,
    /// `configured_issuer` or `configured_endpoints`.
    pub source: &'static str,
}

/// Discovers a route's upstream authorization server.
pub async fn discover(http: &reqwest::Client, route: &OAuthRoute) -> Result<Discovered, ConnectSetupError> {
    let policy = FetchPolicy::for_route(route);
    let explicit = &route.explicit;
    let default_resource = explicit.resource.clone();
    // explicit endpoints: a provider without metadata; nothing is fetched
    if let (Some(authz), Some(token)) = (&explicit.authorization_endpoint, &explicit.token_endpoint) {
        let issuer = explicit.issuer.clone().unwrap_or_else(|| origin_of(authz));
        let mut metadata = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": authz,
            "token_endpoint": token,
            "code_challenge_methods_supported": ["S256"],
        });
        if let Some(r) = &explicit.revocation_endpoint {
            metadata["revocation_endpoint"] = r.clone().into();
        }
        let server = AuthorizationServerMetadata::parse(metadata.to_string().as_bytes(), &issuer, policy.allow_private)
            .map_err(|e| ConnectSetupError::Unusable(e.to_string()))?;
        return Ok(Discovered {
            resource: default_resource,
            scopes: explicit.scopes.clone(),
            server,
            metadata,
            source: "configured_endpoints",
        });
    }
    let (issuer, resource, advertised_scopes, source) = match &explicit.issuer {
        Some(issuer) => (issuer.clone(), default_resource, Vec::new(), "configured_issuer"),
        None => {
            let (prm, source) = protected_resource(http, &policy, route).await?;
            let issuer = prm.authorization_servers[0].clone();
            (issuer, Some(explicit.resource.clone().unwrap_or(prm.resource)), prm.scopes_supported, source)
        }
    };
    let (server, metadata) = authorization_server(http, &policy, &issuer).await?;
    let mut server = server;
    // explicit endpoints beside discovery (a revocation endpoint the server does not advertise)
    if let Some(r) = &explicit.revocation_endpoint {
        server.revocation_endpoint = Some(r.clone());
    }
    let scopes = if explicit.scopes.is_empty() { advertised_scopes } else { explicit.scopes.clone() };
    Ok(Discovered { resource, scopes, server, metadata, source })
}

fn origin_of(url: &str) -> String {
    Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| url.to_owned())
}

/// RFC 9728: the `resource_metadata` of the upstream's challenge to an unauthenticated request,
/// else the path-inserted and root well-known URLs (§3.1). A document is used only when its
/// `resource` is the upstream (or the route's configured resource), §3.3.
async fn protected_resource(
    http: &reqwest::Client,
    policy: &FetchPolicy,
    route: &OAuthRoute,
) -> Result<(ResourceMetadata, &'static str), ConnectSetupError> {
    let upstream = &route.upstream;
    policy.check(upstream)?;
    let expected: Vec<String> = {
        let mut e = vec![upstream.as_str().to_owned(), upstream.as_str().trim_end_matches('/').to_owned()];
        e.extend(route.explicit.resource.clone());
        e
    };
    let res = http
        .post(upstream.clone())
        .header(reqwest::header::ACCEPT, "application/json, text/event-stream")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
        .send()
        .await
        .map_err(|e| ConnectSetupError::Unreachable(describe(e)))?;
    let named = (res.status() == reqwest::StatusCode::UNAUTHORIZED)
        .then(|| {
            let values: Vec<&str> = res
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            resource_metadata_from_challenges(values)
        })
        .flatten();
    let mut last = String::from("no protected resource metadata");
    let mut candidates: Vec<(Url, &'static str)> = Vec::new();
    if let Some(url) = named.and_then(|n| Url::parse(&n).ok()) {
        candidates.push((url, "resource_metadata"));
    }
    candidates.extend(protected_resource_metadata_urls(upstream).into_iter().map(|u| (u, "well_known")));
    for (url, source) in candidates {
        let body = match fetch(http, policy, &url).await {
            Ok(b) => b,
            Err(ConnectSetupError::Unreachable(e)) => return Err(ConnectSetupError::Unreachable(e)),
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let mut error = None;
        for resource in &expected {
            match ResourceMetadata::parse(&body, resource) {
                Ok(doc) => return Ok((doc, source)),
                Err(e) => error = Some(e),
            }
        }
        if let Some(e) = error {
            last = format!("{url}: {e}");
        }
    }
    Err(ConnectSetupError::Unusable(last))
}

/// RFC 8414 (else OpenID discovery) metadata of `issuer`, in the MCP spec's URL order, checked.
async fn authorization_server(
    http: &reqwest::Client,
    policy: &FetchPolicy,
    issuer: &str,
) -> Result<(AuthorizationServerMetadata, serde_json::Value), ConnectSetupError> {
    let issuer_url =
        Url::parse(issuer).map_err(|_| ConnectSetupError::Unusable(format!("issuer {issuer:?} is not a URL")))?;
    let mut last = format!("no authorization server metadata for {issuer}");
    for url in authorization_server_metadata_urls(&issuer_url) {
        let body = match fetch(http, policy, &url).await {
            Ok(b) => b,
            Err(ConnectSetupError::Unreachable(e)) => return Err(ConnectSetupError::Unreachable(e)),
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        match AuthorizationServerMetadata::parse(&body, issuer, policy.allow_private) {
            Ok(server) => {
                let raw = serde_json::from_slice(&body).map_err(|e| ConnectSetupError::Unusable(e.to_string()))?;
                return Ok((server, raw));
            }
            // a document that is there but wrong is an answer, not a reason to look further
            Err(e) => return Err(ConnectSetupError::Unusable(format!("{url}: {e}"))),
        }
    }
    Err(ConnectSetupError::Unusable(last))
}

/// GETs a JSON document; a 4xx is `Unusable` (look elsewhere), no answer or a 5xx `Unreachable`.
async fn fetch(http: &reqwest::Client, policy: &FetchPolicy, url: &Url) -> Result<Vec<u8>, ConnectSetupError> {
    policy.check(url)?;
    let res = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| ConnectSetupError::Unreachable(describe(e)))?;
    let status = res.status();
    if status.is_server_error() {
        return Err(ConnectSetupError::Unreachable(format!("{url}: status {}", status.as_u16())));
    }
    if status != reqwest::StatusCode::OK {
        return Err(ConnectSetupError::Unusable(format!("{url}: status {}", status.as_u16())));
    }
    read_bounded(res, MAX_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge => ConnectSetupError::Unusable(format!("{url}: larger than {MAX_BYTES} bytes")),
        BodyError::Transport(d) => ConnectSetupError::Unreachable(d),
    })
}

/// Sallyport's client ID metadata document (MCP authorization 2025-11-25, "Client ID Metadata
/// Documents"): a public client whose `client_id` is the document's own URL and whose one
/// redirect URI is the connect callback.
pub fn client_document(issuer: &protocol::issuer::Issuer) -> serde_json::Value {
    serde_json::json!({
        "client_id": issuer.endpoint(CLIENT_DOCUMENT_PATH),
        "client_name": CLIENT_NAME,
        "client_uri": issuer.as_str(),
        "redirect_uris": [issuer.endpoint(CALLBACK_PATH)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// Sallyport's client at the route's upstream authorization server: the stored one, or a new one
/// (metadata document or RFC 7591 registration), stored once per issuer. For a route with a
/// configured client the row keeps only the server's metadata (`method = 'configured'`), so the
/// gateway's refresh finds the token endpoint.
pub async fn ensure_client(
    conn: &mut AsyncPgConnection,
    http: &reqwest::Client,
    route: &OAuthRoute,
    found: &Discovered,
    issuer: &protocol::issuer::Issuer,
    kek: Option<&[u8; 32]>,
    now: DateTime<Utc>,
) -> Result<UpstreamClientRow, ConnectSetupError> {
    let db = |e: diesel::result::Error| ConnectSetupError::Unreachable(format!("the database: {e}"));
    let as_issuer = found.server.issuer.clone();
    let stored = upstream_clients::find(conn, &as_issuer).await.map_err(db)?;
    let configured = route.explicit.client_id.is_some();
    let usable = |r: &UpstreamClientRow| configured || r.method != "configured";
    if let Some(row) = stored.as_ref().filter(|r| usable(r)) {
        if row.metadata != found.metadata {
            upstream_clients::set_metadata(conn, &as_issuer, &found.metadata, now).await.map_err(db)?;
        }
        return Ok(UpstreamClientRow { metadata: found.metadata.clone(), ..row.clone() });
    }
    let identity = found.server.client_identity(configured).ok_or_else(|| {
        ConnectSetupError::Unusable(
            "the authorization server supports neither client ID metadata documents nor dynamic registration: \
             configure upstream_oauth.client_id"
                .into(),
        )
    })?;
    let base = UpstreamClientRow {
        issuer: as_issuer.clone(),
        client_id: String::new(),
        method: String::new(),
        token_endpoint_auth_method: "none".into(),
        client_secret_enc: None,
        registration_access_token_enc: None,
        registration_client_uri: None,
        metadata: found.metadata.clone(),
        created_at: now,
        updated_at: now,
    };
    let row = match identity {
        ClientIdentity::Configured => UpstreamClientRow {
            client_id: route.explicit.client_id.clone().unwrap_or_default(),
            method: "configured".into(),
            ..base
        },
        ClientIdentity::MetadataDocument => UpstreamClientRow {
            client_id: issuer.endpoint(CLIENT_DOCUMENT_PATH),
            method: "metadata_document".into(),
            ..base
        },
        ClientIdentity::DynamicRegistration => register(http, route, found, issuer, kek, base).await?,
    };
    match stored {
        // a metadata-only row of a configured route: this route registers for real
        Some(_) => {
            upstream_clients::replace(conn, &row).await.map_err(db)?;
            Ok(row)
        }
        None => upstream_clients::insert_or_get(conn, &row).await.map_err(db),
    }
}

/// The members of an RFC 7591 §3.2.1 answer Sallyport keeps.
#[derive(Deserialize)]
struct Registered {
    client_id: String,
    #[serde(default)]
    client_secret: Option<SecretString>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    registration_access_token: Option<SecretString>,
    #[serde(default)]
    registration_client_uri: Option<String>,
}

#[derive(Serialize)]
struct Registration<'a> {
    client_name: &'a str,
    client_uri: &'a str,
    redirect_uris: [String; 1],
    grant_types: [&'a str; 2],
    response_types: [&'a str; 1],
    token_endpoint_auth_method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// RFC 7591 §3.1: a confidential client when the server takes client secrets (RFC 8414 §2: an
/// absent list means `client_secret_basic`), else a public one.
async fn register(
    http: &reqwest::Client,
    route: &OAuthRoute,
    found: &Discovered,
    issuer: &protocol::issuer::Issuer,
    kek: Option<&[u8; 32]>,
    base: UpstreamClientRow,
) -> Result<UpstreamClientRow, ConnectSetupError> {
    let policy = FetchPolicy::for_route(route);
    let endpoint = found.server.registration_endpoint.as_deref().unwrap_or_default();
    let url = Url::parse(endpoint)
        .map_err(|_| ConnectSetupError::Unusable(format!("registration_endpoint {endpoint:?} is not a URL")))?;
    policy.check(&url)?;
    let methods = found.metadata.get("token_endpoint_auth_methods_supported").and_then(|m| m.as_array());
    let offers = |m: &str| methods.is_none_or(|all| all.iter().any(|v| v == m));
    let method = if offers("client_secret_basic") {
        "client_secret_basic"
    } else if methods.is_some_and(|all| all.iter().any(|v| v == "client_secret_post")) {
        "client_secret_post"
    } else {
        "none"
    };
    let body = Registration {
        client_name: CLIENT_NAME,
        client_uri: issuer.as_str(),
        redirect_uris: [issuer.endpoint(CALLBACK_PATH)],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: method,
        scope: (!found.scopes.is_empty()).then(|| found.scopes.join(" ")),
    };
    let res = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|e| ConnectSetupError::Unreachable(describe(e)))?;
    let status = res.status();
    let bytes = read_bounded(res, MAX_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge => ConnectSetupError::Unusable("the registration answer is too large".into()),
        BodyError::Transport(d) => ConnectSetupError::Unreachable(d),
    })?;
    if status.is_server_error() {
        return Err(ConnectSetupError::Unreachable(format!("registration: status {}", status.as_u16())));
    }
    if !status.is_success() {
        let why = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("status {}", status.as_u16()));
        return Err(ConnectSetupError::Unusable(format!("the registration was refused: {why}")));
    }
    let reg: Registered = serde_json::from_slice(&bytes)
        .map_err(|e| ConnectSetupError::Unusable(format!("the registration answer is not RFC 7591's: {e}")))?;
    let auth = reg.token_endpoint_auth_method.unwrap_or_else(|| method.to_owned());
    if crate::token_client::ClientAuth::parse(&auth).is_none() {
        return Err(ConnectSetupError::Unusable(format!("the server registered us for {auth}, which we do not speak")));
    }
    let seal = |column: &str, secret: &Option<SecretString>| -> Result<Option<Vec<u8>>, ConnectSetupError> {
        match secret {
            None => Ok(None),
            Some(s) => {
                let kek = kek.ok_or_else(|| {
                    ConnectSetupError::Unusable(
                        "the client secret cannot be sealed: keys.encryption_key is not set".into(),
                    )
                })?;
                upstream_clients::seal_secret(kek, &base.issuer, column, s)
                    .map(Some)
                    .map_err(|e| ConnectSetupError::Unusable(e.to_string()))
            }
        }
    };
    if auth != "none" && reg.client_secret.is_none() {
        return Err(ConnectSetupError::Unusable(format!("registered for {auth} without a client_secret")));
    }
    Ok(UpstreamClientRow {
        client_id: reg.client_id,
        method: "dynamic".into(),
        token_endpoint_auth_method: auth,
        client_secret_enc: seal("client_secret", &reg.client_secret)?,
        registration_access_token_enc: seal("registration_access_token", &reg.registration_access_token)?,
        registration_client_uri: reg.registration_client_uri,
        ..base
    })
}

/// RFC 7009 at the upstream for a connection that was just deleted (Disconnect, `sallyport
/// connection revoke`): the refresh token (which takes its access tokens along at most servers),
/// then the access token. Whether the upstream confirmed both; a failure is logged, the connection
/// is gone from Sallyport either way.
pub async fn revoke_tokens(
    conn: &mut AsyncPgConnection,
    route: &OAuthRoute,
    row: &store::upstream_connections::UpstreamConnectionRow,
    kek: &[u8; 32],
) -> bool {
    let Ok(tokens) = store::upstream_connections::unseal_tokens(kek, row.user_id, &row.route, &row.tokens_enc) else {
        tracing::warn!(route = %row.route, "the upstream tokens do not open: nothing to revoke");
        return false;
    };
    let registered = match upstream_clients::find(conn, &row.issuer).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the upstream client could not be read");
            return false;
        }
    };
    let client = match crate::token_client::for_route(
        &route.explicit,
        route.client_secret.as_ref(),
        registered.as_ref(),
        Some(kek),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, route = %row.route, "no client to revoke with");
            return false;
        }
    };
    let Ok(http) = FetchPolicy::for_route(route).client() else { return false };
    let mut confirmed = true;
    let pairs = [(tokens.refresh_token.as_ref(), "refresh_token"), (Some(&tokens.access_token), "access_token")];
    for (token, hint) in pairs {
        let Some(token) = token else { continue };
        if let Err(e) = client.revocation_endpoint.as_ref().map(|u| policy_check(route, u)).unwrap_or(Ok(())) {
            tracing::warn!(error = %e, route = %row.route, "the revocation endpoint is refused");
            return false;
        }
        match client.revoke(&http, token, hint).await {
            Ok(true) => {}
            Ok(false) => confirmed = false,
            Err(e) => {
                tracing::warn!(error = %e, route = %row.route, "the upstream did not revoke");
                confirmed = false;
            }
        }
    }
    confirmed
}

fn policy_check(route: &OAuthRoute, url: &Url) -> Result<(), ConnectSetupError> {
    FetchPolicy::for_route(route).check(url)
}

/// The URL of the connect page of a route (what the gateway's URL elicitation names).
pub fn connect_uri(issuer: &protocol::issuer::Issuer, prefix: &str) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("route", prefix).finish();
    format!("{}?{q}", issuer.endpoint(CONNECT_PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_document_names_its_own_url_and_the_callback() {
        let issuer = protocol::issuer::Issuer::parse("https://sp.example/t").expect("issuer");
        let doc = client_document(&issuer);
        assert_eq!(doc["client_id"], "https://sp.example/t/oauth2/upstream-client");
        assert_eq!(doc["redirect_uris"][0], "https://sp.example/t/oauth2/connections/callback");
        assert_eq!(doc["token_endpoint_auth_method"], "none");
        assert_eq!(connect_uri(&issuer, "/mcp x"), "https://sp.example/t/oauth2/connections/connect?route=%2Fmcp+x");
    }

    #[test]
    fn client_secrets_of_routes_are_sealed_to_their_prefix() {
        let kek = [2u8; 32];
        let sealed = seal_client_secret(&kek, "/linear", &"cs-1".into()).expect("seal");
        assert!(!sealed.windows(4).any(|w| w == b"cs-1"));
        assert_eq!(unseal_client_secret(&kek, "/linear", &sealed).expect("open").expose(), "cs-1");
        assert!(unseal_client_secret(&kek, "/github", &sealed).is_err());
    }

    #[tokio::test]
    async fn private_hosts_are_refused_unless_the_route_allows_them() {
        let route = |allow: bool| OAuthRoute {
            prefix: "/x".into(),
            upstream: Url::parse("http://127.0.0.1:9/mcp").expect("url"),
            explicit: UpstreamOAuth { allow_private_hosts: allow, ..Default::default() },
            client_secret: None,
        };
        let r = route(false);
        let http = FetchPolicy::for_route(&r).client().expect("client");
        let e = discover(&http, &r).await.expect_err("refused");
        assert!(matches!(&e, ConnectSetupError::Unusable(m) if m.contains("https")), "{e}");
        let mut https = route(false);
        https.upstream = Url::parse("https://127.0.0.1:9/mcp").expect("url");
        let e = discover(&http, &https).await.expect_err("refused");
        assert!(matches!(&e, ConnectSetupError::Unusable(m) if m.contains("private")), "{e}");
        let r = route(true);
        let e = discover(&http, &r).await.expect_err("nothing listens on port 9");
        assert!(matches!(e, ConnectSetupError::Unreachable(_)), "{e}");
    }
}

//! Typed configuration, parsed once: defaults in code, then an optional TOML file
//! (`SALLYPORT_CONFIG`), then `SALLYPORT__SECTION__KEY` environment variables. Values deserialise
//! into types that cannot hold an invalid one (the issuer, URLs, the signing algorithm, durations);
//! the rules between keys are checked once, at load. Either way a wrong value stops the process
//! with the key's name, and nothing checks it again. Each service takes only its part (its own
//! config type, built from [`Settings`] by `From`).

mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use protocol::issuer::Issuer;
use protocol::keys::SigningAlg;
use protocol::scope::Scopes;
pub use protocol::upstream_auth::UpstreamAuth;
use protocol::uri::{ResourceUri, validate_info_url};
use serde::{Deserialize, Serialize};
use url::Url;

pub use values::{ConfigSecret, EncryptionKey, HttpUrl, LogFormat, TrustedNet, millis, secs};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl From<config::ConfigError> for ConfigError {
    /// A value that did not deserialise is reported by its key (`tokens.signing_alg`,
    /// `gateway.routes[0].upstream`), like the rules checked after it.
    fn from(e: config::ConfigError) -> Self {
        match e {
            config::ConfigError::At { error, key: Some(key), .. } => {
                Self::Invalid { key: dotted(&key), message: error.to_string() }
            }
            config::ConfigError::Type { unexpected, expected, key: Some(key), .. } => {
                Self::Invalid { key: dotted(&key), message: format!("invalid type: {unexpected}, expected {expected}") }
            }
            other => Self::Load(other),
        }
    }
}

/// The config crate writes a key below a list entry as `routes[0]upstream`: put the dot back.
fn dotted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut after_index = false;
    for c in key.chars() {
        if after_index && c != '[' && c != '.' {
            out.push('.');
        }
        after_index = c == ']';
        out.push(c);
    }
    out
}

// `Debug` of the sections that hold a secret (issue 13): the secret is never printed
macro_rules! debug_redacted {
    ($ty:ident, [$($secret:literal),*]) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                protocol::redact::debug_settings(f, stringify!($ty), self, &[$($secret),*])
            }
        }
    };
}
debug_redacted!(DatabaseSettings, []);
debug_redacted!(KeySettings, ["encryption_key"]);
debug_redacted!(RegistrationSettings, ["initial_access_token"]);
debug_redacted!(GatewaySettings, ["introspection_client_secret"]);

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), message: message.into() }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The issuer identifier (RFC 8414 §2): every metadata document and token carries it byte for byte.
    pub issuer: Issuer,
    /// Allow an `http` issuer on a non-loopback host (a private network in docker-compose). Never in production.
    pub allow_http_issuer: bool,
    /// `service_documentation` in the authorization-server metadata.
    pub service_documentation: Option<String>,
    /// Take the client IP from `X-Forwarded-For` (services behind the gateway, which sets it).
    pub trust_forwarded_for: bool,
    pub database: DatabaseSettings,
    pub listen: ListenSettings,
    pub services: ServiceUrls,
    pub tokens: TokenSettings,
    pub keys: KeySettings,
    pub sessions: SessionSettings,
    pub login: LoginSettings,
    pub registration: RegistrationSettings,
    pub metadata_documents: MetadataDocumentSettings,
    /// `[identity]`: enterprise IdPs whose ID-JAGs the token service accepts.
    pub identity: IdentitySettings,
    pub resources: Vec<ResourceSettings>,
    pub gateway: GatewaySettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: usize,
    #[serde(with = "millis")]
    pub connect_timeout_ms: Duration,
    #[serde(with = "millis")]
    pub acquire_timeout_ms: Duration,
    /// Run pending migrations when a service starts (under an advisory lock).
    pub migrate_on_start: bool,
}

impl From<&DatabaseSettings> for store::db::PoolOptions {
    fn from(s: &DatabaseSettings) -> Self {
        Self {
            url: s.url.clone(),
            pool_size: s.pool_size,
            connect_timeout_ms: millis_u64(s.connect_timeout_ms),
            acquire_timeout_ms: millis_u64(s.acquire_timeout_ms),
        }
    }
}

fn millis_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenSettings {
    pub registration: SocketAddr,
    pub authorize: SocketAddr,
    pub token: SocketAddr,
    pub metadata: SocketAddr,
    pub gateway: SocketAddr,
    /// actix worker threads per service; 0 means one per core.
    pub workers: usize,
    /// How long a stopping service waits for in-flight requests (seconds).
    #[serde(with = "secs")]
    pub shutdown_timeout_secs: Duration,
    /// A listener of its own for `/metrics` (containers: a port the gateway and the Ingress never
    /// route); unset, each service serves `/metrics` on its own port.
    pub admin: Option<SocketAddr>,
}

/// Where the gateway finds each service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceUrls {
    pub registration: HttpUrl,
    pub authorize: HttpUrl,
    pub token: HttpUrl,
    pub metadata: HttpUrl,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    #[serde(with = "secs")]
    pub access_token_ttl_secs: Duration,
    #[serde(with = "secs")]
    pub code_ttl_secs: Duration,
    #[serde(with = "secs")]
    pub refresh_idle_ttl_secs: Duration,
    #[serde(with = "secs")]
    pub refresh_absolute_ttl_secs: Duration,
    /// `ES256` (default), `EdDSA` or `RS256`.
    pub signing_alg: SigningAlg,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// Base64 of 32 random bytes: the AES-256-GCM key that seals signing keys at rest.
    pub encryption_key: Option<EncryptionKey>,
    /// How long a rotated-out key stays published after it stops signing (>= the access-token lifetime).
    #[serde(with = "secs")]
    pub retired_publish_secs: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    #[serde(with = "secs")]
    pub idle_ttl_secs: Duration,
    #[serde(with = "secs")]
    pub absolute_ttl_secs: Duration,
    pub cookie_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Failed logins in a row after which a user is locked for `lockout_secs`.
    pub max_failures: u32,
    #[serde(with = "secs")]
    pub lockout_secs: Duration,
    /// Login attempts per client IP per minute.
    pub per_ip_per_minute: u32,
    /// Local users sign in with a password; `false` hides the form and refuses its POST (only
    /// `providers` remain).
    pub password: bool,
    /// OpenID providers users may sign in with (`[[login.providers]]`), one button each.
    pub providers: Vec<ProviderSettings>,
}

/// An OpenID provider (OpenID Connect Core 1.0, authorization code flow) users sign in with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// A short name of our own: the callback path (`/oauth2/login/{id}/callback`), audit events,
    /// `sallyport user list`.
    pub id: String,
    /// What the button says: "Sign in with {name}".
    pub name: String,
    /// The provider's issuer identifier; its discovery document is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret, or (better) `client_secret_env`: the name of an environment variable
    /// holding it, read at start.
    #[serde(default)]
    pub client_secret: Option<protocol::redact::SecretString>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default = "default_provider_scopes")]
    pub scopes: Vec<String>,
    /// The claim that becomes a new user's name; unset: `preferred_username`, then `email`.
    #[serde(default)]
    pub username_claim: Option<String>,
    /// Admission: the user's email must be in one of these domains, and verified
    /// (`email_verified = true`). Empty: any user of the provider.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Admission: each claim must equal the value or, when it is an array, contain it
    /// (e.g. `{ groups = "mcp-users" }`).
    #[serde(default)]
    pub required_claims: BTreeMap<String, String>,
    /// Let discovery, keys, token and userinfo requests go to loopback and private addresses (a
    /// provider on the company network, tests). Off: global unicast addresses only, as for client
    /// ID metadata documents.
    #[serde(default)]
    pub allow_private_hosts: bool,
}

fn default_provider_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSettings {
    /// When set, RFC 7591 §3 registration requires this initial access token as a Bearer token.
    pub initial_access_token: Option<String>,
    /// Scopes a client gets when it registers without `scope` (empty: every scope the deployment supports).
    pub default_scopes: Vec<String>,
    pub max_redirect_uris: usize,
    /// Registrations per client IP per minute.
    pub per_ip_per_minute: u32,
    /// Rotate the registration access token on every RFC 7592 read or update.
    pub rotate_registration_token: bool,
}

impl From<&RegistrationSettings> for protocol::client::RegistrationPolicy {
    fn from(r: &RegistrationSettings) -> Self {
        // checked when the settings were loaded, so an invalid token cannot reach here
        let default_scopes = Scopes::from_tokens(&r.default_scopes).unwrap_or_default();
        Self { max_redirect_uris: r.max_redirect_uris, default_scopes }
    }
}

/// Client ID metadata documents (MCP authorization 2025-11-25).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataDocumentSettings {
    pub enabled: bool,
    /// Allow documents on loopback and private addresses (tests, private deployments). SSRF risk.
    pub allow_private_hosts: bool,
    /// Allow `http` document URLs (tests only).
    pub allow_http: bool,
    #[serde(with = "millis")]
    pub timeout_ms: Duration,
    pub max_bytes: usize,
    #[serde(with = "secs")]
    pub cache_min_secs: Duration,
    #[serde(with = "secs")]
    pub cache_max_secs: Duration,
    /// How long a document that could not be fetched or was refused stays refused without a new fetch.
    #[serde(with = "secs")]
    pub failure_cache_secs: Duration,
    /// Document fetches (cache misses) per client IP per minute, on the authorize endpoints.
    pub fetches_per_ip_per_minute: u32,
}

/// Enterprise-managed authorization (MCP extension SEP-990): identity providers whose Identity
/// Assertion JWT Authorization Grants (ID-JAG) the token service exchanges for access tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentitySettings {
    pub trusted_issuers: Vec<TrustedIssuerSettings>,
    /// Allow issuer metadata and JWKS on loopback and private addresses (an IdP inside the
    /// deployment's network, tests). The same SSRF policy as metadata documents otherwise.
    pub allow_private_hosts: bool,
    /// Allow `http` issuers and JWKS URLs (tests only).
    pub allow_http: bool,
    #[serde(with = "millis")]
    pub timeout_ms: Duration,
    /// How long a fetched JWKS is used before it is fetched again.
    #[serde(with = "secs")]
    pub jwks_cache_secs: Duration,
    /// An assertion signed with an unknown `kid` refetches the JWKS at most this often per issuer.
    #[serde(with = "secs")]
    pub jwks_min_refetch_secs: Duration,
    /// Clock skew tolerated on an assertion's `exp`, `iat` and `nbf`.
    #[serde(with = "secs")]
    pub clock_skew_secs: Duration,
    /// The longest assertion lifetime (`exp - iat`) accepted.
    #[serde(with = "secs")]
    pub max_assertion_lifetime_secs: Duration,
}

impl IdentitySettings {
    /// Whether the token service accepts the JWT bearer grant at all.
    pub fn enabled(&self) -> bool {
        !self.trusted_issuers.is_empty()
    }
}

/// `[[identity.trusted_issuers]]`: one IdP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerSettings {
    /// The IdP's issuer identifier, compared byte for byte with an assertion's `iss`.
    pub issuer: String,
    /// Where its signing keys are; absent: from its RFC 8414 (or OpenID) metadata's `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: Option<HttpUrl>,
    /// A name for people (`sallyport user list`); the issuer when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The JWS algorithms its assertions may use.
    #[serde(default = "default_assertion_algs")]
    pub algorithms: Vec<protocol::idjag::AssertionAlg>,
}

fn default_assertion_algs() -> Vec<protocol::idjag::AssertionAlg> {
    // RS256 is mandatory to implement for RFC 7523 (§5); ES256 is what most IdPs offer besides
    vec![protocol::idjag::AssertionAlg::Rs256, protocol::idjag::AssertionAlg::Es256]
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceSettings {
    pub resource: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub documentation: Option<String>,
    /// Tokens without a user (client_credentials of an operator-made client) are issued for it and
    /// accepted by the gateway. Off: every token must name a user.
    #[serde(default)]
    pub accept_machine_tokens: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RevocationCheck {
    /// Trust a valid signature until `exp`.
    #[default]
    Off,
    /// Ask introspection, and remember the answer for `revocation_cache_secs`.
    Cached,
    /// Ask introspection on every request.
    Strict,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    pub routes: Vec<RouteSettings>,
    pub revocation_check: RevocationCheck,
    #[serde(with = "secs")]
    pub revocation_cache_secs: Duration,
    /// Credentials of a client allowed to introspect, for `cached` and `strict`.
    pub introspection_client_id: Option<String>,
    pub introspection_client_secret: Option<String>,
    /// Verified tokens remembered (by SHA-256) so repeat calls skip signature verification.
    pub token_cache_capacity: usize,
    /// Clock skew tolerated on `exp` and `nbf` (seconds).
    #[serde(with = "secs")]
    pub leeway_secs: Duration,
    #[serde(with = "millis")]
    pub upstream_connect_timeout_ms: Duration,
    /// Time to the upstream's response headers; a streamed body may then run for as long as it lasts.
    #[serde(with = "millis")]
    pub upstream_timeout_ms: Duration,
    /// Per client IP and minute, on the authorization server's public endpoints.
    pub register_per_ip_per_minute: u32,
    pub token_per_ip_per_minute: u32,
    pub login_per_ip_per_minute: u32,
    /// Trust `X-Forwarded-For` from the peer (behind an ingress) when taking the client IP.
    pub trust_forwarded_for: bool,
    /// Record every `tools/call` on an `mcp` route in `audit_events` (written off the request path).
    pub audit_tool_calls: bool,
    /// Tool-call events waiting for the database; beyond this they are dropped and counted.
    pub audit_queue: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// Path prefix on the gateway, e.g. `/mcp`.
    pub prefix: String,
    /// Upstream URL the prefix maps to.
    pub upstream: HttpUrl,
    /// The protected resource's identifier (RFC 8707): tokens must carry it in `aud`.
    pub resource: Option<String>,
    /// Scopes every request needs.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Extra scopes per HTTP method (e.g. `DELETE = ["admin"]`).
    #[serde(default)]
    pub method_scopes: BTreeMap<String, Vec<String>>,
    /// `false` turns the bearer check off for this route (a public upstream).
    #[serde(default = "yes")]
    pub auth: bool,
    /// Browser origins allowed to call this route (DNS-rebinding protection); empty allows none but same-origin.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// RFC 6750 §2.2/§2.3 token transports, off by default (MCP forbids tokens in URLs).
    #[serde(default)]
    pub allow_form_token: bool,
    #[serde(default)]
    pub allow_query_token: bool,
    /// An MCP endpoint: the gateway reads each JSON-RPC request (bounded) for the tool policy,
    /// the `tools/list` filter and the tool-call audit.
    #[serde(default)]
    pub mcp: bool,
    /// Which tools an `mcp` route lets through, by name pattern (`*` matches any run of characters).
    #[serde(default)]
    pub tools: ToolRules,
    /// Extra scopes a tool needs, by name pattern, e.g. `{ delete_issue = ["mcp:admin"] }`.
    #[serde(default)]
    pub tool_scopes: BTreeMap<String, Vec<String>>,
    /// What the gateway sends upstream instead of the client's `Authorization`: `none`, `api_key`
    /// (`upstream_api_key`) or `headers` (`upstream_headers`).
    #[serde(default)]
    pub upstream_auth: UpstreamAuth,
    /// `upstream_auth = "api_key"`: the header and its value.
    #[serde(default)]
    pub upstream_api_key: Option<ApiKeySettings>,
    /// `upstream_auth = "headers"`: header name to value.
    #[serde(default)]
    pub upstream_headers: BTreeMap<String, ConfigSecret>,
    /// `upstream_auth = "oauth2"`: what overrides discovery of the upstream's authorization server,
    /// and a client registered there by hand; may be left out entirely (all discovered).
    #[serde(default)]
    pub upstream_oauth: Option<UpstreamOAuthSettings>,
}

/// `upstream_oauth = { client_id = "…", client_secret = { env = "LINEAR_CLIENT_SECRET" }, scopes = ["read"] }`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamOAuthSettings {
    #[serde(default)]
    pub issuer: Option<HttpUrl>,
    #[serde(default)]
    pub authorization_endpoint: Option<HttpUrl>,
    #[serde(default)]
    pub token_endpoint: Option<HttpUrl>,
    #[serde(default)]
    pub revocation_endpoint: Option<HttpUrl>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// Only with `client_id` (a client registered by hand at the upstream).
    #[serde(default)]
    pub client_secret: Option<ConfigSecret>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub resource: Option<String>,
    /// Loopback and private upstream hosts (and http on loopback) for discovery, registration and
    /// tokens; off: global unicast only (the SSRF policy of client ID metadata documents).
    #[serde(default)]
    pub allow_private_hosts: bool,
}

impl UpstreamOAuthSettings {
    /// The explicit settings, as the gateway and the connect flow use them (the secret apart).
    pub fn explicit(&self) -> protocol::upstream_auth::UpstreamOAuth {
        let url = |u: &Option<HttpUrl>| u.as_ref().map(|u| u.as_str().to_owned());
        protocol::upstream_auth::UpstreamOAuth {
            issuer: url(&self.issuer),
            authorization_endpoint: url(&self.authorization_endpoint),
            token_endpoint: url(&self.token_endpoint),
            revocation_endpoint: url(&self.revocation_endpoint),
            client_id: self.client_id.clone(),
            scopes: self.scopes.clone(),
            resource: self.resource.clone(),
            allow_private_hosts: self.allow_private_hosts,
        }
    }
}

/// `upstream_api_key = { header = "X-API-Key", value = { env = "LINEAR_API_KEY" } }`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    pub header: String,
    pub value: ConfigSecret,
}

/// Tool name patterns of an `mcp` route; a name matching `deny` is refused even when `allow` matches it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ToolRules {
    /// Empty allows every tool not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

impl RouteSettings {
    /// The headers of the route's upstream credential (unchecked; `Settings::validate` checks them).
    pub fn upstream_credential(&self) -> Vec<(String, protocol::redact::SecretString)> {
        match self.upstream_auth {
            UpstreamAuth::None => Vec::new(),
            UpstreamAuth::ApiKey => {
                self.upstream_api_key.iter().map(|k| (k.header.clone(), k.value.secret().clone())).collect()
            }
            UpstreamAuth::Headers => {
                self.upstream_headers.iter().map(|(n, v)| (n.clone(), v.secret().clone())).collect()
            }
            UpstreamAuth::OAuth2 => Vec::new(),
        }
    }

    /// Whether this route has a tool policy the gateway must apply.
    pub fn has_tool_policy(&self) -> bool {
        !self.tools.allow.is_empty() || !self.tools.deny.is_empty() || !self.tool_scopes.is_empty()
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info,sallyport=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

/// `[telemetry]`: OpenTelemetry traces, off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP base URL of a collector (`http://otel-collector:4318`): spans go to
    /// `<endpoint>/v1/traces` as protobuf. Unset, no span is made or sent.
    pub otlp_endpoint: Option<HttpUrl>,
    /// The share of new traces recorded (0 to 1); a trace adopted from a trusted caller keeps the
    /// caller's decision (its `traceparent` sampled flag).
    pub sample_ratio: f64,
    /// Callers (addresses or CIDR networks) whose W3C `traceparent` the gateway adopts; every other
    /// caller's request starts a new trace. The services adopt the gateway's when they trust its
    /// client-address header (`trust_forwarded_for`), since the gateway replaces both.
    pub trusted_traceparent_sources: Vec<TrustedNet>,
}

impl TelemetrySettings {
    /// Whether traces are on.
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
    }

    /// Whether a request from `peer` may continue the trace its `traceparent` names.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.trusted_traceparent_sources.iter().any(|net| net.contains(peer))
    }
}

/// `[metrics]`: whether this process keeps and serves metrics. Where they are served is
/// `listen.admin` (a listener of its own) or, when that is unset, each service's own port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub enabled: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: Issuer::parse("http://127.0.0.1:8080").expect("a valid issuer"),
            allow_http_issuer: false,
            service_documentation: None,
            trust_forwarded_for: false,
            database: DatabaseSettings::default(),
            listen: ListenSettings::default(),
            services: ServiceUrls::default(),
            tokens: TokenSettings::default(),
            keys: KeySettings::default(),
            sessions: SessionSettings::default(),
            login: LoginSettings::default(),
            registration: RegistrationSettings::default(),
            metadata_documents: MetadataDocumentSettings::default(),
            identity: IdentitySettings::default(),
            resources: Vec::new(),
            gateway: GatewaySettings::default(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            telemetry: TelemetrySettings::default(),
        }
    }
}

/// `database.url` when neither it nor `DATABASE_URL` is set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/sallyport";

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into()),
            pool_size: 16,
            connect_timeout_ms: Duration::from_secs(5),
            acquire_timeout_ms: Duration::from_secs(5),
            migrate_on_start: false,
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Default for ListenSettings {
    fn default() -> Self {
        Self {
            registration: addr("127.0.0.1:8081"),
            authorize: addr("127.0.0.1:8082"),
            token: addr("127.0.0.1:8083"),
            metadata: addr("127.0.0.1:8084"),
            gateway: addr("127.0.0.1:8080"),
            workers: 0,
            shutdown_timeout_secs: Duration::from_secs(30),
            admin: None,
        }
    }
}

impl Default for ServiceUrls {
    fn default() -> Self {
        let url = |u: &str| HttpUrl::parse(u).expect("a valid URL");
        Self {
            registration: url("http://127.0.0.1:8081"),
            authorize: url("http://127.0.0.1:8082"),
            token: url("http://127.0.0.1:8083"),
            metadata: url("http://127.0.0.1:8084"),
        }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: Duration::from_secs(900),
            code_ttl_secs: Duration::from_secs(60),
            refresh_idle_ttl_secs: Duration::from_secs(30 * 86_400),
            refresh_absolute_ttl_secs: Duration::from_secs(90 * 86_400),
            signing_alg: SigningAlg::Es256,
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        Self { encryption_key: None, retired_publish_secs: Duration::from_secs(86_400) }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_ttl_secs: Duration::from_secs(8 * 3600),
            absolute_ttl_secs: Duration::from_secs(7 * 86_400),
            cookie_name: "sallyport_session".into(),
        }
    }
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout_secs: Duration::from_secs(300),
            per_ip_per_minute: 30,
            password: true,
            providers: Vec::new(),
        }
    }
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            initial_access_token: None,
            default_scopes: Vec::new(),
            max_redirect_uris: 10,
            per_ip_per_minute: 120,
            rotate_registration_token: false,
        }
    }
}

impl Default for MetadataDocumentSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_private_hosts: false,
            allow_http: false,
            timeout_ms: Duration::from_secs(5),
            max_bytes: 64 * 1024,
            cache_min_secs: Duration::from_secs(60),
            cache_max_secs: Duration::from_secs(86_400),
            failure_cache_secs: Duration::from_secs(30),
            fetches_per_ip_per_minute: 20,
        }
    }
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            trusted_issuers: Vec::new(),
            allow_private_hosts: false,
            allow_http: false,
            timeout_ms: Duration::from_secs(5),
            jwks_cache_secs: Duration::from_secs(300),
            jwks_min_refetch_secs: Duration::from_secs(30),
            clock_skew_secs: Duration::from_secs(60),
            max_assertion_lifetime_secs: Duration::from_secs(3600),
        }
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            revocation_check: RevocationCheck::Off,
            revocation_cache_secs: Duration::from_secs(30),
            introspection_client_id: None,
            introspection_client_secret: None,
            token_cache_capacity: 100_000,
            leeway_secs: Duration::from_secs(30),
            upstream_connect_timeout_ms: Duration::from_secs(5),
            upstream_timeout_ms: Duration::from_secs(60),
            register_per_ip_per_minute: 120,
            token_per_ip_per_minute: 6_000,
            login_per_ip_per_minute: 60,
            trust_forwarded_for: false,
            audit_tool_calls: true,
            audit_queue: 10_000,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Text, filter: "info".into() }
    }
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { otlp_endpoint: None, sample_ratio: 1.0, trusted_traceparent_sources: Vec::new() }
    }
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Keys whose environment values are comma-separated lists.
const LIST_KEYS: &[&str] = &["registration.default_scopes", "telemetry.trusted_traceparent_sources"];

impl Settings {
    /// Loads defaults, then the TOML file named by `SALLYPORT_CONFIG` (if any), then the environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::var("SALLYPORT_CONFIG").ok().as_deref(), None)
    }

    /// Like [`Settings::load`], with an explicit file and, for tests, an explicit environment.
    pub fn load_from(
        file: Option<&str>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let defaults = config::Config::try_from(&Settings::default())?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(path) = file {
            builder = builder.add_source(config::File::new(path, config::FileFormat::Toml).required(true));
        }
        let mut environment = config::Environment::with_prefix("SALLYPORT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",");
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        if let Some(vars) = &env {
            environment = environment.source(Some(vars.clone().into_iter().collect()));
        }
        let lookup = |name: &str| match &env {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        let mut settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.login.providers = providers_with_secrets(std::mem::take(&mut settings.login.providers), lookup)?;
        settings.check()?;
        settings.resources = with_tool_scopes(settings.resources, &settings.gateway.routes);
        Ok(settings)
    }

    /// `[identity]`: issuers are absolute URLs (https unless `allow_http`), each listed once, with at
    /// least one algorithm; the durations within the ranges the token service relies on.
    fn check_identity(&self) -> Result<(), ConfigError> {
        let id = &self.identity;
        if id.timeout_ms.is_zero() || id.timeout_ms > Duration::from_secs(10) {
            return Err(invalid("identity.timeout_ms", "must be between 1 and 10000"));
        }
        if id.jwks_cache_secs.is_zero() {
            return Err(invalid("identity.jwks_cache_secs", "must be positive"));
        }
        if id.jwks_min_refetch_secs > id.jwks_cache_secs {
            return Err(invalid("identity.jwks_min_refetch_secs", "must not exceed identity.jwks_cache_secs"));
        }
        if id.clock_skew_secs > Duration::from_secs(300) {
            return Err(invalid("identity.clock_skew_secs", "must be at most 300"));
        }
        if !(60..=86_400).contains(&id.max_assertion_lifetime_secs.as_secs()) {
            return Err(invalid("identity.max_assertion_lifetime_secs", "must be between 60 and 86400"));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &id.trusted_issuers {
            let url = Url::parse(&t.issuer).map_err(|_| {
                invalid("identity.trusted_issuers.issuer", format!("{}: not an absolute URL", t.issuer))
            })?;
            let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && id.allow_http);
            if !scheme_ok || url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
                return Err(invalid(
                    "identity.trusted_issuers.issuer",
                    format!("{}: must be an https URL without query or fragment (RFC 8414 §2)", t.issuer),
                ));
            }
            if let Some(jwks) = &t.jwks_uri
                && jwks.url().scheme() != "https"
                && !id.allow_http
            {
                return Err(invalid("identity.trusted_issuers.jwks_uri", format!("{jwks}: must be https")));
            }
            if !seen.insert(t.issuer.as_str()) {
                return Err(invalid("identity.trusted_issuers.issuer", format!("{}: listed twice", t.issuer)));
            }
            if t.algorithms.is_empty() {
                return Err(invalid("identity.trusted_issuers.algorithms", "must not be empty"));
            }
            if t.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                return Err(invalid("identity.trusted_issuers.name", "must not be empty"));
            }
        }
        Ok(())
    }

    /// The rules between keys and the ranges a service relies on, checked once at load (a value of
    /// the wrong form never got this far: its type refused it); the error names the key.
    fn check(&self) -> Result<(), ConfigError> {
        // http only where RFC 8252 §8.3 allows it, or where the operator says the network is private
        if !self.issuer.is_https() && !self.issuer.is_loopback() && !self.allow_http_issuer {
            return Err(invalid("issuer", "must be https (http only on loopback, or with allow_http_issuer)"));
        }
        if let Some(doc) = &self.service_documentation {
            Url::parse(doc).map_err(|_| invalid("service_documentation", "not an absolute URL"))?;
        }
        Url::parse(&self.database.url).map_err(|_| invalid("database.url", "not a postgres:// URL"))?;
        if !self.database.url.starts_with("postgres://") && !self.database.url.starts_with("postgresql://") {
            return Err(invalid("database.url", "must start with postgres://"));
        }
        if self.database.pool_size == 0 || self.database.pool_size > 1000 {
            return Err(invalid("database.pool_size", "must be between 1 and 1000"));
        }
        if self.database.connect_timeout_ms.is_zero() {
            return Err(invalid("database.connect_timeout_ms", "must be positive"));
        }
        if self.database.acquire_timeout_ms.is_zero() {
            return Err(invalid("database.acquire_timeout_ms", "must be positive"));
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(invalid("telemetry.sample_ratio", "must be between 0 and 1"));
        }
        let t = &self.tokens;
        if !(60..=86_400).contains(&t.access_token_ttl_secs.as_secs()) {
            return Err(invalid("tokens.access_token_ttl_secs", "must be between 60 and 86400"));
        }
        // RFC 6749 §4.1.2: a maximum lifetime of 10 minutes is recommended.
        if !(1..=600).contains(&t.code_ttl_secs.as_secs()) {
            return Err(invalid("tokens.code_ttl_secs", "must be between 1 and 600"));
        }
        if t.refresh_idle_ttl_secs.is_zero() {
            return Err(invalid("tokens.refresh_idle_ttl_secs", "must be positive"));
        }
        if t.refresh_absolute_ttl_secs < t.refresh_idle_ttl_secs {
            return Err(invalid("tokens.refresh_absolute_ttl_secs", "must be at least refresh_idle_ttl_secs"));
        }
        if self.listen.workers > 512 {
            // actix refuses more (with a panic): say so by the key's name first
            return Err(invalid("listen.workers", "must be at most 512 (0: one per core)"));
        }
        if self.keys.retired_publish_secs < t.access_token_ttl_secs {
            return Err(invalid("keys.retired_publish_secs", "must be at least tokens.access_token_ttl_secs"));
        }
        if self.sessions.idle_ttl_secs.is_zero() || self.sessions.absolute_ttl_secs < self.sessions.idle_ttl_secs {
            return Err(invalid("sessions.absolute_ttl_secs", "must be positive and at least sessions.idle_ttl_secs"));
        }
        if self.sessions.cookie_name.is_empty()
            || !self.sessions.cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid("sessions.cookie_name", "must be a non-empty token of [A-Za-z0-9_-]"));
        }
        if self.login.max_failures == 0 {
            return Err(invalid("login.max_failures", "must be positive"));
        }
        if self.login.per_ip_per_minute == 0 {
            return Err(invalid("login.per_ip_per_minute", "must be positive"));
        }
        check_providers(&self.login)?;
        let r = &self.registration;
        if r.max_redirect_uris == 0 {
            return Err(invalid("registration.max_redirect_uris", "must be positive"));
        }
        if r.per_ip_per_minute == 0 {
            return Err(invalid("registration.per_ip_per_minute", "must be positive"));
        }
        if let Some(t) = &r.initial_access_token
            && t.len() < 16
        {
            return Err(invalid("registration.initial_access_token", "must be at least 16 characters"));
        }
        // clients present it as `Authorization: Bearer <token>`, whose syntax is b64token
        // (RFC 6750 §2.1): a token outside it could never be presented
        if let Some(t) = &r.initial_access_token
            && !protocol::ident::is_b64token(t.as_bytes())
        {
            return Err(invalid(
                "registration.initial_access_token",
                "may only contain letters, digits and - . _ ~ + / (then = padding), as a bearer token",
            ));
        }
        Scopes::from_tokens(&r.default_scopes)
            .map_err(|_| invalid("registration.default_scopes", "contains an invalid scope token"))?;
        let m = &self.metadata_documents;
        if m.timeout_ms.is_zero() || m.timeout_ms > Duration::from_secs(5) {
            return Err(invalid("metadata_documents.timeout_ms", "must be between 1 and 5000"));
        }
        if m.max_bytes == 0 || m.max_bytes > 64 * 1024 {
            return Err(invalid("metadata_documents.max_bytes", "must be between 1 and 65536"));
        }
        if m.cache_min_secs > m.cache_max_secs {
            return Err(invalid("metadata_documents.cache_min_secs", "must not exceed cache_max_secs"));
        }
        self.check_identity()?;
        for res in &self.resources {
            ResourceUri::parse(&res.resource)
                .map_err(|e| invalid("resources.resource", format!("{}: {e}", res.resource)))?;
            if res.name.trim().is_empty() {
                return Err(invalid("resources.name", "must not be empty"));
            }
            Scopes::from_tokens(&res.scopes)
                .map_err(|_| invalid("resources.scopes", "contains an invalid scope token"))?;
            if let Some(doc) = &res.documentation {
                validate_info_url(doc).map_err(|e| invalid("resources.documentation", e.to_string()))?;
            }
        }
        let g = &self.gateway;
        for route in &g.routes {
            if !route.prefix.starts_with('/') || route.prefix.contains("..") {
                return Err(invalid("gateway.routes.prefix", format!("{}: must start with '/'", route.prefix)));
            }
            match (&route.resource, route.auth) {
                (Some(res), _) => {
                    ResourceUri::parse(res).map_err(|e| invalid("gateway.routes.resource", e.to_string()))?;
                }
                (None, true) => return Err(invalid("gateway.routes.resource", "required when auth is on")),
                (None, false) => {}
            }
            Scopes::from_tokens(&route.scopes).map_err(|_| invalid("gateway.routes.scopes", "invalid scope token"))?;
            for scopes in route.method_scopes.values() {
                Scopes::from_tokens(scopes)
                    .map_err(|_| invalid("gateway.routes.method_scopes", "invalid scope token"))?;
            }
            validate_tool_policy(route)?;
            validate_upstream_auth(route)?;
        }
        if g.revocation_check != RevocationCheck::Off
            && (g.introspection_client_id.is_none() || g.introspection_client_secret.is_none())
        {
            return Err(invalid(
                "gateway.introspection_client_id",
                "revocation_check needs introspection_client_id and introspection_client_secret",
            ));
        }
        if g.audit_queue == 0 {
            return Err(invalid("gateway.audit_queue", "must be positive"));
        }
        if g.token_cache_capacity == 0 {
            return Err(invalid("gateway.token_cache_capacity", "must be positive"));
        }
        if g.leeway_secs > Duration::from_secs(300) {
            return Err(invalid("gateway.leeway_secs", "must be at most 300"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(invalid("log.filter", format!("not a tracing filter ({e}), e.g. info or info,token=debug")));
        }
        Ok(())
    }
}

/// Each provider's `client_secret_env` read into its `client_secret` (the variable must be set), so
/// the rest of the process sees one place for the secret.
fn providers_with_secrets(
    mut providers: Vec<ProviderSettings>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ProviderSettings>, ConfigError> {
    for p in &mut providers {
        match (&p.client_secret, p.client_secret_env.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "login.providers.client_secret_env",
                    format!("{}: set client_secret or client_secret_env, not both", p.id),
                ));
            }
            (None, Some(var)) => match lookup(var).filter(|v| !v.is_empty()) {
                Some(secret) => p.client_secret = Some(secret.into()),
                None => {
                    return Err(invalid(
                        "login.providers.client_secret_env",
                        format!("{}: the environment variable {var} is not set", p.id),
                    ));
                }
            },
            (None, None) => {
                return Err(invalid(
                    "login.providers.client_secret",
                    format!("{}: needs client_secret or client_secret_env", p.id),
                ));
            }
            (Some(_), None) => {}
        }
    }
    Ok(providers)
}

/// The providers' ids are distinct path segments; each issuer is an https URL (http only with
/// `allow_private_hosts`, for a provider on a private network or in tests); `openid` is among the
/// scopes; admission rules are well-formed.
fn check_providers(login: &LoginSettings) -> Result<(), ConfigError> {
    if !login.password && login.providers.is_empty() {
        return Err(invalid("login.password", "false needs at least one of login.providers to sign in with"));
    }
    let mut seen = std::collections::HashSet::new();
    for p in &login.providers {
        let id_ok = !p.id.is_empty()
            && p.id.len() <= 64
            && p.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(invalid("login.providers.id", format!("{:?}: must be 1 to 64 of [a-z0-9_-]", p.id)));
        }
        if !seen.insert(p.id.as_str()) {
            return Err(invalid("login.providers.id", format!("{}: appears twice", p.id)));
        }
        if p.name.trim().is_empty() {
            return Err(invalid("login.providers.name", format!("{}: must not be empty", p.id)));
        }
        let issuer = Url::parse(&p.issuer).map_err(|_| invalid("login.providers.issuer", "not an absolute URL"))?;
        let scheme_ok = issuer.scheme() == "https" || (issuer.scheme() == "http" && p.allow_private_hosts);
        if !scheme_ok || issuer.host().is_none() || issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(invalid(
                "login.providers.issuer",
                format!(
                    "{}: must be an https URL without query or fragment (http only with allow_private_hosts)",
                    p.id
                ),
            ));
        }
        if p.client_id.is_empty() {
            return Err(invalid("login.providers.client_id", format!("{}: must not be empty", p.id)));
        }
        if !p.scopes.iter().any(|s| s == "openid") {
            return Err(invalid("login.providers.scopes", format!("{}: must contain openid", p.id)));
        }
        Scopes::from_tokens(&p.scopes).map_err(|_| invalid("login.providers.scopes", "invalid scope token"))?;
        if p.username_claim.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("login.providers.username_claim", format!("{}: must not be empty", p.id)));
        }
        if let Some(d) = p.allowed_email_domains.iter().find(|d| d.is_empty() || d.contains('@') || d.contains(' ')) {
            return Err(invalid("login.providers.allowed_email_domains", format!("{d:?}: not a domain")));
        }
    }
    Ok(())
}

/// A route's upstream credential: the keys its kind needs and no other, each header valid.
fn validate_upstream_auth(route: &RouteSettings) -> Result<(), ConfigError> {
    let key = match route.upstream_auth {
        UpstreamAuth::ApiKey => "gateway.routes.upstream_api_key",
        _ => "gateway.routes.upstream_headers",
    };
    let statics = route.upstream_api_key.is_some() || !route.upstream_headers.is_empty();
    let stray = match route.upstream_auth {
        UpstreamAuth::None => statics || route.upstream_oauth.is_some(),
        UpstreamAuth::ApiKey => !route.upstream_headers.is_empty() || route.upstream_oauth.is_some(),
        UpstreamAuth::Headers => route.upstream_api_key.is_some() || route.upstream_oauth.is_some(),
        UpstreamAuth::OAuth2 => statics,
    };
    if stray {
        return Err(invalid(
            "gateway.routes.upstream_auth",
            format!(
                "{}: upstream_auth = \"{}\" takes {}",
                route.prefix,
                route.upstream_auth.as_str(),
                match route.upstream_auth {
                    UpstreamAuth::None => "neither upstream_api_key, upstream_headers nor upstream_oauth",
                    UpstreamAuth::ApiKey => "upstream_api_key, not upstream_headers or upstream_oauth",
                    UpstreamAuth::Headers => "upstream_headers, not upstream_api_key or upstream_oauth",
                    UpstreamAuth::OAuth2 => "upstream_oauth, not upstream_api_key or upstream_headers",
                }
            ),
        ));
    }
    let credential = route.upstream_credential();
    protocol::upstream_auth::check_credential(
        route.upstream_auth,
        credential.iter().map(|(n, v)| (n.as_str(), v.expose())),
    )
    .map_err(|e| invalid(key, format!("{}: {e}", route.prefix)))?;
    if route.upstream_auth == UpstreamAuth::OAuth2 {
        validate_upstream_oauth(route)?;
    }
    Ok(())
}

/// An `oauth2` route: each user's own upstream token needs a signed-in user, so the route checks
/// bearer tokens; a client secret belongs to a hand-registered client; a hand-given authorization
/// endpoint needs the token endpoint and the client that go with it (no discovery fills the gap).
fn validate_upstream_oauth(route: &RouteSettings) -> Result<(), ConfigError> {
    let key = "gateway.routes.upstream_oauth";
    if !route.auth {
        return Err(invalid(
            "gateway.routes.auth",
            format!(
                "{}: upstream_auth = \"oauth2\" sends each user's own upstream token, so the route needs auth = true",
                route.prefix
            ),
        ));
    }
    let Some(o) = &route.upstream_oauth else { return Ok(()) };
    if o.client_secret.is_some() && o.client_id.is_none() {
        return Err(invalid(key, format!("{}: client_secret needs the client_id it belongs to", route.prefix)));
    }
    if o.authorization_endpoint.is_some() != o.token_endpoint.is_some() {
        return Err(invalid(
            key,
            format!(
                "{}: authorization_endpoint and token_endpoint are given together, or both discovered",
                route.prefix
            ),
        ));
    }
    if o.authorization_endpoint.is_some() && o.client_id.is_none() {
        return Err(invalid(
            key,
            format!("{}: explicit endpoints without metadata need a client_id registered there", route.prefix),
        ));
    }
    if let Some(resource) = &o.resource {
        ResourceUri::parse(resource)
            .map_err(|e| invalid(key, format!("{}: resource {resource:?}: {e}", route.prefix)))?;
    }
    Ok(())
}

/// The resources with each `mcp` route's scopes and tool scopes added to the one it protects, so the
/// RFC 9728 metadata lists them in `scopes_supported` and the authorization server grants them
/// (SEP-835: a client learns there which scopes to ask for before a step-up).
pub fn with_tool_scopes(mut resources: Vec<ResourceSettings>, routes: &[RouteSettings]) -> Vec<ResourceSettings> {
    for route in routes {
        let Some(id) = route.resource.as_deref().and_then(|r| ResourceUri::parse(r).ok()) else { continue };
        if route.tool_scopes.is_empty() {
            continue;
        }
        let wanted = route.scopes.iter().chain(route.tool_scopes.values().flatten());
        for res in &mut resources {
            if ResourceUri::parse(&res.resource).is_ok_and(|r| r == id) {
                for scope in wanted.clone() {
                    if !res.scopes.contains(scope) {
                        res.scopes.push(scope.clone());
                    }
                }
            }
        }
    }
    resources
}

/// Tool patterns are tool names (SEP-986 characters) with `*` wildcards; tool scopes are scope
/// tokens, never `offline_access` (SEP-2207: it is not a resource scope).
fn validate_tool_policy(route: &RouteSettings) -> Result<(), ConfigError> {
    let pattern_ok = |p: &String| {
        !p.is_empty() && p.len() <= 128 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./*".contains(&b))
    };
    if (route.has_tool_policy()) && !route.mcp {
        return Err(invalid("gateway.routes.mcp", format!("{}: tools and tool_scopes need mcp = true", route.prefix)));
    }
    if let Some(bad) = route.tools.allow.iter().chain(&route.tools.deny).find(|p| !pattern_ok(p)) {
        return Err(invalid("gateway.routes.tools", format!("{bad}: not a tool name pattern")));
    }
    for (pattern, scopes) in &route.tool_scopes {
        if !pattern_ok(pattern) {
            return Err(invalid("gateway.routes.tool_scopes", format!("{pattern}: not a tool name pattern")));
        }
        if scopes.is_empty() || scopes.iter().any(|s| s == "offline_access") {
            return Err(invalid(
                "gateway.routes.tool_scopes",
                format!("{pattern}: needs at least one scope, and never offline_access"),
            ));
        }
        Scopes::from_tokens(scopes).map_err(|_| invalid("gateway.routes.tool_scopes", "invalid scope token"))?;
    }
    if !route.tool_scopes.is_empty() && !route.auth {
        return Err(invalid("gateway.routes.tool_scopes", "needs auth = true"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert_eq!(s.tokens.access_token_ttl_secs, Duration::from_secs(900));
        assert_eq!(s.tokens.code_ttl_secs, Duration::from_secs(60));
        assert_eq!(s.tokens.signing_alg, SigningAlg::Es256);
        assert_eq!(s.metadata_documents.timeout_ms, Duration::from_millis(5_000));
        assert_eq!(s.services.token.as_str(), "http://127.0.0.1:8083/");
        assert_eq!(s.log.format, LogFormat::Text);
    }

    #[test]
    fn environment_overrides() {
        let s = Settings::load_from(
            None,
            env(&[
                ("SALLYPORT__ISSUER", "https://auth.example.com"),
                ("SALLYPORT__DATABASE__POOL_SIZE", "4"),
                ("SALLYPORT__REGISTRATION__DEFAULT_SCOPES", "mcp,files:read"),
                ("SALLYPORT__TOKENS__SIGNING_ALG", "EdDSA"),
                ("SALLYPORT__TOKENS__ACCESS_TOKEN_TTL_SECS", "600"),
                ("SALLYPORT__GATEWAY__UPSTREAM_TIMEOUT_MS", "2500"),
                ("SALLYPORT__SERVICES__TOKEN", "http://token:8083"),
                ("SALLYPORT__LOG__FORMAT", "json"),
            ]),
        )
        .expect("loads");
        assert_eq!(s.issuer.as_str(), "https://auth.example.com");
        assert_eq!(s.database.pool_size, 4);
        assert_eq!(s.registration.default_scopes, vec!["mcp", "files:read"]);
        assert_eq!(s.tokens.signing_alg, SigningAlg::EdDsa);
        assert_eq!(s.tokens.access_token_ttl_secs, Duration::from_secs(600));
        assert_eq!(s.gateway.upstream_timeout_ms, Duration::from_millis(2_500));
        assert_eq!(s.services.token.base(), "http://token:8083");
        assert_eq!(s.log.format, LogFormat::Json);
    }

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sallyport-cfg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("c.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn toml_file_then_environment() {
        let path = write(
            "file",
            r#"
issuer = "https://a.example"
[tokens]
code_ttl_secs = 120
signing_alg = "RS256"
[keys]
retired_publish_secs = 7200
[metadata_documents]
timeout_ms = 750
[[resources]]
resource = "https://a.example/mcp"
name = "MCP"
scopes = ["mcp"]
[[gateway.routes]]
prefix = "/mcp"
upstream = "http://127.0.0.1:9000/mcp"
resource = "https://a.example/mcp"
"#,
        );
        let s = Settings::load_from(path.to_str(), env(&[("SALLYPORT__TOKENS__CODE_TTL_SECS", "30")])).expect("loads");
        assert_eq!(s.issuer.as_str(), "https://a.example");
        assert_eq!(s.tokens.code_ttl_secs, Duration::from_secs(30));
        assert_eq!(s.tokens.signing_alg, SigningAlg::Rs256);
        assert_eq!(s.keys.retired_publish_secs, Duration::from_secs(7_200));
        assert_eq!(s.metadata_documents.timeout_ms, Duration::from_millis(750));
        assert_eq!(s.gateway.routes[0].upstream.as_str(), "http://127.0.0.1:9000/mcp");
        assert_eq!(s.resources.len(), 1);
        std::fs::remove_dir_all(path.parent().expect("dir")).ok();
    }

    fn err(file: Option<&str>, pairs: &[(&str, &str)]) -> (String, String) {
        match Settings::load_from(file, env(pairs)) {
            Err(ConfigError::Invalid { key, message }) => (key, message),
            Err(ConfigError::Load(e)) => (format!("load: {e}"), String::new()),
            Ok(_) => ("ok".into(), String::new()),
        }
    }

    fn err_key(pairs: &[(&str, &str)]) -> String {
        err(None, pairs).0
    }

    #[test]
    fn upstream_credentials_from_the_file_or_the_environment() {
        let route = "[[gateway.routes]]\nprefix = \"/r\"\nupstream = \"http://a:1\"\nauth = false\n";
        let path = write(
            "up-auth",
            &format!(
                "{route}upstream_auth = \"api_key\"\nupstream_api_key = {{ header = \"X-Key\", value = {{ env = \"PATH\" }} }}\n"
            ),
        );
        let s = Settings::load_from(path.to_str(), env(&[])).expect("a key from the environment");
        std::fs::remove_dir_all(path.parent().expect("dir")).ok();
        let credential = s.gateway.routes[0].upstream_credential();
        assert_eq!(credential.len(), 1);
        assert_eq!(credential[0].0, "X-Key");
        assert_eq!(credential[0].1.expose(), std::env::var("PATH").expect("PATH"));
        assert!(!format!("{:?}", s.gateway).contains(credential[0].1.expose()), "never in Debug");

        let file = |name: &str, text: &str| {
            let path = write(name, &format!("{route}{text}\n"));
            let found = err(path.to_str(), &[]);
            std::fs::remove_dir_all(path.parent().expect("dir")).ok();
            found
        };
        let headers =
            "upstream_auth = \"headers\"\nupstream_headers = { authorization = \"Bearer a\", x-tenant = \"t\" }";
        assert_eq!(file("up-headers", headers).0, "ok");
        for (name, bad, key) in [
            ("up-a", "upstream_auth = \"api_key\"", "gateway.routes.upstream_api_key"),
            ("up-b", "upstream_headers = { x-a = \"1\" }", "gateway.routes.upstream_auth"),
            (
                "up-c",
                "upstream_auth = \"headers\"\nupstream_headers = { host = \"evil\" }",
                "gateway.routes.upstream_headers",
            ),
            (
                "up-d",
                "upstream_auth = \"headers\"\nupstream_headers = { x-a = \"a\\r\\nb\" }",
                "gateway.routes.upstream_headers",
            ),
            (
                "up-e",
                "upstream_auth = \"api_key\"\nupstream_api_key = { header = \"X-Key\", value = { env = \"SALLYPORT_UNSET_VAR_20\" } }",
                "gateway.routes[0].upstream_api_key.value",
            ),
            ("up-f", "upstream_auth = \"basic\"", "gateway.routes[0].upstream_auth"),
            // the route of this test has auth = false: no user, no per-user upstream token
            ("up-g", "upstream_auth = \"oauth2\"", "gateway.routes.auth"),
            ("up-h", "upstream_oauth = { client_id = \"c\" }", "gateway.routes.upstream_auth"),
            (
                "up-i",
                "upstream_auth = \"oauth2\"\nupstream_api_key = { header = \"X-Key\", value = \"k\" }",
                "gateway.routes.upstream_auth",
            ),
        ] {
            let (found, message) = file(name, bad);
            assert_eq!(found, key, "{bad}: {message}");
            assert!(!message.contains("evil"), "no value repeated: {message}");
        }

        let authed = "[[gateway.routes]]\nprefix = \"/r\"\nupstream = \"http://a:1\"\nresource = \"https://gw.example/r\"\nupstream_auth = \"oauth2\"\n";
        let oauth = |name: &str, text: &str| {
            let path = write(name, &format!("{authed}{text}\n"));
            let found = err(path.to_str(), &[]);
            std::fs::remove_dir_all(path.parent().expect("dir")).ok();
            found
        };
        assert_eq!(oauth("oa-ok", "").0, "ok", "everything discovered");
        let explicit = "upstream_oauth = { authorization_endpoint = \"https://as.example/a\", token_endpoint = \"https://as.example/t\", client_id = \"c\", client_secret = \"s\", scopes = [\"read\"] }";
        assert_eq!(oauth("oa-explicit", explicit).0, "ok");
        for (name, bad) in [
            ("oa-a", "upstream_oauth = { client_secret = \"s\" }"),
            ("oa-b", "upstream_oauth = { authorization_endpoint = \"https://as.example/a\", client_id = \"c\" }"),
            (
                "oa-c",
                "upstream_oauth = { authorization_endpoint = \"https://as.example/a\", token_endpoint = \"https://as.example/t\" }",
            ),
            ("oa-d", "upstream_oauth = { resource = \"not a uri\" }"),
        ] {
            let (found, message) = oauth(name, bad);
            assert_eq!(found, "gateway.routes.upstream_oauth", "{bad}: {message}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "not a url")]), "issuer");
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "https://a.example/")]), "issuer");
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "http://auth.example.com")]), "issuer");
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "https://a.example?x=1")]), "issuer");
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "ftp://a.example")]), "issuer");
        for unnormalised in [
            "HTTPS://a.example",
            "https://A.example",
            "https://a.example:443",
            "https://u@a.example",
            "https://a.example/x/../y",
        ] {
            assert_eq!(err_key(&[("SALLYPORT__ISSUER", unnormalised)]), "issuer", "{unnormalised}");
        }
        for fine in
            ["https://a.example", "https://a.example:8443/tenant/x", "http://[::1]:8080", "http://127.0.0.1:8080"]
        {
            assert_eq!(err_key(&[("SALLYPORT__ISSUER", fine)]), "ok", "{fine}");
        }
        assert_eq!(err_key(&[("SALLYPORT__TOKENS__CODE_TTL_SECS", "601")]), "tokens.code_ttl_secs");
        assert_eq!(err_key(&[("SALLYPORT__DATABASE__POOL_SIZE", "0")]), "database.pool_size");
        assert_eq!(err_key(&[("SALLYPORT__DATABASE__URL", "mysql://x")]), "database.url");
        assert_eq!(err_key(&[("SALLYPORT__KEYS__ENCRYPTION_KEY", "c2hvcnQ=")]), "keys.encryption_key");
        assert_eq!(err_key(&[("SALLYPORT__KEYS__ENCRYPTION_KEY", "not base64!")]), "keys.encryption_key");
        assert_eq!(err_key(&[("SALLYPORT__TOKENS__SIGNING_ALG", "HS256")]), "tokens.signing_alg");
        assert_eq!(err_key(&[("SALLYPORT__TOKENS__SIGNING_ALG", "es256")]), "tokens.signing_alg");
        assert_eq!(err_key(&[("SALLYPORT__LOG__FORMAT", "xml")]), "log.format");
        assert_eq!(err_key(&[("SALLYPORT__LISTEN__WORKERS", "513")]), "listen.workers");
        assert_eq!(err_key(&[("SALLYPORT__LOG__FILTER", "info,=[")]), "log.filter");
        assert_eq!(err_key(&[("SALLYPORT__LOG__FILTER", "warn,token=debug")]), "ok");
        let iat = "SALLYPORT__REGISTRATION__INITIAL_ACCESS_TOKEN";
        assert_eq!(err_key(&[(iat, "short")]), "registration.initial_access_token");
        assert_eq!(err_key(&[(iat, "has a space in it, so no")]), "registration.initial_access_token");
        assert_eq!(err_key(&[(iat, "quote\"is-not-b64token")]), "registration.initial_access_token");
        assert_eq!(err_key(&[(iat, "Abc-._~+/0123456789==")]), "ok");
        assert_eq!(
            err_key(&[("SALLYPORT__ISSUER", "http://10.0.0.1:8080"), ("SALLYPORT__ALLOW_HTTP_ISSUER", "true")]),
            "ok"
        );
        for (key, var) in [
            ("services.registration", "SALLYPORT__SERVICES__REGISTRATION"),
            ("services.authorize", "SALLYPORT__SERVICES__AUTHORIZE"),
            ("services.token", "SALLYPORT__SERVICES__TOKEN"),
            ("services.metadata", "SALLYPORT__SERVICES__METADATA"),
        ] {
            for bad in ["token:8083", "ftp://token:8083", "not a url"] {
                assert_eq!(err_key(&[(var, bad)]), key, "{var}={bad}");
            }
        }
    }

    #[test]
    fn a_value_of_the_wrong_form_stops_the_load_with_its_key_and_what_was_wrong() {
        let (key, message) = err(None, &[("SALLYPORT__TOKENS__ACCESS_TOKEN_TTL_SECS", "abc")]);
        assert_eq!(key, "tokens.access_token_ttl_secs");
        assert_eq!(message, r#"invalid duration "abc": a whole number of seconds"#);
        let (key, message) = err(None, &[("SALLYPORT__GATEWAY__UPSTREAM_TIMEOUT_MS", "-5")]);
        assert_eq!(key, "gateway.upstream_timeout_ms");
        assert!(message.starts_with("invalid duration -5: a whole number of milliseconds"), "{message}");
        let (key, message) = err(None, &[("SALLYPORT__SESSIONS__IDLE_TTL_SECS", "8h")]);
        assert_eq!(
            (key.as_str(), message.as_str()),
            ("sessions.idle_ttl_secs", r#"invalid duration "8h": a whole number of seconds"#)
        );
        let (key, message) = err(None, &[("SALLYPORT__TOKENS__SIGNING_ALG", "HS256")]);
        assert_eq!(key, "tokens.signing_alg");
        assert!(message.contains("HS256") && message.contains("ES256, EdDSA or RS256"), "{message}");
        let (key, message) = err(None, &[("SALLYPORT__SERVICES__TOKEN", "ftp://token")]);
        assert_eq!(key, "services.token");
        assert!(message.contains("not an http(s) URL"), "{message}");
        let shown = Settings::load_from(None, env(&[("SALLYPORT__METADATA_DOCUMENTS__TIMEOUT_MS", "1.5")]))
            .expect_err("a fraction")
            .to_string();
        assert_eq!(
            shown,
            "configuration key `metadata_documents.timeout_ms`: invalid duration 1.5: a whole number of milliseconds"
        );

        // the same from a file, where a list's entry is named by its index
        let file = |name: &str, text: &str| {
            let path = write(name, text);
            let found = err(path.to_str(), &[]);
            std::fs::remove_dir_all(path.parent().expect("dir")).ok();
            found
        };
        let route = "[[gateway.routes]]\nprefix = \"/a\"\nauth = false\n";
        assert_eq!(file("up-ok", &format!("{route}upstream = \"http://a:1\"\n")).0, "ok");
        let (key, message) = file("up-bad", &format!("{route}upstream = \"unix:/run/a.sock\"\n"));
        assert_eq!(key, "gateway.routes[0].upstream");
        assert!(message.contains("not an http(s) URL"), "{message}");
        let (key, message) = file("ttl", "[tokens]\nrefresh_idle_ttl_secs = \"a month\"\n");
        assert_eq!(key, "tokens.refresh_idle_ttl_secs");
        assert_eq!(message, r#"invalid duration "a month": a whole number of seconds"#);
        assert_eq!(file("alg", "[tokens]\nsigning_alg = \"none\"\n").0, "tokens.signing_alg");
        assert_eq!(file("iss", "issuer = \"https://a.example/\"\n").0, "issuer");
        assert_eq!(file("kek", "[keys]\nencryption_key = \"c2hvcnQ=\"\n").0, "keys.encryption_key");
        assert_eq!(file("leeway", "[gateway]\nleeway_secs = -1\n").0, "gateway.leeway_secs");
    }

    #[test]
    fn the_metrics_keys_are_typed() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert!(s.metrics.enabled);
        assert_eq!(s.listen.admin, None, "unset: each service serves /metrics on its own port");
        let s = Settings::load_from(
            None,
            env(&[("SALLYPORT__LISTEN__ADMIN", "0.0.0.0:9464"), ("SALLYPORT__METRICS__ENABLED", "false")]),
        )
        .expect("loads");
        assert_eq!(s.listen.admin, Some(SocketAddr::from(([0, 0, 0, 0], 9464))));
        assert!(!s.metrics.enabled);
        assert_eq!(err(None, &[("SALLYPORT__LISTEN__ADMIN", "9464")]).0, "listen.admin");
        assert_eq!(err(None, &[("SALLYPORT__METRICS__ENABLED", "sometimes")]).0, "metrics.enabled");
    }

    #[test]
    fn openid_providers_are_checked_and_their_secret_comes_from_the_environment() {
        let load = |name: &str, text: &str, vars: &[(&str, &str)]| {
            let path = write(name, text);
            let found = Settings::load_from(path.to_str(), env(vars));
            std::fs::remove_dir_all(path.parent().expect("dir")).ok();
            found
        };
        let provider = |extra: &str| {
            format!(
                "[[login.providers]]\nid = \"corp\"\nname = \"Corp ID\"\nissuer = \"https://login.corp.example\"\nclient_id = \"sp\"\n{extra}\n"
            )
        };
        let s = load("op-env", &provider("client_secret_env = \"CORP_SECRET\""), &[("CORP_SECRET", "s3cret-value")])
            .expect("loads");
        let p = &s.login.providers[0];
        assert_eq!(p.client_secret.as_ref().map(|s| s.expose()), Some("s3cret-value"));
        assert_eq!(p.scopes, vec!["openid", "email", "profile"], "the default scopes");
        assert!(s.login.password && p.required_claims.is_empty() && !p.allow_private_hosts);
        assert!(!format!("{s:?}").contains("s3cret-value"), "the secret is never printed");
        let s = load(
            "op-rules",
            &provider("client_secret = \"x\"\nallowed_email_domains = [\"corp.example\"]\nrequired_claims = { groups = \"mcp-users\" }"),
            &[],
        )
        .expect("loads");
        assert_eq!(s.login.providers[0].required_claims["groups"], "mcp-users");
        let key = |r: Result<Settings, ConfigError>| match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => format!("{other:?}"),
        };
        assert_eq!(
            key(load("op-unset", &provider("client_secret_env = \"NOPE\""), &[])),
            "login.providers.client_secret_env"
        );
        assert_eq!(key(load("op-none", &provider(""), &[])), "login.providers.client_secret");
        let both = provider("client_secret = \"x\"\nclient_secret_env = \"Y\"");
        assert_eq!(key(load("op-both", &both, &[("Y", "y")])), "login.providers.client_secret_env");
        let twice = format!("{}{}", provider("client_secret = \"x\""), provider("client_secret = \"x\""));
        assert_eq!(key(load("op-twice", &twice, &[])), "login.providers.id");
        let http = provider("client_secret = \"x\"").replace("https://login", "http://login");
        assert_eq!(key(load("op-http", &http, &[])), "login.providers.issuer");
        let private = format!("{http}allow_private_hosts = true\n");
        assert!(load("op-private", &private, &[]).is_ok(), "http on a private network");
        let no_openid = provider("client_secret = \"x\"\nscopes = [\"email\"]");
        assert_eq!(key(load("op-scopes", &no_openid, &[])), "login.providers.scopes");
        assert_eq!(key(load("op-nopw", "[login]\npassword = false\n", &[])), "login.password");
        let off = format!("[login]\npassword = false\n{}", provider("client_secret = \"x\""));
        assert!(!load("op-off", &off, &[]).expect("loads").login.password);
    }

    #[test]
    fn the_telemetry_keys_are_typed() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert!(!s.telemetry.enabled(), "traces are off unless an endpoint is set");
        assert!(!s.telemetry.trusts("127.0.0.1".parse().expect("ip")), "nobody's traceparent by default");
        let s = Settings::load_from(
            None,
            env(&[
                ("SALLYPORT__TELEMETRY__OTLP_ENDPOINT", "http://otel-collector:4318"),
                ("SALLYPORT__TELEMETRY__SAMPLE_RATIO", "0.25"),
                ("SALLYPORT__TELEMETRY__TRUSTED_TRACEPARENT_SOURCES", "10.1.2.3/8, 192.0.2.7,2001:db8::/32"),
            ]),
        )
        .expect("loads");
        assert!(s.telemetry.enabled());
        assert_eq!(s.telemetry.otlp_endpoint.as_ref().map(HttpUrl::base), Some("http://otel-collector:4318"));
        assert!((s.telemetry.sample_ratio - 0.25).abs() < f64::EPSILON);
        let trusts = |ip: &str| s.telemetry.trusts(ip.parse().expect("ip"));
        assert!(trusts("10.200.0.1") && trusts("192.0.2.7") && trusts("2001:db8::1"));
        assert!(trusts("::ffff:10.0.0.9"), "an IPv4 peer of a dual-stack socket");
        assert!(!trusts("192.0.2.8") && !trusts("11.0.0.1") && !trusts("2001:db9::1"));
        assert_eq!(err(None, &[("SALLYPORT__TELEMETRY__OTLP_ENDPOINT", "otel:4318")]).0, "telemetry.otlp_endpoint");
        assert_eq!(err(None, &[("SALLYPORT__TELEMETRY__SAMPLE_RATIO", "1.5")]).0, "telemetry.sample_ratio");
        let (key, message) = err(None, &[("SALLYPORT__TELEMETRY__TRUSTED_TRACEPARENT_SOURCES", "10.0.0.0/33")]);
        assert!(key.starts_with("telemetry.trusted_traceparent_sources"), "{key}");
        assert!(message.contains("CIDR"), "{message}");
    }

    #[test]
    fn trusted_issuers_are_typed_and_checked() {
        let dir = std::env::temp_dir().join(format!("sallyport-cfg-idp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let load = |text: &str| {
            let path = dir.join("i.toml");
            std::fs::write(&path, text).expect("write");
            Settings::load_from(path.to_str(), env(&[]))
        };
        let s = load(
            r#"
[[identity.trusted_issuers]]
issuer = "https://idp.example.com/oauth2/default"
name = "Corp IdP"
[[identity.trusted_issuers]]
issuer = "https://login.example.org"
jwks_uri = "https://login.example.org/keys"
algorithms = ["EdDSA", "PS256"]
"#,
        )
        .expect("loads");
        assert!(s.identity.enabled());
        let [a, b] = s.identity.trusted_issuers.as_slice() else { panic!("two issuers") };
        assert_eq!(a.algorithms, vec![protocol::idjag::AssertionAlg::Rs256, protocol::idjag::AssertionAlg::Es256]);
        assert_eq!((a.name.as_deref(), a.jwks_uri.as_ref()), (Some("Corp IdP"), None));
        assert_eq!(b.jwks_uri.as_ref().map(HttpUrl::as_str), Some("https://login.example.org/keys"));
        assert!(!Settings::default().identity.enabled());
        let key = |r: Result<Settings, ConfigError>| match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => format!("{other:?}"),
        };
        let one = |extra: &str| format!("[[identity.trusted_issuers]]\nissuer = \"https://idp.example\"\n{extra}");
        assert_eq!(key(load(&one("algorithms = [\"HS256\"]"))), "identity.trusted_issuers[0].algorithms[0]");
        assert_eq!(key(load(&one("algorithms = [\"none\"]"))), "identity.trusted_issuers[0].algorithms[0]");
        assert_eq!(key(load(&one("algorithms = []"))), "identity.trusted_issuers.algorithms");
        assert_eq!(key(load(&one("jwks_uri = \"ftp://idp.example/k\""))), "identity.trusted_issuers[0].jwks_uri");
        assert_eq!(key(load(&one("jwks_uri = \"http://idp.example/k\""))), "identity.trusted_issuers.jwks_uri");
        assert_eq!(key(load(&one("unknown = 1"))), "identity.trusted_issuers[0]");
        assert_eq!(key(load(&format!("{}{}", one(""), one("")))), "identity.trusted_issuers.issuer", "twice");
        for bad in ["http://idp.example", "idp.example", "https://idp.example?x=1", "https://idp.example#f"] {
            let text = format!("[[identity.trusted_issuers]]\nissuer = \"{bad}\"\n");
            assert_eq!(key(load(&text)), "identity.trusted_issuers.issuer", "{bad}");
        }
        let http_ok =
            "[identity]\nallow_http = true\n[[identity.trusted_issuers]]\nissuer = \"http://127.0.0.1:9/idp\"\n";
        assert!(load(http_ok).is_ok());
        assert_eq!(key(load("[identity]\nclock_skew_secs = 301\n")), "identity.clock_skew_secs");
        assert_eq!(key(load("[identity]\nmax_assertion_lifetime_secs = 10\n")), "identity.max_assertion_lifetime_secs");
        assert_eq!(key(load("[identity]\njwks_min_refetch_secs = 900\n")), "identity.jwks_min_refetch_secs");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn keys_below_a_list_entry_have_their_dot() {
        assert_eq!(dotted("gateway.routes[0]upstream"), "gateway.routes[0].upstream");
        assert_eq!(dotted("gateway.routes[1]tools.deny[0]"), "gateway.routes[1].tools.deny[0]");
        assert_eq!(dotted("a[0][1]b"), "a[0][1].b");
        assert_eq!(dotted("tokens.signing_alg"), "tokens.signing_alg");
    }

    #[test]
    fn unknown_and_mistyped_keys_are_errors() {
        let unknown = err(None, &[("SALLYPORT__TOKENS__NO_SUCH_KEY", "1")]);
        assert_eq!(unknown.0, "tokens");
        assert!(unknown.1.contains("no_such_key"), "{unknown:?}");
        let mistyped = err(None, &[("SALLYPORT__DATABASE__POOL_SIZE", "many")]);
        assert_eq!(mistyped.0, "database.pool_size");
        assert!(mistyped.1.contains("many"), "{mistyped:?}");
    }

    #[test]
    fn tool_policies_are_checked_and_their_scopes_reach_the_resource() {
        let dir = std::env::temp_dir().join(format!("sallyport-cfg-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let load = |route_extra: &str| {
            let path = dir.join("t.toml");
            std::fs::write(
                &path,
                format!(
                    r#"
issuer = "https://a.example"
[[resources]]
resource = "https://a.example/mcp"
name = "MCP"
scopes = ["mcp"]
[[gateway.routes]]
prefix = "/mcp"
upstream = "http://127.0.0.1:9000/mcp"
resource = "https://a.example/mcp"
scopes = ["mcp"]
{route_extra}
"#
                ),
            )
            .expect("write");
            Settings::load_from(path.to_str(), env(&[]))
        };
        let s = load(
            "mcp = true\ntools = { deny = [\"drop_*\"] }\ntool_scopes = { delete_issue = [\"mcp:admin\"], \"admin_*\" = [\"mcp:admin\", \"ops\"] }",
        )
        .expect("loads");
        assert!(s.gateway.routes[0].mcp);
        assert_eq!(s.gateway.routes[0].tools.deny, vec!["drop_*"]);
        assert_eq!(s.resources[0].scopes, vec!["mcp", "mcp:admin", "ops"], "tool scopes join the resource's");
        let key = |r: Result<Settings, ConfigError>| match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => format!("{other:?}"),
        };
        assert_eq!(key(load("tools = { deny = [\"x\"] }")), "gateway.routes.mcp");
        assert_eq!(key(load("mcp = true\ntool_scopes = { x = [\"offline_access\"] }")), "gateway.routes.tool_scopes");
        assert_eq!(key(load("mcp = true\ntool_scopes = { x = [] }")), "gateway.routes.tool_scopes");
        assert_eq!(key(load("mcp = true\ntools = { allow = [\"a b\"] }")), "gateway.routes.tools");
        std::fs::remove_dir_all(dir).ok();
    }

    /// The files and variables the deployments ship load as they are (deploy/validate.sh checks every
    /// container's whole environment in CI).
    #[test]
    fn the_deployment_files_load() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let services = [
            ("SALLYPORT__SERVICES__REGISTRATION", "http://registration:8081"),
            ("SALLYPORT__SERVICES__AUTHORIZE", "http://authorize:8082"),
            ("SALLYPORT__SERVICES__TOKEN", "http://token:8083"),
            ("SALLYPORT__SERVICES__METADATA", "http://metadata:8084"),
            ("SALLYPORT__LOG__FORMAT", "json"),
        ];
        for (file, issuer) in [
            ("deploy/compose/sallyport.toml", "http://localhost:8080"),
            ("deploy/k8s/base/sallyport.toml", "https://auth.example.com"),
            ("deploy/k8s/overlays/example/sallyport.toml", "https://sallyport.example.com"),
        ] {
            let mut vars = services.to_vec();
            vars.push(("SALLYPORT__ISSUER", issuer));
            let path = format!("{root}/{file}");
            let s = Settings::load_from(Some(&path), env(&vars)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(s.services.token.base(), "http://token:8083", "{file}");
            assert_eq!(s.issuer.as_str(), issuer, "{file}");
        }
    }

    #[test]
    fn settings_debug_print_no_secret() {
        let mut settings = Settings::default();
        settings.database.url = "postgres://app:db-password-1@db.example/sallyport".into();
        let kek = EncryptionKey::from_bytes([0x5a; 32]);
        settings.keys.encryption_key = Some(kek.clone());
        settings.registration.initial_access_token = Some("initial-token-3".into());
        settings.gateway.introspection_client_id = Some("gateway".into());
        settings.gateway.introspection_client_secret = Some("introspection-secret-4".into());
        let shown = format!("{settings:?} {:?} {:#?}", settings.gateway, settings.keys);
        for secret in ["db-password-1", &kek.encode(), "initial-token-3", "introspection-secret-4"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
        for kept in ["db.example", "gateway", "introspection_client_secret", "<redacted>", "token_cache_capacity"] {
            assert!(shown.contains(kept), "{kept} missing: {shown}");
        }
    }
}

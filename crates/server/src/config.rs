//! Typed configuration: defaults in code, then an optional TOML file (`SALLYPORT_CONFIG`), then
//! `SALLYPORT__SECTION__KEY` environment variables. Unknown keys are errors; `validate` runs at start
//! and names the key that is wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use protocol::scope::Scopes;
use protocol::uri::{ResourceUri, is_loopback_host, validate_info_url};
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
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

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The issuer identifier (RFC 8414 §2): every metadata document and token carries it byte for byte.
    pub issuer: String,
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
    pub resources: Vec<ResourceSettings>,
    pub gateway: GatewaySettings,
    pub log: LogSettings,
    pub metrics: crate::metrics::MetricsSettings,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
    pub acquire_timeout_ms: u64,
    /// Run pending migrations when a service starts (under an advisory lock).
    pub migrate_on_start: bool,
}

impl From<&DatabaseSettings> for store::db::PoolOptions {
    fn from(s: &DatabaseSettings) -> Self {
        Self {
            url: s.url.clone(),
            pool_size: s.pool_size,
            connect_timeout_ms: s.connect_timeout_ms,
            acquire_timeout_ms: s.acquire_timeout_ms,
        }
    }
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
    /// Seconds a stopping service waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// A listener of its own for `/metrics` (containers: a port the gateway and the Ingress never
    /// route); unset, each service serves `/metrics` on its own port.
    pub admin: Option<SocketAddr>,
}

/// Where the gateway finds each service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceUrls {
    pub registration: String,
    pub authorize: String,
    pub token: String,
    pub metadata: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    pub access_token_ttl_secs: u64,
    pub code_ttl_secs: u64,
    pub refresh_idle_ttl_secs: u64,
    pub refresh_absolute_ttl_secs: u64,
    /// `ES256` (default), `EdDSA` or `RS256`.
    pub signing_alg: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// Base64 of 32 random bytes: the AES-256-GCM key that seals signing keys at rest.
    pub encryption_key: Option<String>,
    /// How long a rotated-out key stays published after it stops signing (>= the access-token lifetime).
    pub retired_publish_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    pub idle_ttl_secs: u64,
    pub absolute_ttl_secs: u64,
    pub cookie_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Failed logins in a row after which a user is locked for `lockout_secs`.
    pub max_failures: u32,
    pub lockout_secs: u64,
    /// Login attempts per client IP per minute.
    pub per_ip_per_minute: u32,
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
        // validated at start (Settings::validate), so an invalid token cannot reach here
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
    pub timeout_ms: u64,
    pub max_bytes: usize,
    pub cache_min_secs: u64,
    pub cache_max_secs: u64,
    /// How long a document that could not be fetched or was refused stays refused without a new fetch.
    pub failure_cache_secs: u64,
    /// Document fetches (cache misses) per client IP per minute, on the authorize endpoints.
    pub fetches_per_ip_per_minute: u32,
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
    pub revocation_cache_secs: u64,
    /// Credentials of a client allowed to introspect, for `cached` and `strict`.
    pub introspection_client_id: Option<String>,
    pub introspection_client_secret: Option<String>,
    /// Verified tokens remembered (by SHA-256) so repeat calls skip signature verification.
    pub token_cache_capacity: usize,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    pub upstream_connect_timeout_ms: u64,
    /// Time to the upstream's response headers; a streamed body may then run for as long as it lasts.
    pub upstream_timeout_ms: u64,
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
    pub upstream: String,
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
    pub format: String,
    /// A tracing filter, e.g. `info,sallyport=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
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
            resources: Vec::new(),
            gateway: GatewaySettings::default(),
            log: LogSettings::default(),
            metrics: Default::default(),
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
            connect_timeout_ms: 5_000,
            acquire_timeout_ms: 5_000,
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
            shutdown_timeout_secs: 30,
            admin: None,
        }
    }
}

impl Default for ServiceUrls {
    fn default() -> Self {
        Self {
            registration: "http://127.0.0.1:8081".into(),
            authorize: "http://127.0.0.1:8082".into(),
            token: "http://127.0.0.1:8083".into(),
            metadata: "http://127.0.0.1:8084".into(),
        }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 900,
            code_ttl_secs: 60,
            refresh_idle_ttl_secs: 30 * 86_400,
            refresh_absolute_ttl_secs: 90 * 86_400,
            signing_alg: "ES256".into(),
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        Self { encryption_key: None, retired_publish_secs: 86_400 }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self { idle_ttl_secs: 8 * 3600, absolute_ttl_secs: 7 * 86_400, cookie_name: "sallyport_session".into() }
    }
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self { max_failures: 5, lockout_secs: 300, per_ip_per_minute: 30 }
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
            timeout_ms: 5_000,
            max_bytes: 64 * 1024,
            cache_min_secs: 60,
            cache_max_secs: 86_400,
            failure_cache_secs: 30,
            fetches_per_ip_per_minute: 20,
        }
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            revocation_check: RevocationCheck::Off,
            revocation_cache_secs: 30,
            introspection_client_id: None,
            introspection_client_secret: None,
            token_cache_capacity: 100_000,
            leeway_secs: 30,
            upstream_connect_timeout_ms: 5_000,
            upstream_timeout_ms: 60_000,
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
        Self { format: "text".into(), filter: "info".into() }
    }
}

/// Keys whose environment values are comma-separated lists.
const LIST_KEYS: &[&str] = &["registration.default_scopes"];

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
        if let Some(vars) = env {
            environment = environment.source(Some(vars.into_iter().collect()));
        }
        let mut settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.merge_tool_scopes();
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value a service relies on; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let issuer = Url::parse(&self.issuer).map_err(|e| invalid("issuer", format!("not an absolute URL: {e}")))?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(invalid("issuer", "must have no query or fragment (RFC 8414 §2)"));
        }
        if self.issuer.ends_with('/') {
            return Err(invalid("issuer", "must not end with '/': clients compare it byte for byte"));
        }
        if !issuer.username().is_empty() || issuer.password().is_some() {
            return Err(invalid("issuer", "must have no user information"));
        }
        // Clients compare the issuer byte for byte with what they derived from a URL: it must be
        // the form URL parsing gives (lowercase scheme and host, no default port, no dot segments).
        let canonical = if issuer.path() == "/" { issuer.as_str().trim_end_matches('/') } else { issuer.as_str() };
        if canonical != self.issuer {
            return Err(invalid(
                "issuer",
                format!("must be written in normalised form ({canonical}): clients compare it byte for byte"),
            ));
        }
        match issuer.scheme() {
            "https" => {}
            "http" if issuer.host().is_some_and(|h| is_loopback_host(&h)) || self.allow_http_issuer => {}
            "http" => {
                return Err(invalid("issuer", "must be https (http only on loopback, or with allow_http_issuer)"));
            }
            _ => return Err(invalid("issuer", "must be an https URL")),
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
        if self.database.connect_timeout_ms == 0 {
            return Err(invalid("database.connect_timeout_ms", "must be positive"));
        }
        if self.database.acquire_timeout_ms == 0 {
            return Err(invalid("database.acquire_timeout_ms", "must be positive"));
        }
        for (key, url) in [
            ("services.registration", &self.services.registration),
            ("services.authorize", &self.services.authorize),
            ("services.token", &self.services.token),
            ("services.metadata", &self.services.metadata),
        ] {
            let u = Url::parse(url).map_err(|_| invalid(key, "not an absolute URL"))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(invalid(key, "must be an http(s) URL"));
            }
        }
        let t = &self.tokens;
        if !(60..=86_400).contains(&t.access_token_ttl_secs) {
            return Err(invalid("tokens.access_token_ttl_secs", "must be between 60 and 86400"));
        }
        // RFC 6749 §4.1.2: a maximum lifetime of 10 minutes is recommended.
        if !(1..=600).contains(&t.code_ttl_secs) {
            return Err(invalid("tokens.code_ttl_secs", "must be between 1 and 600"));
        }
        if t.refresh_idle_ttl_secs == 0 {
            return Err(invalid("tokens.refresh_idle_ttl_secs", "must be positive"));
        }
        if t.refresh_absolute_ttl_secs < t.refresh_idle_ttl_secs {
            return Err(invalid("tokens.refresh_absolute_ttl_secs", "must be at least refresh_idle_ttl_secs"));
        }
        if !matches!(t.signing_alg.as_str(), "ES256" | "EdDSA" | "RS256") {
            return Err(invalid("tokens.signing_alg", "must be ES256, EdDSA or RS256"));
        }
        if let Some(key) = &self.keys.encryption_key {
            let bytes = STANDARD.decode(key.trim()).map_err(|_| invalid("keys.encryption_key", "not base64"))?;
            if bytes.len() != 32 {
                return Err(invalid("keys.encryption_key", "must decode to exactly 32 bytes"));
            }
        }
        if self.listen.workers > 512 {
            // actix refuses more (with a panic): say so by the key's name first
            return Err(invalid("listen.workers", "must be at most 512 (0: one per core)"));
        }
        if self.keys.retired_publish_secs < t.access_token_ttl_secs {
            return Err(invalid("keys.retired_publish_secs", "must be at least tokens.access_token_ttl_secs"));
        }
        if self.sessions.idle_ttl_secs == 0 || self.sessions.absolute_ttl_secs < self.sessions.idle_ttl_secs {
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
        Scopes::from_tokens(&r.default_scopes)
            .map_err(|_| invalid("registration.default_scopes", "contains an invalid scope token"))?;
        let m = &self.metadata_documents;
        if m.timeout_ms == 0 || m.timeout_ms > 5_000 {
            return Err(invalid("metadata_documents.timeout_ms", "must be between 1 and 5000"));
        }
        if m.max_bytes == 0 || m.max_bytes > 64 * 1024 {
            return Err(invalid("metadata_documents.max_bytes", "must be between 1 and 65536"));
        }
        if m.cache_min_secs > m.cache_max_secs {
            return Err(invalid("metadata_documents.cache_min_secs", "must not exceed cache_max_secs"));
        }
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
            let up =
                Url::parse(&route.upstream).map_err(|_| invalid("gateway.routes.upstream", "not an absolute URL"))?;
            if !matches!(up.scheme(), "http" | "https") {
                return Err(invalid("gateway.routes.upstream", "must be an http(s) URL"));
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
        if g.leeway_secs > 300 {
            return Err(invalid("gateway.leeway_secs", "must be at most 300"));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be text or json"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(invalid("log.filter", format!("not a tracing filter ({e}), e.g. info or info,token=debug")));
        }
        Ok(())
    }

    /// Adds each `mcp` route's scopes and tool scopes to the configured resource it protects, so the
    /// RFC 9728 metadata lists them in `scopes_supported` and the authorization server grants them
    /// (SEP-835: a client learns there which scopes to ask for before a step-up).
    pub fn merge_tool_scopes(&mut self) {
        for route in &self.gateway.routes {
            let Some(id) = route.resource.as_deref().and_then(|r| ResourceUri::parse(r).ok()) else { continue };
            if route.tool_scopes.is_empty() {
                continue;
            }
            let wanted = route.scopes.iter().chain(route.tool_scopes.values().flatten());
            for res in &mut self.resources {
                if ResourceUri::parse(&res.resource).is_ok_and(|r| r == id) {
                    for scope in wanted.clone() {
                        if !res.scopes.contains(scope) {
                            res.scopes.push(scope.clone());
                        }
                    }
                }
            }
        }
    }

    /// The key that seals signing keys at rest, if configured.
    pub fn encryption_key(&self) -> Option<[u8; 32]> {
        let raw = STANDARD.decode(self.keys.encryption_key.as_deref()?.trim()).ok()?;
        raw.try_into().ok()
    }

    /// An endpoint URL under the issuer, e.g. `endpoint("/oauth2/token")`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// The issuer's path ("" for an origin): RFC 8414 §3.1 inserts the well-known segment before it.
    pub fn issuer_path(&self) -> String {
        Url::parse(&self.issuer).map(|u| u.path().trim_end_matches('/').to_owned()).unwrap_or_default()
    }

    /// The issuer's origin, where the well-known documents live.
    pub fn issuer_origin(&self) -> String {
        Url::parse(&self.issuer).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
    }
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
        assert_eq!(s.tokens.access_token_ttl_secs, 900);
        assert_eq!(s.tokens.code_ttl_secs, 60);
    }

    #[test]
    fn environment_overrides() {
        let s = Settings::load_from(
            None,
            env(&[
                ("SALLYPORT__ISSUER", "https://auth.example.com"),
                ("SALLYPORT__DATABASE__POOL_SIZE", "4"),
                ("SALLYPORT__REGISTRATION__DEFAULT_SCOPES", "mcp,files:read"),
            ]),
        )
        .expect("loads");
        assert_eq!(s.issuer, "https://auth.example.com");
        assert_eq!(s.database.pool_size, 4);
        assert_eq!(s.registration.default_scopes, vec!["mcp", "files:read"]);
    }

    #[test]
    fn toml_file_then_environment() {
        let dir = std::env::temp_dir().join(format!("sallyport-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            r#"
issuer = "https://a.example"
[tokens]
code_ttl_secs = 120
[[resources]]
resource = "https://a.example/mcp"
name = "MCP"
scopes = ["mcp"]
"#,
        )
        .expect("write");
        let s = Settings::load_from(path.to_str(), env(&[("SALLYPORT__TOKENS__CODE_TTL_SECS", "30")])).expect("loads");
        assert_eq!(s.issuer, "https://a.example");
        assert_eq!(s.tokens.code_ttl_secs, 30);
        assert_eq!(s.resources.len(), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    fn err_key(pairs: &[(&str, &str)]) -> String {
        match Settings::load_from(None, env(pairs)) {
            Err(ConfigError::Invalid { key, .. }) => key.to_owned(),
            Err(ConfigError::Load(e)) => format!("load: {e}"),
            Ok(_) => "ok".into(),
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "not a url")]), "issuer");
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "https://a.example/")]), "issuer");
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "http://auth.example.com")]), "issuer");
        assert_eq!(err_key(&[("SALLYPORT__ISSUER", "https://a.example?x=1")]), "issuer");
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
        assert_eq!(err_key(&[("SALLYPORT__TOKENS__SIGNING_ALG", "HS256")]), "tokens.signing_alg");
        assert_eq!(err_key(&[("SALLYPORT__LOG__FORMAT", "xml")]), "log.format");
        assert_eq!(err_key(&[("SALLYPORT__LISTEN__WORKERS", "513")]), "listen.workers");
        assert_eq!(err_key(&[("SALLYPORT__LOG__FILTER", "info,=[")]), "log.filter");
        assert_eq!(err_key(&[("SALLYPORT__LOG__FILTER", "warn,token=debug")]), "ok");
        assert_eq!(
            err_key(&[("SALLYPORT__ISSUER", "http://10.0.0.1:8080"), ("SALLYPORT__ALLOW_HTTP_ISSUER", "true")]),
            "ok"
        );
    }

    #[test]
    fn unknown_and_mistyped_keys_are_errors() {
        let unknown = err_key(&[("SALLYPORT__TOKENS__NO_SUCH_KEY", "1")]);
        assert!(unknown.starts_with("load:") && unknown.contains("no_such_key"), "{unknown}");
        let mistyped = err_key(&[("SALLYPORT__DATABASE__POOL_SIZE", "many")]);
        assert!(mistyped.starts_with("load:") && mistyped.contains("pool_size"), "{mistyped}");
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
            Err(ConfigError::Invalid { key, .. }) => key.to_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(key(load("tools = { deny = [\"x\"] }")), "gateway.routes.mcp");
        assert_eq!(key(load("mcp = true\ntool_scopes = { x = [\"offline_access\"] }")), "gateway.routes.tool_scopes");
        assert_eq!(key(load("mcp = true\ntool_scopes = { x = [] }")), "gateway.routes.tool_scopes");
        assert_eq!(key(load("mcp = true\ntools = { allow = [\"a b\"] }")), "gateway.routes.tools");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn issuer_parts() {
        let s = Settings { issuer: "https://a.example/tenant".into(), ..Settings::default() };
        assert_eq!(s.issuer_path(), "/tenant");
        assert_eq!(s.issuer_origin(), "https://a.example");
        assert_eq!(s.endpoint("/oauth2/token"), "https://a.example/tenant/oauth2/token");
    }

    #[test]
    fn settings_debug_print_no_secret() {
        let mut settings = Settings::default();
        settings.database.url = "postgres://app:db-password-1@db.example/sallyport".into();
        settings.keys.encryption_key = Some("kek-secret-2".into());
        settings.registration.initial_access_token = Some("initial-token-3".into());
        settings.gateway.introspection_client_id = Some("gateway".into());
        settings.gateway.introspection_client_secret = Some("introspection-secret-4".into());
        let shown = format!("{settings:?} {:?} {:#?}", settings.gateway, settings.keys);
        for secret in ["db-password-1", "kek-secret-2", "initial-token-3", "introspection-secret-4"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
        for kept in ["db.example", "gateway", "introspection_client_secret", "<redacted>", "token_cache_capacity"] {
            assert!(shown.contains(kept), "{kept} missing: {shown}");
        }
    }
}

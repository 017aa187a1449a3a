//! Signing in with an OpenID provider (`[[login.providers]]`, OpenID Connect Core 1.0 §3.1): the
//! provider's discovery document and keys (cached; the keys fetched again, at most every
//! [`KEYS_REFETCH_SECS`], when a token names a key we do not have: the provider rotated), the
//! code exchange and the userinfo call. Every request goes through the one SSRF policy
//! (`server::outbound`). The browser flow is `routes::federated`; the pure rules are
//! `protocol::oidc` and [`admission`].

pub mod admission;
pub mod flow;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use protocol::issuer::Issuer;
use protocol::oidc::{ClientAuth, ProviderMetadata};
use serde::Deserialize;
use serde_json::{Map, Value};
use server::config::ProviderSettings;

/// Outbound requests to a provider give up after this long (the user is waiting).
const TIMEOUT: Duration = Duration::from_secs(5);
/// A discovery document is used this long before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// A provider that could not be reached is not asked again this soon (the login page asks).
const FAILURE_TTL: Duration = Duration::from_secs(30);
/// Keys are fetched again for an unknown `kid` at most this often, so tokens with made-up kids
/// cannot make us hammer the provider.
pub const KEYS_REFETCH_SECS: u64 = 5;
/// Keys are used this long before they are fetched again anyway.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// Discovery documents, key sets, token and userinfo responses larger than this are refused.
const MAX_BYTES: usize = 256 * 1024;

/// Why talking to the provider failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// No answer (DNS, connection, TLS, timeout) or a 5xx: the detail is for the log only.
    #[error("the provider could not be reached")]
    Unreachable(String),
    /// An answer we cannot use (bad status, not JSON, a document that breaks the rules).
    #[error("the provider's answer was not usable: {0}")]
    Invalid(String),
    /// The token endpoint refused the code (RFC 6749 §5.2 `error`).
    #[error("the provider refused the code: {0}")]
    Refused(String),
}

/// The token endpoint's answer (Core §3.1.3.3).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub id_token: String,
    pub access_token: Option<String>,
}

struct Cached<T> {
    value: Result<Arc<T>, FetchError>,
    at: Instant,
}

/// One configured provider and what we learned from it.
pub struct Provider {
    pub settings: ProviderSettings,
    /// `{issuer}/oauth2/login/{id}/callback`: registered at the provider.
    pub redirect_uri: String,
    http: reqwest::Client,
    metadata: Mutex<Option<Cached<ProviderMetadata>>>,
    keys: Mutex<Option<Cached<JwkSet>>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("id", &self.settings.id).finish_non_exhaustive()
    }
}

/// Every configured provider, in the configuration's order (the buttons' order).
#[derive(Debug, Default)]
pub struct Providers(Vec<Arc<Provider>>);

impl Providers {
    pub fn new(settings: &[ProviderSettings], issuer: &Issuer) -> Result<Self, reqwest::Error> {
        let mut list = Vec::with_capacity(settings.len());
        for s in settings {
            list.push(Arc::new(Provider {
                redirect_uri: issuer.endpoint(&format!("/oauth2/login/{}/callback", s.id)),
                http: server::outbound::guarded_client(s.allow_private_hosts, TIMEOUT)?,
                settings: s.clone(),
                metadata: Mutex::new(None),
                keys: Mutex::new(None),
            }));
        }
        Ok(Self(list))
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.0.iter().find(|p| p.settings.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.0.iter()
    }
}

impl Provider {
    pub fn id(&self) -> &str {
        &self.settings.id
    }

    /// The discovery document, from the cache while fresh (a failure is remembered for
    /// [`FAILURE_TTL`], so an unreachable provider does not slow every login page).
    pub async fn metadata(&self) -> Result<Arc<ProviderMetadata>, FetchError> {
        if let Some(c) = self.metadata.lock().expect("metadata lock").as_ref() {
            let ttl = if c.value.is_ok() { METADATA_TTL } else { FAILURE_TTL };
            if c.at.elapsed() < ttl {
                return c.value.clone();
            }
        }
        let value = self.discover().await.map(Arc::new);
        if let Err(e) = &value {
            tracing::warn!(provider = self.id(), error = %e, detail = ?e, "OpenID provider discovery failed");
        }
        *self.metadata.lock().expect("metadata lock") = Some(Cached { value: value.clone(), at: Instant::now() });
        value
    }

    async fn discover(&self) -> Result<ProviderMetadata, FetchError> {
        // Discovery §4: the issuer with `/.well-known/openid-configuration` appended to its path
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer.trim_end_matches('/'));
        let doc: ProviderMetadata = serde_json::from_value(self.get_json(&url, None).await?)
            .map_err(|e| FetchError::Invalid(format!("discovery document: {e}")))?;
        doc.check(&self.settings.issuer, self.settings.allow_private_hosts)
            .map_err(|e| FetchError::Invalid(e.to_string()))?;
        // the code flow is PKCE S256 or nothing: a provider that says it lacks S256 is refused
        if doc.code_challenge_methods_supported.as_ref().is_some_and(|m| !m.iter().any(|m| m == "S256")) {
            return Err(FetchError::Invalid("the provider does not support PKCE S256".into()));
        }
        Ok(doc)
    }

    /// The provider's keys; fetched again when `kid` is not among them (key rotation) and the last
    /// fetch is at least [`KEYS_REFETCH_SECS`] old.
    pub async fn keys(&self, meta: &ProviderMetadata, kid: Option<&str>) -> Result<Arc<JwkSet>, FetchError> {
        let refetch_after = Duration::from_secs(KEYS_REFETCH_SECS);
        if let Some(c) = self.keys.lock().expect("keys lock").as_ref() {
            let known = |set: &JwkSet| kid.is_none_or(|k| set.find(k).is_some());
            match &c.value {
                Ok(set) if c.at.elapsed() < KEYS_TTL && (known(set) || c.at.elapsed() < refetch_after) => {
                    return Ok(set.clone());
                }
                Err(e) if c.at.elapsed() < refetch_after => return Err(e.clone()),
                _ => {}
            }
        }
        let value = match self.get_json(&meta.jwks_uri, None).await {
            Ok(v) => serde_json::from_value::<JwkSet>(v)
                .map(Arc::new)
                .map_err(|e| FetchError::Invalid(format!("key set: {e}"))),
            Err(e) => Err(e),
        };
        tracing::info!(provider = self.id(), ok = value.is_ok(), "OpenID provider keys fetched");
        *self.keys.lock().expect("keys lock") = Some(Cached { value: value.clone(), at: Instant::now() });
        value
    }

    /// Exchanges the code (RFC 6749 §4.1.3 with RFC 7636's verifier), authenticating as the
    /// provider's metadata prefers (`client_secret_basic`, else `client_secret_post`).
    pub async fn exchange(
        &self,
        meta: &ProviderMetadata,
        code: &str,
        verifier: &str,
    ) -> Result<TokenResponse, FetchError> {
        let secret = self.settings.client_secret.as_ref().map(|s| s.expose()).unwrap_or_default();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut req = self.http.post(&meta.token_endpoint).header(reqwest::header::ACCEPT, "application/json");
        match meta.client_auth().map_err(|e| FetchError::Invalid(e.to_string()))? {
            // RFC 6749 §2.3.1: id and secret form-urlencoded before Basic
            ClientAuth::Basic => {
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                req = req.basic_auth(enc(&self.settings.client_id), Some(enc(secret)));
            }
            ClientAuth::Post => {
                form.push(("client_id", self.settings.client_id.as_str()));
                form.push(("client_secret", secret));
            }
        }
        let res = req.form(&form).send().await.map_err(unreachable)?;
        let status = res.status();
        let body = read_bounded(res).await?;
        if status.is_server_error() {
            return Err(FetchError::Unreachable(format!("token endpoint status {status}")));
        }
        if !status.is_success() {
            let error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| format!("status {}", status.as_u16()));
            return Err(FetchError::Refused(error));
        }
        serde_json::from_slice(&body).map_err(|e| FetchError::Invalid(format!("token response: {e}")))
    }

    /// The userinfo claims (Core §5.3), asked with the access token.
    pub async fn userinfo(&self, url: &str, access_token: &str) -> Result<Map<String, Value>, FetchError> {
        match self.get_json(url, Some(access_token)).await? {
            Value::Object(map) => Ok(map),
            _ => Err(FetchError::Invalid("userinfo is not a JSON object".into())),
        }
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::Invalid("not a URL".into()))?;
        if !server::outbound::host_allowed(&parsed, self.settings.allow_private_hosts) {
            return Err(FetchError::Invalid(format!("{} is not an allowed host", parsed.host_str().unwrap_or(""))));
        }
        let mut req = self.http.get(parsed).header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.map_err(unreachable)?;
        let status = res.status();
        if status.is_server_error() {
            return Err(FetchError::Unreachable(format!("status {status}")));
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Invalid(format!("status {}", status.as_u16())));
        }
        let body = read_bounded(res).await?;
        serde_json::from_slice(&body).map_err(|e| FetchError::Invalid(format!("not JSON: {e}")))
    }
}

async fn read_bounded(res: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    server::outbound::read_bounded(res, MAX_BYTES).await.map_err(|e| match e {
        server::outbound::BodyError::TooLarge => FetchError::Invalid("answer too large".into()),
        server::outbound::BodyError::Transport(detail) => FetchError::Unreachable(detail),
    })
}

/// reqwest's whole cause chain (where the actual reason is), for the log.
fn unreachable(e: reqwest::Error) -> FetchError {
    FetchError::Unreachable(server::outbound::describe(e))
}

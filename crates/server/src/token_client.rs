//! Sallyport as an OAuth client of another authorization server's token endpoint (issue 20: the
//! upstreams of `upstream_auth = "oauth2"` routes): the authorization code exchange with PKCE
//! (RFC 6749 §4.1.3, RFC 7636 §4.5), the refresh (RFC 6749 §6) and revocation (RFC 7009 §2.1),
//! each with the resource indicator (RFC 8707 §2.2) where one applies, and the client
//! authentication the upstream registered us with (RFC 6749 §2.3.1: `client_secret_basic` or
//! `client_secret_post`; `none` for a public client such as a client ID metadata document).
//! Requests go through the caller's client under the SSRF policy (`server::outbound`).

use std::time::Duration;

use protocol::redact::SecretString;
use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::outbound::{BodyError, describe, read_bounded};

/// The largest token endpoint answer read.
const MAX_BYTES: usize = 64 * 1024;

/// How Sallyport authenticates at the upstream's token endpoint (RFC 7591 §2
/// `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: `client_id` in the form, no secret.
    None,
    /// RFC 6749 §2.3.1: HTTP Basic with the form-urlencoded id and secret.
    Basic,
    /// RFC 6749 §2.3.1: `client_id` and `client_secret` in the form.
    Post,
}

impl ClientAuth {
    /// The RFC 7591 name; `None` for a method Sallyport does not speak.
    pub fn parse(method: &str) -> Option<Self> {
        match method {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::Basic),
            "client_secret_post" => Some(Self::Post),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
        }
    }
}

/// Sallyport's client at one upstream authorization server.
#[derive(Debug, Clone)]
pub struct TokenClient {
    pub token_endpoint: Url,
    pub revocation_endpoint: Option<Url>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub auth: ClientAuth,
}

/// A successful token response (RFC 6749 §5.1). `Debug` shows no token.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: SecretString,
    pub token_type: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl Tokens {
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The upstream answered with an RFC 6749 §5.2 error (`invalid_grant` for a refresh token it
    /// revoked or rotated away, `invalid_client`, ...): the user or an operator must act.
    #[error("the authorization server refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { status: u16, error: String, description: Option<String> },
    /// No answer, a 5xx, or a timeout: worth retrying later.
    #[error("the authorization server is unreachable: {0}")]
    Unreachable(String),
    /// An answer that is not what the RFC describes.
    #[error("the authorization server's answer is invalid: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenClient {
    /// RFC 6749 §4.1.3 with RFC 7636 §4.5's `code_verifier` and RFC 8707's `resource`.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        resource: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        form.extend(resource.map(|r| ("resource", r)));
        self.token_request(http, form).await
    }

    /// RFC 6749 §6. An answer without `refresh_token` means the old one stays valid (§6: the
    /// server MAY issue a new one); the caller keeps it.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
        resource: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())];
        form.extend(resource.map(|r| ("resource", r)));
        self.token_request(http, form).await
    }

    /// RFC 7009 §2.1; `Ok(false)` when the upstream has no revocation endpoint. §2.2: a 200 is
    /// success, also for a token it did not know.
    pub async fn revoke(&self, http: &reqwest::Client, token: &SecretString, hint: &str) -> Result<bool, TokenError> {
        let Some(endpoint) = &self.revocation_endpoint else { return Ok(false) };
        let form = vec![("token", token.expose()), ("token_type_hint", hint)];
        let (status, body) = self.post(http, endpoint, form).await?;
        if status.is_success() {
            return Ok(true);
        }
        Err(refusal(status, &body))
    }

    async fn token_request(&self, http: &reqwest::Client, form: Vec<(&str, &str)>) -> Result<Tokens, TokenError> {
        let (status, body) = self.post(http, &self.token_endpoint, form).await?;
        if !status.is_success() {
            return Err(refusal(status, &body));
        }
        let tokens: Tokens =
            serde_json::from_slice(&body).map_err(|e| TokenError::Invalid(format!("token response: {e}")))?;
        // RFC 6750 §4: the only type Sallyport knows how to send upstream
        if !tokens.token_type.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Invalid(format!("token_type {:?} is not Bearer", tokens.token_type)));
        }
        if tokens.access_token.expose().is_empty() {
            return Err(TokenError::Invalid("an empty access_token".into()));
        }
        Ok(tokens)
    }

    async fn post(
        &self,
        http: &reqwest::Client,
        url: &Url,
        mut form: Vec<(&str, &str)>,
    ) -> Result<(StatusCode, Vec<u8>), TokenError> {
        let secret = self.client_secret.as_ref().map(SecretString::expose).unwrap_or_default();
        let mut req = http.post(url.clone()).header(reqwest::header::ACCEPT, "application/json");
        match self.auth {
            ClientAuth::None => form.push(("client_id", self.client_id.as_str())),
            ClientAuth::Basic => {
                // RFC 6749 §2.3.1: id and secret form-urlencoded before Basic
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                req = req.basic_auth(enc(&self.client_id), Some(enc(secret)));
            }
            ClientAuth::Post => {
                form.push(("client_id", self.client_id.as_str()));
                form.push(("client_secret", secret));
            }
        }
        let res = req.form(&form).send().await.map_err(|e| TokenError::Unreachable(describe(e)))?;
        let status = res.status();
        let body = read_bounded(res, MAX_BYTES).await.map_err(|e| match e {
            BodyError::TooLarge => TokenError::Invalid("answer too large".into()),
            BodyError::Transport(detail) => TokenError::Unreachable(detail),
        })?;
        if status.is_server_error() {
            return Err(TokenError::Unreachable(format!("status {}", status.as_u16())));
        }
        Ok((status, body))
    }
}

/// Sallyport's client at a route's upstream authorization server, from what the route says
/// explicitly (`upstream_oauth`: a client registered by hand, endpoints for a server without
/// metadata) and what was registered and discovered (`upstream_clients`), explicit first. The
/// gateway (refresh) and the connect flow (code exchange, revocation) both build it here.
pub fn for_route(
    explicit: &protocol::upstream_auth::UpstreamOAuth,
    explicit_secret: Option<&SecretString>,
    registered: Option<&store::upstream_clients::UpstreamClientRow>,
    kek: Option<&[u8; 32]>,
) -> Result<TokenClient, String> {
    let advertised = |name: &str| {
        registered.and_then(|r| r.metadata.get(name)).and_then(serde_json::Value::as_str).map(str::to_owned)
    };
    let endpoint = |given: &Option<String>, name: &str| -> Result<Option<Url>, String> {
        given
            .clone()
            .or_else(|| advertised(name))
            .map(|u| Url::parse(&u).map_err(|_| format!("{name} {u:?} is not a URL")))
            .transpose()
    };
    let token_endpoint = endpoint(&explicit.token_endpoint, "token_endpoint")?
        .ok_or("no token_endpoint: neither configured nor discovered")?;
    let revocation_endpoint = endpoint(&explicit.revocation_endpoint, "revocation_endpoint")?;
    if let Some(client_id) = &explicit.client_id {
        // a hand-registered client: a secret means the server's preferred secret method
        let auth = match explicit_secret {
            None => ClientAuth::None,
            Some(_) => preferred_secret_auth(registered.map(|r| &r.metadata)),
        };
        return Ok(TokenClient {
            token_endpoint,
            revocation_endpoint,
            client_id: client_id.clone(),
            client_secret: explicit_secret.cloned(),
            auth,
        });
    }
    let row = registered
        // a `configured` row keeps another route's hand-registered client: not this route's
        .filter(|r| r.method != "configured")
        .ok_or("no client at the upstream yet: not registered, and none configured")?;
    let auth = ClientAuth::parse(&row.token_endpoint_auth_method)
        .ok_or_else(|| format!("token_endpoint_auth_method {:?} is not supported", row.token_endpoint_auth_method))?;
    let client_secret = match (&row.client_secret_enc, auth) {
        (_, ClientAuth::None) => None,
        (Some(sealed), _) => {
            let kek = kek.ok_or("the upstream client secret is sealed and keys.encryption_key is not set")?;
            Some(
                store::upstream_clients::unseal_secret(kek, &row.issuer, "client_secret", sealed)
                    .map_err(|_| "the upstream client secret does not open under keys.encryption_key")?,
            )
        }
        (None, _) => return Err(format!("{} needs a client secret and none is stored", auth.as_str())),
    };
    Ok(TokenClient { token_endpoint, revocation_endpoint, client_id: row.client_id.clone(), client_secret, auth })
}

/// RFC 8414 §2 `token_endpoint_auth_methods_supported`: absent means `client_secret_basic`.
fn preferred_secret_auth(metadata: Option<&serde_json::Value>) -> ClientAuth {
    let methods = metadata.and_then(|m| m.get("token_endpoint_auth_methods_supported")).and_then(|m| m.as_array());
    match methods {
        Some(m) if !m.iter().any(|v| v == "client_secret_basic") && m.iter().any(|v| v == "client_secret_post") => {
            ClientAuth::Post
        }
        _ => ClientAuth::Basic,
    }
}

/// RFC 6749 §5.2 (and RFC 7009 §2.2.1): the `error` of a JSON error body, else the status.
fn refusal(status: StatusCode, body: &[u8]) -> TokenError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => TokenError::Refused { status: status.as_u16(), error: e.error, description: e.error_description },
        Err(_) => TokenError::Refused {
            status: status.as_u16(),
            error: format!("status {}", status.as_u16()),
            description: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_names_round_trip() {
        for auth in [ClientAuth::None, ClientAuth::Basic, ClientAuth::Post] {
            assert_eq!(ClientAuth::parse(auth.as_str()), Some(auth));
        }
        assert_eq!(ClientAuth::parse("private_key_jwt"), None);
    }

    #[test]
    fn refusals_carry_the_rfc_error() {
        let e = refusal(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant","error_description":"revoked"}"#);
        assert_eq!(
            e,
            TokenError::Refused { status: 400, error: "invalid_grant".into(), description: Some("revoked".into()) }
        );
        assert!(matches!(refusal(StatusCode::UNAUTHORIZED, b"<html>"), TokenError::Refused { status: 401, .. }));
    }

    fn registered(method: &str, secret: Option<&str>, kek: &[u8; 32]) -> store::upstream_clients::UpstreamClientRow {
        let issuer = "https://as.example";
        let now = chrono::Utc::now();
        store::upstream_clients::UpstreamClientRow {
            issuer: issuer.into(),
            client_id: "registered-1".into(),
            method: "dynamic".into(),
            token_endpoint_auth_method: method.into(),
            client_secret_enc: secret
                .map(|s| store::upstream_clients::seal_secret(kek, issuer, "client_secret", &s.into()).expect("seal")),
            registration_access_token_enc: None,
            registration_client_uri: None,
            metadata: serde_json::json!({
                "issuer": issuer,
                "token_endpoint": "https://as.example/token",
                "revocation_endpoint": "https://as.example/revoke",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            }),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn the_route_client_is_explicit_first_then_registered() {
        use protocol::upstream_auth::UpstreamOAuth;
        let kek = [4u8; 32];
        let row = registered("client_secret_basic", Some("s-1"), &kek);
        let c = for_route(&UpstreamOAuth::default(), None, Some(&row), Some(&kek)).expect("registered");
        assert_eq!((c.client_id.as_str(), c.auth), ("registered-1", ClientAuth::Basic));
        assert_eq!(c.client_secret.as_ref().map(SecretString::expose), Some("s-1"));
        assert_eq!(c.token_endpoint.as_str(), "https://as.example/token");
        assert_eq!(c.revocation_endpoint.as_ref().map(Url::as_str), Some("https://as.example/revoke"));
        assert!(for_route(&UpstreamOAuth::default(), None, Some(&row), None).is_err(), "sealed, no key");
        assert!(for_route(&UpstreamOAuth::default(), None, Some(&row), Some(&[5u8; 32])).is_err(), "wrong key");
        assert!(for_route(&UpstreamOAuth::default(), None, None, Some(&kek)).is_err(), "nothing to go on");

        let explicit = UpstreamOAuth {
            client_id: Some("by-hand".into()),
            token_endpoint: Some("https://other.example/t".into()),
            ..Default::default()
        };
        let secret = SecretString::from("hand-secret");
        let c = for_route(&explicit, Some(&secret), Some(&row), Some(&kek)).expect("explicit");
        assert_eq!((c.client_id.as_str(), c.auth), ("by-hand", ClientAuth::Post), "the server prefers post");
        assert_eq!(c.token_endpoint.as_str(), "https://other.example/t");
        let public = for_route(&explicit, None, None, None).expect("public client");
        assert_eq!(public.auth, ClientAuth::None);
        let none = registered("none", None, &kek);
        let c = for_route(&UpstreamOAuth::default(), None, Some(&none), None).expect("a public registration");
        assert_eq!((c.auth, c.client_secret.is_none()), (ClientAuth::None, true));
    }

    #[test]
    fn a_token_response_shows_no_token_in_debug() {
        let t: Tokens = serde_json::from_str(
            r#"{"access_token":"at-secret","token_type":"Bearer","expires_in":60,"refresh_token":"rt-secret"}"#,
        )
        .expect("parse");
        let shown = format!("{t:?}");
        assert!(!shown.contains("at-secret") && !shown.contains("rt-secret"));
        assert_eq!(t.expires_in(), Some(Duration::from_secs(60)));
    }
}

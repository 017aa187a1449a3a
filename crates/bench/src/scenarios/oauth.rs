//! The client side of the flows, through the public endpoints only: registration (RFC 7591), the
//! browser's trip through authorize, login and consent (forms filled in as a person would), the
//! authorization response (RFC 6749 §4.1.2, RFC 9207 `iss`), and the token endpoint. Setup uses
//! them untimed; the timed workers reuse the pieces that are one request each.

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hyper::Method;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;
use url::form_urlencoded;

use super::Bench;
use crate::client::{transport, unexpected};
use crate::conn::{Conn, refused};

/// The redirect URI of the bench's public client. The bench reads the code from the `Location`
/// header and never follows it. https (on a reserved name), not loopback: a public self-registered
/// client redirecting to loopback sees the consent page on every request (RFC 8252 §8.6), and the
/// flows measure the remembered-consent path.
pub const REDIRECT_URI: &str = "https://bench.sallyport.invalid/callback";

/// A registered public client (`token_endpoint_auth_method: none`), as MCP clients register.
#[derive(Debug, Clone)]
pub struct PublicClient {
    pub client_id: String,
    pub redirect_uri: String,
}

/// A confidential client's credentials.
#[derive(Debug, Clone)]
pub struct Confidential {
    pub client_id: String,
    pub client_secret: String,
}

impl Confidential {
    /// RFC 6749 §2.3.1: id and secret form-urlencoded, then Basic.
    pub fn basic(&self) -> String {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(&self.client_id), enc(&self.client_secret))))
    }

    /// [`Confidential::basic`] as a header value.
    pub fn basic_header(&self) -> anyhow::Result<HeaderValue> {
        Ok(HeaderValue::from_str(&self.basic())?)
    }
}

/// The Rust MCP SDK's registration body (MCP-CLIENTS.md), with the bench's name.
pub fn public_client_metadata(name: &str) -> Value {
    json!({
        "client_name": name,
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    })
}

/// `POST /oauth2/register`; the 201 body.
pub async fn register(b: &Bench, metadata: &Value) -> anyhow::Result<Value> {
    let url = b.ep.url("/oauth2/register")?;
    let mut req = b.http.post(url.clone()).json(metadata);
    if let Some(iat) = &b.initial_access_token {
        req = req.header(AUTHORIZATION, format!("Bearer {iat}"));
    }
    let res = req.send().await.map_err(|e| anyhow!(transport("POST", &url, &e)))?;
    if res.status() != StatusCode::CREATED {
        bail!("registration refused: {}", unexpected("POST", &url, res).await);
    }
    res.json::<Value>().await.context("registration response is not JSON")
}

pub async fn register_public(b: &Bench, name: &str) -> anyhow::Result<PublicClient> {
    let body = register(b, &public_client_metadata(name)).await?;
    let client_id = body["client_id"].as_str().context("registration response without client_id")?.to_owned();
    Ok(PublicClient { client_id, redirect_uri: REDIRECT_URI.to_owned() })
}

/// The client for client_credentials: the operator-made one the bench was given, else one
/// registered (which only a server that allows self-registered machine clients accepts).
pub async fn machine_client(b: &Bench) -> anyhow::Result<Confidential> {
    match &b.machine_client {
        Some(c) => Ok(c.clone()),
        None => register_confidential(b, &b.scope).await.context(
            "client_credentials needs a client made with `sallyport client add --grant-type client_credentials`",
        ),
    }
}

/// A confidential client for the client_credentials grant, Basic authentication.
pub async fn register_confidential(b: &Bench, scope: &str) -> anyhow::Result<Confidential> {
    let mut metadata = json!({
        "client_name": "sallyport-bench service",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    if !scope.is_empty() {
        metadata["scope"] = json!(scope);
    }
    let body = register(b, &metadata).await?;
    Ok(Confidential {
        client_id: body["client_id"].as_str().context("registration response without client_id")?.to_owned(),
        client_secret: body["client_secret"].as_str().context("no client_secret for a confidential client")?.to_owned(),
    })
}

/// A PKCE pair (RFC 7636, S256).
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = protocol::secret::random_token(32);
        let challenge = protocol::pkce::s256(&verifier);
        Self { verifier, challenge }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// The authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707) without its per-request parts
/// (`code_challenge`, `state`): see [`with_challenge`].
pub fn authorize_base(b: &Bench, client: &PublicClient) -> anyhow::Result<Url> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &b.resource);
    if !b.scope.is_empty() {
        q.append_pair("scope", &b.scope);
    }
    b.ep.url(&format!("/oauth2/authorize?{}", q.finish()))
}

/// The full authorization request: `base` (a URL, or a request target) plus a challenge and a
/// state (both base64url, so they need no escaping).
pub fn with_challenge(base: &str, challenge: &str, state: &str) -> String {
    format!("{base}&code_challenge={challenge}&state={state}")
}

/// The code from an authorization response at the redirect URI; checks `state` and, per RFC 9207,
/// `iss`. An error response becomes its `error` code.
pub fn code_from(location: &str, redirect_uri: &str, state: &str, issuer: &str) -> Result<String, String> {
    let Some(query) = location.strip_prefix(redirect_uri).and_then(|rest| rest.strip_prefix('?')) else {
        return Err("authorize: redirected elsewhere than the redirect URI (a login or consent page?)".into());
    };
    let (mut code, mut got_state, mut iss, mut error) = (None, None, None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => got_state = Some(v.into_owned()),
            "iss" => iss = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(e) = error {
        return Err(format!("authorize: error response {e}"));
    }
    if got_state.as_deref() != Some(state) {
        return Err("authorize: state missing or changed".into());
    }
    if iss.as_deref() != Some(issuer) {
        return Err("authorize: iss missing or not the issuer (RFC 9207)".into());
    }
    code.filter(|c| !c.is_empty()).ok_or_else(|| "authorize: no code in the response".into())
}

/// The parts of a token response (RFC 6749 §5.1) the bench uses.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// A form-urlencoded request body.
pub fn form_body(form: &[(&str, &str)]) -> Bytes {
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.extend_pairs(form);
    Bytes::from(body.finish())
}

/// `POST /oauth2/token` with `form` (to `target`, the token endpoint's path) on `conn`,
/// Basic-authenticated when `basic` is given; 200 with a Bearer access token, else an error
/// description.
pub async fn token(
    conn: &mut Conn,
    target: &str,
    form: &[(&str, &str)],
    basic: Option<&HeaderValue>,
) -> Result<TokenResponse, String> {
    token_body(conn, target, form_body(form), basic).await
}

/// [`token`] with the body already encoded (see [`form_body`]), for a form that never changes.
pub async fn token_body(
    conn: &mut Conn,
    target: &str,
    body: Bytes,
    basic: Option<&HeaderValue>,
) -> Result<TokenResponse, String> {
    let form_type = HeaderValue::from_static("application/x-www-form-urlencoded");
    let mut headers = vec![(CONTENT_TYPE, form_type), (ACCEPT, HeaderValue::from_static("application/json"))];
    if let Some(b) = basic {
        headers.push((AUTHORIZATION, b.clone()));
    }
    let reply = conn.send(Method::POST, target, &headers, Some(body)).await?;
    let what = "POST /oauth2/token";
    if reply.status != StatusCode::OK {
        return Err(refused(what, &reply));
    }
    let tokens: TokenResponse =
        serde_json::from_slice(&reply.body).map_err(|_| format!("{what}: 200 but not a token response"))?;
    if tokens.access_token.is_empty() || !tokens.token_type.eq_ignore_ascii_case("bearer") {
        return Err(format!("{what}: 200 without a Bearer access token"));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_responses() {
        let iss = "http://127.0.0.1:8080";
        let ok = "https://bench.sallyport.invalid/callback?code=spac_abc&state=s1&iss=http%3A%2F%2F127.0.0.1%3A8080";
        assert_eq!(code_from(ok, REDIRECT_URI, "s1", iss), Ok("spac_abc".into()));
        assert!(code_from(ok, REDIRECT_URI, "s2", iss).is_err(), "state must match");
        assert!(code_from(ok, REDIRECT_URI, "s1", "http://other").is_err(), "iss must match");
        let err =
            "https://bench.sallyport.invalid/callback?error=access_denied&state=s1&iss=http%3A%2F%2F127.0.0.1%3A8080";
        assert_eq!(code_from(err, REDIRECT_URI, "s1", iss), Err("authorize: error response access_denied".into()));
        assert!(code_from("http://127.0.0.1:8080/oauth2/login?x=1", REDIRECT_URI, "s1", iss).is_err());
        let no_code = "https://bench.sallyport.invalid/callback?state=s1&iss=http%3A%2F%2F127.0.0.1%3A8080";
        assert!(code_from(no_code, REDIRECT_URI, "s1", iss).is_err());
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        let c = Confidential { client_id: "a b".into(), client_secret: "x:y+z".into() };
        let decoded = STANDARD.decode(c.basic().trim_start_matches("Basic ")).expect("base64");
        assert_eq!(String::from_utf8(decoded).expect("utf8"), "a+b:x%3Ay%2Bz");
    }

    #[test]
    fn pkce_pairs() {
        let p = Pkce::new();
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(protocol::pkce::verify(Some(&p.verifier), &p.challenge), Ok(()));
        assert_ne!(Pkce::new().verifier, p.verifier);
    }
}

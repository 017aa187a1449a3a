//! `client-credentials`: a confidential client (registered with grant_types [client_credentials])
//! authenticates with Basic (RFC 6749 §2.3.1) and gets an access token for the resource (§4.4).

use bytes::Bytes;
use reqwest::header::HeaderValue;
use url::Url;

use super::oauth::{Confidential, TokenResponse, form_body, token_body};
use super::{Bench, measure};
use crate::conn::{self, Conn};
use crate::report::Row;
use crate::runner::Worker;

struct ClientCredentials {
    conn: Conn,
    target: String,
    basic: HeaderValue,
    /// The form, encoded once: it is the same for every request.
    body: Bytes,
}

impl ClientCredentials {
    /// A worker on its own connection to the token endpoint `url`.
    fn new(b: &Bench, url: &Url, basic: HeaderValue) -> anyhow::Result<Self> {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", b.resource.as_str())];
        if !b.scope.is_empty() {
            form.push(("scope", b.scope.as_str()));
        }
        Ok(Self { conn: Conn::to(url)?, target: conn::target(url), basic, body: form_body(&form) })
    }

    async fn request(&mut self) -> Result<TokenResponse, String> {
        token_body(&mut self.conn, &self.target, self.body.clone(), Some(&self.basic)).await
    }
}

impl Worker for ClientCredentials {
    async fn call(&mut self) -> Result<(), String> {
        self.request().await.map(drop)
    }
}

/// An access token for the bench's resource, by client_credentials (also the gateway scenario's).
pub async fn access_token(b: &Bench, client: &Confidential) -> anyhow::Result<String> {
    let url = b.ep.url("/oauth2/token")?;
    let tokens = ClientCredentials::new(b, &url, client.basic_header()?)?.request().await;
    Ok(tokens.map_err(anyhow::Error::msg)?.access_token)
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let client = super::oauth::machine_client(b).await?;
    access_token(b, &client).await?;
    let url = b.ep.url("/oauth2/token")?;
    let basic = client.basic_header()?;
    let workers =
        (0..b.workers).map(|_| ClientCredentials::new(b, &url, basic.clone())).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(vec![
        measure(b, "client-credentials", "POST /oauth2/token (client_credentials, Basic) -> 200", &url, workers).await,
    ])
}

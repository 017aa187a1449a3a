//! `client-credentials`: a confidential client (registered with grant_types [client_credentials])
//! authenticates with Basic (RFC 6749 §2.3.1) and gets an access token for the resource (§4.4).

use reqwest::header::HeaderValue;

use super::oauth::{Confidential, register_confidential, token};
use super::{Bench, measure};
use crate::conn::{self, Conn};
use crate::report::Row;
use crate::runner::Worker;

struct ClientCredentials {
    conn: Conn,
    target: String,
    basic: HeaderValue,
    resource: String,
    scope: String,
}

impl Worker for ClientCredentials {
    async fn call(&mut self) -> Result<(), String> {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", self.resource.as_str())];
        if !self.scope.is_empty() {
            form.push(("scope", self.scope.as_str()));
        }
        token(&mut self.conn, &self.target, &form, Some(&self.basic)).await.map(drop)
    }
}

/// An access token for the bench's resource, by client_credentials (also the gateway scenario's).
pub async fn access_token(b: &Bench, client: &Confidential) -> anyhow::Result<String> {
    let url = b.ep.url("/oauth2/token")?;
    let mut worker = ClientCredentials {
        conn: Conn::to(&url)?,
        target: conn::target(&url),
        basic: client.basic_header()?,
        resource: b.resource.clone(),
        scope: b.scope.clone(),
    };
    let mut form = vec![("grant_type", "client_credentials"), ("resource", b.resource.as_str())];
    if !b.scope.is_empty() {
        form.push(("scope", b.scope.as_str()));
    }
    let tokens = token(&mut worker.conn, &worker.target, &form, Some(&worker.basic)).await;
    Ok(tokens.map_err(anyhow::Error::msg)?.access_token)
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let client = register_confidential(b, &b.scope).await?;
    access_token(b, &client).await?;
    let url = b.ep.url("/oauth2/token")?;
    let basic = client.basic_header()?;
    let workers = (0..b.workers)
        .map(|_| {
            Ok(ClientCredentials {
                conn: Conn::to(&url)?,
                target: conn::target(&url),
                basic: basic.clone(),
                resource: b.resource.clone(),
                scope: b.scope.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(vec![
        measure(b, "client-credentials", "POST /oauth2/token (client_credentials, Basic) -> 200", &url, workers).await,
    ])
}

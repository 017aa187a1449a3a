//! `register`: RFC 7591 registration of public clients with the Rust MCP SDK's body; 201 expected.

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use url::Url;

use super::oauth::public_client_metadata;
use super::{Bench, measure};
use crate::client::{transport, unexpected};
use crate::report::Row;
use crate::runner::Worker;

struct Register {
    http: reqwest::Client,
    url: Url,
    body: Bytes,
    authorization: Option<HeaderValue>,
}

impl Worker for Register {
    async fn call(&mut self) -> Result<(), String> {
        let mut req = self.http.post(self.url.clone()).header(CONTENT_TYPE, "application/json").body(self.body.clone());
        if let Some(a) = &self.authorization {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let res = req.send().await.map_err(|e| transport("POST", &self.url, &e))?;
        if res.status() != StatusCode::CREATED {
            return Err(unexpected("POST", &self.url, res).await);
        }
        let body = res.bytes().await.map_err(|e| transport("POST", &self.url, &e))?;
        let parsed: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| "POST /oauth2/register: 201 but not JSON".to_owned())?;
        if parsed.get("client_id").and_then(|c| c.as_str()).is_none_or(str::is_empty) {
            return Err("POST /oauth2/register: 201 without client_id".into());
        }
        Ok(())
    }
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    // one untimed registration proves the endpoint works with this body
    super::oauth::register_public(b, "sallyport-bench probe").await?;
    let http = b.load_client()?;
    let url = b.ep.url("/oauth2/register")?;
    let body = Bytes::from(serde_json::to_vec(&public_client_metadata("sallyport-bench"))?);
    let authorization =
        b.initial_access_token.as_ref().map(|t| HeaderValue::from_str(&format!("Bearer {t}"))).transpose()?;
    let workers = (0..b.workers)
        .map(|_| Register {
            http: http.clone(),
            url: url.clone(),
            body: body.clone(),
            authorization: authorization.clone(),
        })
        .collect();
    Ok(vec![measure(b, "register", "POST /oauth2/register -> 201", &url, workers).await])
}

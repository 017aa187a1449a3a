//! `register`: RFC 7591 registration of public clients with the Rust MCP SDK's body; 201 expected.

use bytes::Bytes;
use hyper::Method;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};

use super::oauth::{public_client_metadata, register_public};
use super::{Bench, measure};
use crate::conn::{self, Conn};
use crate::report::Row;
use crate::runner::Worker;

const WHAT: &str = "POST /oauth2/register";

struct Register {
    conn: Conn,
    target: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Worker for Register {
    async fn call(&mut self) -> Result<(), String> {
        let reply = self.conn.send(Method::POST, &self.target, &self.headers, Some(self.body.clone())).await?;
        if reply.status != StatusCode::CREATED {
            return Err(conn::refused(WHAT, &reply));
        }
        let parsed: serde_json::Value =
            serde_json::from_slice(&reply.body).map_err(|_| format!("{WHAT}: 201 but not JSON"))?;
        if parsed.get("client_id").and_then(|c| c.as_str()).is_none_or(str::is_empty) {
            return Err(format!("{WHAT}: 201 without client_id"));
        }
        Ok(())
    }
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    // one untimed registration proves the endpoint takes this body
    register_public(b, "sallyport-bench probe").await?;
    let url = b.ep.url("/oauth2/register")?;
    let body = Bytes::from(serde_json::to_vec(&public_client_metadata("sallyport-bench"))?);
    let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    if let Some(t) = &b.initial_access_token {
        headers.push((AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}"))?));
    }
    let workers = (0..b.workers)
        .map(|_| {
            Ok(Register {
                conn: Conn::to(&url)?,
                target: conn::target(&url),
                headers: headers.clone(),
                body: body.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(vec![measure(b, "register", "POST /oauth2/register -> 201", &url, workers).await])
}

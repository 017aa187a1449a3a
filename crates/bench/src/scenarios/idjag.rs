//! `idjag`: enterprise-managed authorization (SEP-990). A confidential client registered for the
//! JWT bearer grant presents a fresh ID-JAG on every request (`grant_type=urn:ietf:params:oauth:
//! grant-type:jwt-bearer`, Basic authentication): the token service verifies the IdP's signature
//! (its JWKS cached), records the `jti` and links the subject in one transaction, and signs the
//! access token. Each worker is one user of the IdP. The IdP's signing (ES256, in the bench
//! process, a few tens of microseconds) is part of each iteration, as a client's token exchange
//! at its IdP would be, much slower, in real life.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use protocol::keys::SigningKey;
use reqwest::header::HeaderValue;
use serde_json::json;
use testkit::idp::{Idp, JWT_BEARER, TYP, sign_with};
use url::Url;

use super::oauth::{Confidential, form_body, register, token_body};
use super::{Bench, measure};
use crate::conn::{self, Conn};
use crate::report::Row;
use crate::runner::Worker;

struct IdJagGrant {
    conn: Conn,
    target: String,
    basic: HeaderValue,
    key: SigningKey,
    /// The claims but `jti`, `iat` and `exp`, which change on every request.
    claims: serde_json::Value,
}

impl IdJagGrant {
    fn new(url: &Url, basic: HeaderValue, key: SigningKey, claims: serde_json::Value) -> anyhow::Result<Self> {
        Ok(Self { conn: Conn::to(url)?, target: conn::target(url), basic, key, claims })
    }

    fn body(&self) -> Bytes {
        let mut claims = self.claims.clone();
        let now = chrono::Utc::now().timestamp();
        claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + 300);
        let assertion = sign_with(&self.key, Some(TYP), &claims);
        form_body(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
    }
}

impl Worker for IdJagGrant {
    async fn call(&mut self) -> Result<(), String> {
        let body = self.body();
        token_body(&mut self.conn, &self.target, body, Some(&self.basic)).await.map(drop)
    }
}

/// A confidential client registered (RFC 7591) for the JWT bearer grant.
async fn enterprise_client(b: &Bench) -> anyhow::Result<Confidential> {
    let mut metadata = json!({
        "client_name": "sallyport-bench enterprise agent",
        "grant_types": [JWT_BEARER],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    if !b.scope.is_empty() {
        metadata["scope"] = json!(b.scope);
    }
    let body = register(b, &metadata).await?;
    Ok(Confidential {
        client_id: body["client_id"].as_str().context("registration response without client_id")?.to_owned(),
        client_secret: body["client_secret"].as_str().context("no client_secret for a confidential client")?.to_owned(),
    })
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let idp: &Arc<Idp> =
        b.idp.as_ref().context("the idjag scenario needs the IdP of a stack the bench starts (--start)")?;
    let client = enterprise_client(b).await?;
    let url = b.ep.url("/oauth2/token")?;
    let basic = client.basic_header()?;
    let key = idp.key();
    let workers = (0..b.workers)
        .map(|i| {
            let mut claims = idp.claims(b.ep.issuer_str(), &client.client_id, &format!("bench-user-{i}"), &b.resource);
            claims["scope"] = json!(b.scope);
            IdJagGrant::new(&url, basic.clone(), key.clone(), claims)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // one untimed grant first: the token service fetches the IdP's keys, the users are created
    let mut first = IdJagGrant::new(&url, basic.clone(), key.clone(), workers[0].claims.clone())?;
    first.call().await.map_err(anyhow::Error::msg)?;
    Ok(vec![measure(b, "idjag", "POST /oauth2/token (jwt-bearer ID-JAG, Basic) -> 200", &url, workers).await])
}

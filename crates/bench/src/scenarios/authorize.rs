//! `authorize`: a signed-in browser with remembered consent asks for a code: `GET /oauth2/authorize`
//! answers 302 to the redirect URI with `code`, `state` and `iss`. One session per worker.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderValue, LOCATION};
use url::Url;

use super::oauth::{Pkce, authorize_base, code_from, with_challenge};
use super::{Bench, measure};
use crate::client::{transport, unexpected};
use crate::report::Row;
use crate::runner::Worker;

/// What a worker needs to ask for codes in its own session.
#[derive(Clone)]
pub struct Authorizer {
    pub http: reqwest::Client,
    /// The request without challenge and state (see `oauth::authorize_base`).
    pub base: String,
    pub cookie: HeaderValue,
    pub redirect_uri: String,
    pub issuer: String,
}

impl Authorizer {
    /// Builds one per session of `b`.
    pub async fn for_each_session(b: &Bench, http: &reqwest::Client) -> anyhow::Result<Vec<Self>> {
        let sessions = b.sessions().await?;
        let base = authorize_base(b, &sessions.client)?;
        sessions
            .jars
            .iter()
            .map(|jar| {
                let cookie = jar.header().ok_or_else(|| anyhow::anyhow!("signed in, but no session cookie was set"))?;
                Ok(Self {
                    http: http.clone(),
                    base: base.clone(),
                    cookie: HeaderValue::from_str(&cookie)?,
                    redirect_uri: sessions.client.redirect_uri.clone(),
                    issuer: b.ep.issuer_str().to_owned(),
                })
            })
            .collect()
    }

    /// One authorization request with `challenge`; the code from the 302.
    pub async fn code(&self, challenge: &str, state: &str) -> Result<String, String> {
        let url = with_challenge(&self.base, challenge, state)?;
        let res = self
            .http
            .get(url.clone())
            .header(COOKIE, self.cookie.clone())
            .send()
            .await
            .map_err(|e| transport("GET", &url, &e))?;
        if res.status() != StatusCode::FOUND {
            return Err(unexpected("GET", &url, res).await);
        }
        let location = res.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        res.bytes().await.map_err(|e| transport("GET", &url, &e))?;
        code_from(&location, &self.redirect_uri, state, &self.issuer)
    }

    pub fn url(&self) -> anyhow::Result<Url> {
        Ok(Url::parse(&self.base)?)
    }
}

/// Asks for a code again and again with one challenge (the codes are never redeemed).
struct Authorize {
    authorizer: Authorizer,
    challenge: String,
    state: String,
}

impl Worker for Authorize {
    async fn call(&mut self) -> Result<(), String> {
        self.authorizer.code(&self.challenge, &self.state).await.map(drop)
    }
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let http = b.load_client()?;
    let authorizers = Authorizer::for_each_session(b, &http).await?;
    let url = authorizers.first().map(Authorizer::url).transpose()?.ok_or_else(|| anyhow::anyhow!("no workers"))?;
    let workers = authorizers
        .into_iter()
        .map(|authorizer| Authorize {
            authorizer,
            challenge: Pkce::new().challenge,
            state: domain::secret::random_token(12),
        })
        .collect();
    Ok(vec![measure(b, "authorize", "GET /oauth2/authorize -> 302 with code", &url, workers).await])
}

//! `authorize`: a signed-in browser with remembered consent asks for a code: `GET /oauth2/authorize`
//! answers 302 to the redirect URI with `code`, `state` and `iss`. One session per worker.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderValue, LOCATION};

use super::oauth::{Pkce, authorize_base, code_from, with_challenge};
use super::{Bench, measure};
use crate::conn::{self, Conn};
use crate::report::Row;
use crate::runner::Worker;

/// Asks for codes in one signed-in session, on its own connection.
pub struct Authorizer {
    pub conn: Conn,
    /// The request target (path and query) without challenge and state (see `oauth::authorize_base`).
    pub base: String,
    pub cookie: HeaderValue,
    pub redirect_uri: String,
    pub issuer: String,
}

impl Authorizer {
    /// One per session of `b` (one session per worker).
    pub async fn for_each_session(b: &Bench) -> anyhow::Result<Vec<Self>> {
        let sessions = b.sessions().await?;
        let url = authorize_base(b, &sessions.client)?;
        let base = conn::target(&url);
        sessions
            .jars
            .iter()
            .map(|jar| {
                let cookie = jar.header().ok_or_else(|| anyhow::anyhow!("signed in, but no session cookie was set"))?;
                Ok(Self {
                    conn: Conn::to(&url)?,
                    base: base.clone(),
                    cookie: HeaderValue::from_str(&cookie)?,
                    redirect_uri: sessions.client.redirect_uri.clone(),
                    issuer: b.ep.issuer_str().to_owned(),
                })
            })
            .collect()
    }

    /// The request target with `challenge` and `state`.
    pub fn target(&self, challenge: &str, state: &str) -> String {
        with_challenge(&self.base, challenge, state)
    }

    /// One authorization request with `challenge`; the code from the 302.
    pub async fn code(&mut self, challenge: &str, state: &str) -> Result<String, String> {
        let target = self.target(challenge, state);
        self.code_at(&target, state).await
    }

    /// One authorization request to `target` (from [`Authorizer::target`] with `state`).
    async fn code_at(&mut self, target: &str, state: &str) -> Result<String, String> {
        let reply = self.conn.get(target, &[(COOKIE, self.cookie.clone())]).await?;
        if reply.status != StatusCode::FOUND {
            return Err(conn::refused("GET /oauth2/authorize", &reply));
        }
        code_from(reply.header(LOCATION).unwrap_or_default(), &self.redirect_uri, state, &self.issuer)
    }
}

/// Asks for a code again and again with one challenge (the codes are never redeemed), so the
/// request target is built once.
struct Authorize {
    authorizer: Authorizer,
    target: String,
    state: String,
}

impl Worker for Authorize {
    async fn call(&mut self) -> Result<(), String> {
        self.authorizer.code_at(&self.target, &self.state).await.map(drop)
    }
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let mut workers: Vec<Authorize> = Authorizer::for_each_session(b)
        .await?
        .into_iter()
        .map(|authorizer| {
            let state = protocol::secret::random_token(12);
            Authorize { target: authorizer.target(&Pkce::new().challenge, &state), authorizer, state }
        })
        .collect();
    if let Some(first) = workers.first_mut() {
        first.call().await.map_err(anyhow::Error::msg)?;
    }
    let url = b.ep.url("/oauth2/authorize")?;
    Ok(vec![measure(b, "authorize", "GET /oauth2/authorize -> 302 with code", &url, workers).await])
}

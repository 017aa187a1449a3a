//! `code`: the whole authorization-code flow per iteration, as a client does it with a signed-in
//! user who allowed it before: a fresh PKCE pair, `GET /oauth2/authorize` -> 302 with a code, then
//! `POST /oauth2/token` (authorization_code, public client) -> 200 with tokens.

use super::authorize::Authorizer;
use super::oauth::{Pkce, token};
use super::{Bench, measure};
use crate::conn::{self, Conn};
use crate::report::Row;
use crate::runner::Worker;

struct CodeFlow {
    authorizer: Authorizer,
    token: Conn,
    token_target: String,
    client_id: String,
    resource: String,
    counter: u64,
}

impl Worker for CodeFlow {
    async fn call(&mut self) -> Result<(), String> {
        self.counter += 1;
        let pkce = Pkce::new();
        let state = format!("s{}", self.counter);
        let code = self.authorizer.code(&pkce.challenge, &state).await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.authorizer.redirect_uri.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
            ("client_id", self.client_id.as_str()),
            ("resource", self.resource.as_str()),
        ];
        token(&mut self.token, &self.token_target, &form, None).await.map(drop)
    }
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let authorizers = Authorizer::for_each_session(b).await?;
    let client_id = b.sessions().await?.client.client_id.clone();
    let token_url = b.ep.url("/oauth2/token")?;
    let mut workers = authorizers
        .into_iter()
        .map(|authorizer| {
            Ok(CodeFlow {
                authorizer,
                token: Conn::to(&token_url)?,
                token_target: conn::target(&token_url),
                client_id: client_id.clone(),
                resource: b.resource.clone(),
                counter: 0,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // one untimed iteration proves the flow end to end
    if let Some(first) = workers.first_mut() {
        first.call().await.map_err(anyhow::Error::msg)?;
    }
    let url = b.ep.url("/oauth2/authorize")?;
    Ok(vec![measure(b, "code", "GET /oauth2/authorize -> 302, POST /oauth2/token -> 200", &url, workers).await])
}

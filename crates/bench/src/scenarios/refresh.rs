//! `refresh`: each worker rotates its own refresh-token chain (RFC 6749 §6; a new refresh token on
//! every use). The chains start from one code flow per worker during setup.

use anyhow::Context;

use super::authorize::Authorizer;
use super::oauth::{Pkce, token};
use super::{Bench, measure};
use crate::conn::{self, Conn};
use crate::report::Row;
use crate::runner::Worker;

struct Chain {
    conn: Conn,
    target: String,
    client_id: String,
    resource: String,
    refresh_token: String,
}

impl Worker for Chain {
    async fn call(&mut self) -> Result<(), String> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.as_str()),
            ("client_id", self.client_id.as_str()),
            ("resource", self.resource.as_str()),
        ];
        let tokens = token(&mut self.conn, &self.target, &form, None).await?;
        match tokens.refresh_token {
            Some(next) if next != self.refresh_token => {
                self.refresh_token = next;
                Ok(())
            }
            _ => Err("POST /oauth2/token: refresh answered without a new refresh token (no rotation)".into()),
        }
    }
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let authorizers = Authorizer::for_each_session(b).await?;
    let client_id = b.sessions().await?.client.client_id.clone();
    let token_url = b.ep.url("/oauth2/token")?;
    let target = conn::target(&token_url);
    let mut workers = Vec::with_capacity(authorizers.len());
    for (i, mut a) in authorizers.into_iter().enumerate() {
        let mut conn = Conn::to(&token_url)?;
        let pkce = Pkce::new();
        let code = a.code(&pkce.challenge, &format!("chain{i}")).await.map_err(anyhow::Error::msg)?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", a.redirect_uri.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
            ("client_id", client_id.as_str()),
            ("resource", b.resource.as_str()),
        ];
        let tokens = token(&mut conn, &target, &form, None).await.map_err(anyhow::Error::msg)?;
        let refresh_token = tokens.refresh_token.context(
            "the code exchange issued no refresh token (the client registered grant_types with refresh_token)",
        )?;
        workers.push(Chain {
            conn,
            target: target.clone(),
            client_id: client_id.clone(),
            resource: b.resource.clone(),
            refresh_token,
        });
    }
    // one untimed rotation proves the grant works
    if let Some(first) = workers.first_mut() {
        first.call().await.map_err(anyhow::Error::msg)?;
    }
    Ok(vec![measure(b, "refresh", "POST /oauth2/token (refresh_token) -> 200", &token_url, workers).await])
}

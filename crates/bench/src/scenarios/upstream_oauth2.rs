//! `upstream-oauth2` (issue 20): the same protected route twice, as the demo user — once with
//! `upstream_auth = "none"`, once with `upstream_auth = "oauth2"` and that user's upstream
//! connection stored (a sealed fake upstream token valid for a day, so the gateway caches it after
//! the first request and never calls the upstream's token endpoint). The report holds the oauth2
//! row against the none row (>= 90 % of its throughput). Needs a stack of the bench's own: the
//! connection row is written in its database, sealed under its key.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use protocol::redact::SecretString;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use store::upstream_connections::{self as connections, UpstreamConnectionRow, UpstreamTokens};
use uuid::Uuid;

use super::authorize::Authorizer;
use super::oauth::{Pkce, token};
use super::{Bench, GetWorker, probe, run_once};
use crate::conn::{self, Conn};
use crate::report::{Row, RunStats};

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let targets = b.upstream_auth.as_ref().context(
        "the upstream-oauth2 scenario needs a stack of the bench's own (--start): it stores an upstream connection",
    )?;
    let (db_url, kek) = match (&b.database_url, &b.kek) {
        (Some(u), Some(k)) => (u.clone(), *k),
        _ => anyhow::bail!("the upstream-oauth2 scenario needs the stack's database and key (--start)"),
    };
    let access = user_token(b).await?;
    let user = subject(&access)?;
    store_connection(&db_url, &kek, user, &targets.oauth2_prefix).await?;

    let bearer = HeaderValue::from_str(&format!("Bearer {access}"))?;
    // untimed: both routes answer the user's token (the oauth2 one now has the upstream token
    // cached) and are protected
    for url in [&targets.none, &targets.oauth2] {
        probe(&b.http, url, Some(&bearer), StatusCode::OK)
            .await
            .with_context(|| format!("{} with the token", url.path()))?;
        probe(&b.http, url, None, StatusCode::UNAUTHORIZED)
            .await
            .with_context(|| format!("{} without a token", url.path()))?;
    }

    // taking turns run by run, in alternating order, as the gateway scenario does
    let variants = [("upstream/none", &targets.none), ("upstream/oauth2", &targets.oauth2)];
    let headers = [(AUTHORIZATION, bearer)];
    let mut workers = Vec::with_capacity(variants.len());
    for (_, url) in &variants {
        workers.push(Some(GetWorker::per_worker(b, url, &headers)?));
    }
    let mut runs: Vec<Vec<RunStats>> = vec![Vec::with_capacity(b.runs); variants.len()];
    for i in 0..b.runs {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for v in order {
            let label = format!("{} run {}/{}", variants[v].0, i + 1, b.runs);
            let (stats, back) = run_once(b, &label, workers[v].take().unwrap_or_default()).await;
            workers[v] = Some(back);
            runs[v].push(stats);
        }
    }
    Ok(variants
        .iter()
        .zip(runs)
        .map(|((name, url), runs)| {
            Row::new(name, &format!("GET {} (Bearer, user)", url.path()), &url.origin().ascii_serialization(), runs)
        })
        .collect())
}

/// A user access token for the bench resource, by the code flow of the signed-in demo user.
async fn user_token(b: &Bench) -> anyhow::Result<String> {
    let mut authorizer = Authorizer::for_each_session(b).await?.into_iter().next().context("no session")?;
    let client_id = b.sessions().await?.client.client_id.clone();
    let token_url = b.ep.url("/oauth2/token")?;
    let pkce = Pkce::new();
    let code = authorizer.code(&pkce.challenge, "upstream-oauth2").await.map_err(anyhow::Error::msg)?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", authorizer.redirect_uri.as_str()),
        ("code_verifier", pkce.verifier.as_str()),
        ("client_id", client_id.as_str()),
        ("resource", b.resource.as_str()),
    ];
    let tokens =
        token(&mut Conn::to(&token_url)?, &conn::target(&token_url), &form, None).await.map_err(anyhow::Error::msg)?;
    Ok(tokens.access_token)
}

/// The `sub` of a JWT access token (the user's id), read without checking the signature: the
/// gateway checks it; the bench only needs to know whose connection to store.
fn subject(jwt: &str) -> anyhow::Result<Uuid> {
    let payload = jwt.split('.').nth(1).context("the access token is not a JWT")?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    let sub = claims["sub"].as_str().context("the access token has no sub")?;
    Uuid::parse_str(sub).context("the access token's sub is not a user id")
}

/// The user's connection for `route`, as the connect flow stores it: a fake upstream token valid
/// for a day (the upstream answers 200 to anything), sealed under the stack's key.
async fn store_connection(db_url: &str, kek: &[u8; 32], user: Uuid, route: &str) -> anyhow::Result<()> {
    let tokens =
        UpstreamTokens { access_token: SecretString::from("bench-upstream-token".to_owned()), refresh_token: None };
    let now = Utc::now();
    let row = UpstreamConnectionRow {
        user_id: user,
        route: route.to_owned(),
        issuer: "http://127.0.0.1/bench-upstream".into(),
        tokens_enc: connections::seal_tokens(kek, user, route, &tokens)?,
        has_refresh_token: false,
        scope: None,
        expires_at: Some(now + TimeDelta::days(1)),
        generation: 0,
        created_at: now,
        updated_at: now,
    };
    let mut conn = AsyncPgConnection::establish(db_url).await?;
    connections::upsert(&mut conn, &row).await.context("storing the upstream connection")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        let id = Uuid::now_v7();
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{id}","aud":"x"}}"#));
        assert_eq!(subject(&format!("h.{payload}.s")).expect("sub"), id);
        assert!(subject("opaque").is_err());
        let machine = URL_SAFE_NO_PAD.encode(r#"{"sub":"client-1"}"#);
        assert!(subject(&format!("h.{machine}.s")).is_err(), "a client's token has no user");
    }
}

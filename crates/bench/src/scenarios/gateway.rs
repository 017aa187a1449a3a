//! `gateway`: the same upstream three ways — through a protected route with a valid token (cached
//! by the gateway after the first call), through a route with auth off, and directly. The report
//! turns the first two into the auth overhead (issue 7: >= 90 % of the throughput, <= 100 µs median).

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::client_credentials::access_token;
use super::oauth::register_confidential;
use super::{Bench, GetWorker, measure, probe};
use crate::report::Row;

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let targets = b.gateway.as_ref().context(
        "the gateway scenario needs a protected route, the same route with auth off, and the upstream \
         (--protected-url, --open-url, --upstream-url)",
    )?;
    let token = match &b.access_token {
        Some(t) => t.clone(),
        None => {
            let client = register_confidential(b, &b.scope).await?;
            access_token(b, &client).await?
        }
    };
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))?;
    // untimed: the token is accepted (and now cached), the open route and the upstream answer,
    // and the protected route really is protected
    probe(&b.http, &targets.protected, Some(&bearer), StatusCode::OK)
        .await
        .context("protected route with the token")?;
    probe(&b.http, &targets.protected, None, StatusCode::UNAUTHORIZED)
        .await
        .context("protected route without a token")?;
    probe(&b.http, &targets.open, None, StatusCode::OK).await.context("route with auth off")?;
    probe(&b.http, &targets.upstream, None, StatusCode::OK).await.context("upstream")?;

    let mut rows = Vec::new();
    for (name, url, auth) in [
        ("gateway/protected", &targets.protected, Some(bearer)),
        ("gateway/open", &targets.open, None),
        ("gateway/direct", &targets.upstream, None),
    ] {
        let headers: Vec<_> = auth.iter().map(|a| (AUTHORIZATION, a.clone())).collect();
        let workers = GetWorker::per_worker(b, url, &headers)?;
        let request =
            if auth.is_some() { format!("GET {} (Bearer)", url.path()) } else { format!("GET {}", url.path()) };
        rows.push(measure(b, name, &request, url, workers).await);
    }
    Ok(rows)
}

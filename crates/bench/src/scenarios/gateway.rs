//! `gateway`: the same upstream three ways — through a protected route with a valid token (cached
//! by the gateway after the first call), through a route with auth off, and directly. The report
//! turns the first two into the auth overhead (issue 7: >= 90 % of the throughput, <= 100 µs median).
//! With `--nginx`, nginx proxying to the same upstream with keep-alive is a fourth variant: what a
//! mature proxy costs on the same machine in the same run (issue 19).
//! All of them get the very same request, `Authorization: Bearer` included (a client sends its token
//! whether or not the route checks it), so the only difference is what the gateway does with it.

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::client_credentials::access_token;
use super::{Bench, GetWorker, probe, run_once};
use crate::report::{Row, RunStats};

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let targets = b.gateway.as_ref().context(
        "the gateway scenario needs a protected route, the same route with auth off, and the upstream \
         (--protected-url, --open-url, --upstream-url)",
    )?;
    let token = match &b.access_token {
        Some(t) => t.clone(),
        None => {
            let client = super::oauth::machine_client(b).await?;
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
    probe(&b.http, &targets.open, Some(&bearer), StatusCode::OK).await.context("route with auth off")?;
    probe(&b.http, &targets.upstream, None, StatusCode::OK).await.context("upstream")?;
    if let Some(reference) = &targets.reference {
        probe(&b.http, reference, Some(&bearer), StatusCode::OK).await.context("nginx (the reference proxy)")?;
    }

    // the variants take turns, run by run (the first two in alternating order), so each
    // protected run has an auth-off run next to it in time: drift on a shared machine then hits
    // both sides of the ratio alike
    let mut variants = vec![
        ("gateway/protected", &targets.protected),
        ("gateway/open", &targets.open),
        ("gateway/direct", &targets.upstream),
    ];
    if let Some(reference) = &targets.reference {
        variants.push(("gateway/nginx", reference));
    }
    let headers = [(AUTHORIZATION, bearer)];
    let mut workers = Vec::with_capacity(variants.len());
    for (_, url) in &variants {
        workers.push(Some(GetWorker::per_worker(b, url, &headers)?));
    }
    let mut runs: Vec<Vec<RunStats>> = vec![Vec::with_capacity(b.runs); variants.len()];
    for i in 0..b.runs {
        let first = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for v in first.into_iter().chain(2..variants.len()) {
            let label = format!("{} run {}/{}", variants[v].0, i + 1, b.runs);
            let (stats, back) = run_once(b, &label, workers[v].take().unwrap_or_default()).await;
            workers[v] = Some(back);
            runs[v].push(stats);
        }
    }
    let rows = variants
        .iter()
        .zip(runs)
        .map(|((name, url), runs)| {
            let request = format!("GET {} (Bearer)", url.path());
            Row::new(name, &request, &url.origin().ascii_serialization(), runs)
        })
        .collect();
    Ok(rows)
}

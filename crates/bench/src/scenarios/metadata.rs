//! `metadata`: GET the RFC 8414 authorization-server metadata and the RFC 9728 metadata of the
//! bench's protected resource, each measured on its own.

use reqwest::StatusCode;

use super::{Bench, GetWorker, measure, probe};
use crate::report::Row;

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (name, url) in [("metadata/as", b.ep.as_metadata_url()?), ("metadata/prm", b.ep.prm_url(&b.resource)?)] {
        probe(&b.http, &url, None, StatusCode::OK).await?;
        let workers = GetWorker::per_worker(b, &url, &[])?;
        rows.push(measure(b, name, &format!("GET {}", url.path()), &url, workers).await);
    }
    Ok(rows)
}

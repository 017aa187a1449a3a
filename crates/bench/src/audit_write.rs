//! `sallyport-bench audit-write`: the tool-call audit's writes alone, as the gateway makes them,
//! against a migrated database: `--batches` batches of `--batch` rows, each its own statement and
//! durable commit, one after the other. It prints the CPU the Postgres backend and this process
//! spent per row (from `/proc`), which does not depend on how busy the machine is the way a rate
//! does: the measure behind issue 15's choice of a binary `COPY` (BENCHMARKS.md).

use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use diesel::QueryableByName;
use diesel::sql_types::Integer;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use store::tool_calls::{self, NewToolCall};

/// How the rows go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One binary `COPY ... FROM STDIN` per batch on a tokio-postgres connection (the gateway's way).
    Copy,
    /// One `INSERT ... SELECT * FROM unnest($1, ..., $11)` per batch through diesel (before).
    Unnest,
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

pub async fn run(url: &str, mode: Mode, batch: usize, batches: usize) -> anyhow::Result<()> {
    let user = uuid::Uuid::now_v7();
    let call = NewToolCall {
        occurred_at: Utc::now(),
        subject: None,
        user_id: Some(user),
        client_id: Some("mcp-client-7f3a9c2e4b1d"),
        ip: Some("127.0.0.1"),
        route: "/bench-mcp",
        tool: "search_issues",
        allowed: true,
        reason: None,
        upstream_status: Some(200),
        duration_ms: 1,
    };
    let mut rows = vec![call; batch];
    let timeout = std::time::Duration::from_secs(5);
    let (backend, self_before, backend_before, started);
    match mode {
        Mode::Copy => {
            let copier = tool_calls::Copier::connect(url, timeout).await?;
            backend = copier.backend_pid().await?;
            (self_before, backend_before, started) = (self_ticks(), ticks(backend), Instant::now());
            for _ in 0..batches {
                let now = Utc::now();
                rows.iter_mut().for_each(|r| r.occurred_at = now);
                copier.write(&rows).await.context("COPY")?;
            }
        }
        Mode::Unnest => {
            let mut conn = AsyncPgConnection::establish(url).await?;
            backend = diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result::<Pid>(&mut conn).await?.pid;
            (self_before, backend_before, started) = (self_ticks(), ticks(backend), Instant::now());
            for _ in 0..batches {
                let now = Utc::now();
                rows.iter_mut().for_each(|r| r.occurred_at = now);
                tool_calls::record_many(&mut conn, &rows).await.context("INSERT")?;
            }
        }
    }
    let elapsed = started.elapsed();
    let n = (batch * batches) as f64;
    let per_row = |ticks: u64| ticks as f64 * 10_000.0 / n;
    let backend_used = ticks(backend).saturating_sub(backend_before);
    let self_used = self_ticks().saturating_sub(self_before);
    println!(
        "{mode:?}: {batches} batches of {batch} rows in {:.2} s ({:.0} rows/s); per row: Postgres backend {:.2} µs \
         ({backend_used} ticks), this process {:.2} µs ({self_used} ticks)",
        elapsed.as_secs_f64(),
        n / elapsed.as_secs_f64(),
        per_row(backend_used),
        per_row(self_used),
    );
    Ok(())
}

fn ticks(pid: i32) -> u64 {
    u32::try_from(pid).ok().and_then(crate::cpu::process_ticks).map_or(0, |(_, t)| t)
}

fn self_ticks() -> u64 {
    crate::cpu::process_ticks(std::process::id()).map_or(0, |(_, t)| t)
}

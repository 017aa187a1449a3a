//! `ceiling`: the machine's own limit for a durable rotation, measured in the same run as the
//! grants (issue 19), so that a writing grant's rate reads as a share of what this machine, this
//! Postgres and this load allow. Each worker rotates its own chain in a table with a primary key
//! and one unique index, with the least a rotation can be — mark the presented row used and insert
//! its successor, in one statement and one durable commit:
//!
//! `WITH old AS (UPDATE … SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL RETURNING chain)
//! INSERT … SELECT … FROM old`
//!
//! through a pool built as the services build theirs (`store::db::pool`, the services' pool size),
//! with the same number of workers, against the bench database.

use std::sync::Arc;

use anyhow::Context;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Bytea;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use protocol::secret::{PlainSecret, SecretKind};
use store::db::Pool;
use uuid::Uuid;

use super::{Bench, run_once};
use crate::report::Row;
use crate::runner::Worker;

/// The table the ceiling rotates in, made in the bench database and dropped after.
const TABLE: &str = "sallyport_bench_ceiling";

/// The statement the report's ceiling row names.
pub const STATEMENT: &str = "WITH old AS (UPDATE … RETURNING) INSERT … SELECT FROM old";

/// The pool size the services use: `SALLYPORT__DATABASE__POOL_SIZE` as they read it, else their default.
fn services_pool_size() -> usize {
    std::env::var("SALLYPORT__DATABASE__POOL_SIZE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| server::config::DatabaseSettings::default().pool_size)
}

/// One rotation of a chain. A query type of its own, as the token service's rotation is, so that
/// diesel keeps it prepared per connection.
struct Rotate<'a> {
    presented: &'a [u8],
    id: Uuid,
    next: &'a [u8],
}

impl QueryId for Rotate<'_> {
    type QueryId = Rotate<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for Rotate<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        out.push_sql("WITH old AS (UPDATE ");
        out.push_sql(TABLE);
        out.push_sql(" SET used_at = now() WHERE token_hash = ");
        out.push_bind_param::<Bytea, _>(self.presented)?;
        out.push_sql(" AND used_at IS NULL RETURNING chain) INSERT INTO ");
        out.push_sql(TABLE);
        out.push_sql(" (id, token_hash, chain) SELECT ");
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Bytea, _>(self.next)?;
        out.push_sql(", chain FROM old");
        Ok(())
    }
}

struct Chain {
    pool: Arc<Pool>,
    current: Vec<u8>,
}

fn new_hash() -> Vec<u8> {
    PlainSecret::generate(SecretKind::RefreshToken).hash().to_vec()
}

impl Worker for Chain {
    async fn call(&mut self) -> Result<(), String> {
        let next = new_hash();
        let mut conn = self.pool.get().await.map_err(|e| format!("ceiling: no connection: {e}"))?;
        let rotated = Rotate { presented: &self.current, id: Uuid::now_v7(), next: &next }
            .execute(&mut *conn)
            .await
            .map_err(|e| format!("ceiling: {e}"))?;
        drop(conn);
        if rotated != 1 {
            return Err("ceiling: the rotation found no unused row".into());
        }
        self.current = next;
        Ok(())
    }
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let url = b.database_url.as_deref().context("the ceiling needs the bench database (--start)")?;
    let mut admin = <AsyncPgConnection as diesel_async::AsyncConnection>::establish(url).await?;
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id uuid PRIMARY KEY, \
             token_hash bytea NOT NULL UNIQUE, chain integer NOT NULL, used_at timestamptz)"
        ))
        .await
        .context("creating the ceiling table")?;
    let size = services_pool_size();
    let pool = Arc::new(store::db::pool(store::db::PoolOptions {
        url: url.to_owned(),
        pool_size: size,
        connect_timeout_ms: 5_000,
        acquire_timeout_ms: 5_000,
    })?);
    let mut workers = Vec::with_capacity(b.workers);
    for chain in 0..b.workers {
        let current = new_hash();
        diesel::sql_query(format!("INSERT INTO {TABLE} (id, token_hash, chain) VALUES ($1, $2, $3)"))
            .bind::<diesel::sql_types::Uuid, _>(Uuid::now_v7())
            .bind::<Bytea, _>(&current)
            .bind::<diesel::sql_types::Integer, _>(i32::try_from(chain)?)
            .execute(&mut admin)
            .await?;
        workers.push(Chain { pool: pool.clone(), current });
    }
    // one untimed rotation proves the statement works
    if let Some(first) = workers.first_mut() {
        first.call().await.map_err(anyhow::Error::msg)?;
    }
    let mut runs = Vec::with_capacity(b.runs);
    for i in 0..b.runs {
        let (s, back) = run_once(b, &format!("ceiling run {}/{}", i + 1, b.runs), workers).await;
        workers = back;
        runs.push(s);
    }
    let row = Row::new("ceiling", &format!("{STATEMENT} (pool of {size})"), &store::db::redact_url(url), runs);
    pool.close();
    admin.batch_execute(&format!("DROP TABLE {TABLE}")).await.context("dropping the ceiling table")?;
    Ok(vec![row])
}

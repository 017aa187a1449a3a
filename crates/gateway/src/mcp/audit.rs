//! The tool-call audit, off the request path: a handler hands its event to a bounded queue and
//! goes on; one task writes what is queued, a batch at a time, in one binary `COPY` on a
//! connection of its own (a few µs of Postgres CPU per call less than an `INSERT`: BENCHMARKS.md,
//! issue 15). When Postgres falls behind and the queue is full, the event is dropped and counted
//! rather than the request made to wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use store::tool_calls::{Copier, NewToolCall, split_subject};

use crate::principal::Principal;

/// Events per `COPY`.
const BATCH: usize = 4096;
/// How long the writer waits for a batch to fill after its first event. Each batch is a durable
/// commit, which costs Postgres ~0.4 ms of CPU whatever its size: 512-row batches cost 3.5 µs a
/// row, 2,048-row batches 3.0 µs (BENCHMARKS.md). 50 ms makes ~1,300-row batches at 26,000 calls/s.
const LINGER: Duration = Duration::from_millis(50);

/// One `tools/call` as the gateway saw it. Made on the request path, so it borrows what it can
/// (the token, the route's prefix) instead of copying strings; the writer turns it into a row.
#[derive(Debug, Clone)]
pub struct ToolCallEvent {
    pub at: DateTime<Utc>,
    /// The verified token; `None` on a public route.
    pub caller: Option<Principal>,
    /// The address the gateway derived (never a client-sent X-Sallyport-Client-Ip).
    pub ip: IpAddr,
    pub route: Arc<str>,
    pub tool: Box<str>,
    pub allowed: bool,
    /// Why it was refused (or `None`).
    pub reason: Option<&'static str>,
    /// The upstream's status; `None` when the call never reached it.
    pub upstream_status: Option<u16>,
    /// From the gateway's reading of the request to the upstream's response headers.
    pub duration: Duration,
}

impl ToolCallEvent {
    fn row<'a>(&'a self, ip: &'a str) -> NewToolCall<'a> {
        let client_id = self.caller.as_ref().map(Principal::client_id);
        let (user_id, subject) = split_subject(self.caller.as_ref().map(Principal::subject), client_id);
        NewToolCall {
            occurred_at: self.at,
            subject,
            user_id,
            client_id,
            ip: Some(ip),
            route: &self.route,
            tool: &self.tool,
            allowed: self.allowed,
            reason: self.reason,
            upstream_status: self.upstream_status.and_then(|s| i16::try_from(s).ok()),
            duration_ms: i32::try_from(self.duration.as_millis()).unwrap_or(i32::MAX),
        }
    }
}

/// The sending side, shared by every worker.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<ToolCallEvent>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Starts the writer on the current runtime; it ends when every sink is dropped. It keeps one
    /// database connection of its own (outside the pool), opened when the first batch is written
    /// and again after a failure.
    pub fn start(database: &server::config::DatabaseSettings, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let target = Target { url: database.url.clone(), connect_timeout: database.connect_timeout_ms };
        tokio::spawn(write(target, rx, Arc::clone(&dropped)));
        Self { tx, dropped }
    }

    /// Queues an event without waiting.
    pub fn record(&self, event: ToolCallEvent) {
        if self.tx.try_send(event).is_err() {
            let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if total.is_power_of_two() {
                tracing::warn!(dropped = total, "the tool-call audit queue is full: events are dropped");
            }
        }
    }

    /// Events dropped since the start (queue full, or a failed insert).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Where the writer's connection goes.
struct Target {
    url: String,
    connect_timeout: Duration,
}

impl Target {
    async fn connect(&self) -> Result<Copier, String> {
        Copier::connect(&self.url, self.connect_timeout).await.map_err(|e| e.to_string())
    }
}

async fn write(target: Target, mut rx: mpsc::Receiver<ToolCallEvent>, dropped: Arc<AtomicU64>) {
    let mut writer: Option<Copier> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if batch.len() < BATCH {
            // no wake-up per event: the writer sleeps, then takes what came meanwhile
            tokio::time::sleep(LINGER).await;
            let room = BATCH - batch.len();
            if !rx.is_empty() {
                rx.recv_many(&mut batch, room).await;
            }
        }
        // one text per distinct address: a batch holds the calls of a few clients, and formatting
        // an address (and allocating its text) for every row was most of the writer's own work
        let mut ips: HashMap<IpAddr, String> = HashMap::new();
        for e in &batch {
            ips.entry(e.ip).or_insert_with(|| e.ip.to_string());
        }
        let rows: Vec<NewToolCall<'_>> =
            batch.iter().map(|e| e.row(ips.get(&e.ip).map_or("", String::as_str))).collect();
        if writer.as_ref().is_some_and(Copier::is_closed) {
            writer = None;
        }
        let written = match writer.take() {
            Some(w) => Ok(w),
            None => target.connect().await,
        };
        let written = match written {
            Ok(w) => match w.write(&rows).await {
                Ok(_) => {
                    writer = Some(w);
                    Ok(())
                }
                // the connection may be what failed: the next batch opens a new one
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e),
        };
        if let Err(error) = written {
            let lost = u64::try_from(rows.len()).unwrap_or(u64::MAX);
            let total = dropped.fetch_add(lost, Ordering::Relaxed) + lost;
            tracing::warn!(%error, lost, dropped = total, "cannot write tool-call audit events");
        }
        drop(rows);
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "0190b2c4-0000-7000-8000-000000000001";

    fn caller(sub: &str) -> Principal {
        let claims = protocol::jwt::AccessTokenClaims {
            iss: "http://127.0.0.1".into(),
            sub: sub.into(),
            aud: protocol::jwt::Audience::One("http://127.0.0.1/mcp".into()),
            client_id: "app".into(),
            scope: "mcp".into(),
            iat: 0,
            exp: 60,
            nbf: None,
            jti: uuid::Uuid::nil(),
            auth_time: None,
            gid: None,
        };
        Principal::new(Arc::new(crate::verifier::VerifiedToken::new(claims).expect("token")))
    }

    fn event(tool: &str) -> ToolCallEvent {
        ToolCallEvent {
            at: Utc::now(),
            caller: Some(caller(ALICE)),
            ip: "192.0.2.7".parse().expect("ip"),
            route: "/mcp".into(),
            tool: tool.into(),
            allowed: false,
            reason: Some("denied by tools.deny"),
            upstream_status: None,
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn rows_carry_who_what_and_why() {
        let e = event("drop_database");
        let row = e.row("192.0.2.7");
        assert_eq!(row.user_id.map(|u| u.to_string()).as_deref(), Some(ALICE));
        assert_eq!((row.subject, row.client_id), (None, Some("app")), "the subject is the user id");
        assert_eq!((row.route, row.tool, row.allowed), ("/mcp", "drop_database", false));
        assert_eq!(row.reason, Some("denied by tools.deny"));
        assert_eq!((row.upstream_status, row.duration_ms, row.ip), (None, 1, Some("192.0.2.7")));
        let robot = ToolCallEvent { caller: Some(caller("app")), upstream_status: Some(200), ..event("x") };
        let row = robot.row("192.0.2.7");
        assert_eq!((row.user_id, row.subject), (None, None), "a client's own token has no user");
        assert_eq!(row.upstream_status, Some(200));
        let public = ToolCallEvent { caller: None, ..event("x") };
        let row = public.row("192.0.2.7");
        assert_eq!((row.user_id, row.subject, row.client_id), (None, None, None), "a public route");
    }

    /// Postgres away: requests never wait, and every lost event is counted.
    #[tokio::test]
    async fn a_slow_or_absent_database_drops_and_counts() {
        let settings = server::config::DatabaseSettings {
            url: "postgres://postgres@127.0.0.1:9/none".into(),
            pool_size: 1,
            connect_timeout_ms: std::time::Duration::from_millis(200),
            acquire_timeout_ms: std::time::Duration::from_millis(200),
            migrate_on_start: false,
        };
        let sink = AuditSink::start(&settings, 4);
        let started = std::time::Instant::now();
        for i in 0..100 {
            sink.record(event(&format!("t{i}")));
        }
        assert!(started.elapsed() < Duration::from_millis(50), "recording never waits for the database");
        assert!(sink.dropped() >= 90, "the queue holds 4: {}", sink.dropped());
        for _ in 0..50 {
            if sink.dropped() == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(sink.dropped(), 100, "failed inserts count as dropped too");
    }
}

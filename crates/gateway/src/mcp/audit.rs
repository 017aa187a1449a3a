//! The tool-call audit, off the request path: a handler hands its event to a bounded queue and
//! goes on; one task writes what is queued in batched inserts. When Postgres falls behind and the
//! queue is full, the event is dropped and counted rather than the request made to wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use store::audit::{NewAuditEvent, kind, record_many};

/// Events per insert.
const BATCH: usize = 1024;
/// How long the writer waits for a batch to fill after its first event: fewer, larger inserts.
const LINGER: Duration = Duration::from_millis(20);

/// One `tools/call` as the gateway saw it.
#[derive(Debug, Clone)]
pub struct ToolCallEvent {
    pub at: DateTime<Utc>,
    /// The token's `sub`: a user id, or the client id for client_credentials; `None` on a public route.
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub route: String,
    pub tool: String,
    pub allowed: bool,
    /// Why it was refused (or `None`).
    pub reason: Option<&'static str>,
    /// The upstream's status; `None` when the call never reached it.
    pub upstream_status: Option<u16>,
    /// From the gateway's reading of the request to the upstream's response headers.
    pub duration: Duration,
}

impl ToolCallEvent {
    fn row(&self) -> NewAuditEvent<'_> {
        // a user's `sub` is a UUID; a client's own token has its client id as `sub`
        let user_id = self
            .subject
            .as_deref()
            .filter(|s| Some(*s) != self.client_id.as_deref())
            .and_then(|s| s.parse::<Uuid>().ok());
        NewAuditEvent {
            occurred_at: self.at,
            kind: kind::TOOL_CALL,
            client_id: self.client_id.as_deref(),
            user_id,
            ip: self.ip.as_deref(),
            detail: json!({
                "route": self.route,
                "tool": self.tool,
                "subject": self.subject,
                "decision": if self.allowed { "allowed" } else { "denied" },
                "reason": self.reason,
                "upstream_status": self.upstream_status,
                "duration_ms": u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            }),
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
    /// Starts the writer on the current runtime; it ends when every sink is dropped.
    pub fn start(pool: store::Pool, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write(pool, rx, Arc::clone(&dropped)));
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

async fn write(pool: store::Pool, mut rx: mpsc::Receiver<ToolCallEvent>, dropped: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if batch.len() < BATCH {
            tokio::time::sleep(LINGER).await;
            let room = BATCH - batch.len();
            if !rx.is_empty() {
                rx.recv_many(&mut batch, room).await;
            }
        }
        let rows: Vec<NewAuditEvent<'_>> = batch.iter().map(ToolCallEvent::row).collect();
        let written = match pool.get().await {
            Ok(mut conn) => record_many(&mut conn, &rows).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
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

    fn event(tool: &str) -> ToolCallEvent {
        ToolCallEvent {
            at: Utc::now(),
            subject: Some("0190b2c4-0000-7000-8000-000000000001".into()),
            client_id: Some("app".into()),
            ip: None,
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
        let row = e.row();
        assert_eq!(row.kind, "mcp.tool_call");
        assert_eq!(row.user_id.map(|u| u.to_string()).as_deref(), e.subject.as_deref());
        assert_eq!(row.detail["decision"], "denied");
        assert_eq!(row.detail["reason"], "denied by tools.deny");
        assert_eq!(row.detail["duration_ms"], 1);
        let robot = ToolCallEvent { subject: Some("app".into()), ..event("x") };
        assert_eq!(robot.row().user_id, None, "a client's own token has no user");
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
        let pool = store::db::pool(&settings).expect("pool");
        let sink = AuditSink::start(pool, 4);
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

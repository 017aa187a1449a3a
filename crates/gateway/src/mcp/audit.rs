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

use domain::store::audit::{NewAuditEvent, kind, record_many};

/// Events per insert.
const BATCH: usize = 256;

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
    pub fn start(pool: domain::Pool, capacity: usize) -> Self {
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

async fn write(pool: domain::Pool, mut rx: mpsc::Receiver<ToolCallEvent>, dropped: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
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

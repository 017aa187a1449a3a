//! Gauges read at scrape time, from the state they describe: the connection pool's occupancy and
//! the signing keys' ages. Nothing on a request path updates them.

use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

/// The pool's size, connections in use and tasks waiting for one: `in_use == max` with waiters
/// is an exhausted pool (the `SallyportDatabasePoolExhausted` alert).
pub(super) struct PoolCollector(store::Pool);

impl PoolCollector {
    pub(super) fn new(pool: store::Pool) -> Self {
        Self(pool)
    }
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCollector")
    }
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.status();
        gauge(
            &mut encoder,
            "db_pool_max_connections",
            "The pool's configured size (database.pool_size)",
            as_i64(s.max_size),
        )?;
        gauge(&mut encoder, "db_pool_connections", "Connections the pool holds open", as_i64(s.size))?;
        // `available` is the open connections not handed out; deadpool reports it as 0 while tasks wait
        let in_use = s.size.saturating_sub(s.available);
        gauge(&mut encoder, "db_pool_connections_in_use", "Connections handed out to requests", as_i64(in_use))?;
        gauge(&mut encoder, "db_pool_waiting", "Requests waiting for a connection", as_i64(s.waiting))
    }
}

/// Each checkout's wait for a connection and the waits that timed out, as the pool reports them
/// ([`store::db::AcquireObserver`]). A wait is mostly microseconds; milliseconds mean the pool
/// is too small for the load, before it is exhausted.
#[derive(Clone, Debug)]
pub(super) struct PoolWaits {
    pub(super) waited: Histogram,
    pub(super) timeouts: Counter,
}

/// From an idle connection handed over at once (~10 µs) to the default acquire timeout (5 s).
const WAIT_BUCKETS: [f64; 12] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0];

impl Default for PoolWaits {
    fn default() -> Self {
        Self { waited: Histogram::new(WAIT_BUCKETS), timeouts: Counter::default() }
    }
}

impl store::db::AcquireObserver for PoolWaits {
    fn acquired(&self, waited: std::time::Duration) {
        self.waited.observe(waited.as_secs_f64());
    }

    fn timed_out(&self) {
        self.timeouts.inc();
    }
}

/// When the signing key in use was activated and when the next (pending) key activates, as Unix
/// seconds; the token service sets them at each reload of its keys. `i64::MIN`: none.
#[derive(Debug)]
pub struct KeyTimes {
    signing_since: AtomicI64,
    next_activation: AtomicI64,
}

impl Default for KeyTimes {
    fn default() -> Self {
        Self { signing_since: AtomicI64::new(i64::MIN), next_activation: AtomicI64::new(i64::MIN) }
    }
}

impl KeyTimes {
    /// Records the current key's activation and the next key's, if one is scheduled.
    pub fn set(&self, signing_since: Option<i64>, next_activation: Option<i64>) {
        self.signing_since.store(signing_since.unwrap_or(i64::MIN), Ordering::Relaxed);
        self.next_activation.store(next_activation.unwrap_or(i64::MIN), Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(super) struct KeyCollector(pub(super) std::sync::Arc<KeyTimes>);

impl Collector for KeyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = chrono::Utc::now().timestamp();
        let since = self.0.signing_since.load(Ordering::Relaxed);
        if since != i64::MIN {
            gauge(
                &mut encoder,
                "signing_key_age_seconds",
                "Seconds since the signing key in use became the signing key",
                now.saturating_sub(since).max(0),
            )?;
        }
        let next = self.0.next_activation.load(Ordering::Relaxed);
        if next != i64::MIN {
            gauge(
                &mut encoder,
                "signing_key_next_rotation_seconds",
                "Seconds until the scheduled (pending) signing key takes over; absent when none is scheduled",
                next.saturating_sub(now).max(0),
            )?;
        }
        Ok(())
    }
}

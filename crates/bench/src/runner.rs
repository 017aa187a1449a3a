//! The load loop: a fixed number of concurrent workers call their scenario back to back for a
//! warm-up, then for a measured window. A call is attributed to the phase in which it completes;
//! calls still in flight when the window closes are dropped from the figures, so the window's
//! length is exactly `duration` and requests/s is `ok / duration`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to a minute, with three significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Distinct error messages kept per run; the rest are counted under [`OTHER_ERRORS`].
const MAX_ERROR_KINDS: usize = 16;
pub const OTHER_ERRORS: &str = "(other errors)";

/// One virtual client. It owns its state (a session, a refresh-token chain) and makes one
/// request — or one sequence that counts as one iteration — per call.
pub trait Worker: Send + 'static {
    /// `Err` carries a short description ("POST /oauth2/token: 400 invalid_grant").
    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// How long to load.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Successful calls completed inside the window.
    pub ok: u64,
    /// Failed calls completed inside the window.
    pub errors: u64,
    /// Failed calls during the warm-up (they count as failures of the run too).
    pub warmup_errors: u64,
    /// Error messages and how often each occurred (warm-up included).
    pub error_kinds: BTreeMap<String, u64>,
    /// The measured window.
    pub window: Duration,
    /// Latencies of the successful calls in the window, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Measurement {
    fn empty(window: Duration) -> Self {
        Self { ok: 0, errors: 0, warmup_errors: 0, error_kinds: BTreeMap::new(), window, latency_us: new_histogram() }
    }

    /// Successful calls per second of the window.
    pub fn rate(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 { self.ok as f64 / secs } else { 0.0 }
    }

    fn note_error(&mut self, message: String) {
        self.note_errors(message, 1);
    }

    fn note_errors(&mut self, message: String, n: u64) {
        let distinct = self.error_kinds.len() - usize::from(self.error_kinds.contains_key(OTHER_ERRORS));
        let key = if self.error_kinds.contains_key(&message) || distinct < MAX_ERROR_KINDS {
            message
        } else {
            OTHER_ERRORS.to_owned()
        };
        *self.error_kinds.entry(key).or_default() += n;
    }

    fn merge(&mut self, other: Measurement) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.warmup_errors += other.warmup_errors;
        for (kind, n) in other.error_kinds {
            self.note_errors(kind, n);
        }
        // both histograms share the same bounds, so adding cannot fail
        let _ = self.latency_us.add(&other.latency_us);
    }
}

fn new_histogram() -> Histogram<u64> {
    #[expect(clippy::expect_used, reason = "constant, valid bounds (1 µs to 60 s, 3 significant digits)")]
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Runs every worker concurrently for `timing.warmup + timing.duration` and merges what they saw.
/// The workers come back with their state (a refresh chain goes on in the next run); a worker that
/// panicked counts as one error and is gone.
pub async fn run<W: Worker>(workers: Vec<W>, timing: Timing) -> (Measurement, Vec<W>) {
    let start = Instant::now();
    let measure_from = start + timing.warmup;
    let until = measure_from + timing.duration;
    let tasks: Vec<_> = workers.into_iter().map(|w| tokio::spawn(drive(w, measure_from, until))).collect();
    let mut total = Measurement::empty(timing.duration);
    let mut back = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((w, m)) => {
                total.merge(m);
                back.push(w);
            }
            Err(e) => {
                total.errors += 1;
                total.note_error(format!("worker died: {e}"));
            }
        }
    }
    (total, back)
}

async fn drive<W: Worker>(mut worker: W, measure_from: Instant, until: Instant) -> (W, Measurement) {
    let mut m = Measurement::empty(until - measure_from);
    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let result = worker.call().await;
        let done = Instant::now();
        if done >= until {
            break; // in flight when the window closed
        }
        let measured = done >= measure_from;
        match result {
            Ok(()) if measured => {
                let us = u64::try_from((done - started).as_micros()).unwrap_or(MAX_LATENCY_US).max(1);
                m.latency_us.saturating_record(us);
                m.ok += 1;
            }
            Ok(()) => {}
            Err(e) => {
                if measured {
                    m.errors += 1;
                } else {
                    m.warmup_errors += 1;
                }
                m.note_error(e);
            }
        }
    }
    (worker, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Sleeps `delay`, fails every `fail_every`-th call.
    struct Sleeper {
        delay: Duration,
        fail_every: u64,
        calls: Arc<AtomicU64>,
    }

    impl Worker for Sleeper {
        async fn call(&mut self) -> Result<(), String> {
            tokio::time::sleep(self.delay).await;
            let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            if self.fail_every > 0 && n.is_multiple_of(self.fail_every) { Err("boom".into()) } else { Ok(()) }
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn respects_the_window_and_counts() {
        let calls = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> =
            (0..4).map(|_| Sleeper { delay: Duration::from_millis(10), fail_every: 0, calls: calls.clone() }).collect();
        let timing = Timing { warmup: Duration::from_millis(100), duration: Duration::from_millis(400) };
        let started = Instant::now();
        let (m, back) = run(workers, timing).await;
        assert_eq!(back.len(), 4, "the workers come back");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(500), "ran the warm-up and the window: {took:?}");
        assert!(took < Duration::from_millis(800), "stopped at the end of the window: {took:?}");
        assert_eq!(m.errors, 0);
        assert_eq!(m.window, Duration::from_millis(400));
        // 4 workers x ~40 calls in the window; sleep granularity makes it a little less
        assert!((80..=164).contains(&m.ok), "ok = {}", m.ok);
        assert_eq!(m.latency_us.len(), m.ok);
        assert!(m.latency_us.value_at_quantile(0.5) >= 10_000, "p50 covers the 10 ms sleep");
        assert!(calls.load(Ordering::Relaxed) > m.ok, "warm-up calls are not measured");
        let rate = m.rate();
        assert!((rate - m.ok as f64 / 0.4).abs() < 1e-9);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn counts_errors_in_both_phases() {
        let calls = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> =
            (0..2).map(|_| Sleeper { delay: Duration::from_millis(5), fail_every: 3, calls: calls.clone() }).collect();
        let timing = Timing { warmup: Duration::from_millis(50), duration: Duration::from_millis(150) };
        let (m, _) = run(workers, timing).await;
        assert!(m.errors > 0 && m.warmup_errors > 0, "{m:?}");
        let total = m.ok + m.errors;
        // one call in three fails
        assert!(m.errors * 3 >= total - 2 && m.errors * 3 <= total + 6, "{} of {}", m.errors, total);
        assert_eq!(m.error_kinds.get("boom"), Some(&(m.errors + m.warmup_errors)));
        assert_eq!(m.latency_us.len(), m.ok, "failures are not in the latency histogram");
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut a = Measurement::empty(Duration::from_secs(1));
        for i in 0..(MAX_ERROR_KINDS + 5) {
            a.note_error(format!("e{i}"));
        }
        a.note_error("e0".into());
        assert_eq!(a.error_kinds.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(a.error_kinds.get(OTHER_ERRORS), Some(&5));
        assert_eq!(a.error_kinds.get("e0"), Some(&2));

        let mut b = Measurement::empty(Duration::from_secs(1));
        b.note_error("e0".into());
        b.note_error("new".into());
        b.note_error("new".into());
        a.merge(b);
        assert_eq!(a.error_kinds.get("e0"), Some(&3));
        assert_eq!(a.error_kinds.get(OTHER_ERRORS), Some(&7), "a new kind beyond the bound goes to other");
    }
}

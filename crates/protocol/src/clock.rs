//! Time as a parameter: every expiry decision asks a `Clock`, so tests move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// The system clock plus an offset that only tests change.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Unix seconds now.
    pub fn unix(&self) -> i64 {
        self.now().timestamp()
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

/// `now + secs`, saturating instead of overflowing on absurd configuration.
pub fn after(now: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX / 1000);
    now.checked_add_signed(TimeDelta::seconds(secs)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone() {
        let c = Clock::system();
        let d = c.clone();
        let before = d.unix();
        c.advance(3600);
        assert!(d.unix() >= before + 3600);
    }

    #[test]
    fn after_saturates() {
        let now = Utc::now();
        assert_eq!(after(now, 10), now + TimeDelta::seconds(10));
        assert_eq!(after(now, u64::MAX), DateTime::<Utc>::MAX_UTC);
    }
}

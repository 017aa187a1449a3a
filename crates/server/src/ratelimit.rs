//! Per-client-IP rate limits (GCRA, the governor crate), answering with the wait in seconds.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// A keyed limiter: `per_minute` requests per IP, with bursts of up to that many.
#[derive(Clone)]
pub struct IpRateLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    calls: Arc<AtomicU64>,
}

impl IpRateLimiter {
    pub fn per_minute(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self { limiter: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))), calls: Arc::default() }
    }

    /// `Ok` when `ip` may proceed, else `Err(seconds to wait)`.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        // forget idle addresses now and then, so the table cannot grow without bound
        if self.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&budget_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Whose budget an address spends: an IPv4 address (also one written as `::ffff:a.b.c.d`) is its
/// own; an IPv6 address counts as its /64, the smallest prefix a site is normally given (RFC 6177),
/// so that one client cannot take a fresh budget from each of its 2^64 addresses.
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl std::fmt::Debug for IpRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IpRateLimiter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip() {
        let l = IpRateLimiter::per_minute(2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        let wait = l.check(a).expect_err("third request in a minute is refused");
        assert!((1..=60).contains(&wait));
        assert!(l.check(b).is_ok(), "another address has its own budget");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let l = IpRateLimiter::per_minute(1);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(l.check(ip("2001:db8:a:b::1")).is_ok());
        assert!(l.check(ip("2001:db8:a:b:ffff:ffff:ffff:ffff")).is_err(), "same /64");
        assert!(l.check(ip("2001:db8:a:c::1")).is_ok(), "another /64");
        assert!(l.check(ip("192.0.2.1")).is_ok());
        assert!(l.check(ip("::ffff:192.0.2.1")).is_err(), "an IPv4-mapped address is that IPv4 address");
        assert_eq!(budget_key(ip("2001:db8:a:b:1:2:3:4")), ip("2001:db8:a:b::"));
    }
}

//! Limits on the ingest endpoints: a per-client-IP rate (GCRA, from `governor`) and a cap on
//! requests in flight. Over the rate a client gets 429 with `Retry-After`; over the cap, 503.
//! Client addresses are kept in memory only, and forgotten once idle.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Addresses remembered before idle ones are forgotten.
const FORGET_ABOVE: usize = 100_000;

pub struct IngestLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    in_flight: Arc<Semaphore>,
}

impl IngestLimits {
    /// `per_second` requests per client IP on average (0: no limit), `burst` at once above
    /// it, and `max_in_flight` requests at once in all.
    pub fn new(per_second: u32, burst: u32, max_in_flight: usize) -> IngestLimits {
        let per_ip = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        IngestLimits {
            per_ip,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// Lets a request from `ip` in, or says why not. Hold the permit until it is answered.
    pub fn admit(&self, ip: IpAddr) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Some(limiter) = &self.per_ip {
            if limiter.len() > FORGET_ABOVE {
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&ip) {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                let secs = u32::try_from(wait.as_secs()).unwrap_or(u32::MAX).max(1);
                return Err(ApiError::RateLimited {
                    retry_after_secs: secs,
                });
            }
        }
        self.in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Busy {
                retry_after_secs: 1,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_per_address_with_a_burst() {
        let limits = IngestLimits::new(1, 3, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limits.admit(a).is_ok());
        }
        match limits.admit(a) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(
            limits.admit(b).is_ok(),
            "another address has its own budget"
        );
        let unlimited = IngestLimits::new(0, 1, 100);
        for _ in 0..1000 {
            assert!(unlimited.admit(a).is_ok());
        }
    }

    #[test]
    fn requests_in_flight_are_capped() {
        let limits = IngestLimits::new(0, 1, 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let p1 = limits.admit(ip).unwrap();
        let _p2 = limits.admit(ip).unwrap();
        assert!(matches!(limits.admit(ip), Err(ApiError::Busy { .. })));
        drop(p1);
        assert!(limits.admit(ip).is_ok());
    }
}

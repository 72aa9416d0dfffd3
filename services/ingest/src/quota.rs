//! Per-tenant rate limits: a token bucket per tenant, so a noisy tenant is refused
//! (RESOURCE_EXHAUSTED) without slowing the others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept before idle ones are dropped.
const MAX_IDLE_SCAN: usize = 10_000;

/// Token buckets of the tenants that sent in the last second (see `MAX_IDLE_SCAN`).
pub(crate) struct Quotas {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Quotas {
    /// `per_second` sustained; bursts up to one second's worth.
    pub(crate) fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self { rate, burst: rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes `n` tokens from `tenant`'s bucket; on refusal, the seconds to wait.
    pub(crate) fn take(&self, tenant: &str, n: usize) -> Result<(), f64> {
        let n = n as f64;
        let now = Instant::now();
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_IDLE_SCAN && !buckets.contains_key(tenant) {
            // A bucket left alone for a second is full again: forgetting it changes nothing,
            // and keeps the map as small as the set of tenants sending right now.
            buckets.retain(|_, (_, last)| now.duration_since(*last).as_secs_f64() < 1.0);
        }
        let (tokens, last) = buckets.entry(tenant.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if n > self.burst {
            return Err(n / self.rate);
        }
        if *tokens >= n {
            *tokens -= n;
            Ok(())
        } else {
            Err((n - *tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_tenant_over_its_rate_is_refused_and_others_are_not() {
        let q = Quotas::new(100);
        assert!(q.take("noisy", 100).is_ok());
        let wait = q.take("noisy", 50).unwrap_err();
        assert!(wait > 0.0 && wait <= 0.5, "{wait}");
        assert!(q.take("quiet", 10).is_ok());
        assert!(q.take("noisy", 1000).is_err(), "more than a burst is never allowed");
    }
}

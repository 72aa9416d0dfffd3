//! Admission at the door: load shedding and per-caller shares of the process's call slots.
//!
//! A process that accepts every call queues them all, and under a flood every call waits until
//! its deadline: goodput collapses for every tenant at once. Here a unary call takes one of
//! `server.max_concurrent_calls` slots or is shed at once (UNAVAILABLE, with RetryInfo), and one
//! caller (API key, or token subject) holds at most `server.max_concurrent_calls_per_key` of
//! them (RESOURCE_EXHAUSTED, with RetryInfo): a flood from one tenant is refused fast while
//! the others keep their slots. The caller's share is taken before a slot, so one caller's flood
//! is refused at its share and never fills the slots. Streams are not counted here: they have
//! limits of their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// How long a shed caller is asked to wait before trying again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The slots of one process.
#[derive(Debug)]
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    per_key: usize,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
}

/// A call's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// A caller's share, given back when dropped.
#[derive(Debug)]
pub(crate) struct Share {
    key: String,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut map = match self.in_flight.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                // Only callers with calls in flight are kept: the map stays small.
                map.remove(&self.key);
            }
        }
    }
}

/// A status carrying `google.rpc.RetryInfo`.
pub(crate) fn with_retry(code: tonic::Code, message: &str, after: Duration) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(after)))
}

impl Admission {
    pub(crate) fn new(max_calls: usize, per_key: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_calls.max(1))),
            per_key: per_key.max(1),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot of the process, or UNAVAILABLE at once.
    pub(crate) fn slot(&self) -> Result<Slot, Status> {
        self.slots.clone().try_acquire_owned().map(|p| Slot { _permit: p }).map_err(|_| {
            with_retry(
                tonic::Code::Unavailable,
                "the server is at capacity (server.max_concurrent_calls); retry shortly",
                RETRY_AFTER,
            )
        })
    }

    /// A share for `caller`, or RESOURCE_EXHAUSTED at once when it already holds its share.
    pub(crate) fn share(&self, caller: &str) -> Result<Share, Status> {
        let mut map = match self.in_flight.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = map.entry(caller.to_owned()).or_default();
        if *n >= self.per_key {
            if *n == 0 {
                map.remove(caller);
            }
            return Err(with_retry(
                tonic::Code::ResourceExhausted,
                &format!(
                    "too many calls in flight for this key ({}, server.max_concurrent_calls_per_key); retry shortly",
                    self.per_key
                ),
                RETRY_AFTER,
            ));
        }
        *n += 1;
        Ok(Share { key: caller.to_owned(), in_flight: self.in_flight.clone() })
    }

    #[cfg(test)]
    fn callers(&self) -> usize {
        self.in_flight.lock().map(|m| m.len()).unwrap_or_default()
    }
}

/// The deadline a client asked for in `grpc-timeout` (`<digits><unit>`, unit one of H M S m u
/// n), if well-formed.
pub(crate) fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slots_are_shed_beyond_the_limit_and_given_back() {
        let a = Admission::new(2, 10);
        let s1 = a.slot().unwrap();
        let _s2 = a.slot().unwrap();
        let err = a.slot().unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        drop(s1);
        a.slot().unwrap();
    }

    #[test]
    fn one_caller_holds_at_most_its_share_and_others_are_unaffected() {
        let a = Admission::new(100, 2);
        let x1 = a.share("noisy").unwrap();
        let _x2 = a.share("noisy").unwrap();
        assert_eq!(a.share("noisy").unwrap_err().code(), tonic::Code::ResourceExhausted);
        let _q = a.share("quiet").unwrap();
        drop(x1);
        let _x3 = a.share("noisy").unwrap();
        assert_eq!(a.callers(), 2);
    }

    #[test]
    fn the_map_keeps_only_callers_in_flight() {
        let a = Admission::new(100, 2);
        for i in 0..1000 {
            drop(a.share(&format!("k{i}")).unwrap());
        }
        assert_eq!(a.callers(), 0);
    }

    #[test]
    fn grpc_timeouts_parse() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(grpc_timeout(&h), Some(Duration::from_millis(250)));
        h.insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(grpc_timeout(&h), Some(Duration::from_secs(3)));
        h.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&h), None);
    }
}

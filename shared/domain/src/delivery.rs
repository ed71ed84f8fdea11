//! Durable delivery of a batch through a port that may accept only part of it.
//!
//! DynamoDB `BatchWriteItem` returns `UnprocessedItems`, SQS `SendMessageBatch` returns per-entry failures,
//! and both can fail whole with a throttle or a 5xx. [`deliver`] hides the difference: it sends in
//! port-sized chunks, in order, retries what was not accepted with capped exponential backoff and full
//! jitter, and stops at the first chunk it cannot get through, so that callers can checkpoint exactly
//! there. Every port here is idempotent (keyed puts, de-duplicated consumers), so re-sending something the
//! store did accept behind an ambiguous error is harmless.

use crate::ports::{BatchSink, StoreError};
use std::time::Duration;

/// Capped exponential backoff with full jitter (sleep a uniform time in `[0, min(cap, base·2^n)]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Calls per chunk, including the first. At least 1.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts, 25 ms doubling to a 1 s cap: about 2.5 s of expected waiting at worst, well inside
    /// the function timeout, before the batch is handed back to Lambda's own retry.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_millis(25),
            cap: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the sleep before retry number `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    fn jittered(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// Sleeps the jittered backoff before retry number `retry` (1-based).
    pub async fn pause(&self, retry: u32) {
        tokio::time::sleep(self.jittered(retry)).await;
    }
}

/// What a delivery did, for the caller's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Calls made to the store.
    pub requests: u64,
    /// Calls that were retries of a chunk (partial acceptance or a transient error).
    pub retries: u64,
}

/// The outcome of [`deliver`].
#[derive(Debug)]
pub struct Delivery {
    /// `accepted[i]` is true when `items[i]` is durably stored.
    pub accepted: Vec<bool>,
    /// Why delivery stopped early, if it did.
    pub error: Option<StoreError>,
    pub stats: DeliveryStats,
}

/// Delivers `items` in order; see the module docs.
pub async fn deliver<T: Sync, S: BatchSink<T>>(
    sink: &S,
    items: &[T],
    retry: &RetryPolicy,
) -> Delivery {
    let mut accepted = vec![false; items.len()];
    let mut stats = DeliveryStats::default();
    let chunk = sink.max_batch().max(1);
    for start in (0..items.len()).step_by(chunk) {
        let mut pending: Vec<usize> = (start..(start + chunk).min(items.len())).collect();
        let mut attempt = 1;
        loop {
            let batch: Vec<&T> = pending.iter().map(|&i| &items[i]).collect();
            stats.requests += 1;
            let outcome = sink.put(&batch).await;
            let last_error = match outcome {
                Ok(unaccepted) => {
                    let mut still = Vec::with_capacity(unaccepted.len());
                    let mut is_unaccepted = vec![false; pending.len()];
                    for u in unaccepted {
                        if let Some(flag) = is_unaccepted.get_mut(u) {
                            *flag = true;
                        }
                    }
                    for (k, &i) in pending.iter().enumerate() {
                        if is_unaccepted[k] {
                            still.push(i);
                        } else {
                            accepted[i] = true;
                        }
                    }
                    pending = still;
                    None
                }
                Err(e) if e.retryable => Some(e),
                Err(e) => {
                    return Delivery {
                        accepted,
                        error: Some(e),
                        stats,
                    }
                }
            };
            if pending.is_empty() {
                break;
            }
            if attempt >= retry.max_attempts {
                let error = last_error.unwrap_or_else(|| StoreError {
                    operation: "batch delivery",
                    retryable: true,
                    source: format!(
                        "{} item(s) still unprocessed after {attempt} attempts",
                        pending.len()
                    )
                    .into(),
                });
                return Delivery {
                    accepted,
                    error: Some(error),
                    stats,
                };
            }
            retry.pause(attempt).await;
            attempt += 1;
            stats.retries += 1;
        }
    }
    Delivery {
        accepted,
        error: None,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Accepts at most `take` items per call and fails whole calls on a script.
    struct Flaky {
        take: usize,
        fail_calls: Vec<(usize, bool)>,
        calls: Mutex<usize>,
        stored: Mutex<Vec<u32>>,
    }

    impl BatchSink<u32> for Flaky {
        fn max_batch(&self) -> usize {
            4
        }
        async fn put(&self, items: &[&u32]) -> Result<Vec<usize>, StoreError> {
            let call = {
                let mut c = self.calls.lock().unwrap();
                *c += 1;
                *c
            };
            if let Some(&(_, retryable)) = self.fail_calls.iter().find(|(n, _)| *n == call) {
                return Err(StoreError {
                    operation: "put",
                    retryable,
                    source: "injected".into(),
                });
            }
            let n = items.len().min(self.take);
            self.stored
                .lock()
                .unwrap()
                .extend(items[..n].iter().copied());
            Ok((n..items.len()).collect())
        }
    }

    fn flaky(take: usize, fail_calls: Vec<(usize, bool)>) -> Flaky {
        Flaky {
            take,
            fail_calls,
            calls: Mutex::new(0),
            stored: Mutex::new(Vec::new()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn partial_acceptance_is_retried_until_everything_lands_once() {
        let sink = flaky(3, vec![(2, true)]);
        let items: Vec<u32> = (0..10).collect();
        let d = deliver(&sink, &items, &RetryPolicy::default()).await;
        assert!(d.error.is_none());
        assert!(d.accepted.iter().all(|a| *a));
        let mut stored = sink.stored.into_inner().unwrap();
        stored.sort();
        assert_eq!(stored, items);
        assert!(d.stats.retries >= 3, "{:?}", d.stats);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_error_stops_at_the_failing_chunk() {
        let sink = flaky(4, vec![(2, false)]);
        let items: Vec<u32> = (0..10).collect();
        let d = deliver(&sink, &items, &RetryPolicy::default()).await;
        assert!(d.error.as_ref().is_some_and(|e| !e.retryable));
        assert_eq!(d.accepted.iter().filter(|a| **a).count(), 4);
        assert!(d.accepted[..4].iter().all(|a| *a));
        assert_eq!(d.stats.requests, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn persistent_throttling_gives_up_after_max_attempts() {
        let sink = flaky(4, (1..=100).map(|n| (n, true)).collect());
        let policy = RetryPolicy {
            max_attempts: 5,
            ..RetryPolicy::default()
        };
        let d = deliver(&sink, &[1u32, 2], &policy).await;
        assert!(d.error.as_ref().is_some_and(|e| e.retryable));
        assert_eq!(d.accepted, vec![false, false]);
        assert_eq!(d.stats.requests, 5);
        assert_eq!(d.stats.retries, 4);
    }

    #[test]
    fn backoff_ceiling_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_millis(25));
        assert_eq!(p.ceiling(2), Duration::from_millis(50));
        assert_eq!(p.ceiling(6), Duration::from_millis(800));
        assert_eq!(p.ceiling(7), Duration::from_secs(1));
        assert_eq!(p.ceiling(64), Duration::from_secs(1));
        for retry in 1..10 {
            assert!(p.jittered(retry) <= p.ceiling(retry));
        }
    }
}

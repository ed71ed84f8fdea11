//! In-memory adapters for the domain's ports, for unit tests and local reasoning. They store what they
//! accept and can be scripted to fail like the real stores do: whole calls (throttling, 5xx) or part of a
//! batch (`UnprocessedItems`).

use crate::delivery::{BatchSink, StoreError};
use crate::ingest::{LogEntry, QuarantineRecord};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How a scripted store misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// 1-based call numbers that fail whole with a transient error.
    pub transient_calls: Vec<u64>,
    /// From this call number on, every call fails with a transient error.
    pub down_from_call: Option<u64>,
    /// At most this many items are accepted per call; the rest come back unprocessed.
    pub accept_at_most: Option<usize>,
}

#[derive(Debug, Default)]
struct State<K, V> {
    calls: u64,
    items: BTreeMap<K, V>,
    puts: u64,
}

/// A keyed store: a put of an existing key overwrites it, as DynamoDB does.
#[derive(Debug, Default)]
pub struct MemoryStore<K, V> {
    state: Mutex<State<K, V>>,
    pub faults: Faults,
    pub max_batch: usize,
}

impl<K: Ord + Clone, V: Clone> MemoryStore<K, V> {
    pub fn new(max_batch: usize, faults: Faults) -> Self {
        Self {
            state: Mutex::new(State {
                calls: 0,
                items: BTreeMap::new(),
                puts: 0,
            }),
            faults,
            max_batch,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn items(&self) -> BTreeMap<K, V> {
        self.lock().items.clone()
    }

    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Item writes applied, counting overwrites.
    pub fn puts(&self) -> u64 {
        self.lock().puts
    }

    fn put_keyed(&self, items: &[&V], key: impl Fn(&V) -> K) -> Result<Vec<usize>, StoreError> {
        let mut st = self.lock();
        st.calls += 1;
        let call = st.calls;
        let down = self.faults.down_from_call.is_some_and(|c| call >= c);
        if down || self.faults.transient_calls.contains(&call) {
            return Err(StoreError {
                operation: "memory put",
                retryable: true,
                source: format!("injected transient fault on call {call}").into(),
            });
        }
        let n = self
            .faults
            .accept_at_most
            .unwrap_or(usize::MAX)
            .min(items.len());
        for v in &items[..n] {
            st.items.insert(key(v), (*v).clone());
            st.puts += 1;
        }
        Ok((n..items.len()).collect())
    }
}

pub type MemoryLog = MemoryStore<(String, String), LogEntry>;
pub type MemoryQuarantine = MemoryStore<String, QuarantineRecord>;

impl BatchSink<LogEntry> for MemoryLog {
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    async fn put(&self, items: &[&LogEntry]) -> Result<Vec<usize>, StoreError> {
        self.put_keyed(items, |e| (e.session_id.clone(), e.event_id.clone()))
    }
}

impl BatchSink<QuarantineRecord> for MemoryQuarantine {
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    /// Keyed by sequence number: a queue consumer de-duplicates redelivered records the same way.
    async fn put(&self, items: &[&QuarantineRecord]) -> Result<Vec<usize>, StoreError> {
        self.put_keyed(items, |q| q.sequence_number.clone())
    }
}

//! In-memory adapters for the domain's ports, for unit tests and local reasoning. They store what they
//! accept and can be scripted to fail like the real stores do: whole calls (throttling, 5xx) or part of a
//! batch (`UnprocessedItems`).

use crate::features::updater::UpdateFailure;
use crate::features::{Doc, Key};
use crate::ingest::{LogEntry, QuarantineRecord};
use crate::ports::{BatchSink, StoreError};
use crate::ports::{
    CommitError, Expect, FeatureReader, FeatureWriter, LogEraser, LogIndex, SessionLog, Stored,
    Write,
};
use crate::ports::{Condition, Object, ObjectStore, PutError};
use crate::ports::{UnitPage, UnitSource};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// How a scripted store misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// 1-based call numbers that fail whole with a transient error.
    pub transient_calls: Vec<u64>,
    /// 1-based call numbers that fail whole with a permanent error (access denied, say).
    pub permanent_calls: Vec<u64>,
    /// From this call number on, every call fails with a transient error.
    pub down_from_call: Option<u64>,
    /// At most this many items are accepted per call; the rest come back unprocessed.
    pub accept_at_most: Option<usize>,
}

impl Faults {
    /// Fails call number `call` (1-based) if the script says so.
    fn check(&self, call: u64, operation: &'static str) -> Result<(), StoreError> {
        if self.permanent_calls.contains(&call) {
            return Err(StoreError::permanent(
                operation,
                format!("injected permanent fault on call {call}"),
            ));
        }
        let down = self.down_from_call.is_some_and(|c| call >= c);
        if down || self.transient_calls.contains(&call) {
            return Err(StoreError {
                operation,
                retryable: true,
                source: format!("injected transient fault on call {call}").into(),
            });
        }
        Ok(())
    }
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
        self.faults.check(st.calls, "memory put")?;
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
/// The event archive's delivery stream: rows by (session, event) id.
pub type MemoryArchive = MemoryStore<(String, String), crate::archive::ArchiveRow>;
pub type MemoryQuarantine = MemoryStore<String, QuarantineRecord>;
/// A stream: records keyed by their bytes (a re-put of the same record is one record).
pub type MemoryStream = MemoryStore<Vec<u8>, crate::ports::OutRecord>;

impl BatchSink<crate::ports::OutRecord> for MemoryStream {
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    async fn put(&self, items: &[&crate::ports::OutRecord]) -> Result<Vec<usize>, StoreError> {
        self.put_keyed(items, |r| r.data.clone())
    }
}

impl BatchSink<LogEntry> for MemoryLog {
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    async fn put(&self, items: &[&LogEntry]) -> Result<Vec<usize>, StoreError> {
        self.put_keyed(items, |e| (e.session_id.clone(), e.event_id.clone()))
    }
}

impl BatchSink<crate::archive::ArchiveRow> for MemoryArchive {
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    async fn put(&self, items: &[&crate::archive::ArchiveRow]) -> Result<Vec<usize>, StoreError> {
        self.put_keyed(items, |r| (r.session_id.clone(), r.event_id.clone()))
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

/// The feature updater's on-failure destination, keyed by (session, sequence number) as a consumer would
/// de-duplicate.
pub type MemoryFailures = MemoryStore<(String, Option<String>), UpdateFailure>;

impl BatchSink<UpdateFailure> for MemoryFailures {
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    async fn put(&self, items: &[&UpdateFailure]) -> Result<Vec<usize>, StoreError> {
        self.put_keyed(items, |f| (f.session_id.clone(), f.sequence_number.clone()))
    }
}

impl crate::ports::AppendOnce for MemoryLog {
    async fn append_once(&self, entry: &LogEntry) -> Result<bool, StoreError> {
        tokio::task::yield_now().await;
        let mut st = self.lock();
        let key = (entry.session_id.clone(), entry.event_id.clone());
        if st.items.contains_key(&key) {
            return Ok(false);
        }
        st.items.insert(key, entry.clone());
        Ok(true)
    }
}

impl SessionLog for MemoryLog {
    async fn session_events(&self, session_id: &str) -> Result<Vec<LogEntry>, StoreError> {
        let st = self.lock();
        let from = (session_id.to_string(), String::new());
        Ok(st
            .items
            .range(from..)
            .take_while(|((s, _), _)| s == session_id)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl LogEraser for MemoryLog {
    fn max_batch(&self) -> usize {
        25
    }

    async fn delete(&self, keys: &[&(String, String)]) -> Result<Vec<usize>, StoreError> {
        let mut st = self.lock();
        for k in keys {
            st.items.remove(*k);
        }
        Ok(Vec::new())
    }
}

impl LogIndex for MemoryLog {
    async fn decision_session(&self, decision_id: &str) -> Result<Option<String>, StoreError> {
        let st = self.lock();
        Ok(st
            .items
            .values()
            .find(|e| e.is_decision() && e.event_id == decision_id)
            .map(|e| e.session_id.clone()))
    }

    async fn decisions_in_hour(
        &self,
        hour: &str,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let st = self.lock();
        let mut found: Vec<(String, LogEntry)> = st
            .items
            .values()
            .filter_map(|e| {
                e.decision_hour()
                    .filter(|h| h.split('#').next() == Some(hour))
                    .map(|h| (h, e.clone()))
            })
            .collect();
        // Shard after shard, by event id within one, as the index returns them.
        found.sort_by(|a, b| (&a.0, &a.1.event_id).cmp(&(&b.0, &b.1.event_id)));
        Ok(found.into_iter().take(limit).map(|(_, e)| e).collect())
    }

    async fn user_sessions(
        &self,
        user_id: &str,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let st = self.lock();
        Ok(st
            .items
            .values()
            .filter(|e| e.user_id.as_deref() == Some(user_id))
            .map(|e| e.session_id.clone())
            .collect())
    }
}

#[derive(Debug, Default)]
struct FeatureState {
    calls: u64,
    items: BTreeMap<Key, Stored>,
    writes: u64,
    /// Write units billed per partition key ([`crate::features::cost`]).
    units_by_pk: HashMap<String, u64>,
    /// Commits writing an item whose `pk` starts with this fail with a transient error.
    failing_pk_prefix: Option<String>,
}

/// The features table in memory, with DynamoDB's conditional-write semantics. Every call yields to the
/// scheduler first, so that concurrent updaters interleave the way separate Lambda invocations do.
#[derive(Debug, Default)]
pub struct MemoryFeatureStore {
    state: Mutex<FeatureState>,
    pub faults: Faults,
}

impl MemoryFeatureStore {
    pub fn new(faults: Faults) -> Self {
        Self {
            state: Mutex::default(),
            faults,
        }
    }

    /// From now on, fail every commit that writes an item whose `pk` starts with `prefix` (`None`: stop).
    pub fn fail_writes_to(&self, prefix: Option<&str>) {
        self.lock().failing_pk_prefix = prefix.map(str::to_string);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeatureState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every item, without versions.
    pub fn docs(&self) -> BTreeMap<Key, Doc> {
        self.lock()
            .items
            .iter()
            .map(|(k, s)| (k.clone(), s.doc.clone()))
            .collect()
    }

    /// Item writes applied so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Calls made so far (reads and commits).
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Write units billed so far per partition key, by item size and transaction
    /// ([`crate::features::cost`]).
    pub fn write_units_by_pk(&self) -> HashMap<String, u64> {
        self.lock().units_by_pk.clone()
    }

    /// Puts a document as it is, at version 1 (test set-up).
    pub fn insert(&self, doc: Doc) {
        self.lock()
            .items
            .insert(doc.key(), Stored { version: 1, doc });
    }

    /// Counts a call and fails it if the script says so.
    fn call(
        &self,
        operation: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, FeatureState>, StoreError> {
        let mut st = self.lock();
        st.calls += 1;
        self.faults.check(st.calls, operation)?;
        Ok(st)
    }
}

/// Experiment units per page when [`MemoryFeatureStore`] serves them (small, to exercise pagination).
pub const MEMORY_UNIT_PAGE: usize = 100;

impl UnitSource for MemoryFeatureStore {
    async fn page(&self, experiment_id: &str, after: Option<&str>) -> Result<UnitPage, StoreError> {
        tokio::task::yield_now().await;
        let st = self.call("memory Query")?;
        let cursor = crate::features::UnitCursor::parse(after);
        if cursor.shard >= crate::features::UNIT_SHARDS {
            return Ok(UnitPage::default());
        }
        let pk = Key::experiment_shard(experiment_id, cursor.shard);
        let start = Key::new(pk.clone(), cursor.after.clone().unwrap_or_default());
        let mut units = Vec::new();
        let mut last = None;
        for (key, stored) in st.items.range(start..) {
            if key.pk != pk || units.len() == MEMORY_UNIT_PAGE {
                break;
            }
            if cursor.after.as_deref() == Some(key.sk.as_str()) || !key.sk.starts_with("unit#") {
                continue;
            }
            units.push(match &stored.doc {
                Doc::ExperimentUnit(u) => Ok(u.clone()),
                _ => Err("not_an_experiment_unit".to_string()),
            });
            last = Some(key.sk.clone());
        }
        let more = last.as_ref().is_some_and(|sk| {
            st.items
                .range(Key::new(pk.clone(), sk.clone())..)
                .nth(1)
                .is_some_and(|(k, _)| k.pk == pk)
        });
        Ok(UnitPage {
            units,
            next: cursor.next(if more { last } else { None }),
        })
    }
}

impl crate::ports::DueIndex for MemoryFeatureStore {
    async fn due(
        &self,
        bucket: &str,
        until: &str,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        tokio::task::yield_now().await;
        let st = self.call("memory Query recovery-due")?;
        let mut due: Vec<&Stored> = st
            .items
            .values()
            .filter(|s| {
                matches!(&s.doc, Doc::RecoveryDue(d) if d.due_bucket == bucket && d.due_key.as_str() <= until)
            })
            .collect();
        due.sort_by_key(|s| match &s.doc {
            Doc::RecoveryDue(d) => d.due_key.clone(),
            _ => String::new(),
        });
        Ok(due.into_iter().take(limit).cloned().collect())
    }
}

/// The outbound destination of recovery messages: records every message it is handed, in order, the
/// duplicates too (a real FIFO queue drops a repeated idempotency key within 5 minutes; the tests check
/// that the sweep never hands one over twice).
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    pub messages: Mutex<Vec<crate::recovery::sweep::OutboundMessage>>,
    pub faults: Faults,
    calls: std::sync::atomic::AtomicU64,
}

impl MemoryOutbox {
    pub fn messages(&self) -> Vec<crate::recovery::sweep::OutboundMessage> {
        self.messages.lock().expect("not poisoned").clone()
    }
}

impl BatchSink<crate::recovery::sweep::OutboundMessage> for MemoryOutbox {
    fn max_batch(&self) -> usize {
        10
    }

    async fn put(
        &self,
        items: &[&crate::recovery::sweep::OutboundMessage],
    ) -> Result<Vec<usize>, StoreError> {
        tokio::task::yield_now().await;
        let call = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        self.faults.check(call, "memory SendMessageBatch")?;
        self.messages
            .lock()
            .expect("not poisoned")
            .extend(items.iter().map(|m| (*m).clone()));
        Ok(Vec::new())
    }
}

impl FeatureReader for MemoryFeatureStore {
    async fn get_many(&self, keys: &[Key]) -> Result<HashMap<Key, Stored>, StoreError> {
        tokio::task::yield_now().await;
        let st = self.call("memory get")?;
        Ok(keys
            .iter()
            .filter_map(|k| st.items.get(k).map(|s| (k.clone(), s.clone())))
            .collect())
    }
}

impl FeatureWriter for MemoryFeatureStore {
    async fn query(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Stored>, StoreError> {
        tokio::task::yield_now().await;
        let st = self.call("memory query")?;
        Ok(st
            .items
            .iter()
            .filter(|(k, _)| k.pk == pk && k.sk.starts_with(sk_prefix))
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), CommitError> {
        tokio::task::yield_now().await;
        if let Some(prefix) = &self.lock().failing_pk_prefix {
            if writes.iter().any(|w| w.key.pk.starts_with(prefix)) {
                return Err(CommitError::Store(StoreError {
                    operation: "memory commit",
                    retryable: true,
                    source: format!("injected fault writing {prefix}…").into(),
                }));
            }
        }
        let mut st = self.call("memory commit")?;
        let ok = writes.iter().all(|w| {
            let current = st.items.get(&w.key).map(|s| s.version);
            match w.expect {
                Expect::Any => true,
                Expect::Absent => current.is_none(),
                Expect::Version(v) => current == Some(v),
            }
        });
        if !ok {
            return Err(CommitError::Conflict);
        }
        let transactional = writes.len() > 1;
        for w in writes {
            st.writes += 1;
            let units = crate::features::cost::write_units(&w, transactional);
            *st.units_by_pk.entry(w.key.pk.clone()).or_default() += units;
            match w.doc {
                None => {
                    st.items.remove(&w.key);
                }
                Some(doc) => {
                    let version = st.items.get(&w.key).map_or(0, |s| s.version) + 1;
                    st.items.insert(w.key, Stored { version, doc });
                }
            }
        }
        Ok(())
    }
}

/// An in-memory object store (the S3 model registry in unit tests): ETags are content hashes, conditions are
/// honoured, and `unreachable` makes every call fail as a network fault would.
#[derive(Debug, Default)]
pub struct MemoryObjectStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    pub unreachable: std::sync::atomic::AtomicBool,
}

impl MemoryObjectStore {
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.objects.lock().expect("not poisoned").get(key).cloned()
    }

    /// Every key held.
    pub fn keys(&self) -> Vec<String> {
        self.objects
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Writes an object unconditionally (a test's back door, e.g. to corrupt an artifact).
    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        self.objects
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), bytes);
    }

    fn reachable(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.unreachable.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError {
                operation,
                retryable: true,
                source: "injected: the object store is unreachable".into(),
            });
        }
        Ok(())
    }
}

fn etag(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(bytes)[..16]))
}

impl ObjectStore for MemoryObjectStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        tokio::task::yield_now().await;
        self.reachable("memory GetObject")?;
        Ok(self.object(key).map(|bytes| Object {
            etag: etag(&bytes),
            bytes,
        }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, condition: Condition) -> Result<(), PutError> {
        tokio::task::yield_now().await;
        self.reachable("memory PutObject")?;
        let mut objects = self.objects.lock().expect("not poisoned");
        let holds = match (&condition, objects.get(key)) {
            (Condition::Absent, existing) => existing.is_none(),
            (Condition::Matches(tag), Some(existing)) => &etag(existing) == tag,
            (Condition::Matches(_), None) => false,
            (Condition::Always, _) => true,
        };
        if !holds {
            return Err(PutError::Precondition);
        }
        objects.insert(key.to_owned(), bytes);
        Ok(())
    }
}

//! Every port of the domain, in one place, each sized to the use case that calls it.
//!
//! | port | who calls it | AWS adapter (`checkout-aws`) |
//! |---|---|---|
//! | [`BatchSink<LogEntry>`](BatchSink) | ingest | `dynamo::DynamoEventLog` (`BatchWriteItem`) |
//! | [`BatchSink<QuarantineRecord>`](BatchSink) | ingest | `sqs::SqsQuarantine` (`SendMessageBatch`) |
//! | [`BatchSink<OutRecord>`](BatchSink) | scorer (decision events) | `kinesis::KinesisProducer` (`PutRecords`) |
//! | [`SessionLog`] | feature updater | `features::DynamoSessionLog` (`Query`) |
//! | [`FeatureReader`] | scorer | `features::DynamoFeatureStore` (`BatchGetItem`) |
//! | [`FeatureWriter`] | feature updater | `features::DynamoFeatureStore` (`Query`, `TransactWriteItems`, `PutItem`) |
//! | [`ObjectStore`] | scorer, evaluator, CLI (model registry, decision config, reports) | `s3::S3ObjectStore` |
//! | [`UnitSource`] | evaluator | `features::DynamoUnitSource` (`Query`) |
//! | [`DueIndex`] | recovery sweep | `features::DynamoFeatureStore` (`Query` of `recovery-due`) |
//! | [`BatchSink<OutboundMessage>`](BatchSink) | recovery sweep | `sqs::SqsOutbound` (FIFO `SendMessageBatch`) |
//!
//! The in-memory adapters of all of them are in `memory` (feature `test-util`).
//! Every port reports failures as a [`StoreError`], classified at the edge as transient or permanent.

use crate::features::{Doc, ExperimentUnit, Key};
use crate::ingest::LogEntry;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;

/// A store that accepts batches and reports which entries it did not take.
pub trait BatchSink<T: Sync>: Sync {
    /// The most entries one call may carry (25 for `BatchWriteItem`, 10 for `SendMessageBatch`).
    fn max_batch(&self) -> usize;

    /// Sends `items` in one call. `Ok` carries the indices (into `items`) that were not accepted and may be
    /// retried; `Err` means the call as a whole failed.
    fn put(&self, items: &[&T]) -> impl Future<Output = Result<Vec<usize>, StoreError>> + Send;
}

/// A failed call to a store, classified at the edge as worth retrying or not.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed ({})", if *.retryable { "transient" } else { "permanent" })]
pub struct StoreError {
    pub operation: &'static str,
    pub retryable: bool,
    #[source]
    pub source: Box<dyn StdError + Send + Sync>,
}

impl StoreError {
    /// The same classification with the source kept as text, for reporting one failure in several places.
    pub fn clone_shallow(&self) -> Self {
        Self {
            operation: self.operation,
            retryable: self.retryable,
            source: format!("{self}: {}", self.source).into(),
        }
    }

    /// A failure that retrying will not fix (a request that cannot be built or encoded, access denied, …).
    pub fn permanent(
        operation: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            operation,
            retryable: false,
            source: source.into(),
        }
    }
}

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Reads one session's events from the event log.
pub trait SessionLog: Sync {
    /// Every entry of the session, strongly consistent.
    fn session_events(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Vec<LogEntry>, StoreError>> + Send;
}

/// The event log's secondary indexes (template: `by-user`, `decisions-by-id`, `decisions-by-hour`):
/// what `checkout-ai explain`, the drift monitor and erasure look up without a scan. Index reads are
/// eventually consistent.
pub trait LogIndex: SessionLog {
    /// The session of the decision `decision_id`, if it is in the log.
    fn decision_session(
        &self,
        decision_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The decisions logged in `hour` (`2026-11-30T05`, see `ingest::hour_of`), shard after shard, at
    /// most `limit` of them. Shards are a hash of the event id, so any prefix is a uniform sample.
    fn decisions_in_hour(
        &self,
        hour: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LogEntry>, StoreError>> + Send;

    /// The sessions with at least one event of the pseudonymous user.
    fn user_sessions(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, StoreError>> + Send;
}

/// The recovery sweep's index of due carts (`recovery-due` on the features table in AWS). Eventually
/// consistent: the sweep checks every item against the log before acting on it.
pub trait DueIndex: Sync {
    /// The due items of index partition `bucket` (`recovery::due_bucket`) with `due_key` ≤ `until`, in
    /// `due_key` order, at most `limit`.
    fn due(
        &self,
        bucket: &str,
        until: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Stored>, StoreError>> + Send;
}

/// Appends one entry to the event log only if no entry has its key (session, event id): what serialises
/// the commands on a review case (its events are numbered).
pub trait AppendOnce: Sync {
    /// `Ok(false)`: an entry with the key was already there; nothing was written.
    fn append_once(
        &self,
        entry: &LogEntry,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Deletes event-log entries by key (erasure only: the log is otherwise append-only). Shaped like
/// [`BatchSink`], so `delivery::deliver` retries what the store leaves unprocessed.
pub trait LogEraser: Sync {
    /// Keys per request.
    fn max_batch(&self) -> usize;
    /// One request deleting `keys` (`(session_id, event_id)`, at most [`Self::max_batch`]); returns the
    /// positions the store left unprocessed. An absent key is a no-op.
    fn delete(
        &self,
        keys: &[&(String, String)],
    ) -> impl Future<Output = Result<Vec<usize>, StoreError>> + Send;
}

/// An item as read, with the version its next write must expect.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub version: u64,
    pub doc: Doc,
}

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No item.
    Absent,
    /// The item at this version.
    Version(u64),
    /// Anything: for items that are only ever written together with a guarded one.
    Any,
}

impl Expect {
    pub fn of(stored: Option<&Stored>) -> Self {
        stored.map_or(Expect::Absent, |s| Expect::Version(s.version))
    }
}

/// One put (or, with `doc: None`, delete) in a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub key: Key,
    pub expect: Expect,
    pub doc: Option<Doc>,
}

impl Write {
    pub fn put(doc: Doc, expect: Expect) -> Self {
        Self {
            key: doc.key(),
            expect,
            doc: Some(doc),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// An item was not as expected: someone else wrote it since it was read.
    #[error("conditional write conflict")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The features table as the scorer sees it: items by key, in one round trip.
pub trait FeatureReader: Sync {
    /// Reads the given items, strongly consistent. Absent items are left out of the map.
    fn get_many(
        &self,
        keys: &[Key],
    ) -> impl Future<Output = Result<HashMap<Key, Stored>, StoreError>> + Send;
}

/// The features table as the feature updater sees it: read-modify-write with conditional commits.
pub trait FeatureWriter: FeatureReader {
    /// Every item of partition `pk` whose sort key starts with `sk_prefix`.
    fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> impl Future<Output = Result<Vec<Stored>, StoreError>> + Send;

    /// Applies all writes or none. A write's version becomes the expected version plus one.
    fn commit(&self, writes: Vec<Write>) -> impl Future<Output = Result<(), CommitError>> + Send;
}

/// An object as read, with the ETag a conditional write can expect.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// When a put may happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Only if the key does not exist.
    Absent,
    /// Only if the key still has this ETag.
    Matches(String),
    /// Unconditionally (a write whose content is a pure function of its key's inputs).
    Always,
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("the object changed or exists (precondition failed)")]
    Precondition,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The object store port (S3 in AWS, memory in unit tests).
pub trait ObjectStore: Sync {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Object>, StoreError>> + Send;
    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        condition: Condition,
    ) -> impl Future<Output = Result<(), PutError>> + Send;
}

impl<T: ObjectStore + Send> ObjectStore for &T {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Object>, StoreError>> + Send {
        (**self).get(key)
    }

    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        condition: Condition,
    ) -> impl Future<Output = Result<(), PutError>> + Send {
        (**self).put(key, bytes, condition)
    }
}

/// One page of an experiment's units, and where the next starts.
#[derive(Debug, Default)]
pub struct UnitPage {
    /// A unit, or why its item could not be read.
    pub units: Vec<Result<ExperimentUnit, String>>,
    pub next: Option<String>,
}

/// What the experiment readout SQL is asked (`sql/experiment_readout.sql`'s parameters, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadoutQuery {
    pub experiment_id: String,
    pub recovery: bool,
    pub window_end: chrono::DateTime<chrono::Utc>,
    pub now: chrono::DateTime<chrono::Utc>,
    pub currency: String,
    /// Once the experiment has stopped: the stop and the end of its long-run tail.
    pub long_run: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
}

impl ReadoutQuery {
    /// The SQL's timestamp parameters' text, `YYYY-MM-DD HH:MM:SS` (UTC).
    pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// The long-run parameters (6 to 8): whether to compute it, the stop and the tail's end (the window
    /// end for both when the experiment runs).
    pub fn long_run_parameters(&self) -> (bool, String, String) {
        match self.long_run {
            Some((stop, end)) => (true, Self::timestamp(stop), Self::timestamp(end)),
            None => (
                false,
                Self::timestamp(self.window_end),
                Self::timestamp(self.window_end),
            ),
        }
    }
}

/// The event archive's experiment readout (Athena in AWS, DuckDB locally): per-arm tallies for an
/// experiment too large to read unit by unit.
#[cfg(feature = "stats")]
pub trait ReadoutSource: Sync {
    /// A name for the report's data source (`athena:<workgroup>`).
    fn name(&self) -> String;
    fn readout(
        &self,
        query: &ReadoutQuery,
    ) -> impl Future<Output = Result<Vec<crate::experiment::evaluation::ReadoutRow>, StoreError>> + Send;
}

/// The experiment-unit projection (the features table's `experiment#<id>#<shard>` partitions in AWS).
pub trait UnitSource: Sync {
    fn page(
        &self,
        experiment_id: &str,
        after: Option<&str>,
    ) -> impl Future<Output = Result<UnitPage, StoreError>> + Send;
}

//! Ingest: from raw stream records to durable event-log entries, without any AWS type.
//!
//! For one batch of records from one shard, in shard order:
//! 1. [`Admission::admit`] decodes and validates each record, pseudonymizes personal fields and builds the
//!    log entry, or explains with a reason code why the record is rejected.
//! 2. Accepted entries are de-duplicated by their key (`session_id`, `event_id`): a redelivered event, in
//!    this batch or any later one, maps to the same item, and the entry is a pure function of the event, so
//!    re-putting it changes nothing.
//! 3. Rejected records go to quarantine and entries to the event log, concurrently, through [`deliver`].
//! 4. The checkpoint is the first record, in shard order, that is neither durably logged nor durably
//!    quarantined. Lambda retries from there; everything before it is done and is never reported.

use crate::delivery::{deliver, Delivery, RetryPolicy};

use crate::event::{Event, EventBody};
use crate::ports::{BatchSink, StoreError};
use crate::pseudonym::{IdKind, Pseudonymizer};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One record as the stream delivered it.
#[derive(Debug, Clone, Copy)]
pub struct SourceRecord<'a> {
    /// Position in the shard: the Kinesis sequence number. This is what a batch item failure reports.
    pub sequence_number: &'a str,
    pub partition_key: &'a str,
    pub data: &'a [u8],
    pub arrived_at: Option<DateTime<Utc>>,
}

/// An event ready for the log: key, index attributes and the canonical pseudonymized JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub session_id: String,
    pub event_id: String,
    pub event_type: String,
    /// RFC 3339 with millisecond precision in UTC, so it sorts lexicographically.
    pub occurred_at: String,
    /// Pseudonymous.
    pub user_id: Option<String>,
    /// Epoch seconds after which the item is past retention (the table's TTL attribute). Derived from the
    /// event time, never the ingest time, so a redelivery writes an identical item.
    pub expires_at: i64,
    /// The pseudonymized event as canonical JSON, in the schema version it arrived in.
    pub body: String,
}

impl LogEntry {
    pub fn key(&self) -> (&str, &str) {
        (&self.session_id, &self.event_id)
    }

    /// The entry for an already admitted (pseudonymized) event.
    pub fn of(event: &Event, expires_at: i64) -> Result<Self, serde_json::Error> {
        Ok(LogEntry {
            session_id: event.session_id.clone(),
            event_id: event.event_id.clone(),
            event_type: event.body.event_type().to_string(),
            occurred_at: event
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user_id: event.user_id.clone(),
            expires_at,
            body: serde_json::to_string(event)?,
        })
    }

    /// Decodes the stored body back into an event.
    pub fn event(&self) -> Result<Event, crate::event::DecodeError> {
        Event::decode(self.body.as_bytes(), usize::MAX)
    }

    /// Whether the entry is a decision (what the decision indexes hold).
    pub fn is_decision(&self) -> bool {
        self.event_type == "decision_served"
    }

    /// The decision-by-hour index key of a decision entry: `<hour>#<shard>` (see [`decision_hour_key`]).
    pub fn decision_hour(&self) -> Option<String> {
        if !self.is_decision() {
            return None;
        }
        let hour = self.occurred_at.get(..13)?;
        Some(decision_hour_key(hour, shard_of(&self.event_id)))
    }
}

/// The event log's decisions-by-hour index spreads each hour over this many partition keys, so that an
/// hour of decisions is not one hot partition (8 × ~1,000 writes/s). Readers query every shard.
pub const DECISION_HOUR_SHARDS: u32 = 8;

/// `<YYYY-MM-DDTHH>#<shard>`: an hour (UTC, the first 13 characters of RFC 3339) and a shard.
pub fn decision_hour_key(hour: &str, shard: u32) -> String {
    format!("{hour}#{shard}")
}

/// The hour of `t` as the index names it (`2026-11-30T05`).
pub fn hour_of(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

/// A stable shard for an event id (FNV-1a, so every reader and writer agrees without a dependency).
pub fn shard_of(event_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in event_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % DECISION_HOUR_SHARDS
}

/// Where the tombstones of erased users live (in the models bucket, beside the decision config).
pub const TOMBSTONES_KEY: &str = "erasure/tombstones.json";

/// Erased pseudonyms and sessions, each until an expiry (epoch seconds): ingest drops their events, so
/// a replay of the original records cannot bring an erased user back. A tombstone outlives the event
/// retention (an older event is refused as outside it anyway). The ids are kept only as digests
/// ([`tombstone_digest`]), so the tombstones themselves hold nothing of the person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstones {
    #[serde(default)]
    pub users: BTreeMap<String, i64>,
    #[serde(default)]
    pub sessions: BTreeMap<String, i64>,
}

/// The digest a tombstone keeps of an id: SHA-256 of `tombstone|<id>`, first 32 hex digits.
pub fn tombstone_digest(id: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(format!("tombstone|{id}").as_bytes())[..16])
}

impl Tombstones {
    /// Whether an admitted (pseudonymized) entry belongs to an erased user or session.
    pub fn blocks(&self, entry: &LogEntry, now: DateTime<Utc>) -> bool {
        if self.users.is_empty() && self.sessions.is_empty() {
            return false;
        }
        let live = |set: &BTreeMap<String, i64>, id: &str| {
            set.get(&tombstone_digest(id))
                .is_some_and(|e| *e > now.timestamp())
        };
        live(&self.sessions, &entry.session_id)
            || entry
                .user_id
                .as_deref()
                .is_some_and(|u| live(&self.users, u))
    }

    /// Whether a rejected (so never pseudonymized) record still names an erased user or session in its
    /// `user_id` or `session_id`: quarantining it would keep the erased person's raw data again.
    pub fn blocks_raw(
        &self,
        data: &[u8],
        pseudonymizer: &Pseudonymizer,
        now: DateTime<Utc>,
    ) -> bool {
        if self.users.is_empty() && self.sessions.is_empty() {
            return false;
        }
        let Ok(serde_json::Value::Object(v)) = serde_json::from_slice(data) else {
            return false;
        };
        let text = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        let live = |set: &BTreeMap<String, i64>, id: &str| {
            set.get(&tombstone_digest(id))
                .is_some_and(|e| *e > now.timestamp())
        };
        text("session_id").is_some_and(|s| live(&self.sessions, s))
            || text("user_id").is_some_and(|u| live(&self.users, &pseudonymizer.user_id(u)))
    }

    /// Adds (or extends) the tombstones of a user and their sessions.
    pub fn add<'a>(
        &mut self,
        user: &str,
        sessions: impl IntoIterator<Item = &'a String>,
        expires: i64,
    ) {
        let e = self.users.entry(tombstone_digest(user)).or_insert(expires);
        *e = (*e).max(expires);
        for s in sessions {
            let e = self.sessions.entry(tombstone_digest(s)).or_insert(expires);
            *e = (*e).max(expires);
        }
    }

    /// Drops the expired ones.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let t = now.timestamp();
        self.users.retain(|_, e| *e > t);
        self.sessions.retain(|_, e| *e > t);
    }
}

/// Why a record was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub field: Option<String>,
    pub detail: String,
    /// The payload as it may be kept, when the original must not be (a card number masked).
    pub redacted: Option<Vec<u8>>,
}

/// Admission rules: size, retention window and clock skew, plus the pseudonymization key.
#[derive(Debug, Clone)]
pub struct Admission {
    pub max_record_bytes: usize,
    /// How long events are kept, counted from their event time.
    pub retention: Duration,
    /// How far in the future an event time may be (producer clock skew) before it is rejected.
    pub max_future_skew: Duration,
    pub pseudonymizer: Pseudonymizer,
}

/// The largest record ingest accepts. Kinesis allows 1 MiB, but no v1 event needs more than a few KiB,
/// and a small cap keeps event-log items far from DynamoDB's 400 KB limit.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 32 * 1024;

impl Admission {
    /// Decodes, validates and pseudonymizes one record.
    pub fn admit(&self, data: &[u8], now: DateTime<Utc>) -> Result<LogEntry, Rejection> {
        let pans = crate::event::pan::find(data);
        if !pans.is_empty() {
            return Err(Rejection {
                reason: "card_number_detected",
                field: None,
                detail: format!(
                    "{} value(s) look like a card number (PAN); the payload is kept with them masked. \
                     Send the payment service's card fingerprint instead",
                    pans.len()
                ),
                redacted: Some(crate::event::pan::mask(data, &pans)),
            });
        }
        let mut event = Event::decode(data, self.max_record_bytes).map_err(|e| Rejection {
            reason: e.reason_code(),
            field: e.field().map(str::to_string),
            detail: e.to_string(),
            redacted: None,
        })?;
        let expires = event.occurred_at + self.retention;
        if expires <= now {
            return Err(Rejection {
                reason: "outside_retention",
                field: Some("occurred_at".into()),
                detail: format!(
                    "event time {} is older than the {}-day retention",
                    event.occurred_at.to_rfc3339(),
                    self.retention.num_days()
                ),
                redacted: None,
            });
        }
        if event.occurred_at > now + self.max_future_skew {
            return Err(Rejection {
                reason: "occurred_in_future",
                field: Some("occurred_at".into()),
                detail: format!(
                    "event time {} is more than {} s ahead of ingest time",
                    event.occurred_at.to_rfc3339(),
                    self.max_future_skew.num_seconds()
                ),
                redacted: None,
            });
        }
        self.pseudonymize(&mut event);
        LogEntry::of(&event, expires.timestamp()).map_err(|e| Rejection {
            reason: "invalid_field",
            field: None,
            detail: format!("event cannot be re-encoded: {e}"),
            redacted: None,
        })
    }

    /// Replaces every personal identifier the schema knows of with its keyed pseudonym.
    pub fn pseudonymize(&self, event: &mut Event) {
        let p = &self.pseudonymizer;
        if let Some(u) = event.user_id.as_mut() {
            *u = p.pseudonymize(IdKind::UserId, u);
        }
        if let Some(ip) = event.context.ip.as_mut() {
            *ip = p.pseudonymize(IdKind::Ip, ip);
        }
        if let Some(id) = event.context.device.as_mut().and_then(|d| d.id.as_mut()) {
            *id = p.pseudonymize(IdKind::Device, id);
        }
        match &mut event.body {
            EventBody::OrderPlaced(order) => {
                if let Some(email) = order.email.as_mut() {
                    *email = p.pseudonymize(IdKind::Email, email);
                }
            }
            EventBody::PaymentAttempted(payment) => {
                if let Some(card) = payment.card_fingerprint.as_mut() {
                    *card = p.pseudonymize(IdKind::Card, card);
                }
            }
            _ => {}
        }
    }
}

/// A rejected record as it is kept in quarantine: the reason, where it came from, and the original bytes.
///
/// The original payload may hold raw identifiers (that is why some records are unreadable), so the
/// quarantine queue and bucket are encrypted, access-restricted and expire after 14 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// Stable machine-readable code, e.g. `invalid_json`.
    pub reason: String,
    /// The offending field, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Human-readable explanation.
    pub detail: String,
    pub sequence_number: String,
    pub partition_key: String,
    /// The stream the record came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived_at: Option<DateTime<Utc>>,
    pub quarantined_at: DateTime<Utc>,
    pub payload_bytes: usize,
    /// The original payload, base64. Absent when it was too large for a message and is in `payload_ref`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// Where the original payload is stored (`s3://bucket/key`) when it is not inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_ref: Option<String>,
}

impl QuarantineRecord {
    /// The original payload, when it is inline.
    pub fn payload(&self) -> Option<Vec<u8>> {
        self.payload_base64
            .as_deref()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
    }
}

/// Counters for one batch, logged as one structured line.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    pub records: usize,
    /// Distinct entries durably written to the log.
    pub appended: usize,
    /// Records whose event was already in this batch.
    pub duplicates_in_batch: usize,
    /// Records durably quarantined.
    pub quarantined: usize,
    pub quarantined_by_reason: BTreeMap<String, usize>,
    /// Records handed back to Lambda for retry (from the checkpoint on).
    pub retry_from_checkpoint: usize,
    /// Records of an erased user or session, dropped (nothing of them is kept).
    pub erased: usize,
    pub log_write_requests: u64,
    pub log_write_retries: u64,
    pub quarantine_requests: u64,
}

/// Sums the counters of several batches (the local stream driver reports a whole run).
impl std::ops::AddAssign<&BatchCounts> for BatchCounts {
    fn add_assign(&mut self, c: &BatchCounts) {
        self.records += c.records;
        self.appended += c.appended;
        self.duplicates_in_batch += c.duplicates_in_batch;
        self.quarantined += c.quarantined;
        for (k, v) in &c.quarantined_by_reason {
            *self.quarantined_by_reason.entry(k.clone()).or_default() += v;
        }
        self.retry_from_checkpoint += c.retry_from_checkpoint;
        self.erased += c.erased;
        self.log_write_requests += c.log_write_requests;
        self.log_write_retries += c.log_write_retries;
        self.quarantine_requests += c.quarantine_requests;
    }
}

/// The result of one batch.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Index (into the batch) of the first record not durably handled; `None` when all are.
    pub checkpoint: Option<usize>,
    pub counts: BatchCounts,
    /// The store errors that stopped delivery, for logging.
    pub errors: Vec<StoreError>,
}

/// The ingest use case over its two ports.
pub struct Ingestor<L, Q> {
    pub admission: Admission,
    pub log: L,
    pub quarantine: Q,
    pub retry: RetryPolicy,
    /// Erased users and sessions whose events are dropped (refreshed by the function).
    pub tombstones: std::sync::RwLock<Tombstones>,
}

impl<L: BatchSink<LogEntry>, Q: BatchSink<QuarantineRecord>> Ingestor<L, Q> {
    /// Processes one batch; see the module docs. `source` names the stream for quarantine records.
    pub async fn ingest(
        &self,
        records: &[SourceRecord<'_>],
        source: Option<&str>,
        now: DateTime<Utc>,
    ) -> BatchOutcome {
        let mut counts = BatchCounts {
            records: records.len(),
            ..BatchCounts::default()
        };
        // Where each record's outcome lives: an entry in `entries` or a record in `rejected`.
        enum Target {
            Entry(usize),
            Rejected(usize),
            /// An erased user's or session's event: dropped, nothing kept.
            Erased,
        }
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut rejected: Vec<QuarantineRecord> = Vec::new();
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        let mut targets = Vec::with_capacity(records.len());
        // Read under the lock, released (at the end of the block) before anything is awaited.
        {
            let tombstones = self.tombstones.read().unwrap_or_else(|p| p.into_inner());
            for r in records {
                match self.admission.admit(r.data, now) {
                    Ok(entry) if tombstones.blocks(&entry, now) => {
                        counts.erased += 1;
                        targets.push(Target::Erased);
                    }
                    Ok(entry) => {
                        let key = (entry.session_id.clone(), entry.event_id.clone());
                        match seen.get(&key) {
                            Some(&pos) => {
                                counts.duplicates_in_batch += 1;
                                targets.push(Target::Entry(pos));
                            }
                            None => {
                                seen.insert(key, entries.len());
                                targets.push(Target::Entry(entries.len()));
                                entries.push(entry);
                            }
                        }
                    }
                    Err(_) if tombstones.blocks_raw(r.data, &self.admission.pseudonymizer, now) => {
                        counts.erased += 1;
                        targets.push(Target::Erased);
                    }
                    Err(rej) => {
                        rejected.push(QuarantineRecord {
                            reason: rej.reason.to_string(),
                            field: rej.field,
                            detail: rej.detail,
                            sequence_number: r.sequence_number.to_string(),
                            partition_key: r.partition_key.to_string(),
                            source: source.map(str::to_string),
                            arrived_at: r.arrived_at,
                            quarantined_at: now,
                            payload_bytes: r.data.len(),
                            payload_base64: Some(
                                base64::engine::general_purpose::STANDARD
                                    .encode(rej.redacted.as_deref().unwrap_or(r.data)),
                            ),
                            payload_ref: None,
                        });
                        targets.push(Target::Rejected(rejected.len() - 1));
                    }
                }
            }
        }

        let (logged, quarantined): (Delivery, Delivery) = futures::future::join(
            deliver(&self.log, &entries, &self.retry),
            deliver(&self.quarantine, &rejected, &self.retry),
        )
        .await;

        counts.appended = logged.accepted.iter().filter(|a| **a).count();
        counts.quarantined = quarantined.accepted.iter().filter(|a| **a).count();
        for (q, ok) in rejected.iter().zip(&quarantined.accepted) {
            if *ok {
                *counts
                    .quarantined_by_reason
                    .entry(q.reason.clone())
                    .or_default() += 1;
            }
        }
        counts.log_write_requests = logged.stats.requests;
        counts.log_write_retries = logged.stats.retries;
        counts.quarantine_requests = quarantined.stats.requests;

        let checkpoint = targets.iter().position(|t| match t {
            Target::Entry(i) => !logged.accepted[*i],
            Target::Rejected(i) => !quarantined.accepted[*i],
            Target::Erased => false,
        });
        counts.retry_from_checkpoint = checkpoint.map_or(0, |c| records.len() - c);
        BatchOutcome {
            checkpoint,
            counts,
            errors: logged.error.into_iter().chain(quarantined.error).collect(),
        }
    }
}

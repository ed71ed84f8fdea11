//! What the feature updater's writes cost, measured in memory: the REES46 replay and a skewed synthetic
//! load, through the real updater in batches the size the template's stream mapping delivers.
//!
//! Records are admitted as ingest admits them (validated, pseudonymized, so ids have their stored
//! length), appended to an in-memory log, and handed to [`FeatureUpdater::update`] a batch at a time, in
//! stream order. Every write is billed by [`checkout_domain::features::cost`] (item size, doubled in a
//! transaction) and per partition key, which is what DynamoDB throttles.

use crate::{replay::rees46_records, BoxError};
use checkout_domain::features::updater::{FeatureUpdater, UpdateCounts};
use checkout_domain::ingest::{Admission, LogEntry, DEFAULT_MAX_RECORD_BYTES};
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog};
use checkout_domain::ports::BatchSink;
use checkout_domain::pseudonym::Pseudonymizer;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The stream mapping's batch size in `template.yaml` (`FeatureUpdaterFunction`, `BatchSize`).
pub const TEMPLATE_BATCH_SIZE: usize = 1000;

/// The partition-key write limit DynamoDB documents: 1,000 write units per second.
pub const PARTITION_WCU_LIMIT: f64 = 1000.0;

/// What a measured run cost.
#[derive(Debug, Clone, Serialize)]
pub struct WriteCost {
    pub events: usize,
    pub batch_size: usize,
    pub batches: usize,
    pub counts: UpdateCounts,
    pub items_written_per_event: f64,
    pub write_units_per_event: f64,
    /// Write units per entity type (the first part of the partition key: `session`, `item`, …).
    pub write_units_by_entity: BTreeMap<String, u64>,
    /// The partition keys that took the most write units, most first.
    pub hottest: Vec<HotKey>,
}

/// One partition key's share of the writes.
#[derive(Debug, Clone, Serialize)]
pub struct HotKey {
    pub pk: String,
    pub write_units: u64,
    /// Of all write units in the run.
    pub share: f64,
    /// Write units per event of the whole stream.
    pub units_per_event: f64,
}

impl WriteCost {
    /// The hottest key's write rate when the whole stream runs at `events_per_second` (same batch size).
    pub fn hottest_rate(&self, events_per_second: f64) -> f64 {
        self.hottest
            .first()
            .map_or(0.0, |h| h.units_per_event * events_per_second)
    }
}

/// Runs `records` (raw event JSON, in stream order) through the updater in batches of `batch_size`.
pub async fn measure(records: &[Vec<u8>], batch_size: usize) -> Result<WriteCost, BoxError> {
    let admission = Admission {
        max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        retention: chrono::Duration::days(3650),
        max_future_skew: chrono::Duration::minutes(5),
        pseudonymizer: Pseudonymizer::new(b"write-cost-measurement-key-32-bytes")?,
    };
    let mut entries: Vec<LogEntry> = Vec::with_capacity(records.len());
    for r in records {
        // The admission clock is the event's own time, so any dataset's age is accepted.
        let at = serde_json::from_slice::<serde_json::Value>(r)?
            .get("occurred_at")
            .and_then(|v| v.as_str())
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or("a record without occurred_at")?;
        entries.push(
            admission
                .admit(r, at)
                .map_err(|e| format!("{}: {}", e.reason, e.detail))?,
        );
    }
    let updater = FeatureUpdater::new(
        MemoryLog::new(usize::MAX, Faults::default()),
        MemoryFeatureStore::new(Faults::default()),
    );
    let mut counts = UpdateCounts::default();
    let size = batch_size.max(1);
    let mut batches = 0;
    for batch in entries.chunks(size) {
        let refs: Vec<&LogEntry> = batch.iter().collect();
        updater.log.put(&refs).await?;
        let sessions: Vec<String> = batch.iter().map(|e| e.session_id.clone()).collect();
        let out = updater.update(&sessions).await;
        if !out.failed.is_empty() {
            return Err(format!("{} sessions failed", out.failed.len()).into());
        }
        counts += &out.counts;
        batches += 1;
    }
    let by_pk = updater.store.write_units_by_pk();
    let total: u64 = by_pk.values().sum();
    let mut by_entity: BTreeMap<String, u64> = BTreeMap::new();
    for (pk, u) in &by_pk {
        let entity = pk.split('#').next().unwrap_or(pk).to_string();
        *by_entity.entry(entity).or_default() += u;
    }
    let n = entries.len().max(1) as f64;
    let mut hottest: Vec<HotKey> = by_pk
        .into_iter()
        .map(|(pk, write_units)| HotKey {
            share: write_units as f64 / total.max(1) as f64,
            units_per_event: write_units as f64 / n,
            pk,
            write_units,
        })
        .collect();
    hottest.sort_by(|a, b| b.write_units.cmp(&a.write_units).then(a.pk.cmp(&b.pk)));
    hottest.truncate(10);
    Ok(WriteCost {
        events: entries.len(),
        batch_size: size,
        batches,
        items_written_per_event: counts.feature_items_written as f64 / n,
        write_units_per_event: counts.write_units as f64 / n,
        counts,
        write_units_by_entity: by_entity,
        hottest,
    })
}

/// The REES46 file's write cost (every row once, no duplicates).
pub async fn rees46(
    file: &Path,
    batch_size: usize,
    limit: Option<usize>,
) -> Result<WriteCost, BoxError> {
    let (records, _) = rees46_records(file, None, limit)?;
    let data: Vec<Vec<u8>> = records.into_iter().map(|r| r.data).collect();
    measure(&data, batch_size).await
}

//! What the feature updater's writes cost, measured in memory: the REES46 replay and a skewed synthetic
//! load, through the real updater in batches the size the template's stream mapping delivers.
//!
//! Records are admitted as ingest admits them (validated, pseudonymized, so ids have their stored
//! length), appended to an in-memory log, and handed to [`FeatureUpdater::update`] a batch at a time, in
//! stream order. Every write is billed by [`checkout_domain::features::cost`] (item size, doubled in a
//! transaction) and per partition key, which is what DynamoDB throttles.

use crate::{replay::rees46_records, BoxError};
use checkout_domain::features::updater::{FeatureUpdater, UpdateCounts};
use checkout_domain::features::ItemPageMode;
use checkout_domain::ingest::{Admission, LogEntry, DEFAULT_MAX_RECORD_BYTES};
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog};
use checkout_domain::ports::BatchSink;
use checkout_domain::pseudonym::Pseudonymizer;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
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
    /// The micro-batch plan's cost on the same events (REES46 only: its event times are real).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub micro_batch: Option<MicroBatchCost>,
}

/// What batch mode ([`ItemPageMode::Batch`]) writes for the same events, measured: the
/// updater in batch mode over the same batches (sessions, users with their experiment units, risk
/// profiles, review cases, the recovery schedule), and a batch run at the end of every `interval_minutes`
/// of event time over every event so far, through the production run's own code
/// ([`checkout_domain::features::batch::run_docs`]: each item or page that changed since the last run
/// written once, a plain put billed by its size). The runs compute the items and pages with
/// the rebuild's folds, which `sql/item_features.sql` and `sql/page_features.sql` equal.
#[derive(Debug, Clone, Serialize)]
pub struct MicroBatchCost {
    pub interval_minutes: i64,
    pub runs: usize,
    pub stream_units_per_event: f64,
    /// The stream path's write units in batch mode, per entity type.
    pub stream_units_by_entity: BTreeMap<String, u64>,
    /// Item and page writes over all runs.
    pub batch_writes: u64,
    pub batch_units_per_event: f64,
    pub total_units_per_event: f64,
}

/// The batch runs' writes and units for `entries`, one run at the end of every `interval` of event time.
pub async fn batch_runs(
    entries: &[LogEntry],
    interval: chrono::Duration,
) -> Result<(usize, u64, u64), BoxError> {
    use checkout_domain::features::batch::run_docs;
    use checkout_domain::features::rebuild::rebuild;
    use checkout_domain::features::{Doc, Key};
    let mut sorted: Vec<(chrono::DateTime<chrono::Utc>, &LogEntry)> = entries
        .iter()
        .filter_map(|e| e.event().ok().map(|ev| (ev.occurred_at, e)))
        .collect();
    sorted.sort_by_key(|(at, e)| (*at, e.event_id.clone()));
    let step = interval.num_seconds().max(1);
    let store = MemoryFeatureStore::new(Faults::default());
    let (mut runs, mut writes, mut units) = (0usize, 0u64, 0u64);
    let mut taken = 0;
    while taken < sorted.len() {
        // The run at the end of the interval holding the next event covers every event before it.
        let boundary = (sorted[taken].0.timestamp().div_euclid(step) + 1) * step;
        while taken < sorted.len() && sorted[taken].0.timestamp() < boundary {
            taken += 1;
        }
        let (docs, _) = rebuild(sorted[..taken].iter().map(|(_, e)| (*e).clone()).collect());
        let computed: BTreeMap<Key, Doc> = docs
            .into_iter()
            .filter(|(_, d)| matches!(d, Doc::Item(_) | Doc::Page(_)))
            .collect();
        let now = chrono::DateTime::from_timestamp(boundary, 0).ok_or("run time out of range")?;
        let done = run_docs(&store, &computed, now, 16)
            .await
            .map_err(|e| format!("batch run: {e}"))?;
        writes += done.written as u64;
        units += done.write_units;
        runs += 1;
    }
    Ok((runs, writes, units))
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

/// Runs `records` (raw event JSON, in stream order) through the updater in batches of `batch_size`, and
/// with `micro_batch`, projects the micro-batch plan's cost at that interval ([`micro_batch_cost`]).
pub async fn measure(
    records: &[Vec<u8>],
    batch_size: usize,
    micro_batch: Option<chrono::Duration>,
) -> Result<WriteCost, BoxError> {
    // Retention and clock skew wide enough for any dataset's age: the measurement admits every record.
    let admission = Admission {
        max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        retention: chrono::Duration::days(36_500),
        max_future_skew: chrono::Duration::days(36_500),
        pseudonymizer: Pseudonymizer::new(b"write-cost-measurement-key-32-bytes")?,
    };
    let now = chrono::Utc::now();
    let mut entries: Vec<LogEntry> = Vec::with_capacity(records.len());
    for r in records {
        entries.push(
            admission
                .admit(r, now)
                .map_err(|e| format!("{}: {}", e.reason, e.detail))?,
        );
    }
    let size = batch_size.max(1);
    let (counts, by_pk, batches) = run_updater(&entries, size, ItemPageMode::Stream).await?;
    let total: u64 = by_pk.values().sum();
    let by_entity = by_entity(&by_pk);
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
    let micro_batch = match micro_batch {
        None => None,
        Some(every) => {
            let (_, stream_pk, _) = run_updater(&entries, size, ItemPageMode::Batch).await?;
            let stream: u64 = stream_pk.values().sum();
            let (runs, batch_writes, batch_units) = batch_runs(&entries, every).await?;
            Some(MicroBatchCost {
                interval_minutes: every.num_minutes(),
                runs,
                stream_units_per_event: stream as f64 / n,
                stream_units_by_entity: self::by_entity(&stream_pk),
                batch_writes,
                batch_units_per_event: batch_units as f64 / n,
                total_units_per_event: (stream + batch_units) as f64 / n,
            })
        }
    };
    Ok(WriteCost {
        events: entries.len(),
        batch_size: size,
        batches,
        items_written_per_event: counts.feature_items_written as f64 / n,
        write_units_per_event: counts.write_units as f64 / n,
        micro_batch,
        counts,
        write_units_by_entity: by_entity,
        hottest,
    })
}

/// Runs `entries` through an in-memory updater in `mode`, `size` at a time: the counts, the write units
/// per partition key, and the number of batches.
async fn run_updater(
    entries: &[LogEntry],
    size: usize,
    mode: ItemPageMode,
) -> Result<(UpdateCounts, HashMap<String, u64>, usize), BoxError> {
    let mut updater = FeatureUpdater::new(
        MemoryLog::new(usize::MAX, Faults::default()),
        MemoryFeatureStore::new(Faults::default()),
    );
    updater.item_pages = mode;
    let mut counts = UpdateCounts::default();
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
    Ok((counts, updater.store.write_units_by_pk(), batches))
}

/// Write units per entity type (the first part of the partition key).
fn by_entity(by_pk: &HashMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (pk, u) in by_pk {
        *out.entry(pk.split('#').next().unwrap_or(pk).to_string())
            .or_default() += u;
    }
    out
}

/// The REES46 file's write cost (every row once, no duplicates).
pub async fn rees46(
    file: &Path,
    batch_size: usize,
    limit: Option<usize>,
) -> Result<WriteCost, BoxError> {
    let (records, _) = rees46_records(file, None, limit)?;
    let data: Vec<Vec<u8>> = records.into_iter().map(|r| r.data).collect();
    measure(
        &data,
        batch_size,
        Some(chrono::Duration::minutes(MICRO_BATCH_MINUTES)),
    )
    .await
}

/// The micro-batch plan's interval.
pub const MICRO_BATCH_MINUTES: i64 = 15;

/// The skewed synthetic load: `events` events of concurrent sessions (each 1 + a geometric number of
/// product views, mean 3.4 like the REES46 day; a tenth add a viewed product to the cart; a
/// thirtieth buy it), in stream order with every session spread over the whole stream (so a batch
/// holds about one event per session, as at a high event rate). Products follow a Zipf law over
/// 50,000 ids, except that one product, `hot`, takes `hot_share` of all views.
pub fn skewed_records(events: usize, hot_share: f64, seed: u64) -> Vec<Vec<u8>> {
    use checkout_domain::event::{
        CartItemAdded, Event, EventBody, Money, OrderLine, OrderPlaced, ProductViewed,
    };
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let products = 50_000usize;
    let mut cdf = Vec::with_capacity(products);
    let mut total = 0.0;
    for i in 0..products {
        total += 1.0 / ((i + 10) as f64).powf(1.1);
        cdf.push(total);
    }
    let pick = |rng: &mut StdRng| -> String {
        if rng.random_bool(hot_share) {
            return "hot".to_string();
        }
        let u = rng.random_range(0.0..total);
        format!("p{}", cdf.partition_point(|c| *c < u))
    };
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let span_ms = 600_000i64;
    let usd = |amount_minor| Money {
        amount_minor,
        currency: "USD".to_string(),
    };
    let mut all: Vec<Event> = Vec::with_capacity(events + 64);
    let mut s = 0usize;
    while all.len() < events {
        s += 1;
        let session = format!("skew-s{s}");
        let user = format!("skew-u{}", s / 2);
        let mut views = 1;
        while views < 40 && rng.random_bool(0.706) {
            views += 1;
        }
        let mut times: Vec<i64> = (0..views + 2)
            .map(|_| rng.random_range(0..span_ms))
            .collect();
        times.sort_unstable();
        let mut viewed = Vec::new();
        for (k, at) in times.iter().take(views).enumerate() {
            let product_id = pick(&mut rng);
            viewed.push(product_id.clone());
            all.push(Event {
                event_id: format!("{session}-v{k}"),
                schema_version: 1,
                occurred_at: start + chrono::Duration::milliseconds(*at),
                session_id: session.clone(),
                user_id: Some(user.clone()),
                context: Default::default(),
                body: EventBody::ProductViewed(ProductViewed {
                    product_id,
                    category_id: None,
                    category_code: None,
                    brand: None,
                    price: Some(usd(1999)),
                }),
            });
        }
        if rng.random_bool(0.1) {
            let product_id = viewed[rng.random_range(0..viewed.len())].clone();
            all.push(Event {
                event_id: format!("{session}-c"),
                schema_version: 1,
                occurred_at: start + chrono::Duration::milliseconds(times[views]),
                session_id: session.clone(),
                user_id: Some(user.clone()),
                context: Default::default(),
                body: EventBody::CartItemAdded(CartItemAdded {
                    unit_cost_minor: None,
                    product_id: product_id.clone(),
                    quantity: 1,
                    unit_price: usd(1999),
                    category_id: None,
                    category_code: None,
                    brand: None,
                }),
            });
            if rng.random_bool(0.33) {
                all.push(Event {
                    event_id: format!("{session}-o"),
                    schema_version: 1,
                    occurred_at: start + chrono::Duration::milliseconds(times[views + 1]),
                    session_id: session.clone(),
                    user_id: Some(user.clone()),
                    context: Default::default(),
                    body: EventBody::OrderPlaced(OrderPlaced {
                        order_id: format!("{session}-order"),
                        total: usd(1999),
                        lines: vec![OrderLine {
                            product_id,
                            quantity: 1,
                            unit_price_minor: 1999,
                        }],
                        email: None,
                    }),
                });
            }
        }
    }
    all.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    all.truncate(events);
    all.iter()
        .filter_map(|e| serde_json::to_vec(e).ok())
        .collect()
}

/// The skew test's reading: the hottest partition key's write rate at `events_per_second`.
#[derive(Debug, Clone, Serialize)]
pub struct SkewReading {
    pub events_per_second: f64,
    pub hot_share: f64,
    pub hottest_pk: Option<String>,
    pub hottest_wcu_per_second: f64,
    pub limit_wcu_per_second: f64,
    pub under_limit: bool,
    pub cost: WriteCost,
}

/// Measures the skewed load and scales the hottest key to `events_per_second`.
pub async fn skew(
    events: usize,
    hot_share: f64,
    seed: u64,
    batch_size: usize,
    events_per_second: f64,
) -> Result<SkewReading, BoxError> {
    let cost = measure(&skewed_records(events, hot_share, seed), batch_size, None).await?;
    let rate = cost.hottest_rate(events_per_second);
    Ok(SkewReading {
        events_per_second,
        hot_share,
        hottest_pk: cost.hottest.first().map(|h| h.pk.clone()),
        hottest_wcu_per_second: rate,
        limit_wcu_per_second: PARTITION_WCU_LIMIT,
        under_limit: rate < PARTITION_WCU_LIMIT,
        cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkout_domain::event::{Event, EventBody, ProductViewed};

    fn view(id: &str, session: &str, minute: i64, product: &str) -> LogEntry {
        let event = Event {
            event_id: id.into(),
            schema_version: 1,
            // A multiple of 15 minutes.
            occurred_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")
                + chrono::Duration::minutes(minute),
            session_id: session.into(),
            user_id: None,
            context: Default::default(),
            body: EventBody::ProductViewed(ProductViewed {
                product_id: product.into(),
                category_id: None,
                category_code: None,
                brand: None,
                price: None,
            }),
        };
        LogEntry::of(&event, 4_000_000_000).expect("entry")
    }

    #[test]
    fn a_run_writes_each_item_and_page_that_changed_since_the_last_run_once() {
        // Run 1 (minutes 0–14): a and b viewed, a twice. Run 2 (15–29): b again. Run 3 (30–44): nothing
        // new for a or b, c viewed.
        let entries = vec![
            view("e1", "s1", 1, "a"),
            view("e2", "s1", 2, "a"),
            view("e3", "s2", 3, "b"),
            view("e4", "s3", 20, "b"),
            view("e5", "s4", 31, "c"),
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (runs, writes, units) = rt
            .block_on(batch_runs(&entries, chrono::Duration::minutes(15)))
            .expect("runs");
        assert_eq!(runs, 3);
        // Run 1: items a, b and their pages; run 2: item b and its page (b's exit page too); run 3: item
        // c and its page. Each small item is one unit.
        assert_eq!(writes, 4 + 2 + 2);
        assert_eq!(units, writes);
    }
}

//! Replaying a dataset into the event stream: REES46 rows → v1 events → `PutRecords`, with a progress bar.

use crate::local::stack::LocalStack;
use crate::{rees46, BoxError};
use checkout_aws::kinesis::KinesisProducer;
use checkout_domain::delivery::{deliver, RetryPolicy};
use checkout_domain::ports::OutRecord;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::Path;

/// What a replay sent.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReplayReport {
    pub rows: usize,
    /// Rows that could not be mapped to a v1 event (reported, not sent).
    pub rows_unmapped: usize,
    pub distinct_event_ids: usize,
    /// Records put, including deliberate duplicates.
    pub records_put: usize,
    pub put_records_calls: u64,
    pub put_records_retries: u64,
    /// The first and last event times replayed.
    pub first_event_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_event_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The v1 records for the REES46 file: one per row, every `dup_every`-th also sent twice in a row.
pub fn rees46_records(
    file: &Path,
    dup_every: Option<usize>,
    limit: Option<usize>,
) -> Result<(Vec<OutRecord>, ReplayReport), BoxError> {
    let mut rows = rees46::read_rows(file)?;
    if let Some(n) = limit {
        rows.truncate(n);
    }
    let mut report = ReplayReport {
        rows: rows.len(),
        ..ReplayReport::default()
    };
    let mut ids = std::collections::HashSet::new();
    let mut records = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let event = match row.to_event(i as u64 + 1) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("skipping: {e}");
                report.rows_unmapped += 1;
                continue;
            }
        };
        ids.insert(event.event_id.clone());
        let at = Some(event.occurred_at);
        report.first_event_at = report.first_event_at.min(at).or(at);
        report.last_event_at = report.last_event_at.max(at);
        let record = OutRecord {
            partition_key: event.session_id.clone(),
            data: serde_json::to_vec(&event)?,
        };
        if dup_every.is_some_and(|n| n > 0 && (i + 1) % n == 0) {
            records.push(record.clone());
        }
        records.push(record);
    }
    report.distinct_event_ids = ids.len();
    report.records_put = records.len();
    Ok((records, report))
}

/// Puts the REES46 events into the stream with a progress bar.
pub async fn replay(
    stack: &LocalStack,
    file: &Path,
    dup_every: Option<usize>,
    limit: Option<usize>,
) -> Result<ReplayReport, BoxError> {
    let (records, mut report) = rees46_records(file, dup_every, limit)?;
    let sdk = stack.sdk_config().await;
    let producer = KinesisProducer {
        client: aws_sdk_kinesis::Client::new(&sdk),
        stream: stack.resource("EventStream")?.name.clone(),
    };
    let bar = ProgressBar::new(records.len() as u64).with_style(ProgressStyle::with_template(
        "replay {bar:40} {pos}/{len} records {per_sec} eta {eta}",
    )?);
    let retry = RetryPolicy::default();
    // Sent in call-sized slices so the bar moves; order within the stream is per partition key anyway.
    for chunk in records.chunks(checkout_aws::kinesis::PUT_RECORDS_MAX) {
        let d = deliver(&producer, chunk, &retry).await;
        report.put_records_calls += d.stats.requests;
        report.put_records_retries += d.stats.retries;
        if let Some(e) = d.error {
            bar.abandon();
            return Err(Box::new(e));
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok(report)
}

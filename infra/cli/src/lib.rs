//! The operator CLI's operations, as a library so the integration tests run exactly what the CLI runs.

use checkout_shared::aws::dynamo::count_items;
use checkout_shared::aws::kinesis::{KinesisProducer, OutRecord};
use checkout_shared::aws::local_esm::{DrainReport, KinesisMapping};
use checkout_shared::aws::stack::LocalStack;
use checkout_shared::delivery::{deliver, RetryPolicy};
use checkout_shared::ingest::BatchCounts;
use checkout_shared::rees46;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn schema() -> Result<(), BoxError> {
    println!(
        "{}",
        serde_json::to_string_pretty(&checkout_shared::event::json_schema())?
    );
    Ok(())
}

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
    for chunk in records.chunks(checkout_shared::aws::kinesis::PUT_RECORDS_MAX) {
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

/// What a local ingest run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestRun {
    pub stream: DrainReport,
    pub counts: BatchCounts,
}

/// Runs the real ingest handler over the stream, as Lambda's event source mapping would.
pub async fn drive_ingest(stack: &LocalStack) -> Result<IngestRun, BoxError> {
    let sdk = stack.sdk_config().await;
    let function = ingest::Function::new(&stack.env("IngestFunction")?, &sdk)
        .await
        .map_err(|e| -> BoxError { e.to_string().into() })?;
    drive_ingest_with(stack, &sdk, &function).await
}

/// [`drive_ingest`] with a given function (tests pass one whose clients inject faults).
pub async fn drive_ingest_with<L, Q>(
    stack: &LocalStack,
    sdk: &aws_config::SdkConfig,
    function: &ingest::Function<L, Q>,
) -> Result<IngestRun, BoxError>
where
    L: checkout_shared::delivery::BatchSink<checkout_shared::ingest::LogEntry>,
    Q: checkout_shared::delivery::BatchSink<checkout_shared::ingest::QuarantineRecord>,
{
    let source = stack.event_source("IngestFunction", "Kinesis")?;
    let stream = stack.resource(source.source.as_deref().unwrap_or("EventStream"))?;
    let on_failure = stack
        .resource("IngestFailureQueue")
        .ok()
        .and_then(|r| r.url.clone())
        .map(|url| (aws_sdk_sqs::Client::new(sdk), url));
    let mapping = KinesisMapping {
        kinesis: aws_sdk_kinesis::Client::new(sdk),
        stream_name: stream.name.clone(),
        stream_arn: stream.arn.clone(),
        batch_size: source.batch_size,
        max_retries: source.maximum_retry_attempts.unwrap_or(10),
        on_failure,
    };
    let totals = std::cell::RefCell::new(BatchCounts::default());
    let report = mapping
        .drain(|event| {
            let totals = &totals;
            async move {
                let (response, c) = function.process(event, chrono::Utc::now()).await;
                *totals.borrow_mut() += &c;
                Ok(response)
            }
        })
        .await?;
    Ok(IngestRun {
        stream: report,
        counts: totals.into_inner(),
    })
}

/// The demo summary written to `out/demo-summary.json`.
#[derive(Debug, Serialize)]
pub struct DemoSummary {
    pub dataset: String,
    /// Records the ingest function read from the stream (re-deliveries after a failure included).
    pub events_read: usize,
    /// Event-log writes that succeeded. A cross-batch redelivery re-puts an identical item, which
    /// counts here but changes nothing.
    pub events_appended: usize,
    /// Records whose event was already in the same batch, skipped before writing.
    pub duplicates_skipped: usize,
    pub quarantined: usize,
    pub quarantined_by_reason: std::collections::BTreeMap<String, usize>,
    /// Items in the event log after the run (a scan).
    pub event_log_items: usize,
    pub replay: ReplayReport,
    pub stream: DrainReport,
    pub dynamodb_write_requests: u64,
    pub dynamodb_write_requests_per_event: f64,
    pub timings_seconds: std::collections::BTreeMap<String, f64>,
}

/// Replay, ingest, count, summarise.
pub async fn demo(stack: &LocalStack, file: &Path, out: &Path) -> Result<(), BoxError> {
    let mut timings = std::collections::BTreeMap::new();
    let t = Instant::now();
    println!("1/3 replaying {} into Kinesis …", file.display());
    let replay = replay(stack, file, None, None).await?;
    timings.insert("replay".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("2/3 driving the ingest handler from the stream, batch by batch …");
    let run = drive_ingest(stack).await?;
    timings.insert("ingest".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("3/3 reading the event log back …");
    let sdk = stack.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let event_log_items = count_items(&ddb, &stack.resource("EventLogTable")?.name).await?;
    timings.insert("verify".to_string(), t.elapsed().as_secs_f64());

    let c = &run.counts;
    let summary = DemoSummary {
        dataset: file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        events_read: c.records,
        events_appended: c.appended,
        duplicates_skipped: c.duplicates_in_batch,
        quarantined: c.quarantined,
        quarantined_by_reason: c.quarantined_by_reason.clone(),
        event_log_items,
        dynamodb_write_requests: c.log_write_requests,
        dynamodb_write_requests_per_event: c.log_write_requests as f64
            / event_log_items.max(1) as f64,
        replay,
        stream: run.stream,
        timings_seconds: timings,
    };
    std::fs::create_dir_all(out)?;
    let path = out.join("demo-summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
    print_summary(&summary);
    println!("summary written to {}", path.display());
    if summary.event_log_items != summary.replay.distinct_event_ids {
        return Err(format!(
            "the event log holds {} items but the replay had {} distinct events",
            summary.event_log_items, summary.replay.distinct_event_ids
        )
        .into());
    }
    Ok(())
}

fn print_summary(s: &DemoSummary) {
    println!();
    println!("checkout-ai demo: {}", s.dataset);
    println!("  rows replayed                {:>8}", s.replay.rows);
    println!(
        "  distinct events (by id)      {:>8}",
        s.replay.distinct_event_ids
    );
    println!(
        "  records read by ingest       {:>8}  in {} invocations over {} shards",
        s.events_read, s.stream.invocations, s.stream.shards
    );
    println!("  appended to the event log    {:>8}", s.events_appended);
    println!("  duplicates skipped in batch  {:>8}", s.duplicates_skipped);
    println!(
        "  quarantined                  {:>8}  {:?}",
        s.quarantined, s.quarantined_by_reason
    );
    println!("  event log items              {:>8}", s.event_log_items);
    println!(
        "  BatchWriteItem requests      {:>8}  ({:.4} per event)",
        s.dynamodb_write_requests, s.dynamodb_write_requests_per_event
    );
    for (phase, secs) in &s.timings_seconds {
        println!("  {phase:<28} {secs:>8.1} s");
    }
}

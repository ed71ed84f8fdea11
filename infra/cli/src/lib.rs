//! The operator CLI's operations, as a library so the integration tests run exactly what the CLI runs.

pub mod census;
pub mod demo_loop;
pub mod evaluate;
pub mod local;
pub mod model;
pub mod rees46;

use crate::census::{count_items, entity_census, scan_features};
use crate::local::esm::{DrainReport, DynamoStreamMapping, KinesisMapping, Positions};
use crate::local::stack::LocalStack;
use checkout_aws::features::DynamoFeatureStore;
use checkout_aws::kinesis::KinesisProducer;
use checkout_domain::delivery::{deliver, RetryPolicy};
use checkout_domain::features::rebuild::{count_by_entity, diff, rebuild, Difference};
use checkout_domain::features::updater::UpdateCounts;
use checkout_domain::features::{Doc, Key};
use checkout_domain::ingest::BatchCounts;
use checkout_domain::ports::OutRecord;
use checkout_domain::ports::{FeatureReader, FeatureWriter, SessionLog, Stored};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn schema() -> Result<(), BoxError> {
    println!(
        "{}",
        serde_json::to_string_pretty(&checkout_domain::event::json_schema())?
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

/// What a local ingest run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestRun {
    pub stream: DrainReport,
    pub counts: BatchCounts,
}

/// Runs the real ingest handler over the stream, as Lambda's event source mapping would.
pub async fn drive_ingest(stack: &LocalStack) -> Result<IngestRun, BoxError> {
    drive_ingest_after(stack, &Positions::new()).await
}

/// [`drive_ingest`], resuming each shard after where a previous run stopped.
pub async fn drive_ingest_after(
    stack: &LocalStack,
    from: &Positions,
) -> Result<IngestRun, BoxError> {
    let sdk = stack.sdk_config().await;
    let function = ingest::Function::new(&stack.env("IngestFunction")?, &sdk)
        .await
        .map_err(|e| -> BoxError { e.to_string().into() })?;
    drive_ingest_with(stack, &sdk, &function, from).await
}

/// [`drive_ingest`] with a given function (tests pass one whose clients inject faults).
pub async fn drive_ingest_with<L, Q>(
    stack: &LocalStack,
    sdk: &aws_config::SdkConfig,
    function: &ingest::Function<L, Q>,
    from: &Positions,
) -> Result<IngestRun, BoxError>
where
    L: checkout_domain::ports::BatchSink<checkout_domain::ingest::LogEntry>,
    Q: checkout_domain::ports::BatchSink<checkout_domain::ingest::QuarantineRecord>,
{
    let source = stack.event_source("IngestFunction", "Kinesis")?;
    let stream = stack.resource(source.source.as_deref().unwrap_or("EventStream"))?;
    let on_failure = stack.on_failure_queue(source, sdk);
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
        .drain(from, |event| {
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

/// What a local feature-updater run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FeaturesRun {
    pub stream: DrainReport,
    pub counts: UpdateCounts,
    /// Sessions handed back to Lambda (retried by the driver) over the run.
    pub failed_sessions: usize,
}

/// Runs the real feature-updater handler over the event log's DynamoDB stream, as Lambda's event source
/// mapping would, applying the template's filter (moto does not).
pub async fn drive_features(stack: &LocalStack) -> Result<FeaturesRun, BoxError> {
    drive_features_after(stack, &Positions::new()).await
}

/// [`drive_features`], resuming each shard after where a previous run stopped.
pub async fn drive_features_after(
    stack: &LocalStack,
    from: &Positions,
) -> Result<FeaturesRun, BoxError> {
    let sdk = stack.sdk_config().await;
    let function = feature_updater::Function::new(&stack.env("FeatureUpdaterFunction")?, &sdk)
        .map_err(|e| -> BoxError { e.to_string().into() })?;
    drive_features_with(stack, &sdk, &function, from).await
}

/// [`drive_features`] with a given function.
pub async fn drive_features_with<L: SessionLog, S: FeatureWriter>(
    stack: &LocalStack,
    sdk: &aws_config::SdkConfig,
    function: &feature_updater::Function<L, S>,
    from: &Positions,
) -> Result<FeaturesRun, BoxError> {
    let source = stack.event_source("FeatureUpdaterFunction", "DynamoDB")?;
    let table = stack.resource(source.source.as_deref().unwrap_or("EventLogTable"))?;
    let stream_arn = table
        .stream_arn
        .clone()
        .ok_or("the event log table has no stream")?;
    let on_failure = stack.on_failure_queue(source, sdk);
    let mapping = DynamoStreamMapping {
        streams: aws_sdk_dynamodbstreams::Client::new(sdk),
        stream_arn,
        batch_size: source.batch_size,
        max_retries: source.maximum_retry_attempts.unwrap_or(10),
        event_names: source.event_names()?,
        on_failure,
    };
    let totals = std::cell::RefCell::new(FeaturesRun::default());
    let report = mapping
        .drain(from, |event| {
            let totals = &totals;
            async move {
                let (response, c) = function.process(event).await;
                let mut t = totals.borrow_mut();
                t.counts += &c;
                t.failed_sessions += response.batch_item_failures.len();
                Ok(response)
            }
        })
        .await?;
    let mut run = totals.into_inner();
    run.stream = report;
    Ok(run)
}

/// How the live features table compares with a rebuild from the event log.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub log_entries: usize,
    pub unreadable_events: usize,
    pub expected_items: usize,
    pub live_items: usize,
    pub expected_by_entity: std::collections::BTreeMap<String, usize>,
    pub live_by_entity: std::collections::BTreeMap<String, usize>,
    pub differences: usize,
    /// The first few differences, in key order.
    pub sample: Vec<Difference>,
}

/// Recomputes every projection from the event log in memory and diffs it against the live table.
pub async fn rebuild_features(stack: &LocalStack) -> Result<RebuildReport, BoxError> {
    let (ddb, env) = feature_tables(stack).await?;
    let log = crate::census::scan_log(&ddb, env.required("EVENT_LOG_TABLE")?).await?;
    let live = scan_features(&ddb, env.required("FEATURES_TABLE")?).await?;
    Ok(compare(log, &live))
}

/// A DynamoDB client for the local stack and the feature updater's environment (which names the event
/// log and the features table).
pub async fn feature_tables(
    stack: &LocalStack,
) -> Result<(aws_sdk_dynamodb::Client, checkout_aws::Env), BoxError> {
    let sdk = stack.sdk_config().await;
    Ok((
        aws_sdk_dynamodb::Client::new(&sdk),
        stack.env("FeatureUpdaterFunction")?,
    ))
}

/// The rebuild of `log` compared with `live`.
pub fn compare(
    log: Vec<checkout_domain::ingest::LogEntry>,
    live: &std::collections::BTreeMap<Key, Doc>,
) -> RebuildReport {
    let log_entries = log.len();
    let (expected, unreadable) = rebuild(log);
    let differences = diff(&expected, live);
    RebuildReport {
        log_entries,
        unreadable_events: unreadable.len(),
        expected_items: expected.len(),
        live_items: live.len(),
        expected_by_entity: count_by_entity(expected.values()),
        live_by_entity: count_by_entity(live.values()),
        differences: differences.len(),
        sample: differences.into_iter().take(5).collect(),
    }
}

/// The demo summary's `features` object.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturesSummary {
    /// Items in the features table per entity type.
    pub items_by_entity: std::collections::BTreeMap<String, usize>,
    pub run: FeaturesRun,
    /// Per event in the log: items read from the log and from the features table, items written.
    pub log_items_read_per_event: f64,
    pub feature_items_read_per_event: f64,
    pub feature_items_written_per_event: f64,
    pub events_per_second: f64,
    /// The session with the most events, as the scorer would read it.
    pub example_session: Option<checkout_domain::features::SessionFeatures>,
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
    pub features: FeaturesSummary,
    pub model: ModelSummary,
    pub decisions: demo_loop::DecisionsSummary,
    /// The decisions' events, back through Kinesis, ingest and the feature updater.
    pub decision_events: FlowBack,
    pub experiment: demo_loop::ExperimentSummary,
    pub report: demo_loop::ReportSummary,
    pub timings_seconds: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub sessions: usize,
    pub sessions_with_order: usize,
    pub version: String,
    pub cv_mean_auc: f64,
    pub holdout_auc: f64,
    pub promoted: bool,
    pub promotion_reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowBack {
    pub events_appended: usize,
    pub quarantined: usize,
    pub experiment_units_written: usize,
}

/// Replay, ingest, count, summarise.
pub async fn demo(stack: &LocalStack, file: &Path, out: &Path) -> Result<(), BoxError> {
    let mut timings = std::collections::BTreeMap::new();
    let t = Instant::now();
    println!("1/8 replaying {} into Kinesis …", file.display());
    let replay = replay(stack, file, None, None).await?;
    timings.insert("replay".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("2/8 driving the ingest handler from the stream, batch by batch …");
    let run = drive_ingest(stack).await?;
    timings.insert("ingest".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("3/8 driving the feature updater from the event log's stream (INSERTs only) …");
    let features_run = drive_features(stack).await?;
    let features_secs = t.elapsed().as_secs_f64();
    timings.insert("features".to_string(), features_secs);

    let t = Instant::now();
    println!("4/8 training a model on the event log's sessions and promoting it …");
    let model = train_and_promote(stack, out).await?;
    timings.insert("model".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let visits = demo_loop::cart_visits(file)?;
    println!(
        "5/8 a storefront asks the scorer for {} decisions (each session that reaches the cart), through the HTTP API event …",
        visits.len()
    );
    demo_loop::configure_experiment(stack).await?;
    let sdk = stack.sdk_config().await;
    let scorer = scorer::Scorer::new(&stack.env("ScorerFunction")?, &sdk)
        .await
        .map_err(|e| e.to_string())?;
    let decisions = demo_loop::storefront(&scorer, &visits).await?;
    timings.insert("decisions".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("6/8 decision events back through Kinesis, ingest and the feature updater …");
    let ingest_back = drive_ingest_after(stack, &run.stream.positions).await?;
    let features_back = drive_features_after(stack, &features_run.stream.positions).await?;
    timings.insert("decisions_flow_back".to_string(), t.elapsed().as_secs_f64());
    let decision_events = FlowBack {
        events_appended: ingest_back.counts.appended,
        quarantined: ingest_back.counts.quarantined,
        experiment_units_written: features_back.counts.feature_items_written,
    };

    let t = Instant::now();
    println!("7/8 the experiment evaluator over the window …");
    let last_exposure = visits
        .iter()
        .map(|v| v.at)
        .max()
        .unwrap_or_else(chrono::Utc::now);
    let (experiment, report) = demo_loop::evaluate(stack, last_exposure, out).await?;
    timings.insert("evaluate".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("8/8 reading the event log and the features table back …");
    let sdk = stack.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let event_log_items = count_items(&ddb, &stack.resource("EventLogTable")?.name).await?;
    let features_table = &stack.resource("FeaturesTable")?.name;
    let (items_by_entity, busiest) = entity_census(&ddb, features_table).await?;
    let example_session = match busiest {
        None => None,
        Some(id) => {
            let store = DynamoFeatureStore {
                client: ddb.clone(),
                table: features_table.clone(),
            };
            match store
                .get_many(&[Key::session(&id)])
                .await?
                .remove(&Key::session(&id))
            {
                Some(Stored {
                    doc: Doc::Session(s),
                    ..
                }) => Some(s),
                _ => None,
            }
        }
    };
    timings.insert("verify".to_string(), t.elapsed().as_secs_f64());
    let per_event = |n: usize| n as f64 / event_log_items.max(1) as f64;
    let fc = &features_run.counts;
    let features = FeaturesSummary {
        items_by_entity,
        log_items_read_per_event: per_event(fc.log_entries_read),
        feature_items_read_per_event: per_event(fc.feature_items_read),
        feature_items_written_per_event: per_event(fc.feature_items_written),
        events_per_second: event_log_items as f64 / features_secs.max(1e-9),
        example_session,
        run: features_run,
    };

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
        features,
        model,
        decisions,
        decision_events,
        experiment,
        report,
        timings_seconds: timings,
    };
    std::fs::create_dir_all(out)?;
    let path = out.join("demo-summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
    print_summary(&summary);
    println!("summary written to {}", path.display());
    if summary.features.run.failed_sessions > 0 {
        return Err(format!(
            "the feature updater handed back {} sessions",
            summary.features.run.failed_sessions
        )
        .into());
    }
    let expected = summary.replay.distinct_event_ids + summary.decision_events.events_appended;
    if summary.event_log_items != expected {
        return Err(format!(
            "the event log holds {} items but the replay had {} distinct events and the decisions {}",
            summary.event_log_items,
            summary.replay.distinct_event_ids,
            summary.decision_events.events_appended
        )
        .into());
    }
    if summary.experiment.srm_alarm {
        return Err(format!(
            "sample ratio mismatch in the A/A experiment (p = {:.2e}): assignment or exposure logging is broken",
            summary.experiment.srm_p_value
        )
        .into());
    }
    let units: u64 = summary.experiment.units_per_arm.values().sum();
    if units != summary.decisions.users as u64 {
        return Err(format!(
            "the report counts {units} units but the storefront asked for {} users: exposures were lost or doubled on the way back",
            summary.decisions.users
        )
        .into());
    }
    if summary.decisions.not_ok > 0 {
        return Err(format!(
            "{} decisions were not answered 200",
            summary.decisions.not_ok
        )
        .into());
    }
    Ok(())
}

/// Exports the log's sessions, trains on them, publishes the model and runs the promotion rule.
async fn train_and_promote(stack: &LocalStack, out: &Path) -> Result<ModelSummary, BoxError> {
    let csv = out.join("sessions.csv");
    let export = model::export_sessions(stack, &csv).await?;
    let artifact = model::train_file(
        &csv,
        checkout_domain::model::DEFAULT_MODEL_NAME,
        None,
        chrono::Utc::now(),
    )?;
    let store = model::registry_store(stack).await?;
    checkout_domain::model::registry::publish(&store, &artifact).await?;
    let version = artifact.version.clone();
    let record = model::promote(
        stack,
        checkout_domain::model::DEFAULT_MODEL_NAME,
        &version,
        None,
        None,
    )
    .await?;
    Ok(ModelSummary {
        sessions: export.sessions,
        sessions_with_order: export.with_order,
        version,
        cv_mean_auc: artifact.metrics.cross_validation.mean_auc,
        holdout_auc: artifact.metrics.holdout.auc,
        promoted: record.pointer_moved,
        promotion_reason: record.decision.reason,
    })
}

fn print_summary(s: &DemoSummary) {
    println!();
    println!("checkout-ai demo: the whole loop");
    println!(
        "  model {} trained on {} sessions ({} with an order): CV AUC {:.4}, holdout AUC {:.4}; promoted: {} ({})",
        s.model.version,
        s.model.sessions,
        s.model.sessions_with_order,
        s.model.cv_mean_auc,
        s.model.holdout_auc,
        s.model.promoted,
        s.model.promotion_reason
    );
    let d = &s.decisions;
    println!(
        "  decisions {} for {} users (by action {:?}, by variant {:?}), not 200: {}",
        d.total, d.users, d.by_action, d.by_variant, d.not_ok
    );
    println!(
        "  degraded {} {:?} (a safe `none` answered within the budget)",
        d.degraded, d.degraded_by_reason
    );
    println!(
        "  decision events back: {} logged, {} quarantined, {} feature items written",
        s.decision_events.events_appended,
        s.decision_events.quarantined,
        s.decision_events.experiment_units_written
    );
    let e = &s.experiment;
    println!(
        "  experiment {}: units {:?}, SRM p = {:.4}{}",
        e.id,
        e.units_per_arm,
        e.srm_p_value,
        if e.srm_alarm {
            " ALARM"
        } else {
            " (no mismatch)"
        }
    );
    println!(
        "    {:<22} {:<10} {:>9} {:>9} {:>11}  significant",
        "metric", "arm", "effect", "p", "adjusted p"
    );
    let p = |v: &serde_json::Value| {
        v.as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{x:.3}"))
    };
    for (metric, arms) in &e.p_values {
        for (arm, c) in arms.as_object().into_iter().flatten() {
            println!(
                "    {metric:<22} {arm:<10} {:>9} {:>9} {:>11}  {}",
                c["effect_text"].as_str().unwrap_or("-"),
                p(&c["p_value"]),
                p(&c["adjusted_p_value"]),
                match (c["significant"].as_bool(), c["error"].as_str()) {
                    (_, Some(error)) => format!("no ({error})"),
                    (Some(true), _) => "YES".to_string(),
                    _ => "no".to_string(),
                }
            );
        }
    }
    println!("  {}", e.reading);
    println!("  report: {}", e.recommendation);
    println!(
        "  report in S3 s3://{}/{} (and .html); copied to {} and {}",
        s.report.s3_bucket, s.report.s3_key, s.report.json, s.report.html
    );
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
    let f = &s.features;
    println!(
        "  feature updater              {:>8}  invocations, {} sessions projected ({} already current)",
        f.run.stream.invocations, f.run.counts.sessions, f.run.counts.sessions_current
    );
    println!(
        "  per event: log items read {:.2}, feature items read {:.2}, written {:.2}; {:.0} events/s",
        f.log_items_read_per_event,
        f.feature_items_read_per_event,
        f.feature_items_written_per_event,
        f.events_per_second
    );
    println!("  features table items by entity:");
    for (entity, n) in &f.items_by_entity {
        println!("    {entity:<26} {n:>8}");
    }
    println!("  (check them against a rebuild from the log: checkout-ai rebuild-features)");
    if let Some(session) = &f.example_session {
        println!("  example session (the one with the most events):");
        let text = serde_json::to_string_pretty(session).unwrap_or_default();
        for line in text.lines() {
            println!("    {line}");
        }
    }
    for (phase, secs) in &s.timings_seconds {
        println!("  {phase:<28} {secs:>8.1} s");
    }
}

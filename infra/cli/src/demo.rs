//! `make demo`: the whole loop on the local stack with real data. The first half (replay, ingest,
//! features, model) is here; the second (decisions, flow back, evaluation) is in [`crate::demo_loop`].

use crate::census::{count_items, entity_census};
use crate::drivers::{
    drive_features, drive_features_after, drive_ingest, drive_ingest_after, FeaturesRun,
};
use crate::local::esm::DrainReport;
use crate::local::stack::LocalStack;
use crate::replay::{replay, ReplayReport};
use crate::{demo_loop, model, BoxError};
use checkout_aws::features::DynamoFeatureStore;
use checkout_domain::features::batch::RunCounts;
use checkout_domain::features::{Doc, Key};
use checkout_domain::ports::{FeatureReader, Stored};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

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
    /// DynamoDB write units per event, by item size and transaction (`features::cost`): the feature
    /// updater's over the replay, plus every batch run's in batch mode.
    pub write_units_per_event: f64,
    pub stream_write_units_per_event: f64,
    pub batch_write_units_per_event: f64,
    /// Who kept the item and page features (`ItemPageFeatures` of the stack).
    pub item_pages: checkout_domain::features::ItemPageMode,
    /// The batch runs of the item and page features (batch mode): after the replay's features, after the
    /// erasure, and before the archive's comparison.
    pub batch_runs: Vec<RunCounts>,
    pub events_per_second: f64,
    /// The session with the most events, as the scorer would read it.
    pub example_session: Option<checkout_domain::features::SessionFeatures>,
}

/// The demo summary's `archive` object.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveSummary {
    #[serde(flatten)]
    pub compared: crate::archive::ArchiveComparison,
    /// Items in the event log when it was archived (after the later phases' appends and the erasure).
    pub event_log_items: usize,
}

/// Archives the log and reads every experiment both ways, at one clock.
async fn demo_archive(stack: &LocalStack, out: &Path) -> Result<ArchiveSummary, BoxError> {
    let compared = crate::archive::archive_and_compare(stack, &out.join("archive")).await?;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    let event_log_items = count_items(&ddb, &stack.resource("EventLogTable")?.name).await?;
    Ok(ArchiveSummary {
        compared,
        event_log_items,
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
    pub features: FeaturesSummary,
    pub model: ModelSummary,
    pub decisions: demo_loop::DecisionsSummary,
    /// The decisions' events, back through Kinesis, ingest and the feature updater.
    pub decision_events: FlowBack,
    pub experiment: demo_loop::ExperimentSummary,
    pub report: demo_loop::ReportSummary,
    /// The universal holdout and the system impact report.
    pub impact: demo_loop::ImpactSummary,
    pub learning: crate::learn::DemoLearning,
    pub operations: crate::demo_ops::OperationsSummary,
    pub recovery: crate::demo_recovery::RecoverySummary,
    pub archive: ArchiveSummary,
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
    println!("1/12 replaying {} into Kinesis …", file.display());
    let replay = replay(stack, file, None, None).await?;
    timings.insert("replay".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("2/12 driving the ingest handler from the stream, batch by batch …");
    let run = drive_ingest(stack).await?;
    timings.insert("ingest".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("3/12 driving the feature updater from the event log's stream (INSERTs only) …");
    let features_run = drive_features(stack).await?;
    // On a stack in batch mode the item and page features come from a batch run over the archive.
    let mut batch_runs: Vec<RunCounts> =
        crate::archive::batch_run_if_batch(stack, &out.join("archive"))
            .await?
            .into_iter()
            .collect();
    let features_secs = t.elapsed().as_secs_f64();
    timings.insert("features".to_string(), features_secs);

    let t = Instant::now();
    println!("4/12 training a model on the event log's sessions and promoting it …");
    let model = train_and_promote(stack, out).await?;
    timings.insert("model".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let visits = demo_loop::cart_visits(file)?;
    println!(
        "5/12 a storefront asks the scorer for {} decisions (each session that reaches the cart), through the HTTP API event …",
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
    println!("6/12 decision events back through Kinesis, ingest and the feature updater …");
    let ingest_back = drive_ingest_after(stack, &run.stream.positions).await?;
    let features_back = drive_features_after(stack, &features_run.stream.positions).await?;
    timings.insert("decisions_flow_back".to_string(), t.elapsed().as_secs_f64());
    let decision_events = FlowBack {
        events_appended: ingest_back.counts.appended,
        quarantined: ingest_back.counts.quarantined,
        experiment_units_written: features_back.counts.feature_items_written,
    };

    let t = Instant::now();
    println!("7/12 the experiment evaluator over the window …");
    let last_exposure = visits
        .iter()
        .map(|v| v.at)
        .max()
        .unwrap_or_else(chrono::Utc::now);
    let (experiment, report) = demo_loop::evaluate(stack, last_exposure, out).await?;
    let impact = demo_loop::impact(stack, last_exposure, out).await?;
    println!(
        "    universal holdout: {} users held out ({:.0}%), {} served; {} decisions for its members, {} of them treated. {}",
        impact.holdout_units,
        impact.share * 100.0,
        impact.served_units,
        decisions.holdout_decisions,
        decisions.holdout_treated,
        impact.summary
    );
    if impact.too_early {
        println!(
            "    The demo covers about 3 hours of REES46 traffic: the impact report's reading is \"too early\", \
             as it should be. See {}.",
            impact.html
        );
    }
    timings.insert("evaluate".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("8/12 reading the event log and the features table back …");
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

    let t = Instant::now();
    println!("9/12 the learning loop: point-in-time rows of these decisions, off-policy evaluation, a simulated closed loop …");
    let uci = file
        .parent()
        .unwrap_or(Path::new("."))
        .join("online_shoppers_intention.csv");
    let learning = crate::learn::demo_phase(stack, &uci, out).await?;
    timings.insert("learning".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!(
        "10/12 operations: explain a decision, the drift monitor over the day, erase a shopper …"
    );
    std::fs::create_dir_all(out)?;
    let operations = crate::demo_ops::run(stack, &visits, out).await?;
    timings.insert("operations".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("11/12 abandoned-cart recovery: the carts the feature updater scheduled, swept hour by hour on a simulated clock through their three steps …");
    let recovery = crate::demo_recovery::run(
        stack,
        &features_back.stream.positions,
        features_run.counts.due_items_written,
        (
            replay.first_event_at.ok_or("the replay had no events")?,
            replay.last_event_at.ok_or("the replay had no events")?,
        ),
    )
    .await?;
    timings.insert("recovery".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    println!("12/12 the event archive: the log's stream as Parquet by event hour, and every experiment read with the archive's SQL (DuckDB) against the evaluator's DynamoDB units …");
    batch_runs.extend(operations.batch_run.clone());
    let archive = demo_archive(stack, out).await?;
    if let Some(run) = &archive.compared.batch_run {
        println!("  {}", crate::archive::describe_run(run));
    }
    batch_runs.extend(archive.compared.batch_run.clone());
    timings.insert("archive".to_string(), t.elapsed().as_secs_f64());
    let per_event = |n: usize| n as f64 / event_log_items.max(1) as f64;
    let fc = &features_run.counts;
    let batch_units: u64 = batch_runs.iter().map(|r| r.write_units).sum();
    let units_per_event = |u: u64| u as f64 / event_log_items.max(1) as f64;
    let features = FeaturesSummary {
        items_by_entity,
        log_items_read_per_event: per_event(fc.log_entries_read),
        feature_items_read_per_event: per_event(fc.feature_items_read),
        feature_items_written_per_event: per_event(fc.feature_items_written),
        write_units_per_event: units_per_event(fc.write_units + batch_units),
        stream_write_units_per_event: units_per_event(fc.write_units),
        batch_write_units_per_event: units_per_event(batch_units),
        item_pages: stack.item_page_mode()?,
        batch_runs,
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
        impact,
        learning,
        operations,
        recovery,
        archive,
        timings_seconds: timings,
    };
    std::fs::create_dir_all(out)?;
    let path = out.join("demo-summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
    print_summary(&summary);
    println!("summary written to {}", path.display());
    let archived = &summary.archive.compared;
    if archived.written.parquet_rows != summary.archive.event_log_items {
        return Err(format!(
            "the archive's Parquet files hold {} rows but the event log {} items",
            archived.written.parquet_rows, summary.archive.event_log_items
        )
        .into());
    }
    if archived.features.differences > 0 || archived.features.items == 0 {
        return Err(format!(
            "the archive's SQL item and page features differ from the table's ({} of {} items and {} pages): {}",
            archived.features.differences,
            archived.features.items,
            archived.features.pages,
            archived.features.sample.join("; ")
        )
        .into());
    }
    if let Some(r) = archived.readouts.iter().find(|r| !r.identical) {
        return Err(format!(
            "experiment {}: the archive's SQL readout differs from the DynamoDB units: {}",
            r.experiment_id,
            r.differences.join("; ")
        )
        .into());
    }
    if archived.readouts.is_empty() {
        return Err("no experiment had units to read from the archive".into());
    }
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
    // Every user is a unit of the universal holdout; the experiment's units are those it did not hold out.
    let units: u64 = summary.experiment.units_per_arm.values().sum();
    let impact = &summary.impact;
    let users = summary.decisions.users as u64;
    if units + impact.holdout_units != users || impact.holdout_units + impact.served_units != users
    {
        return Err(format!(
            "the report counts {units} units and the holdout {} held out and {} served, but the storefront asked \
             for {users} users: exposures were lost or doubled on the way back",
            impact.holdout_units, impact.served_units
        )
        .into());
    }
    if summary.decisions.holdout_treated > 0 {
        return Err(format!(
            "{} decisions treated members of the universal holdout",
            summary.decisions.holdout_treated
        )
        .into());
    }
    let ops = &summary.operations;
    if !ops.explain_discrepancies.is_empty() || ops.explain_hash_matches != Some(true) {
        return Err(format!(
            "explaining decision {} disagreed with the log: {:?}",
            ops.explained_decision, ops.explain_discrepancies
        )
        .into());
    }
    if ops.rebuild_differences_after_erasure > 0 {
        return Err(format!(
            "after erasing a shopper the features table differs from a rebuild in {} items",
            ops.rebuild_differences_after_erasure
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
    crate::learn::print_demo(&s.learning);
    crate::demo_recovery::print(&s.recovery);
    let a = &s.archive.compared;
    println!(
        "  event archive                {:>8}  rows in {} event-hour partitions ({} Parquet rows) under {}",
        a.written.rows,
        a.written.partitions,
        a.written.parquet_rows,
        a.written.dir.join("events").display()
    );
    println!(
        "    item and page features by SQL: {} items, {} pages, {} differences from the table",
        a.features.items, a.features.pages, a.features.differences
    );
    for r in &a.readouts {
        println!(
            "    {:<26} units per arm {:?} (DynamoDB) vs {:?} (SQL): reports {}",
            r.experiment_id,
            r.units_dynamodb,
            r.units_sql,
            if r.identical { "identical" } else { "DIFFER" }
        );
    }
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
        "  per event: log items read {:.2}, feature items read {:.2}, written {:.2} ({:.2} write units); {:.0} events/s",
        f.log_items_read_per_event,
        f.feature_items_read_per_event,
        f.feature_items_written_per_event,
        f.stream_write_units_per_event,
        f.events_per_second
    );
    println!(
        "  item and page features       {:>8}  mode; {} batch runs, {:.2} write units per event; in all {:.2} write units per event (goal: at most 3)",
        f.item_pages.to_string(),
        f.batch_runs.len(),
        f.batch_write_units_per_event,
        f.write_units_per_event
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
